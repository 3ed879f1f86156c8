//! [`SqlJobQueue`]: the job queue in one SQL table, on SQLite or PostgreSQL.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dnp_core::{Backoff, Heartbeat, Job, JobId, JobProgress, JobQueue, Lease, NewJob, QueueDepth, StoreError, UserId};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Row, SqlSafeStr};
use uuid::Uuid;

use crate::SqlPool;
use crate::record::{LEASE_EXPIRED_ON_LAST_ATTEMPT, RawJob, corrupt, dur_us, jitter, now_us, parse_status, to_us};

/// The table that records which of this crate's migrations ran. Its own table, so the
/// queue's migrations never collide with those of the vault or the server in the same
/// database.
pub const MIGRATIONS_TABLE: &str = "_dnp_queue_migrations";

/// A [`JobQueue`] in the table `dnp_jobs` of a SQLite or PostgreSQL database.
///
/// See the [crate documentation](crate#the-sql-backend) for the table, its indexes and
/// how reservation stays exactly-once. Create the table with [`migrate`](Self::migrate).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use dnp_core::{JobQueue, NewJob};
/// use dnp_queue::SqlJobQueue;
///
/// let pool = sqlx::SqlitePool::connect("sqlite://dnp.db?mode=rwc").await?;
/// let queue = SqlJobQueue::sqlite(pool);
/// queue.migrate().await?;
/// queue.enqueue(NewJob::new("library_scan", serde_json::json!({"connection": "c1"}))).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqlJobQueue {
    pool: SqlPool,
    backoff: Backoff,
}

// ---------------------------------------------------------------------------------------
// SQL text. Times are BIGINT microseconds since the Unix epoch in both databases.

#[cfg(feature = "sqlite")]
const SQLITE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS dnp_jobs (
    id               TEXT    PRIMARY KEY NOT NULL,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    owner            TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'dead', 'cancelled')),
    priority         INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at_us        INTEGER NOT NULL,
    idempotency_key  TEXT    UNIQUE,
    progress_done    INTEGER,
    progress_total   INTEGER,
    progress_message TEXT,
    last_error       TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker           TEXT,
    lease_token      TEXT,
    lease_expires_us INTEGER,
    created_us       INTEGER NOT NULL,
    updated_us       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dnp_jobs_owner_created ON dnp_jobs (owner, created_us, id);
CREATE INDEX IF NOT EXISTS dnp_jobs_ready ON dnp_jobs (priority DESC, run_at_us, created_us) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS dnp_jobs_leased ON dnp_jobs (lease_expires_us) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS dnp_jobs_status_kind ON dnp_jobs (status, kind);
CREATE INDEX IF NOT EXISTS dnp_jobs_finished ON dnp_jobs (updated_us) WHERE status IN ('succeeded', 'dead', 'cancelled');
"#;

/// Migration 2 (both databases): `(status, kind)` indexed every finished job and drew the
/// planner to it for `status = 'running'` lookups, a scan of all running jobs on every
/// `reserve`. Depth now reads a partial index of the active jobs only, and expired-lease
/// lookups use `dnp_jobs_leased`.
const ACTIVE_KIND_INDEX: &str = r#"
DROP INDEX IF EXISTS dnp_jobs_status_kind;
CREATE INDEX IF NOT EXISTS dnp_jobs_active_kind ON dnp_jobs (kind, status) WHERE status IN ('queued', 'running');
"#;

#[cfg(feature = "postgres")]
const POSTGRES_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS dnp_jobs (
    id               UUID    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    payload          JSONB   NOT NULL,
    owner            UUID,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'dead', 'cancelled')),
    priority         BIGINT  NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    max_attempts     BIGINT  NOT NULL,
    run_at_us        BIGINT  NOT NULL,
    idempotency_key  TEXT    UNIQUE,
    progress_done    BIGINT,
    progress_total   BIGINT,
    progress_message TEXT,
    last_error       TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    worker           TEXT,
    lease_token      UUID,
    lease_expires_us BIGINT,
    created_us       BIGINT  NOT NULL,
    updated_us       BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS dnp_jobs_owner_created ON dnp_jobs (owner, created_us, id);
CREATE INDEX IF NOT EXISTS dnp_jobs_ready ON dnp_jobs (priority DESC, run_at_us, created_us) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS dnp_jobs_leased ON dnp_jobs (lease_expires_us) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS dnp_jobs_status_kind ON dnp_jobs (status, kind);
CREATE INDEX IF NOT EXISTS dnp_jobs_finished ON dnp_jobs (updated_us) WHERE status IN ('succeeded', 'dead', 'cancelled');
"#;

/// The columns [`raw_from_row`] reads, in order.
#[cfg(feature = "sqlite")]
macro_rules! sqlite_cols {
    () => {
        "id, kind, payload, owner, status, priority, attempts, max_attempts, run_at_us, idempotency_key, \
         progress_done, progress_total, progress_message, last_error, cancel_requested, worker, \
         lease_expires_us, created_us, updated_us"
    };
}

#[cfg(feature = "postgres")]
macro_rules! pg_cols {
    () => {
        "j.id::text, j.kind, j.payload::text, j.owner::text, j.status, j.priority, j.attempts, j.max_attempts, \
         j.run_at_us, j.idempotency_key, j.progress_done, j.progress_total, j.progress_message, j.last_error, \
         j.cancel_requested, j.worker, j.lease_expires_us, j.created_us, j.updated_us"
    };
}

