//! The store gateway: serves the StoreAPI over the blocks in a bucket.
//!
//! [`gateway::BucketStore`] syncs block metas from the bucket, builds each block's
//! [`header`] (the index's symbol table and postings offset table, fetched by byte range and
//! kept on local disk), and answers Series by planning postings from the header, fetching
//! postings lists, series entries and chunks by range GETs ([`bucket::ranges`] merges nearby ones),
//! and streaming chunks still encoded. [`block::BucketBlock`] holds one block.

pub mod block;
pub mod cache;
pub mod gateway;
pub mod header;
pub mod plan;

/// Errors name the block and the object range involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bucket(#[from] bucket::Error),
    #[error(transparent)]
    Tsdb(#[from] tsdb::Error),
    #[error("block {block}: {msg}")]
    Block { block: String, msg: String },
    #[error("{0}")]
    Limit(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Limit(m) => tonic::Status::resource_exhausted(m),
            Error::Bucket(b) if b.is_not_found() => tonic::Status::not_found(b.to_string()),
            other => tonic::Status::internal(other.to_string()),
        }
    }
}
