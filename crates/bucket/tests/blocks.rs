//! Block upload, listing, meta fetching and download against the in-memory and local
//! filesystem stores.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bucket::block::{download_block, fetch_meta, fetch_metas, list_blocks, upload_block};
use bucket::markers::{deletion_mark, mark_for_deletion};
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tsdb::block::BlockWriter;
use tsdb::Labels;

/// Records the order of writes to the wrapped store.
#[derive(Debug)]
struct Recording {
    inner: InMemory,
    puts: Mutex<Vec<String>>,
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
        self.puts.lock().unwrap().push(location.to_string());
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.puts.lock().unwrap().push(location.to_string());
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
        self.inner.delete_stream(locations)
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
    let store = Arc::new(Recording {
        inner: InMemory::new(),
        puts: Mutex::new(Vec::new()),
    });
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