#[cfg(feature = "sqlite")]
macro_rules! sqlite_list_sql {
    () => {
        concat!(
            "SELECT ",
            sqlite_cols!(),
            " FROM dnp_jobs WHERE owner = $1 AND created_us < $2 ORDER BY created_us DESC, id DESC LIMIT $3"
        )
    };
}

#[cfg(feature = "postgres")]
macro_rules! pg_list_sql {
    () => {
        concat!(
            "SELECT ",
            pg_cols!(),
            " FROM dnp_jobs j WHERE j.owner = $1::uuid AND j.created_us < $2 ORDER BY j.created_us DESC, j.id DESC LIMIT $3"
        )
    };
}

struct Sql {
    #[cfg(feature = "sqlite")]
    sqlite: &'static str,
    #[cfg(feature = "postgres")]
    postgres: &'static str,
}

const INSERT: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: concat!(
        "INSERT INTO dnp_jobs (id, kind, payload, owner, status, priority, attempts, max_attempts, run_at_us, \
         idempotency_key, cancel_requested, created_us, updated_us) \
         VALUES ($1, $2, $3, $4, 'queued', $5, 0, $6, $7, $8, 0, $9, $9) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
        sqlite_cols!()
    ),
    #[cfg(feature = "postgres")]
    postgres: concat!(
        "INSERT INTO dnp_jobs AS j (id, kind, payload, owner, status, priority, attempts, max_attempts, run_at_us, \
         idempotency_key, cancel_requested, created_us, updated_us) \
         VALUES ($1::uuid, $2, $3::jsonb, $4::uuid, 'queued', $5, 0, $6, $7, $8, FALSE, $9, $9) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
        pg_cols!()
    ),
};

/// The head of `enqueue_many`'s multi-row insert; rows follow ([`insert_many_sql`]).
const INSERT_MANY_HEAD: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: "INSERT INTO dnp_jobs (id, kind, payload, owner, status, priority, attempts, max_attempts, run_at_us, \
             idempotency_key, cancel_requested, created_us, updated_us) VALUES ",
    #[cfg(feature = "postgres")]
    postgres: "INSERT INTO dnp_jobs AS j (id, kind, payload, owner, status, priority, attempts, max_attempts, \
               run_at_us, idempotency_key, cancel_requested, created_us, updated_us) VALUES ",
};

const INSERT_MANY_TAIL: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: concat!(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING ", sqlite_cols!()),
    #[cfg(feature = "postgres")]
    postgres: concat!(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING ", pg_cols!()),
};

/// Binds per row of `enqueue_many`'s insert.
const BINDS_PER_ROW: usize = 9;

/// Rows per insert statement: 4,500 binds, well within SQLite's 32,766 and PostgreSQL's 65,535.
const ENQUEUE_CHUNK: usize = 500;

/// `head`, `rows` value tuples of [`BINDS_PER_ROW`] binds each, `tail`.
fn insert_many_sql(head: &str, tail: &str, rows: usize, postgres: bool) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * 100);
    sql.push_str(head);
    for r in 0..rows {
        let b = r * BINDS_PER_ROW;
        let [id, kind, payload, owner, prio, max, run_at, key, now] = std::array::from_fn(|i| b + i + 1);
        if r > 0 {
            sql.push_str(", ");
        }
        let row = if postgres {
            format!(
                "(${id}::uuid, ${kind}, ${payload}::jsonb, ${owner}::uuid, 'queued', ${prio}, 0, ${max}, ${run_at}, \
                 ${key}, FALSE, ${now}, ${now})"
            )
        } else {
            format!(
                "(${id}, ${kind}, ${payload}, ${owner}, 'queued', ${prio}, 0, ${max}, ${run_at}, ${key}, 0, ${now}, ${now})"
            )
        };
        sql.push_str(&row);
    }
    sql.push_str(tail);
    sql
}

/// A job of `enqueue_many`, ready to bind.
struct InsertRow {
    id: String,
    kind: String,
    payload: String,
    owner: Option<String>,
    priority: i64,
    max_attempts: i64,
    run_at: i64,
    key: Option<String>,
    now: i64,
}

/// Where `enqueue_many`'s output `i` comes from.
enum Slot {
    /// Row `n` of the insert.
    Row(usize),
    /// The same job as output `n` (a key repeated in the batch).
    SameAs(usize),
}

/// Runs `enqueue_many`'s inserts and key lookups on the transaction `$tx`, in the dialect
/// `$dialect` of the [`Sql`] constants, and yields the inserted rows by id and the jobs
/// already stored under a key of the batch, by key.
macro_rules! enqueue_many_in_tx {
    ($tx:ident, $dialect:ident, $postgres:expr, $rows:expr) => {{
        let mut inserted: std::collections::HashMap<String, Job> = std::collections::HashMap::new();
        for chunk in $rows.chunks(ENQUEUE_CHUNK) {
            let sql = insert_many_sql(INSERT_MANY_HEAD.$dialect, INSERT_MANY_TAIL.$dialect, chunk.len(), $postgres);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(&r.id)
                    .bind(&r.kind)
                    .bind(&r.payload)
                    .bind(&r.owner)
                    .bind(r.priority)
                    .bind(r.max_attempts)
                    .bind(r.run_at)
                    .bind(&r.key)
                    .bind(r.now);
            }
            for row in q.fetch_all(&mut *$tx).await.map_err(be)? {
                let job = raw_from_row(&row)?.into_job()?;
                inserted.insert(job.id.to_string(), job);
            }
        }
        let mut existing: std::collections::HashMap<String, Job> = std::collections::HashMap::new();
        for r in $rows.iter().filter(|r| !inserted.contains_key(&r.id)) {
            let Some(key) = &r.key else {
                return Err(StoreError::Conflict { what: format!("job id {} already exists", r.id) });
            };
            let row = sqlx::query(BY_KEY.$dialect).bind(key).fetch_optional(&mut *$tx).await.map_err(be)?;
            // Deleted (cleanup) between the insert and the lookup: the caller may try again.
            let Some(row) = row else {
                return Err(StoreError::Conflict { what: "idempotency key kept changing hands".to_owned() });
            };
            existing.insert(key.clone(), raw_from_row(&row)?.into_job()?);
        }
        $tx.commit().await.map_err(be)?;
        (inserted, existing)
    }};
}

