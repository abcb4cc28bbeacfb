//! Property tests: whatever we write reads back exactly, and selection by matchers and time
//! equals a brute-force filter over the input.

use proptest::prelude::*;
use tsdb::block::{Block, BlockWriter};
use tsdb::chunkenc::STALE_NAN_BITS;
use tsdb::tombstones::{Interval, Tombstones};
use tsdb::{Labels, MatchType, Matcher};

const MIN_T: i64 = -3_600_000;
const MAX_T: i64 = 30 * 3_600_000;

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (-1e6f64..1e6).prop_map(|v| v),
        2 => (0u64..1000).prop_map(|v| v as f64),
        1 => Just(f64::NAN),
        1 => Just(f64::from_bits(STALE_NAN_BITS)),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => any::<f64>(),
    ]
}

/// Strictly increasing timestamps inside the block: regular, jittered and with large gaps.
fn samples() -> impl Strategy<Value = Vec<(i64, f64)>> {
    (
        MIN_T..MIN_T + 3_600_000,
        prop::collection::vec((1i64..40_000, 0u8..20, value()), 1..600),
    )
        .prop_map(|(start, steps)| {
            let mut t = start;
            let mut out = Vec::with_capacity(steps.len());
            for (step, kind, v) in steps {
                out.push((t, v));
                t += match kind {
                    0 => step * 1000,
                    1..=10 => 15_000,
                    _ => step,
                };
                if t >= MAX_T {
                    break;
                }
            }
            out
        })
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]{1,3}".prop_map(|s| s),
        "[a-zA-Z0-9_]{1,12}".prop_map(|s| s),
        Just("ünïcödé ☃".to_string()),
        Just("with\"quote\\and\nnewline".to_string()),
    ]
}

fn series_set() -> impl Strategy<Value = Vec<(Labels, Vec<(i64, f64)>)>> {
    prop::collection::vec(
        (
            prop::collection::btree_map("[a-e]{1,2}|__name__", label_value(), 1..4),
            samples(),
        ),
        0..25,
    )
    .prop_map(|v| {
        let mut out: Vec<(Labels, Vec<(i64, f64)>)> = v
            .into_iter()
            .map(|(m, s)| (Labels::from_pairs(m), s))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    })
}

fn write(dir: &std::path::Path, series: &[(Labels, Vec<(i64, f64)>)]) -> Block {
    let mut w = BlockWriter::new(dir, MIN_T, MAX_T).unwrap();
    for (l, s) in series {
        w.add_series(l, s.iter().copied()).unwrap();
    }
    let meta = w.finish().unwrap();
    Block::open(&dir.join(meta.ulid)).unwrap()
}

fn bits(v: &[(i64, f64)]) -> Vec<(i64, u64)> {
    v.iter().map(|(t, x)| (*t, x.to_bits())).collect()
}

fn matcher() -> impl Strategy<Value = Matcher> {
    (
        "[a-e]|__name__",
        prop_oneof![
            Just(MatchType::Equal),
            Just(MatchType::NotEqual),
            Just(MatchType::RegexMatch),
            Just(MatchType::RegexNoMatch)
        ],
        prop_oneof![
            Just(String::new()),
            "[a-c]{1,2}",
            Just("a.*".to_string()),
            Just(".+".to_string()),
            Just("a|bb|".to_string())
        ],
    )
        .prop_map(|(n, k, v)| Matcher::new(k, n, v).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn write_then_read_is_identity(series in series_set()) {
        let dir = tempfile::tempdir().unwrap();
        let block = write(dir.path(), &series);
        let mut set = block.all_series().unwrap();
        let mut got = Vec::new();
        while let Some(s) = set.next().unwrap() {
            for c in &s.chunks {
                prop_assert!(c.min_time >= MIN_T && c.max_time < MAX_T);
            }
            let samples = set.samples(&s).collect_all().unwrap();
            got.push((s.labels.clone(), samples));
        }
        prop_assert_eq!(got.len(), series.len());
        for ((gl, gs), (wl, ws)) in got.iter().zip(&series) {
            prop_assert_eq!(gl, wl);
            prop_assert_eq!(bits(gs), bits(ws));
        }
        let m = block.meta();
        prop_assert_eq!(m.stats.num_series as usize, series.len());
        prop_assert_eq!(m.stats.num_samples as usize, series.iter().map(|s| s.1.len()).sum::<usize>());
        prop_assert!(tsdb::verify::verify_block(block.dir()).is_empty());
    }

    #[test]
    fn select_matches_brute_force(series in series_set(), ms in prop::collection::vec(matcher(), 1..3),
                                  from in MIN_T..MAX_T, len in 0i64..MAX_T) {
        let dir = tempfile::tempdir().unwrap();
        let block = write(dir.path(), &series);
        let to = from.saturating_add(len);
        let mut set = block.select(&ms, from, to).unwrap();
        let mut got = Vec::new();
        while let Some(s) = set.next().unwrap() {
            let samples = set.samples(&s).collect_all().unwrap();
            if !samples.is_empty() {
                got.push((s.labels.clone(), bits(&samples)));
            }
        }
        let want: Vec<(Labels, Vec<(i64, u64)>)> = series
            .iter()
            .filter(|(l, _)| ms.iter().all(|m| m.matches(l.value_of(&m.name))))
            .map(|(l, s)| (l.clone(), bits(&s.iter().copied().filter(|(t, _)| *t >= from && *t <= to).collect::<Vec<_>>())))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn tombstones_hide_deleted_samples(series in series_set(), from in MIN_T..MAX_T, len in 0i64..3_600_000) {
        let dir = tempfile::tempdir().unwrap();
        let block = write(dir.path(), &series);
        let all = block.index().all_postings().unwrap();
        let mut t = Tombstones::default();
        let iv = Interval { min_time: from, max_time: from + len };
        for r in all.iter().step_by(2) {
            t.add(*r, iv);
        }
        t.write_to_dir(block.dir()).unwrap();
        let block = Block::open(block.dir()).unwrap();
        let mut set = block.all_series().unwrap();
        let mut i = 0;
        let mut seen = 0;
        while let Some(s) = set.next().unwrap() {
            while series[i].0 != s.labels {
                i += 1;
            }
            let deleted = all.iter().position(|r| *r == s.series_ref).unwrap() % 2 == 0;
            let want: Vec<(i64, f64)> = series[i].1.iter().copied().filter(|(t, _)| !(deleted && iv.contains(*t))).collect();
            prop_assert_eq!(bits(&set.samples(&s).collect_all().unwrap()), bits(&want));
            seen += 1;
        }
        prop_assert!(seen <= series.len());
    }
}

#[test]
fn empty_block_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let block = write(dir.path(), &[]);
    assert!(block.all_series().unwrap().next().unwrap().is_none());
    assert!(block.index().label_names().is_empty());
    assert!(tsdb::verify::verify_block(block.dir()).is_empty());
}
