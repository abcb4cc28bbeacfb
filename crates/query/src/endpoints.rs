//! The querier's StoreAPI endpoints: each reached over gRPC, its Info (label sets, time
//! range) refreshed periodically; an endpoint that fails Info is unhealthy and skipped until
//! it answers again. Per query, endpoints whose time range or label sets cannot match are
//! pruned.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use storeapi::apis::PromApis;
use storeapi::client::GrpcStore;
use storeapi::convert::labels_from_pb;
use storeapi::pb::info::InfoResponse;
use storeapi::proxy::Proxy;
use storeapi::timeout::ResponseTimeout;
use storeapi::tls::TlsConnector;
use storeapi::SeriesStore;
use tsdb::Matcher;

pub struct Endpoint {
    pub address: String,
    pub store: Arc<dyn SeriesStore>,
    /// The Rules, Targets, Metadata and Exemplars APIs, used when the Info offers them.
    pub apis: Option<Arc<dyn PromApis>>,
    state: RwLock<State>,
}

/// One of the APIs an endpoint's Info may offer beside the StoreAPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    Rules,
    Targets,
    Metadata,
    Exemplars,
}

#[derive(Default, Clone)]
struct State {
    /// The last Info answer while healthy; `None` while the endpoint fails its checks.
    info: Option<InfoResponse>,
    /// The last Info answer ever received, to tell which queries an unhealthy endpoint
    /// would have served.
    last_info: Option<InfoResponse>,
    last_error: Option<String>,
    last_check_ms: i64,
}

/// What `/api/v1/stores` shows of one endpoint.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EndpointStatus {
    pub name: String,
    #[serde(rename = "lastCheck")]
    pub last_check: String,
    #[serde(rename = "lastError")]
    pub last_error: Option<String>,
    #[serde(rename = "labelSets")]
    pub label_sets: Vec<std::collections::BTreeMap<String, String>>,
    #[serde(rename = "minTime")]
    pub min_time: i64,
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    #[serde(skip)]
    pub component: String,
}

impl Endpoint {
    pub fn new(address: &str, store: Arc<dyn SeriesStore>) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            address: address.to_string(),
            store,
            apis: None,
            state: RwLock::new(State::default()),
        })
    }

    /// An endpoint over gRPC (TLS with `tls`); with `response_timeout`, a call or Series frame that takes
    /// longer fails that endpoint.
    pub fn grpc(
        address: &str,
        response_timeout: Option<Duration>,
        tls: Option<TlsConnector>,
    ) -> Result<Arc<Endpoint>, String> {
        let grpc = GrpcStore::connect(address, tls)?;
        let apis: Arc<dyn PromApis> = Arc::new(grpc.apis());
        let store: Arc<dyn SeriesStore> = Arc::new(grpc);
        let store = match response_timeout {
            Some(limit) => Arc::new(ResponseTimeout::new(store, limit)),
            None => store,
        };
        Ok(Arc::new(Endpoint {
            address: address.to_string(),
            store,
            apis: Some(apis),
            state: RwLock::new(State::default()),
        }))
    }

    pub async fn refresh(&self) {
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), self.store.info()).await;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.last_check_ms = tsdb::time::now_ms();
        match r {
            Ok(Ok(info)) => {
                st.last_info = Some(info.clone());
                st.info = Some(info);
                st.last_error = None;
            }
            Ok(Err(e)) => {
                st.info = None;
                st.last_error = Some(e.message().to_string());
            }
            Err(_) => {
                st.info = None;
                st.last_error = Some("info request timed out after 10s".into());
            }
        }
    }

    /// The API, when this endpoint is healthy and its Info offers it.
    pub fn offered(&self, api: Offered) -> Option<Arc<dyn PromApis>> {
        let st = self.state.read().ok()?;
        let info = st.info.as_ref()?;
        let offered = match api {
            Offered::Rules => info.rules.is_some(),
            Offered::Targets => info.targets.is_some(),
            Offered::Metadata => info.metric_metadata.is_some(),
            Offered::Exemplars => info.exemplars.is_some(),
        };
        if offered {
            self.apis.clone()
        } else {
            None
        }
    }

    /// The external label sets of the last healthy Info.
    pub fn label_sets(&self) -> Vec<BTreeMap<String, String>> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.info
            .iter()
            .flat_map(|i| i.label_sets.iter())
            .map(|s| {
                s.labels
                    .iter()
                    .map(|l| (l.name_str().to_string(), l.value_str().to_string()))
                    .collect()
            })
            .collect()
    }

    pub fn healthy(&self) -> bool {
        self.state.read().map(|s| s.info.is_some()).unwrap_or(false)
    }

    /// Whether this endpoint may hold series for the time range and matchers.
    pub fn matches(&self, min_t: i64, max_t: i64, matchers: &[Matcher]) -> bool {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        match &st.info {
            Some(info) => info_matches(info, min_t, max_t, matchers),
            None => false,
        }
    }

    /// For an unhealthy endpoint that might have served the query (by its last Info, or
    /// because it never answered one), why it was left out.
    fn left_out(&self, min_t: i64, max_t: i64, matchers: &[Matcher]) -> Option<String> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        if st.info.is_some() {
            return None;
        }
        if let Some(last) = &st.last_info {
            if !info_matches(last, min_t, max_t, matchers) {
                return None;
            }
        }
        let why = st.last_error.as_deref().unwrap_or("not checked yet");
        Some(format!(
            "endpoint {} is unhealthy and was left out of this answer: {why}",
            self.address
        ))
    }
}

