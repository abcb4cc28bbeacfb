//! Small queries evaluated on the thread their request arrived on. The engine is
//! synchronous and waits on the stores from a blocking thread, which costs several thread
//! hand-offs per query: for a point lookup those cost more than the lookup. Here the
//! engine first runs against the selections already read; a select it asks for and that
//! is not read yet ends that attempt, the selection is read asynchronously, and the engine
//! runs again. A selection larger than a small query's, or more selections than a few,
//! hand the query with everything read so far to the blocking thread.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use futures::StreamExt;
use promql::{Error, Queryable, SelectHints, SeriesSet};
use storeapi::pb;
use storeapi::{SeriesStore, SeriesStream};
use tsdb::Matcher;

use crate::queryable::{frame_chunks, Frame, ProxyQueryable};

/// Selections an evaluation here may read; more go to the blocking thread.
const MAX_SELECTIONS: usize = 4;
/// Series, over all selections, an evaluation here may read.
const MAX_SERIES: usize = 256;
/// Chunks, over all selections, an evaluation here may read (about 500,000 samples).
const MAX_CHUNKS: usize = 4096;

/// What a selection's Series call gave: the frames received and the stream when more may
/// come, or why it failed.
pub(crate) type Received = Result<(VecDeque<Frame>, Option<SeriesStream>), String>;

/// One selection read ahead of evaluation.
pub(crate) struct Fetched {
    req: pb::SeriesRequest,
    received: Received,
}

/// Selections read ahead of evaluation, each taken by the first select that asks for it.
#[derive(Default)]
pub struct Prefetched(Mutex<Vec<Fetched>>);

impl Prefetched {
    /// The selections read completely, and the one left open.
    fn new(complete: Vec<Complete>, open: Option<Fetched>) -> Prefetched {
        let all = complete.into_iter().map(|(req, frames)| Fetched {
            req,
            received: frames.map(|f| (f, None)),
        });
        Prefetched(Mutex::new(all.chain(open).collect()))
    }

    /// The selection read for `req`, if one was.
    pub(crate) fn take(&self, req: &pb::SeriesRequest) -> Option<Received> {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let i = all.iter().position(|f| f.req == *req)?;
        Some(all.remove(i).received)
    }
}

/// How an evaluation here ended.
pub(crate) enum Evaluated<T> {
    Done(promql::Result<T>),
    /// Too large to finish here: the selections read so far, for the blocking thread.
    TooLarge(Prefetched),
}

/// A selection read to its end: its request and frames, or why it failed.
type Complete = (pb::SeriesRequest, Result<VecDeque<Frame>, String>);

/// A selection the engine asked for that was not read yet.
struct Missing {
    req: pb::SeriesRequest,
    matchers: Vec<Matcher>,
    start: i64,
    end: i64,
}

/// The queryable of one attempt: serves the selections read, in the order asked, and
/// notes the first one that was not.
struct Attempt<'a> {
    proxy: &'a ProxyQueryable,
    fetched: &'a [Complete],
    taken: Mutex<Vec<bool>>,
    missing: Mutex<Option<Missing>>,
}

impl Queryable for Attempt<'_> {
    fn select<'b>(
        &'b self,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> promql::Result<Box<dyn SeriesSet + 'b>> {
        let (req, reading) = self.proxy.request(hints, matchers);
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let found = (self.fetched.iter().enumerate()).find(|(i, f)| !taken[*i] && f.0 == req);
        match found {
            Some((i, (_, Ok(frames)))) => {
                taken[i] = true;
                Ok(Box::new(self.proxy.series_set(
                    reading,
                    frames.clone(),
                    None,
                )))
            }
            Some((i, (_, Err(e)))) => {
                taken[i] = true;
                Err(Error::Storage(e.clone()))
            }
            None => {
                let mut missing = self.missing.lock().unwrap_or_else(PoisonError::into_inner);
                *missing = Some(Missing {
                    req,
                    matchers: matchers.to_vec(),
                    start: hints.start,
                    end: hints.end,
                });
                Err(Error::Storage("selection not read yet".into()))
            }
        }
    }
}

/// Evaluates with `run` here, reading the selections it asks for until `deadline`.
pub(crate) async fn evaluate_here<T>(
    proxy: &ProxyQueryable,
    deadline: tokio::time::Instant,
    run: impl Fn(&dyn Queryable) -> promql::Result<T>,
) -> Evaluated<T> {
    let mut fetched: Vec<Complete> = Vec::new();
    let (mut series, mut chunks) = (0usize, 0usize);
    loop {
        let attempt = Attempt {
            proxy,
            fetched: &fetched,
            taken: Mutex::new(vec![false; fetched.len()]),
            missing: Mutex::new(None),
        };
        let result = run(&attempt);
        let missing = attempt.missing.into_inner();
        let Some(m) = missing.unwrap_or_else(PoisonError::into_inner) else {
            return Evaluated::Done(result);
        };
        if fetched.len() >= MAX_SELECTIONS {
            return Evaluated::TooLarge(Prefetched::new(fetched, None));
        }
        let read = async {
            let stores = proxy.endpoints.select(m.start, m.end, &m.matchers);
            let mut stream = match stores.series(m.req.clone()).await {
                Ok(s) => s,
                Err(e) => return Err(e.message().to_string()),
            };
            let mut frames = VecDeque::new();
            while series <= MAX_SERIES && chunks <= MAX_CHUNKS {
                let Some(frame) = stream.next().await else {
                    return Ok((frames, None));
                };
                if let Ok(pb::SeriesResponse {
                    result: Some(pb::series_response::Result::Series(_)),
                }) = &frame
                {
                    series += 1;
                }
                chunks += frame_chunks(&frame);
                frames.push_back(frame);
            }
            Ok((frames, Some(stream)))
        };
        let Ok(received) = tokio::time::timeout_at(deadline, read).await else {
            return Evaluated::Done(Err(Error::Timeout("expression evaluation")));
        };
        match received {
            Ok((frames, None)) => fetched.push((m.req, Ok(frames))),
            Err(e) => fetched.push((m.req, Err(e))),
            open @ Ok((_, Some(_))) => {
                let open = Fetched {
                    req: m.req,
                    received: open,
                };
                return Evaluated::TooLarge(Prefetched::new(fetched, Some(open)));
            }
        }
    }
}
