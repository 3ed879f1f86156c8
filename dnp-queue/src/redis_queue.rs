//! [`RedisJobQueue`]: the job queue in Redis hashes and sorted sets, every change made
//! by one Lua script so that a job and its indexes never disagree.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dnp_core::{Backoff, Heartbeat, Job, JobId, JobProgress, JobQueue, Lease, NewJob, QueueDepth, StoreError, UserId};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};
use uuid::Uuid;

use crate::record::{LEASE_EXPIRED_ON_LAST_ATTEMPT, RawJob, corrupt, dur_us, jitter, now_us, to_us};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "dnp:queue:";

// The default number of keys `SCAN` is asked for per step of cleanup.
const REDIS_DEFAULT_CLEANUP_BATCH: u32 = crate::DEFAULT_CLEANUP_BATCH;

/// Options of a [`RedisJobQueue`].
#[derive(Debug, Clone, PartialEq)]
pub struct RedisQueueOptions {
    /// Prefix of every key (default [`DEFAULT_PREFIX`]). Give each deployment (and each
    /// test) its own. On Redis Cluster, put a hash tag in it (`{dnp}:queue:`) so that all
    /// keys live in one slot, as the Lua scripts need.
    pub prefix: String,
    /// `COUNT` of each `SCAN` step of [`RedisJobQueue::cleanup`] (default 100).
    pub cleanup_batch: u32,
    /// At most this many due delayed jobs and expired leases are moved back to the ready
    /// set by one `reserve` (default 100); the rest move on the next calls.
    pub promote_batch: u32,
    /// The retry schedule of [`JobQueue::fail`].
    pub backoff: Backoff,
}

impl Default for RedisQueueOptions {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            cleanup_batch: REDIS_DEFAULT_CLEANUP_BATCH,
            promote_batch: 100,
            backoff: Backoff::default(),
        }
    }
}

impl RedisQueueOptions {
    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the `SCAN` batch size of cleanup (at least 1).
    pub fn with_cleanup_batch(mut self, batch: u32) -> Self {
        self.cleanup_batch = batch.max(1);
        self
    }

    /// Sets the retry schedule.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

struct Scripts {
    enqueue: Script,
    reserve: Script,
    complete_and_reserve: Script,
    heartbeat: Script,
    progress: Script,
    finish: Script,
    fail: Script,
    cancel: Script,
    cleanup: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            enqueue: Script::new(ENQUEUE_LUA),
            reserve: Script::new(RESERVE_LUA),
            complete_and_reserve: Script::new(COMPLETE_AND_RESERVE_LUA),
            heartbeat: Script::new(HEARTBEAT_LUA),
            progress: Script::new(PROGRESS_LUA),
            finish: Script::new(FINISH_LUA),
            fail: Script::new(FAIL_LUA),
            cancel: Script::new(CANCEL_LUA),
            cleanup: Script::new(CLEANUP_LUA),
        }
    }
}

/// A [`JobQueue`] in Redis.
///
/// See the [crate documentation](crate#the-redis-backend) for the key layout. All keys
/// start with the configured prefix; every state change is one Lua script, so a job's
/// hash and the sorted sets indexing it change together or not at all.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use dnp_core::{JobQueue, NewJob};
/// use dnp_queue::{RedisJobQueue, RedisQueueOptions};
///
/// let queue = RedisJobQueue::connect("redis://127.0.0.1:6379/", RedisQueueOptions::default()).await?;
/// queue.enqueue(NewJob::new("token_refresh", serde_json::json!({}))).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisJobQueue {
    conn: ConnectionManager,
    options: RedisQueueOptions,
    scripts: std::sync::Arc<Scripts>,
}

impl fmt::Debug for RedisJobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisJobQueue").field("options", &self.options).finish_non_exhaustive()
    }
}

fn be(e: redis::RedisError) -> StoreError {
    StoreError::backend(e)
}

/// The member of the ready set: equal scores (priorities) sort by member bytes, so the
/// zero-padded run-at then creation time make "highest priority, then earliest" one `ZRANGE`.
fn ready_member(run_at_us: i64, created_us: i64, id: JobId) -> String {
    format!("{:020}:{:020}:{}", run_at_us.max(0), created_us.max(0), id)
}

