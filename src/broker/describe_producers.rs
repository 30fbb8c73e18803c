//! DescribeProducers (KIP-664): the idempotent and transactional producers of partitions
//! this broker leads, as committed with the partition state (ids, epochs, last sequence, last
//! write time, the first offset of an open transaction). The coordinator epoch is not kept
//! per producer (markers are requested through the metadata store), so it is -1. Partitions led
//! elsewhere get NOT_LEADER_OR_FOLLOWER, unknown ones UNKNOWN_TOPIC_OR_PARTITION. Each
//! topic needs READ (TOPIC_AUTHORIZATION_FAILED per partition), as in Kafka.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::{BrokerCtx, error};
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

/// `coordinator_epoch` (not kept), and `current_txn_start_offset` of a producer without an
/// open transaction.
const NO_COORDINATOR_EPOCH: i32 = -1;
const NO_TXN_START_OFFSET: i64 = -1;

pub(super) fn handle(
    ctx: &Arc<BrokerCtx>,
    req: DescribeProducersRequest,
    session: &Session,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|requested| {
            let topic = ctx.topics.get(requested.name.as_str());
            let allowed = ctx.authorizer.allows(
                session,
                AclOperation::Read,
                ResourceType::Topic,
                requested.name.as_str(),
            );
            let partitions = requested
                .partition_indexes
                .iter()
                .map(|&index| {
                    let response = PartitionResponse::default().with_partition_index(index);
                    if !allowed {
                        return response
                            .with_error_code(error::code(ResponseError::TopicAuthorizationFailed));
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(index)) else {
                        return response
                            .with_error_code(error::code(ResponseError::UnknownTopicOrPartition));
                    };
                    let state = partition.lock();
                    if state.fenced || state.needs_reload {
                        return response
                            .with_error_code(error::code(ResponseError::NotLeaderOrFollower));
                    }
                    let producers = state
                        .committed_producers
                        .to_records()
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.producer_epoch))
                                .with_last_sequence(
                                    p.batches.last().map_or(-1, |b| b.last_sequence),
                                )
                                .with_last_timestamp(p.last_write_ms)
                                .with_coordinator_epoch(NO_COORDINATOR_EPOCH)
                                .with_current_txn_start_offset(
                                    p.txn_first_offset.unwrap_or(NO_TXN_START_OFFSET),
                                )
                        })
                        .collect();
                    response.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(requested.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
