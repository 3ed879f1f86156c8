//! The background jobs: token refresh (and needs_reauth with a notification when it cannot),
//! cancellation of a running batch, scheduled re-enforcement.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::spotify::{World, top_artist};
use dnp_core::NewJob;
use serde_json::json;

async fn wait_until<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F, what: &str) {
    for _ in 0..400 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_renews_expiring_connections_and_flags_refused_ones() {
    dnp_server::api::ops::install_metrics();
    let world = World::start(21).await;
    let app = &world.app;
    let (token, user) = app.register("refresh@example.org").await;
    world.connect_spotify(&token).await;
    let before = app.get("/api/v1/connections", &token).await.body["items"][0]["expires_at"].clone();

    // The sweep finds the connection (its one-hour token expires within 24 hours) and
    // refreshes it through a token_refresh job.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.state.queue().enqueue(NewJob::new(dnp_server::jobs::TOKEN_REFRESH_SWEEP, json!({}))).await.unwrap();
    wait_until(
        || async { app.get("/api/v1/connections", &token).await.body["items"][0]["expires_at"] != before },
        "the refreshed expiry",
    )
    .await;
    let conn = app.get("/api/v1/connections", &token).await;
    assert_eq!(conn.body["items"][0]["status"], "active");

    // The service revokes the grant: the next refresh is refused, the connection is marked
    // needs_reauth and the user is told.
    world.emulator.faults().revoke_all_tokens();
    app.state.queue().enqueue(NewJob::new(dnp_server::jobs::TOKEN_REFRESH_SWEEP, json!({"again": 1}))).await.unwrap();
    wait_until(
        || async { app.get("/api/v1/connections", &token).await.body["items"][0]["status"] == "needs_reauth" },
        "needs_reauth",
    )
    .await;
    let notes = app.get("/api/v1/notifications?unread=true", &token).await;
    let note = notes.body["items"].as_array().unwrap().iter().find(|n| n["kind"] == "needs_reauth").expect("notified");
    assert!(note["title"].as_str().unwrap().contains("Spotify"));
    let mut found_job = false;
    for job in app.get("/api/v1/jobs", &token).await.body["items"].as_array().unwrap() {
        if job["kind"] == "token_refresh" {
            found_job = true;
            assert_eq!(job["payload"]["user_id"], user.as_str());
        }
    }
    assert!(found_job, "refresh jobs are listed under their user");

    // Enforcement and scans skip a connection that needs re-authorization, and say why.
    let scans = app.post("/api/v1/library/scans", &token, json!({})).await;
    assert_eq!(scans.status, StatusCode::ACCEPTED, "{}", scans.text);
    assert_eq!(scans.body["skipped"][0]["reason"], "needs_reauth");
    let plan = app.post("/api/v1/enforcement/plans", &token, json!({})).await;
    assert_eq!(plan.body["skipped_providers"][0]["reason"], "needs_reauth", "{}", plan.text);

    // Connecting again makes it active.
    assert_eq!(world.connect_spotify(&token).await.body["status"], "active");

    // The counters moved.
    let metrics = app.call("GET", "/metrics", None, None).await.text;
    assert!(metrics.contains("tokens_refreshed_total{provider=\"spotify\"} 1"), "{metrics}");
    assert!(metrics.contains("token_refresh_failures_total{provider=\"spotify\"}"), "{metrics}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_batch_stops_when_its_job_is_cancelled() {
    let world = World::start(22).await;
    let app = &world.app;
    let (token, _) = app.register("cancel@example.org").await;
    world.connect_spotify(&token).await;
    // Block several artists so the plan has many calls, and slow the service down.
    let library = world.emulator.library("listener");
    let mut artists: Vec<(String, String)> = library
        .liked_tracks
        .iter()
        .filter_map(|l| l.track.artists.first().and_then(|a| a.id.clone().map(|id| (a.name.clone(), id))))
        .collect();
    artists.sort();
    artists.dedup();
    for (name, id) in artists.iter().take(40) {
        app.post("/api/v1/dnp", &token, json!({"artist": {"name": name, "provider_ids": {"spotify": [id]}}})).await;
    }
    world.scan(&token).await;
    let plan = app.post("/api/v1/enforcement/plans", &token, json!({"policy": {"targets": {"liked_tracks": true, "saved_albums": false, "followed_artists": false, "playlist_items": true}}})).await;
    let calls = plan.body["summary"]["api_calls"].as_u64().unwrap();
    assert!(calls >= 6, "{calls} calls");
    world.emulator.set_latency(Duration::from_millis(700));
    let started = app.post("/api/v1/enforcement/batches", &token, json!({"plan_id": plan.body["id"]})).await;
    let batch_id = started.body["batches"][0]["id"].as_str().unwrap().to_owned();
    let job_id = started.body["batches"][0]["job_id"].as_str().unwrap().to_owned();
    wait_until(
        || async { app.get(&format!("/api/v1/jobs/{job_id}"), &token).await.body["status"] == "running" },
        "the batch to run",
    )
    .await;
    let cancel = app.post(&format!("/api/v1/jobs/{job_id}/cancel"), &token, json!({})).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text);
    assert_eq!(cancel.body["cancel_requested"], true);
    let batch = world.wait_batch(&token, &batch_id).await;
    world.emulator.set_latency(Duration::ZERO);
    assert_eq!(batch["status"], "cancelled", "{batch}");
    assert!(batch["counts"]["cancelled"].as_u64().unwrap() > 0, "{}", batch["counts"]);
    let job = world.wait_job(&token, &job_id).await;
    assert_eq!(job["status"], "cancelled");
    // What did run can still be rolled back.
    if batch["counts"]["confirmed"].as_u64().unwrap() > 0 {
        let rb = app
            .post(&format!("/api/v1/enforcement/batches/{batch_id}/rollback"), &token, json!({"wait_seconds": 30}))
            .await;
        assert_eq!(rb.body["rolled_back"], batch["counts"]["confirmed"], "{}", rb.text);
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_reenforcement_removes_what_was_liked_again() {
    let world = World::start(23).await;
    let app = &world.app;
    let (token, user) = app.register("schedule@example.org").await;
    world.connect_spotify(&token).await;
    let (name, artist_id, liked) = top_artist(&world.emulator.library("listener"));
    app.post(
        "/api/v1/dnp",
        &token,
        json!({"artist": {"name": name, "provider_ids": {"spotify": [artist_id.clone()]}}}),
    )
    .await;
    let s = app
        .call("PUT", "/api/v1/settings", Some(&token), Some(json!({"policy": {}, "reenforce_every_hours": 6})))
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    assert!(s.body["next_reenforce_at"].is_string());
    // Make it due now.
    let db = app.state.db();
    dnp_server::with_pool!(db, pool => {
        sqlx::query("UPDATE users SET next_reenforce_at = 0 WHERE id = $1").bind(&user).execute(pool).await.unwrap().rows_affected()
    });
    app.state.queue().enqueue(NewJob::new(dnp_server::jobs::REENFORCE_SWEEP, json!({}))).await.unwrap();
    wait_until(
        || async {
            let b = app.get("/api/v1/enforcement/batches", &token).await;
            b.body["items"].as_array().is_some_and(|i| i.iter().any(|b| b["status"] == "succeeded"))
        },
        "the scheduled batch",
    )
    .await;
    let after = world.emulator.library("listener");
    let left = after
        .liked_tracks
        .iter()
        .filter(|l| l.track.artists.iter().any(|a| a.id.as_deref() == Some(artist_id.as_str())))
        .count();
    assert_eq!(left, 0, "all {liked} liked tracks of the blocked artist are gone");
    let settings = app.get("/api/v1/settings", &token).await;
    let next = chrono::DateTime::parse_from_rfc3339(settings.body["next_reenforce_at"].as_str().unwrap()).unwrap();
    assert!(next > chrono::Utc::now() + chrono::Duration::hours(5), "the next run is scheduled: {next}");
    world.stop().await;
}

/// A queue that delegates to the server's and records which calls the worker made.
#[derive(Debug)]
struct Recording {
    inner: std::sync::Arc<dyn dnp_core::JobQueue>,
    calls: std::sync::Mutex<Vec<&'static str>>,
    /// Signalled (stop the worker) when the first job is reserved, if set.
    stop_on_first_reserve: Option<tokio::sync::watch::Sender<bool>>,
}

impl Recording {
    fn record(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }

    fn count(&self, call: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|c| **c == call).count()
    }
}

#[async_trait::async_trait]
impl dnp_core::JobQueue for Recording {
    async fn enqueue(&self, job: NewJob) -> Result<dnp_core::Job, dnp_core::StoreError> {
        self.inner.enqueue(job).await
    }
    async fn reserve(
        &self,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<dnp_core::Lease>, dnp_core::StoreError> {
        let lease = self.inner.reserve(worker, lease_for).await?;
        if lease.is_some() {
            self.record("reserve: a job");
            if let Some(stop) = &self.stop_on_first_reserve {
                stop.send_replace(true);
            }
        }
        Ok(lease)
    }
    async fn heartbeat(
        &self,
        lease: &dnp_core::Lease,
        extend: Duration,
    ) -> Result<dnp_core::Heartbeat, dnp_core::StoreError> {
        self.inner.heartbeat(lease, extend).await
    }
    async fn progress(&self, lease: &dnp_core::Lease, p: dnp_core::JobProgress) -> Result<(), dnp_core::StoreError> {
        self.inner.progress(lease, p).await
    }
    async fn complete(&self, lease: &dnp_core::Lease) -> Result<(), dnp_core::StoreError> {
        self.record("complete");
        self.inner.complete(lease).await
    }
    async fn fail(
        &self,
        lease: &dnp_core::Lease,
        error: &str,
        retryable: bool,
    ) -> Result<dnp_core::Job, dnp_core::StoreError> {
        self.record("fail");
        self.inner.fail(lease, error, retryable).await
    }
    async fn cancelled(&self, lease: &dnp_core::Lease) -> Result<(), dnp_core::StoreError> {
        self.inner.cancelled(lease).await
    }
    async fn cancel(&self, id: dnp_core::JobId) -> Result<dnp_core::Job, dnp_core::StoreError> {
        self.inner.cancel(id).await
    }
    async fn get(&self, id: dnp_core::JobId) -> Result<Option<dnp_core::Job>, dnp_core::StoreError> {
        self.inner.get(id).await
    }
    async fn list_by_owner(
        &self,
        owner: dnp_core::UserId,
        limit: u32,
        before: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<dnp_core::Job>, dnp_core::StoreError> {
        self.inner.list_by_owner(owner, limit, before).await
    }
    async fn depth(&self) -> Result<Vec<dnp_core::QueueDepth>, dnp_core::StoreError> {
        self.inner.depth().await
    }
    async fn complete_and_reserve(
        &self,
        lease: &dnp_core::Lease,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<dnp_core::Lease>, dnp_core::StoreError> {
        let next = self.inner.complete_and_reserve(lease, worker, lease_for).await?;
        self.record(if next.is_some() { "complete_and_reserve: a job" } else { "complete_and_reserve: none" });
        Ok(next)
    }
}

/// A server whose queue (SQL on SQLite or PostgreSQL) is wrapped in [`Recording`].
async fn recorded_app(
    postgres: bool,
    stop_on_first_reserve: Option<tokio::sync::watch::Sender<bool>>,
) -> (common::TestApp, std::sync::Arc<Recording>) {
    let dir = tempfile::tempdir().unwrap();
    let mut pg_admin = None;
    let mut extra = Vec::new();
    if postgres {
        let admin = std::env::var("DNP_TEST_POSTGRES_URL")
            .expect("DNP_TEST_POSTGRES_URL is not set: run scripts/test (it starts PostgreSQL and sets it)");
        let name = format!("dnp_server_test_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
        pool.close().await;
        let (base, _) = admin.rsplit_once('/').expect("DNP_TEST_POSTGRES_URL ends in /database");
        extra.push(("DATABASE_URL".to_owned(), format!("{base}/{name}")));
        pg_admin = Some((admin, name));
    }
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = common::config(dir.path(), &extra);
    let db = dnp_server::run::connect_and_migrate(&config).await.expect("database");
    let mut backends = dnp_server::run::backends(&config, db).await.expect("backends");
    let recording = std::sync::Arc::new(Recording {
        inner: backends.queue.clone(),
        calls: std::sync::Mutex::default(),
        stop_on_first_reserve,
    });
    backends.queue = recording.clone();
    let app = common::TestApp::from_parts(config, backends, dnp_server::Providers::new(), dir, pg_admin);
    (app, recording)
}

/// Three quick jobs (sweeps that find nothing to do), in order of priority.
async fn enqueue_three(app: &common::TestApp) -> Vec<dnp_core::Job> {
    let mut jobs = Vec::new();
    for n in 0..3 {
        let mut job = NewJob::new(dnp_server::jobs::TOKEN_REFRESH_SWEEP, json!({"n": n}))
            .with_idempotency_key(format!("chained-{n}"));
        job.priority = 10 - n;
        jobs.push(app.state.queue().enqueue(job).await.unwrap());
    }
    jobs
}

fn worker_config() -> dnp_server::worker::WorkerConfig {
    dnp_server::worker::WorkerConfig {
        name: "chain-worker".into(),
        concurrency: 1,
        lease: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        scheduler: false,
    }
}

async fn a_slot_completes_its_job_and_reserves_the_next_in_one_call(postgres: bool) {
    let (app, recording) = recorded_app(postgres, None).await;
    let jobs = enqueue_three(&app).await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(dnp_server::worker::run(app.state.clone(), worker_config(), rx));
    let queue = app.state.queue().clone();
    wait_until(
        || {
            let (queue, jobs) = (queue.clone(), jobs.clone());
            async move {
                for j in jobs {
                    if queue.get(j.id).await.unwrap().unwrap().status != dnp_core::JobStatus::Succeeded {
                        return false;
                    }
                }
                true
            }
        },
        "the three jobs to succeed",
    )
    .await;
    stop.send(true).unwrap();
    worker.await.unwrap();
    // The worker reserved the first job; each completion reserved the next, the last found none.
    assert_eq!(recording.count("reserve: a job"), 1, "{:?}", recording.calls.lock().unwrap());
    assert_eq!(recording.count("complete_and_reserve: a job"), 2, "{:?}", recording.calls.lock().unwrap());
    assert_eq!(recording.count("complete_and_reserve: none"), 1, "{:?}", recording.calls.lock().unwrap());
    assert_eq!(recording.count("complete"), 0, "{:?}", recording.calls.lock().unwrap());
    for j in &jobs {
        let j = queue.get(j.id).await.unwrap().unwrap();
        assert_eq!((j.status, j.attempts), (dnp_core::JobStatus::Succeeded, 1), "{j:?}");
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_completes_its_job_and_reserves_the_next_in_one_call_on_sqlite() {
    a_slot_completes_its_job_and_reserves_the_next_in_one_call(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_completes_its_job_and_reserves_the_next_in_one_call_on_postgres() {
    a_slot_completes_its_job_and_reserves_the_next_in_one_call(true).await;
}

/// A worker told to stop while a job runs finishes that job and reserves no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_completes_its_job_and_reserves_no_other() {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (app, recording) = recorded_app(false, Some(stop)).await;
    let jobs = enqueue_three(&app).await;
    tokio::time::timeout(Duration::from_secs(20), dnp_server::worker::run(app.state.clone(), worker_config(), rx))
        .await
        .expect("the worker stops once its job has run");
    assert_eq!(*recording.calls.lock().unwrap(), ["reserve: a job", "complete"]);
    let queue = app.state.queue();
    let first = queue.get(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(first.status, dnp_core::JobStatus::Succeeded, "{first:?}");
    for j in &jobs[1..] {
        let j = queue.get(j.id).await.unwrap().unwrap();
        assert_eq!((j.status, j.attempts), (dnp_core::JobStatus::Queued, 0), "left for another worker: {j:?}");
    }
    app.cleanup().await;
}
