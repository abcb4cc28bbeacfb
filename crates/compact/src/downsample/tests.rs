use std::collections::BTreeMap;

use proptest::prelude::*;
use tsdb::encoding::put_uvarint;

use super::testdata::*;
use super::*;

const STALE: f64 = f64::from_bits(tsdb::chunkenc::STALE_NAN_BITS);

fn xor(samples: &[Sample]) -> Vec<u8> {
    let mut app = XorAppender::new();
    for &(t, v) in samples {
        app.append(t, v);
    }
    app.into_bytes()
}

fn decode(data: &[u8]) -> Vec<Sample> {
    let mut it = XorIterator::new(data);
    let mut out = Vec::new();
    while it.next() {
        out.push(it.at());
    }
    assert!(it.err().is_none(), "{:?}", it.err());
    out
}

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

/// A raw XOR chunk; its range is that of its first and last samples, as a head would cut it.
fn raw_chunk(samples: &[Sample]) -> Chunk {
    Chunk {
        min: samples[0].0,
        max: samples[samples.len() - 1].0,
        enc: Encoding::XOR,
        data: xor(samples),
    }
}

/// Like Thanos's `encodeTestAggrSeries`: all five sub-chunks present (empty ones too), the
/// range spanning every sample.
fn aggr_chunk(parts: [&[Sample]; 5]) -> Chunk {
    let subs: Vec<Vec<u8>> = parts.iter().map(|p| xor(p)).collect();
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for p in parts {
        for s in p {
            min = min.min(s.0);
            max = max.max(s.0);
        }
    }
    Chunk {
        min,
        max,
        enc: Encoding::AGGR,
        data: aggr::encode(std::array::from_fn(|i| Some(&subs[i][..]))),
    }
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

type Aggrs = [Option<Vec<Sample>>; 5];

fn aggrs(chunk: &[u8]) -> Aggrs {
    std::array::from_fn(|i| {
        aggr::get(chunk, AggrType::ALL[i]).unwrap().map(|(enc, d)| {
            assert_eq!(enc, Encoding::XOR);
            decode(d)
        })
    })
}

fn expect(parts: [Option<&[Sample]>; 5]) -> Aggrs {
    parts.map(|p| p.map(|s| s.to_vec()))
}

fn all5<'a>(
    count: &'a [Sample],
    sum: &'a [Sample],
    min: &'a [Sample],
    max: &'a [Sample],
    counter: &'a [Sample],
) -> [Option<&'a [Sample]>; 5] {
    [Some(count), Some(sum), Some(min), Some(max), Some(counter)]
}

fn counter_iterate(chunks: &[&[u8]]) -> Vec<Sample> {
    let mut it = CounterResets::new(chunks.iter().copied());
    let mut out = Vec::new();
    while it.next() {
        out.push(it.at());
    }
    assert!(it.err().is_none());
    out
}

// ---------------------------------------------------------------------------------------
// Building blocks.

#[test]
fn xor_appender_takes_a_repeated_timestamp() {
    // The counter aggregate ends with the last raw value at the previous sample's timestamp.
    for s in [
        vec![(10, 1.0), (10, 1.0)],
        vec![(10, 1.0), (30, 5.0), (30, 5.0)],
        vec![(10, 1.0), (30, 5.0), (90, 7.0), (90, 3.0)],
        vec![
            (1587690005791, 461968.0),
            (1587693590791, 511500.0),
            (1587693590791, 14956.0),
        ],
    ] {
        assert_eq!(decode(&xor(&s)), s);
    }
}

#[test]
fn target_chunk_count_matches_thanos_loop() {
    fn thanos(mint: i64, maxt: i64, in_res: i64, out_res: i64, count: usize) -> usize {
        let max_samples = ((maxt - mint) / out_res) as f64;
        let f = (count as f64 / ((maxt - mint) as f64 / in_res as f64)).min(1.0);
        let exp = (max_samples * f) as i64 + 1;
        let mut x = 1;
        while exp / x > 140 {
            x += 1;
        }
        x as usize
    }
    for (mint, maxt, in_res, out_res, count) in [
        (0, 0, 60_000, RES_5M, 1),
        (0, 100, 60_000, 50, 12),
        (0, 40 * 3_600_000, 60_000, RES_5M, 9600),
        (0, 40 * 3_600_000, 60_000, RES_5M, 100),
        (0, 14 * 86_400_000, RES_5M, RES_1H, 4032),
        (0, 600_000_000, 60_000, RES_5M, 2000),
        (0, 141 * RES_5M, 60_000, RES_5M, 1_000_000),
        (0, 140 * RES_5M, 60_000, RES_5M, 1_000_000),
        (0, 282 * RES_5M, 60_000, RES_5M, 1_000_000),
        (0, 283 * RES_5M, 60_000, RES_5M, 1_000_000),
        (1000, 2_000_000_000, 15_000, 7, 77),
    ] {
        assert_eq!(
            target_chunk_count(mint, maxt, in_res, out_res, count),
            thanos(mint, maxt, in_res, out_res, count),
            "{mint} {maxt} {in_res} {out_res} {count}"
        );
    }
    // No samples over no range: Go's int(NaN) is the minimum int64, so one chunk.
    assert_eq!(target_chunk_count(0, 0, RES_5M, RES_1H, 0), 1);
}

#[test]
fn current_window_is_inclusive_window_end() {
    assert_eq!(current_window(0, 100), 99);
    assert_eq!(current_window(99, 100), 99);
    assert_eq!(current_window(100, 100), 199);
    assert_eq!(current_window(1587690005791, RES_5M), 1587690299999);
}

