//! Native histogram downsampling: Thanos's test vectors and properties against brute force.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tsdb::chunkenc::histogram::{
    decode_all, AppendError, CounterResetHeader, CounterResetHint, FloatHistogramAppender,
    Histogram, HistogramAppender, Span, CUSTOM_BUCKETS_SCHEMA,
};

use super::*;
use tsdb::histogram::{self as fh, view};

/// A chunk owning its bytes, to lend out as an [`EncodedChunk`].
#[derive(Clone, Debug)]
struct Chunk {
    min: i64,
    max: i64,
    enc: Encoding,
    data: Vec<u8>,
}

fn encoded(cs: &[Chunk]) -> Vec<EncodedChunk<'_>> {
    cs.iter()
        .map(|c| (c.min, c.max, c.enc, &c.data[..]))
        .collect()
}

fn chunks_of(outs: &[AggrOut]) -> Vec<Chunk> {
    outs.iter()
        .map(|(min, max, data)| Chunk {
            min: *min,
            max: *max,
            enc: Encoding::AGGR,
            data: data.clone(),
        })
        .collect()
}

fn sp(v: &[(i32, u32)]) -> Vec<Span> {
    v.iter()
        .map(|&(offset, length)| Span { offset, length })
        .collect()
}

/// Prometheus's `tsdbutil.GenerateTestFloatHistogram(i)`.
fn test_fh(i: i64) -> Histogram {
    let f = i as f64;
    Histogram {
        count: 12.0 + f * 9.0,
        zero_count: 2.0 + f,
        zero_threshold: 0.001,
        sum: 18.4 * (f + 1.0),
        schema: 1,
        positive_spans: sp(&[(0, 2), (1, 2)]),
        positive_buckets: vec![f + 1.0, f + 2.0, f + 1.0, f + 1.0],
        negative_spans: sp(&[(0, 2), (1, 2)]),
        negative_buckets: vec![f + 1.0, f + 2.0, f + 1.0, f + 1.0],
        ..Histogram::default()
    }
}

fn with_hint(mut h: Histogram, hint: CounterResetHint) -> Histogram {
    h.counter_reset_hint = hint;
    h
}

/// `GenerateTestFloatHistograms(n)`: all but the first say "no counter reset".
fn test_fhs(n: usize) -> Vec<Histogram> {
    (0..n as i64)
        .map(|i| {
            let hint = if i > 0 {
                CounterResetHint::NotCounterReset
            } else {
                CounterResetHint::Unknown
            };
            with_hint(test_fh(i), hint)
        })
        .collect()
}

/// Thanos's `generateFloatHistograms(n...)`: the lists one after the other (each starting
/// over, hence a counter reset).
fn test_lists(ns: &[usize]) -> Vec<Histogram> {
    ns.iter().flat_map(|&n| test_fhs(n)).collect()
}

fn at_times(start: i64, step: i64, mut hs: Vec<Histogram>) -> Vec<Histogram> {
    for (i, h) in hs.iter_mut().enumerate() {
        h.t = start + step * i as i64;
    }
    hs
}

fn fh_chunk(samples: &[Histogram]) -> Chunk {
    let mut app = FloatHistogramAppender::new();
    for h in samples {
        app.append(h).unwrap();
    }
    Chunk {
        min: samples[0].t,
        max: samples[samples.len() - 1].t,
        enc: Encoding::FLOAT_HISTOGRAM,
        data: app.into_bytes(),
    }
}

/// Thanos's `chunksFromHistogramSamples`: float histogram chunks, a new one at each
/// detected counter reset.
fn fh_chunks_cut_at_resets(samples: &[Histogram]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=samples.len() {
        if i == samples.len() || fh::detect_reset(&view(&samples[i]), &view(&samples[i - 1])) {
            out.push(fh_chunk(&samples[start..i]));
            start = i;
        }
    }
    out
}

fn xor_chunk(samples: &[Sample]) -> Chunk {
    let mut app = XorAppender::new();
    for &(t, v) in samples {
        app.append(t, v);
    }
    Chunk {
        min: samples[0].0,
        max: samples[samples.len() - 1].0,
        enc: Encoding::XOR,
        data: app.into_bytes(),
    }
}

#[derive(Debug)]
enum Part {
    Absent,
    Floats(Vec<Sample>),
    Hists(Vec<Histogram>),
}

impl Part {
    fn floats(&self) -> &[Sample] {
        match self {
            Part::Floats(v) => v,
            p => panic!("not floats: {p:?}"),
        }
    }

    fn hists(&self) -> &[Histogram] {
        match self {
            Part::Hists(v) => v,
            p => panic!("not histograms: {p:?}"),
        }
    }
}

fn decode_xor(data: &[u8]) -> Vec<Sample> {
    let mut it = XorIterator::new(data);
    let mut out = Vec::new();
    while it.next() {
        out.push(it.at());
    }
    assert!(it.err().is_none());
    out
}

/// The decoded aggregates of an aggregate chunk, in count, sum, min, max, counter order.
fn parts(chunk: &[u8]) -> [Part; 5] {
    AggrType::ALL.map(|at| match aggr::get(chunk, at).unwrap() {
        None => Part::Absent,
        Some((Encoding::XOR, d)) => Part::Floats(decode_xor(d)),
        Some((enc, d)) => Part::Hists(decode_all(enc, d).unwrap()),
    })
}

/// Thanos's `counterResetAdjustFloatHistograms`: the running reset-corrected totals.
fn counter_reset_adjust(hs: &[Histogram]) -> Vec<Histogram> {
    let mut out: Vec<Histogram> = Vec::new();
    let mut counter = Histogram::default();
    for (i, h) in hs.iter().enumerate() {
        if i == 0 {
            counter = h.clone();
        } else if fh::detect_reset(&view(h), &view(&hs[i - 1])) {
            fh::add(&mut counter, &view(h));
        } else {
            let mut d = h.clone();
            fh::sub(&mut d, &view(&hs[i - 1]));
            fh::add(&mut counter, &view(&d));
        }
        out.push(counter.clone());
    }
    out
}

