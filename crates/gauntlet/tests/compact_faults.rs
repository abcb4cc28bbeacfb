//! The compactor on bad input and under crashes: overlapping blocks without vertical
//! compaction halt with the blocks named (and, with `--wait`, `thanos_compact_halted 1` while
//! the HTTP server stays up); a corrupt index or chunk halts naming the block; an unreadable
//! meta.json is left alone; no source is ever deleted by a failed compaction. Killed with
//! SIGKILL at random points over a multi-level history, the compactor never loses a sample,
//! never leaves two visible copies of the same data, and ends with the blocks an
//! uninterrupted run makes; an S3 server killed mid-run leaves no partial block visible.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use testkit::prometheus::create_blocks_from_openmetrics;
use testkit::{free_port, http_get, wait_until};
use tsdb::block::Block;
use tsdb::meta::BlockMeta;

const START: i64 = 1_700_006_400_000;
const HOUR: i64 = 3_600_000;

fn objstore(bucket: &Path) -> String {
    format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    )
}

fn blocks(dir: &Path, name: &str, hours: i64, seed: u64) -> PathBuf {
    let data = testkit::dataset::Dataset {
        start_ms: START,
        end_ms: START + hours * HOUR,
        interval_ms: 60_000,
        instances: 2,
        seed,
        gaps: vec![],
    };
    let om = dir.join(format!("{name}.om"));
    std::fs::write(&om, data.openmetrics()).unwrap();
    let out = dir.join(name);
    create_blocks_from_openmetrics(&om, &out).unwrap();
    out
}

fn upload(objstore: &str, path: &Path, labels: &[&str]) {
    let mut args = vec![
        "tools".to_string(),
        "bucket".into(),
        "upload-blocks".into(),
        objstore.to_string(),
        format!("--path={}", path.display()),
    ];
    args.extend(labels.iter().map(|l| format!("--label={l}")));
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn compact(objstore: &str, data: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("compact")
        .arg(objstore)
        .arg(format!("--data-dir={}", data.display()))
        .arg("--consistency-delay=0s")
        .arg(format!("--http-address=127.0.0.1:{}", free_port()))
        .args(extra)
        .output()
        .unwrap()
}

fn marked_for_deletion(bucket: &Path) -> usize {
    std::fs::read_dir(bucket)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("deletion-mark.json").exists())
        .count()
}

