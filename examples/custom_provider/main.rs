//! cargo run -p dnp-examples --example custom_provider
//!
//! A third-party provider adapter, written against `dnp-core`'s public API only, for a
//! Deezer-like music API (`deezer.rs`), with its own tiny in-process emulator
//! (`emulator.rs`) and the conformance harness over it (`harness.rs`).
//!
//! This program starts the emulator, seeds a generated library, scans it through the
//! adapter, plans the removal of one blocked artist, executes the plan, rolls it back,
//! and finally runs the whole conformance suite and prints its report. The tutorial in
//! `docs/writing-a-provider.md` walks through these files step by step.

mod deezer;
mod emulator;
mod harness;

use dnp_core::conformance::{Harness, LibraryShape, generate_library, run_all, subject_artist};
use dnp_core::memory::MemoryActionLog;
use dnp_core::{
    ActionLog, ArtistIdentity, BatchId, BlockedSet, CancelFlag, DnpEntry, DnpList, EnforcementPolicy, EntryId,
    EntrySource, Executor, NoProgress, confirmed_actions, plan, rollback_plan,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let harness = harness::DeezerHarness::start().await?;
    let provider = harness.provider();
    let tokens = harness.token_source();
    println!("emulator at {}", harness.emulator.base_url());

    // A realistic library centred on one artist, seeded into the emulator.
    let library = generate_library(provider.id(), 7, &LibraryShape::spanning(&provider.capabilities()));
    harness.seed(&library).await?;
    let blocked_artist = subject_artist(&library).ok_or("the library has no subject artist")?.clone();

    // Scan through the adapter.
    let snapshot = provider.scan(&*tokens, &NoProgress).await?;
    println!(
        "scanned {} liked tracks, {} albums, {} artists, {} playlists ({} items)",
        snapshot.liked_tracks.len(),
        snapshot.saved_albums.len(),
        snapshot.followed_artists.len(),
        snapshot.playlists.len(),
        snapshot.item_count()
    );

    // Plan: the pure planner decides, within the adapter's capabilities.
    let list = DnpList {
        entries: vec![DnpEntry {
            id: EntryId::new_random(),
            artist: ArtistIdentity::named(blocked_artist.name.clone())
                .with_id(provider.id().clone(), blocked_artist.id.clone()),
            note: None,
            tags: vec![],
            added_at: chrono::Utc::now(),
            source: EntrySource::Personal,
        }],
    };
    let caps = provider.capabilities();
    let plan = plan(&snapshot, &BlockedSet::for_provider(&list, provider.id()), &EnforcementPolicy::default(), &caps);
    println!(
        "plan for {:?}: {} actions in {} calls, {} skipped",
        blocked_artist.name,
        plan.summary.total_actions,
        plan.summary.api_calls,
        plan.skipped.len()
    );
    for (kind, n) in &plan.summary.actions {
        println!("  {:<22} {n}", kind.as_str());
    }

    // Execute with a write-ahead action log, then undo.
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let report =
        Executor::new(&*provider, &*tokens, &log).execute(batch, &plan, &NoProgress, &CancelFlag::new()).await?;
    println!("enforced: {} confirmed, {} failed", report.confirmed, report.failed);
    let done = confirmed_actions(&log.actions(batch).await?);
    let undo = rollback_plan(provider.id(), batch, &done, &caps);
    let undone = Executor::new(&*provider, &*tokens, &log)
        .execute(BatchId::new_random(), &undo, &NoProgress, &CancelFlag::new())
        .await?;
    println!("rolled back: {} confirmed, {} failed", undone.confirmed, undone.failed);

    // The conformance suite: what "done" means for an adapter.
    let report = run_all(&harness).await;
    println!("\n{report}");
    if !report.all_passed() {
        return Err("the adapter does not pass the conformance suite".into());
    }
    Ok(())
}
