//! Request parameters as Prometheus 2.42's HTTP API reads them, from Go's `net/http` form
//! parsing to its time and duration parsers, so the same inputs are accepted, refused and
//! worded alike.
//!
//! Form values come as bytes (Go does not check UTF-8): for POST, PUT and PATCH with an
//! `application/x-www-form-urlencoded` body, the body's values first, then the URL's; a pair
//! with a bad escape or a `;` is left out and the first such error kept (only `/series`
//! reports it). Times are Go's `time.Time` (seconds and nanoseconds) so that the same
//! wrap-arounds happen where Prometheus computes milliseconds from them.

use tsdb::{MatchType, Matcher};

/// Go's `http.Request.ParseForm` limit on a form body.
pub const MAX_FORM_BODY: usize = 10 << 20;

/// Parsed form values, in Go's order, with the first parse error.
#[derive(Debug, Default, Clone)]
pub struct Form {
    pub values: Vec<(String, Vec<u8>)>,
    pub error: Option<String>,
}

fn unhex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Go's `url.QueryUnescape`.
fn unescape(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| Some(unhex(h[0])? << 4 | unhex(h[1])?));
                match hex {
                    Some(v) => out.push(v),
                    None => {
                        let bad = &s[i..(i + 3).min(s.len())];
                        return Err(format!(
                            "invalid URL escape {}",
                            promql::lex::quote_bytes(bad)
                        ));
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Go's `url.ParseQuery`, appending to `out`; returns the first error.
fn parse_query(s: &[u8], out: &mut Vec<(String, Vec<u8>)>) -> Option<String> {
    let mut first_err = None;
    for pair in s.split(|&c| c == b'&') {
        if pair.is_empty() {
            continue;
        }
        if pair.contains(&b';') {
            first_err.get_or_insert_with(|| "invalid semicolon separator in query".to_string());
            continue;
        }
        let (k, v) = match pair.iter().position(|&c| c == b'=') {
            Some(p) => (&pair[..p], &pair[p + 1..]),
            None => (pair, &b""[..]),
        };
        match (unescape(k), unescape(v)) {
            (Ok(k), Ok(v)) => out.push((String::from_utf8_lossy(&k).into_owned(), v)),
            (Err(e), _) | (_, Err(e)) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err
}

impl Form {
    /// Go's `ParseForm` over the URL's query and, for POST/PUT/PATCH, the body.
    pub fn parse(method: &str, url_query: &str, content_type: Option<&str>, body: &[u8]) -> Form {
        let mut values = Vec::new();
        let mut error = None;
        if matches!(method, "POST" | "PUT" | "PATCH") {
            let media = content_type
                .map(|c| {
                    c.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            if content_type.is_some_and(|c| c.trim().is_empty() || c.trim_start().starts_with(';'))
            {
                error = Some("mime: no media type".to_string());
            } else if media == "application/x-www-form-urlencoded" {
                if body.len() > MAX_FORM_BODY {
                    error = Some("http: POST too large".to_string());
                } else {
                    error = parse_query(body, &mut values);
                }
            }
        }
        let url_err = parse_query(url_query.as_bytes(), &mut values);
        Form {
            values,
            error: error.or(url_err),
        }
    }

    /// Go's `FormValue`: the first value, or empty.
    pub fn get(&self, name: &str) -> &[u8] {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map_or(&b""[..], |(_, v)| v.as_slice())
    }

    /// The first value as text (invalid UTF-8 replaced).
    pub fn text(&self, name: &str) -> String {
        String::from_utf8_lossy(self.get(name)).into_owned()
    }

    pub fn has(&self, name: &str) -> bool {
        self.values.iter().any(|(k, _)| k == name)
    }

    pub fn all(&self, name: &str) -> Vec<&[u8]> {
        self.values
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// Go's `time.Time` as seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoTime {
    pub sec: i64,
    pub nsec: i64,
}

/// Prometheus's `minTime` and `maxTime`, the defaults of open time ranges.
pub const MIN_TIME: GoTime = GoTime {
    sec: i64::MIN / 1000 + 62_135_596_801,
    nsec: 0,
};
pub const MAX_TIME: GoTime = GoTime {
    sec: i64::MAX / 1000 - 62_135_596_801,
    nsec: 999_999_999,
};

/// Go's `int64(f)` on amd64: out of range or NaN is the minimum.
fn go_f64_to_i64(f: f64) -> i64 {
    if f.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

impl GoTime {
    /// `t.UnixNano() / 1e6`, as the engine computes query timestamps (wrapping as Go does).
    pub fn engine_ms(&self) -> i64 {
        self.sec.wrapping_mul(1_000_000_000).wrapping_add(self.nsec) / 1_000_000
    }

    /// `timestamp.FromTime(t)`, as the metadata endpoints compute their range.
    pub fn from_time_ms(&self) -> i64 {
        self.sec
            .wrapping_mul(1000)
            .wrapping_add(self.nsec / 1_000_000)
    }

    /// Go's `t.Sub(u)` in nanoseconds, saturating.
    pub fn sub_ns(&self, u: &GoTime) -> i64 {
        let d = (self.sec as i128 - u.sec as i128) * 1_000_000_000 + (self.nsec - u.nsec) as i128;
        d.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    pub fn before(&self, u: &GoTime) -> bool {
        (self.sec, self.nsec) < (u.sec, u.nsec)
    }

    pub fn from_ms(ms: i64) -> GoTime {
        GoTime {
            sec: ms.div_euclid(1000),
            nsec: ms.rem_euclid(1000) * 1_000_000,
        }
    }
}

/// Go's `strconv.ParseFloat` for the inputs it accepts: decimal and special values; an
/// out-of-range value is an error.
fn go_parse_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        return match (lower.starts_with('-'), body) {
            (_, "nan") => Some(f64::NAN),
            (true, _) => Some(f64::NEG_INFINITY),
            (false, _) => Some(f64::INFINITY),
        };
    }
    if s.is_empty() || !s.bytes().any(|c| c.is_ascii_digit()) {
        return None;
    }
    if s.contains('_') {
        // Go's syntax: an underscore only between two digits.
        let b = s.as_bytes();
        let ok = b.iter().enumerate().all(|(i, &c)| {
            c != b'_'
                || (i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        });
        return if ok {
            go_parse_float(&s.replace('_', ""))
        } else {
            None
        };
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_infinite() => None,
        Ok(v) => Some(v),
        Err(_) => None,
    }
}

/// Prometheus's `parseTime`: float seconds (rounded to milliseconds), RFC 3339, or the
/// formatted min and max times.
pub fn parse_time(raw: &[u8]) -> Result<GoTime, String> {
    let s = String::from_utf8_lossy(raw);
    let bad = || {
        format!(
            "cannot parse {} to a valid timestamp",
            promql::lex::quote_bytes(raw)
        )
    };
    if std::str::from_utf8(raw).is_err() {
        return Err(bad());
    }
    if let Some(t) = go_parse_float(&s) {
        let sec = t.trunc();
        let frac = ((t - sec) * 1000.0).round() / 1000.0;
        return Ok(GoTime {
            sec: go_f64_to_i64(sec),
            nsec: go_f64_to_i64(frac * 1e9),
        }
        .normalized());
    }
    if let Ok(ms) = tsdb::time::parse_rfc3339(&s) {
        if s.contains('T') && (s.ends_with('Z') || s.len() > 6) {
            return Ok(GoTime::from_ms(ms));
        }
    }
    match &*s {
        "-292273086-05-16T16:47:06Z" => Ok(MIN_TIME),
        "292277025-08-18T07:12:54.999999999Z" => Ok(MAX_TIME),
        _ => Err(bad()),
    }
}

impl GoTime {
    /// `time.Unix` normalizes nanoseconds outside [0, 1e9) into seconds.
    fn normalized(self) -> GoTime {
        let (mut sec, mut nsec) = (self.sec, self.nsec);
        if !(0..1_000_000_000).contains(&nsec) {
            sec = sec.wrapping_add(nsec.div_euclid(1_000_000_000));
            nsec = nsec.rem_euclid(1_000_000_000);
        }
        GoTime { sec, nsec }
    }
}

/// Prometheus's `parseDuration` for API parameters: float seconds or a Prometheus duration;
/// nanoseconds.
pub fn parse_duration(raw: &[u8]) -> Result<i64, String> {
    let s = String::from_utf8_lossy(raw);
    let quoted = promql::lex::quote_bytes(raw);
    if let Some(d) = go_parse_float(&s).or_else(|| {
        let l = s.to_ascii_lowercase();
        (l.trim_start_matches(['+', '-']).starts_with("inf")).then_some(if l.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        })
    }) {
        let ts = d * 1e9;
        if ts > i64::MAX as f64 || ts < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {quoted} to a valid duration. It overflows int64"
            ));
        }
        return Ok(go_f64_to_i64(ts));
    }
    match tsdb::time::parse_duration(&s) {
        Ok(ms) => ms
            .checked_mul(1_000_000)
            .ok_or_else(|| format!("cannot parse {quoted} to a valid duration")),
        Err(_) => Err(format!("cannot parse {quoted} to a valid duration")),
    }
}

/// A series selector (`up{job="x"}`) as matchers, read as Prometheus's `ParseMetricSelector`
/// does; the error is the parser's, unprefixed.
pub fn parse_matchers(raw: &[u8]) -> Result<Vec<Matcher>, String> {
    let sel = match promql::lex::parse_selector(raw) {
        Err(e) => return Err(e.render(raw)),
        Ok(Some(sel)) => sel,
        Ok(None) => {
            // Not a selector: the parser says why.
            return Err(
                match promql::parse_bytes_with(raw, promql::Dialect::default(), |_| Ok(())) {
                    Err(e) => e.to_string(),
                    Ok(()) => {
                        "1:1: parse error: unexpected expression, expected a series selector".into()
                    }
                },
            );
        }
    };
    let mut out = Vec::new();
    if let Some(name) = &sel.name {
        out.push(Matcher::equal(tsdb::labels::METRIC_NAME, name));
    }
    for (name, op, value) in &sel.matchers {
        let kind = match op.as_str() {
            "=" => MatchType::Equal,
            "!=" => MatchType::NotEqual,
            "=~" => MatchType::RegexMatch,
            _ => MatchType::RegexNoMatch,
        };
        let value = String::from_utf8_lossy(value).into_owned();
        out.push(Matcher::new(kind, name, &value).map_err(|e| format!("1:1: parse error: {e}"))?);
    }
    Ok(out)
}

/// Prometheus's `parseMatchersParam`: every selector parsed, then each must have a matcher
/// that does not match the empty string.
pub fn parse_matchers_param(values: &[&[u8]]) -> Result<Vec<Vec<Matcher>>, (bool, String)> {
    let mut sets = Vec::with_capacity(values.len());
    for v in values {
        sets.push(parse_matchers(v).map_err(|e| (true, e))?);
    }
    for set in &sets {
        if !set.iter().any(|m| !m.matches("")) {
            return Err((
                false,
                "match[] must contain at least one non-empty matcher".into(),
            ));
        }
    }
    Ok(sets)
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &[u8]) -> Option<bool> {
    match s {
        b"1" | b"t" | b"T" | b"true" | b"TRUE" | b"True" => Some(true),
        b"0" | b"f" | b"F" | b"false" | b"FALSE" | b"False" => Some(false),
        _ => None,
    }
}

/// `model.LabelNameRE`: `^[a-zA-Z_][a-zA-Z0-9_]*$`.
pub fn is_label_name(s: &[u8]) -> bool {
    !s.is_empty()
        && (s[0] == b'_' || s[0].is_ascii_alphabetic())
        && s.iter().all(|&c| c == b'_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_as_go() {
        let f = Form::parse(
            "POST",
            "query=url&x=%zz&y=1",
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"query=body&a+b=c%20d",
        );
        assert_eq!(f.get("query"), b"body");
        assert_eq!(f.get("a b"), b"c d");
        assert_eq!(f.get("y"), b"1");
        assert_eq!(f.error.as_deref(), Some("invalid URL escape \"%zz\""));
        let f = Form::parse("GET", "a=1;b=2&c", None, b"ignored=1");
        assert_eq!(
            f.error.as_deref(),
            Some("invalid semicolon separator in query")
        );
        assert!(f.has("c") && !f.has("ignored"));
        let f = Form::parse("POST", "", None, b"query=1");
        assert!(!f.has("query"));
    }

    #[test]
    fn times_parse_as_prometheus() {
        let t = parse_time(b"1700000000.5").unwrap();
        assert_eq!(t.engine_ms(), 1_700_000_000_500);
        assert_eq!(
            parse_time(b"2023-11-14T22:13:20Z").unwrap().from_time_ms(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time(b"1e309").unwrap_err(),
            "cannot parse \"1e309\" to a valid timestamp"
        );
        assert_eq!(
            parse_time(b"yesterday").unwrap_err(),
            "cannot parse \"yesterday\" to a valid timestamp"
        );
        // Huge times are accepted and wrap as in Go.
        let t = parse_time(b"-1e18").unwrap();
        assert_eq!(t.engine_ms(), 6_930_898_827_444);
        assert_eq!(MIN_TIME.from_time_ms(), -9_223_309_901_257_974_000);
        assert_eq!(MAX_TIME.from_time_ms(), 9_223_309_901_257_974_999);
    }

    #[test]
    fn durations_parse_as_prometheus() {
        assert_eq!(parse_duration(b"1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration(b"5m").unwrap(), 300_000_000_000);
        assert_eq!(
            parse_duration(b"1e300").unwrap_err(),
            "cannot parse \"1e300\" to a valid duration. It overflows int64"
        );
        assert_eq!(
            parse_duration(b"x").unwrap_err(),
            "cannot parse \"x\" to a valid duration"
        );
        assert_eq!(parse_duration(b"-1").unwrap(), -1_000_000_000);
    }

    #[test]
    fn selectors() {
        let m = parse_matchers(br#"up{job=~"a|b", x!=""}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].to_string(), r#"__name__="up""#);
        assert!(parse_matchers(b"rate(up[5m])").is_err());
        assert!(parse_matchers(b"up{").is_err());
        assert_eq!(
            parse_matchers_param(&[b"{a=\"\"}"]).unwrap_err().1,
            "match[] must contain at least one non-empty matcher"
        );
        assert!(is_label_name(b"__name__") && !is_label_name(b"1abc"));
        // 3.x's quoted UTF-8 names: a lone string is the metric name.
        let m = parse_matchers(br#"{"my.metric", "le"="1"}"#).unwrap();
        let shown: Vec<String> = m.iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, [r#"__name__="my.metric""#, r#"le="1""#]);
    }
}