/// Escapes the glob characters of `s` for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn raw_from_fields(fields: Vec<String>) -> Result<RawJob, StoreError> {
    let mut map: HashMap<String, String> = HashMap::with_capacity(fields.len() / 2);
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    let mut take = |name: &str| map.remove(name);
    fn num(name: &str, v: Option<String>) -> Result<Option<i64>, StoreError> {
        v.map(|s| s.parse::<i64>().map_err(|_| corrupt(format!("{name} is not an integer: {s:?}")))).transpose()
    }
    fn req<T>(name: &str, v: Option<T>) -> Result<T, StoreError> {
        v.ok_or_else(|| corrupt(format!("missing field {name}")))
    }
    Ok(RawJob {
        id: req("id", take("id"))?,
        kind: req("kind", take("kind"))?,
        payload: req("payload", take("payload"))?,
        owner: take("owner"),
        status: req("status", take("status"))?,
        priority: req("priority", num("priority", take("priority"))?)?,
        attempts: req("attempts", num("attempts", take("attempts"))?)?,
        max_attempts: req("max_attempts", num("max_attempts", take("max_attempts"))?)?,
        run_at_us: req("run_at_us", num("run_at_us", take("run_at_us"))?)?,
        idempotency_key: take("idempotency_key"),
        progress_done: num("progress_done", take("progress_done"))?,
        progress_total: num("progress_total", take("progress_total"))?,
        progress_message: take("progress_message"),
        last_error: take("last_error"),
        cancel_requested: take("cancel_requested").as_deref() == Some("1"),
        worker: take("worker"),
        lease_expires_us: num("lease_expires_us", take("lease_expires_us"))?,
        created_us: req("created_us", num("created_us", take("created_us"))?)?,
        updated_us: req("updated_us", num("updated_us", take("updated_us"))?)?,
    })
}

fn job_from_fields(fields: Vec<String>) -> Result<Job, StoreError> {
    raw_from_fields(fields)?.into_job()
}

impl RedisJobQueue {
    /// Connects to `url` (`redis://[:password@]host:port/[db]`) with a connection manager
    /// that reconnects on its own.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the URL is malformed or the server cannot be reached
    /// (the error never contains the password).
    pub async fn connect(url: &str, options: RedisQueueOptions) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(be)?;
        let conn = ConnectionManager::new(client).await.map_err(be)?;
        Ok(Self::new(conn, options))
    }

    /// A queue over an existing connection manager (shared with the rest of the server).
    pub fn new(conn: ConnectionManager, options: RedisQueueOptions) -> Self {
        Self { conn, options, scripts: std::sync::Arc::new(Scripts::new()) }
    }

    /// The options.
    pub fn options(&self) -> &RedisQueueOptions {
        &self.options
    }

    /// The key of a job's hash.
    pub fn job_key(&self, id: JobId) -> String {
        format!("{}job:{id}", self.options.prefix)
    }

    /// The key of the sorted set indexing `owner`'s jobs by creation time (microseconds).
    pub fn owner_key(&self, owner: UserId) -> String {
        format!("{}user:{owner}:jobs", self.options.prefix)
    }

    /// Deletes finished jobs (succeeded, dead, cancelled) last changed before `older_than`,
    /// with their entries in the owners' indexes and their idempotency keys. Walks the job
    /// hashes with `SCAN` (`COUNT` = [`RedisQueueOptions::cleanup_batch`]), never `KEYS`, and
    /// checks and deletes each batch in one script. Returns how many jobs were deleted.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when Redis fails (batches already deleted stay deleted).
    pub async fn cleanup(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}job:*", glob_escape(&self.options.prefix));
        let strip = format!("{}job:", self.options.prefix);
        let cutoff = to_us(older_than).to_string();
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(self.options.cleanup_batch.max(1))
                .query_async(&mut conn)
                .await
                .map_err(be)?;
            let ids: Vec<&str> = keys.iter().filter_map(|k| k.strip_prefix(&strip)).collect();
            if !ids.is_empty() {
                let n: u64 = self
                    .scripts
                    .cleanup
                    .arg(&self.options.prefix)
                    .arg(&cutoff)
                    .arg(&ids)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(be)?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    async fn finish(&self, lease: &Lease, status: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let ok: i64 = self
            .scripts
            .finish
            .arg(&self.options.prefix)
            .arg(lease.job.id.to_string())
            .arg(lease.token.to_string())
            .arg(now_us())
            .arg(status)
            .invoke_async(&mut conn)
            .await
            .map_err(be)?;
        if ok == 1 { Ok(()) } else { Err(StoreError::LeaseLost { job: lease.job.id }) }
    }
}

