//! The database: one [`Database`] over a SQLite or PostgreSQL pool, and the server's
//! migrations.
//!
//! The server's tables live beside dnp-vault's token tables and dnp-queue's job tables in
//! the same database. Each crate keeps its own migration history table, so their version
//! numbers never collide: the server's is `_dnp_server_migrations`, versions from 3001.
//!
//! Every query is written once in SQL both engines accept (`$1` placeholders, `TEXT`,
//! `BIGINT`, `BOOLEAN`, `ON CONFLICT`, `RETURNING`) and compiled for each pool by
//! [`with_pool!`](crate::with_pool). Instants are stored as `BIGINT` milliseconds since the
//! Unix epoch so that ordering and comparisons are the same in both engines.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, SqlSafeStr};

/// A connection pool to the server's database.
#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded default.
    Sqlite(SqlitePool),
    /// At scale.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of `$db`: the body is written once
/// and compiled for SQLite and for PostgreSQL.
#[macro_export]
#[doc(hidden)]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite($pool) => $body,
            $crate::db::Database::Postgres($pool) => $body,
        }
    };
}

/// The name of the server's migration history table.
pub const MIGRATIONS_TABLE: &str = "_dnp_server_migrations";

const SCHEMA_V1: &str = include_str!("../migrations/3001_initial.sql");
const SCHEMA_V2: &str = include_str!("../migrations/3002_login_attempts.sql");
const SCHEMA_V3: &str = include_str!("../migrations/3003_oauth_state_binding.sql");
const SCHEMA_V4: &str = include_str!("../migrations/3004_user_display_name.sql");

impl Database {
    /// Connects to `url` (`sqlite:…` or `postgres://…`). A SQLite file and its directory
    /// are created when missing; SQLite runs in WAL mode with foreign keys on.
    ///
    /// # Errors
    /// When the URL does not parse or the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(15))
                .foreign_keys(true);
            let path = options.get_filename();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
            let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
            Ok(Self::Sqlite(pool))
        } else {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(20)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Self::Postgres(pool))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The server's migrator (its own history table).
    pub fn migrator() -> Migrator {
        let migrations = vec![
            Migration::new(
                3001,
                "server initial schema".into(),
                MigrationType::Simple,
                AssertSqlSafe(SCHEMA_V1).into_sql_str(),
                false,
            ),
            Migration::new(
                3002,
                "shared login rate limits".into(),
                MigrationType::Simple,
                AssertSqlSafe(SCHEMA_V2).into_sql_str(),
                false,
            ),
            Migration::new(
                3003,
                "sign-in states bound to the browser".into(),
                MigrationType::Simple,
                AssertSqlSafe(SCHEMA_V3).into_sql_str(),
                false,
            ),
            Migration::new(
                3004,
                "display names from identity providers".into(),
                MigrationType::Simple,
                AssertSqlSafe(SCHEMA_V4).into_sql_str(),
                false,
            ),
        ];
        let mut migrator = Migrator::with_migrations(migrations);
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        // The vault's and the queue's migrations are recorded in their own tables.
        migrator.set_ignore_missing(true);
        migrator
    }

    /// Applies the server's migrations (idempotent).
    ///
    /// # Errors
    /// When a migration fails or the history does not match.
    pub async fn migrate_server(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let migrator = Self::migrator();
        match self {
            Self::Sqlite(pool) => migrator.run(pool).await,
            Self::Postgres(pool) => migrator.run(pool).await,
        }
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    /// Open and idle connections of the pool.
    pub fn pool_stats(&self) -> (u32, usize) {
        with_pool!(self, pool => (pool.size(), pool.num_idle()))
    }

    /// Closes the pool.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// Milliseconds since the epoch.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant `ms` milliseconds after the epoch.
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    ms(Utc::now())
}