const BY_KEY: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: concat!("SELECT ", sqlite_cols!(), " FROM dnp_jobs WHERE idempotency_key = $1"),
    #[cfg(feature = "postgres")]
    postgres: concat!("SELECT ", pg_cols!(), " FROM dnp_jobs j WHERE j.idempotency_key = $1"),
};

const GET: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: concat!("SELECT ", sqlite_cols!(), " FROM dnp_jobs WHERE id = $1"),
    #[cfg(feature = "postgres")]
    postgres: concat!("SELECT ", pg_cols!(), " FROM dnp_jobs j WHERE j.id = $1::uuid"),
};

/// Expired leases (dead workers) go back to the queue, or to dead after the last attempt.
/// Binds: $1 now, $2 message for lost last attempts, $3 batch.
#[cfg(feature = "sqlite")]
macro_rules! sqlite_reclaim_sql {
    () => {
        "UPDATE dnp_jobs SET \
           status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
           last_error = CASE WHEN attempts >= max_attempts THEN $2 ELSE last_error END, \
           worker = NULL, lease_token = NULL, lease_expires_us = NULL, updated_us = $1 \
         WHERE id IN (SELECT id FROM dnp_jobs WHERE status = 'running' AND lease_expires_us <= $1 LIMIT $3)"
    };
}

/// On SQLite a writing statement takes the database's write lock before it reads, so
/// this one UPDATE picks and leases its job atomically. Binds: $1 now, $2 worker,
/// $3 token, $4 lease expiry.
#[cfg(feature = "sqlite")]
macro_rules! sqlite_reserve_sql {
    () => {
        concat!(
            "UPDATE dnp_jobs SET status = 'running', attempts = attempts + 1, worker = $2, lease_token = $3, \
             lease_expires_us = $4, updated_us = $1 \
             WHERE id = (SELECT id FROM dnp_jobs WHERE status = 'queued' AND run_at_us <= $1 \
                 ORDER BY priority DESC, run_at_us, created_us LIMIT 1) \
             AND status = 'queued' RETURNING ",
            sqlite_cols!()
        )
    };
}

/// One statement: expired leases are reclaimed (queued again, or dead after the last
/// attempt) in a CTE, and the best due queued job is leased, each row taken with
/// `FOR UPDATE SKIP LOCKED` so workers never wait for each other. A reclaimed job is
/// leased from the next call on (the CTE's changes are not visible to its own statement).
/// Binds: $1 now, $2 worker, $3 token, $4 lease expiry, $5 message, $6 reclaim batch.
#[cfg(feature = "postgres")]
macro_rules! pg_reserve_sql {
    () => {
        concat!(
            "WITH reclaimed AS ( \
               UPDATE dnp_jobs SET \
                 status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                 last_error = CASE WHEN attempts >= max_attempts THEN $5 ELSE last_error END, \
                 worker = NULL, lease_token = NULL, lease_expires_us = NULL, updated_us = $1 \
               WHERE id IN (SELECT id FROM dnp_jobs WHERE status = 'running' AND lease_expires_us <= $1 \
                            LIMIT $6 FOR UPDATE SKIP LOCKED) \
               RETURNING id) \
             UPDATE dnp_jobs j SET status = 'running', attempts = j.attempts + 1, worker = $2, \
               lease_token = $3::uuid, lease_expires_us = $4, updated_us = $1 \
             WHERE j.id = (SELECT id FROM dnp_jobs WHERE status = 'queued' AND run_at_us <= $1 \
                           ORDER BY priority DESC, run_at_us, created_us LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING ",
            pg_cols!()
        )
    };
}

/// Expired leases reclaimed per `reserve` call at most.
const RECLAIM_BATCH: i64 = 100;

#[cfg(feature = "sqlite")]
const SQLITE_RECLAIM: &str = sqlite_reclaim_sql!();

/// Readers do not take SQLite's write lock: `reserve` looks before reclaiming.
#[cfg(feature = "sqlite")]
const SQLITE_ANY_EXPIRED: &str = "SELECT 1 FROM dnp_jobs WHERE status = 'running' AND lease_expires_us <= $1 LIMIT 1";

const RESERVE: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: sqlite_reserve_sql!(),
    #[cfg(feature = "postgres")]
    postgres: pg_reserve_sql!(),
};

#[cfg(feature = "sqlite")]
const SQLITE_EXPLAIN_RECLAIM: &str = concat!("EXPLAIN QUERY PLAN ", sqlite_reclaim_sql!());

const EXPLAIN_RESERVE: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: concat!("EXPLAIN QUERY PLAN ", sqlite_reserve_sql!()),
    #[cfg(feature = "postgres")]
    postgres: concat!("EXPLAIN ", pg_reserve_sql!()),
};

