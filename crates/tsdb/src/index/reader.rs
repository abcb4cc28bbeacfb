//! Reads an index v2 file held in memory (mmap or bytes): symbols, the postings offset
//! table (every 32nd entry per name kept in memory, the rest scanned), series and postings.

use std::ops::Range;

use super::{Toc, HEADER_LEN, MAGIC_INDEX, TOC_LEN};
use crate::chunks::{ChunkMeta, ChunkRef, FileBytes};
use crate::encoding::{crc32, Decbuf};
use crate::error::{Error, Result};
use crate::labels::{Label, Labels};

/// Decodes the series entry at the start of `buf` (which sits at file offset `off`) into
/// `out`, checking its CRC; returns the bytes the entry takes. `buf` may run past the entry.
pub fn decode_series(
    buf: &[u8],
    off: u64,
    sref: u32,
    what: &str,
    out: &mut SeriesEntry,
) -> Result<usize> {
    out.label_refs.clear();
    out.chunks.clear();
    let mut d = Decbuf::new(buf, off, what);
    let len = d.uvarint()? as usize;
    let body_off = d.offset();
    let body = d.bytes(len)?;
    let stored = d.be_u32()?;
    let consumed = d.position();
    if crc32(body) != stored {
        return Err(Error::corrupted(
            what,
            off,
            format!("series {sref} checksum mismatch"),
        ));
    }
    let mut d = Decbuf::new(body, body_off, what);
    let nl = d.uvarint()? as usize;
    if nl > body.len() {
        return Err(d.error(format!("label count {nl} exceeds the entry")));
    }
    for _ in 0..nl {
        let n = d.uvarint32()?;
        let v = d.uvarint32()?;
        out.label_refs.push((n, v));
    }
    let nc = d.uvarint()? as usize;
    if nc > body.len() {
        return Err(d.error(format!("chunk count {nc} exceeds the entry")));
    }
    let mut prev = ChunkMeta::default();
    for i in 0..nc {
        let at = d.offset();
        let c = if i == 0 {
            let mint = d.varint()?;
            let maxt = mint.wrapping_add(d.uvarint()? as i64);
            let r = d.uvarint()?;
            ChunkMeta {
                min_time: mint,
                max_time: maxt,
                chunk_ref: ChunkRef(r),
            }
        } else {
            let mint = prev.max_time.wrapping_add(d.uvarint()? as i64);
            let maxt = mint.wrapping_add(d.uvarint()? as i64);
            let r = (prev.chunk_ref.0 as i64).wrapping_add(d.varint()?) as u64;
            ChunkMeta {
                min_time: mint,
                max_time: maxt,
                chunk_ref: ChunkRef(r),
            }
        };
        if c.max_time < c.min_time {
            return Err(Error::corrupted(
                what,
                at,
                format!("series {sref}: chunk {i} maxt before mint"),
            ));
        }
        out.chunks.push(c);
        prev = c;
    }
    Ok(consumed)
}

/// Keep every n-th postings offset table entry of a name in memory.
const POSTINGS_SAMPLING: usize = 32;

/// One name's slice of the postings offset table.
struct NameOffsets {
    name: String,
    /// Every 32nd entry, from the first: value, the entry's byte position in the file and
    /// its postings offset.
    samples: Vec<(String, usize, u64)>,
    /// Byte range of this name's entries in the file.
    entries: Range<usize>,
}

/// A decoded series entry, reusable across calls to avoid allocating per series.
#[derive(Clone, Debug, Default)]
pub struct SeriesEntry {
    /// (name, value) symbol references.
    pub label_refs: Vec<(u32, u32)>,
    pub chunks: Vec<ChunkMeta>,
}

pub struct IndexReader {
    bytes: FileBytes,
    /// The same bytes, for handing out symbols as shared slices.
    shared: bytes::Bytes,
    what: String,
    version: u8,
    toc: Toc,
    /// Absolute offset of every symbol string.
    symbol_offsets: Vec<u32>,
    names: Vec<NameOffsets>,
    all_postings_offset: Option<u64>,
    /// Sections end here (the start of the TOC).
    data_end: u64,
    /// Where the postings lists end in the original index: the postings offset table.
    postings_end: u64,
}

