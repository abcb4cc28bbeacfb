//! The Prometheus protobuf exposition format, for scrape targets that expose native
//! histograms (Prometheus 2.42 ingests them only from protobuf scrapes, with
//! `--enable-feature=native-histograms`).
//!
//! A page is a sequence of `io.prometheus.client.MetricFamily` messages, each preceded by
//! its length as a varint (`Content-Type: application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`). The messages below carry
//! the field numbers and types of `io/prometheus/client/metrics.proto` in
//! prometheus/client_model v0.3.0, the version Prometheus 2.42 vendors (its own copy,
//! `prompb/io/prometheus/client/metrics.proto` at v2.42.0, has the same numbers):
//!
//! ```text
//! MetricFamily { name = 1 string, help = 2 string, type = 3 MetricType, metric = 4 Metric* }
//! MetricType   { COUNTER = 0, GAUGE = 1, SUMMARY = 2, UNTYPED = 3, HISTOGRAM = 4,
//!                GAUGE_HISTOGRAM = 5 }
//! Metric       { label = 1 LabelPair*, gauge = 2, counter = 3 Counter, summary = 4,
//!                untyped = 5, histogram = 7 Histogram, timestamp_ms = 6 int64 }
//! LabelPair    { name = 1 string, value = 2 string }
//! Counter      { value = 1 double, exemplar = 2 }
//! Histogram    { sample_count = 1 uint64, sample_count_float = 4 double,
//!                sample_sum = 2 double, bucket = 3 Bucket* (classic buckets),
//!                schema = 5 sint32, zero_threshold = 6 double, zero_count = 7 uint64,
//!                zero_count_float = 8 double,
//!                negative_span = 9 BucketSpan*, negative_delta = 10 sint64*,
//!                negative_count = 11 double*,
//!                positive_span = 12 BucketSpan*, positive_delta = 13 sint64*,
//!                positive_count = 14 double* }
//! Bucket       { cumulative_count = 1 uint64, upper_bound = 2 double }
//! BucketSpan   { offset = 1 sint32, length = 2 uint32 }
//! ```
//!
//! Spans: the first span's offset is the index of its first bucket, each later one's the
//! gap after the previous span. Deltas: the first bucket's count, then each bucket's count
//! minus the previous bucket's (across spans). Prometheus 2.42 takes a histogram as native
//! when it has deltas or a zero bucket (count or threshold above 0), and then ingests only
//! the native form; a histogram with classic buckets only is classic (the `+Inf` bucket is
//! implicit: `sample_count`), which Prometheus 3.x turns into a native histogram with custom
//! buckets under `convert_classic_histograms_to_nhcb`. Repeated scalars are written
//! unpacked, as proto2 (client_golang) does.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prost::Message;

pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

pub const COUNTER: i32 = 0;
pub const HISTOGRAM: i32 = 4;

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub help: Option<String>,
    #[prost(int32, optional, tag = "3")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    #[prost(int64, optional, tag = "6")]
    pub timestamp_ms: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPair {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "4")]
    pub sample_count_float: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    #[prost(sint32, optional, tag = "5")]
    pub schema: Option<i32>,
    #[prost(double, optional, tag = "6")]
    pub zero_threshold: Option<f64>,
    #[prost(uint64, optional, tag = "7")]
    pub zero_count: Option<u64>,
    #[prost(double, optional, tag = "8")]
    pub zero_count_float: Option<f64>,
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, packed = "false", tag = "10")]
    pub negative_delta: Vec<i64>,
    #[prost(double, repeated, packed = "false", tag = "11")]
    pub negative_count: Vec<f64>,
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, packed = "false", tag = "13")]
    pub positive_delta: Vec<i64>,
    #[prost(double, repeated, packed = "false", tag = "14")]
    pub positive_count: Vec<f64>,
}

/// A classic bucket: observations up to `upper_bound` (inclusive), cumulative.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, optional, tag = "1")]
    pub offset: Option<i32>,
    #[prost(uint32, optional, tag = "2")]
    pub length: Option<u32>,
}

/// Spans and deltas for buckets given as (index, absolute count), indices ascending.
pub fn spans_and_deltas(buckets: &[(i32, u64)]) -> (Vec<BucketSpan>, Vec<i64>) {
    let mut spans: Vec<BucketSpan> = Vec::new();
    let mut deltas = Vec::with_capacity(buckets.len());
    let (mut prev_index, mut prev_count) = (None::<i32>, 0i64);
    for &(index, count) in buckets {
        match prev_index {
            Some(p) if index == p + 1 => {
                let last = spans.last_mut().expect("a span is open");
                last.length = Some(last.length.unwrap_or(0) + 1);
            }
            Some(p) => {
                assert!(index > p, "bucket indices must ascend: {p} then {index}");
                spans.push(BucketSpan {
                    offset: Some(index - p - 1),
                    length: Some(1),
                });
            }
            None => spans.push(BucketSpan {
                offset: Some(index),
                length: Some(1),
            }),
        }
        deltas.push(count as i64 - prev_count);
        (prev_index, prev_count) = (Some(index), count as i64);
    }
    (spans, deltas)
}

