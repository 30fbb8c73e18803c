//! The transaction state machine of one transactional id, as Kafka's
//! `TransactionCoordinator` decides it: pure functions from the stored [`TxnRecord`] and a
//! request to a new record (to write with compare-and-set) and an answer. `now_ms` is a
//! parameter; nothing here does IO.

use strato_metadata::model::{RECORD_FORMAT_V1, TxnPartitionRecord, TxnRecord, TxnState};

/// Why a request is refused; the handlers map these to Kafka's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// A transition is in progress (markers being written): the client retries.
    #[error("a transition of this transaction is in progress")]
    ConcurrentTransactions,
    /// The request's producer epoch is older than the id's: a newer producer took over.
    #[error("the producer was fenced by a newer instance")]
    ProducerFenced,
    /// The request's producer id is not the id's.
    #[error("the producer id does not belong to this transactional id")]
    InvalidProducerIdMapping,
    /// The request does not fit the transaction's state (EndTxn without a transaction, a
    /// commit of an aborted one, ...).
    #[error("the request does not fit the transaction's state")]
    InvalidTxnState,
    /// `transaction.timeout.ms` is not within (0, --transaction-max-timeout-ms].
    #[error("the transaction timeout is out of range")]
    InvalidTransactionTimeout,
    /// More partitions than `--transaction-max-partitions`.
    #[error("the transaction would have too many partitions")]
    TooManyPartitions,
}

/// Epochs are bumped up to here; past it the id gets a new producer id (Kafka's
/// `Short.MaxValue - 1` rule, which keeps one epoch for fencing).
pub const EPOCH_MAX: i16 = i16::MAX - 1;

/// What InitProducerId asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitRequest {
    pub timeout_ms: i32,
    /// KIP-360: the producer id and epoch the client has (-1 when new).
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// The outcome of InitProducerId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Write this record and answer its producer id and epoch.
    Ready(TxnRecord),
    /// Write this record (an open transaction fenced: epoch bumped, PrepareAbort) and answer
    /// CONCURRENT_TRANSACTIONS; the client retries once the abort completed.
    FenceOpen(TxnRecord),
}

/// The record of a new transactional id.
pub fn new_record(
    transactional_id: &str,
    producer_id: i64,
    timeout_ms: i32,
    now_ms: i64,
) -> TxnRecord {
    TxnRecord {
        v: RECORD_FORMAT_V1,
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch: 0,
        last_producer_id: -1,
        last_producer_epoch: -1,
        timeout_ms,
        state: TxnState::Empty,
        partitions: Vec::new(),
        groups: Vec::new(),
        start_ms: -1,
        last_update_ms: now_ms,
    }
}

/// Checks the timeout a producer asks for.
pub fn check_timeout(timeout_ms: i32, max_timeout_ms: i32) -> Result<(), TxnError> {
    if timeout_ms <= 0 || timeout_ms > max_timeout_ms {
        return Err(TxnError::InvalidTransactionTimeout);
    }
    Ok(())
}

