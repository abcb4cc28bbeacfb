//! Marker files next to a block, in the JSON Thanos writes (`pkg/block/metadata/markers.go`:
//! compact JSON, unix-second timestamps, `details` omitted when empty, version 1):
//!
//! ```text
//! deletion-mark.json      {"id":"<ULID>","version":1,"details":"...","deletion_time":1700000000}
//! no-compact-mark.json    {"id":"<ULID>","version":1,"details":"...","no_compact_time":1700000000,"reason":"manual"}
//! no-downsample-mark.json {"id":"<ULID>","version":1,"details":"...","no_downsample_time":1700000000,"reason":"manual"}
//! ```
//! Reading checks the version is 1, as Thanos does. Marking a block that already has the
//! marker leaves the existing one (and its time) in place.

use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::block::{get_if_exists, object_path};
use crate::error::{Error, Result};

pub const DELETION_MARK_FILENAME: &str = "deletion-mark.json";
pub const NO_COMPACT_MARK_FILENAME: &str = "no-compact-mark.json";
pub const NO_DOWNSAMPLE_MARK_FILENAME: &str = "no-downsample-mark.json";
pub const MARKER_VERSION: u32 = 1;

/// Reasons Thanos records in no-compact marks.
pub const NO_COMPACT_REASON_MANUAL: &str = "manual";
pub const NO_COMPACT_REASON_INDEX_SIZE: &str = "index-size-exceeding";
pub const NO_COMPACT_REASON_OUT_OF_ORDER_CHUNKS: &str = "block-index-out-of-order-chunk";
pub const NO_COMPACT_REASON_DOWNSAMPLE_VERTICAL: &str = "downsample-vertical-compaction";

