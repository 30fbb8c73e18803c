//! One partition led by this broker: its offsets, chunk index and producer states.

use std::collections::BTreeMap;
use std::sync::Mutex;

use strato_metadata::model::{
    IndexEntry, LeaderEpochRecord, Offset, PartitionStateRecord, TopicPartition,
};
use strato_metadata::{Txn, Version, keys};

use super::producer::ProducerStates;

/// A partition this broker leads. The state lock is a plain mutex: it is never held across
/// an `.await`.
#[derive(Debug)]
pub struct Partition {
    pub tp: TopicPartition,
    pub topic: String,
    state: Mutex<PartitionState>,
}

#[derive(Debug)]
pub struct PartitionState {
    pub leader_epoch: i32,
    /// Version of our leader key: a commit requires it unchanged (leadership fencing).
    pub leader_version: Version,
    /// Version of the state key at our last commit: a commit requires it unchanged.
    pub state_version: Version,
    /// Next offset to assign, counting batches accepted but not yet committed.
    pub next_offset: Offset,
    /// Everything below is durable and visible to consumers.
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    /// Committed chunks by base offset; contiguous from `log_start_offset` to the HW.
    pub index: BTreeMap<Offset, IndexEntry>,
    /// Producer states including batches not yet committed (used for checks).
    pub producers: ProducerStates,
    /// Producer states as of the last commit (persisted; restored on a failed flush).
    pub committed_producers: ProducerStates,
    /// Bumped whenever uncommitted batches are discarded, so waiters can tell.
    pub rewinds: u64,
    /// Leader epochs with their start offsets, oldest first (persisted with every commit).
    pub epochs: Vec<LeaderEpochRecord>,
    /// A commit found our leader or state key changed: another broker leads now.
    pub fenced: bool,
    /// A commit's outcome is unknown (metadata store timeout): no produce is admitted until
    /// the committed state has been read back.
    pub needs_reload: bool,
}

/// A point-in-time view for readers.
#[derive(Debug, Clone)]
pub struct ReadView {
    pub leader_epoch: i32,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    /// Index entries from the one holding the requested offset onward, at most the asked count.
    pub entries: Vec<IndexEntry>,
}

impl Partition {
    pub fn new(
        tp: TopicPartition,
        topic: String,
        leader_epoch: i32,
        leader_version: Version,
        state_version: Version,
        state: &PartitionStateRecord,
        index: BTreeMap<Offset, IndexEntry>,
    ) -> Self {
        let producers = ProducerStates::from_records(&state.producers);
        if let Some((_, last)) = index.iter().next_back() {
            assert_eq!(
                last.last_offset + 1,
                state.high_watermark,
                "index of {tp:?} must end at the committed high watermark"
            );
        }
        Self {
            tp,
            topic,
            state: Mutex::new(PartitionState {
                leader_epoch,
                leader_version,
                state_version,
                next_offset: state.high_watermark,
                high_watermark: state.high_watermark,
                log_start_offset: state.log_start_offset,
                index,
                producers: producers.clone(),
                committed_producers: producers,
                rewinds: 0,
                epochs: state.epochs.clone(),
                fenced: false,
                needs_reload: false,
            }),
        }
    }

    /// A partition another broker leads: it admits no produce and serves no reads (clients
    /// are told NOT_LEADER_OR_FOLLOWER and look up the leader).
    pub fn not_led(tp: TopicPartition, topic: String) -> Self {
        let partition = Self::new(
            tp,
            topic,
            -1,
            0,
            0,
            &PartitionStateRecord::empty(),
            BTreeMap::new(),
        );
        partition.lock().fenced = true;
        partition
    }

    /// Whether this broker leads the partition now.
    pub fn is_led(&self) -> bool {
        !self.lock().fenced
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, PartitionState> {
        self.state.lock().expect("partition lock is never poisoned")
    }

    pub fn high_watermark(&self) -> Offset {
        self.lock().high_watermark
    }

    pub fn leader_epoch(&self) -> i32 {
        self.lock().leader_epoch
    }

    /// Bytes of the partition's committed chunks in the object store (compressed), if this
    /// broker leads it.
    pub fn stored_bytes(&self) -> Option<u64> {
        let state = self.lock();
        (!state.fenced && !state.needs_reload)
            .then(|| state.index.values().map(|e| e.byte_length).sum())
    }

    /// Index entries needed to read from `offset`, at most `max_entries`.
    pub fn read_view(&self, offset: Offset, max_entries: usize) -> ReadView {
        let state = self.lock();
        ReadView {
            leader_epoch: state.leader_epoch,
            high_watermark: state.high_watermark,
            log_start_offset: state.log_start_offset,
            entries: entries_from(&state.index, offset, max_entries),
        }
    }

    /// All committed index entries (for timestamp lookups).
    pub fn index_snapshot(&self) -> (Offset, Vec<IndexEntry>) {
        let state = self.lock();
        (
            state.high_watermark,
            state.index.values().cloned().collect(),
        )
    }
}

impl PartitionState {
    /// A transaction that writes `record` as the state of partition `tp`, fenced on the
    /// leader and state key versions this broker holds: any change by another writer (a new
    /// leader, a lost commit) makes it fail with a conflict. Callers add their index changes.
    pub fn fenced_state_txn(&self, tp: TopicPartition, record: &PartitionStateRecord) -> Txn {
        Txn::new()
            .when_version(
                keys::partition_leader(tp.topic_id, tp.partition),
                self.leader_version,
            )
            .when_version(
                keys::partition_state(tp.topic_id, tp.partition),
                self.state_version,
            )
            .put(
                keys::partition_state(tp.topic_id, tp.partition),
                record.encode(),
            )
    }

