//! The conformance suite of `dnp-core` against the YouTube Music adapter and its emulator.
//!
//! Run: `cargo test -p dnp-providers --no-default-features --features youtube_music,emulator --test youtube_music_conformance`

use dnp_core::conformance::{CheckStatus, run_all};
use dnp_providers::youtube_music::YouTubeMusicHarness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_youtube_music_adapter_passes_the_conformance_suite() {
    let harness = YouTubeMusicHarness::start().await.expect("the emulator starts");
    let report = run_all(&harness).await;
    println!("{report}");
    assert!(report.all_passed(), "{report}");
    // Skipped only where the capabilities say so: the Data API has no saved albums, and
    // dnp offers no dislike ratings on YouTube.
    let skipped: Vec<&str> =
        report.checks.iter().filter(|c| matches!(c.status, CheckStatus::Skipped(_))).map(|c| c.name.as_str()).collect();
    assert_eq!(
        skipped,
        [
            "capabilities/remove_album",
            "capabilities/save_album",
            "capabilities/dislike_track",
            "capabilities/clear_track_rating"
        ],
        "{report}"
    );
    let stats = harness.youtube().client().api().stats();
    assert!(stats.rate_limit_retries >= 1 && stats.transient_retries >= 1 && stats.refreshes >= 1, "{stats:?}");
    // Every call was counted against the quota.
    let used = harness.youtube().client().quota().used_at(chrono::Utc::now());
    assert!(used >= 1_000, "the suite spent only {used} units");
}
