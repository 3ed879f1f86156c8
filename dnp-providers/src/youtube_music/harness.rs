//! [`YouTubeMusicHarness`]: the conformance suite's harness over the YouTube emulator.

use std::io;
use std::sync::Arc;

use dnp_core::LibrarySnapshot;
use secrecy::SecretString;

use super::emulator::YouTubeMusicEmulator;
use super::{YouTubeMusicAuth, YouTubeMusicConfig, YouTubeMusicProvider};
use crate::emulator::{
    ACCESS_TOKEN_TTL, CONFORMANCE_USER, ConformanceEmulator, EmulatorConfig, EmulatorError, EmulatorHarness,
    FaultInjector, issued_token_set, short_wait_http_config,
};
use crate::http::{HttpConfig, RateLimit};

/// The HTTP settings the harness gives the adapter: the defaults with short waits, so the
/// suite runs in seconds (a 2 s request timeout, a breaker open for 1 s, 50 ms backoff),
/// and roomier token buckets (500 requests a second), since every YouTube write is a call
/// of its own and the suite sends about 1,500 of them.
pub fn test_http_config() -> HttpConfig {
    let rate = RateLimit { per_second: 500, burst: 100 };
    HttpConfig { provider_rate: rate, connection_rate: rate, ..short_wait_http_config() }
}

/// Runs the conformance suite's checks against a [`YouTubeMusicEmulator`]: the adapter
/// under test is a [`YouTubeMusicProvider`] pointed at the emulator, its tokens come from a
/// [`StoredTokenSource`](dnp_core::StoredTokenSource) that refreshes through
/// [`YouTubeMusicAuth`] (so expiry and Google's non-rotating refresh are real), and faults
/// go to the emulator's fault injector.
///
/// The suite sends a few thousand units' worth of calls, more than one real day allows:
/// [`start`](Self::start) gives the emulator and the adapter a quota of
/// [`SUITE_QUOTA`](Self::SUITE_QUOTA) units so that the checks exercise the API rather
/// than the quota (which the adapter's own tests exercise).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let harness = dnp_providers::youtube_music::YouTubeMusicHarness::start().await?;
/// let report = dnp_core::conformance::run_all(&harness).await;
/// assert!(report.all_passed(), "{report}");
/// # Ok(()) }
/// ```
pub type YouTubeMusicHarness = EmulatorHarness<YouTubeMusicEmulator, YouTubeMusicProvider>;

impl YouTubeMusicHarness {
    /// The daily quota the harness gives the emulator and the adapter.
    pub const SUITE_QUOTA: u64 = 100_000_000;

    /// A fresh emulator and an adapter with [`test_http_config`] and [`Self::SUITE_QUOTA`].
    ///
    /// # Errors
    /// When the emulator cannot start or the adapter cannot be configured.
    pub async fn start() -> io::Result<Self> {
        Self::with(test_http_config(), Self::SUITE_QUOTA).await
    }

    /// A fresh emulator and an adapter with `http` settings, both with `daily_quota` units.
    ///
    /// # Errors
    /// When the emulator cannot start or the adapter cannot be configured.
    pub async fn with(http: HttpConfig, daily_quota: u64) -> io::Result<Self> {
        let emulator = YouTubeMusicEmulator::start(EmulatorConfig::default())?;
        emulator.set_daily_quota(daily_quota);
        let redirect = "http://127.0.0.1:8888/callback";
        emulator.register_redirect_uri(redirect).map_err(io::Error::other)?;
        let mut config =
            YouTubeMusicConfig::new(emulator.client_id(), Some(SecretString::from(emulator.client_secret())), redirect)
                .and_then(|c| c.with_base_urls(emulator.api_base_url(), emulator.auth_base_url()))
                .map_err(io::Error::other)?;
        let request_timeout = http.request_timeout;
        config.http = http;
        config.daily_quota = daily_quota;
        let provider = Arc::new(YouTubeMusicProvider::new(config.clone()).map_err(io::Error::other)?);
        let auth = Arc::new(YouTubeMusicAuth::new(config).map_err(io::Error::other)?);
        let issued = emulator.issue_tokens(CONFORMANCE_USER, ACCESS_TOKEN_TTL);
        let tokens = issued_token_set(issued, &super::SCOPES, ACCESS_TOKEN_TTL)?;
        Self::new(emulator, provider, auth, tokens, request_timeout).await
    }

    /// The adapter under test.
    pub fn youtube(&self) -> &YouTubeMusicProvider {
        self.adapter()
    }
}

/// Each method calls the emulator's own method of the same name.
impl ConformanceEmulator for YouTubeMusicEmulator {
    fn seed_user(&self, user_id: &str, library: &LibrarySnapshot) {
        Self::seed_user(self, user_id, library);
    }

    fn library(&self, user_id: &str) -> LibrarySnapshot {
        Self::library(self, user_id)
    }

    fn faults(&self) -> &FaultInjector {
        Self::faults(self)
    }

    fn change_playlist(&self, user_id: &str, playlist_id: &str) -> Result<String, EmulatorError> {
        Self::change_playlist(self, user_id, playlist_id)
    }
}
