//! Prometheus's HTTP API (`/api/v1/...`) with Prometheus 2.42's input contract and JSON,
//! plus Thanos's parameters (`dedup`, `partial_response`, `replicaLabels[]`,
//! `max_source_resolution`) and `/api/v1/stores`.
//!
//! Every request is checked in Prometheus's order with its messages (see [`crate::params`]).
//! A PromQL query then waits for one of `--query.max-concurrent` slots, its deadline counting
//! from arrival: one that cannot start in time gets 503 "query timed out in query queue". It
//! is evaluated on a blocking thread and its answer streamed as JSON piece by piece while the
//! result is consumed, so a large answer is never held twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, MethodRouter};
use axum::Router;
use futures::StreamExt;
use storeapi::convert::{labels_from_pb, matcher_to_pb};
use storeapi::pb;
use storeapi::proxy::Proxy;
use storeapi::SeriesStore;
use tsdb::Matcher;

use crate::endpoints::EndpointSet;
use crate::json;
use crate::params::{self, Form, GoTime, MAX_FORM_BODY, MAX_TIME, MIN_TIME};
use crate::prefetch;
use crate::queryable::{ProxyQueryable, ReadSettings, Waiter};

/// Range queries of fewer steps than this may be evaluated on the thread serving them.
const FEW_STEPS: i64 = 1000;

/// Queries up to this long are parsed, and may be evaluated, on the thread serving them.
const SHORT_QUERY: usize = 2048;

pub struct Config {
    /// Labels that tell HA replicas apart; removed when deduplicating.
    pub replica_labels: Vec<String>,
    /// Default of the `partial_response` parameter.
    pub partial_response: bool,
    /// Upper bound on one request, queueing included (`--query.timeout`).
    pub timeout: Duration,
    /// The PromQL engine (lookback delta, default subquery step, sample limit).
    pub engine: promql::Engine,
    /// Pick `max_source_resolution` from the step when the request does not set it.
    pub auto_downsampling: bool,
    /// Queries evaluated at once (`--query.max-concurrent`); more wait their turn.
    pub max_concurrent: usize,
    /// Step of range queries that give none (`--query.default-step`): the larger of this and
    /// a 250th of the range.
    pub default_step: Duration,
    /// The process's flags and values, for `/api/v1/status/flags`.
    pub flags: BTreeMap<String, String>,
    /// Send CORS headers (Thanos's default; `--web.disable-cors` turns them off).
    pub cors: bool,
    /// `--deduplication.func=chain`: replicas' samples chained, one per timestamp.
    pub chain_dedup: bool,
}

pub struct Api {
    pub endpoints: Arc<EndpointSet>,
    pub cfg: Config,
    /// Admission for PromQL queries.
    gate: Arc<tokio::sync::Semaphore>,
}

/// Thanos's gate metrics: queries evaluating now (released when the slot is).
struct InFlight(telemetry::Gauge);

impl InFlight {
    fn enter() -> InFlight {
        let g = telemetry::gauge(
            "thanos_query_concurrent_gate_queries_in_flight",
            "Number of queries that are currently in flight.",
            &[],
        );
        g.add(1.0);
        InFlight(g)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.add(-1.0);
    }
}

impl Api {
    pub fn new(endpoints: Arc<EndpointSet>, cfg: Config) -> Self {
        telemetry::gauge(
            "thanos_query_concurrent_gate_queries_max",
            "Maximum number of concurrent queries.",
            &[],
        )
        .set(cfg.max_concurrent.max(1) as f64);
        Api {
            endpoints,
            gate: Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent.max(1))),
            cfg,
        }
    }
}

/// An API error as Prometheus reports it.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) msg: String,
}

pub(crate) fn bad_data(msg: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        kind: "bad_data",
        msg: msg.into(),
    }
}

fn execution(msg: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        kind: "execution",
        msg: msg.into(),
    }
}

fn timeout_error(env: &str) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        kind: "timeout",
        msg: format!("query timed out in {env}"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            json::error(self.kind, &self.msg),
        )
            .into_response()
    }
}

pub(crate) fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A request as Go's `net/http` hands it to Prometheus's handlers: its form and when it came.
pub(crate) struct Req {
    pub(crate) form: Form,
    arrived: Instant,
}

pub(crate) async fn read_request(req: Request) -> Req {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let query = parts.uri.query().unwrap_or("");
    let method = parts.method.as_str();
    let reads_body = matches!(method, "POST" | "PUT" | "PATCH");
    let form = if reads_body {
        match axum::body::to_bytes(body, MAX_FORM_BODY + 1).await {
            Ok(bytes) => Form::parse(method, query, content_type.as_deref(), &bytes),
            Err(_) => {
                // Over Go's limit: the body's values are dropped, the URL's kept.
                let mut f = Form::parse("GET", query, None, b"");
                f.error = Some("http: POST too large".into());
                f
            }
        }
    } else {
        Form::parse(method, query, content_type.as_deref(), b"")
    };
    Req { form, arrived }
}

