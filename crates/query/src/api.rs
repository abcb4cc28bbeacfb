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
use crate::params::{parse_bool, parse_duration_param, parse_selector, parse_time};
use crate::queryable::{ProxyQueryable, ReadSettings};

pub struct Config {
    /// Labels that tell HA replicas apart; removed when deduplicating.
    pub replica_labels: Vec<String>,
    /// Default of the `partial_response` parameter.
    pub partial_response: bool,
    /// Upper bound on one request (`--query.timeout`).
    pub timeout: std::time::Duration,
    /// The PromQL engine (lookback delta, default subquery step, sample limit).
    pub engine: promql::Engine,
    /// Pick `max_source_resolution` from the step when the request does not set it.
    pub auto_downsampling: bool,
    /// Queries evaluated at once (`--query.max-concurrent`); more wait their turn.
    pub max_concurrent: usize,
}

pub struct Api {
    pub endpoints: Arc<EndpointSet>,
    pub cfg: Config,
    /// Admission for PromQL queries; sized by `max_concurrent` on first use.
    gate: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
}

impl Api {
    pub fn new(endpoints: Arc<EndpointSet>, cfg: Config) -> Self {
        Api {
            endpoints,
            cfg,
            gate: std::sync::OnceLock::new(),
        }
    }

    fn gate(&self) -> Arc<tokio::sync::Semaphore> {
        self.gate
            .get_or_init(|| Arc::new(tokio::sync::Semaphore::new(self.cfg.max_concurrent.max(1))))
            .clone()
    }
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

/// An engine error as Prometheus's API reports it.
fn engine_error(e: promql::Error) -> ApiError {
    use promql::Error as E;
    let (status, kind) = match &e {
        E::Parse(_) => {
            return bad_data(format!("invalid parameter \"query\": {e}"));
        }
        E::Execution(_) | E::TooManySamples(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
        E::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        E::Canceled(_) => (
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            "canceled",
        ),
        E::Storage(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
    };
    ApiError {
        status,
        kind,
        msg: e.to_string(),
    }
}

/// Cancels the evaluation when the request is dropped (client gone, server timeout).
struct CancelOnDrop(promql::CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Prometheus's JSON for a query result.
fn result_json(v: &promql::Value) -> Value {
    fn t(ms: i64) -> Value {
        // Seconds with millisecond precision, as Go's FormatFloat(t/1000, 'f', -1).
        let s = if ms % 1000 == 0 {
            format!("{}", ms / 1000)
        } else {
            format!("{}", ms as f64 / 1000.0)
        };
        Value::Number(s.parse().unwrap_or(serde_json::Number::from(ms / 1000)))
    }
    fn metric(l: &tsdb::Labels) -> Value {
        Value::Object(
            l.iter()
                .map(|x| (x.name.clone(), Value::String(x.value.clone())))
                .collect(),
        )
    }
    let (kind, result) = match v {
        promql::Value::Scalar { t: ts, v } => ("scalar", json!([t(*ts), promql::format_value(*v)])),
        promql::Value::String { t: ts, s } => ("string", json!([t(*ts), s])),
        promql::Value::Vector(samples) => (
            "vector",
            Value::Array(
                samples
                    .iter()
                    .map(|s| json!({"metric": metric(&s.labels), "value": [t(s.t), promql::format_value(s.v)]}))
                    .collect(),
            ),
        ),
        promql::Value::Matrix(series) => (
            "matrix",
            Value::Array(
                series
                    .iter()
                    .map(|s| {
                        let values: Vec<Value> = s
                            .points
                            .iter()
                            .map(|p| json!([t(p.t), promql::format_value(p.v)]))
                            .collect();
                        json!({"metric": metric(&s.labels), "values": values})
                    })
                    .collect(),
            ),
        ),
    };
    json!({"resultType": kind, "result": result})
}

/// Thanos's `max_source_resolution`: raw (0), a duration, or `auto` (a fifth of the step).
fn max_resolution(p: &Params, step_ms: i64, auto_default: bool) -> Result<i64, ApiError> {
    let auto = step_ms / 5;
    match p.get("max_source_resolution") {
        None | Some("") => Ok(if auto_default { auto } else { 0 }),
        Some("auto") => Ok(auto),
        Some("raw") => Ok(0),
        Some(s) => {
            let d = parse_duration_param("max_source_resolution", s).map_err(bad_data)?;
            if d < 0 {
                return Err(bad_data(
                    "invalid parameter \"max_source_resolution\": negative duration",
                ));
            }
            Ok(d)
        }
    }
}

impl Api {
    fn read_settings(&self, p: &Params, step_ms: i64) -> Result<ReadSettings, ApiError> {
        let o = self.options_without_range(p)?;
        Ok(ReadSettings {
            dedup: o.dedup,
            replica_labels: o.replica_labels,
            strategy: o.strategy,
            max_resolution_ms: max_resolution(p, step_ms, self.cfg.auto_downsampling)?,
        })
    }

    fn options_without_range(&self, p: &Params) -> Result<ReadOptions, ApiError> {
        let q = Params(
            p.0.iter()
                .filter(|(k, _)| k != "start" && k != "end")
                .cloned()
                .collect(),
        );
        self.options(&q)
    }

    /// Runs a query on a blocking thread within the admission gate and the timeout.
    async fn run_query(
        self: &Arc<Self>,
        p: &Params,
        settings: ReadSettings,
        run: impl FnOnce(
                &promql::Engine,
                &ProxyQueryable,
                &promql::CancelToken,
            ) -> promql::Result<promql::QueryResult>
            + Send
            + 'static,
    ) -> Result<Response, ApiError> {
        let mut engine = self.cfg.engine.clone();
        let mut timeout = self.cfg.timeout;
        if let Some(s) = p.get("timeout").filter(|s| !s.is_empty()) {
            let d = parse_duration_param("timeout", s).map_err(bad_data)?;
            if d > 0 {
                timeout = timeout.min(std::time::Duration::from_millis(d as u64));
            }
        }
        engine = promql::Engine::new(promql::EngineOptions {
            timeout,
            ..engine.options().clone()
        });
        let _permit = self
            .gate()
            .acquire_owned()
            .await
            .map_err(|_| bad_data("querier is shutting down"))?;
        let queryable = ProxyQueryable {
            handle: tokio::runtime::Handle::current(),
            endpoints: self.endpoints.clone(),
            settings,
            deadline: tokio::time::Instant::now() + timeout,
        };
        let cancel = promql::CancelToken::new();
        let guard = CancelOnDrop(cancel.clone());
        let task = tokio::task::spawn_blocking(move || run(&engine, &queryable, &cancel));
        let r = task.await.map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            msg: format!("query evaluation failed: {e}"),
        })?;
        drop(guard);
        let r = r.map_err(engine_error)?;
        Ok(success(result_json(&r.value), r.warnings))
    }
}

async fn query(
    State(api): State<Arc<Api>>,
    RawQuery(q): RawQuery,
    body: String,
) -> Result<Response, ApiError> {
    let p = Params::parse(q, &body)?;
    let text = p.get("query").unwrap_or_default().to_string();
    let time = p.time("time", tsdb::time::now_ms())?;
    let settings = api.read_settings(&p, 0)?;
    api.run_query(&p, settings, move |e, st, c| {
        e.instant_query_with(st, &text, time, c)
    })
    .await
}

async fn query_range(
    State(api): State<Arc<Api>>,
    RawQuery(q): RawQuery,
    body: String,
) -> Result<Response, ApiError> {
    let p = Params::parse(q, &body)?;
    let start = match p.get("start") {
        Some(s) => parse_time("start", s).map_err(bad_data)?,
        None => {
            return Err(bad_data(
                "invalid parameter \"start\": cannot parse \"\" to a valid timestamp",
            ))
        }
    };
    let end = match p.get("end") {
        Some(s) => parse_time("end", s).map_err(bad_data)?,
        None => {
            return Err(bad_data(
                "invalid parameter \"end\": cannot parse \"\" to a valid timestamp",
            ))
        }
    };
    if end < start {
        return Err(bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = parse_duration_param("step", p.get("step").unwrap_or_default()).map_err(bad_data)?;
    if step <= 0 {
        return Err(bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > 11_000 {
        return Err(bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let text = p.get("query").unwrap_or_default().to_string();
    let settings = api.read_settings(&p, step)?;
    api.run_query(&p, settings, move |e, st, c| {
        e.range_query_with(st, &text, start, end, step, c)
    })
    .await
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
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/stores", get(stores))
        .with_state(api)
}
