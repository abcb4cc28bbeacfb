//! Record payloads: the bytes inside one WAL record, before fragmenting and compression.
//!
//! The first byte names the type. Series (1): per series `ref <u64 BE> | #labels <uvarint> |
//! (name, value) as uvarint-length-prefixed strings`. Samples (2): `first ref <u64 BE> | first
//! t <i64 BE>`, then per sample (the first included) `ref delta <varint> | t delta <varint> |
//! value <f64 bits, u64 BE>`, deltas taken against the first sample. An empty list is the
//! type byte alone. Every other type is reported as [`Record::Other`] and left undecoded.

use crate::encoding::{put_be_u64, put_uvarint, put_uvarint_str, put_varint, Decbuf};
use crate::error::{Error, Result};
use crate::labels::{Label, Labels};

/// Record type byte of a series record.
pub const SERIES: u8 = 1;
/// Record type byte of a float samples record.
pub const SAMPLES: u8 = 2;
/// Record type byte of a tombstones record (not decoded here).
pub const TOMBSTONES: u8 = 3;

/// What decode errors name.
const WHAT: &str = "WAL record";

/// A series introduced in the WAL: its head reference and labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefSeries {
    pub series_ref: u64,
    pub labels: Labels,
}

/// One float sample of the series `series_ref`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefSample {
    pub series_ref: u64,
    pub t: i64,
    pub v: f64,
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Series(Vec<RefSeries>),
    Samples(Vec<RefSample>),
    /// Any other record type (tombstones, exemplars, metadata, histograms, ...), skipped.
    Other(u8),
}

/// Appends one series record to `out`.
pub fn encode_series(series: &[RefSeries], out: &mut Vec<u8>) {
    out.push(SERIES);
    for s in series {
        put_be_u64(out, s.series_ref);
        put_uvarint(out, s.labels.len() as u64);
        for l in s.labels.iter() {
            put_uvarint_str(out, &l.name);
            put_uvarint_str(out, &l.value);
        }
    }
}

/// Appends one samples record to `out`.
pub fn encode_samples(samples: &[RefSample], out: &mut Vec<u8>) {
    out.push(SAMPLES);
    let Some(first) = samples.first() else {
        return;
    };
    put_be_u64(out, first.series_ref);
    put_be_u64(out, first.t as u64);
    for s in samples {
        // Two's complement differences, as Go's int64 arithmetic gives them.
        put_varint(out, s.series_ref.wrapping_sub(first.series_ref) as i64);
        put_varint(out, s.t.wrapping_sub(first.t));
        put_be_u64(out, s.v.to_bits());
    }
}

/// Decodes one whole (decompressed) record.
pub fn decode(rec: &[u8]) -> Result<Record> {
    let mut d = Decbuf::new(rec, 0, WHAT);
    let typ = d
        .u8()
        .map_err(|_| Error::corrupted(WHAT, 0, "empty record"))?;
    match typ {
        SERIES => decode_series(&mut d).map(Record::Series),
        SAMPLES => decode_samples(&mut d).map(Record::Samples),
        other => Ok(Record::Other(other)),
    }
}

fn decode_series(d: &mut Decbuf<'_>) -> Result<Vec<RefSeries>> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let series_ref = d.be_u64()?;
        let at = d.offset();
        let n = d.uvarint()?;
        // Each label takes at least two bytes, which bounds an untrusted count.
        if n > (d.remaining() / 2) as u64 {
            return Err(Error::corrupted(
                WHAT,
                at,
                format!("{n} labels cannot fit in {} bytes", d.remaining()),
            ));
        }
        let mut labels = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let name = d.uvarint_str()?;
            let value = d.uvarint_str()?;
            labels.push(Label::new(name, value));
        }
        // Prometheus sorts what it reads; names must then be unique.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::corrupted(
                WHAT,
                at,
                format!("series {series_ref} repeats label name {:?}", w[0].name),
            ));
        }
        out.push(RefSeries {
            series_ref,
            labels: Labels::from_sorted(labels),
        });
    }
    Ok(out)
}

