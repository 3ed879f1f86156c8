//! The Apple Music emulator over HTTP: tokens, paging limits, error bodies, ratings, faults
//! and the MusicKit stand-in.
//!
//! `cargo test -p dnp-providers --no-default-features --features apple_music,emulator --test apple_music_emulator`

use std::time::Duration;

use dnp_core::ProviderId;
use dnp_providers::apple_music::DeveloperTokenSigner;
use dnp_providers::apple_music::emulator::AppleMusicEmulator;
use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
use secrecy::ExposeSecret;
use serde_json::Value;

struct Fixture {
    emulator: AppleMusicEmulator,
    developer: String,
    user: String,
    http: reqwest::Client,
}

fn fixture() -> Fixture {
    let emulator = AppleMusicEmulator::start(EmulatorConfig::default()).unwrap();
    let apple = ProviderId::new(ProviderId::APPLE_MUSIC).unwrap();
    emulator.seed_user("alice", &generate_library(&apple, LibraryShape::SMALL, 3));
    let signer = DeveloperTokenSigner::new(&emulator.adapter_config().unwrap()).unwrap();
    let developer = signer.token().unwrap().expose_secret().to_owned();
    let user = emulator.issue_user_token("alice", Duration::from_secs(600));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Fixture { emulator, developer, user, http }
}

impl Fixture {
    async fn get(&self, path: &str, developer: Option<&str>, user: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.emulator.api_base_url()));
        if let Some(d) = developer {
            request = request.bearer_auth(d);
        }
        if let Some(u) = user {
            request = request.header("Music-User-Token", u);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn me(&self, path: &str) -> (u16, Value) {
        self.get(path, Some(&self.developer), Some(&self.user)).await
    }
}

fn error_status(body: &Value) -> &str {
    body["errors"][0]["status"].as_str().unwrap_or("")
}

#[tokio::test]
async fn developer_tokens_are_verified_and_user_tokens_required() {
    let f = fixture();
    let (status, body) = f.get("/v1/me/storefront", None, Some(&f.user)).await;
    assert_eq!((status, error_status(&body)), (401, "401"), "{body}");
    // Signed by another key: refused.
    let other = AppleMusicEmulator::start(EmulatorConfig::default()).unwrap();
    let mut foreign = other.adapter_config().unwrap();
    foreign.team_id = f.emulator.team_id().to_owned();
    foreign.key_id = f.emulator.key_id().to_owned();
    let forged = DeveloperTokenSigner::new(&foreign).unwrap().token().unwrap();
    let (status, _) = f.get("/v1/me/storefront", Some(forged.expose_secret()), Some(&f.user)).await;
    assert_eq!(status, 401, "a token signed with another key");
    let (status, body) = f.get("/v1/me/storefront", Some(&f.developer), None).await;
    assert_eq!((status, error_status(&body)), (403, "403"), "no Music User Token: {body}");
    let (status, body) = f.me("/v1/me/storefront").await;
    assert_eq!((status, body["data"][0]["id"].as_str()), (200, Some("us")));
    // Catalog endpoints need the developer token only.
    let (status, _) = f.get("/v1/catalog/us/search?term=a&types=artists", Some(&f.developer), None).await;
    assert_eq!(status, 200);
}

/// Regression: a renewal signed in the same second as the refused token produced the same
/// (deterministic ES256) token, which the emulator rightly refused again.
#[tokio::test]
async fn expired_developer_tokens_and_revoked_user_tokens_are_refused() {
    let f = fixture();
    assert_eq!(f.me("/v1/me/storefront").await.0, 200);
    // Expires every developer token the emulator has seen so far.
    f.emulator.faults().expire_access_tokens_now();
    let (status, body) = f.me("/v1/me/storefront").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["errors"][0]["detail"].as_str().unwrap().contains("expired"));
    let fresh = DeveloperTokenSigner::new(&f.emulator.adapter_config().unwrap()).unwrap();
    let renewed =
        fresh.renew_at(&secrecy::SecretString::from(f.developer.clone()), chrono::Utc::now().timestamp()).unwrap();
    let (status, _) = f.get("/v1/me/storefront", Some(renewed.expose_secret()), Some(&f.user)).await;
    assert_eq!(status, 200, "a token signed after the expiry works");
    f.emulator.faults().revoke_all_tokens();
    let (status, _) = f.get("/v1/me/storefront", Some(renewed.expose_secret()), Some(&f.user)).await;
    assert_eq!(status, 403, "a revoked Music User Token");
    let expiring = f.emulator.issue_user_token("alice", Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, body) = f.get("/v1/me/storefront", Some(renewed.expose_secret()), Some(&expiring)).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn library_lists_page_by_offset_with_apples_limits() {
    let f = fixture();
    let (status, body) = f.me("/v1/me/library/songs?limit=101").await;
    assert_eq!((status, error_status(&body)), (400, "400"), "{body}");
    assert!(body["errors"][0]["detail"].as_str().unwrap().contains("limit"));
    let (status, first) = f.me("/v1/me/library/songs?limit=100&include=catalog&include[songs]=artists,albums").await;
    assert_eq!(status, 200);
    assert_eq!(first["meta"]["total"], 120);
    assert_eq!(first["data"].as_array().unwrap().len(), 100);
    assert_eq!(first["next"], "/v1/me/library/songs?offset=100");
    let song = &first["data"][0];
    assert_eq!(song["type"], "library-songs");
    assert!(song["id"].as_str().unwrap().starts_with("i."));
    let catalog = &song["relationships"]["catalog"]["data"][0];
    assert_eq!(catalog["type"], "songs");
    assert_eq!(catalog["attributes"]["isrc"].as_str().unwrap().len(), 12);
    assert!(catalog["attributes"]["url"].as_str().unwrap().starts_with("https://music.apple.com/us/song/"));
    assert!(!catalog["relationships"]["artists"]["data"].as_array().unwrap().is_empty());
    let titles: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attributes"]["name"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(titles.windows(2).all(|w| w[0] <= w[1]), "songs are listed alphabetically");
    let (_, last) = f.me("/v1/me/library/songs?limit=100&offset=100").await;
    assert_eq!(last["data"].as_array().unwrap().len(), 20);
    assert!(last.get("next").is_none());
    // Without include=catalog there is no catalog relationship.
    let (_, plain) = f.me("/v1/me/library/songs?limit=1").await;
    assert!(plain["data"][0].get("relationships").is_none());
    let (_, playlists) = f.me("/v1/me/library/playlists?limit=100").await;
    let listed = playlists["data"].as_array().unwrap();
    assert_eq!(listed.len(), 8);
    assert!(listed.iter().any(|p| p["attributes"]["canEdit"] == false));
    assert!(listed.iter().all(|p| p["id"].as_str().unwrap().starts_with("p.")));
}

