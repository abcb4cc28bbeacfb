//! Helpers shared by the tsdb integration tests.
#![allow(dead_code)]

use std::path::Path;

use testkit::go_g;
use tsdb::block::Block;
use tsdb::Labels;

/// Runs promtool and returns stdout, failing the test with its stderr on error.
pub fn run_promtool(args: &[&str]) -> String {
    testkit::prometheus::promtool(args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Every float sample of every block directory under `dir`, merged per series and printed
/// the way `promtool tsdb dump` prints them.
pub fn dump_with_our_reader(dir: &Path) -> String {
    let mut samples: Vec<(Labels, i64, f64)> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if !p.join("meta.json").exists() {
            continue;
        }
        let b = Block::open(&p).unwrap();
        let mut set = b.all_series().unwrap();
        while let Some(s) = set.next().unwrap() {
            for (t, v) in set.samples(&s).collect_all().unwrap() {
                samples.push((s.labels.clone(), t, v));
            }
        }
    }
    samples.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut out = String::new();
    for (l, t, v) in samples {
        out.push_str(&format!("{l} {} {t}\n", go_g(v)));
    }
    out
}
