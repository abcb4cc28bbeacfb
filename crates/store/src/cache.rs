//! The in-memory index cache: postings lists and series entries by block and offset, least
//! recently used evicted first once the total size passes the limit (`--index-cache-size`).
//! Counted under Thanos's `thanos_store_index_cache_*` names, by `item_type`. Keys are small
//! and `Copy` (the block's ULID as a number), and a query's lookups take the lock once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Postings,
    Series,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The block's ULID.
    pub block: u128,
    pub kind: Kind,
    pub offset: u64,
}

struct Entry {
    bytes: Bytes,
    /// When it was last used.
    used: u64,
    /// Its place in `order`: when it was added or last requeued (at most `used`).
    queued: u64,
}

/// Least recently used order kept lazily: a hit only stamps the entry; eviction takes the
/// oldest place in `order` and, when that entry was used since, queues it again instead.
#[derive(Default)]
struct Inner {
    entries: rustc_hash::FxHashMap<Key, Entry>,
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

impl Inner {
    /// The entry at `key`, marked as used now.
    fn touch(&mut self, key: &Key) -> Option<Bytes> {
        self.tick += 1;
        let e = self.entries.get_mut(key)?;
        e.used = self.tick;
        Some(e.bytes.clone())
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
        self.get_many(key.block, key.kind, std::iter::once(key.offset))
            .pop()
            .flatten()
    }

    /// Looks up the entries of one block and kind at `offsets`, under one lock.
    pub fn get_many(
        &self,
        block: u128,
        kind: Kind,
        offsets: impl ExactSizeIterator<Item = u64>,
    ) -> Vec<Option<Bytes>> {
        let mut out = Vec::with_capacity(offsets.len());
        let mut hits = 0u64;
        {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            for offset in offsets {
                let key = Key {
                    block,
                    kind,
                    offset,
                };
                out.push(g.touch(&key));
                hits += u64::from(out.last().is_some_and(Option::is_some));
            }
        }
        let m = &self.metrics[kind.index()];
        m.requests.add(out.len() as f64);
        m.hits.add(hits as f64);
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses
            .fetch_add(out.len() as u64 - hits, Ordering::Relaxed);
        out
    }

    pub fn put(&self, key: Key, value: Bytes) {
        self.put_many(std::iter::once((key, value)));
    }

    /// Adds entries under one lock, evicting the least recently used past the limit.
    pub fn put_many(&self, items: impl IntoIterator<Item = (Key, Bytes)>) {
        let mut added = [0u64; 2];
        let mut evicted = [0u64; 2];
        {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            for (key, value) in items {
                let cost = value.len() as u64 + ENTRY_OVERHEAD;
                if cost > self.max_bytes / 2 {
                    continue;
                }
                added[key.kind.index()] += 1;
                g.tick += 1;
                let tick = g.tick;
                let entry = Entry {
                    bytes: value,
                    used: tick,
                    queued: tick,
                };
                if let Some(old) = g.entries.insert(key, entry) {
                    g.order.remove(&old.queued);
                    g.size -= old.bytes.len() as u64 + ENTRY_OVERHEAD;
                }
                g.order.insert(tick, key);
                g.size += cost;
                while g.size > self.max_bytes {
                    let Some((queued, k)) = g.order.pop_first() else {
                        break;
                    };
                    let Some(e) = g.entries.get_mut(&k) else {
                        continue;
                    };
                    if e.used > queued {
                        e.queued = e.used;
                        let used = e.used;
                        g.order.insert(used, k);
                        continue;
                    }
                    if let Some(e) = g.entries.remove(&k) {
                        g.size -= e.bytes.len() as u64 + ENTRY_OVERHEAD;
                        evicted[k.kind.index()] += 1;
                    }
                }
            }
        }
        for (m, (a, e)) in self.metrics.iter().zip(added.into_iter().zip(evicted)) {
            if a > 0 {
                m.added.add(a as f64);
            }
            if e > 0 {
                m.evicted.add(e as f64);
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
            block: 7,
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
