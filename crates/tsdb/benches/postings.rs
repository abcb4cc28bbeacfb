//! Postings set operations and matcher lookups over a real index.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tsdb::block::{Block, BlockWriter};
use tsdb::index::postings::{intersect, postings_for_matchers};
use tsdb::{Labels, MatchType, Matcher};

fn spread(n: u32, step: u32, offset: u32) -> Vec<u32> {
    (0..n).map(|i| i * step + offset).collect()
}

fn set_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("postings_intersect");
    let cases = [
        (
            "1M_and_100k",
            vec![spread(1_000_000, 1, 0), spread(100_000, 10, 3)],
        ),
        (
            "1M_and_1M",
            vec![spread(1_000_000, 2, 0), spread(1_000_000, 3, 0)],
        ),
        (
            "10k_and_1M",
            vec![spread(10_000, 97, 1), spread(1_000_000, 1, 0)],
        ),
        (
            "three_lists",
            vec![
                spread(1_000_000, 1, 0),
                spread(300_000, 3, 0),
                spread(100_000, 7, 0),
            ],
        ),
    ];
    for (name, lists) in cases {
        let total: usize = lists.iter().map(Vec::len).sum();
        g.throughput(Throughput::Elements(total as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(intersect(lists.clone()).len()))
        });
    }
    g.finish();
}

fn matchers(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut w = BlockWriter::new(dir.path(), 0, 7_200_000).expect("writer");
    let mut series: Vec<Labels> = (0..100_000)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", format!("metric_{}", i % 50)),
                ("instance", format!("host-{:05}", i % 2000)),
                ("job", format!("job-{}", i % 10)),
                ("pod", format!("pod-{i:06}")),
            ])
        })
        .collect();
    series.sort();
    for l in &series {
        w.add_series(l, [(1000, 1.0)]).expect("add series");
    }
    let meta = w.finish().expect("finish");
    let block = Block::open(&dir.path().join(&meta.ulid)).expect("open");
    let m = |k, n: &str, v: &str| Matcher::new(k, n, v).expect("matcher");
    let cases = [
        ("name_eq", vec![m(MatchType::Equal, "__name__", "metric_7")]),
        (
            "name_and_job",
            vec![
                m(MatchType::Equal, "__name__", "metric_7"),
                m(MatchType::Equal, "job", "job-7"),
            ],
        ),
        (
            "name_and_instance_regex",
            vec![
                m(MatchType::Equal, "__name__", "metric_7"),
                m(MatchType::RegexMatch, "instance", "host-0.*"),
            ],
        ),
        (
            "job_not_equal",
            vec![
                m(MatchType::Equal, "__name__", "metric_7"),
                m(MatchType::NotEqual, "job", "job-3"),
            ],
        ),
        (
            "pod_set",
            vec![m(
                MatchType::RegexMatch,
                "pod",
                "pod-000001|pod-050000|pod-099999",
            )],
        ),
    ];
    let mut g = c.benchmark_group("postings_for_matchers_100k_series");
    for (name, ms) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    postings_for_matchers(block.index(), &ms)
                        .expect("postings")
                        .len(),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, set_ops, matchers);
criterion_main!(benches);
