//! [`TidalHarness`]: the conformance suite's harness over the TIDAL emulator.

use std::io;
use std::sync::Arc;

use dnp_core::LibrarySnapshot;

use super::emulator::TidalEmulator;
use super::{TidalAuth, TidalConfig, TidalProvider};
use crate::emulator::{
    ACCESS_TOKEN_TTL, CONFORMANCE_USER, ConformanceEmulator, EmulatorConfig, EmulatorError, EmulatorHarness,
    FaultInjector, issued_token_set, short_wait_http_config,
};
use crate::http::HttpConfig;

/// The HTTP settings the harness gives the adapter: the defaults with short waits, so the
/// suite runs in seconds (a 2 s request timeout, a breaker open for 1 s, 50 ms backoff).
pub fn test_http_config() -> HttpConfig {
    short_wait_http_config()
}

/// Runs the conformance suite's checks against a [`TidalEmulator`]: the adapter under test
/// is a [`TidalProvider`] pointed at the emulator, its tokens come from a
/// [`StoredTokenSource`](dnp_core::StoredTokenSource) that refreshes through [`TidalAuth`]
/// (so expiry and refresh are real), and faults go to the emulator's fault injector.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let harness = dnp_providers::tidal::TidalHarness::start().await?;
/// let report = dnp_core::conformance::run_all(&harness).await;
/// assert!(report.all_passed(), "{report}");
/// # Ok(()) }
/// ```
pub type TidalHarness = EmulatorHarness<TidalEmulator, TidalProvider>;

impl TidalHarness {
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
        let emulator = TidalEmulator::start(EmulatorConfig::default())?;
        let redirect = "http://127.0.0.1:8888/callback/tidal";
        emulator.register_redirect_uri(redirect).map_err(io::Error::other)?;
        // A public client, as TIDAL's third-party apps are: PKCE, no secret.
        let mut config = TidalConfig::new(emulator.client_id(), None, redirect)
            .and_then(|c| c.with_base_urls(emulator.api_base_url(), emulator.auth_base_url(), emulator.authorize_url()))
            .map_err(io::Error::other)?;
        let request_timeout = http.request_timeout;
        config.http = http;
        let provider = Arc::new(TidalProvider::new(config.clone()).map_err(io::Error::other)?);
        let auth = Arc::new(TidalAuth::new(config).map_err(io::Error::other)?);
        let issued = emulator.issue_tokens(CONFORMANCE_USER, ACCESS_TOKEN_TTL);
        let tokens = issued_token_set(issued, &super::SCOPES, ACCESS_TOKEN_TTL)?;
        Self::new(emulator, provider, auth, tokens, request_timeout).await
    }

    /// The adapter under test.
    pub fn tidal(&self) -> &TidalProvider {
        self.adapter()
    }
}

/// Each method calls the emulator's own method of the same name.
impl ConformanceEmulator for TidalEmulator {
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
