//! Prometheus's JSON answers written straight to bytes, the way its API's jsoniter encoder
//! writes them: `{"status":"success","data":…,"warnings":[…]}`, label sets as objects in
//! label order, points as `[<seconds>,"<value>"]` with the timestamp written from integer
//! milliseconds and the value as Go's `FormatFloat(v, 'f', -1)`, strings escaped as Go's
//! `encoding/json` does (HTML characters and U+2028/U+2029 as `\u` escapes).
//!
//! A large answer is never built as a tree or one string: [`write_query_result`] consumes the
//! result series by series, handing out pieces of about [`PIECE`] bytes as they fill, so the
//! memory of an answer in flight is the result itself plus a piece or two.

use std::fmt::Write as _;

use promql::{QueryResult, Value};
use tsdb::histogram::{AllBuckets, Histogram};
use tsdb::Labels;

/// Bytes gathered before a piece of the body is handed on.
pub const PIECE: usize = 64 * 1024;

/// Appends `s` as a JSON string literal, escaped like Go's `encoding/json`.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => None,
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => {
                let _ = write!(Hex(out), "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `fmt::Write` into a byte vector.
struct Hex<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Hex<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends a millisecond timestamp as seconds, as Prometheus's `marshalTimestamp`: the
/// integer part, then `.` and three digits when there is a fraction.
pub fn write_timestamp(out: &mut Vec<u8>, t: i64) {
    let abs = t.unsigned_abs();
    if t < 0 {
        out.push(b'-');
    }
    write_u64(out, abs / 1000);
    let frac = abs % 1000;
    if frac != 0 {
        out.push(b'.');
        if frac < 100 {
            out.push(b'0');
        }
        if frac < 10 {
            out.push(b'0');
        }
        write_u64(out, frac);
    }
}

/// `n` in decimal (Itoa's two-digits-at-a-time conversion, already built for serde_json).
fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends a sample value of a vector or matrix as Prometheus writes it: a JSON string of
/// Go's `FormatFloat(v, 'f', -1, 64)`, switching to `'e'` (`4.2e-07`, `1e+21`) when
/// `|v| < 1e-6` or `|v| >= 1e21` (zero excepted), with `NaN`, `+Inf` and `-Inf`.
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    let abs = v.abs();
    write_float(out, v, abs != 0.0 && !(1e-6..1e21).contains(&abs));
}

/// Appends a scalar result's value: always plain notation, as Prometheus's `Scalar`
/// marshals it.
pub fn write_scalar_value(out: &mut Vec<u8>, v: f64) {
    write_float(out, v, false);
}

fn write_float(out: &mut Vec<u8>, v: f64, exponent: bool) {
    out.push(b'"');
    write_number(out, v, exponent);
    out.push(b'"');
}

/// A JSON number as Prometheus's encoder writes a float: plain, or with an exponent when
/// `|v| < 1e-6` or `|v| >= 1e21` (`8.11e-07`).
fn write_json_float(out: &mut Vec<u8>, v: f64) {
    let abs = v.abs();
    write_number(out, v, abs != 0.0 && !(1e-6..1e21).contains(&abs));
}

fn write_number(out: &mut Vec<u8>, v: f64, exponent: bool) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if !exponent && v.fract() == 0.0 && v.abs() < 1e15 && (v != 0.0 || v.is_sign_positive())
    {
        // Whole numbers (counters, gauges of counts) need no digit search.
        if v < 0.0 {
            out.push(b'-');
        }
        write_u64(out, v.abs() as u64);
    } else if exponent {
        template::gofloat::write_exponent(out, v);
    } else {
        template::gofloat::write_plain(out, v);
    }
}

/// Appends a scalar result `[<t>,"<v>"]`.
pub fn write_scalar(out: &mut Vec<u8>, t: i64, v: f64) {
    write_pair(out, t, v, write_scalar_value);
}

