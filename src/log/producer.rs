//! Idempotent producer checks: per (producer id, partition), the last batches written.
//!
//! Rules follow Kafka's `ProducerAppendInfo`: an older epoch is fenced, a new epoch must
//! start at sequence 0, the same epoch must continue at last sequence + 1, and a batch equal
//! to one of the last five is a duplicate that is answered with its original offsets.

use std::collections::HashMap;

use strato_metadata::model::{ProducerBatchRecord, ProducerRecord};

/// Batches remembered per producer; clients keep at most 5 requests in flight with
/// idempotence (`max.in.flight.requests.per.connection` <= 5), as Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub const PRODUCER_BATCHES_RETAINED: usize = 5;
/// Producers remembered per partition; the least recently written is forgotten first. The
/// states are committed with the partition state in one metadata value, so this bounds that
/// value (~250 bytes a producer: ~250 KiB, well under etcd's 1.5 MiB request limit).
/// Idle producers expire first (`--producer-id-expiration-ms`), so the cap is only reached
/// by a thousand producers writing to one partition within that time.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
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
    /// `producer.id.expiration.ms`): a producer that comes back later is treated as new.
    /// Returns how many were forgotten.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, r| now_ms.saturating_sub(r.last_write_ms) <= max_idle_ms);
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
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX
            && let Some(oldest) = self
                .producers
                .values()
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
}
