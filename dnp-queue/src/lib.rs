//! Durable job queue backends for dnp: [`SqlJobQueue`] (SQLite, PostgreSQL) and
//! [`RedisJobQueue`], both implementing dnp-core's [`JobQueue`](dnp_core::JobQueue).
//!
//! Everything slow in dnp runs as a job (library scans, enforcement batches, rollbacks,
//! token refreshes). Jobs must survive a crash of the process that runs them and spread
//! over any number of workers on any number of machines. This crate holds the backends on
//! their own, so that an embedder can use them without the reference server.
//!
//! # Quick start
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use dnp_core::{JobQueue, JobProgress, NewJob};
//! use dnp_queue::SqlJobQueue;
//!
//! let pool = sqlx::SqlitePool::connect("sqlite://dnp.db?mode=rwc").await?;
//! let queue = SqlJobQueue::sqlite(pool);
//! queue.migrate().await?;
//!
//! // Producer: the same idempotency key twice gives the same job.
//! let job = queue
//!     .enqueue(NewJob::new("library_scan", serde_json::json!({"connection": "c1"}))
//!         .with_idempotency_key("scan:c1:2026-11-26"))
//!     .await?;
//!
//! // Worker: lease, report progress, heartbeat, finish.
//! if let Some(lease) = queue.reserve("worker-1", Duration::from_secs(60)).await? {
//!     queue.progress(&lease, JobProgress { done: 1, total: Some(3), message: "liked tracks".into() }).await?;
//!     queue.heartbeat(&lease, Duration::from_secs(60)).await?;
//!     queue.complete(&lease).await?;
//! }
//! # let _ = job; Ok(()) }
//! ```
//!
//! The server picks the backend from its environment with [`QueueConfig::from_env`]:
//! `REDIS_URL` set means Redis, else the SQL database it already uses.
//!
//! # Implementations
//!
//! | Type                                   | Store                    | Reservation                              |
//! |----------------------------------------|--------------------------|------------------------------------------|
//! | [`SqlJobQueue`] over SQLite            | table `dnp_jobs`         | one `UPDATE … RETURNING` (write lock)    |
//! | [`SqlJobQueue`] over PostgreSQL        | table `dnp_jobs`         | `FOR UPDATE SKIP LOCKED` in one statement |
//! | [`RedisJobQueue`]                      | hashes and sorted sets   | one Lua script                           |
//! | [`MemoryJobQueue`](dnp_core::memory::MemoryJobQueue) (dnp-core) | process memory | a mutex                   |
//!
//! All of them pass the same test suite (`tests/suite/`): the whole contract, a worker
//! killed mid-job, 2 and 8 workers racing for one job and for many, 10,000 queued jobs
//! with one user's listing reading only that user's index.
//!
//! # Features
//!
//! | Feature    | Default | Gives                                                            |
//! |------------|---------|------------------------------------------------------------------|
//! | `sqlite`   | yes     | [`SqlJobQueue`] on SQLite (bundled `libsqlite3`, via sqlx)       |
//! | `postgres` | no      | [`SqlJobQueue`] on PostgreSQL (sqlx)                             |
//! | `redis`    | no      | [`RedisJobQueue`] (redis-rs, tokio, connection manager)          |
//!
//! # The lease protocol (every backend)
//!
//! - `reserve` takes the highest-priority job that is due (ties: earliest `run_at`, then
//!   oldest), counts an attempt, and writes a fresh random lease token and an expiry
//!   (`now + lease_for`) in the same atomic step: two workers can never hold one job.
//! - Every later call of the worker (`heartbeat`, `progress`, `complete`, `fail`,
//!   `cancelled`) carries the token and only changes the job if the token is still the
//!   current one and the job is still running; otherwise it is
//!   [`StoreError::LeaseLost`](dnp_core::StoreError::LeaseLost) and the worker must stop.
//! - A worker heartbeats well within its lease (a third of it is a good rhythm). When a
//!   worker dies, its lease runs out; the next `reserve` (by any worker) reclaims the job:
//!   it is queued again in its old place (same priority and `run_at`) and leased to someone
//!   else with a new token, so the dead worker's late calls are refused and the job
//!   completes once. (`MemoryJobQueue` keeps such a job `running` until it is re-leased;
//!   the SQL and Redis backends show it `queued` once reclaimed. On PostgreSQL a job
//!   reclaimed by one `reserve` is leased from the next call on.)
//! - A job whose lease runs out during its **last** attempt is marked dead instead (its
//!   `last_error` says so), so a job that crashes its worker every time cannot loop forever.
//!   (`MemoryJobQueue` re-leases it regardless.)
//! - `fail(retryable)` queues the job again at `now + Backoff::delay(attempt, jitter)` while
//!   attempts remain (the jitter comes from the lease token's random bits), else marks it
//!   dead. A cancelled job that fails is dead, not retried.
//! - Times are taken from the clock of the process making the call and stored as
//!   microseconds since the Unix epoch; keep workers' clocks in sync (NTP) and leases much
//!   longer than any skew.
//!
//! # The SQL backend
//!
//! One table, `dnp_jobs` (created by [`SqlJobQueue::migrate`], recorded in its own
//! migrations table [`MIGRATIONS_TABLE`] so it coexists with the vault's and the server's
//! migrations in one database):
//!
//! | Column                        | Meaning                                               |
//! |-------------------------------|-------------------------------------------------------|
//! | `id` (UUID / TEXT) primary key | the job id                                           |
//! | `kind`, `payload` (JSONB / TEXT), `owner` | type, input, the user                    |
//! | `status`                      | `queued`, `running`, `succeeded`, `dead`, `cancelled` |
//! | `priority`, `run_at_us`       | ordering and scheduling                               |
//! | `attempts`, `max_attempts`, `last_error` | retries                                    |
//! | `idempotency_key` UNIQUE      | enqueue is `INSERT … ON CONFLICT DO NOTHING`, then a read |
//! | `progress_done`, `progress_total`, `progress_message` | readable while the job runs   |
//! | `cancel_requested`, `worker`, `lease_token`, `lease_expires_us` | the lease           |
//! | `created_us`, `updated_us`    | microseconds since the Unix epoch                     |
//!
//! Indexes: `dnp_jobs_owner_created (owner, created_us, id)` serves
//! [`list_by_owner`](dnp_core::JobQueue::list_by_owner) as a backward index range scan
//! ([`SqlJobQueue::explain_list_by_owner`] shows the plan); partial indexes on queued jobs
//! by `(priority DESC, run_at_us, created_us)` and on running jobs by `lease_expires_us`
//! serve `reserve`; a partial index of queued and running jobs by `(kind, status)` serves
//! [`depth`](dnp_core::JobQueue::depth); a partial
//! index on finished jobs by `updated_us` serves [`SqlJobQueue::cleanup`].
//!
//! On PostgreSQL `reserve` is one statement: a CTE reclaims expired leases (at most 100
//! per call, rows taken `FOR UPDATE SKIP LOCKED`), and the best due queued job is picked
//! `FOR UPDATE SKIP LOCKED` and leased. Workers never wait for each other's row locks, and
//! the statement stays simple enough to plan in a fraction of a millisecond. On SQLite a
//! writing statement takes the database's write lock before it reads, so one
//! `UPDATE … WHERE id = (SELECT …) RETURNING` is atomic; expired leases are first looked
//! for with a plain read (no write lock) and reclaimed only when there are some. Open the
//! SQLite pool in WAL mode with a busy timeout.
//!
//! # The Redis backend
//!
//! Keys, all under the configured prefix `P` (default `dnp:queue:`):
//!
//! | Key                   | Type       | Holds                                                        |
//! |-----------------------|------------|--------------------------------------------------------------|
//! | `P job:{id}`          | hash       | the job's fields (as the SQL columns) and its ready-set member |
//! | `P ready`             | sorted set | due jobs; score `-priority`, member `{run_at:020}:{created:020}:{id}`, so equal scores sort by time |
//! | `P delayed`           | sorted set | jobs not yet due, scored by `run_at` (µs)                    |
//! | `P leased`            | sorted set | running jobs, scored by lease expiry (µs)                    |
//! | `P user:{user_id}:jobs` | sorted set | one user's jobs, scored by creation time (µs)              |
//! | `P idem:{key}`        | string     | the job id an idempotency key belongs to                     |
//! | `P depth:queued`, `P depth:running` | hash | counts per job type                              |
//!
//! Every change is one Lua script, so the hash, the sets and the counters change together.
//! `reserve` first moves due delayed jobs to the ready set, requeues expired leases (or
//! buries a lost last attempt), then pops the head of the ready set. `list_by_owner` is a
//! `ZREVRANGEBYSCORE` on the user's set and one `HGETALL` per listed job.
//! [`RedisJobQueue::cleanup`] walks the job hashes with `SCAN` (batch size configurable,
//! default 100) and deletes finished jobs older than the retention, with their index
//! entries. The `KEYS` command is never used (a test greps the sources).
//!
//! # Why this design
//!
//! - **Leases, not locks held for the job's duration.** A scan can take minutes; holding a
//!   database transaction or a Redis lock that long would not survive a crash or a network
//!   blip. A lease with a heartbeat is cheap to hold and expires by itself.
//! - **Tokens on every worker call.** Expiry alone cannot stop a slow (not dead) worker from
//!   completing a job someone else now runs; the token makes its late calls fail.
//! - **One statement / one script per transition.** No multi-round-trip transactions, so
//!   throughput is bounded by the store, not by latency, and nothing is half-applied.
//! - **An index per user.** The web UI lists a user's jobs on every page load; that must
//!   cost the same with ten jobs in the queue or ten million.

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "redis")))]
compile_error!("dnp-queue needs at least one backend: enable the `sqlite`, `postgres` or `redis` feature");

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

mod config;
mod pool;
mod record;
#[cfg(feature = "redis")]
mod redis_queue;

pub use config::{
    ConfigError, DEFAULT_CLEANUP_BATCH, DEFAULT_LEASE_SECONDS, DEFAULT_MAX_ATTEMPTS, Queue, QueueBackend, QueueConfig,
};
pub use pool::SqlPool;
#[cfg(feature = "redis")]
pub use redis_queue::{DEFAULT_PREFIX, RedisJobQueue, RedisQueueOptions};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::{MIGRATIONS_TABLE, SqlJobQueue};
