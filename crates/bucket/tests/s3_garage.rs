//! The bucket round trip against a real S3 server (Garage 2.5.0), configured through
//! Thanos's `type: S3` YAML. Fails (never skips) when garage is not installed.

use bucket::block::{download_block, fetch_metas, get_range, object_path, upload_block};
use bucket::config::bucket_from_yaml;
use bucket::markers::{deletion_mark, mark_for_deletion};
use testkit::garage::Garage;
use tsdb::block::BlockWriter;
use tsdb::Labels;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_round_trip_through_garage() {
    let garage = tokio::task::spawn_blocking(|| Garage::start("thanos"))
        .await
        .unwrap()
        .unwrap();
    let store = bucket_from_yaml(&garage.objstore_yaml()).unwrap();

    let local = tempfile::tempdir().unwrap();
    let mut w = BlockWriter::new(local.path(), 0, 7_200_000).unwrap();
    for i in 0..50 {
        let l = Labels::from_pairs([("__name__", "up".to_string()), ("i", format!("{i:03}"))]);
        w.add_series(&l, (0..480).map(|t| (t * 15_000, (t % 7) as f64)))
            .unwrap();
    }
    let mut meta = w.finish().unwrap();
    meta.thanos_mut()
        .labels
        .insert("replica".into(), "a".into());
    meta.thanos_mut().source = "test".into();
    let uploaded = upload_block(store.as_ref(), &local.path().join(&meta.ulid), &meta)
        .await
        .unwrap();

    let sync = fetch_metas(store.as_ref(), 8).await.unwrap();
    assert_eq!(sync.metas, vec![uploaded.clone()]);
    assert!(sync.partial.is_empty());

    // Byte ranges read exactly what is on disk.
    let index = std::fs::read(local.path().join(&meta.ulid).join("index")).unwrap();
    let tail = get_range(
        store.as_ref(),
        &object_path(&meta.ulid, "index"),
        index.len() as u64 - 52..index.len() as u64,
    )
    .await
    .unwrap();
    assert_eq!(&tail[..], &index[index.len() - 52..]);

    let dst = tempfile::tempdir().unwrap();
    let dir = download_block(store.as_ref(), meta.ulid.parse().unwrap(), dst.path())
        .await
        .unwrap();
    assert!(tsdb::verify::verify_block(&dir).is_empty());
    assert_eq!(std::fs::read(dir.join("index")).unwrap(), index);

    let id = meta.ulid.parse().unwrap();
    mark_for_deletion(store.as_ref(), id, "test").await.unwrap();
    assert!(deletion_mark(store.as_ref(), id).await.unwrap().is_some());

    // Wrong credentials: a clear error naming the object, not a panic.
    let bad = garage.objstore_yaml().replace(&garage.secret, "0000");
    let bad = bucket_from_yaml(&bad).unwrap();
    let err = fetch_metas(bad.as_ref(), 2).await.unwrap_err().to_string();
    assert!(err.starts_with("list /"), "{err}");
}
