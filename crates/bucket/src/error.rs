//! Errors of the bucket crate, each naming the object, block, byte range or config field
//! involved.

use std::ops::Range;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of the objstore configuration is missing or invalid. `field` is the YAML key,
    /// e.g. `config.endpoint` or `type`.
    #[error("objstore config field `{field}`: {msg}")]
    ConfigField { field: String, msg: String },
    /// The objstore configuration as a whole is unusable (not YAML, no source given, ...).
    #[error("objstore config: {0}")]
    Config(String),
    /// An object store operation failed on `path` (and `range` when it was a ranged read).
    #[error("{op} {path}{}: {source}", fmt_range(.range))]
    Store {
        op: &'static str,
        path: String,
        range: Option<Range<u64>>,
        #[source]
        source: Box<object_store::Error>,
    },
    /// A local file operation failed.
    #[error("{op} {path}: {source}")]
    Local {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An object whose bytes do not decode (a marker that is not the JSON Thanos writes, ...).
    #[error("corrupted {path}: {msg}")]
    Corrupted { path: String, msg: String },
    /// A block that is incomplete or inconsistent (no meta.json, wrong ULID, missing files).
    #[error("block {block}: {msg}")]
    Block { block: String, msg: String },
    /// meta.json (or another block file) failed to parse; the tsdb error names the file.
    #[error(transparent)]
    Tsdb(#[from] tsdb::Error),
}

fn fmt_range(r: &Option<Range<u64>>) -> String {
    match r {
        Some(r) => format!(" [{}, {})", r.start, r.end),
        None => String::new(),
    }
}

impl Error {
    pub fn store(op: &'static str, path: impl ToString, source: object_store::Error) -> Self {
        Error::Store {
            op,
            path: path.to_string(),
            range: None,
            source: Box::new(source),
        }
    }

    pub fn local(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Local {
            op,
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn field(field: &str, msg: impl Into<String>) -> Self {
        Error::ConfigField {
            field: field.to_string(),
            msg: msg.into(),
        }
    }

    /// The object (or block's meta.json) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Store { source, .. } if matches!(**source, object_store::Error::NotFound { .. }))
    }

    /// Failures worth retrying later: transport and server errors, not missing objects, bad
    /// data, bad credentials or bad config.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store { source, .. } => matches!(
                **source,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
            Error::Local { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
