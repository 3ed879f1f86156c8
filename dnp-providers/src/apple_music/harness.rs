//! [`AppleMusicHarness`]: the conformance suite's harness over the Apple Music emulator.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use dnp_core::{LibrarySnapshot, TokenSet};
use secrecy::SecretString;

use super::emulator::AppleMusicEmulator;
use super::{AppleMusicAuth, AppleMusicClient, AppleMusicProvider};
use crate::emulator::{
    CONFORMANCE_USER, ConformanceEmulator, EmulatorConfig, EmulatorError, EmulatorHarness, FaultInjector,
    short_wait_http_config,
};
use crate::http::{HttpConfig, RateLimit};

/// The HTTP settings the harness gives the adapter: short timeouts, backoff and breaker
/// open time, so the suite runs in seconds.
pub fn test_http_config() -> HttpConfig {
    let rate = RateLimit { per_second: 1000, burst: 100 };
    HttpConfig { provider_rate: rate, connection_rate: rate, ..short_wait_http_config() }
}

/// Runs the conformance suite against an [`AppleMusicEmulator`]: the adapter signs
/// developer tokens with the emulator's MusicKit key, the test user's Music User Token sits
/// in a [`StoredTokenSource`](dnp_core::StoredTokenSource) over [`AppleMusicAuth`] (which
/// cannot refresh it, as with Apple), and faults go to the emulator's fault injector.
///
/// [`HarnessFault::ExpireAccessToken`](dnp_core::conformance::HarnessFault::ExpireAccessToken)
/// expires the developer token, the token Apple Music renews without the user (the adapter
/// re-signs one after the `401`): the Apple analogue of an expired access token with a
/// working refresh token.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let harness = dnp_providers::apple_music::AppleMusicHarness::start().await?;
/// let report = dnp_core::conformance::run_all(&harness).await;
/// assert!(report.all_passed(), "{report}");
/// # Ok(()) }
/// ```
pub type AppleMusicHarness = EmulatorHarness<AppleMusicEmulator, AppleMusicProvider>;

impl AppleMusicHarness {
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
        let emulator = AppleMusicEmulator::start(EmulatorConfig::default())?;
        let mut config = emulator.adapter_config().map_err(io::Error::other)?;
        let request_timeout = http.request_timeout;
        config.http = http;
        let client = AppleMusicClient::new(&config).map_err(io::Error::other)?;
        let provider = Arc::new(AppleMusicProvider::with_client(client.clone()));
        let auth = Arc::new(AppleMusicAuth::with_client(config, client));
        let token = emulator.issue_user_token(CONFORMANCE_USER, Duration::from_secs(24 * 3600));
        let tokens =
            TokenSet { access_token: SecretString::from(token), refresh_token: None, expires_at: None, scopes: vec![] };
        Self::new(emulator, provider, auth, tokens, request_timeout).await
    }

    /// The adapter under test.
    pub fn apple_music(&self) -> &AppleMusicProvider {
        self.adapter()
    }
}

/// Each method calls the emulator's own method of the same name.
impl ConformanceEmulator for AppleMusicEmulator {
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
