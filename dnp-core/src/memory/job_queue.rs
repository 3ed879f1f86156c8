use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::StoreError;
use crate::id::{JobId, UserId};
use crate::queue::{Backoff, Heartbeat, Job, JobProgress, JobQueue, JobStatus, Lease, NewJob, QueueDepth};

#[derive(Debug, Default)]
struct State {
    jobs: BTreeMap<JobId, (Job, Option<Uuid>)>,
    by_key: BTreeMap<String, JobId>,
    /// Owner index: (owner, created_at, id).
    by_owner: BTreeSet<(UserId, DateTime<Utc>, JobId)>,
}

/// A [`JobQueue`] in memory.
#[derive(Debug, Default)]
pub struct MemoryJobQueue {
    state: Mutex<State>,
    backoff: Backoff,
}

impl MemoryJobQueue {
    /// An empty queue with the default [`Backoff`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue with `backoff`.
    pub fn with_backoff(backoff: Backoff) -> Self {
        Self { state: Mutex::default(), backoff }
    }

    fn with_lease<T>(&self, lease: &Lease, f: impl FnOnce(&mut Job) -> T) -> Result<T, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.jobs.get_mut(&lease.job.id) {
            Some((job, Some(token))) if *token == lease.token && job.status == JobStatus::Running => Ok(f(job)),
            _ => Err(StoreError::LeaseLost { job: lease.job.id }),
        }
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[async_trait]
impl JobQueue for MemoryJobQueue {
    async fn enqueue(&self, new: NewJob) -> Result<Job, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = &new.idempotency_key
            && let Some(id) = state.by_key.get(key)
            && let Some((job, _)) = state.jobs.get(id)
        {
            return Ok(job.clone());
        }
        let now = Utc::now();
        let job = Job {
            id: JobId::new_random(),
            kind: new.kind,
            payload: new.payload,
            owner: new.owner,
            status: JobStatus::Queued,
            priority: new.priority,
            attempts: 0,
            max_attempts: new.max_attempts.max(1),
            run_at: new.run_at.unwrap_or(now),
            idempotency_key: new.idempotency_key,
            progress: None,
            last_error: None,
            cancel_requested: false,
            worker: None,
            lease_expires_at: None,
            created_at: now,
            updated_at: now,
        };
        if let Some(key) = &job.idempotency_key {
            state.by_key.insert(key.clone(), job.id);
        }
        if let Some(owner) = job.owner {
            state.by_owner.insert((owner, job.created_at, job.id));
        }
        state.jobs.insert(job.id, (job.clone(), None));
        Ok(job)
    }

    async fn reserve(&self, worker: &str, lease_for: Duration) -> Result<Option<Lease>, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Utc::now();
        let due = state
            .jobs
            .values()
            .map(|(j, _)| j)
            .filter(|j| {
                (j.status == JobStatus::Queued && j.run_at <= now)
                    || (j.status == JobStatus::Running && j.lease_expires_at.is_some_and(|t| t <= now))
            })
            .min_by_key(|j| (std::cmp::Reverse(j.priority), j.run_at, j.created_at))
            .map(|j| j.id);
        let Some(id) = due else {
            return Ok(None);
        };
        let Some((job, token)) = state.jobs.get_mut(&id) else {
            return Ok(None);
        };
        let new_token = Uuid::new_v4();
        job.status = JobStatus::Running;
        job.attempts += 1;
        job.worker = Some(worker.to_owned());
        job.lease_expires_at = Some(now + to_chrono(lease_for));
        job.updated_at = now;
        *token = Some(new_token);
        Ok(Some(Lease { job: job.clone(), token: new_token }))
    }

    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<Heartbeat, StoreError> {
        self.with_lease(lease, |job| {
            let now = Utc::now();
            job.lease_expires_at = Some(now + to_chrono(extend));
            job.updated_at = now;
            if job.cancel_requested { Heartbeat::CancelRequested } else { Heartbeat::Continue }
        })
    }

    async fn progress(&self, lease: &Lease, progress: JobProgress) -> Result<(), StoreError> {
        self.with_lease(lease, |job| {
            job.progress = Some(progress);
            job.updated_at = Utc::now();
        })
    }

    async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        self.with_lease(lease, |job| {
            job.status = JobStatus::Succeeded;
            job.lease_expires_at = None;
            job.updated_at = Utc::now();
        })
    }

    async fn fail(&self, lease: &Lease, error: &str, retryable: bool) -> Result<Job, StoreError> {
        let backoff = self.backoff;
        self.with_lease(lease, |job| {
            let now = Utc::now();
            job.last_error = Some(error.to_owned());
            job.lease_expires_at = None;
            job.worker = None;
            job.updated_at = now;
            if retryable && job.attempts < job.max_attempts && !job.cancel_requested {
                job.status = JobStatus::Queued;
                job.run_at = now + to_chrono(backoff.delay(job.attempts, rand_unit(job.id)));
            } else {
                job.status = JobStatus::Dead;
            }
            job.clone()
        })
    }

    async fn cancelled(&self, lease: &Lease) -> Result<(), StoreError> {
        self.with_lease(lease, |job| {
            job.status = JobStatus::Cancelled;
            job.lease_expires_at = None;
            job.updated_at = Utc::now();
        })
    }

    async fn cancel(&self, id: JobId) -> Result<Job, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (job, _) = state.jobs.get_mut(&id).ok_or_else(|| StoreError::NotFound { what: format!("job {id}") })?;
        match job.status {
            JobStatus::Queued => job.status = JobStatus::Cancelled,
            JobStatus::Running => job.cancel_requested = true,
            _ => return Ok(job.clone()),
        }
        job.updated_at = Utc::now();
        Ok(job.clone())
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state.jobs.get(&id).map(|(j, _)| j.clone()))
    }

    async fn list_by_owner(
        &self,
        owner: UserId,
        limit: u32,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<Job>, StoreError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let lo = (owner, DateTime::<Utc>::MIN_UTC, JobId(Uuid::nil()));
        let hi = (owner, before.unwrap_or(DateTime::<Utc>::MAX_UTC), JobId(Uuid::nil()));
        Ok(state
            .by_owner
            .range(lo..hi)
            .rev()
            .take(limit as usize)
            .filter_map(|(_, _, id)| state.jobs.get(id).map(|(j, _)| j.clone()))
            .collect())
    }

    async fn depth(&self) -> Result<Vec<QueueDepth>, StoreError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_kind: BTreeMap<String, QueueDepth> = BTreeMap::new();
        for (job, _) in state.jobs.values() {
            let entry = by_kind.entry(job.kind.clone()).or_insert_with(|| QueueDepth {
                kind: job.kind.clone(),
                queued: 0,
                running: 0,
            });
            match job.status {
                JobStatus::Queued => entry.queued += 1,
                JobStatus::Running => entry.running += 1,
                _ => {}
            }
        }
        Ok(by_kind.into_values().collect())
    }
}

/// A number in [0, 1) derived from the job id: jitter without a random number generator.
fn rand_unit(id: JobId) -> f64 {
    let bytes = id.0.as_bytes();
    f64::from(u16::from_le_bytes([bytes[14], bytes[15]])) / 65536.0
}