/// InitProducerId for an id that has a record. `new_producer_id` is called when the epoch is
/// exhausted (the caller allocates one).
pub fn init_producer_id(
    current: &TxnRecord,
    request: InitRequest,
    now_ms: i64,
    new_producer_id: impl FnOnce() -> i64,
) -> Result<InitOutcome, TxnError> {
    if matches!(
        current.state,
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::Dead
    ) {
        return Err(TxnError::ConcurrentTransactions);
    }
    // KIP-360: a client that names its producer id and epoch must be the current producer, or
    // the previous one retrying after a lost answer (then it gets the current epoch again).
    if request.producer_id >= 0 {
        let is_current = request.producer_id == current.producer_id
            && request.producer_epoch == current.producer_epoch;
        let is_retry = request.producer_id == current.last_producer_id
            && request.producer_epoch == current.last_producer_epoch
            && current.state != TxnState::Ongoing;
        if is_retry {
            let mut same = current.clone();
            same.timeout_ms = request.timeout_ms;
            return Ok(InitOutcome::Ready(same));
        }
        if !is_current {
            return Err(TxnError::ProducerFenced);
        }
    }
    let mut next = current.clone();
    next.timeout_ms = request.timeout_ms;
    next.last_update_ms = now_ms;
    next.last_producer_id = current.producer_id;
    next.last_producer_epoch = current.producer_epoch;
    bump_epoch(&mut next, new_producer_id);
    if current.state == TxnState::Ongoing {
        // The open transaction is aborted under the new epoch, which fences its producer.
        next.state = TxnState::PrepareAbort;
        return Ok(InitOutcome::FenceOpen(next));
    }
    next.state = TxnState::Empty;
    next.partitions.clear();
    next.groups.clear();
    next.start_ms = -1;
    Ok(InitOutcome::Ready(next))
}

fn bump_epoch(record: &mut TxnRecord, new_producer_id: impl FnOnce() -> i64) {
    if record.producer_epoch >= EPOCH_MAX {
        record.producer_id = new_producer_id();
        record.producer_epoch = 0;
    } else {
        record.producer_epoch += 1;
    }
}

/// The producer id and epoch of a request must be the id's current ones.
fn check_producer(
    current: &TxnRecord,
    producer_id: i64,
    producer_epoch: i16,
) -> Result<(), TxnError> {
    if producer_id != current.producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if producer_epoch != current.producer_epoch {
        return Err(TxnError::ProducerFenced);
    }
    Ok(())
}

/// AddPartitionsToTxn / AddOffsetsToTxn: `None` when nothing changes (everything already in
/// the open transaction), else the record to write.
pub fn add_to_txn(
    current: &TxnRecord,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TxnPartitionRecord],
    groups: &[String],
    max_partitions: usize,
    now_ms: i64,
) -> Result<Option<TxnRecord>, TxnError> {
    check_producer(current, producer_id, producer_epoch)?;
    match current.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::Dead => {
            return Err(TxnError::ConcurrentTransactions);
        }
        TxnState::Ongoing
            if partitions.iter().all(|p| current.partitions.contains(p))
                && groups.iter().all(|g| current.groups.contains(g)) =>
        {
            return Ok(None);
        }
        _ => {}
    }
    let mut next = current.clone();
    if current.state != TxnState::Ongoing {
        // A new transaction starts.
        next.partitions.clear();
        next.groups.clear();
        next.start_ms = now_ms;
        next.state = TxnState::Ongoing;
    }
    for p in partitions {
        if !next.partitions.contains(p) {
            next.partitions.push(p.clone());
        }
    }
    if next.partitions.len() > max_partitions {
        return Err(TxnError::TooManyPartitions);
    }
    for g in groups {
        if !next.groups.contains(g) {
            next.groups.push(g.clone());
        }
    }
    next.partitions.sort();
    next.groups.sort();
    next.last_update_ms = now_ms;
    Ok(Some(next))
}

/// The outcome of EndTxn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// Write this record (PrepareCommit or PrepareAbort) with its marker requests.
    Prepare(TxnRecord),
    /// The same EndTxn again after it completed: answer success, write nothing.
    AlreadyDone,
}

