//! The head: recent samples in memory, made durable by a write-ahead log, cut into blocks.
//!
//! Every append is one WAL write (new series, then the samples) before it becomes visible,
//! so a process killed right after `append` returns loses nothing. Samples live in XOR chunks
//! of up to 120 samples per series. When the head spans more than 1.5 block durations, the
//! oldest aligned block range is written as a block (Prometheus's rule), dropped from memory,
//! and the WAL is compacted: a checkpoint holds the series and samples still in the head, and
//! older segments go. On open, the checkpoint and later segments are replayed; samples below
//! the newest block's end are skipped, so a crash between writing a block and checkpointing
//! cannot duplicate data.
//!
//! Series are found by scanning with the matchers: enough for a ruler's thousands of series.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use crate::block::BlockWriter;
use crate::chunkenc::xor::{XorAppender, XorIterator};
use crate::meta::BlockMeta;
use crate::wal::{self, RefSample, RefSeries};
use crate::{Error, Labels, Matcher, Result};

/// Samples per head chunk, as Prometheus.
const SAMPLES_PER_CHUNK: u16 = 120;

struct Chunk {
    min_time: i64,
    max_time: i64,
    data: XorAppender,
}

struct MemSeries {
    labels: Labels,
    chunks: Vec<Chunk>,
    last: Option<(i64, f64)>,
}

impl MemSeries {
    fn push(&mut self, t: i64, v: f64) {
        match self.chunks.last_mut() {
            Some(c) if c.data.num_samples() < SAMPLES_PER_CHUNK => {
                c.data.append(t, v);
                c.max_time = t;
            }
            _ => {
                let mut data = XorAppender::new();
                data.append(t, v);
                self.chunks.push(Chunk {
                    min_time: t,
                    max_time: t,
                    data,
                });
            }
        }
        self.last = Some((t, v));
    }

