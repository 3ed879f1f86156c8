//! The worker: reserves jobs with a lease, heartbeats while they run, stops them when
//! cancellation is asked, and records how each attempt ended. Also runs the scheduler
//! that enqueues the periodic jobs (token refresh, re-enforcement).
//!
//! Each of the `concurrency` slots runs one job at a time. A slot whose job succeeded, while
//! the worker is not stopping, completes it and reserves its next job in one call
//! ([`JobQueue::complete_and_reserve`](dnp_core::JobQueue::complete_and_reserve): one
//! transaction on SQL, one script on Redis) and runs that job at once; when the queue has
//! none, the slot goes back to the worker, which polls. A worker told to stop reserves
//! nothing more: its slots only complete their jobs, and it returns once every job it
//! reserved has run (even one reserved while the stop was being signalled).

use std::sync::Arc;
use std::time::Duration;

use dnp_core::{CancelFlag, Heartbeat, JobStatus, Lease, StoreError};
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::jobs::{self, JobContext};
use crate::state::AppState;

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// A name for logs and the queue's `worker` field.
    pub name: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// The lease taken on each job (heartbeats renew it every third of it).
    pub lease: Duration,
    /// How long to wait before asking again when the queue is empty.
    pub poll_interval: Duration,
    /// Whether this worker also enqueues the periodic jobs.
    pub scheduler: bool,
}