#[async_trait]
impl JobQueue for RedisJobQueue {
    async fn enqueue(&self, new: NewJob) -> Result<Job, StoreError> {
        let mut conn = self.conn.clone();
        let payload = serde_json::to_string(&new.payload).map_err(|e| corrupt(format!("payload: {e}")))?;
        let now = now_us();
        let run_at = new.run_at.map_or(now, to_us);
        let id = JobId::new_random();
        let fields: Vec<String> = self
            .scripts
            .enqueue
            .arg(&self.options.prefix)
            .arg(id.to_string())
            .arg(now)
            .arg(run_at)
            .arg(if new.idempotency_key.is_some() { "1" } else { "0" })
            .arg(new.idempotency_key.as_deref().unwrap_or(""))
            .arg(new.owner.map(|o| o.to_string()).unwrap_or_default())
            .arg(&new.kind)
            .arg(payload)
            .arg(new.priority)
            .arg(new.max_attempts.max(1))
            .arg(ready_member(run_at, now, id))
            .invoke_async(&mut conn)
            .await
            .map_err(be)?;
        job_from_fields(fields)
    }

    async fn reserve(&self, worker: &str, lease_for: Duration) -> Result<Option<Lease>, StoreError> {
        let mut conn = self.conn.clone();
        let now = now_us();
        let token = Uuid::new_v4();
        let fields: Option<Vec<String>> = self
            .scripts
            .reserve
            .arg(&self.options.prefix)
            .arg(now)
            .arg(worker)
            .arg(token.to_string())
            .arg(now.saturating_add(dur_us(lease_for)))
            .arg(LEASE_EXPIRED_ON_LAST_ATTEMPT)
            .arg(self.options.promote_batch.max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(be)?;
        match fields {
            Some(fields) => Ok(Some(Lease { job: job_from_fields(fields)?, token })),
            None => Ok(None),
        }
    }

    /// One script: the completion and the next reservation, atomic, in one round trip.
    async fn complete_and_reserve(
        &self,
        lease: &Lease,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let mut conn = self.conn.clone();
        let now = now_us();
        let token = Uuid::new_v4();
        let fields: Option<Vec<String>> = self
            .scripts
            .complete_and_reserve
            .arg(&self.options.prefix)
            .arg(now)
            .arg(worker)
            .arg(token.to_string())
            .arg(now.saturating_add(dur_us(lease_for)))
            .arg(LEASE_EXPIRED_ON_LAST_ATTEMPT)
            .arg(self.options.promote_batch.max(1))
            .arg(lease.job.id.to_string())
            .arg(lease.token.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(be)?;
        match fields {
            Some(fields) if fields.len() == 1 && fields[0] == "lease_lost" => {
                Err(StoreError::LeaseLost { job: lease.job.id })
            }
            Some(fields) => Ok(Some(Lease { job: job_from_fields(fields)?, token })),
            None => Ok(None),
        }
    }

    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<Heartbeat, StoreError> {
        let mut conn = self.conn.clone();
        let now = now_us();
        let answer: i64 = self
            .scripts
            .heartbeat
            .arg(&self.options.prefix)
            .arg(lease.job.id.to_string())
            .arg(lease.token.to_string())
            .arg(now.saturating_add(dur_us(extend)))
            .arg(now)
            .invoke_async(&mut conn)
            .await
            .map_err(be)?;
        match answer {
            0 => Ok(Heartbeat::Continue),
            1 => Ok(Heartbeat::CancelRequested),
            _ => Err(StoreError::LeaseLost { job: lease.job.id }),
        }
    }

    async fn progress(&self, lease: &Lease, progress: JobProgress) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let ok: i64 = self
            .scripts
            .progress
            .arg(&self.options.prefix)
            .arg(lease.job.id.to_string())
            .arg(lease.token.to_string())
            .arg(now_us())
            .arg(progress.done)
            .arg(if progress.total.is_some() { "1" } else { "0" })
            .arg(progress.total.unwrap_or(0))
            .arg(&progress.message)
            .invoke_async(&mut conn)
            .await
            .map_err(be)?;
        if ok == 1 { Ok(()) } else { Err(StoreError::LeaseLost { job: lease.job.id }) }
    }

    async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        self.finish(lease, "succeeded").await
    }

