//! The partition log as this broker leads it: in-memory partition state (offsets, index,
//! idempotent producers), the shared open segment and the flusher that makes it durable.
//!
//! Invariants: offsets are assigned here and only here, under the partition's lock; the
//! high watermark moves only after the segment holding the records is in the object store
//! and the partition commit (fenced by leader and state versions) is in the metadata store.

mod chunk_rewrite;
pub mod cleaner;
pub mod compaction;
pub mod flush;
pub mod gc;
pub mod markers;
pub mod partition;
pub mod producer;
pub mod replica;
pub mod retention;
pub mod topics;

use std::sync::Arc;

use strato_metadata::MetadataStore;
use strato_tiering::Tier;

/// What the log's background tasks (retention, compaction and key cleaning, transaction
/// markers) work with, handed down by `server.rs`: the stores, the writer, the topics and
/// their counters. The tasks know nothing of the Kafka request layer above them.
pub struct LogTasks {
    pub broker_id: i32,
    pub meta: Arc<dyn MetadataStore>,
    pub tier: Arc<Tier>,
    pub cluster: Arc<crate::cluster::ClusterView>,
    pub topics: Arc<topics::TopicRegistry>,
    pub log: Arc<flush::LogWriter>,
    pub compaction: Arc<compaction::CompactionStats>,
    pub cleaner: Arc<cleaner::CleanerStats>,
}

/// The schedule of a periodic background pass (retention, compaction, garbage collection):
/// the first pass one interval after start (a restarting cluster takes its partitions back
/// before it deletes or rewrites anything, as Kafka's retention check), missed ticks
/// delayed rather than bunched, and no more passes once `shutdown` is cancelled.
pub(crate) struct Periodic {
    tick: tokio::time::Interval,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Periodic {
    pub(crate) fn new(
        interval: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { tick, shutdown }
    }

    /// Waits for the next pass: `false` once the broker shuts down.
    pub(crate) async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = self.tick.tick() => true,
        }
    }
}

/// An index entry for tests of the log's planning code: a chunk of `bytes` bytes (compressed
/// and not) holding every offset from `base` to `last`, the newest record at `max_timestamp`.
#[cfg(test)]
pub(crate) fn test_entry(
    base: strato_metadata::model::Offset,
    last: strato_metadata::model::Offset,
    max_timestamp: i64,
    bytes: u64,
) -> strato_metadata::model::IndexEntry {
    strato_metadata::model::IndexEntry {
        v: strato_metadata::model::RECORD_FORMAT_V1,
        object: format!("segments/00/{base}.seg"),
        byte_offset: 0,
        byte_length: bytes,
        uncompressed_length: bytes,
        base_offset: base,
        last_offset: last,
        max_timestamp,
        record_count: (last - base + 1) as u64,
        seek_table_length: 0,
        raw: false,
    }
}