pub fn end_txn(
    current: &TxnRecord,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    now_ms: i64,
) -> Result<EndOutcome, TxnError> {
    // A retry of an EndTxn whose answer was lost after a fencing bump of the same producer is
    // still the same producer: Kafka compares with the current epoch only.
    check_producer(current, producer_id, producer_epoch)?;
    match (current.state, commit) {
        (TxnState::Ongoing, _) => {
            let mut next = current.clone();
            next.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            next.last_update_ms = now_ms;
            Ok(EndOutcome::Prepare(next))
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
            Ok(EndOutcome::AlreadyDone)
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(TxnError::ConcurrentTransactions)
        }
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// A transaction open past its timeout: the coordinator aborts it under a bumped epoch, so
/// its producer is fenced (Kafka's `abortTimedOutTransactions`). `None` if it is not due.
pub fn timed_out(
    current: &TxnRecord,
    now_ms: i64,
    new_producer_id: impl FnOnce() -> i64,
) -> Option<TxnRecord> {
    if current.state != TxnState::Ongoing
        || now_ms
            < current
                .start_ms
                .saturating_add(i64::from(current.timeout_ms))
    {
        return None;
    }
    let mut next = current.clone();
    next.last_producer_id = current.producer_id;
    next.last_producer_epoch = current.producer_epoch;
    bump_epoch(&mut next, new_producer_id);
    next.state = TxnState::PrepareAbort;
    next.last_update_ms = now_ms;
    Some(next)
}

/// After every marker of a Prepare* transaction is written.
pub fn complete(current: &TxnRecord, now_ms: i64) -> Option<TxnRecord> {
    let state = match current.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return None,
    };
    let mut next = current.clone();
    next.state = state;
    next.last_update_ms = now_ms;
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(p: i32) -> TxnPartitionRecord {
        TxnPartitionRecord {
            topic: "t".into(),
            topic_id: uuid::Uuid::nil(),
            partition: p,
        }
    }

    fn init(
        record: &TxnRecord,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<InitOutcome, TxnError> {
        init_producer_id(
            record,
            InitRequest {
                timeout_ms: 60_000,
                producer_id,
                producer_epoch,
            },
            10,
            || 99,
        )
    }

    #[test]
    fn a_transaction_goes_through_its_states() {
        let record = new_record("tx", 7, 60_000, 0);
        let InitOutcome::Ready(record) = init(&record, -1, -1).unwrap() else {
            panic!("ready")
        };
        assert_eq!((record.producer_id, record.producer_epoch), (7, 1));
        assert_eq!(record.state, TxnState::Empty);
        assert_eq!(
            end_txn(&record, 7, 1, true, 20),
            Err(TxnError::InvalidTxnState),
            "no transaction to end"
        );
        let ongoing = add_to_txn(&record, 7, 1, &[partition(0)], &[], 10, 20)
            .unwrap()
            .unwrap();
        assert_eq!(ongoing.state, TxnState::Ongoing);
        assert_eq!(ongoing.start_ms, 20);
        assert_eq!(
            add_to_txn(&ongoing, 7, 1, &[partition(0)], &[], 10, 21).unwrap(),
            None,
            "nothing new"
        );
        let more = add_to_txn(&ongoing, 7, 1, &[partition(1)], &["g".into()], 10, 22)
            .unwrap()
            .unwrap();
        assert_eq!(more.partitions, vec![partition(0), partition(1)]);
        assert_eq!(more.start_ms, 20, "the same transaction");
        let EndOutcome::Prepare(prepared) = end_txn(&more, 7, 1, true, 30).unwrap() else {
            panic!("prepare")
        };
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert_eq!(
            end_txn(&prepared, 7, 1, true, 31),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            end_txn(&prepared, 7, 1, false, 31),
            Err(TxnError::InvalidTxnState)
        );
        assert_eq!(
            add_to_txn(&prepared, 7, 1, &[partition(2)], &[], 10, 31),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(init(&prepared, 7, 1), Err(TxnError::ConcurrentTransactions));
        let done = complete(&prepared, 40).unwrap();
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert_eq!(end_txn(&done, 7, 1, true, 41), Ok(EndOutcome::AlreadyDone));
        assert_eq!(
            end_txn(&done, 7, 1, false, 41),
            Err(TxnError::InvalidTxnState)
        );
        // The next transaction starts afresh.
        let next = add_to_txn(&done, 7, 1, &[partition(5)], &[], 10, 50)
            .unwrap()
            .unwrap();
        assert_eq!(next.partitions, vec![partition(5)]);
        assert!(next.groups.is_empty());
        assert_eq!(next.start_ms, 50);
    }

    #[test]
    fn a_new_instance_fences_the_old_one() {
        let record = new_record("tx", 7, 60_000, 0);
        let ongoing = add_to_txn(&record, 7, 0, &[partition(0)], &[], 10, 1)
            .unwrap()
            .unwrap();
        // A second instance starts: the open transaction is aborted under epoch 1.
        let InitOutcome::FenceOpen(fenced) = init(&ongoing, -1, -1).unwrap() else {
            panic!("fence")
        };
        assert_eq!(fenced.state, TxnState::PrepareAbort);
        assert_eq!(fenced.producer_epoch, 1);
        assert_eq!(
            add_to_txn(&fenced, 7, 0, &[partition(0)], &[], 10, 2),
            Err(TxnError::ProducerFenced),
            "the old instance at once"
        );
        assert_eq!(
            add_to_txn(&fenced, 7, 1, &[partition(0)], &[], 10, 2),
            Err(TxnError::ConcurrentTransactions),
            "the new one once the abort completed"
        );
        let aborted = complete(&fenced, 3).unwrap();
        // The old instance is fenced; a wrong id is not this transactional id's.
        assert_eq!(
            add_to_txn(&aborted, 7, 0, &[partition(0)], &[], 10, 4),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            end_txn(&aborted, 7, 0, true, 4),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            end_txn(&aborted, 8, 1, true, 4),
            Err(TxnError::InvalidProducerIdMapping)
        );
        // The new instance retries InitProducerId and gets epoch 2.
        let InitOutcome::Ready(ready) = init(&aborted, -1, -1).unwrap() else {
            panic!("ready")
        };
        assert_eq!(ready.producer_epoch, 2);
        // KIP-360: the old epoch is fenced, the current one bumps, a lost answer's retry
        // (the previous epoch) gets the same epoch again.
        assert_eq!(init(&ready, 7, 0), Err(TxnError::ProducerFenced));
        let InitOutcome::Ready(retried) = init(&ready, 7, 1).unwrap() else {
            panic!("retry")
        };
        assert_eq!(retried.producer_epoch, 2);
        let InitOutcome::Ready(bumped) = init(&ready, 7, 2).unwrap() else {
            panic!("bump")
        };
        assert_eq!(bumped.producer_epoch, 3);
    }

    #[test]
    fn timeouts_limits_and_epoch_exhaustion() {
        assert_eq!(
            check_timeout(0, 900_000),
            Err(TxnError::InvalidTransactionTimeout)
        );
        assert_eq!(
            check_timeout(900_001, 900_000),
            Err(TxnError::InvalidTransactionTimeout)
        );
        assert_eq!(check_timeout(60_000, 900_000), Ok(()));
        let record = new_record("tx", 7, 1_000, 0);
        let ongoing = add_to_txn(&record, 7, 0, &[partition(0)], &[], 10, 100)
            .unwrap()
            .unwrap();
        assert_eq!(timed_out(&ongoing, 1_099, || 99), None);
        let aborting = timed_out(&ongoing, 1_100, || 99).unwrap();
        assert_eq!(aborting.state, TxnState::PrepareAbort);
        assert_eq!(
            aborting.producer_epoch, 1,
            "the timed-out producer is fenced"
        );
        assert_eq!(
            add_to_txn(&record, 7, 0, &[partition(0), partition(1)], &[], 1, 100),
            Err(TxnError::TooManyPartitions)
        );
        let mut old = record.clone();
        old.producer_epoch = EPOCH_MAX;
        let InitOutcome::Ready(fresh) = init(&old, -1, -1).unwrap() else {
            panic!("ready")
        };
        assert_eq!((fresh.producer_id, fresh.producer_epoch), (99, 0));
    }
}
