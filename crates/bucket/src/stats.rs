//! Process-wide object-store read counters, exported on `/metrics` with Thanos's names.

use std::sync::atomic::{AtomicU64, Ordering};

static GET_RANGE: AtomicU64 = AtomicU64::new(0);
static GET_RANGE_BYTES: AtomicU64 = AtomicU64::new(0);

pub(crate) fn record_get_range(bytes: usize) {
    GET_RANGE.fetch_add(1, Ordering::Relaxed);
    GET_RANGE_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Range reads done so far and the bytes they returned.
pub fn get_range_totals() -> (u64, u64) {
    (
        GET_RANGE.load(Ordering::Relaxed),
        GET_RANGE_BYTES.load(Ordering::Relaxed),
    )
}

/// The counters in the Prometheus text format.
pub fn render() -> String {
    let (n, bytes) = get_range_totals();
    format!(
        "# HELP gauntlet_objstore_bucket_get_range_total Range reads (block reads by byte range).\n\
         # TYPE gauntlet_objstore_bucket_get_range_total counter\n\
         gauntlet_objstore_bucket_get_range_total {n}\n\
         # HELP gauntlet_objstore_bucket_get_range_bytes_total Bytes returned by range reads.\n\
         # TYPE gauntlet_objstore_bucket_get_range_bytes_total counter\n\
         gauntlet_objstore_bucket_get_range_bytes_total {bytes}\n"
    )
}
