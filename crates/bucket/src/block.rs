//! Whole blocks in a bucket: `<ULID>/chunks/NNNNNN`, `<ULID>/index`, `<ULID>/meta.json`.
//! A block exists for readers only once its meta.json does, so uploads write it last.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tsdb::meta::{BlockFile, BlockMeta, META_FILENAME};
use ulid::Ulid;

use crate::error::{Error, Result};

/// Files up to this size are uploaded with one PUT; larger ones in parts of this size.
const PART_SIZE: usize = 64 << 20;

pub fn object_path(block: &str, rel: &str) -> ObjectPath {
    ObjectPath::from(format!("{block}/{rel}"))
}

/// The block's files that are uploaded besides meta.json, as (relative path, size):
/// chunk segments then the index, sorted by path as Thanos lists them.
fn gather_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let chunks = dir.join(tsdb::block::CHUNKS_DIRNAME);
    let rd = std::fs::read_dir(&chunks).map_err(|e| Error::local("list", &chunks, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::local("list", &chunks, e))?;
        let md = entry
            .metadata()
            .map_err(|e| Error::local("stat", &entry.path(), e))?;
        if md.is_file() {
            out.push((
                format!("chunks/{}", entry.file_name().to_string_lossy()),
                md.len(),
            ));
        }
    }
    let index = dir.join(tsdb::block::INDEX_FILENAME);
    let md = std::fs::metadata(&index).map_err(|e| Error::local("stat", &index, e))?;
    out.push(("index".to_string(), md.len()));
    out.sort();
    Ok(out)
}

/// Uploads one local file, streaming large ones in parts.
async fn upload_file(
    bucket: &dyn ObjectStore,
    local: &Path,
    dst: &ObjectPath,
    size: u64,
) -> Result<()> {
    if size as usize <= PART_SIZE {
        let data = tokio::fs::read(local)
            .await
            .map_err(|e| Error::local("read", local, e))?;
        bucket
            .put(dst, PutPayload::from(data))
            .await
            .map_err(|e| Error::store("upload", dst, e))?;
        return Ok(());
    }
    let upload = bucket
        .put_multipart(dst)
        .await
        .map_err(|e| Error::store("start multipart upload", dst, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut f = tokio::fs::File::open(local)
        .await
        .map_err(|e| Error::local("open", local, e))?;
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| Error::local("read", local, e))?;
        if n == 0 {
            break;
        }
        writer
            .wait_for_capacity(4)
            .await
            .map_err(|e| Error::store("upload part", dst, e))?;
        writer.write(&buf[..n]);
    }
    writer
        .finish()
        .await
        .map_err(|e| Error::store("finish upload", dst, e))?;
    Ok(())
}

/// Uploads the block in `dir` under `meta.ulid`: chunk segments and index first, then
/// meta.json with `thanos.files` and `thanos.upload_time` filled in. The meta must carry a
/// Thanos section with external labels. On failure, what was uploaded is removed (best effort;
/// without meta.json it is invisible to readers either way). Returns the meta as uploaded.
pub async fn upload_block(
    bucket: &dyn ObjectStore,
    dir: &Path,
    meta: &BlockMeta,
) -> Result<BlockMeta> {
    let block = meta.ulid.clone();
    let labels_empty = meta.thanos.as_ref().is_none_or(|t| t.labels.is_empty());
    if labels_empty {
        return Err(Error::Block {
            block,
            msg: "empty external labels are not allowed for a Thanos block".into(),
        });
    }
    let files = gather_files(dir)?;
    let mut uploaded = Vec::with_capacity(files.len());
    for (rel, size) in &files {
        let dst = object_path(&block, rel);
        if let Err(e) = upload_file(bucket, &dir.join(rel), &dst, *size).await {
            cleanup(bucket, &uploaded).await;
            return Err(e);
        }
        tracing::debug!(block = %block, file = %rel, bytes = size, "uploaded block file");
        uploaded.push(dst);
    }
    let mut meta = meta.clone();
    let thanos = meta.thanos_mut();
    thanos.files = files
        .iter()
        .map(|(rel, size)| BlockFile {
            rel_path: rel.clone(),
            size_bytes: *size as i64,
            hash: None,
        })
        .collect();
    thanos.files.push(BlockFile {
        rel_path: META_FILENAME.into(),
        ..Default::default()
    });
    thanos.extra.insert(
        "upload_time".into(),
        serde_json::Value::String(rfc3339_nanos_now()),
    );
    let dst = object_path(&block, META_FILENAME);
    if let Err(e) = bucket.put(&dst, PutPayload::from(meta.to_json())).await {
        cleanup(bucket, &uploaded).await;
        return Err(Error::store("upload", &dst, e));
    }
    Ok(meta)
}

fn rfc3339_nanos_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = now.as_millis() as i64;
    let base = tsdb::time::format_rfc3339(ms);
    let nanos = now.subsec_nanos();
    if nanos == 0 {
        return base;
    }
    let frac = format!("{nanos:09}");
    format!(
        "{}.{}Z",
        base.trim_end_matches('Z'),
        frac.trim_end_matches('0')
    )
}

