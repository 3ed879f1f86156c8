//! Tests of the Spotify emulator over plain HTTP (reqwest), against the shapes and limits
//! of the real Web API. Run: `cargo test -p dnp-providers --features emulator --test spotify_emulator`.

use std::time::Duration;

use dnp_core::{LibrarySnapshot, ProviderId};
use dnp_providers::emulator::oauth::pkce_challenge_s256;
use dnp_providers::emulator::{EmulatorConfig, FaultInjector, FaultKind, LibraryShape, generate_library};
use dnp_providers::spotify::emulator::SpotifyEmulator;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const USER: &str = "alice";

struct Fixture {
    emulator: SpotifyEmulator,
    library: LibrarySnapshot,
    token: String,
    http: Client,
}

fn spotify() -> ProviderId {
    ProviderId::new(ProviderId::SPOTIFY).unwrap()
}

fn fixture() -> Fixture {
    let emulator = SpotifyEmulator::start(EmulatorConfig { seed: 3, ..EmulatorConfig::default() }).unwrap();
    let library = generate_library(&spotify(), LibraryShape::SMALL, 11);
    emulator.seed_user(USER, &library);
    let (token, _) = emulator.issue_tokens(USER, Duration::from_secs(3600));
    let http = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Fixture { emulator, library, token, http }
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.api_base_url())
    }

    async fn get(&self, url: &str) -> (StatusCode, Value) {
        let response = self.http.get(url).bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Follows `next` links from `first`, returning every page.
    async fn pages(&self, first: &str, key: Option<&str>) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(url) = next {
            let (status, body) = self.get(&url).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            let page = match key {
                Some(key) => body[key].clone(),
                None => body,
            };
            next = page["next"].as_str().map(str::to_owned);
            pages.push(page);
            assert!(pages.len() < 100, "runaway pagination");
        }
        pages
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let url = format!("{}/api/token", self.emulator.accounts_base_url());
        let response = self.http.post(url).form(form).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[test]
fn generated_library_is_deterministic_and_varied() {
    let a = generate_library(&spotify(), LibraryShape::SMALL, 1);
    assert_eq!(a, generate_library(&spotify(), LibraryShape::SMALL, 1));
    assert_ne!(a, generate_library(&spotify(), LibraryShape::SMALL, 2));
    assert_eq!(a.liked_tracks.len(), 120);
    assert_eq!(a.playlists.len(), 8);
    assert!(a.playlists.iter().any(|p| !p.owned && !p.editable));
    assert!(a.playlists.iter().any(|p| !p.owned && p.editable && p.collaborative));
    let featured = a.liked_tracks.iter().filter(|t| t.track.artists.len() > 1).count();
    assert!((10..=45).contains(&featured), "about 20 % featured, got {featured} of 120");
    assert!(a.liked_tracks.iter().all(|t| t.track.isrc.as_ref().is_some_and(|i| i.len() == 12)));
    let duplicates = a.playlists.iter().any(|p| {
        let ids: std::collections::HashSet<_> = p.items.iter().map(|i| &i.track.id).collect();
        ids.len() < p.items.len()
    });
    assert!(duplicates, "some playlist repeats a track");
}

#[tokio::test]
async fn seeding_then_reading_back_gives_the_same_library() {
    let f = fixture();
    assert_eq!(f.emulator.library(USER), f.library);
    assert_eq!(f.emulator.library("nobody"), LibrarySnapshot::empty(spotify()));
}

#[tokio::test]
async fn saved_tracks_follow_next_links_across_pages_in_order() {
    let f = fixture();
    let pages = f.pages(&f.url("/me/tracks?limit=50"), None).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0]["total"], 120);
    assert_eq!(pages[0]["previous"], Value::Null);
    assert_eq!(pages[2]["items"].as_array().unwrap().len(), 20);
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter())
        .map(|i| i["track"]["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = f.library.liked_tracks.iter().map(|t| t.track.id.clone()).collect();
    assert_eq!(ids, expected);
    let first = &pages[0]["items"][0];
    assert_eq!(first["track"]["external_ids"]["isrc"], json!(f.library.liked_tracks[0].track.isrc));
    assert!(first["added_at"].as_str().unwrap().ends_with('Z'));
    // The default page is 20.
    let (_, default) = f.get(&f.url("/me/tracks")).await;
    assert_eq!(default["limit"], 20);
}

#[tokio::test]
async fn limit_above_50_is_400_with_the_spec_error_body() {
    let f = fixture();
    for query in ["limit=51", "limit=0", "limit=ten", "offset=-1"] {
        let (status, body) = f.get(&f.url(&format!("/me/tracks?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["status"], 400);
        assert!(error_message(&body).starts_with("Invalid"), "{body}");
    }
    let (status, _) = f.get(&f.url("/search?q=a&type=artist&limit=11")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "search allows 10 at most");
}

#[tokio::test]
async fn albums_playlists_and_followed_artists_page_like_spotify() {
    let f = fixture();
    let albums = f.pages(&f.url("/me/albums?limit=7"), None).await;
    assert_eq!(albums.len(), 5);
    assert!(albums[0]["items"][0]["album"]["artists"].as_array().is_some_and(|a| !a.is_empty()));

    let playlists = f.pages(&f.url("/me/playlists?limit=5"), None).await;
    let names: Vec<&str> = playlists
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, f.library.playlists.iter().map(|p| p.name.as_str()).collect::<Vec<_>>());
    assert_eq!(playlists[0]["items"][0]["items"]["total"], 60);

    let followed = f.pages(&f.url("/me/following?type=artist&limit=10"), Some("artists")).await;
    assert_eq!(followed.len(), 3);
    assert_eq!(followed[0]["total"], 25);
    assert_eq!(followed[2]["cursors"]["after"], Value::Null);
    let ids: Vec<&str> = followed
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter())
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, f.library.followed_artists.iter().map(|a| a.artist.id.as_str()).collect::<Vec<_>>());
    let (status, _) = f.get(&f.url("/me/following")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "type=artist is required");
}

#[tokio::test]
async fn playlist_items_page_by_50_under_item() {
    let f = fixture();
    let playlist = &f.library.playlists[0];
    let pages = f.pages(&f.url(&format!("/playlists/{}/items?limit=50", playlist.id)), None).await;
    assert_eq!(pages.len(), 2);
    let entries: Vec<&Value> = pages.iter().flat_map(|p| p["items"].as_array().unwrap().iter()).collect();
    assert_eq!(entries.len(), playlist.items.len());
    for (entry, item) in entries.iter().zip(&playlist.items) {
        assert_eq!(entry["item"]["id"], json!(item.track.id));
        assert_eq!(entry["item"]["external_ids"]["isrc"], json!(item.track.isrc));
        assert!(entry.get("track").is_none(), "the deprecated `track` field is not sent");
    }
    let primary = &playlist.items[0].track.artists;
    assert_eq!(entries[0]["item"]["artists"].as_array().unwrap().len(), primary.len());
    let (status, _) = f.get(&f.url(&format!("/playlists/{}/items?limit=51", playlist.id))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, details) = f.get(&f.url(&format!("/playlists/{}", playlist.id))).await;
    assert_eq!(details["snapshot_id"], json!(playlist.version));
    assert_eq!(details["items"]["items"].as_array().unwrap().len(), 50);
}

#[tokio::test]
async fn items_of_a_followed_playlist_not_owned_are_403() {
    let f = fixture();
    let followed = f.library.playlists.iter().find(|p| !p.owned && !p.editable).unwrap();
    let (status, body) = f.get(&f.url(&format!("/playlists/{}/items", followed.id))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["status"], 403);
    let (status, details) = f.get(&f.url(&format!("/playlists/{}", followed.id))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(details.get("items").is_none(), "no items for a playlist the user neither owns nor collaborates on");
    assert_ne!(details["owner"]["id"], USER);

    let collaborative = f.library.playlists.iter().find(|p| !p.owned && p.editable).unwrap();
    let (status, _) = f.get(&f.url(&format!("/playlists/{}/items", collaborative.id))).await;
    assert_eq!(status, StatusCode::OK, "a collaborator may read the items");
}

#[tokio::test]
async fn library_writes_take_at_most_40_uris() {
    let f = fixture();
    let uris: Vec<String> = f.library.liked_tracks.iter().map(|t| format!("spotify:track:{}", t.track.id)).collect();
    let url = f.url("/me/library");
    let response =
        f.http.delete(&url).query(&[("uris", uris[..41].join(","))]).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(f.emulator.library(USER).liked_tracks.len(), 120, "nothing removed by a refused call");

    let response =
        f.http.delete(&url).query(&[("uris", uris[..40].join(","))]).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let library = f.emulator.library(USER);
    assert_eq!(library.liked_tracks.len(), 80);
    assert_eq!(library.liked_tracks[0].track.id, f.library.liked_tracks[40].track.id);

    // Saving puts them back first, dated now.
    let response = f.http.put(&url).query(&[("uris", uris[..2].join(","))]).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let library = f.emulator.library(USER);
    assert_eq!(library.liked_tracks[0].track.id, f.library.liked_tracks[0].track.id);
    assert_eq!(library.liked_tracks.len(), 82);

    let artist = format!("spotify:artist:{}", f.library.followed_artists[0].artist.id);
    let response = f.http.delete(&url).query(&[("uris", artist.as_str())]).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "the spec lists no artist URIs for /me/library");
    let response = f
        .http
        .put(&url)
        .query(&[("uris", "spotify:track:0000000000000000000000")])
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "unknown ids are refused");

    // The deprecated fallback for artists.
    let id = f.library.followed_artists[0].artist.id.clone();
    let following = f.url("/me/following");
    let response = f
        .http
        .delete(&following)
        .query(&[("type", "artist"), ("ids", id.as_str())])
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(f.emulator.library(USER).followed_artists.len(), 24);
}

