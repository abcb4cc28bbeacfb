//! The test scripts' native histogram notation: `{{schema:0 sum:5 count:4 z_bucket:1
//! z_bucket_w:0.001 buckets:[1 2 1] offset:0 n_buckets:[…] n_offset:0
//! counter_reset_hint:gauge custom_values:[…]}}`, with the series expansions `{{a}}xN`,
//! `{{a}}+{{b}}xN` and `{{a}}-{{b}}xN` (Prometheus's `histogramsSeries`), and the
//! comparison of Prometheus's harness (`compareNativeHistogram`: both compacted, counts
//! almost equal, the hint only when the expectation names one).

use tsdb::histogram::{self, CounterResetHint, Histogram, Span};

/// A histogram from a script, and whether it names its counter reset hint.
#[derive(Clone, Debug)]
pub struct ScriptHistogram {
    pub h: Histogram,
    pub hint_set: bool,
}

/// Splits a values text into items, keeping `{{…}}` (which holds spaces) in one item.
pub fn split_items(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i] == b'{' && b.get(i + 1) == Some(&b'{') {
                match s[i..].find("}}") {
                    Some(end) => i += end + 2,
                    None => i = b.len(),
                }
            } else {
                i += 1;
            }
        }
        out.push(&s[start..i]);
    }
    out
}

/// Parses the inside of one `{{…}}`.
pub fn parse_histogram(text: &str) -> Result<ScriptHistogram, String> {
    let inner = text
        .trim()
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .ok_or_else(|| format!("bad histogram {text:?}"))?;
    let mut h = Histogram::default();
    let mut hint_set = false;
    let (mut buckets, mut offset) = (Vec::new(), 0i32);
    let (mut n_buckets, mut n_offset) = (Vec::new(), 0i32);
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once(':')
            .ok_or_else(|| format!("bad histogram field in {text:?}"))?;
        let after = after.trim_start();
        let (value, next) = if after.starts_with('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("unclosed list in {text:?}"))?;
            (&after[..=end], &after[end + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        rest = next.trim_start();
        let num = |v: &str| super::parse_number(v).ok_or_else(|| format!("bad number {v:?}"));
        let list = |v: &str| -> Result<Vec<f64>, String> {
            v.trim_start_matches('[')
                .trim_end_matches(']')
                .split_whitespace()
                .map(num)
                .collect()
        };
        match key.trim() {
            "schema" => h.schema = num(value)? as i32,
            "sum" => h.sum = num(value)?,
            "count" => h.count = num(value)?,
            "z_bucket" => h.zero_count = num(value)?,
            "z_bucket_w" => h.zero_threshold = num(value)?,
            "custom_values" => h.custom_values = list(value)?,
            "buckets" => buckets = list(value)?,
            "offset" => offset = num(value)? as i32,
            "n_buckets" => n_buckets = list(value)?,
            "n_offset" => n_offset = num(value)? as i32,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("bad counter_reset_hint {other:?}")),
                }
            }
            other => return Err(format!("unknown histogram field {other:?}")),
        }
    }
    let spans = |n: usize, offset: i32| -> Vec<Span> {
        if n == 0 {
            Vec::new()
        } else {
            vec![Span {
                offset,
                length: n as u32,
            }]
        }
    };
    h.positive_spans = spans(buckets.len(), offset);
    h.positive_buckets = buckets;
    h.negative_spans = spans(n_buckets.len(), n_offset);
    h.negative_buckets = n_buckets;
    Ok(ScriptHistogram { h, hint_set })
}

/// Expands one series item holding histograms into its values.
pub fn expand(item: &str) -> Result<Vec<ScriptHistogram>, String> {
    let first_end = item
        .find("}}")
        .ok_or_else(|| format!("bad histogram item {item:?}"))?
        + 2;
    let base = parse_histogram(&item[..first_end])?;
    let rest = &item[first_end..];
    if rest.is_empty() {
        return Ok(vec![base]);
    }
    if let Some(times) = rest.strip_prefix('x') {
        // `{{a}}xN`: the same histogram N+1 times.
        let n: usize = times
            .parse()
            .map_err(|_| format!("bad count in {item:?}"))?;
        return Ok(vec![base; n + 1]);
    }
    let op = rest.chars().next().unwrap_or('?');
    let body = &rest[1..];
    let end = body
        .find("}}")
        .ok_or_else(|| format!("bad histogram item {item:?}"))?
        + 2;
    let times = body[end..]
        .strip_prefix('x')
        .ok_or_else(|| format!("missing x count in {item:?}"))?;
    let inc = parse_histogram(&body[..end])?;
    let times: usize = times
        .parse()
        .map_err(|_| format!("bad count in {item:?}"))?;
    let hint_set = inc.hint_set || base.hint_set;
    let mut out = vec![base.clone()];
    let mut cur = base.h;
    for _ in 0..times {
        if cur.schema > inc.h.schema {
            return Err(format!(
                "cannot merge from schema {} to {}",
                inc.h.schema, cur.schema
            ));
        }
        let mut next = cur.clone();
        let r = match op {
            '+' => histogram::try_add(&mut next, &inc.h),
            '-' => histogram::try_sub(&mut next, &inc.h),
            _ => return Err(format!("bad operator in {item:?}")),
        };
        r.map_err(|_| format!("incompatible schemas in {item:?}"))?;
        out.push(ScriptHistogram {
            h: next.clone(),
            hint_set,
        });
        cur = next;
    }
    Ok(out)
}

