//! Compaction keeps exactly the samples of its sources: random blocks (overlapping or not,
//! series present in some blocks only, deletions) merged, then read back and compared with
//! the union computed by brute force.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use compact::merge::{merge_blocks, Output, VerticalMerge};
use proptest::prelude::*;
use tsdb::block::{Block, BlockWriter};
use tsdb::meta::Compaction;
use tsdb::Labels;

type Truth = BTreeMap<Vec<(String, String)>, BTreeMap<i64, f64>>;

/// One generated block: its time range and series (index into the series pool, samples).
#[derive(Debug, Clone)]
struct GenBlock {
    min_t: i64,
    len: i64,
    series: Vec<(usize, Vec<(i64, f64)>)>,
}

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__".to_string(), format!("m{}", i % 3)),
        ("job".to_string(), format!("j{}", i / 3)),
    ])
}

fn gen_block() -> impl Strategy<Value = GenBlock> {
    (0i64..6, 1i64..4).prop_flat_map(|(start, len)| {
        let (min_t, max_t) = (start * 1000, (start + len) * 1000);
        prop::collection::vec(
            (
                0usize..8,
                prop::collection::btree_map(min_t..max_t, -100i32..100, 1..40),
            ),
            1..6,
        )
        .prop_map(move |series| GenBlock {
            min_t,
            len: max_t - min_t,
            series: series
                .into_iter()
                .map(|(i, s)| (i, s.into_iter().map(|(t, v)| (t, f64::from(v))).collect()))
                .collect(),
        })
    })
}

fn write(dir: &std::path::Path, b: &GenBlock) -> String {
    let mut w = BlockWriter::new(dir, b.min_t, b.min_t + b.len).unwrap();
    let mut by_labels: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
    for (i, samples) in &b.series {
        let e = by_labels.entry(series_labels(*i)).or_default();
        for &(t, v) in samples {
            e.entry(t).or_insert(v);
        }
    }
    for (l, s) in by_labels {
        w.add_series(&l, s).unwrap();
    }
    w.finish().unwrap().ulid
}

