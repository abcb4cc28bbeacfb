//! The bucket's blocks as a component should see them: every meta.json fetched, then
//! Thanos's filters in Thanos's order: time range (`--min-time`/`--max-time`), selection by
//! relabelling external labels, consistency delay (blocks too fresh to be complete, except
//! compactor output), deletion marks older than a delay, replica labels removed from the
//! external labels, and deduplication (a block whose sources another block holds is
//! redundant). Marker files are gathered on the way.
//!
//! A block whose meta.json cannot be read (bad JSON, unknown version) is reported as such
//! and left out, never treated as a partial upload: nothing deletes it.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt;
use object_store::ObjectStore;
use tsdb::meta::BlockMeta;
use ulid::Ulid;

use crate::block::fetch_metas;
use crate::error::Result;
use crate::markers::{self, DeletionMark};
use crate::relabel::Relabel;

/// How a component filters the bucket's blocks.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Keep blocks overlapping `[min_time, max_time]` (ms).
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    pub relabel: Relabel,
    /// Blocks younger than this (by upload time, else ULID time) are left out, except
    /// compactor output.
    pub consistency_delay_ms: i64,
    /// Blocks marked for deletion longer ago than this are left out; `None` keeps them all.
    pub ignore_deletion_marks_delay_ms: Option<i64>,
    /// External labels removed before grouping (HA replicas become one stream).
    pub replica_labels: Vec<String>,
    /// Drop blocks whose sources another block holds.
    pub deduplicate: bool,
    /// Gather no-compact and no-downsample marks too.
    pub gather_marks: bool,
    pub concurrency: usize,
}

/// The filtered view of a bucket.
#[derive(Debug, Default)]
pub struct View {
    /// Blocks left after the filters, by ULID; replica labels removed.
    pub metas: Vec<BlockMeta>,
    /// Directories without meta.json (partial uploads, or blocks being deleted).
    pub partial: Vec<Ulid>,
    /// Blocks whose meta.json cannot be read, with why.
    pub unreadable: Vec<(Ulid, String)>,
    /// Deletion marks of the blocks seen (before the deletion-delay filter).
    pub deletion_marks: HashMap<String, DeletionMark>,
    pub no_compact: HashSet<String>,
    pub no_downsample: HashSet<String>,
    /// Blocks dropped because another block holds all their sources.
    pub duplicates: Vec<String>,
    /// Blocks per state, as `thanos_blocks_meta_synced{state}` reports them.
    pub synced: BTreeMap<&'static str, usize>,
}

fn ulid_ms(id: &str) -> i64 {
    id.parse::<Ulid>().map_or(0, |u| u.timestamp_ms() as i64)
}

/// The time a block was uploaded (`thanos.upload_time`), if recorded.
pub fn upload_time(meta: &BlockMeta) -> Option<i64> {
    let t = meta.thanos.as_ref()?.extra.get("upload_time")?.as_str()?;
    tsdb::time::parse_rfc3339(t).ok().filter(|&ms| ms > 0)
}

/// Whether a block is compactor output, exempt from the consistency delay.
pub fn from_compactor(meta: &BlockMeta) -> bool {
    let source = meta.thanos.as_ref().map_or("", |t| t.source.as_str());
    matches!(source, "compactor" | "compactor.repair" | "bucket.repair")
}

