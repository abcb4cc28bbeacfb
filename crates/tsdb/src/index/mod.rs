//! Index format v2: the block's symbol table, series, label indices, postings and their
//! offset tables. Layout (all sections but the series carry `len <4b>` first and a CRC32C of
//! the `len` bytes last):
//!
//! ```text
//! header        magic 0xBAAAD700 <4b> | version 2 <1b>
//! symbols       len | #symbols <4b> | (uvarint len, bytes)*            sorted, unique
//! series        16-byte aligned entries; series ref = offset / 16
//!               len <uvarint> | #labels | (name ref, value ref)* | #chunks |
//!               chunk 0: mint <varint> maxt-mint <uvarint> ref <uvarint>
//!               chunk i: mint-prev maxt <uvarint> maxt-mint <uvarint> ref-prev ref <varint> | CRC32
//! label indices 4-aligned; len | #names=1 | #values | value refs <4b>*   (one per name)
//! postings      4-aligned; len | #refs <4b> | series refs <4b>*          ("" "" = all first)
//! label offsets len | #entries | (1 <uvarint>, name <str>, offset <uvarint>)*
//! postings offs len | #entries | (2 <uvarint>, name <str>, value <str>, offset <uvarint>)*
//! TOC           symbols | series | label indices | label offsets | postings | postings offs
//!               (each <8b>) | CRC32 of those 48 bytes                      (last 52 bytes)
//! ```

pub mod postings;
mod reader;
mod writer;

pub use reader::{crc_section, decode_postings, decode_series, IndexReader, SeriesEntry};
pub use writer::IndexWriter;

pub const MAGIC_INDEX: u32 = 0xBAAA_D700;
pub const INDEX_VERSION_2: u8 = 2;
pub const HEADER_LEN: usize = 5;
pub const TOC_LEN: usize = 52;

/// Absolute offsets of the index sections (0 = absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Toc {
    pub symbols: u64,
    pub series: u64,
    pub label_indices: u64,
    pub label_indices_table: u64,
    pub postings: u64,
    pub postings_table: u64,
}

impl Toc {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(TOC_LEN);
        for v in [
            self.symbols,
            self.series,
            self.label_indices,
            self.label_indices_table,
            self.postings,
            self.postings_table,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let crc = crate::encoding::crc32(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Parses the TOC from the last 52 bytes of an index of `file_len` bytes.
    pub fn decode(tail: &[u8], file_len: u64, what: &str) -> crate::Result<Toc> {
        let base = file_len.saturating_sub(TOC_LEN as u64);
        if tail.len() != TOC_LEN {
            return Err(crate::Error::corrupted(
                what,
                base,
                "index too short for its table of contents",
            ));
        }
        let mut d = crate::encoding::Decbuf::new(tail, base, what);
        let mut v = [0u64; 6];
        for x in &mut v {
            *x = d.be_u64()?;
        }
        let stored = d.be_u32()?;
        let crc = crate::encoding::crc32(&tail[..48]);
        if stored != crc {
            return Err(crate::Error::corrupted(
                what,
                base + 48,
                format!("table of contents checksum mismatch: stored {stored:#010x}, computed {crc:#010x}"),
            ));
        }
        let toc = Toc {
            symbols: v[0],
            series: v[1],
            label_indices: v[2],
            label_indices_table: v[3],
            postings: v[4],
            postings_table: v[5],
        };
        for (name, off) in [
            ("symbols", toc.symbols),
            ("postings offset table", toc.postings_table),
        ] {
            if off > base {
                return Err(crate::Error::corrupted(
                    what,
                    base,
                    format!("{name} offset {off} lies beyond the table of contents"),
                ));
            }
        }
        Ok(toc)
    }
}
