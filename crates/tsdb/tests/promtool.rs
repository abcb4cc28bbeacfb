//! Blocks must be exchangeable with real Prometheus 2.42: blocks promtool writes read back
//! sample for sample as `promtool tsdb dump` prints them, and blocks we write pass
//! `promtool tsdb analyze` and dump exactly our input.

mod common;

use std::fmt::Write as _;

use common::{dump_with_our_reader, run_promtool};
use testkit::go_g;
use tsdb::block::{Block, BlockWriter};
use tsdb::chunkenc::STALE_NAN_BITS;
use tsdb::Labels;

/// Deterministic pseudo-random numbers for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn promtool_blocks_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let om = dir.path().join("data.om");
    let mut text = String::new();
    let mut rng = Rng(0x5eed);
    // Six hours of data: several blocks; counters with resets, gauges, sparse series.
    let start = 1_700_000_000i64;
    writeln!(
        text,
        "# HELP http_requests Requests.\n# TYPE http_requests counter"
    )
    .unwrap();
    let mut series_lines: Vec<(String, Vec<(i64, String)>)> = Vec::new();
    for job in ["api", "web"] {
        for inst in 0..4 {
            let mut c = 0u64;
            let mut pts = Vec::new();
            let mut t = start * 1000;
            while t < (start + 6 * 3600) * 1000 {
                if rng.below(500) == 0 {
                    c = 0;
                } else {
                    c += rng.below(100);
                }
                pts.push((t, c.to_string()));
                t += 15_000 + rng.below(3) as i64 * 1000 - 1000;
            }
            series_lines.push((
                format!("http_requests_total{{job=\"{job}\",instance=\"i{inst}\"}}"),
                pts,
            ));
        }
    }
    for (name, pts) in &series_lines {
        for (t, v) in pts {
            writeln!(text, "{name} {v} {}.{:03}", t / 1000, t % 1000).unwrap();
        }
    }
    writeln!(text, "# HELP temp Temperature.\n# TYPE temp gauge").unwrap();
    for sensor in 0..3 {
        let mut t = start * 1000 + sensor * 7000;
        while t < (start + 6 * 3600) * 1000 {
            let v = match rng.below(50) {
                0 => "NaN".to_string(),
                1 => "+Inf".to_string(),
                2 => "-Inf".to_string(),
                _ => format!("{}", (rng.below(2_000_000) as f64 - 1_000_000.0) / 997.0),
            };
            writeln!(
                text,
                "temp{{sensor=\"s{sensor}\"}} {v} {}.{:03}",
                t / 1000,
                t % 1000
            )
            .unwrap();
            t += if rng.below(20) == 0 { 900_000 } else { 60_000 };
        }
    }
    writeln!(text, "# EOF").unwrap();
    std::fs::write(&om, text).unwrap();
    let out = dir.path().join("blocks");
    run_promtool(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        om.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);

    let blocks = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("meta.json").exists())
        .count();
    assert!(blocks >= 3, "expected several blocks, got {blocks}");
    let theirs = run_promtool(&["tsdb", "dump", out.to_str().unwrap()]);
    let ours = dump_with_our_reader(&out);
    assert!(theirs.lines().count() > 10_000);
    assert_eq!(ours.lines().count(), theirs.lines().count());
    for (i, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
        assert_eq!(a, b, "line {i} differs");
    }

    // Rewriting each block with our writer cuts the same chunks, byte for byte.
    for entry in std::fs::read_dir(&out).unwrap() {
        let p = entry.unwrap().path();
        if !p.join("meta.json").exists() {
            continue;
        }
        let theirs = Block::open(&p).unwrap();
        let copy_dir = dir.path().join("copy");
        std::fs::create_dir_all(&copy_dir).unwrap();
        let m = theirs.meta();
        let mut w = BlockWriter::new(&copy_dir, m.min_time, m.max_time).unwrap();
        // promtool's backfill runs its head with a chunk range of twice the block duration.
        w.set_chunk_range(2 * tsdb::block::DEFAULT_BLOCK_DURATION);
        let mut set = theirs.all_series().unwrap();
        let mut all = Vec::new();
        while let Some(s) = set.next().unwrap() {
            let pts = set.samples(&s).collect_all().unwrap();
            w.add_series(&s.labels, pts).unwrap();
            all.push(s);
        }
        let meta = w.finish().unwrap();
        assert_eq!(meta.stats.num_chunks, m.stats.num_chunks);
        assert_eq!(meta.stats.num_samples, m.stats.num_samples);
        let ours = Block::open(&copy_dir.join(&meta.ulid)).unwrap();
        let mut set = ours.all_series().unwrap();
        for s in &all {
            let o = set.next().unwrap().unwrap();
            assert_eq!(o.labels, s.labels);
            assert_eq!(o.chunks.len(), s.chunks.len(), "{}", s.labels);
            for (a, b) in o.chunks.iter().zip(&s.chunks) {
                assert_eq!(
                    (a.min_time, a.max_time),
                    (b.min_time, b.max_time),
                    "{}",
                    s.labels
                );
                let ca = ours.chunks().chunk(a.chunk_ref).unwrap();
                let cb = theirs.chunks().chunk(b.chunk_ref).unwrap();
                assert_eq!(ca, cb, "{}", s.labels);
            }
        }
        std::fs::remove_dir_all(&copy_dir).unwrap();
    }
}