    /// State record to commit after appending `new_hw` and the given producer states.
    pub fn state_record(&self, new_hw: Offset, producers: &ProducerStates) -> PartitionStateRecord {
        PartitionStateRecord {
            v: strato_metadata::model::RECORD_FORMAT_V1,
            high_watermark: new_hw,
            log_start_offset: self.log_start_offset,
            leader_epoch: self.leader_epoch,
            producers: producers.to_records(),
            epochs: self.epochs.clone(),
        }
    }

    /// OffsetForLeaderEpoch: the latest epoch not above `requested` and the offset where the
    /// next epoch started (the committed end for the current one), as Kafka's leader epoch cache
    /// answers; `(-1, -1)` for an epoch newer than any known.
    pub fn epoch_end_offset(&self, requested: i32) -> (i32, Offset) {
        epoch_end_offset(&self.epochs, self.high_watermark, requested)
    }
}

/// The index entries needed to read from `offset` (the one holding it first), at most
/// `max_entries`; shared by leaders and replica views.
pub fn entries_from(
    index: &BTreeMap<Offset, IndexEntry>,
    offset: Offset,
    max_entries: usize,
) -> Vec<IndexEntry> {
    let start = index
        .range(..=offset)
        .next_back()
        .map(|(base, _)| *base)
        .unwrap_or(offset);
    index
        .range(start..)
        .filter(|(_, e)| e.last_offset >= offset)
        .take(max_entries)
        .map(|(_, e)| e.clone())
        .collect()
}

/// Most leader epochs remembered per partition: the state is written with every commit,
/// so its size matters; a client asking about an older epoch than these gets the start
/// of the oldest one kept.
pub const EPOCHS_KEPT_MAX: usize = 64;

/// Records that `epoch` starts at `start_offset` (a new leader), keeping the newest
/// [`EPOCHS_KEPT_MAX`] entries.
pub fn push_epoch(epochs: &mut Vec<LeaderEpochRecord>, epoch: i32, start_offset: Offset) {
    if let Some(last) = epochs.last() {
        assert!(epoch > last.epoch, "leader epochs only grow");
        assert!(
            start_offset >= last.start_offset,
            "epoch start offsets never go back"
        );
    }
    epochs.push(LeaderEpochRecord {
        epoch,
        start_offset,
    });
    if epochs.len() > EPOCHS_KEPT_MAX {
        let excess = epochs.len() - EPOCHS_KEPT_MAX;
        epochs.drain(..excess);
    }
}

fn epoch_end_offset(
    epochs: &[LeaderEpochRecord],
    log_end: Offset,
    requested: i32,
) -> (i32, Offset) {
    const UNDEFINED: (i32, Offset) = (-1, -1);
    if requested < 0 {
        return UNDEFINED;
    }
    if epochs.last().is_some_and(|last| last.epoch == requested) {
        return (requested, log_end);
    }
    let Some(higher) = epochs.iter().find(|e| e.epoch > requested) else {
        return UNDEFINED;
    };
    match epochs.iter().rev().find(|e| e.epoch <= requested) {
        Some(floor) => (floor.epoch, higher.start_offset),
        None => (requested, higher.start_offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_end_offsets_follow_kafkas_leader_epoch_cache() {
        let mut epochs = Vec::new();
        push_epoch(&mut epochs, 2, 0);
        push_epoch(&mut epochs, 5, 100);
        push_epoch(&mut epochs, 6, 100);
        push_epoch(&mut epochs, 9, 250);
        let end = 300;
        assert_eq!(
            epoch_end_offset(&epochs, end, 9),
            (9, 300),
            "current epoch: log end"
        );
        assert_eq!(epoch_end_offset(&epochs, end, 6), (6, 250));
        assert_eq!(
            epoch_end_offset(&epochs, end, 5),
            (5, 100),
            "an empty epoch"
        );
        assert_eq!(
            epoch_end_offset(&epochs, end, 7),
            (6, 250),
            "unknown epoch: the floor"
        );
        assert_eq!(
            epoch_end_offset(&epochs, end, 1),
            (1, 0),
            "older than all known"
        );
        assert_eq!(
            epoch_end_offset(&epochs, end, 10),
            (-1, -1),
            "newer than all known"
        );
        assert_eq!(epoch_end_offset(&epochs, end, -1), (-1, -1));
        assert_eq!(epoch_end_offset(&[], end, 0), (-1, -1));
    }

    #[test]
    fn epoch_history_is_bounded() {
        let mut epochs = Vec::new();
        for epoch in 0..200 {
            push_epoch(&mut epochs, epoch, i64::from(epoch) * 10);
        }
        assert_eq!(epochs.len(), EPOCHS_KEPT_MAX);
        assert_eq!(epochs[0].epoch, 200 - EPOCHS_KEPT_MAX as i32);
    }
}
