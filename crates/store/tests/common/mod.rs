//! Blocks for the store tests: three 2h blocks of 60 series (some series missing from some
//! blocks), written locally with our block writer, and the filesystem bucket they go to.

#![allow(dead_code)] // Each test binary uses some of these.

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

/// A filesystem bucket in `dir`.
pub fn filesystem_bucket(dir: &Path) -> bucket::Bucket {
    bucket::config::bucket_from_yaml(&format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    ))
    .unwrap()
}

/// [`write_blocks`] into `local`, uploaded to a filesystem bucket at `bucket_dir`.
pub async fn uploaded_blocks(
    local: &Path,
    bucket_dir: &Path,
    replica: &str,
) -> (Vec<String>, bucket::Bucket) {
    std::fs::create_dir_all(local).unwrap();
    let ids = write_blocks(local, replica);
    let bucket = filesystem_bucket(bucket_dir);
    for id in &ids {
        let meta = tsdb::meta::BlockMeta::read_from_dir(&local.join(id)).unwrap();
        bucket::block::upload_block(bucket.as_ref(), &local.join(id), &meta)
            .await
            .unwrap();
    }
    (ids, bucket)
}
