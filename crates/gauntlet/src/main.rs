//! The `gauntlet` binary: Thanos's subcommands and flags, wiring the library crates.
//! Each subcommand declares its flags, builds its parts and runs them; no logic lives here.

mod allocator;
mod compact_cmd;
mod flags;
mod http_edge;
mod kingpin;
mod logging;
mod query_cmd;
mod rule_cmd;
mod security;
mod server;
mod sidecar_cmd;
mod store_cmd;
mod tools;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gauntlet",
    version,
    about = "Prometheus long-term storage and global query view, compatible with Thanos"
)]
struct Cli {
    #[command(flatten)]
    log: logging::LogFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compactor: compacts, downsamples and applies retention to the blocks of a bucket.
    Compact(compact_cmd::CompactArgs),
    /// Querier: Prometheus HTTP API over every StoreAPI endpoint, deduplicating HA replicas.
    Query(query_cmd::QueryArgs),
    /// Ruler: evaluates recording and alerting rules through the query API.
    Rule(rule_cmd::RuleArgs),
    /// Sidecar: serves the StoreAPI over the Prometheus next to it (remote read).
    Sidecar(sidecar_cmd::SidecarArgs),
    /// Store gateway: serves the StoreAPI over the blocks in object storage.
    Store(store_cmd::StoreArgs),
    /// Tools for operators.
    Tools(tools::ToolsArgs),
}

/// Every flag of the subcommand with its value (defaults included), as Thanos lists them at
/// `/api/v1/status/flags`; the inline object storage config is redacted.
fn flags_map(args: &[std::ffi::OsString]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(m) = Cli::command().try_get_matches_from(args) else {
        return out;
    };
    let cmd = Cli::command();
    let mut add = |cmd: &clap::Command, m: &clap::ArgMatches| {
        for arg in cmd.get_arguments() {
            let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
                continue;
            };
            let value = match m.try_get_raw(id) {
                Ok(Some(v)) => v
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                _ => String::new(),
            };
            let redacted = matches!(long, "objstore.config" | "objstore.config-file");
            out.insert(
                long.to_string(),
                if redacted && !value.is_empty() {
                    "<REDACTED>".to_string()
                } else {
                    value
                },
            );
        }
    };
    add(&cmd, &m);
    if let Some((name, sub)) = m.subcommand() {
        if let Some(sc) = cmd.find_subcommand(name) {
            add(sc, sub);
        }
    }
    out
}

