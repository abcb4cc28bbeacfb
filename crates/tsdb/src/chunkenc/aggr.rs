//! Thanos's aggregate chunk (encoding 0xff), the chunk of downsampled blocks: five
//! sub-chunks in the order count, sum, min, max, counter, each stored as
//! `uvarint(len(data)) | encoding byte | data`; an absent one is a lone zero length.

use super::Encoding;
use crate::encoding::{put_uvarint, Decbuf};
use crate::{Error, Result};

/// An aggregate of a downsampled window, numbered as Thanos numbers them in the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggrType {
    Count = 0,
    Sum = 1,
    Min = 2,
    Max = 3,
    Counter = 4,
}

impl AggrType {
    pub const ALL: [AggrType; 5] = [
        AggrType::Count,
        AggrType::Sum,
        AggrType::Min,
        AggrType::Max,
        AggrType::Counter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AggrType::Count => "count",
            AggrType::Sum => "sum",
            AggrType::Min => "min",
            AggrType::Max => "max",
            AggrType::Counter => "counter",
        }
    }
}

/// Encodes XOR sub-chunks given in [`AggrType`] order; `None` marks an absent aggregate.
pub fn encode(parts: [Option<&[u8]>; 5]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().flatten().map(|p| p.len() + 6).sum());
    for part in parts {
        match part {
            None => put_uvarint(&mut out, 0),
            Some(data) => {
                put_uvarint(&mut out, data.len() as u64);
                out.push(Encoding::XOR.0);
                out.extend_from_slice(data);
            }
        }
    }
    out
}

/// The sub-chunk of aggregate `t` (its encoding and data), `None` when absent.
pub fn get(chunk: &[u8], t: AggrType) -> Result<Option<(Encoding, &[u8])>> {
    let mut d = Decbuf::new(chunk, 0, "aggregate chunk");
    for i in 0..=t as usize {
        let len = d.uvarint()? as usize;
        if len == 0 {
            if i == t as usize {
                return Ok(None);
            }
            continue;
        }
        let enc = Encoding(d.u8()?);
        let data = d.bytes(len)?;
        if i == t as usize {
            return Ok(Some((enc, data)));
        }
    }
    Err(Error::InvalidInput("unreachable aggregate index".into()))
}

/// Samples of an aggregate chunk: those of its count aggregate, as Thanos counts them.
pub fn num_samples(chunk: &[u8]) -> u16 {
    match get(chunk, AggrType::Count) {
        Ok(Some((_, data))) => super::num_samples(data),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_absent_parts() {
        let count = [0u8, 3, 1, 2, 3];
        let counter = [0u8, 2, 9];
        let c = encode([Some(&count), None, None, None, Some(&counter)]);
        assert_eq!(
            get(&c, AggrType::Count).unwrap(),
            Some((Encoding::XOR, &count[..]))
        );
        assert_eq!(get(&c, AggrType::Sum).unwrap(), None);
        assert_eq!(get(&c, AggrType::Max).unwrap(), None);
        assert_eq!(
            get(&c, AggrType::Counter).unwrap(),
            Some((Encoding::XOR, &counter[..]))
        );
        assert_eq!(num_samples(&c), 3);
        // Layout: len, encoding byte, data; absent = one zero byte.
        assert_eq!(&c[..3], &[5, 1, 0]);
        assert!(get(&c[..4], AggrType::Sum).is_err(), "truncated");
    }
}
