//! What evaluation nodes hand each other: a node's value over all steps ([`Val`]), the
//! builder that collects output points by label set ([`OutBuilder`]), and the fast hash
//! map keyed by labels the nodes use.

use crate::error::{Error, Result};
use crate::value::{Point, Series};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use tsdb::chunkenc::STALE_NAN_BITS;
use tsdb::labels::Labels;

pub(crate) const METRIC_NAME: &str = "__name__";

/// A node's value over all steps.
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    Str(String),
    /// Series with points at step timestamps.
    Vector(Vec<Series>),
    /// Raw range vectors (only at a single evaluation time).
    Range(Vec<Series>),
}

impl Val {
    pub(crate) fn points(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::Str(_) => 0,
            Val::Vector(s) | Val::Range(s) => s.iter().map(|s| s.points.len()).sum(),
        }
    }
}

/// Fast hashing for maps keyed by labels and indexes (FxHash).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

impl FxHasher {
    #[inline]
    pub(crate) fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Prometheus's `Labels.Hash`: xxhash64 over each name and value followed by 0xff. Its
/// engine tells series apart by this hash (a duplicate label set is a repeated hash), and
/// so do we where that saves copying label sets. `buf` is scratch.
pub(crate) fn labels_hash(labels: &Labels, buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    for l in labels.iter() {
        buf.extend_from_slice(l.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(l.value.as_bytes());
        buf.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(buf, 0)
}

pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Collects output points by label set, in first-push order, rejecting two values for
/// one label set at one step like Prometheus does.
pub(crate) struct OutBuilder {
    series: Vec<Series>,
    slots: FxMap<Labels, usize>,
    /// Per slot: position in `series` (assigned at the first push) and last step pushed.
    pos: Vec<usize>,
    last_step: Vec<usize>,
    slot_labels: Vec<Option<Labels>>,
}

const NONE: usize = usize::MAX;

impl OutBuilder {
    pub(crate) fn new() -> Self {
        OutBuilder {
            series: Vec::new(),
            slots: FxMap::default(),
            pos: Vec::new(),
            last_step: Vec::new(),
            slot_labels: Vec::new(),
        }
    }

    /// The slot of a label set (created on first use).
    pub(crate) fn slot(&mut self, labels: Labels) -> usize {
        if let Some(&s) = self.slots.get(&labels) {
            return s;
        }
        let s = self.pos.len();
        self.slots.insert(labels.clone(), s);
        self.pos.push(NONE);
        self.last_step.push(NONE);
        self.slot_labels.push(Some(labels));
        s
    }

    pub(crate) fn push(&mut self, slot: usize, step: usize, t: i64, v: f64) -> Result<()> {
        if self.last_step[slot] == step {
            return Err(Error::exec(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        self.last_step[slot] = step;
        let p = self.pos[slot];
        if p == NONE {
            let labels = self.slot_labels[slot].take().unwrap_or_default();
            self.pos[slot] = self.series.len();
            self.series
                .push(Series::floats(labels, vec![Point { t, v }]));
        } else {
            self.series[p].points.push(Point { t, v });
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<Series> {
        self.series
    }
}