#[tokio::test]
async fn playlist_delete_removes_every_occurrence_and_changes_the_snapshot() {
    let f = fixture();
    let playlist = f
        .library
        .playlists
        .iter()
        .find(|p| p.owned && p.items.iter().any(|i| p.items.iter().filter(|j| j.track.id == i.track.id).count() > 1))
        .unwrap();
    let duplicated = playlist
        .items
        .iter()
        .find(|i| playlist.items.iter().filter(|j| j.track.id == i.track.id).count() > 1)
        .unwrap()
        .track
        .id
        .clone();
    let url = f.url(&format!("/playlists/{}/items", playlist.id));
    let body = json!({ "items": [{ "uri": format!("spotify:track:{duplicated}") }], "snapshot_id": playlist.version });
    let response = f.http.delete(&url).json(&body).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let snapshot: Value = response.json().await.unwrap();
    assert_ne!(snapshot["snapshot_id"], json!(playlist.version));

    let after = f.emulator.library(USER).playlists.into_iter().find(|p| p.id == playlist.id).unwrap();
    assert!(after.items.iter().all(|i| i.track.id != duplicated));
    let removed = playlist.items.iter().filter(|i| i.track.id == duplicated).count();
    assert_eq!(after.items.len(), playlist.items.len() - removed);
    assert_eq!(after.version.as_deref(), snapshot["snapshot_id"].as_str());
    assert!(after.items.iter().enumerate().all(|(i, item)| item.position as usize == i));

    let stale = json!({ "items": [{ "uri": format!("spotify:track:{}", after.items[0].track.id) }], "snapshot_id": "AAAAnot-a-snapshot" });
    let response = f.http.delete(&url).json(&stale).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "an unknown snapshot id is refused");
    let too_many: Vec<Value> = (0..101).map(|_| json!({ "uri": format!("spotify:track:{duplicated}") })).collect();
    let response = f.http.delete(&url).json(&json!({ "items": too_many })).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn playlist_post_inserts_at_position_and_refuses_more_than_100() {
    let f = fixture();
    let playlist = &f.library.playlists[0];
    let url = f.url(&format!("/playlists/{}/items", playlist.id));
    let uri = format!("spotify:track:{}", f.library.liked_tracks[5].track.id);
    let response =
        f.http.post(&url).json(&json!({ "uris": [uri], "position": 3 })).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let after = f.emulator.library(USER).playlists.into_iter().find(|p| p.id == playlist.id).unwrap();
    assert_eq!(after.items[3].track.id, f.library.liked_tracks[5].track.id);
    assert_eq!(after.items.len(), playlist.items.len() + 1);
    assert_ne!(after.version, playlist.version);

    let many: Vec<String> = (0..101).map(|_| uri.clone()).collect();
    let response = f.http.post(&url).json(&json!({ "uris": many })).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response =
        f.http.post(&url).json(&json!({ "uris": [uri], "position": 1000 })).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let followed = f.library.playlists.iter().find(|p| !p.editable).unwrap();
    let url = f.url(&format!("/playlists/{}/items", followed.id));
    let response = f.http.post(&url).json(&json!({ "uris": [uri] })).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn oauth_code_with_pkce_rejects_a_wrong_verifier() {
    let f = fixture();
    let redirect = "http://127.0.0.1:9/callback";
    f.emulator.register_redirect_uri(redirect).unwrap();
    assert!(f.emulator.register_redirect_uri("http://localhost:9/callback").is_err());
    let verifier = "a".repeat(20) + &"b".repeat(30);
    let challenge = pkce_challenge_s256(&verifier);
    let authorize = format!("{}/authorize", f.emulator.accounts_base_url());
    let client_id = f.emulator.client_id();
    let query = [
        ("client_id", client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", redirect),
        ("state", "xyz-state"),
        ("scope", "user-library-read user-library-modify"),
        ("code_challenge_method", "S256"),
        ("code_challenge", challenge.as_str()),
    ];
    let response = f.http.get(&authorize).query(&query).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect));
    let param = |name: &str| location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), Some("xyz-state"));
    let code = param("code").unwrap();

    let wrong = "c".repeat(50);
    let exchange = |verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", redirect.to_owned()),
            ("client_id", client_id.clone()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    let as_refs = |form: &[(&'static str, String)]| form.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let form = as_refs(&exchange(&wrong));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = f.token_request(&pairs).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let form = as_refs(&exchange(&verifier));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = f.token_request(&pairs).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "user-library-read user-library-modify");
    let access = body["access_token"].as_str().unwrap();
    let me: Value = f.http.get(f.url("/me")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["id"], USER, "the user seeded last approves");
    let response = f.http.get(f.url("/me/following?type=artist")).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "user-follow-read was not granted");

    let (status, body) = f.token_request(&pairs).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "a code is single-use"
    );

    // An unregistered redirect URI gets an error page, not a redirect.
    let mut query = query.to_vec();
    query[2] = ("redirect_uri", "http://127.0.0.1:9/other");
    let response = f.http.get(&authorize).query(&query).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_is_rejected() {
    let f = fixture();
    let (_, refresh) = f.emulator.issue_tokens(USER, Duration::from_secs(60));
    let client_id = f.emulator.client_id();
    let form =
        [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", client_id.as_str())];
    let (status, body) = f.token_request(&form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh);
    let (status, _) = f.get(&f.url("/me")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = f.token_request(&form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let form =
        [("grant_type", "refresh_token"), ("refresh_token", new_refresh.as_str()), ("client_id", client_id.as_str())];
    let (status, _) = f.token_request(&form).await;
    assert_eq!(status, StatusCode::OK, "the rotated token works once");
    let (status, body) = f.token_request(&[("grant_type", "refresh_token"), ("refresh_token", "nope")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client")));
}

#[tokio::test]
async fn expired_and_revoked_tokens_answer_401() {
    let f = fixture();
    let (expired, _) = f.emulator.issue_tokens(USER, Duration::ZERO);
    let response = f.http.get(f.url("/me/tracks")).bearer_auth(&expired).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "error": { "status": 401, "message": "The access token expired" } }));

    let response = f.http.get(f.url("/me/tracks")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "no token");

    let (status, _) = f.get(&f.url("/me")).await;
    assert_eq!(status, StatusCode::OK);
    f.emulator.faults().expire_access_tokens_now();
    let (status, body) = f.get(&f.url("/me")).await;
    assert_eq!((status, error_message(&body)), (StatusCode::UNAUTHORIZED, "The access token expired"));

    let (_, refresh) = f.emulator.issue_tokens(USER, Duration::from_secs(60));
    f.emulator.faults().revoke_all_tokens();
    let client_id = f.emulator.client_id();
    let (status, body) = f
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &client_id)])
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (fresh, _) = f.emulator.issue_tokens(USER, Duration::from_secs(60));
    let response = f.http.get(f.url("/me")).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "tokens issued after the revocation work");
}