    async fn fail(&self, lease: &Lease, error: &str, retryable: bool) -> Result<Job, StoreError> {
        let mut conn = self.conn.clone();
        let now = now_us();
        let delay = self.options.backoff.delay(lease.job.attempts, jitter(lease.token));
        let next = now.saturating_add(dur_us(delay));
        let fields: Option<Vec<String>> = self
            .scripts
            .fail
            .arg(&self.options.prefix)
            .arg(lease.job.id.to_string())
            .arg(lease.token.to_string())
            .arg(now)
            .arg(if retryable { "1" } else { "0" })
            .arg(next)
            .arg(error)
            .arg(ready_member(next, to_us(lease.job.created_at), lease.job.id))
            .invoke_async(&mut conn)
            .await
            .map_err(be)?;
        match fields {
            Some(fields) => job_from_fields(fields),
            None => Err(StoreError::LeaseLost { job: lease.job.id }),
        }
    }

    async fn cancelled(&self, lease: &Lease) -> Result<(), StoreError> {
        self.finish(lease, "cancelled").await
    }

    async fn cancel(&self, id: JobId) -> Result<Job, StoreError> {
        let mut conn = self.conn.clone();
        let fields: Option<Vec<String>> = self
            .scripts
            .cancel
            .arg(&self.options.prefix)
            .arg(id.to_string())
            .arg(now_us())
            .invoke_async(&mut conn)
            .await
            .map_err(be)?;
        match fields {
            Some(fields) => job_from_fields(fields),
            None => Err(StoreError::NotFound { what: format!("job {id}") }),
        }
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let mut conn = self.conn.clone();
        let fields: Vec<String> = conn.hgetall(self.job_key(id)).await.map_err(be)?;
        if fields.is_empty() { Ok(None) } else { job_from_fields(fields).map(Some) }
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
        let mut conn = self.conn.clone();
        let max = before.map_or_else(|| "+inf".to_owned(), |b| format!("({}", to_us(b)));
        // Only the owner's sorted set, then the listed jobs' hashes: never a scan.
        let ids: Vec<String> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(self.owner_key(owner))
            .arg(&max)
            .arg("-inf")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(be)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(format!("{}job:{id}", self.options.prefix));
        }
        let hashes: Vec<Vec<String>> = pipe.query_async(&mut conn).await.map_err(be)?;
        hashes
            .into_iter()
            .filter(|h| !h.is_empty()) // deleted by cleanup between the two round trips
            .map(job_from_fields)
            .collect()
    }

    async fn depth(&self) -> Result<Vec<QueueDepth>, StoreError> {
        let mut conn = self.conn.clone();
        let p = &self.options.prefix;
        let (queued, running): (HashMap<String, i64>, HashMap<String, i64>) = redis::pipe()
            .hgetall(format!("{p}depth:queued"))
            .hgetall(format!("{p}depth:running"))
            .query_async(&mut conn)
            .await
            .map_err(be)?;
        let mut by_kind: BTreeMap<String, QueueDepth> = BTreeMap::new();
        let mut add = |kind: String, n: i64, queued: bool| {
            let n = u64::try_from(n).unwrap_or(0);
            let d = by_kind.entry(kind.clone()).or_insert(QueueDepth { kind, queued: 0, running: 0 });
            if queued { d.queued = n } else { d.running = n }
        };
        for (kind, n) in queued {
            add(kind, n, true);
        }
        for (kind, n) in running {
            add(kind, n, false);
        }
        Ok(by_kind.into_values().filter(|d| d.queued > 0 || d.running > 0).collect())
    }
}

