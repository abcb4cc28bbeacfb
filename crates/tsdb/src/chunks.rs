//! Chunk segment files: `chunks/000001`, `000002`, …
//!
//! ```text
//! header:  magic 0x85BD40DD <4b BE> | version 1 <1b> | 3 zero bytes
//! record:  data length <uvarint> | encoding <1b> | data | CRC32C(encoding, data) <4b BE>
//! ```
//! A chunk reference is `segment index << 32 | offset of the record in that segment`, the
//! index counting from 0 for `000001`. Segments are cut before passing 512 MiB; a chunk
//! never spans two files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunkenc::Encoding;
use std::ops::Range;

use crate::encoding::{put_uvarint, Decbuf};
use crate::error::{Error, Result};

pub const MAGIC_CHUNKS: u32 = 0x85BD_40DD;
pub const SEGMENT_HEADER_SIZE: u64 = 8;
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;

/// A chunk's place in a block: segment index and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ChunkRef(pub u64);

impl ChunkRef {
    pub fn new(segment: u32, offset: u32) -> Self {
        ChunkRef((u64::from(segment) << 32) | u64::from(offset))
    }
    pub fn segment(self) -> u32 {
        (self.0 >> 32) as u32
    }
    pub fn offset(self) -> u32 {
        self.0 as u32
    }
}

/// A chunk as the index describes it: time range of its samples (both inclusive) and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChunkMeta {
    pub min_time: i64,
    pub max_time: i64,
    pub chunk_ref: ChunkRef,
}

/// The file name of segment `index` (0-based): `000001` for 0.
pub fn segment_file_name(index: u32) -> String {
    format!("{:06}", u64::from(index) + 1)
}

/// Writes chunks into numbered segment files inside a `chunks` directory.
pub struct ChunkWriter {
    dir: PathBuf,
    max_segment_size: u64,
    file: Option<(BufWriter<File>, PathBuf)>,
    segment: u32,
    offset: u64,
    scratch: Vec<u8>,
}

impl ChunkWriter {
    pub fn new(dir: &Path) -> Result<Self> {
        Self::with_segment_size(dir, DEFAULT_MAX_SEGMENT_SIZE)
    }

    pub fn with_segment_size(dir: &Path, max_segment_size: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
        Ok(ChunkWriter {
            dir: dir.to_path_buf(),
            max_segment_size,
            file: None,
            segment: 0,
            offset: 0,
            scratch: Vec::with_capacity(16),
        })
    }

    fn cut(&mut self) -> Result<()> {
        self.finish_segment()?;
        let index = if self.offset == 0 && self.file.is_none() && self.segment == 0 {
            0
        } else {
            self.segment + 1
        };
        let path = self.dir.join(segment_file_name(index));
        let f = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut header = MAGIC_CHUNKS.to_be_bytes().to_vec();
        header.extend_from_slice(&[1, 0, 0, 0]);
        w.write_all(&header)
            .map_err(|e| Error::io("write", &path, e))?;
        self.file = Some((w, path));
        self.segment = index;
        self.offset = SEGMENT_HEADER_SIZE;
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<()> {
        if let Some((w, path)) = self.file.take() {
            let f = w
                .into_inner()
                .map_err(|e| Error::io("flush", &path, e.into_error()))?;
            f.sync_all().map_err(|e| Error::io("sync", &path, e))?;
        }
        Ok(())
    }

    /// Appends one chunk and returns its reference.
    pub fn write_chunk(&mut self, encoding: Encoding, data: &[u8]) -> Result<ChunkRef> {
        self.scratch.clear();
        put_uvarint(&mut self.scratch, data.len() as u64);
        let record_len = self.scratch.len() as u64 + 1 + data.len() as u64 + 4;
        let need_cut = match self.file {
            None => true,
            Some(_) => {
                self.offset + record_len > self.max_segment_size
                    && self.offset > SEGMENT_HEADER_SIZE
            }
        };
        if need_cut {
            self.cut()?;
        }
        let offset = u32::try_from(self.offset).map_err(|_| {
            Error::InvalidInput(format!(
                "chunk segment offset {} exceeds 4 GiB",
                self.offset
            ))
        })?;
        let r = ChunkRef::new(self.segment, offset);
        let mut crc = crc32c::crc32c(&[encoding.0]);
        crc = crc32c::crc32c_append(crc, data);
        let (w, path) = self
            .file
            .as_mut()
            .ok_or_else(|| Error::InvalidInput("chunk writer closed".into()))?;
        let io = |e| Error::io("write", path.as_path(), e);
        w.write_all(&self.scratch).map_err(io)?;
        w.write_all(&[encoding.0]).map_err(io)?;
        w.write_all(data).map_err(io)?;
        w.write_all(&crc.to_be_bytes()).map_err(io)?;
        self.offset += record_len;
        Ok(r)
    }

    /// Flushes and syncs the last segment.
    pub fn close(mut self) -> Result<()> {
        self.finish_segment()?;
        sync_dir(&self.dir)
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| Error::io("open dir", dir, e))?;
    d.sync_all().map_err(|e| Error::io("sync dir", dir, e))
}

/// Owned bytes of a file: memory-mapped or read into memory.
#[derive(Clone)]
pub struct FileBytes(Arc<dyn AsRef<[u8]> + Send + Sync>, bool);

impl FileBytes {
    pub fn from_vec(v: Vec<u8>) -> Self {
        FileBytes(Arc::new(v), false)
    }

