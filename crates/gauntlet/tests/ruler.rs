//! The ruler end to end, with a real Prometheus 2.42 (sidecar in front), our querier and a
//! real Alertmanager: recorded series are queryable through the querier and equal their
//! expressions at the evaluation times; the same rule file in Prometheus gives the same
//! values and alert times; an alert goes pending, fires, reaches Alertmanager once from two
//! ruler replicas (`--alert.label-drop=replica`), and resolves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::promapi::url_encode;
use testkit::prometheus::Prometheus;
use testkit::{find_binary, free_port, http_get, wait_until, Process};

/// Fires for the first 20 s of every 40 s, after 2 s pending.
const RULES: &str = r#"groups:
  - name: recording
    interval: 1s
    rules:
      - record: job:up:count
        expr: count by (job) (up)
      - record: eval:time
        expr: vector(time())
  - name: alerting
    interval: 1s
    rules:
      - alert: Periodic
        expr: vector(time() % 40) < 20
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "of {{ $externalLabels.replica }}: {{ 1234567 | humanize }}, {{ 90 | humanizeDuration }}, {{ if gt $value 50.0 }}big{{ else }}small{{ end }}"
"#;

fn gauntlet(d: &Path, name: &str, args: Vec<String>) -> Process {
    testkit::spawn_logged(env!("CARGO_BIN_EXE_gauntlet"), d, name, &args).0
}

