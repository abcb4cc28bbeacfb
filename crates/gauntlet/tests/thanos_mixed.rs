//! Mixed deployments with a real Go Thanos (`THANOS_BIN`, built by hand from Thanos's
//! repository; skipped with a printed reason when unset): one Garage bucket and two
//! Prometheus 2.42 HA replicas, each with a Thanos sidecar and ours beside it, a store
//! gateway of each kind over the bucket, and queriers of both kinds over every mix:
//! - a Thanos querier over our store and sidecars, over a mixed HA pair (one Thanos
//!   sidecar, one ours), and stacked on our querier, answers as a Thanos querier over
//!   Thanos's store and sidecars;
//! - our querier over Thanos's store and sidecars, over the mixed pair, and stacked on a
//!   Thanos querier, answers as our querier over our own.
//!
//! Like is compared with like (Thanos's querier runs the 3.x engine, ours 2.42's), at
//! evaluation times off the sample grid, over the read-path corpus: instant and range
//! queries, series, labels and label values. `/api/v1/stores` lists every endpoint healthy
//! with the labels and time ranges that the other kind lists.
//!
//! The rules, alerts, targets, metadata and exemplars APIs are checked the same way over two
//! Prometheus replicas with rules and an exemplar-bearing target: each querier kind over
//! Thanos's sidecars, over ours, and stacked on the other kind answers alike, and (no PromQL
//! being involved) the two kinds answer alike, timings aside.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use testkit::garage::Garage;
use testkit::promapi::{differ, from_prometheus, secs, url_encode};
use testkit::prometheus::{create_blocks_from_openmetrics, Prometheus};
use testkit::{free_port, http_get, wait_until, Process};

/// 2023-11-14T22:00:00Z, on a 2h block boundary.
const START: i64 = 1_699_999_200_000;
const HOUR: i64 = 3_600_000;
/// Hours [0, 4) live in the bucket, [4, 8) in the Prometheus replicas.
const SPLIT: i64 = START + 4 * HOUR;
const END: i64 = START + 8 * HOUR;

fn gauntlet_bin() -> String {
    env!("CARGO_BIN_EXE_gauntlet").to_string()
}

/// Each replica's blocks, generated with its own gap, split into those for the bucket and
/// those for its Prometheus.
fn replica_blocks(dir: &Path, replica: &str, gap: (i64, i64)) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let data = testkit::dataset::Dataset {
        start_ms: START,
        end_ms: END,
        interval_ms: 15_000,
        instances: 3,
        seed: 42,
        gaps: vec![gap],
    };
    let om = dir.join(format!("{replica}.om"));
    std::fs::write(&om, data.openmetrics()).unwrap();
    let out = dir.join(format!("blocks-{replica}"));
    let blocks = create_blocks_from_openmetrics(&om, &out).unwrap();
    let mut old = Vec::new();
    let mut new = Vec::new();
    for b in blocks {
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(b.join("meta.json")).unwrap()).unwrap();
        if meta["maxTime"].as_i64().unwrap() <= SPLIT {
            old.push(b);
        } else {
            new.push(b);
        }
    }
    assert!(!old.is_empty() && !new.is_empty(), "{old:?} {new:?}");
    (old, new)
}

