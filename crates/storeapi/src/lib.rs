//! The StoreAPI: Thanos's `thanos.Store` and `thanos.info.Info` gRPC services with the same
//! messages and field numbers, so Go Thanos components and ours talk to each other.

/// Generated types and gRPC glue of package `thanos`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("thanos");

    /// Package `thanos.info`.
    pub mod info {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("thanos.info");
    }
}

pub mod apis;
pub mod batch;
pub mod client;
pub mod convert;
pub mod grpc_metrics;
pub mod local;
pub mod proxy;
pub mod server;
pub mod store;
pub mod timeout;
pub mod tls;

pub use store::{SeriesStore, SeriesStream};
/// HA replica deduplication, shared with the compactor (it lives in `tsdb`).
pub use tsdb::dedup;
