//! The TIDAL adapter against its emulator and against scripted answers: scans, enforcement,
//! idempotency keys, errors.
//!
//! Run: `cargo test -p dnp-providers --no-default-features --features tidal,emulator --test tidal_adapter`

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dnp_core::conformance::{LibraryShape as CheckShape, compare_libraries, generate_library as check_library};
use dnp_core::memory::MemoryTokenStore;
use dnp_core::{
    Action, ActionId, ActionKind, Batch, EntryId, MatchKind, NoProgress, Outcome, Provider, ProviderAuth,
    ProviderError, ProviderId, Reason, StaticToken, StoredTokenSource, Target, TokenSet, TokenSource, TokenStore,
    UserId,
};
use dnp_providers::emulator::{EmulatorConfig, FaultKind, FaultRule, FaultTrigger, LibraryShape, generate_library};
use dnp_providers::http::{ApiClient, Transport, TransportError, TransportRequest, TransportResponse};
use dnp_providers::tidal::emulator::TidalEmulator;
use dnp_providers::tidal::{TidalAuth, TidalClient, TidalConfig, TidalProvider, test_http_config};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

fn tidal() -> ProviderId {
    ProviderId::new(ProviderId::TIDAL).unwrap()
}

fn config(emulator: &TidalEmulator) -> TidalConfig {
    let mut config = TidalConfig::new(emulator.client_id(), None, "http://127.0.0.1:8888/callback/tidal")
        .unwrap()
        .with_base_urls(emulator.api_base_url(), emulator.auth_base_url(), emulator.authorize_url())
        .unwrap();
    config.http = test_http_config();
    config
}

fn token(emulator: &TidalEmulator, user: &str) -> StaticToken {
    let (access, _) = emulator.issue_tokens(user, Duration::from_secs(3600));
    StaticToken::new(tidal(), SecretString::from(access))
}

fn reason() -> Reason {
    Reason {
        entry_id: EntryId::new_random(),
        artist_name: "test".into(),
        matched: MatchKind::PrimaryCredit,
        credit: "test".into(),
        confidence: 1.0,
    }
}

fn batch(kind: ActionKind, playlist: Option<&str>, targets: Vec<Target>) -> Batch {
    Batch {
        kind,
        playlist_id: playlist.map(str::to_owned),
        actions: targets
            .into_iter()
            .enumerate()
            .map(|(i, target)| Action {
                id: ActionId(i as u32),
                kind,
                target,
                reason: reason(),
                label: format!("item {i}"),
                inverse_of: None,
            })
            .collect(),
        quota_units: 0,
        day: 0,
    }
}

fn confirmed(outcomes: &[dnp_core::ActionOutcome]) -> bool {
    outcomes.iter().all(|o| matches!(o.outcome, Outcome::Confirmed { .. }))
}

#[tokio::test]
async fn a_scan_reads_every_page_in_the_minimal_number_of_calls() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    let library = generate_library(&tidal(), LibraryShape::SMALL, 7);
    emulator.seed_user("alice", &library);
    let provider = TidalProvider::new(config(&emulator)).unwrap();
    let state = emulator.library("alice");
    emulator.log().clear();
    let scanned = provider.scan(&token(&emulator, "alice"), &NoProgress).await.unwrap();
    compare_libraries(&state, &scanned).unwrap();
    // Every editable playlist's items, with their item ids; followed playlists listed only.
    for (expected, found) in state.playlists.iter().zip(&scanned.playlists) {
        if found.editable {
            let ids = |p: &dnp_core::Playlist| p.items.iter().map(|i| i.item_id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(expected), ids(found));
            assert!(found.items.iter().all(|i| i.item_id.is_some()));
        } else {
            assert!(found.items.is_empty());
        }
    }
    let pages = |n: usize| n.div_ceil(20).max(1);
    let expected = 1
        + pages(state.liked_tracks.len())
        + pages(state.saved_albums.len())
        + pages(state.followed_artists.len())
        + pages(state.playlists.len())
        + state.playlists.iter().filter(|p| p.editable).map(|p| p.items.len().div_ceil(20)).sum::<usize>();
    assert_eq!(emulator.log().len(), expected, "one request per page, nothing else");
    let featured = scanned
        .liked_tracks
        .iter()
        .flat_map(|l| &l.track.artists)
        .filter(|c| c.role == dnp_core::CreditRole::Featured)
        .count();
    assert!(featured > 0, "featured credits survive the round trip");
}

