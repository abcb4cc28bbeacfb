//! The in-memory index cache: postings lists and series entries by block and offset, least
//! recently used evicted first once the total size passes the limit (`--index-cache-size`).
//! Counted under Thanos's `thanos_store_index_cache_*` names, by `item_type`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Postings,
    Series,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub block: String,
    pub kind: Kind,
    pub offset: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, (Bytes, u64)>,
    order: BTreeMap<u64, Key>,
    tick: u64,
    size: u64,
}

pub struct IndexCache {
    max_bytes: u64,
    inner: Mutex<Inner>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Per kind (postings, series): requests, hits, added, evicted.
    metrics: [KindMetrics; 2],
}

struct KindMetrics {
    requests: telemetry::Counter,
    hits: telemetry::Counter,
    added: telemetry::Counter,
    evicted: telemetry::Counter,
}

impl KindMetrics {
    fn new(item_type: &str) -> Self {
        let with_tenant = [("item_type", item_type), ("tenant", "default-tenant")];
        let by_type = [("item_type", item_type)];
        KindMetrics {
            requests: telemetry::counter(
                "thanos_store_index_cache_requests_total",
                "Total number of items requests to the cache.",
                &with_tenant,
            ),
            hits: telemetry::counter(
                "thanos_store_index_cache_hits_total",
                "Total number of items requests to the cache that were a hit.",
                &with_tenant,
            ),
            added: telemetry::counter(
                "thanos_store_index_cache_items_added_total",
                "Total number of items that were added to the index cache.",
                &by_type,
            ),
            evicted: telemetry::counter(
                "thanos_store_index_cache_items_evicted_total",
                "Total number of items that were evicted from the index cache.",
                &by_type,
            ),
        }
    }
}

impl Kind {
    fn index(self) -> usize {
        match self {
            Kind::Postings => 0,
            Kind::Series => 1,
        }
    }
}

/// Bookkeeping cost of an entry besides its bytes.
const ENTRY_OVERHEAD: u64 = 96;

impl IndexCache {
    pub fn new(max_bytes: u64) -> Self {
        IndexCache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            metrics: [KindMetrics::new("Postings"), KindMetrics::new("Series")],
        }
    }

    pub fn get(&self, key: &Key) -> Option<Bytes> {
        let m = &self.metrics[key.kind.index()];
        m.requests.inc();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.tick += 1;
        let tick = g.tick;
        let found = match g.entries.get_mut(key) {
            Some((b, t)) => {
                let old = std::mem::replace(t, tick);
                Some((b.clone(), old))
            }
            None => None,
        };
        match found {
            Some((b, old)) => {
                g.order.remove(&old);
                g.order.insert(tick, key.clone());
                self.hits.fetch_add(1, Ordering::Relaxed);
                m.hits.inc();
                Some(b)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub fn put(&self, key: Key, value: Bytes) {
        let cost = value.len() as u64 + ENTRY_OVERHEAD;
        if cost > self.max_bytes / 2 {
            return;
        }
        self.metrics[key.kind.index()].added.inc();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.tick += 1;
        let tick = g.tick;
        if let Some((old, t)) = g.entries.insert(key.clone(), (value, tick)) {
            g.order.remove(&t);
            g.size -= old.len() as u64 + ENTRY_OVERHEAD;
        }
        g.order.insert(tick, key);
        g.size += cost;
        while g.size > self.max_bytes {
            let Some((&t, _)) = g.order.iter().next() else {
                break;
            };
            if let Some(k) = g.order.remove(&t) {
                if let Some((b, _)) = g.entries.remove(&k) {
                    g.size -= b.len() as u64 + ENTRY_OVERHEAD;
                    self.metrics[k.kind.index()].evicted.inc();
                }
            }
        }
    }

    pub fn size(&self) -> u64 {
        self.inner.lock().map(|g| g.size).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(o: u64) -> Key {
        Key {
            block: "b".into(),
            kind: Kind::Postings,
            offset: o,
        }
    }

    #[test]
    fn evicts_least_recently_used_within_the_limit() {
        let c = IndexCache::new(1000);
        for i in 0..10 {
            c.put(key(i), Bytes::from(vec![0u8; 100]));
            // Keep 0 hot.
            assert!(c.get(&key(0)).is_some());
        }
        assert!(c.size() <= 1000);
        assert!(c.get(&key(0)).is_some());
        assert!(c.get(&key(1)).is_none());
        assert!(c.get(&key(9)).is_some());
        // Too big to cache at all.
        c.put(key(100), Bytes::from(vec![0u8; 600]));
        assert!(c.get(&key(100)).is_none());
    }
}