#[test]
fn expand_drops_stale_markers_and_going_back_in_time() {
    // Thanos's TestExpandChunkIterator: equal timestamps are kept (counter markers).
    let data = xor(&[
        (100, 1.0),
        (200, 2.0),
        (200, 3.0),
        (201, 4.0),
        (200, 5.0),
        (300, 6.0),
        (400, STALE),
        (500, 5.0),
    ]);
    let mut out = Vec::new();
    expand_xor(&data, &mut out).unwrap();
    assert_eq!(
        out,
        vec![
            (100, 1.0),
            (200, 2.0),
            (200, 3.0),
            (201, 4.0),
            (300, 6.0),
            (500, 5.0)
        ]
    );
    // Negative timestamps fall below the initial 0.
    out.clear();
    expand_xor(&xor(&[(-20, 1.0), (-10, 2.0), (0, 3.0)]), &mut out).unwrap();
    assert_eq!(out, vec![(0, 3.0)]);
}

// ---------------------------------------------------------------------------------------
// Thanos's TestDownsample vectors, raw input.

#[test]
fn thanos_raw_single_chunk() {
    let chunks = [raw_chunk(&[
        (20, 1.0),
        (40, 2.0),
        (60, 3.0),
        (80, 1.0),
        (100, 2.0),
        (101, STALE),
        (120, 5.0),
        (180, 10.0),
        (250, 1.0),
    ])];
    let out = downsample_raw(&encoded(&chunks), 100).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1), (99, 250));
    assert_eq!(
        aggrs(&out[0].2),
        expect(all5(
            &[(99, 4.0), (199, 3.0), (250, 1.0)],
            &[(99, 7.0), (199, 17.0), (250, 1.0)],
            &[(99, 1.0), (199, 2.0), (250, 1.0)],
            &[(99, 3.0), (199, 10.0), (250, 1.0)],
            &[(20, 1.0), (99, 4.0), (199, 13.0), (250, 14.0), (250, 1.0)],
        ))
    );
}

#[test]
fn thanos_raw_three_chunks() {
    let chunks = [
        raw_chunk(&[
            (20, 1.0),
            (40, 2.0),
            (60, 3.0),
            (80, 1.0),
            (100, 2.0),
            (101, STALE),
            (120, 5.0),
            (180, 10.0),
            (250, 2.0),
        ]),
        raw_chunk(&[
            (260, 1.0),
            (300, 10.0),
            (340, 15.0),
            (380, 25.0),
            (420, 35.0),
        ]),
        raw_chunk(&[(460, STALE), (500, 10.0), (540, 3.0)]),
    ];
    let out = downsample_raw(&encoded(&chunks), 100).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1), (99, 540));
    assert_eq!(
        aggrs(&out[0].2),
        expect(all5(
            &[
                (99, 4.0),
                (199, 3.0),
                (299, 2.0),
                (399, 3.0),
                (499, 1.0),
                (540, 2.0)
            ],
            &[
                (99, 7.0),
                (199, 17.0),
                (299, 3.0),
                (399, 50.0),
                (499, 35.0),
                (540, 13.0)
            ],
            &[
                (99, 1.0),
                (199, 2.0),
                (299, 1.0),
                (399, 10.0),
                (499, 35.0),
                (540, 3.0)
            ],
            &[
                (99, 3.0),
                (199, 10.0),
                (299, 2.0),
                (399, 25.0),
                (499, 35.0),
                (540, 10.0)
            ],
            &[
                (20, 1.0),
                (99, 4.0),
                (199, 13.0),
                (299, 16.0),
                (399, 40.0),
                (499, 50.0),
                (540, 63.0),
                (540, 3.0)
            ],
        ))
    );
}

#[test]
fn thanos_raw_overlapping_chunks_fail() {
    let first = [
        (20, 1.0),
        (40, 2.0),
        (60, 3.0),
        (80, 1.0),
        (100, 2.0),
        (101, STALE),
        (120, 5.0),
        (180, 10.0),
        (250, 2.0),
    ];
    let chunks = [
        raw_chunk(&first),
        raw_chunk(&first),
        raw_chunk(&[
            (260, 1.0),
            (300, 10.0),
            (340, 15.0),
            (380, 25.0),
            (420, 35.0),
        ]),
        raw_chunk(&[(460, STALE), (500, 10.0), (540, 3.0)]),
    ];
    let err = downsample_raw(&encoded(&chunks), 100).unwrap_err();
    assert!(
        matches!(
            err,
            DownsampleError::OverlappingChunks {
                prev: 0,
                prev_max_time: 250,
                chunk: 1,
                min_time: 20,
                max_time: 250
            }
        ),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .starts_with("found overlapping chunks within series"));
}

#[test]
fn thanos_raw_first_chunk_only_nans() {
    let nan = f64::NAN;
    let chunks = [
        raw_chunk(&[
            (20, nan),
            (40, nan),
            (60, nan),
            (80, nan),
            (100, nan),
            (101, STALE),
            (120, nan),
            (180, nan),
            (250, nan),
        ]),
        raw_chunk(&[
            (260, 1.0),
            (300, 10.0),
            (340, 15.0),
            (380, 25.0),
            (420, 35.0),
        ]),
        raw_chunk(&[(460, STALE), (500, 10.0), (540, 3.0)]),
    ];
    let out = downsample_raw(&encoded(&chunks), 100).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        aggrs(&out[0].2),
        expect(all5(
            &[(299, 1.0), (399, 3.0), (499, 1.0), (540, 2.0)],
            &[(299, 1.0), (399, 50.0), (499, 35.0), (540, 13.0)],
            &[(299, 1.0), (399, 10.0), (499, 35.0), (540, 3.0)],
            &[(299, 1.0), (399, 25.0), (499, 35.0), (540, 10.0)],
            &[
                (260, 1.0),
                (299, 1.0),
                (399, 25.0),
                (499, 35.0),
                (540, 48.0),
                (540, 3.0)
            ],
        ))
    );
}