/// An integer native histogram; its count is the zero bucket's plus every bucket's.
pub fn native_histogram(
    schema: i32,
    zero_threshold: f64,
    zero_count: u64,
    sum: f64,
    negative: &[(i32, u64)],
    positive: &[(i32, u64)],
) -> Histogram {
    let (negative_span, negative_delta) = spans_and_deltas(negative);
    let (positive_span, positive_delta) = spans_and_deltas(positive);
    let count = zero_count
        + negative.iter().map(|b| b.1).sum::<u64>()
        + positive.iter().map(|b| b.1).sum::<u64>();
    Histogram {
        sample_count: Some(count),
        sample_sum: Some(sum),
        schema: Some(schema),
        zero_threshold: Some(zero_threshold),
        zero_count: Some(zero_count),
        negative_span,
        negative_delta,
        positive_span,
        positive_delta,
        ..Histogram::default()
    }
}

/// A classic histogram: `buckets` as (upper bound, cumulative count), bounds ascending and
/// below `+Inf`; `count` is the `+Inf` bucket.
pub fn classic_histogram(count: u64, sum: f64, buckets: &[(f64, u64)]) -> Histogram {
    Histogram {
        sample_count: Some(count),
        sample_sum: Some(sum),
        bucket: buckets
            .iter()
            .map(|&(upper_bound, cumulative_count)| Bucket {
                cumulative_count: Some(cumulative_count),
                upper_bound: Some(upper_bound),
            })
            .collect(),
        ..Histogram::default()
    }
}

/// A metric (one series of a family) with the given labels.
pub fn metric(labels: &[(&str, &str)]) -> Metric {
    Metric {
        label: labels
            .iter()
            .map(|(n, v)| LabelPair {
                name: Some(n.to_string()),
                value: Some(v.to_string()),
            })
            .collect(),
        ..Metric::default()
    }
}

pub fn family(name: &str, help: &str, kind: i32, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.to_string()),
        help: Some(help.to_string()),
        r#type: Some(kind),
        metric,
    }
}

/// The families as one page: each message preceded by its varint length.
pub fn encode_page(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in families {
        f.encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

/// A scrape target on a free loopback port, for the life of the test: every request gets
/// `page(n)` as a protobuf exposition, `n` counting requests from 1.
pub struct Target {
    pub port: u16,
    scrapes: Arc<AtomicU64>,
}

impl Target {
    pub fn serve(page: impl Fn(u64) -> Vec<MetricFamily> + Send + 'static) -> Target {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("listener address").port();
        let scrapes = Arc::new(AtomicU64::new(0));
        let counter = scrapes.clone();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let body = encode_page(&page(n));
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            }
        });
        Target { port, scrapes }
    }

    /// Requests answered so far.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_deltas_follow_the_exposition_rules() {
        let (spans, deltas) = spans_and_deltas(&[(-2, 3), (-1, 5), (2, 1), (3, 0), (4, 7)]);
        let pairs: Vec<(i32, u32)> = spans
            .iter()
            .map(|s| (s.offset.unwrap(), s.length.unwrap()))
            .collect();
        assert_eq!(pairs, vec![(-2, 2), (2, 3)]);
        assert_eq!(deltas, vec![3, 2, -4, -1, 7]);
    }

    #[test]
    fn encodes_zigzag_and_delimits_messages() {
        let mut m = metric(&[("path", "/a")]);
        m.histogram = Some(native_histogram(3, 0.0, 0, 0.0, &[], &[(-1, 2)]));
        let page = encode_page(&[family("x", "", HISTOGRAM, vec![m.clone()])]);
        // Length prefix, then name (field 1, wire type 2).
        assert_eq!(page[0] as usize, page.len() - 1);
        assert_eq!(&page[1..4], &[0x0a, 1, b'x']);
        let enc = m.histogram.unwrap().encode_to_vec();
        // schema: key (5<<3|0)=0x28, zigzag(3)=6.
        assert!(enc.windows(2).any(|w| w == [0x28, 6]), "{enc:02x?}");
        // positive_span: key (12<<3|2)=0x62, len 4, offset key 0x08 zigzag(-1)=1,
        // length key 0x10, 1.
        assert!(
            enc.windows(6).any(|w| w == [0x62, 4, 0x08, 1, 0x10, 1]),
            "{enc:02x?}"
        );
        // positive_delta unpacked: key (13<<3|0)=0x68, zigzag(2)=4.
        assert!(enc.windows(2).any(|w| w == [0x68, 4]), "{enc:02x?}");
    }
}