/// `expectedFloatHistogramsCounter`.
fn expected_counter(hs: &[Histogram], hint: CounterResetHint) -> Histogram {
    with_hint(counter_reset_adjust(hs).pop().unwrap(), hint)
}

/// `sumHistograms`.
fn sum_histograms(hs: &[Histogram]) -> Histogram {
    let mut sum = hs[0].clone();
    for h in &hs[1..] {
        fh::add(&mut sum, &view(h));
    }
    with_hint(sum, CounterResetHint::Gauge)
}

/// `expectedFloatHistogramsSum`: the sum of the adjusted totals from `from` on.
fn expected_sum(hs: &[Histogram], from: usize) -> Histogram {
    sum_histograms(&counter_reset_adjust(hs)[from..])
}

/// Go's `cmpopts.EquateApprox(0, 1e-9)`.
fn approx(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().min(b.abs())
}

/// Compares a decoded histogram with an expected one as Thanos's tests do: layout and hint
/// exactly, counts and sum approximately; `t` when given.
fn assert_fh(got: &Histogram, want: &Histogram, t: Option<i64>, what: &str) {
    if let Some(t) = t {
        assert_eq!(got.t, t, "{what}: timestamp");
    }
    assert_eq!(
        got.counter_reset_hint, want.counter_reset_hint,
        "{what}: hint"
    );
    assert_eq!(
        (got.schema, got.zero_threshold),
        (want.schema, want.zero_threshold),
        "{what}"
    );
    assert_eq!(got.positive_spans, want.positive_spans, "{what}");
    assert_eq!(got.negative_spans, want.negative_spans, "{what}");
    let ok = approx(got.count, want.count)
        && approx(got.zero_count, want.zero_count)
        && approx(got.sum, want.sum)
        && got.positive_buckets.len() == want.positive_buckets.len()
        && got.negative_buckets.len() == want.negative_buckets.len()
        && got
            .positive_buckets
            .iter()
            .chain(&got.negative_buckets)
            .zip(want.positive_buckets.iter().chain(&want.negative_buckets))
            .all(|(a, b)| approx(*a, *b));
    assert!(ok, "{what}:\n got {got:?}\nwant {want:?}");
}

/// Expected histogram aggregates of one chunk: (t, value) per window.
struct Expected {
    count: Vec<Sample>,
    counter: Vec<(i64, Histogram)>,
    sum: Vec<(i64, Histogram)>,
}

fn check_hist_chunk(out: &AggrOut, want: &Expected, what: &str) {
    let p = parts(&out.2);
    assert!(matches!(p[2], Part::Absent) && matches!(p[3], Part::Absent));
    assert_eq!(p[0].floats(), &want.count[..], "{what}: count");
    let counter = p[4].hists();
    assert_eq!(counter.len(), want.counter.len(), "{what}: counter");
    for (i, (g, (t, w))) in counter.iter().zip(&want.counter).enumerate() {
        assert_fh(g, w, Some(*t), &format!("{what}: counter {i}"));
    }
    let sum = p[1].hists();
    assert_eq!(sum.len(), want.sum.len(), "{what}: sum");
    for (i, (g, (t, w))) in sum.iter().zip(&want.sum).enumerate() {
        assert_fh(g, w, Some(*t), &format!("{what}: sum {i}"));
    }
    let ts: Vec<i64> = want.count.iter().map(|s| s.0).collect();
    assert_eq!((out.0, out.1), (ts[0], ts[ts.len() - 1]), "{what}: range");
}

// ---------------------------------------------------------------------------------------
// Thanos's vectors.

/// The histogram of Thanos's `TestDownsampleNativeHistograms`.
fn thanos_nh() -> Histogram {
    Histogram {
        count: 2.0,
        sum: 0.000551209,
        positive_spans: sp(&[(-97, 1), (4, 1)]),
        schema: 3,
        zero_threshold: 2.938735877055719e-39,
        positive_buckets: vec![1.0, 1.0],
        ..Histogram::default()
    }
}

/// `TestDownsampleNativeHistograms`, "regular NH downsampling": the same histogram every
/// minute for ten hours; to 5m and on to 1h.
#[test]
fn thanos_regular_nh_downsampling() {
    let start = 1_688_526_018_213i64;
    let samples: Vec<Histogram> = (0..)
        .map(|k| start + k * 60_000)
        .take_while(|&t| t < 1_688_562_258_213)
        .map(|t| Histogram { t, ..thanos_nh() })
        .collect();
    assert_eq!(samples.len(), 604);
    let raw = [fh_chunk(&samples)];
    let out5 = downsample_raw(&encoded(&raw), RES_5M).unwrap();
    assert_eq!(out5.len(), 1);
    let p = parts(&out5[0].2);
    assert!(matches!(p[2], Part::Absent) && matches!(p[3], Part::Absent));
    // Number of histograms in each window.
    let count = p[0].floats();
    assert_eq!(count.len(), 121);
    for (i, s) in count.iter().enumerate() {
        assert_eq!(s.1, if i == 120 { 4.0 } else { 5.0 });
    }
    // The counter does not increase: the first histogram everywhere.
    let counter = p[4].hists();
    assert_eq!(counter.len(), 1 + samples.len() / 5);
    for (i, c) in counter.iter().enumerate() {
        let hint = if i == 0 {
            CounterResetHint::Unknown
        } else {
            CounterResetHint::NotCounterReset
        };
        let want = Histogram {
            t: c.t,
            counter_reset_hint: hint,
            ..thanos_nh()
        };
        assert_eq!(c, &want, "counter {i}");
    }
    // The sum of the five histograms of each window (four in the last), exactly.
    let sum5m = |count: f64, buckets: f64, sum: f64| Histogram {
        count,
        counter_reset_hint: CounterResetHint::Gauge,
        sum,
        positive_buckets: vec![buckets, buckets],
        ..thanos_nh()
    };
    let sums = p[1].hists();
    assert_eq!(sums.len(), 121);
    for (i, s) in sums.iter().enumerate() {
        let want = if i == 120 {
            sum5m(8.0, 4.0, 0.002204836)
        } else {
            sum5m(10.0, 5.0, 0.002756045)
        };
        assert_eq!(s, &Histogram { t: s.t, ..want }, "sum {i}");
    }

    let out1h = downsample_aggr(&encoded(&chunks_of(&out5)), RES_5M, RES_1H).unwrap();
    assert_eq!(out1h.len(), 1);
    let p = parts(&out1h[0].2);
    assert!(matches!(p[2], Part::Absent) && matches!(p[3], Part::Absent));
    let sums = p[1].hists();
    assert_eq!(sums.len(), 11);
    for (i, s) in sums.iter().enumerate() {
        let want = if i == 10 {
            sum5m(8.0, 4.0, 0.002204836)
        } else {
            sum5m(120.0, 60.0, 0.03307253999999999)
        };
        assert_eq!(s, &Histogram { t: s.t, ..want }, "1h sum {i}");
    }
    let counts: Vec<f64> = p[0].floats().iter().map(|s| s.1).collect();
    assert_eq!(counts, [&[60.0; 10][..], &[4.0]].concat());
}

