//! `gauntlet sidecar` beside a real Prometheus 2.42, behind `gauntlet query`.

use std::process::{Command, Stdio};
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

    // Prometheus goes away: the sidecar stays up but reports not ready, and queries through
    // it fail clearly (a warning under partial response, an error without).
    let port = prom.port;
    prom.stop();
    wait_until("sidecar not ready", Duration::from_secs(30), || {
        matches!(http_get(s_http, "/-/ready"), Ok((503, _)))
    })
    .unwrap();
    assert_eq!(http_get(s_http, "/-/healthy").unwrap().0, 200);
    let (code, body) = http_get(q, "/api/v1/query?query=up&partial_response=true").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("warnings"), "{body}");
    let (code, body) = http_get(q, "/api/v1/query?query=up&partial_response=false").unwrap();
    assert_ne!(code, 200, "{body}");
    assert!(body.contains("\"status\":\"error\""), "{body}");

    // Prometheus returns on the same port and data: the sidecar recovers.
    let prom = Prometheus::start_on(
        port,
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
    wait_until("sidecar ready again", Duration::from_secs(60), || {
        matches!(http_get(s_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    wait_until(
        "queries through the sidecar work again",
        Duration::from_secs(60),
        || {
            http_get(q, "/api/v1/query?query=up&partial_response=false").is_ok_and(|(c, b)| {
                c == 200 && b.contains("\"replica\":\"a\"") && !b.contains("warnings")
            })
        },
    )
    .unwrap();

    // Prometheus freezes (SIGSTOP: its port still accepts connections, nothing answers).
    // Within seconds the sidecar reports not ready, and queries name the endpoint they could
    // not ask instead of answering with nothing.
    let pid = prom.pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let frozen = std::time::Instant::now();
    wait_until(
        "sidecar not ready while Prometheus is frozen",
        Duration::from_secs(20),
        || matches!(http_get(s_http, "/-/ready"), Ok((503, _))),
    )
    .unwrap();
    let sidecar_addr = format!("127.0.0.1:{s_grpc}");
    wait_until(
        "queries warn about the frozen sidecar",
        Duration::from_secs(60),
        || {
            http_get(q, "/api/v1/query?query=up&partial_response=true")
                .is_ok_and(|(c, b)| c == 200 && b.contains("warnings") && b.contains(&sidecar_addr))
        },
    )
    .unwrap();
    println!("frozen Prometheus reported after {:?}", frozen.elapsed());
    let (code, body) = http_get(q, "/api/v1/query?query=up&partial_response=false").unwrap();
    assert_ne!(code, 200, "{body}");
    assert!(body.contains(&sidecar_addr), "{body}");
    let (code, body) = http_get(q, "/api/v1/series?match%5B%5D=up").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&sidecar_addr), "{body}");
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    wait_until(
        "sidecar ready after Prometheus thaws",
        Duration::from_secs(30),
        || matches!(http_get(s_http, "/-/ready"), Ok((200, _))),
    )
    .unwrap();

    // No Prometheus there at all: as Thanos, the sidecar keeps retrying (healthy, not
    // ready, the cause logged) while it only serves queries; with uploads on, it gives up
    // after --prometheus.ready_timeout with an error naming Prometheus.
    let (waiting_http, log) = (free_port(), dir.path().join("waiting.log"));
    let mut waiting = Process::spawn(
        "sidecar",
        Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args([
                "sidecar",
                "--prometheus.url=http://127.0.0.1:1",
                "--prometheus.ready_timeout=1s",
            ])
            .arg(format!("--http-address=127.0.0.1:{waiting_http}"))
            .arg(format!("--grpc-address=127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    wait_until("waiting sidecar healthy", Duration::from_secs(10), || {
        matches!(http_get(waiting_http, "/-/healthy"), Ok((200, _)))
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    waiting.check_running().unwrap();
    assert_eq!(http_get(waiting_http, "/-/ready").unwrap().0, 503);
    assert!(testkit::log_tail(&log).contains("127.0.0.1:1"));
    waiting.kill();
    std::fs::create_dir_all(dir.path().join("never-used")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args([
            "sidecar",
            "--prometheus.url=http://127.0.0.1:1",
            "--prometheus.ready_timeout=1s",
        ])
        .arg(format!(
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
            dir.path().join("never-used").display()
        ))
        .arg(format!("--http-address=127.0.0.1:{}", free_port()))
        .arg(format!("--grpc-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not ready") && err.contains("127.0.0.1:1"),
        "{err}"
    );
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

/// Samples of the one series of a matrix result, or None if it is not exactly one series.
fn matrix_samples(v: &Value) -> Option<Vec<(i64, String)>> {
    let r = v["data"]["result"].as_array()?;
    if r.len() != 1 {
        return None;
    }
    r[0]["values"]
        .as_array()?
        .iter()
        .map(|p| {
            Some((
                (p[0].as_f64()? * 1000.0).round() as i64,
                p[1].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn two_replicas_through_sidecars_garage_and_store_dedup_to_one() {
    let dir = tempfile::tempdir().unwrap();
    let garage = testkit::garage::Garage::start("replicas").unwrap();
    let objstore = format!("--objstore.config={}", garage.objstore_yaml());
    // Both replicas scrape the same target (replica a's own /metrics) every second and cut
    // blocks every 30 s.
    let config = |target: u16, replica: &str| {
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels:\n    replica: {replica}\nscrape_configs:\n  - job_name: prom\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        )
    };
    let blocks = [
        "--storage.tsdb.min-block-duration=30s",
        "--storage.tsdb.max-block-duration=30s",
    ];
    let da = dir.path().join("a");
    std::fs::create_dir_all(&da).unwrap();
    let prom_a = Prometheus::start(&da, &da.join("data"), |p| config(p, "a"), &blocks).unwrap();
    let db = dir.path().join("b");
    std::fs::create_dir_all(&db).unwrap();
    let prom_b =
        Prometheus::start(&db, &db.join("data"), |_| config(prom_a.port, "b"), &blocks).unwrap();
    let mut sidecar_grpc = Vec::new();
    let mut sidecars = Vec::new();
    for (prom, d) in [(&prom_a, &da), (&prom_b, &db)] {
        let g = free_port();
        sidecars.push(gauntlet(&[
            "sidecar".into(),
            format!("--prometheus.url=http://127.0.0.1:{}", prom.port),
            format!("--tsdb.path={}", d.join("data").display()),
            objstore.clone(),
            format!("--http-address=127.0.0.1:{}", free_port()),
            format!("--grpc-address=127.0.0.1:{g}"),
        ]));
        sidecar_grpc.push(g);
    }
    let (s_http, s_grpc) = (free_port(), free_port());
    let _store = gauntlet(&[
        "store".into(),
        objstore.clone(),
        format!("--data-dir={}", dir.path().join("store").display()),
        "--sync-block-duration=2s".into(),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    let q = free_port();
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{}", sidecar_grpc[0]),
        format!("--endpoint=127.0.0.1:{}", sidecar_grpc[1]),
        format!("--endpoint=127.0.0.1:{s_grpc}"),
        "--query.replica-label=replica".into(),
        format!("--http-address=127.0.0.1:{q}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    // Wait until the store gateway serves a block of each replica.
    wait_until(
        "blocks of both replicas in the store",
        Duration::from_secs(300),
        || {
            let path = "/api/v1/series?match%5B%5D=up&dedup=false";
            let Ok((200, body)) = http_get(s_http, "/metrics") else {
                return false;
            };
            let loaded = body
                .lines()
                .find(|l| l.starts_with("thanos_bucket_store_blocks_loaded"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or(0.0);
            loaded >= 2.0
                && http_get(q, path)
                    .is_ok_and(|(c, b)| c == 200 && b.contains("\"b\"") && b.contains("\"a\""))
        },
    )
    .unwrap();

    // All data so far: shipped blocks (store) and the heads (sidecars) together.
    // A few seconds back: a scrape still in flight at "now" would land in Prometheus after
    // the querier read and before the direct read.
    let now = seconds_ago(5);
    let path = format!("/api/v1/query?query=up%7Bjob%3D%22prom%22%7D%5B10m%5D&time={now}");
    let (code, body) = http_get(q, &path).unwrap();
    assert_eq!(code, 200, "{body}");
    let deduped = matrix_samples(&serde_json::from_str(&body).unwrap()).expect("one series");
    let own = |prom: &Prometheus| {
        matrix_samples(&serde_json::from_str(&prom.get_any(&path)).unwrap()).unwrap_or_default()
    };
    let (a, b) = (own(&prom_a), own(&prom_b));
    let close = deduped.windows(2).position(|w| w[1].0 - w[0].0 < 500);
    if let Some(i) = close {
        let from = |s: &(i64, String)| match (a.contains(s), b.contains(s)) {
            (true, true) => "a+b",
            (true, false) => "a",
            (false, true) => "b",
            (false, false) => "neither",
        };
        let around: Vec<String> = deduped[i.saturating_sub(3)..(i + 5).min(deduped.len())]
            .iter()
            .map(|s| format!("{}@{} ({})", s.1, s.0, from(s)))
            .collect();
        let near = |r: &[(i64, String)]| -> Vec<i64> {
            let t = deduped[i].0;
            r.iter()
                .map(|s| s.0)
                .filter(|x| (x - t).abs() < 6000)
                .collect()
        };
        panic!(
            "replicas interleaved: {around:?}; a near: {:?}; b near: {:?}",
            near(&a),
            near(&b)
        );
    }
    let first_difference = |r: &[(i64, String)]| {
        let i = deduped.iter().zip(r).position(|(x, y)| x != y);
        i.map(|i| format!("at {i}: {:?} vs {:?}", deduped[i], r[i]))
    };
    assert!(
        deduped == a || deduped == b,
        "deduplicated ({} samples) equals one replica's own data (a: {}, {:?}; b: {}, {:?})",
        deduped.len(),
        a.len(),
        first_difference(&a),
        b.len(),
        first_difference(&b)
    );
    // Without deduplication both replicas show.
    let (_, body) = http_get(q, &format!("{path}&dedup=false")).unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(2), "{v}");
}

/// Wall-clock time `s` seconds ago as an API timestamp (seconds with milliseconds).
fn seconds_ago(s: u128) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - s * 1000;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Every block in the bucket with a meta.json is complete: each file its meta lists exists
/// with the listed size. Returns the complete blocks' ULIDs and the partial ones.
fn bucket_state(objstore_yaml: &str) -> (Vec<String>, Vec<String>) {
    use bucket::ObjectStoreExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = bucket::config::bucket_from_yaml(objstore_yaml).unwrap();
        let sync = bucket::block::fetch_metas(b.as_ref(), 8).await.unwrap();
        assert!(
            sync.corrupted.is_empty(),
            "corrupted metas: {:?}",
            sync.corrupted
        );
        let mut complete = Vec::new();
        for m in &sync.metas {
            let files = &m.thanos.as_ref().expect("thanos section").files;
            assert!(!files.is_empty(), "{} lists its files", m.ulid);
            for f in files {
                if f.rel_path == "meta.json" {
                    continue;
                }
                let path = bucket::ObjectPath::from(format!("{}/{}", m.ulid, f.rel_path));
                let head = b.head(&path).await.unwrap_or_else(|e| {
                    panic!(
                        "{} has meta.json but {} is missing: {e}",
                        m.ulid, f.rel_path
                    )
                });
                assert_eq!(head.size as i64, f.size_bytes, "{}/{}", m.ulid, f.rel_path);
            }
            complete.push(m.ulid.to_string());
        }
        (
            complete,
            sync.partial.iter().map(|u| u.to_string()).collect(),
        )
    })
}

#[test]
fn sidecar_killed_during_uploads_ships_every_block_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let garage = testkit::garage::Garage::start("sigkill").unwrap();
    // A Prometheus for the external labels; the blocks to ship are prepared separately.
    let p = dir.path().join("prom");
    std::fs::create_dir_all(&p).unwrap();
    let prom = Prometheus::start(
        &p,
        &p.join("data"),
        |_| "global:\n  scrape_interval: 1h\n  external_labels:\n    replica: a\n".into(),
        &[],
    )
    .unwrap();
    let tsdb = dir.path().join("tsdb");
    let start = 1_699_999_200_000i64;
    let data = testkit::dataset::Dataset {
        start_ms: start,
        end_ms: start + 16 * 3_600_000,
        interval_ms: 15_000,
        instances: 12,
        seed: 7,
        gaps: vec![],
    };
    let om = dir.path().join("data.om");
    std::fs::write(&om, data.openmetrics()).unwrap();
    let local = testkit::prometheus::create_blocks_from_openmetrics(&om, &tsdb).unwrap();
    let mut local: Vec<String> = local
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    local.sort();
    assert!(local.len() >= 8, "{local:?}");

    let start_sidecar = |yaml: &str| {
        gauntlet(&[
            "sidecar".into(),
            format!("--prometheus.url=http://127.0.0.1:{}", prom.port),
            format!("--tsdb.path={}", tsdb.display()),
            format!("--objstore.config={yaml}"),
            format!("--http-address=127.0.0.1:{}", free_port()),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
        ])
    };
    let shipper_state = tsdb.join("thanos.shipper.json");
    // How long one uninterrupted run takes to ship everything, from process start: kills
    // are spread over that window so they land during uploads.
    let probe = garage.objstore_yaml_with_prefix("probe");
    let t0 = std::time::Instant::now();
    let s = start_sidecar(&probe);
    wait_until(
        "probe run ships everything",
        Duration::from_secs(120),
        || bucket_state(&probe).0.len() == local.len(),
    )
    .unwrap();
    let window_ms = t0.elapsed().as_millis() as u64;
    drop(s);

    // Rounds from an empty bucket (a fresh prefix) and no shipper state: kill at
    // pseudo-random points until the blocks are all shipped, checking after each kill that
    // any block a reader can see (one with meta.json) is complete; then an uninterrupted run
    // must leave each block exactly once. Until 20 kills have landed mid-shipping.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let (mut kills, mut interrupting, mut partial_seen, mut round) = (0, 0, 0, 0);
    let mut yaml = String::new();
    while interrupting < 20 {
        round += 1;
        yaml = garage.objstore_yaml_with_prefix(&format!("round{round}"));
        let _ = std::fs::remove_file(&shipper_state);
        let mut before = 0;
        loop {
            let mut s = start_sidecar(&yaml);
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_millis(seed % (window_ms + 1)));
            let _ = Command::new("kill")
                .args(["-9", &s.pid().to_string()])
                .status();
            s.kill();
            kills += 1;
            let (complete, partial) = bucket_state(&yaml);
            partial_seen += partial.len();
            assert!(complete.iter().all(|c| local.contains(c)), "{complete:?}");
            if complete.len() == local.len() {
                break;
            }
            // Killed while shipping: this run got somewhere, but not to the end.
            if complete.len() > before || !partial.is_empty() {
                interrupting += 1;
            }
            before = complete.len();
        }
        let _s = start_sidecar(&yaml);
        // The shipper records a block in its state file after the block's meta.json is
        // in the bucket: wait for both.
        let recorded = || -> usize {
            std::fs::read_to_string(&shipper_state)
                .ok()
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .and_then(|v| v["uploaded"].as_array().map(Vec::len))
                .unwrap_or(0)
        };
        wait_until("every block shipped", Duration::from_secs(120), || {
            let (complete, _) = bucket_state(&yaml);
            complete.len() == local.len() && recorded() == local.len()
        })
        .unwrap();
        let (mut complete, _) = bucket_state(&yaml);
        complete.sort();
        assert_eq!(complete, local, "each block exactly once");
        let state: Value =
            serde_json::from_str(&std::fs::read_to_string(&shipper_state).unwrap()).unwrap();
        let mut shipped: Vec<String> = state["uploaded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect();
        shipped.sort();
        assert_eq!(shipped, local);
    }
    println!(
        "{round} rounds, {kills} kills ({interrupting} mid-shipping), \
         {partial_seen} partial uploads seen between kills; full run {window_ms} ms"
    );

    // The store gateway sees exactly the complete blocks.
    let (s_http, s_grpc) = (free_port(), free_port());
    let _store = gauntlet(&[
        "store".into(),
        format!("--objstore.config={yaml}"),
        format!("--data-dir={}", dir.path().join("store").display()),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    wait_until("store loads every block", Duration::from_secs(60), || {
        http_get(s_http, "/metrics").is_ok_and(|(_, b)| {
            b.lines()
                .any(|l| l == format!("thanos_bucket_store_blocks_loaded {}", local.len()))
        })
    })
    .unwrap();
}

#[test]
fn reloader_applies_config_and_rules_to_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rules = d.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("a.yml"),
        "groups:\n- name: g\n  rules:\n  - record: first_rule\n    expr: vector(1)\n",
    )
    .unwrap();
    let config = |cluster: &str| {
        format!(
            "global:\n  external_labels:\n    cluster: {cluster}\nrule_files:\n  - {}/*.yml\n",
            rules.display()
        )
    };
    let template = d.join("prometheus.yml.tmpl");
    std::fs::write(&template, config("$(RELOADER_TEST_CLUSTER)")).unwrap();
    let prom = Prometheus::start(
        d,
        &d.join("data"),
        |_| config("initial"),
        &["--web.enable-lifecycle"],
    )
    .unwrap();
    let http = free_port();
    let log = d.join("sidecar.log");
    let _sidecar = Process::spawn(
        "sidecar",
        Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .env("RELOADER_TEST_CLUSTER", "eu-1")
            .args([
                "sidecar".to_string(),
                format!("--prometheus.url={}", prom.url()),
                format!("--tsdb.path={}", d.join("data").display()),
                format!("--reloader.config-file={}", template.display()),
                format!(
                    "--reloader.config-envsubst-file={}",
                    d.join("prometheus.yml").display()
                ),
                format!("--reloader.rule-dir={}", rules.display()),
                "--reloader.retry-interval=1s".into(),
                format!("--http-address=127.0.0.1:{http}"),
                format!("--grpc-address=127.0.0.1:{}", free_port()),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let r = wait_until(what, Duration::from_secs(30), check);
        assert!(r.is_ok(), "{what}\n{}", testkit::log_tail(&log));
    };
    wait("config expanded and reloaded", &|| {
        prom.get_any("/api/v1/status/config")
            .contains("cluster: eu-1")
    });
    // The sidecar reads the new external labels on its next config check; the reload is
    // what matters here.
    std::fs::write(
        rules.join("b.yml"),
        "groups:\n- name: h\n  rules:\n  - record: second_rule\n    expr: vector(2)\n",
    )
    .unwrap();
    wait("new rule file loaded", &|| {
        prom.get_any("/api/v1/rules").contains("second_rule")
    });
    // A broken rule: Prometheus refuses the reload and keeps its rules; the reloader retries
    // and counts the failures, and recovers once the file is fixed.
    std::fs::write(
        rules.join("b.yml"),
        "groups:\n- name: h\n  rules:\n  - record: x\n    expr: (\n",
    )
    .unwrap();
    wait("failed reloads counted", &|| {
        http_get(http, "/metrics").is_ok_and(|(_, m)| {
            m.lines()
                .any(|l| l.starts_with("reloader_reloads_failed_total ") && !l.ends_with(" 0"))
        })
    });
    assert!(prom.get_any("/api/v1/rules").contains("second_rule"));
    std::fs::write(
        rules.join("b.yml"),
        "groups:\n- name: h\n  rules:\n  - record: third_rule\n    expr: vector(3)\n",
    )
    .unwrap();
    wait("fixed rule file loaded", &|| {
        prom.get_any("/api/v1/rules").contains("third_rule")
    });
}
