//! The WAL directory: segment files named by their index, and checkpoint subdirectories.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Prefix of checkpoint directory names (`checkpoint.00000012`).
pub(crate) const CHECKPOINT_PREFIX: &str = "checkpoint.";

/// The file name of segment `index`: eight zero-padded decimal digits.
pub fn segment_name(index: u32) -> String {
    format!("{index:08}")
}

/// The path of segment `index` in `dir`.
pub fn segment_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(segment_name(index))
}

/// The index of a segment file name; only the canonical spelling counts.
pub(crate) fn parse_segment_name(name: &str) -> Option<u32> {
    if name.len() < 8 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: u32 = name.parse().ok()?;
    (segment_name(i) == name).then_some(i)
}

/// Names and whether each is a directory, of the entries of `dir`; a missing `dir` is empty.
fn entries(dir: &Path) -> Result<Vec<(String, bool)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io("list", dir, e))?;
        let is_dir = e
            .file_type()
            .map_err(|err| Error::io("stat", e.path(), err))?
            .is_dir();
        if let Some(name) = e.file_name().to_str() {
            out.push((name.to_string(), is_dir));
        }
    }
    Ok(out)
}

/// Indices of the segment files in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u32>> {
    let mut v: Vec<u32> = entries(dir)?
        .into_iter()
        .filter(|(_, is_dir)| !is_dir)
        .filter_map(|(n, _)| parse_segment_name(&n))
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// The first and last segment index in `dir`, `None` when it holds no segment. Checkpoint
/// directories and other files are ignored.
pub fn segment_range(dir: &Path) -> Result<Option<(u32, u32)>> {
    let v = list_segments(dir)?;
    Ok(v.first().zip(v.last()).map(|(a, b)| (*a, *b)))
}

/// A checkpoint directory found in the WAL directory.
pub(crate) struct CheckpointDir {
    pub index: u32,
    pub name: String,
    /// An unfinished `.tmp` directory.
    pub tmp: bool,
}

/// Checkpoint directories (finished and unfinished) in `dir`, by ascending index.
pub(crate) fn list_checkpoints(dir: &Path) -> Result<Vec<CheckpointDir>> {
    let mut v: Vec<CheckpointDir> = entries(dir)?
        .into_iter()
        .filter(|(_, is_dir)| *is_dir)
        .filter_map(|(name, _)| {
            let rest = name.strip_prefix(CHECKPOINT_PREFIX)?;
            let (digits, tmp) = match rest.strip_suffix(".tmp") {
                Some(d) => (d, true),
                None => (rest, false),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let index = digits.parse().ok()?;
            Some(CheckpointDir { index, name, tmp })
        })
        .collect();
    v.sort_by_key(|c| (c.index, c.tmp));
    Ok(v)
}

/// The newest finished checkpoint in `dir`: its index and path.
pub(crate) fn last_checkpoint(dir: &Path) -> Result<Option<(u32, PathBuf)>> {
    Ok(list_checkpoints(dir)?
        .into_iter()
        .rfind(|c| !c.tmp)
        .map(|c| (c.index, dir.join(c.name))))
}

/// Fails unless `segs` (ascending) are consecutive, naming the first missing segment.
pub(crate) fn check_sequential(dir: &Path, segs: &[u32]) -> Result<()> {
    for w in segs.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(Error::corrupted(
                dir.display().to_string(),
                0,
                format!(
                    "segments are not sequential: {} is missing",
                    segment_name(w[0] + 1)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_listing() {
        assert_eq!(segment_name(3), "00000003");
        assert_eq!(parse_segment_name("00000003"), Some(3));
        assert_eq!(parse_segment_name("123456789"), Some(123_456_789));
        for bad in [
            "3",
            "0000003",
            "000000003",
            "00000003.repair",
            "0000000x",
            "",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
        let d = tempfile::tempdir().unwrap();
        assert_eq!(segment_range(&d.path().join("nope")).unwrap(), None);
        assert_eq!(segment_range(d.path()).unwrap(), None);
        for n in ["00000004", "00000002", "00000003", "junk", "00000001.tmp"] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        for n in ["checkpoint.00000001", "checkpoint.00000003.tmp", "00000009"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        assert_eq!(segment_range(d.path()).unwrap(), Some((2, 4)));
        assert_eq!(list_segments(d.path()).unwrap(), vec![2, 3, 4]);
        let (i, p) = last_checkpoint(d.path()).unwrap().unwrap();
        assert_eq!((i, p), (1, d.path().join("checkpoint.00000001")));
        assert_eq!(list_checkpoints(d.path()).unwrap().len(), 2);
        assert!(check_sequential(d.path(), &[2, 3, 4]).is_ok());
        let e = check_sequential(d.path(), &[2, 4]).unwrap_err().to_string();
        assert!(e.contains("00000003"), "{e}");
    }
}
