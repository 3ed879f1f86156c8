//! The shared suite: plain async checks every `JobQueue` backend runs (memory, SQLite,
//! PostgreSQL, Redis). Each takes a fresh, empty queue built with [`test_backoff`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use dnp_core::{Backoff, Heartbeat, JobId, JobProgress, JobQueue, JobStatus, Lease, NewJob, StoreError, UserId};
use serde_json::json;
use tokio::sync::Barrier;

/// The retry schedule the fixtures use: long enough that "not due yet" is observable on
/// a loaded machine, short enough to wait for.
pub(crate) fn test_backoff() -> Backoff {
    Backoff { base: Duration::from_millis(1200), max: Duration::from_millis(2400) }
}

const LONG: Duration = Duration::from_secs(60);

fn job(kind: &str) -> NewJob {
    NewJob::new(kind, json!({"kind": kind}))
}

/// Reserves until a job comes, or panics after `within`.
pub(crate) async fn reserve_within(q: &dyn JobQueue, worker: &str, lease: Duration, within: Duration) -> Lease {
    let deadline = Instant::now() + within;
    loop {
        if let Some(lease) = q.reserve(worker, lease).await.expect("reserve") {
            return lease;
        }
        assert!(Instant::now() < deadline, "{worker}: no job became available within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_lease_lost<T: std::fmt::Debug>(r: Result<T, StoreError>, id: JobId, what: &str) {
    match r {
        Err(StoreError::LeaseLost { job }) => assert_eq!(job, id, "{what}"),
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

pub(crate) async fn enqueue_and_get(q: Arc<dyn JobQueue>) {
    let owner = UserId::new_random();
    let at = Utc::now() - chrono::Duration::seconds(5);
    let new = NewJob::new("library_scan", json!({"connection": "c1", "n": [1, 2.5, null], "deep": {"a": true}}))
        .with_owner(owner)
        .with_priority(-3)
        .with_max_attempts(7)
        .with_run_at(at);
    let job = q.enqueue(new.clone()).await.unwrap();
    assert_eq!(job.kind, "library_scan");
    assert_eq!(job.payload, new.payload);
    assert_eq!(job.owner, Some(owner));
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!((job.priority, job.attempts, job.max_attempts), (-3, 0, 7));
    assert!((job.run_at - at).num_microseconds().unwrap().abs() <= 1, "run_at kept (to the microsecond)");
    assert!(job.progress.is_none() && job.last_error.is_none() && job.worker.is_none());
    assert!(!job.cancel_requested);
    assert_eq!(q.get(job.id).await.unwrap().as_ref(), Some(&job), "get returns what enqueue returned");
    assert_eq!(q.get(JobId::new_random()).await.unwrap(), None, "an unknown id is None, not an error");
}

pub(crate) async fn idempotency_key_yields_the_same_job(q: Arc<dyn JobQueue>) {
    let first = q.enqueue(job("enforcement").with_idempotency_key("enforce:u1:b1")).await.unwrap();
    let again = NewJob::new("enforcement", json!({"other": "payload"})).with_idempotency_key("enforce:u1:b1");
    let second = q.enqueue(again).await.unwrap();
    assert_eq!(second, first, "the existing job, unchanged");
    let other = q.enqueue(job("enforcement").with_idempotency_key("enforce:u1:b2")).await.unwrap();
    assert_ne!(other.id, first.id);
    let none_a = q.enqueue(job("enforcement")).await.unwrap();
    let none_b = q.enqueue(job("enforcement")).await.unwrap();
    assert_ne!(none_a.id, none_b.id, "no key, no deduplication");

    // Still the same job once it has run.
    let lease = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(lease.job.id, first.id, "oldest first among equals");
    q.complete(&lease).await.unwrap();
    let after = q.enqueue(job("enforcement").with_idempotency_key("enforce:u1:b1")).await.unwrap();
    assert_eq!((after.id, after.status), (first.id, JobStatus::Succeeded));

    // Racing producers: 16 concurrent enqueues of one key make one job.
    let barrier = Arc::new(Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (q, barrier) = (q.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            q.enqueue(NewJob::new("token_refresh", json!({"i": i})).with_idempotency_key("refresh:race")).await.unwrap()
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().id);
    }
    assert_eq!(ids.len(), 1, "one job for one key under a race: {ids:?}");
    let depth = q.depth().await.unwrap();
    let refresh = depth.iter().find(|d| d.kind == "token_refresh").expect("depth has token_refresh");
    assert_eq!(refresh.queued, 1);
}

pub(crate) async fn priorities_then_run_at_order(q: Arc<dyn JobQueue>) {
    let now = Utc::now();
    let secs = chrono::Duration::seconds;
    let low = q.enqueue(job("low").with_priority(-1)).await.unwrap();
    let mid_late = q.enqueue(job("mid_late").with_run_at(now - secs(1))).await.unwrap();
    let mid_early = q.enqueue(job("mid_early").with_run_at(now - secs(10))).await.unwrap();
    let high = q.enqueue(job("high").with_priority(10)).await.unwrap();
    let future = q.enqueue(job("future").with_priority(100).with_run_at(now + secs(3600))).await.unwrap();
    let mut order = Vec::new();
    while let Some(lease) = q.reserve("w", LONG).await.unwrap() {
        assert_eq!(lease.job.status, JobStatus::Running);
        assert_eq!(lease.job.attempts, 1);
        assert_eq!(lease.job.worker.as_deref(), Some("w"));
        order.push(lease.job.id);
    }
    assert_eq!(order, vec![high.id, mid_early.id, mid_late.id, low.id], "priority, then earliest run_at");
    assert_eq!(q.get(future.id).await.unwrap().unwrap().status, JobStatus::Queued, "not due: never handed out");
}

pub(crate) async fn run_at_is_respected(q: Arc<dyn JobQueue>) {
    let at = Utc::now() + chrono::Duration::milliseconds(1500);
    let j = q.enqueue(job("later").with_run_at(at)).await.unwrap();
    assert!(q.reserve("w", LONG).await.unwrap().is_none(), "not before run_at");
    let lease = reserve_within(&*q, "w", LONG, Duration::from_secs(10)).await;
    assert_eq!(lease.job.id, j.id);
    assert!(Utc::now() >= at, "handed out at or after run_at");
}

pub(crate) async fn retry_with_backoff_then_dead(q: Arc<dyn JobQueue>) {
    let j = q.enqueue(job("flaky").with_max_attempts(2)).await.unwrap();
    let first = q.reserve("w1", LONG).await.unwrap().unwrap();
    assert_eq!(first.job.attempts, 1);
    let before = Utc::now();
    let failed = q.fail(&first, "HTTP 503 from the service", true).await.unwrap();
    assert_eq!(failed.status, JobStatus::Queued, "attempts remain: queued again");
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 503 from the service"));
    assert!(failed.lease_expires_at.is_none());
    let wait = failed.run_at - before;
    let base = test_backoff().base;
    assert!(
        wait >= chrono::Duration::from_std(base / 2).unwrap() - chrono::Duration::milliseconds(5),
        "backoff: {wait}"
    );
    assert!(wait <= chrono::Duration::from_std(base).unwrap() + chrono::Duration::milliseconds(200), "backoff: {wait}");
    assert!(q.reserve("w2", LONG).await.unwrap().is_none(), "not before the backoff");
    assert_lease_lost(q.complete(&first).await, j.id, "the failed attempt's lease is gone");

    let second = reserve_within(&*q, "w2", LONG, Duration::from_secs(10)).await;
    assert_eq!((second.job.id, second.job.attempts), (j.id, 2));
    let dead = q.fail(&second, "still 503", true).await.unwrap();
    assert_eq!(dead.status, JobStatus::Dead, "no attempts left");
    assert_eq!(dead.attempts, 2);
    assert_eq!(dead.last_error.as_deref(), Some("still 503"));
    tokio::time::sleep(base + Duration::from_millis(100)).await;
    assert!(q.reserve("w3", LONG).await.unwrap().is_none(), "a dead job never runs again");

    // A permanent error is dead at once, attempts or not.
    let p = q.enqueue(job("permanent")).await.unwrap();
    let lease = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(lease.job.id, p.id);
    assert_eq!(q.fail(&lease, "invalid input", false).await.unwrap().status, JobStatus::Dead);
}

pub(crate) async fn cancel_queued_and_running(q: Arc<dyn JobQueue>) {
    // Queued: cancelled at once, never handed out.
    let queued = q.enqueue(job("scan")).await.unwrap();
    let delayed = q.enqueue(job("scan").with_run_at(Utc::now() + chrono::Duration::milliseconds(300))).await.unwrap();
    assert_eq!(q.cancel(queued.id).await.unwrap().status, JobStatus::Cancelled);
    assert_eq!(q.cancel(delayed.id).await.unwrap().status, JobStatus::Cancelled);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(q.reserve("w", LONG).await.unwrap().is_none(), "cancelled jobs are not reserved");

    // Running: flagged; the worker sees it at its heartbeat and reports cancelled.
    let running = q.enqueue(job("enforcement")).await.unwrap();
    let lease = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(lease.job.id, running.id);
    assert_eq!(q.heartbeat(&lease, LONG).await.unwrap(), Heartbeat::Continue);
    let flagged = q.cancel(running.id).await.unwrap();
    assert_eq!(flagged.status, JobStatus::Running);
    assert!(flagged.cancel_requested);
    assert_eq!(q.heartbeat(&lease, LONG).await.unwrap(), Heartbeat::CancelRequested);
    q.cancelled(&lease).await.unwrap();
    let done = q.get(running.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_lease_lost(q.heartbeat(&lease, LONG).await, running.id, "no heartbeat after cancelled");

    // A cancelled running job that fails is dead, not retried.
    let r2 = q.enqueue(job("enforcement")).await.unwrap();
    let lease2 = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(lease2.job.id, r2.id);
    q.cancel(r2.id).await.unwrap();
    assert_eq!(q.fail(&lease2, "stopped", true).await.unwrap().status, JobStatus::Dead);

    // Finished: returned unchanged. Unknown: NotFound.
    let again = q.cancel(running.id).await.unwrap();
    assert_eq!(again, done);
    assert!(matches!(q.cancel(JobId::new_random()).await, Err(StoreError::NotFound { .. })));
}

pub(crate) async fn stale_lease_is_lost(q: Arc<dyn JobQueue>) {
    let j = q.enqueue(job("scan")).await.unwrap();
    let old = q.reserve("w1", Duration::from_millis(300)).await.unwrap().unwrap();
    assert!(q.reserve("w2", LONG).await.unwrap().is_none(), "a live lease is not handed out");
    let new = reserve_within(&*q, "w2", LONG, Duration::from_secs(10)).await;
    assert_eq!(new.job.id, j.id);
    assert_eq!(new.job.attempts, 2, "the expired lease counted its attempt");
    assert_eq!(new.job.worker.as_deref(), Some("w2"));
    assert_ne!(new.token, old.token);
    let p = JobProgress { done: 1, total: None, message: "late".into() };
    assert_lease_lost(q.heartbeat(&old, LONG).await, j.id, "heartbeat with a stale token");
    assert_lease_lost(q.progress(&old, p).await, j.id, "progress with a stale token");
    assert_lease_lost(q.complete(&old).await, j.id, "complete with a stale token");
    assert_lease_lost(q.fail(&old, "x", true).await, j.id, "fail with a stale token");
    assert_lease_lost(q.cancelled(&old).await, j.id, "cancelled with a stale token");
    assert_eq!(q.get(j.id).await.unwrap().unwrap().status, JobStatus::Running, "stale calls changed nothing");
    q.complete(&new).await.unwrap();
    assert_lease_lost(q.complete(&new).await, j.id, "complete twice");
    let forged = Lease { job: new.job.clone(), token: uuid::Uuid::new_v4() };
    assert_lease_lost(q.heartbeat(&forged, LONG).await, j.id, "a token never issued");
    assert_eq!(q.get(j.id).await.unwrap().unwrap().status, JobStatus::Succeeded);
}

pub(crate) async fn heartbeat_keeps_the_lease(q: Arc<dyn JobQueue>) {
    let j = q.enqueue(job("scan")).await.unwrap();
    let lease = q.reserve("w1", Duration::from_millis(600)).await.unwrap().unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(q.heartbeat(&lease, Duration::from_millis(600)).await.unwrap(), Heartbeat::Continue);
        assert!(q.reserve("w2", LONG).await.unwrap().is_none(), "heartbeats keep the job from other workers");
    }
    let seen = q.get(j.id).await.unwrap().unwrap();
    assert!(seen.lease_expires_at.unwrap() > Utc::now(), "the expiry moved forward");
    q.complete(&lease).await.unwrap();
}

pub(crate) async fn progress_is_visible_while_running(q: Arc<dyn JobQueue>) {
    let j = q.enqueue(job("library_scan")).await.unwrap();
    let lease = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(q.get(j.id).await.unwrap().unwrap().progress, None);
    for done in [0u64, 40, 120] {
        let p = JobProgress { done, total: Some(120), message: format!("{done} of 120 liked tracks") };
        q.progress(&lease, p.clone()).await.unwrap();
        let seen = q.get(j.id).await.unwrap().unwrap();
        assert_eq!(seen.status, JobStatus::Running);
        assert_eq!(seen.progress, Some(p));
    }
    let open = JobProgress { done: 3, total: None, message: "playlists".into() };
    q.progress(&lease, open.clone()).await.unwrap();
    assert_eq!(q.get(j.id).await.unwrap().unwrap().progress, Some(open.clone()), "total may be unknown");
    q.complete(&lease).await.unwrap();
    let done = q.get(j.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.progress), (JobStatus::Succeeded, Some(open)), "progress kept after the end");
}

pub(crate) async fn list_by_owner_order_and_pagination(q: Arc<dyn JobQueue>) {
    let (alice, bob) = (UserId::new_random(), UserId::new_random());
    let mut alice_ids = Vec::new();
    for i in 0..25 {
        alice_ids.push(q.enqueue(job("scan").with_owner(alice).with_priority(i % 3)).await.unwrap().id);
        if i % 5 == 0 {
            q.enqueue(job("scan").with_owner(bob)).await.unwrap();
        }
    }
    q.enqueue(job("scan")).await.unwrap(); // no owner
    assert!(q.list_by_owner(alice, 0, None).await.unwrap().is_empty());
    assert!(q.list_by_owner(UserId::new_random(), 10, None).await.unwrap().is_empty());

    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = q.list_by_owner(alice, 10, before).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        assert!(page.iter().all(|j| j.owner == Some(alice)), "only alice's jobs");
        assert!(page.windows(2).all(|w| w[0].created_at > w[1].created_at), "newest first");
        before = page.last().map(|j| j.created_at);
        pages.push(page);
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
    let listed: Vec<JobId> = pages.into_iter().flatten().map(|j| j.id).collect();
    let expected: Vec<JobId> = alice_ids.iter().rev().copied().collect();
    assert_eq!(listed, expected, "every job once, newest first, across pages");
    assert_eq!(q.list_by_owner(bob, 100, None).await.unwrap().len(), 5);

    // The listing reflects the jobs' current state.
    let lease = q.reserve("w", LONG).await.unwrap().unwrap();
    if lease.job.owner == Some(alice) {
        let seen = q.list_by_owner(alice, 25, None).await.unwrap();
        let it = seen.iter().find(|j| j.id == lease.job.id).unwrap();
        assert_eq!(it.status, JobStatus::Running);
    }
}

pub(crate) async fn depth_per_kind(q: Arc<dyn JobQueue>) {
    for _ in 0..3 {
        q.enqueue(job("enforcement").with_priority(5)).await.unwrap();
    }
    for _ in 0..2 {
        q.enqueue(job("library_scan")).await.unwrap();
    }
    let counts = |d: Vec<dnp_core::QueueDepth>| -> BTreeMap<String, (u64, u64)> {
        d.into_iter().filter(|d| d.queued + d.running > 0).map(|d| (d.kind, (d.queued, d.running))).collect()
    };
    let expect = |v: &[(&str, u64, u64)]| -> BTreeMap<String, (u64, u64)> {
        v.iter().map(|(k, a, b)| ((*k).to_owned(), (*a, *b))).collect()
    };
    assert_eq!(counts(q.depth().await.unwrap()), expect(&[("enforcement", 3, 0), ("library_scan", 2, 0)]));
    let a = q.reserve("w", LONG).await.unwrap().unwrap();
    let b = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(counts(q.depth().await.unwrap()), expect(&[("enforcement", 1, 2), ("library_scan", 2, 0)]));
    q.complete(&a).await.unwrap();
    q.fail(&b, "retry me", true).await.unwrap();
    assert_eq!(counts(q.depth().await.unwrap()), expect(&[("enforcement", 2, 0), ("library_scan", 2, 0)]));
    let c = q.reserve("w", LONG).await.unwrap().unwrap();
    q.fail(&c, "permanent", false).await.unwrap();
    assert_eq!(counts(q.depth().await.unwrap()), expect(&[("enforcement", 1, 0), ("library_scan", 2, 0)]));
}

/// A worker task is killed (aborted) in the middle of its job; its lease runs out, another
/// worker gets the job and completes it, and the job completes exactly once.
pub(crate) async fn worker_killed_mid_job_is_released_and_completes_once(q: Arc<dyn JobQueue>) {
    let j = q.enqueue(job("enforcement")).await.unwrap();
    let completions = Arc::new(AtomicU32::new(0));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let doomed = {
        let (q, completions) = (q.clone(), completions.clone());
        tokio::spawn(async move {
            let lease = q.reserve("doomed", Duration::from_millis(500)).await.unwrap().unwrap();
            q.progress(&lease, JobProgress { done: 1, total: Some(10), message: "halfway".into() }).await.unwrap();
            let _ = started_tx.send(lease.clone());
            // A long job: it would heartbeat and complete, but it is killed first.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            q.complete(&lease).await.unwrap();
            completions.fetch_add(1, Ordering::SeqCst);
        })
    };
    let doomed_lease = started_rx.await.unwrap();
    doomed.abort();
    assert!(doomed.await.unwrap_err().is_cancelled());
    let mid = q.get(j.id).await.unwrap().unwrap();
    assert_eq!(mid.status, JobStatus::Running, "the dead worker's job still looks running");

    // Two healthy workers poll; only one may get the job.
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let (q, completions) = (q.clone(), completions.clone());
        workers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(lease) = q.reserve(name, LONG).await.unwrap() {
                    q.complete(&lease).await.unwrap();
                    completions.fetch_add(1, Ordering::SeqCst);
                    return Some(lease.job.attempts);
                }
                if completions.load(Ordering::SeqCst) > 0 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None
        }));
    }
    let mut got = Vec::new();
    for w in workers {
        got.extend(w.await.unwrap());
    }
    assert_eq!(got, vec![2], "exactly one worker re-leased it, as attempt 2");
    assert_eq!(completions.load(Ordering::SeqCst), 1);
    assert_lease_lost(q.complete(&doomed_lease).await, j.id, "the killed worker's lease");
    let done = q.get(j.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert!(q.reserve("w3", LONG).await.unwrap().is_none());
}

