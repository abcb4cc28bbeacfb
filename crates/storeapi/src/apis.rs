//! Thanos's `thanos.Rules`, `thanos.Targets`, `thanos.Metadata` and `thanos.Exemplars` gRPC
//! services: what a component behind them implements ([`PromApis`]), the servers that stream
//! its answers, and the client side over a gRPC channel.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::grpc_metrics::{self, Side};
use crate::pb;

/// An answer: the items and the warnings that go with them.
pub type Answer<T> = (Vec<T>, Vec<String>);

/// The non-series APIs a component may offer (the sidecar, over Prometheus's HTTP API).
#[async_trait::async_trait]
pub trait PromApis: Send + Sync {
    async fn rules(&self, req: pb::RulesRequest) -> Result<Answer<pb::RuleGroup>, Status>;
    async fn targets(&self, req: pb::TargetsRequest)
        -> Result<Answer<pb::TargetDiscovery>, Status>;
    async fn metric_metadata(
        &self,
        req: pb::MetricMetadataRequest,
    ) -> Result<Answer<pb::MetricMetadata>, Status>;
    async fn exemplars(
        &self,
        req: pb::ExemplarsRequest,
    ) -> Result<Answer<pb::ExemplarData>, Status>;
}

type Frames<T> = BoxStream<'static, Result<T, Status>>;

/// Items then warnings, as frames.
fn frames<T: Send + 'static, F: Send + 'static>(
    (items, warnings): Answer<T>,
    item: fn(T) -> F,
    warning: fn(String) -> F,
) -> Frames<F> {
    let all: Vec<Result<F, Status>> = items
        .into_iter()
        .map(|i| Ok(item(i)))
        .chain(warnings.into_iter().map(|w| Ok(warning(w))))
        .collect();
    futures::stream::iter(all).boxed()
}

/// The four services over `apis`, ready to add to a tonic server.
pub struct Services(pub Arc<dyn PromApis>);

macro_rules! served {
    ($call:expr, $service:literal, $method:literal) => {{
        let call = grpc_metrics::start(Side::Server, $service, $method, "server_stream");
        let r = $call.await;
        call.finish(match &r {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.code(),
        });
        r.map_err(crate::server::bounded)
    }};
}

#[tonic::async_trait]
impl pb::rules_server::Rules for Services {
    type RulesStream = Frames<pb::RulesResponse>;

    async fn rules(
        &self,
        req: Request<pb::RulesRequest>,
    ) -> Result<Response<Self::RulesStream>, Status> {
        let answer = served!(self.0.rules(req.into_inner()), "thanos.Rules", "Rules")?;
        Ok(Response::new(frames(
            answer,
            |g| pb::RulesResponse {
                result: Some(pb::rules_response::Result::Group(g)),
            },
            |w| pb::RulesResponse {
                result: Some(pb::rules_response::Result::Warning(w)),
            },
        )))
    }
}

#[tonic::async_trait]
impl pb::targets_server::Targets for Services {
    type TargetsStream = Frames<pb::TargetsResponse>;

    async fn targets(
        &self,
        req: Request<pb::TargetsRequest>,
    ) -> Result<Response<Self::TargetsStream>, Status> {
        let answer = served!(
            self.0.targets(req.into_inner()),
            "thanos.Targets",
            "Targets"
        )?;
        Ok(Response::new(frames(
            answer,
            |t| pb::TargetsResponse {
                result: Some(pb::targets_response::Result::Targets(t)),
            },
            |w| pb::TargetsResponse {
                result: Some(pb::targets_response::Result::Warning(w)),
            },
        )))
    }
}

#[tonic::async_trait]
impl pb::metadata_server::Metadata for Services {
    type MetricMetadataStream = Frames<pb::MetricMetadataResponse>;

    async fn metric_metadata(
        &self,
        req: Request<pb::MetricMetadataRequest>,
    ) -> Result<Response<Self::MetricMetadataStream>, Status> {
        let answer = served!(
            self.0.metric_metadata(req.into_inner()),
            "thanos.Metadata",
            "MetricMetadata"
        )?;
        Ok(Response::new(frames(
            answer,
            |m| pb::MetricMetadataResponse {
                result: Some(pb::metric_metadata_response::Result::Metadata(m)),
            },
            |w| pb::MetricMetadataResponse {
                result: Some(pb::metric_metadata_response::Result::Warning(w)),
            },
        )))
    }
}

#[tonic::async_trait]
impl pb::exemplars_server::Exemplars for Services {
    type ExemplarsStream = Frames<pb::ExemplarsResponse>;

    async fn exemplars(
        &self,
        req: Request<pb::ExemplarsRequest>,
    ) -> Result<Response<Self::ExemplarsStream>, Status> {
        let answer = served!(
            self.0.exemplars(req.into_inner()),
            "thanos.Exemplars",
            "Exemplars"
        )?;
        Ok(Response::new(frames(
            answer,
            |d| pb::ExemplarsResponse {
                result: Some(pb::exemplars_response::Result::Data(d)),
            },
            |w| pb::ExemplarsResponse {
                result: Some(pb::exemplars_response::Result::Warning(w)),
            },
        )))
    }
}

