//! A deployment written for Thanos starts unchanged: sidecar, store gateway and querier run
//! with the command lines of the Thanos Helm chart and kube-thanos (only addresses, paths
//! and the bucket made local), beside a real Prometheus 2.42; the querier sees both
//! endpoints and answers; each flag that has no effect is named once in the log; security
//! flags that cannot be honoured stop the process with an error that names them; and every
//! metric that thanos-mixin's alerts and dashboards read for these components is exported.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::prometheus::Prometheus;
use testkit::{free_port, http_get, wait_until, Process};

fn spawn_logged(dir: &Path, name: &str, args: &[String]) -> (Process, std::path::PathBuf) {
    testkit::spawn_logged(env!("CARGO_BIN_EXE_gauntlet"), dir, name, args)
}

fn ready(port: u16, what: &str, log: &Path) {
    if wait_until(what, Duration::from_secs(60), || {
        matches!(http_get(port, "/-/ready"), Ok((200, _)))
    })
    .is_err()
    {
        panic!("{what}: {}", testkit::log_tail(log));
    }
}

/// 2023-11-14T22:00:00Z + 4h: the end of the history in the bucket.
const HISTORY_END: i64 = 1_700_013_600_000;

/// Four hours of generated history, written by promtool, uploaded with external labels.
fn upload_history(d: &Path, objstore: &str) {
    let data = testkit::dataset::Dataset {
        start_ms: HISTORY_END - 4 * 3_600_000,
        end_ms: HISTORY_END,
        interval_ms: 30_000,
        instances: 2,
        seed: 3,
        gaps: vec![],
    };
    let om = d.join("history.om");
    std::fs::write(&om, data.openmetrics()).unwrap();
    let blocks = d.join("history");
    testkit::prometheus::create_blocks_from_openmetrics(&om, &blocks).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "upload-blocks", objstore])
        .arg(format!("--path={}", blocks.display()))
        .arg("--label=prometheus_replica=\"r0\"")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// The metrics thanos-mixin (Thanos's alerts and dashboards) reads for each component,
/// collected from its `alerts/` and `dashboards/` for query, store and sidecar.
const QUERY_METRICS: &[&str] = &[
    "grpc_client_handled_total",
    "grpc_client_handling_seconds_bucket",
    "grpc_client_started_total",
    "grpc_server_handled_total",
    "grpc_server_started_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_count",
    "http_requests_total",
    "thanos_query_concurrent_gate_queries_in_flight",
    "thanos_query_concurrent_gate_queries_max",
    "thanos_query_store_apis_dns_failures_total",
    "thanos_query_store_apis_dns_lookups_total",
    "thanos_build_info",
];
const STORE_METRICS: &[&str] = &[
    "grpc_server_handled_total",
    "grpc_server_handling_seconds_bucket",
    "grpc_server_started_total",
    "thanos_bucket_store_block_drop_failures_total",
    "thanos_bucket_store_block_drops_total",
    "thanos_bucket_store_block_load_failures_total",
    "thanos_bucket_store_block_loads_total",
    "thanos_bucket_store_sent_chunk_size_bytes_bucket",
    "thanos_bucket_store_sent_chunk_size_bytes_count",
    "thanos_bucket_store_sent_chunk_size_bytes_sum",
    "thanos_bucket_store_series_blocks_queried_bucket",
    "thanos_bucket_store_series_blocks_queried_count",
    "thanos_bucket_store_series_blocks_queried_sum",
    "thanos_bucket_store_series_data_fetched_count",
    "thanos_bucket_store_series_data_fetched_sum",
    "thanos_bucket_store_series_data_touched_count",
    "thanos_bucket_store_series_data_touched_sum",
    "thanos_bucket_store_series_gate_duration_seconds_bucket",
    "thanos_bucket_store_series_gate_duration_seconds_count",
    "thanos_bucket_store_series_get_all_duration_seconds_bucket",
    "thanos_bucket_store_series_merge_duration_seconds_bucket",
    "thanos_bucket_store_series_result_series_bucket",
    "thanos_bucket_store_series_result_series_count",
    "thanos_bucket_store_series_result_series_sum",
    "thanos_objstore_bucket_operation_duration_seconds_bucket",
    "thanos_objstore_bucket_operation_duration_seconds_count",
    "thanos_objstore_bucket_operation_failures_total",
    "thanos_objstore_bucket_operations_total",
    "thanos_store_index_cache_hits_total",
    "thanos_store_index_cache_items_added_total",
    "thanos_store_index_cache_items_evicted_total",
    "thanos_store_index_cache_requests_total",
    "thanos_build_info",
];
const SIDECAR_METRICS: &[&str] = &[
    "grpc_server_handled_total",
    "grpc_server_handling_seconds_bucket",
    "thanos_objstore_bucket_last_successful_upload_time",
    "thanos_objstore_bucket_operation_failures_total",
    "thanos_objstore_bucket_operations_total",
    "thanos_sidecar_prometheus_up",
    "thanos_build_info",
];

