//! Idempotent and transactional producer checks: per (producer id, partition), the last
//! batches written and the first offset of the producer's open transaction.
//!
//! Rules follow Kafka's `ProducerAppendInfo`: an older epoch is fenced, a new epoch must
//! start at sequence 0, the same epoch must continue at last sequence + 1, and a batch equal
//! to one of the last five is a duplicate that is answered with its original offsets. A
//! producer's first transactional batch opens its transaction in the partition (at that
//! batch's offset) and a marker closes it; while it is open, a non-transactional batch of the
//! producer is refused, and the producer neither expires nor is evicted.

use std::collections::HashMap;

use strato_metadata::model::{
    ProducerBatchRecord, ProducerRecord, TopicPartition, TxnRecord, TxnState,
};

/// Batches remembered per producer; clients keep at most 5 requests in flight with
/// idempotence (`max.in.flight.requests.per.connection` <= 5), as Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub const PRODUCER_BATCHES_RETAINED: usize = 5;
/// Producers remembered per partition; the least recently written is forgotten first. The
/// states are committed with the partition state in one metadata value, so this bounds that
/// value (~250 bytes a producer: ~250 KiB, well under etcd's 1.5 MiB request limit).
/// Idle producers expire first (`--producer-id-expiration-ms`), so the cap is only reached
/// by a thousand producers writing to one partition within that time. Producers with an open
/// transaction are never evicted: when all of them have one, a new producer is refused
/// ([`ProducerStates::has_room_for`]).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    /// Part of a transaction (the batch's transactional attribute).
    pub transactional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Write it.
    Append,
    /// Already written at these offsets: answer them, write nothing.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
    },
    InvalidEpoch,
    OutOfOrder,
}

/// What a batch that passed [`ProducerStates::check`] means for the producer's transaction
/// in the partition (Kafka's `ProducerAppendInfo.appendDataBatch` and KIP-890's verification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnCheck {
    /// Write it: a batch outside any transaction, or one continuing the producer's open
    /// transaction (same epoch).
    Append,
    /// A transactional batch that would open a transaction here: write it only if the
    /// coordinator's record lists the partition in the producer's ongoing transaction.
    NeedsVerification,
    /// INVALID_TXN_STATE: a non-transactional batch while the producer's transaction is open,
    /// or a transactional batch of a newer epoch while one of an older epoch is still open.
    Invalid,
}

/// Why the coordinator's record does not let a batch open a transaction in a partition
/// (the answers of Kafka's `handleVerifyPartitionsInTransaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnVerifyError {
    #[error("the transactional id has no record, or another producer id")]
    UnknownProducerId,
    #[error("the transactional id has another producer epoch")]
    ProducerFenced,
    #[error("the transaction is completing")]
    Completing,
    #[error("the partition is not in the producer's ongoing transaction")]
    NotInTransaction,
}

/// Whether `record` (the coordinator's `txns/<id>`, if any) lists `tp` in the ongoing
/// transaction of producer `producer_id` at `producer_epoch` (KIP-890 part 1's check).
pub fn verify_in_txn(
    record: Option<&TxnRecord>,
    producer_id: i64,
    producer_epoch: i16,
    tp: TopicPartition,
) -> Result<(), TxnVerifyError> {
    let record = record
        .filter(|r| r.producer_id == producer_id)
        .ok_or(TxnVerifyError::UnknownProducerId)?;
    if record.producer_epoch != producer_epoch {
        return Err(TxnVerifyError::ProducerFenced);
    }
    match record.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnVerifyError::Completing),
        TxnState::Ongoing
            if record
                .partitions
                .iter()
                .any(|p| p.topic_id == tp.topic_id && p.partition == tp.partition) =>
        {
            Ok(())
        }
        _ => Err(TxnVerifyError::NotInTransaction),
    }
}

/// Producer states of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerRecord>,
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX { 0 } else { last + 1 }
}

/// Last sequence of a batch whose first sequence is `first` and which holds `count` records;
/// sequences wrap at `i32::MAX` as in Kafka.
pub fn last_sequence(first: i32, record_count: i32) -> i32 {
    let last = first as i64 + record_count as i64 - 1;
    (last % (i32::MAX as i64 + 1)) as i32
}

impl ProducerStates {
    pub fn from_records(records: &[ProducerRecord]) -> Self {
        Self {
            producers: records.iter().map(|r| (r.producer_id, r.clone())).collect(),
        }
    }

    pub fn to_records(&self) -> Vec<ProducerRecord> {
        let mut records: Vec<ProducerRecord> = self.producers.values().cloned().collect();
        records.sort_by_key(|r| r.producer_id);
        records
    }

