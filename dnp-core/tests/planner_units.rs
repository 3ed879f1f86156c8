//! Unit tests of the planner's rules, `diff`, name normalization and the JSON readers.

use chrono::{TimeZone, Utc};
use dnp_core::normalize::{featured_in_title, normalize_name, split_artist_list, split_credits};
use dnp_core::*;
use uuid::Uuid;

fn pid(s: &str) -> ProviderId {
    s.parse().expect("valid id")
}

fn credit(id: Option<&str>, name: &str, role: CreditRole) -> ArtistCredit {
    ArtistCredit { id: id.map(str::to_owned), name: name.to_owned(), role }
}

fn track(id: &str, title: &str, artists: Vec<ArtistCredit>) -> Track {
    Track { id: id.to_owned(), title: title.to_owned(), artists, album: None, isrc: None, duration_ms: None, url: None }
}

fn liked(t: Track) -> LikedTrack {
    LikedTrack { track: t, added_at: None, entry_id: None, disliked: false }
}

fn entry(n: u128, artist: ArtistIdentity) -> DnpEntry {
    DnpEntry {
        id: EntryId(Uuid::from_u128(n)),
        artist,
        note: None,
        tags: vec![],
        added_at: Utc.timestamp_opt(1_600_000_000, 0).single().expect("valid"),
        source: EntrySource::Personal,
    }
}

fn drake() -> DnpList {
    DnpList { entries: vec![entry(1, ArtistIdentity::named("Drake").with_id(pid("spotify"), "drake-id"))] }
}

fn snapshot_of(liked_tracks: Vec<LikedTrack>, playlists: Vec<Playlist>) -> LibrarySnapshot {
    LibrarySnapshot { liked_tracks, playlists, ..LibrarySnapshot::empty(pid("spotify")) }
}

fn playlist(id: &str, owned: bool, collaborative: bool, editable: bool, tracks: Vec<Track>) -> Playlist {
    Playlist {
        id: id.to_owned(),
        name: format!("Playlist {id}"),
        owned,
        collaborative,
        editable,
        version: None,
        items: tracks
            .into_iter()
            .enumerate()
            .map(|(i, t)| PlaylistItem { position: i as u32, track: t, added_at: None, item_id: None })
            .collect(),
        url: Some(format!("https://open.example/playlist/{id}")),
    }
}

fn caps_all() -> Capabilities {
    let pages =
        PageSizes { liked_tracks: 50, saved_albums: 50, followed_artists: 50, playlists: 50, playlist_items: 50 };
    let mut b = Capabilities::builder(pages);
    for kind in ActionKind::ALL {
        b = b.supported(kind, 50);
    }
    b.build()
}

/// Apple-like: no removal of library songs, a dislike rating instead.
fn caps_apple() -> Capabilities {
    let pages =
        PageSizes { liked_tracks: 100, saved_albums: 100, followed_artists: 100, playlists: 100, playlist_items: 100 };
    Capabilities::builder(pages)
        .unsupported(
            ActionKind::UnlikeTrack,
            "Apple Music's API does not document removing library songs",
            Some(Alternative::Dislike),
        )
        .supported(ActionKind::DislikeTrack, 1)
        .supported(ActionKind::ClearTrackRating, 1)
        .unsupported(
            ActionKind::RemovePlaylistItem,
            "Apple Music's API cannot remove playlist items",
            Some(Alternative::ManualChecklist),
        )
        .build()
}

fn run(snapshot: &LibrarySnapshot, list: &DnpList, policy: &EnforcementPolicy, caps: &Capabilities) -> Plan {
    plan(snapshot, &BlockedSet::for_provider(list, &snapshot.provider), policy, caps)
}

fn drake_track(id: &str) -> Track {
    track(id, "Hotline Bling", vec![credit(Some("drake-id"), "Drake", CreditRole::Primary)])
}

// --- normalize -------------------------------------------------------------------------

