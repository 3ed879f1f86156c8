//! [`EmulatorHarness`]: the conformance suite's [`Harness`] over a bundled emulator and the
//! adapter pointed at it. Each provider module builds its own (`SpotifyHarness::start`, ...);
//! what they share (seeding, the test user's tokens, fault mapping) is here.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dnp_core::conformance::{Harness, HarnessError, HarnessFault};
use dnp_core::memory::MemoryTokenStore;
use dnp_core::{LibrarySnapshot, Provider, ProviderAuth, StoredTokenSource, TokenSet, TokenSource, TokenStore, UserId};
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music"))]
use secrecy::SecretString;

use super::{EmulatorError, FaultInjector};
use crate::http::{BreakerConfig, HttpConfig};

/// The id of the user every harness seeds at its emulator and holds tokens for.
pub(crate) const CONFORMANCE_USER: &str = "conformance_user";

/// How long the access tokens the OAuth harnesses issue last.
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music"))]
pub(crate) const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// What the conformance harness drives an emulator through. Every bundled emulator
/// implements it with its own methods of the same names, documented there.
pub trait ConformanceEmulator: fmt::Debug + Send + Sync {
    /// Creates or replaces `user_id`'s library with `library`.
    fn seed_user(&self, user_id: &str, library: &LibrarySnapshot);

    /// `user_id`'s library as the emulator holds it now.
    fn library(&self, user_id: &str) -> LibrarySnapshot;

    /// The emulator's fault injector.
    fn faults(&self) -> &FaultInjector;

    /// Someone else edits `playlist_id`, one of `user_id`'s playlists; returns its new
    /// version.
    ///
    /// # Errors
    /// [`EmulatorError`] when the user, the playlist or a track to insert is missing.
    fn change_playlist(&self, user_id: &str, playlist_id: &str) -> Result<String, EmulatorError>;
}

/// The HTTP settings the harnesses give their adapters: the defaults with short waits, so
/// the suite runs in seconds (a 2 s request timeout, a breaker open for 1 s, 50 ms backoff).
pub(crate) fn short_wait_http_config() -> HttpConfig {
    HttpConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        breaker: BreakerConfig { open_for: Duration::from_secs(1), ..BreakerConfig::default() },
        ..HttpConfig::default()
    }
}

/// The [`TokenSet`] of an access and a refresh token an emulator issued for `ttl`, with
/// `scopes` granted.
///
/// # Errors
/// When `ttl` is too long to add to the current time.
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music"))]
pub(crate) fn issued_token_set(
    (access, refresh): (String, String),
    scopes: &[&str],
    ttl: Duration,
) -> io::Result<TokenSet> {
    let ttl = chrono::Duration::from_std(ttl).map_err(io::Error::other)?;
    Ok(TokenSet {
        access_token: SecretString::from(access),
        refresh_token: Some(SecretString::from(refresh)),
        expires_at: Some(chrono::Utc::now() + ttl),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    })
}

/// Runs the conformance suite's checks against an emulator `E`: the adapter under test is a
/// `P` pointed at it, the test user's tokens come from a [`StoredTokenSource`] that
/// refreshes through the adapter's [`ProviderAuth`] (so expiry and refresh are real), and
/// faults go to the emulator's [`FaultInjector`].
///
/// Each provider module names its own (`SpotifyHarness`, `TidalHarness`,
/// `YouTubeMusicHarness`, `AppleMusicHarness`): this type over its emulator and adapter,
/// with a `start` constructor.
pub struct EmulatorHarness<E, P> {
    emulator: E,
    provider: Arc<P>,
    tokens: Arc<dyn TokenSource>,
    timeout_hold: Duration,
}

impl<E: fmt::Debug, P> fmt::Debug for EmulatorHarness<E, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorHarness")
            .field("emulator", &self.emulator)
            .field("user", &CONFORMANCE_USER)
            .finish_non_exhaustive()
    }
}

impl<E: ConformanceEmulator, P: Provider + 'static> EmulatorHarness<E, P> {
    /// Seeds [`CONFORMANCE_USER`] with an empty library and saves `tokens` (issued to the
    /// user by `emulator`) as a connection to `provider`, read through a [`StoredTokenSource`]
    /// that refreshes with `auth`. `request_timeout` is the adapter's: an injected timeout
    /// holds requests a second longer.
    pub(crate) async fn new(
        emulator: E,
        provider: Arc<P>,
        auth: Arc<dyn ProviderAuth>,
        tokens: TokenSet,
        request_timeout: Duration,
    ) -> io::Result<Self> {
        emulator.seed_user(CONFORMANCE_USER, &LibrarySnapshot::empty(provider.id().clone()));
        let store = Arc::new(MemoryTokenStore::new());
        let connection = store
            .save(UserId::new_random(), provider.id(), &tokens)
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        let tokens: Arc<dyn TokenSource> = Arc::new(StoredTokenSource::new(store, auth, connection.id));
        Ok(Self { emulator, provider, tokens, timeout_hold: request_timeout + Duration::from_secs(1) })
    }

    /// The emulator.
    pub fn emulator(&self) -> &E {
        &self.emulator
    }

    /// The adapter under test (each provider's harness names it: `spotify()`, `tidal()`, ...).
    pub(crate) fn adapter(&self) -> &P {
        &self.provider
    }

    /// The test user's id at the emulator.
    pub fn user(&self) -> &str {
        CONFORMANCE_USER
    }
}

#[async_trait]
impl<E: ConformanceEmulator, P: Provider + 'static> Harness for EmulatorHarness<E, P> {
    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    fn token_source(&self) -> Arc<dyn TokenSource> {
        self.tokens.clone()
    }

    async fn seed(&self, library: &LibrarySnapshot) -> Result<(), HarnessError> {
        self.emulator.seed_user(CONFORMANCE_USER, library);
        Ok(())
    }

    async fn state(&self) -> Result<LibrarySnapshot, HarnessError> {
        Ok(self.emulator.library(CONFORMANCE_USER))
    }

    async fn inject(&self, fault: HarnessFault) -> Result<(), HarnessError> {
        let faults = self.emulator.faults();
        let failed = |e: super::FaultError| HarnessError::Failed(e.to_string());
        match fault {
            HarnessFault::RateLimit { calls, retry_after } => faults.rate_limit_next(calls, retry_after),
            HarnessFault::ServerError { calls } => faults.server_error_next(calls, 503).map_err(failed)?,
            HarnessFault::Timeout { calls } => faults.timeout_next(calls, self.timeout_hold),
            HarnessFault::Outage => faults.server_error_ratio(1.0, 503).map_err(failed)?,
            HarnessFault::ClearFaults => faults.clear(),
            HarnessFault::ExpireAccessToken => faults.expire_access_tokens_now(),
            HarnessFault::ChangePlaylist { playlist_id } => {
                self.emulator
                    .change_playlist(CONFORMANCE_USER, &playlist_id)
                    .map_err(|e| HarnessError::Failed(e.to_string()))?;
            }
            other => return Err(HarnessError::Unsupported(format!("fault {}", other.name()))),
        }
        Ok(())
    }
}
