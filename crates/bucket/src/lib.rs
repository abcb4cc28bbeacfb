//! Object storage for blocks.
//!
//! [`config`] turns Thanos's objstore YAML (`type: FILESYSTEM | S3 | GCS | AZURE`, `config:`,
//! `prefix:`) into an `Arc<dyn ObjectStore>`; components take that store, never the config.
//! [`block`] moves whole blocks through it: upload with meta.json last so a block is visible
//! only once complete, download into a temp dir renamed at the end, listing, meta fetching,
//! ranged reads and deletion in Thanos's order. [`markers`] reads and writes the deletion,
//! no-compact and no-downsample marker files. Every error names the object, block, byte range
//! or config field involved ([`Error`]).

pub mod block;
pub mod config;
pub mod error;
pub mod fetcher;
pub mod instrumented;
pub mod local;
pub mod markers;
pub mod ranges;
pub mod relabel;
pub mod stats;

pub use error::{Error, Result};
pub use object_store::{path::Path as ObjectPath, ObjectStore, ObjectStoreExt};

/// A shared handle to a bucket.
pub type Bucket = std::sync::Arc<dyn ObjectStore>;
