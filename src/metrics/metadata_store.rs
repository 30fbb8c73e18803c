//! `TimedMetadataStore`: wraps the broker's `MetadataStore` and times every call per
//! operation kind, for the metadata latency histograms of `/metrics`. It changes nothing
//! about the calls: same arguments, same results, errors passed through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use strato_metadata::{LeaseId, MetadataError, MetadataStore, Txn, Version, Versioned, WatchEvent};
use strato_metrics::{CallTimer, Histogram, HistogramSnapshot};
use tokio::sync::mpsc;

/// The operations of [`MetadataStore`], as metrics label them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataOperation {
    Get,
    List,
    Txn,
    TxnMany,
    GrantLease,
    KeepAlive,
    RevokeLease,
    Watch,
}

impl MetadataOperation {
    pub const ALL: [MetadataOperation; 8] = [
        MetadataOperation::Get,
        MetadataOperation::List,
        MetadataOperation::Txn,
        MetadataOperation::TxnMany,
        MetadataOperation::GrantLease,
        MetadataOperation::KeepAlive,
        MetadataOperation::RevokeLease,
        MetadataOperation::Watch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MetadataOperation::Get => "get",
            MetadataOperation::List => "list",
            MetadataOperation::Txn => "txn",
            MetadataOperation::TxnMany => "txn_many",
            MetadataOperation::GrantLease => "grant_lease",
            MetadataOperation::KeepAlive => "keep_alive",
            MetadataOperation::RevokeLease => "revoke_lease",
            MetadataOperation::Watch => "watch",
        }
    }
}

/// Latency per operation and failures (other than compare-and-set conflicts, which are
/// answers, not failures; a call cancelled by its caller counts as failed).
#[derive(Debug)]
pub struct MetadataTimings {
    latency: [Histogram; 8],
    failures: [AtomicU64; 8],
}

impl Default for MetadataTimings {
    fn default() -> Self {
        Self {
            latency: std::array::from_fn(|_| Histogram::durations()),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl MetadataTimings {
    pub fn latency(&self, operation: MetadataOperation) -> HistogramSnapshot {
        self.latency[operation as usize].snapshot()
    }

    pub fn failures(&self, operation: MetadataOperation) -> u64 {
        self.failures[operation as usize].load(Ordering::Relaxed)
    }
}

pub struct TimedMetadataStore {
    inner: Arc<dyn MetadataStore>,
    timings: Arc<MetadataTimings>,
}

impl TimedMetadataStore {
    pub fn new(inner: Arc<dyn MetadataStore>, timings: Arc<MetadataTimings>) -> Self {
        Self { inner, timings }
    }

    /// Runs `call`, timed; a call whose future is dropped before it answers (a caller's
    /// timeout) counts as a failure.
    async fn timed<T>(
        &self,
        operation: MetadataOperation,
        call: impl Future<Output = Result<T, MetadataError>>,
    ) -> Result<T, MetadataError> {
        let index = operation as usize;
        let mut timer =
            CallTimer::start(&self.timings.latency[index], &self.timings.failures[index]);
        let result = call.await;
        // A lost compare-and-set is an answer, not a failure.
        if matches!(&result, Ok(_) | Err(MetadataError::Conflict { .. })) {
            timer.succeeded();
        }
        result
    }
}

// `list_all` keeps the trait's default, which pages through `list`: each page is timed.
#[async_trait]
impl MetadataStore for TimedMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, MetadataError> {
        self.timed(MetadataOperation::Get, self.inner.get(key))
            .await
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Versioned)>, MetadataError> {
        self.timed(
            MetadataOperation::List,
            self.inner.list(prefix, after, limit),
        )
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<Version, MetadataError> {
        self.timed(MetadataOperation::Txn, self.inner.txn(txn))
            .await
    }

    async fn txn_many(
        &self,
        txns: Vec<Txn>,
    ) -> Result<Vec<Result<Version, MetadataError>>, MetadataError> {
        self.timed(MetadataOperation::TxnMany, self.inner.txn_many(txns))
            .await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        self.timed(MetadataOperation::GrantLease, self.inner.grant_lease(ttl))
            .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.timed(MetadataOperation::KeepAlive, self.inner.keep_alive(lease))
            .await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        self.timed(
            MetadataOperation::RevokeLease,
            self.inner.revoke_lease(lease),
        )
        .await
    }

    async fn watch(&self, prefix: &str) -> Result<mpsc::Receiver<WatchEvent>, MetadataError> {
        self.timed(MetadataOperation::Watch, self.inner.watch(prefix))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_metadata::embedded::EmbeddedStore;

    /// Goal: the wrapper passes calls and results through unchanged, and each call is one
    /// observation of its operation; a lost compare-and-set is not a failure.
    #[tokio::test]
    async fn calls_are_timed_per_operation_and_results_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn MetadataStore> =
            Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
        let timings = Arc::new(MetadataTimings::default());
        let store = TimedMetadataStore::new(inner, timings.clone());
        assert_eq!(store.get("a").await.unwrap(), None);
        let version = store.txn(Txn::new().put("a", "1")).await.unwrap();
        let conflict = store
            .txn(Txn::new().when_version("a", 0).put("a", "2"))
            .await;
        assert!(matches!(conflict, Err(MetadataError::Conflict { .. })));
        assert_eq!(store.get("a").await.unwrap().unwrap().version, version);
        assert_eq!(store.list_all("").await.unwrap().len(), 1);

        assert_eq!(timings.latency(MetadataOperation::Get).count, 2);
        assert_eq!(timings.latency(MetadataOperation::Txn).count, 2);
        assert_eq!(timings.latency(MetadataOperation::List).count, 1);
        assert_eq!(timings.latency(MetadataOperation::Watch).count, 0);
        assert_eq!(timings.failures(MetadataOperation::Txn), 0);

        let missing = store.keep_alive(LeaseId(12345)).await;
        assert!(missing.is_err());
        assert_eq!(timings.failures(MetadataOperation::KeepAlive), 1);
    }
}
