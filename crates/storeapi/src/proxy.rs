//! The proxy: fans a request out to every store concurrently and merges their label-sorted
//! series streams into one (a k-way merge). Series with identical labels from several stores
//! become one series whose chunks are merged by time, byte-identical chunks kept once.
//! A failing store becomes a warning (partial response strategy WARN) or fails the whole
//! request (ABORT).

use std::sync::Arc;

use futures::{future::join_all, StreamExt};
use tonic::Status;

use crate::convert::compare_pb_labels;
use crate::pb;
use crate::pb::info::{InfoResponse, StoreInfo};
use crate::store::{series_frame, warning_frame, SeriesStore, SeriesStream};

pub struct Proxy {
    stores: Vec<Arc<dyn SeriesStore>>,
    /// Warnings every answer carries (e.g. stores left out because they are unhealthy).
    warnings: Vec<String>,
    /// Matchers added to every request (the querier's selector over external labels).
    matchers: Vec<pb::LabelMatcher>,
}

impl Proxy {
    pub fn new(stores: Vec<Arc<dyn SeriesStore>>) -> Self {
        Proxy {
            stores,
            warnings: Vec::new(),
            matchers: Vec::new(),
        }
    }

    /// Adds matchers to every Series, LabelNames and LabelValues request.
    pub fn with_matchers(mut self, matchers: Vec<pb::LabelMatcher>) -> Self {
        self.matchers = matchers;
        self
    }

    /// Adds warnings that every answer of this proxy carries.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }
}

fn abort(strategy: i32) -> bool {
    strategy == pb::PartialResponseStrategy::Abort as i32
}

/// One store's stream and the series it offers next.
struct Source {
    name: String,
    stream: SeriesStream,
    head: Option<pb::Series>,
    /// The rest of the batch frame `head` came from.
    batched: std::vec::IntoIter<pb::Series>,
}

impl Source {
    /// Pulls the next series, passing warnings to `warnings`. A stream error ends the source.
    async fn advance(&mut self, warnings: &mut Vec<String>) -> Result<(), Status> {
        self.head = self.batched.next();
        if self.head.is_some() {
            return Ok(());
        }
        while let Some(frame) = self.stream.next().await {
            let frame = frame.map_err(|s| {
                Status::new(s.code(), format!("store {}: {}", self.name, s.message()))
            })?;
            match frame.result {
                Some(pb::series_response::Result::Series(s)) => {
                    self.head = Some(s);
                    return Ok(());
                }
                Some(pb::series_response::Result::Batch(b)) => {
                    self.batched = b.series.into_iter();
                    self.head = self.batched.next();
                    if self.head.is_some() {
                        return Ok(());
                    }
                }
                Some(pb::series_response::Result::Warning(w)) => {
                    warnings.push(format!("store {}: {w}", self.name))
                }
                Some(pb::series_response::Result::Hints(_)) | None => {}
            }
        }
        Ok(())
    }
}

/// Merges the chunks of one series from several stores: by time, identical chunks once.
fn merge_series(mut parts: Vec<pb::Series>) -> pb::Series {
    let mut out = parts.swap_remove(0);
    for p in parts {
        out.chunks.extend(p.chunks);
    }
    sort_and_dedup_chunks(&mut out.chunks);
    out
}

/// Orders chunks as Thanos's proxy does (by time, then by content), so a series reads the
/// same whichever order its stores sent the chunks in, and keeps identical ones once.
pub fn sort_and_dedup_chunks(chunks: &mut Vec<pb::AggrChunk>) {
    chunks.sort_by(compare_chunks);
    chunks.dedup_by(|a, b| compare_chunks(a, b).is_eq());
}

