//! The store gateway against the truth: blocks written locally and uploaded to a filesystem
//! bucket; every Series answer (decoded) must equal reading the local blocks directly.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use store::gateway::{BucketStore, Config};
use storeapi::convert::{labels_from_pb, matcher_to_pb};
use storeapi::pb;
use storeapi::store::SeriesStore;
use tsdb::block::{Block, BlockWriter};
use tsdb::chunkenc::XorIterator;
use tsdb::{Labels, MatchType, Matcher};

mod common;
use common::{filesystem_bucket, uploaded_blocks, H};

/// Decoded samples per series from the gateway.
async fn query(
    s: &dyn SeriesStore,
    ms: &[Matcher],
    min_t: i64,
    max_t: i64,
) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let req = pb::SeriesRequest {
        min_time: min_t,
        max_time: max_t,
        matchers: ms.iter().map(matcher_to_pb).collect(),
        partial_response_strategy: pb::PartialResponseStrategy::Abort as i32,
        ..Default::default()
    };
    let mut stream = s.series(req).await.unwrap();
    let mut out = Vec::new();
    while let Some(f) = stream.next().await {
        if let Some(pb::series_response::Result::Series(series)) = f.unwrap().result {
            let mut samples = Vec::new();
            for c in &series.chunks {
                let raw = c.raw.as_ref().unwrap();
                assert_eq!(raw.r#type, 0, "XOR on the wire");
                let mut it = XorIterator::new(&raw.data);
                while it.next() {
                    let (t, v) = it.at();
                    if t >= min_t && t <= max_t {
                        samples.push((t, v));
                    }
                }
            }
            out.push((labels_from_pb(&series.labels).unwrap(), samples));
        }
    }
    out
}