// ---------------------------------------------------------------------------------------
// Lua. ARGV[1] is always the key prefix. Times are decimal microseconds, passed as
// strings and stored as given (Lua numbers are doubles: exact below 2^53).

/// Shared helpers, prepended to every script.
macro_rules! lua {
    ($body:expr) => {
        concat!(
            r#"
local p = ARGV[1]
local function depth(which, kind, by)
  local n = redis.call('HINCRBY', p .. 'depth:' .. which, kind, by)
  if n <= 0 then redis.call('HDEL', p .. 'depth:' .. which, kind) end
end
"#,
            $body
        )
    };
}

const ENQUEUE_LUA: &str = lua!(
    r#"
-- ARGV: 2 id, 3 now, 4 run_at, 5 has key, 6 key, 7 owner ('' none), 8 kind, 9 payload,
--       10 priority, 11 max_attempts, 12 ready member
local id, now, run_at = ARGV[2], ARGV[3], ARGV[4]
local idem = p .. 'idem:' .. ARGV[6]
if ARGV[5] == '1' then
  local existing = redis.call('GET', idem)
  if existing then
    local h = redis.call('HGETALL', p .. 'job:' .. existing)
    if #h > 0 then return h end
  end
  redis.call('SET', idem, id)
end
local key = p .. 'job:' .. id
redis.call('HSET', key, 'id', id, 'kind', ARGV[8], 'payload', ARGV[9], 'status', 'queued',
  'priority', ARGV[10], 'attempts', '0', 'max_attempts', ARGV[11], 'run_at_us', run_at,
  'cancel_requested', '0', 'created_us', now, 'updated_us', now, 'rmember', ARGV[12])
if ARGV[5] == '1' then redis.call('HSET', key, 'idempotency_key', ARGV[6]) end
if ARGV[7] ~= '' then
  redis.call('HSET', key, 'owner', ARGV[7])
  redis.call('ZADD', p .. 'user:' .. ARGV[7] .. ':jobs', now, id)
end
if tonumber(run_at) <= tonumber(now) then
  redis.call('ZADD', p .. 'ready', -tonumber(ARGV[10]), ARGV[12])
else
  redis.call('ZADD', p .. 'delayed', run_at, id)
end
depth('queued', ARGV[8], 1)
return redis.call('HGETALL', key)
"#
);

/// The body of [`RESERVE_LUA`], shared with [`COMPLETE_AND_RESERVE_LUA`].
macro_rules! reserve_lua_body {
    () => {
        r#"
-- ARGV: 2 now, 3 worker, 4 token, 5 lease expiry, 6 message for lost last attempts, 7 batch
local now = ARGV[2]
local batch = tonumber(ARGV[7])
-- Due delayed jobs join the ready set.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'delayed', '-inf', now, 'LIMIT', 0, batch)) do
  redis.call('ZREM', p .. 'delayed', id)
  local f = redis.call('HMGET', p .. 'job:' .. id, 'status', 'priority', 'rmember')
  if f[1] == 'queued' then redis.call('ZADD', p .. 'ready', -tonumber(f[2]), f[3]) end
end
-- Expired leases (dead workers): queued again, or dead after the last attempt.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'leased', '-inf', now, 'LIMIT', 0, batch)) do
  redis.call('ZREM', p .. 'leased', id)
  local k = p .. 'job:' .. id
  local f = redis.call('HMGET', k, 'status', 'attempts', 'max_attempts', 'kind', 'priority', 'rmember')
  if f[1] == 'running' then
    depth('running', f[4], -1)
    redis.call('HDEL', k, 'worker', 'lease_token', 'lease_expires_us')
    if tonumber(f[2]) >= tonumber(f[3]) then
      redis.call('HSET', k, 'status', 'dead', 'last_error', ARGV[6], 'updated_us', now)
    else
      redis.call('HSET', k, 'status', 'queued', 'updated_us', now)
      redis.call('ZADD', p .. 'ready', -tonumber(f[5]), f[6])
      depth('queued', f[4], 1)
    end
  end
