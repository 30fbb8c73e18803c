//! DescribeConfigs for topics (every known config, with defaults marked as such) and for
//! this broker (the settings clients and tools commonly ask about).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::BrokerCtx;
use super::error;
use super::topic_config;

/// Resource types (Kafka `ConfigResource.Type`).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Config sources (Kafka `DescribeConfigsResponse.ConfigSource`).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// Config types (Kafka `ConfigDef.Type` as sent in DescribeConfigs v3+).
const TYPE_STRING: i8 = 2;

pub(super) fn handle(ctx: &Arc<BrokerCtx>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|resource| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let wanted = |name: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
            };
            let entry = |name: &str, value: String, source: i8, read_only: bool| {
                DescribeConfigsResourceResult::default()
                    .with_name(StrBytes::from_string(name.to_string()))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_read_only(read_only)
                    .with_config_source(source)
                    .with_is_sensitive(false)
                    .with_config_type(TYPE_STRING)
            };
            match resource.resource_type {
                RESOURCE_TOPIC => match ctx.topics.get(resource.resource_name.as_str()) {
                    None => base
                        .with_error_code(error::code(ResponseError::UnknownTopicOrPartition))
                        .with_error_message(Some(StrBytes::from_static_str("unknown topic"))),
                    Some(topic) => base.with_configs(
                        topic_config::TOPIC_CONFIGS
                            .iter()
                            .filter(|def| wanted(def.name))
                            .map(|def| match topic.config.get(def.name) {
                                Some(v) => entry(def.name, v.clone(), SOURCE_TOPIC, false),
                                None => {
                                    entry(def.name, def.default.to_string(), SOURCE_DEFAULT, false)
                                }
                            })
                            .collect(),
                    ),
                },
                RESOURCE_BROKER => {
                    let id_matches = resource.resource_name.is_empty()
                        || resource.resource_name.as_str() == ctx.broker_id.to_string();
                    if !id_matches {
                        return base
                            .with_error_code(error::code(ResponseError::InvalidRequest))
                            .with_error_message(Some(StrBytes::from_static_str(
                                "not this broker's id",
                            )));
                    }
                    let c = &ctx.config;
                    let settings = [
                        ("broker.id", ctx.broker_id.to_string()),
                        (
                            "auto.create.topics.enable",
                            c.auto_create_topics.to_string(),
                        ),
                        ("num.partitions", c.default_partitions.to_string()),
                        ("socket.request.max.bytes", c.max_request_bytes.to_string()),
                        (
                            "message.max.bytes",
                            topic_config::MAX_MESSAGE_BYTES_DEFAULT.to_string(),
                        ),
                        ("default.replication.factor", "1".to_string()),
                        ("log.retention.ms", "604800000".to_string()),
                    ];
                    base.with_configs(
                        settings
                            .into_iter()
                            .filter(|(name, _)| wanted(name))
                            .map(|(name, value)| entry(name, value, SOURCE_STATIC_BROKER, true))
                            .collect(),
                    )
                }
                other => base
                    .with_error_code(error::code(ResponseError::InvalidRequest))
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "resource type {other} is not supported"
                    )))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
