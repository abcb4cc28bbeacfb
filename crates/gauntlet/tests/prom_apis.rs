//! The Rules, Alerts, Targets, Metadata and Exemplars APIs through sidecars and the querier,
//! over two real Prometheus 2.42 replicas (rules loaded, scraping a target that exposes an
//! exemplar): answers carry the external labels, HA replicas are deduplicated, and what the
//! querier returns matches what each Prometheus says itself.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::prometheus::Prometheus;
use testkit::{free_port, http_get, wait_until, Process};

fn prometheus(d: &Path, replica: &str, target: u16) -> Prometheus {
    // The same rule file path on both replicas, as an HA pair is deployed.
    let rules = d.join("rules.yml");
    std::fs::write(&rules, testkit::prometheus::RULES_YAML).unwrap();
    testkit::prometheus::start_with_rules(d, replica, &rules, target).unwrap()
}

fn gauntlet(d: &Path, name: &str, args: Vec<String>) -> Process {
    Process::spawn(
        name,
        Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join(format!("{name}.log"))).unwrap()),
    )
    .unwrap()
}

fn get(port: u16, path: &str) -> Value {
    let (code, body) = http_get(port, path).unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn rules_alerts_targets_metadata_and_exemplars_through_the_querier() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let target = testkit::prometheus::exemplar_target();
    let proms = [prometheus(d, "a", target), prometheus(d, "b", target)];
    let mut grpc = Vec::new();
    let mut sidecars = Vec::new();
    for (i, p) in proms.iter().enumerate() {
        let g = free_port();
        grpc.push(g);
        sidecars.push(gauntlet(
            d,
            &format!("sidecar{i}"),
            vec![
                "sidecar".into(),
                format!("--prometheus.url={}", p.url()),
                format!("--tsdb.path={}", p.data.display()),
                format!("--http-address=127.0.0.1:{}", free_port()),
                format!("--grpc-address=127.0.0.1:{g}"),
            ],
        ));
    }
    let q = free_port();
    let mut args = vec![
        "query".to_string(),
        format!("--http-address=127.0.0.1:{q}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
        "--query.replica-label=replica".into(),
        "--endpoint.info-interval=1s".into(),
    ];
    args.extend(grpc.iter().map(|g| format!("--endpoint=127.0.0.1:{g}")));
    let _q = gauntlet(d, "query", args);
    let log = d.join("query.log");

    // Both Prometheus have evaluated their rules, scraped the target and kept the exemplar.
    for p in &proms {
        let ok = wait_until(
            "prometheus ready with data",
            Duration::from_secs(30),
            || {
                p.get_any("/api/v1/alerts").contains("firing")
                    && p.get_any(
                        "/api/v1/query_exemplars?query=test_requests_total&start=0&end=9999999999",
                    )
                    .contains("abc123")
            },
        );
        assert!(ok.is_ok(), "{}", p.log_tail());
    }
    let ready = wait_until("querier sees the rules", Duration::from_secs(30), || {
        http_get(q, "/api/v1/alerts").is_ok_and(|(_, b)| b.contains("AlwaysFiring"))
    });
    assert!(ready.is_ok(), "{}", testkit::log_tail(&log));

    // Rules: one group (the replicas deduplicated), external labels added, replica removed.
    let rules = get(q, "/api/v1/rules");
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{rules}");
    let own = serde_json::from_str::<Value>(&proms[0].get_any("/api/v1/rules")).unwrap();
    let own_group = &own["data"]["groups"][0];
    assert_eq!(groups[0]["name"], own_group["name"]);
    assert_eq!(groups[0]["file"], own_group["file"]);
    assert_eq!(groups[0]["interval"], own_group["interval"]);
    let ours = groups[0]["rules"].as_array().unwrap();
    assert_eq!(ours.len(), 2, "{rules}");
    assert_eq!(ours[0]["type"], "alerting");
    assert_eq!(ours[0]["name"], "AlwaysFiring");
    assert_eq!(ours[0]["labels"]["cluster"], "eu");
    assert_eq!(ours[0]["labels"]["severity"], "page");
    assert!(ours[0]["labels"].get("replica").is_none(), "{rules}");
    assert_eq!(ours[0]["annotations"]["summary"], "it fires");
    assert_eq!(ours[1]["type"], "recording");
    assert_eq!(ours[1]["query"], "sum by (job) (up)");
    let recording_only = get(q, "/api/v1/rules?type=record");
    assert_eq!(
        recording_only["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let bad = http_get(q, "/api/v1/rules?type=bogus").unwrap();
    assert_eq!(bad.0, 400);

    // Alerts: one firing alert (its own labels, as Thanos's sidecar leaves them); both
    // replicas' without dedup.
    let alerts = get(q, "/api/v1/alerts");
    let list = alerts["data"]["alerts"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{alerts}");
    assert_eq!(list[0]["labels"]["alertname"], "AlwaysFiring");
    assert_eq!(list[0]["labels"]["severity"], "page");
    assert_eq!(list[0]["state"], "firing");
    assert_eq!(list[0]["value"], "1e+00");
    let both = get(q, "/api/v1/alerts?dedup=false");
    assert_eq!(
        both["data"]["alerts"].as_array().unwrap().len(),
        2,
        "{both}"
    );

    // Targets: the scraped target, up, once.
    let targets = get(q, "/api/v1/targets?state=active");
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{targets}");
    assert_eq!(active[0]["health"], "up");
    assert_eq!(active[0]["labels"]["job"], "app");
    assert_eq!(active[0]["labels"]["cluster"], "eu");
    assert_eq!(
        active[0]["scrapeUrl"],
        format!("http://127.0.0.1:{target}/metrics")
    );

    // Metadata as Prometheus reports it.
    let meta = get(q, "/api/v1/metadata?metric=test_requests");
    let own_meta =
        serde_json::from_str::<Value>(&proms[0].get_any("/api/v1/metadata?metric=test_requests"))
            .unwrap();
    assert_eq!(meta["data"], own_meta["data"], "{meta}");
    assert_eq!(meta["data"]["test_requests"][0]["type"], "counter");
    let limited = get(q, "/api/v1/metadata?limit=1");
    assert_eq!(limited["data"].as_object().unwrap().len(), 1);

    // Exemplars: the series once (replicas deduplicated), with the trace id.
    let ex = get(
        q,
        "/api/v1/query_exemplars?query=test_requests_total&start=0&end=9999999999",
    );
    let series = ex["data"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{ex}");
    assert_eq!(series[0]["seriesLabels"]["__name__"], "test_requests_total");
    assert_eq!(series[0]["seriesLabels"]["cluster"], "eu");
    let first = &series[0]["exemplars"][0];
    assert_eq!(first["labels"]["trace_id"], "abc123");
    assert_eq!(first["value"], "1");
    assert!(first["timestamp"].as_f64().unwrap() > 1.0e9);
    let bad = http_get(q, "/api/v1/query_exemplars?query=sum(").unwrap();
    assert_eq!(bad.0, 400);
}
