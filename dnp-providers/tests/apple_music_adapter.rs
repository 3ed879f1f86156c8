//! The Apple Music adapter against its emulator: the MusicKit connect flow, the manual
//! checklist's links, dislikes, a refused Music User Token, appends, search and ISRC.
//!
//! `cargo test -p dnp-providers --no-default-features --features apple_music,emulator --test apple_music_adapter`

use std::sync::Arc;
use std::time::Duration;

use dnp_core::conformance::{LibraryShape, generate_library, subject_artist};
use dnp_core::memory::MemoryTokenStore;
use dnp_core::{
    Action, ActionId, ActionKind, Alternative, ArtistIdentity, BatchId, BlockedSet, DnpEntry, DnpList,
    EnforcementPolicy, EntryId, EntrySource, NoProgress, Outcome, Provider, ProviderAuth, ProviderId, SkipReason,
    StaticToken, StoredTokenSource, Target, TokenStore, UserId, plan, rollback_plan,
};
use dnp_providers::apple_music::emulator::AppleMusicEmulator;
use dnp_providers::apple_music::{
    AppleMusicAuth, AppleMusicClient, AppleMusicConfig, AppleMusicProvider, test_http_config,
};
use dnp_providers::emulator::EmulatorConfig;
use secrecy::SecretString;

fn apple() -> ProviderId {
    ProviderId::new(ProviderId::APPLE_MUSIC).unwrap()
}

struct Fixture {
    emulator: AppleMusicEmulator,
    config: AppleMusicConfig,
    provider: AppleMusicProvider,
    auth: AppleMusicAuth,
    token: StaticToken,
    library: dnp_core::LibrarySnapshot,
}

fn fixture() -> Fixture {
    let emulator = AppleMusicEmulator::start(EmulatorConfig::default()).unwrap();
    // The conformance generator's library centres on one artist: a followed artist with
    // liked songs, a saved album and entries in every editable playlist.
    let library = generate_library(&apple(), 11, &LibraryShape::small());
    emulator.seed_user("alice", &library);
    let mut config = emulator.adapter_config().unwrap();
    config.http = test_http_config();
    let client = AppleMusicClient::new(&config).unwrap();
    let provider = AppleMusicProvider::with_client(client.clone());
    let auth = AppleMusicAuth::with_client(config.clone(), client);
    let token =
        StaticToken::new(apple(), SecretString::from(emulator.issue_user_token("alice", Duration::from_secs(600))));
    Fixture { emulator, config, provider, auth, token, library }
}

fn blocking(artist: &dnp_core::Artist) -> DnpList {
    DnpList {
        entries: vec![DnpEntry {
            id: EntryId::new_random(),
            artist: ArtistIdentity::named(artist.name.clone()).with_id(apple(), artist.id.clone()),
            note: None,
            tags: vec![],
            added_at: chrono::Utc::now(),
            source: EntrySource::Personal,
        }],
    }
}

#[tokio::test]
async fn the_manual_checklist_of_a_plan_has_music_apple_com_links() {
    let f = fixture();
    let scanned = f.provider.scan(&f.token, &NoProgress).await.unwrap();
    let subject = subject_artist(&f.library).unwrap().clone();
    let blocked = BlockedSet::for_provider(&blocking(&subject), &apple());
    let plan = plan(&scanned, &blocked, &EnforcementPolicy::default(), &f.provider.capabilities());
    let dislikes = plan.actions().filter(|a| a.kind == ActionKind::DislikeTrack).count();
    assert!(dislikes > 0, "library songs of the blocked artist are disliked");
    assert_eq!(plan.actions().filter(|a| a.kind == ActionKind::UnlikeTrack).count(), 0);
    let checklist: Vec<_> = plan
        .skipped
        .iter()
        .filter(|s| {
            matches!(&s.reason, SkipReason::Unsupported { alternative: Some(Alternative::ManualChecklist), .. })
        })
        .collect();
    for kind in [ActionKind::RemoveAlbum, ActionKind::UnfollowArtist, ActionKind::RemovePlaylistItem] {
        assert!(checklist.iter().any(|s| s.action.kind == kind), "{kind:?} on the checklist");
    }
    for item in &checklist {
        let url = item.url.as_deref().unwrap_or_else(|| panic!("no link for {}", item.action.label));
        assert!(url.starts_with("https://music.apple.com/"), "{url}");
    }
    // The followed artist's link is its artist page, the album's its album page.
    let artist = checklist.iter().find(|s| s.action.kind == ActionKind::UnfollowArtist).unwrap();
    assert!(artist.url.as_deref().unwrap().contains("/artist/"), "{:?}", artist.url);
    let album = checklist.iter().find(|s| s.action.kind == ActionKind::RemoveAlbum).unwrap();
    assert!(album.url.as_deref().unwrap().contains("/album/"), "{:?}", album.url);
}