/// Appends `[<t>,"<v>"]`.
pub fn write_point(out: &mut Vec<u8>, t: i64, v: f64) {
    write_pair(out, t, v, write_value);
}

fn write_pair(out: &mut Vec<u8>, t: i64, v: f64, value: fn(&mut Vec<u8>, f64)) {
    out.push(b'[');
    write_timestamp(out, t);
    out.push(b',');
    value(out, v);
    out.push(b']');
}

/// Appends `[<t>,{"count":…,"sum":…,"buckets":[[<boundary rule>,"<lower>","<upper>",
/// "<count>"],…]}]` as Prometheus's `marshalHistogram` does: buckets in value order, empty
/// ones left out, and no `buckets` key when all are.
pub fn write_histogram_point(out: &mut Vec<u8>, t: i64, h: &Histogram) {
    out.push(b'[');
    write_timestamp(out, t);
    out.extend_from_slice(b",{\"count\":");
    write_value(out, h.count);
    out.extend_from_slice(b",\"sum\":");
    write_value(out, h.sum);
    let mut found = false;
    for b in AllBuckets::new(h, false) {
        if b.count == 0.0 {
            continue;
        }
        out.extend_from_slice(if found { b",[" } else { b",\"buckets\":[[" });
        found = true;
        out.push(b'0' + b.boundary_rule());
        out.push(b',');
        write_value(out, b.lower);
        out.push(b',');
        write_value(out, b.upper);
        out.push(b',');
        write_value(out, b.count);
        out.push(b']');
    }
    if found {
        out.push(b']');
    }
    out.extend_from_slice(b"}]");
}

/// Appends a label set as a JSON object.
pub fn write_labels(out: &mut Vec<u8>, labels: &Labels) {
    out.push(b'{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &l.name);
        out.push(b':');
        write_str(out, &l.value);
    }
    out.push(b'}');
}

/// Appends `"warnings":[…]` preceded by a comma, when there are warnings.
fn write_warnings(out: &mut Vec<u8>, warnings: &[String]) {
    write_annotations(out, "warnings", "warning", warnings);
}

/// The API shows at most this many warnings, and as many infos.
const ANNOTATION_LIMIT: usize = 10;

/// Appends `,"<key>":[…]` unless `items` is empty (Prometheus leaves empty lists out): at
/// most [`ANNOTATION_LIMIT`] of them, then Prometheus's line saying how many `kind`
/// annotations were left out.
fn write_annotations(out: &mut Vec<u8>, key: &str, kind: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":[");
    for (i, w) in items.iter().take(ANNOTATION_LIMIT).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, w);
    }
    if items.len() > ANNOTATION_LIMIT {
        let omitted = items.len() - ANNOTATION_LIMIT;
        out.push(b',');
        write_str(out, &format!("{omitted} more {kind} annotations omitted"));
    }
    out.push(b']');
}

/// A success answer whose `data` is written by `data`.
pub fn success(data: impl FnOnce(&mut Vec<u8>), warnings: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"status\":\"success\",\"data\":");
    data(&mut out);
    write_warnings(&mut out, warnings);
    out.push(b'}');
    out
}

/// An error answer: `{"status":"error","errorType":…,"error":…}`.
pub fn error(kind: &str, msg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + msg.len());
    out.extend_from_slice(b"{\"status\":\"error\",\"errorType\":");
    write_str(&mut out, kind);
    out.extend_from_slice(b",\"error\":");
    write_str(&mut out, msg);
    out.push(b'}');
    out
}

/// Appends a JSON array of strings.
pub fn write_str_array<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a str>) {
    out.push(b'[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, s);
    }
    out.push(b']');
}

