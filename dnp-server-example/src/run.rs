//! Starting the server and worker processes from a [`Config`].

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::config::{Config, ConfigError};
use crate::db::Database;
use crate::state::{AppState, Backends, HealthCheck, Providers};

/// Why a process could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration variable is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(String),
    /// Another backend (KMS, Redis) failed to start.
    #[error("{0}")]
    Backend(String),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Connects to the database and applies every migration (the server's, the token
/// store's, the job queue's).
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn connect_and_migrate(config: &Config) -> Result<Database, StartError> {
    let db = Database::connect(config.database_url.expose_secret())
        .await
        .map_err(|e| StartError::Database(format!("cannot connect ({}): {e}", config.database_kind())))?;
    db.migrate_server().await.map_err(|e| StartError::Database(format!("migration failed: {e}")))?;
    Ok(db)
}

/// Builds the backends the configuration names: the key service, the encrypted token
/// store over the database, the job queue and the login rate limits (SQL, or Redis when
/// `REDIS_URL` is set); and applies the token store's and the SQL queue's migrations.
///
/// # Errors
/// When one cannot be started.
pub async fn backends(config: &Config, db: Database) -> Result<Backends, StartError> {
    let kms = config.kms.clone().build().map_err(|e| StartError::Backend(format!("key service: {e}")))?;
    let cache = dnp_vault::DataKeyCache::new(config.data_key_cache_size);
    let store = match &db {
        Database::Sqlite(pool) => dnp_vault::SqlTokenStore::sqlite(pool.clone(), kms.clone()),
        Database::Postgres(pool) => dnp_vault::SqlTokenStore::postgres(pool.clone(), kms.clone()),
    }
    .with_cache(cache);
    store.migrate().await.map_err(|e| StartError::Database(format!("token store migration failed: {e}")))?;
    let sql_pool: dnp_queue::SqlPool = match &db {
        Database::Sqlite(pool) => pool.clone().into(),
        Database::Postgres(pool) => pool.clone().into(),
    };
    let queue = config.queue.open(Some(sql_pool)).await.map_err(|e| StartError::Backend(format!("job queue: {e}")))?;
    queue.migrate().await.map_err(|e| StartError::Database(format!("job queue migration failed: {e}")))?;
    let redis_check: Option<Arc<dyn HealthCheck>> = match &config.queue.backend {
        dnp_queue::QueueBackend::Redis { url } => Some(Arc::new(
            RedisHealth::connect(url.expose_secret()).await.map_err(|e| StartError::Backend(format!("redis: {e}")))?,
        )),
        _ => None,
    };
    let login_limits = match &config.redis_url {
        Some(url) => crate::login_limit::LoginLimits::connect_redis(
            url.expose_secret(),
            crate::login_limit::DEFAULT_REDIS_PREFIX,
            config.login_rate_per_minute,
            crate::login_limit::WINDOW,
        )
        .await
        .map_err(|e| StartError::Backend(format!("redis (login limits): {e}")))?,
        None => {
            crate::login_limit::LoginLimits::sql(db.clone(), config.login_rate_per_minute, crate::login_limit::WINDOW)
        }
    };
    Ok(Backends {
        db,
        tokens: Arc::new(store),
        queue: queue.clone().into_shared(),
        kms: Some(kms),
        redis_check,
        queue_maintenance: Some(queue),
        login_limits: Arc::new(login_limits),
    })
}

/// Readiness and figures of the Redis the queue uses, over its own connection.
struct RedisHealth {
    conn: redis::aio::ConnectionManager,
}

impl std::fmt::Debug for RedisHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHealth").finish_non_exhaustive()
    }
}

impl RedisHealth {
    async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        Ok(Self { conn: redis::aio::ConnectionManager::new(client).await? })
    }
}

#[async_trait::async_trait]
impl HealthCheck for RedisHealth {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
        pong.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn gauges(&self) -> Vec<(String, f64)> {
        let mut conn = self.conn.clone();
        let started = std::time::Instant::now();
        let info: Result<String, _> = redis::cmd("INFO").arg("clients").query_async(&mut conn).await;
        let elapsed = started.elapsed().as_secs_f64();
        let Ok(info) = info else { return Vec::new() };
        let mut out = vec![("redis_round_trip_seconds".to_owned(), elapsed)];
        for line in info.lines() {
            if let Some((k, v)) = line.trim().split_once(':')
                && matches!(k, "connected_clients" | "blocked_clients")
                && let Ok(n) = v.parse::<f64>()
            {
                out.push((format!("redis_{k}"), n));
            }
        }
        out
    }
}

/// The providers the configuration enables.
///
/// # Errors
/// When a provider's settings are wrong.
pub fn providers_from_env(config: &Config) -> Result<Providers, StartError> {
    let mut providers = Providers::new();
    if let Some(c) = &config.providers.spotify {
        register_spotify(&mut providers, c.clone())?;
    }
    if let Some(c) = &config.providers.youtube_music {
        register_youtube_music(&mut providers, c.clone())?;
    }
    if let Some(c) = &config.providers.tidal {
        register_tidal(&mut providers, c.clone())?;
    }
    if let Some(c) = &config.providers.apple_music {
        register_apple_music(&mut providers, c.clone())?;
    }
    Ok(providers)
}

