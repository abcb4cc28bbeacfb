use std::collections::BTreeMap;

use proptest::prelude::*;

use super::super::varbit::{put_varbit_int, put_varbit_uint};
use super::super::{BitWriter, Encoding, STALE_NAN_BITS};
use super::*;

/// Writes an integer histogram chunk the way Prometheus 2.42 does, for two samples.
fn two_sample_chunk() -> Vec<u8> {
    let mut bw = BitWriter::from_bytes(vec![0, 2, 0b0100_0000]);
    bw.write_byte(0); // zero threshold 0
    put_varbit_int(&mut bw, 3); // schema
    put_varbit_uint(&mut bw, 1); // one positive span
    put_varbit_uint(&mut bw, 2);
    put_varbit_int(&mut bw, 1);
    put_varbit_uint(&mut bw, 0); // no negative spans
    put_varbit_int(&mut bw, 1000); // t
    put_varbit_uint(&mut bw, 5); // count
    put_varbit_uint(&mut bw, 1); // zero count
    bw.write_bits(12.5f64.to_bits(), 64);
    put_varbit_int(&mut bw, 3); // bucket 0 = 3
    put_varbit_int(&mut bw, -2); // bucket 1 = 1
                                 // sample 1: t=2000, count 7, zero 1, sum same, buckets 4, 2.
    put_varbit_int(&mut bw, 1000);
    put_varbit_int(&mut bw, 2);
    put_varbit_int(&mut bw, 0);
    bw.write_bit(false); // sum unchanged
    put_varbit_int(&mut bw, 1); // delta of first bucket delta: 3 → 4
    put_varbit_int(&mut bw, 0); // second delta -2 unchanged → 2
    bw.into_bytes()
}

fn sp(v: &[(i32, u32)]) -> Vec<Span> {
    v.iter()
        .map(|&(offset, length)| Span { offset, length })
        .collect()
}

#[test]
fn decodes_integer_histograms() {
    let hs = decode_all(Encoding::HISTOGRAM, &two_sample_chunk()).unwrap();
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[0].positive_buckets, vec![3.0, 1.0]);
    assert_eq!((hs[1].t, hs[1].count, hs[1].zero_count), (2000, 7.0, 1.0));
    assert_eq!(hs[1].positive_buckets, vec![4.0, 2.0]);
    assert_eq!(hs[1].sum, 12.5);
    assert_eq!(hs[0].positive_spans, sp(&[(1, 2)]));
    assert_eq!(hs[0].counter_reset_hint, CounterResetHint::Unknown);
    assert_eq!(hs[1].counter_reset_hint, CounterResetHint::NotCounterReset);
}

#[test]
fn truncation_is_an_error() {
    let c = two_sample_chunk();
    for cut in 0..c.len() - 1 {
        assert!(
            decode_all(Encoding::HISTOGRAM, &c[..cut]).is_err(),
            "cut {cut}"
        );
    }
}

fn hist(t: i64, count: f64, zc: f64, sum: f64, spans: &[(i32, u32)], pb: &[f64]) -> Histogram {
    Histogram {
        t,
        schema: 3,
        zero_threshold: 0.0,
        zero_count: zc,
        count,
        sum,
        positive_spans: sp(spans),
        positive_buckets: pb.to_vec(),
        ..Histogram::default()
    }
}

#[test]
fn int_appender_writes_the_hand_encoded_chunk() {
    let mut app = HistogramAppender::new();
    app.set_counter_reset_header(CounterResetHeader::NotCounterReset);
    let a = hist(1000, 5.0, 1.0, 12.5, &[(1, 2)], &[3.0, 1.0]);
    let b = hist(2000, 7.0, 1.0, 12.5, &[(1, 2)], &[4.0, 2.0]);
    assert_eq!(app.append(&a), Ok(Appended::InPlace));
    assert_eq!(app.append(&b), Ok(Appended::InPlace));
    assert_eq!(app.bytes(), &two_sample_chunk()[..]);
}

