//! Checkpoints: the records still needed from segments `..=N`, rewritten into
//! `checkpoint.N/` so that those segments can be deleted.

use std::path::Path;

use super::dir::{list_checkpoints, list_segments, segment_name, CHECKPOINT_PREFIX};
use super::Writer;
use crate::chunks::sync_dir;
use crate::error::{Error, Result};

/// Bytes of records handed to the writer per `log` call.
const BATCH_BYTES: usize = 1 << 20;

/// Writes `dir/checkpoint.{upto:08}` holding `records` (whole, uncompressed records; stored
/// snappy-compressed), then deletes older checkpoints and the WAL segments `<= upto`.
///
/// The checkpoint is built in `checkpoint.{upto:08}.tmp`, fsynced and renamed into place, so
/// a crash leaves either the old state or the new checkpoint; segments go only after that,
/// oldest first. `upto` must be below the segment a [`Writer`] is writing (cut a new one
/// with [`Writer::next_segment`] first), or that writer's segment would be deleted.
pub fn checkpoint<'a>(
    dir: &Path,
    upto: u32,
    records: impl Iterator<Item = &'a [u8]>,
) -> Result<()> {
    let name = format!("{CHECKPOINT_PREFIX}{}", segment_name(upto));
    let done = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    remove_dir_if_exists(&tmp)?;

    let mut w = Writer::open(&tmp)?;
    let mut batch: Vec<&[u8]> = Vec::new();
    let mut size = 0;
    for rec in records {
        batch.push(rec);
        size += rec.len();
        if size >= BATCH_BYTES {
            w.log(&batch)?;
            batch.clear();
            size = 0;
        }
    }
    w.log(&batch)?;
    w.close()?;
    sync_dir(&tmp)?;

    remove_dir_if_exists(&done)?;
    std::fs::rename(&tmp, &done).map_err(|e| Error::io("rename", &tmp, e))?;
    sync_dir(dir)?;

    for c in list_checkpoints(dir)? {
        if c.index < upto {
            remove_dir_if_exists(&dir.join(&c.name))?;
        }
    }
    for i in list_segments(dir)?.into_iter().filter(|&i| i <= upto) {
        let p = dir.join(segment_name(i));
        std::fs::remove_file(&p).map_err(|e| Error::io("delete", &p, e))?;
    }
    sync_dir(dir)
}

fn remove_dir_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("delete", p, e)),
    }
}