impl IndexReader {
    /// Reads the symbol table and postings offset table out of other bytes than a whole
    /// index (the store gateway's index-header): `symbols` and `postings_table` are section
    /// offsets within `bytes`, which hold sections up to `data_end`; postings offsets still
    /// refer to the original index, whose postings end at `postings_end`.
    pub fn from_sections(
        bytes: FileBytes,
        what: impl Into<String>,
        version: u8,
        symbols: u64,
        postings_table: u64,
        data_end: u64,
        postings_end: u64,
    ) -> Result<Self> {
        let what = what.into();
        if data_end > bytes.len() as u64 {
            return Err(Error::corrupted(
                &what,
                data_end,
                "sections end beyond the file",
            ));
        }
        let mut r = IndexReader {
            shared: bytes::Bytes::from_owner(bytes.clone()),
            bytes,
            what,
            version,
            toc: Toc {
                symbols,
                postings_table,
                ..Toc::default()
            },
            symbol_offsets: Vec::new(),
            names: Vec::new(),
            all_postings_offset: None,
            data_end,
            postings_end,
        };
        r.read_symbols()?;
        r.read_postings_table()?;
        Ok(r)
    }

    /// Parses the header, TOC, symbol table and postings offset table; `what` names the file.
    pub fn new(bytes: FileBytes, what: impl Into<String>) -> Result<Self> {
        let what = what.into();
        let len = bytes.len();
        if len < HEADER_LEN + TOC_LEN {
            return Err(Error::corrupted(
                &what,
                0,
                format!("index of {len} bytes is too short"),
            ));
        }
        let mut d = Decbuf::new(&bytes[..HEADER_LEN], 0, &what);
        let magic = d.be_u32()?;
        if magic != MAGIC_INDEX {
            return Err(Error::corrupted(
                &what,
                0,
                format!("invalid index magic {magic:#010x}"),
            ));
        }
        let version = d.u8()?;
        if version != 2 && version != 3 {
            return Err(Error::corrupted(
                &what,
                4,
                format!("unsupported index version {version}"),
            ));
        }
        let toc = Toc::decode(&bytes[len - TOC_LEN..], len as u64, &what)?;
        let mut r = IndexReader {
            shared: bytes::Bytes::from_owner(bytes.clone()),
            bytes,
            what,
            version,
            toc,
            symbol_offsets: Vec::new(),
            names: Vec::new(),
            all_postings_offset: None,
            data_end: (len - TOC_LEN) as u64,
            postings_end: toc.postings_table,
        };
        r.read_symbols()?;
        r.read_postings_table()?;
        Ok(r)
    }

    /// Drops the index pages read so far (see [`FileBytes::release_pages`]).
    pub fn release_pages(&self) {
        self.bytes.release_pages();
    }

    pub fn version(&self) -> u8 {
        self.version
    }