/// Whether an endpoint with this Info may hold series for the time range and matchers.
fn info_matches(info: &InfoResponse, min_t: i64, max_t: i64, matchers: &[Matcher]) -> bool {
    if let Some(s) = &info.store {
        if s.max_time < min_t || s.min_time > max_t {
            return false;
        }
    }
    if info.label_sets.is_empty() {
        return true;
    }
    // Some label set must not contradict a matcher on one of its labels.
    info.label_sets.iter().any(|set| {
        // A set that is not text cannot be matched: the store is asked.
        let Ok(l) = labels_from_pb(&set.labels) else {
            return true;
        };
        matchers
            .iter()
            .all(|m| l.get(&m.name).is_none_or(|v| m.matches(v)))
    })
}

impl Endpoint {
    pub fn status(&self) -> EndpointStatus {
        let st = self.state.read().map(|s| s.clone()).unwrap_or_default();
        // A failing endpoint keeps what it last announced, as Thanos shows it.
        let (label_sets, min_time, max_time, component) =
            match st.info.as_ref().or(st.last_info.as_ref()) {
                Some(i) => (
                    i.label_sets
                        .iter()
                        .map(|s| {
                            s.labels
                                .iter()
                                .map(|l| (l.name_str().to_string(), l.value_str().to_string()))
                                .collect()
                        })
                        .collect(),
                    i.store.as_ref().map_or(0, |s| s.min_time),
                    i.store.as_ref().map_or(0, |s| s.max_time),
                    i.component_type.clone(),
                ),
                None => (Vec::new(), 0, 0, "unknown".into()),
            };
        EndpointStatus {
            name: self.address.clone(),
            last_check: tsdb::time::format_rfc3339(st.last_check_ms),
            last_error: st.last_error,
            label_sets,
            min_time,
            max_time,
            component,
        }
    }
}

/// All endpoints of the querier.
#[derive(Default)]
pub struct EndpointSet {
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    /// Given to the endpoints discovered later.
    response_timeout: Option<Duration>,
    tls: Option<TlsConnector>,
    /// Which external label sets the querier serves (`--selector.relabel-config`).
    selector: Option<Selector>,
}

/// Keeps an external label set or not.
pub type Selector = Arc<dyn Fn(&BTreeMap<String, String>) -> bool + Send + Sync>;

impl EndpointSet {
    pub fn new(endpoints: Vec<Arc<Endpoint>>) -> Self {
        EndpointSet {
            endpoints: RwLock::new(endpoints),
            response_timeout: None,
            tls: None,
            selector: None,
        }
    }

    /// Sets the response timeout of discovered endpoints (see [`Endpoint::grpc`]).
    pub fn with_response_timeout(mut self, limit: Option<Duration>) -> Self {
        self.response_timeout = limit;
        self
    }

    /// Limits the endpoints and series to the external label sets `selector` keeps.
    pub fn with_selector(mut self, selector: Option<Selector>) -> Self {
        self.selector = selector;
        self
    }

    /// Discovered endpoints are reached over TLS with `tls`.
    pub fn with_tls(mut self, tls: Option<TlsConnector>) -> Self {
        self.tls = tls;
        self
    }

    /// Replaces the discovered endpoints: `fixed` ones (from flags) stay, `discovered`
    /// addresses are added (reusing an endpoint already known), the rest dropped.
    pub fn set_discovered(&self, fixed: &[String], discovered: &[String]) -> Result<(), String> {
        let current = self.all();
        let mut next: Vec<Arc<Endpoint>> = Vec::new();
        for addr in fixed.iter().chain(discovered) {
            if next.iter().any(|e| &e.address == addr) {
                continue;
            }
            match current.iter().find(|e| &e.address == addr) {
                Some(e) => next.push(e.clone()),
                None => next.push(Endpoint::grpc(
                    addr,
                    self.response_timeout,
                    self.tls.clone(),
                )?),
            }
        }
        if let Ok(mut e) = self.endpoints.write() {
            *e = next;
        }
        Ok(())
    }