    /// Drops the mapped pages read so far from this process (they are re-read from the page
    /// cache if touched again), so streaming through a large file does not grow the resident
    /// set. Nothing to do for bytes in memory.
    pub fn release_pages(&self) {
        if !self.1 {
            return;
        }
        let b: &[u8] = self;
        if b.is_empty() {
            return;
        }
        // SAFETY: the range is exactly this read-only file mapping; MADV_DONTNEED on a
        // file-backed mapping only discards pages, which are read from the file again later.
        unsafe {
            libc::madvise(
                b.as_ptr() as *mut libc::c_void,
                b.len(),
                libc::MADV_DONTNEED,
            );
        }
    }

    /// Memory-maps `path` (an empty file reads as empty bytes).
    pub fn map(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        if len == 0 {
            return Ok(FileBytes::from_vec(Vec::new()));
        }
        // SAFETY: block files are immutable once written; nothing truncates them while open.
        let m = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io("mmap", path, e))?;
        Ok(FileBytes(Arc::new(m), true))
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// Reads chunks from the segment files of one block.
pub struct ChunkReader {
    segments: Vec<(String, FileBytes)>,
}

impl ChunkReader {
    /// Opens every segment in `dir` (a block's `chunks` directory), checking their headers.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut names = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("list", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 6 && name.bytes().all(|b| b.is_ascii_digit()) {
                names.push(name);
            }
        }
        names.sort();
        let mut segments = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            if name != segment_file_name(i as u32) {
                return Err(Error::corrupted(
                    dir.join(&name).display().to_string(),
                    0,
                    format!(
                        "unexpected segment name, want {}",
                        segment_file_name(i as u32)
                    ),
                ));
            }
            let path = dir.join(&name);
            let bytes = FileBytes::map(&path)?;
            segments.push((path.display().to_string(), bytes));
        }
        Self::from_segments(segments)
    }

    /// Drops the pages of the segments read so far (see [`FileBytes::release_pages`]).
    pub fn release_pages(&self) {
        for (_, b) in &self.segments {
            b.release_pages();
        }
    }

    /// Builds a reader over segments already in memory; `name` is used in errors.
    pub fn from_segments(segments: Vec<(String, FileBytes)>) -> Result<Self> {
        for (name, b) in &segments {
            check_segment_header(b, name)?;
        }
        Ok(ChunkReader { segments })
    }

    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    pub fn segment_sizes(&self) -> impl Iterator<Item = (&str, usize)> {
        self.segments.iter().map(|(n, b)| (n.as_str(), b.len()))
    }

    /// The encoding and data of the chunk at `r`, without CRC verification.
    pub fn chunk(&self, r: ChunkRef) -> Result<(Encoding, &[u8])> {
        let (name, bytes) = self.segment(r)?;
        let rec = parse_record(bytes, u64::from(r.offset()), name)?;
        Ok((rec.encoding, rec.data))
    }

    /// Like [`chunk`](Self::chunk), also checking the record's CRC.
    pub fn chunk_checked(&self, r: ChunkRef) -> Result<(Encoding, &[u8])> {
        let (name, bytes) = self.segment(r)?;
        let rec = parse_record(bytes, u64::from(r.offset()), name)?;
        rec.check_crc(name, u64::from(r.offset()))?;
        Ok((rec.encoding, rec.data))
    }

    fn segment(&self, r: ChunkRef) -> Result<(&str, &[u8])> {
        match self.segments.get(r.segment() as usize) {
            Some((name, b)) => Ok((name, b)),
            None => Err(Error::corrupted(
                "chunk reference",
                r.0,
                format!(
                    "segment index {} out of range ({} segment files)",
                    r.segment(),
                    self.segments.len()
                ),
            )),
        }
    }
}

fn check_segment_header(b: &[u8], name: &str) -> Result<()> {
    let mut d = Decbuf::new(b, 0, name);
    let magic = d.be_u32()?;
    if magic != MAGIC_CHUNKS {
        return Err(Error::corrupted(
            name,
            0,
            format!("invalid chunk segment magic {magic:#010x}"),
        ));
    }
    let version = d.u8()?;
    if version != 1 {
        return Err(Error::corrupted(
            name,
            4,
            format!("unsupported chunk segment version {version}"),
        ));
    }
    d.skip(3)?;
    Ok(())
}

struct Record<'a> {
    encoding: Encoding,
    data: &'a [u8],
    crc: u32,
}

impl Record<'_> {
    fn check_crc(&self, name: &str, offset: u64) -> Result<()> {
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[self.encoding.0]), self.data);
        if crc != self.crc {
            return Err(Error::corrupted(
                name,
                offset,
                format!(
                    "chunk checksum mismatch: stored {:#010x}, computed {crc:#010x}",
                    self.crc
                ),
            ));
        }
        Ok(())
    }
}