#[tokio::test]
async fn dislikes_are_sent_read_back_and_not_planned_twice() {
    let f = fixture();
    let caps = f.provider.capabilities();
    let subject = subject_artist(&f.library).unwrap().clone();
    let blocked = BlockedSet::for_provider(&blocking(&subject), &apple());
    let scanned = f.provider.scan(&f.token, &NoProgress).await.unwrap();
    let first = plan(&scanned, &blocked, &EnforcementPolicy::default(), &caps);
    for batch in &first.batches {
        let outcomes = f.provider.apply(&f.token, batch).await.unwrap();
        assert!(outcomes.iter().all(|o| matches!(o.outcome, Outcome::Confirmed { .. })), "{outcomes:?}");
    }
    let rescanned = f.provider.scan(&f.token, &NoProgress).await.unwrap();
    let disliked = rescanned.liked_tracks.iter().filter(|l| l.disliked).count();
    assert_eq!(disliked as u64, first.summary.actions[&ActionKind::DislikeTrack]);
    let again = plan(&rescanned, &blocked, &EnforcementPolicy::default(), &caps);
    assert!(again.is_empty(), "already disliked: {:?}", again.summary);
    assert!(again.skipped.iter().any(|s| s.reason == SkipReason::AlreadyDisliked));
    // Nothing was removed: Apple has no removal.
    assert_eq!(rescanned.liked_tracks.len(), scanned.liked_tracks.len());
}

/// Each song's (id, disliked) in library order.
fn ratings(library: &dnp_core::LibrarySnapshot) -> Vec<(String, bool)> {
    library.liked_tracks.iter().map(|l| (l.track.id.clone(), l.disliked)).collect()
}

async fn apply_all(f: &Fixture, plan: &dnp_core::Plan) {
    for batch in &plan.batches {
        let outcomes = f.provider.apply(&f.token, batch).await.unwrap();
        assert!(outcomes.iter().all(|o| matches!(o.outcome, Outcome::Confirmed { .. })), "{outcomes:?}");
    }
}

/// Regression: a rollback must put every rating back as it was. A dislike the user had
/// before enforcement stays, the dislikes dnp sent are deleted, and a disliked song that
/// comes back to the library (the rollback of an unlike) is rated "dislike" again.
#[tokio::test]
async fn rollback_puts_every_rating_back_as_it_was() {
    let f = fixture();
    let caps = f.provider.capabilities();
    let subject = subject_artist(&f.library).unwrap().clone();
    let blocked = BlockedSet::for_provider(&blocking(&subject), &apple());
    let scanned = f.provider.scan(&f.token, &NoProgress).await.unwrap();
    let planned = plan(&scanned, &blocked, &EnforcementPolicy::default(), &caps);
    let pre = planned.actions().find(|a| a.kind == ActionKind::DislikeTrack).unwrap().target.item_id().to_owned();
    // The user had disliked one of the artist's songs already.
    let mut library = f.library.clone();
    library.liked_tracks.iter_mut().filter(|l| l.track.id == pre).for_each(|l| l.disliked = true);
    f.emulator.seed_user("alice", &library);
    let before = f.provider.scan(&f.token, &NoProgress).await.unwrap();
    assert!(before.liked_tracks.iter().any(|l| l.track.id == pre && l.disliked));

    let enforce = plan(&before, &blocked, &EnforcementPolicy::default(), &caps);
    assert!(
        enforce.skipped.iter().any(|s| s.reason == SkipReason::AlreadyDisliked && s.action.target.item_id() == pre)
    );
    apply_all(&f, &enforce).await;
    let done: Vec<Action> = enforce.actions().cloned().collect();
    let rollback = rollback_plan(&apple(), BatchId::new_random(), &done, &caps);
    assert!(rollback.actions().all(|a| a.kind == ActionKind::ClearTrackRating && a.target.item_id() != pre));
    apply_all(&f, &rollback).await;
    let after = f.provider.scan(&f.token, &NoProgress).await.unwrap();
    assert_eq!(ratings(&after), ratings(&before));

    // The disliked song left the library (a service that can unlike would have removed it):
    // undoing that re-adds it (`POST /v1/me/library`), then rates it (`PUT .../ratings`).
    library.liked_tracks.retain(|l| l.track.id != pre);
    f.emulator.seed_user("alice", &library);
    let unlike = Action {
        id: ActionId(0),
        kind: ActionKind::UnlikeTrack,
        target: Target::Track { track_id: pre.clone(), entry_id: None, added_at: None, disliked: true },
        ..done[0].clone()
    };
    let undo = rollback_plan(&apple(), BatchId::new_random(), &[unlike], &caps);
    let kinds: Vec<ActionKind> = undo.batches.iter().map(|b| b.kind).collect();
    assert_eq!(kinds, [ActionKind::LikeTrack, ActionKind::DislikeTrack]);
    apply_all(&f, &undo).await;
    let restored = f.provider.scan(&f.token, &NoProgress).await.unwrap();
    assert!(restored.liked_tracks.iter().any(|l| l.track.id == pre && l.disliked), "{:?}", ratings(&restored));
    assert!(f.emulator.library("alice").liked_tracks.iter().any(|l| l.track.id == pre && l.disliked));
}