#[test]
fn names_fold_case_diacritics_punctuation_and_spacing() {
    assert_eq!(normalize_name("  BEYONCÉ  "), "beyonce");
    assert_eq!(normalize_name("Beyonce"), normalize_name("Beyoncé"));
    assert_eq!(normalize_name("Guns N' Roses"), "guns n roses");
    assert_eq!(normalize_name("Simon & Garfunkel"), normalize_name("simon and garfunkel"));
    assert_eq!(normalize_name("Ｊａｙ－Ｚ"), "jay z");
    assert_eq!(normalize_name("t.A.T.u."), "tatu");
    assert_eq!(normalize_name("!!!"), "");
}

#[test]
fn featured_artists_come_from_the_title_markers_only() {
    assert_eq!(featured_in_title("Work (feat. Drake)"), ["drake"]);
    assert_eq!(featured_in_title("Song [Featuring A & B] - Radio Edit"), ["a", "b"]);
    assert_eq!(featured_in_title("Song (with Robyn)"), ["robyn"]);
    assert!(featured_in_title("Dancing with Myself").is_empty());
    assert!(featured_in_title("Leftfeat. Nothing").is_empty());
    assert_eq!(split_artist_list("A x B, C"), ["a", "b", "c"]);
}

fn named(names: &[&str]) -> DnpList {
    DnpList {
        entries: names.iter().enumerate().map(|(n, name)| entry(n as u128 + 1, ArtistIdentity::named(*name))).collect(),
    }
}

fn reasons(plan: &Plan) -> Vec<(&str, &str, MatchKind)> {
    plan.actions().map(|a| (a.target.item_id(), a.reason.artist_name.as_str(), a.reason.matched)).collect()
}

/// Regression: credit lists were split on "&" whatever they named, so a blocked band
/// ("Simon & Garfunkel") named in a title never matched, and its members' names could.
#[test]
fn a_blocked_band_name_with_an_ampersand_matches_whole() {
    let sg = || credit(None, "Simon & Garfunkel", CreditRole::Primary);
    let snapshot = snapshot_of(
        vec![
            liked(track("t1", "The Boxer", vec![sg()])),
            liked(track("t2", "Cover (feat. Simon & Garfunkel)", vec![credit(Some("x"), "X", CreditRole::Primary)])),
            liked(track(
                "t3",
                "Cover (feat. SIMÓN AND GARFUNKEL) - Live",
                vec![credit(Some("x"), "X", CreditRole::Primary)],
            )),
            liked(track("t4", "Mrs. Robinson", vec![credit(Some("x"), "Simon", CreditRole::Primary)])),
        ],
        vec![],
    );
    let plan = run(&snapshot, &named(&["Simon & Garfunkel"]), &EnforcementPolicy::default(), &caps_all());
    assert_eq!(
        reasons(&plan),
        [
            ("t1", "Simon & Garfunkel", MatchKind::CreditName),
            ("t2", "Simon & Garfunkel", MatchKind::TitleFeature),
            ("t3", "Simon & Garfunkel", MatchKind::TitleFeature),
        ]
    );
}

