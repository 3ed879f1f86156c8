//! The planner on a 1,000,000-item library against a 10,000-artist DNP list.
//!
//! cargo bench -p dnp-benches --bench planner
//!
//! Strictness is moderate (the default: featured credits, album artists and "feat." in
//! titles count). Target: the whole plan, compiling the DNP list included, in under
//! 200 ms on one core (at least 5 million items a second). Peak memory is measured by the
//! `planner_memory` bench. Figures are recorded in docs/performance.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnp_benches::planner_data::{Shape, generate};
use dnp_core::{BlockedSet, EnforcementPolicy, Strictness, plan};

fn planner(c: &mut Criterion) {
    let started = Instant::now();
    let input = generate(&Shape::MILLION, 42);
    let items = input.snapshot.item_count() as u64;
    let policy = EnforcementPolicy { strictness: Strictness::Moderate, ..EnforcementPolicy::default() };
    let provider = input.snapshot.provider.clone();
    let blocked = BlockedSet::for_provider(&input.list, &provider);
    let sample = plan(&input.snapshot, &blocked, &policy, &input.capabilities);
    eprintln!(
        "library: {items} items, {} DNP entries (generated in {:.1} s); plan: {} actions in {} calls, {} skipped",
        input.list.entries.len(),
        started.elapsed().as_secs_f64(),
        sample.summary.total_actions,
        sample.summary.api_calls,
        sample.skipped.len(),
    );
    drop(sample);

    // CPU time of the whole plan, read from /proc/thread-self/schedstat (nanoseconds this
    // thread ran): meaningful even when other processes share the cores, unlike the
    // wall-clock times criterion reports below.
    let mut cpu_ms: Vec<f64> = (0..10)
        .map(|_| {
            let start = thread_cpu_ns();
            let blocked = BlockedSet::for_provider(black_box(&input.list), &provider);
            drop(black_box(plan(black_box(&input.snapshot), &blocked, &policy, &input.capabilities)));
            (thread_cpu_ns() - start) as f64 / 1e6
        })
        .collect();
    cpu_ms.sort_by(f64::total_cmp);
    eprintln!(
        "whole plan CPU time (10 runs): min {:.1} ms, median {:.1} ms, max {:.1} ms ({:.2} M items/s at the median)",
        cpu_ms[0],
        cpu_ms[5],
        cpu_ms[9],
        items as f64 / cpu_ms[5] / 1e3
    );

    let mut group = c.benchmark_group("planner");
    group.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(items));
    group.bench_function("whole_plan_1m_items_10k_artists_moderate", |b| {
        b.iter(|| {
            let blocked = BlockedSet::for_provider(black_box(&input.list), &provider);
            plan(black_box(&input.snapshot), &blocked, &policy, &input.capabilities)
        })
    });
    group.bench_function("plan_only_1m_items", |b| {
        b.iter(|| plan(black_box(&input.snapshot), &blocked, &policy, &input.capabilities))
    });
    group.throughput(Throughput::Elements(input.list.entries.len() as u64));
    group.bench_function("compile_10k_artist_dnp_list", |b| {
        b.iter(|| BlockedSet::for_provider(black_box(&input.list), &provider))
    });
    group.finish();
}

/// Nanoseconds this thread has run on a CPU (0 where /proc is not available).
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

criterion_group!(benches, planner);
criterion_main!(benches);
