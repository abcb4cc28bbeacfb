//! The querier: a set of StoreAPI endpoints kept healthy through their Info API
//! ([`endpoints`]), merged by the proxy with HA replica labels removed, the PromQL engine
//! reading through it ([`queryable`]) and Prometheus's HTTP API on top ([`api`]).

pub mod api;
pub mod apis;
pub mod dns;
pub mod endpoints;
pub mod json;
pub mod params;
pub mod prefetch;
pub mod queryable;
pub mod sd;