    /// Healthy endpoints per (external label sets as Thanos writes them, component type), for
    /// `thanos_store_nodes_grpc_connections`.
    pub fn connection_counts(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for e in self.all() {
            let st = e.status();
            if st.last_error.is_some() || !e.healthy() {
                continue;
            }
            let sets: Vec<String> = st
                .label_sets
                .iter()
                .map(|set| {
                    let pairs: Vec<String> =
                        set.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    format!("{{{}}}", pairs.join(", "))
                })
                .collect();
            let ext = if sets.is_empty() {
                "no_external_labels".to_string()
            } else {
                sets.join(",")
            };
            *out.entry((ext, st.component)).or_default() += 1;
        }
        out
    }

    /// Every healthy endpoint's answer to an API call, gathered; a failing endpoint is a
    /// warning under the request's partial response strategy WARN, else the call fails.
    pub async fn gather<T, F, Fut>(
        &self,
        offered: Offered,
        strategy: i32,
        call: F,
    ) -> Result<storeapi::apis::Answer<T>, tonic::Status>
    where
        F: Fn(Arc<dyn PromApis>) -> Fut,
        Fut: std::future::Future<Output = Result<storeapi::apis::Answer<T>, tonic::Status>>,
    {
        let targets: Vec<(String, Arc<dyn PromApis>)> = self
            .all()
            .into_iter()
            .filter_map(|e| e.offered(offered).map(|a| (e.address.clone(), a)))
            .collect();
        let results = futures::future::join_all(targets.iter().map(|(addr, a)| {
            let fut = call(a.clone());
            async move { (addr, fut.await) }
        }))
        .await;
        let warn = strategy == storeapi::pb::PartialResponseStrategy::Warn as i32;
        let (mut items, mut warnings) = (Vec::new(), Vec::new());
        for (addr, r) in results {
            match r {
                Ok((i, w)) => {
                    items.extend(i);
                    warnings.extend(w);
                }
                Err(e) if warn => warnings.push(format!("endpoint {addr}: {}", e.message())),
                Err(e) => {
                    return Err(tonic::Status::new(
                        e.code(),
                        format!("endpoint {addr}: {}", e.message()),
                    ))
                }
            }
        }
        Ok((items, warnings))
    }

    pub fn all(&self) -> Vec<Arc<Endpoint>> {
        self.endpoints.read().map(|e| e.clone()).unwrap_or_default()
    }

    pub async fn refresh(&self) {
        futures::future::join_all(self.all().iter().map(|e| e.refresh())).await;
    }

    /// A proxy over the healthy endpoints that may hold data for the query; unhealthy ones
    /// that might have held some are named in the proxy's warnings (and counted). With a
    /// selector, endpoints none of whose label sets it keeps are left out, and the series
    /// asked for are limited to the label sets it keeps.
    pub fn select(&self, min_t: i64, max_t: i64, matchers: &[Matcher]) -> Proxy {
        let mut stores = Vec::new();
        let mut warnings = Vec::new();
        let mut kept_sets: Vec<BTreeMap<String, String>> = Vec::new();
        for e in self.all() {
            if e.matches(min_t, max_t, matchers) {
                if let Some(selector) = &self.selector {
                    let sets = e.label_sets();
                    if !sets.is_empty() {
                        let kept: Vec<_> = sets.into_iter().filter(|s| selector(s)).collect();
                        if kept.is_empty() {
                            continue;
                        }
                        kept_sets.extend(kept);
                    }
                }
                stores.push(e.store.clone());
            } else if let Some(w) = e.left_out(min_t, max_t, matchers) {
                telemetry::counter(
                    "gauntlet_query_unhealthy_endpoint_skips_total",
                    "Queries that could not ask an endpoint because it was unhealthy; each carries a warning naming it.",
                    &[("endpoint", &e.address)],
                )
                .inc();
                warnings.push(w);
            }
        }
        Proxy::new(stores)
            .with_warnings(warnings)
            .with_matchers(matchers_for_label_sets(&kept_sets))
    }
}

