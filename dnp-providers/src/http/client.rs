//! [`ApiClient`]: one service's API behind the breaker, the rate limits and the retries.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dnp_core::{ProviderError, ProviderId, TokenSource};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::breaker::CircuitBreaker;
use super::config::{ConfigError, HttpConfig};
use super::errors::{ErrorBody, map_status, parse_retry_after};
use super::rate_limit::RateLimiter;
use super::retry::RetryPolicy;
use super::transport::{ReqwestTransport, Transport, TransportError, TransportRequest, TransportResponse};

/// One request to an [`ApiClient`].
#[derive(Clone)]
pub struct ApiRequest {
    method: Method,
    endpoint: &'static str,
    target: RequestTarget,
    query: Vec<(String, String)>,
    json: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    secret_headers: Vec<(String, SecretString)>,
    not_idempotent: bool,
}

#[derive(Clone)]
enum RequestTarget {
    Path(String),
    Absolute(Url),
}

impl fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiRequest").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl ApiRequest {
    /// A request to `path` (below the client's base URL, e.g. `/me/tracks`), reported as
    /// `endpoint` (a template without ids, e.g. `GET /me/tracks`) in metrics and errors.
    pub fn new(method: Method, endpoint: &'static str, path: impl Into<String>) -> Self {
        Self {
            method,
            endpoint,
            target: RequestTarget::Path(path.into()),
            query: Vec::new(),
            json: None,
            headers: Vec::new(),
            secret_headers: Vec::new(),
            not_idempotent: false,
        }
    }

    /// Marks the request as one that must not be sent twice (a playlist insert without an
    /// idempotency key): a failure that may have reached the service (a 5xx, a timeout, a
    /// broken connection) is returned as `Transient` at once instead of being retried.
    /// 429 and 401 answers are still retried: the service did not act on them.
    pub fn not_idempotent(mut self) -> Self {
        self.not_idempotent = true;
        self
    }

    /// A `GET` of `path`.
    pub fn get(endpoint: &'static str, path: impl Into<String>) -> Self {
        Self::new(Method::GET, endpoint, path)
    }

    /// A request to an absolute URL the service gave (a `next` link). It must lie below
    /// the client's base URL, else sending it fails with `Protocol`: a token is never sent
    /// to another origin.
    pub fn absolute(method: Method, endpoint: &'static str, url: Url) -> Self {
        Self {
            method,
            endpoint,
            target: RequestTarget::Absolute(url),
            query: Vec::new(),
            json: None,
            headers: Vec::new(),
            secret_headers: Vec::new(),
            not_idempotent: false,
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.query.push((key.to_owned(), value.to_string()));
        self
    }

    /// Adds a header sent with every attempt (`Idempotency-Key`; a `Content-Type` such as
    /// `application/vnd.api+json` replaces the default of a JSON body). Never put a
    /// secret here: headers are not redacted.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Adds a header whose value is a secret (Apple Music's `Music-User-Token`, sent beside
    /// the bearer token): kept in a [`SecretString`], marked sensitive on the wire, never
    /// printed.
    pub fn secret_header(mut self, name: &str, value: SecretString) -> Self {
        self.secret_headers.push((name.to_owned(), value));
        self
    }

    /// Sets a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        // Serializing plain data structures into a Vec cannot fail.
        self.json = serde_json::to_vec(body).ok();
        self
    }

    /// The endpoint template.
    pub fn endpoint(&self) -> &'static str {
        self.endpoint
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }
}

/// A successful (2xx) response.
#[derive(Clone)]
pub struct ApiResponse {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    provider: ProviderId,
    endpoint: &'static str,
}

impl fmt::Debug for ApiResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiResponse")
            .field("status", &self.status)
            .field("endpoint", &self.endpoint)
            .field("bytes", &self.body.len())
            .finish()
    }
}

impl ApiResponse {
    /// The body as JSON.
    ///
    /// # Errors
    /// `Protocol` naming the endpoint and the path of the field that did not parse.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        decode_json(&self.provider, self.endpoint, &self.body)
    }
}

