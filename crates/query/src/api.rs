//! Prometheus's HTTP API (`/api/v1/...`) with identical JSON, plus Thanos's parameters
//! (`dedup`, `partial_response`, `replicaLabels[]`) and `/api/v1/stores`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use storeapi::convert::matcher_to_pb;
use storeapi::pb;
use storeapi::proxy::Proxy;
use storeapi::SeriesStore;
use tsdb::Matcher;

use crate::endpoints::EndpointSet;
use crate::params::{parse_bool, parse_selector, parse_time};

pub struct Config {
    /// Labels that tell HA replicas apart; removed when deduplicating.
    pub replica_labels: Vec<String>,
    /// Default of the `partial_response` parameter.
    pub partial_response: bool,
    /// Upper bound on one request (`--query.timeout`).
    pub timeout: std::time::Duration,
}

pub struct Api {
    pub endpoints: Arc<EndpointSet>,
    pub cfg: Config,
}

/// An API error as Prometheus reports it.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    msg: String,
}

fn bad_data(msg: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        kind: "bad_data",
        msg: msg.into(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.kind, "error": self.msg});
        (
            self.status,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

fn success(data: Value, warnings: Vec<String>) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    ([("content-type", "application/json")], body.to_string()).into_response()
}

/// Parameters from the query string and, for POST, the form body.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<String>, body: &str) -> Result<Params, ApiError> {
        let mut v: Vec<(String, String)> = match query {
            Some(q) => serde_urlencoded::from_str(&q)
                .map_err(|e| bad_data(format!("invalid query string: {e}")))?,
            None => Vec::new(),
        };
        if !body.is_empty() {
            let form: Vec<(String, String)> = serde_urlencoded::from_str(body)
                .map_err(|e| bad_data(format!("invalid form body: {e}")))?;
            v.extend(form);
        }
        Ok(Params(v))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            Some(s) if !s.is_empty() => parse_time(name, s).map_err(bad_data),
            _ => Ok(default),
        }
    }

    fn bool(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            Some(s) if !s.is_empty() => parse_bool(name, s).map_err(bad_data),
            _ => Ok(default),
        }
    }

    fn selectors(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        self.all("match[]")
            .into_iter()
            .map(|s| parse_selector(s).map_err(bad_data))
            .collect()
    }
}

/// Common options of the read requests.
struct ReadOptions {
    start: i64,
    end: i64,
    dedup: bool,
    strategy: pb::PartialResponseStrategy,
    replica_labels: Vec<String>,
}