/// Prometheus's `parseTimeParam`: an empty or missing value is `default`.
pub(crate) fn time_param(form: &Form, name: &str, default: GoTime) -> Result<GoTime, ApiError> {
    let v = form.get(name);
    if v.is_empty() {
        return Ok(default);
    }
    params::parse_time(v).map_err(|e| {
        bad_data(format!(
            "invalid parameter \"{name}\": Invalid time value for '{name}': {e}"
        ))
    })
}

/// The `timeout` parameter (nanoseconds), if set.
fn timeout_param(form: &Form) -> Result<Option<i64>, ApiError> {
    let v = form.get("timeout");
    if v.is_empty() {
        return Ok(None);
    }
    params::parse_duration(v)
        .map(Some)
        .map_err(|e| bad_data(format!("invalid parameter \"timeout\": {e}")))
}

/// Thanos's boolean parameters.
fn thanos_bool(form: &Form, name: &str, default: bool) -> Result<bool, ApiError> {
    let v = form.get(name);
    if v.is_empty() {
        return Ok(default);
    }
    params::parse_bool(v).ok_or_else(|| {
        bad_data(format!(
            "'{name}' parameter: strconv.ParseBool: parsing {}: invalid syntax",
            promql::lex::quote_bytes(v)
        ))
    })
}

/// Thanos's read options of a request.
pub(crate) struct ReadOptions {
    pub(crate) dedup: bool,
    pub(crate) strategy: pb::PartialResponseStrategy,
    pub(crate) replica_labels: Vec<String>,
}

impl Api {
    pub(crate) fn read_options(&self, form: &Form) -> Result<ReadOptions, ApiError> {
        let dedup = thanos_bool(form, "dedup", true)?;
        let partial = thanos_bool(form, "partial_response", self.cfg.partial_response)?;
        let mut replica_labels: Vec<String> = form
            .all("replicaLabels[]")
            .into_iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if replica_labels.is_empty() {
            replica_labels = self.cfg.replica_labels.clone();
        }
        Ok(ReadOptions {
            dedup,
            strategy: if partial {
                pb::PartialResponseStrategy::Warn
            } else {
                pb::PartialResponseStrategy::Abort
            },
            replica_labels,
        })
    }

    /// Thanos's `max_source_resolution`: raw (0), a duration, or `auto` (a fifth of the step).
    fn max_resolution(&self, form: &Form, step_ms: i64) -> Result<i64, ApiError> {
        let auto = step_ms / 5;
        match form.get("max_source_resolution") {
            b"" => Ok(if self.cfg.auto_downsampling { auto } else { 0 }),
            b"auto" => Ok(auto),
            b"raw" => Ok(0),
            v => {
                let d = params::parse_duration(v)
                    .map_err(|e| bad_data(format!("'max_source_resolution' parameter: {e}")))?;
                if d < 0 {
                    return Err(bad_data(
                        "negative 'max_source_resolution' is not accepted. Try a positive integer",
                    ));
                }
                Ok(d / 1_000_000)
            }
        }
    }

    fn read_settings(&self, form: &Form, step_ms: i64) -> Result<ReadSettings, ApiError> {
        let o = self.read_options(form)?;
        Ok(ReadSettings {
            dedup: o.dedup,
            replica_labels: o.replica_labels,
            strategy: o.strategy,
            max_resolution_ms: self.max_resolution(form, step_ms)?,
            chain_dedup: self.cfg.chain_dedup,
        })
    }

    /// The query's lookback delta: the `lookback_delta` parameter, else the dynamic one.
    fn lookback(&self, form: &Form, settings: &ReadSettings) -> Result<i64, ApiError> {
        let v = form.get("lookback_delta");
        if v.is_empty() {
            return Ok(dynamic_lookback_ms(
                self.cfg.engine.options().lookback_delta_ms,
                settings.max_resolution_ms,
            ));
        }
        let ns = params::parse_duration(v)
            .map_err(|e| bad_data(format!("'lookback_delta' parameter: {e}")))?;
        Ok(ns / 1_000_000)
    }

    /// The deadline of a request: `--query.timeout` and the `timeout` parameter, from arrival.
    fn deadline(&self, req: &Req, param_ns: Option<i64>) -> Instant {
        let mut limit = self.cfg.timeout;
        if let Some(ns) = param_ns {
            limit = limit.min(Duration::from_nanos(ns.max(0) as u64));
        }
        req.arrived + limit
    }
}