fn upload(objstore: &str, dir: &Path, blocks: &[PathBuf], replica: &str) {
    let staging = dir.join(format!("upload-{replica}"));
    for b in blocks {
        testkit::copy_dir(b, &staging.join(b.file_name().unwrap()), &[]);
    }
    let out = std::process::Command::new(gauntlet_bin())
        .args(["tools", "bucket", "upload-blocks", objstore])
        .arg(format!("--path={}", staging.display()))
        .arg(format!("--label=replica=\"{replica}\""))
        .arg("--label=cluster=\"eu\"")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn prometheus(dir: &Path, replica: &str, blocks: &[PathBuf]) -> Prometheus {
    let home = dir.join(format!("prom-{replica}"));
    let data = home.join("data");
    for b in blocks {
        testkit::copy_dir(b, &data.join(b.file_name().unwrap()), &[]);
    }
    let replica = replica.to_string();
    Prometheus::start(
        &home,
        &data,
        move |_| {
            format!(
                "global:\n  scrape_interval: 1h\n  external_labels:\n    cluster: eu\n    replica: {replica}\n"
            )
        },
        &[],
    )
    .unwrap()
}

/// A component with its HTTP and gRPC ports; `ready` is waited for on `/-/ready`.
struct Component {
    _process: Process,
    http: u16,
    grpc: u16,
}

fn component(bin: &str, args: Vec<String>, what: &str) -> Component {
    let (http, grpc) = (free_port(), free_port());
    let mut all = args;
    all.push(format!("--http-address=127.0.0.1:{http}"));
    all.push(format!("--grpc-address=127.0.0.1:{grpc}"));
    let process = testkit::spawn_quiet(bin, &all);
    wait_until(&format!("{what} ready"), Duration::from_secs(120), || {
        matches!(http_get(http, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
    Component {
        _process: process,
        http,
        grpc,
    }
}

fn sidecar(bin: &str, prom: &Prometheus, what: &str) -> Component {
    component(
        bin,
        vec![
            "sidecar".into(),
            format!("--prometheus.url=http://127.0.0.1:{}", prom.port),
        ],
        what,
    )
}

fn store(bin: &str, objstore: &str, dir: &Path, what: &str) -> Component {
    component(
        bin,
        vec![
            "store".into(),
            objstore.into(),
            format!("--data-dir={}", dir.join(what).display()),
        ],
        what,
    )
}

/// A querier over `endpoints` (gRPC ports), ready once it sees data from both halves.
fn querier(bin: &str, endpoints: &[u16], what: &str) -> Component {
    let mut args = vec!["query".to_string(), "--query.replica-label=replica".into()];
    args.extend(
        endpoints
            .iter()
            .map(|p| format!("--endpoint=127.0.0.1:{p}")),
    );
    let q = component(bin, args, what);
    let expected = endpoints.len();
    wait_until(
        &format!("{what} sees {expected} healthy endpoints"),
        Duration::from_secs(120),
        || healthy_endpoints(q.http) == expected,
    )
    .unwrap();
    q
}

fn get_json(port: u16, path: &str) -> Value {
    let (_, body) = http_get(port, path).unwrap();
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn healthy_endpoints(port: u16) -> usize {
    let v = get_json(port, "/api/v1/stores");
    v["data"]
        .as_object()
        .map(|groups| {
            groups
                .values()
                .flat_map(|g| g.as_array().cloned().unwrap_or_default())
                .filter(|e| e["lastError"].is_null())
                .count()
        })
        .unwrap_or(0)
}

/// What `/api/v1/stores` says about each endpoint, without names and check times:
/// (component type, label sets, min time, max time), sorted.
fn store_listing(port: u16) -> Vec<String> {
    let v = get_json(port, "/api/v1/stores");
    let mut out = Vec::new();
    for (kind, list) in v["data"].as_object().cloned().unwrap_or_default() {
        for e in list.as_array().cloned().unwrap_or_default() {
            assert!(
                e["lastError"].is_null(),
                "unhealthy endpoint on :{port}: {e}"
            );
            out.push(format!(
                "{kind} labels={} min={} max={}",
                e["labelSets"], e["minTime"], e["maxTime"]
            ));
        }
    }
    out.sort();
    out
}

fn corpus() -> Vec<String> {
    testkit::promapi::read_path_corpus(&secs(SPLIT + 7_000))
}

/// Every call compared: the corpus as instant queries (in the bucket's half, across the
/// split, in the sidecars' half) and as a range query over both halves, plus metadata calls.
fn paths() -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let times = [
        START + 2 * HOUR + 7_321,
        SPLIT + 1_234,
        SPLIT + 3 * HOUR + 7_777,
    ];
    for q in corpus() {
        let ordered = q.starts_with("sort(") || q.starts_with("sort_desc(");
        let e = url_encode(&q);
        for t in times {
            out.push((format!("/api/v1/query?query={e}&time={}", secs(t)), ordered));
        }
        out.push((
            format!(
                "/api/v1/query_range?query={e}&start={}&end={}&step=97",
                secs(START + HOUR + 13),
                secs(END - HOUR)
            ),
            true,
        ));
    }
    let range = format!("start={}&end={}", secs(START), secs(END));
    out.extend(testkit::promapi::metadata_paths(&range));
    out.push((format!("/api/v1/label/replica/values?{range}"), true));
    out
}

/// Answers of the querier on `port` for `paths`, normalised for comparison.
fn answers(port: u16, paths: &[(String, bool)]) -> Vec<(u16, String)> {
    paths
        .iter()
        .map(|(p, _)| http_get(port, p).unwrap())
        .collect()
}

fn sorted_data(body: &str) -> Value {
    let mut v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if let Some(a) = v["data"].as_array_mut() {
        a.sort_by_key(|x| x.to_string());
    }
    v["data"].take()
}

/// Compares `ours` (the mix under test) with `reference`; returns how many calls matched.
fn compare(name: &str, reference: &[(u16, String)], mix: u16, paths: &[(String, bool)]) -> usize {
    let got = answers(mix, paths);
    let mismatches = mismatches(reference, &got, paths);
    println!(
        "{name}: {} calls compared, {} matched",
        paths.len(),
        paths.len() - mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{name}: {} mismatches, first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    paths.len()
}

/// The calls of `paths` whose answers differ, each with the difference.
fn mismatches(
    reference: &[(u16, String)],
    got: &[(u16, String)],
    paths: &[(String, bool)],
) -> Vec<String> {
    let mut mismatches = Vec::new();
    for (((path, ordered), (c1, b1)), (c2, b2)) in paths.iter().zip(reference).zip(got) {
        let d = if c1 != c2 {
            Some(format!("status {c1} vs {c2}: {b1} / {b2}"))
        } else if path.starts_with("/api/v1/query") {
            differ(&from_prometheus(b1), &from_prometheus(b2), *ordered)
        } else {
            let (a, b) = (sorted_data(b1), sorted_data(b2));
            (a != b).then(|| format!("{a} vs {b}"))
        };
        if let Some(d) = d {
            mismatches.push(format!("{path}: {d}"));
        }
    }
    mismatches
}

#[test]
fn thanos_and_gauntlet_components_mix_in_one_deployment() {
    let Ok(thanos) = std::env::var("THANOS_BIN") else {
        println!("skipped: THANOS_BIN is unset (build Thanos by hand and point it at the binary)");
        return;
    };
    let ours = gauntlet_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let (old_a, new_a) = replica_blocks(d, "a", (START + 100 * 60_000, START + 110 * 60_000));
    let (old_b, new_b) = replica_blocks(d, "b", (SPLIT + 50 * 60_000, SPLIT + 70 * 60_000));
    let garage = Garage::start("mixed").unwrap();
    let objstore_file = d.join("objstore.yml");
    std::fs::write(&objstore_file, garage.objstore_yaml()).unwrap();
    let objstore = format!("--objstore.config-file={}", objstore_file.display());
    upload(&objstore, d, &old_a, "a");
    upload(&objstore, d, &old_b, "b");
    let prom_a = prometheus(d, "a", &new_a);
    let prom_b = prometheus(d, "b", &new_b);

    let t_store = store(&thanos, &objstore, d, "thanos-store");
    let g_store = store(&ours, &objstore, d, "gauntlet-store");
    let t_side_a = sidecar(&thanos, &prom_a, "thanos sidecar a");
    let t_side_b = sidecar(&thanos, &prom_b, "thanos sidecar b");
    let g_side_a = sidecar(&ours, &prom_a, "gauntlet sidecar a");
    let g_side_b = sidecar(&ours, &prom_b, "gauntlet sidecar b");

    let all_thanos = [t_store.grpc, t_side_a.grpc, t_side_b.grpc];
    let all_ours = [g_store.grpc, g_side_a.grpc, g_side_b.grpc];
    let t_ref = querier(&thanos, &all_thanos, "thanos query over thanos");
    let g_ref = querier(&ours, &all_ours, "gauntlet query over gauntlet");

    let paths = paths();
    let t_expected = answers(t_ref.http, &paths);
    let g_expected = answers(g_ref.http, &paths);
    // The reference answers must say something: most corpus queries return data.
    let with_data = t_expected
        .iter()
        .filter(|(c, b)| *c == 200 && b.contains("\"metric\""))
        .count();
    assert!(
        with_data > paths.len() / 2,
        "{with_data} of {}",
        paths.len()
    );

    // Thanos's querier (Prometheus 3.9's engine) against ours (PromQL 3.x, the default),
    // each over its own components: reported, not asserted. Each querier is held to its
    // own reference below; across kinds, range functions over the deduplicated HA pair
    // differ where the replicas switch (see the session note).
    let cross = mismatches(&t_expected, &g_expected, &paths);
    let mut queries: Vec<String> = cross
        .iter()
        .filter_map(|m| {
            m.split("query=")
                .nth(1)?
                .split('&')
                .next()
                .map(str::to_string)
        })
        .collect();
    queries.sort();
    queries.dedup();
    println!(
        "gauntlet query (v3) against thanos query: {} calls compared, {} differ, in {} queries: {}",
        paths.len(),
        cross.len(),
        queries.len(),
        queries.join(" ")
    );
    for m in cross.iter().take(5) {
        println!("  {}", &m[..m.len().min(400)]);
    }
    let mut total = 0;
    let mixes: [(&str, &str, Vec<u16>, bool); 6] = [
        (
            "thanos query over gauntlet store + sidecars",
            &thanos,
            all_ours.to_vec(),
            true,
        ),
        (
            "thanos query over thanos store + mixed HA pair",
            &thanos,
            vec![t_store.grpc, t_side_a.grpc, g_side_b.grpc],
            true,
        ),
        (
            "thanos query stacked on gauntlet query",
            &thanos,
            vec![g_ref.grpc],
            true,
        ),
        (
            "gauntlet query over thanos store + sidecars",
            &ours,
            all_thanos.to_vec(),
            false,
        ),
        (
            "gauntlet query over gauntlet store + mixed HA pair",
            &ours,
            vec![g_store.grpc, g_side_a.grpc, t_side_b.grpc],
            false,
        ),
        (
            "gauntlet query stacked on thanos query",
            &ours,
            vec![t_ref.grpc],
            false,
        ),
    ];
    for (name, bin, endpoints, thanos_engine) in mixes {
        let q = querier(bin, &endpoints, name);
        let (reference, ref_port) = if thanos_engine {
            (&t_expected, t_ref.http)
        } else {
            (&g_expected, g_ref.http)
        };
        // Non-stacked mixes list the same endpoints as their reference, kind for kind.
        if endpoints.len() == 3 {
            assert_eq!(
                store_listing(q.http),
                store_listing(ref_port),
                "{name}: /api/v1/stores"
            );
        }
        total += compare(name, reference, q.http, &paths);
    }
    println!("{total} calls matched across the mixes");
}

/// What stays equal between two answers of the rules, alerts, targets, metadata and
/// exemplars APIs taken moments apart: timings and evaluation times are dropped.
fn without_timings(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in [
                    "evaluationTime",
                    "lastEvaluation",
                    "activeAt",
                    "lastScrape",
                    "lastScrapeDuration",
                    "timestamp",
                ] {
                    m.remove(k);
                }
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

#[test]
fn rules_targets_metadata_and_exemplars_cross_kinds() {
    let Ok(thanos) = std::env::var("THANOS_BIN") else {
        println!("skipped: THANOS_BIN is unset (build Thanos by hand and point it at the binary)");
        return;
    };
    let ours = gauntlet_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = testkit::prometheus::exemplar_target();
    let rules = d.join("rules.yml");
    std::fs::write(&rules, testkit::prometheus::RULES_YAML).unwrap();
    let proms = [
        testkit::prometheus::start_with_rules(d, "a", &rules, target).unwrap(),
        testkit::prometheus::start_with_rules(d, "b", &rules, target).unwrap(),
    ];
    for p in &proms {
        wait_until(
            "rules evaluated and exemplar scraped",
            Duration::from_secs(30),
            || {
                p.get_any("/api/v1/alerts").contains("firing")
                    && p.get_any(
                        "/api/v1/query_exemplars?query=test_requests_total&start=0&end=9999999999",
                    )
                    .contains("abc123")
            },
        )
        .unwrap();
    }
    let t_sides: Vec<Component> = proms
        .iter()
        .map(|p| sidecar(&thanos, p, "thanos sidecar"))
        .collect();
    let g_sides: Vec<Component> = proms
        .iter()
        .map(|p| sidecar(&ours, p, "gauntlet sidecar"))
        .collect();
    let grpc = |c: &[Component]| c.iter().map(|c| c.grpc).collect::<Vec<_>>();
    let paths = [
        "/api/v1/rules",
        "/api/v1/rules?type=alert",
        "/api/v1/alerts",
        "/api/v1/targets",
        "/api/v1/targets?state=active",
        "/api/v1/metadata",
        "/api/v1/metadata?metric=test_requests",
        "/api/v1/query_exemplars?query=test_requests_total&start=0&end=9999999999",
    ];
    let mut matched = 0;
    let mut by_kind: Vec<Vec<Value>> = Vec::new();
    for (bin, kind) in [(&thanos, "thanos"), (&ours, "gauntlet")] {
        let mut answers = Vec::new();
        let over_thanos = querier(
            bin,
            &grpc(&t_sides),
            &format!("{kind} query over thanos sidecars"),
        );
        let over_ours = querier(
            bin,
            &grpc(&g_sides),
            &format!("{kind} query over gauntlet sidecars"),
        );
        for path in paths {
            let a = without_timings(get_json(over_thanos.http, path));
            let b = without_timings(get_json(over_ours.http, path));
            assert_eq!(a["status"], "success", "{kind} {path}: {a}");
            assert_eq!(
                a, b,
                "{kind} query, {path}: over Thanos's sidecars vs over ours"
            );
            answers.push(a);
            matched += 1;
        }
        by_kind.push(answers);
    }
    // Stacked: each kind of querier over the other kind's querier answers as over sidecars.
    let t_base = querier(&thanos, &grpc(&t_sides), "thanos query (stack base)");
    let g_base = querier(&ours, &grpc(&g_sides), "gauntlet query (stack base)");
    let t_on_g = querier(&thanos, &[g_base.grpc], "thanos query stacked on ours");
    let g_on_t = querier(&ours, &[t_base.grpc], "gauntlet query stacked on thanos");
    for (i, path) in paths.iter().enumerate() {
        let stacked = without_timings(get_json(t_on_g.http, path));
        assert_eq!(
            stacked, by_kind[0][i],
            "{path}: Thanos's querier stacked on ours"
        );
        let stacked = without_timings(get_json(g_on_t.http, path));
        assert_eq!(
            stacked, by_kind[1][i],
            "{path}: our querier stacked on Thanos's"
        );
        matched += 2;
    }
    // No PromQL here, so the two queriers must answer alike too.
    for (i, path) in paths.iter().enumerate() {
        assert_eq!(
            by_kind[0][i], by_kind[1][i],
            "{path}: Thanos's querier vs ours"
        );
        matched += 1;
    }
    println!("{matched} rules/targets/metadata/exemplars calls matched");
}

/// Our ruler and Thanos's, loaded with the same rule file and querying the same querier:
/// queriers of both kinds list the same rules and alerts from either, and serve the series
/// either recorded.
#[test]
fn rulers_of_both_kinds_behind_queriers_of_both_kinds() {
    let Ok(thanos) = std::env::var("THANOS_BIN") else {
        println!("skipped: THANOS_BIN is unset (build Thanos by hand and point it at the binary)");
        return;
    };
    let ours = gauntlet_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rules = d.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    interval: 1s\n    partial_response_strategy: warn\n    rules:\n      - record: eval:three\n        expr: vector(3)\n        labels:\n          origin: rule\n      - alert: Always\n        expr: vector(1)\n        labels:\n          severity: page\n        annotations:\n          summary: 'value {{ $value }}'\n",
    )
    .unwrap();
    // The query API the rulers evaluate through (no stores needed for these rules).
    let q0 = component(&thanos, vec!["query".into()], "thanos query api");
    let ruler = |bin: &str, replica: &str| {
        component(
            bin,
            vec![
                "rule".into(),
                format!("--rule-file={}", rules.display()),
                format!("--query=127.0.0.1:{}", q0.http),
                format!("--label=replica=\"{replica}\""),
                format!("--data-dir={}", d.join(format!("rule-{replica}")).display()),
                "--eval-interval=1s".into(),
            ],
            &format!("{replica} ruler"),
        )
    };
    let (t_rule, g_rule) = (ruler(&thanos, "t"), ruler(&ours, "g"));
    for r in [&t_rule, &g_rule] {
        wait_until("rules evaluated", Duration::from_secs(30), || {
            http_get(r.http, "/api/v1/alerts").is_ok_and(|(_, b)| b.contains("firing"))
        })
        .unwrap();
    }
    let mut matched = 0;
    for (kind, bin) in [("thanos", &thanos), ("gauntlet", &ours)] {
        let over_t = querier(
            bin,
            &[t_rule.grpc],
            &format!("{kind} query over thanos rule"),
        );
        let over_g = querier(
            bin,
            &[g_rule.grpc],
            &format!("{kind} query over gauntlet rule"),
        );
        for path in [
            "/api/v1/rules",
            "/api/v1/alerts",
            "/api/v1/rules?type=record",
        ] {
            let a = without_timings(get_json(over_t.http, path));
            let b = without_timings(get_json(over_g.http, path));
            let want = if path.contains("record") {
                "eval:three"
            } else {
                "Always"
            };
            assert!(a.to_string().contains(want), "{kind} querier, {path}: {a}");
            assert_eq!(
                a, b,
                "{kind} querier, {path}: over Thanos's ruler vs over ours"
            );
            matched += 1;
        }
        for (c, name) in [(&over_t, "thanos"), (&over_g, "gauntlet")] {
            let v = get_json(c.http, "/api/v1/query?query=eval:three");
            assert_eq!(
                v["data"]["result"][0]["value"][1], "3",
                "{kind} querier over {name}'s ruler: {v}"
            );
            assert_eq!(v["data"]["result"][0]["metric"]["origin"], "rule", "{v}");
        }
        let kinds = |c: &Component| {
            get_json(c.http, "/api/v1/stores")["data"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(
            kinds(&over_t),
            kinds(&over_g),
            "{kind} querier: component types"
        );
    }
    println!("rulers of both kinds: {matched} API answers matched");
}
