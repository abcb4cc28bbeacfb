//! `gauntlet rule`: the ruler, with Thanos's flags.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Args;

use crate::flags::{parse_duration_flag, ObjstoreFlags};
use crate::server::{bind, router, run_component, Status};

#[derive(Args)]
pub struct RuleArgs {
    /// Rule files to load (repeatable; globs; a directory loads the files in it).
    #[arg(long = "rule-file", default_value = "rules/")]
    rule_files: Vec<String>,
    /// The default evaluation interval of rule groups.
    #[arg(long = "eval-interval", default_value = "1m", value_parser = parse_duration_flag)]
    eval_interval: Duration,
    /// How far back from the evaluation time rules query (groups may set `query_offset`).
    #[arg(long = "rule-query-offset", default_value = "0s", value_parser = parse_duration_flag)]
    rule_query_offset: Duration,
    /// Query API addresses (repeatable; `dns+`/`dnssrv+` for DNS discovery; a URL may give
    /// a scheme and path prefix).
    #[arg(long = "query")]
    query: Vec<String>,
    /// Files with query API addresses (file SD format; globs).
    #[arg(long = "query.sd-files")]
    query_sd_files: Vec<String>,
    /// How often query SD files are re-read.
    #[arg(long = "query.sd-interval", default_value = "5m", value_parser = parse_duration_flag)]
    query_sd_interval: Duration,
    /// How often query DNS names are resolved again.
    #[arg(long = "query.sd-dns-interval", default_value = "30s", value_parser = parse_duration_flag)]
    query_sd_dns_interval: Duration,
    /// Query endpoint configuration (YAML); overrides --query and --query.sd-files.
    #[arg(long = "query.config", default_value = "")]
    query_config: String,
    /// Path to the query endpoint configuration.
    #[arg(long = "query.config-file", default_value = "")]
    query_config_file: String,
    /// HTTP method of queries: POST or GET.
    #[arg(long = "query.http-method", default_value = "POST", value_parser = ["POST", "GET"])]
    query_http_method: String,
    /// Alertmanager URLs (repeatable; scheme required; the path is an API prefix; `dns+`).
    #[arg(long = "alertmanagers.url")]
    alertmanagers_url: Vec<String>,
    /// Alertmanager configuration (YAML); overrides --alertmanagers.url.
    #[arg(long = "alertmanagers.config", default_value = "")]
    alertmanagers_config: String,
    /// Path to the Alertmanager configuration.
    #[arg(long = "alertmanagers.config-file", default_value = "")]
    alertmanagers_config_file: String,
    /// Timeout for sending alerts to Alertmanager.
    #[arg(long = "alertmanagers.send-timeout", default_value = "10s", value_parser = parse_duration_flag)]
    alertmanagers_send_timeout: Duration,
    /// How often Alertmanager DNS names are resolved again.
    #[arg(long = "alertmanagers.sd-dns-interval", default_value = "30s", value_parser = parse_duration_flag)]
    alertmanagers_sd_dns_interval: Duration,
    /// Labels dropped from alerts before they are sent (repeatable; e.g. the replica label).
    #[arg(long = "alert.label-drop")]
    alert_label_drop: Vec<String>,
    /// Relabel rules (YAML) applied to alerts before they are sent.
    #[arg(long = "alert.relabel-config", default_value = "")]
    alert_relabel_config: String,
    /// Path to the alert relabel rules.
    #[arg(long = "alert.relabel-config-file", default_value = "")]
    alert_relabel_config_file: String,
    /// The query UI URL put in alerts' generator URL.
    #[arg(long = "alert.query-url", default_value = "")]
    alert_query_url: String,
    /// The generator URL's path after --alert.query-url; `{{.Expr}}` is the escaped expression.
    #[arg(
        long = "alert.query-template",
        default_value = "/graph?g0.expr={{.Expr}}&g0.tab=1"
    )]
    alert_query_template: String,
    /// External labels of the ruler's data and alerts, `name="value"` (repeatable).
    #[arg(long = "label")]
    label: Vec<String>,
    /// Data directory: the TSDB (WAL and blocks).
    #[arg(long = "data-dir", default_value = "data/")]
    data_dir: PathBuf,
    /// Length of the blocks the TSDB cuts.
    #[arg(long = "tsdb.block-duration", default_value = "2h", value_parser = parse_duration_flag)]
    block_duration: Duration,
    /// How long blocks are kept locally.
    #[arg(long = "tsdb.retention", default_value = "48h", value_parser = parse_duration_flag)]
    retention: Duration,
    /// Minimum wait before resending an alert to Alertmanager.
    #[arg(long = "resend-delay", default_value = "1m", value_parser = parse_duration_flag)]
    resend_delay: Duration,
    /// Maximum downtime for which alert `for` state is restored.
    #[arg(long = "for-outage-tolerance", default_value = "1h", value_parser = parse_duration_flag)]
    for_outage_tolerance: Duration,
    /// Minimum time between an alert's restore and its firing.
    #[arg(long = "for-grace-period", default_value = "10m", value_parser = parse_duration_flag)]
    for_grace_period: Duration,
    /// Labels ignored when restoring alerts' `for` state after a restart (repeatable).
    #[arg(long = "restore-ignored-label")]
    restore_ignored_label: Vec<String>,
    /// How many rules of a group may be evaluated at once.
    #[arg(long = "rule-concurrent-evaluation", default_value_t = 1)]
    rule_concurrent_evaluation: usize,
    #[command(flatten)]
    objstore: ObjstoreFlags,
    #[command(flatten)]
    promql: crate::flags::PromqlFlags,
    /// Go on past a block that failed to upload.
    #[arg(long = "shipper.allow-out-of-order-uploads", hide = true)]
    allow_out_of_order: bool,
    /// Skip local blocks whose meta.json cannot be read.
    #[arg(long = "shipper.skip-corrupted-blocks", hide = true)]
    skip_corrupted: bool,
    /// Upload compacted blocks too (the ruler's TSDB does not compact; accepted).
    #[arg(long = "shipper.upload-compacted")]
    upload_compacted: bool,
    /// Listen host:port for HTTP endpoints.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
    #[command(flatten)]
    grpc_tls: crate::security::GrpcServerTlsFlags,
    #[command(flatten)]
    http_config: crate::security::HttpConfigFlag,
    /// Listen host:port for the gRPC StoreAPI and Rules API.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    grpc_address: String,
    /// How often the head is checked for a block to cut and blocks for shipping.
    #[arg(long = "tsdb.cut-interval", default_value = "30s", value_parser = parse_duration_flag, hide = true)]
    cut_interval: Duration,
}