/// A marker file: its name and version.
pub trait Marker: Serialize + DeserializeOwned {
    const FILENAME: &'static str;
    fn version(&self) -> u32;
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletionMark {
    pub id: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// Unix seconds.
    pub deletion_time: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoCompactMark {
    pub id: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// Unix seconds.
    pub no_compact_time: i64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoDownsampleMark {
    pub id: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// Unix seconds.
    pub no_downsample_time: i64,
    pub reason: String,
}

impl Marker for DeletionMark {
    const FILENAME: &'static str = DELETION_MARK_FILENAME;
    fn version(&self) -> u32 {
        self.version
    }
}

impl Marker for NoCompactMark {
    const FILENAME: &'static str = NO_COMPACT_MARK_FILENAME;
    fn version(&self) -> u32 {
        self.version
    }
}

impl Marker for NoDownsampleMark {
    const FILENAME: &'static str = NO_DOWNSAMPLE_MARK_FILENAME;
    fn version(&self) -> u32 {
        self.version
    }
}

/// Marker `M` of block `id`, or None when the block has none.
pub async fn read_marker<M: Marker>(bucket: &dyn ObjectStore, id: Ulid) -> Result<Option<M>> {
    let p = object_path(&id.to_string(), M::FILENAME);
    let Some(bytes) = get_if_exists(bucket, &p).await? else {
        return Ok(None);
    };
    let m: M = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupted {
        path: p.to_string(),
        msg: e.to_string(),
    })?;
    if m.version() != MARKER_VERSION {
        return Err(Error::Corrupted {
            path: p.to_string(),
            msg: format!(
                "unexpected version {}, expected {MARKER_VERSION}",
                m.version()
            ),
        });
    }
    Ok(Some(m))
}

/// Writes marker `m` for block `id` unless one exists. Returns whether it wrote.
pub async fn write_marker<M: Marker>(bucket: &dyn ObjectStore, id: Ulid, m: &M) -> Result<bool> {
    let p = object_path(&id.to_string(), M::FILENAME);
    match bucket.head(&p).await {
        Ok(_) => {
            tracing::warn!(block = %id, marker = M::FILENAME, "marker already exists; leaving it");
            return Ok(false);
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(Error::store("check", &p, e)),
    }
    let body = serde_json::to_vec(m).map_err(|e| Error::Corrupted {
        path: p.to_string(),
        msg: format!("encode: {e}"),
    })?;
    bucket
        .put(&p, PutPayload::from(body))
        .await
        .map_err(|e| Error::store("write", &p, e))?;
    Ok(true)
}

/// Removes marker `M` of block `id`; a missing marker is fine.
pub async fn remove_marker<M: Marker>(bucket: &dyn ObjectStore, id: Ulid) -> Result<()> {
    let p = object_path(&id.to_string(), M::FILENAME);
    match bucket.delete(&p).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store("delete", &p, e)),
    }
}

fn now_s() -> i64 {
    tsdb::time::now_ms() / 1000
}

pub async fn deletion_mark(bucket: &dyn ObjectStore, id: Ulid) -> Result<Option<DeletionMark>> {
    read_marker(bucket, id).await
}

/// Marks block `id` for deletion now, unless it already is.
pub async fn mark_for_deletion(bucket: &dyn ObjectStore, id: Ulid, details: &str) -> Result<()> {
    let m = DeletionMark {
        id: id.to_string(),
        version: MARKER_VERSION,
        details: details.to_string(),
        deletion_time: now_s(),
    };
    write_marker(bucket, id, &m).await.map(|_| ())
}

pub async fn no_compact_mark(bucket: &dyn ObjectStore, id: Ulid) -> Result<Option<NoCompactMark>> {
    read_marker(bucket, id).await
}

/// Excludes block `id` from compaction (reason: one of the `NO_COMPACT_REASON_*`), unless
/// it already is.
pub async fn mark_no_compact(
    bucket: &dyn ObjectStore,
    id: Ulid,
    reason: &str,
    details: &str,
) -> Result<()> {
    let m = NoCompactMark {
        id: id.to_string(),
        version: MARKER_VERSION,
        details: details.to_string(),
        no_compact_time: now_s(),
        reason: reason.to_string(),
    };
    write_marker(bucket, id, &m).await.map(|_| ())
}

pub async fn no_downsample_mark(
    bucket: &dyn ObjectStore,
    id: Ulid,
) -> Result<Option<NoDownsampleMark>> {
    read_marker(bucket, id).await
}

/// Excludes block `id` from downsampling, unless it already is.
pub async fn mark_no_downsample(
    bucket: &dyn ObjectStore,
    id: Ulid,
    reason: &str,
    details: &str,
) -> Result<()> {
    let m = NoDownsampleMark {
        id: id.to_string(),
        version: MARKER_VERSION,
        details: details.to_string(),
        no_downsample_time: now_s(),
        reason: reason.to_string(),
    };
    write_marker(bucket, id, &m).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::path::Path;

    #[tokio::test]
    async fn marks_are_thanos_json_and_written_once() {
        let store = InMemory::new();
        let id = Ulid::from_string("01HZZZZZZZZZZZZZZZZZZZZZZZ").unwrap();
        assert!(deletion_mark(&store, id).await.unwrap().is_none());
        mark_for_deletion(&store, id, "").await.unwrap();
        let p = Path::from(format!("{id}/deletion-mark.json"));
        let raw = store.get(&p).await.unwrap().bytes().await.unwrap();
        let text = std::str::from_utf8(&raw).unwrap();
        let want_prefix = format!("{{\"id\":\"{id}\",\"version\":1,\"deletion_time\":");
        assert!(text.starts_with(&want_prefix), "{text}");

        // A second mark keeps the first one.
        let first = deletion_mark(&store, id).await.unwrap().unwrap();
        store
            .put(
                &p,
                PutPayload::from(
                    serde_json::to_vec(&DeletionMark {
                        deletion_time: 5,
                        ..first
                    })
                    .unwrap(),
                ),
            )
            .await
            .unwrap();
        mark_for_deletion(&store, id, "again").await.unwrap();
        assert_eq!(
            deletion_mark(&store, id)
                .await
                .unwrap()
                .unwrap()
                .deletion_time,
            5
        );

        mark_no_compact(&store, id, NO_COMPACT_REASON_MANUAL, "d")
            .await
            .unwrap();
        let m = no_compact_mark(&store, id).await.unwrap().unwrap();
        assert_eq!((m.reason.as_str(), m.details.as_str()), ("manual", "d"));
        mark_no_downsample(&store, id, "manual", "").await.unwrap();
        assert!(no_downsample_mark(&store, id).await.unwrap().is_some());
        remove_marker::<NoDownsampleMark>(&store, id).await.unwrap();
        remove_marker::<NoDownsampleMark>(&store, id).await.unwrap();
        assert!(no_downsample_mark(&store, id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reads_thanos_written_marks_and_rejects_bad_ones() {
        let store = InMemory::new();
        let id = Ulid::from_string("01HZZZZZZZZZZZZZZZZZZZZZZZ").unwrap();
        let p = Path::from(format!("{id}/no-compact-mark.json"));
        let thanos = format!(
            "{{\"id\":\"{id}\",\"version\":1,\"details\":\"big\",\"no_compact_time\":1700000000,\"reason\":\"index-size-exceeding\"}}"
        );
        store.put(&p, PutPayload::from(thanos)).await.unwrap();
        let m = no_compact_mark(&store, id).await.unwrap().unwrap();
        assert_eq!(m.no_compact_time, 1_700_000_000);
        assert_eq!(m.reason, NO_COMPACT_REASON_INDEX_SIZE);

        let v2 = format!("{{\"id\":\"{id}\",\"version\":2,\"deletion_time\":1}}");
        let dp = Path::from(format!("{id}/deletion-mark.json"));
        store.put(&dp, PutPayload::from(v2)).await.unwrap();
        let e = deletion_mark(&store, id).await.unwrap_err().to_string();
        assert!(
            e.contains("deletion-mark.json") && e.contains("version 2"),
            "{e}"
        );
        store
            .put(&dp, PutPayload::from_static(b"{\"id\":"))
            .await
            .unwrap();
        let e = deletion_mark(&store, id).await.unwrap_err().to_string();
        assert!(
            e.starts_with("corrupted ") && e.contains("deletion-mark.json"),
            "{e}"
        );
    }
}
