//! What the console may change with `--console-write true`: create a topic, delete a topic,
//! reset a group's committed offsets (to the earliest or latest offsets, an offset, or a
//! time). The same checks as the Kafka APIs that do it (CreateTopics, DeleteTopics,
//! OffsetCommit by an admin tool): the user's ACLs, config validation, and offsets reset
//! only for a group with no active member, by its coordinator.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use strato_metadata::model::{CommittedOffsetRecord, RECORD_FORMAT_V1};

use super::api::{ApiError, ApiResult, Viewer, partition_info};
use crate::log::topics::TopicError;
use crate::security::acl::{AclOperation, CLUSTER_RESOURCE_NAME, ResourceType};

/// Largest request body read.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// `POST /api/v1/topics`: `{"name", "partitions" (default: the broker's), "configs": {}}`.
pub async fn create_topic(
    viewer: &Viewer<'_>,
    name: &str,
    partitions: Option<i32>,
    configs: BTreeMap<String, String>,
) -> ApiResult {
    let ctx = viewer.ctx;
    let allowed = ctx.authorizer.allows_quietly(
        viewer.session(),
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_RESOURCE_NAME,
    ) || viewer
        .check(
            AclOperation::Create,
            ResourceType::Topic,
            name,
            &format!("topic {name}"),
        )
        .is_ok();
    if !allowed {
        return Err(ApiError::forbidden(format!(
            "User {} may not create topic {name}",
            viewer.session().principal
        )));
    }
    crate::topic_config::validate(&configs).map_err(ApiError::bad_request)?;
    let partitions = partitions.unwrap_or(ctx.config.default_partitions);
    match ctx.topics.create(name, partitions, configs, false).await {
        Ok(topic) => Ok(json!({
            "created": topic.name,
            "topic_id": topic.topic_id.to_string(),
            "partitions": topic.partitions.len(),
        })),
        Err(TopicError::AlreadyExists(_)) => Err(ApiError {
            status: 409,
            message: format!("topic {name:?} already exists"),
        }),
        Err(err @ (TopicError::InvalidName(_) | TopicError::InvalidPartitions(_))) => {
            Err(ApiError::bad_request(err.to_string()))
        }
        Err(err) => Err(ApiError {
            status: 503,
            message: err.to_string(),
        }),
    }
}

/// `DELETE /api/v1/topics/{name}`: the topic and its groups' committed offsets.
pub async fn delete_topic(viewer: &Viewer<'_>, name: &str) -> ApiResult {
    let ctx = viewer.ctx;
    viewer.check(
        AclOperation::Delete,
        ResourceType::Topic,
        name,
        &format!("topic {name}"),
    )?;
    match ctx.topics.delete(name).await {
        Ok(true) => {
            if let Err(err) = ctx.groups.offsets().delete_topic_offsets(name).await {
                tracing::error!(topic = %name, "failed to delete committed offsets of a deleted topic: {err:#}");
            }
            tracing::info!(topic = %name, principal = %viewer.session().principal, "topic deleted from the console");
            Ok(json!({ "deleted": name }))
        }
        Ok(false) => Err(ApiError::not_found(format!("no topic {name:?}"))),
        Err(err) => Err(ApiError {
            status: 503,
            message: err.to_string(),
        }),
    }
}

/// Where a reset moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

impl ResetTo {
    /// `earliest`, `latest`, `offset` with a value, `timestamp` with a value (ms).
    pub fn parse(to: &str, value: Option<i64>) -> Result<Self, ApiError> {
        match (to, value) {
            ("earliest", _) => Ok(Self::Earliest),
            ("latest", _) => Ok(Self::Latest),
            ("offset", Some(v)) => Ok(Self::Offset(v)),
            ("timestamp", Some(v)) => Ok(Self::Timestamp(v)),
            ("offset" | "timestamp", None) => {
                Err(ApiError::bad_request(format!("{to} needs a value")))
            }
            _ => Err(ApiError::bad_request(format!(
                "to={to:?}: expected earliest, latest, offset or timestamp"
            ))),
        }
    }
}

/// `POST /api/v1/groups/{id}/reset-offsets`: `{"topic", "to", "value"}`; every partition of
/// the topic gets the offset `to` names (clamped to the partition's range).
pub async fn reset_offsets(
    viewer: &Viewer<'_>,
    group: &str,
    topic: &str,
    to: ResetTo,
) -> ApiResult {
    let ctx = viewer.ctx;
    viewer.check(
        AclOperation::Read,
        ResourceType::Group,
        group,
        &format!("group {group}"),
    )?;
    viewer.check(
        AclOperation::Read,
        ResourceType::Topic,
        topic,
        &format!("topic {topic}"),
    )?;
    let coordinator = ctx.cluster.group_owner(group);
    if coordinator != ctx.broker_id {
        return Err(ApiError {
            status: 409,
            message: format!(
                "broker {coordinator} coordinates group {group:?}: reset its offsets there \
                 (this broker cannot tell whether the group has active members)"
            ),
        });
    }
    if ctx
        .groups
        .summary(group)
        .is_some_and(|s| !s.members.is_empty())
    {
        return Err(ApiError {
            status: 409,
            message: format!(
                "group {group:?} has active members: offsets can only be reset while the group \
                 is inactive (stop its consumers first)"
            ),
        });
    }
    let Some(t) = ctx.topics.get(topic) else {
        return Err(ApiError::not_found(format!("no topic {topic:?}")));
    };
    let mut offsets = Vec::new();
    let mut shown = Vec::new();
    for p in 0..t.partitions.len() as i32 {
        let info = partition_info(ctx, &t, p).await?;
        let offset = match to {
            ResetTo::Earliest => info.log_start_offset,
            ResetTo::Latest => info.end_offset,
            ResetTo::Offset(o) => o.clamp(info.log_start_offset, info.end_offset),
            ResetTo::Timestamp(ts) => {
                let messages =
                    super::api::messages(viewer, topic, p, super::api::Start::Timestamp(ts), 1)
                        .await?;
                messages["messages"][0]["offset"]
                    .as_i64()
                    .unwrap_or(info.end_offset)
            }
        };
        offsets.push((
            (topic.to_string(), p),
            CommittedOffsetRecord {
                v: RECORD_FORMAT_V1,
                offset,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp_ms: crate::log::flush::now_ms(),
            },
        ));
        shown.push(json!({ "partition": p, "offset": offset }));
    }
    ctx.groups
        .offsets()
        .ensure_group_marker(group, None)
        .await?;
    for result in ctx.groups.offsets().commit(group, offsets).await {
        if let Err(err) = result {
            return Err(ApiError {
                status: 503,
                message: strato_tiering::error_chain(err.as_ref()),
            });
        }
    }
    tracing::info!(%group, %topic, ?to, principal = %viewer.session().principal, "group offsets reset from the console");
    Ok(json!({ "group_id": group, "topic": topic, "offsets": shown }))
}

/// A JSON body as an object.
pub fn json_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(err) => Err(ApiError::bad_request(format!(
            "the body is not JSON: {err}"
        ))),
    }
}