#[test]
fn a_member_does_not_match_his_band_unless_credited_apart() {
    let list = named(&["Art Garfunkel"]);
    let sg = || credit(None, "Simon & Garfunkel", CreditRole::Primary);
    let aggressive = EnforcementPolicy { strictness: Strictness::Aggressive, ..EnforcementPolicy::default() };
    let snapshot = snapshot_of(
        vec![
            liked(track("t1", "The Boxer", vec![sg()])),
            liked(track("t2", "Cover (feat. Simon & Garfunkel)", vec![credit(Some("x"), "X", CreditRole::Primary)])),
            liked(track("t3", "Simon & Garfunkel", vec![credit(Some("x"), "X", CreditRole::Primary)])),
        ],
        vec![],
    );
    for policy in [EnforcementPolicy::default(), aggressive.clone()] {
        let plan = run(&snapshot, &list, &policy, &caps_all());
        assert!(plan.is_empty() && plan.skipped.is_empty(), "{:?}", reasons(&plan));
    }
    // Listed by the service as a credit of his own, he matches.
    let apart = snapshot_of(
        vec![liked(track("t1", "The Boxer", vec![sg(), credit(None, "Art Garfunkel", CreditRole::Featured)]))],
        vec![],
    );
    let plan = run(&apart, &list, &EnforcementPolicy::default(), &caps_all());
    assert_eq!(reasons(&plan), [("t1", "Art Garfunkel", MatchKind::CreditName)]);
    // So does a title naming him apart from the band.
    let titled = snapshot_of(vec![liked(track("t1", "Song (feat. Paul Simon & Art Garfunkel)", vec![]))], vec![]);
    let plan = run(&titled, &list, &EnforcementPolicy::default(), &caps_all());
    assert_eq!(reasons(&plan), [("t1", "Art Garfunkel", MatchKind::TitleFeature)]);
}

#[test]
fn a_feat_list_of_plain_names_still_splits() {
    // None of them a band: A, B and C, whatever the DNP list holds.
    assert_eq!(split_credits("A feat. B & C", &[normalize_name("B")][..]), ["a", "b", "c"]);
    assert_eq!(split_artist_list("A feat. B & C"), ["a", "b", "c"]);
    let snapshot = snapshot_of(vec![liked(track("t1", "Song feat. Drake & Future", vec![]))], vec![]);
    for (name, expected) in [("Drake", "Drake"), ("Future", "Future")] {
        let plan = run(&snapshot, &named(&[name]), &EnforcementPolicy::default(), &caps_all());
        assert_eq!(reasons(&plan), [("t1", expected, MatchKind::TitleFeature)]);
    }
    let aggressive = EnforcementPolicy { strictness: Strictness::Aggressive, ..EnforcementPolicy::default() };
    let pair = snapshot_of(vec![liked(track("t1", "Beyoncé & JAY-Z", vec![]))], vec![]);
    let plan = run(&pair, &named(&["Jay Z"]), &aggressive, &caps_all());
    assert_eq!(reasons(&plan), [("t1", "Jay Z", MatchKind::NameOnly)]);
}

// --- diff ------------------------------------------------------------------------------

#[test]
fn diff_reports_each_kind_of_change_in_order() {
    let before = snapshot_of(
        vec![liked(drake_track("t1")), liked(drake_track("t2"))],
        vec![
            playlist("p1", true, false, true, vec![drake_track("a"), drake_track("b"), drake_track("a")]),
            playlist("gone", true, false, true, vec![]),
        ],
    );
    let mut after = before.clone();
    after.liked_tracks.remove(0);
    after.liked_tracks.push(liked(drake_track("t3")));
    after.playlists[0].items.remove(2); // one of the two "a"
    after.playlists[0].items.push(PlaylistItem { position: 2, track: drake_track("c"), added_at: None, item_id: None });
    after.playlists.remove(1);
    after.playlists.push(playlist("new", true, false, true, vec![]));
    let d = diff(&before, &after);
    assert_eq!(d.liked_removed, ["t1"]);
    assert_eq!(d.liked_added, ["t3"]);
    assert_eq!(d.playlists_removed, ["gone"]);
    assert_eq!(d.playlists_added, ["new"]);
    assert_eq!(d.playlists_changed.len(), 1);
    assert_eq!(d.playlists_changed[0].removed, [(2, "a".to_owned())]);
    assert_eq!(d.playlists_changed[0].added, [(2, "c".to_owned())]);
    assert!(!d.is_empty());
    assert!(diff(&before, &before).is_empty());
}

// --- JSON ------------------------------------------------------------------------------

