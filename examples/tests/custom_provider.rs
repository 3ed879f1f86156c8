//! The example third-party adapter (`examples/custom_provider/`) passes the provider
//! conformance suite against its own emulator.
//!
//! `cargo test -p dnp-examples --test custom_provider`

#[path = "../custom_provider/deezer.rs"]
#[allow(dead_code)]
mod deezer;
#[path = "../custom_provider/emulator.rs"]
#[allow(dead_code)]
mod emulator;
#[path = "../custom_provider/harness.rs"]
mod harness;

use dnp_core::conformance::{CheckStatus, Harness, LibraryShape, generate_library, run_all};
use dnp_core::{NoProgress, ProviderAuth};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_adapter_passes_the_conformance_suite() {
    let harness = harness::DeezerHarness::start().await.unwrap();
    let report = run_all(&harness).await;
    println!("{report}");
    assert!(report.all_passed(), "{report}");
    // Every kind the example supports was exercised; only ratings (unsupported) skipped.
    let (_, _, skipped) = report.counts();
    assert_eq!(skipped, 2, "{report}");
    for name in ["capabilities/dislike_track", "capabilities/clear_track_rating"] {
        assert!(matches!(report.get(name), Some(CheckStatus::Skipped(_))), "{name}");
    }
    assert!(matches!(report.get("playlist_changed"), Some(CheckStatus::Passed(_))));
    assert!(matches!(report.get("breaker"), Some(CheckStatus::Passed(_))));
}

#[tokio::test]
async fn the_authorization_code_flow_connects_and_search_works() {
    let harness = harness::DeezerHarness::start().await.unwrap();
    let library = generate_library(harness.provider().id(), 3, &LibraryShape::small());
    harness.seed(&library).await.unwrap();
    let auth = deezer::DeezerAuth::new(harness.emulator.base_url());
    let request = auth.authorization_request().unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = http.get(format!("{}&redirect_uri=http://127.0.0.1:9/cb", request.url)).send().await.unwrap();
    let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let tokens = auth.exchange_code(&code, None).await.unwrap();
    assert!(tokens.refresh_token.is_some());
    assert_eq!(auth.exchange_code(&code, None).await.unwrap_err().code(), "needs_reauth", "a code is single-use");
    let token = dnp_core::StaticToken::new(harness.provider().id().clone(), tokens.access_token);
    let scanned = harness.provider().scan(&token, &NoProgress).await.unwrap();
    assert_eq!(scanned.liked_tracks.len(), library.liked_tracks.len());
    let artist = &library.followed_artists[0].artist;
    let found = harness.provider().search_artists(&token, &artist.name, 5).await.unwrap();
    assert!(found.iter().any(|c| c.id == artist.id && c.confidence == 1.0));
    let isrc = library.liked_tracks[0].track.isrc.clone().unwrap();
    let track = harness.provider().track_by_isrc(&token, &isrc).await.unwrap().unwrap();
    assert_eq!(track.isrc.as_deref(), Some(isrc.as_str()));
}
