//! The shared toolkit of dnp's service emulators (feature `emulator`).
//!
//! Every bundled adapter is tested, benchmarked and demonstrated against a stateful local
//! HTTP server that speaks its service's real API shape. This module holds what those
//! emulators share, so the Spotify, Apple Music, YouTube and TIDAL emulators behave alike:
//!
//! | piece | what it does |
//! |---|---|
//! | [`serve`], [`serve_with`] / [`ServerHandle`] | runs an axum [`Router`](axum::Router) on `127.0.0.1:0` on its own thread and runtime; dropping the handle stops it |
//! | [`instrument`] / [`Instrumentation`] | wraps a router with per-request [`Latency`], a [`FaultInjector`] and a [`RequestLog`] |
//! | [`FaultInjector`] | 429 (rate limit or quota), 5xx, timeouts and slow responses for the next N requests or a seeded ratio of them; revokes or expires every token at once |
//! | [`oauth`] | the authorization-server side of OAuth 2.0: redirect URI rules, authorization codes with PKCE S256, expiring access tokens, rotating single-use refresh tokens |
//! | [`generate_library`] / [`LibraryShape`] | realistic seeded libraries (artists named from syllables, featured credits, ISRCs, owned, collaborative and followed playlists with duplicates) |
//! | [`EmulatorConfig`] | the settings every emulator takes: token lifetimes, latency, seed |
//! | [`EmulatorHarness`] / [`ConformanceEmulator`] | the conformance suite's harness over an emulator and the adapter pointed at it (each provider names its own, e.g. `SpotifyHarness`) |
//!
//! The emulators run in-process: a test, a benchmark or the demo server calls
//! `start(config)` (for example [`crate::spotify::emulator::SpotifyEmulator::start`]) and
//! points the adapter's base URLs at the returned addresses. There is no separate binary.
//!
//! # Determinism
//! Everything random that a test or benchmark may compare is drawn from seeded generators
//! ([`rand::rngs::Xoshiro256PlusPlus`], a portable algorithm): the generated library, the
//! decisions of ratio-based faults (the k-th matching request always gets the same
//! decision for a given seed), snapshot ids. Tokens and authorization codes are drawn from
//! the operating system's generator instead, since they stand for secrets.
//!
//! # What is simplified
//! The emulators hold their state in memory behind one lock; they are built for a handful
//! of concurrent clients on a developer machine, not for load. Each emulator's own module
//! documentation lists which endpoints it emulates and where it departs from its service.

mod config;
mod faults;
mod generate;
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music", feature = "apple_music"))]
mod harness;
mod log;
pub mod oauth;
mod server;

pub use config::EmulatorConfig;
pub use faults::{FaultError, FaultInjector, FaultKind, FaultRule, FaultStats, FaultTrigger};
pub use generate::{LibraryShape, generate_library};
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music"))]
pub(crate) use harness::{ACCESS_TOKEN_TTL, issued_token_set};
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music", feature = "apple_music"))]
pub(crate) use harness::{CONFORMANCE_USER, short_wait_http_config};
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music", feature = "apple_music"))]
pub use harness::{ConformanceEmulator, EmulatorHarness};
pub use log::{LoggedRequest, RequestLog};
pub use server::{FaultRenderer, Instrumentation, Latency, ServerHandle, instrument, serve, serve_with};

/// Errors of the emulators' control APIs (seeding, fault set-up, registration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// No user with this id was seeded.
    #[error("the emulator has no user `{user_id}`")]
    UnknownUser {
        /// The id asked for.
        user_id: String,
    },
    /// No playlist with this id is in the user's library.
    #[error("user `{user_id}` has no playlist `{playlist_id}`")]
    UnknownPlaylist {
        /// The user.
        user_id: String,
        /// The playlist id asked for.
        playlist_id: String,
    },
    /// A redirect URI the service would refuse to register.
    #[error("redirect URI refused: {reason}")]
    InvalidRedirectUri {
        /// Why (which rule it breaks).
        reason: String,
    },
    /// A playlist has no track the emulator could insert (the catalog is empty).
    #[error("the catalog has no track to insert")]
    EmptyCatalog,
}
