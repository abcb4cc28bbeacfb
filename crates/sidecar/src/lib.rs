//! The sidecar's read side: a [`SeriesStore`](storeapi::SeriesStore) over one Prometheus,
//! reached through remote read with streamed XOR chunks passed through untouched, its
//! external labels (from the Prometheus config) added to every series.

pub mod apis;
pub mod http_client;
pub mod prometheus;
pub mod prompb;
pub mod reloader;
pub mod remote_read;
pub mod shipper;

pub use prometheus::PrometheusStore;
