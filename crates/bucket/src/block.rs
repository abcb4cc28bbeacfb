//! Whole blocks in a bucket:
//!
//! ```text
//! <ULID>/chunks/000001 ...      segment files (up to ~512 MiB each)
//! <ULID>/index
//! <ULID>/tombstones             only when it holds deletions (Thanos never uploads it)
//! <ULID>/meta.json              written LAST: a directory without it is a partial upload
//! <ULID>/deletion-mark.json, no-compact-mark.json, no-downsample-mark.json   (see markers)
//! ```
//! Uploads write meta.json last so a block exists for readers only once complete; deletes
//! remove meta.json first and the deletion mark last (Thanos's order), so a half-deleted block
//! looks like a partial upload, never like a broken block.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tsdb::meta::{BlockFile, BlockMeta, META_FILENAME};
use tsdb::tombstones::{Tombstones, TOMBSTONES_FILENAME};
use ulid::Ulid;

use crate::error::{Error, Result};
use crate::markers::DELETION_MARK_FILENAME;

/// Files up to this size go up in one PUT; larger ones as a multipart upload of parts this
/// size (S3 wants at least 5 MiB per part; 512 MiB segments make 32 parts).
pub const PART_SIZE: usize = 16 << 20;
/// Parts of one file in flight at once: memory per upload stays under (this + 1) parts.
const PARTS_IN_FLIGHT: usize = 2;

/// `<block>/<rel>` as an object path.
pub fn object_path(block: &str, rel: &str) -> ObjectPath {
    ObjectPath::from(format!("{block}/{rel}"))
}

/// The files uploaded besides meta.json, as (relative path, size), sorted by path: the
/// chunk segments and the index (what Thanos's `GatherFileStats` lists), plus the tombstones
/// file when it holds deletions.
fn gather_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let chunks = dir.join(tsdb::block::CHUNKS_DIRNAME);
    let rd = std::fs::read_dir(&chunks).map_err(|e| Error::local("list", &chunks, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::local("list", &chunks, e))?;
        let md = entry
            .metadata()
            .map_err(|e| Error::local("stat", &entry.path(), e))?;
        if !md.is_file() {
            continue;
        }
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| Error::Block {
            block: dir.display().to_string(),
            msg: format!("chunk file name {name:?} is not UTF-8"),
        })?;
        out.push((format!("{}/{name}", tsdb::block::CHUNKS_DIRNAME), md.len()));
    }
    let index = dir.join(tsdb::block::INDEX_FILENAME);
    let md = std::fs::metadata(&index).map_err(|e| Error::local("stat", &index, e))?;
    out.push((tsdb::block::INDEX_FILENAME.to_string(), md.len()));
    if !Tombstones::read_from_dir(dir)?.is_empty() {
        let p = dir.join(TOMBSTONES_FILENAME);
        let md = std::fs::metadata(&p).map_err(|e| Error::local("stat", &p, e))?;
        out.push((TOMBSTONES_FILENAME.to_string(), md.len()));
    }
    out.sort();
    Ok(out)
}

/// Uploads one local file to `dst`, streaming files larger than [`PART_SIZE`] as a multipart
/// upload so memory stays bounded. Returns the number of bytes uploaded.
pub async fn upload_file(bucket: &dyn ObjectStore, local: &Path, dst: &ObjectPath) -> Result<u64> {
    upload_file_in_parts(bucket, local, dst, PART_SIZE).await
}

async fn upload_file_in_parts(
    bucket: &dyn ObjectStore,
    local: &Path,
    dst: &ObjectPath,
    part_size: usize,
) -> Result<u64> {
    let mut f = tokio::fs::File::open(local)
        .await
        .map_err(|e| Error::local("open", local, e))?;
    let size = f
        .metadata()
        .await
        .map_err(|e| Error::local("stat", local, e))?
        .len();
    if size <= part_size as u64 {
        let mut data = Vec::with_capacity(size as usize);
        f.read_to_end(&mut data)
            .await
            .map_err(|e| Error::local("read", local, e))?;
        let n = data.len() as u64;
        bucket
            .put(dst, PutPayload::from(data))
            .await
            .map_err(|e| Error::store("upload", dst, e))?;
        return Ok(n);
    }
    let upload = bucket
        .put_multipart(dst)
        .await
        .map_err(|e| Error::store("start multipart upload", dst, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
    let mut buf = vec![0u8; part_size.min(8 << 20)];
    let mut total = 0u64;
    let failed = loop {
        let n = match f.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) => break Some(Error::local("read", local, e)),
        };
        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
            break Some(Error::store("upload part of", dst, e));
        }
        writer.write(&buf[..n]);
        total += n as u64;
    };
    if let Some(e) = failed {
        if let Err(abort) = writer.abort().await {
            tracing::warn!(path = %dst, err = %abort, "aborting a failed multipart upload");
        }
        return Err(e);
    }
    writer
        .finish()
        .await
        .map_err(|e| Error::store("finish multipart upload", dst, e))?;
    Ok(total)
}

