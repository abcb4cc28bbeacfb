//! `gauntlet query`: the querier, with Thanos's flags.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::flags::parse_duration_flag;
use crate::server::{bind, router, run_component, Status};

#[derive(Args)]
pub struct QueryArgs {
    /// StoreAPI endpoint (host:port) to query; repeatable. `--store` is accepted as an alias.
    #[arg(long = "endpoint", visible_alias = "store")]
    endpoints: Vec<String>,
    /// Endpoint always kept in the set, even when unhealthy (all endpoints are); repeatable.
    #[arg(long = "endpoint-strict")]
    strict_endpoints: Vec<String>,
    /// Endpoint group: one address behind which several StoreAPIs answer as one (reached
    /// through the address as given); repeatable. `--endpoint-group-strict` likewise.
    #[arg(long = "endpoint-group", visible_alias = "endpoint-group-strict")]
    group_endpoints: Vec<String>,
    /// Endpoints asked only for rules, metadata, exemplars or targets (Thanos's older
    /// `--rule`, `--metadata`, `--exemplar`, `--target`); they join the endpoint set, where
    /// each API is asked of the endpoints whose Info offers it. Repeatable.
    #[arg(long = "rule", visible_aliases = ["metadata", "exemplar", "target"])]
    api_endpoints: Vec<String>,
    /// Endpoints in Thanos's YAML (`endpoints: [{address, strict, group}]`).
    #[arg(long = "endpoint.sd-config")]
    endpoint_config: Option<String>,
    /// Path to a file with endpoints in Thanos's YAML.
    #[arg(long = "endpoint.sd-config-file")]
    endpoint_config_file: Option<std::path::PathBuf>,
    /// Files with endpoints in Prometheus's file_sd format (YAML or JSON), re-read when they
    /// change. Repeatable.
    #[arg(long = "endpoint.sd-files", visible_alias = "store.sd-files")]
    sd_files: Vec<std::path::PathBuf>,
    /// How often `dns+`, `dnssrv+` and `dnssrvnoa+` addresses are resolved again.
    #[arg(long = "store.sd-dns-interval", default_value = "30s", value_parser = parse_duration_flag)]
    dns_interval: Duration,
    /// Refresh interval to re-read the SD files even without a change.
    #[arg(long = "endpoint.sd-interval", visible_alias = "store.sd-interval", default_value = "5m", value_parser = parse_duration_flag)]
    sd_interval: Duration,
    /// Labels that tell HA replicas apart; removed when deduplicating. Repeatable.
    #[arg(long = "query.replica-label")]
    replica_labels: Vec<String>,
    /// Enable partial responses (a failing store gives a warning instead of an error).
    #[arg(long = "query.partial-response", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    partial_response: bool,
    /// Disable partial responses.
    #[arg(long = "no-query.partial-response")]
    no_partial_response: bool,
    /// Maximum time to process a query.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = parse_duration_flag)]
    timeout: Duration,
    /// If a store sends nothing for this long, it is dropped from the query (a warning with
    /// partial response, else an error). 0 disables the timeout.
    #[arg(long = "store.response-timeout", default_value = "0ms", value_parser = parse_duration_flag)]
    response_timeout: Duration,
    /// Maximum number of queries processed concurrently.
    #[arg(long = "query.max-concurrent", default_value_t = 20)]
    max_concurrent: usize,
    /// How far back an instant vector selector looks for samples.
    #[arg(long = "query.lookback-delta", value_parser = parse_duration_flag)]
    lookback_delta: Option<Duration>,
    /// Step of subqueries without an explicit step.
    #[arg(long = "query.default-evaluation-interval", default_value = "1m", value_parser = parse_duration_flag)]
    default_evaluation_interval: Duration,
    /// Step of range queries that give none: the larger of this and a 250th of the range.
    #[arg(long = "query.default-step", default_value = "1s", value_parser = parse_duration_flag)]
    default_step: Duration,
    /// How HA replicas are merged: `penalty` (the default), or `chain` (every replica's
    /// samples, one per timestamp).
    #[arg(long = "deduplication.func", default_value = "penalty")]
    dedup_func: String,
    /// Pick the data resolution automatically from the query step.
    #[arg(long = "query.auto-downsampling")]
    auto_downsampling: bool,
    /// Path to a YAML file with relabeling rules (keep, drop, hashmod) selecting the
    /// endpoint label sets (external labels) this querier serves.
    #[arg(long = "selector.relabel-config-file")]
    relabel_config_file: Option<std::path::PathBuf>,
    /// Alternative to selector.relabel-config-file: the relabeling rules in YAML.
    #[arg(long = "selector.relabel-config")]
    relabel_config: Option<String>,
    /// Do not send CORS headers (sent by default, as Thanos does, so browser apps on other
    /// origins can query).
    #[arg(long = "web.disable-cors")]
    disable_cors: bool,
    #[command(flatten)]
    web: crate::flags::WebPrefixFlags,
    #[command(flatten)]
    promql: crate::flags::PromqlFlags,
    /// Listen host:port for HTTP endpoints and the API.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
    #[command(flatten)]
    grpc_tls: crate::security::GrpcServerTlsFlags,
    #[command(flatten)]
    http_config: crate::security::HttpConfigFlag,
    #[command(flatten)]
    grpc_client_tls: crate::security::GrpcClientTlsFlags,
    /// Listen host:port for the gRPC StoreAPI (queriers stack).
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    grpc_address: String,
    /// How often endpoints are health-checked through their Info API.
    #[arg(long = "endpoint.info-interval", default_value = "5s", value_parser = parse_duration_flag, hide = true)]
    info_interval: Duration,
}

