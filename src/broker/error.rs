//! The one place where internal errors become Kafka error codes.

use kafka_protocol::ResponseError;
use strato_metadata::MetadataError;

use crate::log::flush::FlushFailure;
use crate::log::producer::TxnVerifyError;
use crate::log::topics::TopicError;
use crate::security::acl_store::AclStoreError;

pub fn code(err: ResponseError) -> i16 {
    err.code()
}

pub const NONE: i16 = 0;

pub fn from_flush(failure: FlushFailure) -> i16 {
    match failure {
        // The client retries all of these; with idempotence the retry is deduplicated.
        FlushFailure::Upload | FlushFailure::Commit => ResponseError::KafkaStorageError.code(),
        FlushFailure::Fenced | FlushFailure::ShuttingDown => {
            ResponseError::NotLeaderOrFollower.code()
        }
        FlushFailure::Rewound => ResponseError::NotLeaderOrFollower.code(),
        FlushFailure::Busy => ResponseError::RequestTimedOut.code(),
    }
}

/// A transactional batch that may not open a transaction in its partition, answered as
/// Kafka's produce path answers its coordinator's verification (`ReplicaManager`): a
/// completing transaction is NOT_ENOUGH_REPLICAS, which producers retry.
pub fn from_txn_verification(err: TxnVerifyError) -> i16 {
    match err {
        TxnVerifyError::UnknownProducerId => ResponseError::InvalidProducerIdMapping.code(),
        TxnVerifyError::ProducerFenced => ResponseError::ProducerFenced.code(),
        TxnVerifyError::Completing => ResponseError::NotEnoughReplicas.code(),
        TxnVerifyError::NotInTransaction => ResponseError::InvalidTxnState.code(),
    }
}

pub fn from_metadata(err: &MetadataError) -> i16 {
    match err {
        MetadataError::Timeout { .. } => ResponseError::RequestTimedOut.code(),
        MetadataError::Conflict { .. } => ResponseError::NotLeaderOrFollower.code(),
        _ => ResponseError::KafkaStorageError.code(),
    }
}

pub fn from_topic(err: &TopicError) -> i16 {
    match err {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException.code(),
        TopicError::InvalidPartitions(_) | TopicError::PartitionsNotIncreased { .. } => {
            ResponseError::InvalidPartitions.code()
        }
        TopicError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition.code(),
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
        TopicError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
        // Retriable: the next attempt reads the record again.
        TopicError::Contended(_) => ResponseError::RequestTimedOut.code(),
        TopicError::Metadata(err) => from_metadata(err),
    }
}

/// Errors of the group offset store. Kafka answers storage trouble of its offsets topic with
/// COORDINATOR_NOT_AVAILABLE, which every client retries after looking up the coordinator.
pub fn from_group_store(err: &MetadataError) -> i16 {
    match err {
        MetadataError::Timeout { .. }
        | MetadataError::Unavailable { .. }
        | MetadataError::Conflict { .. }
        | MetadataError::LeaseNotFound(_) => ResponseError::CoordinatorNotAvailable.code(),
        MetadataError::Corrupt { .. } | MetadataError::Invalid { .. } => {
            ResponseError::UnknownServerError.code()
        }
    }
}

/// Errors of creating or deleting ACL bindings.
pub fn from_acl_store(err: &AclStoreError) -> i16 {
    match err {
        AclStoreError::Invalid(_) => ResponseError::InvalidRequest.code(),
        // Not retriable: only deleting bindings makes room.
        AclStoreError::TooMany { .. } => ResponseError::PolicyViolation.code(),
        AclStoreError::Metadata(err) => match err.as_ref() {
            MetadataError::Timeout { .. } | MetadataError::Unavailable { .. } => {
                ResponseError::RequestTimedOut.code()
            }
            _ => ResponseError::UnknownServerError.code(),
        },
    }
}

/// Errors of the transaction coordinator (`crate::txn`), as Kafka's coordinator answers.
pub fn from_coordinator(err: &crate::txn::CoordinatorError) -> i16 {
    use crate::txn::CoordinatorError;
    use crate::txn::state::TxnError;
    match err {
        CoordinatorError::Txn(TxnError::ConcurrentTransactions) => {
            ResponseError::ConcurrentTransactions.code()
        }
        CoordinatorError::Txn(TxnError::ProducerFenced) => ResponseError::ProducerFenced.code(),
        CoordinatorError::Txn(TxnError::InvalidProducerIdMapping) => {
            ResponseError::InvalidProducerIdMapping.code()
        }
        CoordinatorError::Txn(TxnError::InvalidTxnState) => ResponseError::InvalidTxnState.code(),
        CoordinatorError::Txn(TxnError::InvalidTransactionTimeout) => {
            ResponseError::InvalidTransactionTimeout.code()
        }
        // No Kafka error says "too many partitions"; the client can abort and retry smaller.
        CoordinatorError::Txn(TxnError::TooManyPartitions) => {
            ResponseError::TransactionAbortable.code()
        }
        CoordinatorError::NotCoordinator => ResponseError::NotCoordinator.code(),
        // Retriable: the client looks the coordinator up again and retries.
        CoordinatorError::TooManyOpen => ResponseError::CoordinatorNotAvailable.code(),
        CoordinatorError::UnknownId => ResponseError::TransactionalIdNotFound.code(),
        CoordinatorError::Store(err) => from_group_store(err),
    }
}