end
-- The head of the ready set: highest priority, then earliest run-at, then oldest.
while true do
  local head = redis.call('ZRANGE', p .. 'ready', 0, 0)
  if #head == 0 then return false end
  redis.call('ZREM', p .. 'ready', head[1])
  local id = string.match(head[1], ':([^:]+)$')
  local k = p .. 'job:' .. id
  local f = redis.call('HMGET', k, 'status', 'kind')
  if f[1] == 'queued' then
    redis.call('HINCRBY', k, 'attempts', 1)
    redis.call('HSET', k, 'status', 'running', 'worker', ARGV[3], 'lease_token', ARGV[4],
      'lease_expires_us', ARGV[5], 'updated_us', now)
    redis.call('ZADD', p .. 'leased', ARGV[5], id)
    depth('queued', f[2], -1)
    depth('running', f[2], 1)
    return redis.call('HGETALL', k)
  end
end
"#
    };
}

const RESERVE_LUA: &str = lua!(reserve_lua_body!());

/// [`FINISH_LUA`] with `succeeded`, then [`RESERVE_LUA`], atomically: one round trip.
/// Returns `{'lease_lost'}` (and changes nothing) on a stale lease.
const COMPLETE_AND_RESERVE_LUA: &str = lua!(concat!(
    r#"
-- ARGV: 2 now, 3 worker, 4 new token, 5 lease expiry, 6 message for lost last attempts,
--       7 batch, 8 id of the job to complete, 9 its lease token
do
  local k = p .. 'job:' .. ARGV[8]
  local f = redis.call('HMGET', k, 'status', 'lease_token', 'kind')
  if f[1] ~= 'running' or f[2] ~= ARGV[9] then return {'lease_lost'} end
  redis.call('HSET', k, 'status', 'succeeded', 'updated_us', ARGV[2])
  redis.call('HDEL', k, 'lease_token', 'lease_expires_us')
  redis.call('ZREM', p .. 'leased', ARGV[8])
  depth('running', f[3], -1)
end
"#,
    reserve_lua_body!()
));

const HEARTBEAT_LUA: &str = lua!(
    r#"
-- ARGV: 2 id, 3 token, 4 new expiry, 5 now. Returns -1 lease lost, 0 continue, 1 cancel.
local k = p .. 'job:' .. ARGV[2]
local f = redis.call('HMGET', k, 'status', 'lease_token', 'cancel_requested')
if f[1] ~= 'running' or f[2] ~= ARGV[3] then return -1 end
redis.call('HSET', k, 'lease_expires_us', ARGV[4], 'updated_us', ARGV[5])
redis.call('ZADD', p .. 'leased', ARGV[4], ARGV[2])
if f[3] == '1' then return 1 end
return 0
"#
);

const PROGRESS_LUA: &str = lua!(
    r#"
-- ARGV: 2 id, 3 token, 4 now, 5 done, 6 has total, 7 total, 8 message. Returns 1 or 0.
local k = p .. 'job:' .. ARGV[2]
local f = redis.call('HMGET', k, 'status', 'lease_token')
if f[1] ~= 'running' or f[2] ~= ARGV[3] then return 0 end
redis.call('HSET', k, 'progress_done', ARGV[5], 'progress_message', ARGV[8], 'updated_us', ARGV[4])
if ARGV[6] == '1' then
  redis.call('HSET', k, 'progress_total', ARGV[7])
else
  redis.call('HDEL', k, 'progress_total')
end
return 1
"#
);

