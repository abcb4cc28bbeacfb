//! The HTTP API's input contract against Prometheus 2.42: every request of
//! `api-contract.txt`, plus generated ones (long URLs, large bodies, deep queries), sent to
//! Prometheus and to `gauntlet query` (over `gauntlet store`) on the same blocks, must get the
//! same status, content type, errorType, error text and data.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::promapi::{differ, from_prometheus};
use testkit::prometheus::{create_blocks_from_openmetrics, Prometheus};
use testkit::{free_port, http_get, http_request, wait_until, HttpAnswer};

const START: i64 = 1_699_999_200_000;
const HOUR: i64 = 3_600_000;

/// One request of the table.
struct Case {
    method: String,
    target: Vec<u8>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Compare status and errorType only (PromQL grammar error wording).
    loose: bool,
    line: String,
}

/// Percent-encodes what may not stand in a request target.
fn encode_target(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in s.as_bytes() {
        if b.is_ascii_graphic() && !b"\"{}|\\^`<>[]".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

fn table() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api-contract.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (loose, rest) = match line.strip_prefix('~') {
            Some(r) => (true, r),
            None => (false, line),
        };
        let (head, body) = match rest.split_once(" || ") {
            Some((h, b)) => (h, b.as_bytes().to_vec()),
            None => (rest, Vec::new()),
        };
        let mut parts = head.split(" | ");
        let request_line = parts.next().unwrap();
        let (method, target) = request_line.split_once(' ').unwrap();
        let headers = parts
            .map(|h| {
                let (k, v) = h.split_once(':').unwrap();
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        out.push(Case {
            method: method.to_string(),
            target: encode_target(target),
            headers,
            body,
            loose,
            line: line.to_string(),
        });
    }
    out
}

/// Requests built in code: long URLs, large bodies, deeply nested queries.
fn generated() -> Vec<Case> {
    let case = |method: &str, target: String, body: Vec<u8>, headers: Vec<(&str, &str)>| Case {
        method: method.into(),
        target: target.into_bytes(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body,
        loose: false,
        line: String::new(),
    };
    let form = vec![("Content-Type", "application/x-www-form-urlencoded")];
    let long_regex = format!("up%7Ba%3D~%22{}%22%7D", "a".repeat(100_000));
    let plus_chain = vec!["1"; 2000].join("%2B");
    let or_chain = vec!["memory_bytes"; 1500].join("%20or%20");
    let abs_nest = format!("{}memory_bytes{}", "abs(".repeat(5000), ")".repeat(5000));
    let sum_nest = format!("{}memory_bytes{}", "sum(".repeat(2000), ")".repeat(2000));
    let mut sub_nest = "memory_bytes".to_string();
    for _ in 0..300 {
        sub_nest = format!("last_over_time(({sub_nest})[5m:1m])");
    }
    let sub_nest = sub_nest.replace('[', "%5B").replace(']', "%5D");
    vec![
        case(
            "GET",
            format!("/api/v1/query?time=1700003600&query={long_regex}"),
            vec![],
            vec![],
        ),
        case(
            "GET",
            format!("/api/v1/series?match[]={long_regex}").replace("[]", "%5B%5D"),
            vec![],
            vec![],
        ),
        case(
            "GET",
            format!(
                "/api/v1/query?time=1700003600&query=up&pad={}",
                "x".repeat(900_000)
            ),
            vec![],
            vec![],
        ),
        case(
            "GET",
            format!(
                "/api/v1/query?time=1700003600&query=up&pad={}",
                "x".repeat(1_100_000)
            ),
            vec![],
            vec![],
        ),
        case(
            "POST",
            "/api/v1/query?time=1700003600".into(),
            format!("query=1&pad={}", "x".repeat(11 << 20)).into_bytes(),
            form.clone(),
        ),
        case(
            "POST",
            "/api/v1/series?match%5B%5D=up".into(),
            format!("pad={}", "x".repeat(11 << 20)).into_bytes(),
            form.clone(),
        ),
        case(
            "POST",
            "/api/v1/query".into(),
            format!("time=1700003600&query={plus_chain}").into_bytes(),
            form.clone(),
        ),
        case(
            "POST",
            "/api/v1/query".into(),
            format!("time=1700003600&query={or_chain}").into_bytes(),
            form.clone(),
        ),
        case(
            "POST",
            "/api/v1/query".into(),
            format!("time=1700003600&query={abs_nest}").into_bytes(),
            form.clone(),
        ),
        case(
            "POST",
            "/api/v1/query".into(),
            format!("time=1700003600&query={sum_nest}").into_bytes(),
            form.clone(),
        ),
        case(
            "POST",
            "/api/v1/query".into(),
            format!("time=1700003600&query={sub_nest}").into_bytes(),
            form,
        ),
    ]
}

fn send(port: u16, c: &Case) -> HttpAnswer {
    let headers: Vec<(&str, &str)> = c
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    http_request(port, &c.method, &c.target, &headers, &c.body)
        .unwrap_or_else(|e| panic!("{}: {e:#}", c.line))
}

fn media(a: &HttpAnswer) -> String {
    a.header("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .to_string()
}

/// Why our answer differs from Prometheus's, if it does.
fn difference(c: &Case, theirs: &HttpAnswer, ours: &HttpAnswer) -> Option<String> {
    if theirs.status != ours.status {
        return Some(format!(
            "status {} vs {}: {:.300} vs {:.300}",
            theirs.status,
            ours.status,
            theirs.text(),
            ours.text()
        ));
    }
    let (tm, om) = (media(theirs), media(ours));
    if (tm == "application/json") != (om == "application/json") {
        return Some(format!("content type {tm:?} vs {om:?}"));
    }
    if tm != "application/json" {
        if theirs.status == 405 && theirs.header("allow") != ours.header("allow") {
            return Some(format!(
                "Allow {:?} vs {:?}",
                theirs.header("allow"),
                ours.header("allow")
            ));
        }
        if theirs.status != 204 && theirs.body != ours.body {
            return Some(format!("body {:?} vs {:?}", theirs.text(), ours.text()));
        }
        return None;
    }
    let t: serde_json::Value = serde_json::from_slice(&theirs.body).ok()?;
    let o: serde_json::Value = match serde_json::from_slice(&ours.body) {
        Ok(v) => v,
        Err(e) => return Some(format!("our body is not JSON ({e}): {:.300}", ours.text())),
    };
    for key in ["status", "errorType"] {
        if t[key] != o[key] {
            return Some(format!(
                "{key} {} vs {}: {} vs {}",
                t[key], o[key], t["error"], o["error"]
            ));
        }
    }
    if !c.loose && t["error"] != o["error"] {
        return Some(format!("error {} vs {}", t["error"], o["error"]));
    }
    if t["status"] == "success" {
        let is_query = c.target.starts_with(b"/api/v1/query");
        let same = if is_query {
            differ(
                &from_prometheus(&theirs.text()),
                &from_prometheus(&ours.text()),
                false,
            )
        } else {
            (t["data"] != o["data"]).then(|| format!("{:.300} vs {:.300}", t["data"], o["data"]))
        };
        if let Some(d) = same {
            return Some(format!("data: {d}"));
        }
        if let Some(d) = stats_difference(&t["data"]["stats"], &o["data"]["stats"]) {
            return Some(format!("stats: {d}"));
        }
    }
    None
}

/// The `stats` of a query answer: the same keys, the same `totalQueryableSamples`, and a
/// `peakSamples` of samples that were read (our engine streams, so it may hold fewer).
fn stats_difference(theirs: &serde_json::Value, ours: &serde_json::Value) -> Option<String> {
    let keys = |v: &serde_json::Value, at: &str| -> Vec<String> {
        v.pointer(at)
            .and_then(|o| o.as_object())
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    for at in ["", "/timings", "/samples"] {
        if keys(theirs, at) != keys(ours, at) {
            return Some(format!("keys at {at:?}: {theirs} vs {ours}"));
        }
    }
    if theirs.is_null() {
        return None;
    }
    for (name, v) in ours["timings"].as_object()? {
        if !v.as_f64().is_some_and(|s| s >= 0.0) {
            return Some(format!("timing {name} is {v}"));
        }
    }
    let (t, o) = (&theirs["samples"], &ours["samples"]);
    if t["totalQueryableSamples"] != o["totalQueryableSamples"] {
        return Some(format!("totalQueryableSamples {t} vs {o}"));
    }
    let peak = o["peakSamples"].as_u64()?;
    if (peak == 0) != (t["peakSamples"].as_u64() == Some(0)) {
        return Some(format!("peakSamples {t} vs {o}"));
    }
    None
}

fn gauntlet(args: &[String]) -> testkit::Process {
    testkit::spawn_quiet(env!("CARGO_BIN_EXE_gauntlet"), args)
}

#[test]
fn api_input_contract_equals_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let data = testkit::dataset::Dataset {
        start_ms: START,
        end_ms: START + 4 * HOUR,
        interval_ms: 15_000,
        instances: 2,
        seed: 7,
        gaps: vec![],
    };
    let om = dir.path().join("data.om");
    std::fs::write(&om, data.openmetrics()).unwrap();
    let blocks = dir.path().join("blocks");
    let made = create_blocks_from_openmetrics(&om, &blocks).unwrap();
    assert!(!made.is_empty());
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    for b in &made {
        let dst = prom_dir.join(b.file_name().unwrap());
        std::fs::create_dir_all(dst.join("chunks")).unwrap();
        for f in ["index", "meta.json", "tombstones"] {
            let _ = std::fs::copy(b.join(f), dst.join(f));
        }
        for c in std::fs::read_dir(b.join("chunks")).unwrap() {
            let c = c.unwrap();
            std::fs::copy(c.path(), dst.join("chunks").join(c.file_name())).unwrap();
        }
    }
    let prom = Prometheus::start(
        dir.path(),
        &prom_dir,
        |_| "global:\n  scrape_interval: 1h\n".into(),
        &[],
    )
    .unwrap();
    let prom_port = prom.port;

    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.path().join("bucket").display()
    );
    let st = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "upload-blocks", &objstore])
        .arg(format!("--path={}", blocks.display()))
        .arg("--label=replica=\"a\"")
        .status()
        .unwrap();
    assert!(st.success());
    let (s_http, s_grpc, q_http) = (free_port(), free_port(), free_port());
    let _store = gauntlet(&[
        "store".into(),
        objstore.clone(),
        format!("--data-dir={}", dir.path().join("store").display()),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{s_grpc}"),
        "--query.replica-label=replica".into(),
        // Prometheus 2.42 is the peer: answer as it does.
        "--query.promql-compat=v2".into(),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    // Until the querier knows the store's time range (its first Info may come before the
    // store loaded its blocks), PromQL would leave the store out.
    wait_until(
        "query sees the store's data",
        Duration::from_secs(60),
        || {
            http_get(
                q_http,
                "/api/v1/query?query=count(memory_bytes)&time=1700003600",
            )
            .is_ok_and(|(c, b)| c == 200 && b.contains("\"value\""))
        },
    )
    .unwrap();

    let cases: Vec<Case> = table().into_iter().chain(generated()).collect();
    assert!(cases.len() >= 200, "{} cases", cases.len());
    let (mut mismatches, mut loose) = (Vec::new(), 0);
    for c in &cases {
        let theirs = send(prom_port, c);
        let ours = send(q_http, c);
        loose += usize::from(c.loose);
        if let Some(d) = difference(c, &theirs, &ours) {
            let name = if c.line.is_empty() {
                format!("{} {:.120}", c.method, String::from_utf8_lossy(&c.target))
            } else {
                c.line.clone()
            };
            mismatches.push(format!("{name}\n    {d}"));
        }
    }
    println!(
        "{} requests compared with Prometheus 2.42 ({loose} on status and errorType only), {} mismatches",
        cases.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} requests answer unlike Prometheus:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}
