//! CreateTopics: validates names, partition counts and configs; honours `validate_only`.
//! Needs CREATE on the cluster or on the topic (TOPIC_AUTHORIZATION_FAILED); the configs
//! are returned only with DESCRIBE_CONFIGS on the topic (else `topic_config_error_code`
//! TOPIC_AUTHORIZATION_FAILED), as Kafka does.
//!
//! Replication factor: durability comes from the object store, not from broker replicas,
//! so any positive factor (or -1 for the default) is accepted and reported back as asked.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::BrokerCtx;
use super::error;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};
use crate::topic_config;

/// `config_source` DEFAULT_CONFIG and TOPIC_CONFIG (Kafka `DescribeConfigsResponse.ConfigSource`).
const CONFIG_SOURCE_TOPIC: i8 = 1;
const CONFIG_SOURCE_DEFAULT: i8 = 5;

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: CreateTopicsRequest,
    version: i16,
    session: &Session,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.clone();
        let result = CreatableTopicResult::default().with_name(name.clone());
        let fail = |code: i16, message: String| {
            result
                .clone()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        };
        if !super::metadata::may_create_topic(ctx, session, name.as_str()) {
            results.push(fail(
                error::code(ResponseError::TopicAuthorizationFailed),
                "Authorization failed.".to_string(),
            ));
            continue;
        }
        let partitions = if topic.num_partitions == -1 && !topic.assignments.is_empty() {
            topic.assignments.len() as i32
        } else if topic.num_partitions == -1 {
            ctx.config.default_partitions
        } else {
            topic.num_partitions
        };
        if topic.replication_factor == 0 || topic.replication_factor < -1 {
            results.push(fail(
                error::code(ResponseError::InvalidReplicationFactor),
                format!(
                    "replication factor must be positive, got {}",
                    topic.replication_factor
                ),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &topic.configs {
            if let Some(value) = &c.value {
                configs.insert(c.name.to_string(), value.to_string());
            }
        }
        if let Err(message) = topic_config::validate(&configs) {
            results.push(fail(error::code(ResponseError::InvalidConfig), message));
            continue;
        }
        match ctx
            .topics
            .create(
                name.as_str(),
                partitions,
                configs.clone(),
                req.validate_only,
            )
            .await
        {
            Ok(created) => {
                let describable = ctx.authorizer.allows_quietly(
                    session,
                    AclOperation::DescribeConfigs,
                    ResourceType::Topic,
                    name.as_str(),
                );
                let described: Vec<CreatableTopicConfigs> = topic_config::all()
                    .map(|def| {
                        let (value, source) = match configs.get(def.name) {
                            Some(v) => (v.clone(), CONFIG_SOURCE_TOPIC),
                            None => (def.default.to_string(), CONFIG_SOURCE_DEFAULT),
                        };
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(def.name))
                            .with_value(Some(StrBytes::from_string(value)))
                            .with_config_source(source)
                    })
                    .collect();
                results.push(
                    result
                        .with_topic_id(created.topic_id)
                        .with_num_partitions(partitions)
                        .with_replication_factor(if topic.replication_factor == -1 {
                            1
                        } else {
                            topic.replication_factor
                        })
                        .with_configs((version >= 5 && describable).then_some(described))
                        .with_topic_config_error_code(if version >= 5 && !describable {
                            error::code(ResponseError::TopicAuthorizationFailed)
                        } else {
                            error::NONE
                        }),
                );
            }
            Err(err) => {
                if !matches!(err, crate::log::topics::TopicError::AlreadyExists(_)) {
                    tracing::warn!(topic = %name.as_str(), "failed to create topic: {err:#}");
                }
                results.push(fail(error::from_topic(&err), err.to_string()));
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