/// A parsed, checked query waiting for evaluation.
struct PromQuery {
    text: Vec<u8>,
    deadline: Instant,
    settings: ReadSettings,
    /// The lookback delta of this query (the `lookback_delta` parameter, or Thanos's
    /// dynamic one for its `max_source_resolution`).
    lookback_ms: i64,
    /// The `stats` parameter was given: the answer carries the query's statistics.
    stats: bool,
    /// When the request arrived (for `execTotalTime`).
    arrived: Instant,
    /// Short, few steps and no subquery: the query may be evaluated on the thread serving
    /// its request when its selections are small too (see [`crate::prefetch`]).
    small: bool,
}

/// Thanos's dynamic lookback delta: a query allowed to read data coarser than the lookback
/// delta looks back far enough to find a point of the coarsest resolution it may read (5m,
/// then 1h), so downsampled data answers instant queries.
fn dynamic_lookback_ms(lookback_ms: i64, max_source_resolution_ms: i64) -> i64 {
    const RESOLUTIONS: [i64; 3] = [0, 5 * 60_000, 60 * 60_000];
    let mut per_level = [lookback_ms; 3];
    let mut current = lookback_ms;
    for (i, r) in RESOLUTIONS.iter().enumerate() {
        if lookback_ms < *r {
            current = *r;
        }
        per_level[i] = current;
    }
    for i in (1..RESOLUTIONS.len()).rev() {
        let left = RESOLUTIONS[i - 1].max(lookback_ms);
        if left < max_source_resolution_ms {
            return per_level[i];
        }
    }
    per_level[0]
}

/// The `limit` parameter of the metadata APIs: 0 (none) when absent.
fn limit_param(form: &Form) -> Result<usize, ApiError> {
    let v = form.get("limit");
    if v.is_empty() {
        return Ok(0);
    }
    let text = String::from_utf8_lossy(v);
    let n: i64 = text
        .parse()
        .map_err(|_| bad_data(format!("cannot parse {text:?} to a valid limit")))?;
    if n < 0 {
        return Err(bad_data("limit must be non-negative"));
    }
    Ok(n as usize)
}

/// Keeps the first `limit` items (all when 0), warning as Prometheus does when it cut.
fn truncate<T>(items: &mut Vec<T>, limit: usize, warnings: &mut Vec<String>) {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        warnings.push("results truncated due to limit".into());
    }
}

/// An engine error as Prometheus's API reports it; parse errors get `prefix`.
fn engine_error(e: promql::Error, parse_prefix: &str) -> ApiError {
    use promql::Error as E;
    match e {
        E::Parse(m) => bad_data(format!("{parse_prefix}{m}")),
        E::Timeout(_) => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "timeout",
            msg: e.to_string(),
        },
        E::Canceled(_) => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "canceled",
            msg: e.to_string(),
        },
        E::Execution(_) | E::TooManySamples(_) | E::Storage(_) => execution(e.to_string()),
    }
}

/// Cancels the evaluation when the request is dropped (client gone, server stopping).
struct CancelOnDrop(Waiter);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// What evaluation needs to know of a query before it runs.
struct Checked {
    value_type: promql_parser::parser::value::ValueType,
    /// The query has a subquery, whose steps its range does not bound.
    subquery: bool,
}

fn checked(e: &promql_parser::parser::Expr) -> promql::Result<Checked> {
    struct FindSubquery(bool);
    impl promql_parser::util::ExprVisitor for FindSubquery {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, e: &promql_parser::parser::Expr) -> Result<bool, Self::Error> {
            self.0 |= matches!(e, promql_parser::parser::Expr::Subquery(_));
            Ok(!self.0)
        }
    }
    let mut find = FindSubquery(false);
    let _ = promql_parser::util::walk_expr(&mut find, e);
    Ok(Checked {
        value_type: e.value_type(),
        subquery: find.0,
    })
}

/// Parses a query off the executor (deep queries take a thread of their own).
async fn check_query(text: &[u8], dialect: promql::Dialect) -> Result<Checked, promql::Error> {
    // A short query parses in microseconds: a thread hop would cost more.
    if text.len() <= SHORT_QUERY {
        return promql::parse_bytes_with(text, dialect, checked);
    }
    let text = text.to_vec();
    tokio::task::spawn_blocking(move || promql::parse_bytes_with(&text, dialect, checked))
        .await
        .unwrap_or_else(|e| {
            Err(promql::Error::exec(format!(
                "parsing the query failed: {e}"
            )))
        })
}

impl Api {
    /// The PromQL dialect queries are parsed as.
    pub(crate) fn dialect(&self) -> promql::Dialect {
        self.cfg.engine.options().dialect
    }