/// `name="value"` or `name=value`, as Thanos's `--label`.
fn parse_label(s: &str) -> Result<(String, String)> {
    let (n, v) = s
        .split_once('=')
        .with_context(|| format!("--label {s:?}: want name=\"value\""))?;
    let v = v.trim();
    let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        serde_json::from_str::<String>(v).with_context(|| format!("--label {s:?}: bad quoting"))?
    } else {
        v.to_string()
    };
    if n.is_empty() {
        bail!("--label {s:?}: empty name");
    }
    Ok((n.to_string(), v))
}

fn text_or_file(inline: &str, file: &str, flag: &str) -> Result<String> {
    match (file, inline) {
        ("", text) => Ok(text.to_string()),
        (path, "") => {
            std::fs::read_to_string(path).with_context(|| format!("read --{flag}-file {path}"))
        }
        _ => bail!("both --{flag} and --{flag}-file are set; use one"),
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

#[derive(serde::Deserialize)]
struct RulesParams {
    #[serde(default, rename = "type")]
    kind: String,
}

fn rules_request(p: &RulesParams) -> Result<storeapi::pb::RulesRequest, String> {
    let kind = match p.kind.to_lowercase().as_str() {
        "" => storeapi::pb::rules_request::Type::All,
        "alert" => storeapi::pb::rules_request::Type::Alert,
        "record" => storeapi::pb::rules_request::Type::Record,
        other => return Err(format!("invalid rule type {other:?}")),
    };
    Ok(storeapi::pb::RulesRequest {
        r#type: kind as i32,
        ..Default::default()
    })
}

fn json(body: Vec<u8>) -> axum::response::Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn bad_data(msg: String) -> axum::response::Response {
    let body = serde_json::json!({"status": "error", "errorType": "bad_data", "error": msg});
    (
        axum::http::StatusCode::BAD_REQUEST,
        json(body.to_string().into_bytes()),
    )
        .into_response()
}

pub fn run(a: RuleArgs) -> Result<()> {
    let security = crate::security::Security::from_flags(&a.grpc_tls, &a.http_config)?;
    let mut pairs = Vec::new();
    for l in &a.label {
        pairs.push(parse_label(l)?);
    }
    let external = tsdb::Labels::from_pairs(pairs);
    if external.is_empty() {
        bail!("no --label given: the ruler needs external labels that identify it (e.g. --label='replica=\"a\"')");
    }
    if a.rule_concurrent_evaluation > 1 {
        tracing::warn!(
            flag = "rule-concurrent-evaluation",
            "flag accepted; it has no effect: rules of a group are evaluated one after the other"
        );
    }
    let dialect = a.promql.dialect()?;
    // Check the rule files before anything starts, naming file, group and rule.
    if let Err(errs) = rule::file::load(&a.rule_files, dialect) {
        bail!("invalid rule files:\n  {}", errs.join("\n  "));
    }
    let bucket = if a.objstore.config_file.is_some() || a.objstore.config.is_some() {
        Some(bucket::config::bucket_from_yaml(&a.objstore.yaml()?)?)
    } else {
        tracing::info!("no object storage configured: blocks are kept locally, not shipped");
        None
    };
    let query_config = text_or_file(&a.query_config, &a.query_config_file, "query.config")?;
    let query_groups = Arc::new(
        rule::targets::query_targets(&a.query, &a.query_sd_files, &query_config)
            .map_err(anyhow::Error::msg)?,
    );
    if query_groups.is_empty() {
        bail!("no query API given: set --query, --query.sd-files or --query.config");
    }
    let am_config = text_or_file(
        &a.alertmanagers_config,
        &a.alertmanagers_config_file,
        "alertmanagers.config",
    )?;
    let am_groups = Arc::new(
        rule::targets::alertmanager_targets(
            &a.alertmanagers_url,
            &am_config,
            a.alertmanagers_send_timeout,
        )
        .map_err(anyhow::Error::msg)?,
    );
    let relabel_yaml = text_or_file(
        &a.alert_relabel_config,
        &a.alert_relabel_config_file,
        "alert.relabel-config",
    )?;
    let relabel = bucket::relabel::Relabel::parse_rewriting(&relabel_yaml)
        .map_err(|e| anyhow::anyhow!("--alert.relabel-config: {e}"))?;
    let (tsdb, replay) = storeapi::local::LocalTsdb::open(&a.data_dir, external.clone(), "rule")
        .with_context(|| format!("open TSDB in {}", a.data_dir.display()))?;
    if let Some(r) = &replay.repaired {
        tracing::warn!(repair = %r, "the WAL had a damaged tail; it was cut there");
    }
    tracing::info!(series = replay.series, samples = replay.samples, dir = %a.data_dir.display(), "WAL replayed");
    let tsdb = Arc::new(tsdb.with_rules_api());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start async runtime")?;
    let _guard = rt.enter();
    rt.block_on(async move {
        let status = Status::new("rule");
        status.metrics.handle("thanos_shipper_uploads_total", "counter", "Total number of uploaded blocks.");
        status.metrics.handle("thanos_shipper_upload_failures_total", "counter", "Total number of block upload failures.");
        let resolver = Arc::new(match std::env::var("GAUNTLET_DNS_SERVER") {
            Ok(s) => query::dns::Resolver::with_server(s.parse().context("GAUNTLET_DNS_SERVER")?),
            Err(_) => query::dns::Resolver::from_system(),
        });
        for g in query_groups.iter().chain(am_groups.iter()) {
            for e in g.refresh(&resolver).await {
                tracing::warn!(err = %e, "endpoint lookup failed");
            }
        }
        let notifier = Arc::new(rule::notifier::Notifier::new(
            external.clone(),
            a.alert_label_drop.clone(),
            relabel,
            am_groups.clone(),
        ));
        let querier: Arc<dyn rule::query::Querier> = Arc::new(rule::query::HttpQuerier::new(
            query_groups.clone(),
            a.query_http_method == "POST",
        ));
        let ctx = Arc::new(rule::group::Context {
            querier,
            tsdb: tsdb.clone(),
            notifier: notifier.clone(),
            external_labels: external.clone(),
            alert_query_url: a.alert_query_url.clone(),
            alert_query_template: a.alert_query_template.clone(),
            resend_delay_ms: ms(a.resend_delay),
            outage_tolerance_ms: ms(a.for_outage_tolerance),
            for_grace_period_ms: ms(a.for_grace_period),
            restore_ignored_labels: a.restore_ignored_label.clone(),
            default_interval_ms: ms(a.eval_interval),
            default_query_offset_ms: ms(a.rule_query_offset),
            dialect,
        });
        let manager = Arc::new(rule::manager::Manager::new(ctx, a.rule_files.clone()));
        let rules = manager.reload().map_err(|e| anyhow::anyhow!("invalid rule files:\n  {}", e.join("\n  ")))?;
        tracing::info!(rules, groups = manager.groups().len(), "rules loaded");

        let http = bind(&a.http_address, "--http-address").await?;
        let grpc = bind(&a.grpc_address, "--grpc-address").await?;
        tracing::info!(http = %http.local_addr()?, grpc = %grpc.local_addr()?, "listening");
        let reload_manager = manager.clone();
        let (m1, m2) = (manager.clone(), manager.clone());
        let api = axum::Router::new()
            .route(
                "/-/reload",
                post(move || async move {
                    match reload_manager.reload() {
                        Ok(_) => (axum::http::StatusCode::OK, String::new()),
                        Err(e) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            format!("failed to reload config: {}\n", e.join("; ")),
                        ),
                    }
                }),
            )
            .route(
                "/api/v1/rules",
                get(move |Query(p): Query<RulesParams>| async move {
                    match rules_request(&p) {
                        Ok(req) => json(query::apis::rules_body(&m1.rule_groups(&req), &[])),
                        Err(e) => bad_data(e),
                    }
                }),
            )
            .route(
                "/api/v1/alerts",
                get(move |State(()): State<()>| async move {
                    let req = storeapi::pb::RulesRequest {
                        r#type: storeapi::pb::rules_request::Type::Alert as i32,
                        ..Default::default()
                    };
                    json(query::apis::alerts_body(&m2.rule_groups(&req), &[]))
                }),
            );
        let app = router(status.clone(), api);
        let shipper = bucket.map(|b| sidecar::shipper::Shipper {
            bucket: b,
            tsdb_dir: a.data_dir.clone(),
            upload_compacted: a.upload_compacted,
            source: "ruler".into(),
            allow_out_of_order: a.allow_out_of_order,
            skip_corrupted: a.skip_corrupted,
        });
        let store: Arc<dyn storeapi::SeriesStore> = Arc::new(tsdb.clone());
        let apis: Arc<dyn storeapi::apis::PromApis> = Arc::new(rule::api::RulerApis(manager.clone()));
        let bg_manager = manager.clone();
        run_component(http, app, grpc, store, Some(apis), security, move |mut stop| async move {
            status.ready.store(true, Ordering::Release);
            tokio::spawn(notifier.clone().run({
                let mut s = stop.clone();
                async move {
                    let _ = s.changed().await;
                }
            }));
            // Discovery refresh.
            let (qg, ag, res) = (query_groups.clone(), am_groups.clone(), resolver.clone());
            let dns_every = a.query_sd_dns_interval.min(a.alertmanagers_sd_dns_interval).min(a.query_sd_interval);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(dns_every).await;
                    for g in qg.iter().chain(ag.iter()) {
                        for e in g.refresh(&res).await {
                            tracing::warn!(err = %e, "endpoint lookup failed");
                        }
                    }
                }
            });
            // SIGHUP reloads the rules.
            #[cfg(unix)]
            {
                let m = bg_manager.clone();
                tokio::spawn(async move {
                    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                        return;
                    };
                    while hup.recv().await.is_some() {
                        match m.reload() {
                            Ok(n) => tracing::info!(rules = n, "rules reloaded"),
                            Err(e) => tracing::error!(errors = %e.join("; "), "reloading rules failed; the previous rules keep running"),
                        }
                    }
                });
            }
            let block_range = ms(a.block_duration);
            let retention = ms(a.retention);
            let labels = external.clone();
            loop {
                let t = tsdb.clone();
                let ext = labels.clone();
                let cut = tokio::task::spawn_blocking(move || {
                    t.compact(block_range, |w| {
                        w.set_thanos(tsdb::meta::ThanosMeta {
                            version: 1,
                            labels: ext.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
                            source: "ruler".into(),
                            ..Default::default()
                        })
                    })
                })
                .await;
                match cut {
                    Ok(Ok(blocks)) => {
                        for b in blocks {
                            tracing::info!(block = %b.ulid, mint = b.min_time, maxt = b.max_time, "block cut from the head");
                        }
                    }
                    Ok(Err(e)) => tracing::error!(err = %e, "cutting a block from the head failed"),
                    Err(e) => tracing::error!(err = %e, "block cutting task failed"),
                }
                let shipped: std::collections::HashSet<String> = match &shipper {
                    Some(s) => {
                        match s.sync(&labels).await {
                            Ok(r) => {
                                status.metrics.add("thanos_shipper_uploads_total", r.uploaded.len() as f64);
                                status.metrics.add("thanos_shipper_upload_failures_total", r.failed.len() as f64);
                                for (id, e) in &r.failed {
                                    tracing::warn!(block = %id, err = %e, "block not shipped");
                                }
                            }
                            Err(e) => tracing::warn!(err = %e, "shipper sync failed"),
                        }
                        sidecar::shipper::shipped(&a.data_dir)
                    }
                    None => Default::default(),
                };
                let ship = shipper.is_some();
                match tsdb.apply_retention(retention, |m| ship && !shipped.contains(&m.ulid)) {
                    Ok(d) if !d.is_empty() => tracing::info!(blocks = ?d, "blocks past retention deleted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(err = %e, "applying retention failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(a.cut_interval) => {}
                    _ = stop.changed() => break,
                }
            }
            bg_manager.stop();
            if let Err(e) = tsdb.head().sync() {
                tracing::warn!(err = %e, "syncing the WAL at shutdown");
            }
            Ok(())
        })
        .await?;
        tracing::info!("ruler stopped");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_as_thanos_reads_them() {
        assert_eq!(
            parse_label("replica=\"a\"").unwrap(),
            ("replica".into(), "a".into())
        );
        assert_eq!(
            parse_label("replica=a").unwrap(),
            ("replica".into(), "a".into())
        );
        assert!(parse_label("nolabel").is_err());
        assert!(parse_label("=x").is_err());
    }
}
