//! Writes an index v2 file for series added in label order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Toc, HEADER_LEN, INDEX_VERSION_2, MAGIC_INDEX};
use crate::chunks::ChunkMeta;
use crate::encoding::{crc32, put_be_u32, put_uvarint, put_uvarint_str, put_varint};
use crate::error::{Error, Result};
use crate::labels::{compare_label_slices, Label, Labels};

pub struct IndexWriter {
    path: PathBuf,
    w: BufWriter<File>,
    pos: u64,
    toc: Toc,
    symbols: Vec<String>,
    symbol_refs: HashMap<String, u32>,
    /// Postings keyed by (name ref, value ref); symbol order equals string order.
    postings: HashMap<(u32, u32), Vec<u32>>,
    all_postings: Vec<u32>,
    last_series: Option<Vec<Label>>,
    scratch: Vec<u8>,
    allow_overlapping_chunks: bool,
}

impl IndexWriter {
    /// Creates the file and writes the header and the symbol table. `symbols` must hold
    /// every label name and value used by the series to come.
    pub fn create(path: &Path, symbols: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut symbols: Vec<String> = symbols.into_iter().collect();
        symbols.sort_unstable();
        symbols.dedup();
        let f = File::create(path).map_err(|e| Error::io("create", path, e))?;
        let mut iw = IndexWriter {
            path: path.to_path_buf(),
            w: BufWriter::with_capacity(1 << 20, f),
            pos: 0,
            toc: Toc::default(),
            symbol_refs: symbols
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i as u32))
                .collect(),
            symbols,
            postings: HashMap::new(),
            all_postings: Vec::new(),
            last_series: None,
            scratch: Vec::with_capacity(256),
            allow_overlapping_chunks: false,
        };
        let mut header = MAGIC_INDEX.to_be_bytes().to_vec();
        header.push(INDEX_VERSION_2);
        iw.write(&header)?;
        debug_assert_eq!(iw.pos as usize, HEADER_LEN);
        iw.write_symbols()?;
        Ok(iw)
    }

    /// Lets series have overlapping (out-of-order) chunks, as old Prometheus versions wrote
    /// them: only for making damaged blocks in tests.
    #[doc(hidden)]
    pub fn allow_overlapping_chunks(&mut self) {
        self.allow_overlapping_chunks = true;
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.w
            .write_all(b)
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, align: u64) -> Result<()> {
        let rem = self.pos % align;
        if rem != 0 {
            let zeros = [0u8; 16];
            self.write(&zeros[..(align - rem) as usize])?;
        }
        Ok(())
    }

    /// Writes `len <4b> | body | CRC32(body)`.
    fn write_section(&mut self, body: &[u8]) -> Result<()> {
        let len = u32::try_from(body.len()).map_err(|_| {
            Error::InvalidInput(format!(
                "index section of {} bytes exceeds 4 GiB",
                body.len()
            ))
        })?;
        self.write(&len.to_be_bytes())?;
        self.write(body)?;
        self.write(&crc32(body).to_be_bytes())
    }

    fn write_symbols(&mut self) -> Result<()> {
        self.toc.symbols = self.pos;
        let mut body =
            Vec::with_capacity(self.symbols.iter().map(|s| s.len() + 2).sum::<usize>() + 4);
        put_be_u32(&mut body, self.symbols.len() as u32);
        for s in &self.symbols {
            put_uvarint_str(&mut body, s);
        }
        self.write_section(&body)
    }

    fn symbol(&self, s: &str) -> Result<u32> {
        self.symbol_refs.get(s).copied().ok_or_else(|| {
            Error::InvalidInput(format!("symbol {s:?} missing from the symbol table"))
        })
    }

    /// Adds the next series; label sets must strictly increase. Returns the series reference.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkMeta]) -> Result<u32> {
        if let Some(prev) = &self.last_series {
            if compare_label_slices(prev, labels.as_slice()) != std::cmp::Ordering::Less {
                return Err(Error::InvalidInput(format!(
                    "series {labels} added out of order or twice (after {})",
                    Labels::from_sorted(prev.clone())
                )));
            }
        }
        if self.toc.series == 0 {
            self.pad(16)?;
            self.toc.series = self.pos;
        }
        self.pad(16)?;
        let sref = u32::try_from(self.pos / 16)
            .map_err(|_| Error::InvalidInput("index series section exceeds 64 GiB".into()))?;

        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        put_uvarint(&mut body, labels.len() as u64);
        for l in labels {
            let n = self.symbol(&l.name)?;
            let v = self.symbol(&l.value)?;
            put_uvarint(&mut body, u64::from(n));
            put_uvarint(&mut body, u64::from(v));
            self.postings.entry((n, v)).or_default().push(sref);
        }
        put_uvarint(&mut body, chunks.len() as u64);
        let mut prev: Option<&ChunkMeta> = None;
        for c in chunks {
            if c.max_time < c.min_time {
                return Err(Error::InvalidInput(format!(
                    "series {labels}: chunk maxt before mint"
                )));
            }
            match prev {
                None => {
                    put_varint(&mut body, c.min_time);
                    put_uvarint(&mut body, (c.max_time - c.min_time) as u64);
                    put_uvarint(&mut body, c.chunk_ref.0);
                }
                Some(p) => {
                    if c.min_time <= p.max_time && !self.allow_overlapping_chunks {
                        return Err(Error::InvalidInput(format!(
                            "series {labels}: chunks overlap or are unordered"
                        )));
                    }
                    // Overlapping chunks (test fixtures only) wrap as Prometheus's writer does.
                    put_uvarint(&mut body, c.min_time.wrapping_sub(p.max_time) as u64);
                    put_uvarint(&mut body, (c.max_time - c.min_time) as u64);
                    put_varint(&mut body, c.chunk_ref.0 as i64 - p.chunk_ref.0 as i64);
                }
            }
            prev = Some(c);
        }
        let mut head = Vec::with_capacity(10);
        put_uvarint(&mut head, body.len() as u64);
        self.write(&head)?;
        self.write(&body)?;
        let crc = crc32(&body);
        self.write(&crc.to_be_bytes())?;
        self.scratch = body;
        self.all_postings.push(sref);
        self.last_series = Some(labels.as_slice().to_vec());
        Ok(sref)
    }

    /// Writes the remaining sections and the TOC, then syncs the file.
    pub fn finish(mut self) -> Result<()> {
        if self.toc.series == 0 {
            self.toc.series = self.pos;
        }
        let mut keys: Vec<(u32, u32)> = self.postings.keys().copied().collect();
        keys.sort_unstable();

        // Label indices: one per name, its sorted values.
        let mut label_offsets: Vec<(u32, u64)> = Vec::new();
        let mut i = 0;
        while i < keys.len() {
            let name = keys[i].0;
            let j = keys[i..]
                .iter()
                .position(|k| k.0 != name)
                .map_or(keys.len(), |p| i + p);
            self.pad(4)?;
            if label_offsets.is_empty() {
                self.toc.label_indices = self.pos;
            }
            label_offsets.push((name, self.pos));
            let mut body = Vec::with_capacity(8 + 4 * (j - i));
            put_be_u32(&mut body, 1);
            put_be_u32(&mut body, (j - i) as u32);
            for k in &keys[i..j] {
                put_be_u32(&mut body, k.1);
            }
            self.write_section(&body)?;
            i = j;
        }

        // Postings: all series first, then each (name, value).
        self.pad(4)?;
        self.toc.postings = self.pos;
        let mut postings_offsets: Vec<(Option<(u32, u32)>, u64)> =
            Vec::with_capacity(keys.len() + 1);
        let all = std::mem::take(&mut self.all_postings);
        postings_offsets.push((None, self.pos));
        self.write_postings(&all)?;
        for k in &keys {
            self.pad(4)?;
            postings_offsets.push((Some(*k), self.pos));
            let list = self.postings.remove(k).unwrap_or_default();
            self.write_postings(&list)?;
        }

        // Label offset table.
        self.toc.label_indices_table = self.pos;
        let mut body = Vec::new();
        put_be_u32(&mut body, label_offsets.len() as u32);
        for (name, off) in &label_offsets {
            put_uvarint(&mut body, 1);
            put_uvarint_str(&mut body, &self.symbols[*name as usize]);
            put_uvarint(&mut body, *off);
        }
        self.write_section(&body)?;

        // Postings offset table.
        self.toc.postings_table = self.pos;
        let mut body = Vec::new();
        put_be_u32(&mut body, postings_offsets.len() as u32);
        for (k, off) in &postings_offsets {
            let (n, v) = match k {
                None => ("", ""),
                Some((n, v)) => (
                    self.symbols[*n as usize].as_str(),
                    self.symbols[*v as usize].as_str(),
                ),
            };
            put_uvarint(&mut body, 2);
            put_uvarint_str(&mut body, n);
            put_uvarint_str(&mut body, v);
            put_uvarint(&mut body, *off);
        }
        self.write_section(&body)?;

        let toc = self.toc.encode();
        self.write(&toc)?;
        let f = self
            .w
            .into_inner()
            .map_err(|e| Error::io("flush", &self.path, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io("sync", &self.path, e))
    }

    fn write_postings(&mut self, refs: &[u32]) -> Result<()> {
        let mut body = Vec::with_capacity(4 + refs.len() * 4);
        put_be_u32(&mut body, refs.len() as u32);
        for r in refs {
            put_be_u32(&mut body, *r);
        }
        self.write_section(&body)
    }
}