/// `workers` tasks call `reserve` at the same instant for one job: exactly one wins.
pub(crate) async fn workers_race_for_one_job(q: Arc<dyn JobQueue>, workers: usize) {
    for round in 0..5 {
        let j = q.enqueue(job("race")).await.unwrap();
        let barrier = Arc::new(Barrier::new(workers));
        let mut tasks = Vec::new();
        for w in 0..workers {
            let (q, barrier) = (q.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                q.reserve(&format!("w{w}"), LONG).await.unwrap()
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            winners.extend(t.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one of {workers} workers wins");
        assert_eq!(winners[0].job.id, j.id);
        assert_eq!(winners[0].job.attempts, 1);
        q.complete(&winners[0]).await.unwrap();
    }
}

/// `workers` tasks drain `jobs` jobs: each job runs exactly once.
pub(crate) async fn workers_race_for_many_jobs(q: Arc<dyn JobQueue>, workers: usize, jobs: usize) {
    let mut ids = BTreeSet::new();
    for i in 0..jobs {
        ids.insert(q.enqueue(NewJob::new("bulk", json!({"i": i})).with_priority((i % 4) as i32)).await.unwrap().id);
    }
    let barrier = Arc::new(Barrier::new(workers));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (q, barrier) = (q.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut done = Vec::new();
            while let Some(lease) = q.reserve(&format!("w{w}"), LONG).await.unwrap() {
                assert_eq!(lease.job.attempts, 1, "no job is handed out twice");
                q.complete(&lease).await.unwrap();
                done.push(lease.job.id);
            }
            done
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), jobs, "every job done once");
    let unique: BTreeSet<JobId> = all.into_iter().collect();
    assert_eq!(unique, ids);
    for id in ids.iter().take(20) {
        assert_eq!(q.get(*id).await.unwrap().unwrap().status, JobStatus::Succeeded);
    }
}

/// 10,000 queued jobs over 200 users; one user's listing returns exactly that user's jobs.
/// Returns the user and their job ids (newest first), for the backend-specific check that
/// the listing read only that user's index.
pub(crate) async fn ten_thousand_jobs_one_users_listing(q: Arc<dyn JobQueue>) -> (UserId, Vec<JobId>) {
    let users: Vec<UserId> = (0..200).map(|_| UserId::new_random()).collect();
    let target = users[77];
    let mut tasks = Vec::new();
    for t in 0..16usize {
        let (q, users) = (q.clone(), users.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in (t..10_000).step_by(16) {
                let owner = users[i % users.len()];
                let j = q.enqueue(NewJob::new("library_scan", json!({"i": i})).with_owner(owner)).await.unwrap();
                if owner == users[77] {
                    mine.push(j);
                }
            }
            mine
        }));
    }
    let mut mine = Vec::new();
    for t in tasks {
        mine.extend(t.await.unwrap());
    }
    mine.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    assert_eq!(mine.len(), 50);
    let depth = q.depth().await.unwrap();
    assert_eq!(depth.iter().find(|d| d.kind == "library_scan").map(|d| d.queued), Some(10_000));

    let listed = q.list_by_owner(target, 20, None).await.unwrap();
    let expected: Vec<JobId> = mine.iter().take(20).map(|j| j.id).collect();
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), expected);
    assert!(listed.iter().all(|j| j.owner == Some(target)));
    (target, expected)
}

