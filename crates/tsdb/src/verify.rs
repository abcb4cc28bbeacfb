//! Full consistency check of a block directory, as `tools bucket verify` runs it: every
//! problem is reported with the block, the series and the byte offset, and checking goes on
//! past the first problem where it safely can.

use std::fmt;
use std::path::Path;

use crate::block::{CHUNKS_DIRNAME, INDEX_FILENAME};
use crate::chunkenc::{histogram::HistogramIterator, Encoding, XorIterator};
use crate::chunks::{scan_segment, ChunkReader, FileBytes};
use crate::index::{IndexReader, SeriesEntry};
use crate::labels::Labels;
use crate::meta::BlockMeta;
use crate::tombstones::Tombstones;

/// One problem found in a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub block: String,
    pub kind: IssueKind,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueKind {
    /// A file cannot be opened or parsed at all.
    Unreadable,
    /// Bytes fail a checksum or do not decode.
    Corrupted,
    /// Series out of order or duplicated, labels unsorted.
    SeriesOrder,
    /// A chunk reference pointing outside the segment files.
    ChunkRefOutOfRange,
    /// Chunk time range outside the block, or samples outside their chunk.
    ChunkTime,
    /// A series' chunks overlap or go back in time (Thanos's "out-of-order chunks").
    OutOfOrderChunks,
    /// meta.json statistics disagree with the data.
    Stats,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block {}: {:?}: {}", self.block, self.kind, self.detail)
    }
}

/// Checks everything in the block at `dir` and returns the problems found (empty if none).
pub fn verify_block(dir: &Path) -> Vec<Issue> {
    verify(dir, true)
}

/// [`verify_block`] without decoding samples: the index, chunk references and time ranges,
/// and every chunk's checksum. What the compactor checks of its inputs.
pub fn verify_block_structure(dir: &Path) -> Vec<Issue> {
    verify(dir, false)
}

fn verify(dir: &Path, decode: bool) -> Vec<Issue> {
    let block = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut issues = Vec::new();
    let mut add = |kind: IssueKind, detail: String| {
        issues.push(Issue {
            block: block.clone(),
            kind,
            detail,
        })
    };

    let meta = match BlockMeta::read_from_dir(dir) {
        Ok(m) => Some(m),
        Err(e) => {
            add(IssueKind::Unreadable, e.to_string());
            None
        }
    };
    if let Err(e) = Tombstones::read_from_dir(dir) {
        add(IssueKind::Corrupted, e.to_string());
    }

    // Segments: every record's CRC, independent of the index.
    let chunks_dir = dir.join(CHUNKS_DIRNAME);
    let chunks = match ChunkReader::open(&chunks_dir) {
        Ok(c) => Some(c),
        Err(e) => {
            add(IssueKind::Unreadable, e.to_string());
            None
        }
    };
    if let Ok(rd) = std::fs::read_dir(&chunks_dir) {
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let name = p.display().to_string();
            match FileBytes::map(&p) {
                Ok(b) => {
                    if let Err(e) = scan_segment(&b, &name, |_, _, _| {}) {
                        add(IssueKind::Corrupted, e.to_string());
                    }
                }
                Err(e) => add(IssueKind::Unreadable, e.to_string()),
            }
        }
    }

    let index_path = dir.join(INDEX_FILENAME);
    let index = match FileBytes::map(&index_path)
        .and_then(|b| IndexReader::new(b, index_path.display().to_string()))
    {
        Ok(ix) => ix,
        Err(e) => {
            add(IssueKind::Unreadable, e.to_string());
            return issues;
        }
    };
    let all = match index.all_postings() {
        Ok(p) => p,
        Err(e) => {
            add(IssueKind::Corrupted, e.to_string());
            return issues;
        }
    };
    if !all.windows(2).all(|w| w[0] < w[1]) {
        add(
            IssueKind::Corrupted,
            format!("{}: all-series postings not sorted", index_path.display()),
        );
    }

    let (block_min, block_max) = meta
        .as_ref()
        .map_or((i64::MIN, i64::MAX), |m| (m.min_time, m.max_time));
    let mut entry = SeriesEntry::default();
    let mut prev: Option<Labels> = None;
    let (mut n_series, mut n_chunks, mut n_samples) = (0u64, 0u64, 0u64);
    for &sref in &all {
        if let Err(e) = index.series(sref, &mut entry) {
            add(IssueKind::Corrupted, e.to_string());
            continue;
        }
        let labels = match index.labels_of(&entry.label_refs) {
            Ok(l) => l,
            Err(e) => {
                add(IssueKind::SeriesOrder, format!("series ref {sref}: {e}"));
                continue;
            }
        };
        n_series += 1;
        if let Some(p) = &prev {
            if p >= &labels {
                add(
                    IssueKind::SeriesOrder,
                    format!(
                        "series {labels} (ref {sref}, offset {}) is not after {p}",
                        u64::from(sref) * 16
                    ),
                );
            }
        }
        let mut last_max = i64::MIN;
        for (i, c) in entry.chunks.iter().enumerate() {
            n_chunks += 1;
            // Formatted only for a problem: this loop runs once per chunk of the block.
            let at = || format!("series {labels} chunk {i} (ref {:#x})", c.chunk_ref.0);
            if c.min_time < block_min || c.max_time >= block_max {
                add(
                    IssueKind::ChunkTime,
                    format!(
                        "{}: time range [{}, {}] outside block [{block_min}, {block_max})",
                        at(),
                        c.min_time,
                        c.max_time
                    ),
                );
            }
            if i > 0 && c.min_time <= last_max {
                add(
                    IssueKind::OutOfOrderChunks,
                    format!("{}: overlaps the previous chunk", at()),
                );
            }
            last_max = c.max_time;
            let Some(chunks) = &chunks else { continue };
            let (enc, data) = match chunks.chunk_checked(c.chunk_ref) {
                Ok(x) => x,
                Err(e) if e.to_string().contains("out of range") => {
                    add(IssueKind::ChunkRefOutOfRange, format!("{}: {e}", at()));
                    continue;
                }
                Err(e) => {
                    add(IssueKind::Corrupted, format!("{}: {e}", at()));
                    continue;
                }
            };
            if !decode {
                n_samples += u64::from(if enc == Encoding::AGGR {
                    crate::chunkenc::aggr::num_samples(data)
                } else {
                    crate::chunkenc::num_samples(data)
                });
                continue;
            }
            match check_chunk_samples(enc, data, c.min_time, c.max_time) {
                Ok(n) => n_samples += n,
                Err((kind, msg)) => add(kind, format!("{}: {msg}", at())),
            }
        }
        prev = Some(labels);
    }

    if let Some(m) = &meta {
        let s = &m.stats;
        for (name, want, got) in [
            ("numSeries", s.num_series, n_series),
            ("numChunks", s.num_chunks, n_chunks),
            ("numSamples", s.num_samples, n_samples),
        ] {
            if want != 0 && want != got {
                add(
                    IssueKind::Stats,
                    format!("meta.json {name} is {want}, the block holds {got}"),
                );
            }
        }
    }
    issues
}

