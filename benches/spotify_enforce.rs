//! Enforcement benchmark of the Spotify adapter: write calls per endpoint.
//!
//! Run: `cargo bench -p dnp-benches --bench spotify_enforce`
//!
//! Removes 1,000 liked tracks and 500 playlist items of a blocked artist and checks that
//! each endpoint got exactly ⌈n ÷ maximum batch⌉ write calls (40 URIs for
//! `DELETE /me/library`, 100 items for `DELETE /playlists/{id}/items`), then rolls back.

use std::time::{Duration, Instant};

use dnp_core::memory::MemoryActionLog;
use dnp_core::{
    ArtistCredit, ArtistIdentity, BatchId, BlockedSet, CancelFlag, CreditRole, DnpEntry, DnpList, EnforcementPolicy,
    EntryId, EntrySource, Executor, LibrarySnapshot, LikedTrack, NoProgress, Playlist, PlaylistItem, Provider,
    ProviderId, StaticToken, Track, confirmed_actions, diff, plan, rollback_plan,
};
use dnp_providers::emulator::EmulatorConfig;
use dnp_providers::http::{HttpConfig, RateLimit};
use dnp_providers::spotify::emulator::SpotifyEmulator;
use dnp_providers::spotify::{SpotifyConfig, SpotifyProvider};

const USER: &str = "bench_user";
const BLOCKED: &str = "0BLOCKEDARTIST00000000";
const LIKED: usize = 1_000;
const PLAYLIST_ITEMS: usize = 500;

fn track(n: usize, artist: &str, name: &str) -> Track {
    Track {
        id: format!("{n:022}"),
        title: format!("Track {n}"),
        artists: vec![ArtistCredit { id: Some(artist.to_owned()), name: name.to_owned(), role: CreditRole::Primary }],
        album: None,
        isrc: Some(format!("USBEN{n:07}")),
        duration_ms: Some(200_000),
        url: None,
    }
}

/// 1,000 blocked liked tracks among 1,200; one owned playlist of 650 items, 500 of them
/// blocked (distinct tracks).
fn library() -> LibrarySnapshot {
    let spotify = ProviderId::new(ProviderId::SPOTIFY).unwrap();
    let mut library = LibrarySnapshot::empty(spotify);
    let now = chrono::Utc::now();
    for n in 0..LIKED + 200 {
        let t = if n < LIKED { track(n, BLOCKED, "Blocked") } else { track(n, "0OTHERARTIST0000000000", "Other") };
        library.liked_tracks.push(LikedTrack {
            track: t,
            added_at: Some(now - chrono::Duration::minutes(n as i64 + 1)),
            entry_id: None,
            disliked: false,
        });
    }
    let items = (0..PLAYLIST_ITEMS + 150)
        .map(|i| {
            let t = if i % 13 < 10 && i / 13 * 10 + i % 13 < PLAYLIST_ITEMS {
                track(10_000 + i, BLOCKED, "Blocked")
            } else {
                track(20_000 + i, "0OTHERARTIST0000000000", "Other")
            };
            PlaylistItem { position: i as u32, track: t, added_at: Some(now), item_id: None }
        })
        .collect();
    library.playlists.push(Playlist {
        id: "0BENCHPLAYLIST00000000".into(),
        name: "Bench".into(),
        owned: true,
        collaborative: false,
        editable: true,
        version: None,
        items,
        url: None,
    });
    library
}

