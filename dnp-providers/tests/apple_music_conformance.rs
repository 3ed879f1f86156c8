//! The conformance suite against the Apple Music emulator.
//!
//! `cargo test -p dnp-providers --no-default-features --features apple_music,emulator --test apple_music_conformance`

use dnp_core::conformance::{CheckStatus, run_all};
use dnp_providers::apple_music::AppleMusicHarness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apple_music_adapter_passes_the_conformance_suite() {
    let harness = AppleMusicHarness::start().await.unwrap();
    let report = run_all(&harness).await;
    println!("{report}");
    assert!(report.all_passed(), "{report}");
    // Skipped only where the capabilities say the API cannot do it.
    let caps = dnp_providers::apple_music::capabilities();
    for check in &report.checks {
        if let CheckStatus::Skipped(why) = &check.status {
            let kind = check.name.strip_prefix("capabilities/");
            let unsupported_kind =
                kind.is_some_and(|k| dnp_core::ActionKind::ALL.iter().any(|a| a.as_str() == k && !caps.can(*a)));
            let inverse_of_unsupported = why.contains("which is unsupported");
            let playlist_removal =
                check.name == "playlist_changed" && !caps.can(dnp_core::ActionKind::RemovePlaylistItem);
            assert!(unsupported_kind || inverse_of_unsupported || playlist_removal, "{} skipped: {why}", check.name);
        }
    }
    for check in [
        "full_scan",
        "removal_exact",
        "rollback",
        "idempotent",
        "rate_limited",
        "server_errors",
        "expired_token",
        "breaker",
    ] {
        assert!(matches!(report.get(check), Some(CheckStatus::Passed(_))), "{check}: {:?}", report.get(check));
    }
    assert!(matches!(report.get("capabilities/dislike_track"), Some(CheckStatus::Passed(_))));
    assert!(matches!(report.get("capabilities/clear_track_rating"), Some(CheckStatus::Passed(_))));
}
