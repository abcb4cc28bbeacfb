//! The web UI in a real headless Chromium (Debian's chromium and chromedriver): the querier's
//! graph page (table, graph, dedup switch, syntax errors, completion, URL state), its stores,
//! flags and status pages, and the block viewer of `tools bucket web`, `compact` and `store`.
//! Screenshots go to target/ui-screenshots/ (set UI_SCREENSHOTS to choose the directory).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use testkit::browser::Browser;
use testkit::{free_port, http_get, wait_until, Process};

const END_MS: i64 = 1_700_006_400_000;
const WAIT: Duration = Duration::from_secs(30);

fn gauntlet(args: &[String]) -> Process {
    testkit::spawn_quiet(env!("CARGO_BIN_EXE_gauntlet"), args)
}

fn objstore(bucket: &Path) -> String {
    format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    )
}

fn screenshots() -> PathBuf {
    std::env::var_os("UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots")
        })
}

/// promtool blocks of 5h of the generated dataset for `replica`, uploaded to `bucket`.
fn upload_replica(dir: &Path, bucket: &Path, replica: &str) {
    let d = testkit::dataset::Dataset {
        start_ms: END_MS - 5 * 3_600_000,
        end_ms: END_MS,
        interval_ms: 30_000,
        instances: 2,
        seed: 11,
        gaps: vec![],
    };
    let om = dir.join(format!("{replica}.om"));
    std::fs::write(&om, d.openmetrics()).unwrap();
    let out = dir.join(format!("blocks-{replica}"));
    testkit::prometheus::create_blocks_from_openmetrics(&om, &out).unwrap();
    write_histogram_block(&out);
    let st = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "upload-blocks", &objstore(bucket)])
        .arg(format!("--path={}", out.display()))
        .arg("--label=cluster=\"c1\"")
        .arg(format!("--label=replica=\"{replica}\""))
        .status()
        .unwrap();
    assert!(st.success());
}

/// A block with two native histogram series over the last two hours, every 30 s.
fn write_histogram_block(dir: &Path) {
    use tsdb::chunkenc::histogram::{Histogram, HistogramAppender, Span};
    use tsdb::chunkenc::Encoding;
    let (start, step) = (END_MS - 2 * 3_600_000, 30_000);
    let mut w = tsdb::block::BlockWriter::new(dir, start, END_MS).unwrap();
    for i in 1..=2 {
        let labels = tsdb::Labels::from_pairs([
            ("__name__", "latency_native_seconds".to_string()),
            ("instance", format!("10.0.0.{i}:9100")),
            ("job", "api".to_string()),
        ]);
        let mut chunks: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        let mut app = HistogramAppender::new();
        let mut first = start;
        for k in 0..240i64 {
            let t = start + k * step;
            let buckets: Vec<f64> = (0..6).map(|b| ((k + 1) * (b + i)) as f64).collect();
            let count = buckets.iter().sum::<f64>();
            let h = Histogram {
                t,
                schema: 1,
                count,
                sum: count * 0.25,
                positive_spans: vec![Span {
                    offset: -2,
                    length: 6,
                }],
                positive_buckets: buckets,
                ..Histogram::default()
            };
            app.append(&h).unwrap();
            if app.num_samples() == 120 {
                let bytes = std::mem::replace(&mut app, HistogramAppender::new()).into_bytes();
                chunks.push((first, t, bytes));
                first = t + step;
            }
        }
        let encoded: Vec<(i64, i64, Encoding, &[u8])> = chunks
            .iter()
            .map(|(a, b, bytes)| (*a, *b, Encoding::HISTOGRAM, bytes.as_slice()))
            .collect();
        w.add_encoded_series(&labels, &encoded).unwrap();
    }
    w.finish().unwrap();
}

fn wait_ready(port: u16, what: &str) {
    wait_until(what, WAIT, || {
        matches!(http_get(port, "/-/ready"), Ok((200, _)))
    })
    .unwrap();
}