fn count(emulator: &SpotifyEmulator, method: &str, path: &str) -> usize {
    emulator.request_log().iter().filter(|r| r.method == method && r.path.starts_with(path)).count()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user(USER, &library());
    let before = emulator.library(USER);
    let blocked_items =
        before.playlists[0].items.iter().filter(|i| i.track.artists[0].id.as_deref() == Some(BLOCKED)).count();
    assert_eq!(blocked_items, PLAYLIST_ITEMS);
    let (access, _) = emulator.issue_tokens(USER, Duration::from_secs(3600));
    let spotify_id = ProviderId::new("spotify").unwrap();
    let token = StaticToken::new(spotify_id.clone(), access.into());
    let mut config = SpotifyConfig::new(emulator.client_id(), None, "http://127.0.0.1:8888/callback")
        .unwrap()
        .with_base_urls(emulator.api_base_url(), emulator.accounts_base_url())
        .unwrap();
    config.http = HttpConfig {
        provider_rate: RateLimit { per_second: 1000, burst: 100 },
        connection_rate: RateLimit { per_second: 1000, burst: 100 },
        ..HttpConfig::default()
    };
    let spotify = SpotifyProvider::new(config).unwrap();

    let snapshot = spotify.scan(&token, &NoProgress).await.unwrap();
    let list = DnpList {
        entries: vec![DnpEntry {
            id: EntryId::new_random(),
            artist: ArtistIdentity::named("Blocked").with_id(spotify_id.clone(), BLOCKED),
            note: None,
            tags: vec![],
            added_at: chrono::Utc::now(),
            source: EntrySource::Personal,
        }],
    };
    let caps = spotify.capabilities();
    let plan = plan(&snapshot, &BlockedSet::for_provider(&list, &spotify_id), &EnforcementPolicy::default(), &caps);
    emulator.log().clear();
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let started = Instant::now();
    let report =
        Executor::new(&spotify, &token, &log).execute(batch, &plan, &NoProgress, &CancelFlag::new()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.confirmed as usize, LIKED + PLAYLIST_ITEMS);

    let library_calls = count(&emulator, "DELETE", "/v1/me/library");
    let playlist_calls = count(&emulator, "DELETE", "/v1/playlists/");
    let reads = count(&emulator, "GET", "/v1/");
    let version_reads = emulator
        .request_log()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v1/playlists/") && !r.path.ends_with("/items"))
        .count();
    let want_library = LIKED.div_ceil(40);
    let want_playlist = PLAYLIST_ITEMS.div_ceil(100);
    let after = emulator.library(USER);
    let d = diff(&before, &after);
    assert_eq!(d.liked_removed.len(), LIKED);
    assert_eq!(d.playlists_changed[0].removed.len(), PLAYLIST_ITEMS);

    println!("spotify_enforce: {LIKED} liked tracks and {PLAYLIST_ITEMS} playlist items of a blocked artist");
    println!("  DELETE /me/library              {library_calls} calls (ceil({LIKED} / 40) = {want_library})");
    println!(
        "  DELETE /playlists/{{id}}/items    {playlist_calls} calls (ceil({PLAYLIST_ITEMS} / 100) = {want_playlist})"
    );
    println!(
        "  reads                           {reads}, of which {version_reads} GET /playlists/{{id}} version checks (one per playlist batch)"
    );
    println!(
        "  elapsed                         {:.0} ms, {} provider calls",
        elapsed.as_secs_f64() * 1e3,
        report.calls
    );
    assert_eq!(library_calls, want_library, "write calls to /me/library");
    assert_eq!(playlist_calls, want_playlist, "write calls to /playlists/{{id}}/items");

    // Rollback: re-like and re-insert at the former positions.
    let logged = dnp_core::ActionLog::actions(&log, batch).await.unwrap();
    let rollback = rollback_plan(&spotify_id, batch, &confirmed_actions(&logged), &caps);
    emulator.log().clear();
    let started = Instant::now();
    let report = Executor::new(&spotify, &token, &log)
        .execute(BatchId::new_random(), &rollback, &NoProgress, &CancelFlag::new())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.failed, 0);
    let restored = emulator.library(USER);
    assert!(diff(&before, &restored).is_empty());
    let order = |l: &LibrarySnapshot| l.playlists[0].items.iter().map(|i| i.track.id.clone()).collect::<Vec<_>>();
    assert_eq!(order(&before), order(&restored), "playlist order restored");
    println!(
        "  rollback: PUT /me/library {} calls, POST /playlists/{{id}}/items {} calls, {:.0} ms; library and playlist order restored",
        count(&emulator, "PUT", "/v1/me/library"),
        count(&emulator, "POST", "/v1/playlists/"),
        elapsed.as_secs_f64() * 1e3
    );
}
