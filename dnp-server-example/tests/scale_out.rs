//! Two servers and two workers on one PostgreSQL database and one Redis: every job runs
//! once, nothing is lost, and either server answers for work the other started.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::TestApp;
use common::spotify::{PUBLIC, spotify_config, top_artist};
use dnp_core::ProviderId;
use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
use dnp_providers::spotify::emulator::SpotifyEmulator;
use dnp_server::{Providers, run};
use serde_json::{Value, json};

const USERS: usize = 6;

async fn node(
    emulator: &SpotifyEmulator,
    db_url: &str,
    redis_url: &str,
    prefix: &str,
    dir: &std::path::Path,
) -> (TestApp, dnp_queue::RedisJobQueue) {
    let key_file = dir.join("shared-kms.key").display().to_string();
    let config =
        common::config(dir, &[("DATABASE_URL", db_url), ("REDIS_URL", redis_url), ("LOCAL_KMS_KEY_FILE", &key_file)]);
    let db = run::connect_and_migrate(&config).await.unwrap();
    let mut backends = run::backends(&config, db).await.unwrap();
    // A key prefix of our own, so that parallel runs on the same Redis never meet.
    let queue = dnp_queue::RedisJobQueue::connect(
        redis_url,
        dnp_queue::RedisQueueOptions::default().with_prefix(prefix.to_owned()),
    )
    .await
    .unwrap();
    backends.queue = Arc::new(queue.clone());
    backends.queue_maintenance = Some(dnp_queue::Queue::Redis(queue.clone()));
    let mut providers = Providers::new();
    run::register_spotify(&mut providers, spotify_config(emulator)).unwrap();
    (TestApp::from_parts(config, backends, providers, tempfile::tempdir().unwrap(), None), queue)
}

async fn wait(app: &TestApp, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let r = app.get(path, token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        if done(&r.body) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_two_workers_run_every_job_once() {
    let admin = std::env::var("DNP_TEST_POSTGRES_URL")
        .expect("DNP_TEST_POSTGRES_URL is not set: run scripts/test (it starts PostgreSQL and sets it)");
    let redis_url = std::env::var("DNP_TEST_REDIS_URL")
        .expect("DNP_TEST_REDIS_URL is not set: run scripts/test (it starts Redis and sets it)");
    let name = format!("dnp_server_scale_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    let db_url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let prefix = format!("dnp-server-test:{}:", uuid::Uuid::new_v4().simple());

    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    let spotify = ProviderId::new(ProviderId::SPOTIFY).unwrap();
    for i in 0..USERS {
        emulator.seed_user(&format!("listener{i}"), &generate_library(&spotify, LibraryShape::SMALL, 100 + i as u64));
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, queue) = node(&emulator, &db_url, &redis_url, &prefix, dir.path()).await;
    let (b, _) = node(&emulator, &db_url, &redis_url, &prefix, dir.path()).await;
    let servers = [&a, &b];

    let (stop, rx) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let config = dnp_server::worker::WorkerConfig {
                name: format!("worker-{i}"),
                concurrency: 3,
                lease: Duration::from_secs(5),
                poll_interval: Duration::from_millis(20),
                scheduler: false,
            };
            tokio::spawn(dnp_server::worker::run(s.state.clone(), config, rx.clone()))
        })
        .collect();

    // Users register and connect on alternating servers.
    let mut users = Vec::new();
    for i in 0..USERS {
        let on = servers[i % 2];
        let (token, _) = on.register(&format!("user{i}@example.org")).await;
        emulator.sign_in_as(&format!("listener{i}"));
        let r = on.get("/api/v1/connections/spotify/authorize", &token).await;
        let url = r.body["authorize_url"].as_str().unwrap().to_owned();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let location = client.get(&url).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
        // The callback lands on the other server.
        let other = servers[(i + 1) % 2];
        let done = other.get(location.strip_prefix(PUBLIC).unwrap(), &token).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        let (artist, id, liked) = top_artist(&emulator.library(&format!("listener{i}")));
        on.post("/api/v1/dnp", &token, json!({"artist": {"name": artist, "provider_ids": {"spotify": [id.clone()]}}}))
            .await;
        users.push((token, id, liked));
    }

    // Every user scans at once, through alternating servers.
    let mut scans = Vec::new();
    for (i, (token, ..)) in users.iter().enumerate() {
        let r = servers[i % 2].post("/api/v1/library/scans", token, json!({})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        scans.push(r.body["jobs"][0]["id"].as_str().unwrap().to_owned());
    }
    for (i, job) in scans.iter().enumerate() {
        let j = wait(servers[(i + 1) % 2], &users[i].0, &format!("/api/v1/jobs/{job}"), |j| {
            matches!(j["status"].as_str(), Some("succeeded" | "dead"))
        })
        .await;
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_eq!(j["attempts"], 1, "a scan ran once: {j}");
    }

    // Everyone enforces at once.
    let deletes_before = emulator.log().count("DELETE", "/v1");
    let mut expected_calls = 0;
    let mut batches = Vec::new();
    for (i, (token, ..)) in users.iter().enumerate() {
        let plan = servers[i % 2].post("/api/v1/enforcement/plans", token, json!({})).await;
        expected_calls += plan.body["summary"]["api_calls"].as_u64().unwrap();
        let started =
            servers[(i + 1) % 2].post("/api/v1/enforcement/batches", token, json!({"plan_id": plan.body["id"]})).await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
        batches.push(started.body["batches"][0].clone());
    }
    for (i, batch) in batches.iter().enumerate() {
        let id = batch["id"].as_str().unwrap();
        let done = wait(servers[i % 2], &users[i].0, &format!("/api/v1/enforcement/batches/{id}"), |b| {
            !matches!(b["status"].as_str(), Some("queued" | "running" | "waiting_retry"))
        })
        .await;
        assert_eq!(done["status"], "succeeded", "{}", done["status_reason"]);
        assert_eq!(done["counts"]["confirmed"], done["total_actions"]);
        let job =
            wait(servers[i % 2], &users[i].0, &format!("/api/v1/jobs/{}", batch["job_id"].as_str().unwrap()), |j| {
                j["status"] == "succeeded"
            })
            .await;
        assert_eq!(job["attempts"], 1, "a batch ran once: {job}");
    }
    // Exactly the planned calls reached the service: no batch was sent twice.
    assert_eq!((emulator.log().count("DELETE", "/v1") - deletes_before) as u64, expected_calls);
    for (i, (_, artist_id, _)) in users.iter().enumerate() {
        let lib = emulator.library(&format!("listener{i}"));
        assert!(
            lib.liked_tracks.iter().all(|l| l
                .track
                .artists
                .iter()
                .all(|a| a.id.as_deref() != Some(artist_id.as_str())))
        );
    }

    let _ = stop.send(true);
    for w in workers {
        w.await.unwrap();
    }
    let _ = queue.cleanup(chrono::Utc::now() + chrono::Duration::days(1)).await;
    a.cleanup().await;
    b.cleanup().await;
    let _ =
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&pool).await;
    emulator.shutdown();
}