async fn cleanup(bucket: &dyn ObjectStore, paths: &[ObjectPath]) {
    for p in paths {
        if let Err(e) = bucket.delete(p).await {
            tracing::warn!(path = %p, err = %e, "cleaning up a failed upload");
        }
    }
}

/// Downloads block `id` into `<parent>/<id>`, via a temp dir renamed at the end.
pub async fn download_block(bucket: &dyn ObjectStore, id: Ulid, parent: &Path) -> Result<PathBuf> {
    let block = id.to_string();
    let dst = parent.join(&block);
    let tmp = parent.join(format!("{block}.tmp-download"));
    if tmp.exists() {
        tokio::fs::remove_dir_all(&tmp)
            .await
            .map_err(|e| Error::local("remove", &tmp, e))?;
    }
    let prefix = ObjectPath::from(block.as_str());
    let objects: Vec<_> = bucket
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Error::store("list", &prefix, e))?;
    if !objects
        .iter()
        .any(|o| o.location.filename() == Some(META_FILENAME))
    {
        return Err(Error::Block {
            block,
            msg: "no meta.json in the bucket (partial upload or deleted)".into(),
        });
    }
    for o in &objects {
        let rel = o
            .location
            .as_ref()
            .strip_prefix(&format!("{block}/"))
            .unwrap_or(o.location.as_ref());
        let local = tmp.join(rel);
        if let Some(dir) = local.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::local("create dir", dir, e))?;
        }
        let mut f = tokio::fs::File::create(&local)
            .await
            .map_err(|e| Error::local("create", &local, e))?;
        let mut stream = bucket
            .get(&o.location)
            .await
            .map_err(|e| Error::store("download", &o.location, e))?
            .into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk: Bytes = chunk.map_err(|e| Error::store("download", &o.location, e))?;
            f.write_all(&chunk)
                .await
                .map_err(|e| Error::local("write", &local, e))?;
        }
        f.sync_all()
            .await
            .map_err(|e| Error::local("sync", &local, e))?;
    }
    if dst.exists() {
        tokio::fs::remove_dir_all(&dst)
            .await
            .map_err(|e| Error::local("remove", &dst, e))?;
    }
    tokio::fs::rename(&tmp, &dst)
        .await
        .map_err(|e| Error::local("rename", &tmp, e))?;
    Ok(dst)
}

/// Every top-level directory of the bucket whose name is a ULID, sorted.
pub async fn list_blocks(bucket: &dyn ObjectStore) -> Result<Vec<Ulid>> {
    let listing = bucket
        .list_with_delimiter(None)
        .await
        .map_err(|e| Error::store("list", "/", e))?;
    let mut ids: Vec<Ulid> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.as_ref().trim_end_matches('/').parse().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The meta.json of block `id`, or None when it has none (partial upload).
pub async fn fetch_meta(bucket: &dyn ObjectStore, id: Ulid) -> Result<Option<BlockMeta>> {
    let p = object_path(&id.to_string(), META_FILENAME);
    let bytes = match bucket.get(&p).await {
        Ok(r) => r.bytes().await.map_err(|e| Error::store("read", &p, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store("read", &p, e)),
    };
    let meta = BlockMeta::parse(&bytes, p.as_ref())?;
    if meta.ulid != id.to_string() {
        return Err(Error::Block {
            block: id.to_string(),
            msg: format!("meta.json names block {}", meta.ulid),
        });
    }
    Ok(Some(meta))
}

/// The state of the bucket's blocks as one listing saw it.
#[derive(Debug, Default)]
pub struct MetaSync {
    /// Complete blocks, sorted by ULID.
    pub metas: Vec<BlockMeta>,
    /// Directories without meta.json.
    pub partial: Vec<Ulid>,
    /// Blocks whose meta.json does not parse, with the reason.
    pub corrupted: Vec<(Ulid, Error)>,
}

/// Lists the bucket and fetches every meta.json, `concurrency` at a time.
pub async fn fetch_metas(bucket: &dyn ObjectStore, concurrency: usize) -> Result<MetaSync> {
    let ids = list_blocks(bucket).await?;
    let results: Vec<(Ulid, Result<Option<BlockMeta>>)> = futures::stream::iter(ids)
        .map(|id| async move { (id, fetch_meta(bucket, id).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut sync = MetaSync::default();
    for (id, r) in results {
        match r {
            Ok(Some(m)) => sync.metas.push(m),
            Ok(None) => sync.partial.push(id),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => sync.corrupted.push((id, e)),
        }
    }
    sync.metas.sort_by(|a, b| a.ulid.cmp(&b.ulid));
    sync.partial.sort();
    Ok(sync)
}

/// Reads `range` of an object.
pub async fn get_range(
    bucket: &dyn ObjectStore,
    path: &ObjectPath,
    range: std::ops::Range<u64>,
) -> Result<Bytes> {
    bucket.get_range(path, range.clone()).await.map_err(|e| {
        Error::store(
            "read range",
            format!("{path} [{}, {})", range.start, range.end),
            e,
        )
    })
}
