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
use strato_metadata::{MetadataError, MetadataStore, index, keys};
use tokio::time::Instant;

use super::partition::{ReadView, aborted_overlapping, entries_from, last_stable_offset};
use super::producer::ProducerStates;

/// How stale a replica view may be before a reader at its end refreshes it.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);
/// Partitions whose replica views are kept; the cache is emptied when full.
const VIEWS_MAX: usize = 10_000;
/// Reads of the index per refresh before giving up (each after a compaction swap moved
/// under the previous one).
const SCAN_ATTEMPTS: usize = index::WHOLE_READ_ATTEMPTS;
/// How far back (in the view's entries) the second anchor is.
const ANCHOR_STEP: usize = 64;

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

    /// Brings the view's index up to `hw`: the entries after an anchor (an entry of the
    /// view still in the store unchanged), read again; the view's entries before it stay.
    ///
    /// Compaction on the leader swaps a run of consecutive entries for one entry keyed by
    /// the run's first base offset. A run that reached past what the view knew therefore
    /// holds the view's last entry: reading on from the view's end alone would miss the
    /// merged entry (keyed below that end) and leave a hole in the view, which readers
    /// would skip or wait at forever. So the anchor is checked first; a changed one is
    /// replaced by one further back, down to a reload of the whole index. A run wholly
    /// before the anchor leaves the view older entries covering the same offsets, read
    /// until their objects are collected (then the view is invalidated, see `invalidate`).
    async fn load_index(
        &self,
        tp: TopicPartition,
        view: &mut View,
        hw: Offset,
    ) -> Result<(), MetadataError> {
        for attempt in 0..SCAN_ATTEMPTS {
            // Anchors: the last entry, one ANCHOR_STEP further back, then none (everything).
            let back = match attempt {
                0 => Some(0),
                1 => Some(ANCHOR_STEP),
                _ => None,
            };
            let anchor = back.and_then(|back| view.index.values().nth_back(back).cloned());
            let read = index::read_index(
                self.meta.as_ref(),
                tp.topic_id,
                tp.partition,
                anchor.as_ref(),
                hw,
            );
            // Entries committed after the state was read are left for the next refresh:
            // nothing above the state's high watermark is shown.
            let Some(entries) = read.await? else {
                continue;
            };
            // What the view held after the anchor was read again.
            match &anchor {
                Some(anchor) => drop(view.index.split_off(&(anchor.base_offset + 1))),
                None => view.index.clear(),
            }
            for entry in entries {
                view.index.insert(entry.base_offset, entry);
            }
            return Ok(());
        }
        Err(index::index_kept_changing(tp.topic_id, tp.partition))
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
            self.load_index(tp, view, state.high_watermark).await?;
            let hw = state.high_watermark;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strato_metadata::embedded::EmbeddedStore;
    use strato_metadata::model::{IndexEntry, PartitionStateRecord};
    use strato_metadata::testing::faulty::FaultyMetadataStore;
    use strato_metadata::testing::index_entry as entry;
    use strato_metadata::{LIST_PAGE, MetadataStore, Txn, keys};
    use uuid::Uuid;

    use super::*;

    struct Log {
        tp: TopicPartition,
        store: Arc<FaultyMetadataStore>,
        views: ReplicaViews,
        _dir: tempfile::TempDir,
    }

    impl Log {
        async fn new() -> Log {
            let dir = tempfile::tempdir().unwrap();
            let embedded: Arc<dyn MetadataStore> =
                Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
            let store = Arc::new(FaultyMetadataStore::new(embedded));
            let views = ReplicaViews::new(store.clone());
            let tp = TopicPartition {
                topic_id: Uuid::new_v4(),
                partition: 3,
            };
            Log {
                tp,
                store,
                views,
                _dir: dir,
            }
        }

        fn key(&self, base: Offset) -> String {
            keys::partition_index(self.tp.topic_id, self.tp.partition, base)
        }

        fn state(&self, hw: Offset) -> (String, bytes::Bytes) {
            let state = PartitionStateRecord {
                high_watermark: hw,
                ..PartitionStateRecord::empty()
            };
            (
                keys::partition_state(self.tp.topic_id, self.tp.partition),
                state.encode(),
            )
        }

        /// A leader's flush: `entries` and the new high watermark, in one transaction.
        async fn commit(&self, entries: &[IndexEntry]) {
            let hw = entries.last().unwrap().last_offset + 1;
            let mut txn = Txn::new();
            for e in entries {
                txn = txn.put(self.key(e.base_offset), e.encode());
            }
            let (key, value) = self.state(hw);
            self.store.txn(txn.put(key, value)).await.unwrap();
        }

        /// Compaction's swap: `old` entries out, `merged` in (the state is not written).
        fn swap(&self, old: &[Offset], merged: &IndexEntry) -> Txn {
            let mut txn = Txn::new();
            for base in old {
                txn = txn.delete(self.key(*base));
            }
            txn.put(self.key(merged.base_offset), merged.encode())
        }

        /// Where a replica reader at `offset` is sent: (first chunk's object, its base), the
        /// view refreshed first (as a reader past its end makes it do, without waiting for
        /// it to age).
        async fn read(&self, offset: Offset) -> (ReadView, Option<(String, Offset)>) {
            self.views.read_view(self.tp, Offset::MAX, 1).await.unwrap();
            let view = self.views.read_view(self.tp, offset, 64).await.unwrap();
            let first = view
                .entries
                .first()
                .map(|e| (e.object.clone(), e.base_offset));
            (view, first)
        }
    }

    /// Goal: a compaction swap that merged the replica view's last entry with entries the
    /// view had not seen yet is seen, so a reader at the view's old end is sent to the
    /// merged chunk, not past it (records skipped) nor nowhere (a reader stuck below the
    /// high watermark). Method: a real embedded store written as a leader and its compactor
    /// would; both shapes of swap (the run starting at the view's last entry, and before it).
    #[tokio::test]
    async fn a_merge_past_the_views_end_is_seen() {
        let log = Log::new().await;
        log.commit(&[entry("a", 0, 9), entry("b", 10, 19), entry("c", 20, 29)])
            .await;
        let (view, first) = log.read(30).await;
        assert_eq!((view.high_watermark, first), (30, None));

        // The run starts at the view's last entry: same key, a longer range.
        log.commit(&[entry("d", 30, 32), entry("e", 33, 39), entry("f", 40, 49)])
            .await;
        let merged = entry("m1", 20, 32);
        log.store.txn(log.swap(&[20, 30], &merged)).await.unwrap();
        let (view, first) = log.read(30).await;
        assert_eq!(view.high_watermark, 50);
        assert_eq!(first, Some(("m1".to_string(), 20)), "the chunk holding 30");
        let (_, first) = log.read(45).await;
        assert_eq!(first, Some(("f".to_string(), 40)));

        // The run starts before the view's last entry (whose key is gone).
        log.commit(&[entry("g", 50, 52)]).await;
        let (_, first) = log.read(53).await;
        assert_eq!(first, None);
        log.commit(&[entry("h", 53, 55), entry("i", 56, 58), entry("j", 59, 61)])
            .await;
        let merged = entry("m2", 40, 58);
        log.store
            .txn(log.swap(&[40, 50, 53, 56], &merged))
            .await
            .unwrap();
        let (_, first) = log.read(53).await;
        assert_eq!(first, Some(("m2".to_string(), 40)), "the chunk holding 53");

        // The merged chunk holds the newest records: nothing after it a reader could be
        // sent to instead, so without it the reader would wait below the high watermark.
        log.commit(&[entry("k", 62, 64)]).await;
        let (_, first) = log.read(65).await;
        assert_eq!(first, None);
        log.commit(&[entry("l", 65, 67)]).await;
        let merged = entry("m3", 59, 67);
        log.store
            .txn(log.swap(&[59, 62, 65], &merged))
            .await
            .unwrap();
        let (view, first) = log.read(65).await;
        assert_eq!(view.high_watermark, 68);
        assert_eq!(first, Some(("m3".to_string(), 59)), "the chunk holding 65");
    }

    /// Goal: a swap landing between two pages of an index read (more than [`LIST_PAGE`]
    /// entries) leaves no hole in the view. Method: the fault-injecting store applies a
    /// swap of the entries around the first page's end right after that page was read.
    #[tokio::test]
    async fn a_merge_between_two_pages_is_seen() {
        let log = Log::new().await;
        let n = LIST_PAGE as i64 + 10;
        let entries: Vec<IndexEntry> = (0..n).map(|i| entry("a", i * 2, i * 2 + 1)).collect();
        for flush in entries.chunks(100) {
            log.commit(flush).await;
        }
        // The first page ends with the entry at 2 * (LIST_PAGE - 1); merge it with the two
        // after it, which the second page would have started with.
        let last_of_page = 2 * (LIST_PAGE as i64 - 1);
        let merged = entry("m", last_of_page, last_of_page + 5);
        log.store.txn_after_list(
            0,
            log.swap(&[last_of_page, last_of_page + 2, last_of_page + 4], &merged),
        );
        let (view, _) = log.read(0).await;
        assert_eq!(view.high_watermark, 2 * n);
        // Every offset is in the first chunk a reader there is sent to (an entry the swap
        // replaced would do too, until its object is collected): no hole.
        for offset in last_of_page - 1..=last_of_page + 7 {
            let view = log.views.read_view(log.tp, offset, 1).await.unwrap();
            let first = view.entries.first().expect("a chunk for every offset");
            assert!(
                first.base_offset <= offset && offset <= first.last_offset,
                "offset {offset} is not in the chunk it is sent to: {first:?}"
            );
        }
    }
}