/// The addresses of Thanos's endpoint config YAML.
fn endpoint_config_addresses(yaml: &str) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        address: String,
        #[serde(default)]
        #[allow(dead_code)]
        strict: bool,
        #[serde(default)]
        #[allow(dead_code)]
        group: bool,
        #[serde(default)]
        #[allow(dead_code)]
        service_config: Option<serde_yaml::Value>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        #[serde(default)]
        endpoints: Vec<Entry>,
    }
    if yaml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let c: Config = serde_yaml::from_str(yaml).context("invalid endpoint config")?;
    Ok(c.endpoints.into_iter().map(|e| e.address).collect())
}

pub fn run(mut a: QueryArgs, flags: std::collections::BTreeMap<String, String>) -> Result<()> {
    let security = crate::security::Security::from_flags(&a.grpc_tls, &a.http_config)?;
    let config_yaml = match (&a.endpoint_config_file, &a.endpoint_config) {
        (Some(_), Some(_)) => {
            bail!("both --endpoint.sd-config-file and --endpoint.sd-config are set; use one")
        }
        (Some(p), None) => std::fs::read_to_string(p)
            .with_context(|| format!("read --endpoint.sd-config-file {}", p.display()))?,
        (None, Some(y)) => y.clone(),
        (None, None) => String::new(),
    };
    let from_config = endpoint_config_addresses(&config_yaml)?;
    let strict = std::mem::take(&mut a.strict_endpoints);
    let groups = std::mem::take(&mut a.group_endpoints);
    let api_only = std::mem::take(&mut a.api_endpoints);
    a.endpoints.extend(api_only);
    a.endpoints
        .extend(strict.into_iter().chain(groups).chain(from_config));
    if a.endpoints.is_empty() && a.sd_files.is_empty() {
        // As Thanos's querier: it starts and answers from no data (vector(), time()).
        tracing::warn!(
            "no endpoints given (--endpoint, --endpoint.sd-files, --endpoint.sd-config): \
             queries see no series"
        );
    }
    let chain_dedup = match a.dedup_func.as_str() {
        "" | "penalty" => false,
        "chain" => {
            if a.replica_labels.is_empty() {
                bail!("--deduplication.func=chain needs at least one --query.replica-label");
            }
            true
        }
        other => bail!("--deduplication.func={other:?}: want penalty or chain"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start async runtime")?;
    let _guard = rt.enter();
    let response_timeout = Some(a.response_timeout).filter(|d| !d.is_zero());
    let client_tls = a.grpc_client_tls.connector()?;
    for spec in &a.endpoints {
        query::dns::check_spec(spec)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--endpoint {spec}"))?;
    }
    let relabel = crate::compact_cmd::relabel_from(&a.relabel_config_file, &a.relabel_config)?;
    let selector: Option<query::endpoints::Selector> = (!relabel.is_empty()).then(|| {
        Arc::new(move |labels: &std::collections::BTreeMap<String, String>| relabel.keeps(labels))
            as _
    });
    let set = Arc::new(
        query::endpoints::EndpointSet::new(Vec::new())
            .with_response_timeout(response_timeout)
            .with_tls(client_tls)
            .with_selector(selector),
    );
    let mut engine_opts = promql::EngineOptions {
        timeout: a.timeout,
        no_step_subquery_interval_ms: a.default_evaluation_interval.as_millis() as i64,
        dialect: a.promql.dialect()?,
        ..Default::default()
    };
    if let Some(d) = a.lookback_delta {
        engine_opts.lookback_delta_ms = d.as_millis() as i64;
    }
    let api = Arc::new(query::api::Api::new(
        set.clone(),
        query::api::Config {
            replica_labels: a
                .replica_labels
                .iter()
                .flat_map(|l| l.split(','))
                .map(str::to_string)
                .collect(),
            partial_response: a.partial_response && !a.no_partial_response,
            timeout: a.timeout,
            engine: promql::Engine::new(engine_opts),
            auto_downsampling: a.auto_downsampling,
            max_concurrent: a.max_concurrent,
            default_step: a.default_step,
            flags,
            cors: !a.disable_cors,
            chain_dedup,
        },
    ));
    tracing::info!(
        endpoints = ?a.endpoints,
        replica_labels = ?api.cfg.replica_labels,
        timeout = ?a.timeout,
        max_concurrent = a.max_concurrent,
        lookback_delta = ?a.lookback_delta,
        default_evaluation_interval = ?a.default_evaluation_interval,
        auto_downsampling = a.auto_downsampling,
        "starting querier"
    );
    rt.block_on(async move {
        let status = Status::new("query");
        let http = bind(&a.http_address, "--http-address").await?;
        let grpc = bind(&a.grpc_address, "--grpc-address").await?;
        tracing::info!(http = %http.local_addr()?, grpc = %grpc.local_addr()?, "listening");
        let api_routes = query::api::router(api.clone());
        let prefixes = a.web.prefixes();
        let mut routes =
            webui::query_routes(prefixes.clone()).merge(prefixes.mount(api_routes.clone()));
        if !prefixes.route().is_empty() {
            // The API stays reachable at the root too, for clients that ignore the prefix.
            routes = routes.merge(api_routes);
        }
        let app = router(status.clone(), routes);
        let mut discovery = Discovery {
            set: set.clone(),
            specs: a.endpoints.clone(),
            sd: (!a.sd_files.is_empty()).then(|| query::sd::SdFiles::new(a.sd_files.clone())),
            sd_targets: Vec::new(),
            sd_interval: a.sd_interval,
            dns_interval: a.dns_interval,
            resolver: query::dns::Resolver::from_system(),
            provider: query::dns::Provider::default(),
        };
        query::dns::lookup_counters();
        discovery.step(true, true).await;
        tokio::spawn(discovery.run());
        let store = Arc::new(query::endpoints::SetStore(set.clone()));
        let apis: Arc<dyn storeapi::apis::PromApis> = store.clone();
        let info_status = status.clone();
        run_component(
            http,
            app,
            grpc,
            store,
            Some(apis),
            security,
            move |mut stop| async move {
                let mut reported = std::collections::BTreeSet::new();
                loop {
                    set.refresh().await;
                    let counts = set.connection_counts();
                    for key in reported.iter().filter(|k| !counts.contains_key(*k)) {
                        connections_gauge(key).set(0.0);
                    }
                    for (key, n) in &counts {
                        connections_gauge(key).set(*n as f64);
                    }
                    reported.extend(counts.into_keys());
                    let healthy = set.all().iter().filter(|e| e.healthy()).count();
                    info_status
                        .ready
                        .store(true, std::sync::atomic::Ordering::Release);
                    tracing::debug!(healthy, total = set.all().len(), "refreshed endpoints");
                    tokio::select! {
                        _ = tokio::time::sleep(a.info_interval) => {}
                        _ = stop.changed() => break,
                    }
                }
                Ok(())
            },
        )
        .await?;
        tracing::info!("querier stopped");
        Ok(())
    })
}

/// `thanos_store_nodes_grpc_connections{external_labels, store_type}`.
fn connections_gauge((ext, kind): &(String, String)) -> telemetry::Gauge {
    telemetry::gauge(
        "thanos_store_nodes_grpc_connections",
        "Number of gRPC connection to Store APIs. Opened connection means healthy store APIs available for Querier.",
        &[("external_labels", ext), ("store_type", kind)],
    )
}

/// Where the querier's endpoints come from: the flags and endpoint config (`specs`) and the
/// SD files, each address resolved through DNS when it has a `dns+`, `dnssrv+` or
/// `dnssrvnoa+` prefix; SD files are re-read when they change (and every `sd_interval`),
/// DNS names every `dns_interval`.
struct Discovery {
    set: Arc<query::endpoints::EndpointSet>,
    specs: Vec<String>,
    sd: Option<query::sd::SdFiles>,
    sd_targets: Vec<String>,
    sd_interval: Duration,
    dns_interval: Duration,
    resolver: query::dns::Resolver,
    provider: query::dns::Provider,
}

impl Discovery {
    /// Re-reads the SD files (all of them when `force_files`) and, when they changed or
    /// `resolve` is set, resolves every address again and updates the endpoint set.
    async fn step(&mut self, force_files: bool, resolve: bool) {
        let mut changed = false;
        if let Some(sd) = &mut self.sd {
            let mut errors = Vec::new();
            if let Some(targets) = sd.poll(force_files, &mut errors) {
                if targets != self.sd_targets {
                    tracing::info!(endpoints = ?targets, "endpoints from SD files");
                    self.sd_targets = targets;
                    changed = true;
                }
            }
            for e in errors {
                tracing::error!(err = %e, "reading endpoint SD file");
            }
        }
        if !(changed || resolve) {
            return;
        }
        let specs: Vec<String> = self.specs.iter().chain(&self.sd_targets).cloned().collect();
        let (addresses, errors) = self.provider.resolve(&self.resolver, &specs).await;
        for e in errors {
            tracing::error!(err = %e, "resolving endpoint address; keeping its last addresses");
        }
        let before: Vec<String> = self.set.all().iter().map(|e| e.address.clone()).collect();
        match self.set.set_discovered(&[], &addresses) {
            Ok(()) => {
                if before != addresses {
                    tracing::info!(endpoints = ?addresses, "endpoint set changed");
                    self.set.refresh().await;
                }
            }
            Err(e) => tracing::error!(err = %e, "bad endpoint address"),
        }
    }

    async fn run(mut self) {
        let mut last_files = std::time::Instant::now();
        let mut last_dns = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let force_files = last_files.elapsed() >= self.sd_interval;
            if force_files {
                last_files = std::time::Instant::now();
            }
            let resolve = last_dns.elapsed() >= self.dns_interval;
            if resolve {
                last_dns = std::time::Instant::now();
            }
            self.step(force_files, resolve).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_config_as_thanos_writes_it() {
        let y = "endpoints:\n  - address: a:10901\n  - address: b:10901\n    strict: true\n    group: false\n";
        assert_eq!(
            endpoint_config_addresses(y).unwrap(),
            ["a:10901", "b:10901"]
        );
        assert!(endpoint_config_addresses("").unwrap().is_empty());
        assert!(endpoint_config_addresses("endpoints:\n  - adress: a:1\n").is_err());
    }
}
