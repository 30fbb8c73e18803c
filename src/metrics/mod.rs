//! The broker's metrics: what the request path, the metadata store wrapper and the
//! background jobs record ([`BrokerMetrics`]). `broker::metrics_page` renders them, with
//! the counters of the tier, the log writer, the topic registry and the coordinators, as
//! the Prometheus text of `/metrics`.

use std::sync::Arc;

pub mod limits;
pub mod metadata_store;
pub mod process;
pub mod requests;
pub mod security;

use metadata_store::MetadataTimings;
use requests::RequestMetrics;

/// Metrics recorded by the broker's own code (the tier and the log writer keep theirs).
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    pub requests: RequestMetrics,
    /// Shared with the `TimedMetadataStore` that wraps the broker's store.
    pub metadata: Arc<MetadataTimings>,
    /// Shared with the log's background tasks (`log::LogTasks`).
    pub compaction: Arc<crate::log::compaction::CompactionStats>,
    pub cleaner: Arc<crate::log::cleaner::CleanerStats>,
    pub security: security::SecurityMetrics,
    pub limits: limits::LimitMetrics,
}
