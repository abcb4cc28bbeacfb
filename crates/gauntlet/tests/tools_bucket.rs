//! `gauntlet tools bucket` end to end: the real binary over blocks promtool wrote, on a
//! filesystem bucket and on Garage (S3).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

fn gauntlet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(args)
        .output()
        .expect("run gauntlet")
}

fn ok(args: &[&str]) -> String {
    let out = gauntlet(args);
    assert!(
        out.status.success(),
        "gauntlet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = gauntlet(args);
    assert!(!out.status.success(), "gauntlet {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Three 2h blocks of a few series, written by promtool.
fn promtool_blocks(dir: &Path) -> Vec<String> {
    let mut om = String::from("# TYPE up gauge\n");
    for job in ["a", "b", "c"] {
        for i in 0..720 {
            writeln!(
                om,
                "up{{job=\"{job}\"}} {} {}",
                i % 2,
                1_600_000_000 + i * 30
            )
            .unwrap();
        }
    }
    om.push_str("# EOF\n");
    let file = dir.join("data.om");
    std::fs::write(&file, om).unwrap();
    let out = dir.join("prom");
    testkit::prometheus::promtool(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        file.to_str().unwrap(),
        out.to_str().unwrap(),
    ])
    .unwrap();
    let mut ids: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("meta.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

fn exercise(objstore: &str, local: &Path, ids: &[String]) {
    let prom = local.join("prom");
    let prom = prom.to_str().unwrap();
    let log = ok(&[
        "tools",
        "bucket",
        "upload-blocks",
        objstore,
        "--path",
        prom,
        "--label",
        "replica=\"r1\"",
    ]);
    assert!(log.is_empty(), "logs go to stderr");
    // A second run uploads nothing twice.
    let out = gauntlet(&[
        "tools",
        "bucket",
        "upload-blocks",
        objstore,
        "--path",
        prom,
        "--label",
        "replica=\"r1\"",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("uploaded=0"));

    let ls = ok(&["tools", "bucket", "ls", objstore]);
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let wide = ok(&["tools", "bucket", "ls", objstore, "-o", "wide"]);
    assert!(
        wide.contains("Compaction: 1, Downsample: 0, Source: bucket.upload"),
        "{wide}"
    );
    let json = ok(&["tools", "bucket", "ls", objstore, "-o", "json"]);
    assert_eq!(json.matches("\"replica\": \"r1\"").count(), ids.len());

    let table = ok(&[
        "tools",
        "bucket",
        "inspect",
        objstore,
        "-l",
        "replica=\"r1\"",
    ]);
    assert_eq!(table.lines().count(), 2 + ids.len(), "{table}");
    assert!(table.contains("replica=r1") && table.contains("bucket.upload"));
    let none = ok(&[
        "tools",
        "bucket",
        "inspect",
        objstore,
        "-l",
        "replica=\"other\"",
        "--output",
        "csv",
    ]);
    assert_eq!(none.lines().count(), 1);

    ok(&["tools", "bucket", "verify", objstore]);
}

#[test]
fn filesystem_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let ids = promtool_blocks(dir.path());
    assert!(ids.len() >= 2);
    let bucket = dir.path().join("bucket");
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    exercise(&objstore, dir.path(), &ids);

    // A flipped byte in a chunk segment is found and named.
    let seg = bucket.join(&ids[0]).join("chunks/000001");
    let mut b = std::fs::read(&seg).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    std::fs::write(&seg, b).unwrap();
    let out = gauntlet(&["tools", "bucket", "verify", &objstore]);
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&ids[0]) && report.contains("000001"),
        "{report}"
    );

    // Every block is checked and every problem reported: a truncated index in the second
    // block and a missing chunk segment in the last are named along with the first's.
    let index = bucket.join(&ids[1]).join("index");
    let b = std::fs::read(&index).unwrap();
    std::fs::write(&index, &b[..b.len() / 2]).unwrap();
    let last = ids.last().unwrap();
    if ids.len() > 2 {
        std::fs::remove_file(bucket.join(last).join("chunks/000001")).unwrap();
    }
    let out = gauntlet(&["tools", "bucket", "verify", &objstore]);
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&ids[0]) && report.contains(&ids[1]),
        "{report}"
    );
    if ids.len() > 2 {
        assert!(report.contains(last.as_str()), "{report}");
    }
    // A named block that is not there is an error, not "no issues".
    let absent = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
    let out = gauntlet(&["tools", "bucket", "verify", &objstore, "--id", absent]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(absent));

    // Bad input gets clear errors.
    assert!(fails(&["tools", "bucket", "ls"]).contains("--objstore.config-file"));
    // A misspelt key is refused (Thanos reads the config strictly).
    let e = fails(&[
        "tools",
        "bucket",
        "ls",
        &format!(
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n  direktory: x\n",
            bucket.display()
        ),
    ]);
    assert!(e.contains("direktory"), "{e}");
    // Listing a filesystem bucket that does not exist says so and creates nothing.
    let missing = dir.path().join("no-such-bucket");
    let e = fails(&[
        "tools",
        "bucket",
        "ls",
        &format!(
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
            missing.display()
        ),
    ]);
    assert!(e.contains("does not exist"), "{e}");
    assert!(!missing.exists());
    assert!(fails(&[
        "tools",
        "bucket",
        "ls",
        "--objstore.config=type: NOPE\nconfig: {}"
    ])
    .contains("unsupported objstore type"));
    let prom = dir.path().join("prom");
    let e = fails(&[
        "tools",
        "bucket",
        "upload-blocks",
        &objstore,
        "--path",
        prom.to_str().unwrap(),
    ]);
    assert!(e.contains("external labels"), "{e}");
    let e = fails(&[
        "tools",
        "bucket",
        "upload-blocks",
        &objstore,
        "--path",
        prom.to_str().unwrap(),
        "--label",
        "replica=r1",
    ]);
    assert!(e.contains("unable to parse external labels"), "{e}");
    let e = fails(&[
        "tools",
        "bucket",
        "upload-blocks",
        &objstore,
        "--path",
        "/nonexistent",
        "--label",
        "a=\"b\"",
    ]);
    assert!(e.contains("/nonexistent"), "{e}");
}

#[test]
fn garage_s3_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let ids = promtool_blocks(dir.path());
    let garage = testkit::garage::Garage::start("thanos").unwrap();
    let objstore = format!("--objstore.config={}", garage.objstore_yaml());
    exercise(&objstore, dir.path(), &ids);
}
