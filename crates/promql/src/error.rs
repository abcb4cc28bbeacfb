//! Errors of parsing and evaluating a query, classified like Prometheus's API does.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// The query text does not parse or does not type-check (HTTP 400 `bad_data`).
    #[error("{0}")]
    Parse(String),
    /// Evaluation failed on the data (HTTP 422 `execution`).
    #[error("{0}")]
    Execution(String),
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// The storage failed (HTTP 500 `internal`... or 422 as Prometheus maps it).
    #[error("{0}")]
    Storage(String),
}

impl Error {
    pub fn exec(msg: impl Into<String>) -> Self {
        Error::Execution(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
