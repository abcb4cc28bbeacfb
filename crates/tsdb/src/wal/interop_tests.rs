//! Interoperability with the real Prometheus 2.42: we read the WAL it leaves when killed,
//! and it reads the WAL we write.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::prometheus::Prometheus;

use super::*;
use crate::error::Error;
use crate::labels::{Label, Labels};

/// Whether the `prometheus` binary is there; in CI its absence is a failure.
fn prometheus_present() -> bool {
    match testkit::find_binary("prometheus", "install the Debian package `prometheus`") {
        Ok(_) => true,
        Err(e) if std::env::var_os("CI").is_some() => panic!("{e:#}"),
        Err(e) => {
            eprintln!("skipping the Prometheus interop test: {e:#}");
            false
        }
    }
}

/// Percent-encodes a query parameter value.
fn esc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the single result of an instant query, if there is exactly one.
fn instant(prom: &Prometheus, query: &str, time: Option<i64>) -> Option<String> {
    let mut path = format!("/api/v1/query?query={}", esc(query));
    if let Some(t) = time {
        path += &format!("&time={}.{:03}", t.div_euclid(1000), t.rem_euclid(1000));
    }
    let body = prom.get(&path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str().map(str::to_string)
}

/// Type bytes of every fragment in a segment file (padding skipped).
fn fragment_types(path: &Path) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    for page in b.chunks(PAGE_SIZE) {
        let mut pos = 0;
        while pos + HEADER_SIZE <= page.len() && page[pos] != 0 {
            out.push(page[pos]);
            pos += HEADER_SIZE + usize::from(u16::from_be_bytes([page[pos + 1], page[pos + 2]]));
        }
    }
    out
}

/// Prometheus scraping itself every second as six jobs, so that its WAL soon holds records
/// spanning pages.
fn self_scrape_config(port: u16) -> String {
    let mut cfg = "global:\n  scrape_interval: 1s\nscrape_configs:\n".to_string();
    for job in ["prometheus", "j2", "j3", "j4", "j5", "j6"] {
        cfg += &format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        );
    }
    cfg
}

#[test]
fn we_replay_the_wal_prometheus_leaves_when_killed() {
    if !prometheus_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut prom = Prometheus::start(tmp.path(), &data, self_scrape_config, &[]).unwrap();
    let scraped = testkit::wait_until("three self-scrapes", Duration::from_secs(15), || {
        instant(&prom, "min(count_over_time(up[1m]))", None)
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|n| n >= 3.0)
    });
    if let Err(e) = scraped {
        panic!("{e:#}\n{}", prom.log_tail());
    }
    // SIGKILL: the WAL stays exactly as the process left it.
    prom.stop();

    let wal = data.join("wal");
    let mut series: HashMap<u64, Labels> = HashMap::new();
    let (mut samples, mut unknown_refs, mut other) = (0usize, 0usize, 0usize);
    let mut up_values = BTreeSet::new();
    let r = replay(&wal, |rec| {
        match decode(rec)? {
            Record::Series(s) => {
                for s in s {
                    series.insert(s.series_ref, s.labels);
                }
            }
            Record::Samples(s) => {
                for s in s {
                    samples += 1;
                    match series.get(&s.series_ref) {
                        None => unknown_refs += 1,
                        Some(l) if l.metric_name() == Some("up") => {
                            up_values.insert(s.v.to_bits());
                        }
                        Some(_) => {}
                    }
                }
            }
            Record::Other(_) => other += 1,
        }
        Ok(())
    })
    .unwrap();
    let (_, last) = segment_range(&wal).unwrap().unwrap();
    if let Some(c) = &r.corruption {
        // At most a torn tail of the last segment.
        let Error::Corrupted { what, .. } = c else {
            panic!("{c}")
        };
        assert_eq!(Path::new(what), segment_path(&wal, last), "{c}");
    }
    let up = series
        .values()
        .find(|l| l.metric_name() == Some("up") && l.get("job") == Some("prometheus"))
        .expect("an `up` series");
    assert_eq!(up.get("job"), Some("prometheus"));
    assert!(up
        .get("instance")
        .is_some_and(|i| i.starts_with("127.0.0.1:")));
    assert!(series
        .values()
        .any(|l| l.metric_name() == Some("prometheus_build_info")
            && l.get("version") == Some("2.42.0+ds")));
    assert!(series.len() > 100, "{} series", series.len());
    assert!(samples >= 3 * series.len() / 2, "{samples} samples");
    assert_eq!(unknown_refs, 0, "samples of series never logged");
    assert_eq!(up_values, BTreeSet::from([1.0f64.to_bits()]));
    let types: Vec<u8> = (0..=last)
        .flat_map(|i| fragment_types(&segment_path(&wal, i)))
        .collect();
    let count = |f: &dyn Fn(u8) -> bool| types.iter().filter(|&&t| f(t)).count();
    assert!(
        count(&|t| t & SNAPPY != 0) > 0,
        "no compressed record: decompression untested"
    );
    assert!(
        count(&|t| t & TYPE_MASK == FIRST) > 0 && count(&|t| t & TYPE_MASK == LAST) > 0,
        "no record spans pages: {types:?}"
    );
    eprintln!(
        "replayed {} records ({} series, {samples} samples, {other} other) from {} segments; \
         fragment types {types:?}",
        r.records,
        series.len(),
        r.segments_read
    );
}

