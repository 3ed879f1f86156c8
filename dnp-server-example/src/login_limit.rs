//! Login rate limits shared by every server: attempts per account and per client address,
//! counted in Redis when `REDIS_URL` is set, else in the server's database, so that any
//! number of servers behind a load balancer give an attacker one quota, not one per server.
//!
//! # Behavior
//! - Each key (`acct:` and the SHA-256 of the normalized email address, never the address
//!   itself; `addr:` and the client address) has a fixed window that opens at its first
//!   attempt and lasts [`WINDOW`]. An account may make `LOGIN_RATE_PER_MINUTE` attempts in
//!   it, an address three times that (a household behind one NAT tries several accounts).
//! - Every attempt counts, refused ones too, until the window ends; the refusal is a 429
//!   with `Retry-After` the seconds left in the window (at least 1). Across a window's end a
//!   key can make at most twice its quota in a short time, however many servers there are.
//! - The address is checked first; an attempt the address limit refuses is not counted
//!   against the account (one address cannot lock out accounts at will).
//! - One atomic operation per key: a Lua script (both keys in one round trip) on Redis, an
//!   `INSERT … ON CONFLICT DO UPDATE … RETURNING` on SQLite or PostgreSQL.
//! - When the store fails or does not answer within [`STORE_TIMEOUT`], the check falls back to
//!   a limiter in this process with the same quotas (a warning is logged and
//!   `login_limit_store_errors_total` counted): logins keep working and are still limited,
//!   per server, until the store is back. See `docs/security.md`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::crypto::sha256_hex;
use crate::db::{Database, now_ms};
use crate::error::ApiError;
use crate::with_pool;

/// The length of a limit window: `LOGIN_RATE_PER_MINUTE` is per this.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The prefix of the limiter's Redis keys.
pub const DEFAULT_REDIS_PREFIX: &str = "dnp:login:";
/// How long a check waits for the store before it falls back to the in-process limiter.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// An address may make this many times the per-account quota.
pub const ADDRESS_FACTOR: u32 = 3;

/// Both keys in one round trip: KEYS[1] the address key, KEYS[2] the account key; ARGV[1]
/// and ARGV[2] their limits, ARGV[3] the window in milliseconds. Returns `{0, 0}` when
/// allowed, else `{i, ms}`: key `i` is spent for `ms` more milliseconds.
const CHECK_LUA: &str = r"
for i = 1, 2 do
  local n = redis.call('INCR', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  if n == 1 or ttl < 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
    ttl = tonumber(ARGV[3])
  end
  if n > tonumber(ARGV[i]) then
    return {i, ttl}
  end
end
return {0, 0}
";

/// One attempt counted in SQL: a new window when the key's has ended. `$1` the key, `$2` now,
/// `$3` now less the window (milliseconds).
const UPSERT_SQL: &str = "INSERT INTO login_attempts (limit_key, window_start, attempts) VALUES ($1, $2, 1) \
     ON CONFLICT (limit_key) DO UPDATE SET \
     attempts = CASE WHEN login_attempts.window_start > $3 THEN login_attempts.attempts + 1 ELSE 1 END, \
     window_start = CASE WHEN login_attempts.window_start > $3 THEN login_attempts.window_start ELSE $2 END \
     RETURNING window_start, attempts";

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The client address's.
    Address,
    /// The account's.
    Account,
}

/// An attempt refused: which limit, and how long until its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The limit that is spent.
    pub scope: Scope,
    /// When to try again (whole seconds, at least one).
    pub retry_after: Duration,
}

impl From<Limited> for ApiError {
    fn from(l: Limited) -> Self {
        Self::TooManyRequests { retry_after: l.retry_after }
    }
}

/// Why the shared store could not count an attempt.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The store did not answer within [`STORE_TIMEOUT`].
    #[error("no answer within {STORE_TIMEOUT:?}")]
    Timeout,
}

enum Store {
    Sql(Database),
    Redis { conn: redis::aio::ConnectionManager, prefix: String, script: redis::Script },
}

/// The login limits of a server: the shared store, and the in-process limiter used only
/// while the store fails.
pub struct LoginLimits {
    store: Store,
    account_limit: u32,
    address_limit: u32,
    window: Duration,
    fallback: Fallback,
}

