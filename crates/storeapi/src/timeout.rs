//! A store that must answer every call, and send every frame of a Series stream, within a
//! time limit (the querier's `--store.response-timeout`). A store that stops sending then
//! fails like an unreachable one (a warning under partial response) instead of holding the
//! query until its deadline.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tonic::Status;

use crate::pb;
use crate::pb::info::InfoResponse;
use crate::store::{SeriesStore, SeriesStream};

pub struct ResponseTimeout {
    inner: Arc<dyn SeriesStore>,
    limit: Duration,
}

impl ResponseTimeout {
    pub fn new(inner: Arc<dyn SeriesStore>, limit: Duration) -> Self {
        ResponseTimeout { inner, limit }
    }

    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        tokio::time::timeout(self.limit, fut)
            .await
            .map_err(|_| expired(self.limit))?
    }
}

fn expired(limit: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "no response within the store response timeout of {limit:?}"
    ))
}

/// Ends the stream with a deadline error when a frame takes longer than `limit`.
fn with_frame_timeout(stream: SeriesStream, limit: Duration) -> SeriesStream {
    futures::stream::unfold(Some(stream), move |stream| async move {
        let mut stream = stream?;
        match tokio::time::timeout(limit, stream.next()).await {
            Ok(Some(frame)) => Some((frame, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((Err(expired(limit)), None)),
        }
    })
    .boxed()
}

#[async_trait::async_trait]
impl SeriesStore for ResponseTimeout {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn info(&self) -> Result<InfoResponse, Status> {
        self.call(self.inner.info()).await
    }

    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        let stream = self.call(self.inner.series(req)).await?;
        Ok(with_frame_timeout(stream, self.limit))
    }

    async fn label_names(
        &self,
        req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        self.call(self.inner.label_names(req)).await
    }

    async fn label_values(
        &self,
        req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        self.call(self.inner.label_values(req)).await
    }
}