fn api(port: u16, path: &str) -> Value {
    let (code, body) = http_get(port, path).unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The rows of the first panel's table, as the page shows them: [series, value].
fn table_rows(b: &Browser) -> Vec<(String, String)> {
    let v = b
        .eval(
            "return [...document.querySelectorAll('.panel .result-table tbody tr')]
               .filter(r => r.cells.length === 2)
               .map(r => [r.cells[0].textContent, r.cells[1].textContent]);",
        )
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
        .collect()
}

/// Runs `expr` in the first panel (typed, then Enter) and waits for its answer.
fn run_query(b: &Browser, expr: &str) {
    let before = b
        .eval("return document.querySelector('.panel').dataset.done || '';")
        .unwrap();
    b.clear(".panel textarea.expr").unwrap();
    b.type_into(".panel textarea.expr", expr).unwrap();
    // Escape closes the completion menu so that Enter runs the query.
    b.type_into(".panel textarea.expr", "\u{E00C}\u{E007}")
        .unwrap();
    b.wait_for(
        "the panel's answer",
        &format!(
            "const d = document.querySelector('.panel').dataset.done || '';
             return d !== {before} && d !== '';"
        ),
        WAIT,
    )
    .unwrap();
}

/// `name{a="x", b="y"}` as the UI writes series, from API JSON.
fn series_name(metric: &Value) -> String {
    let m = metric.as_object().unwrap();
    let mut labels: Vec<String> = m
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| {
            format!(
                "{k}={}",
                serde_json::to_string(v.as_str().unwrap()).unwrap()
            )
        })
        .collect();
    labels.sort();
    let name = m.get("__name__").and_then(Value::as_str).unwrap_or("");
    if labels.is_empty() && !name.is_empty() {
        return name.to_string();
    }
    format!("{name}{{{}}}", labels.join(", "))
}

