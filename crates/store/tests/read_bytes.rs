//! Bytes read from the bucket against the bytes needed, for a query at the end of a block
//! (an instant query): only the last chunk of each series is needed, and the bound of its
//! record must not drag in the chunks that follow it. Its own test binary: the bucket's
//! read counters are per process.

use std::sync::Arc;

use futures::StreamExt;
use store::gateway::{BucketStore, Config};
use storeapi::convert::matcher_to_pb;
use storeapi::pb;
use storeapi::store::SeriesStore;
use tsdb::{MatchType, Matcher};

mod common;
use common::{uploaded_blocks, H};

/// Chunk bytes sent for `[min_t, max_t]`, with each record's framing (length, encoding,
/// CRC32): what reading exactly the needed records takes.
async fn needed_bytes(store: &BucketStore, min_t: i64, max_t: i64) -> u64 {
    let req = pb::SeriesRequest {
        min_time: min_t,
        max_time: max_t,
        matchers: vec![matcher_to_pb(
            &Matcher::new(MatchType::RegexMatch, "job", ".+").unwrap(),
        )],
        partial_response_strategy: pb::PartialResponseStrategy::Abort as i32,
        ..Default::default()
    };
    let mut stream = store.series(req).await.unwrap();
    let mut bytes = 0;
    while let Some(f) = stream.next().await {
        if let Some(pb::series_response::Result::Series(s)) = f.unwrap().result {
            for c in &s.chunks {
                bytes += c.raw.as_ref().unwrap().data.len() as u64 + 2 + 1 + 4;
            }
        }
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_at_the_end_of_a_block_reads_little_more_than_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bucket) =
        uploaded_blocks(&dir.path().join("local"), &dir.path().join("bucket"), "a").await;
    let store = Arc::new(BucketStore::new(
        bucket,
        Config {
            data_dir: dir.path().join("data"),
            range_gap: 0,
            ..Config::default()
        },
    ));
    store.sync().await.unwrap();
    // The last five minutes of the last block: one chunk per series.
    let (min_t, max_t) = (6 * H - 300_000, 6 * H - 1);
    // Once for the index (postings and series entries are cached), then counted.
    needed_bytes(&store, min_t, max_t).await;
    let before = bucket::stats::get_range_totals().1;
    let needed = needed_bytes(&store, min_t, max_t).await;
    let read = bucket::stats::get_range_totals().1 - before;
    assert!(needed > 0);
    assert!(
        read as f64 <= 1.5 * needed as f64,
        "read {read} bytes for {needed} bytes of chunk records"
    );
}