/// Binds: $1 new expiry, $2 now, $3 id, $4 token.
const HEARTBEAT: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: "UPDATE dnp_jobs SET lease_expires_us = $1, updated_us = $2 \
             WHERE id = $3 AND lease_token = $4 AND status = 'running' RETURNING cancel_requested",
    #[cfg(feature = "postgres")]
    postgres: "UPDATE dnp_jobs SET lease_expires_us = $1, updated_us = $2 \
               WHERE id = $3::uuid AND lease_token = $4::uuid AND status = 'running' RETURNING cancel_requested",
};

/// Binds: $1 done, $2 total, $3 message, $4 now, $5 id, $6 token.
const PROGRESS: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: "UPDATE dnp_jobs SET progress_done = $1, progress_total = $2, progress_message = $3, updated_us = $4 \
             WHERE id = $5 AND lease_token = $6 AND status = 'running'",
    #[cfg(feature = "postgres")]
    postgres: "UPDATE dnp_jobs SET progress_done = $1, progress_total = $2, progress_message = $3, updated_us = $4 \
               WHERE id = $5::uuid AND lease_token = $6::uuid AND status = 'running'",
};

/// Binds: $1 final status, $2 now, $3 id, $4 token.
const FINISH: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: "UPDATE dnp_jobs SET status = $1, lease_token = NULL, lease_expires_us = NULL, updated_us = $2 \
             WHERE id = $3 AND lease_token = $4 AND status = 'running'",
    #[cfg(feature = "postgres")]
    postgres: "UPDATE dnp_jobs SET status = $1, lease_token = NULL, lease_expires_us = NULL, updated_us = $2 \
               WHERE id = $3::uuid AND lease_token = $4::uuid AND status = 'running'",
};

/// Binds: $1 retryable, $2 next run, $3 error, $4 now, $5 id, $6 token.
const FAIL: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: concat!(
        "UPDATE dnp_jobs SET \
           status = CASE WHEN $1 AND attempts < max_attempts AND NOT cancel_requested THEN 'queued' ELSE 'dead' END, \
           run_at_us = CASE WHEN $1 AND attempts < max_attempts AND NOT cancel_requested THEN $2 ELSE run_at_us END, \
           last_error = $3, worker = NULL, lease_token = NULL, lease_expires_us = NULL, updated_us = $4 \
         WHERE id = $5 AND lease_token = $6 AND status = 'running' RETURNING ",
        sqlite_cols!()
    ),
    #[cfg(feature = "postgres")]
    postgres: concat!(
        "UPDATE dnp_jobs j SET \
           status = CASE WHEN $1 AND j.attempts < j.max_attempts AND NOT j.cancel_requested THEN 'queued' ELSE 'dead' END, \
           run_at_us = CASE WHEN $1 AND j.attempts < j.max_attempts AND NOT j.cancel_requested THEN $2 ELSE j.run_at_us END, \
           last_error = $3, worker = NULL, lease_token = NULL, lease_expires_us = NULL, updated_us = $4 \
         WHERE j.id = $5::uuid AND j.lease_token = $6::uuid AND j.status = 'running' RETURNING ",
        pg_cols!()
    ),
};

/// Binds: $1 now, $2 id.
const CANCEL: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: concat!(
        "UPDATE dnp_jobs SET \
           status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
           cancel_requested = CASE WHEN status = 'running' THEN 1 ELSE cancel_requested END, \
           updated_us = CASE WHEN status IN ('queued', 'running') THEN $1 ELSE updated_us END \
         WHERE id = $2 RETURNING ",
        sqlite_cols!()
    ),
    #[cfg(feature = "postgres")]
    postgres: concat!(
        "UPDATE dnp_jobs j SET \
           status = CASE WHEN j.status = 'queued' THEN 'cancelled' ELSE j.status END, \
           cancel_requested = CASE WHEN j.status = 'running' THEN TRUE ELSE j.cancel_requested END, \
           updated_us = CASE WHEN j.status IN ('queued', 'running') THEN $1 ELSE j.updated_us END \
         WHERE j.id = $2::uuid RETURNING ",
        pg_cols!()
    ),
};

/// Binds: $1 owner, $2 before (exclusive), $3 limit.
const LIST: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: sqlite_list_sql!(),
    #[cfg(feature = "postgres")]
    postgres: pg_list_sql!(),
};

const EXPLAIN_LIST: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: concat!("EXPLAIN QUERY PLAN ", sqlite_list_sql!()),
    #[cfg(feature = "postgres")]
    postgres: concat!("EXPLAIN ", pg_list_sql!()),
};

const DEPTH: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: "SELECT kind, status, COUNT(*) FROM dnp_jobs WHERE status IN ('queued', 'running') \
             GROUP BY kind, status ORDER BY kind",
    #[cfg(feature = "postgres")]
    postgres: "SELECT kind, status, COUNT(*) FROM dnp_jobs WHERE status IN ('queued', 'running') \
               GROUP BY kind, status ORDER BY kind",
};

/// Binds: $1 cutoff, $2 batch size.
const CLEANUP: Sql = Sql {
    #[cfg(feature = "sqlite")]
    sqlite: "DELETE FROM dnp_jobs WHERE id IN (SELECT id FROM dnp_jobs \
             WHERE status IN ('succeeded', 'dead', 'cancelled') AND updated_us < $1 LIMIT $2)",
    #[cfg(feature = "postgres")]
    postgres: "DELETE FROM dnp_jobs WHERE id IN (SELECT id FROM dnp_jobs \
               WHERE status IN ('succeeded', 'dead', 'cancelled') AND updated_us < $1 LIMIT $2)",
};

// ---------------------------------------------------------------------------------------