    fn samples(&self, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) -> Result<()> {
        for c in &self.chunks {
            if c.max_time < mint || c.min_time > maxt {
                continue;
            }
            let mut it = XorIterator::new(c.data.bytes());
            while it.next() {
                let (t, v) = it.at();
                if t >= mint && t <= maxt {
                    out.push((t, v));
                }
            }
            if let Some(e) = it.err() {
                return Err(e);
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Inner {
    series: HashMap<u64, MemSeries>,
    refs: HashMap<Labels, u64>,
    next_ref: u64,
    /// Samples before this time are refused (they belong to a block already cut).
    min_valid_time: i64,
}

impl Inner {
    fn time_range(&self) -> Option<(i64, i64)> {
        let mut r: Option<(i64, i64)> = None;
        for s in self.series.values() {
            if let (Some(first), Some(last)) = (s.chunks.first(), s.chunks.last()) {
                r = Some(match r {
                    None => (first.min_time, last.max_time),
                    Some((a, b)) => (a.min(first.min_time), b.max(last.max_time)),
                });
            }
        }
        r
    }
}

/// What an append did: samples stored, and those refused with Prometheus's reasons.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    pub appended: u64,
    pub out_of_order: u64,
    pub duplicate: u64,
    pub out_of_bounds: u64,
}

/// What a WAL replay did on open.
#[derive(Debug, Default)]
pub struct ReplayStats {
    pub series: u64,
    pub samples: u64,
    /// A damaged WAL tail that was cut away, described.
    pub repaired: Option<String>,
}

/// A series of the head with its XOR chunks (min time, max time, bytes) in a time range.
pub struct HeadSeries {
    pub labels: Labels,
    pub chunks: Vec<(i64, i64, Vec<u8>)>,
}

pub struct Head {
    wal_dir: PathBuf,
    inner: RwLock<Inner>,
    wal: Mutex<wal::Writer>,
}

fn poisoned<T>(_: T) -> Error {
    Error::InvalidInput("head lock poisoned by an earlier panic".into())
}

impl Head {
    /// Opens the head of the TSDB in `dir` (its WAL in `dir/wal`), replaying the WAL.
    /// Samples before `min_valid_time` (the end of the newest block) are skipped.
    pub fn open(dir: &Path, min_valid_time: i64) -> Result<(Head, ReplayStats)> {
        let wal_dir = dir.join("wal");
        std::fs::create_dir_all(&wal_dir).map_err(|e| Error::io("create", &wal_dir, e))?;
        let mut inner = Inner {
            min_valid_time,
            ..Inner::default()
        };
        let mut stats = ReplayStats::default();
        let replay = wal::replay(&wal_dir, |rec| {
            match wal::decode(rec)? {
                wal::Record::Series(series) => {
                    for s in series {
                        inner.next_ref = inner.next_ref.max(s.series_ref + 1);
                        if inner.series.contains_key(&s.series_ref) {
                            continue;
                        }
                        stats.series += 1;
                        inner.refs.insert(s.labels.clone(), s.series_ref);
                        inner.series.insert(
                            s.series_ref,
                            MemSeries {
                                labels: s.labels,
                                chunks: Vec::new(),
                                last: None,
                            },
                        );
                    }
                }
                wal::Record::Samples(samples) => {
                    for s in samples {
                        if s.t < inner.min_valid_time {
                            continue;
                        }
                        if let Some(ms) = inner.series.get_mut(&s.series_ref) {
                            if ms.last.is_none_or(|(t, _)| s.t > t) {
                                ms.push(s.t, s.v);
                                stats.samples += 1;
                            }
                        }
                    }
                }
                wal::Record::Other(_) => {}
            }
            Ok(())
        })?;
        if let Some(c) = &replay.corruption {
            stats.repaired = Some(wal::repair(&wal_dir, c)?);
        }
        // Series whose samples all went into blocks stay out of memory.
        let Inner { series, refs, .. } = &mut inner;
        series.retain(|_, s| !s.chunks.is_empty());
        refs.retain(|_, r| series.contains_key(r));
        let writer = wal::Writer::open(&wal_dir)?;
        Ok((
            Head {
                wal_dir,
                inner: RwLock::new(inner),
                wal: Mutex::new(writer),
            },
            stats,
        ))
    }

    /// Appends samples in one commit: logged to the WAL, then visible. Samples older than a
    /// series' last one, or with its last timestamp and another value, are refused and counted.
    pub fn append(&self, samples: &[(Labels, i64, f64)]) -> Result<AppendStats> {
        let mut inner = self.inner.write().map_err(poisoned)?;
        let mut stats = AppendStats::default();
        let mut new_series: Vec<RefSeries> = Vec::new();
        let mut new_refs: HashMap<&Labels, u64> = HashMap::new();
        let mut accepted: Vec<RefSample> = Vec::with_capacity(samples.len());
        // Latest time per series within this batch, so the batch itself is ordered.
        let mut pending: HashMap<u64, (i64, f64)> = HashMap::new();
        for (labels, t, v) in samples {
            if *t < inner.min_valid_time {
                stats.out_of_bounds += 1;
                continue;
            }
            let series_ref = match inner.refs.get(labels) {
                Some(r) => *r,
                None => *new_refs.entry(labels).or_insert_with(|| {
                    let r = inner.next_ref + new_series.len() as u64;
                    new_series.push(RefSeries {
                        series_ref: r,
                        labels: labels.clone(),
                    });
                    r
                }),
            };
            let last = pending
                .get(&series_ref)
                .copied()
                .or_else(|| inner.series.get(&series_ref).and_then(|s| s.last));
            match last {
                Some((lt, _)) if *t < lt => {
                    stats.out_of_order += 1;
                    continue;
                }
                Some((lt, lv)) if *t == lt => {
                    if lv.to_bits() != v.to_bits() {
                        stats.duplicate += 1;
                    }
                    continue;
                }
                _ => {}
            }
            pending.insert(series_ref, (*t, *v));
            accepted.push(RefSample {
                series_ref,
                t: *t,
                v: *v,
            });
        }
        if accepted.is_empty() {
            return Ok(stats);
        }
        let mut records: Vec<Vec<u8>> = Vec::with_capacity(2);
        let used: BTreeSet<u64> = accepted.iter().map(|s| s.series_ref).collect();
        new_series.retain(|s| used.contains(&s.series_ref));
        if !new_series.is_empty() {
            let mut rec = Vec::new();
            wal::encode_series(&new_series, &mut rec);
            records.push(rec);
        }
        let mut rec = Vec::new();
        wal::encode_samples(&accepted, &mut rec);
        records.push(rec);
        {
            let mut w = self.wal.lock().map_err(poisoned)?;
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            w.log(&refs)?;
        }
        for s in new_series {
            inner.next_ref = inner.next_ref.max(s.series_ref + 1);
            inner.refs.insert(s.labels.clone(), s.series_ref);
            inner.series.insert(
                s.series_ref,
                MemSeries {
                    labels: s.labels,
                    chunks: Vec::new(),
                    last: None,
                },
            );
        }
        for s in &accepted {
            if let Some(ms) = inner.series.get_mut(&s.series_ref) {
                ms.push(s.t, s.v);
            }
        }
        stats.appended = accepted.len() as u64;
        Ok(stats)
    }

    /// Flushes the WAL to disk (for a clean shutdown).
    pub fn sync(&self) -> Result<()> {
        self.wal.lock().map_err(poisoned)?.sync()
    }

    /// The head's time range, `None` when empty.
    pub fn time_range(&self) -> Result<Option<(i64, i64)>> {
        Ok(self.inner.read().map_err(poisoned)?.time_range())
    }

    pub fn num_series(&self) -> Result<usize> {
        Ok(self.inner.read().map_err(poisoned)?.series.len())
    }

    /// Series matching all `matchers` with chunks overlapping `[mint, maxt]`, in label order.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<HeadSeries>> {
        let inner = self.inner.read().map_err(poisoned)?;
        let mut out: Vec<HeadSeries> = inner
            .series
            .values()
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.value_of(&m.name)))
            })
            .filter_map(|s| {
                let chunks: Vec<(i64, i64, Vec<u8>)> = s
                    .chunks
                    .iter()
                    .filter(|c| c.max_time >= mint && c.min_time <= maxt)
                    .map(|c| (c.min_time, c.max_time, c.data.bytes().to_vec()))
                    .collect();
                (!chunks.is_empty()).then(|| HeadSeries {
                    labels: s.labels.clone(),
                    chunks,
                })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Whether the head spans enough to cut a block of `block_range` (Prometheus: more
    /// than 1.5 ranges), and that block's `[mint, maxt)`.
    pub fn compactable(&self, block_range: i64) -> Result<Option<(i64, i64)>> {
        let Some((min, max)) = self.time_range()? else {
            return Ok(None);
        };
        if block_range <= 0 || max - min <= block_range / 2 * 3 {
            return Ok(None);
        }
        let maxt = min.div_euclid(block_range) * block_range + block_range;
        Ok(Some((min, maxt)))
    }

    /// Writes the head's samples in `[mint, maxt)` as a block under `parent` (skipped when
    /// there are none), then drops them from memory and compacts the WAL.
    pub fn cut_block(
        &self,
        parent: &Path,
        mint: i64,
        maxt: i64,
        prepare: impl FnOnce(&mut BlockWriter),
    ) -> Result<Option<BlockMeta>> {
        let meta = {
            let inner = self.inner.read().map_err(poisoned)?;
            let mut series: Vec<&MemSeries> = inner.series.values().collect();
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            let mut writer = BlockWriter::new(parent, mint, maxt)?;
            prepare(&mut writer);
            let mut buf = Vec::new();
            let mut any = false;
            for s in series {
                buf.clear();
                s.samples(mint, maxt - 1, &mut buf)?;
                if !buf.is_empty() {
                    any = true;
                    writer.add_series(&s.labels, buf.iter().copied())?;
                }
            }
            if any {
                Some(writer.finish()?)
            } else {
                None
            }
        };
        self.truncate(maxt)?;
        Ok(meta)
    }

    /// Drops samples before `t` from memory and rewrites the WAL as a checkpoint of what
    /// remains; later appends go to a new segment.
    pub fn truncate(&self, t: i64) -> Result<()> {
        let (upto, records) = {
            let mut inner = self.inner.write().map_err(poisoned)?;
            inner.min_valid_time = inner.min_valid_time.max(t);
            let mut buf = Vec::new();
            let mut dropped = Vec::new();
            for (r, s) in inner.series.iter_mut() {
                if s.chunks.iter().all(|c| c.min_time >= t) {
                    continue;
                }
                buf.clear();
                s.samples(t, i64::MAX, &mut buf)?;
                s.chunks.clear();
                let last = s.last;
                for &(st, sv) in &buf {
                    s.push(st, sv);
                }
                s.last = last;
                if s.chunks.is_empty() {
                    dropped.push(*r);
                }
            }
            for r in dropped {
                if let Some(s) = inner.series.remove(&r) {
                    inner.refs.remove(&s.labels);
                }
            }
            let mut records = Vec::new();
            let series: Vec<RefSeries> = inner
                .series
                .iter()
                .map(|(r, s)| RefSeries {
                    series_ref: *r,
                    labels: s.labels.clone(),
                })
                .collect();
            let mut rec = Vec::new();
            wal::encode_series(&series, &mut rec);
            records.push(rec);
            for (r, s) in &inner.series {
                buf.clear();
                s.samples(i64::MIN, i64::MAX, &mut buf)?;
                for part in buf.chunks(10_000) {
                    let samples: Vec<RefSample> = part
                        .iter()
                        .map(|&(t, v)| RefSample {
                            series_ref: *r,
                            t,
                            v,
                        })
                        .collect();
                    let mut rec = Vec::new();
                    wal::encode_samples(&samples, &mut rec);
                    records.push(rec);
                }
            }
            let mut w = self.wal.lock().map_err(poisoned)?;
            let new = w.next_segment()?;
            (new.saturating_sub(1), records)
        };
        wal::checkpoint(&self.wal_dir, upto, records.iter().map(Vec::as_slice))
    }

    /// Label names of series matching `matchers` (all series when empty), sorted.
    pub fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let inner = self.inner.read().map_err(poisoned)?;
        let mut names = BTreeSet::new();
        for s in inner.series.values() {
            if matchers
                .iter()
                .all(|m| m.matches(s.labels.value_of(&m.name)))
            {
                names.extend(s.labels.iter().map(|l| l.name.clone()));
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` over series matching `matchers`, sorted.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let inner = self.inner.read().map_err(poisoned)?;
        let mut values = BTreeSet::new();
        for s in inner.series.values() {
            if let Some(v) = s.labels.get(name) {
                if matchers
                    .iter()
                    .all(|m| m.matches(s.labels.value_of(&m.name)))
                {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(name: &str, i: usize) -> Labels {
        Labels::from_pairs([("__name__", name.to_string()), ("i", i.to_string())])
    }

    fn all(h: &Head) -> Vec<(Labels, Vec<(i64, f64)>)> {
        h.select(&[], i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| {
                let mut v = Vec::new();
                for (_, _, c) in &s.chunks {
                    crate::chunkenc::xor::decode_all(c, &mut v).unwrap();
                }
                (s.labels, v)
            })
            .collect()
    }

    #[test]
    fn appends_survive_reopen_and_refuse_disorder() {
        let d = tempfile::tempdir().unwrap();
        let (h, _) = Head::open(d.path(), i64::MIN).unwrap();
        for t in 0..300 {
            let batch: Vec<_> = (0..3).map(|i| (l("m", i), t * 1000, t as f64)).collect();
            assert_eq!(h.append(&batch).unwrap().appended, 3);
        }
        let s = h
            .append(&[(l("m", 0), 5_000, 1.0), (l("m", 0), 299_000, 7.0)])
            .unwrap();
        assert_eq!((s.out_of_order, s.duplicate, s.appended), (1, 1, 0));
        let before = all(&h);
        drop(h);
        let (h, stats) = Head::open(d.path(), i64::MIN).unwrap();
        assert_eq!((stats.series, stats.samples), (3, 900));
        assert_eq!(all(&h), before);
        assert_eq!(h.label_values("i", &[]).unwrap(), vec!["0", "1", "2"]);
        assert_eq!(h.label_names(&[]).unwrap(), vec!["__name__", "i"]);
    }

    #[test]
    fn cuts_blocks_and_checkpoints_the_wal() {
        let d = tempfile::tempdir().unwrap();
        let (h, _) = Head::open(d.path(), i64::MIN).unwrap();
        let range = 3_600_000;
        let mut t = 0;
        while h.compactable(range).unwrap().is_none() {
            let batch: Vec<_> = (0..2).map(|i| (l("r", i), t, t as f64)).collect();
            h.append(&batch).unwrap();
            t += 60_000;
        }
        let (mint, maxt) = h.compactable(range).unwrap().unwrap();
        assert_eq!((mint, maxt), (0, range));
        let meta = h.cut_block(d.path(), mint, maxt, |_| {}).unwrap().unwrap();
        assert_eq!(meta.stats.num_samples, 2 * 60);
        let block = crate::block::Block::open(&d.path().join(&meta.ulid)).unwrap();
        let mut set = block.all_series().unwrap();
        let mut n = 0;
        while let Some(s) = set.next().unwrap() {
            n += set.samples(&s).collect_all().unwrap().len();
        }
        assert_eq!(n, 120);
        let rest = all(&h);
        assert!(rest.iter().all(|(_, s)| s[0].0 == range));
        // Refused: before the block's end.
        assert_eq!(h.append(&[(l("r", 0), 10, 1.0)]).unwrap().out_of_bounds, 1);
        h.append(&[(l("r", 5), t, 1.0)]).unwrap();
        let rest = all(&h);
        drop(h);
        let (h, _) = Head::open(d.path(), range).unwrap();
        assert_eq!(all(&h), rest);
    }
}
