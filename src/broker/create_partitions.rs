//! CreatePartitions: grows a topic to a larger partition count (never shrinks it:
//! INVALID_PARTITIONS); honours `validate_only`. The new partitions are led through the
//! same rendezvous ownership as the others: the broker that should own one takes it at
//! once (this one directly, the others when they see the topic record change).
//!
//! Replica assignments mean nothing here (every broker reads the same object store), so a
//! given assignment is only checked for having one entry per new partition.
//!
//! Each topic needs ALTER (TOPIC_AUTHORIZATION_FAILED).

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerCtx, error};
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: CreatePartitionsRequest,
    session: &Session,
) -> CreatePartitionsResponse {
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.as_str()))
        .map(|t| t.name.to_string())
        .collect();
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.to_string();
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let fail = |code: ResponseError, message: String| {
            result
                .clone()
                .with_error_code(error::code(code))
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        if duplicates.contains(&name) {
            results.push(fail(
                ResponseError::InvalidRequest,
                format!("topic {name:?} appears more than once in the request"),
            ));
            continue;
        }
        if !ctx
            .authorizer
            .allows(session, AclOperation::Alter, ResourceType::Topic, &name)
        {
            results.push(fail(
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            ));
            continue;
        }
        if let Some(assignments) = &topic.assignments {
            let current = ctx.topics.get(&name).map_or(0, |t| t.partitions.len());
            let added = usize::try_from(topic.count)
                .unwrap_or(0)
                .saturating_sub(current);
            if assignments.len() != added {
                results.push(fail(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "{} assignments for {added} new partitions",
                        assignments.len()
                    ),
                ));
                continue;
            }
        }
        match ctx
            .topics
            .add_partitions(&name, topic.count, req.validate_only)
            .await
        {
            Ok(_) => results.push(result),
            Err(err) => {
                if let crate::log::topics::TopicError::Metadata(err) = &err {
                    tracing::warn!(topic = %name, "failed to add partitions: {err:#}");
                }
                results.push(
                    result
                        .with_error_code(error::from_topic(&err))
                        .with_error_message(Some(StrBytes::from_string(err.to_string()))),
                );
            }
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
