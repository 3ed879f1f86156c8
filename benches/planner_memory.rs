//! Peak heap memory of the planner on the 1,000,000-item library, next to the snapshot's own.
//!
//! cargo bench -p dnp-benches --bench planner_memory
//!
//! A counting global allocator (`peak_alloc`) sees every heap allocation of this process:
//! the snapshot's bytes are what its construction left allocated; the plan's peak is the
//! highest the heap went above that while compiling the DNP list and planning. Target:
//! the snapshot plus the planner's peak under 2x the snapshot's own bytes (the planner's
//! peak under the snapshot's size). Prints one line per figure; exits 1 when missed.

use dnp_benches::planner_data::{Shape, generate};
use dnp_core::{BlockedSet, EnforcementPolicy, Strictness, plan};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let base = HEAP.current_usage();
    let input = generate(&Shape::MILLION, 42);
    let snapshot_bytes = HEAP.current_usage() - base;
    // The list and the capabilities are part of the input too; measure the snapshot alone.
    let list_bytes = {
        let before = HEAP.current_usage();
        let copy = input.list.clone();
        let bytes = HEAP.current_usage() - before;
        drop(copy);
        bytes
    };
    let snapshot_only = snapshot_bytes.saturating_sub(list_bytes);

    let policy = EnforcementPolicy { strictness: Strictness::Moderate, ..EnforcementPolicy::default() };
    let before_plan = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let blocked = BlockedSet::for_provider(&input.list, &input.snapshot.provider);
    let blocked_bytes = HEAP.current_usage() - before_plan;
    let plan = plan(&input.snapshot, &blocked, &policy, &input.capabilities);
    let peak_extra = HEAP.peak_usage() - before_plan;
    let retained = HEAP.current_usage() - before_plan;

    println!("library items:               {}", input.snapshot.item_count());
    println!("snapshot heap bytes:         {snapshot_only} ({:.1} MiB)", mib(snapshot_only));
    println!("DNP list heap bytes:         {list_bytes} ({:.1} MiB)", mib(list_bytes));
    println!("blocked set heap bytes:      {blocked_bytes} ({:.1} MiB)", mib(blocked_bytes));
    println!("plan: actions {}, skipped {}", plan.summary.total_actions, plan.skipped.len());
    println!("peak extra during plan:      {peak_extra} ({:.1} MiB)", mib(peak_extra));
    println!("retained by blocked set + plan: {retained} ({:.1} MiB)", mib(retained));
    let total = snapshot_only + peak_extra;
    println!("peak extra / snapshot:       {:.3}", peak_extra as f64 / snapshot_only as f64);
    println!("(snapshot + peak) / snapshot: {:.3}", total as f64 / snapshot_only as f64);
    let ok = total < 2 * snapshot_only;
    println!("target (snapshot + plan < 2x snapshot): {}", if ok { "met" } else { "MISSED" });
    drop(plan);

    if !ok {
        std::process::exit(1);
    }
}