    /// The transaction rules for a batch that [`ProducerStates::check`] said to append.
    pub fn txn_check(&self, batch: &IncomingBatch) -> TxnCheck {
        let open_epoch = self
            .producers
            .get(&batch.producer_id)
            .and_then(|r| r.txn_first_offset.map(|_| r.producer_epoch));
        match (batch.transactional, open_epoch) {
            (false, None) => TxnCheck::Append,
            (false, Some(_)) => TxnCheck::Invalid,
            (true, Some(epoch)) if epoch == batch.producer_epoch => TxnCheck::Append,
            (true, Some(_)) => TxnCheck::Invalid,
            (true, None) => TxnCheck::NeedsVerification,
        }
    }

    /// Whether a batch of `producer_id` can be remembered: a known producer always, a new one
    /// unless the partition holds [`PRODUCERS_PER_PARTITION_MAX`] producers that all have an
    /// open transaction (none of them may be evicted).
    pub fn has_room_for(&self, producer_id: i64) -> bool {
        self.producers.len() < PRODUCERS_PER_PARTITION_MAX
            || self.producers.contains_key(&producer_id)
            || self
                .producers
                .values()
                .any(|r| r.txn_first_offset.is_none())
    }

    /// The first offset of the oldest open transaction: the last stable offset, if any is
    /// open.
    pub fn first_open_txn_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|r| r.txn_first_offset)
            .min()
    }

    /// Ends `producer_id`'s transaction in the partition (a marker of `producer_epoch` was
    /// written) and returns the first offset it had, if one was open. The producer takes the
    /// marker's epoch if that is newer (fencing older ones, as Kafka's `appendEndTxnMarker`);
    /// an older marker never lowers it.
    pub fn end_txn(&mut self, producer_id: i64, producer_epoch: i16, now_ms: i64) -> Option<i64> {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerRecord {
                producer_id,
                producer_epoch,
                batches: Vec::new(),
                last_write_ms: now_ms,
                txn_first_offset: None,
            });
        if producer_epoch > entry.producer_epoch {
            entry.producer_epoch = producer_epoch;
            entry.batches.clear();
        }
        entry.last_write_ms = now_ms;
        let first_offset = entry.txn_first_offset.take();
        self.evict_over_cap();
        first_offset
    }

    pub fn check(&self, batch: &IncomingBatch) -> SequenceCheck {
        let Some(state) = self.producers.get(&batch.producer_id) else {
            // No state (new producer, or state expired): Kafka accepts any sequence.
            return SequenceCheck::Append;
        };
        if batch.producer_epoch < state.producer_epoch {
            return SequenceCheck::InvalidEpoch;
        }
        if batch.producer_epoch > state.producer_epoch {
            return if batch.first_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        if let Some(dup) = state.batches.iter().find(|b| {
            b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
        }) {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
                last_offset: dup.last_offset,
            };
        }
        match state.batches.last() {
            Some(last) if next_sequence(last.last_sequence) == batch.first_sequence => {
                SequenceCheck::Append
            }
            Some(_) => SequenceCheck::OutOfOrder,
            None => SequenceCheck::Append,
        }
    }

    /// Forgets producers that wrote nothing for longer than `max_idle_ms` (Kafka's
    /// `producer.id.expiration.ms`) and have no open transaction: a producer that comes back
    /// later is treated as new. Returns how many were forgotten.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, r| {
            r.txn_first_offset.is_some() || now_ms.saturating_sub(r.last_write_ms) <= max_idle_ms
        });
        before - self.producers.len()
    }

    /// Records a written batch (after `check` said `Append`).
    pub fn record(
        &mut self,
        batch: &IncomingBatch,
        base_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerRecord {
                producer_id: batch.producer_id,
                producer_epoch: batch.producer_epoch,
                batches: Vec::new(),
                last_write_ms: now_ms,
                txn_first_offset: None,
            });
        debug_assert!(
            batch.transactional || entry.txn_first_offset.is_none(),
            "txn_check refuses a non-transactional batch inside a transaction"
        );
        if batch.producer_epoch != entry.producer_epoch {
            entry.producer_epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push(ProducerBatchRecord {
            first_sequence: batch.first_sequence,
            last_sequence: batch.last_sequence,
            base_offset,
            last_offset,
        });
        if entry.batches.len() > PRODUCER_BATCHES_RETAINED {
            entry.batches.remove(0);
        }
        entry.last_write_ms = now_ms;
        if batch.transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(base_offset);
        }
        self.evict_over_cap();
    }

    /// Over [`PRODUCERS_PER_PARTITION_MAX`], forgets the least recently written producer
    /// without an open transaction (one with an open transaction is never forgotten: the last
    /// stable offset depends on it).
    fn evict_over_cap(&mut self) {
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX
            && let Some(oldest) = self
                .producers
                .values()
                .filter(|r| r.txn_first_offset.is_none())
                .min_by_key(|r| r.last_write_ms)
                .map(|r| r.producer_id)
        {
            self.producers.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first: i32, count: i32) -> IncomingBatch {
        IncomingBatch {
            producer_id: 7,
            producer_epoch: epoch,
            first_sequence: first,
            last_sequence: last_sequence(first, count),
            transactional: false,
        }
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut states = ProducerStates::default();
        let b0 = batch(0, 0, 10);
        assert_eq!(states.check(&b0), SequenceCheck::Append);
        states.record(&b0, 100, 109, 1);
        // The same batch again is a duplicate with its original offsets.
        assert_eq!(
            states.check(&b0),
            SequenceCheck::Duplicate {
                base_offset: 100,
                last_offset: 109
            }
        );
        // A gap is out of order; the next sequence appends.
        assert_eq!(states.check(&batch(0, 11, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(states.check(&batch(0, 10, 1)), SequenceCheck::Append);
        // Older epoch is fenced; a newer epoch must restart at 0.
        assert_eq!(states.check(&batch(-1, 10, 1)), SequenceCheck::InvalidEpoch);
        assert_eq!(states.check(&batch(1, 5, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(states.check(&batch(1, 0, 1)), SequenceCheck::Append);
        // Only the last five batches are remembered.
        for i in 0..6 {
            let b = batch(0, 10 + i as i32, 1);
            states.record(&b, 110 + i, 110 + i, 2);
        }
        assert_eq!(states.check(&b0), SequenceCheck::OutOfOrder);
        let round_trip = ProducerStates::from_records(&states.to_records());
        assert_eq!(round_trip, states);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(last_sequence(i32::MAX, 1), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 2), 0);
        let mut states = ProducerStates::default();
        let b = batch(0, i32::MAX - 1, 2);
        states.record(&b, 0, 1, 0);
        assert_eq!(states.check(&batch(0, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn idle_producers_expire_and_come_back_as_new() {
        let mut states = ProducerStates::default();
        let batch = |id: i64, seq: i32| IncomingBatch {
            producer_id: id,
            producer_epoch: 0,
            first_sequence: seq,
            last_sequence: seq,
            transactional: false,
        };
        states.record(&batch(1, 0), 0, 0, 1_000);
        states.record(&batch(2, 0), 1, 1, 5_000);
        assert_eq!(
            states.expire(6_000, 5_000),
            0,
            "nobody idle for longer than 5 s yet"
        );
        assert_eq!(states.expire(6_001, 5_000), 1);
        assert_eq!(states.to_records().len(), 1);
        // Producer 1 is unknown now: any sequence is accepted, as for a new producer.
        assert_eq!(states.check(&batch(1, 7)), SequenceCheck::Append);
        assert_eq!(
            states.check(&batch(2, 0)),
            SequenceCheck::Duplicate {
                base_offset: 1,
                last_offset: 1
            }
        );
    }

    fn txn_batch(id: i64, epoch: i16, seq: i32) -> IncomingBatch {
        IncomingBatch {
            producer_id: id,
            producer_epoch: epoch,
            first_sequence: seq,
            last_sequence: seq,
            transactional: true,
        }
    }

    /// Goal: a transaction opens at its first transactional batch, continues without
    /// verification in the same epoch, refuses non-transactional batches while open, and is
    /// closed by a marker, which returns its first offset and fences older epochs.
    #[test]
    fn transactions_open_at_their_first_batch_and_close_with_a_marker() {
        let mut states = ProducerStates::default();
        let first = txn_batch(7, 0, 0);
        assert_eq!(states.txn_check(&first), TxnCheck::NeedsVerification);
        states.record(&first, 10, 10, 1);
        assert_eq!(states.first_open_txn_offset(), Some(10));
        let next = txn_batch(7, 0, 1);
        assert_eq!(states.check(&next), SequenceCheck::Append);
        assert_eq!(states.txn_check(&next), TxnCheck::Append);
        states.record(&next, 20, 20, 2);
        assert_eq!(
            states.first_open_txn_offset(),
            Some(10),
            "the first batch stays the start"
        );
        let plain = IncomingBatch {
            transactional: false,
            ..txn_batch(7, 0, 2)
        };
        assert_eq!(states.txn_check(&plain), TxnCheck::Invalid);
        let newer_epoch = txn_batch(7, 1, 0);
        assert_eq!(
            states.txn_check(&newer_epoch),
            TxnCheck::Invalid,
            "a new epoch cannot join an open transaction of an older one"
        );

        // The marker (of a bumped epoch, as an abort after a timeout) closes it.
        assert_eq!(states.end_txn(7, 1, 3), Some(10));
        assert_eq!(states.first_open_txn_offset(), None);
        assert_eq!(
            states.check(&txn_batch(7, 0, 2)),
            SequenceCheck::InvalidEpoch
        );
        assert_eq!(
            states.txn_check(&txn_batch(7, 1, 0)),
            TxnCheck::NeedsVerification
        );
        // A second marker finds nothing open; an older one does not lower the epoch.
        assert_eq!(states.end_txn(7, 0, 4), None);
        assert_eq!(states.to_records()[0].producer_epoch, 1);
        // A marker for a producer the partition never saw still records its epoch.
        assert_eq!(states.end_txn(8, 3, 5), None);
        assert_eq!(
            states.check(&txn_batch(8, 2, 0)),
            SequenceCheck::InvalidEpoch
        );
        let round_trip = ProducerStates::from_records(&states.to_records());
        assert_eq!(round_trip, states);
    }

    /// Goal: a producer with an open transaction never expires and is never evicted by the
    /// per-partition cap; when every remembered producer has one, a new producer is refused.
    #[test]
    fn open_transactions_neither_expire_nor_get_evicted() {
        let mut states = ProducerStates::default();
        states.record(&txn_batch(1, 0, 0), 0, 0, 1_000);
        states.record(
            &IncomingBatch {
                transactional: false,
                ..txn_batch(2, 0, 0)
            },
            1,
            1,
            1_000,
        );
        assert_eq!(
            states.expire(100_000, 5_000),
            1,
            "only the idle plain producer"
        );
        assert_eq!(states.first_open_txn_offset(), Some(0));

        for id in 10..9 + PRODUCERS_PER_PARTITION_MAX as i64 {
            states.record(&txn_batch(id, 0, 0), id, id, id);
        }
        assert_eq!(states.to_records().len(), PRODUCERS_PER_PARTITION_MAX);
        assert_eq!(states.first_open_txn_offset(), Some(0));
        assert!(!states.has_room_for(5_000), "nobody evictable");
        assert!(states.has_room_for(1));
        states.end_txn(10, 0, 50_000);
        assert!(
            states.has_room_for(5_000),
            "a closed transaction makes room"
        );
        states.record(&txn_batch(5_000, 0, 0), 9_000, 9_000, 60_000);
        assert_eq!(states.to_records().len(), PRODUCERS_PER_PARTITION_MAX);
        assert!(
            states.to_records().iter().all(|r| r.producer_id != 10),
            "the one without a transaction was evicted"
        );
    }

    /// Goal: a batch opens a transaction only when the coordinator's record is Ongoing with
    /// the batch's producer id and epoch and lists the partition; each other case gets
    /// Kafka's answer.
    #[test]
    fn verification_against_the_coordinators_record() {
        use strato_metadata::model::{RECORD_FORMAT_V1, TxnPartitionRecord};
        let tp = TopicPartition {
            topic_id: uuid::Uuid::from_u128(1),
            partition: 2,
        };
        let record = TxnRecord {
            v: RECORD_FORMAT_V1,
            transactional_id: "t".into(),
            producer_id: 7,
            producer_epoch: 3,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: vec![TxnPartitionRecord {
                topic: "orders".into(),
                topic_id: tp.topic_id,
                partition: 2,
            }],
            groups: Vec::new(),
            start_ms: 1,
            last_update_ms: 1,
        };
        assert_eq!(verify_in_txn(Some(&record), 7, 3, tp), Ok(()));
        let other_partition = TopicPartition { partition: 1, ..tp };
        assert_eq!(
            verify_in_txn(Some(&record), 7, 3, other_partition),
            Err(TxnVerifyError::NotInTransaction)
        );
        assert_eq!(
            verify_in_txn(None, 7, 3, tp),
            Err(TxnVerifyError::UnknownProducerId)
        );
        assert_eq!(
            verify_in_txn(Some(&record), 8, 3, tp),
            Err(TxnVerifyError::UnknownProducerId)
        );
        assert_eq!(
            verify_in_txn(Some(&record), 7, 2, tp),
            Err(TxnVerifyError::ProducerFenced)
        );
        for (state, expected) in [
            (TxnState::PrepareCommit, Err(TxnVerifyError::Completing)),
            (TxnState::PrepareAbort, Err(TxnVerifyError::Completing)),
            (
                TxnState::CompleteCommit,
                Err(TxnVerifyError::NotInTransaction),
            ),
            (TxnState::Empty, Err(TxnVerifyError::NotInTransaction)),
        ] {
            let record = TxnRecord {
                state,
                ..record.clone()
            };
            assert_eq!(
                verify_in_txn(Some(&record), 7, 3, tp),
                expected,
                "{state:?}"
            );
        }
    }
}
