//! UTC times as Go's `time` package shows them: `Time.String()`,
//! `Time.Format` with Go's reference-time layouts, and the accessor methods
//! templates may call on the result of `toTime`.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

pub(crate) fn month_name(m: u8) -> String {
    match MONTHS.get(usize::from(m).wrapping_sub(1)) {
        Some(n) => (*n).to_string(),
        None => format!("%!Month({m})"),
    }
}

pub(crate) fn weekday_name(d: u8) -> String {
    match DAYS.get(usize::from(d)) {
        Some(n) => (*n).to_string(),
        None => format!("%!Weekday({d})"),
    }
}

/// Broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub nanos: u32,
    /// 0 = Sunday.
    pub weekday: u8,
    /// 1-based day of the year.
    pub yday: u16,
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

pub(crate) fn civil(ns: i64) -> Civil {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Days since 1970-01-01 to a proleptic Gregorian date.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let cum = [0u16, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let mut yday = cum[usize::from(month - 1)] + u16::from(day);
    if month > 2 && is_leap(year) {
        yday += 1;
    }
    Civil {
        year,
        month,
        day,
        hour: (sod / 3600) as u8,
        minute: (sod / 60 % 60) as u8,
        second: (sod % 60) as u8,
        nanos,
        weekday: (days + 4).rem_euclid(7) as u8,
        yday,
    }
}

/// Go's `Time.GoString()` (`%#v`) for a UTC time.
pub(crate) fn go_string(ns: i64) -> String {
    let c = civil(ns);
    format!(
        "time.Date({}, time.{}, {}, {}, {}, {}, {}, time.UTC)",
        c.year,
        month_name(c.month),
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos
    )
}

/// Go's `Time.String()` for a UTC time.
pub(crate) fn time_string(ns: i64) -> String {
    format(ns, "2006-01-02 15:04:05.999999999 -0700 MST")
}

enum Chunk {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    /// Numeric zone; `z` = print "Z" for UTC; `colons` style; `secs`.
    Zone {
        z: bool,
        colon: bool,
        hours_only: bool,
        secs: bool,
    },
    /// Fractional seconds: digits, trim trailing zeros, separator.
    Frac {
        n: usize,
        trim: bool,
        sep: char,
    },
}

fn lower_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_lowercase)
}

fn digit_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

