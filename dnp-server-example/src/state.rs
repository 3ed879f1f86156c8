//! The shared state of a server or worker process, and the registry of providers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dnp_core::{JobQueue, KmsProvider, Provider, ProviderAuth, ProviderId, TokenStore, UserId};

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::crypto::Sealer;
use crate::db::Database;
use crate::error::ApiError;
use crate::login_limit::LoginLimits;

/// One registered music service: its adapter, its OAuth client and a display name.
#[derive(Clone)]
pub struct ProviderEntry {
    /// The adapter.
    pub provider: Arc<dyn Provider>,
    /// Its OAuth client.
    pub auth: Arc<dyn ProviderAuth>,
    /// The name people see ("Spotify").
    pub display_name: String,
}

impl fmt::Debug for ProviderEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderEntry").field("id", self.provider.id()).field("name", &self.display_name).finish()
    }
}

/// The music services this server offers, by id. Adding a service is one more
/// [`Providers::register`].
#[derive(Debug, Clone, Default)]
pub struct Providers {
    entries: BTreeMap<ProviderId, ProviderEntry>,
}

impl Providers {
    /// No providers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `provider` with its OAuth client, replacing one of the same id.
    pub fn register(
        &mut self,
        provider: Arc<dyn Provider>,
        auth: Arc<dyn ProviderAuth>,
        display_name: impl Into<String>,
    ) {
        let id = provider.id().clone();
        self.entries.insert(id, ProviderEntry { provider, auth, display_name: display_name.into() });
    }

    /// The provider `id`.
    ///
    /// # Errors
    /// 404 `unknown_provider` when none is registered under `id`.
    pub fn get(&self, id: &str) -> Result<&ProviderEntry, ApiError> {
        self.entries.iter().find(|(k, _)| k.as_str() == id).map(|(_, v)| v).ok_or_else(|| {
            ApiError::not_found(
                "unknown_provider",
                format!("no provider {:?} is configured on this server", id.chars().take(64).collect::<String>()),
            )
        })
    }

    /// The registered ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &ProviderId> {
        self.entries.keys()
    }

    /// Every entry, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&ProviderId, &ProviderEntry)> {
        self.entries.iter()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The storage and service backends a process runs on.
#[derive(Clone)]
pub struct Backends {
    /// The database.
    pub db: Database,
    /// Encrypted token storage.
    pub tokens: Arc<dyn TokenStore>,
    /// The job queue.
    pub queue: Arc<dyn JobQueue>,
    /// The key service, checked by `/ready`.
    pub kms: Option<Arc<dyn KmsProvider>>,
    /// A readiness check of Redis, when the queue uses it.
    pub redis_check: Option<Arc<dyn HealthCheck>>,
    /// The concrete queue, for periodic cleanup of finished jobs (none for test doubles).
    pub queue_maintenance: Option<dnp_queue::Queue>,
    /// Login rate limits, shared by every server (Redis when `REDIS_URL` is set, else the database).
    pub login_limits: Arc<LoginLimits>,
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backends")
            .field("db", &self.db.kind())
            .field("tokens", &self.tokens)
            .field("queue", &self.queue)
            .field("kms", &self.kms.as_ref().map(|k| k.name().to_owned()))
            .field("login_limits", &self.login_limits.backend())
            .finish()
    }
}

/// A dependency `/ready` checks and `/metrics` describes (Redis).
#[async_trait::async_trait]
pub trait HealthCheck: Send + Sync + fmt::Debug {
    /// The dependency's name.
    fn name(&self) -> &str;
    /// Whether it answers.
    async fn check(&self) -> Result<(), String>;
    /// Gauges to export on `/metrics` (name, value), measured when called.
    async fn gauges(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
}

/// The state every handler and job shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) backends: Backends,
    pub(crate) providers: Providers,
    pub(crate) jwt: JwtKeys,
    pub(crate) sealer: Sealer,
    pub(crate) limiter: Arc<LoginLimits>,
    pub(crate) live_sessions: crate::live_sessions::LiveSessions,
    pub(crate) summary_cache: Mutex<HashMap<UserId, (Instant, serde_json::Value)>>,
    pub(crate) mailer: Option<crate::mail::Mailer>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.0.config)
            .field("backends", &self.0.backends)
            .field("providers", &self.0.providers)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `backends` with `providers`.
    pub fn new(config: Config, backends: Backends, providers: Providers) -> Self {
        let jwt = JwtKeys::new(&config.session_secret, config.session_secret_previous.as_ref());
        let sealer = Sealer::new(&config.session_secret, config.session_secret_previous.as_ref());
        let limiter = backends.login_limits.clone();
        let mailer = crate::mail::Mailer::from_config(&config);
        let live_sessions = crate::live_sessions::LiveSessions::new(config.session_check_cache);
        Self(Arc::new(Inner {
            config,
            backends,
            providers,
            jwt,
            sealer,
            limiter,
            live_sessions,
            summary_cache: Mutex::new(HashMap::new()),
            mailer,
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.0.backends.db
    }

    /// The token store.
    pub fn tokens(&self) -> &Arc<dyn TokenStore> {
        &self.0.backends.tokens
    }

    /// The job queue.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.0.backends.queue
    }

    /// The providers.
    pub fn providers(&self) -> &Providers {
        &self.0.providers
    }

    /// The email sender, when SMTP is configured.
    pub(crate) fn mailer(&self) -> Option<&crate::mail::Mailer> {
        self.0.mailer.as_ref()
    }

    pub(crate) fn backends(&self) -> &Backends {
        &self.0.backends
    }

    /// Forgets the cached analytics summary of `user` (their data changed).
    pub(crate) fn invalidate_summary(&self, user: UserId) {
        self.0.summary_cache.lock().unwrap_or_else(|e| e.into_inner()).remove(&user);
    }
}