/// Uploads the block in `dir` under `meta.ulid`: chunk segments and index (and tombstones, if
/// any deletions) first, then meta.json with `thanos.files` (sorted by path, meta.json listed
/// without size, as Thanos does) and `thanos.upload_time` filled in. The meta must carry a
/// Thanos section with external labels (Thanos refuses blocks without). If a data file fails,
/// what was uploaded is removed (best effort; without meta.json it is invisible to readers
/// either way). A failed meta.json upload is not cleaned up: the object may still land (S3
/// after a 503), and a meta.json without its files would be a broken block. Returns the meta
/// as uploaded.
pub async fn upload_block(
    bucket: &dyn ObjectStore,
    dir: &Path,
    meta: &BlockMeta,
) -> Result<BlockMeta> {
    let block = meta.ulid.clone();
    if Ulid::from_string(&block).is_err() {
        return Err(Error::Block {
            block,
            msg: "meta.json ulid is not a ULID".into(),
        });
    }
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
        if let Err(e) = upload_file(bucket, &dir.join(rel), &dst).await {
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
            size_bytes: i64::try_from(*size).unwrap_or(i64::MAX),
            hash: None,
        })
        .collect();
    thanos.files.push(BlockFile {
        rel_path: META_FILENAME.into(),
        ..Default::default()
    });
    thanos.files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    thanos.extra.insert(
        "upload_time".into(),
        serde_json::Value::String(rfc3339_nanos_now()),
    );
    let dst = object_path(&block, META_FILENAME);
    bucket
        .put(&dst, PutPayload::from(meta.to_json()))
        .await
        .map_err(|e| Error::store("upload", &dst, e))?;
    tracing::info!(block = %block, files = files.len(), "uploaded block");
    Ok(meta)
}

/// Now as RFC 3339 with nanoseconds, trailing zeros trimmed (Go's `time.RFC3339Nano`).
fn rfc3339_nanos_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
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

/// Downloads block `id` into `<parent>/<id>`: everything under `<id>/` goes into
/// `<parent>/<id>.tmp-download`, which is renamed into place once complete (replacing an
/// existing `<parent>/<id>`). Fails if the block has no meta.json, or if a file meta.json
/// lists is missing or has another size. An empty `chunks/` dir is created when the bucket
/// holds none (empty block), as Thanos does. Returns the block directory.
pub async fn download_block(bucket: &dyn ObjectStore, id: Ulid, parent: &Path) -> Result<PathBuf> {
    let block = id.to_string();
    let dst = parent.join(&block);
    let tmp = parent.join(format!("{block}.tmp-download"));
    remove_dir_if_exists(&tmp).await?;
    let Some(meta) = fetch_meta(bucket, id).await? else {
        return Err(Error::Block {
            block,
            msg: "no meta.json in the bucket (partial upload or deleted)".into(),
        });
    };
    let prefix = ObjectPath::from(block.as_str());
    let objects: Vec<_> = bucket
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Error::store("list", &prefix, e))?;
    let mut sizes = std::collections::HashMap::new();
    for o in &objects {
        let rel = o
            .location
            .prefix_match(&prefix)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>())
            .filter(|parts| !parts.is_empty())
            .ok_or_else(|| Error::Block {
                block: block.clone(),
                msg: format!("listing returned {} outside the block", o.location),
            })?;
        let local = rel.iter().fold(tmp.clone(), |p, part| p.join(part));
        download_object(bucket, &o.location, &local).await?;
        sizes.insert(rel.join("/"), o.size);
    }
    let chunks = tmp.join(tsdb::block::CHUNKS_DIRNAME);
    tokio::fs::create_dir_all(&chunks)
        .await
        .map_err(|e| Error::local("create dir", &chunks, e))?;
    for f in meta.thanos.iter().flat_map(|t| &t.files) {
        if f.rel_path == META_FILENAME {
            continue;
        }
        match sizes.get(&f.rel_path) {
            None => {
                return Err(Error::Block {
                    block,
                    msg: format!(
                        "{} is listed in meta.json but not in the bucket",
                        f.rel_path
                    ),
                })
            }
            Some(&got) if f.size_bytes > 0 && got != f.size_bytes as u64 => {
                return Err(Error::Block {
                    block,
                    msg: format!(
                        "{} has {got} bytes in the bucket, meta.json says {}",
                        f.rel_path, f.size_bytes
                    ),
                })
            }
            Some(_) => {}
        }
    }
    remove_dir_if_exists(&dst).await?;
    tokio::fs::rename(&tmp, &dst)
        .await
        .map_err(|e| Error::local("rename", &tmp, e))?;
    Ok(dst)
}

async fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::local("remove", dir, e)),
    }
}

/// Streams one object into a local file (created with its parent dirs) and syncs it. A
/// filesystem bucket hands over its file: hard-linked when on the same filesystem (bucket
/// objects are immutable, replaced only by rename, and every local writer writes a temporary
/// file and renames it, so neither side can change the other's bytes), else copied in the
/// kernel. Other stores stream through a 1 MiB buffer (one blocking write per MiB, not per
/// network frame).
pub async fn download_object(
    bucket: &dyn ObjectStore,
    src: &ObjectPath,
    local: &Path,
) -> Result<u64> {
    if let Some(dir) = local.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::local("create dir", dir, e))?;
    }
    // Never write through an existing file: it may be a hard link into the bucket.
    match tokio::fs::remove_file(local).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::local("remove", local, e)),
    }
    let got = bucket
        .get(src)
        .await
        .map_err(|e| Error::store("download", src, e))?;
    if let object_store::GetResultPayload::File(file, path) = got.payload {
        let (range, local) = (got.range, local.to_path_buf());
        let whole = range.start == 0 && range.end == got.meta.size;
        return tokio::task::spawn_blocking(move || {
            if whole && std::fs::hard_link(&path, &local).is_ok() {
                return Ok(range.end);
            }
            copy_file_range_to(file, range, &local)
        })
        .await
        .map_err(|e| Error::local("copy", Path::new(src.as_ref()), std::io::Error::other(e)))?;
    }
    let f = tokio::fs::File::create(local)
        .await
        .map_err(|e| Error::local("create", local, e))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, f);
    let mut stream = got.into_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk.map_err(|e| Error::store("download", src, e))?;
        out.write_all(&chunk)
            .await
            .map_err(|e| Error::local("write", local, e))?;
        n += chunk.len() as u64;
    }
    out.flush()
        .await
        .map_err(|e| Error::local("write", local, e))?;
    out.get_ref()
        .sync_all()
        .await
        .map_err(|e| Error::local("sync", local, e))?;
    Ok(n)
}

/// Copies `range` of an open file into a new file at `local` and syncs it.
fn copy_file_range_to(
    mut file: std::fs::File,
    range: std::ops::Range<u64>,
    local: &Path,
) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = std::fs::File::create(local).map_err(|e| Error::local("create", local, e))?;
    file.seek(SeekFrom::Start(range.start))
        .map_err(|e| Error::local("seek", local, e))?;
    let want = range.end - range.start;
    let n = std::io::copy(&mut file.take(want), &mut out)
        .map_err(|e| Error::local("copy to", local, e))?;
    if n != want {
        let e = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("object shrank while copying: {n} of {want} bytes"),
        );
        return Err(Error::local("copy to", local, e));
    }
    out.sync_all().map_err(|e| Error::local("sync", local, e))?;
    Ok(n)
}