/// Builds `$sql` for the queue's database, binds `$b…`, and evaluates `$body` with the
/// query as `$q` and an executor as `$p`. Each arm is compiled for its own database.
macro_rules! with_query {
    ($queue:expr, $sql:expr, [$($b:expr),* $(,)?], |$q:ident, $p:ident| $body:expr) => {
        match &$queue.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite($p) => {
                let $q = sqlx::query($sql.sqlite)$(.bind($b))*;
                $body
            }
            #[cfg(feature = "postgres")]
            SqlPool::Postgres($p) => {
                let $q = sqlx::query($sql.postgres)$(.bind($b))*;
                $body
            }
        }
    };
}

fn be(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

/// Reads the columns of `sqlite_cols!` / `pg_cols!` in order.
fn raw_from_row<'r, R>(row: &'r R) -> Result<RawJob, StoreError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RawJob {
        id: row.try_get(0).map_err(be)?,
        kind: row.try_get(1).map_err(be)?,
        payload: row.try_get(2).map_err(be)?,
        owner: row.try_get(3).map_err(be)?,
        status: row.try_get(4).map_err(be)?,
        priority: row.try_get(5).map_err(be)?,
        attempts: row.try_get(6).map_err(be)?,
        max_attempts: row.try_get(7).map_err(be)?,
        run_at_us: row.try_get(8).map_err(be)?,
        idempotency_key: row.try_get(9).map_err(be)?,
        progress_done: row.try_get(10).map_err(be)?,
        progress_total: row.try_get(11).map_err(be)?,
        progress_message: row.try_get(12).map_err(be)?,
        last_error: row.try_get(13).map_err(be)?,
        cancel_requested: row.try_get(14).map_err(be)?,
        worker: row.try_get(15).map_err(be)?,
        lease_expires_us: row.try_get(16).map_err(be)?,
        created_us: row.try_get(17).map_err(be)?,
        updated_us: row.try_get(18).map_err(be)?,
    })
}

fn u64_to_i64(field: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| {
        StoreError::Input(dnp_core::InputError::Invalid {
            field: field.to_owned(),
            message: format!("{v} is larger than {}", i64::MAX),
        })
    })
}

impl SqlJobQueue {
    /// A queue over `pool` (either database), with the default [`Backoff`].
    pub fn new(pool: impl Into<SqlPool>) -> Self {
        Self { pool: pool.into(), backoff: Backoff::default() }
    }