#[test]
fn thanos_raw_realistic_15s_counter_to_5m() {
    let chunks = [raw_chunk(REALISTIC_RAW_0), raw_chunk(REALISTIC_RAW_1)];
    let out = downsample_raw(&encoded(&chunks), RES_5M).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1), (1587690299999, 1587693590791));
    assert_eq!(
        aggrs(&out[0].2),
        expect(all5(
            REALISTIC_5M_COUNT,
            REALISTIC_5M_SUM,
            REALISTIC_5M_MIN,
            REALISTIC_5M_MAX,
            REALISTIC_5M_COUNTER,
        ))
    );
    // And on to 1h (Thanos's "realistic ResLevel1 (5m) downsampled chunks" case).
    let out_1h = downsample_aggr(&encoded(&chunks_of(&out)), RES_5M, RES_1H).unwrap();
    assert_eq!(out_1h.len(), 1);
    assert_eq!(
        aggrs(&out_1h[0].2),
        expect(all5(
            &[(1587693590791, 236.0)],
            &[(1587693590791, 8.0151286e+07)],
            &[(1587693590791, 75.0)],
            &[(1587693590791, 496544.0)],
            &[
                (1587690005791, 461968.0),
                (1587693590791, 511500.0),
                (1587693590791, 14956.0)
            ],
        ))
    );
}

// ---------------------------------------------------------------------------------------
// Thanos's TestDownsample vectors, aggregate input.

/// Count, sum, min and max of Thanos's "single aggregated chunks" input.
const AGG_COUNT: &[Sample] = &[
    (199, 5.0),
    (299, 1.0),
    (399, 10.0),
    (400, 3.0),
    (499, 10.0),
    (699, 0.0),
    (999, 100.0),
];
const AGG_MIN: &[Sample] = &[
    (199, 5.0),
    (299, 1.0),
    (399, 10.0),
    (400, -3.0),
    (499, 10.0),
    (699, 0.0),
    (999, 100.0),
];
/// Three counter chunks' worth in one sub-chunk: the second has no reset, the third has one.
const AGG_COUNTER: &[Sample] = &[
    (99, 100.0),
    (299, 150.0),
    (499, 210.0),
    (499, 10.0),
    (599, 20.0),
    (799, 50.0),
    (999, 120.0),
    (999, 50.0),
    (1099, 40.0),
    (1199, 80.0),
    (1299, 110.0),
];

fn single_aggr_expected() -> Aggrs {
    expect(all5(
        &[(499, 29.0), (999, 100.0)],
        &[(499, 29.0), (999, 100.0)],
        &[(499, -3.0), (999, 0.0)],
        &[(499, 10.0), (999, 100.0)],
        &[
            (99, 100.0),
            (499, 210.0),
            (999, 320.0),
            (1299, 430.0),
            (1299, 110.0),
        ],
    ))
}

#[test]
fn thanos_aggr_single_chunk() {
    let chunks = [aggr_chunk([
        AGG_COUNT,
        AGG_COUNT,
        AGG_MIN,
        AGG_MIN,
        AGG_COUNTER,
    ])];
    let out = downsample_aggr(&encoded(&chunks), 499, 500).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1), (499, 1299));
    assert_eq!(aggrs(&out[0].2), single_aggr_expected());

    // Downsampling that output again at the same resolution gives it back.
    let again = downsample_aggr(&encoded(&chunks_of(&out)), 499, 500).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(aggrs(&again[0].2), single_aggr_expected());
}

#[test]
fn thanos_aggr_two_chunks() {
    let count2: &[Sample] = &[
        (1399, 10.0),
        (1400, 3.0),
        (1499, 10.0),
        (1699, 0.0),
        (1999, 100.0),
    ];
    let min2: &[Sample] = &[
        (1399, 10.0),
        (1400, -3.0),
        (1499, 10.0),
        (1699, 0.0),
        (1999, 100.0),
    ];
    let counter2: &[Sample] = &[
        (1499, 210.0),
        (1499, 10.0),
        (1599, 20.0),
        (1799, 50.0),
        (1999, 120.0),
        (1999, 50.0),
        (2099, 40.0),
        (2199, 80.0),
        (2299, 110.0),
    ];
    let chunks = [
        aggr_chunk([AGG_COUNT, AGG_COUNT, AGG_MIN, AGG_MIN, AGG_COUNTER]),
        aggr_chunk([count2, count2, min2, min2, counter2]),
    ];
    let out = downsample_aggr(&encoded(&chunks), 499, 500).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        aggrs(&out[0].2),
        expect(all5(
            &[(499, 29.0), (999, 100.0), (1499, 23.0), (1999, 100.0)],
            &[(499, 29.0), (999, 100.0), (1499, 23.0), (1999, 100.0)],
            &[(499, -3.0), (999, 0.0), (1499, -3.0), (1999, 0.0)],
            &[(499, 10.0), (999, 100.0), (1499, 10.0), (1999, 100.0)],
            &[
                (99, 100.0),
                (499, 210.0),
                (999, 320.0),
                (1499, 530.0),
                (1999, 640.0),
                (2299, 750.0),
                (2299, 110.0)
            ],
        ))
    );
}

