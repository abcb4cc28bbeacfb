//! The querier: a set of StoreAPI endpoints kept healthy through their Info API
//! ([`endpoints`]), merged by the proxy with HA replica labels removed, and Prometheus's HTTP
//! API on top ([`api`]; PromQL evaluation plugs in once the engine lands).

pub mod api;
pub mod endpoints;
pub mod params;