fn adapter_error(var: &str) -> impl Fn(dnp_providers::http::ConfigError) -> StartError + '_ {
    move |e| StartError::Config(ConfigError::new(var, e.to_string()))
}

/// Registers the Spotify adapter with `config`.
///
/// # Errors
/// When the adapter refuses the configuration.
pub fn register_spotify(
    providers: &mut Providers,
    config: dnp_providers::spotify::SpotifyConfig,
) -> Result<(), StartError> {
    use dnp_providers::spotify::{SpotifyAuth, SpotifyProvider};
    let auth = SpotifyAuth::new(config.clone()).map_err(adapter_error("SPOTIFY_CLIENT_ID"))?;
    let provider = SpotifyProvider::new(config).map_err(adapter_error("SPOTIFY_CLIENT_ID"))?;
    providers.register(Arc::new(provider), Arc::new(auth), "Spotify");
    Ok(())
}

/// Registers the YouTube Music adapter with `config`.
///
/// # Errors
/// When the adapter refuses the configuration.
pub fn register_youtube_music(
    providers: &mut Providers,
    config: dnp_providers::youtube_music::YouTubeMusicConfig,
) -> Result<(), StartError> {
    use dnp_providers::youtube_music::{YouTubeMusicAuth, YouTubeMusicProvider};
    let auth = YouTubeMusicAuth::new(config.clone()).map_err(adapter_error("YOUTUBE_CLIENT_ID"))?;
    let provider = YouTubeMusicProvider::new(config).map_err(adapter_error("YOUTUBE_CLIENT_ID"))?;
    providers.register(Arc::new(provider), Arc::new(auth), "YouTube Music");
    Ok(())
}

/// Registers the TIDAL adapter with `config`.
///
/// # Errors
/// When the adapter refuses the configuration.
pub fn register_tidal(providers: &mut Providers, config: dnp_providers::tidal::TidalConfig) -> Result<(), StartError> {
    use dnp_providers::tidal::{TidalAuth, TidalProvider};
    let auth = TidalAuth::new(config.clone()).map_err(adapter_error("TIDAL_CLIENT_ID"))?;
    let provider = TidalProvider::new(config).map_err(adapter_error("TIDAL_CLIENT_ID"))?;
    providers.register(Arc::new(provider), Arc::new(auth), "TIDAL");
    Ok(())
}

/// Registers the Apple Music adapter with `config`.
///
/// # Errors
/// When the adapter refuses the configuration.
pub fn register_apple_music(
    providers: &mut Providers,
    config: dnp_providers::apple_music::AppleMusicConfig,
) -> Result<(), StartError> {
    use dnp_providers::apple_music::{AppleMusicAuth, AppleMusicProvider};
    let auth = AppleMusicAuth::new(config.clone()).map_err(adapter_error("APPLE_MUSIC_TEAM_ID"))?;
    let provider = AppleMusicProvider::new(config).map_err(adapter_error("APPLE_MUSIC_TEAM_ID"))?;
    providers.register(Arc::new(provider), Arc::new(auth), "Apple Music");
    Ok(())
}

/// `dnp-server migrate`.
///
/// # Errors
/// When the database cannot be migrated.
pub async fn migrate(config: Config) -> Result<(), StartError> {
    let db = connect_and_migrate(&config).await?;
    let backends = backends(&config, db.clone()).await?;
    drop(backends);
    tracing::info!(database = db.kind(), "migrations applied");
    db.close().await;
    Ok(())
}

/// `dnp-server serve`.
///
/// # Errors
/// When a backend or the listener cannot start.
pub async fn serve(config: Config) -> Result<(), StartError> {
    crate::api::ops::install_metrics();
    let db = connect_and_migrate(&config).await?;
    let backends = backends(&config, db).await?;
    let providers = providers_from_env(&config)?;
    let state = AppState::new(config, backends, providers);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = state.config().run_worker_in_serve.then(|| {
        tracing::info!("running an embedded worker (RUN_WORKER)");
        let config = crate::worker::WorkerConfig::from_state(&state);
        tokio::spawn(crate::worker::run(state.clone(), config, stop_rx.clone()))
    });
    let result = serve_state(state.clone(), async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    })
    .await;
    if let Some(w) = worker {
        let _ = w.await;
    }
    state.db().close().await;
    result
}

/// `dnp-server worker`.
///
/// # Errors
/// When a backend cannot start.
pub async fn worker(config: Config) -> Result<(), StartError> {
    crate::api::ops::install_metrics();
    let db = connect_and_migrate(&config).await?;
    let backends = backends(&config, db).await?;
    let providers = providers_from_env(&config)?;
    let state = AppState::new(config, backends, providers);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let config = crate::worker::WorkerConfig::from_state(&state);
    let handle = tokio::spawn(crate::worker::run(state.clone(), config, stop_rx));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = handle.await;
    state.db().close().await;
    Ok(())
}

/// Serves `state` on its configured address until `shutdown` completes.
///
/// # Errors
/// When the listener cannot be bound.
pub async fn serve_state(
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let addr = state.config().bind_addr;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(state, listener, shutdown).await
}

/// Serves `state` on `listener` until `shutdown` completes.
///
/// # Errors
/// When serving fails.
pub async fn serve_listener(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, public_url = %state.config().public_base_url, "listening");
    let app = crate::api::router(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
