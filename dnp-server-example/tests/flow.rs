//! The whole product over HTTP against an in-process server, the Spotify emulator and an
//! in-process worker: register → connect Spotify (emulated OAuth) → scan → preview →
//! enforce → roll back.

mod common;

use axum::http::StatusCode;
use common::error_code;
use common::spotify::{World, top_artist};
use serde_json::json;

async fn run_flow(world: &World) {
    let app = &world.app;
    let (token, _) = app.register("flow@example.org").await;

    // Connect Spotify.
    let connected = world.connect_spotify(&token).await;
    assert_eq!(connected.status, StatusCode::OK, "{}", connected.text);
    assert_eq!(connected.body["provider"], "spotify");
    assert_eq!(connected.body["status"], "active");
    let list = app.get("/api/v1/connections", &token).await;
    assert_eq!(list.body["items"][0]["provider"], "spotify");
    assert_eq!(list.body["available"][0]["connected"], true);

    // Block the listener's favourite artist, found through search.
    let before = world.emulator.library("listener");
    let (name, artist_id, liked_by_artist) = top_artist(&before);
    let search = app.get(&format!("/api/v1/artists/search?q={}&provider=spotify", urlencode(&name)), &token).await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.text);
    let best = &search.body["candidates"][0];
    assert_eq!(best["id"], artist_id.as_str(), "{}", search.text);
    assert!(best["confidence"].as_f64().unwrap() > 0.9);
    let added = app
        .post("/api/v1/dnp", &token, json!({"artist": {"name": name, "provider_ids": {"spotify": [artist_id]}}}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);

    // Preview before scanning says to scan first.
    let early = app.post("/api/v1/enforcement/plans", &token, json!({})).await;
    assert_eq!(early.status, StatusCode::CREATED, "{}", early.text);
    assert_eq!(early.body["skipped_providers"][0]["reason"], "not_scanned");

    // Scan, then preview.
    world.scan(&token).await;
    let lib = app.get("/api/v1/library", &token).await;
    // Items of playlists the listener only follows are not readable through the API.
    let scanned = lib.body[0]["item_count"].as_i64().unwrap() as usize;
    assert!(scanned > before.liked_tracks.len() && scanned <= before.item_count(), "{scanned}");
    let plan = app.post("/api/v1/enforcement/plans", &token, json!({})).await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.text);
    let total = plan.body["summary"]["total_actions"].as_u64().unwrap();
    assert!(total >= liked_by_artist as u64, "{total} actions for {liked_by_artist} liked tracks");
    assert!(plan.body["summary"]["actions_by_kind"]["unlike_track"].as_u64().unwrap() >= liked_by_artist as u64);
    let first = &plan.body["providers"][0]["plan"]["batches"][0]["actions"][0];
    assert_eq!(first["reason"]["artist_name"], name.as_str(), "every action says why");
    // The preview changed nothing.
    assert_eq!(world.emulator.library("listener"), before);

    // Enforce.
    let plan_id = plan.body["id"].as_str().unwrap();
    let started = app.post("/api/v1/enforcement/batches", &token, json!({"plan_id": plan_id})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
    let batch_id = started.body["batches"][0]["id"].as_str().unwrap().to_owned();
    // Executing the same plan again returns the same batch.
    let again = app.post("/api/v1/enforcement/batches", &token, json!({"plan_id": plan_id})).await;
    assert_eq!(again.body["batches"][0]["id"], batch_id.as_str());
    let done = world.wait_batch(&token, &batch_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["counts"]["confirmed"].as_u64().unwrap(), total);
    let item = &done["items"][0];
    assert_eq!(item["state"], "confirmed");
    assert_eq!(item["before"]["in_library"], true);
    assert_eq!(item["after"]["in_library"], false);
    let after = world.emulator.library("listener");
    assert!(
        after.liked_tracks.iter().all(|l| l.track.artists.iter().all(|a| a.id.as_deref() != Some(artist_id.as_str()))),
        "no liked track of the blocked artist is left"
    );
    assert_eq!(after.liked_tracks.len(), before.liked_tracks.len() - liked_by_artist);

    // Analytics count it.
    let stats = app.get("/api/v1/analytics/enforcement?days=7&provider=spotify", &token).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    assert_eq!(stats.body["total_batches"], 1);
    assert_eq!(stats.body["total_actions"].as_u64().unwrap(), total);
    assert_eq!(stats.body["success_rate"], 1.0);
    assert_eq!(stats.body["daily"].as_array().unwrap().len(), 7);
    assert_eq!(stats.body["daily"][6]["confirmed"].as_u64().unwrap(), total);
    let summary = app.get("/api/v1/analytics/summary", &token).await;
    assert_eq!(summary.body["dnp_list_size"], 1);
    assert_eq!(summary.body["connected_providers"][0]["provider"], "spotify");
    assert_eq!(summary.body["recent_enforcements"][0]["confirmed"].as_u64().unwrap(), total);
    assert_eq!(app.get("/api/v1/analytics/enforcement?days=0", &token).await.status, StatusCode::BAD_REQUEST);

    // The events stream ends with `done`.
    let events = app.get(&format!("/api/v1/enforcement/batches/{batch_id}/events"), &token).await;
    assert_eq!(events.status, StatusCode::OK);
    assert!(events.text.contains("event: done"), "{}", events.text);

    // Notifications say what happened.
    let notes = app.get("/api/v1/notifications", &token).await;
    assert!(
        notes.body["items"].as_array().unwrap().iter().any(|n| n["kind"] == "enforcement_finished"),
        "{}",
        notes.text
    );

    // Roll back, waiting for the real count.
    let rb = app
        .post(&format!("/api/v1/enforcement/batches/{batch_id}/rollback"), &token, json!({"wait_seconds": 30}))
        .await;
    assert_eq!(rb.status, StatusCode::OK, "{}", rb.text);
    assert_eq!(rb.body["planned"].as_u64().unwrap(), total);
    assert_eq!(rb.body["rolled_back"].as_u64().unwrap(), total, "{}", rb.text);
    assert_eq!(rb.body["batch"]["rollback_of"], batch_id.as_str());
    let restored = world.emulator.library("listener");
    assert_eq!(restored.liked_tracks.len(), before.liked_tracks.len());
    let ids = |s: &dnp_core::LibrarySnapshot| {
        let mut v: Vec<String> = s.liked_tracks.iter().map(|l| l.track.id.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&restored), ids(&before));
    for (a, b) in restored.playlists.iter().zip(&before.playlists) {
        let ta: Vec<&str> = a.items.iter().map(|i| i.track.id.as_str()).collect();
        let tb: Vec<&str> = b.items.iter().map(|i| i.track.id.as_str()).collect();
        assert_eq!(ta, tb, "playlist {} restored in order", a.name);
    }
    // A second rollback is refused.
    let twice = app.post(&format!("/api/v1/enforcement/batches/{batch_id}/rollback"), &token, json!({})).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(error_code(&twice), "already_rolled_back");
    let original = app.get(&format!("/api/v1/enforcement/batches/{batch_id}"), &token).await;
    assert_eq!(original.body["rollbacks"].as_array().unwrap().len(), 1);

    // Jobs list shows the scan, the batch and the rollback.
    let jobs = app.get("/api/v1/jobs", &token).await;
    let kinds: Vec<&str> = jobs.body["items"].as_array().unwrap().iter().filter_map(|j| j["kind"].as_str()).collect();
    assert!(kinds.contains(&"library_scan") && kinds.iter().filter(|k| **k == "enforcement").count() == 2, "{kinds:?}");

    // Disconnect revokes and deletes.
    let gone = app.call("DELETE", "/api/v1/connections/spotify", Some(&token), None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    assert_eq!(app.get("/api/v1/connections", &token).await.body["items"].as_array().unwrap().len(), 0);
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_connect_scan_preview_enforce_rollback() {
    let world = World::start(7).await;
    run_flow(&world).await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_flow_on_postgresql() {
    let world = World::start_with(11, true).await;
    run_flow(&world).await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_state_is_single_use_and_bound_to_the_user() {
    let world = World::start(3).await;
    let app = &world.app;
    let (alice, _) = app.register("alice@example.org").await;
    let (mallory, _) = app.register("mallory@example.org").await;
    let r = app.get("/api/v1/connections/spotify/authorize", &alice).await;
    let url = r.body["authorize_url"].as_str().unwrap().to_owned();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let location = client.get(&url).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let path = location.strip_prefix(common::spotify::PUBLIC).unwrap().to_owned();
    // Another user cannot complete Alice's flow; and that attempt spends the state.
    let stolen = app.get(&path, &mallory).await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&stolen), "invalid_state");
    let late = app.get(&path, &alice).await;
    assert_eq!(error_code(&late), "invalid_state");
    // A fresh flow works once, then the state is spent.
    let ok = world.connect_spotify(&alice).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // Unknown provider ids are 404 unknown_provider everywhere.
    for path in ["/api/v1/connections/deezer/authorize", "/api/v1/connections/deezer/callback?code=x&state=y"] {
        let r = app.get(path, &alice).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(&r), "unknown_provider");
    }
    let r = app.call("DELETE", "/api/v1/connections/Bad!", Some(&alice), None).await;
    assert_eq!(error_code(&r), "unknown_provider");
    // The provider's error comes back as a 400.
    let denied = app.get("/api/v1/connections/spotify/callback?error=access_denied&state=x", &alice).await;
    assert_eq!(error_code(&denied), "authorization_denied");
    world.stop().await;
}