#[test]
fn thanos_aggr_overlapping_chunks_fail() {
    let chunks = [
        aggr_chunk([AGG_COUNT, &[], &[], &[], &[]]),
        aggr_chunk([AGG_COUNT, &[], &[], &[], &[]]),
    ];
    let err = downsample_aggr(&encoded(&chunks), 499, 500).unwrap_err();
    assert!(
        matches!(err, DownsampleError::OverlappingChunks { chunk: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn thanos_aggr_realistic_5m_to_1h() {
    let chunks = [aggr_chunk([
        REALISTIC_5M_COUNT,
        REALISTIC_5M_SUM,
        REALISTIC_5M_MIN,
        REALISTIC_5M_MAX,
        REALISTIC_5M_COUNTER,
    ])];
    let out = downsample_aggr(&encoded(&chunks), RES_5M, RES_1H).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1), (1587693590791, 1587693590791));
    assert_eq!(
        aggrs(&out[0].2),
        expect(all5(
            &[(1587693590791, 236.0)],
            &[(1587693590791, 8.0151286e+07)],
            &[(1587693590791, 75.0)],
            &[(1587693590791, 496544.0)],
            &[
                (1587690005791, 461968.0),
                (1587693590791, 511500.0),
                (1587693590791, 14956.0)
            ],
        ))
    );
}

#[test]
fn thanos_aggr_four_counter_only_chunks_at_2x() {
    // Four chunks of 120 counter samples (other aggregates present but empty), 1 -> 2.
    let counters: Vec<Vec<Sample>> = (0..4)
        .map(|c| {
            (0..120)
                .map(|i| (c * 120 + i, (c * 120 + i) as f64))
                .collect()
        })
        .collect();
    let chunks: Vec<Chunk> = counters
        .iter()
        .map(|c| aggr_chunk([&[], &[], &[], &[], c]))
        .collect();
    let out = downsample_aggr(&encoded(&chunks), 1, 2).unwrap();
    assert_eq!(out.len(), 1);
    let mut counter = vec![(0, 0.0)];
    counter.extend((0..480).step_by(2).map(|i| (1 + i, (1 + i) as f64)));
    counter.push((479, 479.0));
    assert_eq!(
        aggrs(&out[0].2),
        expect([None, None, None, None, Some(&counter[..])])
    );
    // Thanos would report MinTime 0 here (absent aggregates count as the range (0, 0)).
    assert_eq!((out[0].0, out[0].1), (1, 479));
}

#[test]
fn thanos_aggr_with_empty_xor_chunk() {
    // Thanos issue #5272: an empty XOR chunk in a downsampled block is skipped.
    let mut chunks = vec![aggr_chunk([
        REALISTIC_5M_COUNT,
        REALISTIC_5M_SUM,
        REALISTIC_5M_MIN,
        REALISTIC_5M_MAX,
        REALISTIC_5M_COUNTER,
    ])];
    chunks.push(Chunk {
        min: i64::MAX,
        max: i64::MIN,
        enc: Encoding::XOR,
        data: xor(&[]),
    });
    let out = downsample_aggr(&encoded(&chunks), RES_5M, RES_1H).unwrap();
    let alone = downsample_aggr(&encoded(&chunks[..1]), RES_5M, RES_1H).unwrap();
    assert_eq!(out, alone);
}

#[test]
fn thanos_aggr_with_non_empty_xor_chunk() {
    // A stray raw chunk is turned into a 5m aggregate first. Its samples precede those of the
    // aggregate chunk (its range is bogus), and the result is Thanos's, garbled as it is.
    let aggr = aggr_chunk([
        &[
            (1587690299999, 20.0),
            (1587690599999, 20.0),
            (1587690899999, 20.0),
        ],
        &[
            (1587690299999, 9.276972e+06),
            (1587690599999, 9.359861e+06),
            (1587693590791, 255746.0),
        ],
        &[
            (1587690299999, 461968.0),
            (1587690599999, 466070.0),
            (1587690899999, 470131.0),
            (1587691199999, 474913.0),
        ],
        &[
            (1587690299999, 465870.0),
            (1587690599999, 469951.0),
            (1587690899999, 474726.0),
        ],
        &[
            (1587690005791, 461968.0),
            (1587690299999, 465870.0),
            (1587690599999, 469951.0),
        ],
    ]);
    let chunks = vec![
        aggr,
        Chunk {
            min: i64::MAX,
            max: i64::MIN,
            enc: Encoding::XOR,
            data: xor(&[(1587690005794, 42.5)]),
        },
    ];
    let out = downsample_aggr(&encoded(&chunks), RES_5M, RES_1H).unwrap();
    assert_eq!(out.len(), 1);
    let t = 1587690005794;
    assert_eq!(
        aggrs(&out[0].2),
        expect(all5(
            &[(t, 20.0), (t, 20.0), (t, 21.0)],
            &[(t, 9.276972e+06), (t, 9.359861e+06), (t, 255788.5)],
            &[(t, 461968.0), (t, 466070.0), (t, 470131.0), (t, 42.5)],
            &[(t, 465870.0), (t, 469951.0), (t, 474726.0)],
            &[
                (1587690005791, 461968.0),
                (1587690599999, 469951.0),
                (1587690599999, 469951.0)
            ],
        ))
    );
}

#[test]
fn thanos_counter_boundary_reset() {
    // Thanos's TestDownsampleCounterBoundaryReset: resets at window boundaries survive only
    // if each chunk keeps its first and last raw values.
    let raw: &[Sample] = &[
        (10, 1.0),
        (20, 3.0),
        (30, 5.0),
        (50, 1.0),
        (60, 8.0),
        (70, 10.0),
        (120, 1.0),
        (130, 18.0),
        (140, 20.0),
        (160, 21.0),
        (170, 38.0),
        (180, 40.0),
    ];
    let mut scratch = Scratch::default();
    let mut raw_out = Vec::new();
    // More chunks than samples: one window per chunk.
    downsample_raw_loop(raw, 50, raw.len() + 1, &mut scratch, |c| raw_out.push(c));
    assert_eq!(raw_out.len(), 4);
    let counters: Vec<Vec<Sample>> = raw_out
        .iter()
        .map(|c| aggrs(&c.2)[COUNTER].clone().unwrap())
        .collect();
    assert_eq!(
        counters.concat(),
        vec![
            (10, 1.0),
            (30, 5.0),
            (30, 5.0),
            (50, 1.0),
            (70, 10.0),
            (70, 10.0),
            (120, 1.0),
            (140, 20.0),
            (140, 20.0),
            (160, 21.0),
            (180, 40.0),
            (180, 40.0)
        ]
    );
    let chunks: Vec<&[u8]> = raw_out.iter().map(|c| &c.2[..]).collect();
    let mut it = CounterResets::from_aggr_chunks(&chunks).unwrap();
    let mut iterated = Vec::new();
    while it.next() {
        iterated.push(it.at());
    }
    assert_eq!(
        iterated,
        vec![
            (10, 1.0),
            (30, 5.0),
            (50, 6.0),
            (70, 15.0),
            (120, 16.0),
            (140, 35.0),
            (160, 36.0),
            (180, 55.0)
        ]
    );

    let fixed: Vec<Fixed> = raw_out
        .iter()
        .enumerate()
        .map(|(i, c)| Fixed {
            chunk: i,
            min_time: c.0,
            max_time: c.1,
            histogram: false,
            data: Cow::Borrowed(&c.2[..]),
        })
        .collect();
    let mut buf = Vec::new();
    let mut aggr_out = Vec::new();
    downsample_aggr_loop(&fixed, 100, 2, &mut scratch, &mut buf, &mut aggr_out).unwrap();
    assert_eq!(aggr_out.len(), 2);
    let counters: Vec<Vec<Sample>> = aggr_out
        .iter()
        .map(|c| aggrs(&c.2)[COUNTER].clone().unwrap())
        .collect();
    // The first part is the brief's example: (10,1),(30,5),(30,5) + (50,1),(70,10),(70,10)
    // at resolution 100 gives (10,1),(70,15),(70,10).
    assert_eq!(counters[0], vec![(10, 1.0), (70, 15.0), (70, 10.0)]);
    assert_eq!(counters[1], vec![(120, 1.0), (180, 40.0), (180, 40.0)]);
    let chunks: Vec<&[u8]> = aggr_out.iter().map(|c| &c.2[..]).collect();
    let mut it = CounterResets::from_aggr_chunks(&chunks).unwrap();
    let mut iterated = Vec::new();
    while it.next() {
        iterated.push(it.at());
    }
    assert_eq!(
        iterated,
        vec![(10, 1.0), (70, 15.0), (120, 16.0), (180, 55.0)]
    );
}

#[test]
fn first_window_counter_example() {
    // Resolution 50, raw 10:1, 20:3, 30:5: one window, counter (10,1),(30,5),(30,5).
    let chunks = [raw_chunk(&[(10, 1.0), (20, 3.0), (30, 5.0)])];
    let out = downsample_raw(&encoded(&chunks), 50).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1), (30, 30));
    assert_eq!(
        aggrs(&out[0].2)[COUNTER].as_deref(),
        Some(&[(10, 1.0), (30, 5.0), (30, 5.0)][..])
    );
}

