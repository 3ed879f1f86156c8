//! # dnp-providers
//!
//! The music-service adapters of dnp ("No Drake in the House"): each implements
//! [`dnp_core::Provider`] (library scan, batched removal and re-adding, artist search,
//! ISRC lookup) and [`dnp_core::ProviderAuth`] (OAuth) over the service's official API,
//! on a shared HTTP stack ([`http`]): rustls, timeouts, a token-bucket rate limiter per
//! provider and per connection, retries with backoff and jitter, `429 Retry-After`
//! obeyed exactly, and a circuit breaker per provider.
//!
//! With the `emulator` feature, each service also comes with a stateful local emulator of
//! its API, which the tests, the benchmarks and the server's demo mode run against.
//!
//! ## Quick start
//!
//! ```no_run
//! use std::sync::Arc;
//! use dnp_core::{NoProgress, Provider, ProviderAuth, StaticToken};
//! use dnp_providers::spotify::{SpotifyAuth, SpotifyConfig, SpotifyProvider};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET, SPOTIFY_REDIRECT_URI (+ optional base URLs).
//! let config = SpotifyConfig::from_env()?;
//! let auth = SpotifyAuth::new(config.clone())?;
//! let request = auth.authorization_request()?; // send the user to request.url
//! # let code = "from the callback";
//! let tokens = auth.exchange_code(code, request.pkce_verifier.as_ref()).await?;
//!
//! let spotify = SpotifyProvider::new(config)?;
//! let token = StaticToken::new(spotify.id().clone(), tokens.access_token);
//! let library = spotify.scan(&token, &NoProgress).await?;
//! println!("{} liked tracks", library.liked_tracks.len());
//! # Ok(()) }
//! ```
//!
//! ## Adapters
//!
//! | service | module | feature | removal | notes |
//! |---|---|---|---|---|
//! | Spotify | [`spotify`] | `spotify` (default) | liked tracks, saved albums, followed artists, playlist items | `docs/providers/spotify.md` |
//! | Apple Music | `apple_music` | `apple_music` | dislike ratings on library songs (no documented removal of library items); albums, artists and playlist entries: manual checklist with links; playlist adds append only | `docs/providers/apple-music.md` |
//! | TIDAL | `tidal` | `tidal` (default) | collection tracks, albums, artists, playlist items (by item id, re-inserted at their position) | `docs/providers/tidal.md` |
//! | YouTube Music | `youtube_music` | `youtube_music` | liked videos (rating removed), playlist items (by item id, re-inserted at their position), subscriptions; one item per call, 10,000 quota units a day (about 200 writes); saved albums: manual checklist | `docs/providers/youtube-music.md` |
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `spotify` | yes | the Spotify adapter |
//! | `apple_music` | no | the Apple Music adapter (ES256 developer token, Music User Token from MusicKit JS) |
//! | `tidal` | yes | the TIDAL adapter |
//! | `youtube_music` | no | the YouTube Music adapter (YouTube Data API v3) |
//! | `emulator` | no | the service emulators (axum servers) and the conformance harnesses over them |
//!
//! ## Why this design
//! Every adapter has the same files (config, auth, client, model, scan, apply, emulator),
//! so knowing one means knowing all; what differs between services is stated in each
//! adapter's [`Capabilities`](dnp_core::Capabilities), checked once by the planner. The
//! HTTP stack is shared so that retries, rate limits and the breaker behave the same for
//! every service, and the conformance suite of `dnp-core` runs against each emulator.

pub mod http;

#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music"))]
mod oauth;

#[cfg(feature = "spotify")]
pub mod spotify;

#[cfg(feature = "apple_music")]
pub mod apple_music;

#[cfg(feature = "tidal")]
pub mod tidal;

#[cfg(feature = "youtube_music")]
pub mod youtube_music;

#[cfg(feature = "emulator")]
pub mod emulator;
