//! Errors of the bucket crate, each naming the object, block or config field involved.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The objstore configuration is invalid; names the field.
    #[error("objstore config: {0}")]
    Config(String),
    /// An object store operation failed.
    #[error("{op} {path}: {source}")]
    Store {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// A local file operation failed.
    #[error("{op} {path}: {source}")]
    Local {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A block or marker that does not parse or is incomplete.
    #[error("block {block}: {msg}")]
    Block { block: String, msg: String },
    #[error(transparent)]
    Tsdb(#[from] tsdb::Error),
}

impl Error {
    pub fn store(op: &'static str, path: impl ToString, source: object_store::Error) -> Self {
        Error::Store {
            op,
            path: path.to_string(),
            source,
        }
    }

    pub fn local(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Local {
            op,
            path: path.display().to_string(),
            source,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }

    /// Failures worth retrying later: transport and server errors, not bad data or config.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store { source, .. } => !matches!(
                source,
                object_store::Error::NotFound { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            ),
            Error::Local { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
