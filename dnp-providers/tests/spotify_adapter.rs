//! The Spotify adapter against its emulator: OAuth, scans, enforcement, errors.
//!
//! Run: `cargo test -p dnp-providers --features emulator --test spotify_adapter`

use std::time::Duration;

use dnp_core::{ProviderAuth, ProviderError};
use dnp_providers::emulator::EmulatorConfig;
use dnp_providers::spotify::emulator::SpotifyEmulator;
use dnp_providers::spotify::{SpotifyAuth, SpotifyConfig, test_http_config};
use secrecy::{ExposeSecret, SecretString};

const REDIRECT: &str = "http://127.0.0.1:8888/callback";

fn config(emulator: &SpotifyEmulator, secret: bool) -> SpotifyConfig {
    let secret = secret.then(|| SecretString::from(emulator.client_secret()));
    let mut config = SpotifyConfig::new(emulator.client_id(), secret, REDIRECT)
        .unwrap()
        .with_base_urls(emulator.api_base_url(), emulator.accounts_base_url())
        .unwrap();
    config.http = test_http_config();
    config
}

/// Follows the authorize URL like a browser whose user approves, returning the callback's
/// `code` after checking its `state`.
async fn authorize(url: &str, state: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 302, "the emulator approves and redirects");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let callback = url::Url::parse(&location).unwrap();
    let param = |name: &str| callback.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), Some(state), "state comes back unchanged");
    param("code").expect("a code")
}

#[tokio::test]
async fn oauth_with_pkce_exchanges_refreshes_with_rotation_and_refuses_a_spent_refresh_token() {
    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.register_redirect_uri(REDIRECT).unwrap();
    emulator.sign_in_as("alice");
    for secret in [true, false] {
        let auth = SpotifyAuth::new(config(&emulator, secret)).unwrap();
        let request = auth.authorization_request().unwrap();
        let url = url::Url::parse(&request.url).unwrap();
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
        assert_eq!(param("state").as_deref(), Some(request.state.as_str()));
        let scopes = param("scope").unwrap();
        for scope in dnp_providers::spotify::SCOPES {
            assert!(scopes.split(' ').any(|s| s == scope), "{scope} requested");
        }
        assert_ne!(auth.authorization_request().unwrap().state, request.state, "a fresh state each time");

        // PKCE is checked: the wrong verifier is refused, and the code is then spent.
        let code = authorize(&request.url, &request.state).await;
        let wrong = SecretString::from("w".repeat(64));
        let err = auth.exchange_code(&code, Some(&wrong)).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{err}");

        let request = auth.authorization_request().unwrap();
        let code = authorize(&request.url, &request.state).await;
        let tokens = auth.exchange_code(&code, request.pkce_verifier.as_ref()).await.unwrap();
        let first_refresh = tokens.refresh_token.clone().expect("a refresh token");
        assert!(tokens.expires_at.is_some());
        assert!(tokens.scopes.iter().any(|s| s == "user-library-modify"), "{:?}", tokens.scopes);

        // Refresh rotates: a new refresh token replaces the old at once.
        let refreshed = auth.refresh(&first_refresh).await.unwrap();
        let second_refresh = refreshed.refresh_token.clone().expect("a rotated refresh token");
        assert_ne!(second_refresh.expose_secret(), first_refresh.expose_secret());
        assert_ne!(refreshed.access_token.expose_secret(), tokens.access_token.expose_secret());

        // The spent one is refused: the user must connect again.
        let err = auth.refresh(&first_refresh).await.unwrap_err();
        assert!(matches!(err, ProviderError::NeedsReauth { .. }), "{err}");
        // The new one still works.
        auth.refresh(&second_refresh).await.unwrap();

        // Nothing secret in errors or Debug output.
        assert!(!format!("{err:?} {err} {auth:?}").contains(first_refresh.expose_secret()));
        assert!(!format!("{auth:?}").contains(&emulator.client_secret()));
    }
}