fn get(port: u16, path: &str) -> Value {
    let (code, body) = http_get(port, path).unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn log(d: &Path, name: &str) -> String {
    testkit::log_tail(&d.join(format!("{name}.log")))
}

struct Alertmanager {
    _process: Process,
    port: u16,
    amtool: PathBuf,
}

impl Alertmanager {
    fn start(d: &Path) -> Alertmanager {
        let hint = "install Debian's prometheus-alertmanager (scripts/install-deps.sh does)";
        let binary = find_binary("prometheus-alertmanager", hint).unwrap();
        let amtool = find_binary("amtool", hint).unwrap();
        let home = d.join("am");
        std::fs::create_dir_all(&home).unwrap();
        let cfg = home.join("am.yml");
        std::fs::write(
            &cfg,
            "route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n",
        )
        .unwrap();
        let port = free_port();
        let process = Process::spawn(
            "alertmanager",
            Command::new(binary)
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.path={}", home.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("alertmanager.log")).unwrap()),
        )
        .unwrap();
        wait_until("alertmanager ready", Duration::from_secs(30), || {
            matches!(http_get(port, "/-/ready"), Ok((200, _)))
        })
        .unwrap();
        Alertmanager {
            _process: process,
            port,
            amtool,
        }
    }

    /// Active alerts as `amtool alert query -o json` lists them.
    fn alerts(&self) -> Vec<Value> {
        let out = Command::new(&self.amtool)
            .args([
                "alert",
                "query",
                "-o",
                "json",
                &format!("--alertmanager.url=http://127.0.0.1:{}", self.port),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "amtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn samples(v: &Value) -> Vec<(f64, f64)> {
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_f64().unwrap(),
                p[1].as_str().unwrap().parse::<f64>().unwrap(),
            )
        })
        .collect()
}

#[test]
fn ruler_records_alerts_and_matches_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rules = d.join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    // A group only the rulers load: the querier must get it from them.
    let extra = d.join("ruler-only.yml");
    std::fs::write(
        &extra,
        "groups:\n  - name: ruler-only\n    rules:\n      - record: ruler:only\n        expr: vector(3)\n",
    )
    .unwrap();
    let home = d.join("prom");
    std::fs::create_dir_all(&home).unwrap();
    let rules_path = rules.display().to_string();
    let prom = Prometheus::start(
        &home,
        &home.join("data"),
        move |port| {
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    replica: p0\nrule_files:\n  - {rules_path}\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            )
        },
        &[],
    )
    .unwrap();
    let am = Alertmanager::start(d);
    let sidecar_grpc = free_port();
    let _sidecar = gauntlet(
        d,
        "sidecar",
        vec![
            "sidecar".into(),
            format!("--prometheus.url={}", prom.url()),
            format!("--tsdb.path={}", prom.data.display()),
            format!("--http-address=127.0.0.1:{}", free_port()),
            format!("--grpc-address=127.0.0.1:{sidecar_grpc}"),
        ],
    );
    let ruler_grpc = [free_port(), free_port()];
    let ruler_http = [free_port(), free_port()];
    let q = free_port();
    let mut args = vec![
        "query".to_string(),
        format!("--http-address=127.0.0.1:{q}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
        "--query.replica-label=replica".into(),
        "--endpoint.info-interval=1s".into(),
        format!("--endpoint=127.0.0.1:{sidecar_grpc}"),
    ];
    args.extend(
        ruler_grpc
            .iter()
            .map(|g| format!("--endpoint=127.0.0.1:{g}")),
    );
    let _querier = gauntlet(d, "query", args);
    let mut rulers = Vec::new();
    for (i, replica) in ["r0", "r1"].iter().enumerate() {
        rulers.push(gauntlet(
            d,
            &format!("rule{i}"),
            vec![
                "rule".into(),
                format!("--rule-file={}", rules.display()),
                format!("--rule-file={}", d.join("ruler-*.yml").display()),
                format!("--query=http://127.0.0.1:{q}"),
                format!("--alertmanagers.url=http://127.0.0.1:{}", am.port),
                "--alert.label-drop=replica".into(),
                format!("--label=replica=\"{replica}\""),
                format!("--data-dir={}", d.join(format!("rule{i}")).display()),
                format!("--http-address=127.0.0.1:{}", ruler_http[i]),
                format!("--grpc-address=127.0.0.1:{}", ruler_grpc[i]),
                "--resend-delay=2s".into(),
                format!("--alert.query-url=http://127.0.0.1:{q}"),
            ],
        ));
    }

    // A recorded series reaches the querier (deduplicated across the two rulers).
    wait_until(
        "recorded series through the querier",
        Duration::from_secs(40),
        || {
            let Ok((200, body)) = http_get(
                q,
                &format!("/api/v1/query?query={}", url_encode("eval:time[15s]")),
            ) else {
                return false;
            };
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            v["data"]["result"].as_array().is_some_and(|r| {
                r.len() == 1 && r[0]["values"].as_array().is_some_and(|s| s.len() >= 8)
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", log(d, "rule0"), log(d, "query")));

    // Each recorded sample equals its expression at its timestamp.
    let v = get(
        q,
        &format!("/api/v1/query?query={}", url_encode("eval:time[15s]")),
    );
    for (t, value) in samples(&v["data"]["result"][0]) {
        assert!((t - value).abs() < 1e-9, "eval:time at {t} is {value}");
    }
    let recorded_query = format!(
        "/api/v1/query?query={}",
        url_encode("job:up:count{replica=~\"r.*\"}[15s]")
    );
    wait_until("recorded job:up:count", Duration::from_secs(30), || {
        get(q, &recorded_query)["data"]["result"][0]["values"]
            .as_array()
            .is_some_and(|s| s.len() >= 5)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", log(d, "rule0")));
    let v = get(q, &recorded_query);
    let recorded = &v["data"]["result"];
    assert_eq!(recorded.as_array().unwrap().len(), 1, "{v}");
    let ours = samples(&recorded[0]);
    assert!(ours.len() >= 5);
    for (t, value) in &ours {
        let direct = get(
            q,
            &format!(
                "/api/v1/query?query={}&time={t}",
                url_encode("count by (job) (up{job=\"prometheus\"})")
            ),
        );
        let want: f64 = direct["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(*value, want, "job:up:count at {t}");
        // Prometheus recorded the same rule from the same file.
        let theirs = prom
            .get(&format!("/api/v1/query?query=job:up:count&time={t}"))
            .unwrap();
        let theirs: Value = serde_json::from_str(&theirs).unwrap();
        if let Some(s) = theirs["data"]["result"][0]["value"][1].as_str() {
            assert_eq!(
                s.parse::<f64>().unwrap(),
                *value,
                "Prometheus's job:up:count at {t}"
            );
        }
    }

    // The alert fires in Alertmanager once, without the replica label.
    wait_until("alert in Alertmanager", Duration::from_secs(60), || {
        am.alerts()
            .iter()
            .any(|a| a["labels"]["alertname"] == "Periodic")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", log(d, "rule0")));
    // Both rulers send it; Alertmanager holds one (the replica label is dropped).
    let periodic = || -> Vec<Value> {
        am.alerts()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == "Periodic")
            .collect()
    };
    let alerts = periodic();
    for _ in 0..6 {
        let now = periodic();
        assert!(now.len() <= 1, "{now:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let labels = &alerts[0]["labels"];
    assert_eq!(labels["severity"], "page");
    assert!(labels.get("replica").is_none(), "{labels}");
    assert!(alerts[0]["generatorURL"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr="));

    // The ruler's alert state agrees with Prometheus's (same rule, same wall clock).
    // The alert is active 20 s of every 40 s, so sample until both are inside one window
    // in the same state.
    let active_at = |v: &Value| -> Option<(String, String)> {
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "Periodic")
            .map(|a| {
                (
                    a["state"].as_str().unwrap_or("").to_string(),
                    a["activeAt"].as_str().unwrap_or("").to_string(),
                )
            })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (ours, theirs, o, t, querier_alerts) = loop {
        let ours = get(ruler_http[0], "/api/v1/alerts");
        let theirs: Value = serde_json::from_str(&prom.get("/api/v1/alerts").unwrap()).unwrap();
        let querier_alerts = get(q, "/api/v1/alerts");
        let (o, t) = (active_at(&ours), active_at(&theirs));
        let same_state = matches!((&o, &t), (Some((os, _)), Some((ts, _))) if os == ts);
        if (same_state && querier_alerts.to_string().contains("Periodic"))
            || Instant::now() > deadline
        {
            break (ours, theirs, o, t, querier_alerts);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if let (Some((os, oa)), Some((ts, ta))) = (&o, &t) {
        let secs = |s: &str| tsdb::time::parse_rfc3339(s).unwrap() as f64 / 1000.0;
        assert!(
            (secs(oa) - secs(ta)).abs() <= 1.0,
            "activeAt: ours {oa}, Prometheus {ta}"
        );
        assert_eq!(os, ts, "alert state");
    } else {
        panic!("alerts: ours {ours}, Prometheus {theirs}");
    }
    assert!(!o.unwrap().1.is_empty());
    // Annotations expand as Prometheus expands them (the replica is the only difference).
    let summary = |v: &Value| {
        v["data"]["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["labels"]["alertname"] == "Periodic"))
            .map(|a| {
                a["annotations"]["summary"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    };
    assert_eq!(summary(&ours), "of r0: 1.235M, 1m 30s, small");
    assert_eq!(summary(&theirs), "of p0: 1.235M, 1m 30s, small");

    // The querier gathers the rulers' rules and alerts.
    let rules = get(q, "/api/v1/rules");
    assert!(rules.to_string().contains("\"ruler-only\""), "{rules}");
    assert!(
        querier_alerts.to_string().contains("Periodic"),
        "{querier_alerts}"
    );
    let ruler_rules = get(ruler_http[0], "/api/v1/rules");
    assert_eq!(
        ruler_rules["data"]["groups"].as_array().unwrap().len(),
        3,
        "{ruler_rules}"
    );

    // And it resolves once the condition clears.
    wait_until(
        "alert resolved in Alertmanager",
        Duration::from_secs(60),
        || {
            !am.alerts()
                .iter()
                .any(|a| a["labels"]["alertname"] == "Periodic")
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", log(d, "rule0")));

    // The ruler's metrics carry Prometheus's and Thanos's names.
    let (_, metrics) = http_get(ruler_http[0], "/metrics").unwrap();
    for name in [
        "prometheus_rule_evaluations_total",
        "prometheus_rule_group_iterations_missed_total",
        "prometheus_rule_group_last_duration_seconds",
        "thanos_alert_sender_alerts_sent_total",
        "thanos_rule_loaded_rules",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}