fn main() {
    allocator::tune();
    let normalized = match kingpin::normalize(std::env::args_os().collect(), &Cli::command()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("gauntlet: {e}");
            std::process::exit(2);
        }
    };
    let flags = flags_map(&normalized.args);
    let cli = Cli::parse_from(normalized.args);
    logging::init(&cli.log);
    for (flag, why) in &normalized.no_effect {
        tracing::warn!(flag = %flag, reason = why, "flag accepted; it has no effect");
    }
    if !matches!(cli.command, Command::Tools(_)) {
        allocator::start_trimmer();
    }
    let result = match cli.command {
        Command::Compact(args) => compact_cmd::run(args),
        Command::Query(args) => query_cmd::run(args, flags),
        Command::Rule(args) => rule_cmd::run(args),
        Command::Sidecar(args) => sidecar_cmd::run(args),
        Command::Store(args) => store_cmd::run(args),
        Command::Tools(args) => tools::run(args),
    };
    if let Err(e) = result {
        tracing::error!(err = %format!("{e:#}"), "command failed");
        eprintln!("gauntlet: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod thanos_flags {
    //! Every flag of `thanos sidecar|store|query|compact` and of the `thanos tools bucket`
    //! subcommands we have (v0.42), with its default or a sample value, is accepted:
    //! implemented, or accepted and said to have no effect.
    use super::*;

    const SIDECAR: &str = "log.level=info log.format=logfmt tracing.config-file=/t.yaml \
        tracing.config= [no-]enable-auto-gomemlimit auto-gomemlimit.ratio=0.9 \
        http-address=0.0.0.0:10902 http-grace-period=2m http.config= \
        grpc-address=0.0.0.0:10901 grpc-server-tls-cert= grpc-server-tls-key= \
        grpc-server-tls-client-ca= grpc-server-tls-min-version=1.3 \
        grpc-server-tls-ciphers=X grpc-server-tls-curves=X grpc-server-max-connection-age=60m \
        grpc-grace-period=2m prometheus.url=http://localhost:9090 \
        prometheus.ready_timeout=10m prometheus.get_config_interval=30s \
        prometheus.get_config_timeout=30s prometheus.http-client-file= prometheus.http-client= \
        tsdb.path=./data reloader.config-file= reloader.config-envsubst-file= \
        reloader.rule-dir=/rules reloader.watch-interval=3m reloader.retry-interval=5s \
        reloader.method=http reloader.process-name=prometheus \
        request.logging-config-file=/l.yaml request.logging-config=x \
        objstore.config-file=/o.yaml objstore.config=x [no-]shipper.upload-compacted \
        hash-func= shipper.meta-file-name=thanos.shipper.json shipper.upload-concurrency=0 \
        store.limits.request-series=0 store.limits.request-samples=0 \
        min-time=0000-01-01T00:00:00Z";

    const STORE: &str = "log.level=info log.format=logfmt tracing.config-file=/t.yaml \
        tracing.config= [no-]enable-auto-gomemlimit auto-gomemlimit.ratio=0.9 \
        http-address=0.0.0.0:10902 http-grace-period=2m http.config= \
        grpc-address=0.0.0.0:10901 grpc-server-tls-cert= grpc-server-tls-key= \
        grpc-server-tls-client-ca= grpc-server-tls-min-version=1.3 grpc-server-tls-ciphers=X \
        grpc-server-tls-curves=X grpc-server-max-connection-age=60m grpc-grace-period=2m \
        store.limits.request-series=0 store.limits.request-samples=0 data-dir=./data \
        [no-]cache-index-header index-cache-size=250MB index-cache.config-file=/i.yaml \
        index-cache.config=x chunk-pool-size=2GB store.grpc.touched-series-limit=0 \
        store.grpc.series-sample-limit=0 store.grpc.downloaded-bytes-limit=0 \
        store.grpc.series-max-concurrency=20 objstore.config-file=/o.yaml objstore.config=x \
        objstore-parquet.config-file=/p.yaml objstore-parquet.config=x sync-block-duration=15m \
        block-discovery-strategy=concurrent block-sync-concurrency=20 \
        block-meta-fetch-concurrency=32 min-time=0000-01-01T00:00:00Z \
        max-time=9999-12-31T23:59:59Z selector.relabel-config-file=/r.yaml \
        selector.relabel-config=[] consistency-delay=0s ignore-deletion-marks-delay=24h \
        delete-delay=48h [no-]store.enable-index-header-lazy-reader \
        [no-]store.enable-lazy-expanded-postings store.posting-group-max-key-series-ratio=100 \
        store.index-header-lazy-download-strategy=eager [no-]web.disable web.external-prefix= \
        web.prefix-header= [no-]web.disable-cors bucket-web-label=x matcher-cache-size=0 \
        [no-]disable-admin-operations request.logging-config-file=/l.yaml \
        request.logging-config=x";

    const QUERY: &str = "log.level=info log.format=logfmt tracing.config-file=/t.yaml \
        tracing.config= [no-]enable-auto-gomemlimit auto-gomemlimit.ratio=0.9 \
        http-address=0.0.0.0:10902 http-grace-period=2m http.config= \
        grpc-address=0.0.0.0:10901 grpc-server-tls-cert= grpc-server-tls-key= \
        grpc-server-tls-client-ca= grpc-server-tls-min-version=1.3 grpc-server-tls-ciphers=X \
        grpc-server-tls-curves=X grpc-server-max-connection-age=60m grpc-grace-period=2m \
        no-grpc-client-tls-secure no-grpc-client-tls-skip-verify grpc-client-tls-cert= \
        grpc-client-tls-key= grpc-client-tls-ca= grpc-client-server-name= \
        grpc-compression=none grpc-client-tls-min-version=1.3 web.route-prefix= \
        web.external-prefix= web.prefix-header= [no-]web.disable-cors query.timeout=2m \
        query.promql-engine=prometheus [no-]query.enable-x-functions query.mode=local \
        query.max-concurrent=20 query.lookback-delta=5m query.max-concurrent-select=4 \
        query.conn-metric.label=external_labels deduplication.func=penalty \
        query.replica-label=replica query.partition-label=x \
        query.metadata.default-time-range=0s selector-label=a=\"b\" \
        [no-]query.auto-downsampling [no-]query.partial-response query.active-query-path= \
        enable-feature=x query.default-evaluation-interval=1m query.default-step=1s \
        store.response-timeout=0ms selector.relabel-config-file=/r.yaml \
        selector.relabel-config=[] request.logging-config-file=/l.yaml \
        request.logging-config=x alert.query-url=http://x \
        query.telemetry.request-duration-seconds-quantiles=0.1 \
        query.telemetry.request-samples-quantiles=100 \
        query.telemetry.request-series-seconds-quantiles=10 query.tenant-header=THANOS-TENANT \
        query.default-tenant-id=default-tenant query.tenant-certificate-field= \
        [no-]query.enforce-tenancy query.tenant-label-name=tenant_id \
        store.sd-dns-interval=30s store.unhealthy-timeout=5m endpoint.sd-config-file=/e.yaml \
        endpoint.sd-config= endpoint.sd-config-reload-interval=5m store.sd-files=/sd.yaml \
        store.sd-interval=5m endpoint=a:1 endpoint-group=a:1 endpoint-strict=a:1 \
        endpoint-group-strict=a:1 store.limits.request-series=0 \
        store.limits.request-samples=0 store=a:1";

    const COMPACT: &str = "log.level=info log.format=logfmt tracing.config-file=/t.yaml \
        tracing.config= [no-]enable-auto-gomemlimit auto-gomemlimit.ratio=0.9 \
        http-address=0.0.0.0:10902 http-grace-period=2m http.config= data-dir=./data \
        objstore.config-file=/o.yaml objstore.config=x consistency-delay=30m \
        retention.resolution-raw=0d retention.resolution-5m=0d retention.resolution-1h=0d \
        [no-]wait wait-interval=5m [no-]downsampling.disable \
        block-discovery-strategy=concurrent block-meta-fetch-concurrency=32 \
        block-files-concurrency=1 block-viewer.global.sync-block-interval=1m \
        block-viewer.global.sync-block-timeout=5m compact.cleanup-interval=5m \
        compact.progress-interval=5m compact.concurrency=1 compact.blocks-fetch-concurrency=1 \
        downsample.concurrency=1 delete-delay=48h deduplication.func= \
        deduplication.replica-label=replica hash-func= min-time=0000-01-01T00:00:00Z \
        max-time=9999-12-31T23:59:59Z [no-]web.disable selector.relabel-config-file=/r.yaml \
        selector.relabel-config=[] web.route-prefix= web.external-prefix= web.prefix-header= \
        [no-]web.disable-cors bucket-web-label=x [no-]disable-admin-operations";

    /// `thanos tools bucket` subcommands (v0.42) that Gauntlet has, with arguments they
    /// require, and their flags.
    const TOOLS_BUCKET: &[(&str, &str)] = &[
        (
            "tools bucket ls",
            "objstore.config=x selector.relabel-config-file=/r.yaml selector.relabel-config=[] \
             output= [no-]exclude-delete min-time=0000-01-01T00:00:00Z \
             max-time=9999-12-31T23:59:59Z timeout=5m",
        ),
        (
            "tools bucket inspect",
            "objstore.config=x selector=a=\"b\" sort-by=FROM timeout=5m output=table",
        ),
        (
            "tools bucket verify",
            "objstore.config=x objstore-backup.config-file=/b.yaml objstore-backup.config=x \
             [no-]repair issues=index_known_issues id=01ARZ3NDEKTSV4RRFFQ69G5FAV delete-delay=0s",
        ),
        (
            "tools bucket upload-blocks",
            "objstore.config=x path=./data label=a=\"b\" [no-]shipper.upload-compacted \
             shipper.upload-concurrency=5",
        ),
        (
            "tools bucket mark --id=01ARZ3NDEKTSV4RRFFQ69G5FAV --marker=deletion-mark.json --details=x",
            "objstore.config=x id=01ARZ3NDEKTSV4RRFFQ69G5FAV [no-]remove",
        ),
        (
            "tools bucket cleanup",
            "objstore.config=x delete-delay=48h consistency-delay=30m block-sync-concurrency=20 \
             selector.relabel-config-file=/r.yaml selector.relabel-config=[]",
        ),
        (
            "tools bucket retention",
            "objstore.config=x delete-delay=48h consistency-delay=30m block-sync-concurrency=20 \
             selector.relabel-config-file=/r.yaml selector.relabel-config=[] \
             retention.resolution-raw=0d retention.resolution-5m=0d retention.resolution-1h=0d",
        ),
        (
            "tools bucket downsample",
            "objstore.config=x http-address=0.0.0.0:10902 http-grace-period=2m http.config= \
             wait-interval=5m downsample.concurrency=1 block-files-concurrency=1 data-dir=./data \
             hash-func=",
        ),
    ];

    const RULE: &str = "log.level=info log.format=logfmt tracing.config-file=/t.yaml \
        tracing.config= [no-]enable-auto-gomemlimit auto-gomemlimit.ratio=0.9 \
        http-address=0.0.0.0:10902 http-grace-period=2m http.config= \
        grpc-address=0.0.0.0:10901 grpc-server-tls-cert= grpc-server-tls-key= \
        grpc-server-tls-client-ca= grpc-server-tls-min-version=1.3 \
        grpc-server-tls-ciphers=X grpc-server-tls-curves=X grpc-server-max-connection-age=60m \
        grpc-grace-period=2m web.route-prefix= web.external-prefix= web.prefix-header= \
        [no-]web.disable-cors [no-]shipper.upload-compacted hash-func= \
        shipper.meta-file-name=thanos.shipper.json shipper.upload-concurrency=0 \
        query=127.0.0.1:1 query.config-file=/q.yaml query.config= query.sd-files=/sd.yml \
        query.sd-interval=5m query.sd-dns-interval=30s query.http-method=POST \
        query.default-step=1s alertmanagers.config-file=/a.yaml alertmanagers.config= \
        alertmanagers.url=http://am:9093 alertmanagers.send-timeout=10s \
        alertmanagers.sd-dns-interval=30s alert.query-url=http://q alert.label-drop=replica \
        alert.relabel-config-file=/r.yaml alert.relabel-config= \
        alert.query-template=/graph?g0.expr={{.Expr}}&g0.tab=1 \
        store.limits.request-series=0 store.limits.request-samples=0 label=replica=\"a\" \
        tsdb.block-duration=2h tsdb.retention=48h [no-]tsdb.no-lockfile \
        [no-]tsdb.wal-compression data-dir=data/ rule-file=rules/ resend-delay=1m \
        eval-interval=1m rule-query-offset=0s for-outage-tolerance=1h for-grace-period=10m \
        restore-ignored-label=x rule-concurrent-evaluation=1 grpc-query-endpoint=q:10901 \
        [no-]query.enable-x-functions enable-feature=x [no-]tsdb.enable-native-histograms \
        remote-write.config-file= remote-write.config= objstore.config-file=/o.yaml \
        objstore.config=x request.logging-config-file=/l.yaml request.logging-config=x";

    const TOOLS_COMMON: &str = "log.level=info log.format=logfmt tracing.config-file=/t.yaml \
             tracing.config= [no-]enable-auto-gomemlimit auto-gomemlimit.ratio=0.9 \
             objstore.config-file=/o.yaml";

    fn parses(args: &[String]) -> Result<(), String> {
        let mut all = vec![std::ffi::OsString::from("gauntlet")];
        all.extend(args.iter().map(std::ffi::OsString::from));
        let n = kingpin::normalize(all, &Cli::command())?;
        Cli::try_parse_from(n.args)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_thanos_flag_is_accepted() {
        let mut refused = Vec::new();
        let mut tables = vec![
            ("sidecar", SIDECAR.to_string()),
            ("store", STORE.to_string()),
            ("query", QUERY.to_string()),
            ("compact", COMPACT.to_string()),
            ("rule", RULE.to_string()),
        ];
        for (cmd, flags) in TOOLS_BUCKET {
            tables.push((cmd, format!("{TOOLS_COMMON} {flags}")));
        }
        for (cmd, table) in tables {
            for item in table.split_whitespace() {
                let forms: Vec<String> = match item.strip_prefix("[no-]") {
                    Some(b) => vec![format!("--{b}"), format!("--no-{b}")],
                    None => vec![format!("--{item}")],
                };
                for f in forms {
                    let mut args: Vec<String> = cmd.split_whitespace().map(String::from).collect();
                    args.push(f.clone());
                    if let Err(e) = parses(&args) {
                        refused.push(format!("{cmd} {f}: {e}"));
                    }
                }
            }
        }
        assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    }
}