/// `TestDownsampleNativeHistograms`, "same series is float and then histogram": 52 minutes
/// of histograms, then floats; to 5m and 1h without error, one run of each kind.
#[test]
fn thanos_histograms_then_floats() {
    let start = 1_688_526_018_213i64;
    let times: Vec<i64> = (0..)
        .map(|k| start + k * 60_000)
        .take_while(|&t| t < 1_688_562_258_213)
        .collect();
    let hs: Vec<Histogram> = times[..52]
        .iter()
        .map(|&t| Histogram { t, ..thanos_nh() })
        .collect();
    let fs: Vec<Sample> = times[52..].iter().map(|&t| (t, 3.25)).collect();
    let raw = [fh_chunk(&hs), xor_chunk(&fs)];
    let out5 = downsample_raw(&encoded(&raw), RES_5M).unwrap();
    let kinds: Vec<bool> = out5
        .iter()
        .map(|c| matches!(parts(&c.2)[4], Part::Hists(_)))
        .collect();
    assert_eq!(kinds, [true, false]);
    let out1h = downsample_aggr(&encoded(&chunks_of(&out5)), RES_5M, RES_1H).unwrap();
    let kinds: Vec<bool> = out1h
        .iter()
        .map(|c| matches!(parts(&c.2)[4], Part::Hists(_)))
        .collect();
    assert_eq!(kinds, [true, false]);
    let total: f64 = out1h
        .iter()
        .flat_map(|c| parts(&c.2)[0].floats().to_vec())
        .map(|s| s.1)
        .sum();
    assert_eq!(total, times.len() as f64);
}

/// `TestDownSampleNativeHistogram`, "float histogram with 30 samples with counter resets
/// and 30s scrape interval": three lists (resets between them), one chunk each.
#[test]
fn thanos_counter_resets_30s() {
    let samples = at_times(0, 30_000, test_lists(&[15, 5, 10]));
    let raw = fh_chunks_cut_at_resets(&samples);
    assert_eq!(raw.len(), 3);
    let out5 = downsample_raw(&encoded(&raw), RES_5M).unwrap();
    assert_eq!(out5.len(), 1);
    use CounterResetHint::*;
    check_hist_chunk(
        &out5[0],
        &Expected {
            count: vec![(299_999, 10.0), (599_999, 10.0), (870_000, 10.0)],
            counter: vec![
                (299_999, expected_counter(&test_lists(&[10]), Unknown)),
                (
                    599_999,
                    expected_counter(&test_lists(&[15, 5]), NotCounterReset),
                ),
                (
                    870_000,
                    expected_counter(&test_lists(&[15, 5, 10]), NotCounterReset),
                ),
            ],
            sum: vec![
                (299_999, sum_histograms(&test_lists(&[10]))),
                (
                    599_999,
                    sum_histograms(&[&test_lists(&[15])[10..], &test_lists(&[5])].concat()),
                ),
                (870_000, sum_histograms(&test_lists(&[10]))),
            ],
        },
        "5m",
    );
    let out1h = downsample_aggr(&encoded(&chunks_of(&out5)), RES_5M, RES_1H).unwrap();
    assert_eq!(out1h.len(), 1);
    check_hist_chunk(
        &out1h[0],
        &Expected {
            count: vec![(870_000, 30.0)],
            counter: vec![(
                870_000,
                expected_counter(&test_lists(&[15, 5, 10]), Unknown),
            )],
            sum: vec![(870_000, sum_histograms(&test_lists(&[15, 5, 10])))],
        },
        "1h",
    );
}

