//! The one seam: every component that serves series (store gateway, sidecar, ruler,
//! receive, the proxy itself, a remote gRPC endpoint) implements [`SeriesStore`].

use futures::stream::BoxStream;
use tonic::Status;

use crate::pb;
use crate::pb::info::InfoResponse;

/// Series responses in label order; an `Err` ends the stream.
pub type SeriesStream = BoxStream<'static, Result<pb::SeriesResponse, Status>>;

#[async_trait::async_trait]
pub trait SeriesStore: Send + Sync {
    /// A name for logs and warnings (an address, "store", ...).
    fn name(&self) -> String;

    /// What the store holds: external label sets and time range.
    async fn info(&self) -> Result<InfoResponse, Status>;

    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status>;

    async fn label_names(
        &self,
        req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status>;

    async fn label_values(
        &self,
        req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status>;
}

/// Wraps a series in a response frame.
pub fn series_frame(s: pb::Series) -> pb::SeriesResponse {
    pb::SeriesResponse {
        result: Some(pb::series_response::Result::Series(s)),
    }
}

pub fn warning_frame(w: impl Into<String>) -> pb::SeriesResponse {
    pb::SeriesResponse {
        result: Some(pb::series_response::Result::Warning(w.into())),
    }
}

/// The matchers left once those on external labels are decided by the store that owns
/// them; `None` when an external label rules every series out.
pub fn beyond_external<'m>(
    external: &tsdb::Labels,
    matchers: &'m [tsdb::Matcher],
) -> Option<Vec<&'m tsdb::Matcher>> {
    let mut out = Vec::with_capacity(matchers.len());
    for m in matchers {
        match external.get(&m.name) {
            Some(v) if !m.matches(v) => return None,
            Some(_) => {}
            None => out.push(m),
        }
    }
    Some(out)
}