    pub fn toc(&self) -> &Toc {
        &self.toc
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes of a `len <4b> | body | CRC` section at `off`, CRC checked; returns the body
    /// and its absolute offset.
    fn section(&self, off: u64, name: &str) -> Result<(&[u8], u64)> {
        let b: &[u8] = &self.bytes;
        let end_limit = self.data_end;
        if off == 0 || off + 4 > end_limit {
            return Err(Error::corrupted(
                &self.what,
                off,
                format!("{name} offset out of range"),
            ));
        }
        let (body, _) = crc_section(&b[off as usize..end_limit as usize], off, &self.what, name)?;
        Ok((body, off + 4))
    }

    fn read_symbols(&mut self) -> Result<()> {
        let (body, base) = self.section(self.toc.symbols, "symbol table")?;
        let mut d = Decbuf::new(body, base, &self.what);
        let n = d.be_u32()? as usize;
        if n > body.len() {
            return Err(d.error(format!("symbol count {n} exceeds the section size")));
        }
        let mut offsets = Vec::with_capacity(n);
        let mut prev: Option<&[u8]> = None;
        for _ in 0..n {
            let off = d.offset();
            let s = d.uvarint_bytes()?;
            if std::str::from_utf8(s).is_err() {
                return Err(Error::corrupted(
                    &self.what,
                    off,
                    "symbol is not valid UTF-8",
                ));
            }
            if prev.is_some_and(|p| p >= s) {
                return Err(Error::corrupted(
                    &self.what,
                    off,
                    "symbols not sorted and unique",
                ));
            }
            prev = Some(s);
            offsets.push(
                u32::try_from(off)
                    .map_err(|_| Error::corrupted(&self.what, off, "symbol offset over 4 GiB"))?,
            );
        }
        self.symbol_offsets = offsets;
        Ok(())
    }

    fn read_postings_table(&mut self) -> Result<()> {
        let (body, base) = self.section(self.toc.postings_table, "postings offset table")?;
        let mut d = Decbuf::new(body, base, &self.what);
        let n = d.be_u32()?;
        let mut names: Vec<NameOffsets> = Vec::new();
        let mut prev_key: Option<(&str, &str)> = None;
        let mut in_name = 0usize;
        let mut all_postings_offset = None;
        for i in 0..n {
            let entry_pos = (base as usize) + d.position();
            let at = d.offset();
            let kind = d.uvarint()?;
            if kind != 2 {
                return Err(Error::corrupted(
                    &self.what,
                    at,
                    format!("postings offset entry has {kind} keys, want 2"),
                ));
            }
            let name = d.uvarint_str()?;
            let value = d.uvarint_str()?;
            let off = d.uvarint()?;
            let end_pos = (base as usize) + d.position();
            if i == 0 && name.is_empty() && value.is_empty() {
                all_postings_offset = Some(off);
                continue;
            }
            if let Some(p) = prev_key {
                if p >= (name, value) {
                    return Err(Error::corrupted(
                        &self.what,
                        at,
                        "postings offset table not sorted",
                    ));
                }
            }
            prev_key = Some((name, value));
            match names.last_mut() {
                Some(last) if last.name == name => {
                    in_name += 1;
                    if in_name.is_multiple_of(POSTINGS_SAMPLING) {
                        last.samples.push((value.to_string(), entry_pos, off));
                    }
                    last.entries.end = end_pos;
                }
                _ => {
                    in_name = 0;
                    names.push(NameOffsets {
                        name: name.to_string(),
                        samples: vec![(value.to_string(), entry_pos, off)],
                        entries: entry_pos..end_pos,
                    });
                }
            }
        }
        self.names = names;
        self.all_postings_offset = all_postings_offset;
        Ok(())
    }

    /// Where the text of symbol `r` lies in the bytes.
    fn symbol_range(&self, r: u32) -> Result<Range<usize>> {
        let Some(&off) = self.symbol_offsets.get(r as usize) else {
            return Err(Error::corrupted(
                &self.what,
                u64::from(r),
                format!(
                    "symbol reference {r} out of range ({} symbols)",
                    self.symbol_offsets.len()
                ),
            ));
        };
        let mut d = Decbuf::new(&self.bytes[off as usize..], u64::from(off), &self.what);
        let len = d.uvarint_bytes()?.len();
        let start = off as usize + d.position() - len;
        Ok(start..start + len)
    }

    pub fn symbol(&self, r: u32) -> Result<&str> {
        let range = self.symbol_range(r)?;
        std::str::from_utf8(&self.bytes[range.clone()]).map_err(|_| {
            Error::corrupted(&self.what, range.start as u64, "symbol is not valid UTF-8")
        })
    }

    /// Symbol `r` as a shared slice of the index bytes, not copied (its text was checked
    /// to be UTF-8 when the symbol table was read).
    pub fn symbol_bytes(&self, r: u32) -> Result<bytes::Bytes> {
        Ok(self.shared.slice(self.symbol_range(r)?))
    }

    /// Where symbol `r` lies in the index bytes (start, length): a compact handle for
    /// [`span_bytes`](Self::span_bytes) and [`span_shared`](Self::span_shared).
    pub fn symbol_span(&self, r: u32) -> Result<(u32, u32)> {
        let range = self.symbol_range(r)?;
        // Symbols lie in the first part of the index, whose offsets are 32-bit.
        let start = u32::try_from(range.start).map_err(|_| {
            Error::corrupted(&self.what, u64::from(r), "symbol beyond 4 GiB".to_string())
        })?;
        Ok((start, range.len() as u32))
    }

    /// The bytes of a span from [`symbol_span`](Self::symbol_span) (empty if out of range).
    pub fn span_bytes(&self, (start, len): (u32, u32)) -> &[u8] {
        let start = start as usize;
        self.shared
            .get(start..start + len as usize)
            .unwrap_or_default()
    }

    /// A span as a shared slice of the index bytes, not copied.
    pub fn span_shared(&self, (start, len): (u32, u32)) -> bytes::Bytes {
        let start = (start as usize).min(self.shared.len());
        let end = (start + len as usize).min(self.shared.len());
        self.shared.slice(start..end)
    }

    pub fn num_symbols(&self) -> usize {
        self.symbol_offsets.len()
    }

    /// Every label name, sorted.
    pub fn label_names(&self) -> Vec<&str> {
        self.names.iter().map(|n| n.name.as_str()).collect()
    }

    fn name_entry(&self, name: &str) -> Option<&NameOffsets> {
        self.names
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.names[i])
    }

