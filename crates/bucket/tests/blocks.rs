//! Block upload, listing, meta fetching and download against the in-memory and local
//! filesystem stores.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bucket::block::{
    delete_block, download_block, fetch_meta, fetch_metas, list_blocks, upload_block,
};
use bucket::markers::{deletion_mark, mark_for_deletion};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tsdb::block::BlockWriter;
use tsdb::Labels;

/// Records the order of writes and deletes to the wrapped store, and fails puts of paths
/// ending in `fail_suffix`.
#[derive(Debug, Default)]
struct Recording {
    inner: InMemory,
    puts: Mutex<Vec<String>>,
    deletes: Arc<Mutex<Vec<String>>>,
    fail_suffix: Option<&'static str>,
}

impl Recording {
    fn check(&self, location: &Path) -> object_store::Result<()> {
        self.puts.lock().unwrap().push(location.to_string());
        match self.fail_suffix {
            Some(s) if location.as_ref().ends_with(s) => Err(object_store::Error::Generic {
                store: "Recording",
                source: "injected failure".into(),
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recording")
    }
}

#[async_trait]
impl ObjectStore for Recording {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let log = Arc::clone(&self.deletes);
        let recorded = locations.inspect(move |r| {
            if let Ok(p) = r {
                log.lock().unwrap().push(p.to_string());
            }
        });
        self.inner.delete_stream(recorded.boxed())
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn write_block(dir: &std::path::Path, series: usize) -> tsdb::meta::BlockMeta {
    let mut w = BlockWriter::new(dir, 0, 7_200_000).unwrap();
    for i in 0..series {
        let l = Labels::from_pairs([("__name__", "up".to_string()), ("i", format!("{i:03}"))]);
        w.add_series(&l, (0..480).map(|t| (t * 15_000, t as f64)))
            .unwrap();
    }
    let mut meta = w.finish().unwrap();
    meta.thanos_mut()
        .labels
        .insert("replica".into(), "a".into());
    meta.thanos_mut().source = "test".into();
    meta
}

#[tokio::test]
async fn upload_writes_meta_last_and_round_trips() {
    let local = tempfile::tempdir().unwrap();
    let meta = write_block(local.path(), 20);
    let store = Arc::new(Recording::default());
    let uploaded = upload_block(store.as_ref(), &local.path().join(&meta.ulid), &meta)
        .await
        .unwrap();
    let puts = store.puts.lock().unwrap().clone();
    assert_eq!(puts.last().unwrap(), &format!("{}/meta.json", meta.ulid));
    assert!(puts.contains(&format!("{}/index", meta.ulid)));
    assert!(puts.contains(&format!("{}/chunks/000001", meta.ulid)));
    let files: Vec<&str> = uploaded
        .thanos
        .as_ref()
        .unwrap()
        .files
        .iter()
        .map(|f| f.rel_path.as_str())
        .collect();
    assert_eq!(files, vec!["chunks/000001", "index", "meta.json"]);
    assert!(uploaded.thanos.as_ref().unwrap().files[1].size_bytes > 0);

    let id = meta.ulid.parse().unwrap();
    assert_eq!(list_blocks(store.as_ref()).await.unwrap(), vec![id]);
    let fetched = fetch_meta(store.as_ref(), id).await.unwrap().unwrap();
    assert_eq!(fetched, uploaded);

    let dst = tempfile::tempdir().unwrap();
    let dir = download_block(store.as_ref(), id, dst.path())
        .await
        .unwrap();
    let block = tsdb::block::Block::open(&dir).unwrap();
    assert_eq!(block.meta().stats.num_series, 20);
    assert!(tsdb::verify::verify_block(&dir).is_empty());
    for rel in ["index", "chunks/000001"] {
        let a = std::fs::read(local.path().join(&meta.ulid).join(rel)).unwrap();
        let b = std::fs::read(dir.join(rel)).unwrap();
        assert_eq!(a, b, "{rel}");
    }
}

#[tokio::test]
async fn partial_uploads_and_markers() {
    let local = tempfile::tempdir().unwrap();
    let meta = write_block(local.path(), 3);
    let bucket_dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket_dir.path().display()
    );
    let store = bucket::config::bucket_from_yaml(&yaml).unwrap();
    upload_block(store.as_ref(), &local.path().join(&meta.ulid), &meta)
        .await
        .unwrap();

    // A second block whose meta.json never arrived.
    let partial = ulid::Ulid::new();
    store
        .put(
            &Path::from(format!("{partial}/index")),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap();
    let sync = fetch_metas(store.as_ref(), 4).await.unwrap();
    assert_eq!(sync.metas.len(), 1);
    assert_eq!(sync.partial, vec![partial]);
    let err = download_block(store.as_ref(), partial, local.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no meta.json"), "{err}");

    let id = meta.ulid.parse().unwrap();
    assert!(deletion_mark(store.as_ref(), id).await.unwrap().is_none());
    mark_for_deletion(store.as_ref(), id, "test").await.unwrap();
    let mark = deletion_mark(store.as_ref(), id).await.unwrap().unwrap();
    assert_eq!((mark.id.as_str(), mark.version), (meta.ulid.as_str(), 1));
}

#[tokio::test]
async fn refuses_blocks_without_external_labels() {
    let local = tempfile::tempdir().unwrap();
    let mut meta = write_block(local.path(), 1);
    meta.thanos = None;
    let store = InMemory::new();
    let err = upload_block(&store, &local.path().join(&meta.ulid), &meta)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("external labels"), "{err}");
    assert!(list_blocks(&store).await.unwrap().is_empty());
}

#[tokio::test]
async fn failed_data_upload_leaves_nothing_and_failed_meta_is_not_cleaned() {
    let local = tempfile::tempdir().unwrap();
    let meta = write_block(local.path(), 5);
    let dir = local.path().join(&meta.ulid);
    let id: ulid::Ulid = meta.ulid.parse().unwrap();

    // The index fails: the chunk segment already uploaded is removed again.
    let store = Recording {
        fail_suffix: Some("/index"),
        ..Default::default()
    };
    let err = upload_block(&store, &dir, &meta).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!("{}/index", meta.ulid)),
        "{err}"
    );
    assert!(err.is_retryable());
    let left: Vec<_> = store.inner.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        *store.deletes.lock().unwrap(),
        vec![format!("{}/chunks/000001", meta.ulid)]
    );

    // meta.json fails: the data files stay (meta.json may still land on a real S3).
    let store = Recording {
        fail_suffix: Some("/meta.json"),
        ..Default::default()
    };
    upload_block(&store, &dir, &meta).await.unwrap_err();
    assert!(store.deletes.lock().unwrap().is_empty());
    let sync = fetch_metas(&store, 2).await.unwrap();
    assert_eq!(sync.partial, vec![id]);
}

#[tokio::test]
async fn tombstones_go_up_only_with_deletions() {
    let local = tempfile::tempdir().unwrap();
    let meta = write_block(local.path(), 2);
    let dir = local.path().join(&meta.ulid);
    let store = InMemory::new();
    // An empty tombstones file (as Prometheus writes for every block) is not uploaded.
    tsdb::tombstones::Tombstones::default()
        .write_to_dir(&dir)
        .unwrap();
    let up = upload_block(&store, &dir, &meta).await.unwrap();
    let files: Vec<_> = up
        .thanos
        .unwrap()
        .files
        .into_iter()
        .map(|f| f.rel_path)
        .collect();
    assert_eq!(files, ["chunks/000001", "index", "meta.json"]);

    let mut t = tsdb::tombstones::Tombstones::default();
    t.add(
        0,
        tsdb::tombstones::Interval {
            min_time: 0,
            max_time: 1000,
        },
    );
    t.write_to_dir(&dir).unwrap();
    let up = upload_block(&store, &dir, &meta).await.unwrap();
    let files: Vec<_> = up
        .thanos
        .unwrap()
        .files
        .into_iter()
        .map(|f| f.rel_path)
        .collect();
    assert_eq!(files, ["chunks/000001", "index", "meta.json", "tombstones"]);
    let back = tempfile::tempdir().unwrap();
    let got = download_block(&store, meta.ulid.parse().unwrap(), back.path())
        .await
        .unwrap();
    assert_eq!(
        tsdb::tombstones::Tombstones::read_from_dir(&got)
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn download_checks_listed_files_and_replaces_old_copies() {
    let local = tempfile::tempdir().unwrap();
    let meta = write_block(local.path(), 2);
    let store = InMemory::new();
    upload_block(&store, &local.path().join(&meta.ulid), &meta)
        .await
        .unwrap();
    let id: ulid::Ulid = meta.ulid.parse().unwrap();
    let dst = tempfile::tempdir().unwrap();
    // A stale copy and a stale temp dir are replaced.
    std::fs::create_dir_all(dst.path().join(&meta.ulid).join("junk")).unwrap();
    std::fs::create_dir_all(dst.path().join(format!("{}.tmp-download", meta.ulid))).unwrap();
    let dir = download_block(&store, id, dst.path()).await.unwrap();
    assert!(!dir.join("junk").exists());
    assert_eq!(std::fs::read_dir(dst.path()).unwrap().count(), 1);

    // A segment listed in meta.json but gone from the bucket fails the download.
    store
        .delete(&Path::from(format!("{}/chunks/000001", meta.ulid)))
        .await
        .unwrap();
    let err = download_block(&store, id, dst.path()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("chunks/000001 is listed in meta.json but not in the bucket"),
        "{err}"
    );
    // The previous good copy is untouched.
    assert!(dir.join("chunks/000001").exists());
}

#[tokio::test]
async fn corrupted_meta_is_reported_not_fatal() {
    let store = InMemory::new();
    let bad = ulid::Ulid::new();
    store
        .put(
            &Path::from(format!("{bad}/meta.json")),
            PutPayload::from_static(b"{not json"),
        )
        .await
        .unwrap();
    // Not a block directory: ignored.
    store
        .put(
            &Path::from("debug/metas/x.json"),
            PutPayload::from_static(b"{}"),
        )
        .await
        .unwrap();
    let sync = fetch_metas(&store, 4).await.unwrap();
    assert!(sync.metas.is_empty() && sync.partial.is_empty());
    assert_eq!(sync.corrupted.len(), 1);
    assert_eq!(sync.corrupted[0].0, bad);
    let msg = sync.corrupted[0].1.to_string();
    assert!(msg.contains(&format!("{bad}/meta.json")), "{msg}");
}

#[tokio::test]
async fn delete_removes_meta_first_and_deletion_mark_last() {
    let local = tempfile::tempdir().unwrap();
    let meta = write_block(local.path(), 2);
    let store = Recording::default();
    upload_block(&store, &local.path().join(&meta.ulid), &meta)
        .await
        .unwrap();
    let id: ulid::Ulid = meta.ulid.parse().unwrap();
    mark_for_deletion(&store, id, "retention").await.unwrap();
    delete_block(&store, id).await.unwrap();
    let deletes = store.deletes.lock().unwrap().clone();
    let b = &meta.ulid;
    assert_eq!(deletes.first().unwrap(), &format!("{b}/meta.json"));
    assert_eq!(deletes.last().unwrap(), &format!("{b}/deletion-mark.json"));
    assert_eq!(deletes.len(), 4, "{deletes:?}");
    assert!(list_blocks(&store).await.unwrap().is_empty());
    // Deleting again is fine.
    delete_block(&store, id).await.unwrap();
}