/// Fetches and filters the bucket's blocks at `now_ms`.
pub async fn fetch(bucket: &dyn ObjectStore, f: &Filters, now_ms: i64) -> Result<View> {
    let sync = fetch_metas(bucket, f.concurrency.max(1)).await?;
    let mut view = View {
        partial: sync.partial,
        unreadable: sync
            .corrupted
            .into_iter()
            .map(|(id, e)| (id, e.to_string()))
            .collect(),
        ..Default::default()
    };
    let bump = |view: &mut View, state: &'static str| *view.synced.entry(state).or_default() += 1;
    view.synced.insert("no-meta-json", view.partial.len());
    view.synced
        .insert("corrupted-meta-json", view.unreadable.len());
    let mut metas = Vec::with_capacity(sync.metas.len());
    for m in sync.metas {
        if f.min_time.is_some_and(|t| m.max_time < t) || f.max_time.is_some_and(|t| m.min_time > t)
        {
            bump(&mut view, "time-excluded");
            continue;
        }
        if !f.relabel.is_empty() {
            let mut labels: BTreeMap<String, String> = m.external_labels();
            for r in &f.replica_labels {
                labels.remove(r);
            }
            labels.insert("__block_id".into(), m.ulid.clone());
            if !f.relabel.keeps(&labels) {
                bump(&mut view, "label-excluded");
                continue;
            }
        }
        let born = upload_time(&m).unwrap_or_else(|| ulid_ms(&m.ulid));
        if !from_compactor(&m) && now_ms - born < f.consistency_delay_ms {
            bump(&mut view, "too-fresh");
            continue;
        }
        metas.push(m);
    }
    // Markers, a few requests at a time.
    let ids: Vec<Ulid> = metas.iter().filter_map(|m| m.ulid.parse().ok()).collect();
    let gather = f.gather_marks;
    let found: Vec<_> = futures::stream::iter(ids)
        .map(|id| async move {
            let del = markers::deletion_mark(bucket, id).await;
            let (nc, nd) = if gather {
                (
                    markers::no_compact_mark(bucket, id)
                        .await
                        .map(|m| m.is_some()),
                    markers::no_downsample_mark(bucket, id)
                        .await
                        .map(|m| m.is_some()),
                )
            } else {
                (Ok(false), Ok(false))
            };
            (id, del, nc, nd)
        })
        .buffer_unordered(f.concurrency.max(1))
        .collect()
        .await;
    for (id, del, nc, nd) in found {
        let id = id.to_string();
        match del {
            Ok(Some(mark)) => {
                view.deletion_marks.insert(id.clone(), mark);
            }
            Ok(None) => {}
            // A mark that does not parse is ignored, as Thanos does; failing to read is not.
            Err(crate::Error::Corrupted { path, msg }) => {
                tracing::warn!(block = %id, path = %path, err = %msg, "ignoring unreadable deletion mark");
            }
            Err(e) => return Err(e),
        }
        if nc? {
            view.no_compact.insert(id.clone());
        }
        if nd? {
            view.no_downsample.insert(id);
        }
    }
    if let Some(delay) = f.ignore_deletion_marks_delay_ms {
        metas.retain(|m| match view.deletion_marks.get(&m.ulid) {
            Some(mark) if now_ms - mark.deletion_time * 1000 > delay => {
                *view.synced.entry("marked-for-deletion").or_default() += 1;
                false
            }
            _ => true,
        });
    }
    if !f.replica_labels.is_empty() {
        for m in &mut metas {
            let t = m.thanos_mut();
            let before = t.labels.len();
            for r in &f.replica_labels {
                t.labels.remove(r);
            }
            if t.labels.is_empty() && before > 0 {
                t.labels
                    .insert(f.replica_labels[0].clone(), "deduped".into());
            }
        }
    }
    if f.deduplicate {
        let dups = duplicates(&metas);
        view.synced.insert("duplicate", dups.len());
        let set: HashSet<&String> = dups.iter().collect();
        metas.retain(|m| !set.contains(&m.ulid));
        view.duplicates = dups;
    }
    view.synced
        .insert("marked-for-no-compact", view.no_compact.len());
    view.synced.insert("loaded", metas.len());
    metas.sort_by(|a, b| a.ulid.cmp(&b.ulid));
    view.metas = metas;
    Ok(view)
}

/// A stream's identity: resolution and external labels, as Thanos's group key.
pub fn stream_of(m: &BlockMeta) -> (i64, BTreeMap<String, String>) {
    (m.resolution(), m.external_labels())
}

/// Blocks whose compaction sources another block of the same stream holds entirely, the
/// one with more sources (then the older ULID) kept, as Thanos's deduplicate filter.
pub fn duplicates(metas: &[BlockMeta]) -> Vec<String> {
    let mut by_stream: BTreeMap<(i64, BTreeMap<String, String>), Vec<&BlockMeta>> = BTreeMap::new();
    for m in metas {
        by_stream.entry(stream_of(m)).or_default().push(m);
    }
    let mut out = Vec::new();
    for group in by_stream.values_mut() {
        group.sort_by(|a, b| {
            b.compaction
                .sources
                .len()
                .cmp(&a.compaction.sources.len())
                .then_with(|| a.ulid.cmp(&b.ulid))
        });
        let mut covering: Vec<HashSet<&str>> = Vec::new();
        for m in group.iter() {
            let sources: HashSet<&str> = m.compaction.sources.iter().map(String::as_str).collect();
            if covering.iter().any(|c| sources.is_subset(c)) {
                out.push(m.ulid.clone());
            } else {
                covering.push(sources);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, sources: &[&str], res: i64) -> BlockMeta {
        let mut m = BlockMeta::new(Ulid::nil(), 0, 10);
        m.ulid = id.into();
        m.compaction.sources = sources.iter().map(|s| s.to_string()).collect();
        m.thanos_mut().labels.insert("cluster".into(), "a".into());
        m.thanos_mut().downsample.resolution = res;
        m
    }

    #[test]
    fn sources_held_elsewhere_are_duplicates() {
        let metas = vec![
            meta("01A", &["01A"], 0),
            meta("01B", &["01B"], 0),
            meta("01C", &["01A", "01B"], 0),
            // Same sources, newer ULID: the older one stays.
            meta("01D", &["01A", "01B"], 0),
            // Another resolution is another stream.
            meta("01E", &["01A"], 300_000),
        ];
        assert_eq!(duplicates(&metas), vec!["01A", "01B", "01D"]);
    }
}
