//! `TieringError`: the errors of the tier that callers act on, and their retry policy.

use std::error::Error as StdError;
use std::fmt;

/// Errors of the tier. Backend error types stay behind [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum TieringError {
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("{operation} timed out")]
    Timeout { operation: &'static str },
    #[error("failed to {operation}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("task of {operation} was cancelled")]
    Cancelled { operation: &'static str },
    #[error("corrupt object {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("unsupported object store URL {url:?}: {reason}")]
    UnsupportedUrl { url: String, reason: String },
}

impl TieringError {
    /// Whether trying the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Unavailable { source, .. } => source.retryable,
            Self::NotFound { .. }
            | Self::Cancelled { .. }
            | Self::Corrupt { .. }
            | Self::UnsupportedUrl { .. } => false,
        }
    }

    pub(crate) fn from_store(operation: &'static str, err: object_store::Error) -> Self {
        use object_store::Error as E;
        // Errors that say the request itself is wrong, which no retry fixes; anything else
        // (network, throttling, 5xx) is reported as Generic by the backends.
        let retryable = !matches!(
            err,
            E::InvalidPath { .. }
                | E::NotSupported { .. }
                | E::NotImplemented { .. }
                | E::PermissionDenied { .. }
                | E::Unauthenticated { .. }
                | E::UnknownConfigurationKey { .. }
                | E::AlreadyExists { .. }
                | E::Precondition { .. }
                | E::NotModified { .. }
        );
        Self::Unavailable {
            operation,
            source: StoreError {
                retryable,
                inner: Box::new(err),
            },
        }
    }
}

/// A storage backend error (object store, chunk cache disk tier), kept opaque so backend types
/// do not leak to callers.
#[derive(Debug)]
pub struct StoreError {
    retryable: bool,
    inner: Box<dyn StdError + Send + Sync>,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}

impl StoreError {
    /// A failure of a local backend (e.g. the chunk cache's disk tier); not retryable.
    pub(crate) fn other(err: impl StdError + Send + Sync + 'static) -> Self {
        Self {
            retryable: false,
            inner: Box::new(err),
        }
    }

    pub(crate) fn io(err: std::io::Error) -> Self {
        Self {
            retryable: false,
            inner: Box::new(err),
        }
    }
}

/// `err: cause: cause` on one line, as `{err:#}` prints it with anyhow (for any error,
/// e.g. a `TieringError` or a `MetadataError` whose cause is a backend's error).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