#[tokio::test]
async fn revoke_is_unsupported_and_points_to_the_apps_page() {
    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    let auth = SpotifyAuth::new(config(&emulator, true)).unwrap();
    let tokens = dnp_core::TokenSet {
        access_token: SecretString::from("a".to_owned()),
        refresh_token: None,
        expires_at: None,
        scopes: vec![],
    };
    let err = auth.revoke(&tokens).await.unwrap_err();
    assert_eq!(err.code(), "unsupported");
    assert!(err.to_string().contains("spotify.com/account/apps"), "{err}");
    let _ = Duration::ZERO;
}

mod adapter {
    use std::sync::Mutex;
    use std::time::Duration;

    use dnp_core::{
        Action, ActionId, ActionKind, Batch, EntryId, LibrarySnapshot, MatchKind, Outcome, Progress, Provider,
        ProviderId, Reason, StaticToken, Target,
    };
    use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
    use dnp_providers::spotify::SpotifyProvider;
    use dnp_providers::spotify::emulator::SpotifyEmulator;

    use super::config;

    const USER: &str = "alice";

    struct Setup {
        emulator: SpotifyEmulator,
        spotify: SpotifyProvider,
        token: StaticToken,
    }

    fn setup(library: &LibrarySnapshot) -> Setup {
        let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
        emulator.seed_user(USER, library);
        let (access, _) = emulator.issue_tokens(USER, Duration::from_secs(3600));
        let spotify = SpotifyProvider::new(config(&emulator, false)).unwrap();
        let token = StaticToken::new(spotify_id(), access.into());
        Setup { emulator, spotify, token }
    }

    fn spotify_id() -> ProviderId {
        ProviderId::new(ProviderId::SPOTIFY).unwrap()
    }

    fn action(i: u32, kind: ActionKind, target: Target) -> Action {
        Action {
            id: ActionId(i),
            kind,
            target,
            reason: Reason {
                entry_id: EntryId::new_random(),
                artist_name: "x".into(),
                matched: MatchKind::PrimaryCredit,
                credit: "x".into(),
                confidence: 1.0,
            },
            label: format!("action {i}"),
            inverse_of: None,
        }
    }

    fn track_target(id: &str) -> Target {
        Target::Track { track_id: id.to_owned(), entry_id: None, added_at: None, disliked: false }
    }

    fn batch(kind: ActionKind, playlist_id: Option<&str>, actions: Vec<Action>) -> Batch {
        Batch { kind, playlist_id: playlist_id.map(str::to_owned), actions, quota_units: 0, day: 0 }
    }

    #[tokio::test]
    async fn a_scan_makes_exactly_the_minimal_requests_and_reports_progress_per_page() {
        let library = generate_library(&spotify_id(), LibraryShape::SMALL, 3);
        let s = setup(&library);
        let state = s.emulator.library(USER);
        let reports = Mutex::new(Vec::<Progress>::new());
        let sink = |p: Progress| reports.lock().unwrap().push(p);
        s.emulator.log().clear();
        let scanned = s.spotify.scan(&s.token, &sink).await.unwrap();
        dnp_core::conformance::compare_libraries(&state, &scanned).unwrap();
        let pages = |n: usize| n.div_ceil(50).max(1);
        let minimal = 1
            + pages(state.liked_tracks.len())
            + pages(state.saved_albums.len())
            + pages(state.followed_artists.len())
            + pages(state.playlists.len())
            + state.playlists.iter().filter(|p| p.editable).map(|p| p.items.len().div_ceil(50)).sum::<usize>();
        assert_eq!(s.emulator.log().len(), minimal);
        let reports = reports.into_inner().unwrap();
        assert_eq!(reports.len(), minimal, "one progress report per page");
        assert_eq!(reports.last().map(|p| (p.done, p.total)), Some((minimal as u64, Some(minimal as u64))));
        // Non-editable playlists are listed without items (Spotify refuses to list them).
        let followed_only = scanned.playlists.iter().find(|p| !p.editable).expect("a followed playlist");
        assert!(followed_only.items.is_empty() && !followed_only.owned);
        assert!(scanned.playlists.iter().any(|p| p.collaborative && p.editable && !p.owned));
    }

