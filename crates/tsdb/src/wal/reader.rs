//! Reading segments back into whole records, and replaying a WAL directory.
//!
//! A segment is read page by page. Besides checksums, the reader holds fragments to the
//! shapes the writer produces, which catches torn and zeroed tails that checksums alone
//! would let through: a first or middle fragment fills its page to the end; a middle or
//! last fragment opens a page and is not empty; a zero-length first fragment only occupies
//! the last 7 bytes of a page; padding is all zeros to the page end. A segment may end
//! anywhere between records (the active segment ends inside its last page); it may not end
//! inside a record.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::dir::{check_sequential, last_checkpoint, list_segments, segment_name, segment_path};
use super::{FIRST, FULL, HEADER_SIZE, LAST, MIDDLE, PADDING, PAGE_SIZE, SNAPPY, TYPE_MASK, ZSTD};
use crate::encoding::crc32;
use crate::error::{Error, Result};

/// The outcome of [`replay`].
#[derive(Debug, Default)]
pub struct Replay {
    /// Where the WAL stopped being readable: an [`Error::Corrupted`] whose `what` is the
    /// segment file and whose `offset` is the end of the last good record in it (everything
    /// from there on, and every later segment, was not replayed). Pass it to
    /// [`repair`](super::repair).
    pub corruption: Option<Error>,
    /// Records the callback accepted.
    pub records: u64,
    /// Segment files read, checkpoint segments included.
    pub segments_read: u32,
}

/// Replays the WAL in `dir`: the segments of the newest checkpoint, then the WAL segments
/// after it, calling `f` with every whole, decompressed record in order.
///
/// A damaged WAL segment ends the replay early with [`Replay::corruption`] set; the records
/// before the damage have been delivered. An error from `f` that
/// [`is_corrupted`](Error::is_corrupted) (an undecodable record) is treated the same way,
/// positioned at that record. Errors that are not about the WAL's bytes (I/O, other errors
/// of `f`, zstd compression, a gap between segments), and any damage inside a checkpoint,
/// are returned as `Err`.
pub fn replay(dir: &Path, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<Replay> {
    let mut out = Replay::default();
    let mut records = 0u64;
    let mut cb = |rec: &[u8], _end: u64| {
        f(rec)?;
        records += 1;
        Ok(())
    };
    let mut after = None;
    if let Some((n, cdir)) = last_checkpoint(dir)? {
        let segs = list_segments(&cdir)?;
        check_sequential(&cdir, &segs)?;
        for i in segs {
            out.segments_read += 1;
            if let Some(c) = read_segment(&segment_path(&cdir, i), &mut cb)? {
                return Err(c);
            }
        }
        after = Some(n);
    }
    let segs: Vec<u32> = list_segments(dir)?
        .into_iter()
        .filter(|&i| after.is_none_or(|n| i > n))
        .collect();
    check_sequential(dir, &segs)?;
    if let (Some(n), Some(&first)) = (after, segs.first()) {
        if u64::from(first) != u64::from(n) + 1 {
            return Err(Error::corrupted(
                dir.display().to_string(),
                0,
                format!(
                    "segment {} after checkpoint {n} is missing",
                    segment_name(n + 1)
                ),
            ));
        }
    }
    for i in segs {
        out.segments_read += 1;
        if let Some(c) = read_segment(&segment_path(dir, i), &mut cb)? {
            out.corruption = Some(c);
            break;
        }
    }
    out.records = records;
    Ok(out)
}

/// Reads the records of one segment file, calling `f` with each record and the offset just
/// past its last fragment. Returns the corruption that ended it early, if any.
pub(crate) fn read_segment(
    path: &Path,
    f: &mut dyn FnMut(&[u8], u64) -> Result<()>,
) -> Result<Option<Error>> {
    let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut r = SegmentReader {
        path,
        rec: Vec::new(),
        out: Vec::new(),
        decoder: snap::raw::Decoder::new(),
        open: None,
        good_end: 0,
    };
    let mut page = vec![0u8; PAGE_SIZE];
    let mut page_off = 0u64;
    loop {
        let n = fill(&mut file, &mut page).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        if let Err(e) = r.page(&page[..n], page_off, f) {
            return match e {
                Stop::Corrupt(msg) => Ok(Some(r.corruption(msg))),
                Stop::Fail(e) => Err(e),
            };
        }
        if n < PAGE_SIZE {
            break;
        }
        page_off += PAGE_SIZE as u64;
    }
    if let Some((start, _)) = r.open {
        let msg = format!("segment ends inside the record starting at offset {start} (torn write)");
        return Ok(Some(r.corruption(msg)));
    }
    Ok(None)
}

/// Why reading a segment stopped: bad bytes (reported as corruption) or a hard error.
enum Stop {
    Corrupt(String),
    Fail(Error),
}

struct SegmentReader<'p> {
    path: &'p Path,
    /// Fragment data of the record being assembled.
    rec: Vec<u8>,
    /// Decompressed record.
    out: Vec<u8>,
    decoder: snap::raw::Decoder,
    /// The record being assembled: offset of its first fragment, compressed or not.
    open: Option<(u64, bool)>,
    /// The offset just past the last complete record.
    good_end: u64,
}

