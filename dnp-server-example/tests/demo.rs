//! `dnp-server demo` end to end over real HTTP: sign in with the demo account, connect
//! Spotify through the emulated OAuth flow, scan, preview, enforce, roll back.

use std::time::Duration;

use dnp_providers::emulator::LibraryShape;
use dnp_server::demo::{DEMO_EMAIL, DEMO_LISTENER, DEMO_PASSWORD, DemoOptions};
use serde_json::{Value, json};

struct Client {
    http: reqwest::Client,
    api: String,
    token: String,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.api)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn wait(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..1200 {
            let (status, body) = self.get(path).await;
            assert_eq!(status, 200, "{body}");
            if done(&body) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path} did not finish");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_sign_in_connect_scan_preview_enforce_rollback() {
    let demo = dnp_server::demo::start(DemoOptions {
        data_dir: None,
        bind: Some("127.0.0.1:0".parse().unwrap()),
        shape: Some(LibraryShape::SMALL),
    })
    .await
    .expect("demo starts");
    assert!(demo.banner().contains(DEMO_PASSWORD));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The health check answers.
    assert_eq!(http.get(format!("{}/health", demo.url)).send().await.unwrap().status().as_u16(), 200);
    let ready = http.get(format!("{}/ready", demo.url)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "{}", ready.text().await.unwrap());

    // Sign in with the printed credentials.
    let login: Value = http
        .post(format!("{}/api/v1/auth/login", demo.url))
        .json(&json!({"email": DEMO_EMAIL, "password": DEMO_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().expect("signed in").to_owned();
    let c = Client { http: http.clone(), api: format!("{}/api/v1", demo.url), token };

    // The demo list is seeded.
    let (_, list) = c.get("/dnp").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list}");

    // Connect every emulated service: authorize URL → the emulator approves and redirects
    // to our callback.
    let (_, available) = c.get("/connections").await;
    let ids: Vec<String> =
        available["available"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["apple_music", "spotify", "tidal", "youtube_music"]);
    for id in &ids {
        let (status, auth) = c.get(&format!("/connections/{id}/authorize")).await;
        assert_eq!(status, 200, "{id}: {auth}");
        let url = auth["authorize_url"].as_str().unwrap();
        let redirect = http.get(url).send().await.unwrap();
        assert_eq!(redirect.status().as_u16(), 302, "{id}: {}", redirect.text().await.unwrap_or_default());
        let callback = redirect.headers()["location"].to_str().unwrap().to_owned();
        assert!(callback.starts_with(&format!("{}/api/v1/connections/{id}/callback", demo.url)), "{callback}");
        let resp = http.get(&callback).bearer_auth(&c.token).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{id}: {}", resp.text().await.unwrap_or_default());
    }
    let (_, conns) = c.get("/connections").await;
    assert_eq!(conns["items"].as_array().unwrap().len(), 4, "{conns}");
    assert!(conns["items"].as_array().unwrap().iter().all(|c| c["status"] == "active"), "{conns}");

    // Scan all four.
    let (status, scans) = c.post("/library/scans", json!({})).await;
    assert_eq!(status, 202, "{scans}");
    assert_eq!(scans["jobs"].as_array().unwrap().len(), 4);
    for job in scans["jobs"].as_array().unwrap() {
        let id = job["id"].as_str().unwrap();
        let job = c.wait(&format!("/jobs/{id}"), |j| j["status"] != "queued" && j["status"] != "running").await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert!(job["progress"]["done"].as_u64().unwrap() > 0);
    }

    // Preview.
    let before = demo.spotify.library(DEMO_LISTENER);
    let (status, plan) = c.post("/enforcement/plans", json!({})).await;
    assert_eq!(status, 201, "{plan}");
    let spotify_plan = plan["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "spotify").unwrap();
    let total = spotify_plan["plan"]["summary"]["total_actions"].as_u64().unwrap();
    assert!(total > 0, "{plan}");

    // Enforce on every service the plan touches.
    let (status, started) = c.post("/enforcement/batches", json!({"plan_id": plan["id"]})).await;
    assert_eq!(status, 202, "{started}");
    let mut batch_id = String::new();
    for b in started["batches"].as_array().unwrap() {
        let id = b["id"].as_str().unwrap();
        let done = c
            .wait(&format!("/enforcement/batches/{id}"), |b| {
                !matches!(b["status"].as_str(), Some("queued" | "running"))
            })
            .await;
        assert!(
            matches!(done["status"].as_str(), Some("succeeded" | "completed_with_failures")),
            "{}: {}",
            b["provider"],
            done["status_reason"]
        );
        if b["provider"] == "spotify" {
            assert_eq!(done["status"], "succeeded", "{}", done["status_reason"]);
            assert_eq!(done["counts"]["confirmed"].as_u64().unwrap(), total);
            batch_id = id.to_owned();
        }
    }
    let enforced = demo.spotify.library(DEMO_LISTENER);
    assert!(enforced.item_count() < before.item_count());

    // Roll back, and get the real count.
    let (status, rb) = c.post(&format!("/enforcement/batches/{batch_id}/rollback"), json!({"wait_seconds": 60})).await;
    assert_eq!(status, 200, "{rb}");
    assert_eq!(rb["rolled_back"].as_u64().unwrap(), total);
    let restored = demo.spotify.library(DEMO_LISTENER);
    assert_eq!(restored.item_count(), before.item_count());

    // Metrics carry the route-labelled latency histogram and the queue depth.
    let metrics = http.get(format!("{}/metrics", demo.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("http_request_duration_milliseconds_bucket"), "{metrics}");
    assert!(metrics.contains("route=\"/api/v1/enforcement/batches/{id}\""), "{metrics}");
    assert!(metrics.contains("le=\"250\""));
    assert!(metrics.contains("job_queue_depth"));
    assert!(metrics.contains("process_resident_memory_bytes"));
    assert!(metrics.contains("db_pool_connections"));

    demo.shutdown().await;
}