// ---------------------------------------------------------------------------------------
// CounterResets (Thanos's TestApplyCounterResetsIterator and the Seek tests).

#[test]
fn counter_resets_with_stale_marker() {
    let chunks = [
        xor(&[
            (100, 10.0),
            (200, 20.0),
            (300, 10.0),
            (400, 20.0),
            (400, 5.0),
        ]),
        // No reset, just the downsampling's last sample.
        xor(&[
            (500, 10.0),
            (600, 20.0),
            (700, 30.0),
            (800, 40.0),
            (800, 10.0),
        ]),
        // A real reset.
        xor(&[(900, 5.0), (1000, 10.0), (1100, 15.0)]),
        // No last-sample marker, no reset.
        xor(&[(1200, 20.0), (1250, STALE), (1300, 40.0)]),
        // No last-sample marker, a reset.
        xor(&[(1400, 30.0), (1500, 30.0), (1600, 50.0)]),
    ];
    let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
    assert_eq!(
        counter_iterate(&refs),
        vec![
            (100, 10.0),
            (200, 20.0),
            (300, 30.0),
            (400, 40.0),
            (500, 45.0),
            (600, 55.0),
            (700, 65.0),
            (800, 75.0),
            (900, 80.0),
            (1000, 85.0),
            (1100, 90.0),
            (1200, 95.0),
            (1300, 115.0),
            (1400, 145.0),
            (1500, 145.0),
            (1600, 165.0)
        ]
    );
}

/// The reset-corrected running total of a raw counter, NaNs skipped.
fn cumulative(raw: impl IntoIterator<Item = Sample>) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::new();
    let (mut total, mut last) = (0.0, 0.0);
    for (t, v) in raw {
        if v.is_nan() {
            continue;
        }
        if out.is_empty() {
            total = v;
        } else if v < last {
            total += v;
        } else {
            total += v - last;
        }
        last = v;
        out.push((t, total));
    }
    out
}

#[test]
fn counter_resets_realistic_raw_and_overlaps() {
    let c0 = xor(REALISTIC_RAW_0);
    let c1 = xor(REALISTIC_RAW_1);
    let expected = cumulative(REALISTIC_RAW_0.iter().chain(REALISTIC_RAW_1).copied());
    assert_eq!(expected.len(), 236);
    assert_eq!(expected[expected.len() - 1], (1587693590791, 511500.0));
    assert_eq!(counter_iterate(&[&c0[..], &c1[..]]), expected);
    // Overlapping copies of the same chunks are deduplicated by time.
    let mut many: Vec<&[u8]> = vec![&c0[..]; 3];
    many.extend(std::iter::repeat_n(&c1[..], 9));
    let got = counter_iterate(&many);
    assert_eq!(got, expected);
    for w in got.windows(2) {
        assert!(w[1].0 > w[0].0 && w[1].1 >= w[0].1);
    }
    // The same data after 5m downsampling.
    let c5m = xor(REALISTIC_5M_COUNTER);
    let got = counter_iterate(&[&c5m[..]]);
    assert_eq!(
        got,
        REALISTIC_5M_COUNTER[..REALISTIC_5M_COUNTER.len() - 1].to_vec()
    );
}

