//! [`TidalHarness`]: the conformance suite's [`Harness`] over the TIDAL emulator.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dnp_core::conformance::{Harness, HarnessError, HarnessFault};
use dnp_core::memory::MemoryTokenStore;
use dnp_core::{
    LibrarySnapshot, Provider, ProviderAuth, ProviderId, StoredTokenSource, TokenSet, TokenSource, TokenStore, UserId,
};
use secrecy::SecretString;

use super::emulator::TidalEmulator;
use super::{TidalAuth, TidalConfig, TidalProvider};
use crate::emulator::EmulatorConfig;
use crate::http::{BreakerConfig, HttpConfig};

/// The HTTP settings the harness gives the adapter: the defaults with short waits, so the
/// suite runs in seconds (a 2 s request timeout, a breaker open for 1 s, 50 ms backoff).
pub fn test_http_config() -> HttpConfig {
    HttpConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        breaker: BreakerConfig { open_for: Duration::from_secs(1), ..BreakerConfig::default() },
        ..HttpConfig::default()
    }
}

/// Runs the conformance suite's checks against a [`TidalEmulator`]: the adapter under test
/// is a [`TidalProvider`] pointed at the emulator, its tokens come from a
/// [`StoredTokenSource`] that refreshes through [`TidalAuth`] (so expiry and refresh are
/// real), and faults go to the emulator's fault injector.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let harness = dnp_providers::tidal::TidalHarness::start().await?;
/// let report = dnp_core::conformance::run_all(&harness).await;
/// assert!(report.all_passed(), "{report}");
/// # Ok(()) }
/// ```
pub struct TidalHarness {
    emulator: TidalEmulator,
    user: String,
    provider: Arc<TidalProvider>,
    tokens: Arc<dyn TokenSource>,
    timeout_hold: Duration,
}

impl fmt::Debug for TidalHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TidalHarness")
            .field("emulator", &self.emulator)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

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
        let user = "conformance_user".to_owned();
        let tidal = ProviderId::new(ProviderId::TIDAL).map_err(io::Error::other)?;
        emulator.seed_user(&user, &LibrarySnapshot::empty(tidal));
        let redirect = "http://127.0.0.1:8888/callback/tidal";
        emulator.register_redirect_uri(redirect).map_err(io::Error::other)?;
        // A public client, as TIDAL's third-party apps are: PKCE, no secret.
        let mut config = TidalConfig::new(emulator.client_id(), None, redirect)
            .and_then(|c| c.with_base_urls(emulator.api_base_url(), emulator.auth_base_url(), emulator.authorize_url()))
            .map_err(io::Error::other)?;
        let timeout_hold = http.request_timeout + Duration::from_secs(1);
        config.http = http;
        let provider = Arc::new(TidalProvider::new(config.clone()).map_err(io::Error::other)?);
        let auth: Arc<dyn ProviderAuth> = Arc::new(TidalAuth::new(config).map_err(io::Error::other)?);

        let (access, refresh) = emulator.issue_tokens(&user, Duration::from_secs(3600));
        let store = Arc::new(MemoryTokenStore::new());
        let tokens = TokenSet {
            access_token: SecretString::from(access),
            refresh_token: Some(SecretString::from(refresh)),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
            scopes: super::SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        };
        let connection = store
            .save(UserId::new_random(), provider.id(), &tokens)
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        let tokens: Arc<dyn TokenSource> = Arc::new(StoredTokenSource::new(store, auth, connection.id));
        Ok(Self { emulator, user, provider, tokens, timeout_hold })
    }

    /// The emulator.
    pub fn emulator(&self) -> &TidalEmulator {
        &self.emulator
    }

    /// The adapter under test.
    pub fn tidal(&self) -> &TidalProvider {
        &self.provider
    }

    /// The test user's id at the emulator.
    pub fn user(&self) -> &str {
        &self.user
    }
}

#[async_trait]
impl Harness for TidalHarness {
    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    fn token_source(&self) -> Arc<dyn TokenSource> {
        self.tokens.clone()
    }

    async fn seed(&self, library: &LibrarySnapshot) -> Result<(), HarnessError> {
        self.emulator.seed_user(&self.user, library);
        Ok(())
    }

    async fn state(&self) -> Result<LibrarySnapshot, HarnessError> {
        Ok(self.emulator.library(&self.user))
    }

    async fn inject(&self, fault: HarnessFault) -> Result<(), HarnessError> {
        let faults = self.emulator.faults();
        let failed = |e: crate::emulator::FaultError| HarnessError::Failed(e.to_string());
        match fault {
            HarnessFault::RateLimit { calls, retry_after } => faults.rate_limit_next(calls, retry_after),
            HarnessFault::ServerError { calls } => faults.server_error_next(calls, 503).map_err(failed)?,
            HarnessFault::Timeout { calls } => faults.timeout_next(calls, self.timeout_hold),
            HarnessFault::Outage => faults.server_error_ratio(1.0, 503).map_err(failed)?,
            HarnessFault::ClearFaults => faults.clear(),
            HarnessFault::ExpireAccessToken => faults.expire_access_tokens_now(),
            HarnessFault::ChangePlaylist { playlist_id } => {
                self.emulator
                    .change_playlist(&self.user, &playlist_id)
                    .map_err(|e| HarnessError::Failed(e.to_string()))?;
            }
            other => return Err(HarnessError::Unsupported(format!("fault {}", other.name()))),
        }
        Ok(())
    }
}
