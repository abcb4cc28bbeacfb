//! `gauntlet rule`: Prometheus recording and alerting rules evaluated through the querier's
//! HTTP API (the global view), results kept in the ruler's own TSDB (head + WAL, cut into
//! blocks that are shipped), alerts sent to Alertmanager.
//!
//! - [`file`]: rule files, checked as Prometheus checks them;
//! - [`targets`]: query and Alertmanager endpoints (static, DNS, file SD);
//! - [`query`]: instant queries over HTTP;
//! - [`alerting`]: alert state (pending, firing, resolved, restored after a restart);
//! - [`group`]: a group's schedule and evaluation;
//! - [`manager`]: the running groups, reloads;
//! - [`notifier`]: the Alertmanager queue and sender;
//! - [`api`]: the Rules API (gRPC and JSON).

pub mod alerting;
pub mod api;
pub mod file;
pub mod group;
pub mod manager;
pub mod notifier;
pub mod query;
pub mod targets;
