//! Merge + check of 10⁶ generated events (10 processes): read the JSON lines, pair messages,
//! order by happened-before, write the merged history, and run every check.
//!
//! Run: `cargo bench -p causal-log --bench merge_check`. Target (issue 7): < 10 s.

use std::time::{Duration, Instant};

use causal_log::Log;
use criterion::{Criterion, criterion_group, criterion_main};

const EVENTS: usize = 1_000_000;

fn merge_check(c: &mut Criterion) {
    let text = causal_log::synth::generate(10, EVENTS, 1);
    // One timed pass with a breakdown, printed for docs/causal-log.md.
    let t = Instant::now();
    let log = Log::parse_str("synth.jsonl", &text).expect("generated log reads");
    let t_read = t.elapsed();
    let merged = log.to_jsonl();
    let t_merge = t.elapsed();
    let report = log.check();
    let t_check = t.elapsed();
    assert!(report.is_clean(), "{report}");
    assert_eq!(log.events().len(), EVENTS);
    eprintln!(
        "10^6 events, {} bytes: read+order {:?}, write merged {:?}, check {:?}, total {:?}",
        merged.len(),
        t_read,
        t_merge - t_read,
        t_check - t_merge,
        t_check
    );
    drop((log, merged));

    let mut g = c.benchmark_group("causal-log");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.bench_function("merge+check 10^6 events", |b| {
        b.iter(|| {
            let log = Log::parse_str("synth.jsonl", &text).expect("reads");
            let merged = log.to_jsonl();
            let report = log.check();
            (merged.len(), report.findings.len())
        })
    });
    g.finish();
}

criterion_group!(benches, merge_check);
criterion_main!(benches);
