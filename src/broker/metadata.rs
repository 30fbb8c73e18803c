//! Metadata: brokers, cluster id, topics with their partitions and leaders. Creates unknown
//! topics when the client allows it and `--auto-create-topics` is on.
//!
//! Authorization (Kafka's `handleTopicMetadataRequest`): a topic needs DESCRIBE; asked for
//! all topics, the others are left out; asked by name, they answer TOPIC_AUTHORIZATION_FAILED.
//! Auto-creation needs CREATE on the cluster or the topic, else TOPIC_AUTHORIZATION_FAILED.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::BrokerCtx;
use super::error;
use crate::log::topics::{Topic, TopicError};
use crate::security::Session;
use crate::security::acl::{AclOperation, CLUSTER_RESOURCE_NAME, ResourceType};

/// `topic_authorized_operations` when the client did not ask for them (Kafka's INT32_MIN).
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: MetadataRequest,
    version: i16,
    session: &Session,
) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all_topics = match &req.topics {
        None => true,
        Some(list) => list.is_empty() && version == 0,
    };
    // v0-3 always allow auto-creation; v4+ ask for it.
    let allow_create =
        ctx.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let authorizer = &ctx.authorizer;
    let mut topics = Vec::new();
    if all_topics {
        for topic in ctx.topics.all() {
            if authorizer.allows_quietly(
                session,
                AclOperation::Describe,
                ResourceType::Topic,
                &topic.name,
            ) {
                topics.push(topic_metadata(ctx, &topic).await);
            }
        }
    } else {
        for requested in req.topics.unwrap_or_default() {
            topics.push(
                resolve(
                    ctx,
                    requested.name,
                    requested.topic_id,
                    allow_create,
                    session,
                )
                .await,
            );
        }
    }
    if req.include_topic_authorized_operations {
        let denied = error::code(ResponseError::TopicAuthorizationFailed);
        for topic in topics.iter_mut().filter(|t| t.error_code != denied) {
            if let Some(name) = &topic.name {
                topic.topic_authorized_operations =
                    authorizer.authorized_operations(session, ResourceType::Topic, name.as_str());
            }
        }
    }
    // Kafka answers 0 to a client that may not describe the cluster.
    let cluster_authorized_operations = if !req.include_cluster_authorized_operations {
        AUTHORIZED_OPERATIONS_OMITTED
    } else if authorizer.allows_cluster(session, AclOperation::Describe) {
        authorizer.authorized_operations(session, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    } else {
        0
    };
    let listed = ctx.cluster.listed();
    let controller = ctx
        .cluster
        .live()
        .keys()
        .next()
        .copied()
        .unwrap_or(ctx.broker_id);
    // Each broker's address on the listener the client came in on; a broker without that
    // listener is left out, as Kafka does. Brokers that just left are still listed (see
    // `cluster::DEPARTED_LISTED_FOR`).
    let listener = session.listener.name();
    let brokers = listed
        .into_values()
        .filter_map(|b| {
            let (host, port) = b.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(i32::from(port))
                    .with_rack(b.rack.map(StrBytes::from_string)),
            )
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(ctx.cluster_id.clone())))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_authorized_operations)
}

async fn resolve(
    ctx: &Arc<BrokerCtx>,
    name: Option<TopicName>,
    topic_id: Uuid,
    allow_create: bool,
    session: &Session,
) -> MetadataResponseTopic {
    let authorizer = &ctx.authorizer;
    let Some(name) = name else {
        // By id (v10+). Topic ids are not secret, so a denial names the id (as Kafka does).
        return match ctx.topics.get_by_id(topic_id) {
            Some(topic)
                if !authorizer.allows(
                    session,
                    AclOperation::Describe,
                    ResourceType::Topic,
                    &topic.name,
                ) =>
            {
                MetadataResponseTopic::default()
                    .with_topic_id(topic_id)
                    .with_error_code(error::code(ResponseError::TopicAuthorizationFailed))
                    .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
            }
            Some(topic) => topic_metadata(ctx, &topic).await,
            None => MetadataResponseTopic::default()
                .with_topic_id(topic_id)
                .with_error_code(error::code(ResponseError::UnknownTopicId))
                .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
        };
    };
    let failed = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code)
            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
    };
    // Whether the topic exists is not told to a client that may not describe it.
    if !authorizer.allows(
        session,
        AclOperation::Describe,
        ResourceType::Topic,
        name.as_str(),
    ) {
        return failed(error::code(ResponseError::TopicAuthorizationFailed));
    }
    match ctx.topics.lookup(name.as_str()).await {
        Ok(Some(topic)) => return topic_metadata(ctx, &topic).await,
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(topic = %name.as_str(), "failed to look up topic: {err:#}");
            return failed(error::from_metadata(&err));
        }
    }
    if !crate::log::topics::valid_topic_name(name.as_str()) {
        return failed(error::code(ResponseError::InvalidTopicException));
    }
    if !allow_create {
        return failed(error::code(ResponseError::UnknownTopicOrPartition));
    }
    if !may_create_topic(ctx, session, name.as_str()) {
        return failed(error::code(ResponseError::TopicAuthorizationFailed));
    }
    match ctx
        .topics
        .create(
            name.as_str(),
            ctx.config.default_partitions,
            BTreeMap::new(),
            false,
        )
        .await
    {
        Ok(topic) => topic_metadata(ctx, &topic).await,
        // Someone else created it meanwhile: the registry has it now.
        Err(TopicError::AlreadyExists(_)) => match ctx.topics.lookup(name.as_str()).await {
            Ok(Some(topic)) => topic_metadata(ctx, &topic).await,
            _ => failed(error::code(ResponseError::LeaderNotAvailable)),
        },
        Err(err) => {
            tracing::warn!(topic = %name.as_str(), "failed to auto-create topic: {err:#}");
            failed(error::from_topic(&err))
        }
    }
}

/// Whether `session` may create the topic `name`: CREATE on the cluster or on the topic (also
/// for auto-creation by Produce).
pub(super) fn may_create_topic(ctx: &BrokerCtx, session: &Session, name: &str) -> bool {
    ctx.authorizer.allows_quietly(
        session,
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_RESOURCE_NAME,
    ) || ctx
        .authorizer
        .allows(session, AclOperation::Create, ResourceType::Topic, name)
}

/// Partitions whose leader is looked up in the metadata store at once.
const LEADER_LOOKUPS_CONCURRENCY: usize = 32;

async fn topic_metadata(ctx: &BrokerCtx, topic: &Topic) -> MetadataResponseTopic {
    use futures::StreamExt;
    let partitions = futures::stream::iter(topic.partitions.iter().cloned())
        .map(|p| async move {
            let led_epoch = {
                let state = p.lock();
                (!state.fenced).then_some(state.leader_epoch)
            };
            let (leader, epoch) = match led_epoch {
                Some(epoch) => (ctx.broker_id, epoch),
                None => {
                    let leader = ctx.cluster.leader_of(ctx.meta.as_ref(), p.tp).await;
                    (leader.broker_id, leader.leader_epoch)
                }
            };
            let leader = BrokerId(leader);
            MetadataResponsePartition::default()
                .with_partition_index(p.tp.partition)
                .with_leader_id(leader)
                .with_leader_epoch(epoch)
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader])
                .with_offline_replicas(vec![])
        })
        .buffered(LEADER_LOOKUPS_CONCURRENCY)
        .collect()
        .await;
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(false)
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
