//! [`AppleMusicHarness`]: the conformance suite's [`Harness`] over the Apple Music emulator.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dnp_core::conformance::{Harness, HarnessError, HarnessFault};
use dnp_core::memory::MemoryTokenStore;
use dnp_core::{LibrarySnapshot, Provider, ProviderAuth, StoredTokenSource, TokenSet, TokenSource, TokenStore, UserId};
use secrecy::SecretString;

use super::emulator::AppleMusicEmulator;
use super::{AppleMusicAuth, AppleMusicClient, AppleMusicProvider};
use crate::emulator::EmulatorConfig;
use crate::http::{BreakerConfig, HttpConfig, RateLimit};

/// The HTTP settings the harness gives the adapter: short timeouts, backoff and breaker
/// open time, so the suite runs in seconds.
pub fn test_http_config() -> HttpConfig {
    HttpConfig {
        provider_rate: RateLimit { per_second: 1000, burst: 100 },
        connection_rate: RateLimit { per_second: 1000, burst: 100 },
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        breaker: BreakerConfig { open_for: Duration::from_secs(1), ..BreakerConfig::default() },
        ..HttpConfig::default()
    }
}

/// Runs the conformance suite against an [`AppleMusicEmulator`]: the adapter signs
/// developer tokens with the emulator's MusicKit key, the test user's Music User Token sits
/// in a [`StoredTokenSource`] over [`AppleMusicAuth`] (which cannot refresh it, as with
/// Apple), and faults go to the emulator's fault injector.
///
/// [`HarnessFault::ExpireAccessToken`] expires the developer token, the token Apple Music
/// renews without the user (the adapter re-signs one after the `401`): the Apple analogue
/// of an expired access token with a working refresh token.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let harness = dnp_providers::apple_music::AppleMusicHarness::start().await?;
/// let report = dnp_core::conformance::run_all(&harness).await;
/// assert!(report.all_passed(), "{report}");
/// # Ok(()) }
/// ```
pub struct AppleMusicHarness {
    emulator: AppleMusicEmulator,
    user: String,
    provider: Arc<AppleMusicProvider>,
    tokens: Arc<dyn TokenSource>,
    timeout_hold: Duration,
}

impl fmt::Debug for AppleMusicHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppleMusicHarness")
            .field("emulator", &self.emulator)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

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
        let user = "conformance_user".to_owned();
        let provider_id = dnp_core::ProviderId::new(dnp_core::ProviderId::APPLE_MUSIC).map_err(io::Error::other)?;
        emulator.seed_user(&user, &LibrarySnapshot::empty(provider_id));
        let mut config = emulator.adapter_config().map_err(io::Error::other)?;
        let timeout_hold = http.request_timeout + Duration::from_secs(1);
        config.http = http;
        let client = AppleMusicClient::new(&config).map_err(io::Error::other)?;
        let provider = Arc::new(AppleMusicProvider::with_client(client.clone()));
        let auth: Arc<dyn ProviderAuth> = Arc::new(AppleMusicAuth::with_client(config, client));
        let token = emulator.issue_user_token(&user, Duration::from_secs(24 * 3600));
        let store = Arc::new(MemoryTokenStore::new());
        let tokens =
            TokenSet { access_token: SecretString::from(token), refresh_token: None, expires_at: None, scopes: vec![] };
        let connection = store
            .save(UserId::new_random(), provider.id(), &tokens)
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        let tokens: Arc<dyn TokenSource> = Arc::new(StoredTokenSource::new(store, auth, connection.id));
        Ok(Self { emulator, user, provider, tokens, timeout_hold })
    }

    /// The emulator.
    pub fn emulator(&self) -> &AppleMusicEmulator {
        &self.emulator
    }

    /// The adapter under test.
    pub fn apple_music(&self) -> &AppleMusicProvider {
        &self.provider
    }

    /// The test user's id at the emulator.
    pub fn user(&self) -> &str {
        &self.user
    }
}

#[async_trait]
impl Harness for AppleMusicHarness {
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
