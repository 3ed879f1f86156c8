//! Scan benchmark of the Spotify adapter against its emulator at 50 ms per request.
//!
//! Run: `cargo bench -p dnp-benches --bench spotify_scan`
//!
//! Library: 10,000 liked tracks, 200 saved albums, 150 followed artists, 100 owned
//! playlists of 100 items. Prints the requests made against the minimal page count, the
//! elapsed time against the lower bound (pages × 50 ms ÷ concurrency), and against a scan
//! fetching one page after another.

use std::time::{Duration, Instant};

use dnp_core::conformance::compare_libraries;
use dnp_core::{LibrarySnapshot, NoProgress, Provider, ProviderId, StaticToken};
use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
use dnp_providers::http::{HttpConfig, RateLimit};
use dnp_providers::spotify::emulator::SpotifyEmulator;
use dnp_providers::spotify::{SpotifyConfig, SpotifyProvider};

const LATENCY: Duration = Duration::from_millis(50);
const CONCURRENCY: usize = 8;
const USER: &str = "bench_user";

fn library() -> LibrarySnapshot {
    let spotify = ProviderId::new(ProviderId::SPOTIFY).unwrap();
    let mut library = generate_library(&spotify, LibraryShape::BENCHMARK, 42);
    for playlist in &mut library.playlists {
        playlist.owned = true;
        playlist.editable = true;
        playlist.collaborative = false;
    }
    library
}

fn pages(n: usize) -> usize {
    n.div_ceil(50).max(1)
}

/// The fewest requests a scan can make: the profile, each list's pages (at least one),
/// and the item pages of every editable playlist (none for an empty one).
fn minimal_pages(state: &LibrarySnapshot) -> usize {
    1 + pages(state.liked_tracks.len())
        + pages(state.saved_albums.len())
        + pages(state.followed_artists.len())
        + pages(state.playlists.len())
        + state.playlists.iter().filter(|p| p.editable).map(|p| p.items.len().div_ceil(50)).sum::<usize>()
}

fn provider(emulator: &SpotifyEmulator, concurrency: usize) -> SpotifyProvider {
    let mut config = SpotifyConfig::new(emulator.client_id(), None, "http://127.0.0.1:8888/callback")
        .unwrap()
        .with_base_urls(emulator.api_base_url(), emulator.accounts_base_url())
        .unwrap();
    config.http = HttpConfig {
        concurrency,
        // Limits above what the scan can reach, so concurrency alone bounds it.
        provider_rate: RateLimit { per_second: 1000, burst: 100 },
        connection_rate: RateLimit { per_second: 1000, burst: 100 },
        ..HttpConfig::default()
    };
    SpotifyProvider::new(config).unwrap()
}

async fn scan(
    emulator: &SpotifyEmulator,
    token: &StaticToken,
    concurrency: usize,
) -> (Duration, usize, LibrarySnapshot) {
    let spotify = provider(emulator, concurrency);
    emulator.log().clear();
    let started = Instant::now();
    let snapshot = spotify.scan(token, &NoProgress).await.expect("scan");
    (started.elapsed(), emulator.log().len(), snapshot)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.seed_user(USER, &library());
    let state = emulator.library(USER);
    let (access, _) = emulator.issue_tokens(USER, Duration::from_secs(3600));
    let token = StaticToken::new(ProviderId::new("spotify").unwrap(), access.into());
    emulator.set_latency(LATENCY);

    let minimal = minimal_pages(&state);
    let bound = LATENCY * minimal as u32 / CONCURRENCY as u32;

    let mut runs = Vec::new();
    for _ in 0..3 {
        let (elapsed, calls, snapshot) = scan(&emulator, &token, CONCURRENCY).await;
        compare_libraries(&state, &snapshot).expect("the scan equals the emulator's state");
        assert_eq!(calls, minimal, "requests made = minimal page count");
        runs.push(elapsed);
    }
    runs.sort();
    let concurrent = runs[1];
    let (sequential, seq_calls, seq_snapshot) = scan(&emulator, &token, 1).await;
    compare_libraries(&state, &seq_snapshot).expect("the sequential scan equals the emulator's state");

    let items = state.item_count();
    println!(
        "spotify_scan: {} liked tracks, {} playlists, {} items in all, {} ms per request",
        state.liked_tracks.len(),
        state.playlists.len(),
        items,
        LATENCY.as_millis()
    );
    println!("  requests made            {minimal} (minimal page count {minimal}), sequential run {seq_calls}");
    println!(
        "  concurrent ({CONCURRENCY} in flight)   median of 3: {:.2} s (runs {:.2?})",
        concurrent.as_secs_f64(),
        runs
    );
    println!(
        "  lower bound              {:.2} s = {minimal} pages x {} ms / {CONCURRENCY}",
        bound.as_secs_f64(),
        LATENCY.as_millis()
    );
    println!(
        "  ratio to the bound       {:.2}x (target <= 1.5x: {})",
        concurrent.as_secs_f64() / bound.as_secs_f64(),
        if concurrent.as_secs_f64() <= 1.5 * bound.as_secs_f64() { "met" } else { "MISSED" }
    );
    println!("  sequential (1 in flight) {:.2} s", sequential.as_secs_f64());
    println!(
        "  speed-up over sequential {:.1}x (target >= 5x: {})",
        sequential.as_secs_f64() / concurrent.as_secs_f64(),
        if sequential.as_secs_f64() >= 5.0 * concurrent.as_secs_f64() { "met" } else { "MISSED" }
    );
}