#[test]
fn new_buckets_recode_the_chunk() {
    for float in [false, true] {
        let a = hist(10, 4.0, 0.0, 1.0, &[(0, 2)], &[1.0, 3.0]);
        // Bucket 3 is new, bucket 1 is missing but was empty in a... it was not: 3.
        let b = hist(20, 9.0, 0.0, 2.0, &[(0, 2), (1, 1)], &[2.0, 4.0, 3.0]);
        let hs = append_all(float, &[a.clone(), b.clone()]);
        assert_eq!(hs.1, vec![Ok(Appended::InPlace), Ok(Appended::Recoded)]);
        let out = decode_all(enc(float), &hs.0).unwrap();
        assert_eq!(out[0].positive_spans, b.positive_spans);
        assert_eq!(out[0].positive_buckets, vec![1.0, 3.0, 0.0]);
        assert_eq!(out[1].positive_buckets, b.positive_buckets);
        // A sample missing bucket 3 (empty in the chunk's first sample, but 3 in the
        // second): a reset.
        let c = hist(30, 9.0, 0.0, 3.0, &[(0, 2)], &[2.0, 4.0]);
        let (_, res) = append_all(float, &[a.clone(), b.clone(), c]);
        assert!(matches!(
            res[2],
            Err(AppendError::Cut {
                reason: CutReason::CounterReset,
                header: CounterResetHeader::CounterReset
            })
        ));
        // Missing a bucket that is empty in the last sample: filled in.
        let b0 = hist(20, 9.0, 0.0, 2.0, &[(0, 2), (1, 1)], &[2.0, 4.0, 0.0]);
        let c = hist(30, 9.0, 0.0, 3.0, &[(0, 2)], &[2.0, 5.0]);
        let (bytes, res) = append_all(float, &[a, b0, c]);
        assert_eq!(res[2], Ok(Appended::InPlace));
        let out = decode_all(enc(float), &bytes).unwrap();
        assert_eq!(out[2].positive_buckets, vec![2.0, 5.0, 0.0]);
    }
}

#[test]
fn gauges_take_buckets_both_ways_and_decreases() {
    for float in [false, true] {
        let mut a = hist(10, 4.0, 1.0, 1.0, &[(0, 2)], &[1.0, 3.0]);
        let mut b = hist(20, 2.0, 0.0, 2.0, &[(1, 2)], &[1.0, 1.0]);
        a.counter_reset_hint = CounterResetHint::Gauge;
        b.counter_reset_hint = CounterResetHint::Gauge;
        let (bytes, res) = append_all(float, &[a, b]);
        assert_eq!(res, vec![Ok(Appended::InPlace), Ok(Appended::Recoded)]);
        let out = decode_all(enc(float), &bytes).unwrap();
        assert_eq!(out[0].positive_spans, sp(&[(0, 3)]));
        assert_eq!(out[0].positive_buckets, vec![1.0, 3.0, 0.0]);
        assert_eq!(out[1].positive_buckets, vec![0.0, 1.0, 1.0]);
        assert!(out
            .iter()
            .all(|h| h.counter_reset_hint == CounterResetHint::Gauge));
        assert_eq!(out[1].count, 2.0);
    }
}