    #[tokio::test]
    async fn an_unknown_track_fails_alone_and_the_rest_of_the_batch_is_applied() {
        let library = generate_library(&spotify_id(), LibraryShape::SMALL, 4);
        let s = setup(&library);
        let state = s.emulator.library(USER);
        // A catalog track that is not liked: one from a playlist.
        let liked: std::collections::HashSet<&str> = state.liked_tracks.iter().map(|l| l.track.id.as_str()).collect();
        let known =
            state.playlists.iter().flat_map(|p| &p.items).find(|i| !liked.contains(i.track.id.as_str())).unwrap();
        let b = batch(
            ActionKind::LikeTrack,
            None,
            vec![
                action(0, ActionKind::LikeTrack, track_target(&known.track.id)),
                action(1, ActionKind::LikeTrack, track_target("0000000000000000000000")),
                action(2, ActionKind::LikeTrack, track_target("../me/playlists")),
            ],
        );
        let outcomes = s.spotify.apply(&s.token, &b).await.unwrap();
        assert_eq!(outcomes.iter().map(|o| o.action).collect::<Vec<_>>(), [ActionId(0), ActionId(1), ActionId(2)]);
        assert!(matches!(outcomes[0].outcome, Outcome::Confirmed { .. }), "{outcomes:?}");
        assert!(
            matches!(&outcomes[1].outcome, Outcome::Failed(f) if f.code == "invalid_input" && !f.retryable),
            "{outcomes:?}"
        );
        assert!(
            matches!(&outcomes[2].outcome, Outcome::Failed(f) if f.message.contains("not a Spotify id")),
            "{outcomes:?}"
        );
        assert!(s.emulator.library(USER).liked_tracks.iter().any(|l| l.track.id == known.track.id));
    }

    #[tokio::test]
    async fn an_unknown_playlist_is_reported_per_action() {
        let library = generate_library(&spotify_id(), LibraryShape::SMALL, 5);
        let s = setup(&library);
        let target = Target::PlaylistItem {
            playlist_id: "0000000000000000000000".into(),
            playlist_version: Some("x".into()),
            track_id: "1111111111111111111111".into(),
            position: 0,
            item_id: None,
            added_at: None,
        };
        let b = batch(
            ActionKind::RemovePlaylistItem,
            Some("0000000000000000000000"),
            vec![action(0, ActionKind::RemovePlaylistItem, target)],
        );
        let outcomes = s.spotify.apply(&s.token, &b).await.unwrap();
        assert!(
            matches!(&outcomes[0].outcome, Outcome::Failed(f) if f.code == "not_found" && f.message.contains("0000000000000000000000")),
            "{outcomes:?}"
        );
    }