impl WorkerConfig {
    /// The configuration `state`'s [`Config`](crate::Config) gives.
    pub fn from_state(state: &AppState) -> Self {
        Self {
            name: format!("{}-{}", hostname(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
            concurrency: state.config().worker_concurrency,
            lease: state.config().queue.lease,
            poll_interval: Duration::from_millis(250),
            scheduler: true,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}

/// Runs the worker until `shutdown` turns true; waits for running jobs to finish.
pub async fn run(state: AppState, config: WorkerConfig, mut shutdown: watch::Receiver<bool>) {
    tracing::info!(worker = %config.name, concurrency = config.concurrency, "worker started");
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let scheduler = config.scheduler.then(|| tokio::spawn(scheduler_loop(state.clone(), shutdown.clone())));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        match state.queue().reserve(&config.name, config.lease).await {
            Ok(Some(lease)) => {
                let state = state.clone();
                let worker = config.name.clone();
                let lease_for = config.lease;
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    // The slot runs the jobs it reserves as it completes the last one,
                    // until the queue has none or the worker stops.
                    let mut next = Some(lease);
                    while let Some(lease) = next.take() {
                        next = run_one(&state, lease, lease_for, &worker, &shutdown).await;
                    }
                    drop(permit);
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(config.poll_interval) => {},
                    _ = shutdown.changed() => {},
                }
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "reserving a job failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    // Let running jobs finish (their leases are heartbeated until then).
    let _ = slots.acquire_many(config.concurrency.max(1) as u32).await;
    if let Some(s) = scheduler {
        s.abort();
    }
    tracing::info!(worker = %config.name, "worker stopped");
}

async fn scheduler_loop(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut cleanup_tick = 0u32;
    loop {
        if let Err(e) = jobs::enqueue_periodic(&state).await {
            tracing::warn!(error = %e, "enqueuing periodic jobs failed");
        }
        match state.0.limiter.prune().await {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "ended login limit windows pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning login limits failed"),
        }
        cleanup_tick += 1;
        if cleanup_tick % 60 == 1
            && let Some(q) = &state.backends().queue_maintenance
        {
            let older = chrono::Utc::now() - chrono::Duration::days(14);
            match q.cleanup(older, state.config().queue.cleanup_batch).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "finished jobs cleaned up"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "job cleanup failed"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(60)) => {},
            _ = shutdown.changed() => return,
        }
    }
}

/// Runs one leased job to its end, with heartbeats and progress, and records the outcome.
/// When the job succeeded and `shutdown` is not set, the completion also reserves the next
/// job for `worker`, which is returned: the caller must run it (its lease is live).
async fn run_one(
    state: &AppState,
    lease: Lease,
    lease_for: Duration,
    worker: &str,
    shutdown: &watch::Receiver<bool>,
) -> Option<Lease> {
    let job = lease.job.clone();
    let correlation =
        job.payload.get("request_id").and_then(|v| v.as_str()).map(str::to_owned).unwrap_or_else(|| job.id.to_string());
    let span = tracing::info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempts, correlation_id = %correlation);
    async move {
        tracing::info!("job started");
        let cancel = Arc::new(CancelFlag::new());
        let (progress_tx, mut progress_rx) = watch::channel(None);
        let lease = Arc::new(lease);
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));

        // Heartbeats and progress, until the job's future ends.
        let keeper = {
            let state = state.clone();
            let lease = lease.clone();
            let cancel = cancel.clone();
            let lost = lost.clone();
            tokio::spawn(
                async move {
                    let mut tick = tokio::time::interval((lease_for / 3).max(Duration::from_millis(100)));
                    tick.tick().await;
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {
                                match state.queue().heartbeat(&lease, lease_for).await {
                                    Ok(Heartbeat::Continue) => {}
                                    Ok(Heartbeat::CancelRequested) => {
                                        if !cancel.is_cancelled() {
                                            tracing::info!("cancellation requested");
                                        }
                                        cancel.cancel();
                                    }
                                    Err(StoreError::LeaseLost { .. }) => {
                                        tracing::warn!("lease lost; stopping");
                                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                                        cancel.cancel();
                                        return;
                                    }
                                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                                }
                            }
                            changed = progress_rx.changed() => {
                                if changed.is_err() { return; }
                                let p = progress_rx.borrow_and_update().clone();
                                if let Some(p) = p
                                    && let Err(e) = state.queue().progress(&lease, p).await
                                {
                                    tracing::debug!(error = %e, "progress not recorded");
                                }
                            }
                        }
                    }
                }
                .in_current_span(),
            )
        };

        let ctx = JobContext {
            state: state.clone(),
            cancel: cancel.clone(),
            progress: progress_tx,
            attempt: job.attempts,
            max_attempts: job.max_attempts,
        };
        let result = jobs::run(&ctx, &job).await;
        // Flush the last progress before finishing.
        let last = ctx.progress.borrow().clone();
        drop(ctx);
        let _ = keeper.await;
        if lost.load(std::sync::atomic::Ordering::SeqCst) {
            tracing::warn!("job abandoned: its lease was lost");
            return None;
        }
        if let Some(p) = last {
            let _ = state.queue().progress(&lease, p).await;
        }
        let mut next = None;
        let outcome = match result {
            Ok(()) if cancel.is_cancelled() => state.queue().cancelled(&lease).await.map(|()| "cancelled"),
            // Stopping: complete only, reserve nothing more.
            Ok(()) if *shutdown.borrow() => state.queue().complete(&lease).await.map(|()| "succeeded"),
            Ok(()) => state.queue().complete_and_reserve(&lease, worker, lease_for).await.map(|n| {
                next = n;
                "succeeded"
            }),
            Err(e) => {
                tracing::warn!(error = %e.message, retryable = e.retryable, "job attempt failed");
                match state.queue().fail(&lease, &e.message, e.retryable).await {
                    Ok(j) if j.status == JobStatus::Dead => {
                        jobs::on_dead(state, &j).await;
                        Ok("dead")
                    }
                    Ok(_) => Ok("retry scheduled"),
                    Err(e) => Err(e),
                }
            }
        };
        match outcome {
            Ok(o) => tracing::info!(
                outcome = o,
                next_job = next.as_ref().map(|l| tracing::field::display(l.job.id)),
                "job finished"
            ),
            // complete_and_reserve may have completed the job before the reservation failed;
            // either way the slot reserves nothing now and the worker polls again.
            Err(e) => tracing::warn!(error = %e, "recording the job's outcome (or reserving the next job) failed"),
        }
        next
    }
    .instrument(span)
    .await
}