    /// Waits for a slot (until the deadline), evaluates (a small query right here, others on
    /// a blocking thread) and streams the answer as JSON.
    async fn run_query(
        self: &Arc<Self>,
        q: PromQuery,
        parse_prefix: &'static str,
        run: impl Fn(
                &promql::Engine,
                &dyn promql::Queryable,
                &str,
                &promql::CancelToken,
            ) -> promql::Result<promql::QueryResult>
            + Send
            + 'static,
    ) -> Result<Response, ApiError> {
        let now = Instant::now();
        if q.deadline <= now {
            return Err(timeout_error("query execution"));
        }
        let gate = self.gate.clone();
        let permit = tokio::time::timeout_at(q.deadline.into(), gate.acquire_owned())
            .await
            .map_err(|_| timeout_error("query queue"))?
            .map_err(|_| execution("querier is shutting down"))?;
        telemetry::histogram(
            "thanos_query_concurrent_gate_duration_seconds",
            "How many seconds it took for queries to wait at the gate.",
            &[],
            telemetry::DEFAULT_BUCKETS,
        )
        .observe(now.elapsed().as_secs_f64());
        let queued = now.elapsed();
        let permit = (permit, InFlight::enter());
        let cancel = promql::CancelToken::with_deadline(q.deadline);
        let waiter = Waiter::new(cancel.clone());
        let mut queryable = ProxyQueryable {
            endpoints: self.endpoints.clone(),
            settings: q.settings,
            waiter: waiter.clone(),
            prefetched: Default::default(),
        };
        let guard = CancelOnDrop(waiter.clone());
        let engine =
            if q.lookback_ms > 0 && q.lookback_ms != self.cfg.engine.options().lookback_delta_ms {
                promql::Engine::new(promql::EngineOptions {
                    lookback_delta_ms: q.lookback_ms,
                    ..self.cfg.engine.options().clone()
                })
            } else {
                self.cfg.engine.clone()
            };
        let text = String::from_utf8_lossy(&q.text).into_owned();
        let mut evaluated = None;
        if q.small {
            let here = prefetch::evaluate_here(&queryable, q.deadline.into(), |st| {
                run(&engine, st, &text, &cancel)
            });
            match here.await {
                prefetch::Evaluated::Done(r) => evaluated = Some(r),
                prefetch::Evaluated::TooLarge(read) => queryable.prefetched = read,
            }
        }
        let result = match evaluated {
            Some(r) => r,
            None => {
                let mut job =
                    tokio::task::spawn_blocking(move || run(&engine, &queryable, &text, &cancel));
                // One timer per query, set here: the engine's waits on stores look at the
                // deadline when woken.
                let joined = tokio::select! {
                    joined = &mut job => joined,
                    _ = tokio::time::sleep_until(q.deadline.into()) => {
                        waiter.wake();
                        job.await
                    }
                };
                joined.map_err(|e| execution(format!("unexpected error: {e}")))?
            }
        };
        let result = result.map_err(|e| engine_error(e, parse_prefix))?;
        drop(guard);
        // The slot is for evaluation, as in Prometheus: writing the answer does not hold it.
        drop(permit);
        let times = q.stats.then(|| json::ExecTimes {
            queue: queued,
            total: q.arrived.elapsed(),
        });
        Ok(stream_result(result, times))
    }
}