#[test]
fn prometheus_reads_the_wal_we_write() {
    if !prometheus_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let wal = data.join("wal");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = |k: i64| now - (4 - k) * 10_000 - 123;
    let cases = ["a", "b", "c"];
    let series: Vec<RefSeries> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| RefSeries {
            series_ref: i as u64 + 1,
            labels: Labels::from_sorted(vec![
                Label::new("__name__", "gauntlet_wal_test"),
                Label::new("case", *c),
                Label::new("job", "gauntlet"),
            ]),
        })
        .collect();
    let samples = |ks: std::ops::Range<i64>| -> Vec<u8> {
        let s: Vec<RefSample> = ks
            .flat_map(|k| {
                (0..3u64).map(move |i| RefSample {
                    series_ref: i + 1,
                    t: t(k),
                    v: (i * 100) as f64 + k as f64 + 0.5,
                })
            })
            .collect();
        let mut b = Vec::new();
        encode_samples(&s, &mut b);
        b
    };
    let mut rec = Vec::new();
    encode_series(&series, &mut rec);
    // Many series with one sample each, in records spanning pages.
    let bulk: Vec<RefSeries> = (0..2500u64)
        .map(|i| RefSeries {
            series_ref: 100 + i,
            labels: Labels::from_sorted(vec![
                Label::new("__name__", "gauntlet_wal_bulk"),
                Label::new("i", format!("{i:05}")),
            ]),
        })
        .collect();
    let bulk_samples: Vec<RefSample> = bulk
        .iter()
        .map(|s| RefSample {
            series_ref: s.series_ref,
            t: t(4),
            v: s.series_ref as f64,
        })
        .collect();
    let (mut bulk_rec, mut bulk_samples_rec) = (Vec::new(), Vec::new());
    encode_series(&bulk, &mut bulk_rec);
    encode_samples(&bulk_samples, &mut bulk_samples_rec);
    // The series fill most of segment 1; the samples then need segment 2.
    assert!(bulk_rec.len() > 3 * PAGE_SIZE);
    {
        // Segment 0 snappy-compressed (as far as it helps), later ones plain and small, so
        // that records span pages and fill segments.
        let mut w = Writer::with_segment_size(&wal, 4 * PAGE_SIZE).unwrap();
        w.log(&[&rec]).unwrap();
        w.log(&[&samples(0..3)]).unwrap();
        assert_eq!(w.next_segment().unwrap(), 1);
        w.set_compress(false);
        w.log(&[&samples(3..5)]).unwrap();
        w.log(&[&bulk_rec, &bulk_samples_rec]).unwrap();
        assert_eq!(w.current_segment(), 2);
        w.sync().unwrap();
    }
    assert!(fragment_types(&segment_path(&wal, 0))
        .iter()
        .any(|t| t & SNAPPY != 0));

    let mut prom = Prometheus::start(tmp.path(), &data, |_| "global: {}\n".into(), &[]).unwrap();
    let q = |query: &str, at: i64| instant(&prom, query, Some(at));
    let checks = [
        ("gauntlet_wal_test{case=\"b\"}", t(4), "104.5"),
        ("gauntlet_wal_test{case=\"c\"}", t(1), "201.5"),
        ("gauntlet_wal_test{case=\"a\"}", t(0), "0.5"),
        ("count(gauntlet_wal_test{job=\"gauntlet\"})", t(4), "3"),
        (
            "count_over_time(gauntlet_wal_test{case=\"a\"}[1m])",
            t(4),
            "5",
        ),
        ("count(gauntlet_wal_bulk)", t(4), "2500"),
        ("sum(gauntlet_wal_bulk)", t(4), "3373750"),
        ("gauntlet_wal_bulk{i=\"02499\"}", t(4), "2599"),
    ];
    for (query, at, want) in checks {
        let got = q(query, at);
        assert_eq!(
            got.as_deref(),
            Some(want),
            "{query} at {at}\n{}",
            prom.log_tail()
        );
    }
    prom.stop();

    // What Prometheus appended after our segments still replays with ours.
    let mut n = 0;
    let r = replay(&wal, |rec| {
        decode(rec)?;
        n += 1;
        Ok(())
    })
    .unwrap();
    assert!(r.corruption.is_none(), "{:?}", r.corruption);
    assert!(n >= 3);
}