#[tokio::test]
async fn the_musickit_flow_connects_a_user() {
    let f = fixture();
    f.emulator.sign_in_as("alice");
    let mut config = f.config.clone();
    config.redirect_uri = Some("http://127.0.0.1:9/api/v1/connections/apple_music/callback".into());
    let auth = AppleMusicAuth::new(config).unwrap();
    let request = auth.authorization_request().unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = http.get(&request.url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 302);
    let back = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: std::collections::HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], request.state);
    let tokens = auth.exchange_code(&pairs["code"], None).await.unwrap();
    assert!(tokens.refresh_token.is_none() && tokens.expires_at.is_none());
    let token = StaticToken::new(apple(), tokens.access_token);
    let scanned = f.provider.scan(&token, &NoProgress).await.unwrap();
    assert_eq!(scanned.liked_tracks.len(), f.library.liked_tracks.len());
    let refused = auth.exchange_code("not-a-token-the-emulator-issued", None).await.unwrap_err();
    assert_eq!(refused.code(), "needs_reauth", "{refused}");
}

#[tokio::test]
async fn a_refused_music_user_token_marks_the_connection_for_reauthorization() {
    let f = fixture();
    let store = Arc::new(MemoryTokenStore::new());
    let token = f.emulator.issue_user_token("alice", Duration::from_secs(600));
    let tokens = dnp_core::TokenSet {
        access_token: SecretString::from(token.clone()),
        refresh_token: None,
        expires_at: None,
        scopes: vec![],
    };
    let connection = store.save(UserId::new_random(), &apple(), &tokens).await.unwrap();
    let auth: Arc<dyn ProviderAuth> = Arc::new(f.auth.clone());
    let source = StoredTokenSource::new(store.clone(), auth, connection.id);
    assert!(f.provider.scan(&source, &NoProgress).await.is_ok());
    assert!(f.emulator.revoke_user_token(&token));
    let err = f.provider.scan(&source, &NoProgress).await.unwrap_err();
    assert_eq!(err.code(), "needs_reauth", "{err}");
    assert_eq!(store.connection(connection.id).await.unwrap().status, dnp_core::ConnectionStatus::NeedsReauth);
}

/// Regression: a 403 for one playlist (not editable) was taken for a refused user token.
#[tokio::test]
async fn a_forbidden_playlist_is_not_a_refused_token() {
    let f = fixture();
    let state = f.emulator.library("alice");
    let locked = state.playlists.iter().find(|p| !p.editable).unwrap();
    let editable = state.playlists.iter().find(|p| p.editable && !p.items.is_empty()).unwrap();
    let track = state.liked_tracks[0].track.id.clone();
    let insert = |playlist: &dnp_core::Playlist, id: u32| dnp_core::Action {
        id: dnp_core::ActionId(id),
        kind: ActionKind::InsertPlaylistItem,
        target: dnp_core::Target::PlaylistItem {
            playlist_id: playlist.id.clone(),
            playlist_version: playlist.version.clone(),
            track_id: track.clone(),
            position: 0,
            item_id: None,
            added_at: None,
        },
        reason: dnp_core::Reason {
            entry_id: EntryId::new_random(),
            artist_name: "x".into(),
            matched: dnp_core::MatchKind::PrimaryCredit,
            credit: "x".into(),
            confidence: 1.0,
        },
        label: "x".into(),
        inverse_of: None,
    };
    let batch = |playlist: &dnp_core::Playlist| dnp_core::Batch {
        kind: ActionKind::InsertPlaylistItem,
        playlist_id: Some(playlist.id.clone()),
        actions: vec![insert(playlist, 0)],
        quota_units: 0,
        day: 0,
    };
    let outcomes = f.provider.apply(&f.token, &batch(locked)).await.unwrap();
    match &outcomes[0].outcome {
        Outcome::Failed(failure) => assert_eq!(failure.code, "invalid_input", "{failure:?}"),
        other => panic!("{other:?}"),
    }
    let outcomes = f.provider.apply(&f.token, &batch(editable)).await.unwrap();
    match &outcomes[0].outcome {
        Outcome::Confirmed { note: Some(note) } => assert!(note.contains("appended"), "{note}"),
        other => panic!("{other:?}"),
    }
    let after = f.emulator.library("alice");
    assert_eq!(after.playlists.iter().find(|p| p.id == editable.id).unwrap().items.last().unwrap().track.id, track);
}