#[tokio::test]
async fn removals_and_their_inverses_restore_dates_and_positions() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    let library = check_library(&tidal(), 11, &CheckShape::small());
    emulator.seed_user("alice", &library);
    let provider = TidalProvider::new(config(&emulator)).unwrap();
    let auth = token(&emulator, "alice");
    let before = provider.scan(&auth, &NoProgress).await.unwrap();

    let liked: Vec<Target> = before.liked_tracks[2..5]
        .iter()
        .map(|l| Target::Track { track_id: l.track.id.clone(), entry_id: None, added_at: l.added_at, disliked: false })
        .collect();
    let unlike = batch(ActionKind::UnlikeTrack, None, liked.clone());
    assert!(confirmed(&provider.apply(&auth, &unlike).await.unwrap()));
    assert_eq!(emulator.library("alice").liked_tracks.len(), before.liked_tracks.len() - 3);
    let like = batch(ActionKind::LikeTrack, None, liked);
    assert!(confirmed(&provider.apply(&auth, &like).await.unwrap()));
    compare_libraries(&emulator.library("alice"), &before).unwrap();

    // Regression: enforcing the same batch again after its rollback (within the hour TIDAL
    // keeps idempotency keys) must remove again, not replay the first answer.
    assert!(confirmed(&provider.apply(&auth, &unlike).await.unwrap()));
    assert_eq!(emulator.library("alice").liked_tracks.len(), before.liked_tracks.len() - 3, "removed again");

    // A playlist entry without an item id is resolved by its position.
    let playlist = before.playlists.iter().find(|p| p.editable && p.items.len() >= 4).unwrap();
    let item = &playlist.items[3];
    let target = |item_id: Option<String>| Target::PlaylistItem {
        playlist_id: playlist.id.clone(),
        playlist_version: playlist.version.clone(),
        track_id: item.track.id.clone(),
        position: item.position,
        item_id,
        added_at: item.added_at,
    };
    let remove = batch(ActionKind::RemovePlaylistItem, Some(&playlist.id), vec![target(None)]);
    assert!(confirmed(&provider.apply(&auth, &remove).await.unwrap()));
    let now = emulator.library("alice");
    let after = now.playlists.iter().find(|p| p.id == playlist.id).unwrap();
    assert_eq!(after.items.len(), playlist.items.len() - 1);
    assert!(after.items.iter().all(|i| i.item_id != item.item_id), "exactly that entry went");
    // Gone already: confirmed, nothing else removed.
    let again = batch(ActionKind::RemovePlaylistItem, Some(&playlist.id), vec![target(item.item_id.clone())]);
    assert!(confirmed(&provider.apply(&auth, &again).await.unwrap()));
    assert_eq!(
        emulator.library("alice").playlists.iter().find(|p| p.id == playlist.id).unwrap().items.len(),
        after.items.len()
    );

    let insert = batch(ActionKind::InsertPlaylistItem, Some(&playlist.id), vec![target(item.item_id.clone())]);
    assert!(confirmed(&provider.apply(&auth, &insert).await.unwrap()));
    let restored = emulator.library("alice");
    let restored = restored.playlists.iter().find(|p| p.id == playlist.id).unwrap();
    assert_eq!(restored.items[3].track.id, item.track.id, "back at its position");
    assert_eq!(restored.items[3].added_at, item.added_at, "with its date");
}

/// Regression: a playlist insert whose answer was lost (the client timed out while TIDAL
/// applied it) was resent with the same Idempotency-Key, so it is not inserted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_resent_after_a_timeout_is_not_applied_twice() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    let library = check_library(&tidal(), 12, &CheckShape::small());
    emulator.seed_user("alice", &library);
    let mut config = config(&emulator);
    config.http.request_timeout = Duration::from_millis(400);
    let provider = TidalProvider::new(config).unwrap();
    let auth = token(&emulator, "alice");
    let state = emulator.library("alice");
    let playlist = state.playlists.iter().find(|p| p.editable && !p.items.is_empty()).unwrap();
    let track = &state.liked_tracks[0].track;
    let rule = FaultRule::new(FaultKind::Slow { delay: Duration::from_millis(900) }, FaultTrigger::Next(1))
        .unwrap()
        .on_method("POST")
        .on_path("/v2/playlists/");
    emulator.faults().add_rule(rule).unwrap();
    let insert = batch(
        ActionKind::InsertPlaylistItem,
        Some(&playlist.id),
        vec![Target::PlaylistItem {
            playlist_id: playlist.id.clone(),
            playlist_version: playlist.version.clone(),
            track_id: track.id.clone(),
            position: 0,
            item_id: None,
            added_at: None,
        }],
    );
    let outcomes = provider.apply(&auth, &insert).await.unwrap();
    assert!(confirmed(&outcomes), "{outcomes:?}");
    // Let the held first request finish: it is answered from the key, not applied.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = emulator.library("alice");
    let after = after.playlists.iter().find(|p| p.id == playlist.id).unwrap();
    assert_eq!(after.items.len(), playlist.items.len() + 1, "inserted once");
    assert_eq!(after.items[0].track.id, track.id);
    assert_eq!(emulator.faults().stats().slow, 1);
    assert!(provider.client().api().stats().transient_retries >= 1);
}