    /// A queue over a SQLite pool. Open the pool in WAL mode with a busy timeout (sqlx's
    /// default is 5 s) so that workers wait for the write lock instead of failing.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(pool: sqlx::SqlitePool) -> Self {
        Self::new(pool)
    }

    /// A queue over a PostgreSQL pool.
    ///
    /// Every queue operation is one commit, and a commit waits for the WAL to reach the
    /// disk: on a disk with slow flushes that bounds throughput (see docs/performance.md).
    /// [`enqueue_many`](JobQueue::enqueue_many) stores a whole batch in one commit and
    /// [`complete_and_reserve`](JobQueue::complete_and_reserve) completes a job and leases
    /// the next in one, bringing a job down to about one durable commit. Where losing the queue changes of the last moments of a
    /// PostgreSQL *server* crash is acceptable (at most about three `wal_writer_delay`s,
    /// 600 ms by default; the database stays consistent; a lost `complete` or `reserve` makes
    /// a job run again, but a lost `enqueue` loses a job its producer was told was stored),
    /// give the queue a pool of its own whose sessions do not wait:
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), sqlx::Error> {
    /// use std::str::FromStr;
    /// use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    ///
    /// let options = PgConnectOptions::from_str("postgres://dnp@db/dnp")?
    ///     .options([("synchronous_commit", "off")]);
    /// let pool = PgPoolOptions::new().max_connections(8).connect_with(options).await?;
    /// let queue = dnp_queue::SqlJobQueue::postgres(pool);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub fn postgres(pool: sqlx::PgPool) -> Self {
        Self::new(pool)
    }

    /// Uses `backoff` as the retry schedule of [`JobQueue::fail`].
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The pool.
    pub fn pool(&self) -> &SqlPool {
        &self.pool
    }

    fn migrator(schema: &'static str) -> Migrator {
        let mut migrator = Migrator::with_migrations(vec![
            Migration::new(
                1,
                Cow::Borrowed("dnp-queue: the dnp_jobs table and its indexes"),
                MigrationType::Simple,
                schema.into_sql_str(),
                false,
            ),
            Migration::new(
                2,
                Cow::Borrowed("dnp-queue: depth from a partial index of active jobs"),
                MigrationType::Simple,
                ACTIVE_KIND_INDEX.into_sql_str(),
                false,
            ),
        ]);
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        // Other crates' migrations live in other tables; never complain about them.
        migrator.set_ignore_missing(true);
        migrator
    }

    /// Creates or upgrades the queue's table and indexes. Idempotent; safe to run from
    /// several processes at once (sqlx takes a lock on PostgreSQL; SQLite serializes writers).
    /// The migrations are recorded in their own table, [`MIGRATIONS_TABLE`].
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database refuses the DDL or a recorded migration
    /// of this crate was changed.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(p) => Self::migrator(SQLITE_SCHEMA).run(p).await.map_err(StoreError::backend),
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(p) => Self::migrator(POSTGRES_SCHEMA).run(p).await.map_err(StoreError::backend),
        }
    }

    /// The query plan the database would use for [`list_by_owner`](JobQueue::list_by_owner),
    /// one line per plan step (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL): for
    /// operators and tests checking that the listing reads the `dnp_jobs_owner_created` index.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn explain_list_by_owner(&self, owner: UserId, limit: u32) -> Result<String, StoreError> {
        let owner = owner.to_string();
        let lines: Vec<String> = with_query!(self, EXPLAIN_LIST, [owner, i64::MAX, i64::from(limit)], |q, p| {
            let rows = q.fetch_all(p).await.map_err(be)?;
            let mut lines = Vec::with_capacity(rows.len());
            for row in &rows {
                // SQLite: id, parent, notused, detail; PostgreSQL: one text column.
                lines.push(row.try_get::<String, _>(row.len() - 1).map_err(be)?);
            }
            lines
        });
        Ok(lines.join("\n"))
    }

    /// The query plan of [`reserve`](JobQueue::reserve)'s statements (explained, not run):
    /// for operators and tests checking that it reads `dnp_jobs_ready` for queued jobs and
    /// `dnp_jobs_leased` for expired leases, whatever the number of jobs. On SQLite the
    /// plans of its two statements (reclaim, then lease) follow each other.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn explain_reserve(&self) -> Result<String, StoreError> {
        let now = now_us();
        let token = Uuid::nil().to_string();
        let lines: Vec<String> = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(p) => {
                let mut rows = sqlx::query(SQLITE_EXPLAIN_RECLAIM)
                    .bind(now)
                    .bind(LEASE_EXPIRED_ON_LAST_ATTEMPT)
                    .bind(RECLAIM_BATCH)
                    .fetch_all(p)
                    .await
                    .map_err(be)?;
                let q = sqlx::query(EXPLAIN_RESERVE.sqlite).bind(now).bind("explain").bind(&token).bind(now);
                rows.extend(q.fetch_all(p).await.map_err(be)?);
                rows.iter().map(|r| r.try_get::<String, _>(r.len() - 1).map_err(be)).collect::<Result<_, _>>()?
            }
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(p) => {
                let q = sqlx::query(EXPLAIN_RESERVE.postgres)
                    .bind(now)
                    .bind("explain")
                    .bind(&token)
                    .bind(now)
                    .bind(LEASE_EXPIRED_ON_LAST_ATTEMPT)
                    .bind(RECLAIM_BATCH);
                let rows = q.fetch_all(p).await.map_err(be)?;
                rows.iter().map(|r| r.try_get::<String, _>(0).map_err(be)).collect::<Result<_, _>>()?
            }
        };
        Ok(lines.join("\n"))
    }

    /// Deletes finished jobs (succeeded, dead, cancelled) last changed before `older_than`,
    /// `batch` rows per statement so that no statement holds locks for long. Returns how
    /// many were deleted. Idempotency keys of deleted jobs may be used again.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails (jobs deleted before it stay deleted).
    pub async fn cleanup(&self, older_than: DateTime<Utc>, batch: u32) -> Result<u64, StoreError> {
        let cutoff = to_us(older_than);
        let batch = i64::from(batch.max(1));
        let mut total = 0;
        loop {
            let n = with_query!(self, CLEANUP, [cutoff, batch], |q, p| q.execute(p).await.map_err(be)?.rows_affected());
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    async fn fetch_job(&self, sql: Sql, id: String) -> Result<Option<Job>, StoreError> {
        let raw = with_query!(self, sql, [id], |q, p| {
            q.fetch_optional(p).await.map_err(be)?.map(|r| raw_from_row(&r)).transpose()?
        });
        raw.map(RawJob::into_job).transpose()
    }

    async fn finish(&self, lease: &Lease, status: &'static str) -> Result<(), StoreError> {
        let (id, token) = (lease.job.id.to_string(), lease.token.to_string());
        let n = with_query!(self, FINISH, [status, now_us(), &id, &token], |q, p| {
            q.execute(p).await.map_err(be)?.rows_affected()
        });
        if n == 1 { Ok(()) } else { Err(StoreError::LeaseLost { job: lease.job.id }) }
    }
}

/// What one reservation binds: the time, the worker, a fresh token and the lease's expiry.
struct ReserveTicket<'a> {
    now: i64,
    worker: &'a str,
    token: Uuid,
    token_s: String,
    expires: i64,
}

impl<'a> ReserveTicket<'a> {
    fn new(worker: &'a str, lease_for: Duration) -> Self {
        let now = now_us();
        let token = Uuid::new_v4();
        Self { now, worker, token, token_s: token.to_string(), expires: now.saturating_add(dur_us(lease_for)) }
    }

    fn lease(self, raw: Option<RawJob>) -> Result<Option<Lease>, StoreError> {
        match raw {
            Some(raw) => Ok(Some(Lease { job: raw.into_job()?, token: self.token })),
            None => Ok(None),
        }
    }
}

/// Reclaims expired leases (if any), then leases the best due job, on `conn` (a pooled
/// connection or a transaction).
#[cfg(feature = "sqlite")]
async fn sqlite_reserve(
    conn: &mut sqlx::SqliteConnection,
    t: &ReserveTicket<'_>,
) -> Result<Option<RawJob>, StoreError> {
    let expired: Option<i64> =
        sqlx::query_scalar(SQLITE_ANY_EXPIRED).bind(t.now).fetch_optional(&mut *conn).await.map_err(be)?;
    if expired.is_some() {
        sqlx::query(SQLITE_RECLAIM)
            .bind(t.now)
            .bind(LEASE_EXPIRED_ON_LAST_ATTEMPT)
            .bind(RECLAIM_BATCH)
            .execute(&mut *conn)
            .await
            .map_err(be)?;
    }
    let row = sqlx::query(RESERVE.sqlite)
        .bind(t.now)
        .bind(t.worker)
        .bind(&t.token_s)
        .bind(t.expires)
        .fetch_optional(&mut *conn)
        .await
        .map_err(be)?;
    row.map(|r| raw_from_row(&r)).transpose()
}

