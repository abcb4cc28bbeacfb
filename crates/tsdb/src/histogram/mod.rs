//! Float histogram arithmetic as Prometheus's `model/histogram` does it: the operations
//! the compactor's downsampling and the PromQL engine share (schema reduction, counter
//! reset detection, addition and subtraction with zero bucket reconciliation, scaling,
//! bucket iteration with bounds, quantiles and fractions).
//!
//! The samples are [`crate::chunkenc::histogram::Histogram`]s: absolute bucket counts,
//! whether they came from integer or float chunks.

mod arith;
mod bounds;
mod kahan;
mod stats;
mod trim;

pub use crate::chunkenc::histogram::{CounterResetHint, Histogram, Span, CUSTOM_BUCKETS_SCHEMA};
pub use arith::*;
pub use kahan::{kahan_inc, kahan_mean, kahan_sum};
pub use stats::*;
pub use trim::{side_buckets, trim_buckets};