/// Parses `body` as a `T`, or a `Protocol` error naming `endpoint` and the field's path.
///
/// # Errors
/// `Protocol` when the body is not JSON of that shape.
pub(crate) fn decode_json<T: DeserializeOwned>(
    provider: &ProviderId,
    endpoint: &str,
    body: &[u8],
) -> Result<T, ProviderError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let mut message = inner.to_string();
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        let message: String = message.chars().take(200).collect();
        ProviderError::Protocol {
            provider: provider.clone(),
            endpoint: endpoint.to_owned(),
            detail: format!("at `{path}` (line {}, column {}): {message}", inner.line(), inner.column()),
        }
    })
}

/// Counts of what a client did, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// Retries after a 429.
    pub rate_limit_retries: u64,
    /// Retries after a transient failure.
    pub transient_retries: u64,
    /// Token refreshes after a 401.
    pub refreshes: u64,
    /// Calls refused at once by the open breaker.
    pub breaker_rejections: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    rate_limit_retries: AtomicU64,
    transient_retries: AtomicU64,
    refreshes: AtomicU64,
    breaker_rejections: AtomicU64,
}

/// A connection's access token for the length of one operation (a scan, a batch): read
/// once from the [`TokenSource`], shared by concurrent requests, refreshed once for all
/// of them when the service answers 401.
pub struct AuthSession<'a> {
    source: &'a dyn TokenSource,
    current: tokio::sync::Mutex<Option<SecretString>>,
    key: std::sync::OnceLock<u64>,
}

impl fmt::Debug for AuthSession<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSession").finish_non_exhaustive()
    }
}

fn token_hasher() -> &'static std::hash::RandomState {
    static HASHER: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    HASHER.get_or_init(std::hash::RandomState::new)
}

impl<'a> AuthSession<'a> {
    /// A session over `source`.
    pub fn new(source: &'a dyn TokenSource) -> Self {
        Self { source, current: tokio::sync::Mutex::new(None), key: std::sync::OnceLock::new() }
    }

    /// The token to send now.
    async fn token(&self) -> Result<SecretString, ProviderError> {
        let mut current = self.current.lock().await;
        if let Some(token) = &*current {
            return Ok(token.clone());
        }
        let token = self.source.access_token().await?;
        // The connection's rate-limit bucket: a keyed hash (process-random key) of the
        // first token, so the token itself is never kept as a key.
        self.key.get_or_init(|| token_hasher().hash_one(token.expose_secret()));
        *current = Some(token.clone());
        Ok(token)
    }

    /// A new token after `rejected` was refused; single-flight across the session.
    async fn refresh(&self, rejected: &SecretString) -> Result<SecretString, ProviderError> {
        let mut current = self.current.lock().await;
        if let Some(token) = &*current
            && token.expose_secret() != rejected.expose_secret()
        {
            return Ok(token.clone());
        }
        let token = self.source.refresh_after_unauthorized(rejected).await?;
        *current = Some(token.clone());
        Ok(token)
    }

    fn bucket(&self) -> Option<u64> {
        self.key.get().copied()
    }
}

struct Inner {
    provider: ProviderId,
    base: String,
    transport: Arc<dyn Transport>,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    config: HttpConfig,
    retry: RetryPolicy,
    counters: Counters,
}

/// A service's API: base URL, transport, rate limits, breaker and retries. Cheap to
/// clone; clones share the limits and the breaker.
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("provider", &self.inner.provider)
            .field("base", &self.inner.base)
            .field("breaker", &self.inner.breaker.state())
            .finish_non_exhaustive()
    }
}

enum Attempt {
    Done(TransportResponse),
    RateLimited(Option<Duration>),
    Unauthorized,
    Failed(String),
}

impl ApiClient {
    /// A client of `provider`'s API at `base_url`, over reqwest.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the base URL does not parse or TLS cannot be set up.
    pub fn new(provider: ProviderId, base_url: &str, config: HttpConfig) -> Result<Self, ConfigError> {
        let transport = ReqwestTransport::new(&config)
            .map_err(|e| ConfigError::Invalid { name: "HTTP client", reason: e.to_string() })?;
        Self::with_transport(provider, base_url, config, Arc::new(transport))
    }