/// Writes a query's answer, consuming it, and hands `emit` a piece whenever [`PIECE`] bytes
/// have gathered (and the rest at the end). `emit` returns false when the reader is gone,
/// which stops the writing.
pub fn write_query_result(
    result: QueryResult,
    stats: Option<ExecTimes>,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) {
    let QueryResult {
        value,
        warnings,
        infos,
        stats: engine_stats,
    } = result;
    let mut out = Vec::with_capacity(PIECE + 4096);
    out.extend_from_slice(b"{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.extend_from_slice(value.type_name().as_bytes());
    out.extend_from_slice(b"\",\"result\":");
    let mut flush = |out: &mut Vec<u8>| -> bool {
        if out.len() < PIECE {
            return true;
        }
        emit(std::mem::replace(out, Vec::with_capacity(PIECE + 4096)))
    };
    match value {
        Value::Scalar { t, v } => write_scalar(&mut out, t, v),
        Value::String { t, s } => {
            out.push(b'[');
            write_timestamp(&mut out, t);
            out.push(b',');
            write_str(&mut out, &s);
            out.push(b']');
        }
        Value::Vector(samples) => {
            out.push(b'[');
            for (i, s) in samples.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_labels(&mut out, &s.labels);
                match &s.h {
                    Some(h) => {
                        out.extend_from_slice(b",\"histogram\":");
                        write_histogram_point(&mut out, s.t, h);
                    }
                    None => {
                        out.extend_from_slice(b",\"value\":");
                        write_point(&mut out, s.t, s.v);
                    }
                }
                out.push(b'}');
                if !flush(&mut out) {
                    return;
                }
            }
            out.push(b']');
        }
        Value::Matrix(series) => {
            out.push(b'[');
            for (i, s) in series.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_labels(&mut out, &s.labels);
                // Prometheus leaves out a kind of points the series has none of.
                if !s.points.is_empty() || s.hists.is_empty() {
                    out.extend_from_slice(b",\"values\":[");
                    for (j, p) in s.points.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        write_point(&mut out, p.t, p.v);
                        if out.len() >= PIECE && !flush(&mut out) {
                            return;
                        }
                    }
                    out.push(b']');
                }
                if !s.hists.is_empty() {
                    out.extend_from_slice(b",\"histograms\":[");
                    for (j, p) in s.hists.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        write_histogram_point(&mut out, p.t, &p.h);
                        if out.len() >= PIECE && !flush(&mut out) {
                            return;
                        }
                    }
                    out.push(b']');
                }
                out.push(b'}');
                drop(s);
                if !flush(&mut out) {
                    return;
                }
            }
            out.push(b']');
        }
    }
    if let Some(exec) = stats {
        write_stats(&mut out, &engine_stats, &exec);
    }
    out.push(b'}');
    write_warnings(&mut out, &warnings);
    write_annotations(&mut out, "infos", "info", &infos);
    out.push(b'}');
    emit(out);
}

/// What the querier measured around the engine for the `stats` parameter.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecTimes {
    /// Waiting for a concurrency slot.
    pub queue: std::time::Duration,
    /// From the request's arrival to the end of the evaluation.
    pub total: std::time::Duration,
}