#[test]
fn cuts_follow_prometheus() {
    let base = hist(10, 4.0, 1.0, 1.0, &[(0, 2)], &[1.0, 3.0]);
    let next = |f: &dyn Fn(&mut Histogram)| {
        let mut h = base.clone();
        h.t = 20;
        f(&mut h);
        h
    };
    let cases: Vec<(Histogram, CutReason, CounterResetHeader, CounterResetHeader)> = vec![
        (
            next(&|h| h.count = 3.0),
            CutReason::CounterReset,
            CounterResetHeader::CounterReset,
            CounterResetHeader::CounterReset,
        ),
        (
            next(&|h| h.schema = 2),
            CutReason::Layout,
            CounterResetHeader::Unknown,
            CounterResetHeader::Unknown,
        ),
        (
            next(&|h| h.zero_threshold = 0.5),
            CutReason::Layout,
            CounterResetHeader::Unknown,
            CounterResetHeader::Unknown,
        ),
        (
            next(&|h| h.counter_reset_hint = CounterResetHint::CounterReset),
            CutReason::CounterReset,
            CounterResetHeader::CounterReset,
            CounterResetHeader::CounterReset,
        ),
        (
            next(&|h| h.counter_reset_hint = CounterResetHint::Gauge),
            CutReason::KindChange,
            CounterResetHeader::Gauge,
            CounterResetHeader::Gauge,
        ),
        (
            next(&|h| h.positive_buckets[0] = 0.0),
            CutReason::CounterReset,
            CounterResetHeader::CounterReset,
            CounterResetHeader::CounterReset,
        ),
    ];
    for (h, reason, int_header, float_header) in cases {
        for (float, header) in [(false, int_header), (true, float_header)] {
            let (_, res) = append_all(float, &[base.clone(), h.clone()]);
            assert_eq!(
                res[1],
                Err(AppendError::Cut { reason, header }),
                "{h:?} float={float}"
            );
        }
    }
    // After a stale marker only stale markers.
    let stale = Histogram::stale_marker(20);
    let after = next(&|h| h.t = 30);
    for float in [false, true] {
        let (_, res) = append_all(float, &[base.clone(), stale.clone(), after.clone()]);
        assert_eq!(res[1], Ok(Appended::InPlace));
        assert!(matches!(
            res[2],
            Err(AppendError::Cut {
                reason: CutReason::AfterStale,
                ..
            })
        ));
    }
    // A counter histogram after gauges: the integer chunk says no reset, as Prometheus.
    let mut g = base.clone();
    g.counter_reset_hint = CounterResetHint::Gauge;
    for (float, header) in [
        (false, CounterResetHeader::NotCounterReset),
        (true, CounterResetHeader::Unknown),
    ] {
        let (_, res) = append_all(float, &[g.clone(), next(&|_| {})]);
        assert_eq!(
            res[1],
            Err(AppendError::Cut {
                reason: CutReason::KindChange,
                header
            })
        );
    }
}

#[test]
fn invalid_samples_are_refused() {
    let mut app = HistogramAppender::new();
    let frac = hist(10, 4.5, 0.0, 1.0, &[(0, 1)], &[1.0]);
    assert_eq!(app.append(&frac), Err(AppendError::NotInteger));
    let mut app = FloatHistogramAppender::new();
    assert_eq!(app.append(&frac), Ok(Appended::InPlace));
    let bad = hist(20, 5.0, 0.0, 1.0, &[(0, 2)], &[1.0]);
    assert_eq!(app.append(&bad), Err(AppendError::Malformed));
    assert_eq!(app.num_samples(), 1);
}

#[test]
fn full_chunk_is_cut() {
    let mut app = FloatHistogramAppender::new();
    let mut h = hist(0, 1.0, 0.0, 1.0, &[(0, 1)], &[1.0]);
    for t in 0..u16::MAX {
        h.t = i64::from(t);
        app.append(&h).unwrap();
    }
    h.t = 70_000;
    assert_eq!(
        app.append(&h),
        Err(AppendError::Cut {
            reason: CutReason::Full,
            header: CounterResetHeader::NotCounterReset
        })
    );
    assert_eq!(decode_all(enc(true), app.bytes()).unwrap().len(), 65535);
}

#[test]
fn stale_marker_first_writes_empty_layout() {
    for float in [false, true] {
        let (bytes, res) = append_all(
            float,
            &[Histogram::stale_marker(5), Histogram::stale_marker(9)],
        );
        assert!(res.iter().all(|r| r.is_ok()));
        let out = decode_all(enc(float), &bytes).unwrap();
        assert_eq!(out.len(), 2);
        assert!(out[0].is_stale() && out[1].is_stale());
        assert_eq!((out[0].t, out[1].t), (5, 9));
        // NaN is not equal to itself: compare the printed forms.
        assert_eq!(
            format!("{:?}", out[1]),
            format!("{:?}", Histogram::stale_marker(9))
        );
    }
}

fn enc(float: bool) -> Encoding {
    if float {
        Encoding::FLOAT_HISTOGRAM
    } else {
        Encoding::HISTOGRAM
    }
}

/// Appends into one chunk, reporting each result (the chunk is not cut).
fn append_all(float: bool, hs: &[Histogram]) -> (Vec<u8>, Vec<Result<Appended, AppendError>>) {
    if float {
        let mut app = FloatHistogramAppender::new();
        let res = hs.iter().map(|h| app.append(h)).collect();
        (app.into_bytes(), res)
    } else {
        let mut app = HistogramAppender::new();
        let res = hs.iter().map(|h| app.append(h)).collect();
        (app.into_bytes(), res)
    }
}

