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
