//! Small queries evaluated on the thread their request arrived on. The engine is
//! synchronous and waits on the stores from a blocking thread, which costs several thread
//! hand-offs per query: for a point lookup those cost more than the lookup. Here the
//! engine first runs against the selections already read, seeing no series for those not
//! read yet; those are then read, concurrently, and the engine runs again until it asked
//! for nothing new (PromQL's selections do not depend on data, so usually twice). A
//! selection larger than a small query's, or more selections than a few, hand the query
//! with everything read so far to the blocking thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use futures::StreamExt;
use promql::{Error, Queryable, SelectHints, SeriesSet};
use storeapi::pb;
use storeapi::{SeriesStore, SeriesStream};
use tsdb::Matcher;

use crate::queryable::{frame_chunks, Frame, ProxyQueryable};

// An evaluation here holds up the other requests of its async thread: its work is bounded
// by the samples it reads (chunks × about 120) and, for range queries, steps × series (the
// API lets fewer than 1,000 steps here), a few milliseconds at most.

/// Selections an evaluation here may read; more go to the blocking thread.
const MAX_SELECTIONS: usize = 4;
/// Series, over all selections, an evaluation here may read.
const MAX_SERIES: usize = 256;
/// Chunks, over all selections, an evaluation here may read (about 250,000 samples).
const MAX_CHUNKS: usize = 2048;

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
    /// The selections read completely, and those left open.
    fn new(complete: Vec<Complete>, open: Vec<Fetched>) -> Prefetched {
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
/// notes those that were not.
struct Attempt<'a> {
    proxy: &'a ProxyQueryable,
    fetched: &'a [Complete],
    taken: Mutex<Vec<bool>>,
    missing: Mutex<Vec<Missing>>,
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
            // Not read yet: noted, and answered with no series (the attempt's answer is
            // thrown away).
            None => {
                let mut missing = self.missing.lock().unwrap_or_else(PoisonError::into_inner);
                missing.push(Missing {
                    req: req.clone(),
                    matchers: matchers.to_vec(),
                    start: hints.start,
                    end: hints.end,
                });
                Ok(Box::new(self.proxy.series_set(
                    reading,
                    VecDeque::new(),
                    None,
                )))
            }
        }
    }
}

/// Series and chunks read so far by one evaluation, over all its selections.
#[derive(Default)]
struct Budget {
    series: AtomicUsize,
    chunks: AtomicUsize,
}

impl Budget {
    fn spent(&self) -> bool {
        self.series.load(Ordering::Relaxed) > MAX_SERIES
            || self.chunks.load(Ordering::Relaxed) > MAX_CHUNKS
    }
}

/// Reads the selection `m` until its end, or until `budget` is spent (then the stream is
/// returned with the frames).
async fn read(proxy: &ProxyQueryable, m: &Missing, budget: &Budget) -> Received {
    let stores = proxy.endpoints.select(m.start, m.end, &m.matchers);
    let mut stream = match stores.series(m.req.clone()).await {
        Ok(s) => s,
        Err(e) => return Err(e.message().to_string()),
    };
    let mut frames = VecDeque::new();
    while !budget.spent() {
        let Some(frame) = stream.next().await else {
            return Ok((frames, None));
        };
        if let Ok(pb::SeriesResponse {
            result: Some(pb::series_response::Result::Series(_)),
        }) = &frame
        {
            budget.series.fetch_add(1, Ordering::Relaxed);
        }
        budget
            .chunks
            .fetch_add(frame_chunks(&frame), Ordering::Relaxed);
        frames.push_back(frame);
    }
    Ok((frames, Some(stream)))
}

/// Evaluates with `run` here, reading the selections it asks for until `deadline`.
pub(crate) async fn evaluate_here<T>(
    proxy: &ProxyQueryable,
    deadline: tokio::time::Instant,
    run: impl Fn(&dyn Queryable) -> promql::Result<T>,
) -> Evaluated<T> {
    let mut fetched: Vec<Complete> = Vec::new();
    let budget = Budget::default();
    loop {
        let attempt = Attempt {
            proxy,
            fetched: &fetched,
            taken: Mutex::new(vec![false; fetched.len()]),
            missing: Mutex::new(Vec::new()),
        };
        let result = run(&attempt);
        let missing = (attempt.missing.into_inner()).unwrap_or_else(PoisonError::into_inner);
        if missing.is_empty() {
            return Evaluated::Done(result);
        }
        if fetched.len() + missing.len() > MAX_SELECTIONS {
            return Evaluated::TooLarge(Prefetched::new(fetched, Vec::new()));
        }
        let reads = futures::future::join_all(missing.iter().map(|m| read(proxy, m, &budget)));
        let Ok(received) = tokio::time::timeout_at(deadline, reads).await else {
            return Evaluated::Done(Err(Error::Timeout("expression evaluation")));
        };
        let mut open = Vec::new();
        for (m, received) in missing.into_iter().zip(received) {
            match received {
                Ok((frames, None)) => fetched.push((m.req, Ok(frames))),
                Err(e) => fetched.push((m.req, Err(e))),
                received @ Ok((_, Some(_))) => open.push(Fetched {
                    req: m.req,
                    received,
                }),
            }
        }
        if !open.is_empty() {
            return Evaluated::TooLarge(Prefetched::new(fetched, open));
        }
    }
}
