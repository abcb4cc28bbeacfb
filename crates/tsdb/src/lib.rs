//! The Prometheus TSDB block format, read and written exactly.
//!
//! Data flows in two directions:
//! - reading: [`block::Block`] opens a block directory (meta.json, index, chunk segments,
//!   tombstones); [`index`] turns matchers into postings and series, [`chunks`] hands out
//!   encoded chunks, [`chunkenc`] decodes them sample by sample;
//! - writing: [`block::BlockWriter`] takes series in label order, cuts XOR chunks the way
//!   Prometheus's head does, streams them into segment files and writes the index and
//!   meta.json last, in a temp directory renamed into place.
//!
//! Byte layouts are documented at the top of each format module.

pub mod block;
pub mod chunkenc;
pub mod chunks;
pub mod dedup;
pub mod encoding;
pub mod error;
pub mod glob;
pub mod head;
pub mod histogram;
pub mod index;
pub mod labels;
pub mod matchers;
pub mod meta;
pub mod time;
pub mod tombstones;
pub mod verify;
pub mod wal;

pub use error::{Error, Result};
pub use labels::{Label, Labels};
pub use matchers::{MatchType, Matcher};
