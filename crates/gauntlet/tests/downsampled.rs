//! Downsampled blocks through `gauntlet store` + `gauntlet query`: the store picks blocks by
//! `max_source_resolution` (coarsest allowed, gaps from finer data), serves the aggregates a
//! function needs, and the querier reads them as Thanos does (counter resets across chunks
//! from the raw values kept at each counter chunk's ends).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use testkit::{free_port, http_get, wait_until, Process};
use tsdb::block::BlockWriter;
use tsdb::chunkenc::{aggr, Encoding, XorAppender};
use tsdb::Labels;

const H: i64 = 3_600_000;
const RES_5M: i64 = 300_000;
const STEP: i64 = 15_000;

fn gauntlet(args: &[String]) -> Process {
    testkit::spawn_quiet(env!("CARGO_BIN_EXE_gauntlet"), args)
}

/// `load` (a gauge of whole numbers) and `reqs_total` (a counter: +1 per scrape, reset to 0
/// at 1h, not reset at 2h) over `[0, 4h)`.
fn raw_series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let times = || (0..4 * H).step_by(STEP as usize);
    let load = times().map(|t| (t, ((t / STEP) * 7 % 50) as f64)).collect();
    let reqs = times()
        .map(|t| {
            let k = t / STEP;
            (t, if t < H { k } else { k - H / STEP } as f64)
        })
        .collect();
    vec![
        (Labels::from_pairs([("__name__", "load")]), load),
        (Labels::from_pairs([("__name__", "reqs_total")]), reqs),
    ]
}

/// One aggregate chunk of `samples` at `res`, laid out as Thanos's downsampler writes it:
/// one point per window at the window's last millisecond (capped at the last sample), and
/// the counter aggregate framed by the first and last raw values.
fn downsample(samples: &[(i64, f64)], res: i64) -> (i64, i64, Vec<u8>) {
    let mut parts: Vec<XorAppender> = (0..5).map(|_| XorAppender::new()).collect();
    let last_t = samples[samples.len() - 1].0;
    parts[4].append(samples[0].0, samples[0].1);
    let (mut counter, mut prev) = (0.0, f64::NAN);
    let mut window: Option<(i64, f64, f64, f64, f64)> = None; // t, count, sum, min, max
    let flush = |w: (i64, f64, f64, f64, f64), counter: f64, parts: &mut Vec<XorAppender>| {
        for (p, v) in parts.iter_mut().zip([w.1, w.2, w.3, w.4, counter]) {
            p.append(w.0, v);
        }
    };
    for &(t, v) in samples {
        let end = (t - t % res + res - 1).min(last_t);
        match &mut window {
            Some(w) if w.0 == end => {
                w.1 += 1.0;
                w.2 += v;
                w.3 = w.3.min(v);
                w.4 = w.4.max(v);
            }
            _ => {
                if let Some(w) = window.take() {
                    flush(w, counter, &mut parts);
                }
                window = Some((end, 1.0, v, v, v));
            }
        }
        counter = if prev.is_nan() {
            v
        } else if v < prev {
            counter + v
        } else {
            counter + v - prev
        };
        prev = v;
    }
    let w = window.unwrap();
    flush(w, counter, &mut parts);
    parts[4].append(w.0, prev);
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.bytes()).collect();
    let chunk = aggr::encode([
        Some(bytes[0]),
        Some(bytes[1]),
        Some(bytes[2]),
        Some(bytes[3]),
        Some(bytes[4]),
    ]);
    (samples[0].0, w.0, chunk)
}

/// Raw blocks `[0, 2h)` and `[2h, 4h)`, and a 5m block for `[0, 2h)`, written into a
/// filesystem bucket.
fn write_bucket(bucket: &Path) {
    std::fs::create_dir_all(bucket).unwrap();
    let series = raw_series();
    let finish = |w: BlockWriter, resolution: i64| {
        let mut meta = w.finish().unwrap();
        let thanos = meta.thanos_mut();
        thanos.labels.insert("cluster".into(), "eu".into());
        thanos.source = "compactor".into();
        thanos.downsample.resolution = resolution;
        meta.write_to_dir(&bucket.join(&meta.ulid)).unwrap();
    };
    for (min_t, max_t) in [(0, 2 * H), (2 * H, 4 * H)] {
        let mut w = BlockWriter::new(bucket, min_t, max_t).unwrap();
        for (labels, samples) in &series {
            let part = samples
                .iter()
                .copied()
                .filter(|s| s.0 >= min_t && s.0 < max_t);
            w.add_series(labels, part).unwrap();
        }
        finish(w, 0);
    }
    let mut w = BlockWriter::new(bucket, 0, 2 * H).unwrap();
    for (labels, samples) in &series {
        let part: Vec<(i64, f64)> = samples.iter().copied().filter(|s| s.0 < 2 * H).collect();
        let (min_t, max_t, chunk) = downsample(&part, RES_5M);
        w.add_encoded_series(labels, &[(min_t, max_t, Encoding::AGGR, &chunk)])
            .unwrap();
    }
    finish(w, RES_5M);
}