/// Thanos's `AggrChunk.Compare` as an ordering: min time, max time, then per aggregate
/// (raw, count, sum, min, max, counter) present before absent, encoding ascending and data
/// descending. The hash field is not compared (some stores set it, others do not).
pub fn compare_chunks(a: &pb::AggrChunk, b: &pb::AggrChunk) -> std::cmp::Ordering {
    fn part(x: &Option<pb::Chunk>, y: &Option<pb::Chunk>) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        match (x, y) {
            (None, None) => Equal,
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (Some(x), Some(y)) => x.r#type.cmp(&y.r#type).then_with(|| y.data.cmp(&x.data)),
        }
    }
    a.min_time
        .cmp(&b.min_time)
        .then(a.max_time.cmp(&b.max_time))
        .then_with(|| part(&a.raw, &b.raw))
        .then_with(|| part(&a.count, &b.count))
        .then_with(|| part(&a.sum, &b.sum))
        .then_with(|| part(&a.min, &b.min))
        .then_with(|| part(&a.max, &b.max))
        .then_with(|| part(&a.counter, &b.counter))
}

#[async_trait::async_trait]
impl SeriesStore for Proxy {
    fn name(&self) -> String {
        "proxy".into()
    }

    async fn info(&self) -> Result<InfoResponse, Status> {
        let infos = join_all(self.stores.iter().map(|s| s.info())).await;
        let mut label_sets = Vec::new();
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for info in infos.into_iter().flatten() {
            label_sets.extend(info.label_sets);
            if let Some(s) = info.store {
                min_t = min_t.min(s.min_time);
                max_t = max_t.max(s.max_time);
            }
        }
        if min_t > max_t {
            (min_t, max_t) = (0, 0);
        }
        Ok(InfoResponse {
            label_sets,
            component_type: "query".into(),
            store: Some(StoreInfo {
                min_time: min_t,
                max_time: max_t,
                supports_without_replica_labels: true,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn series(&self, mut req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        req.matchers.extend(self.matchers.iter().cloned());
        let strategy = req.partial_response_strategy;
        self.fail_on_warnings(strategy)?;
        let opened = join_all(self.stores.iter().map(|s| {
            let req = req.clone();
            async move { (s.name(), s.series(req).await) }
        }))
        .await;
        let mut warnings = self.warnings.clone();
        let mut sources = Vec::with_capacity(opened.len());
        for (name, r) in opened {
            match r {
                Ok(stream) => sources.push(Source {
                    name,
                    stream: strip_replica_labels(stream, req.without_replica_labels.clone()),
                    head: None,
                    batched: Vec::new().into_iter(),
                }),
                Err(e) if abort(strategy) => {
                    return Err(Status::new(
                        e.code(),
                        format!("store {name}: {}", e.message()),
                    ))
                }
                Err(e) => warnings.push(format!("store {name}: {}", e.message())),
            }
        }
        // Prime every source concurrently.
        let results = join_all(sources.iter_mut().map(|s| async {
            let mut w = Vec::new();
            let r = s.advance(&mut w).await;
            (r, w)
        }))
        .await;
        for (r, w) in results {
            warnings.extend(w);
            if let Err(e) = r {
                if abort(strategy) {
                    return Err(e);
                }
                warnings.push(e.message().to_string());
            }
        }
        let state = MergeState {
            sources,
            warnings,
            strategy,
            failed: false,
        };
        Ok(futures::stream::unfold(state, |mut st| async move {
            let item = st.next_frame().await?;
            Some((item, st))
        })
        .boxed())
    }

    async fn label_names(
        &self,
        mut req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        req.matchers.extend(self.matchers.iter().cloned());
        let (results, mut warnings) = self
            .fan_out(req.partial_response_strategy, |s| {
                let req = req.clone();
                async move { s.label_names(req).await }
            })
            .await?;
        warnings.splice(0..0, self.warnings.iter().cloned());
        let mut names = Vec::new();
        for r in results {
            names.extend(r.names);
            warnings.extend(r.warnings);
        }
        names.sort();
        names.dedup();
        Ok(pb::LabelNamesResponse {
            names,
            warnings,
            hints: None,
        })
    }

    async fn label_values(
        &self,
        mut req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        req.matchers.extend(self.matchers.iter().cloned());
        let (results, mut warnings) = self
            .fan_out(req.partial_response_strategy, |s| {
                let req = req.clone();
                async move { s.label_values(req).await }
            })
            .await?;
        warnings.splice(0..0, self.warnings.iter().cloned());
        let mut values = Vec::new();
        for r in results {
            values.extend(r.values);
            warnings.extend(r.warnings);
        }
        values.sort();
        values.dedup();
        Ok(pb::LabelValuesResponse {
            values,
            warnings,
            hints: None,
        })
    }
}

impl Proxy {
    /// Under ABORT, a preset warning (a store that should have been asked and was not) fails
    /// the request: it could not be answered whole.
    fn fail_on_warnings(&self, strategy: i32) -> Result<(), Status> {
        match self.warnings.first() {
            Some(w) if abort(strategy) => Err(Status::unavailable(w.clone())),
            _ => Ok(()),
        }
    }

    /// Calls every store concurrently; failures become warnings (WARN) or the error (ABORT).
    async fn fan_out<R, F, Fut>(
        &self,
        strategy: i32,
        call: F,
    ) -> Result<(Vec<R>, Vec<String>), Status>
    where
        F: Fn(Arc<dyn SeriesStore>) -> Fut,
        Fut: std::future::Future<Output = Result<R, Status>>,
    {
        self.fail_on_warnings(strategy)?;
        let results = join_all(self.stores.iter().map(|s| {
            let name = s.name();
            let fut = call(s.clone());
            async move { (name, fut.await) }
        }))
        .await;
        let (mut ok, mut warnings) = (Vec::new(), Vec::new());
        for (name, r) in results {
            match r {
                Ok(v) => ok.push(v),
                Err(e) if abort(strategy) => {
                    return Err(Status::new(
                        e.code(),
                        format!("store {name}: {}", e.message()),
                    ))
                }
                Err(e) => warnings.push(format!("store {name}: {}", e.message())),
            }
        }
        Ok((ok, warnings))
    }
}

struct MergeState {
    sources: Vec<Source>,
    warnings: Vec<String>,
    strategy: i32,
    failed: bool,
}

impl MergeState {
    async fn next_frame(&mut self) -> Option<Result<pb::SeriesResponse, Status>> {
        if self.failed {
            return None;
        }
        if !self.warnings.is_empty() {
            return Some(Ok(warning_frame(self.warnings.remove(0))));
        }
        // The smallest head, then every head with exactly its labels. A store may send one
        // series as several frames (Thanos's store gateway does when replica labels are
        // removed): take heads with these labels until none is left.
        let first = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.head.as_ref().map(|h| (i, h)))
            .min_by(|a, b| compare_pb_labels(&a.1.labels, &b.1.labels))?
            .0;
        let mut parts = Vec::with_capacity(1);
        parts.extend(self.sources[first].head.take());
        let mut advancing = vec![first];
        self.take_equal_heads(&mut parts, &mut advancing);
        while !advancing.is_empty() {
            if let Err(e) = self.advance_sources(&advancing).await {
                return Some(Err(e));
            }
            advancing.clear();
            self.take_equal_heads(&mut parts, &mut advancing);
        }
        // Chunks go out sorted by time, as every reader of a series expects.
        let merged = if parts.len() == 1 {
            let mut one = parts.pop()?;
            if !one.chunks.is_sorted_by(|a, b| compare_chunks(a, b).is_lt()) {
                sort_and_dedup_chunks(&mut one.chunks);
            }
            one
        } else {
            merge_series(parts)
        };
        Some(Ok(series_frame(merged)))
    }
}

impl MergeState {
    /// Moves every head with the labels of `parts[0]` into `parts`, noting its source.
    fn take_equal_heads(&mut self, parts: &mut Vec<pb::Series>, taken: &mut Vec<usize>) {
        for (i, s) in self.sources.iter_mut().enumerate() {
            let same = s
                .head
                .as_ref()
                .is_some_and(|h| compare_pb_labels(&h.labels, &parts[0].labels).is_eq());
            if same {
                parts.extend(s.head.take());
                taken.push(i);
            }
        }
    }

    /// Moves the sources at `which` to their next series: one directly, several
    /// concurrently. Their warnings are kept; an error fails the merge under ABORT.
    async fn advance_sources(&mut self, which: &[usize]) -> Result<(), Status> {
        let results = if let [one] = which {
            let mut w = Vec::new();
            let r = self.sources[*one].advance(&mut w).await;
            vec![(r, w)]
        } else {
            let picked = self
                .sources
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| which.contains(i));
            join_all(picked.map(|(_, s)| async {
                let mut w = Vec::new();
                let r = s.advance(&mut w).await;
                (r, w)
            }))
            .await
        };
        for (r, w) in results {
            self.warnings.extend(w);
            if let Err(e) = r {
                if abort(self.strategy) {
                    self.failed = true;
                    return Err(e);
                }
                self.warnings.push(e.message().to_string());
            }
        }
        Ok(())
    }
}

/// Removes replica labels from a store's series when the store kept them (it does not
/// support `without_replica_labels`): the stream is then buffered, re-sorted and series
/// that became equal are merged. Decided on the first series: external labels are on all.
fn strip_replica_labels(stream: SeriesStream, names: Vec<String>) -> SeriesStream {
    if names.is_empty() {
        return stream;
    }
    let names = Arc::new(names);
    let replica_names = names.clone();
    let is_replica = move |l: &pb::Label| l.named_any_of(&replica_names);
    let names_of = move |s: &pb::Series| s.labels.iter().any(|l| l.named_any_of(&names));
    futures::stream::once(async move {
        let mut stream = stream;
        let mut head: Vec<Result<pb::SeriesResponse, Status>> = Vec::new();
        // Pass warnings through until the first series shows whether to buffer.
        loop {
            match stream.next().await {
                None => return futures::stream::iter(head).boxed(),
                Some(Ok(pb::SeriesResponse {
                    result:
                        Some(
                            first @ (pb::series_response::Result::Series(_)
                            | pb::series_response::Result::Batch(_)),
                        ),
                })) => {
                    let mut all = match first {
                        pb::series_response::Result::Series(s) => vec![s],
                        pb::series_response::Result::Batch(b) => b.series,
                        _ => Vec::new(),
                    };
                    if all.is_empty() {
                        continue;
                    }
                    if !names_of(&all[0]) {
                        head.extend(all.into_iter().map(|s| Ok(series_frame(s))));
                        return futures::stream::iter(head).chain(stream).boxed();
                    }
                    let mut tail = Vec::new();
                    while let Some(frame) = stream.next().await {
                        match frame {
                            Ok(pb::SeriesResponse {
                                result: Some(pb::series_response::Result::Series(s)),
                            }) => all.push(s),
                            Ok(pb::SeriesResponse {
                                result: Some(pb::series_response::Result::Batch(b)),
                            }) => all.extend(b.series),
                            other => tail.push(other),
                        }
                    }
                    for s in &mut all {
                        s.labels.retain(|l| !is_replica(l));
                    }
                    all.sort_by(|a, b| compare_pb_labels(&a.labels, &b.labels));
                    let mut merged: Vec<pb::Series> = Vec::with_capacity(all.len());
                    for s in all {
                        match merged.last_mut() {
                            Some(last) if compare_pb_labels(&last.labels, &s.labels).is_eq() => {
                                last.chunks.extend(s.chunks);
                                sort_and_dedup_chunks(&mut last.chunks);
                            }
                            _ => merged.push(s),
                        }
                    }
                    head.extend(merged.into_iter().map(|s| Ok(series_frame(s))));
                    head.extend(tail);
                    return futures::stream::iter(head).boxed();
                }
                Some(other) => head.push(other),
            }
        }
    })
    .flatten()
    .boxed()
}
