//! The conformance [`Harness`] over the example's emulator: seed, read back, inject faults.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dnp_core::conformance::{Harness, HarnessError, HarnessFault};
use dnp_core::memory::MemoryTokenStore;
use dnp_core::{LibrarySnapshot, Provider, ProviderAuth, StoredTokenSource, TokenSet, TokenSource, TokenStore, UserId};
use secrecy::SecretString;

use crate::deezer::{DeezerAuth, DeezerProvider};
use crate::emulator::Emulator;

/// How long the adapter waits for an answer; injected timeouts hold requests longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The example adapter against its emulator, with tokens in a [`StoredTokenSource`] (so an
/// expired access token is refreshed through [`DeezerAuth`], as in production).
pub(crate) struct DeezerHarness {
    pub(crate) emulator: Emulator,
    provider: Arc<DeezerProvider>,
    tokens: Arc<dyn TokenSource>,
}

impl DeezerHarness {
    /// Starts an emulator and connects the adapter to it.
    pub(crate) async fn start() -> Result<Self, Box<dyn std::error::Error>> {
        let emulator = Emulator::start().await?;
        let provider = Arc::new(DeezerProvider::new(emulator.base_url(), REQUEST_TIMEOUT)?);
        let auth: Arc<dyn ProviderAuth> = Arc::new(DeezerAuth::new(emulator.base_url()));
        let (access, refresh) = emulator.issue_tokens(Duration::from_secs(3600));
        let store = Arc::new(MemoryTokenStore::new());
        let tokens = TokenSet {
            access_token: SecretString::from(access),
            refresh_token: Some(SecretString::from(refresh)),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
            scopes: vec![],
        };
        let connection = store.save(UserId::new_random(), provider.id(), &tokens).await?;
        let tokens: Arc<dyn TokenSource> = Arc::new(StoredTokenSource::new(store, auth, connection.id));
        Ok(Self { emulator, provider, tokens })
    }
}

#[async_trait]
impl Harness for DeezerHarness {
    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    fn token_source(&self) -> Arc<dyn TokenSource> {
        self.tokens.clone()
    }

    async fn seed(&self, library: &LibrarySnapshot) -> Result<(), HarnessError> {
        self.emulator.seed(library);
        Ok(())
    }

    async fn state(&self) -> Result<LibrarySnapshot, HarnessError> {
        Ok(self.emulator.state(self.provider.id()))
    }

    async fn inject(&self, fault: HarnessFault) -> Result<(), HarnessError> {
        match fault {
            HarnessFault::RateLimit { calls, retry_after } => {
                self.emulator.rate_limit(calls, retry_after.as_secs().max(1))
            }
            HarnessFault::ServerError { calls } => self.emulator.server_errors(calls),
            HarnessFault::Timeout { calls } => {
                self.emulator.timeouts(calls, REQUEST_TIMEOUT + Duration::from_millis(500))
            }
            HarnessFault::Outage => self.emulator.outage(),
            HarnessFault::ClearFaults => self.emulator.clear_faults(),
            HarnessFault::ExpireAccessToken => self.emulator.expire_access_tokens(),
            HarnessFault::ChangePlaylist { playlist_id } => {
                self.emulator.change_playlist(&playlist_id).map_err(HarnessError::Failed)?
            }
            other => return Err(HarnessError::Unsupported(format!("fault {}", other.name()))),
        }
        Ok(())
    }
}