/// The cases of `TestDownSampleNativeHistogram` that Thanos skips. They pass the scrape
/// interval where the start time belongs (`generateFloatHistogramSamples(30_000, 0, n)`);
/// with the start at 0, as their expectations say, they hold here.
#[test]
fn thanos_skipped_cases_with_their_intended_start() {
    use CounterResetHint::*;
    // "float histogram with 360 samples and 30s scrape interval": 1h only.
    let samples = at_times(0, 30_000, test_lists(&[360]));
    let out5 = downsample_raw(&encoded(&fh_chunks_cut_at_resets(&samples)), RES_5M).unwrap();
    assert_eq!(out5.len(), 1);
    let out1h = downsample_aggr(&encoded(&chunks_of(&out5)), RES_5M, RES_1H).unwrap();
    assert_eq!(out1h.len(), 1);
    let all = test_lists(&[360]);
    check_hist_chunk(
        &out1h[0],
        &Expected {
            count: vec![(3_599_999, 120.0), (7_199_999, 120.0), (10_770_000, 120.0)],
            counter: vec![
                (3_599_999, expected_counter(&all[..120], Unknown)),
                (7_199_999, expected_counter(&all[..240], NotCounterReset)),
                (10_770_000, expected_counter(&all, NotCounterReset)),
            ],
            sum: vec![
                (3_599_999, expected_sum(&all[..120], 0)),
                (7_199_999, expected_sum(&all[..240], 120)),
                (10_770_000, expected_sum(&all, 240)),
            ],
        },
        "360 samples 1h",
    );

    // "stale float histogram sample": the stale marker is dropped.
    let mut samples = at_times(0, 30_000, test_lists(&[10]));
    samples.push(Histogram::stale_marker(300_000));
    let out5 = downsample_raw(&encoded(&[fh_chunk(&samples)]), RES_5M).unwrap();
    assert_eq!(out5.len(), 1);
    let ten = test_lists(&[10]);
    check_hist_chunk(
        &out5[0],
        &Expected {
            count: vec![(270_000, 10.0)],
            counter: vec![(270_000, expected_counter(&ten, Unknown))],
            sum: vec![(270_000, expected_sum(&ten, 0))],
        },
        "stale 5m",
    );

    // "gauge sum aggregate no counter reset": eleven histograms, the last alone in its
    // window.
    let samples = at_times(0, 30_000, test_lists(&[11]));
    let out5 = downsample_raw(&encoded(&fh_chunks_cut_at_resets(&samples)), RES_5M).unwrap();
    assert_eq!(out5.len(), 1);
    check_hist_chunk(
        &out5[0],
        &Expected {
            count: vec![(299_999, 10.0), (300_000, 1.0)],
            counter: vec![
                (299_999, expected_counter(&ten, Unknown)),
                (300_000, with_hint(test_fh(10), NotCounterReset)),
            ],
            sum: vec![
                (299_999, expected_sum(&ten, 0)),
                (300_000, with_hint(test_fh(10), Gauge)),
            ],
        },
        "eleven 5m",
    );
    let out1h = downsample_aggr(&encoded(&chunks_of(&out5)), RES_5M, RES_1H).unwrap();
    let eleven = test_lists(&[11]);
    check_hist_chunk(
        &out1h[0],
        &Expected {
            count: vec![(300_000, 11.0)],
            counter: vec![(300_000, expected_counter(&eleven, Unknown))],
            sum: vec![(300_000, expected_sum(&eleven, 0))],
        },
        "eleven 1h",
    );

    // "gauge float histogram with 30 samples and 30s scrape interval": no expectations
    // upstream; gauges go through, as gauge chunks.
    let gauges: Vec<Histogram> = (0..30)
        .map(|x| {
            let i = ((x as f64).sin() * 100.0) as i64 + 100;
            Histogram {
                t: x * 30_000,
                ..with_hint(test_fh(i), Gauge)
            }
        })
        .collect();
    let out5 = downsample_raw(&encoded(&[fh_chunk(&gauges)]), RES_5M).unwrap();
    let p = parts(&out5[0].2);
    assert_eq!(
        p[0].floats().iter().map(|s| s.1).sum::<f64>(),
        30.0,
        "gauge counts"
    );
    assert!(p[4].hists().iter().all(|h| h.counter_reset_hint == Gauge));
    assert!(p[1].hists().iter().all(|h| h.counter_reset_hint == Gauge));
    let out1h = downsample_aggr(&encoded(&chunks_of(&out5)), RES_5M, RES_1H).unwrap();
    assert_eq!(parts(&out1h[0].2)[0].floats(), &[(870_000, 30.0)]);
}

/// `TestDownsampleMixedChunkTypes`: twenty histograms every 15s, then twenty floats.
#[test]
fn thanos_mixed_chunk_types() {
    use CounterResetHint::*;
    let hs = at_times(15_000, 15_000, test_fhs(20));
    let fs: Vec<Sample> = (0..20).map(|i| (315_000 + i * 15_000, i as f64)).collect();
    let raw = [fh_chunk(&hs), xor_chunk(&fs)];
    let out5 = downsample_raw(&encoded(&raw), RES_5M).unwrap();
    assert_eq!(out5.len(), 2);
    check_hist_chunk(
        &out5[0],
        &Expected {
            count: vec![(299_999, 19.0), (300_000, 1.0)],
            counter: vec![
                (299_999, test_fh(18)),
                (300_000, with_hint(test_fh(19), NotCounterReset)),
            ],
            sum: vec![
                (299_999, expected_sum(&test_fhs(19), 0)),
                (300_000, with_hint(test_fh(19), Gauge)),
            ],
        },
        "5m histograms",
    );
    let p = parts(&out5[1].2);
    assert_eq!(p[0].floats(), &[(599_999, 19.0), (600_000, 1.0)]);
    assert_eq!(
        p[4].floats(),
        &[
            (315_000, 0.0),
            (599_999, 18.0),
            (600_000, 19.0),
            (600_000, 19.0)
        ]
    );
    assert_eq!(p[1].floats(), &[(599_999, 171.0), (600_000, 19.0)]);

    let out1h = downsample_aggr(&encoded(&chunks_of(&out5)), RES_5M, RES_1H).unwrap();
    assert_eq!(out1h.len(), 2);
    check_hist_chunk(
        &out1h[0],
        &Expected {
            count: vec![(300_000, 20.0)],
            counter: vec![(300_000, test_fh(19))],
            sum: vec![(300_000, expected_sum(&test_fhs(20), 0))],
        },
        "1h histograms",
    );
    let p = parts(&out1h[1].2);
    assert_eq!(p[0].floats(), &[(600_000, 20.0)]);
    assert_eq!(
        p[4].floats(),
        &[(315_000, 0.0), (600_000, 19.0), (600_000, 19.0)]
    );
    assert_eq!(p[1].floats(), &[(600_000, 190.0)]);
}

// ---------------------------------------------------------------------------------------
// Edge cases.

