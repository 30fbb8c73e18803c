//! OffsetForLeaderEpoch: where a leader epoch ended, so that a client that saw a leader
//! change can tell whether its position is still in the log (KIP-101/KIP-320 truncation
//! detection). Answered from the epoch history committed with the partition state. Each
//! topic needs DESCRIBE (TOPIC_AUTHORIZATION_FAILED per partition).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::BrokerCtx;
use super::error;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

pub(super) fn handle(
    ctx: &Arc<BrokerCtx>,
    req: OffsetForLeaderEpochRequest,
    session: &Session,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.topics.get(t.topic.as_str());
            let allowed = ctx.authorizer.allows(
                session,
                AclOperation::Describe,
                ResourceType::Topic,
                t.topic.as_str(),
            );
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !allowed {
                        return base
                            .with_error_code(error::code(ResponseError::TopicAuthorizationFailed));
                    }
                    let partition = topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition));
                    let Some(partition) = partition else {
                        return base
                            .with_error_code(error::code(ResponseError::UnknownTopicOrPartition));
                    };
                    let state = partition.lock();
                    if state.fenced {
                        return base
                            .with_error_code(error::code(ResponseError::NotLeaderOrFollower));
                    }
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch != state.leader_epoch {
                        let code = if p.current_leader_epoch < state.leader_epoch {
                            ResponseError::FencedLeaderEpoch
                        } else {
                            ResponseError::UnknownLeaderEpoch
                        };
                        return base.with_error_code(error::code(code));
                    }
                    let (epoch, end_offset) = state.epoch_end_offset(p.leader_epoch);
                    base.with_leader_epoch(epoch).with_end_offset(end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