/// A query's JSON answer: written at once when small, else streamed, encoded on a blocking
/// thread as the client reads it.
fn stream_result(result: promql::QueryResult, stats: Option<json::ExecTimes>) -> Response {
    let points = match &result.value {
        promql::Value::Vector(v) => v.len(),
        promql::Value::Matrix(m) => m.iter().map(|s| s.points.len()).sum(),
        _ => 1,
    };
    // A small answer is written here: a thread hop would take longer than the writing.
    let body = if points <= 2048 {
        let mut all = Vec::new();
        json::write_query_result(result, stats, &mut |piece| {
            all.extend_from_slice(&piece);
            true
        });
        Body::from(all)
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        tokio::task::spawn_blocking(move || {
            json::write_query_result(result, stats, &mut |piece| {
                tx.blocking_send(Ok(piece)).is_ok()
            });
        });
        Body::from_stream(tokio_stream_from(rx))
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn query(State(api): State<Arc<Api>>, req: Request) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let r = read_request(req).await;
    let time = time_param(&r.form, "time", GoTime::from_ms(tsdb::time::now_ms()))?;
    let timeout = timeout_param(&r.form)?;
    let settings = api.read_settings(&r.form, 0)?;
    let text = r.form.get("query").to_vec();
    let checked = check_query(&text, api.dialect())
        .await
        .map_err(|e| engine_error(e, "invalid parameter \"query\": "))?;
    let short = text.len() <= SHORT_QUERY;
    let q = PromQuery {
        text,
        deadline: api.deadline(&r, timeout),
        lookback_ms: api.lookback(&r.form, &settings)?,
        stats: !r.form.get("stats").is_empty(),
        arrived,
        settings,
        small: !checked.subquery && short,
    };
    let t = time.engine_ms();
    api.run_query(q, "invalid parameter \"query\": ", move |e, st, text, c| {
        e.instant_query_with(st, text, t, c)
    })
    .await
}

async fn query_range(State(api): State<Arc<Api>>, req: Request) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let r = read_request(req).await;
    let f = &r.form;
    let start = params::parse_time(f.get("start"))
        .map_err(|e| bad_data(format!("invalid parameter \"start\": {e}")))?;
    let end = params::parse_time(f.get("end"))
        .map_err(|e| bad_data(format!("invalid parameter \"end\": {e}")))?;
    if end.before(&start) {
        return Err(bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = if f.get("step").is_empty() {
        // Thanos: without a step, max(range / 250, --query.default-step) in whole seconds.
        let range_s = end.sub_ns(&start) / 1_000_000_000;
        let default_s = api.cfg.default_step.as_secs() as i64;
        (range_s / 250).max(default_s) * 1_000_000_000
    } else {
        params::parse_duration(f.get("step"))
            .map_err(|e| bad_data(format!("invalid parameter \"step\": {e}")))?
    };
    if step <= 0 {
        return Err(bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if end.sub_ns(&start) / step > 11_000 {
        return Err(bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let timeout = timeout_param(f)?;
    let step_ms = step / 1_000_000;
    let settings = api.read_settings(f, step_ms)?;
    let text = f.get("query").to_vec();
    let checked = check_query(&text, api.dialect())
        .await
        .map_err(|e| engine_error(e, ""))?;
    let ty = checked.value_type;
    if !matches!(
        ty,
        promql_parser::parser::value::ValueType::Vector
            | promql_parser::parser::value::ValueType::Scalar
    ) {
        let name = match ty {
            promql_parser::parser::value::ValueType::Matrix => "range vector",
            _ => "string",
        };
        return Err(bad_data(format!(
            "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
        )));
    }
    if step_ms == 0 {
        // Prometheus divides by the step in milliseconds and fails the same way.
        return Err(execution(
            "unexpected error: runtime error: integer divide by zero",
        ));
    }
    let short = text.len() <= SHORT_QUERY;
    let q = PromQuery {
        text,
        deadline: api.deadline(&r, timeout),
        lookback_ms: api.lookback(f, &settings)?,
        stats: !f.get("stats").is_empty(),
        arrived,
        settings,
        small: !checked.subquery && short && end.sub_ns(&start) / step < FEW_STEPS,
    };
    let (s, e) = (start.engine_ms(), end.engine_ms());
    api.run_query(q, "", move |eng, st, text, c| {
        eng.range_query_with(st, text, s, e, step_ms, c)
    })
    .await
}

/// Start and end of a metadata request (series, labels, label values), open by default.
fn metadata_range(form: &Form) -> Result<(i64, i64), ApiError> {
    let start = time_param(form, "start", MIN_TIME)?;
    let end = time_param(form, "end", MAX_TIME)?;
    Ok((start.from_time_ms(), end.from_time_ms()))
}

impl Api {
    /// Label sets of the series matching `matchers`, replica labels removed when
    /// deduplicating, with the warnings; within the request's deadline.
    async fn series_labels(
        &self,
        o: &ReadOptions,
        range: (i64, i64),
        matchers: &[Matcher],
    ) -> Result<(Vec<tsdb::Labels>, Vec<String>), ApiError> {
        let req = pb::SeriesRequest {
            min_time: range.0,
            max_time: range.1,
            matchers: matchers.iter().map(matcher_to_pb).collect(),
            skip_chunks: true,
            partial_response_strategy: o.strategy as i32,
            without_replica_labels: if o.dedup {
                o.replica_labels.clone()
            } else {
                Vec::new()
            },
            response_batch_size: storeapi::batch::DEFAULT_BATCH_SIZE,
            ..Default::default()
        };
        let proxy: Proxy = self.endpoints.select(range.0, range.1, matchers);
        let mut stream = proxy.series(req).await.map_err(store_error)?;
        let (mut out, mut warnings) = (Vec::new(), Vec::new());
        while let Some(frame) = stream.next().await {
            match frame.map_err(store_error)?.result {
                Some(pb::series_response::Result::Series(s)) => {
                    let mut labels = labels_from_pb(&s.labels).map_err(execution)?;
                    if o.dedup {
                        labels.retain(|l| !o.replica_labels.contains(&l.name));
                    }
                    out.push(labels);
                }
                Some(pb::series_response::Result::Warning(w)) => warnings.push(w),
                _ => {}
            }
        }
        Ok((out, warnings))
    }

    /// For every series matching any of `selectors`, what `pick` takes from each label.
    async fn pick_labels(
        &self,
        o: &ReadOptions,
        range: (i64, i64),
        selectors: &[Vec<Matcher>],
        pick: impl Fn(&tsdb::Label) -> Option<String>,
    ) -> Result<(BTreeSet<String>, Vec<String>), ApiError> {
        let (mut out, mut warnings) = (BTreeSet::new(), Vec::new());
        for ms in selectors {
            let (sets, w) = self.series_labels(o, range, ms).await?;
            warnings.extend(w);
            out.extend(sets.iter().flat_map(|s| s.iter()).filter_map(&pick));
        }
        Ok((out, warnings))
    }

    /// Runs a metadata call within `--query.timeout` from arrival.
    async fn within_timeout<T>(
        &self,
        r: &Req,
        f: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout_at((r.arrived + self.cfg.timeout).into(), f).await {
            Ok(v) => v,
            Err(_) => Err(timeout_error("query execution")),
        }
    }
}

fn store_error(s: tonic::Status) -> ApiError {
    if s.code() == tonic::Code::InvalidArgument {
        bad_data(s.message().to_string())
    } else {
        execution(s.message().to_string())
    }
}

async fn series(State(api): State<Arc<Api>>, req: Request) -> Result<Response, ApiError> {
    let r = read_request(req).await;
    let f = &r.form;
    if let Some(e) = &f.error {
        return Err(bad_data(format!("error parsing form values: {e}")));
    }
    if !f.has("match[]") {
        return Err(bad_data("no match[] parameter provided"));
    }
    let range = metadata_range(f)?;
    let selectors = params::parse_matchers_param(&f.all("match[]"))
        .map_err(|(_, e)| bad_data(format!("invalid parameter \"match[]\": {e}")))?;
    let o = api.read_options(f)?;
    let limit = limit_param(f)?;
    api.within_timeout(&r, async {
        let mut all: BTreeSet<tsdb::Labels> = BTreeSet::new();
        let mut warnings = Vec::new();
        for ms in &selectors {
            let (sets, w) = api.series_labels(&o, range, ms).await?;
            warnings.extend(w);
            all.extend(sets);
        }
        let mut sets: Vec<tsdb::Labels> = all.into_iter().collect();
        truncate(&mut sets, limit, &mut warnings);
        Ok(json_response(json::success(
            |out| {
                out.push(b'[');
                for (i, l) in sets.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json::write_labels(out, l);
                }
                out.push(b']');
            },
            &warnings,
        )))
    })
    .await
}

fn optional_selectors(f: &Form) -> Result<Vec<Vec<Matcher>>, ApiError> {
    params::parse_matchers_param(&f.all("match[]")).map_err(|(_, e)| bad_data(e))
}

async fn labels(State(api): State<Arc<Api>>, req: Request) -> Result<Response, ApiError> {
    let r = read_request(req).await;
    let f = &r.form;
    let range = metadata_range(f)?;
    let selectors = optional_selectors(f)?;
    let o = api.read_options(f)?;
    let limit = limit_param(f)?;
    api.within_timeout(&r, async {
        let mut names = BTreeSet::new();
        let mut warnings = Vec::new();
        if selectors.is_empty() {
            let req = pb::LabelNamesRequest {
                start: range.0,
                end: range.1,
                partial_response_strategy: o.strategy as i32,
                ..Default::default()
            };
            let resp = api
                .endpoints
                .select(range.0, range.1, &[])
                .label_names(req)
                .await
                .map_err(store_error)?;
            names.extend(resp.names);
            warnings.extend(resp.warnings);
        } else {
            let (found, w) = api
                .pick_labels(&o, range, &selectors, |l| Some(l.name.clone()))
                .await?;
            names.extend(found);
            warnings.extend(w);
        }
        if o.dedup {
            names.retain(|n| !o.replica_labels.contains(n));
        }
        let mut names: Vec<String> = names.into_iter().collect();
        truncate(&mut names, limit, &mut warnings);
        Ok(json_response(json::success(
            |out| json::write_str_array(out, names.iter().map(String::as_str)),
            &warnings,
        )))
    })
    .await
}

/// The percent-decoded bytes of `/api/v1/label/<name>/values`'s name, as Go's router sees it.
fn label_name_of(path: &str) -> Vec<u8> {
    let seg = path
        .rsplit_once("/label/")
        .map(|(_, rest)| rest.strip_suffix("/values").unwrap_or(rest))
        .unwrap_or("");
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

async fn label_values(State(api): State<Arc<Api>>, req: Request) -> Result<Response, ApiError> {
    let raw_name = label_name_of(req.uri().path());
    if !params::is_label_name(&raw_name) {
        return Err(bad_data(format!(
            "invalid label name: {}",
            promql::lex::quote_bytes(&raw_name)
        )));
    }
    let name = String::from_utf8_lossy(&raw_name).into_owned();
    let r = read_request(req).await;
    let f = &r.form;
    let range = metadata_range(f)?;
    let selectors = optional_selectors(f)?;
    let o = api.read_options(f)?;
    let limit = limit_param(f)?;
    api.within_timeout(&r, async {
        let mut values = BTreeSet::new();
        let mut warnings = Vec::new();
        if o.dedup && o.replica_labels.contains(&name) {
            // Deduplicated answers have no replica labels.
        } else if selectors.is_empty() {
            let req = pb::LabelValuesRequest {
                label: name.clone(),
                start: range.0,
                end: range.1,
                partial_response_strategy: o.strategy as i32,
                ..Default::default()
            };
            let resp = api
                .endpoints
                .select(range.0, range.1, &[])
                .label_values(req)
                .await
                .map_err(store_error)?;
            values.extend(resp.values);
            warnings.extend(resp.warnings);
        } else {
            let (found, w) = api
                .pick_labels(&o, range, &selectors, |l| {
                    (l.name == name).then(|| l.value.clone())
                })
                .await?;
            values.extend(found);
            warnings.extend(w);
        }
        let mut values: Vec<String> = values.into_iter().collect();
        truncate(&mut values, limit, &mut warnings);
        Ok(json_response(json::success(
            |out| json::write_str_array(out, values.iter().map(String::as_str)),
            &warnings,
        )))
    })
    .await
}

async fn buildinfo() -> Response {
    let data = serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "revision": "", "branch": "", "buildUser": "", "buildDate": "", "goVersion": ""});
    json_response(json::success(
        |out| out.extend_from_slice(data.to_string().as_bytes()),
        &[],
    ))
}

async fn stores(State(api): State<Arc<Api>>) -> Response {
    let mut by_type: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for e in api.endpoints.all() {
        let st = e.status();
        let v = serde_json::to_value(&st).unwrap_or(serde_json::Value::Null);
        by_type.entry(st.component.clone()).or_default().push(v);
    }
    let data = serde_json::json!(by_type).to_string();
    json_response(json::success(
        |out| out.extend_from_slice(data.as_bytes()),
        &[],
    ))
}

async fn flags(State(api): State<Arc<Api>>) -> Response {
    let data = serde_json::to_string(&api.cfg.flags).unwrap_or_else(|_| "{}".into());
    json_response(json::success(
        |out| out.extend_from_slice(data.as_bytes()),
        &[],
    ))
}

/// When the process started (for `/api/v1/status/runtimeinfo`).
static STARTED_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// Thanos's runtime info; the Go runtime's fields say what runs instead (tasks, workers).
async fn runtimeinfo() -> Response {
    let metrics = tokio::runtime::Handle::current().metrics();
    let data = serde_json::json!({
        "startTime": tsdb::time::format_rfc3339(*STARTED_MS.get_or_init(tsdb::time::now_ms)),
        "CWD": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        "goroutineCount": metrics.num_alive_tasks(),
        "GOMAXPROCS": metrics.num_workers(),
        "GOGC": "",
        "GODEBUG": "",
        "GOMEMLIMIT": i64::MAX,
    })
    .to_string();
    json_response(json::success(
        |out| out.extend_from_slice(data.as_bytes()),
        &[],
    ))
}

/// Thanos's CORS headers, on every API answer unless `--web.disable-cors`.
async fn cors(State(api): State<Arc<Api>>, req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    if api.cfg.cors {
        let h = resp.headers_mut();
        for (k, v) in [
            (
                "access-control-allow-headers",
                "Accept, Accept-Encoding, Authorization, Content-Type, Origin",
            ),
            ("access-control-allow-methods", "GET, POST, OPTIONS"),
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "Date"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
    }
    resp
}

/// Compresses answers for clients that accept gzip (as Thanos's API does), chunk by chunk,
/// so streamed answers stay streamed.
async fn gzip(req: Request, next: axum::middleware::Next) -> Response {
    use std::io::Write;
    let wants = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let resp = next.run(req).await;
    if !wants || resp.headers().contains_key(header::CONTENT_ENCODING) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let chunks = futures::stream::unfold(
        (body.into_data_stream(), Some(encoder)),
        |(mut stream, encoder)| async move {
            let mut encoder = encoder?;
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let r = encoder.write_all(&chunk).and_then(|()| encoder.flush());
                    let out = std::mem::take(encoder.get_mut());
                    Some((r.map(|()| out), (stream, Some(encoder))))
                }
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), (stream, None))),
                None => Some((encoder.finish(), (stream, None))),
            }
        },
    );
    Response::from_parts(parts, Body::from_stream(chunks))
}