#[tokio::test]
async fn ratings_are_set_listed_and_cleared() {
    let f = fixture();
    let (_, songs) = f.me("/v1/me/library/songs?limit=2&include=catalog").await;
    let id = songs["data"][0]["relationships"]["catalog"]["data"][0]["id"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/me/ratings/songs/{id}", f.emulator.api_base_url());
    let put = f
        .http
        .put(&url)
        .bearer_auth(&f.developer)
        .header("Music-User-Token", &f.user)
        .json(&serde_json::json!({"type": "rating", "attributes": {"value": -1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let (_, listed) = f.me(&format!("/v1/me/ratings/songs?ids={id}")).await;
    assert_eq!(listed["data"][0]["attributes"]["value"], -1);
    assert!(f.emulator.library("alice").liked_tracks.iter().any(|l| l.track.id == id && l.disliked));
    let bad = f
        .http
        .put(format!("{}/v1/me/ratings/songs/no-such-song", f.emulator.api_base_url()))
        .bearer_auth(&f.developer)
        .header("Music-User-Token", &f.user)
        .json(&serde_json::json!({"type": "rating", "attributes": {"value": -1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 404);
    for _ in 0..2 {
        let delete =
            f.http.delete(&url).bearer_auth(&f.developer).header("Music-User-Token", &f.user).send().await.unwrap();
        assert_eq!(delete.status().as_u16(), 204, "clearing is idempotent");
    }
    let (_, listed) = f.me(&format!("/v1/me/ratings/songs?ids={id}")).await;
    assert!(listed["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn faults_answer_in_apples_shape_and_are_logged() {
    let f = fixture();
    f.emulator.faults().rate_limit_next(1, Duration::from_secs(2));
    let response = f
        .http
        .get(format!("{}/v1/me/storefront", f.emulator.api_base_url()))
        .bearer_auth(&f.developer)
        .header("Music-User-Token", &f.user)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], "429");
    f.emulator.faults().server_error_next(1, 503).unwrap();
    assert_eq!(f.me("/v1/me/storefront").await.0, 503);
    assert_eq!(f.me("/v1/me/storefront").await.0, 200);
    assert_eq!(f.emulator.log().count("GET", "/v1/me/storefront"), 3);
    f.emulator.set_latency(Duration::from_millis(60));
    let started = std::time::Instant::now();
    f.me("/v1/me/storefront").await;
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test]
async fn the_musickit_stand_in_issues_a_working_user_token() {
    let f = fixture();
    f.emulator.sign_in_as("alice");
    let response = f
        .http
        .get(f.emulator.connect_url())
        .query(&[("state", "s123"), ("redirect_uri", "http://127.0.0.1:9/callback")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: std::collections::HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "s123");
    let (status, _) = f.get("/v1/me/storefront", Some(&f.developer), Some(&pairs["code"])).await;
    assert_eq!(status, 200);
    let missing = f.http.get(f.emulator.connect_url()).query(&[("state", "s")]).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 400, "no redirect_uri");
}

#[tokio::test]
async fn playlists_take_appends_only_where_they_can_be_edited() {
    let f = fixture();
    let state = f.emulator.library("alice");
    let editable = state.playlists.iter().find(|p| p.editable).unwrap();
    let locked = state.playlists.iter().find(|p| !p.editable).unwrap();
    let song = &state.liked_tracks[0].track.id;
    let post = |playlist: &str| {
        f.http
            .post(format!("{}/v1/me/library/playlists/{playlist}/tracks", f.emulator.api_base_url()))
            .bearer_auth(&f.developer)
            .header("Music-User-Token", &f.user)
            .json(&serde_json::json!({"data": [{"id": song, "type": "songs"}]}))
            .send()
    };
    assert_eq!(post(&editable.id).await.unwrap().status().as_u16(), 204);
    let after = f.emulator.library("alice");
    let changed = after.playlists.iter().find(|p| p.id == editable.id).unwrap();
    assert_eq!(changed.items.last().unwrap().track.id, *song, "appended at the end");
    assert_ne!(changed.version, editable.version, "lastModifiedDate moved");
    assert_eq!(post(&locked.id).await.unwrap().status().as_u16(), 403);
    let version = f.emulator.change_playlist("alice", &editable.id).unwrap();
    assert_eq!(
        f.emulator.library("alice").playlists.iter().find(|p| p.id == editable.id).unwrap().version,
        Some(version)
    );
}