impl Api {
    fn options(&self, p: &Params) -> Result<ReadOptions, ApiError> {
        let start = p.time("start", i64::MIN / 2)?;
        let end = p.time("end", i64::MAX / 2)?;
        if end < start {
            return Err(bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        let partial = p.bool("partial_response", self.cfg.partial_response)?;
        let mut replica_labels: Vec<String> = p
            .all("replicaLabels[]")
            .into_iter()
            .map(String::from)
            .collect();
        if replica_labels.is_empty() {
            replica_labels = self.cfg.replica_labels.clone();
        }
        Ok(ReadOptions {
            start,
            end,
            dedup: p.bool("dedup", true)?,
            strategy: if partial {
                pb::PartialResponseStrategy::Warn
            } else {
                pb::PartialResponseStrategy::Abort
            },
            replica_labels,
        })
    }

    fn proxy(&self, o: &ReadOptions, matchers: &[Matcher]) -> Proxy {
        Proxy::new(self.endpoints.select(o.start, o.end, matchers))
    }

    /// For every series matching any of `selectors`, what `pick` takes from each label,
    /// deduplicated and sorted, plus the warnings.
    async fn pick_labels(
        &self,
        o: &ReadOptions,
        selectors: &[Vec<Matcher>],
        pick: impl Fn(pb::Label) -> Option<String>,
    ) -> Result<(BTreeSet<String>, Vec<String>), ApiError> {
        let (mut out, mut warnings) = (BTreeSet::new(), Vec::new());
        for ms in selectors {
            let (sets, w) = self.series_labels(o, ms).await?;
            warnings.extend(w);
            out.extend(sets.into_iter().flatten().filter_map(&pick));
        }
        Ok((out, warnings))
    }

    /// Label sets of the series matching `matchers`, replica labels removed when deduplicating.
    async fn series_labels(
        &self,
        o: &ReadOptions,
        matchers: &[Matcher],
    ) -> Result<(Vec<Vec<pb::Label>>, Vec<String>), ApiError> {
        let req = pb::SeriesRequest {
            min_time: o.start,
            max_time: o.end,
            matchers: matchers.iter().map(matcher_to_pb).collect(),
            skip_chunks: true,
            partial_response_strategy: o.strategy as i32,
            without_replica_labels: if o.dedup {
                o.replica_labels.clone()
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        let mut stream = self
            .proxy(o, matchers)
            .series(req)
            .await
            .map_err(internal)?;
        let (mut out, mut warnings) = (Vec::new(), Vec::new());
        while let Some(frame) = stream.next().await {
            match frame.map_err(internal)?.result {
                Some(pb::series_response::Result::Series(mut s)) => {
                    if o.dedup {
                        s.labels.retain(|l| !o.replica_labels.contains(&l.name));
                    }
                    out.push(s.labels);
                }
                Some(pb::series_response::Result::Warning(w)) => warnings.push(w),
                _ => {}
            }
        }
        Ok((out, warnings))
    }
}

/// Runs `f` within the query timeout, as Prometheus reports an exceeded one.
async fn with_timeout<T>(
    api: &Api,
    f: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(api.cfg.timeout, f).await {
        Ok(r) => r,
        Err(_) => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "timeout",
            msg: format!(
                "query timed out in expression evaluation after {:?}",
                api.cfg.timeout
            ),
        }),
    }
}

fn internal(s: tonic::Status) -> ApiError {
    ApiError {
        status: if s.code() == tonic::Code::InvalidArgument {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        },
        kind: if s.code() == tonic::Code::InvalidArgument {
            "bad_data"
        } else {
            "execution"
        },
        msg: s.message().to_string(),
    }
}

async fn series(
    State(api): State<Arc<Api>>,
    RawQuery(q): RawQuery,
    body: String,
) -> Result<Response, ApiError> {
    with_timeout(&api.clone(), series_inner(api, q, body)).await
}

async fn series_inner(
    api: Arc<Api>,
    q: Option<String>,
    body: String,
) -> Result<Response, ApiError> {
    let p = Params::parse(q, &body)?;
    let selectors = p.selectors()?;
    if selectors.is_empty() {
        return Err(bad_data("no match[] parameter provided"));
    }
    let o = api.options(&p)?;
    let mut all: BTreeMap<Vec<(String, String)>, ()> = BTreeMap::new();
    let mut warnings = Vec::new();
    for ms in &selectors {
        let (sets, w) = api.series_labels(&o, ms).await?;
        warnings.extend(w);
        for s in sets {
            all.insert(s.into_iter().map(|l| (l.name, l.value)).collect(), ());
        }
    }
    let mut sets: Vec<tsdb::Labels> = all.into_keys().map(tsdb::Labels::from_pairs).collect();
    sets.sort();
    let data: Vec<Value> = sets
        .iter()
        .map(|l| {
            Value::Object(
                l.iter()
                    .map(|x| (x.name.clone(), Value::String(x.value.clone())))
                    .collect(),
            )
        })
        .collect();
    Ok(success(Value::Array(data), warnings))
}

async fn labels(
    State(api): State<Arc<Api>>,
    RawQuery(q): RawQuery,
    body: String,
) -> Result<Response, ApiError> {
    with_timeout(&api.clone(), labels_inner(api, q, body)).await
}

async fn labels_inner(
    api: Arc<Api>,
    q: Option<String>,
    body: String,
) -> Result<Response, ApiError> {
    let p = Params::parse(q, &body)?;
    let o = api.options(&p)?;
    let selectors = p.selectors()?;
    let mut names = BTreeSet::new();
    let mut warnings = Vec::new();
    if selectors.is_empty() {
        let req = pb::LabelNamesRequest {
            start: o.start,
            end: o.end,
            partial_response_strategy: o.strategy as i32,
            ..Default::default()
        };
        let r = api
            .proxy(&o, &[])
            .label_names(req)
            .await
            .map_err(internal)?;
        names.extend(r.names);
        warnings.extend(r.warnings);
    } else {
        let (found, w) = api.pick_labels(&o, &selectors, |l| Some(l.name)).await?;
        names.extend(found);
        warnings.extend(w);
    }
    if o.dedup {
        names.retain(|n| !o.replica_labels.contains(n));
    }
    Ok(success(json!(names), warnings))
}

async fn label_values(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: String,
) -> Result<Response, ApiError> {
    with_timeout(&api.clone(), label_values_inner(api, name, q, body)).await
}

async fn label_values_inner(
    api: Arc<Api>,
    name: String,
    q: Option<String>,
    body: String,
) -> Result<Response, ApiError> {
    let p = Params::parse(q, &body)?;
    let o = api.options(&p)?;
    if o.dedup && o.replica_labels.contains(&name) {
        return Ok(success(json!([]), Vec::new()));
    }
    let selectors = p.selectors()?;
    let mut values = BTreeSet::new();
    let mut warnings = Vec::new();
    if selectors.is_empty() {
        let req = pb::LabelValuesRequest {
            label: name.clone(),
            start: o.start,
            end: o.end,
            partial_response_strategy: o.strategy as i32,
            ..Default::default()
        };
        let r = api
            .proxy(&o, &[])
            .label_values(req)
            .await
            .map_err(internal)?;
        values.extend(r.values);
        warnings.extend(r.warnings);
    } else {
        let (found, w) = api
            .pick_labels(&o, &selectors, |l| (l.name == name).then_some(l.value))
            .await?;
        values.extend(found);
        warnings.extend(w);
    }
    Ok(success(json!(values), warnings))
}

async fn buildinfo() -> Response {
    success(
        json!({"version": env!("CARGO_PKG_VERSION"), "revision": "", "branch": "", "buildUser": "", "buildDate": "", "goVersion": ""}),
        Vec::new(),
    )
}

async fn stores(State(api): State<Arc<Api>>) -> Response {
    let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in api.endpoints.all() {
        let st = e.status();
        let v = serde_json::to_value(&st).unwrap_or(Value::Null);
        by_type.entry(st.component.clone()).or_default().push(v);
    }
    success(json!(by_type), Vec::new())
}

/// The API routes, to mount under the web prefix.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/stores", get(stores))
        .with_state(api)
}
