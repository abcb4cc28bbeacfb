//! Prometheus's number-to-text helpers (`humanize`, `humanize1024`,
//! `humanizeDuration`, `humanizePercentage`, `humanizeTimestamp`, `toTime`,
//! `parseDuration`) and the argument conversion they share.

use crate::format::sprintf;
use crate::strconv::{format_float_v, parse_float};
use crate::value::Value;

/// Go's `fmt.Sprintf("%.4g", v)` followed by a suffix.
fn g4(v: f64, suffix: &str) -> String {
    let mut s = sprintf("%.4g", &[Value::Float(v)]);
    s.push_str(suffix);
    s
}

/// Prometheus's `convertToFloat`: float64, string (parsed), and Go integer types.
pub(crate) fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::String(s) => parse_float(s).map_err(|e| e.message("ParseFloat", s)),
        Value::Int(i) | Value::Int64(i) => Ok(*i as f64),
        Value::Uint64(u) => Ok(*u as f64),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

pub(crate) fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v, "");
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    g4(v, prefix)
}

pub(crate) fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v, "");
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    g4(v, prefix)
}

/// 2^63 as a float (also what `float64(math.MaxInt64)` rounds to).
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// Go's `int64(f)` on amd64: out-of-range values become MinInt64.
fn go_int64(f: f64) -> i64 {
    if f.is_nan() || !(-TWO_63..TWO_63).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

pub(crate) fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v, "");
    }
    if v == 0.0 {
        return g4(v, "s");
    }
    let mut v = v;
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        let d = go_int64(v);
        let seconds = d % 60;
        let minutes = (d / 60) % 60;
        let hours = (d / 60 / 60) % 24;
        let days = d / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}", g4(v, "s"));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    g4(v, &format!("{prefix}s"))
}

pub(crate) fn humanize_percentage(v: f64) -> String {
    g4(v * 100.0, "%")
}

/// Why a float is not a time.
pub(crate) enum TimeErr {
    NanOrInf,
    Overflow(String),
}

/// Prometheus's `floatToTime`: seconds to a UTC time with millisecond
/// precision (truncated toward zero), in Unix nanoseconds.
pub(crate) fn float_to_time(v: f64) -> Result<i64, TimeErr> {
    if v.is_nan() || v.is_infinite() {
        return Err(TimeErr::NanOrInf);
    }
    let ts = v * 1e9;
    // Go compares against float64(MaxInt64) == 2^63, so 2^63 itself passes.
    if !(-TWO_63..=TWO_63).contains(&ts) {
        return Err(TimeErr::Overflow(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            format_float_v(v)
        )));
    }
    let ns = go_int64(ts);
    Ok((ns / 1_000_000) * 1_000_000)
}

pub(crate) fn humanize_timestamp(v: f64) -> Result<String, String> {
    match float_to_time(v) {
        Ok(ns) => Ok(crate::gotime::time_string(ns)),
        Err(TimeErr::NanOrInf) => Ok(g4(v, "")),
        Err(TimeErr::Overflow(e)) => Err(e),
    }
}

pub(crate) fn to_time(v: f64) -> Result<Value, String> {
    match float_to_time(v) {
        Ok(ns) => Ok(Value::Time { ns, ptr: true }),
        Err(TimeErr::NanOrInf) => Err("value is NaN or Inf".into()),
        Err(TimeErr::Overflow(e)) => Err(e),
    }
}

/// Prometheus's `model.ParseDuration` (y, w, d, h, m, s, ms; "0" alone is
/// allowed), returned in seconds.
pub(crate) fn parse_duration(s: &str) -> Result<f64, String> {
    match s {
        "0" => return Ok(0.0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", crate::strconv::quote(s));
    // (unit, multiplier in milliseconds), in the only order allowed.
    const UNITS: [(&str, i64); 7] = [
        ("y", 1000 * 60 * 60 * 24 * 365),
        ("w", 1000 * 60 * 60 * 24 * 7),
        ("d", 1000 * 60 * 60 * 24),
        ("h", 1000 * 60 * 60),
        ("m", 1000 * 60),
        ("s", 1000),
        ("ms", 1),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut dur: i64 = 0;
    let mut overflow = false;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        let digits = &s[start..i];
        let unit = if s[i..].starts_with("ms") {
            "ms"
        } else {
            match b.get(i) {
                Some(b'y') => "y",
                Some(b'w') => "w",
                Some(b'd') => "d",
                Some(b'h') => "h",
                Some(b'm') => "m",
                Some(b's') => "s",
                _ => return Err(invalid()),
            }
        };
        i += unit.len();
        let pos = match UNITS.iter().position(|(u, _)| *u == unit) {
            Some(p) if p >= next_unit => p,
            _ => return Err(invalid()),
        };
        next_unit = pos + 1;
        let mult = UNITS[pos].1;
        // Go's Atoi clamps out-of-range numbers (and the error is ignored).
        let n: i64 = digits.parse().unwrap_or(i64::MAX);
        if n > i64::MAX / mult / 1_000_000 {
            overflow = true;
        }
        let d = n.wrapping_mul(1_000_000);
        dur = dur.wrapping_add(d.wrapping_mul(mult));
        if dur < 0 {
            overflow = true;
        }
    }
    if overflow {
        return Err("duration out of range".into());
    }
    Ok(dur as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_forms() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.12), "120m");
        assert_eq!(humanize(TWO_63), "9.223E");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize1024(0.12), "0.12");
        assert_eq!(
            humanize_duration(-(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0)),
            "-2d 3h 4m 5s"
        );
        assert_eq!(humanize_duration(899.99), "14m 59s");
        assert_eq!(humanize_duration(0.0001), "100us");
        assert_eq!(humanize_duration(1.2345), "1.234s");
        assert_eq!(humanize_percentage(-0.22222), "-22.22%");
        assert_eq!(humanize_percentage(TWO_63), "9.223e+20%");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h2m10ms"), Ok(3720.01));
        assert_eq!(parse_duration("5ms"), Ok(0.005));
        assert!(parse_duration("1m1h").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert_eq!(
            parse_duration("300000y"),
            Err("duration out of range".into())
        );
    }
}
