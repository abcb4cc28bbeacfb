//! Series frames grouped into batch frames, as a client asks with `response_batch_size`
//! (Thanos's queriers ask for 64): one gRPC message per batch instead of one per series.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tonic::Status;

use crate::pb;
use crate::store::{series_frame, SeriesStream};

/// The batch size a querier asks stores for (Thanos's `DefaultResponseBatchSize`).
pub const DEFAULT_BATCH_SIZE: i64 = 64;

/// A batch is sent once its series take about this much memory, decoded, even if short of
/// the series count asked for: a batch is held whole on both ends (as series here, as one
/// decoded message in the client), so this bounds their memory.
const MAX_BATCH_BYTES: usize = 1 << 20;

type Frame = Result<pb::SeriesResponse, Status>;

/// `stream` with consecutive series frames grouped into batches of up to `max_series`. A
/// batch is also sent when the stream has nothing more ready, so batching adds no wait;
/// warnings, hints and errors pass in order. A size of 0 or 1 leaves the stream as it is.
pub fn batched(stream: SeriesStream, max_series: i64) -> SeriesStream {
    if max_series <= 1 {
        return stream;
    }
    Batched {
        inner: stream,
        max_series: usize::try_from(max_series).unwrap_or(usize::MAX),
        series: Vec::new(),
        bytes: 0,
        held: None,
        done: false,
    }
    .boxed()
}

struct Batched {
    inner: SeriesStream,
    max_series: usize,
    series: Vec<pb::Series>,
    bytes: usize,
    /// A frame that came after series: sent once they are.
    held: Option<Frame>,
    done: bool,
}

impl Batched {
    fn flush(&mut self) -> Option<Frame> {
        self.bytes = 0;
        let mut series = std::mem::take(&mut self.series);
        match series.len() {
            0 => None,
            1 => series.pop().map(|s| Ok(series_frame(s))),
            _ => Some(Ok(pb::SeriesResponse {
                result: Some(pb::series_response::Result::Batch(pb::SeriesBatch {
                    series,
                })),
            })),
        }
    }
}

/// About the memory a series takes decoded: its labels and chunks, text and data included
/// (a chunk's message struct takes more than the data of most chunks).
fn approx_size(s: &pb::Series) -> usize {
    let labels: usize = (s.labels.iter())
        .map(|l| std::mem::size_of::<pb::Label>() + l.name.len() + l.value.len())
        .sum();
    let chunks: usize = s
        .chunks
        .iter()
        .map(|c| {
            [&c.raw, &c.count, &c.sum, &c.min, &c.max, &c.counter]
                .into_iter()
                .flatten()
                .map(|d| d.data.len())
                .sum::<usize>()
                + std::mem::size_of::<pb::AggrChunk>()
        })
        .sum();
    labels + chunks
}

impl Stream for Batched {
    type Item = Frame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        let this = &mut *self;
        if let Some(f) = this.held.take() {
            return Poll::Ready(Some(f));
        }
        loop {
            if this.done {
                return Poll::Ready(this.flush());
            }
            match this.inner.poll_next_unpin(cx) {
                Poll::Pending if this.series.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(this.flush()),
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Ok(pb::SeriesResponse {
                    result: Some(pb::series_response::Result::Series(s)),
                }))) => {
                    this.bytes += approx_size(&s);
                    this.series.push(s);
                    if this.series.len() >= this.max_series || this.bytes >= MAX_BATCH_BYTES {
                        return Poll::Ready(this.flush());
                    }
                }
                Poll::Ready(Some(other)) => {
                    if this.series.is_empty() {
                        return Poll::Ready(Some(other));
                    }
                    this.held = Some(other);
                    return Poll::Ready(this.flush());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(job: &str) -> Frame {
        Ok(series_frame(pb::Series {
            labels: vec![pb::Label::new("job", job)],
            chunks: Vec::new(),
        }))
    }

    fn warning(w: &str) -> Frame {
        Ok(pb::SeriesResponse {
            result: Some(pb::series_response::Result::Warning(w.into())),
        })
    }

    /// Each frame as a list of its series' jobs, or a warning's text.
    fn shape(frames: Vec<Frame>) -> Vec<String> {
        frames
            .into_iter()
            .map(|f| match f.unwrap().result {
                Some(pb::series_response::Result::Series(s)) => s.labels[0].value_str().into(),
                Some(pb::series_response::Result::Batch(b)) => {
                    let jobs: Vec<&str> =
                        b.series.iter().map(|s| s.labels[0].value_str()).collect();
                    format!("[{}]", jobs.join(","))
                }
                Some(pb::series_response::Result::Warning(w)) => format!("warning {w}"),
                _ => "?".into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn series_are_batched_and_other_frames_keep_their_place() {
        let frames = vec![
            series("a"),
            series("b"),
            series("c"),
            warning("w"),
            series("d"),
            series("e"),
            series("f"),
            series("g"),
        ];
        let out: Vec<Frame> = batched(futures::stream::iter(frames).boxed(), 3)
            .collect()
            .await;
        assert_eq!(shape(out), ["[a,b,c]", "warning w", "[d,e,f]", "g"]);
        // No batching asked for: the stream unchanged.
        let out: Vec<Frame> = batched(
            futures::stream::iter(vec![series("a"), series("b")]).boxed(),
            0,
        )
        .collect()
        .await;
        assert_eq!(shape(out), ["a", "b"]);
    }
}