fn decode_samples(d: &mut Decbuf<'_>) -> Result<Vec<RefSample>> {
    let mut out = Vec::new();
    if d.is_empty() {
        return Ok(out);
    }
    let base_ref = d.be_u64()?;
    let base_t = d.be_u64()? as i64;
    // At least 10 bytes per sample: two one-byte varints and the value.
    out.reserve(d.remaining() / 10);
    while !d.is_empty() {
        let dref = d.varint()?;
        let dt = d.varint()?;
        let v = f64::from_bits(d.be_u64()?);
        out.push(RefSample {
            series_ref: base_ref.wrapping_add(dref as u64),
            t: base_t.wrapping_add(dt),
            v,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(r: u64, pairs: &[(&str, &str)]) -> RefSeries {
        RefSeries {
            series_ref: r,
            labels: Labels::from_sorted(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()),
        }
    }

    #[test]
    fn series_bytes_and_round_trip() {
        let s = vec![
            series(7, &[("__name__", "up"), ("job", "p")]),
            series(u64::MAX, &[]),
            series(0, &[("a", ""), ("é", "ü\u{1F600}")]),
        ];
        let mut b = Vec::new();
        encode_series(&s, &mut b);
        let mut want = vec![1u8, 0, 0, 0, 0, 0, 0, 0, 7, 2, 8];
        want.extend_from_slice(b"__name__");
        want.extend_from_slice(&[2, b'u', b'p', 3, b'j', b'o', b'b', 1, b'p']);
        assert_eq!(&b[..want.len()], &want[..]);
        assert_eq!(decode(&b).unwrap(), Record::Series(s));

        let mut e = Vec::new();
        encode_series(&[], &mut e);
        assert_eq!(e, [SERIES]);
        assert_eq!(decode(&e).unwrap(), Record::Series(vec![]));
    }

    #[test]
    fn samples_bytes_and_round_trip() {
        let s = vec![
            RefSample {
                series_ref: 5,
                t: 1000,
                v: 1.0,
            },
            RefSample {
                series_ref: 3,
                t: 990,
                v: 2.0,
            },
        ];
        let mut b = Vec::new();
        encode_samples(&s, &mut b);
        let mut want = vec![2u8];
        want.extend_from_slice(&5u64.to_be_bytes());
        want.extend_from_slice(&1000u64.to_be_bytes());
        want.extend_from_slice(&[0, 0]);
        want.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
        // Deltas -2 and -10 as zigzag varints.
        want.extend_from_slice(&[3, 19]);
        want.extend_from_slice(&2.0f64.to_bits().to_be_bytes());
        assert_eq!(b, want);
        assert_eq!(decode(&b).unwrap(), Record::Samples(s));

        // Extremes wrap as Go's int64 arithmetic does; NaN payloads survive.
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let s = vec![
            RefSample {
                series_ref: u64::MAX,
                t: i64::MIN,
                v: stale,
            },
            RefSample {
                series_ref: 0,
                t: i64::MAX,
                v: -0.0,
            },
        ];
        let mut b = Vec::new();
        encode_samples(&s, &mut b);
        let Record::Samples(got) = decode(&b).unwrap() else {
            panic!("not samples")
        };
        assert_eq!(got.len(), 2);
        for (g, w) in got.iter().zip(&s) {
            assert_eq!(
                (g.series_ref, g.t, g.v.to_bits()),
                (w.series_ref, w.t, w.v.to_bits())
            );
        }

        let mut e = Vec::new();
        encode_samples(&[], &mut e);
        assert_eq!(e, [SAMPLES]);
        assert_eq!(decode(&e).unwrap(), Record::Samples(vec![]));
    }

    #[test]
    fn other_types_are_skipped_and_empty_is_an_error() {
        for t in [0u8, 3, 4, 5, 6, 7, 8, 9, 13, 255] {
            assert_eq!(decode(&[t, 1, 2, 3]).unwrap(), Record::Other(t));
        }
        assert!(decode(&[]).unwrap_err().is_corrupted());
    }

    #[test]
    fn unsorted_labels_are_sorted_and_duplicates_rejected() {
        let mut b = vec![SERIES];
        put_be_u64(&mut b, 1);
        put_uvarint(&mut b, 2);
        for s in ["job", "x", "__name__", "up"] {
            put_uvarint_str(&mut b, s);
        }
        let Record::Series(s) = decode(&b).unwrap() else {
            panic!("not series")
        };
        assert_eq!(s[0].labels.metric_name(), Some("up"));
        assert_eq!(s[0].labels.get("job"), Some("x"));

        let mut b = vec![SERIES];
        put_be_u64(&mut b, 1);
        put_uvarint(&mut b, 2);
        for s in ["a", "x", "a", "y"] {
            put_uvarint_str(&mut b, s);
        }
        assert!(decode(&b).unwrap_err().is_corrupted());
    }

    #[test]
    fn truncated_and_garbled_records_never_panic() {
        let mut b = Vec::new();
        encode_series(&[series(1, &[("__name__", "x"), ("i", "1")])], &mut b);
        let mut s = Vec::new();
        encode_samples(
            &[
                RefSample {
                    series_ref: 1,
                    t: 5,
                    v: 1.5,
                },
                RefSample {
                    series_ref: 2,
                    t: 6,
                    v: 2.5,
                },
            ],
            &mut s,
        );
        for rec in [&b, &s] {
            for cut in 0..rec.len() {
                let _ = decode(&rec[..cut]);
            }
            let mut x = 0x2545_f491_4f6c_dd1du64;
            for i in 0..2000 {
                let mut r = rec.to_vec();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = 1 + (x as usize) % (r.len() - 1);
                r[at] ^= (x >> 32) as u8 | 1;
                if i % 3 == 0 {
                    r.truncate(at + 1);
                }
                let _ = decode(&r);
            }
        }
        // A huge label count is refused before any allocation.
        let mut h = vec![SERIES];
        put_be_u64(&mut h, 1);
        put_uvarint(&mut h, u64::MAX);
        assert!(decode(&h).is_err());
    }
}