fn block_ids(bucket: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(bucket)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn overlapping_blocks_halt_with_the_blocks_named() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let os = objstore(&bucket);
    // Two sets of blocks of one stream (same labels) over the same hours: they overlap.
    upload(&os, &blocks(dir.path(), "one", 6, 1), &["cluster=\"c1\""]);
    upload(&os, &blocks(dir.path(), "two", 6, 2), &["cluster=\"c1\""]);
    let before = block_ids(&bucket);

    let out = compact(&os, &dir.path().join("data"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("overlaps found while gathering blocks"),
        "{err}"
    );
    assert!(
        err.contains("mint:") && err.contains(&before[0][..10]),
        "{err}"
    );
    assert_eq!(
        block_ids(&bucket),
        before,
        "nothing written, nothing deleted"
    );
    assert_eq!(marked_for_deletion(&bucket), 0);

    // Waiting: the compactor halts, says so on /metrics and stays up.
    let http = free_port();
    let mut p = testkit::spawn_quiet(
        env!("CARGO_BIN_EXE_gauntlet"),
        &[
            "compact".into(),
            os.clone(),
            format!("--data-dir={}", dir.path().join("data").display()),
            "--consistency-delay=0s".into(),
            "--wait".into(),
            "--wait-interval=200ms".into(),
            format!("--http-address=127.0.0.1:{http}"),
        ],
    );
    wait_until("thanos_compact_halted 1", Duration::from_secs(30), || {
        http_get(http, "/metrics").is_ok_and(|(_, b)| b.contains("thanos_compact_halted 1"))
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    p.check_running().unwrap();
    assert_eq!(http_get(http, "/-/healthy").unwrap().0, 200);
    assert_eq!(marked_for_deletion(&bucket), 0);
    drop(p);

    // With vertical compaction the same bucket merges.
    let out = compact(
        &os,
        &dir.path().join("data"),
        &[
            "--compact.enable-vertical-compaction",
            "--downsampling.disable",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(marked_for_deletion(&bucket) > 0);
}

#[test]
fn corrupt_blocks_halt_naming_them_and_unreadable_metas_are_left_alone() {
    for corruption in ["index", "chunk"] {
        let dir = tempfile::tempdir().unwrap();
        let bucket = dir.path().join("bucket");
        let os = objstore(&bucket);
        upload(&os, &blocks(dir.path(), "b", 12, 3), &["cluster=\"c1\""]);
        let ids = block_ids(&bucket);
        let victim = bucket.join(&ids[1]);
        match corruption {
            "index" => {
                let b = std::fs::read(victim.join("index")).unwrap();
                std::fs::write(victim.join("index"), &b[..b.len() * 2 / 3]).unwrap();
            }
            _ => {
                let seg = victim.join("chunks/000001");
                let mut b = std::fs::read(&seg).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x5a;
                std::fs::write(&seg, b).unwrap();
            }
        }
        let out = compact(&os, &dir.path().join("data"), &["--downsampling.disable"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{corruption}: {err}");
        assert!(
            err.contains(&ids[1]),
            "{corruption}: the block is named: {err}"
        );
        assert_eq!(
            marked_for_deletion(&bucket),
            0,
            "{corruption}: nothing deleted"
        );
    }

    // A meta.json of an unknown version: that block is left alone, the rest compacts.
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let os = objstore(&bucket);
    upload(&os, &blocks(dir.path(), "b", 12, 4), &["cluster=\"c1\""]);
    let ids = block_ids(&bucket);
    let odd = bucket.join(&ids[0]).join("meta.json");
    let text = std::fs::read_to_string(&odd).unwrap();
    std::fs::write(&odd, text.replace("\"version\": 1", "\"version\": 7")).unwrap();
    for _ in 0..3 {
        let out = compact(
            &os,
            &dir.path().join("data"),
            &["--downsampling.disable", "--delete-delay=0s"],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains(&ids[0]), "the block is reported: {err}");
    }
    assert!(odd.exists(), "never deleted");
    assert!(!bucket.join(&ids[0]).join("deletion-mark.json").exists());
}

/// Samples of the blocks a store gateway would serve now (deduplicated by sources, marked
/// blocks still served, as the store does until they are deleted), with how many visible
/// blocks hold each sample.
fn visible_samples(bucket: &Path) -> (BTreeMap<String, BTreeMap<i64, u32>>, usize) {
    let store = bucket::config::bucket_from_yaml(&format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    ))
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let filters = bucket::fetcher::Filters {
        deduplicate: true,
        concurrency: 8,
        ..Default::default()
    };
    let view = rt
        .block_on(bucket::fetcher::fetch(
            store.as_ref(),
            &filters,
            tsdb::time::now_ms(),
        ))
        .unwrap();
    let mut out: BTreeMap<String, BTreeMap<i64, u32>> = BTreeMap::new();
    let mut n = 0;
    for m in view.metas.iter().filter(|m| m.resolution() == 0) {
        // A block may vanish between listing and reading (deleted by the compactor).
        let Ok(b) = Block::open(&bucket.join(&m.ulid)) else {
            continue;
        };
        let Ok(mut set) = b.all_series() else {
            continue;
        };
        n += 1;
        while let Ok(Some(s)) = set.next() {
            let e = out.entry(s.labels.to_string()).or_default();
            if let Ok(samples) = set.samples(&s).collect_all() {
                for (t, _) in samples {
                    *e.entry(t).or_default() += 1;
                }
            }
        }
    }
    (out, n)
}

fn final_shape(bucket: &Path) -> BTreeSet<(i64, i64, i64, u32)> {
    std::fs::read_dir(bucket)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.path().join("meta.json").exists() && !e.path().join("deletion-mark.json").exists()
        })
        .map(|e| {
            let m = BlockMeta::read_from_dir(&e.path()).unwrap();
            (m.resolution(), m.min_time, m.max_time, m.compaction.level)
        })
        .collect()
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_converges() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let os = objstore(&bucket);
    let src = blocks(dir.path(), "b", 54, 5);
    upload(&os, &src, &["cluster=\"c1\""]);
    let pristine = dir.path().join("pristine");
    testkit::copy_dir(&bucket, &pristine, &[]);
    let (want, _) = visible_samples(&bucket);
    let want: BTreeMap<String, BTreeSet<i64>> = want
        .into_iter()
        .map(|(k, v)| (k, v.into_keys().collect()))
        .collect();

    // The reference: an uninterrupted run on a copy.
    let reference = dir.path().join("reference");
    testkit::copy_dir(&pristine, &reference, &[]);
    for _ in 0..2 {
        let out = compact(
            &objstore(&reference),
            &dir.path().join("data-ref"),
            &["--delete-delay=0s"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let kills = 24;
    for i in 0..kills {
        let mut p = testkit::spawn_quiet(
            env!("CARGO_BIN_EXE_gauntlet"),
            &[
                "compact".into(),
                os.clone(),
                format!("--data-dir={}", dir.path().join("data").display()),
                "--consistency-delay=0s".into(),
                "--delete-delay=0s".into(),
                "--wait".into(),
                "--wait-interval=50ms".into(),
                format!("--http-address=127.0.0.1:{}", free_port()),
            ],
        );
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let after = Duration::from_millis(20 + rng % 400);
        std::thread::sleep(after);
        p.kill();
        let (seen, visible) = visible_samples(&bucket);
        for (series, ts) in &want {
            let got = seen
                .get(series)
                .unwrap_or_else(|| panic!("kill {i}: {series} lost"));
            let missing = ts.iter().filter(|t| !got.contains_key(t)).count();
            assert_eq!(
                missing, 0,
                "kill {i} after {after:?}: {series} lost {missing} samples"
            );
            let doubled = got.values().filter(|&&n| n > 1).count();
            assert_eq!(doubled, 0, "kill {i} after {after:?}: {series}: {doubled} samples visible twice across {visible} blocks");
        }
    }
    // Finish without interruptions: the bucket ends as the uninterrupted run's did.
    for _ in 0..3 {
        let out = compact(&os, &dir.path().join("data"), &["--delete-delay=0s"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(final_shape(&bucket), final_shape(&reference));
    let (seen, _) = visible_samples(&bucket);
    let seen: BTreeMap<String, BTreeSet<i64>> = seen
        .into_iter()
        .map(|(k, v)| (k, v.into_keys().collect()))
        .collect();
    assert_eq!(seen, want);
    // No partial upload is left behind once the compactor has cleaned up.
    for e in std::fs::read_dir(&bucket).unwrap().flatten() {
        let p = e.path();
        if !p.join("meta.json").exists() {
            let age = std::fs::metadata(&p).unwrap().modified().unwrap();
            assert!(
                age.elapsed().unwrap() < Duration::from_secs(48 * 3600),
                "stale partial {}",
                p.display()
            );
        }
    }
    println!(
        "{kills} SIGKILLs, no sample lost or doubled, final blocks equal an uninterrupted run"
    );
}

#[test]
fn s3_killed_mid_run_leaves_no_partial_block_visible() {
    let dir = tempfile::tempdir().unwrap();
    let mut garage = testkit::garage::Garage::start("compact").unwrap();
    let os = format!("--objstore.config={}", garage.objstore_yaml());
    upload(&os, &blocks(dir.path(), "b", 30, 6), &["cluster=\"c1\""]);
    let mut p = testkit::spawn_quiet(
        env!("CARGO_BIN_EXE_gauntlet"),
        &[
            "compact".into(),
            os.clone(),
            format!("--data-dir={}", dir.path().join("data").display()),
            "--consistency-delay=0s".into(),
            "--wait".into(),
            "--wait-interval=100ms".into(),
            format!("--http-address=127.0.0.1:{}", free_port()),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    garage.stop();
    std::thread::sleep(Duration::from_secs(2));
    // The compactor retries instead of giving up.
    p.check_running().unwrap();
    garage.restart().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    drop(p);
    let out = compact(&os, &dir.path().join("data"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every block with a meta.json has all its files: verify finds nothing wrong.
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket", "verify", &os])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A block whose one series has two overlapping chunks, as old Prometheus versions wrote.
fn out_of_order_block(parent: &Path, min: i64, max: i64) -> String {
    use tsdb::chunkenc::{Encoding, XorAppender};
    use tsdb::chunks::{ChunkMeta, ChunkWriter};
    let id = ulid::Ulid::new();
    let dir = parent.join(id.to_string());
    std::fs::create_dir_all(dir.join("chunks")).unwrap();
    let mut cw = ChunkWriter::new(&dir.join("chunks")).unwrap();
    let mut metas = Vec::new();
    for (from, n) in [(min, 60), (min + 30 * 60_000, 60)] {
        let mut app = XorAppender::new();
        for i in 0..n {
            app.append(from + i * 60_000, i as f64);
        }
        let r = cw.write_chunk(Encoding::XOR, app.bytes()).unwrap();
        metas.push(ChunkMeta {
            min_time: from,
            max_time: from + (n - 1) * 60_000,
            chunk_ref: r,
        });
    }
    cw.close().unwrap();
    let labels = tsdb::Labels::from_pairs([("__name__", "ooo_series")]);
    let mut iw = tsdb::index::IndexWriter::create(
        &dir.join("index"),
        ["__name__".to_string(), "ooo_series".to_string()],
    )
    .unwrap();
    iw.allow_overlapping_chunks();
    iw.add_series(&labels, &metas).unwrap();
    iw.finish().unwrap();
    let mut meta = BlockMeta::new(id, min, max);
    meta.stats.num_series = 1;
    meta.stats.num_chunks = 2;
    meta.stats.num_samples = 120;
    meta.write_to_dir(&dir).unwrap();
    id.to_string()
}

#[test]
fn blocks_with_out_of_order_chunks_fail_or_are_marked_no_compact() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let os = objstore(&bucket);
    let local = blocks(dir.path(), "b", 12, 7);
    // The first 2h block of the history is replaced by one with out-of-order chunks.
    let first = testkit::block_dirs(&local)[0].clone();
    let m = BlockMeta::read_from_dir(&local.join(&first)).unwrap();
    std::fs::remove_dir_all(local.join(&first)).unwrap();
    let bad = out_of_order_block(&local, m.min_time, m.max_time);
    upload(&os, &local, &["cluster=\"c1\""]);

    let out = compact(&os, &dir.path().join("data"), &["--downsampling.disable"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("out-of-order chunks") && err.contains(&bad),
        "{err}"
    );
    assert_eq!(marked_for_deletion(&bucket), 0);

    let out = compact(
        &os,
        &dir.path().join("data"),
        &[
            "--downsampling.disable",
            "--compact.skip-block-with-out-of-order-chunks",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mark = std::fs::read_to_string(bucket.join(&bad).join("no-compact-mark.json")).unwrap();
    assert!(mark.contains("block-index-out-of-order-chunk"), "{mark}");
    assert!(!bucket.join(&bad).join("deletion-mark.json").exists());
    assert!(
        marked_for_deletion(&bucket) > 0,
        "the other blocks compacted"
    );
}

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["tools", "bucket"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bucket_tools_mark_retain_clean_and_downsample() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let os = objstore(&bucket);
    upload(&os, &blocks(dir.path(), "b", 54, 8), &["cluster=\"c1\""]);
    let ids = block_ids(&bucket);

    // mark and unmark
    let out = tool(&[
        "mark",
        &os,
        "--id",
        &ids[0],
        "--marker",
        "no-compact-mark.json",
        "--details",
        "looking into it",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mark = std::fs::read_to_string(bucket.join(&ids[0]).join("no-compact-mark.json")).unwrap();
    assert!(
        mark.contains("\"reason\":\"manual\"") && mark.contains("looking into it"),
        "{mark}"
    );
    let out = tool(&[
        "mark",
        &os,
        "--id",
        &ids[0],
        "--marker",
        "no-compact-mark.json",
        "--remove",
    ]);
    assert!(out.status.success());
    assert!(!bucket.join(&ids[0]).join("no-compact-mark.json").exists());
    let out = tool(&[
        "mark",
        &os,
        "--id",
        "not-a-ulid",
        "--marker",
        "deletion-mark.json",
        "--details",
        "x",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid"));

    // downsample: compact to a 2d block first, then the standalone downsampler makes its 5m copy.
    let out = compact(&os, &dir.path().join("data"), &["--downsampling.disable"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tool(&[
        "downsample",
        &os,
        "--once",
        "--http-address=127.0.0.1:0",
        &format!("--data-dir={}", dir.path().join("ds").display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let five = std::fs::read_dir(&bucket)
        .unwrap()
        .flatten()
        .filter(|e| BlockMeta::read_from_dir(&e.path()).is_ok_and(|m| m.resolution() == 300_000))
        .count();
    assert_eq!(five, 1, "one 5m block");
    // Left running, the downsampler serves its health and metrics.
    let port = testkit::free_port();
    let mut running = testkit::spawn_quiet(
        env!("CARGO_BIN_EXE_gauntlet"),
        &[
            "tools".into(),
            "bucket".into(),
            "downsample".into(),
            os.clone(),
            format!("--http-address=127.0.0.1:{port}"),
            format!("--data-dir={}", dir.path().join("ds2").display()),
        ],
    );
    testkit::wait_until(
        "downsampler ready",
        std::time::Duration::from_secs(30),
        || matches!(testkit::http_get(port, "/-/ready"), Ok((200, _))),
    )
    .unwrap();
    let (_, metrics) = testkit::http_get(port, "/metrics").unwrap();
    assert!(metrics.contains("thanos_build_info"), "{metrics}");
    running.kill();

    // retention: the history is from 2023, older than a day: everything gets marked...
    let out = tool(&[
        "retention",
        &os,
        "--retention.resolution-raw=1d",
        "--retention.resolution-5m=1d",
        "--consistency-delay=0s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let with_meta = std::fs::read_dir(&bucket)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("meta.json").exists())
        .count();
    assert_eq!(marked_for_deletion(&bucket), with_meta);
    // ...and cleanup deletes what is marked.
    let out = tool(&[
        "cleanup",
        &os,
        "--delete-delay=0s",
        "--consistency-delay=0s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = std::fs::read_dir(&bucket)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("meta.json").exists())
        .count();
    assert_eq!(left, 0, "{:?}", block_ids(&bucket));
}
