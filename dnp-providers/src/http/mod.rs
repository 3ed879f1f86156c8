//! The HTTP stack every adapter shares: a [`reqwest`] client with rustls and timeouts, a
//! [`governor`] rate limiter per provider and per connection, retries with exponential
//! backoff and jitter for transient failures, `429 Retry-After` obeyed exactly, a
//! [circuit breaker](breaker::CircuitBreaker) per provider, metrics through the `metrics`
//! facade, and errors mapped to [`ProviderError`](dnp_core::ProviderError) with tokens and
//! query strings removed.
//!
//! It is provider-agnostic: an adapter builds one [`ApiClient`] per service (API base URL,
//! [`HttpConfig`]) and sends [`ApiRequest`]s naming an endpoint template
//! (`GET /playlists/{id}/items`) for metrics and errors.
//!
//! # The order of the layers
//! For each attempt of a request: the breaker (fails at once with `ProviderUnavailable`
//! while open), the connection's rate limit, the provider's rate limit, then the
//! [`Transport`] (reqwest, with connect and request timeouts). Its answer is classified:
//! - 2xx: done;
//! - 429: wait exactly `Retry-After` (or the backoff when absent) and try again, at most
//!   [`HttpConfig::max_rate_limit_retries`] times; a quota answer is `QuotaExceeded` at once;
//! - 401: the token source refreshes once (single-flight) and the request is retried once;
//! - 5xx, timeouts, connection failures: counted by the breaker, retried with exponential
//!   backoff and full jitter, at most [`HttpConfig::max_retries`] times — never for a
//!   request marked [`ApiRequest::not_idempotent`], which may have landed;
//! - any other status: mapped to its [`ProviderError`](dnp_core::ProviderError) at once.
//!
//! Every wait uses [`tokio::time`], so tests drive the limiter, the backoff and the breaker
//! with a paused clock.

mod breaker;
mod client;
mod config;
mod errors;
mod rate_limit;
mod redact;
mod retry;
mod transport;

#[cfg(test)]
mod tests;

pub use breaker::{BreakerPermit, BreakerState, CircuitBreaker};
#[cfg(all(test, any(feature = "spotify", feature = "apple_music")))]
pub(crate) use client::decode_json;
pub use client::{ApiClient, ApiRequest, ApiResponse, AuthSession, ClientStats};
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music", feature = "apple_music"))]
pub(crate) use config::EnvVars;
#[cfg(all(test, any(feature = "spotify", feature = "tidal", feature = "youtube_music", feature = "apple_music")))]
pub(crate) use config::lookup_in;
pub use config::{BreakerConfig, ConfigError, HttpConfig, RateLimit};
pub use errors::{ErrorBody, parse_retry_after};
pub use rate_limit::RateLimiter;
pub use redact::{redact_text, redact_url};
pub use retry::RetryPolicy;
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music"))]
pub(crate) use transport::transport_message;
pub use transport::{ReqwestTransport, Transport, TransportError, TransportRequest, TransportResponse};
