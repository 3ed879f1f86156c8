//! A server with the Spotify emulator registered and a worker running in-process.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use dnp_core::{LibrarySnapshot, ProviderId};
use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
use dnp_providers::spotify::SpotifyConfig;
use dnp_providers::spotify::emulator::SpotifyEmulator;
use dnp_server::Providers;
use serde_json::{Value, json};

use super::{Response, TestApp};

pub const PUBLIC: &str = "http://127.0.0.1:9";

pub struct World {
    pub app: TestApp,
    pub emulator: SpotifyEmulator,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub worker: tokio::task::JoinHandle<()>,
}

pub fn spotify_config(emulator: &SpotifyEmulator) -> SpotifyConfig {
    let redirect = format!("{PUBLIC}/api/v1/connections/spotify/callback");
    emulator.register_redirect_uri(&redirect).unwrap();
    let mut config = SpotifyConfig::new(emulator.client_id(), Some(emulator.client_secret().into()), redirect)
        .unwrap()
        .with_base_urls(emulator.api_base_url(), emulator.accounts_base_url())
        .unwrap();
    config.http = dnp_providers::spotify::test_http_config();
    config
}

/// The most frequent primary artist of the liked tracks: (name, id, how many liked tracks).
pub fn top_artist(library: &LibrarySnapshot) -> (String, String, usize) {
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    for l in &library.liked_tracks {
        if let Some(a) = l.track.artists.first()
            && let Some(id) = &a.id
        {
            *counts.entry((a.name.clone(), id.clone())).or_default() += 1;
        }
    }
    let ((name, id), n) = counts.into_iter().max_by_key(|(k, n)| (*n, k.clone())).unwrap();
    (name, id, n)
}

impl World {
    pub async fn start(seed: u64) -> Self {
        Self::start_with(seed, false).await
    }

    pub async fn start_with(seed: u64, postgres: bool) -> Self {
        let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
        let spotify = ProviderId::new(ProviderId::SPOTIFY).unwrap();
        emulator.seed_user("listener", &generate_library(&spotify, LibraryShape::SMALL, seed));
        emulator.sign_in_as("listener");
        let mut providers = Providers::new();
        dnp_server::run::register_spotify(&mut providers, spotify_config(&emulator)).unwrap();
        let app = if postgres { TestApp::postgres(providers).await } else { TestApp::build(providers, &[]).await };
        let (stop, rx) = tokio::sync::watch::channel(false);
        let config = dnp_server::worker::WorkerConfig {
            name: "test-worker".into(),
            concurrency: 2,
            lease: Duration::from_secs(3),
            poll_interval: Duration::from_millis(20),
            scheduler: false,
        };
        let worker = tokio::spawn(dnp_server::worker::run(app.state.clone(), config, rx));
        Self { app, emulator, stop, worker }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.worker.await;
        self.app.cleanup().await;
        self.emulator.shutdown();
    }

    /// Connects Spotify for the user of `token` through the emulated OAuth flow.
    pub async fn connect_spotify(&self, token: &str) -> Response {
        let r = self.app.get("/api/v1/connections/spotify/authorize", token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let url = r.body["authorize_url"].as_str().unwrap().to_owned();
        assert!(url.contains("code_challenge="), "PKCE is used: {url}");
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302, "{}", resp.text().await.unwrap_or_default());
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let path = location.strip_prefix(PUBLIC).expect("redirected to our callback").to_owned();
        self.app.get(&path, token).await
    }

    /// Polls a job until it is finished.
    pub async fn wait_job(&self, token: &str, id: &str) -> Value {
        for _ in 0..600 {
            let r = self.app.get(&format!("/api/v1/jobs/{id}"), token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            if matches!(r.body["status"].as_str(), Some("succeeded" | "dead" | "cancelled")) {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish");
    }

    /// Polls a batch until it is finished.
    pub async fn wait_batch(&self, token: &str, id: &str) -> Value {
        for _ in 0..600 {
            let r = self.app.get(&format!("/api/v1/enforcement/batches/{id}"), token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let status = r.body["status"].as_str().unwrap_or("");
            if !matches!(status, "queued" | "running" | "waiting_retry") {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("batch {id} did not finish");
    }

    /// Scans Spotify and waits for it.
    pub async fn scan(&self, token: &str) -> Value {
        let r = self.app.post("/api/v1/library/scans", token, json!({"provider": "spotify"})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let id = r.body["jobs"][0]["id"].as_str().unwrap().to_owned();
        let job = self.wait_job(token, &id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        job
    }
}