/// The reserve statement (reclaim and lease in one), on `conn` (a pooled connection or a
/// transaction).
#[cfg(feature = "postgres")]
async fn pg_reserve(conn: &mut sqlx::PgConnection, t: &ReserveTicket<'_>) -> Result<Option<RawJob>, StoreError> {
    let row = sqlx::query(RESERVE.postgres)
        .bind(t.now)
        .bind(t.worker)
        .bind(&t.token_s)
        .bind(t.expires)
        .bind(LEASE_EXPIRED_ON_LAST_ATTEMPT)
        .bind(RECLAIM_BATCH)
        .fetch_optional(&mut *conn)
        .await
        .map_err(be)?;
    row.map(|r| raw_from_row(&r)).transpose()
}

/// Marks the leased job succeeded on `$tx`, or returns `LeaseLost` (the transaction,
/// dropped uncommitted, rolls back).
macro_rules! complete_in_tx {
    ($tx:ident, $dialect:ident, $lease:expr) => {{
        let (id, token) = ($lease.job.id.to_string(), $lease.token.to_string());
        let n = sqlx::query(FINISH.$dialect)
            .bind("succeeded")
            .bind(now_us())
            .bind(&id)
            .bind(&token)
            .execute(&mut *$tx)
            .await
            .map_err(be)?
            .rows_affected();
        if n != 1 {
            return Err(StoreError::LeaseLost { job: $lease.job.id });
        }
    }};
}

impl SqlJobQueue {
    /// Splits a batch into the rows to insert (the first job of each key) and where each
    /// output comes from.
    fn plan_batch(jobs: Vec<NewJob>) -> Result<(Vec<InsertRow>, Vec<Slot>), StoreError> {
        let now = now_us();
        let mut rows: Vec<InsertRow> = Vec::with_capacity(jobs.len());
        let mut slots = Vec::with_capacity(jobs.len());
        let mut first_of_key: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, new) in jobs.into_iter().enumerate() {
            if let Some(key) = &new.idempotency_key {
                if let Some(&first) = first_of_key.get(key) {
                    slots.push(Slot::SameAs(first));
                    continue;
                }
                first_of_key.insert(key.clone(), i);
            }
            let payload = serde_json::to_string(&new.payload).map_err(|e| corrupt(format!("payload: {e}")))?;
            slots.push(Slot::Row(rows.len()));
            rows.push(InsertRow {
                id: JobId::new_random().to_string(),
                kind: new.kind,
                payload,
                owner: new.owner.map(|o| o.to_string()),
                priority: i64::from(new.priority),
                max_attempts: i64::from(new.max_attempts.max(1)),
                run_at: new.run_at.map_or(now, to_us),
                key: new.idempotency_key,
                now,
            });
        }
        Ok((rows, slots))
    }
}

#[async_trait]
impl JobQueue for SqlJobQueue {
    async fn enqueue(&self, new: NewJob) -> Result<Job, StoreError> {
        let payload = serde_json::to_string(&new.payload).map_err(|e| corrupt(format!("payload: {e}")))?;
        let owner = new.owner.map(|o| o.to_string());
        let max_attempts = i64::from(new.max_attempts.max(1));
        let priority = i64::from(new.priority);
        // A deleted job (cleanup) can free its key between the insert and the lookup:
        // try again a few times before calling it a conflict.
        for _ in 0..3 {
            let now = now_us();
            let run_at = new.run_at.map_or(now, to_us);
            let id = JobId::new_random().to_string();
            let inserted = with_query!(
                self,
                INSERT,
                [&id, &new.kind, &payload, &owner, priority, max_attempts, run_at, &new.idempotency_key, now],
                |q, p| q.fetch_optional(p).await.map_err(be)?.map(|r| raw_from_row(&r)).transpose()?
            );
            if let Some(raw) = inserted {
                return raw.into_job();
            }
            let Some(key) = &new.idempotency_key else {
                return Err(StoreError::Conflict { what: format!("job id {id} already exists") });
            };
            if let Some(job) = self.fetch_job(BY_KEY, key.clone()).await? {
                return Ok(job);
            }
        }
        Err(StoreError::Conflict { what: "idempotency key kept changing hands".to_owned() })
    }