#[test]
fn counter_resets_seek() {
    let c = xor(&[
        (100, 10.0),
        (200, 20.0),
        (300, 10.0),
        (400, 20.0),
        (400, 5.0),
    ]);
    let mut it = CounterResets::new([&c[..]]);
    assert!(it.seek(150));
    let mut got = vec![it.at()];
    while it.next() {
        got.push(it.at());
    }
    assert_eq!(got, vec![(200, 20.0), (300, 30.0), (400, 40.0)]);
    assert_eq!(it.last_raw(), 5.0);

    let mut it = CounterResets::new([&c[..]]);
    assert!(!it.seek(500));

    let c = xor(&[(100, 10.0)]);
    let mut it = CounterResets::new([&c[..]]);
    assert!(it.next());
    assert!(it.seek(50));
    assert_eq!(it.at(), (100, 10.0));
    assert!(!it.next());
}

#[test]
fn counter_resets_go_quirks() {
    // Before any next(), the position is (0, 0) and not valid: seeking at or before 0
    // reports nothing, as Go's Seek returns ValNone there.
    let c = xor(&[(100, 10.0)]);
    let mut it = CounterResets::new([&c[..]]);
    assert!(!it.seek(0));
    // After an empty first chunk, Go seeks to lastT+1 = 1, so a first sample at 0 is taken
    // into the total but not emitted.
    let empty = xor(&[]);
    let c = xor(&[(0, 3.0), (10, 5.0)]);
    assert_eq!(counter_iterate(&[&empty[..], &c[..]]), vec![(10, 5.0)]);
    assert_eq!(counter_iterate(&[&c[..]]), vec![(0, 3.0), (10, 5.0)]);
}

#[test]
fn counter_resets_reports_corrupt_chunk() {
    let good = xor(&[(100, 10.0), (200, 20.0)]);
    let bad = xor(&[(300, 1.0), (400, 2.0), (500, 3.0)]);
    let mut it = CounterResets::new([&good[..], &bad[..bad.len() - 2]]);
    let mut n = 0;
    while it.next() {
        n += 1;
    }
    assert!(n >= 2);
    assert!(
        matches!(it.err(), Some(DownsampleError::Corrupt { chunk: 1, .. })),
        "{:?}",
        it.err()
    );
    assert!(!it.next());
}

// ---------------------------------------------------------------------------------------
// Errors and edge cases.

#[test]
fn histogram_aggregates_are_not_float_aggregates() {
    // A histogram aggregate chunk: XOR count, float histogram sum and counter (empty here).
    let count = xor(&[(299_999, 5.0)]);
    let mut data = Vec::new();
    put_uvarint(&mut data, count.len() as u64);
    data.push(Encoding::XOR.0);
    data.extend_from_slice(&count);
    for _ in 0..3 {
        put_uvarint(&mut data, 0);
    }
    put_uvarint(&mut data, 3);
    data.extend_from_slice(&[Encoding::FLOAT_HISTOGRAM.0, 0, 0, 0]);
    let chunks = [Chunk {
        min: 299_999,
        max: 299_999,
        enc: Encoding::AGGR,
        data,
    }];
    // Downsampled as a histogram aggregate: only its count has samples.
    let out = downsample_aggr(&encoded(&chunks), RES_5M, RES_1H).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(aggr::num_samples(&out[0].2), 1);
    // The counter reset iterator reads float counters only.
    let refs = [&chunks[0].data[..]];
    assert!(matches!(
        CounterResets::from_aggr_chunks(&refs),
        Err(DownsampleError::UnexpectedEncoding {
            chunk: 0,
            what: "the counter aggregate",
            ..
        })
    ));
}

