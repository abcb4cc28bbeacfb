//! Go's shortest float forms, `strconv.FormatFloat(v, 'f' or 'e', -1, 64)`, written without
//! allocating: the digits come from Ryu (the shortest that round-trip, as Go's), then are
//! laid out as Go lays them out. Used by the templates' formatting and by the query API's
//! JSON, which writes one per sample (its tests compare with Rust's own formatting).

/// The shortest round-trip decimal digits of a finite float.
pub struct Shortest {
    negative: bool,
    /// Significant digits, no leading or trailing zeros; "0" for zero.
    bytes: [u8; 24],
    len: usize,
    /// Digits before the decimal point (0 or less below 0.1): value = 0.d1d2… × 10^point.
    point: i32,
}

impl Shortest {
    pub fn of(v: f64) -> Shortest {
        let mut buf = ryu::Buffer::new();
        let s = buf.format_finite(v);
        let (negative, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (mantissa, exp) = match s.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
            None => (s, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let mut out = Shortest {
            negative,
            bytes: [0; 24],
            len: 0,
            point: int.len() as i32 + exp,
        };
        for b in int.bytes().chain(frac.bytes()) {
            if out.len == 0 && b == b'0' {
                out.point -= 1;
            } else if out.len < out.bytes.len() {
                out.bytes[out.len] = b;
                out.len += 1;
            }
        }
        while out.len > 1 && out.bytes[out.len - 1] == b'0' {
            out.len -= 1;
        }
        if out.len == 0 {
            (out.bytes[0], out.len, out.point) = (b'0', 1, 1);
        }
        out
    }

    pub fn digits(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn point(&self) -> i32 {
        self.point
    }

    pub fn is_zero(&self) -> bool {
        self.digits() == b"0"
    }
}

/// Go's `'f'` with precision -1 of a finite `v`: `0.000123`, `12.5`, `1200`, `-0`.
pub fn write_plain(out: &mut Vec<u8>, v: f64) {
    let s = Shortest::of(v);
    if s.negative {
        out.push(b'-');
    }
    let (d, point) = (s.digits(), s.point);
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
        out.extend_from_slice(d);
    } else if point as usize >= d.len() {
        out.extend_from_slice(d);
        out.extend(std::iter::repeat_n(b'0', point as usize - d.len()));
    } else {
        let (int, frac) = d.split_at(point as usize);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
}

/// Go's `'e'` with precision -1 of a finite `v`: `4.2e-07`, `1e+21` (the exponent signed,
/// at least two digits).
pub fn write_exponent(out: &mut Vec<u8>, v: f64) {
    let s = Shortest::of(v);
    if s.negative {
        out.push(b'-');
    }
    let d = s.digits();
    out.push(d[0]);
    if d.len() > 1 {
        out.push(b'.');
        out.extend_from_slice(&d[1..]);
    }
    let exp = s.point - 1;
    out.extend_from_slice(if exp < 0 { b"e-" } else { b"e+" });
    if exp.unsigned_abs() < 10 {
        out.push(b'0');
    }
    out.extend_from_slice(itoa::Buffer::new().format(exp.unsigned_abs()).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::written as text;

    #[test]
    fn zero_and_signs() {
        assert_eq!(text(|o| write_plain(o, 0.0)), "0");
        assert_eq!(text(|o| write_plain(o, -0.0)), "-0");
        assert_eq!(text(|o| write_exponent(o, 0.0)), "0e+00");
        assert_eq!(text(|o| write_exponent(o, -4.2e-7)), "-4.2e-07");
        assert!(Shortest::of(0.0).is_zero());
    }
}
