//! The bucket round trip against a real S3 server (Garage 2.5.0), configured through
//! Thanos's `type: S3` YAML. Fails (never skips) when garage is not installed.

use bucket::block::{
    delete_block, download_block, download_object, fetch_metas, get_range, list_blocks,
    object_path, upload_block, upload_file, PART_SIZE,
};
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

    delete_block(store.as_ref(), id).await.unwrap();
    assert!(list_blocks(store.as_ref()).await.unwrap().is_empty());

    // A file larger than one part goes up as an S3 multipart upload (Garage checks part
    // sizes as S3 does); ranged reads across the part boundary return the exact bytes.
    let big_path = local.path().join("big");
    let big: Vec<u8> = (0..PART_SIZE + (3 << 20))
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(&big_path, &big).unwrap();
    let dst = object_path("big", "segment");
    assert_eq!(
        upload_file(store.as_ref(), &big_path, &dst).await.unwrap(),
        big.len() as u64
    );
    let at = PART_SIZE as u64 - 10;
    let r = get_range(store.as_ref(), &dst, at..at + 20).await.unwrap();
    assert_eq!(&r[..], &big[at as usize..at as usize + 20]);
    let back = local.path().join("big.back");
    download_object(store.as_ref(), &dst, &back).await.unwrap();
    assert!(std::fs::read(&back).unwrap() == big);

    // `prefix:` keeps a second tenant apart in the same bucket.
    let tenant = bucket_from_yaml(&garage.objstore_yaml_with_prefix("tenant-b")).unwrap();
    upload_block(tenant.as_ref(), &local.path().join(&meta.ulid), &meta)
        .await
        .unwrap();
    assert_eq!(list_blocks(tenant.as_ref()).await.unwrap(), vec![id]);
    assert!(list_blocks(store.as_ref()).await.unwrap().is_empty());

    // Wrong credentials: a clear error naming the object, not a panic.
    let bad = garage.objstore_yaml().replace(&garage.secret, "0000");
    let bad = bucket_from_yaml(&bad).unwrap();
    let err = fetch_metas(bad.as_ref(), 2).await.unwrap_err().to_string();
    assert!(err.starts_with("list /"), "{err}");
    let range_err = get_range(bad.as_ref(), &dst, 0..10).await.unwrap_err();
    assert!(!range_err.is_not_found());
    assert!(
        range_err.to_string().contains("big/segment [0, 10)"),
        "{range_err}"
    );
}