/// Either appender, to drive both from one test.
enum AnyAppender {
    Int(HistogramAppender),
    Float(FloatHistogramAppender),
}

impl AnyAppender {
    fn new(float: bool) -> Self {
        if float {
            AnyAppender::Float(FloatHistogramAppender::new())
        } else {
            AnyAppender::Int(HistogramAppender::new())
        }
    }
    fn append(&mut self, h: &Histogram) -> Result<Appended, AppendError> {
        match self {
            AnyAppender::Int(a) => a.append(h),
            AnyAppender::Float(a) => a.append(h),
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            AnyAppender::Int(a) => a.bytes(),
            AnyAppender::Float(a) => a.bytes(),
        }
    }
    fn reset(&mut self, header: CounterResetHeader) {
        match self {
            AnyAppender::Int(a) => {
                a.reset();
                a.set_counter_reset_header(header)
            }
            AnyAppender::Float(a) => {
                a.reset();
                a.set_counter_reset_header(header)
            }
        }
    }
}

/// Appends a sequence, cutting chunks where the appender asks: the chunks and, per sample,
/// 0 (in place), 1 (recoded) or 2 (cut before it).
fn append_cutting(float: bool, hs: &[Histogram]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut app = AnyAppender::new(float);
    let mut chunks = Vec::new();
    let mut outcomes = Vec::new();
    for h in hs {
        match app.append(h) {
            Ok(Appended::InPlace) => outcomes.push(0),
            Ok(Appended::Recoded) => outcomes.push(1),
            Err(AppendError::Cut { header, .. }) => {
                chunks.push(app.bytes().to_vec());
                app.reset(header);
                app.append(h).expect("a new chunk takes any valid sample");
                outcomes.push(2);
            }
            Err(e) => panic!("{e}"),
        }
    }
    chunks.push(app.bytes().to_vec());
    (chunks, outcomes)
}

/// Bucket index → count bits, for all buckets the spans cover.
fn by_index(spans: &[Span], buckets: &[f64]) -> BTreeMap<i64, u64> {
    let mut out = BTreeMap::new();
    let mut idx = 0i64;
    let mut b = buckets.iter();
    for s in spans {
        // The first offset is absolute, the others gaps after the previous span.
        idx += i64::from(s.offset);
        for _ in 0..s.length {
            out.insert(idx, b.next().unwrap().to_bits());
            idx += 1;
        }
    }
    out
}

/// Checks that the decoded chunks give back the samples: exact fields, and the buckets of
/// each input at their indices (recoding may add empty buckets, which must be zero).
fn check_round_trip(float: bool, input: &[Histogram], chunks: &[Vec<u8>], exact_spans: bool) {
    let mut out = Vec::new();
    let mut firsts = Vec::new();
    for c in chunks {
        let hs = decode_all(enc(float), c).unwrap();
        assert_eq!(usize::from(num_samples(c)), hs.len());
        firsts.push(out.len());
        let header = CounterResetHeader::from_flags(c[2]);
        for (i, h) in hs.iter().enumerate() {
            let want = if header == CounterResetHeader::Gauge {
                CounterResetHint::Gauge
            } else if i > 0 {
                CounterResetHint::NotCounterReset
            } else {
                CounterResetHint::Unknown
            };
            if !h.is_stale() {
                assert_eq!(h.counter_reset_hint, want);
            }
        }
        out.extend(hs);
    }
    assert_eq!(out.len(), input.len());
    for (i, (a, b)) in input.iter().zip(&out).enumerate() {
        assert_eq!(a.t, b.t, "sample {i}");
        if a.is_stale() {
            assert!(b.is_stale(), "sample {i}");
            continue;
        }
        assert_eq!(a.schema, b.schema);
        assert_eq!(a.zero_threshold.to_bits(), b.zero_threshold.to_bits());
        assert_eq!(a.count.to_bits(), b.count.to_bits());
        assert_eq!(a.zero_count.to_bits(), b.zero_count.to_bits());
        assert_eq!(a.sum.to_bits(), b.sum.to_bits());
        assert_eq!(a.custom_values, b.custom_values);
        if exact_spans {
            assert_eq!(a.positive_spans, b.positive_spans);
            assert_eq!(a.negative_spans, b.negative_spans);
        }
        for (sa, ba, sb, bb) in [
            (
                &a.positive_spans,
                &a.positive_buckets,
                &b.positive_spans,
                &b.positive_buckets,
            ),
            (
                &a.negative_spans,
                &a.negative_buckets,
                &b.negative_spans,
                &b.negative_buckets,
            ),
        ] {
            let (ma, mb) = (by_index(sa, ba), by_index(sb, bb));
            for (idx, v) in &mb {
                match ma.get(idx) {
                    Some(w) => assert_eq!(v, w, "sample {i} bucket {idx}"),
                    None => assert_eq!(*v, 0, "sample {i} added bucket {idx}"),
                }
            }
            assert!(ma.keys().all(|k| mb.contains_key(k)), "sample {i}");
        }
    }
}

