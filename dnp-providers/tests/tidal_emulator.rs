//! The TIDAL emulator over HTTP, as a client sees it: JSON:API documents, cursor paging,
//! limits, item-id removal, positioned inserts, idempotency keys, OAuth with PKCE.
//!
//! Run: `cargo test -p dnp-providers --no-default-features --features tidal,emulator --test tidal_emulator`

use std::time::Duration;

use chrono::{TimeZone, Utc};
use dnp_core::{
    AlbumRef, ArtistCredit, CreditRole, LibrarySnapshot, LikedTrack, Playlist, PlaylistItem, ProviderAuth,
    ProviderError, ProviderId, Track,
};
use dnp_providers::emulator::EmulatorConfig;
use dnp_providers::tidal::emulator::TidalEmulator;
use dnp_providers::tidal::{TidalAuth, TidalConfig, test_http_config};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const JSON_API: &str = "application/vnd.api+json";
const REDIRECT: &str = "http://127.0.0.1:8888/callback/tidal";

fn tidal() -> ProviderId {
    ProviderId::new(ProviderId::TIDAL).unwrap()
}

fn track(i: usize) -> Track {
    Track {
        id: format!("{}", 1000 + i),
        title: format!("Song {i}"),
        artists: vec![
            ArtistCredit {
                id: Some(format!("a{}", i % 3)),
                name: format!("Artist {}", i % 3),
                role: CreditRole::Primary,
            },
            ArtistCredit { id: Some("a9".into()), name: "Guest".into(), role: CreditRole::Featured },
        ],
        album: Some(AlbumRef { id: format!("al{}", i % 4), title: format!("Album {}", i % 4), artists: vec![] }),
        isrc: Some(format!("USAAA{:07}", i)),
        duration_ms: Some(180_000 + i as u32),
        url: None,
    }
}

/// `liked` liked tracks (newest first, a minute apart) and one owned playlist of `items`
/// tracks in which track 0 occurs twice (at 0 and at `items - 1`).
fn library(liked: usize, items: usize) -> LibrarySnapshot {
    let epoch = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let mut snapshot = LibrarySnapshot::empty(tidal());
    snapshot.liked_tracks = (0..liked)
        .map(|i| LikedTrack {
            track: track(i),
            added_at: Some(epoch - chrono::Duration::minutes(i as i64)),
            entry_id: None,
            disliked: false,
        })
        .collect();
    let mut tracks: Vec<Track> = (0..items.saturating_sub(1)).map(|i| track(100 + i)).collect();
    tracks.push(track(100));
    snapshot.playlists = vec![Playlist {
        id: "pl-1".into(),
        name: "Mine".into(),
        owned: true,
        collaborative: false,
        editable: true,
        version: None,
        items: tracks
            .into_iter()
            .enumerate()
            .map(|(i, t)| PlaylistItem { position: i as u32, track: t, added_at: Some(epoch), item_id: None })
            .collect(),
        url: None,
    }];
    snapshot
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(emulator: &TidalEmulator, user: &str) -> Self {
        let (token, _) = emulator.issue_tokens(user, Duration::from_secs(3600));
        Self { http: reqwest::Client::new(), base: emulator.api_base_url(), token }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) };
        let response = self.http.get(url).bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, method: reqwest::Method, path: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", JSON_API)
            .body(serde_json::to_vec(body).unwrap());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap()
    }
}

