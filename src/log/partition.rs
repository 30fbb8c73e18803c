//! One partition led by this broker: its offsets, chunk index, producer states (with their
//! open transactions, which hold the last stable offset back) and aborted transactions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use strato_metadata::model::{
    AbortedTxnRecord, IndexEntry, LeaderEpochRecord, Offset, PartitionStateRecord, TopicPartition,
};
use strato_metadata::{MetadataError, MetadataStore, Txn, Version, keys};

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
    /// Committed aborted transactions by the offset of their abort marker
    /// (`partitions/<id>/<p>/aborted/`), from the log start to the HW.
    pub aborted: BTreeMap<Offset, AbortedTxnRecord>,
    /// Producers whose marker is appended but not yet committed: at most one marker per
    /// producer is in flight, and at most [`MARKERS_PENDING_MAX`] per partition.
    pub pending_markers: HashSet<i64>,
    /// Transactional produce verifications under way (Kafka's `VerificationGuard`, KIP-890):
    /// producer id -> guard. A batch that opens a transaction is appended only if its guard
    /// is still here, i.e. no marker for the producer was appended while the coordinator's
    /// record was read (else the record may be older than the marker).
    txn_verifications: HashMap<i64, u64>,
    next_verification: u64,
}

/// Markers in flight per partition: each adds up to two operations (delete its request,
/// put an aborted entry) to the partition's commit transaction, which also puts the state
/// and an index entry and must stay within etcd's 128 operations.
pub const MARKERS_PENDING_MAX: usize = 50;
const _: () = assert!(2 + 2 * MARKERS_PENDING_MAX <= 128);
/// Verifications remembered per partition; when full they are forgotten (those in flight
/// then read the coordinator's record again).
const TXN_VERIFICATIONS_MAX: usize = 10_000;

/// A point-in-time view for readers.
#[derive(Debug, Clone)]
pub struct ReadView {
    pub leader_epoch: i32,
    pub high_watermark: Offset,
    /// Below it every transaction is decided (committed or aborted): read_committed
    /// consumers read up to here.
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    /// Index entries from the one holding the requested offset onward, at most the asked count.
    pub entries: Vec<IndexEntry>,
    /// Aborted transactions that may overlap what can be read from the requested offset
    /// with these entries (a superset: the reader keeps those overlapping what it returns).
    pub aborted: Vec<AbortedTxnRecord>,
}

/// What a leader reads besides the state record when it takes a partition.
#[derive(Debug, Default)]
pub struct CommittedLog {
    /// Index entries by base offset, ending at the committed HW.
    pub index: BTreeMap<Offset, IndexEntry>,
    /// Aborted transactions by marker offset.
    pub aborted: BTreeMap<Offset, AbortedTxnRecord>,
}

impl Partition {
    pub fn new(
        tp: TopicPartition,
        topic: String,
        leader_epoch: i32,
        leader_version: Version,
        state_version: Version,
        state: &PartitionStateRecord,
        log: CommittedLog,
    ) -> Self {
        let CommittedLog { index, aborted } = log;
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
                aborted,
                pending_markers: HashSet::new(),
                txn_verifications: HashMap::new(),
                next_verification: 0,
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
            CommittedLog::default(),
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
        let entries = entries_from(&state.index, offset, max_entries);
        let last_stable_offset = state.last_stable_offset();
        ReadView {
            leader_epoch: state.leader_epoch,
            high_watermark: state.high_watermark,
            last_stable_offset,
            log_start_offset: state.log_start_offset,
            aborted: aborted_overlapping(&state.aborted, offset, &entries),
            entries,
        }
    }

    pub fn last_stable_offset(&self) -> Offset {
        self.lock().last_stable_offset()
    }

