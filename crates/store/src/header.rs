//! The index-header: the index's symbol table and postings offset table, fetched from the
//! bucket by byte range and kept on local disk, in Thanos's layout:
//!
//! ```text
//! magic 0xBAAAD792 <4b> | version 1 <1b> | index version <1b> |
//! postings offset table position in the index <8b> | symbols section | postings offset table |
//! symbols offset <8b> | postings offset table offset <8b> | CRC32C of those 16 bytes <4b>
//! ```

use std::io::Write;
use std::path::Path;

use object_store::ObjectStoreExt;
use tsdb::chunks::FileBytes;
use tsdb::encoding::{crc32, Decbuf};
use tsdb::index::{IndexReader, Toc, TOC_LEN};

use crate::{Error, Result};

pub const MAGIC_HEADER: u32 = 0xBAAA_D792;
pub const HEADER_FILENAME: &str = "index-header";
const PREFIX_LEN: u64 = 14;
const TRAILER_LEN: usize = 20;

/// Builds `<dir>/index-header` for block `id` from four range reads of its index.
pub async fn build(bucket: &dyn object_store::ObjectStore, id: &str, dir: &Path) -> Result<()> {
    let obj = bucket::block::object_path(id, "index");
    let size = bucket
        .head(&obj)
        .await
        .map_err(|e| bucket::Error::store("stat", &obj, e))?
        .size;
    let bad = |msg: String| Error::Block {
        block: id.to_string(),
        msg,
    };
    if size < (5 + TOC_LEN) as u64 {
        return Err(bad(format!("index of {size} bytes is too short")));
    }
    let head = bucket::block::get_range(bucket, &obj, 0..5).await?;
    let mut d = Decbuf::new(&head, 0, "index");
    if d.be_u32()? != tsdb::index::MAGIC_INDEX {
        return Err(bad("index has an invalid magic number".into()));
    }
    let version = d.u8()?;
    if version != 2 && version != 3 {
        return Err(bad(format!("unsupported index version {version}")));
    }
    let tail = bucket::block::get_range(bucket, &obj, size - TOC_LEN as u64..size).await?;
    let toc = Toc::decode(&tail, size, &format!("{id}/index"))?;
    if toc.symbols == 0 || toc.series <= toc.symbols || toc.postings_table >= size - TOC_LEN as u64
    {
        return Err(bad(format!("implausible table of contents {toc:?}")));
    }
    let symbols = bucket::block::get_range(bucket, &obj, toc.symbols..toc.series).await?;
    let table =
        bucket::block::get_range(bucket, &obj, toc.postings_table..size - TOC_LEN as u64).await?;

    std::fs::create_dir_all(dir).map_err(|e| bucket::Error::local("create dir", dir, e))?;
    let tmp = dir.join(format!("{HEADER_FILENAME}.tmp"));
    let path = dir.join(HEADER_FILENAME);
    let mut out = Vec::with_capacity(symbols.len() + table.len() + 64);
    out.extend_from_slice(&MAGIC_HEADER.to_be_bytes());
    out.push(1);
    out.push(version);
    out.extend_from_slice(&toc.postings_table.to_be_bytes());
    let sym_off = out.len() as u64;
    out.extend_from_slice(&symbols);
    let table_off = out.len() as u64;
    out.extend_from_slice(&table);
    let mut trailer = Vec::with_capacity(TRAILER_LEN);
    trailer.extend_from_slice(&sym_off.to_be_bytes());
    trailer.extend_from_slice(&table_off.to_be_bytes());
    let crc = crc32(&trailer);
    trailer.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&trailer);
    let mut f = std::fs::File::create(&tmp).map_err(|e| bucket::Error::local("create", &tmp, e))?;
    f.write_all(&out)
        .map_err(|e| bucket::Error::local("write", &tmp, e))?;
    f.sync_all()
        .map_err(|e| bucket::Error::local("sync", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| bucket::Error::local("rename", &tmp, e))?;
    Ok(())
}

/// Loads `<dir>/index-header` (memory-mapped) as an index reader for lookups.
pub fn load(dir: &Path) -> Result<IndexReader> {
    let path = dir.join(HEADER_FILENAME);
    let what = path.display().to_string();
    let bytes = FileBytes::map(&path)?;
    let corrupt = |off: u64, msg: &str| tsdb::Error::corrupted(&what, off, msg);
    if bytes.len() < PREFIX_LEN as usize + TRAILER_LEN {
        return Err(corrupt(0, "index-header too short").into());
    }
    let mut d = Decbuf::new(&bytes[..PREFIX_LEN as usize], 0, &what);
    if d.be_u32()? != MAGIC_HEADER {
        return Err(corrupt(0, "invalid index-header magic").into());
    }
    if d.u8()? != 1 {
        return Err(corrupt(4, "unsupported index-header version").into());
    }
    let index_version = d.u8()?;
    let postings_end = d.be_u64()?;
    let trailer_at = bytes.len() - TRAILER_LEN;
    let trailer = &bytes[trailer_at..];
    let mut t = Decbuf::new(trailer, trailer_at as u64, &what);
    let sym_off = t.be_u64()?;
    let table_off = t.be_u64()?;
    if t.be_u32()? != crc32(&trailer[..16]) {
        return Err(corrupt(trailer_at as u64 + 16, "index-header checksum mismatch").into());
    }
    Ok(IndexReader::from_sections(
        bytes.clone(),
        what,
        index_version,
        sym_off,
        table_off,
        trailer_at as u64,
        postings_end,
    )?)
}