#[tokio::test]
async fn search_and_isrc_lookup_find_the_catalog() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    let library = check_library(&tidal(), 13, &CheckShape::small());
    emulator.seed_user("alice", &library);
    let provider = TidalProvider::new(config(&emulator)).unwrap();
    let auth = token(&emulator, "alice");
    let artist = &library.followed_artists[0].artist;
    let found = provider.search_artists(&auth, &artist.name.to_uppercase(), 5).await.unwrap();
    assert_eq!(found[0].id, artist.id);
    assert_eq!(found[0].confidence, 1.0);
    assert!(found.len() <= 5);
    let track = &library.liked_tracks[0].track;
    let by_isrc = provider.track_by_isrc(&auth, track.isrc.as_deref().unwrap()).await.unwrap().unwrap();
    assert_eq!((by_isrc.id.as_str(), by_isrc.artists.len()), (track.id.as_str(), track.artists.len()));
    assert_eq!(by_isrc.album.as_ref().map(|a| a.id.as_str()), track.album.as_ref().map(|a| a.id.as_str()));
    assert_eq!(provider.track_by_isrc(&auth, "ZZZZZ0000000").await.unwrap(), None);
    assert_eq!(provider.track_by_isrc(&auth, "not an isrc").await.unwrap_err().code(), "invalid_input");
}

#[tokio::test]
async fn a_refresh_keeps_the_stored_refresh_token() {
    let emulator = TidalEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user("alice", &check_library(&tidal(), 14, &CheckShape::small()));
    let config = config(&emulator);
    let provider = TidalProvider::new(config.clone()).unwrap();
    let auth: Arc<dyn ProviderAuth> = Arc::new(TidalAuth::new(config).unwrap());
    let (access, refresh) = emulator.issue_tokens("alice", Duration::from_secs(3600));
    let store = Arc::new(MemoryTokenStore::new());
    let tokens = TokenSet {
        access_token: SecretString::from(access),
        refresh_token: Some(SecretString::from(refresh.clone())),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        scopes: vec![],
    };
    let connection = store.save(UserId::new_random(), &tidal(), &tokens).await.unwrap();
    let source = StoredTokenSource::new(store.clone(), auth, connection.id);
    for _ in 0..2 {
        emulator.faults().expire_access_tokens_now();
        provider.scan(&source, &NoProgress).await.unwrap();
        let stored = store.tokens(connection.id).await.unwrap();
        assert_eq!(stored.refresh_token.unwrap().expose_secret(), refresh, "the refresh token is kept");
    }
    assert_eq!(emulator.log().count("POST", "/v1/oauth2/token"), 2, "one refresh per expiry, single-flight");
    let current = source.access_token().await.unwrap();
    assert_ne!(current.expose_secret(), tokens.access_token.expose_secret());
}

/// Answers scripted per request, recording what was sent.
#[derive(Debug, Default)]
struct Script {
    answers: Mutex<VecDeque<(u16, String)>>,
    sent: Mutex<Vec<TransportRequest>>,
}

#[async_trait]
impl Transport for Script {
    async fn send(&self, request: TransportRequest) -> Result<TransportResponse, TransportError> {
        self.sent.lock().unwrap().push(request);
        let (status, body) = self.answers.lock().unwrap().pop_front().unwrap_or((200, "{}".into()));
        Ok(TransportResponse { status, headers: HeaderMap::new(), body: body.into_bytes() })
    }
}

fn scripted(answers: &[(u16, &str)]) -> (Arc<Script>, TidalProvider) {
    let script = Arc::new(Script {
        answers: Mutex::new(answers.iter().map(|(s, b)| (*s, (*b).to_owned())).collect()),
        sent: Mutex::default(),
    });
    let api = ApiClient::with_transport(tidal(), "https://openapi.tidal.test/v2", test_http_config(), script.clone())
        .unwrap();
    (script, TidalProvider::with_client(TidalClient::with_api(api)))
}

