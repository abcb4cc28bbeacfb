//! Time at the edges: RFC 3339 timestamps and Prometheus-style durations (`1d2h`, `-2w`),
//! converted to and from the i64 milliseconds used everywhere inside.

use crate::error::{Error, Result};

pub const MS_PER_SECOND: i64 = 1000;
pub const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

const UNITS: [(&str, i64); 7] = [
    ("y", 365 * MS_PER_DAY),
    ("w", 7 * MS_PER_DAY),
    ("d", MS_PER_DAY),
    ("h", MS_PER_HOUR),
    ("m", MS_PER_MINUTE),
    ("s", MS_PER_SECOND),
    ("ms", 1),
];

/// Parses a Prometheus duration (`1y2w3d4h5m6s7ms`, units in that order, each once, or `0`).
pub fn parse_duration(s: &str) -> Result<i64> {
    let bad = || Error::InvalidInput(format!("not a valid duration string: {s:?}"));
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let (idx, len) = if rest.starts_with("ms") {
            (6, 2)
        } else {
            let u = UNITS
                .iter()
                .position(|(u, _)| u.len() == 1 && rest.starts_with(u))
                .ok_or_else(bad)?;
            (u, 1)
        };
        if idx < next_unit {
            return Err(bad());
        }
        next_unit = idx + 1;
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[len..];
    }
    Ok(total)
}

/// Formats milliseconds as Prometheus prints durations (`1d2h`, `5m`, `0s`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms.unsigned_abs();
    if ms < 0 {
        out.push('-');
    }
    for (u, size) in UNITS {
        let size = size as u64;
        if rest >= size {
            out.push_str(&format!("{}{u}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Formats milliseconds as Go's `time.Duration.String()` (`2h0m0s`, `1.5s`, `-40h0m0s`).
pub fn go_duration_string(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let neg = ms < 0;
    let abs = ms.unsigned_abs();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if abs < 1000 {
        s.push_str(&format!("{abs}ms"));
        return s;
    }
    let h = abs / 3_600_000;
    let m = (abs / 60_000) % 60;
    let sec = (abs / 1000) % 60;
    let frac = abs % 1000;
    if h > 0 {
        s.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        s.push_str(&format!("{m}m"));
    }
    s.push_str(&sec.to_string());
    if frac > 0 {
        let f = format!("{frac:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('s');
    s
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Parses an RFC 3339 timestamp (`2006-01-02T15:04:05.999Z` or with `±hh:mm`) to ms.
pub fn parse_rfc3339(s: &str) -> Result<i64> {
    let bad = || Error::InvalidInput(format!("not an RFC 3339 timestamp: {s:?}"));
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64> {
        let part = s.get(r).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let frac = &s[start..i];
        let padded: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
        ms = padded.parse().map_err(|_| bad())?;
    }
    let offset_min = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    Ok(secs * 1000 + ms)
}

/// Formats ms as RFC 3339 in UTC with second precision, as Go's `time.RFC3339` in UTC.
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Thanos's time-or-duration flag value: RFC 3339, or a duration relative to now
/// (`-2w`, `1h`).
pub fn parse_time_or_duration(s: &str, now: i64) -> Result<i64> {
    if let Ok(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    let (sign, d) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s),
    };
    let d = parse_duration(d).map_err(|_| {
        Error::InvalidInput(format!(
            "{s:?} is neither an RFC 3339 time nor a duration like -1d or 2h45m"
        ))
    })?;
    Ok(now + sign * d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("1d2h").unwrap(),
            MS_PER_DAY + 2 * MS_PER_HOUR
        );
        assert_eq!(parse_duration("5m30s100ms").unwrap(), 330_100);
        assert_eq!(parse_duration("2w").unwrap(), 14 * MS_PER_DAY);
        assert!(parse_duration("1h1d").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(MS_PER_DAY + 2 * MS_PER_HOUR), "1d2h");
        assert_eq!(go_duration_string(2 * MS_PER_HOUR), "2h0m0s");
        assert_eq!(go_duration_string(1500), "1.5s");
        assert_eq!(go_duration_string(-40 * MS_PER_HOUR), "-40h0m0s");
        assert_eq!(go_duration_string(300_000), "5m0s");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.5Z").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(format_rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(-1000), "1969-12-31T23:59:59Z");
        assert!(parse_rfc3339("2023-13-01T00:00:00Z").is_err());
        assert_eq!(
            parse_time_or_duration("-1d", 10 * MS_PER_DAY).unwrap(),
            9 * MS_PER_DAY
        );
        assert_eq!(
            parse_rfc3339("0000-01-01T00:00:00Z").unwrap(),
            -62_167_219_200_000
        );
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59Z").unwrap(),
            253_402_300_799_000
        );
    }
}
