//! A Prometheus as a StoreAPI: Series through remote read, label APIs through its HTTP API,
//! external labels from its configuration.

use std::sync::RwLock;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use prost::Message;
use storeapi::convert::{compare_pb_labels, labels_to_pb, matchers_from_pb};
use storeapi::pb;
use storeapi::store::{series_frame, SeriesStore, SeriesStream};
use tonic::Status;
use tsdb::{Labels, MatchType, Matcher};

use crate::prompb;
use crate::remote_read::next_frame;

pub struct PrometheusStore {
    url: String,
    client: reqwest::Client,
    /// Limit on each small request (config, readiness, metrics); remote read streams have none.
    request_timeout: Duration,
    external_labels: RwLock<Labels>,
    /// Serve only data after this time (`--min-time`).
    min_time: i64,
}

/// An error talking to Prometheus, as a gRPC status naming the URL.
fn unavailable(url: &str, e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("prometheus {url}: {e}"))
}

impl PrometheusStore {
    pub fn new(url: &str, min_time: i64) -> Result<Self, String> {
        Self::with_timeout(url, min_time, Duration::from_secs(5))
    }

    /// As [`new`](Self::new), with the limit on Prometheus's small requests
    /// (`--prometheus.get_config_timeout`): a frozen Prometheus then fails them instead of
    /// holding the sidecar's checks forever.
    pub fn with_timeout(
        url: &str,
        min_time: i64,
        request_timeout: Duration,
    ) -> Result<Self, String> {
        Self::with_client(url, min_time, request_timeout, &Default::default())
    }

    /// As [`with_timeout`](Self::with_timeout), reaching Prometheus with `client` (auth,
    /// TLS, proxy: `--prometheus.http-client`).
    pub fn with_client(
        url: &str,
        min_time: i64,
        request_timeout: Duration,
        client: &crate::http_client::HttpClientConfig,
    ) -> Result<Self, String> {
        let client = client
            .builder()?
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(PrometheusStore {
            url: url.trim_end_matches('/').to_string(),
            client,
            request_timeout,
            external_labels: RwLock::new(Labels::empty()),
            min_time,
        })
    }

    /// The HTTP client Prometheus is reached with (its auth and TLS included).
    pub fn http_client(&self) -> reqwest::Client {
        self.client.clone()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn external_labels(&self) -> Labels {
        self.external_labels
            .read()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    pub(crate) async fn get(&self, path: &str) -> Result<String, Status> {
        let url = format!("{}{path}", self.url);
        let resp = self
            .client
            .get(&url)
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| unavailable(&self.url, e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| unavailable(&self.url, e))?;
        if !status.is_success() {
            return Err(unavailable(
                &self.url,
                format!("GET {path}: HTTP {status}: {body}"),
            ));
        }
        Ok(body)
    }

    /// True when Prometheus answers `/-/ready`.
    pub async fn ready(&self) -> bool {
        self.check_ready().await.is_ok()
    }

    /// Whether Prometheus answers `/-/ready` in time, and why not.
    pub async fn check_ready(&self) -> Result<(), Status> {
        self.get("/-/ready").await.map(|_| ())
    }

    /// Re-reads the external labels from Prometheus's configuration; fails when there are none
    /// (they must identify the Prometheus uniquely, as Thanos requires).
    pub async fn refresh_external_labels(&self) -> Result<Labels, Status> {
        let body = self.get("/api/v1/status/config").await?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| unavailable(&self.url, format!("config response: {e}")))?;
        let yaml = v["data"]["yaml"].as_str().unwrap_or_default();
        let cfg: serde_yaml::Value = serde_yaml::from_str(yaml)
            .map_err(|e| unavailable(&self.url, format!("config YAML: {e}")))?;
        let mut pairs = Vec::new();
        if let Some(m) = cfg
            .get("global")
            .and_then(|g| g.get("external_labels"))
            .and_then(|e| e.as_mapping())
        {
            for (k, v) in m {
                if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                    pairs.push((k.to_string(), v.to_string()));
                }
            }
        }
        let labels = Labels::from_pairs(pairs);
        if labels.is_empty() {
            return Err(Status::failed_precondition(
                "no external labels configured on Prometheus server, uniquely identifying external labels must be configured; see https://thanos.io/tip/thanos/storage.md#external-labels for details.",
            ));
        }
        if let Ok(mut l) = self.external_labels.write() {
            *l = labels.clone();
        }
        Ok(labels)
    }