#[test]
fn unexpected_encodings_are_refused() {
    let aggr = aggr_chunk([AGG_COUNT, AGG_COUNT, AGG_MIN, AGG_MIN, AGG_COUNTER]);
    let err = downsample_raw(&encoded(&[aggr]), RES_5M).unwrap_err();
    assert!(
        matches!(err, DownsampleError::UnexpectedEncoding { chunk: 0, .. }),
        "{err:?}"
    );
    let odd = Chunk {
        min: 0,
        max: 10,
        enc: Encoding(7),
        data: vec![0, 0],
    };
    let err = downsample_aggr(&encoded(&[odd]), RES_5M, RES_1H).unwrap_err();
    assert!(
        matches!(err, DownsampleError::UnexpectedEncoding { chunk: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn corrupt_chunks_are_reported() {
    let good = xor(&[(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]);
    let chunks = [Chunk {
        min: 10,
        max: 40,
        enc: Encoding::XOR,
        data: good[..good.len() - 3].to_vec(),
    }];
    let err = downsample_raw(&encoded(&chunks), 100).unwrap_err();
    assert!(
        matches!(err, DownsampleError::Corrupt { chunk: 0, .. }),
        "{err:?}"
    );

    let mut aggr = aggr_chunk([AGG_COUNT, AGG_COUNT, AGG_MIN, AGG_MIN, AGG_COUNTER]);
    aggr.data.truncate(aggr.data.len() - 4);
    let err = downsample_aggr(&encoded(&[aggr]), 499, 500).unwrap_err();
    assert!(
        matches!(err, DownsampleError::Corrupt { chunk: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn resolutions_are_checked() {
    let chunks = [raw_chunk(&[(10, 1.0)])];
    assert!(matches!(
        downsample_raw(&encoded(&chunks), 0),
        Err(DownsampleError::InvalidResolution(0))
    ));
    assert!(matches!(
        downsample_aggr(&[], RES_1H, RES_5M),
        Err(DownsampleError::ResolutionNotLower { .. })
    ));
    assert!(matches!(
        downsample_aggr(&[], RES_5M, RES_5M),
        Err(DownsampleError::ResolutionNotLower { .. })
    ));
}

#[test]
fn empty_series_give_no_chunks() {
    assert!(downsample_raw(&[], RES_5M).unwrap().is_empty());
    let stale = [raw_chunk(&[(10, STALE), (20, STALE)])];
    assert!(downsample_raw(&encoded(&stale), RES_5M).unwrap().is_empty());
    let nan = [raw_chunk(&[(10, f64::NAN)])];
    assert!(downsample_raw(&encoded(&nan), RES_5M).unwrap().is_empty());
    assert!(downsample_aggr(&[], RES_5M, RES_1H).unwrap().is_empty());
    let empty = [Chunk {
        min: 0,
        max: 10,
        enc: Encoding::XOR,
        data: xor(&[]),
    }];
    assert!(downsample_aggr(&encoded(&empty), RES_5M, RES_1H)
        .unwrap()
        .is_empty());
}

#[test]
fn trailing_absent_counter_is_absent() {
    // Thanos's Get answers "invalid size" for an absent aggregate at the very end.
    let count = xor(&[(299_999, 5.0), (599_999, 7.0)]);
    let chunk = aggr::encode([Some(&count), Some(&count), None, None, None]);
    assert_eq!(*chunk.last().unwrap(), 0);
    let chunks = [(299_999, 599_999, Encoding::AGGR, &chunk[..])];
    let out = downsample_aggr(&chunks, RES_5M, RES_1H).unwrap();
    assert_eq!(
        aggrs(&out[0].2),
        expect([
            Some(&[(599_999, 12.0)][..]),
            Some(&[(599_999, 12.0)][..]),
            None,
            None,
            None
        ])
    );
}

/// Runs `f` on another thread and fails instead of hanging.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("did not finish: batch size 0 loops forever")
}

#[test]
fn more_target_chunks_than_input_chunks_does_not_hang() {
    // One 5m chunk of 2000 windows: about 167 1h windows, so two target chunks for one input
    // chunk, and Thanos's batch size is 1 / 2 = 0.
    let windows: Vec<Sample> = (0..2000).map(|i| (i * RES_5M + RES_5M - 1, 1.0)).collect();
    let mut counter = vec![(0, 0.0)];
    counter.extend(windows.iter().enumerate().map(|(i, w)| (w.0, i as f64)));
    counter.push((windows[1999].0, 1999.0));
    let chunk = aggr_chunk([&windows, &windows, &windows, &windows, &counter]);
    assert!(target_chunk_count(chunk.min, chunk.max, RES_5M, RES_1H, 2000) > 1);
    let out = within(60, move || {
        downsample_aggr(&encoded(&[chunk]), RES_5M, RES_1H).unwrap()
    });
    assert_eq!(out.len(), 1);
    let a = aggrs(&out[0].2);
    let count = a[COUNT].as_ref().unwrap();
    assert_eq!(count.len(), 167);
    assert_eq!(count.iter().map(|s| s.1).sum::<f64>(), 2000.0);

    // Two chunks, three target chunks: one output chunk per input chunk.
    let a: Vec<Sample> = windows[..1000].to_vec();
    let b: Vec<Sample> = windows[1000..].to_vec();
    let chunks = [
        aggr_chunk([&a, &a, &a, &a, &a]),
        aggr_chunk([&b, &b, &b, &b, &b]),
    ];
    let fixed: Vec<Fixed> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| Fixed {
            chunk: i,
            min_time: c.min,
            max_time: c.max,
            histogram: false,
            data: Cow::Borrowed(&c.data[..]),
        })
        .collect();
    let mut scratch = Scratch::default();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    downsample_aggr_loop(&fixed, RES_1H, 3, &mut scratch, &mut buf, &mut out).unwrap();
    assert_eq!(out.len(), 2);
}

#[test]
fn raw_batches_follow_target_chunk_count() {
    // Ten days of 15s samples to 5m: 2880 windows, 21 chunks of at most ~140 windows, and
    // no window split between two chunks.
    let raw: Vec<Sample> = (0..57_600).map(|i| (i * 15_000, i as f64)).collect();
    let chunks: Vec<Chunk> = raw.chunks(120).map(raw_chunk).collect();
    let out = downsample_raw(&encoded(&chunks), RES_5M).unwrap();
    assert_eq!(
        out.len(),
        target_chunk_count(0, raw[raw.len() - 1].0, 60_000, RES_5M, raw.len())
    );
    let mut windows = 0;
    for w in out.windows(2) {
        assert!(w[0].1 < w[1].0);
    }
    for c in &out {
        let n = aggrs(&c.2)[COUNT].as_ref().unwrap().len();
        assert!(n <= 141, "{n}");
        windows += n;
    }
    assert_eq!(windows, 2880);
}

// ---------------------------------------------------------------------------------------
// Properties against brute force.

#[derive(Clone, Debug)]
struct RawSeries {
    counter: bool,
    chunks: Vec<Vec<Sample>>,
}

impl RawSeries {
    /// The samples that make it into the aggregates.
    fn kept(&self) -> Vec<Sample> {
        self.chunks
            .iter()
            .flatten()
            .copied()
            .filter(|s| !s.1.is_nan())
            .collect()
    }
}

/// Random raw series: timestamps with short and long gaps, counters with resets or gauges,
/// ordinary NaNs and stale markers, cut into chunks of random sizes.
fn raw_series(steps: impl Strategy<Value = i64> + Clone) -> impl Strategy<Value = RawSeries> {
    let kind = prop_oneof![
        90 => Just(0u8),
        4 => Just(1u8),
        4 => Just(2u8),
        3 => Just(3u8),
    ];
    (
        any::<bool>(),
        0i64..1_000_000_000,
        proptest::collection::vec((steps, kind, 0u32..1000), 1..2500),
        proptest::collection::vec(1usize..250, 1..20),
    )
        .prop_map(|(counter, start, samples, sizes)| {
            let mut t = start;
            let mut cur = 0.0f64;
            let mut all = Vec::with_capacity(samples.len());
            for (step, kind, x) in samples {
                t += step;
                let v = match kind {
                    1 => f64::NAN,
                    2 => STALE,
                    3 if counter => {
                        cur = f64::from(x % 50);
                        cur
                    }
                    _ if counter => {
                        cur += f64::from(x % 100);
                        cur
                    }
                    _ => f64::from(x) - 500.0,
                };
                all.push((t, v));
            }
            let mut chunks = Vec::new();
            let mut rest = &all[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                chunks.push(rest[..n].to_vec());
                rest = &rest[n..];
                i += 1;
            }
            RawSeries { counter, chunks }
        })
}

fn realistic_steps() -> impl Strategy<Value = i64> + Clone {
    prop_oneof![
        70 => 1i64..=60_000,
        25 => 60_000i64..=1_200_000,
        5 => 3_600_000i64..=172_800_000,
    ]
}

/// count, sum, min, max by aligned window.
type Windows = BTreeMap<i64, [f64; 4]>;

fn brute_windows(kept: &[Sample], res: i64) -> Windows {
    let mut w = Windows::new();
    for &(t, v) in kept {
        let e = w
            .entry(t - t % res)
            .or_insert([0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY]);
        e[0] += 1.0;
        e[1] += v;
        e[2] = e[2].min(v);
        e[3] = e[3].max(v);
    }
    w
}

/// Checks the shape of output chunks and merges their windows by aligned window (a window
/// can be split between two chunks only when `unique` is false).
fn output_windows(outs: &[AggrOut], res: i64, unique: bool) -> Windows {
    let mut w = Windows::new();
    for (i, (mint, maxt, data)) in outs.iter().enumerate() {
        assert!(mint <= maxt);
        if i > 0 {
            assert!(outs[i - 1].1 < *mint, "chunks overlap or go back in time");
        }
        let a = aggrs(data);
        let [Some(count), Some(sum), Some(min), Some(max), Some(counter)] = a else {
            panic!("missing aggregate: {a:?}");
        };
        let ts: Vec<i64> = count.iter().map(|s| s.0).collect();
        assert!(!ts.is_empty());
        assert!(ts.windows(2).all(|p| p[0] < p[1]));
        for other in [&sum, &min, &max] {
            assert_eq!(other.iter().map(|s| s.0).collect::<Vec<_>>(), ts);
        }
        assert_eq!((*mint, *maxt), (ts[0], ts[ts.len() - 1]));
        // counter: first raw sample, one sample per window, last raw value at the end.
        assert_eq!(counter.len(), ts.len() + 2);
        assert!(counter[0].0 <= ts[0]);
        assert_eq!(
            counter[1..counter.len() - 1]
                .iter()
                .map(|s| s.0)
                .collect::<Vec<_>>(),
            ts
        );
        assert_eq!(counter[counter.len() - 1].0, *maxt);
        for k in 0..ts.len() {
            let key = ts[k] - ts[k] % res;
            let vals = [count[k].1, sum[k].1, min[k].1, max[k].1];
            match w.entry(key) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(vals);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    assert!(!unique, "window {key} appears twice");
                    let e = e.get_mut();
                    e[0] += vals[0];
                    e[1] += vals[1];
                    e[2] = e[2].min(vals[2]);
                    e[3] = e[3].max(vals[3]);
                }
            }
        }
    }
    w
}

/// Window timestamps are window ends, or the last kept sample of their window (the last
/// window of a chunk).
fn check_window_timestamps(outs: &[AggrOut], kept: &[Sample], res: i64) {
    for (_, _, data) in outs {
        for (t, _) in aggrs(data)[COUNT].as_ref().unwrap() {
            let key = t - t % res;
            if *t == key + res - 1 {
                continue;
            }
            let last_in_window = kept.iter().rev().find(|s| s.0 - s.0 % res == key).unwrap();
            assert_eq!(*t, last_in_window.0, "window timestamp {t}");
        }
    }
}

/// Read through CounterResets, the counter aggregate gives at every window timestamp the
/// reset-corrected total of the raw counter, and keeps the last raw value.
fn check_counter(outs: &[AggrOut], kept: &[Sample]) {
    let chunks: Vec<&[u8]> = outs.iter().map(|o| &o.2[..]).collect();
    let mut it = CounterResets::from_aggr_chunks(&chunks).unwrap();
    let mut got = Vec::new();
    while it.next() {
        got.push(it.at());
    }
    assert!(it.err().is_none());
    let want = cumulative(kept.iter().copied());
    assert_eq!(got[0], want[0], "first raw sample");
    assert_eq!(it.last_raw(), kept[kept.len() - 1].1, "last raw value");
    assert_eq!(got[got.len() - 1], want[want.len() - 1], "final total");
    for w in got.windows(2) {
        assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "not monotonic: {w:?}");
    }
    let first = want[0].1;
    for (_, _, data) in outs {
        for (t, _) in aggrs(data)[COUNT].as_ref().unwrap() {
            let g = got[got.partition_point(|s| s.0 <= *t) - 1];
            let r = want[want.partition_point(|s| s.0 <= *t) - 1];
            assert_eq!(g.1 - first, r.1 - first, "increase at window {t}");
        }
    }
}

fn check_series(series: &RawSeries, res1: i64, res2: i64) {
    let chunks: Vec<Chunk> = series.chunks.iter().map(|c| raw_chunk(c)).collect();
    let kept = series.kept();
    let out1 = downsample_raw(&encoded(&chunks), res1).unwrap();
    if kept.is_empty() {
        assert!(out1.is_empty());
        return;
    }
    assert_eq!(
        output_windows(&out1, res1, true),
        brute_windows(&kept, res1)
    );
    check_window_timestamps(&out1, &kept, res1);
    if series.counter {
        check_counter(&out1, &kept);
    }

    let out2 = downsample_aggr(&encoded(&chunks_of(&out1)), res1, res2).unwrap();
    assert_eq!(
        output_windows(&out2, res2, false),
        brute_windows(&kept, res2)
    );
    if series.counter {
        check_counter(&out2, &kept);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn raw_to_5m_to_1h_matches_brute_force(series in raw_series(realistic_steps())) {
        check_series(&series, RES_5M, RES_1H);
    }

    #[test]
    fn small_resolutions_match_brute_force(
        series in raw_series(1i64..=400),
        res1 in 1i64..=300,
        factor in 2i64..=12,
    ) {
        check_series(&series, res1, res1 * factor);
    }
}