/// Every top-level directory of the bucket whose name is a ULID, sorted. Includes partial
/// uploads; [`fetch_meta`] tells them apart.
pub async fn list_blocks(bucket: &dyn ObjectStore) -> Result<Vec<Ulid>> {
    let listing = bucket
        .list_with_delimiter(None)
        .await
        .map_err(|e| Error::store("list", "/", e))?;
    let mut ids: Vec<Ulid> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| Ulid::from_string(p.as_ref().trim_end_matches('/')).ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The meta.json of block `id`, or None when it has none (partial upload, or being deleted).
/// A meta.json that does not parse, or names another block, is an error.
pub async fn fetch_meta(bucket: &dyn ObjectStore, id: Ulid) -> Result<Option<BlockMeta>> {
    let p = object_path(&id.to_string(), META_FILENAME);
    let Some(bytes) = get_if_exists(bucket, &p).await? else {
        return Ok(None);
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

/// The whole object, or None if it does not exist.
pub(crate) async fn get_if_exists(
    bucket: &dyn ObjectStore,
    p: &ObjectPath,
) -> Result<Option<Bytes>> {
    match bucket.get(p).await {
        Ok(r) => Ok(Some(
            r.bytes().await.map_err(|e| Error::store("read", p, e))?,
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store("read", p, e)),
    }
}

/// The state of the bucket's blocks as one listing saw it.
#[derive(Debug, Default)]
pub struct MetaSync {
    /// Complete blocks, sorted by ULID.
    pub metas: Vec<BlockMeta>,
    /// Directories without meta.json, sorted.
    pub partial: Vec<Ulid>,
    /// Blocks whose meta.json does not parse or names another block, with the reason.
    pub corrupted: Vec<(Ulid, Error)>,
}

/// Lists the bucket and fetches every meta.json, `concurrency` at a time. Bad meta.json
/// files are reported in `corrupted`; failing to read the bucket is an error.
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
            Err(e @ (Error::Tsdb(_) | Error::Block { .. })) => sync.corrupted.push((id, e)),
            Err(e) => return Err(e),
        }
    }
    sync.metas.sort_by(|a, b| a.ulid.cmp(&b.ulid));
    sync.partial.sort();
    sync.corrupted.sort_by_key(|(id, _)| *id);
    Ok(sync)
}

/// Reads bytes `range` of an object; errors name the object and the range.
pub async fn get_range(
    bucket: &dyn ObjectStore,
    path: &ObjectPath,
    range: std::ops::Range<u64>,
) -> Result<Bytes> {
    // Through `get_ranges`: a filesystem bucket answers it without a thread hop; other
    // stores make the one request `get_range` makes.
    let bytes = bucket
        .get_ranges(path, std::slice::from_ref(&range))
        .await
        .map(|mut got| got.pop().unwrap_or_default())
        .map_err(|source| Error::Store {
            op: "read range of",
            path: path.to_string(),
            range: Some(range),
            source: Box::new(source),
        })?;
    crate::stats::record_get_range(bytes.len());
    Ok(bytes)
}

/// Reads several byte ranges of one object in one call (a local filesystem opens the file
/// once and reads each range exactly); ranges that run past the object's end are cut there.
/// Counted as one range read.
pub async fn get_ranges(
    bucket: &dyn ObjectStore,
    path: &ObjectPath,
    ranges: &[std::ops::Range<u64>],
) -> Result<Vec<Bytes>> {
    let failed = |source: object_store::Error| Error::Store {
        op: "read ranges of",
        path: path.to_string(),
        range: None,
        source: Box::new(source),
    };
    let got = match bucket.get_ranges(path, ranges).await {
        Ok(got) => got,
        Err(e @ object_store::Error::NotFound { .. }) => return Err(failed(e)),
        Err(_) => {
            // A range past the end (the last chunk of a segment read by estimate).
            let size = bucket.head(path).await.map_err(failed)?.size;
            let cut: Vec<_> = ranges
                .iter()
                .map(|r| r.start.min(size)..r.end.min(size))
                .collect();
            bucket.get_ranges(path, &cut).await.map_err(failed)?
        }
    };
    crate::stats::record_get_range(covered_bytes(ranges, &got));
    Ok(got)
}

/// Bytes read for `ranges` answered by `got`: overlapping ranges are read once.
fn covered_bytes(ranges: &[std::ops::Range<u64>], got: &[Bytes]) -> usize {
    let read: Vec<std::ops::Range<u64>> = ranges
        .iter()
        .zip(got)
        .map(|(r, b)| r.start..r.start + b.len() as u64)
        .collect();
    crate::ranges::partition(&read, 0)
        .iter()
        .map(|(span, _)| (span.end - span.start) as usize)
        .sum()
}

/// Deletes block `id` in Thanos's order: meta.json first (the block turns into a partial
/// upload for readers), then every other object, the deletion mark last.
pub async fn delete_block(bucket: &dyn ObjectStore, id: Ulid) -> Result<()> {
    let block = id.to_string();
    let meta = object_path(&block, META_FILENAME);
    match bucket.delete(&meta).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(Error::store("delete", &meta, e)),
    }
    let mark = object_path(&block, DELETION_MARK_FILENAME);
    let prefix = ObjectPath::from(block.as_str());
    let objects: Vec<_> = bucket
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Error::store("list", &prefix, e))?;
    for o in objects {
        if o.location == meta || o.location == mark {
            continue;
        }
        match bucket.delete(&o.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store("delete", &o.location, e)),
        }
    }
    match bucket.delete(&mark).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store("delete", &mark, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn large_files_go_up_in_parts_and_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let local = d.path().join("big");
        let data: Vec<u8> = (0..(5u32 << 20) + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(&local, &data).unwrap();
        let store = InMemory::new();
        let dst = ObjectPath::from("x/big");
        // 1 MiB parts: six parts, the last one short.
        let n = upload_file_in_parts(&store, &local, &dst, 1 << 20)
            .await
            .unwrap();
        assert_eq!(n, data.len() as u64);
        let back = store.get(&dst).await.unwrap().bytes().await.unwrap();
        assert_eq!(&back[..], &data[..]);
        let out = d.path().join("back/big");
        assert_eq!(
            download_object(&store, &dst, &out).await.unwrap(),
            data.len() as u64
        );
        assert_eq!(std::fs::read(out).unwrap(), data);
    }

    #[tokio::test]
    async fn range_reads_in_one_call_are_cut_at_the_end() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("bkt/b")).unwrap();
        std::fs::write(d.path().join("bkt/b/chunks"), b"0123456789").unwrap();
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(d.path().join("bkt")).unwrap();
        let path = ObjectPath::from("b/chunks");
        let got = get_ranges(&store, &path, &[2..4, 8..100, 0..1])
            .await
            .unwrap();
        assert_eq!(got, vec![&b"23"[..], &b"89"[..], &b"0"[..]]);
        assert_eq!(covered_bytes(&[2..4, 8..100, 0..1], &got), 5);
        let four = Bytes::from_static(b"abcd");
        assert_eq!(covered_bytes(&[0..4, 2..6], &[four.clone(), four]), 6);
        let missing = get_ranges(&store, &ObjectPath::from("b/none"), &[0..1, 2..3]).await;
        assert!(missing.unwrap_err().to_string().contains("b/none"));
    }

    #[tokio::test]
    async fn filesystem_downloads_never_write_through_to_the_bucket() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("bkt/b")).unwrap();
        std::fs::write(d.path().join("bkt/b/index"), b"bucket bytes").unwrap();
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(d.path().join("bkt")).unwrap();
        let src = ObjectPath::from("b/index");
        let out = d.path().join("local/index");
        for _ in 0..2 {
            // The second round replaces the first local copy, which may be a hard link.
            assert_eq!(download_object(&store, &src, &out).await.unwrap(), 12);
        }
        assert_eq!(
            std::fs::read(d.path().join("bkt/b/index")).unwrap(),
            b"bucket bytes"
        );
    }

    #[tokio::test]
    async fn missing_local_file_names_it() {
        let store = InMemory::new();
        let e = upload_file(&store, Path::new("/nonexistent/f"), &ObjectPath::from("f"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/f"), "{e}");
    }

    #[tokio::test]
    async fn range_errors_name_object_and_range() {
        let store = InMemory::new();
        let p = ObjectPath::from("b/index");
        let e = get_range(&store, &p, 10..20).await.unwrap_err();
        assert!(e.is_not_found());
        assert!(!e.is_retryable());
        let s = e.to_string();
        assert!(s.contains("b/index [10, 20)"), "{s}");
    }

    #[test]
    fn upload_time_is_rfc3339() {
        let t = rfc3339_nanos_now();
        assert!(t.ends_with('Z') && t.contains('T'), "{t}");
    }
}
