//! A remote StoreAPI endpoint reached over gRPC, as a [`SeriesStore`].

use std::time::Duration;

use futures::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::grpc_metrics::{self, Instrumented, Side};
use crate::pb;
use crate::pb::info::info_client::InfoClient;
use crate::pb::store_client::StoreClient;
use crate::store::{SeriesStore, SeriesStream};
use crate::tls::TlsConnector;

const MAX_MESSAGE_SIZE: usize = 256 << 20;

pub struct GrpcStore {
    address: String,
    channel: Channel,
}

impl GrpcStore {
    /// A lazily connecting client for `address` (`host:port` or a URL), in the clear.
    pub fn new(address: &str) -> Result<GrpcStore, String> {
        GrpcStore::connect(address, None)
    }

    /// A lazily connecting client for `address`, over TLS with `tls`.
    pub fn connect(address: &str, tls: Option<TlsConnector>) -> Result<GrpcStore, String> {
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| format!("invalid endpoint address {address:?}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let channel = match tls {
            Some(connector) => endpoint.connect_with_connector_lazy(connector),
            None => endpoint.connect_lazy(),
        };
        Ok(GrpcStore {
            address: address.to_string(),
            channel,
        })
    }

    /// The endpoint's Rules, Targets, Metadata and Exemplars APIs, over the same connection.
    pub fn apis(&self) -> crate::apis::GrpcApis {
        crate::apis::GrpcApis(self.channel.clone())
    }

    fn store(&self) -> StoreClient<Channel> {
        StoreClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

#[async_trait::async_trait]
impl SeriesStore for GrpcStore {
    fn name(&self) -> String {
        self.address.clone()
    }

    async fn info(&self) -> Result<pb::info::InfoResponse, Status> {
        let call = grpc_metrics::start(Side::Client, "thanos.info.Info", "Info", "unary");
        let r = InfoClient::new(self.channel.clone())
            .info(pb::info::InfoRequest {})
            .await
            .map(|r| r.into_inner());
        call.finish_with(&r);
        r
    }

    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        let call = grpc_metrics::start(Side::Client, "thanos.Store", "Series", "server_stream");
        match self.store().series(req).await {
            Ok(r) => Ok(Instrumented::new(r.into_inner(), call).boxed()),
            Err(e) => {
                call.finish(e.code());
                Err(e)
            }
        }
    }

    async fn label_names(
        &self,
        req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        let call = grpc_metrics::start(Side::Client, "thanos.Store", "LabelNames", "unary");
        let r = self.store().label_names(req).await.map(|r| r.into_inner());
        call.finish_with(&r);
        r
    }

    async fn label_values(
        &self,
        req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        let call = grpc_metrics::start(Side::Client, "thanos.Store", "LabelValues", "unary");
        let r = self.store().label_values(req).await.map(|r| r.into_inner());
        call.finish_with(&r);
        r
    }
}