/// Matchers that keep only series of the given external label sets, as Thanos's querier
/// adds them for its selector: per label name, a regex of the values seen (and the empty
/// value when some set lacks the label).
fn matchers_for_label_sets(sets: &[BTreeMap<String, String>]) -> Vec<storeapi::pb::LabelMatcher> {
    let mut values: BTreeMap<&str, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for set in sets {
        for (k, v) in set {
            *counts.entry(k).or_default() += 1;
            values.entry(k).or_default().insert(regex::escape(v));
        }
    }
    values
        .into_iter()
        .map(|(name, mut vals)| {
            if counts[name] < sets.len() {
                vals.insert(String::new());
            }
            storeapi::pb::LabelMatcher {
                r#type: storeapi::pb::label_matcher::Type::Re as i32,
                name: name.to_string(),
                value: vals.into_iter().collect::<Vec<_>>().join("|"),
            }
        })
        .collect()
}

/// The endpoint set as one store: each call fans out to the endpoints selected for it. The
/// querier serves this over gRPC so queriers can stack.
pub struct SetStore(pub Arc<EndpointSet>);

#[async_trait::async_trait]
impl SeriesStore for SetStore {
    fn name(&self) -> String {
        "querier".into()
    }

    async fn info(&self) -> Result<InfoResponse, tonic::Status> {
        let all: Vec<Arc<dyn SeriesStore>> = self
            .0
            .all()
            .into_iter()
            .filter(|e| e.healthy())
            .map(|e| e.store.clone())
            .collect();
        let mut info = storeapi::proxy::Proxy::new(all).info().await?;
        // As Thanos's querier: the other APIs are proxied to the endpoints offering them.
        info.rules = Some(storeapi::pb::info::RulesInfo {});
        info.targets = Some(storeapi::pb::info::TargetsInfo {});
        info.metric_metadata = Some(storeapi::pb::info::MetricMetadataInfo {});
        info.exemplars = Some(storeapi::pb::info::ExemplarsInfo {
            min_time: info.store.as_ref().map_or(i64::MIN, |s| s.min_time),
            max_time: info.store.as_ref().map_or(i64::MAX, |s| s.max_time),
        });
        Ok(info)
    }

    async fn series(
        &self,
        req: storeapi::pb::SeriesRequest,
    ) -> Result<storeapi::SeriesStream, tonic::Status> {
        let ms = storeapi::convert::matchers_from_pb(&req.matchers)
            .map_err(tonic::Status::invalid_argument)?;
        self.0
            .select(req.min_time, req.max_time, &ms)
            .series(req)
            .await
    }

    async fn label_names(
        &self,
        req: storeapi::pb::LabelNamesRequest,
    ) -> Result<storeapi::pb::LabelNamesResponse, tonic::Status> {
        self.0
            .select(req.start, req.end, &[])
            .label_names(req)
            .await
    }

    async fn label_values(
        &self,
        req: storeapi::pb::LabelValuesRequest,
    ) -> Result<storeapi::pb::LabelValuesResponse, tonic::Status> {
        self.0
            .select(req.start, req.end, &[])
            .label_values(req)
            .await
    }
}

/// The querier's Rules, Targets, Metadata and Exemplars services for queriers stacked on it:
/// its endpoints' answers passed through.
#[async_trait::async_trait]
impl PromApis for SetStore {
    async fn rules(
        &self,
        req: storeapi::pb::RulesRequest,
    ) -> Result<storeapi::apis::Answer<storeapi::pb::RuleGroup>, tonic::Status> {
        let strategy = req.partial_response_strategy;
        self.0
            .gather(Offered::Rules, strategy, |a| {
                let req = req.clone();
                async move { a.rules(req).await }
            })
            .await
    }

    async fn targets(
        &self,
        req: storeapi::pb::TargetsRequest,
    ) -> Result<storeapi::apis::Answer<storeapi::pb::TargetDiscovery>, tonic::Status> {
        self.0
            .gather(
                Offered::Targets,
                req.partial_response_strategy,
                |a| async move { a.targets(req).await },
            )
            .await
    }

    async fn metric_metadata(
        &self,
        req: storeapi::pb::MetricMetadataRequest,
    ) -> Result<storeapi::apis::Answer<storeapi::pb::MetricMetadata>, tonic::Status> {
        let strategy = req.partial_response_strategy;
        self.0
            .gather(Offered::Metadata, strategy, |a| {
                let req = req.clone();
                async move { a.metric_metadata(req).await }
            })
            .await
    }

    async fn exemplars(
        &self,
        req: storeapi::pb::ExemplarsRequest,
    ) -> Result<storeapi::apis::Answer<storeapi::pb::ExemplarData>, tonic::Status> {
        let strategy = req.partial_response_strategy;
        self.0
            .gather(Offered::Exemplars, strategy, |a| {
                let req = req.clone();
                async move { a.exemplars(req).await }
            })
            .await
    }
}