/// The record at the start of `buf`, which sits at `offset` of segment `name`.
fn record_at<'a>(buf: &'a [u8], offset: u64, name: &'a str) -> Result<Record<'a>> {
    let mut d = Decbuf::new(buf, offset, name);
    let len = d.uvarint()?;
    let len = usize::try_from(len).map_err(|_| d.error("chunk length overflows"))?;
    let encoding = Encoding(d.u8()?);
    let data = d.bytes(len)?;
    let crc = d.be_u32()?;
    Ok(Record {
        encoding,
        data,
        crc,
    })
}

/// A chunk record at the start of `buf` (a byte range fetched from `offset` of segment
/// `name`), its CRC checked: the encoding and where the data lies in `buf`.
pub fn checked_record(buf: &[u8], offset: u64, name: &str) -> Result<(Encoding, Range<usize>)> {
    let rec = record_at(buf, offset, name)?;
    rec.check_crc(name, offset)?;
    let start = rec.data.as_ptr() as usize - buf.as_ptr() as usize;
    Ok((rec.encoding, start..start + rec.data.len()))
}

fn parse_record<'a>(bytes: &'a [u8], offset: u64, name: &'a str) -> Result<Record<'a>> {
    if offset < SEGMENT_HEADER_SIZE || offset >= bytes.len() as u64 {
        return Err(Error::corrupted(
            name,
            offset,
            format!(
                "chunk offset out of range (segment is {} bytes)",
                bytes.len()
            ),
        ));
    }
    record_at(&bytes[offset as usize..], offset, name)
}

/// Iterates every record in a segment in file order, checking each CRC: for `verify`.
pub fn scan_segment(
    bytes: &[u8],
    name: &str,
    mut f: impl FnMut(u32, Encoding, &[u8]),
) -> Result<()> {
    check_segment_header(bytes, name)?;
    let mut offset = SEGMENT_HEADER_SIZE as usize;
    while offset < bytes.len() {
        // Zero padding may follow the last chunk.
        if bytes[offset..].iter().all(|&b| b == 0) {
            break;
        }
        let rec = parse_record(bytes, offset as u64, name)?;
        rec.check_crc(name, offset as u64)?;
        f(offset as u32, rec.encoding, rec.data);
        let hdr = crate::encoding::uvarint_len(rec.data.len() as u64);
        offset += hdr + 1 + rec.data.len() + 4;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_records_from_fetched_ranges() {
        let data = [7u8, 8, 9];
        let mut rec = vec![3u8, 1];
        rec.extend_from_slice(&data);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[1]), &data);
        rec.extend_from_slice(&crc.to_be_bytes());
        rec.extend_from_slice(b"next record");
        let (enc, range) = checked_record(&rec, 4096, "000001").unwrap();
        assert_eq!((enc, &rec[range]), (Encoding(1), &data[..]));
        rec[3] ^= 1;
        let e = checked_record(&rec, 4096, "000001")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("000001") && e.contains("4096") && e.contains("checksum mismatch"),
            "{e}"
        );
        let e = checked_record(&rec[..4], 4096, "000001")
            .unwrap_err()
            .to_string();
        assert!(e.contains("000001"), "{e}");
    }

    #[test]
    fn write_read_and_cut_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::with_segment_size(dir.path(), 64).unwrap();
        let mut refs = Vec::new();
        for i in 0..10u8 {
            let data = vec![i; 20];
            refs.push(w.write_chunk(Encoding::XOR, &data).unwrap());
        }
        w.close().unwrap();
        assert_eq!(refs[0], ChunkRef::new(0, 8));
        let r = ChunkReader::open(dir.path()).unwrap();
        assert!(r.segments() > 1);
        for (i, cr) in refs.iter().enumerate() {
            let (enc, data) = r.chunk_checked(*cr).unwrap();
            assert_eq!(enc, Encoding::XOR);
            assert_eq!(data, vec![i as u8; 20].as_slice());
        }
        let bad = ChunkRef::new(99, 8);
        assert!(r
            .chunk(bad)
            .unwrap_err()
            .to_string()
            .contains("segment index 99"));
        let bad = ChunkRef::new(0, 1_000_000);
        assert!(r.chunk(bad).unwrap_err().to_string().contains("000001"));
    }

    #[test]
    fn bad_magic_and_crc() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::new(dir.path()).unwrap();
        let r0 = w.write_chunk(Encoding::XOR, &[1, 2, 3]).unwrap();
        w.close().unwrap();
        let p = dir.path().join("000001");
        let mut b = std::fs::read(&p).unwrap();
        b[9 + 1] ^= 0xff;
        std::fs::write(&p, &b).unwrap();
        let r = ChunkReader::open(dir.path()).unwrap();
        let e = r.chunk_checked(r0).unwrap_err().to_string();
        assert!(e.contains("checksum") && e.contains("000001"), "{e}");
        b[0] = 0;
        std::fs::write(&p, &b).unwrap();
        assert!(ChunkReader::open(dir.path()).is_err());
    }
}
