//! 429 storm benchmark of the Spotify adapter: the emulator rejects 30 % of calls with
//! `Retry-After: 1`.
//!
//! Run: `cargo bench -p dnp-benches --bench spotify_storm`
//!
//! The scan of the benchmark library (10,000 liked tracks, 100 playlists of 100 items)
//! must complete and equal the emulator's state, with no more retries than rejections.

use std::time::{Duration, Instant};

use dnp_core::conformance::compare_libraries;
use dnp_core::{NoProgress, Provider, ProviderId, StaticToken};
use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
use dnp_providers::http::{HttpConfig, RateLimit};
use dnp_providers::spotify::emulator::SpotifyEmulator;
use dnp_providers::spotify::{SpotifyConfig, SpotifyProvider};

const USER: &str = "bench_user";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let spotify_id = ProviderId::new(ProviderId::SPOTIFY).unwrap();
    let emulator = SpotifyEmulator::start(EmulatorConfig { seed: 7, ..EmulatorConfig::default() }).unwrap();
    let mut library = generate_library(&spotify_id, LibraryShape::BENCHMARK, 42);
    for playlist in &mut library.playlists {
        playlist.owned = true;
        playlist.editable = true;
    }
    emulator.seed_user(USER, &library);
    let state = emulator.library(USER);
    let (access, _) = emulator.issue_tokens(USER, Duration::from_secs(3600));
    let token = StaticToken::new(spotify_id, access.into());
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

    emulator.faults().rate_limit_ratio(0.3, Duration::from_secs(1)).unwrap();
    let started = Instant::now();
    let snapshot = spotify.scan(&token, &NoProgress).await.expect("the scan completes under the storm");
    let elapsed = started.elapsed();
    emulator.faults().clear();
    compare_libraries(&state, &snapshot).expect("the scan equals the emulator's state");

    let rejections = emulator.faults().stats().rate_limited;
    let stats = spotify.client().api().stats();
    let requests = emulator.log().len();
    println!("spotify_storm: 30 % of calls rejected with 429 Retry-After: 1");
    println!(
        "  requests answered   {requests} ({} accepted, {rejections} rejected: {:.1} %)",
        requests as u64 - rejections,
        100.0 * rejections as f64 / requests as f64
    );
    println!(
        "  retries             {} (rejections {rejections}; target retries <= rejections: {})",
        stats.rate_limit_retries,
        if stats.rate_limit_retries <= rejections { "met" } else { "MISSED" }
    );
    println!("  elapsed             {:.2} s; the scan equals the emulator's state", elapsed.as_secs_f64());
    assert_eq!(stats.rate_limited, rejections, "every rejection was seen");
    assert!(stats.rate_limit_retries <= rejections);
}
