//! A TSDB on local disk (a head with its WAL, and the blocks cut from it) served over the
//! StoreAPI with external labels: the ruler's storage, and later receive's.
//!
//! A series is sent once, its chunks from every block and the head in time order; external
//! labels override series labels, as Thanos's TSDB store does. Matchers on external labels
//! are decided here and not passed down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use tonic::Status;
use tsdb::block::{Block, BlockWriter};
use tsdb::head::{Head, ReplayStats};
use tsdb::meta::BlockMeta;
use tsdb::{Labels, Matcher};

use crate::convert::{encoding_to_pb, labels_to_pb, matchers_from_pb};
use crate::pb;
use crate::store::{series_frame, SeriesStore, SeriesStream};

pub struct LocalTsdb {
    dir: PathBuf,
    head: Head,
    blocks: RwLock<Vec<Arc<Block>>>,
    external: Labels,
    component: &'static str,
    /// Whether the Rules API is served beside the StoreAPI (the ruler), said in Info.
    rules_api: bool,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Blocks of `dir` (directories named by a ULID with a meta.json), oldest first.
fn open_blocks(dir: &Path) -> tsdb::Result<Vec<Arc<Block>>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| tsdb::Error::io("list", dir, e))?;
    for e in rd.flatten() {
        let p = e.path();
        let is_block = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.parse::<ulid::Ulid>().is_ok());
        if is_block && p.join("meta.json").is_file() {
            out.push(Arc::new(Block::open(&p)?));
        }
    }
    out.sort_by_key(|b| b.meta().min_time);
    Ok(out)
}

impl LocalTsdb {
    /// Opens the blocks of `dir` and replays the head's WAL (`dir/wal`).
    pub fn open(
        dir: &Path,
        external: Labels,
        component: &'static str,
    ) -> tsdb::Result<(LocalTsdb, ReplayStats)> {
        std::fs::create_dir_all(dir).map_err(|e| tsdb::Error::io("create", dir, e))?;
        let blocks = open_blocks(dir)?;
        let min_valid = blocks
            .iter()
            .map(|b| b.meta().max_time)
            .max()
            .unwrap_or(i64::MIN);
        let (head, stats) = Head::open(dir, min_valid)?;
        Ok((
            LocalTsdb {
                dir: dir.to_path_buf(),
                head,
                blocks: RwLock::new(blocks),
                external,
                component,
                rules_api: false,
            },
            stats,
        ))
    }

    /// Says in Info that the Rules API is served too, so queriers ask for rules here.
    pub fn with_rules_api(mut self) -> Self {
        self.rules_api = true;
        self
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn external_labels(&self) -> &Labels {
        &self.external
    }

    pub fn block_metas(&self) -> Vec<BlockMeta> {
        self.blocks().iter().map(|b| b.meta().clone()).collect()
    }

    fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().map(|b| b.clone()).unwrap_or_default()
    }

    fn reload(&self) -> tsdb::Result<()> {
        let fresh = open_blocks(&self.dir)?;
        if let Ok(mut b) = self.blocks.write() {
            *b = fresh;
        }
        Ok(())
    }

    /// Cuts every block of `block_range` the head holds enough data for; `prepare` sets up
    /// each block's meta (Thanos labels, source). Returns the blocks written.
    pub fn compact(
        &self,
        block_range: i64,
        prepare: impl Fn(&mut BlockWriter),
    ) -> tsdb::Result<Vec<BlockMeta>> {
        let mut out = Vec::new();
        while let Some((mint, maxt)) = self.head.compactable(block_range)? {
            if let Some(meta) = self.head.cut_block(&self.dir, mint, maxt, &prepare)? {
                out.push(meta);
            }
            self.reload()?;
        }
        Ok(out)
    }

    /// Deletes blocks that ended more than `retention` before the newest data, except those
    /// `keep` holds on to (not shipped yet). Returns the deleted blocks' ULIDs.
    pub fn apply_retention(
        &self,
        retention: i64,
        keep: impl Fn(&BlockMeta) -> bool,
    ) -> tsdb::Result<Vec<String>> {
        let blocks = self.blocks();
        let newest = self
            .head
            .time_range()?
            .map(|r| r.1)
            .into_iter()
            .chain(blocks.iter().map(|b| b.meta().max_time))
            .max();
        let Some(newest) = newest else {
            return Ok(Vec::new());
        };
        let mut deleted = Vec::new();
        for b in &blocks {
            let m = b.meta();
            if m.max_time <= newest - retention && !keep(m) {
                deleted.push(m.ulid.clone());
            }
        }
        if deleted.is_empty() {
            return Ok(deleted);
        }
        // Out of the served set first, then off the disk.
        if let Ok(mut set) = self.blocks.write() {
            set.retain(|b| !deleted.contains(&b.meta().ulid));
        }
        for id in &deleted {
            let p = self.dir.join(id);
            std::fs::remove_dir_all(&p).map_err(|e| tsdb::Error::io("delete", &p, e))?;
        }
        Ok(deleted)
    }

    /// The matchers left once those on external labels are decided; `None` when an
    /// external label rules every series out.
    fn beyond_external(&self, ms: Vec<Matcher>) -> Option<Vec<Matcher>> {
        crate::store::beyond_external(&self.external, &ms)
            .map(|kept| kept.into_iter().cloned().collect())
    }