/// Appends `,"stats":{…}` as Prometheus's `stats` parameter shows it (its per-step counts
/// are behind a Prometheus feature flag and absent by default, as here).
fn write_stats(out: &mut Vec<u8>, s: &promql::QueryStats, exec: &ExecTimes) {
    let timings = [
        ("evalTotalTime", s.eval_total),
        ("resultSortTime", s.result_sort),
        ("queryPreparationTime", std::time::Duration::ZERO),
        ("innerEvalTime", s.inner_eval),
        ("execQueueTime", exec.queue),
        ("execTotalTime", exec.total),
    ];
    out.extend_from_slice(b",\"stats\":{\"timings\":{");
    for (i, (name, d)) in timings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_json_float(out, d.as_secs_f64());
    }
    out.extend_from_slice(b"},\"samples\":{\"totalQueryableSamples\":");
    write_u64(out, s.total_samples);
    out.extend_from_slice(b",\"peakSamples\":");
    write_u64(out, s.peak_samples as u64);
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use promql::{Point, Sample, Series};
    use testkit::written as text;

    #[test]
    fn annotations_stop_at_ten_with_a_count_of_the_rest() {
        let many: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
        let got = text(|o| write_annotations(o, "warnings", "warning", &many));
        let want: Vec<String> = many[..10]
            .iter()
            .cloned()
            .chain(["2 more warning annotations omitted".to_string()])
            .collect();
        assert_eq!(
            got,
            format!(",\"warnings\":{}", serde_json::to_string(&want).unwrap())
        );
        assert_eq!(text(|o| write_annotations(o, "infos", "info", &[])), "");
    }

    #[test]
    fn strings_escape_as_go() {
        assert_eq!(text(|o| write_str(o, "a\"b\\c")), r#""a\"b\\c""#);
        assert_eq!(text(|o| write_str(o, "<&>")), r#""\u003c\u0026\u003e""#);
        assert_eq!(text(|o| write_str(o, "\n\t\u{1}é")), "\"\\n\\t\\u0001é\"");
        assert_eq!(text(|o| write_str(o, "\u{2028}")), r#""\u2028""#);
    }

    #[test]
    fn timestamps_and_values_as_prometheus() {
        assert_eq!(text(|o| write_timestamp(o, 1500)), "1.500");
        assert_eq!(text(|o| write_timestamp(o, 1_000)), "1");
        assert_eq!(text(|o| write_timestamp(o, 1_005)), "1.005");
        assert_eq!(text(|o| write_timestamp(o, -1_050)), "-1.050");
        assert_eq!(text(|o| write_timestamp(o, 0)), "0");
        // Checked against Prometheus 2.42: points switch to exponent form, scalars do not.
        for (v, point, scalar) in [
            (1e21, "1e+21", "1000000000000000000000"),
            (1e20, "100000000000000000000", "100000000000000000000"),
            (4.2e-7, "4.2e-07", "0.00000042"),
            (-4.2e-7, "-4.2e-07", "-0.00000042"),
            (9.99e-7, "9.99e-07", "0.000000999"),
            (1e-6, "0.000001", "0.000001"),
            (-1.5e300, "-1.5e+300", ""),
            (1.2345e-100, "1.2345e-100", ""),
            (0.0, "0", "0"),
            (-0.0, "-0", "-0"),
        ] {
            assert_eq!(text(|o| write_value(o, v)), format!("\"{point}\""), "{v}");
            if !scalar.is_empty() {
                assert_eq!(text(|o| write_scalar_value(o, v)), format!("\"{scalar}\""));
            }
        }
        assert_eq!(text(|o| write_value(o, -0.5)), r#""-0.5""#);
        assert_eq!(text(|o| write_value(o, f64::NAN)), r#""NaN""#);
        assert_eq!(text(|o| write_value(o, f64::NEG_INFINITY)), r#""-Inf""#);
    }

    /// The formatting before Ryu: Rust's shortest digits (as Go's), rewritten to Go's forms.
    fn reference_number(v: f64, exponent: bool) -> String {
        if v.is_nan() || v.is_infinite() {
            return text(|o| write_number(o, v, exponent));
        }
        if !exponent {
            return format!("{v}");
        }
        let s = format!("{v:e}");
        let (m, e) = s.split_once('e').unwrap();
        let e: i32 = e.parse().unwrap();
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    }

    proptest::proptest! {
        #[test]
        fn values_format_as_rusts_shortest_digits(
            bits in proptest::num::u64::ANY,
            whole in -1_000_000_000i64..1_000_000_000,
            scale in -30i32..30,
        ) {
            let decimal = whole as f64 * 10f64.powi(scale);
            for v in [f64::from_bits(bits), whole as f64, decimal, whole as f64 / 7.0] {
                for exponent in [false, true] {
                    if exponent && v == 0.0 {
                        continue;
                    }
                    proptest::prop_assert_eq!(
                        text(|o| write_number(o, v, exponent)),
                        reference_number(v, exponent),
                        "{:?} exponent {}", v, exponent
                    );
                }
            }
        }
    }

    #[test]
    fn matrix_in_pieces_equals_whole() {
        let series: Vec<Series> = (0..50)
            .map(|i| Series {
                labels: Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]),
                points: (0..2000)
                    .map(|t| Point {
                        t: t * 15_000,
                        v: t as f64,
                    })
                    .collect(),
                hists: Vec::new(),
            })
            .collect();
        let result = QueryResult {
            value: Value::Matrix(series),
            warnings: vec!["w".into()],
            infos: vec![],
            stats: Default::default(),
        };
        let mut pieces = Vec::new();
        write_query_result(result, None, &mut |p| {
            pieces.push(p);
            true
        });
        assert!(pieces.len() > 10);
        let whole: Vec<u8> = pieces.concat();
        let v: serde_json::Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(v["data"]["result"].as_array().unwrap().len(), 50);
        assert_eq!(v["data"]["result"][3]["values"][1][0], 15.0);
        assert_eq!(v["warnings"][0], "w");
    }

    #[test]
    fn vector_and_scalar() {
        let r = QueryResult {
            value: Value::Vector(vec![Sample {
                labels: Labels::from_pairs([("a", "b")]),
                t: 1000,
                v: 2.0,
                h: None,
            }]),
            warnings: vec![],
            infos: vec![],
            stats: Default::default(),
        };
        let mut all = Vec::new();
        write_query_result(r.clone(), None, &mut |p| {
            all.extend(p);
            true
        });
        assert_eq!(
            String::from_utf8(all).unwrap(),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"2"]}]}}"#
        );
        let mut r = r;
        r.stats = promql::QueryStats {
            total_samples: 12,
            peak_samples: 3,
            eval_total: std::time::Duration::from_nanos(153_629),
            inner_eval: std::time::Duration::from_nanos(152_818),
            result_sort: std::time::Duration::from_nanos(811),
        };
        let exec = ExecTimes {
            queue: std::time::Duration::from_micros(2),
            total: std::time::Duration::from_secs(1),
        };
        let mut all = Vec::new();
        write_query_result(r, Some(exec), &mut |p| {
            all.extend(p);
            true
        });
        let text = String::from_utf8(all).unwrap();
        assert!(
            text.ends_with(
                r#""stats":{"timings":{"evalTotalTime":0.000153629,"resultSortTime":8.11e-07,"queryPreparationTime":0,"innerEvalTime":0.000152818,"execQueueTime":0.000002,"execTotalTime":1},"samples":{"totalQueryableSamples":12,"peakSamples":3}}}}"#
            ),
            "{text}"
        );
    }

    #[test]
    fn native_histograms_as_prometheus_writes_them() {
        use std::sync::Arc;
        use tsdb::histogram::Span;
        let h = Histogram {
            schema: 0,
            count: 4.0,
            sum: 5.0,
            zero_threshold: 0.001,
            zero_count: 1.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1.0, 0.0, 2.0],
            ..Histogram::default()
        };
        let mut out = Vec::new();
        write_histogram_point(&mut out, 1500, &h);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[1.500,{"count":"4","sum":"5","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","1"],[0,"2","4","2"]]}]"#
        );
        let mut out = Vec::new();
        write_histogram_point(&mut out, 0, &Histogram::default());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[0,{"count":"0","sum":"0"}]"#
        );
        let series = Series {
            labels: Labels::from_pairs([("a", "b")]),
            points: Vec::new(),
            hists: vec![promql::HPoint {
                t: 1000,
                h: Arc::new(Histogram::default()),
            }],
        };
        let r = QueryResult {
            value: Value::Matrix(vec![series]),
            warnings: vec![],
            infos: vec![],
            stats: Default::default(),
        };
        let body = text(|o| {
            write_query_result(r, None, &mut |p| {
                o.extend_from_slice(&p);
                true
            })
        });
        assert!(
            body.contains(r#"{"metric":{"a":"b"},"histograms":[[1,{"count":"0","sum":"0"}]]}"#),
            "{body}"
        );
    }
}
