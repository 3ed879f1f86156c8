//! Authorization on every route: every route of the OpenAPI document refuses anonymous
//! callers (except signing in), and a second user can neither read nor change anything of
//! the first through any route, given the first user's ids.

mod common;

use axum::http::StatusCode;
use common::spotify::{World, top_artist};
use serde_json::{Value, json};

const PUBLIC: [&str; 7] = [
    "/auth/register",
    "/auth/login",
    "/auth/refresh",
    "/auth/mfa/verify",
    "/auth/oauth/{idp}/authorize",
    "/auth/oauth/{idp}/callback",
    "/auth/oauth/mfa/verify",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_user_reads_or_changes_another_users_data_through_any_route() {
    let world = World::start(5).await;
    let app = &world.app;

    // Alice: connected, scanned, a plan, an enforced batch, a notification, an entry.
    let (alice, _) = app.register("alice@example.org").await;
    assert_eq!(world.connect_spotify(&alice).await.status, StatusCode::OK);
    let (name, artist_id, _) = top_artist(&world.emulator.library("listener"));
    let entry = app
        .post("/api/v1/dnp", &alice, json!({"artist": {"name": name, "provider_ids": {"spotify": [artist_id]}}}))
        .await;
    let entry_id = entry.body["id"].as_str().unwrap().to_owned();
    let scan = world.scan(&alice).await;
    let job_id = scan["id"].as_str().unwrap().to_owned();
    let plan = app.post("/api/v1/enforcement/plans", &alice, json!({})).await;
    let plan_id = plan.body["id"].as_str().unwrap().to_owned();
    let started = app.post("/api/v1/enforcement/batches", &alice, json!({"plan_id": plan_id})).await;
    let batch_id = started.body["batches"][0]["id"].as_str().unwrap().to_owned();
    world.wait_batch(&alice, &batch_id).await;
    let notes = app.get("/api/v1/notifications", &alice).await;
    let note_id = notes.body["items"][0]["id"].as_str().unwrap().to_owned();
    let settings = app
        .call(
            "PUT",
            "/api/v1/settings",
            Some(&alice),
            Some(json!({"policy": {"strictness": "aggressive"}, "reenforce_every_hours": 24})),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK, "{}", settings.text);

    let (mallory, _) = app.register("mallory@example.org").await;
    let secrets = [
        entry_id.as_str(),
        job_id.as_str(),
        plan_id.as_str(),
        batch_id.as_str(),
        note_id.as_str(),
        "alice@example.org",
        name.as_str(),
    ];

    // Every route of the OpenAPI document.
    let doc = app.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().expect("paths").clone();
    assert!(paths.len() >= 25, "{} paths", paths.len());
    let mut checked = 0;
    for (path, ops) in &paths {
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let concrete = path
                .replace("{provider}", "spotify")
                .replace("{idp}", "google")
                .replace("/dnp/{id}", &format!("/dnp/{entry_id}"))
                .replace("/jobs/{id}", &format!("/jobs/{job_id}"))
                .replace("/plans/{id}", &format!("/plans/{plan_id}"))
                .replace("/batches/{id}", &format!("/batches/{batch_id}"))
                .replace("/notifications/{id}", &format!("/notifications/{note_id}"));
            assert!(!concrete.contains('{'), "unhandled parameter in {path}");
            let url = format!("/api/v1{concrete}");
            let body = match (method.as_str(), path.as_str()) {
                ("POST", "/enforcement/batches") => Some(json!({"plan_id": plan_id})),
                ("PUT", "/settings") => Some(json!({"policy": {}, "reenforce_every_hours": null})),
                ("PATCH", "/me") => Some(json!({"display_name": "Mallory"})),
                ("POST" | "PUT", _) => Some(json!({})),
                _ => None,
            };
            let url = if path == "/artists/search" { format!("{url}?q={}", "x") } else { url };

            // Anonymous callers are refused.
            if !PUBLIC.contains(&path.as_str()) {
                let anon = app.call(&method, &url, None, body.clone()).await;
                assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "{method} {path} without a token: {}", anon.text);
            }

            // Mallory, holding Alice's ids, learns nothing and changes nothing. (Her own
            // logout would only end her own session: tests/accounts.rs covers it.)
            if path == "/auth/logout" {
                checked += 1;
                continue;
            }
            let r = app.call(&method, &url, Some(&mallory), body).await;
            assert!(r.status != StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}: {}", r.text);
            for secret in secrets {
                assert!(!r.text.contains(secret), "{method} {path} leaked {secret}: {}", r.text);
            }
            let targets_alice = path.contains("{id}");
            if targets_alice {
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path} as another user: {}", r.text);
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} operations checked");
    assert!(paths.get("/me").and_then(|p| p.get("patch")).is_some(), "PATCH /me is in the document and was checked");

    // Alice's data is intact.
    let list = app.get("/api/v1/dnp", &alice).await;
    assert_eq!(list.body["items"][0]["id"], entry_id.as_str());
    let batch = app.get(&format!("/api/v1/enforcement/batches/{batch_id}"), &alice).await;
    assert_eq!(batch.status, StatusCode::OK);
    assert!(batch.body["rollbacks"].as_array().unwrap().is_empty(), "Mallory's rollback did not run");
    let conns = app.get("/api/v1/connections", &alice).await;
    assert_eq!(conns.body["items"].as_array().unwrap().len(), 1, "Mallory's DELETE did not disconnect Alice");
    let job = app.get(&format!("/api/v1/jobs/{job_id}"), &alice).await;
    assert_eq!(job.body["cancel_requested"], false);
    let unread = app.get("/api/v1/notifications?unread=true", &alice).await;
    assert!(unread.body["items"].as_array().unwrap().iter().any(|n| n["id"] == note_id.as_str()));
    let me = app.get("/api/v1/me", &alice).await;
    assert_eq!(me.body["display_name"], Value::Null, "Mallory's PATCH /me changed only her own name");
    assert_eq!(app.get("/api/v1/me", &mallory).await.body["display_name"], "Mallory");
    let s = app.get("/api/v1/settings", &alice).await;
    assert_eq!(s.body["reenforce_every_hours"], 24);
    assert_eq!(s.body["policy"]["strictness"], "aggressive");
    let summary = app.get("/api/v1/analytics/summary", &mallory).await;
    assert_eq!(summary.body["dnp_list_size"], 0);
    assert!(summary.body["recent_enforcements"].as_array().unwrap().is_empty());
    let stats: Value = app.get("/api/v1/analytics/enforcement", &mallory).await.body;
    assert_eq!(stats["total_batches"], 0);
    world.stop().await;
}