    /// The oldest sample Prometheus holds, from its `prometheus_tsdb_lowest_timestamp` metric.
    async fn lowest_timestamp(&self) -> Result<i64, Status> {
        let body = self.get("/metrics").await?;
        let v = body
            .lines()
            .find_map(|l| l.strip_prefix("prometheus_tsdb_lowest_timestamp "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        Ok(v as i64)
    }

    /// The matchers left for Prometheus once those on external labels are checked here;
    /// `None` when an external label does not match.
    fn beyond_external<'m>(&self, ms: &'m [Matcher]) -> Option<Vec<&'m Matcher>> {
        storeapi::store::beyond_external(&self.external_labels(), ms)
    }

    /// `&match[]={…}` for Prometheus's label APIs: empty without matchers, `None` when the
    /// external labels rule every series out.
    fn match_param(&self, ms: &[pb::LabelMatcher]) -> Result<Option<String>, Status> {
        let ms = matchers_from_pb(ms).map_err(Status::invalid_argument)?;
        let Some(rest) = self.beyond_external(&ms) else {
            return Ok(None);
        };
        if rest.is_empty() {
            return Ok(Some(String::new()));
        }
        let selector = format!(
            "{{{}}}",
            rest.iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(Some(format!(
            "&match%5B%5D={}",
            encode_component(&selector)
        )))
    }

    fn prometheus_matchers(&self, ms: &[Matcher]) -> Option<Vec<prompb::LabelMatcher>> {
        let mut out = Vec::new();
        for m in self.beyond_external(ms)? {
            let t = match m.kind {
                MatchType::Equal => 0,
                MatchType::NotEqual => 1,
                MatchType::RegexMatch => 2,
                MatchType::RegexNoMatch => 3,
            };
            out.push(prompb::LabelMatcher {
                r#type: t,
                name: m.name.clone(),
                value: m.value.clone(),
            });
        }
        if out.is_empty() {
            out.push(prompb::LabelMatcher {
                r#type: 2,
                name: tsdb::labels::METRIC_NAME.into(),
                value: ".+".into(),
            });
        }
        Some(out)
    }
}

/// Converts a remote read series: external labels win, chunks keep their bytes.
fn to_pb(s: prompb::ChunkedSeries, ext: &Labels) -> pb::Series {
    let labels =
        Labels::from_pairs(s.labels.into_iter().map(|l| (l.name, l.value))).merge_overriding(ext);
    let chunks = s
        .chunks
        .into_iter()
        .filter_map(|c| {
            let wire = storeapi::convert::encoding_to_pb(tsdb::chunkenc::Encoding(
                u8::try_from(c.r#type).ok()?,
            ))?;
            Some(pb::AggrChunk {
                min_time: c.min_time_ms,
                max_time: c.max_time_ms,
                raw: Some(pb::Chunk {
                    r#type: wire as i32,
                    data: c.data.into(),
                    hash: 0,
                }),
                ..Default::default()
            })
        })
        .collect();
    pb::Series {
        labels: labels_to_pb(&labels),
        chunks,
    }
}

struct ReadState {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: BytesMut,
    ready: std::collections::VecDeque<pb::Series>,
    pending: Option<pb::Series>,
    ext: Labels,
    done: bool,
    url: String,
}

impl ReadState {
    /// The next complete series: consecutive frames of one series are joined.
    async fn next_series(&mut self) -> Option<Result<pb::Series, Status>> {
        loop {
            while let Some(s) = self.ready.pop_front() {
                match self.pending.take() {
                    Some(mut p) if compare_pb_labels(&p.labels, &s.labels).is_eq() => {
                        p.chunks.extend(s.chunks);
                        self.pending = Some(p);
                    }
                    Some(p) => {
                        self.pending = Some(s);
                        return Some(Ok(p));
                    }
                    None => self.pending = Some(s),
                }
            }
            if self.done {
                return self.pending.take().map(Ok);
            }
            match next_frame(&mut self.buf) {
                Ok(Some(frame)) => {
                    let ext = self.ext.clone();
                    self.ready
                        .extend(frame.chunked_series.into_iter().map(|s| to_pb(s, &ext)));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(unavailable(&self.url, e)));
                }
            }
            match self.body.next().await {
                Some(Ok(b)) => self.buf.extend_from_slice(&b),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(unavailable(&self.url, e)));
                }
                None => {
                    self.done = true;
                    if !self.buf.is_empty() {
                        return Some(Err(unavailable(
                            &self.url,
                            "remote read response ends inside a frame",
                        )));
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl SeriesStore for PrometheusStore {
    fn name(&self) -> String {
        self.url.clone()
    }

    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        let ext = self.refresh_external_labels().await?;
        let lowest = self.lowest_timestamp().await?.max(self.min_time);
        Ok(pb::info::InfoResponse {
            label_sets: vec![pb::ZLabelSet {
                labels: labels_to_pb(&ext),
            }],
            component_type: "sidecar".into(),
            store: Some(pb::info::StoreInfo {
                min_time: lowest,
                max_time: i64::MAX,
                supports_without_replica_labels: false,
                ..Default::default()
            }),
            // Served beside the StoreAPI over Prometheus's own APIs (see `apis`).
            rules: Some(pb::info::RulesInfo {}),
            metric_metadata: Some(pb::info::MetricMetadataInfo {}),
            targets: Some(pb::info::TargetsInfo {}),
            exemplars: Some(pb::info::ExemplarsInfo {
                min_time: lowest,
                max_time: i64::MAX,
            }),
            ..Default::default()
        })
    }

    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        let ms = matchers_from_pb(&req.matchers).map_err(Status::invalid_argument)?;
        if self.external_labels().is_empty() {
            self.refresh_external_labels().await?;
        }
        let Some(matchers) = self.prometheus_matchers(&ms) else {
            return Ok(futures::stream::empty().boxed());
        };
        let read = prompb::ReadRequest {
            queries: vec![prompb::Query {
                start_timestamp_ms: req.min_time.max(self.min_time),
                end_timestamp_ms: req.max_time,
                matchers,
                hints: None,
            }],
            accepted_response_types: vec![prompb::STREAMED_XOR_CHUNKS],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&read.encode_to_vec())
            .map_err(|e| Status::internal(format!("snappy: {e}")))?;
        let resp = self
            .client
            .post(format!("{}/api/v1/read", self.url))
            .header("Content-Encoding", "snappy")
            .header("Accept-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(&self.url, e))?;
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(unavailable(
                &self.url,
                format!("remote read: HTTP {status}: {text}"),
            ));
        }
        if !ctype.starts_with("application/x-streamed-protobuf") {
            return Err(unavailable(
                &self.url,
                format!("remote read answered {ctype:?}, not streamed chunks"),
            ));
        }
        if req.skip_chunks {
            tracing::debug!("skip_chunks: chunks are read and dropped");
        }
        let state = ReadState {
            body: resp.bytes_stream().boxed(),
            buf: BytesMut::new(),
            ready: Default::default(),
            pending: None,
            ext: self.external_labels(),
            done: false,
            url: self.url.clone(),
        };
        let skip = req.skip_chunks;
        Ok(futures::stream::unfold(state, move |mut st| async move {
            let item = st.next_series().await?;
            Some((
                item.map(|mut s| {
                    if skip {
                        s.chunks.clear();
                    }
                    series_frame(s)
                }),
                st,
            ))
        })
        .boxed())
    }

    /// As Thanos's sidecar: Prometheus's label names for the matchers (less those on
    /// external labels), plus the external label names when there are any.
    async fn label_names(
        &self,
        req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        let Some(matching) = self.match_param(&req.matchers)? else {
            return Ok(pb::LabelNamesResponse::default());
        };
        let body = self
            .get(&format!(
                "/api/v1/labels?start={}&end={}{matching}",
                secs(req.start),
                secs(req.end)
            ))
            .await?;
        let mut names = json_strings(&body, &self.url)?;
        if !names.is_empty() {
            names.extend(self.external_labels().iter().map(|l| l.name.clone()));
        }
        names.sort();
        names.dedup();
        Ok(pb::LabelNamesResponse {
            names,
            ..Default::default()
        })
    }

    /// As Thanos's sidecar: an external label's value when the label is external, else
    /// Prometheus's values of the label among the matching series.
    async fn label_values(
        &self,
        req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        let Some(matching) = self.match_param(&req.matchers)? else {
            return Ok(pb::LabelValuesResponse::default());
        };
        if let Some(v) = self.external_labels().get(&req.label) {
            return Ok(pb::LabelValuesResponse {
                values: vec![v.to_string()],
                ..Default::default()
            });
        }
        let body = self
            .get(&format!(
                "/api/v1/label/{}/values?start={}&end={}{matching}",
                encode_component(&req.label),
                secs(req.start),
                secs(req.end)
            ))
            .await?;
        let mut values = json_strings(&body, &self.url)?;
        values.sort();
        Ok(pb::LabelValuesResponse {
            values,
            ..Default::default()
        })
    }
}

/// Percent-encodes a URL query or path component (RFC 3986 unreserved bytes stay).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Milliseconds as the seconds Prometheus's API takes, clamped to what it accepts.
fn secs(ms: i64) -> String {
    let ms = ms.clamp(-9_223_372_036_000, 9_223_372_036_000);
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn json_strings(body: &str, url: &str) -> Result<Vec<String>, Status> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| unavailable(url, format!("API response: {e}")))?;
    Ok(v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}
