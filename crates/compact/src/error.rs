//! How a compactor step fails, classified as Thanos classifies it: a halt (something is
//! wrong with the data; stop compacting and wait for an operator), a retry (transient, e.g.
//! the bucket; try again next iteration), or a plain failure (the process exits).

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// Overlapping blocks without vertical compaction, an unhealthy input block, a failed
    /// merge: compaction stops and `thanos_compact_halted` is set.
    #[error("{0}")]
    Halt(String),
    /// The bucket or the network failed: the iteration is retried.
    #[error("{0}")]
    Retry(String),
    /// Anything else: the command fails.
    #[error("{0}")]
    Fail(String),
}

impl CompactError {
    pub fn is_halt(&self) -> bool {
        matches!(self, CompactError::Halt(_))
    }

    pub fn is_retry(&self) -> bool {
        matches!(self, CompactError::Retry(_))
    }

    /// The same class with context in front.
    pub fn context(self, ctx: impl std::fmt::Display) -> Self {
        match self {
            CompactError::Halt(m) => CompactError::Halt(format!("{ctx}: {m}")),
            CompactError::Retry(m) => CompactError::Retry(format!("{ctx}: {m}")),
            CompactError::Fail(m) => CompactError::Fail(format!("{ctx}: {m}")),
        }
    }
}

/// A bucket error: retried when it is a transient one (as Thanos retries bucket reads and
/// uploads), else a failure.
pub fn from_bucket(what: impl std::fmt::Display, e: bucket::Error) -> CompactError {
    CompactError::Retry(format!("{what}: {e}"))
}

pub type Result<T, E = CompactError> = std::result::Result<T, E>;