/// Splits `layout` at its first layout element: (prefix, element, rest).
fn next_chunk(layout: &str) -> (&str, Option<Chunk>, &str) {
    let b = layout.as_bytes();
    // Byte-wise, so positions inside multi-byte characters are harmless.
    let starts = |i: usize, p: &str| b.get(i..).is_some_and(|r| r.starts_with(p.as_bytes()));
    for i in 0..b.len() {
        let c = b[i];
        let hit: Option<(Chunk, usize)> = match c {
            b'J' if starts(i, "January") => Some((Chunk::LongMonth, 7)),
            b'J' if starts(i, "Jan") && !lower_at(b, i + 3) => Some((Chunk::Month, 3)),
            b'M' if starts(i, "Monday") => Some((Chunk::LongWeekDay, 6)),
            b'M' if starts(i, "Mon") && !lower_at(b, i + 3) => Some((Chunk::WeekDay, 3)),
            b'M' if starts(i, "MST") => Some((Chunk::TZ, 3)),
            b'0' if b.get(i + 1).is_some_and(|d| (b'1'..=b'6').contains(d)) => Some((
                match b[i + 1] {
                    b'1' => Chunk::ZeroMonth,
                    b'2' => Chunk::ZeroDay,
                    b'3' => Chunk::ZeroHour12,
                    b'4' => Chunk::ZeroMinute,
                    b'5' => Chunk::ZeroSecond,
                    _ => Chunk::Year,
                },
                2,
            )),
            b'0' if starts(i, "002") => Some((Chunk::ZeroYearDay, 3)),
            b'1' => Some(if starts(i, "15") {
                (Chunk::Hour, 2)
            } else {
                (Chunk::NumMonth, 1)
            }),
            b'2' => Some(if starts(i, "2006") {
                (Chunk::LongYear, 4)
            } else {
                (Chunk::Day, 1)
            }),
            b'_' if starts(i, "_2") => {
                if starts(i, "_2006") {
                    // A literal underscore followed by the year.
                    return (&layout[..i + 1], Some(Chunk::LongYear), &layout[i + 5..]);
                }
                Some((Chunk::UnderDay, 2))
            }
            b'_' if starts(i, "__2") => Some((Chunk::UnderYearDay, 3)),
            b'3' => Some((Chunk::Hour12, 1)),
            b'4' => Some((Chunk::Minute, 1)),
            b'5' => Some((Chunk::Second, 1)),
            b'P' if starts(i, "PM") => Some((Chunk::PM, 2)),
            b'p' if starts(i, "pm") => Some((Chunk::Pm, 2)),
            b'-' | b'Z' => {
                let z = c == b'Z';
                let forms: [(&str, bool, bool, bool); 5] = [
                    ("070000", false, false, true),
                    ("07:00:00", true, false, true),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, true, false),
                ];
                forms.iter().find(|(f, ..)| starts(i + 1, f)).map(
                    |&(f, colon, hours_only, secs)| {
                        (
                            Chunk::Zone {
                                z,
                                colon,
                                hours_only,
                                secs,
                            },
                            f.len() + 1,
                        )
                    },
                )
            }
            b'.' | b',' if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                if digit_at(b, j) {
                    None
                } else {
                    Some((
                        Chunk::Frac {
                            n: j - (i + 1),
                            trim: ch == b'9',
                            sep: c as char,
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((chunk, len)) = hit {
            return (&layout[..i], Some(chunk), &layout[i + len..]);
        }
    }
    (layout, None, "")
}

fn pad(out: &mut String, v: i64, width: usize) {
    let s = v.unsigned_abs().to_string();
    if v < 0 {
        out.push('-');
    }
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(&s);
}

/// Go's `Time.Format(layout)` for a UTC time given in Unix nanoseconds.
pub(crate) fn format(ns: i64, layout: &str) -> String {
    let t = civil(ns);
    let mut out = String::new();
    let mut rest = layout;
    loop {
        let (prefix, chunk, suffix) = next_chunk(rest);
        out.push_str(prefix);
        let Some(chunk) = chunk else { break };
        rest = suffix;
        match chunk {
            Chunk::LongMonth => out.push_str(&month_name(t.month)),
            Chunk::Month => out.push_str(&month_name(t.month)[..3]),
            Chunk::NumMonth => pad(&mut out, i64::from(t.month), 0),
            Chunk::ZeroMonth => pad(&mut out, i64::from(t.month), 2),
            Chunk::LongWeekDay => out.push_str(&weekday_name(t.weekday)),
            Chunk::WeekDay => out.push_str(&weekday_name(t.weekday)[..3]),
            Chunk::Day => pad(&mut out, i64::from(t.day), 0),
            Chunk::UnderDay => {
                if t.day < 10 {
                    out.push(' ');
                }
                pad(&mut out, i64::from(t.day), 0);
            }
            Chunk::ZeroDay => pad(&mut out, i64::from(t.day), 2),
            Chunk::UnderYearDay => {
                if t.yday < 100 {
                    out.push(' ');
                    if t.yday < 10 {
                        out.push(' ');
                    }
                }
                pad(&mut out, i64::from(t.yday), 0);
            }
            Chunk::ZeroYearDay => pad(&mut out, i64::from(t.yday), 3),
            Chunk::Hour => pad(&mut out, i64::from(t.hour), 2),
            Chunk::Hour12 | Chunk::ZeroHour12 => {
                let mut h = t.hour % 12;
                if h == 0 {
                    h = 12;
                }
                let w = if matches!(chunk, Chunk::ZeroHour12) {
                    2
                } else {
                    0
                };
                pad(&mut out, i64::from(h), w);
            }
            Chunk::Minute => pad(&mut out, i64::from(t.minute), 0),
            Chunk::ZeroMinute => pad(&mut out, i64::from(t.minute), 2),
            Chunk::Second => pad(&mut out, i64::from(t.second), 0),
            Chunk::ZeroSecond => pad(&mut out, i64::from(t.second), 2),
            Chunk::LongYear => pad(&mut out, t.year, 4),
            Chunk::Year => pad(&mut out, t.year.rem_euclid(100), 2),
            Chunk::PM => out.push_str(if t.hour >= 12 { "PM" } else { "AM" }),
            Chunk::Pm => out.push_str(if t.hour >= 12 { "pm" } else { "am" }),
            Chunk::TZ => out.push_str("UTC"),
            Chunk::Zone {
                z,
                colon,
                hours_only,
                secs,
            } => {
                if z {
                    out.push('Z');
                } else {
                    out.push_str("+00");
                    if !hours_only {
                        out.push_str(if colon { ":00" } else { "00" });
                    }
                    if secs {
                        out.push_str(if colon { ":00" } else { "00" });
                    }
                }
            }
            Chunk::Frac { n, trim, sep } => {
                let digits = format!("{:09}", t.nanos);
                let mut d = &digits[..n.min(9)];
                if trim {
                    d = d.trim_end_matches('0');
                    if d.is_empty() {
                        continue;
                    }
                }
                out.push(sep);
                out.push_str(d);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_like_go() {
        assert_eq!(time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(time_string(-1_000_000_000), "1969-12-31 23:59:59 +0000 UTC");
        assert_eq!(
            time_string(1_435_065_584_128_000_000),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            time_string(9_223_372_036_000_000_000),
            "2262-04-11 23:47:16 +0000 UTC"
        );
    }

    #[test]
    fn layouts() {
        let t = 1_435_065_584_128_000_000;
        assert_eq!(format(t, "2006"), "2015");
        assert_eq!(
            format(t, "Mon Jan _2 15:04:05 MST 2006"),
            "Tue Jun 23 13:19:44 UTC 2015"
        );
        assert_eq!(
            format(t, "2006-01-02T15:04:05.000Z07:00"),
            "2015-06-23T13:19:44.128Z"
        );
        assert_eq!(format(t, "3:04PM -0700 002 __2"), "1:19PM +0000 174 174");
        assert_eq!(format(t, "Monday, January 2"), "Tuesday, June 23");
    }
}