    /// Calls `f(value, postings offset)` for every value of `name` in order, stopping early
    /// when `f` returns false.
    pub fn for_each_value(&self, name: &str, mut f: impl FnMut(&str, u64) -> bool) -> Result<()> {
        let Some(e) = self.name_entry(name) else {
            return Ok(());
        };
        self.scan_entries(e.entries.clone(), |v, off| f(v, off))
    }

    fn scan_entries(
        &self,
        range: Range<usize>,
        mut f: impl FnMut(&str, u64) -> bool,
    ) -> Result<()> {
        let mut d = Decbuf::new(&self.bytes[range.clone()], range.start as u64, &self.what);
        while !d.is_empty() {
            d.uvarint()?;
            d.uvarint_bytes()?;
            let value = d.uvarint_str()?;
            let off = d.uvarint()?;
            if !f(value, off) {
                break;
            }
        }
        Ok(())
    }

    /// Sorted values of `name`.
    pub fn label_values(&self, name: &str) -> Result<Vec<&str>> {
        let mut out = Vec::new();
        let Some(e) = self.name_entry(name) else {
            return Ok(out);
        };
        let mut d = Decbuf::new(
            &self.bytes[e.entries.clone()],
            e.entries.start as u64,
            &self.what,
        );
        while !d.is_empty() {
            d.uvarint()?;
            d.uvarint_bytes()?;
            out.push(d.uvarint_str()?);
            d.uvarint()?;
        }
        Ok(out)
    }

    /// The postings offset of (name, value), if present.
    pub fn postings_offset(&self, name: &str, value: &str) -> Result<Option<u64>> {
        if name.is_empty() && value.is_empty() {
            return Ok(self.all_postings_offset);
        }
        let Some(e) = self.name_entry(name) else {
            return Ok(None);
        };
        let i = e.samples.partition_point(|(v, _, _)| v.as_str() <= value);
        if i == 0 {
            return Ok(None);
        }
        let start = e.samples[i - 1].1;
        let mut found = None;
        self.scan_entries(start..e.entries.end, |v, off| {
            if v == value {
                found = Some(off);
            }
            v < value
        })?;
        Ok(found)
    }

    /// The byte range of the postings list of (name, value) in the original index: from its
    /// offset to the next list's offset (or the end of the postings section).
    pub fn postings_range(&self, name: &str, value: &str) -> Result<Option<Range<u64>>> {
        let Some(start) = self.postings_offset(name, value)? else {
            return Ok(None);
        };
        Ok(Some(start..self.next_postings_offset(start)?))
    }