    /// The committed aborted transactions (for the key cleaner).
    pub fn aborted_snapshot(&self) -> Vec<AbortedTxnRecord> {
        self.lock().aborted.values().copied().collect()
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
    /// The last stable offset of the committed state (see [`last_stable_offset`]).
    pub fn last_stable_offset(&self) -> Offset {
        last_stable_offset(
            &self.committed_producers,
            self.high_watermark,
            self.log_start_offset,
        )
    }

    /// Starts verifying that `producer_id`'s transaction includes this partition: the guard
    /// to present with the batch once the coordinator's record is read.
    pub fn start_txn_verification(&mut self, producer_id: i64) -> u64 {
        if self.txn_verifications.len() >= TXN_VERIFICATIONS_MAX {
            self.txn_verifications.clear();
        }
        self.next_verification += 1;
        self.txn_verifications
            .insert(producer_id, self.next_verification);
        self.next_verification
    }

    /// Whether `guard` is still `producer_id`'s current verification (no marker for the
    /// producer was appended since it started); consumes it.
    pub fn take_txn_verification(&mut self, producer_id: i64, guard: u64) -> bool {
        if self.txn_verifications.get(&producer_id) == Some(&guard) {
            self.txn_verifications.remove(&producer_id);
            true
        } else {
            false
        }
    }

    /// A marker for `producer_id` was appended: verifications under way are stale.
    pub fn forget_txn_verification(&mut self, producer_id: i64) {
        self.txn_verifications.remove(&producer_id);
    }
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

/// Reads a partition's aborted transactions (`partitions/<id>/<p>/aborted/`) committed below
/// `high_watermark`, page by page.
pub async fn load_aborted(
    meta: &dyn MetadataStore,
    tp: TopicPartition,
    high_watermark: Offset,
) -> Result<BTreeMap<Offset, AbortedTxnRecord>, MetadataError> {
    let mut aborted = BTreeMap::new();
    meta.for_each(
        &keys::partition_aborted_prefix(tp.topic_id, tp.partition),
        None,
        &mut |key, value| {
            let record = AbortedTxnRecord::decode(key, &value.value)?;
            if record.last_offset < high_watermark {
                aborted.insert(record.last_offset, record);
            }
            Ok(())
        },
    )
    .await?;
    Ok(aborted)
}

/// The last stable offset of a partition whose committed producer states are `producers`:
/// the first offset of the oldest open transaction, or the HW when none is open; never below
/// the log start (retention may pass an open transaction's start, as in Kafka's
/// `updateFirstUnstableOffset`).
pub fn last_stable_offset(
    producers: &ProducerStates,
    high_watermark: Offset,
    log_start_offset: Offset,
) -> Offset {
    producers
        .first_open_txn_offset()
        .map_or(high_watermark, |first| first.min(high_watermark))
        .max(log_start_offset)
}

/// The aborted transactions that may overlap a read from `offset` through `entries` (Kafka's
/// `collectAbortedTxns`): those ending at or after `offset` and starting before the entries
/// end, stopping after one whose last stable offset reaches that end (no transaction aborted
/// later started before it). Shared by leaders and replica views.
pub fn aborted_overlapping(
    aborted: &BTreeMap<Offset, AbortedTxnRecord>,
    offset: Offset,
    entries: &[IndexEntry],
) -> Vec<AbortedTxnRecord> {
    let Some(upper) = entries.last().map(|e| e.last_offset + 1) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for record in aborted.range(offset..).map(|(_, r)| r) {
        if record.first_offset < upper {
            found.push(*record);
        }
        if record.last_stable_offset.is_some_and(|lso| lso >= upper) {
            break;
        }
    }
    found
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

    fn aborted(
        producer_id: i64,
        first_offset: Offset,
        last_offset: Offset,
        lso: Offset,
    ) -> (Offset, AbortedTxnRecord) {
        (
            last_offset,
            AbortedTxnRecord {
                v: strato_metadata::model::RECORD_FORMAT_V1,
                producer_id,
                first_offset,
                last_offset,
                last_stable_offset: Some(lso),
            },
        )
    }

    fn entry(base_offset: Offset, last_offset: Offset) -> IndexEntry {
        IndexEntry {
            v: strato_metadata::model::RECORD_FORMAT_V1,
            object: "segments/00/x.seg".into(),
            byte_offset: 0,
            byte_length: 1,
            uncompressed_length: 1,
            base_offset,
            last_offset,
            max_timestamp: 0,
            record_count: 1,
            seek_table_length: 0,
            raw: false,
        }
    }

    /// Goal: a read gets the aborted transactions that overlap what it can read, as Kafka's
    /// `collectAbortedTxns`: not those that ended before the fetch offset nor those that
    /// started after the entries, and the walk stops at the first one whose last stable
    /// offset reaches the end of the entries.
    #[test]
    fn aborted_transactions_overlapping_a_read() {
        // A: 0..=10 (B open, LSO 5); B: 5..=20 (LSO 21); C: 30..=40 (LSO 41);
        // D: 45..=50 (LSO 51).
        let index: BTreeMap<Offset, AbortedTxnRecord> = [
            aborted(1, 0, 10, 5),
            aborted(2, 5, 20, 21),
            aborted(3, 30, 40, 41),
            aborted(4, 45, 50, 51),
        ]
        .into_iter()
        .collect();
        let producers = |offset, entries: &[IndexEntry]| -> Vec<i64> {
            aborted_overlapping(&index, offset, entries)
                .iter()
                .map(|a| a.producer_id)
                .collect()
        };
        assert_eq!(
            producers(0, &[entry(0, 25)]),
            vec![1, 2],
            "stops at B's LSO"
        );
        assert_eq!(producers(11, &[entry(0, 25)]), vec![2]);
        assert_eq!(producers(11, &[entry(0, 25), entry(26, 60)]), vec![2, 3, 4]);
        assert_eq!(
            producers(41, &[entry(41, 44)]),
            Vec::<i64>::new(),
            "D starts later"
        );
        assert_eq!(producers(0, &[]), Vec::<i64>::new());
    }

    #[test]
    fn last_stable_offset_is_the_oldest_open_transaction_or_the_hw() {
        use crate::log::producer::IncomingBatch;
        let mut producers = ProducerStates::default();
        assert_eq!(last_stable_offset(&producers, 10, 0), 10);
        for (id, offset) in [(1, 7), (2, 4)] {
            let batch = IncomingBatch {
                producer_id: id,
                producer_epoch: 0,
                first_sequence: 0,
                last_sequence: 0,
                transactional: true,
            };
            producers.record(&batch, offset, offset, 0);
        }
        assert_eq!(last_stable_offset(&producers, 10, 0), 4);
        assert_eq!(
            last_stable_offset(&producers, 10, 6),
            6,
            "retention passed the oldest start"
        );
        producers.end_txn(2, 0, 1);
        assert_eq!(last_stable_offset(&producers, 10, 0), 7);
        producers.end_txn(1, 0, 1);
        assert_eq!(last_stable_offset(&producers, 10, 0), 10);
    }
}
