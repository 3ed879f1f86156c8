//! The durable [`JobQueue`]: scans, enforcement batches, rollbacks and token refreshes
//! run as jobs that survive crashes and spread over many workers.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;
use crate::id::{JobId, UserId};

/// A job to enqueue. Build with [`NewJob::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// The job type (`library_scan`, `enforcement`, `rollback`, `token_refresh`…).
    pub kind: String,
    /// The job's input.
    pub payload: serde_json::Value,
    /// The user it belongs to, for listing and authorization.
    pub owner: Option<UserId>,
    /// Enqueuing the same key twice yields the same job.
    pub idempotency_key: Option<String>,
    /// Not before this instant (now when `None`).
    pub run_at: Option<DateTime<Utc>>,
    /// Higher runs first (default 0).
    pub priority: i32,
    /// Attempts before the job is dead (default 5).
    pub max_attempts: u32,
}

impl NewJob {
    /// A job of `kind` with `payload`, priority 0, 5 attempts, to run now.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            payload,
            owner: None,
            idempotency_key: None,
            run_at: None,
            priority: 0,
            max_attempts: 5,
        }
    }

    /// Sets the owner.
    pub fn with_owner(mut self, owner: UserId) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the earliest run time.
    pub fn with_run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the maximum attempts (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for `run_at` and a worker (also after a failed attempt that will retry).
    Queued,
    /// Leased by a worker.
    Running,
    /// Done.
    Succeeded,
    /// Failed its last attempt (or a permanent error): will not run again.
    Dead,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the job will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }
}

/// Progress of a running job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Units done.
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
    /// What is happening.
    pub message: String,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The id.
    pub id: JobId,
    /// The job type.
    pub kind: String,
    /// The input.
    pub payload: serde_json::Value,
    /// The owner.
    pub owner: Option<UserId>,
    /// The status.
    pub status: JobStatus,
    /// The priority.
    pub priority: i32,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Earliest next run.
    pub run_at: DateTime<Utc>,
    /// The idempotency key.
    pub idempotency_key: Option<String>,
    /// Progress reported by the worker.
    pub progress: Option<JobProgress>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// Whether cancellation was asked while it ran.
    pub cancel_requested: bool,
    /// The worker holding the lease.
    pub worker: Option<String>,
    /// When the lease runs out.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A worker's hold on a job. Only the holder of the current lease token can heartbeat,
/// report progress, complete or fail the job.
#[derive(Clone, PartialEq)]
pub struct Lease {
    /// The job as reserved (attempts already counts this attempt).
    pub job: Job,
    /// The lease token.
    pub token: Uuid,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("job", &self.job.id).field("kind", &self.job.kind).finish_non_exhaustive()
    }
}

/// What a heartbeat tells the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Carry on.
    Continue,
    /// The job was cancelled: stop at the next safe point and call `cancelled`.
    CancelRequested,
}

/// Queued and running jobs of one type (for the queue-depth metric).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// The job type.
    pub kind: String,
    /// Jobs queued.
    pub queued: u64,
    /// Jobs running.
    pub running: u64,
}

/// The retry schedule: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_secs(2), max: Duration::from_secs(15 * 60) }
    }
}

impl Backoff {
    /// The delay after failed attempt number `attempt` (1-based): `base * 2^(attempt-1)`,
    /// capped at `max`, scaled by `jitter` in `[0.5, 1.0]` (pass a random number in
    /// `[0, 1)`; the function stays pure).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max);
        capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// A durable job queue.
///
/// # Contract
/// - `enqueue` with an idempotency key already used returns the existing job unchanged.
/// - `reserve` hands out the highest-priority, earliest due job that is queued, or running
///   with an expired lease (its worker died); exactly one caller wins each job. It counts
///   an attempt and returns a new lease token.
/// - `heartbeat`, `progress`, `complete`, `fail` and `cancelled` need the current lease;
///   a stale one is [`StoreError::LeaseLost`].
/// - `fail` with `retryable` queues the job again after [`Backoff`] while attempts
///   remain, else marks it dead.
/// - `cancel` cancels a queued job at once and flags a running one (the worker sees
///   [`Heartbeat::CancelRequested`]); a finished job is returned unchanged.
/// - `list_by_owner` reads the owner's index, newest first: never a scan of all jobs.
/// - `enqueue_many` enqueues each job as `enqueue` would and returns them in input order:
///   a key already stored yields the stored job, and a key repeated inside the batch
///   yields the job of its first occurrence. Backends that can store the batch all-or-nothing
///   (one transaction, one commit) do; the provided default enqueues one job at a time and
///   keeps those stored before an error.
/// - `complete_and_reserve` completes the leased job, then reserves the next one as `reserve`
///   would. The completion is durable before the next lease is returned; with a stale lease it
///   completes nothing, reserves nothing and is [`StoreError::LeaseLost`]. Backends may do both
///   in one commit; if the reservation fails after that, the completion stays.
#[async_trait]
pub trait JobQueue: Send + Sync + fmt::Debug {
    /// Adds a job.
    async fn enqueue(&self, job: NewJob) -> Result<Job, StoreError>;
    /// Leases the next due job to `worker` for `lease_for`.
    async fn reserve(&self, worker: &str, lease_for: Duration) -> Result<Option<Lease>, StoreError>;
    /// Extends the lease.
    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<Heartbeat, StoreError>;
    /// Records progress.
    async fn progress(&self, lease: &Lease, progress: JobProgress) -> Result<(), StoreError>;
    /// Marks the job succeeded.
    async fn complete(&self, lease: &Lease) -> Result<(), StoreError>;
    /// Records a failed attempt.
    async fn fail(&self, lease: &Lease, error: &str, retryable: bool) -> Result<Job, StoreError>;
    /// Marks a running job cancelled (after it saw the request).
    async fn cancelled(&self, lease: &Lease) -> Result<(), StoreError>;
    /// Asks for cancellation.
    async fn cancel(&self, id: JobId) -> Result<Job, StoreError>;
    /// A job by id.
    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    /// The owner's jobs, newest first, at most `limit`, created before `before` if given.
    async fn list_by_owner(
        &self,
        owner: UserId,
        limit: u32,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<Job>, StoreError>;
    /// Queued and running counts per job type.
    async fn depth(&self) -> Result<Vec<QueueDepth>, StoreError>;

    /// Adds several jobs, returned in input order (see the Contract). The default calls
    /// [`enqueue`](Self::enqueue) for each job in turn.
    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>, StoreError> {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(self.enqueue(job).await?);
        }
        Ok(out)
    }

    /// Marks the leased job succeeded and leases the next due job to `worker` for
    /// `lease_for` (see the Contract). The default calls [`complete`](Self::complete), then
    /// [`reserve`](Self::reserve).
    async fn complete_and_reserve(
        &self,
        lease: &Lease,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.complete(lease).await?;
        self.reserve(worker, lease_for).await
    }
}
