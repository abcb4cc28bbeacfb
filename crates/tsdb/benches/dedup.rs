//! HA replica deduplication (the penalty algorithm) and the merge by time, over two and
//! three replicas of one day at 15 s with gaps and offset scrape phases: samples in per second.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tsdb::dedup::{dedup_replicas, MergeByTime, Sample};

/// One day at 15 s starting at `phase` ms, with a 10-minute gap every `gap_every` hours.
fn replica(phase: i64, gap_every: i64) -> Vec<Sample> {
    (0..5_760i64)
        .map(|k| k * 15_000 + phase)
        .filter(|t| (t / 600_000) % (gap_every * 6) != 3)
        .map(|t| (t, (t / 1000) as f64))
        .collect()
}

fn dedup(c: &mut Criterion) {
    let mut g = c.benchmark_group("dedup");
    let sets = [
        ("two_replicas", vec![replica(0, 2), replica(4_000, 3)]),
        (
            "three_replicas",
            vec![replica(0, 2), replica(4_000, 3), replica(9_000, 5)],
        ),
    ];
    for (name, replicas) in &sets {
        let total: usize = replicas.iter().map(Vec::len).sum();
        g.throughput(Throughput::Elements(total as u64));
        for counter in [false, true] {
            let id = format!("penalty_{name}{}", if counter { "_counter" } else { "" });
            g.bench_function(id, |b| {
                b.iter(|| black_box(dedup_replicas(replicas, counter).len()))
            });
        }
        g.bench_function(format!("merge_by_time_{name}"), |b| {
            b.iter(|| {
                let it = MergeByTime::new(replicas.iter().map(|r| r.iter().copied()));
                black_box(it.fold(0.0, |acc, s| acc + s.1))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, dedup);
criterion_main!(benches);
