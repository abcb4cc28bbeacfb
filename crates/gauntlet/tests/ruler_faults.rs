//! The ruler under bad input and failure: rule files that do not check (at start, on
//! reload, in `tools rules-check`), a querier outage, and SIGKILL at random points with the
//! shipper on: no acknowledged sample lost, no block shipped twice, firing alerts restored.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use testkit::promapi::url_encode;
use testkit::{free_port, http_get, http_request, wait_until, Process};

fn gauntlet(d: &Path, name: &str, args: &[String]) -> Process {
    testkit::spawn_logged(env!("CARGO_BIN_EXE_gauntlet"), d, name, args).0
}

fn log(d: &Path, name: &str) -> String {
    testkit::log_tail(&d.join(format!("{name}.log")))
}

fn json(port: u16, path: &str) -> Option<Value> {
    match http_get(port, path) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

fn querier(d: &Path, endpoints: &[u16]) -> (Process, u16) {
    let q = free_port();
    let mut args = vec![
        "query".to_string(),
        format!("--http-address=127.0.0.1:{q}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
        "--endpoint.info-interval=1s".into(),
    ];
    args.extend(
        endpoints
            .iter()
            .map(|g| format!("--endpoint=127.0.0.1:{g}")),
    );
    let p = gauntlet(d, "query", &args);
    wait_until("querier ready", Duration::from_secs(20), || {
        matches!(http_get(q, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    (p, q)
}

const GOOD: &str = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - record: eval:time\n        expr: vector(time())\n      - alert: Always\n        expr: vector(1)\n        for: 2s\n";

fn rules_check(files: &[&Path]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gauntlet"));
    cmd.args(["tools", "rules-check"]);
    for f in files {
        cmd.arg(format!("--rules={}", f.display()));
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn bad_rule_files_are_refused_with_file_group_and_rule_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = d.join("good.yml");
    std::fs::write(&good, GOOD).unwrap();
    let (ok, out) = rules_check(&[&good]);
    assert!(ok && out.contains("SUCCESS: 2 rules found"), "{out}");
    let cases = [
        ("yaml.yml", "groups: [", "yaml.yml: "),
        (
            "unknown.yml",
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    colour: red\n",
            "unknown field `colour`",
        ),
        (
            "expr.yml",
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: sum(up\n",
            "group \"g\", rule 1, \"a\": could not parse expression",
        ),
        (
            "dup.yml",
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n  - record: a\n    expr: up\n",
            "group \"g\", rule 2, \"a\": duplicate rule",
        ),
        (
            "template.yml",
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ $labels.x '\n",
            "group \"g\", rule 1, \"A\": annotation \"s\": invalid template",
        ),
    ];
    for (name, text, want) in cases {
        let f = d.join(name);
        std::fs::write(&f, text).unwrap();
        let (ok, out) = rules_check(&[&good, &f]);
        assert!(!ok, "{name} passed: {out}");
        assert!(
            out.contains(want) && out.contains(name),
            "{name}: want {want:?} in\n{out}"
        );
        // The ruler refuses to start on it, with the same message.
        let o = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args([
                "rule",
                &format!("--rule-file={}", f.display()),
                "--query=127.0.0.1:1",
                "--label=replica=\"a\"",
                &format!("--data-dir={}", d.join("data").display()),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{name}: {err}");
    }
}

#[test]
fn reload_keeps_running_rules_on_bad_files_and_outages_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rules = d.join("rules.yml");
    std::fs::write(&rules, GOOD).unwrap();
    // The querier is down at first: evaluations fail, nothing crashes.
    let q = free_port();
    let http = free_port();
    let grpc = free_port();
    let args = vec![
        "rule".to_string(),
        format!("--rule-file={}", rules.display()),
        format!("--query=127.0.0.1:{q}"),
        "--label=replica=\"a\"".into(),
        format!("--data-dir={}", d.join("data").display()),
        format!("--http-address=127.0.0.1:{http}"),
        format!("--grpc-address=127.0.0.1:{grpc}"),
        "--for-grace-period=1s".into(),
    ];
    let mut ruler = gauntlet(d, "rule", &args);
    let failures = || -> f64 {
        let (_, m) = http_get(http, "/metrics").unwrap_or_default();
        m.lines()
            .filter(|l| l.starts_with("prometheus_rule_evaluation_failures_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    wait_until(
        "evaluation failures counted",
        Duration::from_secs(20),
        || failures() >= 2.0,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", log(d, "rule")));
    let rules_api = json(http, "/api/v1/rules").unwrap();
    assert_eq!(
        rules_api["data"]["groups"][0]["rules"][0]["health"], "err",
        "{rules_api}"
    );
    assert!(rules_api["data"]["groups"][0]["rules"][0]["lastError"]
        .as_str()
        .unwrap()
        .contains("no query API server answered"));
    ruler.check_running().unwrap();

    // The querier comes up on that port: evaluations resume.
    let _querier = {
        let mut a = vec![
            "query".to_string(),
            format!("--http-address=127.0.0.1:{q}"),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
            "--endpoint.info-interval=1s".into(),
        ];
        a.push(format!("--endpoint=127.0.0.1:{grpc}"));
        gauntlet(d, "query", &a)
    };
    wait_until("evaluations healthy", Duration::from_secs(20), || {
        json(http, "/api/v1/rules").is_some_and(|v| {
            v["data"]["groups"][0]["rules"]
                .as_array()
                .is_some_and(|r| r.iter().all(|r| r["health"] == "ok"))
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", log(d, "rule")));
    wait_until("alert firing", Duration::from_secs(20), || {
        json(http, "/api/v1/alerts").is_some_and(|v| v.to_string().contains("\"firing\""))
    })
    .unwrap();
    let active_at = || {
        json(http, "/api/v1/alerts").unwrap()["data"]["alerts"][0]["activeAt"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first_active = active_at();

    // A bad file on reload: refused, the old rules run on.
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  rules:\n  - record: x\n    expr: sum(\n",
    )
    .unwrap();
    let r = http_request(http, "POST", b"/-/reload", &[], b"").unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().contains("could not parse expression"),
        "{}",
        r.text()
    );
    let n = |v: &Value| {
        v["data"]["groups"][0]["rules"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(n(&json(http, "/api/v1/rules").unwrap()), 2);
    // SIGHUP with the bad file: the same.
    // SAFETY: signalling a child process we own.
    unsafe { libc::kill(ruler.pid() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    ruler.check_running().unwrap();
    assert_eq!(n(&json(http, "/api/v1/rules").unwrap()), 2);

    // A good file with one more rule: loaded; the unchanged alert keeps its state.
    std::fs::write(
        &rules,
        format!("{GOOD}      - record: eval:two\n        expr: vector(2)\n"),
    )
    .unwrap();
    let r = http_request(http, "POST", b"/-/reload", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(n(&json(http, "/api/v1/rules").unwrap()), 3);
    assert_eq!(
        active_at(),
        first_active,
        "alert state kept over the reload"
    );
    let (_, m) = http_get(http, "/metrics").unwrap();
    assert!(
        m.contains("thanos_rule_config_last_reload_successful 1"),
        "{m}"
    );
}

fn seconds(rfc3339: &str) -> i64 {
    tsdb::time::parse_rfc3339(rfc3339).unwrap() / 1000
}

/// Timestamps of `eval:time` the querier sees (from the ruler's StoreAPI).
fn observed(q: u16) -> Option<BTreeSet<i64>> {
    let v = json(
        q,
        &format!("/api/v1/query?query={}", url_encode("eval:time[1h]")),
    )?;
    let mut out = BTreeSet::new();
    for s in v["data"]["result"].as_array()? {
        for p in s["values"].as_array()? {
            out.insert((p[0].as_f64()? * 1000.0).round() as i64);
        }
    }
    Some(out)
}

#[test]
fn sigkill_loop_loses_nothing_ships_once_and_restores_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rules = d.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    interval: 200ms\n    rules:\n      - record: eval:time\n        expr: vector(time())\n      - alert: Always\n        expr: vector(1)\n        for: 1s\n",
    )
    .unwrap();
    let bucket_dir = d.join("bucket");
    std::fs::create_dir_all(&bucket_dir).unwrap();
    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket_dir.display()
    );
    let (http, grpc) = (free_port(), free_port());
    let (_q, q) = querier(d, &[grpc]);
    let args = vec![
        "rule".to_string(),
        format!("--rule-file={}", rules.display()),
        format!("--query=127.0.0.1:{q}"),
        "--label=replica=\"a\"".into(),
        format!("--data-dir={}", d.join("data").display()),
        format!("--http-address=127.0.0.1:{http}"),
        format!("--grpc-address=127.0.0.1:{grpc}"),
        format!("--objstore.config={objstore}"),
        "--tsdb.block-duration=4s".into(),
        "--tsdb.cut-interval=500ms".into(),
        "--for-grace-period=500ms".into(),
    ];
    let mut acknowledged: BTreeSet<i64> = BTreeSet::new();
    let mut first_active: Option<String> = None;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let mut ruler = gauntlet(d, "rule", &args);
        // Back up and answering, with what it had before.
        wait_until("ruler data visible", Duration::from_secs(30), || {
            observed(q).is_some_and(|o| !o.is_empty() && acknowledged.is_subset(&o))
        })
        .unwrap_or_else(|e| {
            let o = observed(q).unwrap_or_default();
            let lost: Vec<_> = acknowledged.difference(&o).take(5).collect();
            panic!("round {round}: {e}; lost {lost:?}\n{}", log(d, "rule"))
        });
        // The alert fires again with the start it had before the kill.
        wait_until("alert firing", Duration::from_secs(10), || {
            json(http, "/api/v1/alerts").is_some_and(|v| {
                v["data"]["alerts"][0]["state"] == "firing"
                    && first_active.as_ref().is_none_or(|a| {
                        // ALERTS_FOR_STATE keeps whole seconds, as Prometheus's does.
                        v["data"]["alerts"][0]["activeAt"]
                            .as_str()
                            .is_some_and(|b| seconds(b) == seconds(a))
                    })
            })
        })
        .unwrap_or_else(|e| {
            panic!(
                "round {round}: {e}: {:?} vs {first_active:?}\n{}",
                json(http, "/api/v1/alerts"),
                log(d, "rule")
            )
        });
        if first_active.is_none() {
            first_active = json(http, "/api/v1/alerts").unwrap()["data"]["alerts"][0]["activeAt"]
                .as_str()
                .map(String::from);
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(200 + seed % 1800));
        if let Some(o) = observed(q) {
            acknowledged.extend(o);
        }
        ruler.kill();
    }
    // Shipped blocks: each once, never overlapping.
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for id in testkit::block_dirs(&bucket_dir) {
        let meta: Value =
            serde_json::from_slice(&std::fs::read(bucket_dir.join(&id).join("meta.json")).unwrap())
                .unwrap();
        assert_eq!(meta["thanos"]["source"], "ruler");
        assert_eq!(meta["thanos"]["labels"]["replica"], "a");
        ranges.push((
            meta["minTime"].as_i64().unwrap(),
            meta["maxTime"].as_i64().unwrap(),
        ));
    }
    ranges.sort();
    assert!(ranges.len() >= 3, "blocks shipped: {ranges:?}");
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping shipped blocks: {ranges:?}");
    }
    assert!(acknowledged.len() > 50, "{}", acknowledged.len());
}