/// Metrics the mixin reads that we do not export yet (none).
const NOT_YET: &[&str] = &[];

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn helm_and_kube_thanos_command_lines_start_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prom = Prometheus::start(
        d,
        &d.join("prometheus"),
        |p| {
            format!(
                "global:\n  scrape_interval: 1s\n  external_labels:\n    prometheus_replica: r0\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{p}']\n"
            )
        },
        &[],
    )
    .unwrap();
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        d.join("bucket").display()
    );
    let index_cache = "--index-cache.config=type: IN-MEMORY\nconfig:\n  max_size: 250MB\n";
    upload_history(d, &objstore);

    let (sc_http, sc_grpc) = (free_port(), free_port());
    let mut sidecar_args = words(&format!(
        "sidecar --log.level=info --log.format=logfmt \
         --grpc-address=127.0.0.1:{sc_grpc} --http-address=127.0.0.1:{sc_http} \
         --prometheus.url=http://127.0.0.1:{}/ --tsdb.path={} \
         --reloader.config-file=/etc/prometheus/config/prometheus.yaml.gz \
         --reloader.config-envsubst-file=/etc/prometheus/config_out/prometheus.env.yaml \
         --reloader.rule-dir=/etc/prometheus/rules/ --http.config= \
         --grpc-server-tls-cert= --grpc-server-tls-key= --grpc-server-tls-client-ca= \
         --shipper.upload-concurrency=0 --no-shipper.upload-compacted \
         --tracing.config-file=/etc/thanos/tracing.yaml --http-grace-period=2m",
        prom.port,
        d.join("prometheus").display()
    ));
    sidecar_args.push(objstore.clone());
    let (_sidecar, sidecar_log) = spawn_logged(d, "sidecar", &sidecar_args);
    ready(sc_http, "sidecar ready", &sidecar_log);

    let (st_http, st_grpc) = (free_port(), free_port());
    let mut store_args = words(&format!(
        "store --log.level=info --log.format=logfmt --data-dir={} \
         --grpc-address=127.0.0.1:{st_grpc} --http-address=127.0.0.1:{st_http} \
         --ignore-deletion-marks-delay=24h --store.enable-index-header-lazy-reader \
         --chunk-pool-size=2GB --index-cache-size=250MB --sync-block-duration=3m \
         --block-sync-concurrency=20 --store.grpc.series-max-concurrency=20 \
         --min-time=0000-01-01T00:00:00Z --max-time=9999-12-31T23:59:59Z \
         --web.disable --no-cache-index-header --enable-auto-gomemlimit",
        d.join("store").display()
    ));
    store_args.push(objstore.clone());
    store_args.push(index_cache.into());
    let (_store, store_log) = spawn_logged(d, "store", &store_args);
    ready(st_http, "store ready", &store_log);

    let q_http = free_port();
    let query_args = words(&format!(
        "query --log.level=info --log.format=logfmt \
         --grpc-address=127.0.0.1:{} --http-address=127.0.0.1:{q_http} \
         --query.replica-label=prometheus_replica --query.replica-label=rule_replica \
         --endpoint=127.0.0.1:{sc_grpc} --store=127.0.0.1:{st_grpc} \
         --query.timeout=5m --query.lookback-delta=15m --query.auto-downsampling \
         --query.partial-response --query.max-concurrent=20 \
         --web.prefix-header=X-Forwarded-Prefix --web.route-prefix=/ \
         --query.promql-engine=prometheus --deduplication.func=penalty \
         --query.default-step=1s --grpc-client-tls-secure=false",
        free_port()
    ));
    let (_query, query_log) = spawn_logged(d, "query", &query_args);
    ready(q_http, "query ready", &query_log);
    wait_until(
        "query answers from the sidecar",
        Duration::from_secs(60),
        || {
            http_get(q_http, "/api/v1/query?query=up").is_ok_and(|(c, b)| {
                c == 200
                    && b.contains("\"job\":\"prometheus\"")
                    && !b.contains("prometheus_replica")
            })
        },
    )
    .unwrap();
    let (code, stores) = http_get(q_http, "/api/v1/stores").unwrap();
    assert_eq!(code, 200);
    assert!(
        stores.contains("\"sidecar\"") && stores.contains("\"store\""),
        "{stores}"
    );

    // Traffic through every path the dashboards watch, then their metrics.
    let range = format!(
        "start={}&end={}",
        HISTORY_END / 1000 - 4 * 3600,
        HISTORY_END / 1000
    );
    for path in [
        format!("/api/v1/query_range?query=rate(http_requests_total%5B5m%5D)&{range}&step=60"),
        format!(
            "/api/v1/query?query=sum(memory_bytes)&time={}",
            HISTORY_END / 1000 - 60
        ),
        format!("/api/v1/series?match%5B%5D=up&{range}"),
        "/api/v1/labels".to_string(),
        "/api/v1/label/job/values".to_string(),
    ] {
        let (code, body) = http_get(q_http, &path).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
    }
    let mut missing = Vec::new();
    for (component, port, names) in [
        ("query", q_http, QUERY_METRICS),
        ("store", st_http, STORE_METRICS),
        ("sidecar", sc_http, SIDECAR_METRICS),
    ] {
        let (_, text) = http_get(port, "/metrics").unwrap();
        for name in names {
            let exported = text.lines().any(|l| {
                !l.starts_with('#')
                    && l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(['{', ' ']))
            });
            if !exported {
                missing.push(format!("{component}: {name}"));
            }
        }
    }
    println!("thanos-mixin metrics missing: {missing:?}");
    // Beyond the mixin: the querier counts its connections per store type, as Thanos.
    let (_, text) = http_get(q_http, "/metrics").unwrap();
    for kind in ["sidecar", "store"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("thanos_store_nodes_grpc_connections{")
                    && l.contains(&format!("store_type=\"{kind}\""))
                    && l.ends_with(" 1")),
            "{kind}: {text}"
        );
    }
    assert_eq!(
        missing, NOT_YET,
        "metrics that thanos-mixin reads are missing"
    );

    // Each flag without effect is named once, with why.
    let said = |log: &Path, flag: &str| {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("has no effect") && l.contains(&format!("flag={flag} ")))
            .count()
    };
    for (log, flag) in [
        (&sidecar_log, "--tracing.config-file"),
        (&store_log, "--chunk-pool-size"),
        (&store_log, "--store.enable-index-header-lazy-reader"),
        (&store_log, "--index-cache.config"),
        (&query_log, "--query.promql-engine"),
    ] {
        assert_eq!(said(log, flag), 1, "{flag}: {}", testkit::log_tail(log));
    }

    // The reloader is at work: the chart's config path does not exist here, and it says so.
    assert!(
        std::fs::read_to_string(&sidecar_log)
            .unwrap()
            .contains("/etc/prometheus/config/prometheus.yaml.gz"),
        "{}",
        testkit::log_tail(&sidecar_log)
    );

    // Security settings are acted on: one that cannot be honoured stops the process,
    // naming the flag (TLS and auth themselves: tests/security.rs).
    for flag in [
        "--grpc-server-tls-cert=/etc/tls/tls.crt",
        "--http.config=/etc/thanos/web.yaml",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args(["query", "--endpoint=127.0.0.1:1", flag])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let name = flag.split('=').next().unwrap();
        assert!(!out.status.success() && err.contains(name), "{flag}: {err}");
    }
}