fn num_samples(c: &[u8]) -> u16 {
    u16::from_be_bytes([c[0], c[1]])
}

// ---------------------------------------------------------------------------------------
// Property tests.

fn spans_strategy(max: usize) -> impl Strategy<Value = Vec<Span>> {
    (
        -6i32..6,
        proptest::collection::vec((0i32..4, 0u32..4), 0..max),
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

fn float_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (0u32..1000).prop_map(f64::from),
        3 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(-0.0),
        1 => Just(f64::INFINITY),
    ]
}

#[derive(Clone, Debug)]
struct Step {
    dt: i64,
    stale: bool,
    relayout: bool,
    gauge: bool,
    schema_change: Option<i32>,
    zt: Option<f64>,
    hint_reset: bool,
    values: Vec<f64>,
    count: f64,
    zero_count: f64,
    sum: f64,
    spans: (Vec<Span>, Vec<Span>),
}

fn step(float: bool) -> impl Strategy<Value = Step> {
    let v = move || -> BoxedStrategy<f64> {
        if float {
            float_value().boxed()
        } else {
            (0u32..50).prop_map(f64::from).boxed()
        }
    };
    (
        prop_oneof![8 => 1i64..30_000, 1 => 0i64..1 << 45, 1 => Just(0)],
        proptest::bool::weighted(0.08),
        proptest::bool::weighted(0.25),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.1, -4i32..=8),
        proptest::option::weighted(
            0.1,
            prop_oneof![Just(0.0), Just(2f64.powi(-128)), Just(0.001), Just(3.0)],
        ),
        proptest::bool::weighted(0.05),
        proptest::collection::vec(v(), 40),
        (v(), v(), any::<f64>()),
        (spans_strategy(4), spans_strategy(4)),
    )
        .prop_map(
            |(
                dt,
                stale,
                relayout,
                gauge,
                schema_change,
                zt,
                hint_reset,
                values,
                (count, zero_count, sum),
                spans,
            )| Step {
                dt,
                stale,
                relayout,
                gauge,
                schema_change,
                zt,
                hint_reset,
                values,
                count,
                zero_count,
                sum,
                spans,
            },
        )
}

