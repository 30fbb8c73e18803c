//! TxnOffsetCommit: offsets committed inside a transaction (a consume-transform-produce
//! loop's `sendOffsetsToTransaction`). The group's coordinator checks the member as for
//! OffsetCommit (KIP-447: generation and member id, so a zombie member is fenced) and the
//! producer against the transaction's record, then stores the offsets as pending
//! (`groups/<g>/txn-offsets/<producer id>/...`); the transaction coordinator makes them the
//! group's committed offsets when the transaction commits, or drops them on abort.
//!
//! Authorization, as Kafka's: WRITE on the transactional id, READ on the group, READ on
//! each topic.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use strato_metadata::model::{CommittedOffsetRecord, RECORD_FORMAT_V1, TxnRecord, TxnState};
use strato_metadata::{Txn, keys};
use tokio::time::Instant;

use super::super::{BrokerCtx, error};
use crate::group::offsets::now_ms;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

/// Offsets written per metadata transaction (etcd allows 128 operations).
const OFFSETS_PER_TXN: usize = 100;

/// Checks the producer against the transaction's record: its current producer, with the
/// group added to its open transaction (AddOffsetsToTxn comes first).
async fn check_producer(
    ctx: &BrokerCtx,
    transactional_id: &str,
    group_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    version: i16,
) -> i16 {
    let key = keys::txn(transactional_id);
    let record = match ctx.meta.get(&key).await {
        Ok(Some(v)) => match TxnRecord::decode(&key, &v.value) {
            Ok(record) => record,
            Err(err) => return error::from_group_store(&err),
        },
        Ok(None) => return error::code(ResponseError::InvalidProducerIdMapping),
        Err(err) => return error::from_group_store(&err),
    };
    if record.producer_id != producer_id {
        return error::code(ResponseError::InvalidProducerIdMapping);
    }
    if record.producer_epoch != producer_epoch {
        // KIP-588: PRODUCER_FENCED from v3 on.
        return error::code(if version >= 3 {
            ResponseError::ProducerFenced
        } else {
            ResponseError::InvalidProducerEpoch
        });
    }
    if record.state != TxnState::Ongoing || !record.groups.iter().any(|g| g == group_id) {
        return error::code(ResponseError::InvalidTxnState);
    }
    error::NONE
}

pub(in crate::broker) async fn commit(
    ctx: &Arc<BrokerCtx>,
    req: TxnOffsetCommitRequest,
    version: i16,
    session: &Session,
) -> TxnOffsetCommitResponse {
    let group_id = req.group_id.as_str().to_string();
    let transactional_id = req.transactional_id.as_str();
    let answer = |code_of: &dyn Fn(&str) -> i16| -> TxnOffsetCommitResponse {
        TxnOffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    let code = code_of(t.name.as_str());
                    TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    };
    let all = |code: i16| answer(&|_| code);
    let authorizer = &ctx.authorizer;
    if !authorizer.allows(
        session,
        AclOperation::Write,
        ResourceType::TransactionalId,
        transactional_id,
    ) {
        return all(error::code(
            ResponseError::TransactionalIdAuthorizationFailed,
        ));
    }
    if !authorizer.allows(session, AclOperation::Read, ResourceType::Group, &group_id) {
        return all(error::code(ResponseError::GroupAuthorizationFailed));
    }
    if !ctx.groups.owns(&group_id) {
        return all(error::code(ResponseError::NotCoordinator));
    }
    // KIP-447: a member that is no longer the group's (older generation, unknown member id)
    // is fenced. Producers that send no member (-1 / "") skip the check, as in Kafka.
    if version >= 3 && !req.member_id.is_empty() {
        let instance_id = req.group_instance_id.as_ref().map(|s| s.as_str());
        let code = ctx.groups.with_group(&group_id, |g| {
            g.validate_commit(
                req.member_id.as_str(),
                instance_id,
                req.generation_id,
                Instant::now(),
            )
        });
        if code != error::NONE {
            return all(code);
        }
    }
    let producer_id = req.producer_id.0;
    let code = check_producer(
        ctx,
        transactional_id,
        &group_id,
        producer_id,
        req.producer_epoch,
        version,
    )
    .await;
    if code != error::NONE {
        return all(code);
    }
    let unreadable =
        |topic: &str| !authorizer.allows(session, AclOperation::Read, ResourceType::Topic, topic);
    let commit_ms = now_ms();
    let mut writes = Vec::new();
    for topic in &req.topics {
        if unreadable(topic.name.as_str()) {
            continue;
        }
        for p in &topic.partitions {
            let record = CommittedOffsetRecord {
                v: RECORD_FORMAT_V1,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                commit_timestamp_ms: commit_ms,
            };
            writes.push((
                keys::group_txn_offset(
                    &group_id,
                    producer_id,
                    topic.name.as_str(),
                    p.partition_index,
                ),
                record.encode(),
            ));
        }
    }
    if let Err(err) = ctx.groups.remember_group(&group_id, None).await {
        tracing::warn!(group = %group_id, "failed to record the group: {err:#}");
        return all(error::from_group_store(&err));
    }
    for chunk in writes.chunks(OFFSETS_PER_TXN) {
        let txn = chunk.iter().fold(Txn::new(), |txn, (key, value)| {
            txn.put(key.clone(), value.clone())
        });
        if let Err(err) = ctx.meta.txn(txn).await {
            tracing::warn!(group = %group_id, "failed to store transactional offsets: {err:#}");
            return all(error::from_group_store(&err));
        }
    }
    let denied = error::code(ResponseError::TopicAuthorizationFailed);
    answer(&|topic| {
        if unreadable(topic) {
            denied
        } else {
            error::NONE
        }
    })
}

/// Whether `group_id` has offsets committed in transactions that have not ended (OffsetFetch
/// with `require_stable` answers UNSTABLE_OFFSET_COMMIT for their partitions).
pub(in crate::broker) async fn pending_partitions(
    ctx: &BrokerCtx,
    group_id: &str,
) -> Result<std::collections::BTreeSet<(String, i32)>, strato_metadata::MetadataError> {
    let prefix = keys::group_txn_offsets_prefix(group_id);
    let mut pending = std::collections::BTreeSet::new();
    ctx.meta
        .for_each(&prefix, None, &mut |key, _| {
            // <producer id>/<topic>/<p>
            if let Some((topic, partition)) = key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(_, rest)| rest.rsplit_once('/'))
                && let Ok(partition) = partition.parse()
            {
                pending.insert((topic.to_string(), partition));
            }
            Ok(())
        })
        .await?;
    Ok(pending)
}