/// Decodes a chunk fully; returns its sample count, or the problem.
fn check_chunk_samples(
    enc: Encoding,
    data: &[u8],
    mint: i64,
    maxt: i64,
) -> Result<u64, (IssueKind, String)> {
    let mut n = 0u64;
    let mut last = i64::MIN;
    let mut check_t = |t: i64| -> Result<(), (IssueKind, String)> {
        if t < mint || t > maxt {
            return Err((
                IssueKind::ChunkTime,
                format!("sample at {t} outside the chunk's [{mint}, {maxt}]"),
            ));
        }
        if n > 0 && t <= last {
            return Err((
                IssueKind::ChunkTime,
                format!("sample at {t} not after {last}"),
            ));
        }
        last = t;
        n += 1;
        Ok(())
    };
    match enc {
        Encoding::XOR => {
            let mut it = XorIterator::new(data);
            while it.next() {
                check_t(it.t())?;
            }
            if let Some(e) = it.err() {
                return Err((IssueKind::Corrupted, e.to_string()));
            }
        }
        Encoding::HISTOGRAM | Encoding::FLOAT_HISTOGRAM => {
            let mut it = HistogramIterator::new(enc, data)
                .map_err(|e| (IssueKind::Corrupted, e.to_string()))?;
            while it.next() {
                check_t(it.at().t)?;
            }
            if let Some(e) = it.err() {
                return Err((IssueKind::Corrupted, e.to_string()));
            }
        }
        // Thanos aggregate chunks: every sub-chunk must decode; the count aggregate holds one
        // sample per window (the counter also holds raw values before the first window).
        Encoding::AGGR => {
            for t in crate::chunkenc::aggr::AggrType::ALL {
                let sub = crate::chunkenc::aggr::get(data, t)
                    .map_err(|e| (IssueKind::Corrupted, format!("aggregate {}: {e}", t.name())))?;
                let Some((_, sub)) = sub else { continue };
                let mut it = XorIterator::new(sub);
                while it.next() {
                    if t == crate::chunkenc::aggr::AggrType::Count {
                        check_t(it.t())?;
                    }
                }
                if let Some(e) = it.err() {
                    return Err((IssueKind::Corrupted, format!("aggregate {}: {e}", t.name())));
                }
            }
        }
        other => {
            return Err((
                IssueKind::Corrupted,
                format!("unknown chunk encoding {other}"),
            ))
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockWriter;

    fn block(dir: &Path) -> std::path::PathBuf {
        let mut w = BlockWriter::new(dir, 0, 100_000).unwrap();
        for i in 0..5 {
            let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
            w.add_series(&l, (0..300).map(|t| (t * 100, t as f64)))
                .unwrap();
        }
        let m = w.finish().unwrap();
        dir.join(m.ulid)
    }

    #[test]
    fn clean_block_has_no_issues() {
        let d = tempfile::tempdir().unwrap();
        let b = block(d.path());
        assert_eq!(verify_block(&b), vec![]);
    }

    #[test]
    fn flipped_chunk_byte_is_found() {
        let d = tempfile::tempdir().unwrap();
        let b = block(d.path());
        let seg = b.join("chunks/000001");
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[40] ^= 0x55;
        std::fs::write(&seg, bytes).unwrap();
        let issues = verify_block(&b);
        assert!(
            issues
                .iter()
                .any(|i| i.kind == IssueKind::Corrupted && i.detail.contains("000001")),
            "{issues:?}"
        );
    }

    #[test]
    fn wrong_stats_and_time_range_are_found() {
        let d = tempfile::tempdir().unwrap();
        let b = block(d.path());
        let mut m = BlockMeta::read_from_dir(&b).unwrap();
        m.stats.num_series = 9;
        m.max_time = 10_000;
        m.write_to_dir(&b).unwrap();
        let issues = verify_block(&b);
        assert!(issues.iter().any(|i| i.kind == IssueKind::Stats));
        assert!(issues
            .iter()
            .any(|i| i.kind == IssueKind::ChunkTime && i.detail.contains("outside block")));
    }
}
