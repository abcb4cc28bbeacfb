//! The error type of the `tsdb` crate: every failure names what and where.

use std::path::PathBuf;

/// Errors of the TSDB format readers and writers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes that do not follow the format: names the file (or structure) and the byte offset.
    #[error("corrupted {what} at offset {offset}: {msg}")]
    Corrupted {
        what: String,
        offset: u64,
        msg: String,
    },
    /// A caller broke a precondition (unsorted series, out-of-order samples, bad matcher, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A JSON document (meta.json) that does not parse.
    #[error("parse {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn corrupted(what: impl Into<String>, offset: u64, msg: impl Into<String>) -> Self {
        Error::Corrupted {
            what: what.into(),
            offset,
            msg: msg.into(),
        }
    }

    /// True when the error means the bytes are bad (as opposed to an I/O failure).
    pub fn is_corrupted(&self) -> bool {
        matches!(self, Error::Corrupted { .. } | Error::Json { .. })
    }

    /// True when the underlying cause is a missing file.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// Prefixes the `what` of a corruption error with a file name, so errors from
    /// in-memory decoders name the file they came from.
    pub fn in_file(self, file: &std::path::Path) -> Self {
        match self {
            Error::Corrupted { what, offset, msg } => Error::Corrupted {
                what: format!("{} ({what})", file.display()),
                offset,
                msg,
            },
            other => other,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