#[test]
fn custom_buckets_are_refused() {
    let nhcb = Histogram {
        t: 1000,
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: 3.0,
        sum: 1.0,
        positive_spans: sp(&[(0, 2)]),
        positive_buckets: vec![1.0, 2.0],
        custom_values: vec![1.0, 5.0],
        ..Histogram::default()
    };
    let xor = xor_chunk(&[(10, 1.0)]);
    let raw = [xor, fh_chunk(&[nhcb])];
    let err = downsample_raw(&encoded(&raw), RES_5M).unwrap_err();
    assert!(
        matches!(err, DownsampleError::CustomBuckets { chunk: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("custom buckets"), "{err}");
    let err = downsample_aggr(&encoded(&raw), RES_5M, RES_1H).unwrap_err();
    assert!(
        matches!(err, DownsampleError::CustomBuckets { chunk: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn integer_histogram_chunks_and_high_schemas() {
    // Integer chunks downsample like float ones; schemas above 8 are read as 8.
    let hs: Vec<Histogram> = (0..10)
        .map(|i| Histogram {
            t: 1_000 + i * 30_000,
            ..test_fh(i)
        })
        .collect();
    let mut app = HistogramAppender::new();
    for h in &hs {
        app.append(h).unwrap();
    }
    let int = Chunk {
        min: hs[0].t,
        max: hs[9].t,
        enc: Encoding::HISTOGRAM,
        data: app.into_bytes(),
    };
    let float = fh_chunk(&hs);
    let a = downsample_raw(&encoded(&[int]), RES_5M).unwrap();
    let b = downsample_raw(&encoded(&[float]), RES_5M).unwrap();
    assert_eq!(a, b);

    let fine: Vec<Histogram> = hs
        .iter()
        .map(|h| Histogram {
            schema: 10,
            ..h.clone()
        })
        .collect();
    let out = downsample_raw(&encoded(&[fh_chunk(&fine)]), RES_5M).unwrap();
    let p = parts(&out[0].2);
    assert!(p[4].hists().iter().all(|h| h.schema == 8));
    let bad: Vec<Histogram> = hs
        .iter()
        .map(|h| Histogram {
            schema: 60,
            ..h.clone()
        })
        .collect();
    let err = downsample_raw(&encoded(&[fh_chunk(&bad)]), RES_5M).unwrap_err();
    assert!(
        matches!(err, DownsampleError::UnknownSchema { schema: 60, .. }),
        "{err:?}"
    );
}

#[test]
fn batches_work_at_the_lowest_schema() {
    // A batch with schema 1 and schema 0 histograms: all aggregates at schema 0, and the
    // finer histogram after a coarser one counts as a reset (Thanos's rule).
    let a = Histogram {
        t: 1_000,
        ..test_fh(0)
    };
    // test_fh(1) at schema 0: no bucket below a's (reduced) ones.
    let mut b = Histogram::default();
    fh::copy_to_schema(&mut b, &view(&test_fh(1)), 0);
    b.t = 2_000;
    let c = Histogram {
        t: 3_000,
        ..test_fh(2)
    };
    let raw = [
        fh_chunk(std::slice::from_ref(&a)),
        fh_chunk(&[b.clone()]),
        fh_chunk(std::slice::from_ref(&c)),
    ];
    let out = downsample_raw(&encoded(&raw), RES_5M).unwrap();
    let p = parts(&out[0].2);
    let counter = &p[4].hists()[0];
    assert_eq!(counter.schema, 0);
    assert_eq!(p[1].hists()[0].schema, 0);
    // a (reduced) + (b - a reduced) + c reduced (reset: schema went up).
    assert_eq!(counter.count, b.count + c.count);
    assert_eq!(p[1].hists()[0].count, a.count + b.count + c.count);
}

#[test]
fn zero_threshold_change_cuts_the_output_chunk() {
    // Thanos would lose the windows before the change (the appender cuts a new chunk and
    // Thanos keeps only that); here the output chunk ends before that window instead.
    let mut hs = at_times(0, 60_000, test_fhs(12));
    for h in &mut hs[6..] {
        h.zero_threshold = 0.5;
        h.counter_reset_hint = CounterResetHint::Unknown;
    }
    let raw = [fh_chunk(&hs[..6]), fh_chunk(&hs[6..])];
    let out = downsample_raw(&encoded(&raw), RES_5M).unwrap();
    assert_eq!(out.len(), 2);
    let counts: Vec<Vec<Sample>> = out
        .iter()
        .map(|c| parts(&c.2)[0].floats().to_vec())
        .collect();
    assert_eq!(
        counts,
        [vec![(299_999, 5.0)], vec![(599_999, 5.0), (660_000, 2.0)]]
    );
    let p = parts(&out[1].2);
    assert!(p[4].hists().iter().all(|h| h.zero_threshold == 0.5));
    assert_eq!(p[4].hists().len(), 2);
}

// ---------------------------------------------------------------------------------------
// Properties against brute force.

/// A raw histogram counter series: one layout, counts that grow by random increments, with
/// counter resets and stale markers, cut into chunks of random sizes (and where the
/// appender says so).
#[derive(Clone, Debug)]
struct HistSeries {
    float: bool,
    schema: i32,
    zero_threshold: f64,
    spans: (Vec<Span>, Vec<Span>),
    /// (time step, 0 normal / 1 reset / 2 stale marker, increments)
    steps: Vec<(i64, u8, Vec<u32>)>,
    sizes: Vec<usize>,
}

fn spans_strategy() -> impl Strategy<Value = Vec<Span>> {
    (
        -5i32..5,
        proptest::collection::vec((1i32..3, 1u32..4), 0..3),
    )
        .prop_map(|(first, rest)| {
            rest.into_iter()
                .enumerate()
                .map(|(i, (o, length))| Span {
                    offset: if i == 0 { first } else { o },
                    length,
                })
                .collect()
        })
}

fn hist_series() -> impl Strategy<Value = HistSeries> {
    let step = prop_oneof![
        70 => 1i64..=60_000,
        25 => 60_000i64..=1_200_000,
        5 => 3_600_000i64..=30_000_000,
    ];
    let kind = prop_oneof![94 => Just(0u8), 4 => Just(1u8), 2 => Just(2u8)];
    (
        any::<bool>(),
        -2i32..=4,
        prop_oneof![Just(0.0), Just(2f64.powi(-128)), Just(0.25)],
        (spans_strategy(), spans_strategy()),
        proptest::collection::vec(
            (step, kind, proptest::collection::vec(0u32..20, 14)),
            1..400,
        ),
        proptest::collection::vec(1usize..150, 1..8),
    )
        .prop_map(
            |(float, schema, zero_threshold, spans, steps, sizes)| HistSeries {
                float,
                schema,
                zero_threshold,
                spans,
                steps,
                sizes,
            },
        )
}

enum App {
    Int(HistogramAppender),
    Float(FloatHistogramAppender),
}

impl App {
    fn append(
        &mut self,
        h: &Histogram,
    ) -> std::result::Result<tsdb::chunkenc::histogram::Appended, AppendError> {
        match self {
            App::Int(a) => a.append(h),
            App::Float(a) => a.append(h),
        }
    }
    fn num_samples(&self) -> u16 {
        match self {
            App::Int(a) => a.num_samples(),
            App::Float(a) => a.num_samples(),
        }
    }
    fn header_after(&mut self, h: &Histogram) -> CounterResetHeader {
        match self {
            App::Int(a) => a.counter_reset_header_after(h),
            App::Float(a) => a.counter_reset_header_after(h),
        }
    }
    /// Takes the chunk and starts a new one with `header`.
    fn cut(&mut self, header: CounterResetHeader) -> Vec<u8> {
        match self {
            App::Int(a) => {
                let b = a.bytes().to_vec();
                a.reset();
                a.set_counter_reset_header(header);
                b
            }
            App::Float(a) => {
                let b = a.bytes().to_vec();
                a.reset();
                a.set_counter_reset_header(header);
                b
            }
        }
    }
}

/// A raw sample as the downsampler sees it, and whether it starts its chunk (its hint is
/// then unknown and resets are detected; later samples of a chunk say "no reset").
struct Kept {
    h: Histogram,
    first_in_chunk: bool,
}

/// The raw chunks of a series and the samples that go into the aggregates.
fn build_series(s: &HistSeries) -> (Vec<Chunk>, Vec<Kept>) {
    let np = tsdb::chunkenc::histogram::bucket_count(&s.spans.0) as usize;
    let nn = tsdb::chunkenc::histogram::bucket_count(&s.spans.1) as usize;
    let mut cur = Histogram {
        schema: s.schema,
        zero_threshold: s.zero_threshold,
        positive_spans: s.spans.0.clone(),
        negative_spans: s.spans.1.clone(),
        positive_buckets: vec![0.0; np],
        negative_buckets: vec![0.0; nn],
        ..Histogram::default()
    };
    let mut app = if s.float {
        App::Float(FloatHistogramAppender::new())
    } else {
        App::Int(HistogramAppender::new())
    };
    let enc = if s.float {
        Encoding::FLOAT_HISTOGRAM
    } else {
        Encoding::HISTOGRAM
    };
    let mut chunks = Vec::new();
    let mut kept = Vec::new();
    let mut t = 0i64;
    let (mut min, mut max) = (0, 0);
    let mut size_i = 0;
    let frac = if s.float { 0.25 } else { 0.0 };
    for (dt, kind, incs) in &s.steps {
        t += dt;
        let h = if *kind == 2 {
            Histogram::stale_marker(t)
        } else {
            let reset = *kind == 1;
            let mut inc = incs.iter().map(|&x| f64::from(x));
            for b in cur
                .positive_buckets
                .iter_mut()
                .chain(cur.negative_buckets.iter_mut())
            {
                let x = inc.next().unwrap_or(1.0) + frac;
                *b = if reset { x } else { *b + x };
            }
            let z = f64::from(incs[13] % 5);
            cur.zero_count = if reset { z } else { cur.zero_count + z };
            cur.count = cur.zero_count
                + cur.positive_buckets.iter().sum::<f64>()
                + cur.negative_buckets.iter().sum::<f64>();
            cur.sum += if reset {
                -cur.sum + 1.5
            } else {
                f64::from(incs[0]) * 0.5
            };
            cur.t = t;
            cur.clone()
        };
        let full = usize::from(app.num_samples()) >= s.sizes[size_i % s.sizes.len()];
        let res: std::result::Result<_, AppendError> = if full {
            Err(AppendError::Cut {
                reason: tsdb::chunkenc::histogram::CutReason::Full,
                header: app.header_after(&h),
            })
        } else {
            app.append(&h)
        };
        if let Err(e) = res {
            let AppendError::Cut { header, .. } = e else {
                panic!("{e}");
            };
            chunks.push(Chunk {
                min,
                max,
                enc,
                data: app.cut(header),
            });
            size_i += 1;
            app.append(&h).unwrap();
        }
        if app.num_samples() == 1 {
            min = t;
        }
        max = t;
        if !h.is_stale() {
            kept.push(Kept {
                h,
                first_in_chunk: app.num_samples() == 1,
            });
        }
    }
    chunks.push(Chunk {
        min,
        max,
        enc,
        data: match &app {
            App::Int(a) => a.bytes().to_vec(),
            App::Float(a) => a.bytes().to_vec(),
        },
    });
    (chunks, kept)
}

/// Whether any count of `h` is below that of `prev` (same layout), leaving out buckets
/// inside the zero bucket (upper bound ≤ the zero threshold), which reset detection skips.
fn decreased(h: &Histogram, prev: &Histogram) -> bool {
    let above = |spans: &[Span]| -> Vec<bool> {
        let mut out = Vec::new();
        let mut idx = 0;
        for s in spans {
            idx += s.offset;
            for _ in 0..s.length {
                out.push(fh::bound(idx, h.schema) > h.zero_threshold);
                idx += 1;
            }
        }
        out
    };
    let side = |spans: &[Span], a: &[f64], b: &[f64]| {
        above(spans)
            .iter()
            .zip(a.iter().zip(b))
            .any(|(&above, (x, y))| above && x < y)
    };
    h.count < prev.count
        || h.zero_count < prev.zero_count
        || side(
            &h.positive_spans,
            &h.positive_buckets,
            &prev.positive_buckets,
        )
        || side(
            &h.negative_spans,
            &h.negative_buckets,
            &prev.negative_buckets,
        )
}

/// The reset-corrected total (count, sum) over `samples`, resets detected only at the first
/// sample of a chunk, as the chunks' hints allow.
fn reference_total(samples: &[(&Histogram, bool)]) -> (f64, f64) {
    let (first, _) = samples[0];
    let (mut count, mut sum) = (first.count, first.sum);
    for w in samples.windows(2) {
        let ((p, _), (h, first_in_chunk)) = (w[0], w[1]);
        if first_in_chunk && decreased(h, p) {
            count += h.count;
            sum += h.sum;
        } else {
            count += h.count - p.count;
            sum += h.sum - p.sum;
        }
    }
    (count, sum)
}

/// Per aligned window: the number of samples.
fn brute_counts<'a>(ts: impl Iterator<Item = &'a i64>, res: i64) -> BTreeMap<i64, f64> {
    let mut w = BTreeMap::new();
    for t in ts {
        *w.entry(t - t % res).or_insert(0.0) += 1.0;
    }
    w
}

/// Checks the shape of histogram aggregate chunks and returns, per chunk, its count
/// aggregate and its counter aggregate.
fn hist_outputs(outs: &[AggrOut]) -> Vec<(Vec<Sample>, Vec<Histogram>)> {
    let mut res = Vec::new();
    for (i, (mint, maxt, data)) in outs.iter().enumerate() {
        if i > 0 {
            assert!(outs[i - 1].1 < *mint, "chunks overlap or go back in time");
        }
        for (at, enc) in [
            (AggrType::Count, Some(Encoding::XOR)),
            (AggrType::Sum, Some(Encoding::FLOAT_HISTOGRAM)),
            (AggrType::Min, None),
            (AggrType::Max, None),
            (AggrType::Counter, Some(Encoding::FLOAT_HISTOGRAM)),
        ] {
            assert_eq!(aggr::get(data, at).unwrap().map(|p| p.0), enc);
        }
        let p = parts(data);
        let count = p[0].floats().to_vec();
        let counter = p[4].hists().to_vec();
        let ts: Vec<i64> = count.iter().map(|s| s.0).collect();
        assert!(ts.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(counter.iter().map(|h| h.t).collect::<Vec<_>>(), ts);
        assert_eq!(p[1].hists().iter().map(|h| h.t).collect::<Vec<_>>(), ts);
        assert_eq!((*mint, *maxt), (ts[0], ts[ts.len() - 1]));
        res.push((count, counter));
    }
    res
}

fn check_hist_series(s: &HistSeries) {
    let (chunks, kept) = build_series(s);
    let out5 = downsample_raw(&encoded(&chunks), RES_5M).unwrap();
    if kept.is_empty() {
        assert!(out5.is_empty());
        return;
    }
    // 5m: the count of each window is the number of raw histograms in it.
    let per_chunk = hist_outputs(&out5);
    let mut got = BTreeMap::new();
    for (count, _) in &per_chunk {
        for &(t, v) in count {
            assert!(got.insert(t - t % RES_5M, v).is_none(), "window twice");
        }
    }
    assert_eq!(got, brute_counts(kept.iter().map(|k| &k.h.t), RES_5M));
    // The counter at the end of each chunk is the reset-corrected total of its batch.
    let mut next = 0;
    for (count, counter) in &per_chunk {
        let last = count[count.len() - 1].0;
        let end = kept.partition_point(|k| k.h.t <= last);
        let batch: Vec<(&Histogram, bool)> = kept[next..end]
            .iter()
            .map(|k| (&k.h, k.first_in_chunk))
            .collect();
        let (c, s) = reference_total(&batch);
        let final_counter = &counter[counter.len() - 1];
        assert_eq!(
            (final_counter.count, final_counter.sum),
            (c, s),
            "5m counter"
        );
        next = end;
    }
    assert_eq!(next, kept.len());

    // 1h: counts add up per window; the counter at the end of each chunk is the
    // reset-corrected total of the 5m counters it was made from.
    let out1h = downsample_aggr(&encoded(&chunks_of(&out5)), RES_5M, RES_1H).unwrap();
    let per_chunk_1h = hist_outputs(&out1h);
    let mut got = BTreeMap::new();
    for (count, _) in &per_chunk_1h {
        for &(t, v) in count {
            *got.entry(t - t % RES_1H).or_insert(0.0) += v;
        }
    }
    assert_eq!(got, brute_counts(kept.iter().map(|k| &k.h.t), RES_1H));
    let mut next = 0;
    for (count, counter) in &per_chunk_1h {
        let last = count[count.len() - 1].0;
        let mut batch = Vec::new();
        while next < per_chunk.len() && per_chunk[next].0[0].0 <= last {
            for (i, h) in per_chunk[next].1.iter().enumerate() {
                batch.push((h, i == 0));
            }
            next += 1;
        }
        let (c, s) = reference_total(&batch);
        let final_counter = &counter[counter.len() - 1];
        assert_eq!(
            (final_counter.count, final_counter.sum),
            (c, s),
            "1h counter"
        );
    }
    assert_eq!(next, per_chunk.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn histogram_counts_and_counters_match_brute_force(series in hist_series()) {
        check_hist_series(&series);
    }
}

// ---------------------------------------------------------------------------------------
// Cross-check against Thanos's own code.

/// Compares with the output of Thanos's downsampling code on random histogram series (see
/// [`super::hist_testdata`]). Sub-chunks agree up to the open zero byte of our 2.42-style bit
/// streams; where Thanos lost windows, ours hold the same windows (over more chunks) and
/// those Thanos kept have the same values.
#[test]
fn thanos_histogram_vectors() {
    check_thanos_cases(super::hist_testdata::THANOS_HISTOGRAM_CASES);
}

/// The same over a larger generated file named by `THANOS_HISTOGRAM_VECTORS` (same format);
/// skipped when it is not set.
#[test]
fn thanos_histogram_vectors_from_file() {
    let Ok(path) = std::env::var("THANOS_HISTOGRAM_VECTORS") else {
        return;
    };
    check_thanos_cases(&std::fs::read_to_string(path).unwrap());
}

fn check_thanos_cases(text: &str) {
    let cases: serde_json::Value = serde_json::from_str(text).unwrap();
    let chunks = |v: &serde_json::Value| -> Vec<Chunk> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|c| Chunk {
                        min: c["min"].as_i64().unwrap(),
                        max: c["max"].as_i64().unwrap(),
                        enc: Encoding(c["enc"].as_u64().unwrap() as u8),
                        data: hex_decode(c["hex"].as_str().unwrap()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut compared = 0;
    for (ci, c) in cases.as_array().unwrap().iter().enumerate() {
        if !c["note"].as_str().unwrap_or("").is_empty() {
            continue;
        }
        let raw = chunks(&c["raw"]);
        if c["lossy"].as_bool().unwrap() {
            let got5 = downsample_raw(&encoded(&raw), RES_5M).unwrap();
            same_windows_where_kept(&got5, &chunks(&c["res5"]), &format!("case {ci} 5m"));
            continue;
        }
        let want5 = chunks(&c["res5"]);
        let want1h = chunks(&c["res1h"]);
        let got5 = downsample_raw(&encoded(&raw), RES_5M).unwrap();
        same_aggr_chunks(&got5, &want5, &format!("case {ci} 5m"));
        if want5.is_empty() {
            continue;
        }
        let got1h = downsample_aggr(&encoded(&want5), RES_5M, RES_1H).unwrap();
        same_aggr_chunks(&got1h, &want1h, &format!("case {ci} 1h"));
        compared += 1;
    }
    assert!(compared > 0);
}

/// For a single Thanos output chunk that lost windows: the same count windows, and the
/// sum and counter windows Thanos kept are the last of ours.
fn same_windows_where_kept(got: &[AggrOut], want: &[Chunk], what: &str) {
    let ours: Vec<[Part; 5]> = got.iter().map(|c| parts(&c.2)).collect();
    let theirs: Vec<[Part; 5]> = want.iter().map(|c| parts(&c.data)).collect();
    let floats = |ps: &[[Part; 5]]| -> Vec<Sample> {
        ps.iter().flat_map(|p| p[0].floats().to_vec()).collect()
    };
    assert_eq!(floats(&ours), floats(&theirs), "{what}: count");
    for at in [1, 4] {
        let hists = |ps: &[[Part; 5]]| -> Vec<String> {
            ps.iter()
                .flat_map(|p| p[at].hists().to_vec())
                .map(|mut h| {
                    // Headers differ after a cut, and hints follow them; layouts follow the
                    // samples of the chunk: compare the populated buckets.
                    h.counter_reset_hint = CounterResetHint::Unknown;
                    let p = populated(&h.positive_spans, &h.positive_buckets);
                    let n = populated(&h.negative_spans, &h.negative_buckets);
                    (h.positive_spans, h.negative_spans) = (Vec::new(), Vec::new());
                    (h.positive_buckets, h.negative_buckets) = (Vec::new(), Vec::new());
                    format!("{h:?} {p:?} {n:?}")
                })
                .collect()
        };
        let (o, t) = (hists(&ours), hists(&theirs));
        assert!(t.len() < o.len() || t == o, "{what}: aggregate {at}");
        assert_eq!(&o[o.len() - t.len()..], &t[..], "{what}: aggregate {at}");
    }
}

/// The populated buckets by index.
fn populated(spans: &[Span], buckets: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::new();
    let mut idx = 0;
    let mut b = buckets.iter();
    for s in spans {
        idx += s.offset;
        for _ in 0..s.length {
            let v = *b.next().unwrap();
            if v != 0.0 {
                out.push((idx, v));
            }
            idx += 1;
        }
    }
    out
}

fn same_aggr_chunks(got: &[AggrOut], want: &[Chunk], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: chunks");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!((g.0, g.1), (w.min, w.max), "{what} chunk {i}: range");
        for at in AggrType::ALL {
            let (a, b) = (
                aggr::get(&g.2, at).unwrap(),
                aggr::get(&w.data, at).unwrap(),
            );
            match (a, b) {
                (None, None) => {}
                (Some((ea, da)), Some((eb, db))) => {
                    assert_eq!(ea, eb, "{what} chunk {i} {}", at.name());
                    let same = da == db
                        || (da.len() == db.len() + 1 && da.ends_with(&[0]) && da.starts_with(db));
                    if !same && ea != Encoding::XOR {
                        let (x, y) = (decode_all(ea, da).unwrap(), decode_all(eb, db).unwrap());
                        assert_eq!(x.len(), y.len(), "{what} chunk {i} {}", at.name());
                        for (k, (a, b)) in x.iter().zip(&y).enumerate() {
                            assert_eq!(
                                format!("{a:?}"),
                                format!("{b:?}"),
                                "{what} chunk {i} {} sample {k}",
                                at.name()
                            );
                        }
                    }
                    assert!(
                        same,
                        "{what} chunk {i} {}:\n got {da:02x?}\nwant {db:02x?}",
                        at.name()
                    );
                }
                (a, b) => panic!("{what} chunk {i} {}: {a:?} vs {b:?}", at.name()),
            }
        }
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
