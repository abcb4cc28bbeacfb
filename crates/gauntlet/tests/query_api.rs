//! `gauntlet store` + `gauntlet query` end to end over two HA replicas' blocks: series,
//! labels and label values with and without deduplication, Prometheus's error JSON, partial
//! responses with an endpoint down, and the stores view.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use testkit::{free_port, http_get, wait_until, Process};

fn gauntlet(args: &[String]) -> Process {
    testkit::spawn_quiet(env!("CARGO_BIN_EXE_gauntlet"), args)
}

fn replica_blocks(dir: &Path, objstore: &str) {
    replica_blocks_into(dir, |_| objstore.to_string());
}

/// Two HA replicas' blocks (`replica="a"` and `"b"`), each with its own gap, uploaded to the
/// bucket `objstore_for(replica)` names.
fn replica_blocks_into(dir: &Path, objstore_for: impl Fn(&str) -> String) {
    let end = 1_700_006_400_000i64;
    for (replica, gap) in [
        ("a", (end - 3 * 3_600_000, end - 2 * 3_600_000)),
        ("b", (end - 4 * 3_600_000, end - 3_600_000 * 7 / 2)),
    ] {
        let d = testkit::dataset::Dataset {
            start_ms: end - 5 * 3_600_000,
            end_ms: end,
            interval_ms: 30_000,
            instances: 2,
            seed: 11,
            gaps: vec![gap],
        };
        let om = dir.join(format!("{replica}.om"));
        std::fs::write(&om, d.openmetrics()).unwrap();
        let out = dir.join(replica);
        testkit::prometheus::promtool(&[
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            om.to_str().unwrap(),
            out.to_str().unwrap(),
        ])
        .unwrap();
        let st = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args([
                "tools",
                "bucket",
                "upload-blocks",
                &objstore_for(replica),
                &format!("--path={}", out.display()),
            ])
            .arg(format!("--label=replica=\"{replica}\""))
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// Each replica's blocks in a bucket of its own, with a ready store gateway per bucket:
/// the processes and their gRPC ports.
fn stores_per_replica(dir: &Path) -> (Vec<Process>, Vec<u16>) {
    let objstore = |r: &str| {
        format!(
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
            dir.join(format!("bucket-{r}")).display()
        )
    };
    replica_blocks_into(dir, objstore);
    let mut stores = Vec::new();
    let mut grpc = Vec::new();
    for r in ["a", "b"] {
        let (h, g) = (free_port(), free_port());
        stores.push(gauntlet(&[
            "store".into(),
            objstore(r),
            format!("--data-dir={}", dir.join(format!("data-{r}")).display()),
            format!("--http-address=127.0.0.1:{h}"),
            format!("--grpc-address=127.0.0.1:{g}"),
        ]));
        wait_until("store ready", Duration::from_secs(30), || {
            matches!(http_get(h, "/-/ready"), Ok((200, _)))
        })
        .unwrap();
        grpc.push(g);
    }
    (stores, grpc)
}

fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (code, body) = http_get(port, path).unwrap();
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

#[test]
fn series_labels_dedup_and_partial_responses() {
    let dir = tempfile::tempdir().unwrap();
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.path().join("bucket").display()
    );
    replica_blocks(dir.path(), &objstore);

    let (s_http, s_grpc) = (free_port(), free_port());
    let _store = gauntlet(&[
        "store".into(),
        objstore.clone(),
        format!("--data-dir={}", dir.path().join("data").display()),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    wait_until("store ready", Duration::from_secs(30), || {
        matches!(http_get(s_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();

    let dead = free_port();
    let (q_http, q_grpc) = (free_port(), free_port());
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{s_grpc}"),
        format!("--store=127.0.0.1:{dead}"),
        "--query.replica-label=replica".into(),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{q_grpc}"),
    ]);
    wait_until("query ready", Duration::from_secs(30), || {
        matches!(http_get(q_http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    wait_until("store endpoint healthy", Duration::from_secs(30), || {
        get_json(q_http, "/api/v1/stores").1["data"]["store"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .unwrap();

    let (code, v) = get_json(q_http, "/api/v1/series?match%5B%5D=memory_bytes");
    assert_eq!(code, 200, "{v}");
    let deduped = v["data"].as_array().unwrap();
    assert_eq!(deduped.len(), 4, "{v}");
    assert!(deduped.iter().all(|s| s.get("replica").is_none()));
    let (_, v) = get_json(
        q_http,
        "/api/v1/series?match%5B%5D=memory_bytes&dedup=false",
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 8);

    let (_, v) = get_json(q_http, "/api/v1/labels");
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"instance") && !names.contains(&"replica"),
        "{names:?}"
    );
    let (_, v) = get_json(q_http, "/api/v1/label/job/values?match%5B%5D=memory_bytes");
    assert_eq!(v["data"], serde_json::json!(["api", "db"]));
    let (_, v) = get_json(q_http, "/api/v1/label/replica/values?dedup=false");
    assert_eq!(v["data"], serde_json::json!(["a", "b"]));

    // Errors: Prometheus's JSON and status codes.
    let (code, v) = get_json(q_http, "/api/v1/series");
    assert_eq!((code, v["errorType"].as_str()), (400, Some("bad_data")));
    let (code, v) = get_json(q_http, "/api/v1/series?match%5B%5D=up%7B&start=x");
    assert_eq!(code, 400, "{v}");
    let (code, v) = get_json(q_http, "/api/v1/series?match%5B%5D=up&start=yesterday");
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("\"start\""));

    // PromQL over the store gateway. Both replicas scraped the same samples; each has a
    // gap. Deduplicated, every series has all 600 samples of the 5 hours (599 in the
    // left-open 3.x window, which leaves out the first); without deduplication each replica
    // shows its own gap.
    let end_s = 1_700_006_400;
    let (code, v) = get_json(
        q_http,
        &format!("/api/v1/query?query=count_over_time(memory_bytes%5B5h%5D)&time={end_s}"),
    );
    assert_eq!(code, 200, "{v}");
    let res = v["data"]["result"].as_array().unwrap();
    assert_eq!(res.len(), 4, "{v}");
    for r in res {
        assert_eq!(r["value"][1], "599", "{v}");
        assert!(r["metric"].get("replica").is_none());
    }
    let (_, v) = get_json(
        q_http,
        &format!(
            "/api/v1/query?query=count_over_time(memory_bytes%5B5h%5D)&time={end_s}&dedup=false"
        ),
    );
    let mut counts: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}={}", r["metric"]["replica"], r["value"][1]))
        .collect();
    counts.sort();
    counts.dedup();
    assert_eq!(counts, [r#""a"="479""#, r#""b"="539""#], "{v}");
    // A range query across both gaps has a point at every step once deduplicated.
    let (code, v) = get_json(
        q_http,
        &format!(
            "/api/v1/query_range?query=sum(memory_bytes)&start={}&end={end_s}&step=60",
            end_s - 4 * 3600
        ),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        241,
        "{v}"
    );
    // Bad requests: Prometheus's codes and error types.
    for (path, code, kind) in [
        ("/api/v1/query?query=sum(", 400, "bad_data"),
        ("/api/v1/query?query=up&time=never", 400, "bad_data"),
        (
            "/api/v1/query_range?query=up&start=10&end=0&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10&step=0",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up%5B5m%5D&start=0&end=10&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query?query=up&max_source_resolution=x",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query?query=memory_bytes%2Bon()%20memory_bytes&time=1700006400",
            422,
            "execution",
        ),
    ] {
        let (c, v) = get_json(q_http, path);
        assert_eq!(
            (c, v["errorType"].as_str()),
            (code, Some(kind)),
            "{path}: {v}"
        );
    }

    // The dead endpoint is never healthy, so it is pruned rather than failing queries; a
    // store that fails mid-request is covered by the proxy tests.
    let (_, v) = get_json(q_http, "/api/v1/stores");
    let unknown = v["data"]["unknown"].as_array().unwrap();
    assert!(unknown[0]["lastError"].as_str().is_some());

    // Queriers stack: a second querier over the first one's gRPC.
    let q2 = free_port();
    let _query2 = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{q_grpc}"),
        "--query.replica-label=replica".into(),
        format!("--http-address=127.0.0.1:{q2}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    wait_until("stacked querier answers", Duration::from_secs(30), || {
        http_get(q2, "/api/v1/series?match%5B%5D=memory_bytes").is_ok_and(|(c, b)| {
            c == 200
                && serde_json::from_str::<Value>(&b)
                    .is_ok_and(|v| v["data"].as_array().is_some_and(|a| a.len() == 4))
        })
    })
    .unwrap();
}

#[test]
fn partial_response_when_a_store_dies() {
    let dir = tempfile::tempdir().unwrap();
    let (mut stores, grpc) = stores_per_replica(dir.path());
    let q_http = free_port();
    // Health checks are frozen after the first one, so the dead store is still asked.
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{}", grpc[0]),
        format!("--endpoint=127.0.0.1:{}", grpc[1]),
        "--endpoint.info-interval=1h".into(),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    // The same with a store response timeout: a hung store is dropped from the answer.
    let q_quick = free_port();
    let _query_quick = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{}", grpc[0]),
        format!("--endpoint=127.0.0.1:{}", grpc[1]),
        "--endpoint.info-interval=1h".into(),
        "--store.response-timeout=1s".into(),
        format!("--http-address=127.0.0.1:{q_quick}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    let q = "/api/v1/query?query=count%20by%20(replica)%20(memory_bytes)&time=1700006000";
    for port in [q_http, q_quick] {
        wait_until("both stores answer", Duration::from_secs(30), || {
            http_get(port, q)
                .is_ok_and(|(c, b)| c == 200 && b.contains("\"a\"") && b.contains("\"b\""))
        })
        .unwrap();
    }

    // A hung store (SIGSTOP) hits the query timeout instead of hanging the request.
    let b_pid = stores[1].pid().to_string();
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &b_pid])
            .status()
            .unwrap()
            .success())
    };
    signal("-STOP");
    let t0 = std::time::Instant::now();
    let (code, v) = get_json(q_http, &format!("{q}&timeout=2s"));
    let took = t0.elapsed();
    let t0 = std::time::Instant::now();
    let (quick_code, quick) = get_json(q_quick, &format!("{q}&timeout=30s"));
    let quick_took = t0.elapsed();
    signal("-CONT");
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["errorType"], "timeout", "{v}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(quick_code, 200, "{quick}");
    assert_eq!(
        quick["data"]["result"][0]["metric"]["replica"], "a",
        "{quick}"
    );
    assert_eq!(quick["data"]["result"].as_array().map(Vec::len), Some(1));
    assert!(
        quick["warnings"].to_string().contains("no response within"),
        "{quick}"
    );
    assert!(quick_took < Duration::from_secs(10), "took {quick_took:?}");

    drop(stores.pop()); // kills store b
    let (code, v) = get_json(q_http, &format!("{q}&partial_response=true"));
    assert_eq!(code, 200, "{v}");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["metric"]["replica"], "a");
    assert!(
        v["warnings"].as_array().is_some_and(|w| !w.is_empty()),
        "a warning names the failed store: {v}"
    );
    let (code, v) = get_json(q_http, &format!("{q}&partial_response=false"));
    assert_ne!(code, 200, "{v}");
    assert_eq!(v["status"], "error", "{v}");
}

#[test]
fn corrupt_blocks_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    replica_blocks(dir.path(), &objstore);
    // Truncate the index of every block of replica "b".
    let mut corrupted = 0;
    for e in std::fs::read_dir(&bucket).unwrap() {
        let block = e.unwrap().path();
        let meta = std::fs::read_to_string(block.join("meta.json")).unwrap_or_default();
        let meta: Value = serde_json::from_str(&meta).unwrap_or(Value::Null);
        if meta["thanos"]["labels"]["replica"] == "b" {
            let index = block.join("index");
            let bytes = std::fs::read(&index).unwrap();
            std::fs::write(&index, &bytes[..bytes.len() / 3]).unwrap();
            corrupted += 1;
        }
    }
    assert!(corrupted > 0);
    let (s_http, s_grpc, q_http) = (free_port(), free_port(), free_port());
    let _store = gauntlet(&[
        "store".into(),
        objstore,
        format!("--data-dir={}", dir.path().join("data").display()),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    wait_until(
        "store ready despite corrupt blocks",
        Duration::from_secs(30),
        || matches!(http_get(s_http, "/-/ready"), Ok((200, _))),
    )
    .unwrap();
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{s_grpc}"),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    let q = "/api/v1/query?query=count%20by%20(replica)%20(memory_bytes)&time=1700006000";
    wait_until(
        "replica a's blocks are served",
        Duration::from_secs(30),
        || http_get(q_http, q).is_ok_and(|(c, b)| c == 200 && b.contains("\"a\"")),
    )
    .unwrap();
    let (_, v) = get_json(q_http, q);
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "only replica a is served: {v}");
    // The missing blocks are not silent: answers over their time range say so.
    let warnings = v["warnings"]
        .as_array()
        .expect("warnings for the missing blocks");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains("could not be loaded")),
        "{v}"
    );
    let (_, v) = get_json(q_http, "/api/v1/labels");
    assert!(
        v["warnings"].as_array().is_some_and(|w| !w.is_empty()),
        "{v}"
    );
    // A range before any block has nothing missing and no warning.
    let (_, v) = get_json(q_http, "/api/v1/query?query=count(memory_bytes)&time=1000");
    assert!(v.get("warnings").is_none(), "{v}");
}

#[test]
fn endpoints_from_sd_files_follow_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (_stores, grpc) = stores_per_replica(dir.path());
    let sd = dir.path().join("stores.yml");
    std::fs::write(&sd, format!("- targets: ['127.0.0.1:{}']\n", grpc[0])).unwrap();
    let q_http = free_port();
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint.sd-files={}", sd.display()),
        "--endpoint.info-interval=1s".into(),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    let q = "/api/v1/query?query=count%20by%20(replica)%20(memory_bytes)&time=1700006000";
    let replicas = || -> Vec<String> {
        let Ok((200, body)) = http_get(q_http, q) else {
            return vec![];
        };
        let v: Value = serde_json::from_str(&body).unwrap();
        let mut r: Vec<String> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["metric"]["replica"].as_str().unwrap().to_string())
            .collect();
        r.sort();
        r
    };
    let wait_for = |want: &[&str]| {
        wait_until(
            &format!("replicas {want:?}"),
            Duration::from_secs(30),
            || replicas() == want,
        )
        .unwrap_or_else(|e| panic!("{e}: now {:?}", replicas()));
    };
    wait_for(&["a"]);
    std::fs::write(
        &sd,
        format!(
            "- targets: ['127.0.0.1:{}']\n- targets: ['127.0.0.1:{}']\n",
            grpc[0], grpc[1]
        ),
    )
    .unwrap();
    wait_for(&["a", "b"]);
    std::fs::write(
        &sd,
        format!(r#"[{{"targets": ["127.0.0.1:{}"]}}]"#, grpc[1]),
    )
    .unwrap();
    wait_for(&["b"]);
    let (_, stores) = get_json(q_http, "/api/v1/stores");
    assert!(
        !stores.to_string().contains(&format!(":{}", grpc[0])),
        "{stores}"
    );
}