/// The same, read from the local blocks.
fn truth(
    dir: &Path,
    ids: &[String],
    ext: &Labels,
    ms: &[Matcher],
    min_t: i64,
    max_t: i64,
) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut all: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
    let ext_ok = ms
        .iter()
        .filter(|m| ext.get(&m.name).is_some())
        .all(|m| m.matches(ext.value_of(&m.name)));
    if !ext_ok {
        return all;
    }
    let index_ms: Vec<Matcher> = ms
        .iter()
        .filter(|m| ext.get(&m.name).is_none())
        .cloned()
        .collect();
    for id in ids {
        let b = Block::open(&dir.join(id)).unwrap();
        let mut set = b.select(&index_ms, min_t, max_t).unwrap();
        while let Some(s) = set.next().unwrap() {
            let samples = set.samples(&s).collect_all().unwrap();
            if samples.is_empty() {
                continue;
            }
            let l = s.labels.merge_overriding(ext);
            match all.iter_mut().find(|(x, _)| *x == l) {
                Some((_, v)) => v.extend(samples),
                None => all.push((l, samples)),
            }
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_equal_local_reads() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let bucket_dir = dir.path().join("bucket");
    let (ids, bucket) = uploaded_blocks(&local, &bucket_dir, "a").await;
    let store = Arc::new(BucketStore::new(
        bucket.clone(),
        Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        },
    ));
    let stats = store.sync().await.unwrap();
    assert_eq!(stats.added, 3);
    assert!(dir
        .path()
        .join("data")
        .join(&ids[0])
        .join("index-header")
        .exists());

    let ext = Labels::from_pairs([("replica", "a")]);
    let m = |k, n: &str, v: &str| Matcher::new(k, n, v).unwrap();
    let cases: Vec<(Vec<Matcher>, i64, i64)> = vec![
        (
            vec![m(MatchType::Equal, "__name__", "requests_total")],
            0,
            6 * H,
        ),
        (
            vec![
                m(MatchType::Equal, "job", "db"),
                m(MatchType::RegexMatch, "instance", "host-0.*"),
            ],
            H,
            5 * H,
        ),
        (
            vec![
                m(MatchType::NotEqual, "job", "web"),
                m(MatchType::Equal, "__name__", "memory_bytes"),
            ],
            2 * H - 1,
            2 * H + 60_000,
        ),
        (
            vec![m(
                MatchType::RegexNoMatch,
                "instance",
                "host-1.|host-0[0-5]",
            )],
            0,
            6 * H,
        ),
        (
            vec![
                m(MatchType::Equal, "replica", "a"),
                m(MatchType::Equal, "job", "api"),
            ],
            0,
            H,
        ),
        (vec![m(MatchType::Equal, "replica", "b")], 0, 6 * H),
        (vec![m(MatchType::Equal, "job", "")], 0, 6 * H),
        (vec![m(MatchType::Equal, "nope", "x")], 0, 6 * H),
        (vec![m(MatchType::RegexMatch, "job", ".+")], 5 * H, 7 * H),
    ];
    // A store reading a handful of chunks per step must answer the same.
    let small_steps = BucketStore::new(
        bucket.clone(),
        Config {
            data_dir: dir.path().join("data-small"),
            series_batch_bytes: 1_000,
            ..Config::default()
        },
    );
    small_steps.sync().await.unwrap();
    // A store reading exact ranges (as for a local directory) must answer the same.
    let exact_reads = BucketStore::new(
        bucket.clone(),
        Config {
            data_dir: dir.path().join("data-exact"),
            range_gap: 0,
            ..Config::default()
        },
    );
    exact_reads.sync().await.unwrap();
    // Twice: the second round is served from the index cache and must not change answers.
    for round in 0..4 {
        let s: &dyn SeriesStore = match round {
            0 | 1 => store.as_ref(),
            2 => &small_steps,
            _ => &exact_reads,
        };
        for (ms, min_t, max_t) in &cases {
            let got = query(s, ms, *min_t, *max_t).await;
            let want = truth(&local, &ids, &ext, ms, *min_t, *max_t);
            assert_eq!(got.len(), want.len(), "{ms:?}");
            assert_eq!(got, want, "round {round}: {ms:?} [{min_t}, {max_t}]");
        }
    }
    let (hits, misses, size) = store.cache_stats();
    assert!(
        hits >= misses && size > 0,
        "cache hits {hits} misses {misses} size {size}"
    );

    let info = store.info().await.unwrap();
    assert_eq!(info.label_sets.len(), 1);
    assert_eq!(info.store.unwrap().max_time, 6 * H);
    let names = store
        .label_names(pb::LabelNamesRequest {
            start: 0,
            end: 6 * H,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names.names, ["__name__", "instance", "job", "replica"]);
    let values = store
        .label_values(pb::LabelValuesRequest {
            label: "job".into(),
            start: 0,
            end: 6 * H,
            matchers: vec![matcher_to_pb(&m(MatchType::Equal, "instance", "host-03"))],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(values.values, ["api", "db", "web"]);

    // A block whose chunks are damaged: WARN streams the other blocks' data and a warning
    // naming the block, ABORT fails the call.
    let seg = bucket_dir.join(&ids[2]).join("chunks").join("000001");
    let good = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &good[..good.len() / 2]).unwrap();
    for strategy in [
        pb::PartialResponseStrategy::Warn,
        pb::PartialResponseStrategy::Abort,
    ] {
        let req = pb::SeriesRequest {
            min_time: 0,
            max_time: 6 * H,
            matchers: vec![matcher_to_pb(&m(MatchType::Equal, "job", "api"))],
            partial_response_strategy: strategy as i32,
            ..Default::default()
        };
        let mut stream = small_steps.series(req).await.unwrap();
        let (mut series, mut warnings, mut errors) = (0, Vec::new(), Vec::new());
        while let Some(f) = stream.next().await {
            match f {
                Ok(pb::SeriesResponse {
                    result: Some(pb::series_response::Result::Series(_)),
                }) => series += 1,
                Ok(pb::SeriesResponse {
                    result: Some(pb::series_response::Result::Warning(w)),
                }) => warnings.push(w),
                Ok(_) => {}
                Err(e) => errors.push(e.message().to_string()),
            }
        }
        match strategy {
            pb::PartialResponseStrategy::Warn => {
                assert!(series > 0 && errors.is_empty(), "{series} {errors:?}");
                assert!(warnings.iter().any(|w| w.contains(&ids[2])), "{warnings:?}");
            }
            _ => assert!(errors.iter().any(|e| e.contains(&ids[2])), "{errors:?}"),
        }
    }
    std::fs::write(&seg, &good).unwrap();

    // A block whose index is damaged is reported and skipped; the others still serve.
    let victim = &ids[1];
    let idx = bucket_dir.join(victim).join("index");
    std::fs::write(&idx, b"not an index at all, far too short").unwrap();
    std::fs::remove_dir_all(dir.path().join("data").join(victim)).unwrap();
    let fresh = BucketStore::new(
        bucket.clone(),
        Config {
            data_dir: dir.path().join("data2"),
            ..Config::default()
        },
    );
    let stats = fresh.sync().await.unwrap();
    assert_eq!((stats.added, stats.failed), (2, 1));
    let got = query(&fresh, &[m(MatchType::Equal, "job", "api")], 0, 6 * H).await;
    assert!(!got.is_empty());

    // A block marked for deletion long ago is no longer served.
    let id0: ulid::Ulid = ids[0].parse().unwrap();
    bucket::markers::mark_for_deletion(bucket.as_ref(), id0, "test")
        .await
        .unwrap();
    let marked = BucketStore::new(
        bucket,
        Config {
            data_dir: dir.path().join("data3"),
            ignore_deletion_marks_delay_ms: -1,
            ..Config::default()
        },
    );
    assert_eq!(marked.sync().await.unwrap().added, 1);
}

/// Series whose labels change order once the external labels are set and the replica
/// labels dropped: the answer is still in label order, one frame per series, with the
/// samples of every part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_stay_ordered_when_labels_are_set_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let bucket_dir = dir.path().join("bucket");
    let bucket = filesystem_bucket(&bucket_dir);
    let own: Vec<Labels> = [
        // `region` (external) lands after `job` in the first, after `path` in the second.
        vec![("__name__", "x"), ("job", "j")],
        vec![("__name__", "x"), ("job", "j"), ("path", "p")],
        // Dropping `replica` reverses these two, and makes the last two one series.
        vec![("__name__", "y"), ("job", "j"), ("replica", "r1")],
        vec![
            ("__name__", "y"),
            ("job", "j"),
            ("path", "p"),
            ("replica", "r2"),
        ],
        vec![("__name__", "z"), ("replica", "r1")],
        vec![("__name__", "z"), ("replica", "r2")],
    ]
    .into_iter()
    .map(Labels::from_pairs)
    .collect();
    let mut want: std::collections::BTreeMap<Labels, usize> = Default::default();
    for b in 0..2i64 {
        let (min_t, max_t) = (b * 2 * H, (b + 1) * 2 * H);
        let mut w = BlockWriter::new(&local, min_t, max_t).unwrap();
        let mut sorted = own.clone();
        sorted.sort();
        for (k, l) in sorted.iter().enumerate() {
            let samples: Vec<(i64, f64)> = (min_t..max_t)
                .step_by(60_000)
                .map(|t| (t, (k * 1000) as f64 + (t / 60_000) as f64))
                .collect();
            let mut sent = l.merge_overriding(&Labels::from_pairs([("region", "eu")]));
            sent.remove("replica");
            *want.entry(sent).or_default() += samples.len();
            w.add_series(l, samples.into_iter()).unwrap();
        }
        let mut meta = w.finish().unwrap();
        meta.thanos_mut()
            .labels
            .insert("region".into(), "eu".into());
        meta.thanos_mut().source = "test".into();
        meta.write_to_dir(&local.join(&meta.ulid)).unwrap();
        bucket::block::upload_block(bucket.as_ref(), &local.join(&meta.ulid), &meta)
            .await
            .unwrap();
    }
    let store = BucketStore::new(
        bucket,
        Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        },
    );
    assert_eq!(store.sync().await.unwrap().added, 2);
    let req = pb::SeriesRequest {
        min_time: 0,
        max_time: 4 * H,
        matchers: vec![matcher_to_pb(
            &Matcher::new(MatchType::RegexMatch, "__name__", ".+").unwrap(),
        )],
        without_replica_labels: vec!["replica".into()],
        partial_response_strategy: pb::PartialResponseStrategy::Abort as i32,
        ..Default::default()
    };
    let mut stream = store.series(req).await.unwrap();
    let mut got: Vec<(Labels, usize)> = Vec::new();
    while let Some(f) = stream.next().await {
        if let Some(pb::series_response::Result::Series(s)) = f.unwrap().result {
            let mut n = 0;
            for c in &s.chunks {
                let mut it = XorIterator::new(&c.raw.as_ref().unwrap().data);
                while it.next() {
                    n += 1;
                }
            }
            got.push((labels_from_pb(&s.labels).unwrap(), n));
        }
    }
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
}

