//! `gauntlet sidecar` beside a real Prometheus 2.42, behind `gauntlet query`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use testkit::prometheus::Prometheus;
use testkit::{free_port, http_get, wait_until, Process};

fn gauntlet(args: &[String]) -> Process {
    testkit::spawn_quiet(env!("CARGO_BIN_EXE_gauntlet"), args)
}

#[test]
fn sidecar_serves_prometheus_and_reports_when_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut prom = Prometheus::start(
        dir.path(),
        &dir.path().join("data"),
        |p| {
            format!(
                "global:\n  scrape_interval: 1s\n  external_labels:\n    replica: a\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{p}']\n"
            )
        },
        &[],
    )
    .unwrap();
    let (s_http, s_grpc) = (free_port(), free_port());
    let _sidecar = gauntlet(&[
        "sidecar".into(),
        format!("--prometheus.url=http://127.0.0.1:{}", prom.port),
        "--prometheus.get_config_interval=1s".into(),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    wait_until("sidecar ready", Duration::from_secs(30), || {
        matches!(http_get(s_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    let q = free_port();
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{s_grpc}"),
        format!("--http-address=127.0.0.1:{q}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    let series_up = || -> Option<Value> {
        let (code, body) = http_get(q, "/api/v1/series?match%5B%5D=up").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200).then_some(v)
    };
    wait_until(
        "up visible through sidecar and querier",
        Duration::from_secs(60),
        || series_up().is_some_and(|v| v["data"].as_array().is_some_and(|a| !a.is_empty())),
    )
    .unwrap();
    let v = series_up().unwrap();
    assert_eq!(v["data"][0]["replica"], "a", "{v}");
    assert_eq!(v["data"][0]["job"], "prometheus");

    // Prometheus goes away: the sidecar stays up but reports not ready.
    prom.stop();
    wait_until("sidecar not ready", Duration::from_secs(30), || {
        matches!(http_get(s_http, "/-/ready"), Ok((503, _)))
    })
    .unwrap();
    assert_eq!(http_get(s_http, "/-/healthy").unwrap().0, 200);

    // Misconfiguration: no Prometheus there at all gives a clear, fast failure.
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args([
            "sidecar",
            "--prometheus.url=http://127.0.0.1:1",
            "--prometheus.ready_timeout=1s",
        ])
        .arg(format!("--http-address=127.0.0.1:{}", free_port()))
        .arg(format!("--grpc-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ready"));
}

#[test]
fn sidecar_ships_blocks_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _prom = Prometheus::start(
        dir.path(),
        &data,
        |p| {
            format!(
                "global:\n  scrape_interval: 1s\n  external_labels:\n    replica: a\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{p}']\n"
            )
        },
        &["--storage.tsdb.min-block-duration=30s", "--storage.tsdb.max-block-duration=30s"],
    )
    .unwrap();
    let bucket_dir = dir.path().join("bucket");
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket_dir.display()
    );
    let start_sidecar = || {
        gauntlet(&[
            "sidecar".into(),
            format!("--prometheus.url=http://127.0.0.1:{}", _prom.port),
            format!("--tsdb.path={}", data.display()),
            objstore.clone(),
            "--prometheus.get_config_interval=1s".into(),
            format!("--http-address=127.0.0.1:{}", free_port()),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
        ])
    };
    let shipped = || testkit::block_dirs(&bucket_dir);
    let mut sidecar = start_sidecar();
    wait_until("a block shipped", Duration::from_secs(240), || {
        !shipped().is_empty()
    })
    .unwrap();
    // Killed without warning, then restarted: nothing is uploaded twice.
    let first = shipped();
    let _ = Command::new("kill")
        .args(["-9", &sidecar.pid().to_string()])
        .status();
    sidecar.kill();
    let _again = start_sidecar();
    std::thread::sleep(Duration::from_secs(3));
    let after = shipped();
    assert!(
        first.iter().all(|b| after.contains(b)),
        "{first:?} {after:?}"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("thanos.shipper.json")).unwrap())
            .unwrap();
    assert_eq!(state["version"], 1);
    for b in &first {
        assert!(
            state["uploaded"].as_array().unwrap().iter().any(|u| u == b),
            "{state}"
        );
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(bucket_dir.join(b).join("meta.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["thanos"]["source"], "sidecar");
        assert_eq!(meta["thanos"]["labels"]["replica"], "a");
        // Exactly the local block's files: same index bytes.
        assert_eq!(
            std::fs::read(bucket_dir.join(b).join("index")).unwrap(),
            std::fs::read(data.join(b).join("index")).unwrap()
        );
    }
}