/// Prometheus's `compareNativeHistogram` after `Compact(0)` on both.
pub fn histograms_match(expected: &ScriptHistogram, got: &Histogram) -> bool {
    let mut exp = expected.h.clone();
    let mut cur = got.clone();
    histogram::compact_buckets(&mut exp);
    histogram::compact_buckets(&mut cur);
    let close = super::almost_equal;
    if exp.schema != cur.schema || !close(exp.count, cur.count) || !close(exp.sum, cur.sum) {
        return false;
    }
    if exp.uses_custom_buckets() && !histogram::bounds_match(&exp.custom_values, &cur.custom_values)
    {
        return false;
    }
    if exp.zero_threshold != cur.zero_threshold || !close(exp.zero_count, cur.zero_count) {
        return false;
    }
    let buckets_match =
        |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(*x, *y));
    if exp.negative_spans != cur.negative_spans
        || !buckets_match(&exp.negative_buckets, &cur.negative_buckets)
        || exp.positive_spans != cur.positive_spans
        || !buckets_match(&exp.positive_buckets, &cur.positive_buckets)
    {
        return false;
    }
    !expected.hint_set || exp.counter_reset_hint == cur.counter_reset_hint
}

/// `load_with_nhcb`: classic histogram series (`_bucket` with `le`, `_count`, `_sum`)
/// converted into histograms with custom buckets under the base name, as Prometheus's
/// `convertnhcb` does (counts de-accumulated, a `+Inf` bucket added when missing, the
/// count taken from the last bucket when there is no `_count`).
pub fn classic_to_nhcb(
    series: &[(tsdb::labels::Labels, Vec<(i64, f64)>)],
) -> Result<Vec<(tsdb::labels::Labels, Vec<Histogram>)>, String> {
    use std::collections::BTreeMap;
    #[derive(Default, Clone)]
    struct Temp {
        buckets: Vec<(f64, f64)>,
        count: Option<f64>,
        sum: f64,
    }
    let mut by_base: BTreeMap<tsdb::labels::Labels, BTreeMap<i64, Temp>> = BTreeMap::new();
    for (labels, points) in series {
        let name = labels.get("__name__").unwrap_or("");
        let (kind, base) = if let Some(b) = name.strip_suffix("_bucket") {
            (0, b)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (1, b)
        } else if let Some(b) = name.strip_suffix("_count") {
            (2, b)
        } else {
            continue;
        };
        let le = if kind == 0 {
            match labels.get("le").and_then(super::parse_number) {
                Some(le) if !le.is_nan() => Some(le),
                _ => continue,
            }
        } else {
            None
        };
        let mut key = labels.clone();
        key.set("__name__", base);
        key.remove("le");
        let temps = by_base.entry(key).or_default();
        for &(t, v) in points {
            let temp = temps.entry(t).or_default();
            match (kind, le) {
                (0, Some(le)) => {
                    if let Err(i) = temp.buckets.binary_search_by(|b| b.0.total_cmp(&le)) {
                        temp.buckets.insert(i, (le, v));
                    }
                }
                (1, _) => temp.sum = v,
                _ => temp.count = Some(v),
            }
        }
    }
    let mut out = Vec::new();
    for (labels, temps) in by_base {
        let mut hs = Vec::new();
        for (t, mut temp) in temps {
            if temp.buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{labels}: bucket counts are not cumulative"));
            }
            let count = temp
                .count
                .or_else(|| temp.buckets.last().map(|b| b.1))
                .unwrap_or(0.0);
            if temp.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
                temp.buckets.push((f64::INFINITY, count));
            }
            let mut h = Histogram {
                t,
                schema: tsdb::histogram::CUSTOM_BUCKETS_SCHEMA,
                count,
                sum: temp.sum,
                positive_spans: vec![Span {
                    offset: 0,
                    length: temp.buckets.len() as u32,
                }],
                ..Histogram::default()
            };
            let mut prev = 0.0;
            for &(le, c) in &temp.buckets {
                h.positive_buckets.push(c - prev);
                prev = c;
                if le != f64::INFINITY {
                    h.custom_values.push(le);
                }
            }
            histogram::compact_buckets(&mut h);
            hs.push(h);
        }
        out.push((labels, hs));
    }
    Ok(out)
}

/// The samples of one series as Prometheus's head hands them back after appending them:
/// written into float histogram chunks (a new chunk where Prometheus cuts one: counter
/// resets, layout changes, gauge/counter switches) and read again, so that the counter
/// reset hints are the ones the engine sees there (`NotCounterReset` after the first
/// sample of a chunk, `Gauge` in gauge chunks).
pub fn as_head_reads(samples: Vec<Histogram>) -> Result<Vec<Histogram>, String> {
    use tsdb::chunkenc::histogram::{decode_all, AppendError, FloatHistogramAppender};
    use tsdb::chunkenc::Encoding;
    let mut out = Vec::with_capacity(samples.len());
    let mut app = FloatHistogramAppender::new();
    let flush = |app: &FloatHistogramAppender, out: &mut Vec<Histogram>| -> Result<(), String> {
        if app.num_samples() > 0 {
            out.extend(
                decode_all(Encoding::FLOAT_HISTOGRAM, app.bytes()).map_err(|e| e.to_string())?,
            );
        }
        Ok(())
    };
    for h in samples {
        match app.append(&h) {
            Ok(_) => {}
            Err(AppendError::Cut { header, .. }) => {
                flush(&app, &mut out)?;
                app.reset();
                app.set_counter_reset_header(header);
                app.append(&h).map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    flush(&app, &mut out)?;
    Ok(out)
}
