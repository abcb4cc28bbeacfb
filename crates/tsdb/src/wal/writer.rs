//! Appending records to the active segment, page by page.
//!
//! Records are fragmented into a 32 KiB in-memory page. A full page (fewer than 7 bytes
//! left) is zero-padded and written; at the end of every [`Writer::log`] call the bytes added
//! to the partial page since the last write are written too, so the file always ends where
//! the log does and a killed process loses nothing that `log` acknowledged. Nothing is
//! rewritten: the file offset only moves forward. A record that does not fit in what is left
//! of the segment starts a new segment.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::dir::{last_checkpoint, list_segments, segment_path};
use super::{FIRST, FULL, HEADER_SIZE, LAST, MIDDLE, PAGE_SIZE, SEGMENT_SIZE, SNAPPY};
use crate::chunks::sync_dir;
use crate::encoding::crc32;
use crate::error::{Error, Result};

/// Appends records to the WAL in a directory. See the module documentation.
pub struct Writer {
    dir: PathBuf,
    segment_size: usize,
    compress: bool,
    /// The active segment: index, path and open file.
    index: u32,
    path: PathBuf,
    file: File,
    /// The page being filled: `alloc` bytes used, `flushed` of them already written.
    page: Box<[u8]>,
    alloc: usize,
    flushed: usize,
    /// Whole pages written to the active segment.
    done_pages: usize,
    encoder: snap::raw::Encoder,
    snappy_buf: Vec<u8>,
    /// Set by a failed write: the segment may end in a half-written record, so the writer
    /// refuses further work rather than append after it.
    failed: Option<String>,
}

impl Writer {
    /// Opens the WAL in `dir` (created if missing) with 128 MiB segments, writing into a new
    /// segment after the last existing one (and after the newest checkpoint). Records are
    /// snappy-compressed, as Prometheus 2.x does by default.
    pub fn open(dir: &Path) -> Result<Writer> {
        Self::with_segment_size(dir, SEGMENT_SIZE)
    }

