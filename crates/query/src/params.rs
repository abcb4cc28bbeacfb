//! Request parameters as Prometheus's HTTP API reads them: times, selectors, booleans.

use tsdb::{MatchType, Matcher};

/// Parses a time parameter: Unix seconds (fractions allowed) or RFC 3339, to ms.
pub fn parse_time(name: &str, s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            return Ok((f * 1000.0).round() as i64);
        }
    }
    tsdb::time::parse_rfc3339(s).map_err(|_| {
        format!("invalid parameter \"{name}\": cannot parse \"{s}\" to a valid timestamp")
    })
}

/// Parses a series selector (`up{job="x"}`) into matchers.
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>, String> {
    use promql_parser::label::MatchOp;
    use promql_parser::parser::Expr;
    let vs = promql::parse_with(s, |e| match e {
        Expr::VectorSelector(vs) => Ok(Some(vs.clone())),
        _ => Ok(None),
    })
    .map_err(|e| format!("invalid parameter \"match[]\": {e}"))?;
    let Some(vs) = vs else {
        return Err(format!(
            "invalid parameter \"match[]\": {s:?} is not a series selector"
        ));
    };
    if !vs.matchers.or_matchers.is_empty() {
        return Err("invalid parameter \"match[]\": `or` in selectors is not supported".into());
    }
    let mut out = Vec::new();
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(tsdb::labels::METRIC_NAME, name));
    }
    for m in &vs.matchers.matchers {
        let kind = match m.op {
            MatchOp::Equal => MatchType::Equal,
            MatchOp::NotEqual => MatchType::NotEqual,
            MatchOp::Re(_) => MatchType::RegexMatch,
            MatchOp::NotRe(_) => MatchType::RegexNoMatch,
        };
        out.push(
            Matcher::new(kind, &m.name, &m.value)
                .map_err(|e| format!("invalid parameter \"match[]\": {e}"))?,
        );
    }
    Ok(out)
}

/// Parses a boolean parameter as Go's strconv.ParseBool.
pub fn parse_bool(name: &str, s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "invalid parameter \"{name}\": cannot parse \"{s}\" as a boolean"
        )),
    }
}

/// Parses a duration parameter like Prometheus's API: float seconds or a duration string
/// (`5m`, `1h30m`). Returns milliseconds.
pub fn parse_duration_param(name: &str, s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms.abs() > i64::MAX as f64 / 1e3 {
            return Err(format!(
                "invalid parameter \"{name}\": cannot parse \"{s}\" to a valid duration. It overflows int64"
            ));
        }
        return Ok(ms.round() as i64);
    }
    tsdb::time::parse_duration(s).map_err(|_| {
        format!("invalid parameter \"{name}\": cannot parse \"{s}\" to a valid duration")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_time("t", "1700000000.5").unwrap(), 1_700_000_000_500);
        assert_eq!(
            parse_time("t", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert!(parse_time("start", "yesterday")
            .unwrap_err()
            .contains("\"start\""));
        let m = parse_selector(r#"up{job=~"a|b", x!=""}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].to_string(), r#"__name__="up""#);
        assert!(parse_selector("rate(up[5m])").is_err());
        assert!(parse_selector("up{").is_err());
        assert!(parse_bool("dedup", "false").is_ok() && parse_bool("dedup", "nah").is_err());
    }
}