fn ids(doc: &Value) -> Vec<String> {
    doc["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect()
}

fn item_ids(doc: &Value) -> Vec<String> {
    doc["data"].as_array().unwrap().iter().map(|d| d["meta"]["itemId"].as_str().unwrap().to_owned()).collect()
}

fn error_status(doc: &Value) -> &str {
    doc["errors"][0]["status"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn collections_page_by_cursor_twenty_at_a_time_with_includes() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user("alice", &library(45, 3));
    let client = Client::new(&emulator, "alice");
    let path = "/userCollectionTracks/me/relationships/items?include=items.artists,items.albums.artists";
    let (status, first) = client.get(path).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(ids(&first).len(), 20);
    assert_eq!(ids(&first)[0], "1000", "newest first");
    let included = first["included"].as_array().unwrap();
    let track = included.iter().find(|r| r["type"] == "tracks" && r["id"] == "1000").unwrap();
    assert_eq!(track["attributes"]["isrc"], "USAAA0000000");
    assert_eq!(track["attributes"]["duration"], "PT3M0S");
    assert_eq!(track["relationships"]["artists"]["data"][1]["id"], "a9", "credit order is kept");
    assert!(included.iter().any(|r| r["type"] == "albums" && r["relationships"]["artists"].is_object()));
    assert!(included.iter().any(|r| r["type"] == "artists" && r["attributes"]["name"] == "Guest"));

    let mut seen = ids(&first);
    let mut page = first;
    let mut pages = 1;
    while let Some(next) = page["links"]["next"].as_str() {
        let cursor = page["links"]["meta"]["nextCursor"].as_str().unwrap().to_owned();
        assert!(
            next.contains(&format!("page%5Bcursor%5D={cursor}")) || next.contains(&format!("page[cursor]={cursor}"))
        );
        assert!(next.starts_with("/userCollectionTracks/"), "a link relative to the API base: {next}");
        assert!(next.contains("include="), "the next link keeps the include");
        let (status, doc) = client.get(next).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(ids(&doc));
        page = doc;
        pages += 1;
    }
    assert_eq!(pages, 3, "45 items: 20 + 20 + 5");
    assert_eq!(seen.len(), 45);
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 45, "no item twice across pages");

    // Without include, no `included`; with an unknown path, 400.
    let (_, bare) = client.get("/userCollectionTracks/me/relationships/items").await;
    assert!(bare.get("included").is_none());
    let (status, err) = client.get("/userCollectionTracks/me/relationships/items?include=items.lyrics").await;
    assert_eq!((status, error_status(&err)), (StatusCode::BAD_REQUEST, "400"), "{err}");
    let (status, _) = client.get("/userCollectionTracks/me/relationships/items?page[cursor]=nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = client.get("/userCollectionTracks/someone_else/relationships/items").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The deprecated collection endpoints are not emulated.
    let (status, err) = client.get("/userCollections/me/relationships/tracks").await;
    assert_eq!((status, error_status(&err)), (StatusCode::NOT_FOUND, "404"));
}

#[tokio::test]
async fn more_than_fifty_items_or_the_wrong_media_type_are_refused() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user("alice", &library(60, 3));
    let client = Client::new(&emulator, "alice");
    let path = "/userCollectionTracks/me/relationships/items";
    let items = |n: usize| json!({ "data": (0..n).map(|i| json!({ "id": format!("{}", 1000 + i), "type": "tracks" })).collect::<Vec<_>>() });
    for method in [reqwest::Method::DELETE, reqwest::Method::POST] {
        let response = client.send(method.clone(), path, None, &items(51)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{method}");
        let doc: Value = response.json().await.unwrap();
        assert!(doc["errors"][0]["detail"].as_str().unwrap().contains("between 1 and 50"), "{doc}");
        let response = client.send(method.clone(), path, None, &items(0)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(emulator.library("alice").liked_tracks.len(), 60, "nothing applied");
    let response = client.send(reqwest::Method::DELETE, path, None, &items(50)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(emulator.library("alice").liked_tracks.len(), 10);
    // Removing what is gone is not an error (JSON:API).
    let response = client.send(reqwest::Method::DELETE, path, None, &items(50)).await;
    assert_eq!(response.status(), StatusCode::OK);

    let wrong_type = reqwest::Client::new()
        .delete(format!("{}{path}", emulator.api_base_url()))
        .bearer_auth(&client.token)
        .json(&items(1))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let albums =
        client.send(reqwest::Method::POST, "/userCollectionAlbums/me/relationships/items", None, &items(1)).await;
    assert_eq!(albums.status(), StatusCode::BAD_REQUEST, "tracks in the albums collection");
}

#[tokio::test]
async fn adds_report_skipped_items_and_keep_the_collection_sorted_by_added_at() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user("alice", &library(5, 3));
    let client = Client::new(&emulator, "alice");
    let path = "/userCollectionTracks/me/relationships/items";
    client.send(reqwest::Method::DELETE, path, None, &json!({ "data": [{ "id": "1002", "type": "tracks" }] })).await;
    // Re-add 1002 with its old date, plus one present and one unknown track.
    let body = json!({ "data": [
        { "id": "1002", "type": "tracks", "meta": { "addedAt": "2024-12-31T23:58:00Z" } },
        { "id": "1000", "type": "tracks" },
        { "id": "999999", "type": "tracks" },
    ]});
    let response = client.send(reqwest::Method::POST, path, None, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(ids(&doc), ["1002"]);
    let skipped: Vec<(&str, &str)> = doc["meta"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(skipped, [("1000", "ALREADY_PRESENT"), ("999999", "NOT_FOUND")]);
    let order: Vec<String> = emulator.library("alice").liked_tracks.iter().map(|l| l.track.id.clone()).collect();
    assert_eq!(order, ["1000", "1001", "1002", "1003", "1004"], "back in its place by addedAt");
}

#[tokio::test]
async fn playlist_entries_are_removed_by_item_id_only() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user("alice", &library(1, 5));
    let client = Client::new(&emulator, "alice");
    let path = "/playlists/pl-1/relationships/items";
    let (_, doc) = client.get(path).await;
    assert_eq!(ids(&doc), ["1100", "1101", "1102", "1103", "1100"], "the track occurs twice");
    let items = item_ids(&doc);
    let version = emulator.library("alice").playlists[0].version.clone();

    // The second occurrence goes; the first stays.
    let body = json!({ "data": [{ "id": "1100", "type": "tracks", "meta": { "itemId": items[4] } }] });
    assert_eq!(client.send(reqwest::Method::DELETE, path, None, &body).await.status(), StatusCode::OK);
    let after = emulator.library("alice");
    let tracks: Vec<&str> = after.playlists[0].items.iter().map(|i| i.track.id.as_str()).collect();
    assert_eq!(tracks, ["1100", "1101", "1102", "1103"]);
    assert_eq!(after.playlists[0].items[0].item_id.as_deref(), Some(items[0].as_str()));
    assert_ne!(after.playlists[0].version, version, "lastModifiedAt moved");

    // An item id no longer there is not an error; a missing itemId or a mismatched track is.
    assert_eq!(client.send(reqwest::Method::DELETE, path, None, &body).await.status(), StatusCode::OK);
    let no_item = json!({ "data": [{ "id": "1101", "type": "tracks" }] });
    assert_eq!(client.send(reqwest::Method::DELETE, path, None, &no_item).await.status(), StatusCode::BAD_REQUEST);
    let mismatch = json!({ "data": [{ "id": "1102", "type": "tracks", "meta": { "itemId": items[1] } }] });
    assert_eq!(client.send(reqwest::Method::DELETE, path, None, &mismatch).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(emulator.library("alice").playlists[0].items.len(), 4, "refused requests change nothing");
}

#[tokio::test]
async fn inserts_go_before_the_entry_named_by_position_before() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user("alice", &library(1, 4));
    let client = Client::new(&emulator, "alice");
    let path = "/playlists/pl-1/relationships/items";
    let (_, doc) = client.get(path).await;
    let items = item_ids(&doc);
    let body = json!({
        "data": [
            { "id": "1000", "type": "tracks", "meta": { "addedAt": "2020-02-02T02:02:02.500Z" } },
            { "id": "999999", "type": "tracks" },
            { "id": "1101", "type": "tracks" },
        ],
        "meta": { "positionBefore": items[2] },
    });
    let response = client.send(reqwest::Method::POST, path, None, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(ids(&answer), ["1000", "1101"]);
    assert_eq!(answer["meta"]["skipped"][0]["reason"], "NOT_FOUND");
    let new_ids = item_ids(&answer);
    let after = emulator.library("alice");
    let playlist = &after.playlists[0];
    let tracks: Vec<&str> = playlist.items.iter().map(|i| i.track.id.as_str()).collect();
    assert_eq!(tracks, ["1100", "1101", "1000", "1101", "1102", "1100"]);
    assert_eq!(playlist.items[2].item_id.as_deref(), Some(new_ids[0].as_str()));
    assert_eq!(
        playlist.items[2].added_at,
        Some(Utc.with_ymd_and_hms(2020, 2, 2, 2, 2, 2).unwrap() + chrono::Duration::milliseconds(500))
    );

    // Without positionBefore: at the end. An unknown one: 400.
    let append = json!({ "data": [{ "id": "1101", "type": "tracks" }] });
    assert_eq!(client.send(reqwest::Method::POST, path, None, &append).await.status(), StatusCode::OK);
    let after = emulator.library("alice");
    assert_eq!((after.playlists[0].items.len(), after.playlists[0].items[6].track.id.as_str()), (7, "1101"));
    let unknown = json!({ "data": [{ "id": "1101", "type": "tracks" }], "meta": { "positionBefore": "nope" } });
    assert_eq!(client.send(reqwest::Method::POST, path, None, &unknown).await.status(), StatusCode::BAD_REQUEST);

    // Someone else's playlist cannot be edited.
    let other = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    let mut followed = library(1, 3);
    followed.playlists[0].owned = false;
    followed.playlists[0].editable = false;
    other.seed_user("bob", &followed);
    let bob = Client::new(&other, "bob");
    assert_eq!(bob.send(reqwest::Method::POST, path, None, &append).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_without_applying_again() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user("alice", &library(1, 3));
    let client = Client::new(&emulator, "alice");
    let path = "/playlists/pl-1/relationships/items";
    let body = json!({ "data": [{ "id": "1000", "type": "tracks" }] });
    let first = client.send(reqwest::Method::POST, path, Some("batch-1-a0"), &body).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert_eq!(emulator.library("alice").playlists[0].items.len(), 4);

    let again = client.send(reqwest::Method::POST, path, Some("batch-1-a0"), &body).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the first answer, item id included");
    assert_eq!(emulator.library("alice").playlists[0].items.len(), 4, "not inserted twice");

    let other = json!({ "data": [{ "id": "1001", "type": "tracks" }] });
    let mismatch = client.send(reqwest::Method::POST, path, Some("batch-1-a0"), &other).await;
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let doc: Value = mismatch.json().await.unwrap();
    assert_eq!(doc["errors"][0]["code"], "IDEMPOTENT_REQUEST_PAYLOAD_MISMATCH");

    let long = "k".repeat(129);
    assert_eq!(client.send(reqwest::Method::POST, path, Some(&long), &body).await.status(), StatusCode::BAD_REQUEST);
    // Another key applies again.
    assert_eq!(client.send(reqwest::Method::POST, path, Some("batch-2-a0"), &body).await.status(), StatusCode::OK);
    assert_eq!(emulator.library("alice").playlists[0].items.len(), 5);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_a_json_api_body() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user("alice", &library(1, 3));
    let client = Client::new(&emulator, "alice");
    emulator.faults().rate_limit_next(1, Duration::from_millis(1500));
    let response =
        client.http.get(format!("{}/users/me", client.base)).bearer_auth(&client.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "2", "whole seconds, rounded up");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(response.headers()["content-type"], JSON_API);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(error_status(&doc), "429");
    let (status, me) = client.get("/users/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["id"], "alice");

    // Expired and missing tokens: 401; a missing scope: 403.
    emulator.faults().expire_access_tokens_now();
    let (status, _) = client.get("/users/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (token, _) = emulator.issue_tokens_with_scopes("alice", &["collection.read"], Duration::from_secs(60));
    let reader = Client { token, ..Client::new(&emulator, "alice") };
    let body = json!({ "data": [{ "id": "1000", "type": "tracks" }] });
    let response =
        reader.send(reqwest::Method::DELETE, "/userCollectionTracks/me/relationships/items", None, &body).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

fn config(emulator: &TidalEmulator) -> TidalConfig {
    let mut config = TidalConfig::new(emulator.client_id(), None, REDIRECT)
        .unwrap()
        .with_base_urls(emulator.api_base_url(), emulator.auth_base_url(), emulator.authorize_url())
        .unwrap();
    config.http = test_http_config();
    config
}

/// Follows the authorize URL like a browser whose user approves; returns the code.
async fn authorize(url: &str, state: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 302, "the emulator approves and redirects");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let callback = url::Url::parse(&location).unwrap();
    let param = |name: &str| callback.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), Some(state));
    param("code").expect("a code")
}

#[tokio::test]
async fn oauth_with_pkce_and_a_refresh_that_keeps_the_refresh_token() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.register_redirect_uri(REDIRECT).unwrap();
    emulator.seed_user("alice", &library(2, 3));
    let auth = TidalAuth::new(config(&emulator)).unwrap();
    let request = auth.authorization_request().unwrap();
    let url = url::Url::parse(&request.url).unwrap();
    assert!(request.url.starts_with(&emulator.authorize_url()));
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(
        param("scope").as_deref(),
        Some("collection.read collection.write playlists.read playlists.write user.read")
    );

    // The wrong verifier is refused.
    let code = authorize(&request.url, &request.state).await;
    let wrong = secrecy::SecretString::from("w".repeat(64));
    assert_eq!(auth.exchange_code(&code, Some(&wrong)).await.unwrap_err().code(), "invalid_input");

    let request = auth.authorization_request().unwrap();
    let code = authorize(&request.url, &request.state).await;
    let tokens = auth.exchange_code(&code, request.pkce_verifier.as_ref()).await.unwrap();
    let refresh = tokens.refresh_token.clone().expect("a refresh token at the exchange");
    let client = Client { token: tokens.access_token.expose_secret().to_owned(), ..Client::new(&emulator, "alice") };
    let (status, me) = client.get("/users/me").await;
    assert_eq!((status, me["data"]["id"].as_str()), (StatusCode::OK, Some("alice")));

    // A refresh answers a new access token and no refresh token; the old one keeps working.
    let first = auth.refresh(&refresh).await.unwrap();
    assert!(first.refresh_token.is_none(), "TIDAL keeps the refresh token");
    assert_ne!(first.access_token.expose_secret(), tokens.access_token.expose_secret());
    let second = auth.refresh(&refresh).await.unwrap();
    assert_ne!(second.access_token.expose_secret(), first.access_token.expose_secret());

    // Revoked: the user must connect again.
    emulator.faults().revoke_all_tokens();
    let err = auth.refresh(&refresh).await.unwrap_err();
    assert!(matches!(err, ProviderError::NeedsReauth { .. }), "{err}");
    assert_eq!(auth.revoke(&tokens).await.unwrap_err().code(), "unsupported");
}