impl std::fmt::Debug for LoginLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimits")
            .field("backend", &self.backend())
            .field("account_limit", &self.account_limit)
            .field("address_limit", &self.address_limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl LoginLimits {
    /// Limits counted in `db` (table `login_attempts`): `per_account` attempts per account
    /// and [`ADDRESS_FACTOR`] times that per address, in each `window`.
    pub fn sql(db: Database, per_account: u32, window: Duration) -> Self {
        Self::with_store(Store::Sql(db), per_account, window)
    }

    /// Limits counted in Redis over `conn`, keys under `prefix` (see [`LoginLimits::sql`]).
    pub fn redis(
        conn: redis::aio::ConnectionManager,
        prefix: impl Into<String>,
        per_account: u32,
        window: Duration,
    ) -> Self {
        let store = Store::Redis { conn, prefix: prefix.into(), script: redis::Script::new(CHECK_LUA) };
        Self::with_store(store, per_account, window)
    }

    /// Connects to the Redis at `url` (a connection that reconnects on its own, with
    /// [`STORE_TIMEOUT`] to connect and to answer) and counts there (see [`LoginLimits::redis`]).
    ///
    /// # Errors
    /// When the URL is malformed or the server cannot be reached.
    pub async fn connect_redis(
        url: &str,
        prefix: impl Into<String>,
        per_account: u32,
        window: Duration,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(STORE_TIMEOUT))
            .set_response_timeout(Some(STORE_TIMEOUT));
        let conn = redis::aio::ConnectionManager::new_with_config(client, config).await?;
        Ok(Self::redis(conn, prefix, per_account, window))
    }

    fn with_store(store: Store, per_account: u32, window: Duration) -> Self {
        let account_limit = per_account.max(1);
        let address_limit = account_limit.saturating_mul(ADDRESS_FACTOR);
        let window = window.max(Duration::from_millis(1));
        Self {
            store,
            account_limit,
            address_limit,
            window,
            fallback: Fallback::new(account_limit, address_limit, window),
        }
    }

    /// `redis` or the database's kind (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        match &self.store {
            Store::Sql(db) => db.kind(),
            Store::Redis { .. } => "redis",
        }
    }

    /// Counts a login attempt on the account `email` (normalized: trimmed, lowercase) from
    /// `address`.
    ///
    /// # Errors
    /// [`Limited`] when the address's or the account's limit is spent.
    pub async fn check(&self, email: &str, address: &str) -> Result<(), Limited> {
        let account = format!("acct:{}", sha256_hex(email));
        let address = format!("addr:{address}");
        match tokio::time::timeout(STORE_TIMEOUT, self.check_store(&address, &account)).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(e)) => self.store_failed(&e, &address, &account),
            Err(_) => self.store_failed(&StoreError::Timeout, &address, &account),
        }
    }

    fn store_failed(&self, e: &StoreError, address: &str, account: &str) -> Result<(), Limited> {
        tracing::warn!(backend = self.backend(), error = %e, "login limit store failed; limiting in this process");
        metrics::counter!("login_limit_store_errors_total", "backend" => self.backend()).increment(1);
        self.fallback.check(address, account)
    }

    async fn check_store(&self, address: &str, account: &str) -> Result<Result<(), Limited>, StoreError> {
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        match &self.store {
            Store::Redis { conn, prefix, script } => {
                let mut conn = conn.clone();
                let (which, ms): (i64, i64) = script
                    .key(format!("{prefix}{address}"))
                    .key(format!("{prefix}{account}"))
                    .arg(self.address_limit)
                    .arg(self.account_limit)
                    .arg(window_ms)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(match which {
                    0 => Ok(()),
                    1 => Err(self.limited(Scope::Address, ms)),
                    _ => Err(self.limited(Scope::Account, ms)),
                })
            }
            Store::Sql(db) => {
                for (scope, key, limit) in
                    [(Scope::Address, address, self.address_limit), (Scope::Account, account, self.account_limit)]
                {
                    let now = now_ms();
                    let (start, attempts): (i64, i64) = with_pool!(db, pool => {
                        sqlx::query_as(UPSERT_SQL)
                            .bind(key)
                            .bind(now)
                            .bind(now.saturating_sub(window_ms))
                            .fetch_one(pool)
                            .await
                    })?;
                    if attempts > i64::from(limit) {
                        return Ok(Err(self.limited(scope, start.saturating_add(window_ms).saturating_sub(now))));
                    }
                }
                Ok(Ok(()))
            }
        }
    }

    /// A refusal of `scope` whose window ends in `ms` milliseconds (whole seconds, rounded
    /// up, within 1 s ..= the window: a clock ahead of another server's stays bounded).
    fn limited(&self, scope: Scope, ms: i64) -> Limited {
        let window_secs = self.window.as_secs().max(1);
        let secs = u64::try_from(ms).unwrap_or(0).div_ceil(1000).clamp(1, window_secs.max(1));
        Limited { scope, retry_after: Duration::from_secs(secs) }
    }

    /// Forgets windows that have ended: the database's rows (Redis keys expire on their own)
    /// and the in-process fallback's state. Called periodically by the scheduler.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        self.fallback.prune();
        let Store::Sql(db) = &self.store else { return Ok(0) };
        let before = now_ms().saturating_sub(i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX));
        let removed = with_pool!(db, pool => {
            sqlx::query("DELETE FROM login_attempts WHERE window_start <= $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(removed)
    }
}

/// The in-process limiter used while the store fails: the same quotas, per server.
struct Fallback {
    per_account: Arc<DefaultKeyedRateLimiter<String>>,
    per_address: Arc<DefaultKeyedRateLimiter<String>>,
}

impl Fallback {
    fn new(account_limit: u32, address_limit: u32, window: Duration) -> Self {
        let quota = |n: u32| {
            let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            Quota::with_period(window / n.get()).unwrap_or_else(|| Quota::per_second(n)).allow_burst(n)
        };
        Self {
            per_account: Arc::new(RateLimiter::dashmap(quota(account_limit))),
            per_address: Arc::new(RateLimiter::dashmap(quota(address_limit))),
        }
    }

    fn check(&self, address: &str, account: &str) -> Result<(), Limited> {
        let clock = DefaultClock::default();
        for (scope, limiter, key) in
            [(Scope::Address, &self.per_address, address), (Scope::Account, &self.per_account, account)]
        {
            if let Err(not_until) = limiter.check_key(&key.to_owned()) {
                let wait = not_until.wait_time_from(clock.now());
                let secs = wait.as_millis().div_ceil(1000).max(1);
                return Err(Limited { scope, retry_after: Duration::from_secs(u64::try_from(secs).unwrap_or(1)) });
            }
        }
        Ok(())
    }

    fn prune(&self) {
        self.per_account.retain_recent();
        self.per_address.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite(per_account: u32, window: Duration) -> (LoginLimits, Database, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        db.migrate_server().await.unwrap();
        (LoginLimits::sql(db.clone(), per_account, window), db, dir)
    }

    #[tokio::test]
    async fn sql_counts_per_account_and_per_address() {
        let (limits, db, _dir) = sqlite(2, WINDOW).await;
        assert!(limits.check("a@example.org", "10.0.0.1").await.is_ok());
        assert!(limits.check("a@example.org", "10.0.0.2").await.is_ok());
        let refused = limits.check("a@example.org", "10.0.0.3").await.unwrap_err();
        assert_eq!(refused.scope, Scope::Account);
        assert!(refused.retry_after >= Duration::from_secs(59) && refused.retry_after <= WINDOW, "{refused:?}");
        // One address, several accounts: 3x the account quota, then the address is spent and
        // the next account's quota is left whole.
        for i in 0..6 {
            assert!(limits.check(&format!("u{i}@example.org"), "10.9.9.9").await.is_ok(), "attempt {i}");
        }
        let refused = limits.check("fresh@example.org", "10.9.9.9").await.unwrap_err();
        assert_eq!(refused.scope, Scope::Address);
        assert!(limits.check("fresh@example.org", "10.0.0.4").await.is_ok());
        assert!(limits.check("fresh@example.org", "10.0.0.5").await.is_ok());
        assert_eq!(limits.check("fresh@example.org", "10.0.0.6").await.unwrap_err().scope, Scope::Account);
        // Only hashed account keys are stored.
        let keys: Vec<(String,)> = with_pool!(&db, pool => {
            sqlx::query_as("SELECT limit_key FROM login_attempts").fetch_all(pool).await.unwrap()
        });
        assert!(keys.iter().all(|(k,)| !k.contains('@')), "{keys:?}");
        assert!(keys.iter().any(|(k,)| *k == format!("acct:{}", sha256_hex("a@example.org"))));
    }

    #[tokio::test]
    async fn sql_prune_removes_only_ended_windows() {
        let (limits, db, _dir) = sqlite(5, Duration::from_millis(300)).await;
        limits.check("old@example.org", "10.0.0.1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        limits.check("new@example.org", "10.0.0.2").await.unwrap();
        assert_eq!(limits.prune().await.unwrap(), 2, "the old account's and address's rows");
        let left: (i64,) = with_pool!(&db, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM login_attempts").fetch_one(pool).await.unwrap()
        });
        assert_eq!(left.0, 2);
    }

    #[tokio::test]
    async fn retry_after_is_whole_seconds_within_the_window() {
        let (limits, _db, _dir) = sqlite(1, WINDOW).await;
        assert_eq!(limits.limited(Scope::Account, 59_001).retry_after, Duration::from_secs(60));
        assert_eq!(limits.limited(Scope::Account, 1).retry_after, Duration::from_secs(1));
        assert_eq!(limits.limited(Scope::Account, 0).retry_after, Duration::from_secs(1));
        assert_eq!(limits.limited(Scope::Account, -5).retry_after, Duration::from_secs(1));
        // A server whose clock is behind the one that opened the window: never past the window.
        assert_eq!(limits.limited(Scope::Address, 3_600_000).retry_after, WINDOW);
    }

    #[tokio::test]
    async fn a_failing_store_falls_back_to_the_same_quota_in_process() {
        let (limits, db, _dir) = sqlite(2, WINDOW).await;
        with_pool!(&db, pool => sqlx::query("DROP TABLE login_attempts").execute(pool).await.map(|_| ()).unwrap());
        assert!(limits.check("a@example.org", "10.0.0.1").await.is_ok(), "fails open");
        assert!(limits.check("a@example.org", "10.0.0.1").await.is_ok());
        let refused = limits.check("a@example.org", "10.0.0.1").await.unwrap_err();
        assert_eq!(refused.scope, Scope::Account);
        assert!(refused.retry_after >= Duration::from_secs(1) && refused.retry_after <= WINDOW, "{refused:?}");
        assert!(limits.check("b@example.org", "10.0.0.1").await.is_ok(), "other accounts unaffected");
    }
}