#[test]
fn our_blocks_pass_promtool_analyze_and_dump() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(42);
    let min_t = 1_600_000_000_000i64;
    let max_t = min_t + 2 * 3600 * 1000;
    let mut series: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
    for i in 0..300 {
        let labels = Labels::from_pairs([
            ("__name__", format!("metric_{}", i % 7)),
            ("instance", format!("host-{}", i % 13)),
            ("idx", format!("{i:04}")),
        ]);
        let n = match i % 10 {
            0 => 1,
            1 => 0,
            _ => 1 + rng.below(700) as usize,
        };
        let mut t = min_t + rng.below(60_000) as i64;
        let mut pts = Vec::new();
        for _ in 0..n {
            if t >= max_t {
                break;
            }
            let v = match rng.below(40) {
                0 => f64::NAN,
                1 => f64::from_bits(STALE_NAN_BITS),
                2 => f64::INFINITY,
                3 => f64::NEG_INFINITY,
                _ => (rng.below(1 << 20) as f64) / 8.0 - 1000.0,
            };
            pts.push((t, v));
            t += 1 + rng.below(30_000) as i64;
        }
        series.push((labels, pts));
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let mut w = BlockWriter::new(dir.path(), min_t, max_t).unwrap();
    for (l, pts) in &series {
        w.add_series(l, pts.iter().copied()).unwrap();
    }
    let meta = w.finish().unwrap();
    let block_dir = dir.path().join(&meta.ulid);

    let analyze = run_promtool(&["tsdb", "analyze", dir.path().to_str().unwrap(), &meta.ulid]);
    assert!(
        analyze.contains(&format!("Block ID: {}", meta.ulid)),
        "{analyze}"
    );
    assert!(analyze.contains("Series: 270"), "{analyze}");

    let mut want = String::new();
    for (l, pts) in &series {
        for (t, v) in pts {
            writeln!(want, "{l} {} {t}", go_g(*v)).unwrap();
        }
    }
    let theirs = run_promtool(&["tsdb", "dump", dir.path().to_str().unwrap()]);
    assert_eq!(theirs, want);

    // And our own reader agrees, stale markers bit for bit.
    let b = Block::open(&block_dir).unwrap();
    let mut set = b.all_series().unwrap();
    let mut i = 0;
    while let Some(s) = set.next().unwrap() {
        while series[i].1.is_empty() {
            i += 1;
        }
        assert_eq!(s.labels, series[i].0);
        let got = set.samples(&s).collect_all().unwrap();
        let bits: Vec<(i64, u64)> = got.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        let exp: Vec<(i64, u64)> = series[i].1.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(bits, exp);
        assert!(s.chunks.iter().all(|c| c.max_time >= c.min_time));
        i += 1;
    }
}