#[tokio::test]
async fn injected_429_carries_retry_after_and_is_logged() {
    let f = fixture();
    f.emulator.faults().rate_limit_next(2, Duration::from_millis(2500));
    for _ in 0..2 {
        let response = f.http.get(f.url("/me/tracks?limit=5")).bearer_auth(&f.token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "3");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["status"], 429);
    }
    let (status, _) = f.get(&f.url("/me/tracks?limit=5")).await;
    assert_eq!(status, StatusCode::OK);

    f.emulator.faults().quota_exceeded_next(1, Duration::from_secs(30));
    let (status, body) = f.get(&f.url("/me")).await;
    assert_eq!((status, body["error"]["reason"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("QUOTA_EXCEEDED")));
    f.emulator.faults().server_error_next(1, 503).unwrap();
    let (status, _) = f.get(&f.url("/me")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(f.emulator.faults().server_error_next(1, 404).is_err());

    let log = f.emulator.request_log();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 200, 429, 503]);
    assert!(log.iter().all(|r| r.path.starts_with("/v1/me") && !r.path.contains('?')));
    assert!(matches!(log[0].fault, Some(FaultKind::RateLimited { .. })));
    assert_eq!(f.emulator.faults().stats().rejections(), 4);
}

#[tokio::test]
async fn timeouts_hold_the_request_and_apply_nothing() {
    let f = fixture();
    f.emulator.faults().timeout_next(1, Duration::from_millis(300));
    let uri = format!("spotify:track:{}", f.library.liked_tracks[0].track.id);
    let client = Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    let result =
        client.delete(f.url("/me/library")).query(&[("uris", uri.as_str())]).bearer_auth(&f.token).send().await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(f.emulator.library(USER).liked_tracks.len(), 120);
}

