//! Reads of partitions this broker does not lead. Everything a reader needs — the committed
//! high watermark, the last stable offset (from the committed producer states), the aborted
//! transactions and the chunk index — is in the metadata store and the chunks are in the
//! shared object store, so any broker can serve any committed record (stateless reads,
//! and KIP-392 "fetch from the closest replica").
//!
//! Promise: a replica view never shows anything above a committed high watermark, and it
//! is at most [`REFRESH_INTERVAL`] behind the leader's commits while a reader waits at the
//! end of the log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strato_metadata::model::{
    AbortedTxnRecord, IndexEntry, LeaderRecord, Offset, PartitionStateRecord, TopicPartition,
};
use strato_metadata::{MetadataError, MetadataStore, keys};
use tokio::time::Instant;

use super::partition::{ReadView, aborted_overlapping, entries_from, last_stable_offset};
use super::producer::ProducerStates;

/// How stale a replica view may be before a reader at its end refreshes it.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);
/// Partitions whose replica views are kept; the cache is emptied when full.
const VIEWS_MAX: usize = 10_000;

#[derive(Debug, Default)]
struct View {
    refreshed: Option<Instant>,
    leader_epoch: i32,
    high_watermark: Offset,
    last_stable_offset: Offset,
    log_start_offset: Offset,
    index: BTreeMap<Offset, IndexEntry>,
    /// Aborted transactions by marker offset, below the high watermark.
    aborted: BTreeMap<Offset, AbortedTxnRecord>,
}

pub struct ReplicaViews {
    meta: Arc<dyn MetadataStore>,
    views: Mutex<HashMap<TopicPartition, Arc<tokio::sync::Mutex<View>>>>,
    /// Replica reads served (for metrics).
    pub reads: std::sync::atomic::AtomicU64,
}

impl ReplicaViews {
    pub fn new(meta: Arc<dyn MetadataStore>) -> Self {
        Self {
            meta,
            views: Mutex::new(HashMap::new()),
            reads: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The committed log of `tp` from `offset` on (at most `max_entries` index entries),
    /// refreshed from the metadata store when the reader is at the end of what is known.
    pub async fn read_view(
        &self,
        tp: TopicPartition,
        offset: Offset,
        max_entries: usize,
    ) -> Result<ReadView, MetadataError> {
        let view = {
            let mut views = self.views.lock().expect("replica views lock");
            if views.len() >= VIEWS_MAX && !views.contains_key(&tp) {
                views.clear();
            }
            Arc::clone(views.entry(tp).or_default())
        };
        let mut view = view.lock().await;
        let fresh = view
            .refreshed
            .is_some_and(|at| at.elapsed() < REFRESH_INTERVAL);
        // A reader at the end (of what it may read: read_committed readers stop at the last
        // stable offset) waits for news at most every REFRESH_INTERVAL; one beyond the end
        // (it read newer records elsewhere) needs them now.
        if view.refreshed.is_none()
            || offset > view.high_watermark
            || (offset >= view.last_stable_offset && !fresh)
        {
            self.refresh(tp, &mut view).await?;
        }
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entries = entries_from(&view.index, offset, max_entries);
        Ok(ReadView {
            leader_epoch: view.leader_epoch,
            high_watermark: view.high_watermark,
            last_stable_offset: view.last_stable_offset,
            log_start_offset: view.log_start_offset,
            aborted: aborted_overlapping(&view.aborted, offset, &entries),
            entries,
        })
    }

    /// Forgets the view of `tp` (a chunk it named is gone: compacted, then collected), so
    /// the next read loads the index afresh.
    pub fn invalidate(&self, tp: TopicPartition) {
        self.views.lock().expect("replica views lock").remove(&tp);
    }

    async fn refresh(&self, tp: TopicPartition, view: &mut View) -> Result<(), MetadataError> {
        let leader_key = keys::partition_leader(tp.topic_id, tp.partition);
        let state_key = keys::partition_state(tp.topic_id, tp.partition);
        let state = match self.meta.get(&state_key).await? {
            Some(v) => PartitionStateRecord::decode(&state_key, &v.value)?,
            None => PartitionStateRecord::empty(),
        };
        let leader_epoch = match self.meta.get(&leader_key).await? {
            Some(v) => LeaderRecord::decode(&leader_key, &v.value)?.leader_epoch,
            None => state.leader_epoch,
        };
        if state.high_watermark < view.high_watermark
            || state.log_start_offset > view.log_start_offset
        {
            // The log start moved (retention): read the index again from the start.
            view.index.clear();
            view.aborted.clear();
            view.high_watermark = 0;
        }
        if state.high_watermark > view.high_watermark || view.refreshed.is_none() {
            let prefix = keys::partition_index_prefix(tp.topic_id, tp.partition);
            let known_end = view.high_watermark;
            let after = (known_end > 0)
                .then(|| keys::partition_index(tp.topic_id, tp.partition, known_end - 1));
            let hw = state.high_watermark;
            let index = &mut view.index;
            self.meta
                .for_each(&prefix, after, &mut |key, value| {
                    let entry = IndexEntry::decode(key, &value.value)?;
                    // Entries committed after the state was read are left for the next
                    // refresh: nothing above the state's high watermark is shown.
                    if entry.base_offset >= known_end && entry.last_offset < hw {
                        index.insert(entry.base_offset, entry);
                    }
                    Ok(())
                })
                .await?;
            // Aborted entries after the last one known; those committed after the state was
            // read are left for the next refresh, like index entries.
            let prefix = keys::partition_aborted_prefix(tp.topic_id, tp.partition);
            let after = view
                .aborted
                .keys()
                .next_back()
                .map(|last| keys::partition_aborted(tp.topic_id, tp.partition, *last));
            let aborted = &mut view.aborted;
            self.meta
                .for_each(&prefix, after, &mut |key, value| {
                    let record = AbortedTxnRecord::decode(key, &value.value)?;
                    if record.last_offset < hw {
                        aborted.insert(record.last_offset, record);
                    }
                    Ok(())
                })
                .await?;
        }
        view.leader_epoch = leader_epoch;
        view.high_watermark = state.high_watermark;
        view.last_stable_offset = last_stable_offset(
            &ProducerStates::from_records(&state.producers),
            state.high_watermark,
            state.log_start_offset,
        );
        view.log_start_offset = state.log_start_offset;
        view.refreshed = Some(Instant::now());
        Ok(())
    }
}
