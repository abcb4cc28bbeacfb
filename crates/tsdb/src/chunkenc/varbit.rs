//! Varbit integers used by histogram chunks: a unary bucket prefix (`0`, `10`, `110`, …,
//! `11111111`) then 0, 3, 6, 9, 12, 18, 25, 56 or 64 payload bits.

use super::bstream::BitReader;

const WIDTHS: [u32; 9] = [0, 3, 6, 9, 12, 18, 25, 56, 64];

/// Reads the bucket prefix: the number of leading one bits, at most 8.
#[inline]
fn prefix(br: &mut BitReader<'_>) -> Option<usize> {
    let mut ones = 0usize;
    while ones < 8 {
        if !br.read_bit()? {
            break;
        }
        ones += 1;
    }
    Some(ones)
}

pub fn read_varbit_int(br: &mut BitReader<'_>) -> Option<i64> {
    let w = WIDTHS[prefix(br)?];
    match w {
        0 => Some(0),
        64 => br.read_bits_wide(64).map(|b| b as i64),
        _ => {
            let bits = br.read_bits(w)?;
            Some(if bits > (1 << (w - 1)) {
                bits as i64 - (1i64 << w)
            } else {
                bits as i64
            })
        }
    }
}

pub fn read_varbit_uint(br: &mut BitReader<'_>) -> Option<u64> {
    let w = WIDTHS[prefix(br)?];
    match w {
        0 => Some(0),
        _ => br.read_bits_wide(w),
    }
}

#[cfg(test)]
pub(crate) fn put_varbit_int(bw: &mut super::BitWriter, v: i64) {
    for (i, &w) in WIDTHS.iter().enumerate() {
        let fits = match w {
            0 => v == 0,
            64 => true,
            _ => {
                let half = 1i64 << (w - 1);
                -(half - 1) <= v && v <= half
            }
        };
        if fits {
            for _ in 0..i {
                bw.write_bit(true);
            }
            if i < 8 {
                bw.write_bit(false);
            }
            if w > 0 {
                bw.write_bits(v as u64, w);
            }
            return;
        }
    }
}

#[cfg(test)]
pub(crate) fn put_varbit_uint(bw: &mut super::BitWriter, v: u64) {
    for (i, &w) in WIDTHS.iter().enumerate() {
        let fits = match w {
            0 => v == 0,
            64 => true,
            _ => v < (1u64 << w),
        };
        if fits {
            for _ in 0..i {
                bw.write_bit(true);
            }
            if i < 8 {
                bw.write_bit(false);
            }
            if w > 0 {
                bw.write_bits(v, w);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ints = [
            0i64,
            1,
            -3,
            4,
            5,
            -31,
            32,
            33,
            -255,
            256,
            2048,
            -2047,
            131072,
            16777216,
            1 << 50,
            i64::MIN,
            i64::MAX,
        ];
        let mut bw = super::super::BitWriter::default();
        for &v in &ints {
            put_varbit_int(&mut bw, v);
            put_varbit_uint(&mut bw, v as u64);
        }
        let mut br = BitReader::new(bw.bytes());
        for &v in &ints {
            assert_eq!(read_varbit_int(&mut br), Some(v));
            assert_eq!(read_varbit_uint(&mut br), Some(v as u64));
        }
    }
}
