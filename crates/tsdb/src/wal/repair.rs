//! Cutting a damaged WAL back to its last good record.

use std::fs::OpenOptions;
use std::path::Path;

use super::dir::{list_segments, parse_segment_name, segment_name, CHECKPOINT_PREFIX};
use super::PAGE_SIZE;
use crate::chunks::sync_dir;
use crate::error::{Error, Result};

/// Repairs the WAL in `dir` after [`replay`](super::replay) reported `corruption`: deletes
/// every segment after the damaged one (newest first), then truncates the damaged segment at
/// the end of its last good record and zero-pads it to the page boundary, as a closed
/// segment ends. Everything is fsynced. A later replay returns exactly the records the
/// damaged replay returned; a new [`Writer`](super::Writer) continues in a fresh segment.
///
/// Returns a one-line description of what was done; logs nothing itself. Fails (changing
/// nothing) when `corruption` is not a corruption of a segment in `dir`.
pub fn repair(dir: &Path, corruption: &Error) -> Result<String> {
    let Error::Corrupted { what, offset, .. } = corruption else {
        return Err(Error::InvalidInput(format!(
            "WAL repair needs a corruption reported by replay, not: {corruption}"
        )));
    };
    let damaged = Path::new(what);
    let parent = damaged.parent().unwrap_or(Path::new(""));
    let index = damaged
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_segment_name)
        .filter(|_| same_dir(parent, dir))
        .ok_or_else(|| {
            let hint = match parent.file_name().and_then(|n| n.to_str()) {
                Some(n) if n.starts_with(CHECKPOINT_PREFIX) => " (a checkpoint is not repaired)",
                _ => "",
            };
            Error::InvalidInput(format!(
                "corruption in {what} is not in a segment of {}{hint}",
                dir.display()
            ))
        })?;
    let segs = list_segments(dir)?;
    if !segs.contains(&index) {
        return Err(Error::InvalidInput(format!(
            "damaged segment {what} no longer exists"
        )));
    }
    let path = dir.join(segment_name(index));
    let file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    if *offset > len {
        return Err(Error::InvalidInput(format!(
            "{what} is {len} bytes, shorter than the corruption offset {offset}"
        )));
    }

    // Later segments go first, so that a crash half-way never leaves records after a gap.
    let later: Vec<u32> = segs.iter().rev().copied().filter(|&i| i > index).collect();
    for &i in &later {
        let p = dir.join(segment_name(i));
        std::fs::remove_file(&p).map_err(|e| Error::io("delete", &p, e))?;
    }
    sync_dir(dir)?;

    let page = PAGE_SIZE as u64;
    let padded = offset.div_ceil(page) * page;
    file.set_len(*offset)
        .and_then(|()| file.set_len(padded))
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("truncate", &path, e))?;

    let mut msg = format!(
        "truncated WAL segment {} from {len} bytes to its last good record at offset {offset} \
         (zero-padded to {padded})",
        path.display()
    );
    match (later.last(), later.first()) {
        (Some(a), Some(b)) if a == b => {
            msg += &format!("; deleted later segment {}", segment_name(*a))
        }
        (Some(a), Some(b)) => {
            msg += &format!(
                "; deleted {} later segments {}..={}",
                later.len(),
                segment_name(*a),
                segment_name(*b)
            )
        }
        _ => {}
    }
    Ok(msg)
}

/// Whether two paths name the same directory.
fn same_dir(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