fn header<'a>(request: &'a TransportRequest, name: &str) -> Option<&'a str> {
    request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn malformed_documents_are_protocol_errors_naming_the_endpoint() {
    let static_token = StaticToken::new(tidal(), SecretString::from("t".to_owned()));
    let empty = r#"{"data": [], "links": {"self": "/x"}}"#;
    // `/users/me` whose data is a list, not a user.
    let (_, provider) =
        scripted(&[(200, r#"{"data": [], "links": {}}"#), (200, empty), (200, empty), (200, empty), (200, empty)]);
    match provider.scan(&static_token, &NoProgress).await.unwrap_err() {
        ProviderError::Protocol { endpoint, detail, .. } => {
            assert_eq!(endpoint, "GET /users/me");
            assert!(detail.contains("data"), "{detail}");
        }
        other => panic!("expected Protocol, got {other:?}"),
    }
    // A collection page whose included track has no title.
    let no_title = r#"{"data": [{"id": "1", "type": "tracks", "meta": {"addedAt": "2024-01-01T00:00:00Z"}}],
        "included": [{"id": "1", "type": "tracks", "attributes": {"isrc": "X"}}], "links": {"self": "/x"}}"#;
    let me = r#"{"data": {"id": "u1", "type": "users"}, "links": {"self": "/users/me"}}"#;
    let (script, provider) = scripted(&[(200, me), (200, no_title), (200, empty), (200, empty), (200, empty)]);
    // The requests run concurrently: whichever gets the bad page, the error names its endpoint.
    let err = provider.scan(&static_token, &NoProgress).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Protocol { endpoint, .. } if endpoint.starts_with("GET /")), "{err:?}");
    assert!(err.to_string().contains("title") || err.to_string().contains("data"), "{err}");
    let sent = script.sent.lock().unwrap();
    assert!(sent.iter().all(|r| header(r, "accept") == Some("application/vnd.api+json")));
}

#[tokio::test]
async fn a_request_in_progress_is_waited_out_with_the_same_idempotency_key() {
    let in_progress = r#"{"errors": [{"status": "409", "code": "IDEMPOTENT_REQUEST_IN_PROGRESS",
        "detail": "Request already in progress for this idempotency key"}]}"#;
    let (script, provider) = scripted(&[(409, in_progress), (200, r#"{"links": {"self": "/x"}}"#)]);
    let auth = StaticToken::new(tidal(), SecretString::from("t".to_owned()));
    let unlike = batch(
        ActionKind::UnlikeTrack,
        None,
        vec![Target::Track { track_id: "75413016".into(), entry_id: None, added_at: None, disliked: false }],
    );
    let outcomes = provider.apply(&auth, &unlike).await.unwrap();
    assert!(confirmed(&outcomes), "{outcomes:?}");
    let sent = script.sent.lock().unwrap();
    assert_eq!(sent.len(), 2);
    let keys: Vec<&str> = sent.iter().map(|r| header(r, "idempotency-key").unwrap()).collect();
    assert_eq!(keys[0], keys[1], "the resend carries the same key");
    assert!(keys[0].len() <= 128);
    assert_eq!(header(&sent[0], "content-type"), Some("application/vnd.api+json"));
    let body: serde_json::Value = serde_json::from_slice(sent[0].json.as_ref().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"data": [{"id": "75413016", "type": "tracks"}]}));
    assert_eq!(sent[0].url.path(), "/v2/userCollectionTracks/me/relationships/items");
}

#[tokio::test]
async fn bad_ids_fail_per_action_without_reaching_the_service() {
    let (script, provider) = scripted(&[]);
    let auth = StaticToken::new(tidal(), SecretString::from("t".to_owned()));
    let unlike = batch(
        ActionKind::UnlikeTrack,
        None,
        vec![Target::Track { track_id: "../../users/me".into(), entry_id: None, added_at: None, disliked: false }],
    );
    let outcomes = provider.apply(&auth, &unlike).await.unwrap();
    assert!(matches!(&outcomes[0].outcome, Outcome::Failed(f) if f.code == "invalid_input"), "{outcomes:?}");
    assert!(script.sent.lock().unwrap().is_empty());
    let dislike = batch(
        ActionKind::DislikeTrack,
        None,
        vec![Target::Track { track_id: "1".into(), entry_id: None, added_at: None, disliked: false }],
    );
    assert_eq!(provider.apply(&auth, &dislike).await.unwrap_err().code(), "unsupported");
}
