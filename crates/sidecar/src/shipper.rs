//! The shipper: uploads the blocks Prometheus cuts into the bucket, each once.
//!
//! Blocks are taken oldest first; only compaction level 1 unless compacted blocks are
//! allowed; empty blocks are skipped. A block's files are hard-linked into a staging
//! directory first, so Prometheus deleting the block mid-upload cannot tear it. The
//! bucket's meta.json is written last; shipped ULIDs are recorded in `thanos.shipper.json`
//! (`{"version":1,"uploaded":[...]}`), written atomically after every upload. After a crash,
//! a block whose meta.json already exists in the bucket is recorded, not uploaded again; one
//! without it is uploaded again whole (a partial upload is invisible to readers).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tsdb::meta::BlockMeta;
use tsdb::Labels;

pub const SHIPPER_FILENAME: &str = "thanos.shipper.json";

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub uploaded: Vec<String>,
}

pub struct Shipper {
    pub bucket: bucket::Bucket,
    pub tsdb_dir: PathBuf,
    pub upload_compacted: bool,
    pub source: String,
    /// Go on past a block that fails to upload (Thanos's
    /// `--shipper.allow-out-of-order-uploads`); by default a sync stops there, so blocks
    /// reach the bucket in time order and the compactor never sees a gap filled later.
    pub allow_out_of_order: bool,
    /// Skip blocks whose meta.json cannot be read (`--shipper.skip-corrupted-blocks`); by
    /// default such a block stops the sync, as in Thanos.
    pub skip_corrupted: bool,
}

#[derive(Debug, Default, PartialEq)]
pub struct SyncResult {
    pub uploaded: Vec<String>,
    pub failed: Vec<(String, String)>,
}

fn read_state(path: &Path) -> State {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), err = %e, "unreadable shipper state; starting empty");
            State::default()
        }),
        Err(_) => State::default(),
    }
}

/// ULIDs of the blocks of `tsdb_dir` shipped so far (from the shipper's state file).
pub fn shipped(tsdb_dir: &Path) -> std::collections::HashSet<String> {
    read_state(&tsdb_dir.join(SHIPPER_FILENAME))
        .uploaded
        .into_iter()
        .collect()
}

fn write_state(path: &Path, st: &State) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(st).map_err(std::io::Error::other)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Hard-links (or copies, across file systems) a block's files into `dst`.
fn stage(src: &Path, dst: &Path) -> std::io::Result<()> {
    if dst.exists() {
        std::fs::remove_dir_all(dst)?;
    }
    std::fs::create_dir_all(dst.join("chunks"))?;
    let mut files = vec![PathBuf::from("index"), PathBuf::from("meta.json")];
    for e in std::fs::read_dir(src.join("chunks"))? {
        files.push(Path::new("chunks").join(e?.file_name()));
    }
    if src.join("tombstones").exists() {
        files.push(PathBuf::from("tombstones"));
    }
    for f in files {
        if std::fs::hard_link(src.join(&f), dst.join(&f)).is_err() {
            std::fs::copy(src.join(&f), dst.join(&f))?;
        }
    }
    Ok(())
}

