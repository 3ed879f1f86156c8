//! The conformance suite of `dnp-core` against the TIDAL adapter and its emulator.
//!
//! Run: `cargo test -p dnp-providers --no-default-features --features tidal,emulator --test tidal_conformance`

use dnp_core::conformance::{CheckStatus, run_all};
use dnp_providers::tidal::TidalHarness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tidal_adapter_passes_the_conformance_suite() {
    let harness = TidalHarness::start().await.expect("the emulator starts");
    let report = run_all(&harness).await;
    println!("{report}");
    assert!(report.all_passed(), "{report}");
    // Skipped only where TIDAL's capabilities say so: it has no rating API.
    let skipped: Vec<&str> =
        report.checks.iter().filter(|c| matches!(c.status, CheckStatus::Skipped(_))).map(|c| c.name.as_str()).collect();
    assert_eq!(skipped, ["capabilities/dislike_track", "capabilities/clear_track_rating"], "{report}");
    let stats = harness.tidal().client().api().stats();
    assert!(stats.rate_limit_retries >= 1 && stats.transient_retries >= 1 && stats.refreshes >= 1, "{stats:?}");
}
