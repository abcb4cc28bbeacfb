//! Instant queries through a querier's HTTP API (`/api/v1/query`), as Thanos's ruler sends
//! them: deduplicated, with the group's partial response strategy, to the query endpoints
//! in turn until one answers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Deserialize;
use tsdb::Labels;

use crate::targets::TargetGroup;

/// One sample of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// An instant query's result: a vector (a scalar is a one-sample vector without labels, as
/// Prometheus's rule engine turns it) and the warnings that came with it.
#[derive(Debug, Default)]
pub struct QueryResult {
    pub samples: Vec<Sample>,
    pub warnings: Vec<String>,
}

#[async_trait::async_trait]
pub trait Querier: Send + Sync {
    async fn query(
        &self,
        expr: &str,
        ts_ms: i64,
        partial_response: bool,
    ) -> Result<QueryResult, String>;
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: String,
    #[serde(default, rename = "errorType")]
    error_type: String,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        s => s.parse().map_err(|_| format!("bad sample value {s:?}")),
    }
}

/// Reads a `/api/v1/query` answer.
pub fn parse_answer(body: &[u8]) -> Result<QueryResult, String> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| {
        format!(
            "unreadable query answer ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    if env.status != "success" {
        return Err(format!("{}: {}", env.error_type, env.error));
    }
    let data = env.data.ok_or("query answer without data")?;
    let samples = match data.result_type.as_str() {
        "vector" => {
            let v: Vec<VectorSample> =
                serde_json::from_value(data.result).map_err(|e| format!("bad vector: {e}"))?;
            v.into_iter()
                .map(|s| {
                    Ok(Sample {
                        labels: Labels::from_pairs(s.metric),
                        value: parse_value(&s.value.1)?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?
        }
        "scalar" => {
            let (_, v): (f64, String) =
                serde_json::from_value(data.result).map_err(|e| format!("bad scalar: {e}"))?;
            vec![Sample {
                labels: Labels::empty(),
                value: parse_value(&v)?,
            }]
        }
        other => return Err(format!("rule result is not a vector or scalar but {other}")),
    };
    Ok(QueryResult {
        samples,
        warnings: env.warnings,
    })
}

/// Queries over HTTP, trying the endpoints in turn from a rotating start.
pub struct HttpQuerier {
    pub groups: Arc<Vec<TargetGroup>>,
    pub post: bool,
    next: AtomicUsize,
}

impl HttpQuerier {
    pub fn new(groups: Arc<Vec<TargetGroup>>, post: bool) -> Self {
        HttpQuerier {
            groups,
            post,
            next: AtomicUsize::new(0),
        }
    }
}

fn form_value(ts_ms: i64) -> String {
    (ts_ms as f64 / 1000.0).to_string()
}

#[async_trait::async_trait]
impl Querier for HttpQuerier {
    async fn query(
        &self,
        expr: &str,
        ts_ms: i64,
        partial_response: bool,
    ) -> Result<QueryResult, String> {
        let endpoints: Vec<(&TargetGroup, String)> = self
            .groups
            .iter()
            .flat_map(|g| g.urls().into_iter().map(move |u| (g, u)))
            .collect();
        if endpoints.is_empty() {
            return Err("no query API server reachable: none configured or discovered".into());
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let time = form_value(ts_ms);
        let partial = if partial_response { "true" } else { "false" };
        let params = [
            ("query", expr),
            ("time", time.as_str()),
            ("dedup", "true"),
            ("partial_response", partial),
        ];
        let mut last_err = String::new();
        for i in 0..endpoints.len() {
            let (g, base) = &endpoints[(start + i) % endpoints.len()];
            let url = format!("{base}/api/v1/query");
            let req = if self.post {
                g.client.post(&url).form(&params)
            } else {
                g.client.get(&url).query(&params)
            };
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            last_err = format!("{url}: reading answer: {e}");
                            continue;
                        }
                    };
                    // 4xx with a Prometheus error body is the query's fault: no retry.
                    match parse_answer(&body) {
                        Ok(r) => return Ok(r),
                        Err(e) if status.is_client_error() => return Err(e),
                        Err(e) => last_err = format!("{url}: HTTP {status}: {e}"),
                    }
                }
                Err(e) => last_err = format!("{url}: {e}"),
            }
        }
        Err(format!("no query API server answered: {last_err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        let r = parse_answer(
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1.5,"1"]},{"metric":{},"value":[1.5,"NaN"]}]},"warnings":["w"]}"#,
        )
        .unwrap();
        assert_eq!(r.samples.len(), 2);
        assert_eq!(r.samples[0].labels.get("job"), Some("a"));
        assert!(r.samples[1].value.is_nan());
        assert_eq!(r.warnings, vec!["w"]);
        let r = parse_answer(
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#,
        )
        .unwrap();
        assert_eq!(r.samples[0].value, f64::INFINITY);
        let e = parse_answer(br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
            .unwrap_err();
        assert_eq!(e, "bad_data: parse error");
        assert!(parse_answer(b"<html>").is_err());
        assert!(parse_answer(
            br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#
        )
        .is_err());
        assert_eq!(form_value(1500), "1.5");
        assert_eq!(form_value(-1), "-0.001");
    }
}