impl Shipper {
    /// Local blocks (directories with a meta.json named by a ULID), oldest first.
    fn local_blocks(&self) -> std::io::Result<Vec<(PathBuf, BlockMeta)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.tsdb_dir)? {
            let p = e?.path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.parse::<ulid::Ulid>().is_err() || !p.join("meta.json").is_file() {
                continue;
            }
            match BlockMeta::read_from_dir(&p) {
                Ok(m) => out.push((p, m)),
                Err(e) if self.skip_corrupted => {
                    tracing::warn!(block = name, err = %e, "skipping block with unreadable meta.json")
                }
                Err(e) => {
                    return Err(std::io::Error::other(format!(
                        "block {name} has an unreadable meta.json (--shipper.skip-corrupted-blocks skips it): {e}"
                    )))
                }
            }
        }
        out.sort_by(|a, b| {
            a.1.min_time
                .cmp(&b.1.min_time)
                .then_with(|| a.1.ulid.cmp(&b.1.ulid))
        });
        Ok(out)
    }

    /// Uploads every block not shipped yet, with `labels` as its external labels.
    pub async fn sync(&self, labels: &Labels) -> Result<SyncResult, String> {
        let state_path = self.tsdb_dir.join(SHIPPER_FILENAME);
        let mut state = read_state(&state_path);
        let blocks = self
            .local_blocks()
            .map_err(|e| format!("list {}: {e}", self.tsdb_dir.display()))?;
        let mut shipped: Vec<String> = Vec::new();
        let mut result = SyncResult::default();
        for (dir, meta) in blocks {
            if !result.failed.is_empty() && !self.allow_out_of_order {
                tracing::warn!(
                    block = %result.failed[0].0,
                    "stopping this sync at the block that failed, to upload in order; retrying next sync"
                );
                break;
            }
            let id = meta.ulid.clone();
            if state.uploaded.contains(&id) {
                shipped.push(id);
                continue;
            }
            if meta.stats.num_samples == 0 {
                tracing::debug!(block = %id, "ignoring empty block");
                continue;
            }
            if meta.compaction.level > 1 && !self.upload_compacted {
                continue;
            }
            let ulid: ulid::Ulid = id.parse().map_err(|_| format!("invalid block ULID {id}"))?;
            match bucket::block::fetch_meta(self.bucket.as_ref(), ulid).await {
                Ok(Some(_)) => {
                    tracing::info!(block = %id, "already in the bucket");
                    shipped.push(id);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    result.failed.push((id, e.to_string()));
                    continue;
                }
            }
            let staging = self.tsdb_dir.join("thanos").join("upload").join(&id);
            if let Err(e) = stage(&dir, &staging) {
                let msg = if dir.exists() {
                    e.to_string()
                } else {
                    "deleted by Prometheus before upload".to_string()
                };
                tracing::warn!(block = %id, err = %msg, "cannot stage block for upload");
                result.failed.push((id, msg));
                continue;
            }
            let mut m = meta.clone();
            let t = m.thanos_mut();
            t.labels = labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            t.source = self.source.clone();
            t.downsample.resolution = 0;
            let started = std::time::Instant::now();
            let r = bucket::block::upload_block(self.bucket.as_ref(), &staging, &m).await;
            let _ = std::fs::remove_dir_all(&staging);
            match r {
                Ok(_) => {
                    tracing::info!(block = %id, duration = ?started.elapsed(), "uploaded block");
                    shipped.push(id.clone());
                    result.uploaded.push(id);
                    state.version = 1;
                    state.uploaded = shipped.clone();
                    write_state(&state_path, &state)
                        .map_err(|e| format!("write {}: {e}", state_path.display()))?;
                }
                Err(e) => {
                    tracing::warn!(block = %id, err = %e, "shipping failed");
                    result.failed.push((id, e.to_string()));
                }
            }
        }
        state.version = 1;
        state.uploaded = shipped;
        write_state(&state_path, &state)
            .map_err(|e| format!("write {}: {e}", state_path.display()))?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(dir: &Path, level: u32, samples: usize) -> String {
        let mut w = tsdb::block::BlockWriter::new(dir, 0, 7_200_000).unwrap();
        let l = Labels::from_pairs([("__name__", "up")]);
        w.add_series(&l, (0..samples as i64).map(|t| (t * 1000, 1.0)))
            .unwrap();
        let mut m = w.finish().unwrap();
        m.compaction.level = level;
        m.write_to_dir(&dir.join(&m.ulid)).unwrap();
        m.ulid
    }

    #[tokio::test]
    async fn ships_each_block_once() {
        let dir = tempfile::tempdir().unwrap();
        let b1 = block(dir.path(), 1, 10);
        let compacted = block(dir.path(), 2, 10);
        let bucket: bucket::Bucket = std::sync::Arc::new(object_store::memory::InMemory::new());
        let s = Shipper {
            bucket: bucket.clone(),
            tsdb_dir: dir.path().to_path_buf(),
            upload_compacted: false,
            source: "sidecar".into(),
            allow_out_of_order: false,
            skip_corrupted: false,
        };
        let labels = Labels::from_pairs([("replica", "a")]);
        let r = s.sync(&labels).await.unwrap();
        assert_eq!(r.uploaded, vec![b1.clone()]);
        let again = s.sync(&labels).await.unwrap();
        assert!(again.uploaded.is_empty());
        let st = read_state(&dir.path().join(SHIPPER_FILENAME));
        assert_eq!(
            st,
            State {
                version: 1,
                uploaded: vec![b1.clone()]
            }
        );
        let m = bucket::block::fetch_meta(bucket.as_ref(), b1.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.thanos.as_ref().unwrap().source, "sidecar");
        assert_eq!(
            m.external_labels().get("replica").map(String::as_str),
            Some("a")
        );
        assert!(!bucket::block::list_blocks(bucket.as_ref())
            .await
            .unwrap()
            .iter()
            .any(|u| u.to_string() == compacted));

        // Lost state file: the bucket is checked, nothing is uploaded twice.
        std::fs::remove_file(dir.path().join(SHIPPER_FILENAME)).unwrap();
        let r = s.sync(&labels).await.unwrap();
        assert!(r.uploaded.is_empty());
        assert_eq!(
            read_state(&dir.path().join(SHIPPER_FILENAME)).uploaded,
            vec![b1]
        );
    }

    #[tokio::test]
    async fn a_failed_upload_stops_the_sync_unless_out_of_order_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let older = block(dir.path(), 1, 10);
        std::thread::sleep(std::time::Duration::from_millis(3));
        let newer = block(dir.path(), 1, 10);
        std::fs::remove_file(dir.path().join(&older).join("index")).unwrap();
        let bucket: bucket::Bucket = std::sync::Arc::new(object_store::memory::InMemory::new());
        let mut s = Shipper {
            bucket: bucket.clone(),
            tsdb_dir: dir.path().to_path_buf(),
            upload_compacted: false,
            source: "sidecar".into(),
            allow_out_of_order: false,
            skip_corrupted: false,
        };
        let labels = Labels::from_pairs([("replica", "a")]);
        let r = s.sync(&labels).await.unwrap();
        assert!(r.uploaded.is_empty(), "{r:?}");
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].0, older);
        s.allow_out_of_order = true;
        let r = s.sync(&labels).await.unwrap();
        assert_eq!(r.uploaded, vec![newer]);

        // An unreadable meta.json stops the sync unless corrupted blocks are skipped.
        let broken = dir.path().join("01ARZ3NDEKTSV4RRFFQ69G5FAV");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("meta.json"), "{not json").unwrap();
        let e = s.sync(&labels).await.unwrap_err();
        assert!(e.contains("01ARZ3NDEKTSV4RRFFQ69G5FAV"), "{e}");
        s.skip_corrupted = true;
        assert!(s.sync(&labels).await.is_ok());
    }
}