#[tokio::test]
async fn unsupported_kinds_are_refused_whole() {
    let f = fixture();
    let batch =
        dnp_core::Batch { kind: ActionKind::UnlikeTrack, playlist_id: None, actions: vec![], quota_units: 0, day: 0 };
    let err = f.provider.apply(&f.token, &batch).await.unwrap_err();
    assert_eq!(err.code(), "unsupported");
}

#[tokio::test]
async fn search_and_isrc_lookup_use_the_catalog() {
    let f = fixture();
    let subject = subject_artist(&f.library).unwrap().clone();
    let found = f.provider.search_artists(&f.token, &subject.name, 5).await.unwrap();
    assert_eq!(found[0].id, subject.id);
    assert_eq!(found[0].confidence, 1.0);
    assert!(found[0].url.as_deref().unwrap().starts_with("https://music.apple.com/"));
    let liked = &f.emulator.library("alice").liked_tracks[0].track;
    let isrc = liked.isrc.clone().unwrap();
    let track = f.provider.track_by_isrc(&f.token, &isrc).await.unwrap().unwrap();
    assert_eq!((track.id.as_str(), track.title.as_str()), (liked.id.as_str(), liked.title.as_str()));
    assert_eq!(track.artists, liked.artists);
    assert!(f.provider.track_by_isrc(&f.token, "ZZZZZ0000000").await.unwrap().is_none());
    assert_eq!(f.provider.track_by_isrc(&f.token, "bad").await.unwrap_err().code(), "invalid_input");
}

#[tokio::test]
async fn an_expired_developer_token_is_renewed_without_the_user() {
    let f = fixture();
    f.provider.scan(&f.token, &NoProgress).await.unwrap();
    f.emulator.faults().expire_access_tokens_now();
    let before = f.provider.client().api().stats().refreshes;
    f.provider.scan(&f.token, &NoProgress).await.unwrap();
    assert!(f.provider.client().api().stats().refreshes > before, "a 401 renewed the developer token");
}

#[tokio::test]
async fn songs_and_albums_are_added_back_to_the_library() {
    let f = fixture();
    let state = f.emulator.library("alice");
    let liked: std::collections::HashSet<&str> = state.liked_tracks.iter().map(|l| l.track.id.as_str()).collect();
    let outside = state.playlists.iter().flat_map(|p| &p.items).find(|i| !liked.contains(i.track.id.as_str())).unwrap();
    let reason = dnp_core::Reason {
        entry_id: EntryId::new_random(),
        artist_name: "x".into(),
        matched: dnp_core::MatchKind::PrimaryCredit,
        credit: "x".into(),
        confidence: 1.0,
    };
    let action = |id: u32, kind, target| dnp_core::Action {
        id: dnp_core::ActionId(id),
        kind,
        target,
        reason: reason.clone(),
        label: "x".into(),
        inverse_of: None,
    };
    let like = dnp_core::Batch {
        kind: ActionKind::LikeTrack,
        playlist_id: None,
        actions: vec![
            action(
                0,
                ActionKind::LikeTrack,
                dnp_core::Target::Track {
                    track_id: outside.track.id.clone(),
                    entry_id: None,
                    added_at: None,
                    disliked: false,
                },
            ),
            action(
                1,
                ActionKind::LikeTrack,
                dnp_core::Target::Track {
                    track_id: "i.upload-only".into(),
                    entry_id: None,
                    added_at: None,
                    disliked: false,
                },
            ),
        ],
        quota_units: 0,
        day: 0,
    };
    let outcomes = f.provider.apply(&f.token, &like).await.unwrap();
    assert!(matches!(outcomes[0].outcome, Outcome::Confirmed { .. }), "{outcomes:?}");
    assert!(
        matches!(&outcomes[1].outcome, Outcome::Failed(failure) if failure.code == "invalid_input"),
        "an upload cannot be re-added"
    );
    assert!(f.emulator.library("alice").liked_tracks.iter().any(|l| l.track.id == outside.track.id));
    let album = state
        .liked_tracks
        .iter()
        .filter_map(|l| l.track.album.as_ref())
        .find(|a| !state.saved_albums.iter().any(|s| s.album.id == a.id))
        .unwrap();
    let save = dnp_core::Batch {
        kind: ActionKind::SaveAlbum,
        playlist_id: None,
        actions: vec![action(
            0,
            ActionKind::SaveAlbum,
            dnp_core::Target::Album { album_id: album.id.clone(), added_at: None },
        )],
        quota_units: 0,
        day: 0,
    };
    let outcomes = f.provider.apply(&f.token, &save).await.unwrap();
    assert!(matches!(outcomes[0].outcome, Outcome::Confirmed { .. }), "{outcomes:?}");
    assert_eq!(f.emulator.library("alice").saved_albums[0].album.id, album.id, "newest first");
}