/// Builds samples from steps: a layout that sometimes changes, counts that mostly grow.
fn build(float: bool, custom: bool, steps: &[Step]) -> Vec<Histogram> {
    let mut out = Vec::new();
    let mut t = -1_000i64;
    let mut cur = Histogram {
        schema: if custom { CUSTOM_BUCKETS_SCHEMA } else { 2 },
        custom_values: if custom {
            vec![0.5, 1.0, 2.5, 1e9, -3.0, 0.001]
        } else {
            Vec::new()
        },
        ..Histogram::default()
    };
    for (i, s) in steps.iter().enumerate() {
        t = t.wrapping_add(s.dt);
        if s.stale {
            out.push(Histogram::stale_marker(t));
            continue;
        }
        if i == 0 || s.relayout {
            cur.positive_spans = s.spans.0.clone();
            cur.negative_spans = if custom {
                Vec::new()
            } else {
                s.spans.1.clone()
            };
            if custom {
                if let Some(f) = cur.positive_spans.first_mut() {
                    f.offset = f.offset.abs();
                }
            }
        }
        if !custom {
            if let Some(schema) = s.schema_change {
                cur.schema = schema;
            }
            if let Some(zt) = s.zt {
                cur.zero_threshold = zt;
            }
        }
        let np = bucket_count(&cur.positive_spans) as usize;
        let nn = bucket_count(&cur.negative_spans) as usize;
        let grow = |old: Option<&f64>, add: f64| match old {
            Some(o) if !s.gauge && o.is_finite() && add.is_finite() => o + add.abs(),
            _ => add,
        };
        let pb: Vec<f64> = (0..np)
            .map(|j| grow(cur.positive_buckets.get(j), s.values[j % 40]))
            .collect();
        let nb: Vec<f64> = (0..nn)
            .map(|j| grow(cur.negative_buckets.get(j), s.values[(j + 20) % 40]))
            .collect();
        cur.positive_buckets = pb;
        cur.negative_buckets = nb;
        cur.count = grow(Some(&cur.count), s.count);
        cur.zero_count = if custom {
            0.0
        } else {
            grow(Some(&cur.zero_count), s.zero_count)
        };
        if !float {
            // Integer chunks: whole numbers.
            let whole = |v: f64| {
                if v.is_finite() {
                    v.abs().trunc().min(1e15)
                } else {
                    0.0
                }
            };
            for v in cur
                .positive_buckets
                .iter_mut()
                .chain(cur.negative_buckets.iter_mut())
                .chain([&mut cur.count, &mut cur.zero_count])
            {
                *v = whole(*v);
            }
        }
        cur.sum = s.sum;
        cur.t = t;
        cur.counter_reset_hint = if s.gauge {
            CounterResetHint::Gauge
        } else if s.hint_reset {
            CounterResetHint::CounterReset
        } else {
            CounterResetHint::Unknown
        };
        out.push(cur.clone());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_sequences_round_trip(
        float in any::<bool>(),
        custom in proptest::bool::weighted(0.2),
        steps in proptest::collection::vec(step(true), 1..40),
    ) {
        let hs = build(float, custom, &steps);
        let (chunks, outcomes) = append_cutting(float, &hs);
        prop_assert_eq!(outcomes.len(), hs.len());
        check_round_trip(float, &hs, &chunks, false);
        // Chunks are cut only where the appender asked.
        prop_assert_eq!(chunks.len(), 1 + outcomes.iter().filter(|&&o| o == 2).count());
    }

    #[test]
    fn fixed_layout_counters_and_gauges_round_trip_exactly(
        float in any::<bool>(),
        gauge in any::<bool>(),
        spans in (spans_strategy(5), spans_strategy(5)),
        start in -1_000_000i64..1_000_000,
        steps in proptest::collection::vec(
            (1i64..100_000, proptest::collection::vec(0u32..1000, 40), 0u32..1000, any::<f64>()),
            1..60,
        ),
    ) {
        let np = bucket_count(&spans.0) as usize;
        let nn = bucket_count(&spans.1) as usize;
        let mut t = start;
        let mut cur = Histogram {
            schema: 0,
            zero_threshold: 2f64.powi(-128),
            positive_spans: spans.0.clone(),
            negative_spans: spans.1.clone(),
            positive_buckets: vec![0.0; np],
            negative_buckets: vec![0.0; nn],
            counter_reset_hint: if gauge {
                CounterResetHint::Gauge
            } else {
                CounterResetHint::Unknown
            },
            ..Histogram::default()
        };
        let mut hs = Vec::new();
        for (dt, vals, c, sum) in &steps {
            t += dt;
            let f = |old: f64, v: u32| if gauge { f64::from(v) } else { old + f64::from(v) };
            for (j, b) in cur.positive_buckets.iter_mut().enumerate() {
                *b = f(*b, vals[j % 40]);
            }
            for (j, b) in cur.negative_buckets.iter_mut().enumerate() {
                *b = f(*b, vals[(j + 7) % 40]);
            }
            cur.count = f(cur.count, *c);
            cur.zero_count = f(cur.zero_count, *c / 3);
            cur.sum = if float { *sum } else { sum.trunc() };
            if float && !gauge {
                cur.positive_buckets.iter_mut().for_each(|b| *b += 0.25);
            }
            cur.t = t;
            hs.push(cur.clone());
        }
        let (chunks, outcomes) = append_cutting(float, &hs);
        prop_assert!(outcomes.iter().all(|&o| o == 0), "{:?}", outcomes);
        prop_assert_eq!(chunks.len(), 1);
        check_round_trip(float, &hs, &chunks, true);
        let header = CounterResetHeader::from_flags(chunks[0][2]);
        let want = if gauge { CounterResetHeader::Gauge } else { CounterResetHeader::Unknown };
        prop_assert_eq!(header, want);
    }
}

#[test]
fn stale_nan_constant_matches() {
    assert!(Histogram::stale_marker(1).sum.to_bits() == STALE_NAN_BITS);
}

// ---------------------------------------------------------------------------------------
// Cross-check against Prometheus's Go appenders.

/// Chunks built by Prometheus 3.9's `AppendHistogram`/`AppendFloatHistogram` (appendOnly =
/// false): the same samples give the same outcomes (in place, recoded, cut) and the same
/// bytes, up to the open zero byte our 2.42-style bit stream leaves at a byte boundary.
#[test]
fn prometheus_appender_vectors() {
    check_prometheus_cases(super::testdata::PROMETHEUS_APPENDER_CASES);
}

/// The same over a larger generated file named by `PROM_HISTOGRAM_VECTORS` (same format as
/// the test data); skipped when it is not set.
#[test]
fn prometheus_appender_vectors_from_file() {
    let Ok(path) = std::env::var("PROM_HISTOGRAM_VECTORS") else {
        return;
    };
    check_prometheus_cases(&std::fs::read_to_string(path).unwrap());
}

fn check_prometheus_cases(text: &str) {
    let cases: serde_json::Value = serde_json::from_str(text).unwrap();
    let f = |v: &serde_json::Value| f64::from_bits(v.as_u64().unwrap());
    let spans = |v: &serde_json::Value| -> Vec<Span> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| Span {
                        offset: s[0].as_i64().unwrap() as i32,
                        length: s[1].as_u64().unwrap() as u32,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().map(f).collect())
            .unwrap_or_default()
    };
    let mut n = 0;
    for (ci, c) in cases.as_array().unwrap().iter().enumerate() {
        let float = c["float"].as_bool().unwrap();
        let hs: Vec<Histogram> = c["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Histogram {
                t: s["t"].as_i64().unwrap(),
                counter_reset_hint: match s["hint"].as_u64().unwrap() {
                    1 => CounterResetHint::CounterReset,
                    2 => CounterResetHint::NotCounterReset,
                    3 => CounterResetHint::Gauge,
                    _ => CounterResetHint::Unknown,
                },
                schema: s["schema"].as_i64().unwrap() as i32,
                zero_threshold: f(&s["zt"]),
                zero_count: if float {
                    f(&s["zc"])
                } else {
                    s["zc"].as_u64().unwrap() as f64
                },
                count: if float {
                    f(&s["count"])
                } else {
                    s["count"].as_u64().unwrap() as f64
                },
                sum: f(&s["sum"]),
                positive_spans: spans(&s["ps"]),
                negative_spans: spans(&s["ns"]),
                positive_buckets: floats(&s["pb"]),
                negative_buckets: floats(&s["nb"]),
                custom_values: floats(&s["cv"]),
            })
            .collect();
        let (chunks, outcomes) = append_cutting(float, &hs);
        let want_outcomes: Vec<u8> = c["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(outcomes, want_outcomes, "case {ci}");
        let want: Vec<Vec<u8>> = c["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hex_decode(h.as_str().unwrap()))
            .collect();
        assert_eq!(chunks.len(), want.len(), "case {ci}");
        for (i, (got, want)) in chunks.iter().zip(&want).enumerate() {
            assert!(
                same_modulo_open_byte(got, want),
                "case {ci} chunk {i}:\n got {got:02x?}\nwant {want:02x?}"
            );
        }
        n += 1;
    }
    assert!(n > 0);
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Equal, or `ours` is `theirs` plus one zero byte (2.42's open byte at the end).
fn same_modulo_open_byte(ours: &[u8], theirs: &[u8]) -> bool {
    ours == theirs
        || (ours.len() == theirs.len() + 1 && ours.ends_with(&[0]) && ours.starts_with(theirs))
}

// ---------------------------------------------------------------------------------------
// Chunks written by Prometheus 2.42.

/// Two integer histogram chunks from `chunks_head/` of the Debian Prometheus 2.42 binary
/// (`--enable-feature=native-histograms`) scraping one native histogram (protobuf
/// exposition) every second: scrape `i` served schema 2, zero threshold 2^-128, with
/// `b = i` (then `i - 8` after a counter reset at scrape 8) zero count `b`, sum
/// `1.5 b + 0.25`, negative bucket 0 = `3 b`, positive buckets 1, 2, 5 = `b + 1, 2 b, b`
/// until scrape 3, and from scrape 4 on buckets 1, 2, 3, 5 = `b + 1, 2 b, b / 2, b` (a new
/// bucket: Prometheus recoded the first chunk). The reset cut the second chunk.
const PROMETHEUS_2_42_CHUNKS: [(i64, i64, &str); 2] = [
    (
        1_796_173_560_979,
        1_796_173_567_979,
        "0008007494a718c6317f0000d11a24be49c47fa00000000000011b8f1f46223a84b8c6d198c277ff601a\
         c5c8124a2562c8c5a445a87f646e5d0e2f10",
    ),
    (
        1_796_173_568_979,
        1_796_173_575_979,
        "0008807494a718c6317f0000d11a24cde9c47fa00000000000011b8f1f46223a84b8c6d19a2c277ff646\
         e5dac5c978914a2372e8c5e245a87f646e5d0e2f10",
    ),
];

/// What the test target served at scrape `i` (layout as served, before any recoding).
fn served_2_42(i: i64, t: i64) -> Histogram {
    let b = if i < 8 { i } else { i - 8 } as f64;
    let (spans, counts) = if i < 4 {
        (sp(&[(1, 2), (2, 1)]), vec![b + 1.0, 2.0 * b, b])
    } else {
        (
            sp(&[(1, 3), (1, 1)]),
            vec![b + 1.0, 2.0 * b, (b / 2.0).floor(), b],
        )
    };
    let count = counts.iter().sum::<f64>() + 3.0 * b + b;
    Histogram {
        t,
        counter_reset_hint: CounterResetHint::Unknown,
        schema: 2,
        zero_threshold: 2f64.powi(-128),
        zero_count: b,
        count,
        sum: 1.5 * b + 0.25,
        positive_spans: spans,
        negative_spans: sp(&[(0, 1)]),
        positive_buckets: counts,
        negative_buckets: vec![3.0 * b],
        custom_values: Vec::new(),
    }
}

#[test]
fn decodes_chunks_written_by_prometheus_2_42() {
    let mut served = Vec::new();
    for (c, &(mint, maxt, hex)) in PROMETHEUS_2_42_CHUNKS.iter().enumerate() {
        let bytes = hex_decode(hex);
        let hs = decode_all(Encoding::HISTOGRAM, &bytes).unwrap();
        assert_eq!(hs.len(), 8);
        assert_eq!((hs[0].t, hs[7].t), (mint, maxt));
        let header = CounterResetHeader::from_flags(bytes[2]);
        assert_eq!(
            header,
            [
                CounterResetHeader::Unknown,
                CounterResetHeader::CounterReset
            ][c]
        );
        for (j, h) in hs.iter().enumerate() {
            let i = (c * 8 + j) as i64;
            let want = served_2_42(i, h.t);
            let mut recoded = want.clone();
            if i < 4 {
                // The first chunk was recoded to the later layout: bucket 3 added, empty.
                recoded.positive_spans = sp(&[(1, 3), (1, 1)]);
                recoded.positive_buckets.insert(2, 0.0);
            }
            recoded.counter_reset_hint = if j == 0 {
                CounterResetHint::Unknown
            } else {
                CounterResetHint::NotCounterReset
            };
            assert_eq!(h, &recoded, "scrape {i}");
            served.push(want);
        }
    }
    // Our appender, given what was served, writes the same bytes (2.42's bit stream) and
    // cuts at the same place with the same header.
    let (chunks, outcomes) = append_cutting(false, &served);
    assert_eq!(outcomes, [0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    for (got, (_, _, hex)) in chunks.iter().zip(PROMETHEUS_2_42_CHUNKS) {
        assert_eq!(got, &hex_decode(hex));
    }
}
