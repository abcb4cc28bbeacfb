//! The order of a Series answer: each block's selected series sorted by their labels as
//! sent, then merged across blocks into one label-ordered list of series, each with its
//! parts (one per block that has it). Labels stay spans of the index-headers until a
//! series is sent, so a plan costs a few bytes per label and no shared references.

use std::cmp::Ordering;
use std::sync::Arc;

use storeapi::pb;

use crate::block::{BucketBlock, ChunkToRead, Selection};

/// One block's part of a planned series: the block (its index in the call's block list)
/// and the series' index in that block's selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub block: u32,
    pub series: u32,
}

pub struct Plan {
    blocks: Vec<Arc<BucketBlock>>,
    /// By block; empty for blocks whose selection failed.
    selections: Vec<Selection>,
    without: Vec<String>,
    /// The parts of every series in label order: series `i` has `parts[ends[i - 1]..ends[i]]`.
    parts: Vec<Part>,
    ends: Vec<u32>,
}

impl Plan {
    /// Orders `selections` (by block index into `blocks`), with the labels named in
    /// `without` dropped from every series.
    pub fn new(
        blocks: Vec<Arc<BucketBlock>>,
        selections: Vec<(usize, Selection)>,
        without: Vec<String>,
    ) -> Plan {
        let mut by_block: Vec<Selection> = blocks.iter().map(|_| Selection::default()).collect();
        for (b, s) in selections {
            if let Some(slot) = by_block.get_mut(b) {
                *slot = s;
            }
        }
        let mut plan = Plan {
            blocks,
            selections: by_block,
            without,
            parts: Vec::new(),
            ends: Vec::new(),
        };
        plan.order();
        plan
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Chunks to read in all.
    pub fn total_chunks(&self) -> usize {
        self.selections.iter().map(Selection::total_chunks).sum()
    }

    pub fn blocks(&self) -> &[Arc<BucketBlock>] {
        &self.blocks
    }

    /// The parts of series `i`.
    pub fn parts(&self, i: usize) -> &[Part] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.parts[start..self.ends[i] as usize]
    }

    /// The chunks to read of a part.
    pub fn chunks(&self, p: Part) -> &[ChunkToRead] {
        self.selections[p.block as usize].chunks(p.series as usize)
    }

    /// Upper bound of the chunk bytes of series `i`.
    pub fn chunk_bytes(&self, i: usize) -> u64 {
        self.parts(i)
            .iter()
            .flat_map(|&p| self.chunks(p))
            .map(|c| u64::from(c.max_len))
            .sum()
    }

    /// The labels of series `i` as sent.
    pub fn labels(&self, i: usize) -> Vec<pb::Label> {
        let p = self.parts(i)[0];
        let b = p.block as usize;
        self.blocks[b]
            .wire_labels(&self.selections[b], p.series as usize, &self.without)
            .to_pb()
    }

    fn compare(&self, a: Part, b: Part) -> Ordering {
        let labels = |p: Part| {
            let i = p.block as usize;
            self.blocks[i]
                .wire_labels(&self.selections[i], p.series as usize, &self.without)
                .pairs()
        };
        labels(a).cmp(labels(b))
    }

    /// Sorts each block's series (dropped or external labels may reorder a block's index
    /// order, which is usually kept: the sort then takes one pass), then merges the blocks
    /// with a heap of their next series.
    fn order(&mut self) {
        let orders: Vec<Vec<u32>> = (0..self.selections.len())
            .map(|b| {
                let mut order: Vec<u32> = (0..self.selections[b].len() as u32).collect();
                let part = |series| Part {
                    block: b as u32,
                    series,
                };
                order.sort_by(|&x, &y| self.compare(part(x), part(y)));
                order
            })
            .collect();
        let total: usize = orders.iter().map(Vec::len).sum();
        let mut parts = Vec::with_capacity(total);
        let mut ends = Vec::new();
        let mut next = vec![0usize; orders.len()];
        let head = |b: usize, next: &[usize]| Part {
            block: b as u32,
            series: orders[b][next[b]],
        };
        // Ties go to the lower block, so a series' parts come in block order.
        let less = |x: usize, y: usize, next: &[usize]| {
            self.compare(head(x, next), head(y, next))
                .then(x.cmp(&y))
                .is_lt()
        };
        let mut heap = MinHeap::default();
        for (b, order) in orders.iter().enumerate() {
            if !order.is_empty() {
                heap.push(b, |x, y| less(x, y, &next));
            }
        }
        // The first part of the series being gathered.
        let mut current: Option<Part> = None;
        while let Some(b) = heap.pop(|x, y| less(x, y, &next)) {
            let part = head(b, &next);
            if !current.is_some_and(|c| self.compare(c, part).is_eq()) {
                current = Some(part);
                ends.push(0);
            }
            parts.push(part);
            if let Some(e) = ends.last_mut() {
                *e = parts.len() as u32;
            }
            next[b] += 1;
            if next[b] < orders[b].len() {
                heap.push(b, |x, y| less(x, y, &next));
            }
        }
        self.parts = parts;
        self.ends = ends;
    }
}

/// A binary min-heap of block indices under a comparison that looks at the blocks' heads.
#[derive(Default)]
struct MinHeap {
    items: Vec<usize>,
}

impl MinHeap {
    fn push(&mut self, b: usize, less: impl Fn(usize, usize) -> bool) {
        self.items.push(b);
        let mut i = self.items.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if !less(self.items[i], self.items[parent]) {
                break;
            }
            self.items.swap(i, parent);
            i = parent;
        }
    }

    fn pop(&mut self, less: impl Fn(usize, usize) -> bool) -> Option<usize> {
        if self.items.is_empty() {
            return None;
        }
        let top = self.items.swap_remove(0);
        let n = self.items.len();
        let mut i = 0;
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < n && less(self.items[l], self.items[min]) {
                min = l;
            }
            if r < n && less(self.items[r], self.items[min]) {
                min = r;
            }
            if min == i {
                break;
            }
            self.items.swap(i, min);
            i = min;
        }
        Some(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_pops_in_order() {
        let keys = [5, 1, 4, 1, 3, 9, 2, 6];
        let less = |x: usize, y: usize| (keys[x], x) < (keys[y], y);
        let mut h = MinHeap::default();
        for i in 0..keys.len() {
            h.push(i, less);
        }
        let mut got = Vec::new();
        while let Some(i) = h.pop(less) {
            got.push(keys[i]);
        }
        assert_eq!(got, vec![1, 1, 2, 3, 4, 5, 6, 9]);
    }
}