    fn time_range(&self) -> Option<(i64, i64)> {
        let head = self.head.time_range().ok().flatten();
        self.blocks()
            .iter()
            .map(|b| (b.meta().min_time, b.meta().max_time))
            .chain(head)
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }

    /// Series with their chunks, merged across blocks and the head, external labels applied.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> tsdb::Result<Vec<pb::Series>> {
        let mut merged: BTreeMap<Labels, Vec<pb::AggrChunk>> = BTreeMap::new();
        let raw = |mint: i64, maxt: i64, enc: tsdb::chunkenc::Encoding, data: &[u8]| {
            encoding_to_pb(enc).map(|wire| pb::AggrChunk {
                min_time: mint,
                max_time: maxt,
                raw: Some(pb::Chunk {
                    r#type: wire as i32,
                    data: prost::bytes::Bytes::copy_from_slice(data),
                    hash: 0,
                }),
                ..Default::default()
            })
        };
        for b in self.blocks() {
            let m = b.meta();
            if m.max_time <= mint || m.min_time > maxt {
                continue;
            }
            let mut set = b.select(matchers, mint, maxt)?;
            while let Some(s) = set.next()? {
                let chunks = merged.entry(s.labels.clone()).or_default();
                if skip_chunks {
                    continue;
                }
                for c in &s.chunks {
                    let (enc, data) = b.chunks().chunk_checked(c.chunk_ref)?;
                    chunks.extend(raw(c.min_time, c.max_time, enc, data));
                }
            }
        }
        for s in self.head.select(matchers, mint, maxt)? {
            let chunks = merged.entry(s.labels).or_default();
            if skip_chunks {
                continue;
            }
            for (cmin, cmax, data) in &s.chunks {
                chunks.extend(raw(*cmin, *cmax, tsdb::chunkenc::Encoding::XOR, data));
            }
        }
        let mut out: Vec<(Labels, Vec<pb::AggrChunk>)> = merged
            .into_iter()
            .map(|(l, mut c)| {
                c.sort_by_key(|c| c.min_time);
                (l.merge_overriding(&self.external), c)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out
            .into_iter()
            .map(|(l, chunks)| pb::Series {
                labels: labels_to_pb(&l),
                chunks,
            })
            .collect())
    }
}

impl LocalTsdb {
    /// [`LocalTsdb::select`] off the async threads (it reads blocks and decodes chunks).
    async fn select_blocking(
        self: &Arc<Self>,
        ms: Vec<Matcher>,
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> Result<Vec<pb::Series>, Status> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.select(&ms, mint, maxt, skip_chunks))
            .await
            .map_err(internal)?
            .map_err(internal)
    }
}

#[async_trait::async_trait]
impl SeriesStore for Arc<LocalTsdb> {
    fn name(&self) -> String {
        self.component.to_string()
    }

    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        // Empty: nothing yet (Thanos reports the same).
        let min_t = self.time_range().map_or(i64::MAX, |r| r.0);
        Ok(pb::info::InfoResponse {
            label_sets: vec![pb::ZLabelSet {
                labels: labels_to_pb(&self.external),
            }],
            component_type: self.component.into(),
            store: Some(pb::info::StoreInfo {
                min_time: min_t,
                // Data arrives all the time: the range is open ended, as Thanos's TSDB store.
                max_time: i64::MAX,
                ..Default::default()
            }),
            rules: self.rules_api.then_some(pb::info::RulesInfo {}),
            ..Default::default()
        })
    }

    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        let ms = matchers_from_pb(&req.matchers).map_err(Status::invalid_argument)?;
        let Some(ms) = self.beyond_external(ms) else {
            return Ok(futures::stream::empty().boxed());
        };
        let series = self
            .select_blocking(ms, req.min_time, req.max_time, req.skip_chunks)
            .await?;
        Ok(futures::stream::iter(series.into_iter().map(|s| Ok(series_frame(s)))).boxed())
    }

    async fn label_names(
        &self,
        req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        let ms = matchers_from_pb(&req.matchers).map_err(Status::invalid_argument)?;
        let Some(ms) = self.beyond_external(ms) else {
            return Ok(pb::LabelNamesResponse::default());
        };
        let series = self.select_blocking(ms, req.start, req.end, true).await?;
        let mut names: Vec<String> = series
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name_str().to_string()))
            .collect();
        names.sort();
        names.dedup();
        Ok(pb::LabelNamesResponse {
            names,
            ..Default::default()
        })
    }

    async fn label_values(
        &self,
        req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        let ms = matchers_from_pb(&req.matchers).map_err(Status::invalid_argument)?;
        let Some(ms) = self.beyond_external(ms) else {
            return Ok(pb::LabelValuesResponse::default());
        };
        let series = self.select_blocking(ms, req.start, req.end, true).await?;
        let mut values: Vec<String> = series
            .iter()
            .filter_map(|s| s.labels.iter().find(|l| l.name == req.label))
            .map(|l| l.value_str().to_string())
            .collect();
        values.sort();
        values.dedup();
        Ok(pb::LabelValuesResponse {
            values,
            ..Default::default()
        })
    }
}