#[test]
fn a_malformed_snapshot_names_the_field_line_and_column() {
    let json = r#"{
  "provider": "spotify",
  "liked_tracks": [
    {"track": {"id": "t1", "title": "A", "artists": [{"name": "X", "role": "primary"}]}},
    {"track": {"id": "t2", "title": "B", "artists": [{"name": "Y", "role": "lead"}]}}
  ]
}"#;
    let err = json::snapshot_from_json(json).expect_err("bad role");
    let InputError::Json { document, path, line, column, message } = &err else { panic!("not a JSON error: {err:?}") };
    assert_eq!(*document, "library snapshot");
    assert_eq!(path, "liked_tracks[1].track.artists[0].role");
    assert_eq!(*line, 5);
    assert!(*column > 60, "column {column}");
    assert!(message.contains("lead"), "{message}");
    assert!(err.to_string().contains("line 5"), "{err}");
}

#[test]
fn a_missing_field_and_a_type_error_are_json_errors() {
    let err = json::snapshot_from_json(r#"{"liked_tracks": []}"#).expect_err("no provider");
    assert!(matches!(err, InputError::Json { ref message, .. } if message.contains("provider")), "{err}");
    let err = json::dnp_list_from_json(r#"{"entries": [{"id": 5}]}"#).expect_err("id is a number");
    assert!(matches!(err, InputError::Json { ref path, document: "DNP list", .. } if path == "entries[0].id"), "{err}");
    let err = json::policy_from_json(r#"{"strictness": "extreme"}"#).expect_err("unknown strictness");
    assert!(matches!(err, InputError::Json { ref path, .. } if path == "strictness"), "{err}");
}

#[test]
fn text_after_the_document_is_an_error() {
    // Regression: trailing text after a valid document used to be ignored silently.
    let err = json::snapshot_from_json(r#"{"provider": "spotify"} {"provider": "tidal"}"#).expect_err("trailing");
    assert!(matches!(err, InputError::Json { line: 1, .. }), "{err}");
    assert!(json::snapshot_from_json("{\"provider\": \"spotify\"}\n  \n").is_ok());
}

#[test]
fn invalid_and_unknown_provider_ids_are_errors_not_panics() {
    let err = json::snapshot_from_json(r#"{"provider": "Spotify Music"}"#).expect_err("invalid id");
    assert!(matches!(err, InputError::Json { ref path, .. } if path == "provider"), "{err}");
    let list = r#"{"entries": [{"id": "00000000-0000-0000-0000-000000000001", "added_at": "2024-01-01T00:00:00Z",
        "artist": {"name": "X", "provider_ids": {"NOT VALID": ["x"]}}}]}"#;
    let err = json::dnp_list_from_json(list).expect_err("invalid provider key");
    assert!(
        matches!(err, InputError::Json { ref path, .. } if path.starts_with("entries[0].artist.provider_ids")),
        "{err}"
    );
    for bad in ["", "1abc", "a-b", "UPPER", &"x".repeat(33)] {
        assert!(matches!(ProviderId::new(bad), Err(InputError::InvalidProviderId { .. })), "{bad:?}");
    }
    // Well formed but not registered.
    let registry = ProviderRegistry::new();
    assert!(matches!(registry.get("deezer"), Err(InputError::UnknownProvider { .. })));
    assert!(matches!("not-a-uuid".parse::<BatchId>(), Err(InputError::InvalidId { kind: "BatchId", .. })));
}

#[test]
fn a_snapshot_round_trips_through_its_json_form() {
    let s =
        snapshot_of(vec![liked(drake_track("t1"))], vec![playlist("p", true, false, true, vec![drake_track("t2")])]);
    let json = serde_json::to_string(&s).expect("serializes");
    assert!(!json.contains("\"isrc\""), "empty optional fields are omitted: {json}");
    assert_eq!(json::snapshot_from_json(&json).expect("parses"), s);
    let p: EnforcementPolicy = json::policy_from_json("{}").expect("defaults");
    assert_eq!(p, EnforcementPolicy::default());
}

// --- policy ----------------------------------------------------------------------------

#[test]
fn provider_overrides_change_only_that_provider() {
    let featured = track(
        "t1",
        "Song",
        vec![
            credit(Some("other"), "Other", CreditRole::Primary),
            credit(Some("drake-id"), "Drake", CreditRole::Featured),
        ],
    );
    let snapshot = snapshot_of(vec![liked(featured)], vec![]);
    let mut policy = EnforcementPolicy::default();
    assert_eq!(run(&snapshot, &drake(), &policy, &caps_all()).summary.total_actions, 1, "moderate: featured counts");
    policy.overrides.insert(
        pid("spotify"),
        PolicyOverride { strictness: Some(Strictness::Conservative), ..PolicyOverride::default() },
    );
    assert_eq!(run(&snapshot, &drake(), &policy, &caps_all()).summary.total_actions, 0, "override: conservative");
    let mut other = EnforcementPolicy::default();
    other
        .overrides
        .insert(pid("tidal"), PolicyOverride { strictness: Some(Strictness::Conservative), ..Default::default() });
    assert_eq!(run(&snapshot, &drake(), &other, &caps_all()).summary.total_actions, 1, "another provider's override");
    let mut targets_off = EnforcementPolicy::default();
    targets_off.overrides.insert(
        pid("spotify"),
        PolicyOverride {
            targets: Some(Targets { liked_tracks: false, ..Targets::default() }),
            ..PolicyOverride::default()
        },
    );
    assert!(run(&snapshot, &drake(), &targets_off, &caps_all()).is_empty());
}

#[test]
fn strictness_decides_which_associations_count() {
    let album_artist = Track {
        album: Some(AlbumRef {
            id: "al".into(),
            title: "Compilation".into(),
            artists: vec![credit(Some("drake-id"), "Drake", CreditRole::Primary)],
        }),
        ..track("t1", "Intro", vec![credit(Some("x"), "Someone", CreditRole::Primary)])
    };
    let in_title = track("t2", "Work (feat. Drake)", vec![credit(Some("r"), "Rihanna", CreditRole::Primary)]);
    let same_name = track("t3", "Other Song", vec![credit(Some("other-drake"), "Drake", CreditRole::Primary)]);
    let snapshot = snapshot_of(vec![liked(album_artist), liked(in_title), liked(same_name)], vec![]);
    let planned = |s: Strictness| -> Vec<(String, MatchKind)> {
        let policy = EnforcementPolicy { strictness: s, ..EnforcementPolicy::default() };
        run(&snapshot, &drake(), &policy, &caps_all())
            .actions()
            .map(|a| (a.target.item_id().to_owned(), a.reason.matched))
            .collect()
    };
    assert!(planned(Strictness::Conservative).is_empty());
    assert_eq!(
        planned(Strictness::Moderate),
        [("t1".to_owned(), MatchKind::AlbumArtist), ("t2".to_owned(), MatchKind::TitleFeature)]
    );
    assert_eq!(planned(Strictness::Aggressive).len(), 3);
    assert!(planned(Strictness::Aggressive).contains(&("t3".to_owned(), MatchKind::NameOnly)));
}

#[test]
fn a_name_only_entry_matches_by_normalized_name_and_alias() {
    let mut ye = ArtistIdentity::named("Kanye West");
    ye.aliases.push("Ye".into());
    let list = DnpList { entries: vec![entry(1, ye)] };
    let snapshot = snapshot_of(
        vec![
            liked(track("t1", "A", vec![credit(Some("k1"), "KANYE  WEST", CreditRole::Primary)])),
            liked(track("t2", "B", vec![credit(None, "ye", CreditRole::Primary)])),
            liked(track("t3", "C", vec![credit(Some("k3"), "Kanye Westside", CreditRole::Primary)])),
        ],
        vec![],
    );
    let plan = run(&snapshot, &list, &EnforcementPolicy::default(), &caps_all());
    let ids: Vec<&str> = plan.actions().map(|a| a.target.item_id()).collect();
    assert_eq!(ids, ["t1", "t2"]);
    assert!(plan.actions().all(|a| a.reason.matched == MatchKind::CreditName && a.reason.confidence == 0.85));
}

// --- capabilities fallbacks --------------------------------------------------------------

#[test]
fn where_unlike_is_unsupported_a_dislike_is_planned() {
    let snapshot = snapshot_of(vec![liked(drake_track("t1"))], vec![]);
    let plan = run(&snapshot, &drake(), &EnforcementPolicy::default(), &caps_apple());
    let kinds: Vec<ActionKind> = plan.actions().map(|a| a.kind).collect();
    assert_eq!(kinds, [ActionKind::DislikeTrack]);
    assert!(plan.skipped.is_empty());
    // Without alternatives it is listed as unsupported, with the alternative named.
    let policy = EnforcementPolicy { use_alternatives: false, ..EnforcementPolicy::default() };
    let plan = run(&snapshot, &drake(), &policy, &caps_apple());
    assert!(plan.is_empty());
    assert!(matches!(plan.skipped[0].reason, SkipReason::Unsupported { alternative: Some(Alternative::Dislike), .. }));
}

#[test]
fn an_already_disliked_track_is_skipped() {
    let mut l = liked(drake_track("t1"));
    l.disliked = true;
    let plan = run(&snapshot_of(vec![l], vec![]), &drake(), &EnforcementPolicy::default(), &caps_apple());
    assert!(plan.is_empty());
    assert_eq!(plan.skipped[0].reason, SkipReason::AlreadyDisliked);
    assert_eq!(plan.summary.skipped.get("already_disliked"), Some(&1));
}

/// Regression: rolling back the unlike of a disliked track re-liked it unrated: the
/// target did not record the rating, and the rollback did not restore it.
#[test]
fn rolling_back_the_unlike_of_a_disliked_track_rates_it_dislike_again() {
    let mut disliked = liked(drake_track("t1"));
    disliked.disliked = true;
    let snapshot = snapshot_of(vec![disliked, liked(drake_track("t2"))], vec![]);
    let plan = run(&snapshot, &drake(), &EnforcementPolicy::default(), &caps_all());
    let targets: Vec<&Target> = plan.actions().map(|a| &a.target).collect();
    assert!(matches!(targets[0], Target::Track { disliked: true, .. }));
    assert!(matches!(targets[1], Target::Track { disliked: false, .. }));
    let done: Vec<Action> = plan.actions().cloned().collect();

    let rollback = rollback_plan(&pid("spotify"), BatchId(Uuid::from_u128(9)), &done, &caps_all());
    let steps: Vec<(ActionKind, &str, Option<ActionId>)> =
        rollback.actions().map(|a| (a.kind, a.target.item_id(), a.inverse_of)).collect();
    assert_eq!(
        steps,
        [
            (ActionKind::LikeTrack, "t1", Some(done[0].id)),
            (ActionKind::LikeTrack, "t2", Some(done[1].id)),
            (ActionKind::DislikeTrack, "t1", Some(done[0].id)),
        ]
    );
    // The rating goes in a batch after the re-likes, even when one batch could hold all.
    let kinds: Vec<ActionKind> = rollback.batches.iter().map(|b| b.kind).collect();
    assert_eq!(kinds, [ActionKind::LikeTrack, ActionKind::DislikeTrack]);
    assert_eq!(rollback.summary.total_actions, 3);

    // Where the service cannot rate, the re-like runs and the rating is listed as skipped.
    let pages =
        PageSizes { liked_tracks: 50, saved_albums: 50, followed_artists: 50, playlists: 50, playlist_items: 50 };
    let no_ratings = Capabilities::builder(pages)
        .supported(ActionKind::UnlikeTrack, 50)
        .supported(ActionKind::LikeTrack, 50)
        .unsupported(ActionKind::DislikeTrack, "no rating API", None)
        .build();
    let rollback = rollback_plan(&pid("spotify"), BatchId(Uuid::from_u128(9)), &done, &no_ratings);
    assert_eq!(rollback.actions().map(|a| a.kind).collect::<Vec<_>>(), [ActionKind::LikeTrack; 2]);
    assert_eq!(rollback.skipped.len(), 1);
    assert_eq!(rollback.skipped[0].action.kind, ActionKind::DislikeTrack);
    assert_eq!(rollback.skipped[0].action.target.item_id(), "t1");
}

#[test]
fn undoing_a_dislike_of_a_track_already_disliked_keeps_the_rating() {
    let action = |n: u32, disliked: bool| Action {
        id: ActionId(n),
        kind: ActionKind::DislikeTrack,
        target: Target::Track { track_id: format!("t{n}"), entry_id: None, added_at: None, disliked },
        reason: Reason {
            entry_id: EntryId(Uuid::from_u128(1)),
            artist_name: "Drake".into(),
            matched: MatchKind::PrimaryCredit,
            credit: "drake-id".into(),
            confidence: 1.0,
        },
        label: format!("t{n}"),
        inverse_of: None,
    };
    let done = [action(0, false), action(1, true)];
    let rollback = rollback_plan(&pid("apple_music"), BatchId(Uuid::from_u128(9)), &done, &caps_apple());
    let steps: Vec<(ActionKind, &str)> = rollback.actions().map(|a| (a.kind, a.target.item_id())).collect();
    assert_eq!(steps, [(ActionKind::ClearTrackRating, "t0")]);
    assert!(rollback.skipped.is_empty());
}

#[test]
fn a_manual_checklist_item_is_skipped_with_its_url() {
    let snapshot = snapshot_of(vec![], vec![playlist("p1", true, false, true, vec![drake_track("t1")])]);
    let plan = run(&snapshot, &drake(), &EnforcementPolicy::default(), &caps_apple());
    assert!(plan.is_empty());
    let skip = &plan.skipped[0];
    assert!(matches!(skip.reason, SkipReason::Unsupported { alternative: Some(Alternative::ManualChecklist), .. }));
    assert_eq!(skip.url.as_deref(), Some("https://open.example/playlist/p1"));
    assert_eq!(skip.action.kind, ActionKind::RemovePlaylistItem);
}

#[test]
fn unlisted_kinds_are_unsupported_and_batch_size_falls_back_to_one() {
    let pages = PageSizes { liked_tracks: 1, saved_albums: 1, followed_artists: 1, playlists: 1, playlist_items: 1 };
    let caps = Capabilities::builder(pages).supported(ActionKind::UnlikeTrack, 0).build();
    assert!(!caps.can(ActionKind::RemoveAlbum));
    assert!(matches!(caps.support(ActionKind::RemoveAlbum), Support::Unsupported { alternative: None, .. }));
    assert_eq!(caps.max_batch(ActionKind::UnlikeTrack), 1, "a batch of 0 is read as 1");
    assert_eq!(caps.max_batch(ActionKind::RemoveAlbum), 1);
    assert!(caps.removal_possible());
    assert!(!Capabilities::builder(pages).build().removal_possible());
}

// --- skip reasons ----------------------------------------------------------------------

#[test]
fn playlists_the_user_may_not_edit_are_skipped() {
    let snapshot = snapshot_of(
        vec![],
        vec![
            playlist("followed", false, false, false, vec![drake_track("t1")]),
            playlist("mine", true, false, true, vec![drake_track("t1")]),
            playlist("shared", false, true, true, vec![drake_track("t1")]),
        ],
    );
    let plan = run(&snapshot, &drake(), &EnforcementPolicy::default(), &caps_all());
    assert_eq!(plan.actions().filter_map(|a| a.target.playlist_id()).collect::<Vec<_>>(), ["mine", "shared"]);
    assert_eq!(plan.skipped.len(), 1);
    assert_eq!(plan.skipped[0].reason, SkipReason::PlaylistNotEditable);
    assert_eq!(plan.skipped[0].url.as_deref(), Some("https://open.example/playlist/followed"));

    let policy = EnforcementPolicy {
        touch_own_playlists: false,
        touch_collaborative_playlists: false,
        ..EnforcementPolicy::default()
    };
    let plan = run(&snapshot, &drake(), &policy, &caps_all());
    assert!(plan.is_empty());
    let reasons: Vec<&SkipReason> = plan.skipped.iter().map(|s| &s.reason).collect();
    assert_eq!(
        reasons,
        [
            &SkipReason::PlaylistNotEditable,
            &SkipReason::OwnPlaylistExcluded,
            &SkipReason::CollaborativePlaylistExcluded
        ]
    );
}

#[test]
fn allow_listed_tracks_are_skipped_by_id_and_by_isrc() {
    let mut by_isrc = drake_track("t2");
    by_isrc.isrc = Some("USCM51500238".into());
    let snapshot = snapshot_of(
        vec![liked(drake_track("t1")), liked(by_isrc.clone()), liked(drake_track("t3"))],
        vec![playlist("p", true, false, true, vec![by_isrc])],
    );
    let policy = EnforcementPolicy {
        allow: vec![
            AllowRule::Track { provider: pid("spotify"), id: "t1".into() },
            AllowRule::Track { provider: pid("tidal"), id: "t3".into() },
            AllowRule::Isrc { isrc: "uscm51500238".into() },
        ],
        ..EnforcementPolicy::default()
    };
    let plan = run(&snapshot, &drake(), &policy, &caps_all());
    assert_eq!(
        plan.actions().map(|a| a.target.item_id()).collect::<Vec<_>>(),
        ["t3"],
        "a tidal rule is not a spotify one"
    );
    assert_eq!(plan.skipped.len(), 3);
    assert!(plan.skipped.iter().all(|s| s.reason == SkipReason::AllowListed));
    assert_eq!(plan.summary.skipped.get("allow_listed"), Some(&3));
}

#[test]
fn matches_below_the_minimum_confidence_are_listed_not_planned() {
    let snapshot = snapshot_of(
        vec![
            liked(drake_track("t1")),
            liked(track("t2", "Work (feat. Drake)", vec![credit(Some("r"), "Rihanna", CreditRole::Primary)])),
        ],
        vec![],
    );
    let policy = EnforcementPolicy { min_confidence: 0.9, ..EnforcementPolicy::default() };
    let plan = run(&snapshot, &drake(), &policy, &caps_all());
    assert_eq!(plan.actions().map(|a| a.target.item_id()).collect::<Vec<_>>(), ["t1"]);
    assert_eq!(plan.skipped[0].reason, SkipReason::LowConfidence);
    assert_eq!(plan.skipped[0].action.reason.matched, MatchKind::TitleFeature);
}

#[test]
fn every_action_says_why() {
    let snapshot = snapshot_of(vec![liked(drake_track("t1"))], vec![]);
    let plan = run(&snapshot, &drake(), &EnforcementPolicy::default(), &caps_all());
    let a = plan.actions().next().expect("one action");
    assert_eq!(a.reason.entry_id, EntryId(Uuid::from_u128(1)));
    assert_eq!(a.reason.artist_name, "Drake");
    assert_eq!(a.reason.credit, "drake-id");
    assert_eq!(a.reason.matched, MatchKind::PrimaryCredit);
    assert_eq!(a.reason.confidence, 1.0);
    assert_eq!(a.label, "Hotline Bling — Drake");
    assert_eq!(plan.summary.items_scanned, 1);
    assert_eq!(plan.summary.api_calls, 1);
    assert_eq!(plan.summary.days, 1);
}
