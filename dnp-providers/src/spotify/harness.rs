//! [`SpotifyHarness`]: the conformance suite's harness over the Spotify emulator.

use std::io;
use std::sync::Arc;

use dnp_core::LibrarySnapshot;
use secrecy::SecretString;

use super::emulator::SpotifyEmulator;
use super::{SpotifyAuth, SpotifyConfig, SpotifyProvider};
use crate::emulator::{
    ACCESS_TOKEN_TTL, CONFORMANCE_USER, ConformanceEmulator, EmulatorConfig, EmulatorError, EmulatorHarness,
    FaultInjector, issued_token_set, short_wait_http_config,
};
use crate::http::{HttpConfig, RateLimit};

/// The HTTP settings the harness gives the adapter: the defaults with short waits, so the
/// suite runs in seconds (a 2 s request timeout, a breaker open for 1 s, 50 ms backoff,
/// rate limits of 1,000 requests a second that a local emulator never reaches).
pub fn test_http_config() -> HttpConfig {
    let rate = RateLimit { per_second: 1000, burst: 100 };
    HttpConfig { provider_rate: rate, connection_rate: rate, ..short_wait_http_config() }
}

/// Runs the conformance suite's checks against a [`SpotifyEmulator`]: the adapter under
/// test is a [`SpotifyProvider`] pointed at the emulator, its tokens come from a
/// [`StoredTokenSource`](dnp_core::StoredTokenSource) that refreshes through
/// [`SpotifyAuth`] (so expiry and rotation are real), and faults go to the emulator's fault
/// injector.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let harness = dnp_providers::spotify::SpotifyHarness::start().await?;
/// let report = dnp_core::conformance::run_all(&harness).await;
/// assert!(report.all_passed(), "{report}");
/// # Ok(()) }
/// ```
pub type SpotifyHarness = EmulatorHarness<SpotifyEmulator, SpotifyProvider>;

impl SpotifyHarness {
    /// A fresh emulator and an adapter with [`test_http_config`].
    ///
    /// # Errors
    /// When the emulator cannot start or the adapter cannot be configured.
    pub async fn start() -> io::Result<Self> {
        Self::with_http(test_http_config()).await
    }

    /// A fresh emulator and an adapter with `http` settings.
    ///
    /// # Errors
    /// When the emulator cannot start or the adapter cannot be configured.
    pub async fn with_http(http: HttpConfig) -> io::Result<Self> {
        let emulator = SpotifyEmulator::start(EmulatorConfig::default())?;
        let redirect = "http://127.0.0.1:8888/callback";
        emulator.register_redirect_uri(redirect).map_err(io::Error::other)?;
        let mut config =
            SpotifyConfig::new(emulator.client_id(), Some(SecretString::from(emulator.client_secret())), redirect)
                .and_then(|c| c.with_base_urls(emulator.api_base_url(), emulator.accounts_base_url()))
                .map_err(io::Error::other)?;
        let request_timeout = http.request_timeout;
        config.http = http;
        let provider = Arc::new(SpotifyProvider::new(config.clone()).map_err(io::Error::other)?);
        let auth = Arc::new(SpotifyAuth::new(config).map_err(io::Error::other)?);
        let issued = emulator.issue_tokens(CONFORMANCE_USER, ACCESS_TOKEN_TTL);
        let tokens = issued_token_set(issued, &super::SCOPES, ACCESS_TOKEN_TTL)?;
        Self::new(emulator, provider, auth, tokens, request_timeout).await
    }

    /// The adapter under test.
    pub fn spotify(&self) -> &SpotifyProvider {
        self.adapter()
    }
}

/// Each method calls the emulator's own method of the same name.
impl ConformanceEmulator for SpotifyEmulator {
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
