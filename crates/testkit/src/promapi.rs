//! Prometheus HTTP API answers in a comparable form, for the differential tests that hold
//! our engine and querier against Prometheus: parsing the JSON, comparing results with a
//! relative tolerance, encoding query strings.

use serde_json::Value as Json;

/// A label set as sorted name/value pairs.
pub type LabelPairs = Vec<(String, String)>;

/// Percent-encodes a query parameter value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Milliseconds as the decimal seconds the API takes.
pub fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The first difference between two answers' `warnings` and `infos` (compared as sets:
/// Prometheus keeps them in a map and lists them in no fixed order).
pub fn annotations_differ(theirs: &str, ours: &str) -> Option<String> {
    let parse = |body: &str| -> Option<Json> { serde_json::from_str(body).ok() };
    let (a, b) = (parse(theirs)?, parse(ours)?);
    for key in ["warnings", "infos"] {
        let list = |v: &Json| -> Vec<String> {
            let mut l: Vec<String> = v[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            l.sort();
            l
        };
        let (x, y) = (list(&a), list(&b));
        if x != y {
            return Some(format!("{key} differ: {x:?} vs {y:?}"));
        }
    }
    None
}

/// A result in a form both sides convert to.
#[derive(Debug)]
pub enum Res {
    Error { bad_data: bool, msg: String },
    Scalar(i64, f64),
    Str(i64, String),
    Vector(Vec<(LabelPairs, i64, f64)>),
    Matrix(Vec<(LabelPairs, Vec<(i64, f64)>)>),
}

pub fn parse_value(v: &Json) -> f64 {
    match v.as_str().unwrap_or("") {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap_or(f64::NAN),
    }
}

pub fn parse_time(v: &Json) -> i64 {
    (v.as_f64().unwrap_or(f64::NAN) * 1000.0).round() as i64
}

pub fn parse_metric(v: &Json) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = v
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    pairs
}

pub fn from_prometheus(body: &str) -> Res {
    let v: Json = serde_json::from_str(body).unwrap_or_else(|e| panic!("bad JSON {e}: {body}"));
    if v["status"] != "success" {
        return Res::Error {
            bad_data: v["errorType"] == "bad_data",
            msg: v["error"].as_str().unwrap_or("").to_string(),
        };
    }
    let r = &v["data"]["result"];
    match v["data"]["resultType"].as_str().unwrap_or("") {
        "scalar" => Res::Scalar(parse_time(&r[0]), parse_value(&r[1])),
        "string" => Res::Str(parse_time(&r[0]), r[1].as_str().unwrap_or("").to_string()),
        "vector" => Res::Vector(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        parse_metric(&s["metric"]),
                        parse_time(&s["value"][0]),
                        parse_value(&s["value"][1]),
                    )
                })
                .collect(),
        ),
        "matrix" => Res::Matrix(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let points = s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (parse_time(&p[0]), parse_value(&p[1])))
                        .collect();
                    (parse_metric(&s["metric"]), points)
                })
                .collect(),
        ),
        other => panic!("unknown result type {other}: {body}"),
    }
}

pub fn same_value(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-12 || diff / a.abs().max(b.abs()) <= 1e-9
}

/// Why `ours` differs from `theirs`, if it does.
pub fn differ(theirs: &Res, ours: &Res, ordered: bool) -> Option<String> {
    match (theirs, ours) {
        (Res::Error { bad_data: a, .. }, Res::Error { bad_data: b, .. }) => {
            (a != b).then(|| format!("error classes differ: {theirs:?} vs {ours:?}"))
        }
        (Res::Scalar(t1, v1), Res::Scalar(t2, v2)) => {
            (t1 != t2 || !same_value(*v1, *v2)).then(|| format!("scalar {t1} {v1} vs {t2} {v2}"))
        }
        (Res::Str(t1, s1), Res::Str(t2, s2)) => {
            (t1 != t2 || s1 != s2).then(|| format!("string {s1:?} vs {s2:?}"))
        }
        (Res::Vector(a), Res::Vector(b)) => {
            if a.len() != b.len() {
                return Some(format!(
                    "{} samples vs {}: {}",
                    a.len(),
                    b.len(),
                    brief(theirs, ours)
                ));
            }
            for (i, (l, t, v)) in a.iter().enumerate() {
                let other = if ordered {
                    b.get(i).filter(|x| &x.0 == l)
                } else {
                    b.iter().find(|x| &x.0 == l)
                };
                match other {
                    None => {
                        return Some(format!(
                            "{l:?} missing or misplaced: {}",
                            brief(theirs, ours)
                        ))
                    }
                    Some((_, t2, v2)) if t2 != t || !same_value(*v, *v2) => {
                        return Some(format!("{l:?}: {t} {v} vs {t2} {v2}"))
                    }
                    _ => {}
                }
            }
            None
        }
        (Res::Matrix(a), Res::Matrix(b)) => {
            if a.len() != b.len() {
                return Some(format!(
                    "{} series vs {}: {}",
                    a.len(),
                    b.len(),
                    brief(theirs, ours)
                ));
            }
            for ((l1, p1), (l2, p2)) in a.iter().zip(b) {
                if l1 != l2 {
                    return Some(format!("series order/labels: {l1:?} vs {l2:?}"));
                }
                if p1.len() != p2.len() {
                    return Some(format!("{l1:?}: {} points vs {}", p1.len(), p2.len()));
                }
                for (x, y) in p1.iter().zip(p2) {
                    if x.0 != y.0 || !same_value(x.1, y.1) {
                        return Some(format!("{l1:?}: point {x:?} vs {y:?}"));
                    }
                }
            }
            None
        }
        _ => Some(format!("result kinds differ: {}", brief(theirs, ours))),
    }
}

pub fn brief(a: &Res, b: &Res) -> String {
    let mut s = format!("prometheus={a:?} ours={b:?}");
    if s.len() > 600 {
        s.truncate(600);
        s.push_str("...");
    }
    s
}

/// The read-path differential corpus (`promql/tests/vs-prometheus-queries.txt`): one query
/// per line, `{mid}` replaced by `mid` (an API time).
pub fn read_path_corpus(mid: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../promql/tests/vs-prometheus-queries.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.replace("{mid}", mid))
        .collect()
}

/// The metadata calls the read-path tests compare (series, label names, instance values,
/// for three selectors) over `range` (`start=…&end=…`), each with whether its order counts.
pub fn metadata_paths(range: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for m in [
        "http_requests_total",
        "{job=\"db\"}",
        "memory_bytes{instance=~\"10.0.0.[12].*\"}",
    ] {
        let m = url_encode(m);
        out.push((format!("/api/v1/series?match%5B%5D={m}&{range}"), true));
        out.push((format!("/api/v1/labels?match%5B%5D={m}&{range}"), true));
        out.push((
            format!("/api/v1/label/instance/values?match%5B%5D={m}&{range}"),
            true,
        ));
    }
    out.push((format!("/api/v1/labels?{range}"), true));
    out.push((format!("/api/v1/label/job/values?{range}"), true));
    out
}
