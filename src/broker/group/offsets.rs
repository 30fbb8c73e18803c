//! OffsetCommit, OffsetFetch and OffsetDelete: committed offsets live in the metadata store;
//! the group's in-memory state only decides whether a member may commit.
//!
//! Authorization, as Kafka's: OffsetCommit needs READ on the group, then READ on each topic;
//! OffsetFetch DESCRIBE on the group, then DESCRIBE on each topic (asked partitions answer
//! TOPIC_AUTHORIZATION_FAILED, "all offsets" leaves the topic out); OffsetDelete DELETE on the
//! group and READ on each topic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Buf;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::Decodable;
use strato_metadata::model::{CommittedOffsetRecord, RECORD_FORMAT_V1};
use tokio::time::Instant;

use super::super::{BrokerCtx, error};
use super::text;
use crate::group::offsets::{TopicPartitionName, now_ms};
use crate::group::state::GroupState;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

/// Kafka `offset.metadata.max.bytes`: the longest metadata string stored with an offset.
const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// Whether `topic` exists with a partition `partition`.
async fn partition_exists(ctx: &BrokerCtx, topic: &str, partition: i32) -> bool {
    match ctx.topics.lookup(topic).await {
        Ok(Some(t)) => t.partition(partition).is_some(),
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(%topic, "failed to look up topic: {err:#}");
            false
        }
    }
}

