//! DeleteTopics: the topic's metadata and the groups' committed offsets of it go at once
//! (clients see UNKNOWN_TOPIC_OR_PARTITION, the name can be reused), its objects with
//! garbage collection. Each topic needs DELETE (TOPIC_AUTHORIZATION_FAILED); one named by id
//! that the client may not describe answers UNKNOWN_TOPIC_ID, as Kafka does.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{BrokerCtx, error};
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: DeleteTopicsRequest,
    version: i16,
    session: &Session,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id; older versions by name.
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    let authorizer = &ctx.authorizer;
    for (name, topic_id) in wanted {
        let by_id = name.is_none();
        let name = name
            .or_else(|| ctx.topics.get_by_id(topic_id).map(|t| t.name.clone()))
            .filter(|name| {
                !by_id
                    || authorizer.allows_quietly(
                        session,
                        AclOperation::Describe,
                        ResourceType::Topic,
                        name,
                    )
            });
        let result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(topic_id);
        let Some(name) = name else {
            responses.push(result.with_error_code(error::code(ResponseError::UnknownTopicId)));
            continue;
        };
        if !authorizer.allows(session, AclOperation::Delete, ResourceType::Topic, &name) {
            responses
                .push(result.with_error_code(error::code(ResponseError::TopicAuthorizationFailed)));
            continue;
        }
        let code = match ctx.topics.delete(&name).await {
            Ok(true) => {
                // Committed offsets of the topic go with it (a failure here leaves them for
                // a topic of the same name created later, so it is logged loudly).
                match ctx.groups.offsets().delete_topic_offsets(&name).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(topic = %name, deleted, "deleted committed offsets of a deleted topic");
                    }
                    Err(err) => {
                        tracing::error!(topic = %name, "failed to delete committed offsets of a deleted topic: {err:#}");
                    }
                }
                error::NONE
            }
            Ok(false) => error::code(ResponseError::UnknownTopicOrPartition),
            Err(err) => {
                tracing::warn!(topic = %name, "failed to delete topic: {err:#}");
                error::from_metadata(&err)
            }
        };
        responses.push(result.with_error_code(code));
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