    #[tokio::test]
    async fn a_track_that_gained_an_occurrence_since_the_plan_is_a_conflict_not_a_silent_removal() {
        let library = generate_library(&spotify_id(), LibraryShape::SMALL, 6);
        let s = setup(&library);
        let state = s.emulator.library(USER);
        let playlist = state.playlists.iter().find(|p| p.owned && p.items.len() > 3).unwrap().clone();
        let victim = playlist.items[1].clone();
        let other = playlist.items[2].clone();
        let target = |item: &dnp_core::PlaylistItem| Target::PlaylistItem {
            playlist_id: playlist.id.clone(),
            playlist_version: playlist.version.clone(),
            track_id: item.track.id.clone(),
            position: item.position,
            item_id: None,
            added_at: item.added_at,
        };
        let planned = vec![
            action(0, ActionKind::RemovePlaylistItem, target(&victim)),
            action(1, ActionKind::RemovePlaylistItem, target(&other)),
        ];
        // Someone adds the victim again at the end: a new version with one more occurrence.
        let mut changed = state.clone();
        let p = changed.playlists.iter_mut().find(|p| p.id == playlist.id).unwrap();
        p.items.push(victim.clone());
        p.version = Some("someone-else-edited".into());
        changed.renumber_playlists();
        s.emulator.seed_user(USER, &changed);

        let b = batch(ActionKind::RemovePlaylistItem, Some(&playlist.id), planned);
        let outcomes = s.spotify.apply(&s.token, &b).await.unwrap();
        assert!(matches!(&outcomes[0].outcome, Outcome::Failed(f) if f.code == "conflict"), "{outcomes:?}");
        assert!(
            matches!(&outcomes[1].outcome, Outcome::Confirmed { note: Some(n) } if n.contains("changed")),
            "{outcomes:?}"
        );
        let after = s.emulator.library(USER);
        let items = &after.playlists.iter().find(|p| p.id == playlist.id).unwrap().items;
        assert_eq!(items.iter().filter(|i| i.track.id == victim.track.id).count(), 2, "both occurrences kept");
        assert!(!items.iter().any(|i| i.track.id == other.track.id));
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_maximum_is_sent_in_maximum_sized_calls() {
        let library = generate_library(&spotify_id(), LibraryShape::SMALL, 7);
        let s = setup(&library);
        let state = s.emulator.library(USER);
        let actions: Vec<Action> = state
            .liked_tracks
            .iter()
            .take(85)
            .enumerate()
            .map(|(i, l)| action(i as u32, ActionKind::UnlikeTrack, track_target(&l.track.id)))
            .collect();
        s.emulator.log().clear();
        let outcomes = s.spotify.apply(&s.token, &batch(ActionKind::UnlikeTrack, None, actions)).await.unwrap();
        assert!(outcomes.iter().all(|o| matches!(o.outcome, Outcome::Confirmed { .. })));
        assert_eq!(s.emulator.log().count("DELETE", "/v1/me/library"), 3, "40 + 40 + 5");
        assert_eq!(s.emulator.library(USER).liked_tracks.len(), state.liked_tracks.len() - 85);
    }

    #[tokio::test]
    async fn artist_search_and_isrc_lookup() {
        let library = generate_library(&spotify_id(), LibraryShape::SMALL, 8);
        let s = setup(&library);
        let state = s.emulator.library(USER);
        let track = &state.liked_tracks[0].track;
        let artist = &track.artists[0];
        let found = s.spotify.search_artists(&s.token, &artist.name.to_uppercase(), 5).await.unwrap();
        let hit = found.iter().find(|c| Some(&c.id) == artist.id.as_ref()).expect("the artist is found");
        assert_eq!(hit.confidence, 1.0, "same normalized name");
        assert!(found.windows(2).all(|w| w[0].confidence >= w[1].confidence));
        assert!(found.len() <= 5);

        let isrc = track.isrc.clone().unwrap();
        let by_isrc = s.spotify.track_by_isrc(&s.token, &isrc.to_lowercase()).await.unwrap().unwrap();
        assert_eq!(by_isrc.id, track.id);
        assert_eq!(s.spotify.track_by_isrc(&s.token, "ZZZZZ9999999").await.unwrap(), None);
        assert_eq!(s.spotify.track_by_isrc(&s.token, "not an isrc").await.unwrap_err().code(), "invalid_input");
    }

    #[tokio::test]
    async fn a_collaborative_playlist_whose_items_are_refused_is_listed_as_not_editable() {
        let mut library = generate_library(&spotify_id(), LibraryShape::SMALL, 9);
        let followed = library.playlists.iter_mut().find(|p| !p.owned).unwrap();
        followed.collaborative = true;
        followed.editable = false;
        let id = followed.id.clone();
        let s = setup(&library);
        let scanned = s.spotify.scan(&s.token, &dnp_core::NoProgress).await.unwrap();
        let playlist = scanned.playlists.iter().find(|p| p.id == id).unwrap();
        assert!(playlist.collaborative && !playlist.editable && playlist.items.is_empty());
        let pages = s.emulator.library(USER).playlists.iter().find(|p| p.id == id).unwrap().items.len().div_ceil(50);
        assert_eq!(
            s.emulator.request_log().iter().filter(|r| r.path.contains(&id) && r.status == 403).count(),
            pages,
            "its pages were refused once each, and the scan went on"
        );
    }

    #[tokio::test]
    async fn dislike_batches_are_unsupported() {
        let s = setup(&LibrarySnapshot::empty(spotify_id()));
        let b = batch(
            ActionKind::DislikeTrack,
            None,
            vec![action(0, ActionKind::DislikeTrack, track_target("1111111111111111111111"))],
        );
        assert_eq!(s.spotify.apply(&s.token, &b).await.unwrap_err().code(), "unsupported");
    }
}