    /// A client sending through `transport` (tests script one).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the base URL is not an absolute http(s) URL.
    pub fn with_transport(
        provider: ProviderId,
        base_url: &str,
        config: HttpConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, ConfigError> {
        let parsed =
            Url::parse(base_url).map_err(|e| ConfigError::Invalid { name: "base URL", reason: e.to_string() })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            return Err(ConfigError::Invalid { name: "base URL", reason: "must be http(s) without a query".into() });
        }
        let base = parsed.as_str().trim_end_matches('/').to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                limiter: RateLimiter::new(config.provider_rate, config.connection_rate),
                breaker: CircuitBreaker::new(provider.clone(), config.breaker),
                retry: RetryPolicy::from_config(&config),
                provider,
                base,
                transport,
                config,
                counters: Counters::default(),
            }),
        })
    }

    /// The provider.
    pub fn provider(&self) -> &ProviderId {
        &self.inner.provider
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The settings.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    /// The provider's circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    /// What the client did so far.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            requests: c.requests.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            rate_limit_retries: c.rate_limit_retries.load(Ordering::Relaxed),
            transient_retries: c.transient_retries.load(Ordering::Relaxed),
            refreshes: c.refreshes.load(Ordering::Relaxed),
            breaker_rejections: c.breaker_rejections.load(Ordering::Relaxed),
        }
    }

    fn protocol(&self, endpoint: &str, detail: impl Into<String>) -> ProviderError {
        ProviderError::Protocol {
            provider: self.inner.provider.clone(),
            endpoint: endpoint.to_owned(),
            detail: detail.into(),
        }
    }

    fn url_of(&self, request: &ApiRequest) -> Result<Url, ProviderError> {
        let mut url = match &request.target {
            RequestTarget::Path(path) => Url::parse(&format!("{}{}", self.inner.base, path))
                .map_err(|e| self.protocol(request.endpoint, format!("bad path: {e}")))?,
            RequestTarget::Absolute(url) => {
                let below_base = url
                    .as_str()
                    .strip_prefix(&self.inner.base)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'));
                if !below_base {
                    return Err(self.protocol(request.endpoint, "a link in the response points outside the API"));
                }
                url.clone()
            }
        };
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(request.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        Ok(url)
    }

    /// Sends `request`, authenticated by `auth` when given, through the breaker, the rate
    /// limits and the retries (see the [module docs](super)).
    ///
    /// # Errors
    /// `ProviderUnavailable` (breaker open), `RateLimited` (retries spent or a
    /// `Retry-After` too long to wait), `QuotaExceeded`, `NeedsReauth` (401 after one
    /// refresh), `Transient` (retries spent), and the mapping of other statuses: 400 →
    /// `InvalidInput`, 403 → `InvalidInput` (`NeedsReauth` for a missing scope),
    /// 404 → `NotFound`, 409/412 → `Conflict`.
    pub async fn send(
        &self,
        auth: Option<&AuthSession<'_>>,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ProviderError> {
        let inner = &*self.inner;
        let provider = &inner.provider;
        let endpoint = request.endpoint;
        let url = self.url_of(request)?;
        let mut token = match auth {
            Some(session) => Some(session.token().await?),
            None => None,
        };
        let mut transient_attempts = 0u32;
        let mut rate_limit_attempts = 0u32;
        let mut refreshed = false;
        loop {
            let permit = match inner.breaker.acquire().await {
                Ok(p) => p,
                Err(e) => {
                    inner.counters.breaker_rejections.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            };
            inner.limiter.until_ready(auth.and_then(AuthSession::bucket)).await;
            let started = tokio::time::Instant::now();
            inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = inner
                .transport
                .send(TransportRequest {
                    method: request.method.clone(),
                    url: url.clone(),
                    bearer: token.clone(),
                    json: request.json.clone(),
                    headers: request.headers.clone(),
                    secret_headers: request.secret_headers.clone(),
                })
                .await;
            let elapsed = started.elapsed();
            let status_label = match &outcome {
                Ok(r) => r.status.to_string(),
                Err(TransportError::Timeout) => "timeout".to_owned(),
                Err(_) => "error".to_owned(),
            };
            metrics::counter!("provider_requests_total", "provider" => provider.to_string(), "endpoint" => endpoint, "status" => status_label.clone()).increment(1);
            metrics::histogram!("provider_request_duration_seconds", "provider" => provider.to_string(), "endpoint" => endpoint).record(elapsed.as_secs_f64());
            tracing::debug!(provider = %provider, endpoint, status = %status_label, elapsed_ms = elapsed.as_millis() as u64, "provider request");

            let attempt = match outcome {
                Ok(response) if (200..300).contains(&response.status) => {
                    permit.success();
                    Attempt::Done(response)
                }
                Ok(response) if response.status == 429 => {
                    permit.neutral();
                    inner.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let body = ErrorBody::parse(&response.body);
                    if body.reason.as_deref() == Some("QUOTA_EXCEEDED") {
                        return Err(ProviderError::QuotaExceeded {
                            provider: provider.clone(),
                            retry_after: parse_retry_after(&response.headers),
                        });
                    }
                    Attempt::RateLimited(parse_retry_after(&response.headers))
                }
                Ok(response) if response.status == 401 => {
                    permit.success();
                    Attempt::Unauthorized
                }
                Ok(response) if response.status >= 500 => {
                    permit.failure();
                    Attempt::Failed(ErrorBody::parse(&response.body).describe(response.status))
                }
                Ok(response) => {
                    permit.success();
                    return Err(map_status(provider, endpoint, response.status, &ErrorBody::parse(&response.body)));
                }
                Err(err) => {
                    permit.failure();
                    Attempt::Failed(err.to_string())
                }
            };

            match attempt {
                Attempt::Done(response) => {
                    return Ok(ApiResponse {
                        status: response.status,
                        body: response.body,
                        provider: provider.clone(),
                        endpoint,
                    });
                }
                Attempt::RateLimited(retry_after) => {
                    let wait = retry_after.unwrap_or_else(|| inner.retry.backoff(rate_limit_attempts));
                    if rate_limit_attempts >= inner.config.max_rate_limit_retries || wait > inner.config.max_retry_after
                    {
                        return Err(ProviderError::RateLimited { provider: provider.clone(), retry_after });
                    }
                    rate_limit_attempts += 1;
                    inner.counters.rate_limit_retries.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("provider_retries_total", "provider" => provider.to_string(), "endpoint" => endpoint, "reason" => "rate_limited").increment(1);
                    tracing::info!(provider = %provider, endpoint, wait_ms = wait.as_millis() as u64, "rate limited; waiting Retry-After");
                    tokio::time::sleep(wait).await;
                }
                Attempt::Unauthorized => {
                    let (Some(session), Some(rejected), false) = (auth, &token, refreshed) else {
                        return Err(ProviderError::NeedsReauth {
                            provider: provider.clone(),
                            reason: "the service refused the access token".into(),
                        });
                    };
                    refreshed = true;
                    inner.counters.refreshes.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(provider = %provider, endpoint, "access token refused; refreshing once");
                    token = Some(session.refresh(rejected).await?);
                }
                Attempt::Failed(detail) => {
                    if request.not_idempotent || transient_attempts >= inner.retry.max_retries {
                        return Err(ProviderError::Transient {
                            provider: provider.clone(),
                            endpoint: endpoint.to_owned(),
                            detail,
                        });
                    }
                    let wait = inner.retry.backoff(transient_attempts);
                    transient_attempts += 1;
                    inner.counters.transient_retries.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("provider_retries_total", "provider" => provider.to_string(), "endpoint" => endpoint, "reason" => "transient").increment(1);
                    tracing::info!(provider = %provider, endpoint, %detail, wait_ms = wait.as_millis() as u64, "transient failure; backing off");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Sends `request` and parses the JSON answer.
    ///
    /// # Errors
    /// Those of [`ApiClient::send`], and `Protocol` when the body does not parse.
    pub async fn json<T: DeserializeOwned>(
        &self,
        auth: Option<&AuthSession<'_>>,
        request: &ApiRequest,
    ) -> Result<T, ProviderError> {
        self.send(auth, request).await?.json()
    }
}