const FINISH_LUA: &str = lua!(
    r#"
-- ARGV: 2 id, 3 token, 4 now, 5 final status (succeeded or cancelled). Returns 1 or 0.
local k = p .. 'job:' .. ARGV[2]
local f = redis.call('HMGET', k, 'status', 'lease_token', 'kind')
if f[1] ~= 'running' or f[2] ~= ARGV[3] then return 0 end
redis.call('HSET', k, 'status', ARGV[5], 'updated_us', ARGV[4])
redis.call('HDEL', k, 'lease_token', 'lease_expires_us')
redis.call('ZREM', p .. 'leased', ARGV[2])
depth('running', f[3], -1)
return 1
"#
);

const FAIL_LUA: &str = lua!(
    r#"
-- ARGV: 2 id, 3 token, 4 now, 5 retryable, 6 next run, 7 error, 8 next ready member.
local k = p .. 'job:' .. ARGV[2]
local f = redis.call('HMGET', k, 'status', 'lease_token', 'attempts', 'max_attempts', 'cancel_requested', 'kind')
if f[1] ~= 'running' or f[2] ~= ARGV[3] then return false end
redis.call('ZREM', p .. 'leased', ARGV[2])
depth('running', f[6], -1)
redis.call('HDEL', k, 'worker', 'lease_token', 'lease_expires_us')
if ARGV[5] == '1' and tonumber(f[3]) < tonumber(f[4]) and f[5] ~= '1' then
  redis.call('HSET', k, 'status', 'queued', 'run_at_us', ARGV[6], 'rmember', ARGV[8],
    'last_error', ARGV[7], 'updated_us', ARGV[4])
  redis.call('ZADD', p .. 'delayed', ARGV[6], ARGV[2])
  depth('queued', f[6], 1)
else
  redis.call('HSET', k, 'status', 'dead', 'last_error', ARGV[7], 'updated_us', ARGV[4])
end
return redis.call('HGETALL', k)
"#
);

const CANCEL_LUA: &str = lua!(
    r#"
-- ARGV: 2 id, 3 now. Returns the job, or nil when there is none.
local k = p .. 'job:' .. ARGV[2]
local f = redis.call('HMGET', k, 'status', 'kind', 'rmember')
if not f[1] then return false end
if f[1] == 'queued' then
  redis.call('HSET', k, 'status', 'cancelled', 'updated_us', ARGV[3])
  redis.call('ZREM', p .. 'ready', f[3])
  redis.call('ZREM', p .. 'delayed', ARGV[2])
  depth('queued', f[2], -1)
elseif f[1] == 'running' then
  redis.call('HSET', k, 'cancel_requested', '1', 'updated_us', ARGV[3])
end
return redis.call('HGETALL', k)
"#
);

const CLEANUP_LUA: &str = lua!(
    r#"
-- ARGV: 2 cutoff, 3.. job ids (one SCAN batch). Returns how many were deleted.
local cutoff = tonumber(ARGV[2])
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local k = p .. 'job:' .. id
  local f = redis.call('HMGET', k, 'status', 'updated_us', 'owner', 'idempotency_key')
  if (f[1] == 'succeeded' or f[1] == 'dead' or f[1] == 'cancelled') and tonumber(f[2]) < cutoff then
    redis.call('DEL', k)
    if f[3] then redis.call('ZREM', p .. 'user:' .. f[3] .. ':jobs', id) end
    if f[4] and redis.call('GET', p .. 'idem:' .. f[4]) == id then redis.call('DEL', p .. 'idem:' .. f[4]) end
    n = n + 1
  end
end
return n
"#
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_members_sort_by_run_at_then_creation() {
        let a = ready_member(1_700_000_000_000_000, 5, JobId::new_random());
        let b = ready_member(1_700_000_000_000_001, 1, JobId::new_random());
        let c = ready_member(999, 1, JobId::new_random());
        assert!(a < b);
        assert!(c < a, "fixed width: a smaller number sorts first");
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn a_hash_missing_fields_is_a_typed_error() {
        let fields = vec!["id".to_owned(), Uuid::new_v4().to_string()];
        assert!(matches!(job_from_fields(fields), Err(StoreError::Backend(_))));
    }
}