#[test]
fn querier_ui_table_graph_dedup_errors_and_stores() {
    let dir = tempfile::tempdir().unwrap();
    let shots = screenshots();
    let mut stores = Vec::new();
    let mut grpc = Vec::new();
    for r in ["a", "b"] {
        let bucket = dir.path().join(format!("bucket-{r}"));
        upload_replica(dir.path(), &bucket, r);
        let (h, g) = (free_port(), free_port());
        stores.push(gauntlet(&[
            "store".into(),
            objstore(&bucket),
            format!(
                "--data-dir={}",
                dir.path().join(format!("data-{r}")).display()
            ),
            format!("--http-address=127.0.0.1:{h}"),
            format!("--grpc-address=127.0.0.1:{g}"),
        ]));
        wait_ready(h, "store ready");
        grpc.push(g);
    }
    let q = free_port();
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{}", grpc[0]),
        format!("--endpoint=127.0.0.1:{}", grpc[1]),
        "--query.replica-label=replica".into(),
        "--endpoint.info-interval=1s".into(),
        format!("--http-address=127.0.0.1:{q}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    wait_ready(q, "query ready");
    wait_until("both stores healthy", WAIT, || {
        api(q, "/api/v1/stores")["data"]["store"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|s| s["lastError"].is_null()))
    })
    .unwrap();

    let b = Browser::start(1400, 1000).unwrap();
    let base = format!("http://127.0.0.1:{q}");
    let moment = (END_MS - 600_000) / 1000;

    // `/` redirects to the graph page.
    b.goto(&format!("{base}/")).unwrap();
    b.wait_for(
        "the graph page",
        "return location.pathname === '/graph' && document.querySelector('.panel textarea.expr') !== null;",
        WAIT,
    )
    .unwrap();

    // Table: the rows the API gives, deduplicated (no replica label).
    b.type_into(".panel input.moment", &moment.to_string())
        .unwrap();
    let expr = "memory_bytes";
    run_query(&b, expr);
    let want = api(q, &format!("/api/v1/query?query={expr}&time={moment}"));
    let want: Vec<(String, String)> = want["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                series_name(&s["metric"]),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let rows = table_rows(&b);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows, want);
    assert!(
        rows.iter().all(|(s, _)| !s.contains("replica=")),
        "{rows:?}"
    );
    b.screenshot(&shots.join("query-table.png")).unwrap();

    // Deduplication off: each replica's series, with its replica label.
    b.click(".panel input.dedup").unwrap();
    b.wait_for(
        "the undeduplicated rows",
        "return document.querySelectorAll('.panel .result-table tbody tr').length === 8;",
        WAIT,
    )
    .unwrap();
    let rows = table_rows(&b);
    let with_a = rows
        .iter()
        .filter(|(s, _)| s.contains("replica=\"a\""))
        .count();
    let with_b = rows
        .iter()
        .filter(|(s, _)| s.contains("replica=\"b\""))
        .count();
    assert_eq!((with_a, with_b), (4, 4), "{rows:?}");
    b.screenshot(&shots.join("query-table-no-dedup.png"))
        .unwrap();
    b.click(".panel input.dedup").unwrap();

    // Graph: one line per series of the range answer.
    let expr = "rate(http_requests_total[5m])";
    b.click(".panel .tab-graph").unwrap();
    b.clear(".panel input.range").unwrap();
    b.type_into(".panel input.range", "4h").unwrap();
    b.type_into(".panel input.end", &(END_MS / 1000).to_string())
        .unwrap();
    run_query(&b, expr);
    let lines = b
        .wait_for(
            "the chart",
            "const c = document.querySelector('.panel .chart'); return c && +c.dataset.series;",
            WAIT,
        )
        .unwrap();
    let step = 4 * 3600 / 250;
    let want = api(
        q,
        &format!(
            "/api/v1/query_range?query=rate(http_requests_total%5B5m%5D)&start={}&end={}&step={step}",
            END_MS / 1000 - 4 * 3600,
            END_MS / 1000
        ),
    );
    let want_series = want["data"]["result"].as_array().unwrap().len();
    assert!(want_series > 4, "{want}");
    assert_eq!(lines.as_u64(), Some(want_series as u64));
    let legend = b
        .eval("return document.querySelectorAll('.panel .legend div').length;")
        .unwrap();
    assert_eq!(legend.as_u64(), Some(want_series as u64));
    // Hovering the plot shows a tooltip naming a series.
    b.eval(
        "const c = document.querySelector('.panel .chart canvas'); const r = c.getBoundingClientRect();
         c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, bubbles: true}));",
    )
    .unwrap();
    let tip = b
        .eval("const t = document.querySelector('.panel .tooltip'); return t.style.display === 'block' ? t.textContent : '';")
        .unwrap();
    assert!(
        tip.as_str().unwrap().contains("instance=\"10.0.0."),
        "{tip}"
    );
    b.screenshot(&shots.join("query-graph.png")).unwrap();

    // The range buttons step through the usual ranges; the end time is written in UTC.
    b.click(".panel .range-more").unwrap();
    let inputs = b
        .wait_for(
            "the longer range",
            "const p = document.querySelector('.panel'); return p.querySelector('input.range').value === '6h' ? [p.querySelector('input.end').value, p.querySelector('input.partial').checked] : null;",
            WAIT,
        )
        .unwrap();
    assert_eq!(inputs, serde_json::json!(["2023-11-15 00:00:00", true]));
    b.click(".panel .range-less").unwrap();

    // The panel lives in the URL: a reload shows the same graph.
    let search = b.eval("return location.search;").unwrap();
    let search = search.as_str().unwrap().to_string();
    assert!(search.contains("g0.expr=rate"), "{search}");
    assert!(search.contains("g0.tab=0"), "{search}");
    b.goto(&format!("{base}/graph{search}")).unwrap();
    let lines = b
        .wait_for(
            "the chart after reload",
            "const c = document.querySelector('.panel .chart'); return c && +c.dataset.series;",
            WAIT,
        )
        .unwrap();
    assert_eq!(lines.as_u64(), Some(want_series as u64));
    let value = b
        .eval("return document.querySelector('.panel textarea.expr').value;")
        .unwrap();
    assert_eq!(value.as_str(), Some(expr));

    // A syntax error shows the server's message and where it is.
    b.click(".panel .tab-table").unwrap();
    run_query(&b, "sum(rate(http_requests_total[5m])");
    let err = b
        .wait_for(
            "the error",
            "const e = document.querySelector('.panel .error'); return e ? e.textContent : '';",
            WAIT,
        )
        .unwrap();
    assert!(err.as_str().unwrap().contains("parse error"), "{err}");
    let caret = b
        .eval(
            "const p = document.querySelector('.panel .error pre'); return p ? p.textContent : '';",
        )
        .unwrap();
    assert!(caret.as_str().unwrap().ends_with("   ^"), "{caret}");
    b.screenshot(&shots.join("query-syntax-error.png")).unwrap();

    // Native histograms: the table shows each as the API's object, the graph draws their
    // rate (as the observation count).
    run_query(&b, "latency_native_seconds");
    let rows = table_rows(&b);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|(_, v)| v.starts_with("{\"count\":")),
        "{rows:?}"
    );
    b.click(".panel .tab-graph").unwrap();
    run_query(&b, "rate(latency_native_seconds[5m])");
    let lines = b
        .wait_for(
            "the histogram chart",
            "const c = document.querySelector('.panel .chart'); return c && +c.dataset.series;",
            WAIT,
        )
        .unwrap();
    assert_eq!(lines.as_u64(), Some(2));
    let errors = b
        .eval("return document.querySelectorAll('.panel .error').length;")
        .unwrap();
    assert_eq!(errors.as_u64(), Some(0));
    b.screenshot(&shots.join("query-histogram-graph.png"))
        .unwrap();
    b.click(".panel .tab-table").unwrap();

    // Completion offers metric names from the API.
    b.clear(".panel textarea.expr").unwrap();
    b.type_into(".panel textarea.expr", "memo").unwrap();
    let items = b
        .wait_for(
            "completion",
            "const m = document.querySelector('.panel .complete');
             return m.style.display === 'block' ? [...m.querySelectorAll('li')].map(l => l.firstChild.textContent).join(' ') : '';",
            WAIT,
        )
        .unwrap();
    assert!(items.as_str().unwrap().contains("memory_bytes"), "{items}");
    b.type_into(".panel textarea.expr", "\u{E004}").unwrap(); // Tab accepts.
    let value = b
        .eval("return document.querySelector('.panel textarea.expr').value;")
        .unwrap();
    assert_eq!(value.as_str(), Some("memory_bytes"));

    // A second panel.
    b.click("button.add-panel").unwrap();
    let panels = b
        .eval("return document.querySelectorAll('.panel').length;")
        .unwrap();
    assert_eq!(panels.as_u64(), Some(2));

    // Stores: both up; a killed store turns down.
    b.goto(&format!("{base}/stores")).unwrap();
    let up = b
        .wait_for(
            "the stores",
            "return document.querySelectorAll('tr.store[data-health=up]').length;",
            WAIT,
        )
        .unwrap();
    assert_eq!(up.as_u64(), Some(2));
    stores[1].kill();
    let down = b
        .wait_for(
            "the killed store shown down",
            "const d = [...document.querySelectorAll('tr.store[data-health=down]')];
             return d.length === 1 ? d[0].dataset.name : '';",
            WAIT,
        )
        .unwrap();
    assert_eq!(
        down.as_str(),
        Some(format!("127.0.0.1:{}", grpc[1]).as_str())
    );
    // It keeps its component type and what it announced last.
    let kept = b
        .eval("const r = document.querySelector('tr.store[data-health=down]'); return [r.closest('section').dataset.type, r.cells[2].textContent];")
        .unwrap();
    assert_eq!(kept[0], "store", "{kept}");
    assert!(
        kept[1].as_str().unwrap().contains("replica=\"b\""),
        "{kept}"
    );
    b.screenshot(&shots.join("stores.png")).unwrap();

    // Flags and status pages render the API's answers.
    b.goto(&format!("{base}/flags")).unwrap();
    b.wait_for(
        "the flags",
        "return [...document.querySelectorAll('main th')].some(t => t.textContent === 'query.replica-label');",
        WAIT,
    )
    .unwrap();
    b.goto(&format!("{base}/status")).unwrap();
    b.wait_for(
        "the status",
        "return [...document.querySelectorAll('main th')].some(t => t.textContent === 'startTime');",
        WAIT,
    )
    .unwrap();
    let errors = b
        .eval("return document.querySelectorAll('main .error').length;")
        .unwrap();
    assert_eq!(errors.as_u64(), Some(0));
}

