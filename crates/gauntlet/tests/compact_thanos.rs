//! The compactor beside a real Thanos (`THANOS_BIN`, built by hand from Thanos's
//! repository; the test is skipped with a printed reason when it is unset): both compact
//! and downsample copies of one raw bucket; `thanos tools bucket verify` finds nothing wrong
//! in ours; a Thanos store + querier answers the same over our output as over Thanos's, at
//! raw, 5m and 1h resolution; and so does our store + querier.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::promapi::{differ, from_prometheus, secs, url_encode};
use testkit::prometheus::create_blocks_from_openmetrics;
use testkit::{free_port, http_get, wait_until, Process};

/// 2023-11-23T00:00:00Z: aligned to the 14-day compaction range, so 16 days of data give a
/// full 14-day block (and 1h downsampling of its 5m copy).
const START: i64 = 1_700_697_600_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn objstore_file(dir: &Path, bucket: &Path) -> String {
    let f = dir.join(format!(
        "{}.yml",
        bucket.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &f,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        ),
    )
    .unwrap();
    format!("--objstore.config-file={}", f.display())
}

fn run(bin: &str, args: &[String]) {
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A store gateway and a querier of `bin` (ours or Thanos's) over a bucket.
fn serve(bin: &str, dir: &Path, objstore: &str, name: &str) -> (Process, Process, u16) {
    let (s_http, s_grpc, q_http) = (free_port(), free_port(), free_port());
    let store = testkit::spawn_quiet(
        bin,
        &[
            "store".into(),
            objstore.into(),
            format!("--data-dir={}", dir.join(format!("store-{name}")).display()),
            format!("--http-address=127.0.0.1:{s_http}"),
            format!("--grpc-address=127.0.0.1:{s_grpc}"),
        ],
    );
    wait_until(
        &format!("{name} store ready"),
        Duration::from_secs(120),
        || matches!(http_get(s_http, "/-/ready"), Ok((200, _))),
    )
    .unwrap();
    let query = testkit::spawn_quiet(
        bin,
        &[
            "query".into(),
            format!("--endpoint=127.0.0.1:{s_grpc}"),
            format!("--http-address=127.0.0.1:{q_http}"),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
        ],
    );
    let probe = format!(
        "/api/v1/query?query=count(memory_bytes)&time={}",
        secs(START + 15 * DAY)
    );
    wait_until(
        &format!("{name} query sees data"),
        Duration::from_secs(120),
        || http_get(q_http, &probe).is_ok_and(|(c, b)| c == 200 && b.contains("\"value\"")),
    )
    .unwrap();
    (store, query, q_http)
}

fn paths() -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let queries = [
        "sum by (job) (rate(http_requests_total[2h]))",
        "max_over_time(memory_bytes[3h])",
        "min_over_time(memory_bytes[3h])",
        "sum_over_time(memory_bytes[3h])",
        "avg_over_time(memory_bytes[3h])",
        "increase(http_requests_total[6h])",
        "memory_bytes",
    ];
    for res in ["0", "5m", "1h"] {
        for q in queries {
            let e = url_encode(q);
            out.push((
                format!(
                    "/api/v1/query_range?query={e}&start={}&end={}&step=10800&max_source_resolution={res}",
                    secs(START + DAY + 1_234),
                    secs(START + 15 * DAY + 1_234)
                ),
                true,
            ));
            out.push((
                format!(
                    "/api/v1/query?query={e}&time={}&max_source_resolution={res}",
                    secs(START + 7 * DAY + 1_234)
                ),
                false,
            ));
        }
    }
    out
}

fn compare(name: &str, a: u16, b: u16) {
    let paths = paths();
    let mut diff = Vec::new();
    for (p, ordered) in &paths {
        let (ca, ba) = http_get(a, p).unwrap();
        let (cb, bb) = http_get(b, p).unwrap();
        assert_eq!((ca, cb), (200, 200), "{p}: {ba} / {bb}");
        if let Some(d) = differ(&from_prometheus(&ba), &from_prometheus(&bb), *ordered) {
            diff.push(format!("{p}: {d}"));
        }
    }
    println!(
        "{name}: {} queries compared, {} mismatches",
        paths.len(),
        diff.len()
    );
    assert!(diff.is_empty(), "{name}:\n{}", diff.join("\n"));
}

#[test]
fn thanos_reads_our_compacted_and_downsampled_blocks_as_its_own() {
    let Ok(thanos) = std::env::var("THANOS_BIN") else {
        println!("skipped: THANOS_BIN is not set (build thanos from its repository and point THANOS_BIN at it)");
        return;
    };
    let ours = env!("CARGO_BIN_EXE_gauntlet");
    let dir = tempfile::tempdir().unwrap();
    let data = testkit::dataset::Dataset {
        start_ms: START,
        end_ms: START + 16 * DAY,
        interval_ms: 120_000,
        instances: 1,
        seed: 9,
        gaps: vec![],
    };
    let om = dir.path().join("data.om");
    std::fs::write(&om, data.openmetrics()).unwrap();
    let blocks = dir.path().join("blocks");
    create_blocks_from_openmetrics(&om, &blocks).unwrap();
    let raw = dir.path().join("raw");
    run(
        ours,
        &[
            "tools".into(),
            "bucket".into(),
            "upload-blocks".into(),
            objstore_file(dir.path(), &raw),
            format!("--path={}", blocks.display()),
            "--label=cluster=\"c1\"".into(),
        ],
    );
    let (theirs_bucket, ours_bucket) = (dir.path().join("by-thanos"), dir.path().join("by-us"));
    testkit::copy_dir(&raw, &theirs_bucket, &[]);
    testkit::copy_dir(&raw, &ours_bucket, &[]);
    let (os_theirs, os_ours) = (
        objstore_file(dir.path(), &theirs_bucket),
        objstore_file(dir.path(), &ours_bucket),
    );
    for (bin, os, name) in [
        (thanos.as_str(), &os_theirs, "thanos"),
        (ours, &os_ours, "ours"),
    ] {
        for _ in 0..2 {
            run(
                bin,
                &[
                    "compact".into(),
                    os.clone(),
                    format!(
                        "--data-dir={}",
                        dir.path().join(format!("compact-{name}")).display()
                    ),
                    "--consistency-delay=0s".into(),
                    "--delete-delay=0s".into(),
                    format!("--http-address=127.0.0.1:{}", free_port()),
                ],
            );
        }
    }
    // Both made the same blocks: resolution, time range and level.
    let shape = |bucket: &Path| {
        let mut v: Vec<(i64, i64, i64, u32)> = std::fs::read_dir(bucket)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.path().join("meta.json").exists() && !e.path().join("deletion-mark.json").exists()
            })
            .map(|e| {
                let m = tsdb::meta::BlockMeta::read_from_dir(&e.path()).unwrap();
                (m.resolution(), m.min_time, m.max_time, m.compaction.level)
            })
            .collect();
        v.sort();
        v
    };
    let (s_theirs, s_ours) = (shape(&theirs_bucket), shape(&ours_bucket));
    println!("thanos made {s_theirs:?}\nwe made     {s_ours:?}");
    assert!(
        s_ours.iter().any(|b| b.0 == 3_600_000),
        "a 1h block: {s_ours:?}"
    );
    assert_eq!(s_ours, s_theirs);

    // Thanos's verifier finds nothing wrong in our output.
    let out = Command::new(&thanos)
        .args(["tools", "bucket", "verify", &os_ours])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        !log.contains("detected issue") && !log.contains("found overlapped blocks"),
        "{log}"
    );

    // Thanos's store and querier answer alike over both outputs; so do ours.
    let (_s1, _q1, thanos_on_theirs) = serve(&thanos, dir.path(), &os_theirs, "thanos-theirs");
    let (_s2, _q2, thanos_on_ours) = serve(&thanos, dir.path(), &os_ours, "thanos-ours");
    compare("thanos store + querier", thanos_on_theirs, thanos_on_ours);
    let (_s3, _q3, ours_on_theirs) = serve(ours, dir.path(), &os_theirs, "ours-theirs");
    let (_s4, _q4, ours_on_ours) = serve(ours, dir.path(), &os_ours, "ours-ours");
    compare("gauntlet store + querier", ours_on_theirs, ours_on_ours);
}