    /// The smallest postings offset above `off`, or the end of the postings section.
    pub fn next_postings_offset(&self, off: u64) -> Result<u64> {
        let mut next = self.postings_end;
        if let Some(a) = self.all_postings_offset {
            if a > off {
                next = next.min(a);
            }
        }
        // Offsets grow with (name, value) order: the name holding `off` is the last one
        // whose first list starts at or before it.
        let i = self.names.partition_point(|n| n.samples[0].2 <= off);
        if let Some(n) = self.names.get(i) {
            next = next.min(n.samples[0].2);
        }
        if i > 0 {
            let e = &self.names[i - 1];
            let j = e.samples.partition_point(|s| s.2 <= off);
            let from = e.samples[j.saturating_sub(1)].1;
            self.scan_entries(from..e.entries.end, |_, o| {
                if o > off {
                    next = next.min(o);
                    false
                } else {
                    true
                }
            })?;
        }
        Ok(next)
    }

    /// Appends the series references of the postings list at `off` to `out`.
    pub fn read_postings_at(&self, off: u64, out: &mut Vec<u32>) -> Result<()> {
        let (body, base) = self.section(off, "postings list")?;
        postings_body(body, base, &self.what, out)
    }

    /// The sorted series references having `name="value"` (empty if none).
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        if let Some(off) = self.postings_offset(name, value)? {
            self.read_postings_at(off, &mut out)?;
        }
        Ok(out)
    }

    /// Where the all-series postings list starts.
    pub fn all_postings_offset(&self) -> Option<u64> {
        self.all_postings_offset
    }

    /// Every series reference in the block.
    pub fn all_postings(&self) -> Result<Vec<u32>> {
        self.postings("", "")
    }

    /// Decodes the series at `sref` into `out`, replacing its content.
    pub fn series(&self, sref: u32, out: &mut SeriesEntry) -> Result<()> {
        out.label_refs.clear();
        out.chunks.clear();
        let off = u64::from(sref) * 16;
        let b: &[u8] = &self.bytes;
        let limit = b.len() - TOC_LEN;
        if off < self.toc.series || off as usize >= limit {
            return Err(Error::corrupted(
                &self.what,
                off,
                format!("series reference {sref} out of range"),
            ));
        }
        decode_series(&b[off as usize..limit], off, sref, &self.what, out).map(|_| ())
    }

    /// Resolves symbol references into a label set.
    pub fn labels_of(&self, refs: &[(u32, u32)]) -> Result<Labels> {
        let mut v = Vec::with_capacity(refs.len());
        for &(n, val) in refs {
            v.push(Label::new(self.symbol(n)?, self.symbol(val)?));
        }
        if !v.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(Error::corrupted(
                &self.what,
                0,
                "series labels not sorted by name",
            ));
        }
        Ok(Labels::from_sorted(v))
    }

    /// The label name/value pairs of a series without building a `Labels`.
    pub fn label_pairs<'a>(
        &'a self,
        refs: &'a [(u32, u32)],
    ) -> impl Iterator<Item = Result<(&'a str, &'a str)>> + 'a {
        refs.iter()
            .map(move |&(n, v)| Ok((self.symbol(n)?, self.symbol(v)?)))
    }
}

/// A `len <4b> | body | CRC32 <4b>` section at the start of `buf`, which sits at `offset` of
/// file `what`; `name` says which section in errors. Returns the body, CRC checked, and the
/// bytes the whole section takes.
pub fn crc_section<'a>(
    buf: &'a [u8],
    offset: u64,
    what: &'a str,
    name: &str,
) -> Result<(&'a [u8], usize)> {
    let mut d = Decbuf::new(buf, offset, what);
    let len = d.be_u32()? as usize;
    let body = d.bytes(len)?;
    let stored = d.be_u32()?;
    let crc = crc32(body);
    if stored != crc {
        return Err(Error::corrupted(
            what,
            offset,
            format!("{name} checksum mismatch: stored {stored:#010x}, computed {crc:#010x}"),
        ));
    }
    Ok((body, d.position()))
}