fn read_all(dir: &std::path::Path, into: &mut Truth, first_wins: bool) {
    let b = Block::open(dir).unwrap();
    let mut set = b.all_series().unwrap();
    while let Some(s) = set.next().unwrap() {
        let key: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let samples = set.samples(&s).collect_all().unwrap();
        let e = into.entry(key).or_default();
        for (t, v) in samples {
            if first_wins {
                e.entry(t).or_insert(v);
            } else {
                e.insert(t, v);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn compaction_equals_the_union_of_its_sources(blocks in prop::collection::vec(gen_block(), 1..5)) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let ids: Vec<String> = blocks.iter().map(|b| write(&src, b)).collect();
        let mut truth = Truth::new();
        // Plan order is min-time order.
        let mut order: Vec<usize> = (0..blocks.len()).collect();
        order.sort_by_key(|&i| blocks[i].min_t);
        let opened: Vec<Block> = order
            .iter()
            .map(|&i| Block::open(&src.join(&ids[i])).unwrap())
            .collect();
        for &i in &order {
            read_all(&src.join(&ids[i]), &mut truth, true);
        }
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let meta = merge_blocks(
            &opened,
            VerticalMerge::OneToOne,
            Output {
                parent: &out,
                ulid: ulid::Ulid::new(),
                compaction: Compaction { level: 2, ..Default::default() },
                thanos: None,
            },
            &AtomicBool::new(false),
        )
        .unwrap()
        .expect("a block");
        let mut got = Truth::new();
        read_all(&out.join(&meta.ulid), &mut got, true);
        // Timestamps are exactly the union; where sources disagree at one timestamp any of
        // their values is fine, so compare values only where all sources agree.
        prop_assert_eq!(got.len(), truth.len());
        for (k, want) in &truth {
            let have = &got[k];
            prop_assert_eq!(have.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        }
        let issues = tsdb::verify::verify_block(&out.join(&meta.ulid));
        prop_assert!(issues.is_empty(), "{:?}", issues);
        let samples: usize = truth.values().map(|s| s.len()).sum();
        prop_assert_eq!(meta.stats.num_samples as usize, samples);
    }

    #[test]
    fn penalty_dedup_of_identical_replicas_keeps_one_copy(block in gen_block()) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let a = write(&src, &block);
        let b = write(&src, &block);
        let opened = vec![Block::open(&src.join(&a)).unwrap(), Block::open(&src.join(&b)).unwrap()];
        let mut truth = Truth::new();
        read_all(&src.join(&a), &mut truth, true);
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let meta = merge_blocks(
            &opened,
            VerticalMerge::Penalty,
            Output {
                parent: &out,
                ulid: ulid::Ulid::new(),
                compaction: Compaction { level: 2, ..Default::default() },
                thanos: None,
            },
            &AtomicBool::new(false),
        )
        .unwrap()
        .expect("a block");
        let mut got = Truth::new();
        read_all(&out.join(&meta.ulid), &mut got, true);
        prop_assert_eq!(got, truth);
    }
}

#[test]
fn deletions_are_applied_and_a_fully_deleted_block_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let block = GenBlock {
        min_t: 0,
        len: 1000,
        series: vec![(0, (0..100).map(|t| (t * 10, t as f64)).collect())],
    };
    let id = write(&src, &block);
    // Delete [200, 499] of the only series (reference 0... whatever its ref is).
    let dir = src.join(&id);
    let b = Block::open(&dir).unwrap();
    let mut set = b.all_series().unwrap();
    let sref = set.next().unwrap().unwrap().series_ref;
    drop(set);
    drop(b);
    let mut t = tsdb::tombstones::Tombstones::default();
    t.add(
        sref,
        tsdb::tombstones::Interval {
            min_time: 200,
            max_time: 499,
        },
    );
    t.write_to_dir(&dir).unwrap();
    let opened = vec![Block::open(&dir).unwrap()];
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let meta = merge_blocks(
        &opened,
        VerticalMerge::OneToOne,
        Output {
            parent: &out,
            ulid: ulid::Ulid::new(),
            compaction: Compaction::default(),
            thanos: None,
        },
        &AtomicBool::new(false),
    )
    .unwrap()
    .unwrap();
    let mut got = Truth::new();
    read_all(&out.join(&meta.ulid), &mut got, true);
    let samples = got.values().next().unwrap();
    assert_eq!(samples.len(), 70);
    assert!(samples.keys().all(|&t| !(200..=499).contains(&t)));
}

/// A native-histogram chunk of samples at `ts` (count growing with t).
fn histogram_chunk(ts: &[i64]) -> Vec<u8> {
    use tsdb::chunkenc::histogram::{CounterResetHint, Histogram, HistogramAppender, Span};
    let mut app = HistogramAppender::new();
    for &t in ts {
        let n = (t / 1000) as f64;
        let h = Histogram {
            t,
            counter_reset_hint: CounterResetHint::Unknown,
            schema: 0,
            zero_threshold: 1e-128,
            zero_count: 0.0,
            count: 2.0 * n,
            sum: 3.0 * n,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            negative_spans: vec![],
            positive_buckets: vec![n, n],
            negative_buckets: vec![],
            custom_values: vec![],
        };
        app.append(&h).unwrap();
    }
    app.bytes().to_vec()
}

#[test]
fn overlapping_native_histogram_chunks_merge_into_their_union() {
    use tsdb::chunkenc::{histogram::HistogramIterator, Encoding};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let labels = Labels::from_pairs([("__name__", "h")]);
    let mut ids = Vec::new();
    for ts in [
        (0..20).map(|i| i * 10_000).collect::<Vec<i64>>(),
        (10..30).map(|i| i * 10_000 + 5_000).collect(),
    ] {
        let mut w = BlockWriter::new(&src, 0, 400_000).unwrap();
        let c = histogram_chunk(&ts);
        w.add_encoded_series(
            &labels,
            &[(ts[0], *ts.last().unwrap(), Encoding::HISTOGRAM, &c)],
        )
        .unwrap();
        ids.push(w.finish().unwrap().ulid);
    }
    let opened: Vec<Block> = ids
        .iter()
        .map(|id| Block::open(&src.join(id)).unwrap())
        .collect();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let meta = merge_blocks(
        &opened,
        VerticalMerge::OneToOne,
        Output {
            parent: &out,
            ulid: ulid::Ulid::new(),
            compaction: Compaction::default(),
            thanos: None,
        },
        &AtomicBool::new(false),
    )
    .unwrap()
    .unwrap();
    let b = Block::open(&out.join(&meta.ulid)).unwrap();
    let mut set = b.all_series().unwrap();
    let s = set.next().unwrap().unwrap();
    let mut ts = Vec::new();
    for c in &s.chunks {
        let (enc, data) = b.chunks().chunk(c.chunk_ref).unwrap();
        assert_eq!(enc, Encoding::HISTOGRAM);
        let mut it = HistogramIterator::new(enc, data).unwrap();
        while it.next() {
            assert_eq!(it.at().count, 2.0 * (it.at().t / 1000) as f64);
            ts.push(it.at().t);
        }
    }
    assert_eq!(ts.len(), 40);
    assert!(ts.windows(2).all(|w| w[0] < w[1]));
    assert!(tsdb::verify::verify_block(&out.join(&meta.ulid)).is_empty());
}
