//! Serves any [`SeriesStore`] as the `thanos.Store` and `thanos.info.Info` gRPC services.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::grpc_metrics::{self, Instrumented, Side};
use crate::pb;
use crate::pb::info::info_server::{Info, InfoServer};
use crate::pb::store_server::{Store, StoreServer};
use crate::store::{SeriesStore, SeriesStream};

/// Longest error text sent to a client: gRPC carries it in a trailer, and clients refuse
/// trailers over 16 KiB, which would hide the error behind RESOURCE_EXHAUSTED.
pub const MAX_ERROR_BYTES: usize = 4096;

/// `s` cut to [`MAX_ERROR_BYTES`] (at a character boundary), saying how much was left out.
pub fn bounded_message(s: &str) -> String {
    if s.len() <= MAX_ERROR_BYTES {
        return s.to_string();
    }
    let mut cut = MAX_ERROR_BYTES;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} more bytes)", &s[..cut], s.len() - cut)
}

/// A status whose message is bounded.
pub fn bounded(s: Status) -> Status {
    if s.message().len() <= MAX_ERROR_BYTES {
        return s;
    }
    Status::new(s.code(), bounded_message(s.message()))
}

pub struct StoreService(pub Arc<dyn SeriesStore>);

#[tonic::async_trait]
impl Store for StoreService {
    type SeriesStream = SeriesStream;

    async fn series(
        &self,
        req: Request<pb::SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        use futures::StreamExt;
        let call = grpc_metrics::start(Side::Server, "thanos.Store", "Series", "server_stream");
        let batch_size = req.get_ref().response_batch_size;
        let stream = match self.0.series(req.into_inner()).await {
            Ok(s) => s,
            Err(e) => {
                call.finish(e.code());
                return Err(bounded(e));
            }
        };
        let stream = crate::batch::batched(stream, batch_size);
        let stream = Instrumented::new(stream.map(|f| f.map_err(bounded)), call);
        Ok(Response::new(stream.boxed()))
    }

    async fn label_names(
        &self,
        req: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        let call = grpc_metrics::start(Side::Server, "thanos.Store", "LabelNames", "unary");
        let r = self.0.label_names(req.into_inner()).await;
        call.finish_with(&r);
        Ok(Response::new(r.map_err(bounded)?))
    }

    async fn label_values(
        &self,
        req: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::LabelValuesResponse>, Status> {
        let call = grpc_metrics::start(Side::Server, "thanos.Store", "LabelValues", "unary");
        let r = self.0.label_values(req.into_inner()).await;
        call.finish_with(&r);
        Ok(Response::new(r.map_err(bounded)?))
    }
}

pub struct InfoService(pub Arc<dyn SeriesStore>);

#[tonic::async_trait]
impl Info for InfoService {
    async fn info(
        &self,
        _req: Request<pb::info::InfoRequest>,
    ) -> Result<Response<pb::info::InfoResponse>, Status> {
        let call = grpc_metrics::start(Side::Server, "thanos.info.Info", "Info", "unary");
        let r = self.0.info().await;
        call.finish_with(&r);
        Ok(Response::new(r.map_err(bounded)?))
    }
}

/// Messages up to this size are accepted (Thanos allows large label/series responses).
const MAX_MESSAGE_SIZE: usize = 256 << 20;

/// The Store and Info services for `store`, ready to add to a tonic server.
pub fn services(
    store: Arc<dyn SeriesStore>,
) -> (StoreServer<StoreService>, InfoServer<InfoService>) {
    (
        StoreServer::new(StoreService(store.clone()))
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE),
        InfoServer::new(InfoService(store)),
    )
}

/// Serves `store` (and `apis`, the Rules, Targets, Metadata and Exemplars services, when
/// given) on `listener`, over TLS with `tls`, until `shutdown` resolves.
pub async fn serve(
    store: Arc<dyn SeriesStore>,
    apis: Option<Arc<dyn crate::apis::PromApis>>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    grpc_metrics::initialize_server_metrics();
    let (s, i) = services(store);
    let mut router = tonic::transport::Server::builder()
        .add_service(s)
        .add_service(i);
    if let Some(apis) = apis {
        let svc = || crate::apis::Services(apis.clone());
        router = router
            .add_service(pb::rules_server::RulesServer::new(svc()))
            .add_service(pb::targets_server::TargetsServer::new(svc()))
            .add_service(pb::metadata_server::MetadataServer::new(svc()))
            .add_service(pb::exemplars_server::ExemplarsServer::new(svc()));
    }
    router
        .serve_with_incoming_shutdown(crate::tls::incoming(listener, tls, "gRPC"), shutdown)
        .await
}