/// Appends the series references of a postings list's body (`#refs <4b> | refs`), found at
/// `offset` of `what`, to `out`.
fn postings_body(body: &[u8], offset: u64, what: &str, out: &mut Vec<u32>) -> Result<()> {
    let mut d = Decbuf::new(body, offset, what);
    let n = d.be_u32()? as usize;
    let refs = d.bytes(
        n.checked_mul(4)
            .ok_or_else(|| d.error("postings length overflows"))?,
    )?;
    out.reserve(n);
    out.extend(
        refs.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
    );
    Ok(())
}

/// Decodes a whole postings list (`len | #refs | refs | CRC`) at the start of `buf`, which sits
/// at `offset` of `what` (a list fetched by byte range), appending its references to `out`;
/// returns the bytes the list takes.
pub fn decode_postings(buf: &[u8], offset: u64, what: &str, out: &mut Vec<u32>) -> Result<usize> {
    let (body, used) = crc_section(buf, offset, what, "postings list")?;
    postings_body(body, offset + 4, what, out)?;
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::{crc32, decode_postings};
    use crate::block::BlockWriter;

    #[test]
    fn postings_lists_fetched_by_range() {
        let mut body = 2u32.to_be_bytes().to_vec();
        body.extend_from_slice(&5u32.to_be_bytes());
        body.extend_from_slice(&9u32.to_be_bytes());
        let mut list = (body.len() as u32).to_be_bytes().to_vec();
        list.extend_from_slice(&body);
        list.extend_from_slice(&crc32(&body).to_be_bytes());
        list.extend_from_slice(b"trailing bytes of a merged read");
        let mut out = vec![1];
        let used = decode_postings(&list, 640, "b/index", &mut out).unwrap();
        assert_eq!((out, used), (vec![1, 5, 9], 4 + 12 + 4));
        list[9] ^= 1;
        let e = decode_postings(&list, 640, "b/index", &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("b/index")
                && e.contains("640")
                && e.contains("postings list checksum mismatch"),
            "{e}"
        );
    }
    use crate::chunks::FileBytes;
    use crate::index::IndexReader;
    use crate::Labels;

    #[test]
    fn postings_ranges_cover_each_list_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BlockWriter::new(dir.path(), 0, 1000).unwrap();
        let mut series: Vec<Labels> = (0..300)
            .map(|i| {
                Labels::from_pairs([
                    ("a", format!("{}", i % 37)),
                    ("b", format!("{i:03}")),
                    ("c", "x".into()),
                ])
            })
            .collect();
        series.sort();
        for l in &series {
            w.add_series(l, [(1, 1.0)]).unwrap();
        }
        let m = w.finish().unwrap();
        let path = dir.path().join(&m.ulid).join("index");
        let bytes = std::fs::read(&path).unwrap();
        let ix = IndexReader::new(FileBytes::from_vec(bytes.clone()), "index").unwrap();
        let mut keys = vec![(String::new(), String::new())];
        for n in ix.label_names() {
            for v in ix.label_values(n).unwrap() {
                keys.push((n.to_string(), v.to_string()));
            }
        }
        let last = keys.len() - 1;
        for (i, (n, v)) in keys.into_iter().enumerate() {
            let r = ix.postings_range(&n, &v).unwrap().unwrap();
            let len = u32::from_be_bytes(
                bytes[r.start as usize..r.start as usize + 4]
                    .try_into()
                    .unwrap(),
            ) as u64;
            let used = 4 + len + 4;
            // The last list runs on to the postings offset table (past the label offset table).
            let exact = i == last || r.end - r.start < used + 4;
            assert!(
                r.end - r.start >= used && exact,
                "{n}={v}: {r:?} for {used} bytes"
            );
        }
    }
}