/// A copy of block `src` in `bucket` under a new ULID with the given level and resolution.
fn derived_block(bucket: &Path, src: &str, level: u64, resolution: i64, seed: u64) -> String {
    let id = ulid::Ulid::from_parts(1_700_000_000_000 + seed, seed as u128).to_string();
    testkit::copy_dir(&bucket.join(src), &bucket.join(&id), &[]);
    let meta_path = bucket.join(&id).join("meta.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["ulid"] = id.clone().into();
    meta["compaction"]["level"] = level.into();
    meta["thanos"]["downsample"]["resolution"] = resolution.into();
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    id
}

#[test]
fn block_viewer_shows_the_bucket_by_group_level_and_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let shots = screenshots();
    let bucket = dir.path().join("bucket");
    upload_replica(dir.path(), &bucket, "a");
    let raw = testkit::block_dirs(&bucket);
    assert!(raw.len() >= 2, "{raw:?}");
    let l2 = derived_block(&bucket, &raw[0], 2, 0, 1);
    let l3 = derived_block(&bucket, &raw[0], 3, 300_000, 2);
    let l4 = derived_block(&bucket, &raw[1], 4, 3_600_000, 3);
    let st = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "mark", &objstore(&bucket)])
        .args([
            &format!("--id={l2}"),
            "--marker=no-compact-mark.json",
            "--details=test",
        ])
        .status()
        .unwrap();
    assert!(st.success());

    let web = free_port();
    let _web = gauntlet(&[
        "tools".into(),
        "bucket".into(),
        "web".into(),
        objstore(&bucket),
        "--label=cluster".into(),
        format!("--http-address=127.0.0.1:{web}"),
    ]);
    wait_ready(web, "bucket web ready");
    wait_until("blocks listed", WAIT, || {
        api(web, "/api/v1/blocks")["data"]["blocks"]
            .as_array()
            .is_some_and(|a| a.len() == raw.len() + 3)
    })
    .unwrap();
    let answer = api(web, "/api/v1/blocks");
    assert_eq!(answer["data"]["label"], "cluster");
    assert_eq!(answer["data"]["marks"][&l2][0], "no-compact");

    let b = Browser::start(1400, 900).unwrap();
    b.goto(&format!("http://127.0.0.1:{web}/")).unwrap();
    let shown = b
        .wait_for(
            "the timeline",
            "return location.pathname === '/blocks' && document.querySelectorAll('.timeline .block').length;",
            WAIT,
        )
        .unwrap();
    assert_eq!(shown.as_u64(), Some(raw.len() as u64 + 3));
    let of = |id: &str| {
        b.eval(&format!(
            "const e = document.querySelector('.block[data-ulid=\"{id}\"]');
             return e ? [e.dataset.level, e.dataset.resolution, e.closest('.lane').dataset.level] : null;"
        ))
        .unwrap()
    };
    assert_eq!(of(&raw[0]), serde_json::json!(["1", "raw", "1"]));
    assert_eq!(of(&l2), serde_json::json!(["2", "raw", "2"]));
    assert_eq!(of(&l3), serde_json::json!(["3", "5m", "3"]));
    assert_eq!(of(&l4), serde_json::json!(["4", "1h", "4"]));
    let lanes = b
        .eval("return [...document.querySelectorAll('.timeline .lane-title')].map(t => t.textContent).filter(t => t);")
        .unwrap();
    assert_eq!(
        lanes,
        serde_json::json!([
            "raw \u{b7} level 1",
            "raw \u{b7} level 2",
            "5m \u{b7} level 3",
            "1h \u{b7} level 4"
        ])
    );
    let group = b
        .eval("return document.querySelector('.timeline .toolbar strong').textContent;")
        .unwrap();
    assert_eq!(group.as_str(), Some("cluster=c1"));
    b.click(&format!(".block[data-ulid=\"{l2}\"]")).unwrap();
    let detail = b
        .wait_for(
            "the block's details",
            "const d = document.querySelector('.detail'); return d ? d.textContent : '';",
            WAIT,
        )
        .unwrap();
    let detail = detail.as_str().unwrap();
    assert!(detail.contains(&l2), "{detail}");
    assert!(detail.contains("no-compact"), "{detail}");
    assert!(detail.contains(&raw[0]), "sources: {detail}");
    b.screenshot(&shots.join("block-viewer.png")).unwrap();

    // Marking a block for deletion from its details writes the marker to the bucket.
    b.click(&format!(".block[data-ulid=\"{l3}\"]")).unwrap();
    b.type_into(".detail input.mark-detail", "from the UI test")
        .unwrap();
    b.click(".detail button.mark-deletion").unwrap();
    b.wait_for(
        "the deletion mark shown",
        "const d = document.querySelector('.detail'); return d && d.textContent.includes('deletion') && d.querySelector('button.mark-deletion').disabled;",
        WAIT,
    )
    .unwrap();
    let mark: Value = serde_json::from_slice(
        &std::fs::read(bucket.join(&l3).join("deletion-mark.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(mark["id"], l3.as_str());
    assert_eq!(mark["details"], "from the UI test");
    assert_eq!(
        api(web, "/api/v1/blocks")["data"]["marks"][&l3][0],
        "deletion"
    );

    // The compactor and the store gateway serve the same viewer and API.
    let c = free_port();
    let _compact = gauntlet(&[
        "compact".into(),
        objstore(&bucket),
        format!("--data-dir={}", dir.path().join("compact").display()),
        "--wait".into(),
        "--wait-interval=1h".into(),
        "--compact.enable-vertical-compaction".into(),
        "--consistency-delay=1000h".into(),
        "--disable-admin-operations".into(),
        format!("--http-address=127.0.0.1:{c}"),
    ]);
    wait_ready(c, "compactor ready");
    wait_until("compactor's blocks", WAIT, || {
        api(c, "/api/v1/blocks")["data"]["blocks"]
            .as_array()
            .is_some_and(|a| a.len() == raw.len() + 3)
    })
    .unwrap();
    let refused = testkit::http_request(
        c,
        "POST",
        b"/api/v1/blocks/mark",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("id={l4}&action=DELETION").as_bytes(),
    )
    .unwrap();
    assert_eq!(refused.status, 400);
    assert!(
        refused.text().contains("Admin operations are disabled"),
        "{}",
        refused.text()
    );
    b.goto(&format!("http://127.0.0.1:{c}/blocks")).unwrap();
    b.wait_for(
        "the compactor's timeline",
        &format!(
            "return document.querySelectorAll('.timeline .block').length === {};",
            raw.len() + 3
        ),
        WAIT,
    )
    .unwrap();
    let (sh, sg) = (free_port(), free_port());
    let _store = gauntlet(&[
        "store".into(),
        objstore(&bucket),
        format!("--data-dir={}", dir.path().join("store").display()),
        format!("--http-address=127.0.0.1:{sh}"),
        format!("--grpc-address=127.0.0.1:{sg}"),
    ]);
    wait_ready(sh, "store ready");
    let loaded = api(sh, "/api/v1/blocks?view=loaded");
    assert!(
        loaded["data"]["blocks"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{loaded}"
    );
    b.goto(&format!("http://127.0.0.1:{sh}/")).unwrap();
    let n = b
        .wait_for(
            "the store's loaded blocks",
            "return location.pathname === '/loaded' && document.querySelectorAll('.timeline .block').length;",
            WAIT,
        )
        .unwrap();
    assert_eq!(
        n.as_u64(),
        Some(loaded["data"]["blocks"].as_array().unwrap().len() as u64)
    );
}

/// Renders large answers in the page (10k series in the table, 1k series × 1k points in the
/// graph) and prints how long each took; the figures go in the closing note, not asserts.
#[test]
fn large_answers_render_in_the_browser() {
    let q = free_port();
    let _query = gauntlet(&[
        "query".into(),
        format!("--http-address=127.0.0.1:{q}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    wait_ready(q, "query ready");
    let b = Browser::start(1400, 1000).unwrap();
    b.goto(&format!("http://127.0.0.1:{q}/graph")).unwrap();
    b.wait_for(
        "the graph page",
        "return typeof App !== 'undefined' && App.views && document.querySelector('.panel') !== null;",
        WAIT,
    )
    .unwrap();
    let timings = b
        .eval(
            "return (async () => { const result = [];
             for (let i = 0; i < 10000; i++) result.push({metric: {__name__: 'm', instance: 'host-' + i, job: 'node'}, value: [1700000000, String(i * 1.5)]});
             const host = document.querySelector('.panel .result');
             let t0 = performance.now();
             const built = App.views.table({resultType: 'vector', result});
             const build = performance.now() - t0;
             host.replaceChildren(...built);
             host.getBoundingClientRect(); document.body.offsetHeight;
             const table = performance.now() - t0;
             const rows = +host.querySelector('.virtual-table').dataset.rows;
             const box = host.querySelector('.virtual-table');
             t0 = performance.now();
             box.scrollTop = 150000; box.dispatchEvent(new Event('scroll'));
             await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
             const scrolled = performance.now() - t0;
             const visible = [...box.querySelectorAll('tbody tr td:first-child')].map(td => td.textContent).find(t => t.includes('host-5'));
             const series = [];
             for (let i = 0; i < 1000; i++) {
               const values = new Array(1000);
               for (let k = 0; k < 1000; k++) values[k] = [1700000000 + k * 15, String(Math.sin(k / 50 + i) * 100 + i)];
               series.push({metric: {__name__: 'm', instance: 'host-' + i}, values});
             }
             const holder = document.createElement('div');
             host.replaceChildren(holder);
             t0 = performance.now();
             Chart.render(holder, series, {start: 1700000000000, end: 1700000000000 + 999 * 15000, step: 15000, stacked: false});
             document.body.offsetHeight;
             const graph = performance.now() - t0;
             return {build, table, scrolled, visible, rows, graph, lines: +holder.querySelector('.chart').dataset.series}; })();",
        )
        .unwrap();
    println!("large answers: {timings}");
    assert_eq!(timings["rows"], 10000, "{timings}");
    assert_eq!(timings["lines"], 1000, "{timings}");
    // Scrolled to row 5172 of 10000, the table shows the rows there.
    assert!(
        timings["visible"]
            .as_str()
            .is_some_and(|v| v.contains("host-51")),
        "{timings}"
    );
    b.screenshot(&screenshots().join("large-graph.png"))
        .unwrap();
}

/// The rules and alerts pages show a ruler's groups through the querier, here under a route
/// prefix, so every link and API call of the pages is checked to carry it.
#[test]
fn rules_and_alerts_pages_under_a_route_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: ui\n    interval: 1s\n    rules:\n      - record: ui:one\n        expr: vector(1)\n      - alert: AlwaysFiring\n        expr: vector(1) > 0\n        labels:\n          severity: page\n        annotations:\n          summary: fires at once\n      - alert: NeverFiring\n        expr: vector(1) < 0\n",
    )
    .unwrap();
    let (q, rule_grpc) = (free_port(), free_port());
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{rule_grpc}"),
        "--endpoint.info-interval=1s".into(),
        "--web.route-prefix=/gauntlet".into(),
        format!("--http-address=127.0.0.1:{q}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    let _rule = gauntlet(&[
        "rule".into(),
        format!("--rule-file={}", rules.display()),
        format!("--query=http://127.0.0.1:{q}/gauntlet"),
        "--label=replica=\"r0\"".into(),
        format!("--data-dir={}", dir.path().join("rule").display()),
        format!("--http-address=127.0.0.1:{}", free_port()),
        format!("--grpc-address=127.0.0.1:{rule_grpc}"),
    ]);
    wait_ready(q, "query ready");
    wait_until("the ruler's alert firing", WAIT, || {
        http_get(q, "/gauntlet/api/v1/alerts")
            .is_ok_and(|(c, b)| c == 200 && b.contains("\"firing\""))
    })
    .unwrap();

    let b = Browser::start(1400, 900).unwrap();
    let base = format!("http://127.0.0.1:{q}/gauntlet");
    b.goto(&format!("{base}/")).unwrap();
    b.wait_for(
        "the graph page under the prefix",
        "return location.pathname === '/gauntlet/graph' && document.querySelector('.panel') !== null;",
        WAIT,
    )
    .unwrap();
    run_query(&b, "ui:one");
    let rows = table_rows(&b);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1, "1");
    let links = b
        .eval("return [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'));")
        .unwrap();
    assert!(
        links
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l.as_str().unwrap().starts_with("/gauntlet/")),
        "{links}"
    );

    b.goto(&format!("{base}/rules")).unwrap();
    let text = b
        .wait_for(
            "the rule group",
            "const g = document.querySelector('.rule-group'); return g ? g.textContent : '';",
            WAIT,
        )
        .unwrap();
    let text = text.as_str().unwrap();
    assert!(text.contains("record: ui:one"), "{text}");
    assert!(text.contains("alert: AlwaysFiring"), "{text}");
    b.screenshot(&screenshots().join("rules.png")).unwrap();

    b.goto(&format!("{base}/alerts")).unwrap();
    let firing = b
        .wait_for(
            "the firing alert",
            "const a = document.querySelector('.alert-rule.state-firing'); return a ? a.textContent : '';",
            WAIT,
        )
        .unwrap();
    let firing = firing.as_str().unwrap();
    assert!(firing.contains("AlwaysFiring"), "{firing}");
    assert!(firing.contains("severity=\"page\""), "{firing}");
    assert!(firing.contains("fires at once"), "{firing}");
    let inactive = b
        .eval("return document.querySelectorAll('.alert-rule.state-inactive').length;")
        .unwrap();
    assert_eq!(inactive.as_u64(), Some(1));
    b.screenshot(&screenshots().join("alerts.png")).unwrap();
}