/// As Thanos's querier, ours starts with no endpoints (a ruler's query API may be one) and
/// answers queries that need no series.
#[test]
fn querier_starts_without_endpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let q = free_port();
    let (_p, log) = spawn_logged(
        d,
        "query",
        &[
            "query".into(),
            format!("--http-address=127.0.0.1:{q}"),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
        ],
    );
    ready(q, "querier without endpoints", &log);
    let (code, body) = http_get(q, "/api/v1/query?query=vector(2)&time=100").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""value":[100,"2"]"#), "{body}");
    assert!(testkit::log_tail(&log).contains("no endpoints given"));
}

/// `--query.promql-compat` picks the PromQL the querier answers as (3.x by default, as
/// current Thanos), and `--enable-feature=promql-experimental-functions` turns on 3.x's
/// experimental functions, as in Thanos (`promql-binop-fill-modifiers` the fill modifiers,
/// as in Prometheus); a bad value stops the process naming the flag.
#[test]
fn querier_promql_compat_and_experimental_functions() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let start = |name: &str, extra: &[&str]| {
        let q = free_port();
        let mut args = vec![
            "query".to_string(),
            format!("--http-address=127.0.0.1:{q}"),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (p, log) = spawn_logged(d, name, &args);
        ready(q, name, &log);
        (p, q)
    };
    let query = |q: u16, expr: &str| {
        let path = format!(
            "/api/v1/query?query={}&time=100",
            testkit::promapi::url_encode(expr)
        );
        http_get(q, &path).unwrap()
    };
    let (_v3, q3) = start("v3", &[]);
    let (_v2, q2) = start("v2", &["--query.promql-compat=v2"]);
    let (_x, qx) = start(
        "x",
        &["--enable-feature=promql-experimental-functions,promql-binop-fill-modifiers"],
    );
    // 3.x functions: stable ones on by default, experimental ones behind the feature.
    let (code, body) = query(q3, "max_of(1, 2)");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("function \\\"max_of\\\" is not enabled"),
        "{body}"
    );
    let (code, body) = query(qx, "max_of(1, 2)");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""result":[100,"2"]"#), "{body}");
    let (code, body) = query(qx, "histogram_quantiles(vector(1), \"q\", 0.5)");
    assert_eq!(code, 200, "{body}");
    let (code, body) = query(q3, "first_over_time(vector(1)[1m:])");
    assert_eq!(code, 200, "{body}");
    // 2.42 knows neither, and still has holt_winters.
    let (code, body) = query(q2, "first_over_time(vector(1)[1m:])");
    assert_eq!(code, 400, "{body}");
    let (code, body) = query(q2, "holt_winters(vector(1)[1m:], 0.5, 0.5)");
    assert_eq!(code, 200, "{body}");
    let (code, body) = query(q3, "holt_winters(vector(1)[1m:], 0.5, 0.5)");
    assert_eq!(code, 400, "{body}");
    // Fill modifiers, behind Prometheus's own feature flag.
    let fill = "vector(1) + on() fill_right(2) (vector(1) > 5)";
    let (code, body) = query(q3, fill);
    assert!(
        code == 400 && body.contains("binop fill modifiers"),
        "{body}"
    );
    let (code, body) = query(qx, fill);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""value":[100,"3"]"#), "{body}");
    // A duration expression.
    let (code, body) = query(q3, "count_over_time(vector(1)[1m+1m:1m])");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""value":[100,"2"]"#), "{body}");

    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["query", "--query.promql-compat=v4"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--query.promql-compat"),
        "{err}"
    );
}
