//! Blocks for the store tests: three 2h blocks of 60 series (some series missing from some
//! blocks), written locally with our block writer.

use std::path::Path;

use tsdb::block::BlockWriter;
use tsdb::Labels;

pub const H: i64 = 3_600_000;

pub fn write_blocks(dir: &Path, replica: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for b in 0..3i64 {
        let (min_t, max_t) = (b * 2 * H, (b + 1) * 2 * H);
        let mut w = BlockWriter::new(dir, min_t, max_t).unwrap();
        let mut series: Vec<Labels> = Vec::new();
        for job in ["api", "db", "web"] {
            for i in 0..20 {
                series.push(Labels::from_pairs([
                    (
                        "__name__",
                        if i % 2 == 0 {
                            "requests_total"
                        } else {
                            "memory_bytes"
                        }
                        .to_string(),
                    ),
                    ("job", job.to_string()),
                    ("instance", format!("host-{i:02}")),
                ]));
            }
        }
        series.sort();
        for (k, l) in series.iter().enumerate() {
            // Some series only exist in some blocks.
            if (k as i64 + b) % 7 == 0 {
                continue;
            }
            w.add_series(
                l,
                (min_t..max_t)
                    .step_by(15_000)
                    .map(|t| (t, (t / 1000 + k as i64) as f64)),
            )
            .unwrap();
        }
        let mut meta = w.finish().unwrap();
        meta.thanos_mut()
            .labels
            .insert("replica".into(), replica.into());
        meta.thanos_mut().source = "test".into();
        meta.write_to_dir(&dir.join(&meta.ulid)).unwrap();
        ids.push(meta.ulid);
    }
    ids
}
