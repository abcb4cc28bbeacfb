//! Tombstones: deleted time intervals per series.
//!
//! ```text
//! magic 0x0130BA30 <4b> | version 1 <1b> | (series ref <uvarint>, mint <varint>, maxt <varint>)*
//! | CRC32C of the stones <4b>
//! ```
//! Intervals are closed: `[mint, maxt]`. An empty file still has magic, version and CRC.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use crate::encoding::{crc32, put_uvarint, put_varint, Decbuf};
use crate::error::{Error, Result};

pub const MAGIC_TOMBSTONES: u32 = 0x0130_BA30;
pub const TOMBSTONES_FILENAME: &str = "tombstones";

/// A closed time interval `[min_time, max_time]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub min_time: i64,
    pub max_time: i64,
}

impl Interval {
    pub fn contains(&self, t: i64) -> bool {
        self.min_time <= t && t <= self.max_time
    }
}

/// Deleted intervals keyed by series reference; each list sorted and merged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tombstones {
    stones: HashMap<u32, Vec<Interval>>,
}

impl Tombstones {
    pub fn is_empty(&self) -> bool {
        self.stones.is_empty()
    }

    /// Number of (series, interval) records.
    pub fn len(&self) -> usize {
        self.stones.values().map(Vec::len).sum()
    }

    pub fn get(&self, sref: u32) -> &[Interval] {
        self.stones.get(&sref).map_or(&[], Vec::as_slice)
    }

    /// Adds an interval, merging it with overlapping or adjacent ones.
    pub fn add(&mut self, sref: u32, iv: Interval) {
        let list = self.stones.entry(sref).or_default();
        list.push(iv);
        list.sort();
        let mut merged: Vec<Interval> = Vec::with_capacity(list.len());
        for iv in list.drain(..) {
            match merged.last_mut() {
                Some(last) if iv.min_time <= last.max_time.saturating_add(1) => {
                    last.max_time = last.max_time.max(iv.max_time);
                }
                _ => merged.push(iv),
            }
        }
        *list = merged;
    }

    pub fn decode(b: &[u8], what: &str) -> Result<Self> {
        let mut d = Decbuf::new(b, 0, what);
        if b.len() < 9 {
            return Err(Error::corrupted(
                what,
                0,
                format!("tombstones file of {} bytes is too short", b.len()),
            ));
        }
        let magic = d.be_u32()?;
        if magic != MAGIC_TOMBSTONES {
            return Err(Error::corrupted(
                what,
                0,
                format!("invalid tombstones magic {magic:#010x}"),
            ));
        }
        let version = d.u8()?;
        if version != 1 {
            return Err(Error::corrupted(
                what,
                4,
                format!("unsupported tombstones version {version}"),
            ));
        }
        let stones = &b[5..b.len() - 4];
        let stored = u32::from_be_bytes([
            b[b.len() - 4],
            b[b.len() - 3],
            b[b.len() - 2],
            b[b.len() - 1],
        ]);
        let crc = crc32(stones);
        if stored != crc {
            return Err(Error::corrupted(
                what,
                (b.len() - 4) as u64,
                format!(
                    "tombstones checksum mismatch: stored {stored:#010x}, computed {crc:#010x}"
                ),
            ));
        }
        let mut d = Decbuf::new(stones, 5, what);
        let mut t = Tombstones::default();
        while !d.is_empty() {
            let sref = d.uvarint32()?;
            let min_time = d.varint()?;
            let max_time = d.varint()?;
            t.add(sref, Interval { min_time, max_time });
        }
        Ok(t)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = MAGIC_TOMBSTONES.to_be_bytes().to_vec();
        b.push(1);
        let mut refs: Vec<&u32> = self.stones.keys().collect();
        refs.sort();
        let mut stones = Vec::new();
        for r in refs {
            for iv in &self.stones[r] {
                put_uvarint(&mut stones, u64::from(*r));
                put_varint(&mut stones, iv.min_time);
                put_varint(&mut stones, iv.max_time);
            }
        }
        b.extend_from_slice(&stones);
        b.extend_from_slice(&crc32(&stones).to_be_bytes());
        b
    }

    /// Reads `<dir>/tombstones`; a missing file means no tombstones.
    pub fn read_from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(TOMBSTONES_FILENAME);
        match std::fs::read(&path) {
            Ok(b) => Self::decode(&b, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tombstones::default()),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    /// Writes a temporary file and renames it over the old one (Prometheus's order): a crash
    /// never leaves half a file, and a hard-linked copy of the old file keeps its bytes.
    pub fn write_to_dir(&self, dir: &Path) -> Result<()> {
        let path = dir.join(TOMBSTONES_FILENAME);
        let tmp = dir.join(format!("{TOMBSTONES_FILENAME}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(&self.encode())
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_merge() {
        let mut t = Tombstones::default();
        t.add(
            3,
            Interval {
                min_time: 10,
                max_time: 20,
            },
        );
        t.add(
            3,
            Interval {
                min_time: 21,
                max_time: 30,
            },
        );
        t.add(
            1,
            Interval {
                min_time: -5,
                max_time: 5,
            },
        );
        assert_eq!(
            t.get(3),
            &[Interval {
                min_time: 10,
                max_time: 30
            }]
        );
        let b = t.encode();
        assert_eq!(Tombstones::decode(&b, "t").unwrap(), t);
        assert_eq!(Tombstones::default().encode().len(), 9);
    }

    #[test]
    fn corruption_is_reported() {
        let mut t = Tombstones::default();
        t.add(
            3,
            Interval {
                min_time: 10,
                max_time: 20,
            },
        );
        let mut b = t.encode();
        b[6] ^= 1;
        assert!(Tombstones::decode(&b, "x/tombstones")
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        assert!(Tombstones::decode(&b[..4], "x").is_err());
    }
}