/// SQL and Redis only (MemoryJobQueue re-leases without limit): a job whose lease runs out
/// during its last attempt is dead, so a job that kills its worker cannot loop forever.
pub(crate) async fn lease_lost_on_last_attempt_is_dead(q: Arc<dyn JobQueue>) {
    let j = q.enqueue(job("poison").with_max_attempts(1)).await.unwrap();
    let lease = q.reserve("w1", Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(lease.job.id, j.id);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(q.reserve("w2", LONG).await.unwrap().is_none(), "not re-leased after its last attempt");
    let dead = q.get(j.id).await.unwrap().unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert!(dead.last_error.as_deref().unwrap_or_default().contains("lease expired"), "{:?}", dead.last_error);
    assert_lease_lost(q.complete(&lease).await, j.id, "the lost worker's lease");
    let depth = q.depth().await.unwrap();
    assert!(depth.iter().all(|d| d.kind != "poison" || (d.queued, d.running) == (0, 0)), "{depth:?}");
}

/// Backend cleanup (SQL `cleanup`, Redis `cleanup` by `SCAN`): finished jobs older than
/// the cutoff go, with their owner-index entries and idempotency keys; nothing else does.
pub(crate) async fn cleanup_deletes_only_old_finished_jobs<F, Fut>(q: Arc<dyn JobQueue>, cleanup: F)
where
    F: Fn(chrono::DateTime<Utc>) -> Fut,
    Fut: std::future::Future<Output = Result<u64, StoreError>>,
{
    let owner = UserId::new_random();
    let mk = |kind: &str| job(kind).with_owner(owner);
    let done = q.enqueue(mk("a").with_idempotency_key("cleanup:k1").with_priority(3)).await.unwrap();
    let l = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(l.job.id, done.id);
    q.complete(&l).await.unwrap();
    let dead = q.enqueue(mk("b").with_priority(2)).await.unwrap();
    let l = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(l.job.id, dead.id);
    q.fail(&l, "permanent", false).await.unwrap();
    let cancelled = q.enqueue(mk("c")).await.unwrap();
    q.cancel(cancelled.id).await.unwrap();
    let running = q.enqueue(mk("d").with_priority(1)).await.unwrap();
    let running_lease = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(running_lease.job.id, running.id);
    let queued = q.enqueue(mk("e").with_run_at(Utc::now() + chrono::Duration::hours(1))).await.unwrap();
    for i in 0..7 {
        q.enqueue(job("filler").with_payload_index(i)).await.unwrap();
    }

    assert_eq!(cleanup(Utc::now() - chrono::Duration::hours(1)).await.unwrap(), 0, "nothing is that old");
    assert_eq!(q.list_by_owner(owner, 10, None).await.unwrap().len(), 5);

    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(cleanup(Utc::now()).await.unwrap(), 3, "the succeeded, dead and cancelled jobs");
    for gone in [done.id, dead.id, cancelled.id] {
        assert_eq!(q.get(gone).await.unwrap(), None);
    }
    let left: BTreeSet<JobId> = q.list_by_owner(owner, 10, None).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(left, BTreeSet::from([running.id, queued.id]), "the owner's index lost the deleted jobs");
    let fresh = q.enqueue(mk("a").with_idempotency_key("cleanup:k1")).await.unwrap();
    assert_ne!(fresh.id, done.id, "the key of a deleted job is free again");
    q.complete(&running_lease).await.unwrap();
    assert_eq!(cleanup(Utc::now() + chrono::Duration::seconds(1)).await.unwrap(), 1);
}

trait WithPayloadIndex {
    fn with_payload_index(self, i: usize) -> Self;
}

impl WithPayloadIndex for NewJob {
    fn with_payload_index(mut self, i: usize) -> Self {
        self.payload = json!({ "i": i });
        self
    }
}

/// Fills a queue with 1,000 jobs and leases 990 of them for an hour: the state in which
/// a `reserve` that looked at every running job (it once did, through an index on
/// `(status, kind)`) was five times slower. Returns once the state is there.
pub(crate) async fn many_running_few_queued(q: Arc<dyn JobQueue>) {
    for i in 0..1000 {
        q.enqueue(NewJob::new("bulk", json!({ "i": i }))).await.unwrap();
    }
    for _ in 0..990 {
        q.reserve("holder", Duration::from_secs(3600)).await.unwrap().unwrap();
    }
}

pub(crate) async fn enqueue_many_keeps_idempotency_keys(q: Arc<dyn JobQueue>) {
    assert!(q.enqueue_many(Vec::new()).await.unwrap().is_empty(), "an empty batch stores nothing");
    let stored = q.enqueue(job("enforcement").with_idempotency_key("batch:k0")).await.unwrap();
    let owner = UserId::new_random();
    let batch = vec![
        NewJob::new("enforcement", json!({"n": 0})).with_idempotency_key("batch:k1").with_owner(owner).with_priority(2),
        NewJob::new("enforcement", json!({"n": 1})),
        NewJob::new("enforcement", json!({"n": 2, "other": "payload"})).with_idempotency_key("batch:k0"),
        NewJob::new("enforcement", json!({"n": 3, "other": "payload"})).with_idempotency_key("batch:k1"),
        NewJob::new("enforcement", json!({"n": 4})).with_idempotency_key("batch:k2").with_max_attempts(9),
        NewJob::new("enforcement", json!({"n": 5})),
    ];
    let out = q.enqueue_many(batch).await.unwrap();
    assert_eq!(out.len(), 6, "one job per input, in input order");
    assert_eq!(out[0].payload, json!({"n": 0}));
    assert_eq!((out[0].owner, out[0].priority, out[0].status), (Some(owner), 2, JobStatus::Queued));
    assert_eq!(out[1].payload, json!({"n": 1}));
    assert_eq!(out[2], stored, "a key already stored yields the stored job, unchanged");
    assert_eq!(out[3], out[0], "a key repeated in the batch yields its first job");
    assert_eq!((out[4].payload.clone(), out[4].max_attempts), (json!({"n": 4}), 9));
    assert_eq!(out[5].payload, json!({"n": 5}));
    let distinct: BTreeSet<JobId> = out.iter().map(|j| j.id).collect();
    assert_eq!(distinct.len(), 5, "k0 (stored), k1, two without a key, k2");
    for j in &out {
        assert_eq!(q.get(j.id).await.unwrap().as_ref(), Some(j), "get returns what enqueue_many returned");
    }

    // The same batch again creates only the jobs without a key.
    let again = vec![
        NewJob::new("enforcement", json!({"again": 1})).with_idempotency_key("batch:k2"),
        NewJob::new("enforcement", json!({"again": 2})),
    ];
    let again = q.enqueue_many(again).await.unwrap();
    assert_eq!(again[0], out[4]);
    assert!(!distinct.contains(&again[1].id));

    let depth = q.depth().await.unwrap();
    assert_eq!(depth.iter().map(|d| d.queued).sum::<u64>(), 6, "exactly the distinct jobs are queued");

    // A batch larger than any one statement's rows.
    let many: Vec<NewJob> = (0..1203)
        .map(|i| NewJob::new("bulk", json!({"i": i})).with_idempotency_key(format!("bulk:{}", i % 1100)))
        .collect();
    let many = q.enqueue_many(many).await.unwrap();
    assert_eq!(many.len(), 1203);
    for (i, j) in many.iter().enumerate() {
        assert_eq!(j.payload, json!({"i": i % 1100}), "job {i} is the first of its key");
        assert_eq!(j.idempotency_key.as_deref(), Some(format!("bulk:{}", i % 1100).as_str()));
    }
    let bulk = q.depth().await.unwrap().into_iter().find(|d| d.kind == "bulk").expect("bulk depth");
    assert_eq!(bulk.queued, 1100);
}

pub(crate) async fn complete_and_reserve_moves_to_the_next_job(q: Arc<dyn JobQueue>) {
    let a = q.enqueue(job("scan").with_priority(3)).await.unwrap();
    let b = q.enqueue(job("scan").with_priority(2)).await.unwrap();
    let first = q.reserve("w", LONG).await.unwrap().unwrap();
    assert_eq!(first.job.id, a.id);
    let second = q.complete_and_reserve(&first, "w", LONG).await.unwrap().expect("b is due");
    assert_eq!(second.job.id, b.id);
    assert_eq!((second.job.status, second.job.attempts), (JobStatus::Running, 1));
    assert_eq!(second.job.worker.as_deref(), Some("w"));
    assert_eq!(q.get(a.id).await.unwrap().unwrap().status, JobStatus::Succeeded, "a completed");
    assert_lease_lost(q.complete(&first).await, a.id, "the first lease is spent");
    assert!(q.complete_and_reserve(&second, "w", LONG).await.unwrap().is_none(), "nothing left");
    assert_eq!(q.get(b.id).await.unwrap().unwrap().status, JobStatus::Succeeded, "b completed");
}

pub(crate) async fn complete_and_reserve_with_a_stale_lease_completes_nothing(q: Arc<dyn JobQueue>) {
    let j = q.enqueue(job("scan").with_priority(5)).await.unwrap();
    let old = q.reserve("w1", Duration::from_millis(300)).await.unwrap().unwrap();
    let new = reserve_within(&*q, "w2", LONG, Duration::from_secs(10)).await;
    assert_eq!(new.job.id, j.id);
    let other = q.enqueue(job("scan")).await.unwrap();
    assert_lease_lost(q.complete_and_reserve(&old, "w1", LONG).await, j.id, "complete_and_reserve, stale token");
    let now = q.get(j.id).await.unwrap().unwrap();
    assert_eq!((now.status, now.worker.as_deref()), (JobStatus::Running, Some("w2")), "not completed");
    assert_eq!(q.get(other.id).await.unwrap().unwrap().status, JobStatus::Queued, "nothing reserved");
    let forged = Lease { job: new.job.clone(), token: uuid::Uuid::new_v4() };
    assert_lease_lost(q.complete_and_reserve(&forged, "w3", LONG).await, j.id, "a token never issued");
    assert_eq!(q.get(other.id).await.unwrap().unwrap().status, JobStatus::Queued, "still nothing reserved");
    let next = q.complete_and_reserve(&new, "w2", LONG).await.unwrap().expect("the other job");
    assert_eq!(next.job.id, other.id);
    assert_eq!(q.get(j.id).await.unwrap().unwrap().status, JobStatus::Succeeded);
}

/// `workers` workers loop `complete_and_reserve` over `jobs` jobs enqueued in batches:
/// each job runs exactly once.
pub(crate) async fn workers_race_with_complete_and_reserve(q: Arc<dyn JobQueue>, workers: usize, jobs: usize) {
    let mut ids = BTreeSet::new();
    let batch: Vec<NewJob> =
        (0..jobs).map(|i| NewJob::new("bulk", json!({"i": i})).with_priority((i % 4) as i32)).collect();
    for chunk in batch.chunks(50) {
        ids.extend(q.enqueue_many(chunk.to_vec()).await.unwrap().into_iter().map(|j| j.id));
    }
    assert_eq!(ids.len(), jobs);
    let barrier = Arc::new(Barrier::new(workers));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (q, barrier) = (q.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let worker = format!("w{w}");
            let mut done = Vec::new();
            let mut next = q.reserve(&worker, LONG).await.unwrap();
            while let Some(lease) = next {
                assert_eq!(lease.job.attempts, 1, "no job is handed out twice");
                done.push(lease.job.id);
                next = q.complete_and_reserve(&lease, &worker, LONG).await.unwrap();
            }
            done
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), jobs, "every job done once");
    let unique: BTreeSet<JobId> = all.into_iter().collect();
    assert_eq!(unique, ids);
    for id in &ids {
        assert_eq!(q.get(*id).await.unwrap().unwrap().status, JobStatus::Succeeded);
    }
}