    /// As [`open`](Self::open) with another segment size, a multiple of the page size.
    pub fn with_segment_size(dir: &Path, size: usize) -> Result<Writer> {
        if size < PAGE_SIZE || !size.is_multiple_of(PAGE_SIZE) {
            return Err(Error::InvalidInput(format!(
                "WAL segment size {size} is not a positive multiple of {PAGE_SIZE}"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let after_segments = list_segments(dir)?.last().map(|&i| u64::from(i) + 1);
        let after_checkpoint = last_checkpoint(dir)?.map(|(i, _)| u64::from(i) + 1);
        let next = after_segments.max(after_checkpoint).unwrap_or(0);
        let index = u32::try_from(next)
            .map_err(|_| Error::InvalidInput(format!("no WAL segment index after {next}")))?;
        let (path, file) = create_segment(dir, index)?;
        Ok(Writer {
            dir: dir.to_path_buf(),
            segment_size: size,
            compress: true,
            index,
            path,
            file,
            page: vec![0u8; PAGE_SIZE].into_boxed_slice(),
            alloc: 0,
            flushed: 0,
            done_pages: 0,
            encoder: snap::raw::Encoder::new(),
            snappy_buf: Vec::new(),
            failed: None,
        })
    }

    /// Turns snappy compression of later records on or off. A record is stored compressed
    /// only when that makes it smaller.
    pub fn set_compress(&mut self, on: bool) {
        self.compress = on;
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index of the segment being written.
    pub fn current_segment(&self) -> u32 {
        self.index
    }

    /// Appends whole records in order and writes them to the segment file before returning
    /// (no fsync: see [`sync`](Self::sync)).
    pub fn log(&mut self, records: &[&[u8]]) -> Result<()> {
        self.check()?;
        let mut buf = std::mem::take(&mut self.snappy_buf);
        let mut res = Ok(());
        for (i, rec) in records.iter().enumerate() {
            res = self.log_one(rec, i + 1 == records.len(), &mut buf);
            if res.is_err() {
                break;
            }
        }
        self.snappy_buf = buf;
        self.guard(res)
    }

    /// Fsyncs the active segment.
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        let r = self
            .file
            .sync_data()
            .map_err(|e| Error::io("sync", &self.path, e));
        self.guard(r)
    }

    /// Pads the last page of the active segment, fsyncs and closes it, and starts the next
    /// segment, whose index it returns.
    pub fn next_segment(&mut self) -> Result<u32> {
        self.check()?;
        let r = self.cut_segment();
        self.guard(r)
    }

    /// Pads the last page, fsyncs and closes the active segment.
    pub fn close(mut self) -> Result<()> {
        self.check()?;
        if self.alloc > 0 {
            self.flush_page(true)?;
        }
        self.file
            .sync_all()
            .map_err(|e| Error::io("sync", &self.path, e))
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(msg) => Err(Error::io(
                "write",
                &self.path,
                std::io::Error::other(format!("WAL writer failed earlier: {msg}")),
            )),
        }
    }

    fn guard<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    fn log_one(&mut self, rec: &[u8], last_in_batch: bool, buf: &mut Vec<u8>) -> Result<()> {
        let mut data = rec;
        let mut flags = 0u8;
        if self.compress && !rec.is_empty() {
            let max = snap::raw::max_compress_len(rec.len());
            if max > 0 {
                buf.resize(max, 0);
                if let Ok(n) = self.encoder.compress(rec, buf) {
                    if n < rec.len() {
                        buf.truncate(n);
                        data = buf;
                        flags = SNAPPY;
                    }
                }
            }
        }

        // Room for fragment data in the rest of the segment: this page, then whole pages.
        // Negative once an oversized record has overrun the segment.
        let pages = (self.segment_size / PAGE_SIZE) as i64;
        let room = (PAGE_SIZE - self.alloc - HEADER_SIZE) as i64
            + (PAGE_SIZE - HEADER_SIZE) as i64 * (pages - self.done_pages as i64 - 1);
        // A record larger than a whole segment goes alone into a fresh, oversized segment.
        if data.len() as i64 > room && (self.done_pages > 0 || self.alloc > 0) {
            self.cut_segment()?;
        }

        let mut first = true;
        loop {
            let a = self.alloc;
            let n = data.len().min(PAGE_SIZE - a - HEADER_SIZE);
            let (part, rest) = data.split_at(n);
            let kind = match (first, rest.is_empty()) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, false) => MIDDLE,
                (false, true) => LAST,
            };
            let p = &mut self.page[a..a + HEADER_SIZE + n];
            p[0] = kind | flags;
            p[1..3].copy_from_slice(&(n as u16).to_be_bytes());
            p[3..7].copy_from_slice(&crc32(part).to_be_bytes());
            p[HEADER_SIZE..].copy_from_slice(part);
            self.alloc += HEADER_SIZE + n;
            if PAGE_SIZE - self.alloc < HEADER_SIZE {
                self.flush_page(true)?;
            }
            data = rest;
            first = false;
            if data.is_empty() {
                break;
            }
        }
        if last_in_batch && self.alloc > self.flushed {
            self.flush_page(false)?;
        }
        Ok(())
    }

    /// Writes the unwritten bytes of the page; with `pad`, the whole rest of the page as
    /// zeros, and starts a new page.
    fn flush_page(&mut self, pad: bool) -> Result<()> {
        if pad {
            self.alloc = PAGE_SIZE;
        }
        self.file
            .write_all(&self.page[self.flushed..self.alloc])
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.flushed = self.alloc;
        if pad {
            self.page.fill(0);
            self.alloc = 0;
            self.flushed = 0;
            self.done_pages += 1;
        }
        Ok(())
    }

    fn cut_segment(&mut self) -> Result<u32> {
        if self.alloc > 0 {
            self.flush_page(true)?;
        }
        self.file
            .sync_all()
            .map_err(|e| Error::io("sync", &self.path, e))?;
        let next = self.index.checked_add(1).ok_or_else(|| {
            Error::InvalidInput(format!("no WAL segment index after {}", self.index))
        })?;
        let (path, file) = create_segment(&self.dir, next)?;
        self.index = next;
        self.path = path;
        self.file = file;
        self.done_pages = 0;
        Ok(next)
    }
}

/// Creates segment `index` in `dir` (it must not exist) and makes its name durable.
fn create_segment(dir: &Path, index: u32) -> Result<(PathBuf, File)> {
    let path = segment_path(dir, index);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    sync_dir(dir)?;
    Ok((path, file))
}