    async fn reserve(&self, worker: &str, lease_for: Duration) -> Result<Option<Lease>, StoreError> {
        let ticket = ReserveTicket::new(worker, lease_for);
        let raw = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(p) => sqlite_reserve(&mut *p.acquire().await.map_err(be)?, &ticket).await?,
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(p) => pg_reserve(&mut *p.acquire().await.map_err(be)?, &ticket).await?,
        };
        ticket.lease(raw)
    }

    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<Heartbeat, StoreError> {
        let now = now_us();
        let (id, token) = (lease.job.id.to_string(), lease.token.to_string());
        let cancel: Option<bool> =
            with_query!(self, HEARTBEAT, [now.saturating_add(dur_us(extend)), now, &id, &token], |q, p| {
                match q.fetch_optional(p).await.map_err(be)? {
                    Some(row) => Some(row.try_get::<bool, _>(0).map_err(be)?),
                    None => None,
                }
            });
        match cancel {
            Some(true) => Ok(Heartbeat::CancelRequested),
            Some(false) => Ok(Heartbeat::Continue),
            None => Err(StoreError::LeaseLost { job: lease.job.id }),
        }
    }

    async fn progress(&self, lease: &Lease, progress: JobProgress) -> Result<(), StoreError> {
        let done = u64_to_i64("progress.done", progress.done)?;
        let total = progress.total.map(|t| u64_to_i64("progress.total", t)).transpose()?;
        let (id, token) = (lease.job.id.to_string(), lease.token.to_string());
        let n = with_query!(self, PROGRESS, [done, total, &progress.message, now_us(), &id, &token], |q, p| {
            q.execute(p).await.map_err(be)?.rows_affected()
        });
        if n == 1 { Ok(()) } else { Err(StoreError::LeaseLost { job: lease.job.id }) }
    }

    async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        self.finish(lease, "succeeded").await
    }

    async fn fail(&self, lease: &Lease, error: &str, retryable: bool) -> Result<Job, StoreError> {
        let now = now_us();
        let delay = self.backoff.delay(lease.job.attempts, jitter(lease.token));
        let next = now.saturating_add(dur_us(delay));
        let (id, token) = (lease.job.id.to_string(), lease.token.to_string());
        let raw = with_query!(self, FAIL, [retryable, next, error, now, &id, &token], |q, p| {
            q.fetch_optional(p).await.map_err(be)?.map(|r| raw_from_row(&r)).transpose()?
        });
        match raw {
            Some(raw) => raw.into_job(),
            None => Err(StoreError::LeaseLost { job: lease.job.id }),
        }
    }

    async fn cancelled(&self, lease: &Lease) -> Result<(), StoreError> {
        self.finish(lease, "cancelled").await
    }

    async fn cancel(&self, id: JobId) -> Result<Job, StoreError> {
        let id_s = id.to_string();
        let raw = with_query!(self, CANCEL, [now_us(), &id_s], |q, p| {
            q.fetch_optional(p).await.map_err(be)?.map(|r| raw_from_row(&r)).transpose()?
        });
        match raw {
            Some(raw) => raw.into_job(),
            None => Err(StoreError::NotFound { what: format!("job {id}") }),
        }
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.fetch_job(GET, id.to_string()).await
    }

    async fn list_by_owner(
        &self,
        owner: UserId,
        limit: u32,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let owner = owner.to_string();
        let before = before.map_or(i64::MAX, to_us);
        let raws: Vec<RawJob> = with_query!(self, LIST, [owner, before, i64::from(limit)], |q, p| {
            q.fetch_all(p).await.map_err(be)?.iter().map(raw_from_row).collect::<Result<_, _>>()?
        });
        raws.into_iter().map(RawJob::into_job).collect()
    }

    async fn depth(&self) -> Result<Vec<QueueDepth>, StoreError> {
        let rows: Vec<(String, String, i64)> = with_query!(self, DEPTH, [], |q, p| {
            let rows = q.fetch_all(p).await.map_err(be)?;
            rows.iter()
                .map(|r| Ok((r.try_get(0).map_err(be)?, r.try_get(1).map_err(be)?, r.try_get(2).map_err(be)?)))
                .collect::<Result<_, StoreError>>()?
        });
        let mut out: Vec<QueueDepth> = Vec::new();
        for (kind, status, count) in rows {
            let count = u64::try_from(count).map_err(|_| corrupt("negative count"))?;
            if out.last().is_none_or(|d| d.kind != kind) {
                out.push(QueueDepth { kind: kind.clone(), queued: 0, running: 0 });
            }
            if let Some(d) = out.last_mut() {
                match parse_status(&status)? {
                    dnp_core::JobStatus::Queued => d.queued = count,
                    dnp_core::JobStatus::Running => d.running = count,
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// One transaction: multi-row `INSERT … ON CONFLICT (idempotency_key) DO NOTHING`
    /// statements of up to 500 jobs, then a lookup of each key that was already stored:
    /// one commit for the whole batch, all-or-nothing.
    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let (rows, slots) = Self::plan_batch(jobs)?;
        let (mut inserted, existing) = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(p) => {
                let mut tx = p.begin().await.map_err(be)?;
                enqueue_many_in_tx!(tx, sqlite, false, rows)
            }
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(p) => {
                let mut tx = p.begin().await.map_err(be)?;
                enqueue_many_in_tx!(tx, postgres, true, rows)
            }
        };
        let mut out: Vec<Job> = Vec::with_capacity(slots.len());
        for slot in slots {
            let job = match slot {
                Slot::Row(n) => {
                    let row = &rows[n];
                    match inserted.remove(&row.id) {
                        Some(job) => job,
                        None => {
                            let key = row.key.as_deref().unwrap_or_default();
                            existing.get(key).cloned().ok_or_else(|| corrupt(format!("job {} went missing", row.id)))?
                        }
                    }
                }
                Slot::SameAs(i) => out[i].clone(),
            };
            out.push(job);
        }
        Ok(out)
    }

    /// One transaction: the completion, then `reserve`'s statements; one commit.
    async fn complete_and_reserve(
        &self,
        lease: &Lease,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let ticket = ReserveTicket::new(worker, lease_for);
        let raw = match &self.pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(p) => {
                let mut tx = p.begin().await.map_err(be)?;
                complete_in_tx!(tx, sqlite, lease);
                let raw = sqlite_reserve(&mut tx, &ticket).await?;
                tx.commit().await.map_err(be)?;
                raw
            }
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(p) => {
                let mut tx = p.begin().await.map_err(be)?;
                complete_in_tx!(tx, postgres, lease);
                let raw = pg_reserve(&mut tx, &ticket).await?;
                tx.commit().await.map_err(be)?;
                raw
            }
        };
        ticket.lease(raw)
    }
}