/// Reads a response stream into items and warnings.
async fn collect<R, T>(
    stream: Result<Response<tonic::Streaming<R>>, Status>,
    split: fn(R) -> Option<Result<T, String>>,
    call: grpc_metrics::Call,
) -> Result<Answer<T>, Status> {
    let mut s = match stream {
        Ok(s) => s.into_inner(),
        Err(e) => {
            call.finish(e.code());
            return Err(e);
        }
    };
    let (mut items, mut warnings) = (Vec::new(), Vec::new());
    loop {
        match s.next().await {
            Some(Ok(frame)) => match split(frame) {
                Some(Ok(i)) => items.push(i),
                Some(Err(w)) => warnings.push(w),
                None => {}
            },
            Some(Err(e)) => {
                call.finish(e.code());
                return Err(e);
            }
            None => break,
        }
    }
    call.finish(tonic::Code::Ok);
    Ok((items, warnings))
}

/// The four APIs of a remote endpoint, over its gRPC channel.
pub struct GrpcApis(pub Channel);

const MAX_MESSAGE_SIZE: usize = 256 << 20;

#[async_trait::async_trait]
impl PromApis for GrpcApis {
    async fn rules(&self, req: pb::RulesRequest) -> Result<Answer<pb::RuleGroup>, Status> {
        let call = grpc_metrics::start(Side::Client, "thanos.Rules", "Rules", "server_stream");
        let r = pb::rules_client::RulesClient::new(self.0.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .rules(req)
            .await;
        collect(
            r,
            |f| match f.result? {
                pb::rules_response::Result::Group(g) => Some(Ok(g)),
                pb::rules_response::Result::Warning(w) => Some(Err(w)),
            },
            call,
        )
        .await
    }

    async fn targets(
        &self,
        req: pb::TargetsRequest,
    ) -> Result<Answer<pb::TargetDiscovery>, Status> {
        let call = grpc_metrics::start(Side::Client, "thanos.Targets", "Targets", "server_stream");
        let r = pb::targets_client::TargetsClient::new(self.0.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .targets(req)
            .await;
        collect(
            r,
            |f| match f.result? {
                pb::targets_response::Result::Targets(t) => Some(Ok(t)),
                pb::targets_response::Result::Warning(w) => Some(Err(w)),
            },
            call,
        )
        .await
    }

    async fn metric_metadata(
        &self,
        req: pb::MetricMetadataRequest,
    ) -> Result<Answer<pb::MetricMetadata>, Status> {
        let call = grpc_metrics::start(
            Side::Client,
            "thanos.Metadata",
            "MetricMetadata",
            "server_stream",
        );
        let r = pb::metadata_client::MetadataClient::new(self.0.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .metric_metadata(req)
            .await;
        collect(
            r,
            |f| match f.result? {
                pb::metric_metadata_response::Result::Metadata(m) => Some(Ok(m)),
                pb::metric_metadata_response::Result::Warning(w) => Some(Err(w)),
            },
            call,
        )
        .await
    }

    async fn exemplars(
        &self,
        req: pb::ExemplarsRequest,
    ) -> Result<Answer<pb::ExemplarData>, Status> {
        let call = grpc_metrics::start(
            Side::Client,
            "thanos.Exemplars",
            "Exemplars",
            "server_stream",
        );
        let r = pb::exemplars_client::ExemplarsClient::new(self.0.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .exemplars(req)
            .await;
        collect(
            r,
            |f| match f.result? {
                pb::exemplars_response::Result::Data(d) => Some(Ok(d)),
                pb::exemplars_response::Result::Warning(w) => Some(Err(w)),
            },
            call,
        )
        .await
    }
}

/// A timestamp from RFC 3339 text (fractional seconds kept), as Prometheus writes them.
pub fn timestamp_from_rfc3339(s: &str) -> Option<prost_types::Timestamp> {
    let ms = tsdb::time::parse_rfc3339(s).ok()?;
    let nanos = match s.split_once('.') {
        Some((_, rest)) => {
            let digits: String = rest
                .chars()
                .take_while(char::is_ascii_digit)
                .take(9)
                .collect();
            format!("{digits:0<9}").parse::<i32>().ok()?
        }
        None => 0,
    };
    Some(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos,
    })
}

/// A timestamp as Go writes a `time.Time` in JSON (RFC 3339 with trimmed nanoseconds).
pub fn format_timestamp(t: &prost_types::Timestamp) -> String {
    let base = tsdb::time::format_rfc3339(t.seconds.saturating_mul(1000));
    if t.nanos <= 0 {
        return base;
    }
    let frac = format!("{:09}", t.nanos);
    format!(
        "{}.{}Z",
        base.trim_end_matches('Z'),
        frac.trim_end_matches('0')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_as_go_writes_them() {
        for s in [
            "2026-12-02T06:40:00.123456789Z",
            "2026-12-02T06:40:00.5Z",
            "2026-12-02T06:40:00Z",
            "0001-01-01T00:00:00Z",
        ] {
            let t = timestamp_from_rfc3339(s).unwrap();
            assert_eq!(format_timestamp(&t), s);
        }
        assert!(timestamp_from_rfc3339("yesterday").is_none());
    }
}