/// A downsampled chunk without the aggregate asked for fails its block: with partial
/// responses the series before it are sent and a warning names the block; without, the
/// call fails naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_aggregate_fails_its_block() {
    use tsdb::chunkenc::{aggr, Encoding, XorAppender};
    const RES_5M: i64 = 300_000;
    let dir = tempfile::tempdir().unwrap();
    let bucket_dir = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket_dir).unwrap();
    let mut w = BlockWriter::new(&bucket_dir, 0, 2 * H).unwrap();
    let mut part = XorAppender::new();
    for t in (0..2 * H).step_by(RES_5M as usize) {
        part.append(t, 1.0);
    }
    let p = Some(part.bytes());
    for (job, chunk) in [
        ("a", aggr::encode([p, p, p, p, p])),
        // No max.
        ("b", aggr::encode([p, p, p, None, p])),
        ("c", aggr::encode([p, p, p, p, p])),
    ] {
        let labels = Labels::from_pairs([("__name__", "m"), ("job", job)]);
        w.add_encoded_series(&labels, &[(0, 2 * H - RES_5M, Encoding::AGGR, &chunk)])
            .unwrap();
    }
    let mut meta = w.finish().unwrap();
    let thanos = meta.thanos_mut();
    thanos.labels.insert("replica".into(), "a".into());
    thanos.source = "compactor".into();
    thanos.downsample.resolution = RES_5M;
    meta.write_to_dir(&bucket_dir.join(&meta.ulid)).unwrap();
    let bucket = filesystem_bucket(&bucket_dir);
    let store = BucketStore::new(
        bucket,
        Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        },
    );
    assert_eq!(store.sync().await.unwrap().added, 1);
    for strategy in [
        pb::PartialResponseStrategy::Warn,
        pb::PartialResponseStrategy::Abort,
    ] {
        let req = pb::SeriesRequest {
            min_time: 0,
            max_time: 2 * H,
            matchers: vec![matcher_to_pb(
                &Matcher::new(MatchType::Equal, "__name__", "m").unwrap(),
            )],
            max_resolution_window: RES_5M,
            aggregates: vec![pb::Aggr::Max as i32],
            partial_response_strategy: strategy as i32,
            ..Default::default()
        };
        let mut stream = store.series(req).await.unwrap();
        let (mut jobs, mut warnings, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(f) = stream.next().await {
            match f {
                Ok(pb::SeriesResponse {
                    result: Some(pb::series_response::Result::Series(s)),
                }) => {
                    assert!(s.chunks.iter().all(|c| c.max.is_some()));
                    let l = labels_from_pb(&s.labels).unwrap();
                    jobs.push(l.value_of("job").to_string());
                }
                Ok(pb::SeriesResponse {
                    result: Some(pb::series_response::Result::Warning(w)),
                }) => warnings.push(w),
                Ok(_) => {}
                Err(e) => errors.push(e.message().to_string()),
            }
        }
        let named = |msgs: &[String]| {
            msgs.iter()
                .any(|m| m.contains(&meta.ulid) && m.contains("aggregate max does not exist"))
        };
        match strategy {
            pb::PartialResponseStrategy::Warn => {
                assert_eq!(jobs, ["a"], "{warnings:?}");
                assert!(
                    named(&warnings) && errors.is_empty(),
                    "{warnings:?} {errors:?}"
                );
            }
            _ => assert!(named(&errors), "{jobs:?} {errors:?}"),
        }
    }
}
