//! A PromQL engine with the semantics of Prometheus 3.x or, behind a switch, 2.42
//! ([`Compat`]), for float and native histogram samples.
//!
//! Queries are parsed with `promql-parser`, checked, and evaluated over a [`Queryable`]
//! that streams series one at a time; see [`Engine`].

// Step loops index several per-step arrays at once.
#![allow(clippy::needless_range_loop)]

mod aggregation;
mod annotations;
pub mod blocks;
mod durations;
mod engine;
pub mod error;
pub mod function_table;
mod functions;
mod gosort;
pub mod lex;
mod node_value;
mod parse;
mod parse_cache;
mod positions;
pub mod storage;
pub mod value;
mod windows;

pub use annotations::message_of;
pub use blocks::BlockStorage;
pub use engine::{CancelToken, Engine, EngineOptions};
pub use error::{Error, Result};
pub use parse::{
    nesting_bound, parse, parse_bytes_with, parse_with, pre_lex, Compat, Dialect, MAX_NESTING,
};
pub use storage::{MemStorage, Queryable, RawSample, SelectHints, SeriesSet};
pub use value::{format_value, HPoint, Point, QueryResult, QueryStats, Sample, Series, Value};
