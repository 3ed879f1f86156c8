//! [`YouTubeMusicHarness`]: the conformance suite's [`Harness`] over the YouTube emulator.

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

use super::emulator::YouTubeMusicEmulator;
use super::{YouTubeMusicAuth, YouTubeMusicConfig, YouTubeMusicProvider};
use crate::emulator::EmulatorConfig;
use crate::http::{BreakerConfig, HttpConfig, RateLimit};

/// The HTTP settings the harness gives the adapter: the defaults with short waits, so the
/// suite runs in seconds (a 2 s request timeout, a breaker open for 1 s, 50 ms backoff),
/// and roomier token buckets (500 requests a second), since every YouTube write is a call
/// of its own and the suite sends about 1,500 of them.
pub fn test_http_config() -> HttpConfig {
    let rate = RateLimit { per_second: 500, burst: 100 };
    HttpConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        breaker: BreakerConfig { open_for: Duration::from_secs(1), ..BreakerConfig::default() },
        provider_rate: rate,
        connection_rate: rate,
        ..HttpConfig::default()
    }
}

/// Runs the conformance suite's checks against a [`YouTubeMusicEmulator`]: the adapter
/// under test is a [`YouTubeMusicProvider`] pointed at the emulator, its tokens come from a
/// [`StoredTokenSource`] that refreshes through [`YouTubeMusicAuth`] (so expiry and
/// Google's non-rotating refresh are real), and faults go to the emulator's fault injector.
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
pub struct YouTubeMusicHarness {
    emulator: YouTubeMusicEmulator,
    user: String,
    provider: Arc<YouTubeMusicProvider>,
    tokens: Arc<dyn TokenSource>,
    timeout_hold: Duration,
}

impl fmt::Debug for YouTubeMusicHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YouTubeMusicHarness")
            .field("emulator", &self.emulator)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

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
        let user = "conformance_user".to_owned();
        let provider_id = ProviderId::new(ProviderId::YOUTUBE_MUSIC).map_err(io::Error::other)?;
        emulator.seed_user(&user, &LibrarySnapshot::empty(provider_id));
        let redirect = "http://127.0.0.1:8888/callback";
        emulator.register_redirect_uri(redirect).map_err(io::Error::other)?;
        let mut config =
            YouTubeMusicConfig::new(emulator.client_id(), Some(SecretString::from(emulator.client_secret())), redirect)
                .and_then(|c| c.with_base_urls(emulator.api_base_url(), emulator.auth_base_url()))
                .map_err(io::Error::other)?;
        let timeout_hold = http.request_timeout + Duration::from_secs(1);
        config.http = http;
        config.daily_quota = daily_quota;
        let provider = Arc::new(YouTubeMusicProvider::new(config.clone()).map_err(io::Error::other)?);
        let auth: Arc<dyn ProviderAuth> = Arc::new(YouTubeMusicAuth::new(config).map_err(io::Error::other)?);

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
    pub fn emulator(&self) -> &YouTubeMusicEmulator {
        &self.emulator
    }

    /// The adapter under test.
    pub fn youtube(&self) -> &YouTubeMusicProvider {
        &self.provider
    }

    /// The test user's id at the emulator.
    pub fn user(&self) -> &str {
        &self.user
    }
}

#[async_trait]
impl Harness for YouTubeMusicHarness {
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