fn query(port: u16, q: &str, time_s: f64, resolution: &str) -> f64 {
    let path = format!(
        "/api/v1/query?query={}&time={time_s}&max_source_resolution={resolution}",
        q.replace(' ', "%20")
            .replace('[', "%5B")
            .replace(']', "%5D")
    );
    let (code, body) = http_get(port, &path).unwrap();
    assert_eq!(code, 200, "{q}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let result = &v["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{q}: {v}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn downsampled_blocks_serve_aggregates_by_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    write_bucket(&bucket);
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let (s_http, s_grpc, q_http) = (free_port(), free_port(), free_port());
    let _store = gauntlet(&[
        "store".into(),
        objstore,
        format!("--data-dir={}", dir.path().join("data").display()),
        format!("--http-address=127.0.0.1:{s_http}"),
        format!("--grpc-address=127.0.0.1:{s_grpc}"),
    ]);
    let _query = gauntlet(&[
        "query".into(),
        format!("--endpoint=127.0.0.1:{s_grpc}"),
        format!("--http-address=127.0.0.1:{q_http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
    ]);
    wait_until("querier sees the store", Duration::from_secs(30), || {
        http_get(q_http, "/api/v1/query?query=load&time=3600")
            .is_ok_and(|(c, b)| c == 200 && b.contains("\"load\""))
    })
    .unwrap();

    // Which blocks are read: the 5m block has one point per window, raw data one per scrape
    // (3.x ranges are left-open: 240 scrapes; 2.42's included both ends, 241).
    assert_eq!(
        query(q_http, "count_over_time(load[1h])", 3600.0, "raw"),
        240.0
    );
    assert_eq!(
        query(q_http, "count_over_time(load[1h])", 3600.0, "5m"),
        12.0
    );
    assert_eq!(
        query(q_http, "count_over_time(load[1h])", 3600.0, "1h"),
        12.0
    );
    // After 2h there is no 5m block: raw data fills the gap.
    assert_eq!(
        query(q_http, "count_over_time(load[1h])", 3.0 * 3600.0, "5m"),
        240.0
    );

    // min, max and sum aggregates give the raw answers over whole windows, across the
    // 5m block and the raw block after it.
    for q in [
        "min_over_time(load[2h])",
        "max_over_time(load[2h])",
        "sum_over_time(load[2h])",
        "sum_over_time(load[3h])",
    ] {
        let (raw, down) = (
            query(q_http, q, 7200.0, "raw"),
            query(q_http, q, 7200.0, "5m"),
        );
        assert!(
            (raw - down).abs() <= 1e-9 * raw.abs(),
            "{q}: raw {raw}, 5m {down}"
        );
    }
    // Averages come from sum / count per window: with full windows, the raw mean of the
    // hour's 240 samples.
    let first_hour: Vec<f64> = raw_series()[0]
        .1
        .iter()
        .filter(|s| s.0 < H)
        .map(|s| s.1)
        .collect();
    let mean = first_hour.iter().sum::<f64>() / first_hour.len() as f64;
    let down = query(q_http, "avg_over_time(load[1h])", 3600.0, "5m");
    assert!((down - mean).abs() < 1e-9 * mean, "avg {down} vs {mean}");

    // The counter resets at 1h inside the 5m chunk; at 2h the raw block continues from the
    // chunk's true last value, which only the counter chunk's closing raw sample tells.
    let raw = query(
        q_http,
        "increase(reqs_total[4h])",
        4.0 * 3600.0 - 1.0,
        "raw",
    );
    let down = query(q_http, "increase(reqs_total[4h])", 4.0 * 3600.0 - 1.0, "5m");
    assert!((raw - 958.0).abs() < 10.0, "raw increase {raw}");
    assert!(
        (raw - down).abs() < 0.02 * raw,
        "increase over 5m data {down} vs raw {raw}"
    );
}