impl SegmentReader<'_> {
    fn corruption(&self, msg: String) -> Error {
        Error::corrupted(self.path.display().to_string(), self.good_end, msg)
    }

    /// Consumes the fragments of one page (`page` is shorter than a page only at the end of
    /// the file).
    fn page(
        &mut self,
        page: &[u8],
        page_off: u64,
        f: &mut dyn FnMut(&[u8], u64) -> Result<()>,
    ) -> Result<(), Stop> {
        let corrupt = |at: usize, what: &str| {
            Stop::Corrupt(format!("{what} at offset {}", page_off + at as u64))
        };
        let mut pos = 0;
        while pos < page.len() {
            let b = page[pos];
            let kind = b & TYPE_MASK;
            let left = PAGE_SIZE - pos;
            if kind == PADDING {
                if self.open.is_some() {
                    return Err(corrupt(pos, "page padding inside a record"));
                }
                if let Some(k) = page[pos..].iter().position(|&c| c != 0) {
                    return Err(corrupt(pos + k, "non-zero byte in page padding"));
                }
                return Ok(());
            }
            if b & !(TYPE_MASK | SNAPPY | ZSTD) != 0
                || b & (SNAPPY | ZSTD) == SNAPPY | ZSTD
                || kind > LAST
            {
                return Err(corrupt(
                    pos,
                    &format!("invalid fragment type byte {b:#04x}"),
                ));
            }
            if left < HEADER_SIZE {
                return Err(corrupt(pos, "fragment header crosses a page boundary"));
            }
            let Some(hdr) = page.get(pos..pos + HEADER_SIZE) else {
                return Err(corrupt(pos, "segment ends inside a fragment header"));
            };
            let len = usize::from(u16::from_be_bytes([hdr[1], hdr[2]]));
            let crc = u32::from_be_bytes([hdr[3], hdr[4], hdr[5], hdr[6]]);
            let end = pos + HEADER_SIZE + len;
            if end > PAGE_SIZE {
                return Err(corrupt(
                    pos,
                    &format!("fragment of {len} bytes overruns its page"),
                ));
            }
            let Some(data) = page.get(pos + HEADER_SIZE..end) else {
                return Err(corrupt(
                    pos,
                    &format!("segment ends inside a fragment of {len} bytes"),
                ));
            };
            if crc32(data) != crc {
                return Err(corrupt(pos, "fragment checksum mismatch"));
            }
            // Checked only on an intact fragment, so that garbage is reported as corruption.
            if b & ZSTD != 0 {
                return Err(Stop::Fail(Error::InvalidInput(format!(
                    "{} offset {}: zstd-compressed WAL record; only snappy is supported \
                     (run Prometheus with --storage.tsdb.wal-compression-type=snappy)",
                    self.path.display(),
                    page_off + pos as u64
                ))));
            }
            let snappy = b & SNAPPY != 0;
            let fills_page = end == PAGE_SIZE;
            match kind {
                FULL | FIRST => {
                    if self.open.is_some() {
                        return Err(corrupt(pos, "record starts before the previous one ended"));
                    }
                    if kind == FIRST && !fills_page {
                        return Err(corrupt(pos, "first fragment does not fill its page"));
                    }
                    self.rec.clear();
                    self.open = Some((page_off + pos as u64, snappy));
                }
                _ => {
                    let Some((_, was_snappy)) = self.open else {
                        return Err(corrupt(pos, "continuation fragment without a first one"));
                    };
                    if pos != 0 || len == 0 || (kind == MIDDLE && !fills_page) {
                        return Err(corrupt(pos, "misplaced continuation fragment"));
                    }
                    if snappy != was_snappy {
                        return Err(corrupt(pos, "compression changes within a record"));
                    }
                }
            }
            self.rec.extend_from_slice(data);
            pos = end;
            if kind == FULL || kind == LAST {
                self.finish(page_off + end as u64, f)?;
            }
        }
        Ok(())
    }

    /// Hands the assembled record to `f`; `end` is the offset just past it.
    fn finish(
        &mut self,
        end: u64,
        f: &mut dyn FnMut(&[u8], u64) -> Result<()>,
    ) -> Result<(), Stop> {
        let Some((start, snappy)) = self.open.take() else {
            return Ok(());
        };
        let rec: &[u8] = if snappy {
            self.decompress()
                .map_err(|e| Stop::Corrupt(format!("record at offset {start}: {e}")))?;
            &self.out
        } else {
            &self.rec
        };
        match f(rec, end) {
            Ok(()) => {}
            Err(e) if e.is_corrupted() => {
                return Err(Stop::Corrupt(format!("record at offset {start}: {e}")));
            }
            Err(e) => return Err(Stop::Fail(e)),
        }
        self.good_end = end;
        Ok(())
    }

    fn decompress(&mut self) -> std::result::Result<(), String> {
        let n = snap::raw::decompress_len(&self.rec).map_err(|e| format!("snappy: {e}"))?;
        // A snappy block expands at most ~22 times; refuse absurd lengths before allocating.
        if n > self.rec.len().saturating_mul(24).saturating_add(64) {
            return Err(format!(
                "snappy length {n} is impossible for {} bytes",
                self.rec.len()
            ));
        }
        self.out.resize(n, 0);
        let got = self
            .decoder
            .decompress(&self.rec, &mut self.out)
            .map_err(|e| format!("snappy: {e}"))?;
        self.out.truncate(got);
        Ok(())
    }
}

/// Reads into `buf` until it is full or the file ends; returns the bytes read.
fn fill(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
