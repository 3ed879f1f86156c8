//! [`QueueConfig`]: which backend, and the queue's knobs, from the environment.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dnp_core::{InputError, JobQueue, StoreError};
use secrecy::{ExposeSecret, SecretString};

/// Default of `JOB_LEASE_SECONDS`.
pub const DEFAULT_LEASE_SECONDS: u64 = 60;
/// Default of `JOB_MAX_ATTEMPTS`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default of `QUEUE_CLEANUP_BATCH`.
pub const DEFAULT_CLEANUP_BATCH: u32 = 100;

/// A configuration variable with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The variable is set to something that is not allowed. `value` is `None` for
    /// variables that may hold a secret (`REDIS_URL` carries the password).
    #[error("{variable}{}: {reason}", value.as_ref().map(|v| format!("={v:?}")).unwrap_or_default())]
    Invalid {
        /// The variable's name.
        variable: &'static str,
        /// The value, when it is not secret.
        value: Option<String>,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

/// Where the jobs live.
#[derive(Clone)]
#[non_exhaustive]
pub enum QueueBackend {
    /// The SQL database the server already uses (SQLite or PostgreSQL).
    Sql,
    /// Redis at this URL (it may hold a password: never printed).
    Redis {
        /// The URL.
        url: SecretString,
    },
}

impl fmt::Debug for QueueBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sql => f.write_str("Sql"),
            Self::Redis { .. } => f.debug_struct("Redis").finish_non_exhaustive(),
        }
    }
}

/// The queue's configuration.
///
/// | Variable              | Meaning                                                    | Default |
/// |-----------------------|------------------------------------------------------------|---------|
/// | `REDIS_URL`           | set (non-empty): jobs in Redis; unset: in the SQL database | unset   |
/// | `JOB_LEASE_SECONDS`   | a worker's lease on a job (1–86400); heartbeat well within | 60      |
/// | `JOB_MAX_ATTEMPTS`    | attempts before a job is dead (1–1000)                     | 5       |
/// | `QUEUE_CLEANUP_BATCH` | keys per `SCAN` step / rows per delete of cleanup (1–100000) | 100   |
///
/// ```
/// use dnp_queue::{QueueBackend, QueueConfig};
/// let config = QueueConfig::from_lookup(|name| match name {
///     "JOB_MAX_ATTEMPTS" => Some("3".to_owned()),
///     _ => None,
/// })?;
/// assert!(matches!(config.backend, QueueBackend::Sql));
/// assert_eq!(config.max_attempts, 3);
/// assert!(QueueConfig::from_lookup(|n| (n == "JOB_LEASE_SECONDS").then(|| "soon".to_owned())).is_err());
/// # Ok::<(), dnp_queue::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Redis or SQL.
    pub backend: QueueBackend,
    /// The lease workers take on a job (`JOB_LEASE_SECONDS`).
    pub lease: Duration,
    /// Attempts a job gets by default (`JOB_MAX_ATTEMPTS`): pass it to
    /// [`NewJob::with_max_attempts`](dnp_core::NewJob::with_max_attempts).
    pub max_attempts: u32,
    /// Batch size of cleanup (`QUEUE_CLEANUP_BATCH`).
    pub cleanup_batch: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: QueueBackend::Sql,
            lease: Duration::from_secs(DEFAULT_LEASE_SECONDS),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            cleanup_batch: DEFAULT_CLEANUP_BATCH,
        }
    }
}

fn number<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    range: std::ops::RangeInclusive<T>,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = lookup(variable) else {
        return Ok(default);
    };
    let invalid = |reason: String| ConfigError::Invalid { variable, value: Some(raw.clone()), reason };
    let value: T = raw.trim().parse().map_err(|_| invalid("not a whole number".to_owned()))?;
    if !range.contains(&value) {
        return Err(invalid(format!("must be between {} and {}", range.start(), range.end())));
    }
    Ok(value)
}

impl QueueConfig {
    /// Reads the variables of the table above from the process environment.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first variable with an unusable value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (for tests and other sources of settings).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first variable with an unusable value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let backend = match lookup("REDIS_URL").filter(|u| !u.trim().is_empty()) {
            None => QueueBackend::Sql,
            Some(url) => {
                let url = url.trim().to_owned();
                let scheme_ok =
                    ["redis://", "rediss://", "redis+unix://", "unix://"].iter().any(|s| url.starts_with(s));
                if !scheme_ok {
                    return Err(ConfigError::Invalid {
                        variable: "REDIS_URL",
                        value: None,
                        reason: "must start with redis://, rediss://, redis+unix:// or unix://".to_owned(),
                    });
                }
                QueueBackend::Redis { url: SecretString::from(url) }
            }
        };
        let lease = number(&lookup, "JOB_LEASE_SECONDS", 1..=86_400, DEFAULT_LEASE_SECONDS)?;
        Ok(Self {
            backend,
            lease: Duration::from_secs(lease),
            max_attempts: number(&lookup, "JOB_MAX_ATTEMPTS", 1..=1000, DEFAULT_MAX_ATTEMPTS)?,
            cleanup_batch: number(&lookup, "QUEUE_CLEANUP_BATCH", 1..=100_000, DEFAULT_CLEANUP_BATCH)?,
        })
    }

    /// Opens the configured queue. `sql` is the server's pool, used when `REDIS_URL` is
    /// unset (it may be `None` when Redis is configured). Does not run migrations: call
    /// [`Queue::migrate`].
    ///
    /// # Errors
    /// [`StoreError::Input`] when the SQL backend is chosen but no pool was given, or the
    /// configured backend was not built in (features `sqlite`/`postgres`, `redis`);
    /// [`StoreError::Backend`] when Redis cannot be reached.
    pub async fn open(&self, #[allow(unused_variables)] sql: Option<crate::SqlPool>) -> Result<Queue, StoreError> {
        match &self.backend {
            QueueBackend::Sql => {
                #[cfg(any(feature = "sqlite", feature = "postgres"))]
                {
                    let pool =
                        sql.ok_or_else(|| invalid("REDIS_URL", "unset, and no SQL pool was given to the queue"))?;
                    Ok(Queue::Sql(crate::SqlJobQueue::new(pool)))
                }
                #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
                Err(invalid("REDIS_URL", "unset, and dnp-queue was built without the `sqlite` and `postgres` features"))
            }
            #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
            QueueBackend::Redis { url } => {
                #[cfg(feature = "redis")]
                {
                    let options = crate::RedisQueueOptions::default().with_cleanup_batch(self.cleanup_batch);
                    Ok(Queue::Redis(crate::RedisJobQueue::connect(url.expose_secret(), options).await?))
                }
                #[cfg(not(feature = "redis"))]
                {
                    let _ = url.expose_secret();
                    Err(invalid("REDIS_URL", "set, but dnp-queue was built without the `redis` feature"))
                }
            }
        }
    }
}