#[test]
fn ratio_faults_are_deterministic_for_a_seed() {
    let decisions = |seed| {
        let faults = FaultInjector::new(seed, None);
        faults.rate_limit_ratio(0.3, Duration::from_secs(1)).unwrap();
        (0..200).map(|_| faults.decide("GET", "/v1/me/tracks").is_some()).collect::<Vec<_>>()
    };
    let a = decisions(9);
    assert_eq!(a, decisions(9));
    assert_ne!(a, decisions(10));
    let hits = a.iter().filter(|hit| **hit).count();
    assert!((35..=85).contains(&hits), "about 30 % of 200, got {hits}");
    let faults = FaultInjector::new(1, None);
    assert!(faults.rate_limit_ratio(1.5, Duration::from_secs(1)).is_err());
}

#[tokio::test]
async fn search_finds_artists_by_name_and_tracks_by_isrc() {
    let f = fixture();
    let track = &f.library.liked_tracks[7].track;
    let isrc = track.isrc.clone().unwrap();
    let url = f.url("/search");
    let response = f
        .http
        .get(&url)
        .query(&[("q", format!("isrc:{isrc}").as_str()), ("type", "track")])
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tracks"]["total"], 1);
    assert_eq!(body["tracks"]["items"][0]["id"], json!(track.id));

    let artist = &f.library.followed_artists[3].artist;
    let response = f
        .http
        .get(&url)
        .query(&[("q", artist.name.as_str()), ("type", "artist,track")])
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["artists"]["items"][0]["id"], json!(artist.id), "the exact name ranks first");
    assert!(body["tracks"].is_object());
    let (status, _) = f.get(&f.url("/search?q=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "type is required");
}

#[tokio::test]
async fn a_playlist_changed_by_someone_else_gets_a_new_snapshot_and_item() {
    let f = fixture();
    let playlist = &f.library.playlists[1];
    let snapshot = f.emulator.change_playlist(USER, &playlist.id).unwrap();
    assert_ne!(Some(&snapshot), playlist.version.as_ref());
    let (_, page) = f.get(&f.url(&format!("/playlists/{}/items?limit=1", playlist.id))).await;
    assert_eq!(page["total"], json!(playlist.items.len() + 1));
    assert_ne!(page["items"][0]["added_by"]["id"], USER);
    assert!(f.emulator.change_playlist(USER, "nope").is_err());
    assert!(f.emulator.change_playlist("nobody", &playlist.id).is_err());
}

#[tokio::test]
async fn unknown_paths_and_playlists_answer_in_the_spec_shape() {
    let f = fixture();
    let (status, body) = f.get(&f.url("/no/such/endpoint")).await;
    assert_eq!((status, body["error"]["status"].as_u64()), (StatusCode::NOT_FOUND, Some(404)));
    let (status, body) = f.get(&f.url("/playlists/unknown0000000000000000")).await;
    assert_eq!((status, error_message(&body)), (StatusCode::NOT_FOUND, "Resource not found"));
}

#[tokio::test]
async fn latency_applies_per_request_without_serializing_them() {
    let f = fixture();
    f.emulator.set_latency(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let calls = (0..8).map(|i| {
        let url = f.url(&format!("/me/tracks?limit=10&offset={}", i * 10));
        let request = f.http.get(url).bearer_auth(&f.token);
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert!(elapsed >= Duration::from_millis(200), "latency applied: {elapsed:?}");
    // One at a time they would take at least 8 x 200 ms = 1,600 ms; the margin below that is
    // for a loaded CI machine.
    assert!(elapsed < Duration::from_millis(1500), "8 concurrent requests overlap: {elapsed:?}");
    assert!(f.emulator.request_log().iter().all(|r| r.duration >= Duration::from_millis(200)));
}

#[tokio::test]
async fn an_outage_lasts_until_cleared() {
    let f = fixture();
    f.emulator.faults().server_error_ratio(1.0, 502).unwrap();
    for _ in 0..3 {
        let (status, body) = f.get(&f.url("/me")).await;
        assert_eq!((status, body["error"]["status"].as_u64()), (StatusCode::BAD_GATEWAY, Some(502)));
    }
    let client_id = f.emulator.client_id();
    let (_, refresh) = f.emulator.issue_tokens(USER, Duration::from_secs(60));
    let (status, _) = f
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &client_id)])
        .await;
    assert_eq!(status, StatusCode::OK, "faults are scoped to /v1: the accounts service keeps working");
    f.emulator.faults().clear();
    let (status, _) = f.get(&f.url("/me")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn timestamped_ids_restore_the_save_order() {
    let f = fixture();
    let removed: Vec<_> = [3, 4, 50].iter().map(|i| f.library.liked_tracks[*i].clone()).collect();
    let uris: Vec<String> = removed.iter().map(|t| format!("spotify:track:{}", t.track.id)).collect();
    let response = f
        .http
        .delete(f.url("/me/library"))
        .query(&[("uris", uris.join(","))])
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, contains) = f.get(&f.url(&format!("/me/library/contains?uris={}", uris.join(",")))).await;
    assert_eq!(contains, json!([false, false, false]));

    let body = json!({ "timestamped_ids": removed.iter().map(|t| json!({
        "id": t.track.id,
        "added_at": t.added_at.unwrap().to_rfc3339(),
    })).collect::<Vec<_>>() });
    let response = f.http.put(f.url("/me/tracks")).json(&body).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(f.emulator.library(USER), f.library, "the deprecated timestamped save restores order and dates");
}

#[tokio::test]
async fn the_benchmark_library_seeds_and_reads_back() {
    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    let library = generate_library(&spotify(), LibraryShape::BENCHMARK, 5);
    assert_eq!(library.liked_tracks.len(), 10_000);
    assert_eq!(library.playlists.iter().map(|p| p.items.len()).sum::<usize>(), 10_000);
    emulator.seed_user("bench", &library);
    assert_eq!(emulator.library("bench"), library);
}

#[tokio::test]
async fn dropping_the_emulator_stops_the_server() {
    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    let url = format!("{}/me", emulator.api_base_url());
    let http = Client::new();
    assert_eq!(http.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    drop(emulator);
    let fresh = Client::new();
    assert!(fresh.get(&url).send().await.is_err(), "nothing listens any more");
}

#[tokio::test]
async fn refresh_tokens_expire_with_the_original_authorization() {
    let config = EmulatorConfig { refresh_token_lifetime: Duration::ZERO, ..EmulatorConfig::default() };
    let emulator = SpotifyEmulator::start(config).unwrap();
    let (_, refresh) = emulator.issue_tokens(USER, Duration::from_secs(60));
    let client_id = emulator.client_id();
    let form =
        [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", client_id.as_str())];
    let response =
        Client::new().post(format!("{}/api/token", emulator.accounts_base_url())).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn reusing_a_refresh_token_can_revoke_the_whole_grant() {
    let config = EmulatorConfig { reuse_revokes_grant: true, ..EmulatorConfig::default() };
    let emulator = SpotifyEmulator::start(config).unwrap();
    let (_, refresh) = emulator.issue_tokens(USER, Duration::from_secs(60));
    let client_id = emulator.client_id();
    let http = Client::new();
    let token_url = format!("{}/api/token", emulator.accounts_base_url());
    let refresh_with = |token: String| {
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token),
            ("client_id", client_id.clone()),
        ];
        let request = http.post(&token_url).form(&form);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = refresh_with(refresh.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = refresh_with(refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the spent token is refused");
    let (status, body) = refresh_with(first["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "and so is its successor"
    );
    let access = first["access_token"].as_str().unwrap();
    let response = http.get(format!("{}/me", emulator.api_base_url())).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn basic_client_authentication_and_its_failures() {
    let f = fixture();
    let (_, refresh) = f.emulator.issue_tokens(USER, Duration::from_secs(60));
    let url = format!("{}/api/token", f.emulator.accounts_base_url());
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let wrong = f.http.post(&url).basic_auth(f.emulator.client_id(), Some("wrong")).form(&form).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"], "invalid_client");
    let right = f
        .http
        .post(&url)
        .basic_auth(f.emulator.client_id(), Some(f.emulator.client_secret()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let json = f.http.post(&url).json(&json!({ "grant_type": "refresh_token" })).send().await.unwrap();
    assert_eq!(json.status(), StatusCode::BAD_REQUEST, "the token endpoint takes form bodies only");
    let (status, body) = f.token_request(&[("grant_type", "password"), ("client_id", &f.emulator.client_id())]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
}
