//! The `MetadataStore` trait and its plain value types.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Keys per page of [`MetadataStore::list_all`]: small enough that a page of index entries
/// stays far below etcd's default 1.5 MiB request and gRPC's 4 MiB message limits.
pub const LIST_PAGE: usize = 1000;

/// Modification version of a key (etcd `mod_revision`). `0` means "the key does not exist".
pub type Version = u64;

/// A value with the version at which it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Bytes,
    pub version: Version,
}

/// Lease handle: keys written with a lease disappear when the lease expires or is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's current version equals `version` (`0`: the key must not exist).
    Version { key: String, version: Version },
}

/// A write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Bytes,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
}

/// All compares hold, then all ops apply atomically; otherwise nothing changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn when_version(mut self, key: impl Into<String>, version: Version) -> Self {
        self.compares.push(Compare::Version {
            key: key.into(),
            version,
        });
        self
    }

    pub fn put(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        });
        self
    }

    pub fn put_with_lease(
        mut self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
        lease: LeaseId,
    ) -> Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
            lease: Some(lease),
        });
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put {
        key: String,
        value: Bytes,
        version: Version,
    },
    Delete {
        key: String,
        version: Version,
    },
    /// Events were missed (the watcher fell behind or reconnected): re-read the prefix.
    Resync,
}

/// Opaque error of a storage backend, kept so that its type does not leak across the seam.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BackendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BackendError {
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(err))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// A compare of a transaction did not hold (someone else wrote first, or a fence moved).
    #[error("conflict on {key}: current version {current_version}")]
    Conflict {
        key: String,
        current_version: Version,
    },
    #[error("lease {0:?} not found or expired")]
    LeaseNotFound(LeaseId),
    #[error("metadata store unavailable during {operation}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("metadata store timed out during {operation}")]
    Timeout { operation: &'static str },
    #[error("corrupt metadata at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid request: {reason}")]
    Invalid { reason: &'static str },
}

impl MetadataError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
    }
}

/// The metadata store of a cluster. Implementations: [`crate::embedded::EmbeddedStore`]
/// (single node, durable on local disk) and the etcd store (clusters).
///
/// Keys are plain strings relative to the cluster's root; every key has a [`Version`] that
/// strictly increases with each write to the store, so a compare on a version detects any
/// write in between (the basis of leader-epoch fencing and high-watermark commits).
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, MetadataError>;

    /// Keys starting with `prefix` and (if given) greater than `after`, in ascending key
    /// order, at most `limit` of them. Callers page through large prefixes with
    /// [`MetadataStore::list_all`], so no single response is unbounded.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Versioned)>, MetadataError>;

    /// Every key under `prefix`, read in pages of [`LIST_PAGE`] keys.
    async fn list_all(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, MetadataError> {
        let mut all: Vec<(String, Versioned)> = Vec::new();
        self.for_each(prefix, None, &mut |key, value| {
            all.push((key.to_string(), value.clone()));
            Ok(())
        })
        .await?;
        Ok(all)
    }

    /// Calls `visit` on every key under `prefix` greater than `after`, in key order, read in
    /// pages of [`LIST_PAGE`] keys: memory stays one page, however many keys there are.
    /// Pages are separate reads, not one snapshot.
    async fn for_each(
        &self,
        prefix: &str,
        after: Option<String>,
        visit: &mut (dyn for<'k> FnMut(&'k str, &'k Versioned) -> Result<(), MetadataError> + Send),
    ) -> Result<(), MetadataError> {
        let mut after = after;
        loop {
            let page = self.list(prefix, after.as_deref(), LIST_PAGE).await?;
            for (key, value) in &page {
                visit(key, value)?;
            }
            if page.len() < LIST_PAGE {
                return Ok(());
            }
            after = page.last().map(|(k, _)| k.clone());
        }
    }

    /// Applies `txn` atomically if all its compares hold and returns the new store version;
    /// otherwise returns [`MetadataError::Conflict`] and changes nothing.
    async fn txn(&self, txn: Txn) -> Result<Version, MetadataError>;

    /// Applies independent transactions, each all-or-nothing on its own. An implementation
    /// may group them (one fsync, one round trip); the outer error means none was applied.
    async fn txn_many(
        &self,
        txns: Vec<Txn>,
    ) -> Result<Vec<Result<Version, MetadataError>>, MetadataError> {
        let mut results = Vec::with_capacity(txns.len());
        for txn in txns {
            results.push(self.txn(txn).await);
        }
        Ok(results)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError>;

    /// Refreshes the lease's TTL once; callers run this periodically (TTL / 3).
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError>;

    /// Ends the lease now and deletes the keys bound to it.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError>;

    /// Changes under `prefix` from now on. The channel is bounded; a slow reader gets
    /// [`WatchEvent::Resync`] instead of unbounded buffering.
    async fn watch(&self, prefix: &str) -> Result<mpsc::Receiver<WatchEvent>, MetadataError>;
}