fn invalid(field: &str, message: &str) -> StoreError {
    StoreError::Input(InputError::Invalid { field: field.to_owned(), message: message.to_owned() })
}

/// An opened queue: the backend [`QueueConfig::open`] chose.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Queue {
    /// SQLite or PostgreSQL.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    Sql(crate::SqlJobQueue),
    /// Redis.
    #[cfg(feature = "redis")]
    Redis(crate::RedisJobQueue),
}

impl Queue {
    /// The queue as the trait object the server and workers hold.
    pub fn into_shared(self) -> Arc<dyn JobQueue> {
        match self {
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            Self::Sql(q) => Arc::new(q),
            #[cfg(feature = "redis")]
            Self::Redis(q) => Arc::new(q),
        }
    }

    /// Creates the SQL table and indexes; nothing to do on Redis.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database refuses.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            Self::Sql(q) => q.migrate().await,
            #[cfg(feature = "redis")]
            Self::Redis(_) => Ok(()),
        }
    }

    /// Deletes finished jobs last changed before `older_than`, `batch` at a time (for
    /// Redis the batch is the configured `SCAN` count). Returns how many were deleted.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the backend fails.
    pub async fn cleanup(
        &self,
        older_than: DateTime<Utc>,
        #[allow(unused_variables)] batch: u32,
    ) -> Result<u64, StoreError> {
        match self {
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            Self::Sql(q) => q.cleanup(older_than, batch).await,
            #[cfg(feature = "redis")]
            Self::Redis(q) => q.cleanup(older_than).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_choose_sql() {
        let c = QueueConfig::from_lookup(env(&[])).unwrap();
        assert!(matches!(c.backend, QueueBackend::Sql));
        assert_eq!(c.lease, Duration::from_secs(60));
        assert_eq!((c.max_attempts, c.cleanup_batch), (5, 100));
    }

    #[test]
    fn redis_url_set_means_redis_and_is_never_printed() {
        let c = QueueConfig::from_lookup(env(&[("REDIS_URL", "redis://:hunter2@cache:6379/0")])).unwrap();
        assert!(matches!(c.backend, QueueBackend::Redis { .. }));
        assert!(!format!("{c:?}").contains("hunter2"));
        let empty = QueueConfig::from_lookup(env(&[("REDIS_URL", "  ")])).unwrap();
        assert!(matches!(empty.backend, QueueBackend::Sql), "an empty REDIS_URL counts as unset");
    }

    #[test]
    fn bad_redis_url_names_the_variable_without_its_value() {
        let err = QueueConfig::from_lookup(env(&[("REDIS_URL", "http://:hunter2@cache")])).unwrap_err();
        let ConfigError::Invalid { variable, value, .. } = &err;
        assert_eq!(*variable, "REDIS_URL");
        assert!(value.is_none());
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn each_number_names_its_variable() {
        for (var, bad) in [
            ("JOB_LEASE_SECONDS", "0"),
            ("JOB_LEASE_SECONDS", "sixty"),
            ("JOB_MAX_ATTEMPTS", "-1"),
            ("JOB_MAX_ATTEMPTS", "1001"),
            ("QUEUE_CLEANUP_BATCH", "0"),
            ("QUEUE_CLEANUP_BATCH", "1e3"),
        ] {
            let err = QueueConfig::from_lookup(env(&[(var, bad)])).unwrap_err();
            let ConfigError::Invalid { variable, value, .. } = &err;
            assert_eq!(*variable, var);
            assert_eq!(value.as_deref(), Some(bad));
            assert!(err.to_string().starts_with(var), "{err}");
        }
        let ok = QueueConfig::from_lookup(env(&[
            ("JOB_LEASE_SECONDS", "30"),
            ("JOB_MAX_ATTEMPTS", "7"),
            ("QUEUE_CLEANUP_BATCH", " 500 "),
        ]))
        .unwrap();
        assert_eq!((ok.lease, ok.max_attempts, ok.cleanup_batch), (Duration::from_secs(30), 7, 500));
    }

    #[tokio::test]
    async fn sql_backend_without_a_pool_is_a_typed_error() {
        let err = QueueConfig::default().open(None).await.unwrap_err();
        assert!(matches!(err, StoreError::Input(_)), "{err}");
    }
}