pub(in crate::broker) async fn commit(
    ctx: &Arc<BrokerCtx>,
    req: OffsetCommitRequest,
    session: &Session,
) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let respond_all = |code: i16| -> OffsetCommitResponse {
        OffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    };
    let authorizer = &ctx.authorizer;
    if !authorizer.allows(session, AclOperation::Read, ResourceType::Group, &group_id) {
        return respond_all(error::code(ResponseError::GroupAuthorizationFailed));
    }
    if group_id.is_empty() {
        return respond_all(error::code(ResponseError::InvalidGroupId));
    }
    if !ctx.groups.owns(&group_id) {
        return respond_all(error::code(ResponseError::NotCoordinator));
    }
    let instance_id = req.group_instance_id.as_ref().map(|s| s.as_str());
    let (code, protocol_type) = ctx.groups.with_group(&group_id, |g| {
        let code = g.validate_commit(
            req.member_id.as_str(),
            instance_id,
            req.generation_id_or_member_epoch,
            Instant::now(),
        );
        (code, g.protocol_type().map(str::to_string))
    });
    if code != error::NONE {
        return respond_all(code);
    }
    if let Err(err) = ctx
        .groups
        .remember_group(&group_id, protocol_type.as_deref())
        .await
    {
        tracing::warn!(group = %group_id, "failed to record the group: {err:#}");
        return respond_all(error::from_group_store(&err));
    }

    // Per partition: an error code now, or an index into the offsets to write.
    let mut outcome: Vec<Vec<Result<usize, i16>>> = Vec::with_capacity(req.topics.len());
    let mut to_write: Vec<(TopicPartitionName, CommittedOffsetRecord)> = Vec::new();
    let commit_ms = now_ms();
    for topic in &req.topics {
        let readable = authorizer.allows(
            session,
            AclOperation::Read,
            ResourceType::Topic,
            topic.name.as_str(),
        );
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            if !readable {
                partitions.push(Err(error::code(ResponseError::TopicAuthorizationFailed)));
                continue;
            }
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
            if metadata
                .as_ref()
                .is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX)
            {
                partitions.push(Err(error::code(ResponseError::OffsetMetadataTooLarge)));
                continue;
            }
            if !partition_exists(ctx, topic.name.as_str(), p.partition_index).await {
                partitions.push(Err(error::code(ResponseError::UnknownTopicOrPartition)));
                continue;
            }
            partitions.push(Ok(to_write.len()));
            to_write.push((
                (topic.name.to_string(), p.partition_index),
                CommittedOffsetRecord {
                    v: RECORD_FORMAT_V1,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                    commit_timestamp_ms: commit_ms,
                },
            ));
        }
        outcome.push(partitions);
    }
    let written = ctx.groups.offsets().commit(&group_id, to_write).await;
    let topics = req
        .topics
        .iter()
        .zip(outcome)
        .map(|(topic, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .zip(partitions)
                        .map(|(p, result)| {
                            let code = match result {
                                Err(code) => code,
                                Ok(idx) => match &written[idx] {
                                    Ok(()) => error::NONE,
                                    Err(err) => error::from_group_store(err),
                                },
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One partition of an OffsetFetch answer.
struct FetchedOffset {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

/// One group's OffsetFetch answer.
struct FetchedGroup {
    error: i16,
    topics: BTreeMap<String, Vec<FetchedOffset>>,
}

async fn fetch_group(
    ctx: &BrokerCtx,
    group_id: &str,
    requested: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
    session: &Session,
) -> FetchedGroup {
    let authorizer = &ctx.authorizer;
    // KIP-447: with require_stable, a partition whose offset a transaction may still change
    // answers UNSTABLE_OFFSET_COMMIT (retriable) instead of a value about to be replaced.
    // The pending offsets are read before the committed ones: a transaction's completion moves
    // each pending offset into the committed ones atomically, so a partition not pending at
    // this read has its final offset visible to the later one (read the other way round, a
    // completion between the reads answered "no offset" for a committed partition).
    let pending = if require_stable
        && ctx.groups.owns(group_id)
        && authorizer.allows_quietly(
            session,
            AclOperation::Describe,
            ResourceType::Group,
            group_id,
        ) {
        match super::txn_offsets::pending_partitions(ctx, group_id).await {
            Ok(pending) => pending,
            Err(err) => {
                tracing::warn!(group = %group_id, "failed to read pending offsets: {err:#}");
                return FetchedGroup {
                    error: error::from_group_store(&err),
                    topics: BTreeMap::new(),
                };
            }
        }
    } else {
        Default::default()
    };
    let stored = if !authorizer.allows(
        session,
        AclOperation::Describe,
        ResourceType::Group,
        group_id,
    ) {
        Err(error::code(ResponseError::GroupAuthorizationFailed))
    } else if ctx.groups.owns(group_id) {
        ctx.groups
            .offsets()
            .fetch_all(group_id)
            .await
            .map_err(|err| {
                tracing::warn!(group = %group_id, "failed to read committed offsets: {err:#}");
                error::from_group_store(&err)
            })
    } else {
        Err(error::code(ResponseError::NotCoordinator))
    };
    let stored = match stored {
        Ok(stored) => stored,
        Err(code) => {
            // The group-level error is enough from v2 on; v1 clients read it per partition.
            let topics = requested
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partitions)| {
                    let offsets = partitions
                        .into_iter()
                        .map(|partition| FetchedOffset {
                            partition,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: String::new(),
                            error: code,
                        })
                        .collect();
                    (topic, offsets)
                })
                .collect();
            return FetchedGroup {
                error: code,
                topics,
            };
        }
    };
    let mut topics: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
    // A partition without a commit answers offset -1 and no error, as in Kafka.
    let entry = |record: Option<&CommittedOffsetRecord>, partition: i32| match record {
        Some(r) => FetchedOffset {
            partition,
            offset: r.offset,
            leader_epoch: r.leader_epoch,
            metadata: r.metadata.clone().unwrap_or_default(),
            error: error::NONE,
        },
        None => FetchedOffset {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error: error::NONE,
        },
    };
    match requested {
        None => {
            for ((topic, partition), record) in &stored {
                // Topics the client may not describe are left out (Kafka does not log them).
                if !authorizer.allows_quietly(
                    session,
                    AclOperation::Describe,
                    ResourceType::Topic,
                    topic,
                ) {
                    continue;
                }
                topics
                    .entry(topic.clone())
                    .or_default()
                    .push(entry(Some(record), *partition));
            }
        }
        Some(requested) => {
            for (topic, partitions) in requested {
                let allowed =
                    authorizer.allows(session, AclOperation::Describe, ResourceType::Topic, &topic);
                let list = topics.entry(topic.clone()).or_default();
                for partition in partitions {
                    list.push(if allowed {
                        entry(stored.get(&(topic.clone(), partition)), partition)
                    } else {
                        FetchedOffset {
                            error: error::code(ResponseError::TopicAuthorizationFailed),
                            ..entry(None, partition)
                        }
                    });
                }
            }
        }
    }
    if !pending.is_empty() {
        let unstable = error::code(ResponseError::UnstableOffsetCommit);
        for (topic, offsets) in topics.iter_mut() {
            for offset in offsets.iter_mut() {
                if offset.error == error::NONE
                    && pending.contains(&(topic.clone(), offset.partition))
                {
                    *offset = FetchedOffset {
                        error: unstable,
                        ..entry(None, offset.partition)
                    };
                }
            }
        }
    }
    FetchedGroup {
        error: error::NONE,
        topics,
    }
}

pub(in crate::broker) async fn fetch(
    ctx: &Arc<BrokerCtx>,
    req: OffsetFetchRequest,
    version: i16,
    session: &Session,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for group in req.groups {
            let requested = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            let fetched = fetch_group(
                ctx,
                group.group_id.as_str(),
                requested,
                req.require_stable,
                session,
            )
            .await;
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id)
                    .with_error_code(fetched.error)
                    .with_topics(
                        fetched
                            .topics
                            .into_iter()
                            .map(|(name, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(text(name)))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|f| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(f.partition)
                                                    .with_committed_offset(f.offset)
                                                    .with_committed_leader_epoch(f.leader_epoch)
                                                    .with_metadata(Some(text(f.metadata)))
                                                    .with_error_code(f.error)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let requested = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let fetched = fetch_group(
        ctx,
        req.group_id.as_str(),
        requested,
        version >= 7 && req.require_stable,
        session,
    )
    .await;
    let topics = fetched
        .topics
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(text(name)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(f.leader_epoch)
                                .with_metadata(Some(text(f.metadata)))
                                .with_error_code(f.error)
                        })
                        .collect(),
                )
        })
        .collect();
    let response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.with_error_code(fetched.error)
    } else {
        response
    }
}

/// Topics the members of a consumer group subscribe to, from their JoinGroup metadata.
fn subscribed_topics(member_metadata: &[bytes::Bytes]) -> BTreeSet<String> {
    /// The newest ConsumerProtocolSubscription version kafka-protocol decodes; newer
    /// versions only append fields, so they decode as this one.
    const SUBSCRIPTION_VERSION_MAX: i16 = 3;
    let mut topics = BTreeSet::new();
    for metadata in member_metadata {
        let mut buf = metadata.clone();
        if buf.remaining() < 2 {
            continue;
        }
        let version = buf.get_i16().clamp(0, SUBSCRIPTION_VERSION_MAX);
        if let Ok(subscription) = ConsumerProtocolSubscription::decode(&mut buf, version) {
            topics.extend(subscription.topics.iter().map(|t| t.to_string()));
        }
    }
    topics
}

pub(in crate::broker) async fn delete(
    ctx: &Arc<BrokerCtx>,
    req: OffsetDeleteRequest,
    session: &Session,
) -> OffsetDeleteResponse {
    let group_id = req.group_id.0.to_string();
    let failed = |code: i16| OffsetDeleteResponse::default().with_error_code(code);
    let authorizer = &ctx.authorizer;
    if !authorizer.allows(
        session,
        AclOperation::Delete,
        ResourceType::Group,
        &group_id,
    ) {
        return failed(error::code(ResponseError::GroupAuthorizationFailed));
    }
    if group_id.is_empty() {
        return failed(error::code(ResponseError::InvalidGroupId));
    }
    if !ctx.groups.owns(&group_id) {
        return failed(error::code(ResponseError::NotCoordinator));
    }
    let summary = ctx.groups.summary(&group_id);
    let active = summary
        .as_ref()
        .is_some_and(|s| s.state != GroupState::Empty && s.state != GroupState::Dead);
    if !active {
        match ctx.groups.offsets().stored_group(&group_id).await {
            Ok(Some(_)) => {}
            Ok(None) => return failed(error::code(ResponseError::GroupIdNotFound)),
            Err(err) => return failed(error::from_group_store(&err)),
        }
    }
    let subscribed = match &summary {
        Some(s) if active => {
            if s.protocol_type != "consumer" {
                return failed(error::code(ResponseError::NonEmptyGroup));
            }
            let metadata = ctx.groups.with_group(&group_id, |g| g.member_metadata());
            subscribed_topics(&metadata)
        }
        _ => BTreeSet::new(),
    };
    let mut to_delete = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let readable = authorizer.allows(
            session,
            AclOperation::Read,
            ResourceType::Topic,
            topic.name.as_str(),
        );
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let code = if !readable {
                error::code(ResponseError::TopicAuthorizationFailed)
            } else if subscribed.contains(topic.name.as_str()) {
                error::code(ResponseError::GroupSubscribedToTopic)
            } else if !partition_exists(ctx, topic.name.as_str(), p.partition_index).await {
                error::code(ResponseError::UnknownTopicOrPartition)
            } else {
                to_delete.push((topic.name.to_string(), p.partition_index));
                error::NONE
            };
            partitions.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    if let Err(err) = ctx
        .groups
        .offsets()
        .delete_offsets(&group_id, &to_delete)
        .await
    {
        tracing::warn!(group = %group_id, "failed to delete offsets: {err:#}");
        return failed(error::from_group_store(&err));
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
