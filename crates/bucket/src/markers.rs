//! Marker files next to a block: `deletion-mark.json` and `no-compact-mark.json`, in the JSON
//! form Thanos writes (unix-second timestamps, version 1).

use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::block::object_path;
use crate::error::{Error, Result};

pub const DELETION_MARK_FILENAME: &str = "deletion-mark.json";
pub const NO_COMPACT_MARK_FILENAME: &str = "no-compact-mark.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletionMark {
    pub id: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    pub deletion_time: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoCompactMark {
    pub id: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    pub no_compact_time: i64,
    pub reason: String,
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    bucket: &dyn ObjectStore,
    id: Ulid,
    file: &str,
) -> Result<Option<T>> {
    let p = object_path(&id.to_string(), file);
    let bytes = match bucket.get(&p).await {
        Ok(r) => r.bytes().await.map_err(|e| Error::store("read", &p, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store("read", &p, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Block {
            block: id.to_string(),
            msg: format!("{file}: {e}"),
        })
}

async fn write_json<T: Serialize>(
    bucket: &dyn ObjectStore,
    id: Ulid,
    file: &str,
    v: &T,
) -> Result<()> {
    let p = object_path(&id.to_string(), file);
    let body = serde_json::to_vec_pretty(v).map_err(|e| Error::Block {
        block: id.to_string(),
        msg: format!("encode {file}: {e}"),
    })?;
    bucket
        .put(&p, PutPayload::from(body))
        .await
        .map_err(|e| Error::store("write", &p, e))?;
    Ok(())
}

pub async fn deletion_mark(bucket: &dyn ObjectStore, id: Ulid) -> Result<Option<DeletionMark>> {
    read_json(bucket, id, DELETION_MARK_FILENAME).await
}

/// Marks block `id` for deletion now, unless it already is.
pub async fn mark_for_deletion(bucket: &dyn ObjectStore, id: Ulid, details: &str) -> Result<()> {
    if deletion_mark(bucket, id).await?.is_some() {
        return Ok(());
    }
    let m = DeletionMark {
        id: id.to_string(),
        version: 1,
        details: details.to_string(),
        deletion_time: tsdb::time::now_ms() / 1000,
    };
    write_json(bucket, id, DELETION_MARK_FILENAME, &m).await
}

pub async fn no_compact_mark(bucket: &dyn ObjectStore, id: Ulid) -> Result<Option<NoCompactMark>> {
    read_json(bucket, id, NO_COMPACT_MARK_FILENAME).await
}

pub async fn mark_no_compact(
    bucket: &dyn ObjectStore,
    id: Ulid,
    reason: &str,
    details: &str,
) -> Result<()> {
    let m = NoCompactMark {
        id: id.to_string(),
        version: 1,
        details: details.to_string(),
        no_compact_time: tsdb::time::now_ms() / 1000,
        reason: reason.to_string(),
    };
    write_json(bucket, id, NO_COMPACT_MARK_FILENAME, &m).await
}
