//! DeleteRecords: moves partitions' log start offsets forward (the records below become
//! unreadable at once; their index entries go now, their objects with garbage collection).
//! Each topic needs DELETE (TOPIC_AUTHORIZATION_FAILED per partition).

use std::sync::Arc;

use futures::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};

use super::{BrokerCtx, Reply, error};
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

/// `offset` -1 in a request means "up to the high watermark" (Kafka's
/// `DeleteRecordsRequest.HIGH_WATERMARK`).
const TO_HIGH_WATERMARK: i64 = -1;

pub(super) fn handle(ctx: &Arc<BrokerCtx>, req: DeleteRecordsRequest, session: &Session) -> Reply {
    // Decided at admission: the session stays with the connection.
    let allowed: Vec<bool> = req
        .topics
        .iter()
        .map(|t| {
            ctx.authorizer.allows(
                session,
                AclOperation::Delete,
                ResourceType::Topic,
                t.name.as_str(),
            )
        })
        .collect();
    let ctx = ctx.clone();
    Reply::Later(
        async move {
            let mut topics = Vec::with_capacity(req.topics.len());
            for (t, allowed) in req.topics.into_iter().zip(allowed) {
                let topic = ctx.topics.get(t.name.as_str());
                let mut partitions = Vec::with_capacity(t.partitions.len());
                for p in t.partitions {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if !allowed {
                        partitions.push(
                            result.with_error_code(error::code(
                                ResponseError::TopicAuthorizationFailed,
                            )),
                        );
                        continue;
                    }
                    let partition = topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition_index));
                    let Some(partition) = partition else {
                        partitions.push(
                            result.with_error_code(error::code(
                                ResponseError::UnknownTopicOrPartition,
                            )),
                        );
                        continue;
                    };
                    if !partition.is_led() {
                        partitions.push(
                            result.with_error_code(error::code(ResponseError::NotLeaderOrFollower)),
                        );
                        continue;
                    }
                    let high_watermark = partition.high_watermark();
                    let target = match p.offset {
                        TO_HIGH_WATERMARK => high_watermark,
                        offset if (0..=high_watermark).contains(&offset) => offset,
                        _ => {
                            partitions.push(
                                result
                                    .with_error_code(error::code(ResponseError::OffsetOutOfRange)),
                            );
                            continue;
                        }
                    };
                    partitions.push(match ctx.log.trim(partition, target).await {
                        Ok(low_watermark) => result
                            .with_error_code(error::NONE)
                            .with_low_watermark(low_watermark),
                        Err(failure) => result.with_error_code(error::from_flush(failure)),
                    });
                }
                topics.push(
                    DeleteRecordsTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions),
                );
            }
            Some(ResponseKind::DeleteRecords(
                DeleteRecordsResponse::default().with_topics(topics),
            ))
        }
        .boxed(),
    )
}