/// Go's `405 Method Not Allowed` with the route's methods, as Prometheus's router answers.
fn not_allowed(allow: &'static str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::ALLOW, allow),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "Method Not Allowed\n",
    )
        .into_response()
}

/// A route with Prometheus's method handling: `methods` served by `handler`, OPTIONS with
/// 204, anything else (HEAD included) 405 with the `Allow` header.
fn route<H, T>(get_post: bool, handler: H) -> MethodRouter<Arc<Api>>
where
    H: axum::handler::Handler<T, Arc<Api>> + Clone,
    T: 'static,
{
    route_allowing(
        get_post,
        if get_post {
            "GET, OPTIONS, POST"
        } else {
            "GET, OPTIONS"
        },
        handler,
    )
}

fn route_allowing<H, T>(get_post: bool, allow: &'static str, handler: H) -> MethodRouter<Arc<Api>>
where
    H: axum::handler::Handler<T, Arc<Api>> + Clone,
    T: 'static,
{
    any(move |State(api): State<Arc<Api>>, req: Request| {
        let handler = handler.clone();
        async move {
            let m = req.method().clone();
            if m == Method::GET || (get_post && m == Method::POST) {
                axum::handler::Handler::call(handler, req, api).await
            } else if m == Method::DELETE && allow.contains("DELETE") {
                // Prometheus routes DELETE /series but does not implement it.
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    kind: "internal",
                    msg: "not implemented".into(),
                }
                .into_response()
            } else if m == Method::OPTIONS {
                StatusCode::NO_CONTENT.into_response()
            } else {
                not_allowed(allow)
            }
        }
    })
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// The API routes, to mount under the web prefix.
pub fn router(api: Arc<Api>) -> Router {
    STARTED_MS.get_or_init(tsdb::time::now_ms);
    Router::new()
        .route("/api/v1/query", route(true, query))
        .route("/api/v1/query_range", route(true, query_range))
        .route(
            "/api/v1/series",
            route_allowing(true, "DELETE, GET, OPTIONS, POST", series),
        )
        .route("/api/v1/labels", route(true, labels))
        .route("/api/v1/label/{name}/values", route(false, label_values))
        .route("/api/v1/status/buildinfo", route(false, buildinfo))
        .route("/api/v1/status/flags", route(false, flags))
        .route("/api/v1/status/runtimeinfo", route(false, runtimeinfo))
        .route("/api/v1/stores", route(false, stores))
        .route("/api/v1/rules", route(false, crate::apis::rules))
        .route("/api/v1/alerts", route(false, crate::apis::alerts))
        .route("/api/v1/targets", route(false, crate::apis::targets))
        .route("/api/v1/metadata", route(false, crate::apis::metadata))
        .route(
            "/api/v1/query_exemplars",
            route(true, crate::apis::exemplars),
        )
        .route("/api/v1/{*rest}", any(not_found))
        .layer(axum::middleware::from_fn_with_state(api.clone(), cors))
        .layer(axum::middleware::from_fn(gzip))
        .with_state(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_lookback_as_thanos_picks_it() {
        let m = 60_000;
        assert_eq!(dynamic_lookback_ms(5 * m, 0), 5 * m);
        assert_eq!(dynamic_lookback_ms(5 * m, 5 * m), 5 * m);
        assert_eq!(dynamic_lookback_ms(5 * m, 10 * m), 60 * m);
        assert_eq!(dynamic_lookback_ms(5 * m, 60 * m), 60 * m);
        assert_eq!(dynamic_lookback_ms(10 * m, 5 * m), 10 * m);
        assert_eq!(dynamic_lookback_ms(2 * 60 * m, 60 * m), 2 * 60 * m);
    }

    #[test]
    fn limits_cut_and_warn() {
        let mut v = vec![1, 2, 3];
        let mut w = Vec::new();
        truncate(&mut v, 0, &mut w);
        truncate(&mut v, 3, &mut w);
        assert!(w.is_empty());
        truncate(&mut v, 2, &mut w);
        assert_eq!(
            (v, w),
            (
                vec![1, 2],
                vec!["results truncated due to limit".to_string()]
            )
        );
    }
}
