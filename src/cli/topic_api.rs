//! The topic administration APIs the CLI speaks, each over one [`Connection`] (any broker
//! answers them): CreateTopics, DeleteTopics, CreatePartitions, IncrementalAlterConfigs and
//! DescribeConfigs. A refused topic comes back as a [`TopicFailure`] with the broker's
//! reason, a failed exchange as a `ClientError`.

use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::kafka_client::{ClientError, Connection, Refusal};

/// Config resource type of a topic (Kafka `ConfigResource.Type.TOPIC`).
const RESOURCE_TOPIC: i8 = 2;
/// IncrementalAlterConfigs operations (Kafka `AlterConfigOp.OpType`).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Why the broker refused a change to a topic.
pub type TopicFailure = Refusal;

/// What the broker did with one topic.
pub type Outcome = Result<(), TopicFailure>;

fn outcome(error_code: i16, message: Option<&StrBytes>) -> Outcome {
    match error_code {
        0 => Ok(()),
        code => Err(TopicFailure::new(code, message)),
    }
}

fn timeout_ms(timeout: Duration) -> i32 {
    i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from(name.to_string()))
}

fn missing(connection: &Connection, api: ApiKey, topic: &str) -> ClientError {
    ClientError::BadResponse {
        addr: connection.addr().to_string(),
        api,
        reason: format!("no answer for topic {topic:?}"),
    }
}

/// A topic to create. `None` partitions or replication factor: the broker's defaults.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub configs: Vec<(String, String)>,
}

pub async fn create_topic(
    connection: &mut Connection,
    topic: &NewTopic,
    validate_only: bool,
    timeout: Duration,
) -> Result<Outcome, ClientError> {
    let response = connection
        .send(|_| {
            let configs = topic
                .configs
                .iter()
                .map(|(name, value)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from(name.clone()))
                        .with_value(Some(StrBytes::from(value.clone())))
                })
                .collect();
            CreateTopicsRequest::default()
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(topic_name(&topic.name))
                        .with_num_partitions(topic.partitions.unwrap_or(-1))
                        .with_replication_factor(topic.replication_factor.unwrap_or(-1))
                        .with_configs(configs),
                ])
                .with_timeout_ms(timeout_ms(timeout))
                .with_validate_only(validate_only)
        })
        .await?;
    let result = response
        .topics
        .iter()
        .find(|t| t.name.as_str() == topic.name)
        .ok_or_else(|| missing(connection, ApiKey::CreateTopics, &topic.name))?;
    Ok(outcome(result.error_code, result.error_message.as_ref()))
}

/// Deletes `topics`; one outcome per topic, in the order asked.
pub async fn delete_topics(
    connection: &mut Connection,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<(String, Outcome)>, ClientError> {
    let response = connection
        .send(|version| {
            let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms(timeout));
            if version >= 6 {
                request.with_topics(
                    topics
                        .iter()
                        .map(|t| DeleteTopicState::default().with_name(Some(topic_name(t))))
                        .collect(),
                )
            } else {
                request.with_topic_names(topics.iter().map(|t| topic_name(t)).collect())
            }
        })
        .await?;
    topics
        .iter()
        .map(|topic| {
            let result = response
                .responses
                .iter()
                .find(|r| r.name.as_ref().is_some_and(|n| n.as_str() == topic))
                .ok_or_else(|| missing(connection, ApiKey::DeleteTopics, topic))?;
            Ok((
                topic.clone(),
                outcome(result.error_code, result.error_message.as_ref()),
            ))
        })
        .collect()
}

/// Grows `topic` to `count` partitions.
pub async fn create_partitions(
    connection: &mut Connection,
    topic: &str,
    count: i32,
    validate_only: bool,
    timeout: Duration,
) -> Result<Outcome, ClientError> {
    let response = connection
        .send(|_| {
            CreatePartitionsRequest::default()
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(topic_name(topic))
                        .with_count(count)
                        .with_assignments(None),
                ])
                .with_timeout_ms(timeout_ms(timeout))
                .with_validate_only(validate_only)
        })
        .await?;
    let result = response
        .results
        .iter()
        .find(|r| r.name.as_str() == topic)
        .ok_or_else(|| missing(connection, ApiKey::CreatePartitions, topic))?;
    Ok(outcome(result.error_code, result.error_message.as_ref()))
}

/// Sets configs of `topic` to the given values and returns the `reset` ones to their
/// defaults, leaving the others as they are (IncrementalAlterConfigs).
pub async fn alter_configs(
    connection: &mut Connection,
    topic: &str,
    set: &[(String, String)],
    reset: &[String],
    validate_only: bool,
) -> Result<Outcome, ClientError> {
    let configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(name, value)| (name, OP_SET, Some(value)))
        .chain(reset.iter().map(|name| (name, OP_DELETE, None)))
        .map(|(name, op, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from(name.clone()))
                .with_config_operation(op)
                .with_value(value.map(|v| StrBytes::from(v.clone())))
        })
        .collect();
    let response = connection
        .send(|_| {
            IncrementalAlterConfigsRequest::default()
                .with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from(topic.to_string()))
                        .with_configs(configs.clone()),
                ])
                .with_validate_only(validate_only)
        })
        .await?;
    let result = response
        .responses
        .iter()
        .find(|r| r.resource_name.as_str() == topic)
        .ok_or_else(|| missing(connection, ApiKey::IncrementalAlterConfigs, topic))?;
    Ok(outcome(result.error_code, result.error_message.as_ref()))
}

/// One config of a topic as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    pub name: String,
    pub value: Option<String>,
    /// `topic` for an override, `default` otherwise (or Kafka's other sources, lower-case).
    pub source: String,
}

/// Kafka's `ConfigSource` as a short word.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "topic",
        2 => "dynamic-broker",
        3 => "dynamic-default-broker",
        4 => "static-broker",
        5 => "default",
        6 => "dynamic-broker-logger",
        _ => "unknown",
    }
}

/// Every config of `topic`, sorted by name.
pub async fn describe_configs(
    connection: &mut Connection,
    topic: &str,
) -> Result<Result<Vec<TopicConfig>, TopicFailure>, ClientError> {
    let response = connection
        .send(|_| {
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from(topic.to_string()))
                    .with_configuration_keys(None),
            ])
        })
        .await?;
    let result = response
        .results
        .iter()
        .find(|r| r.resource_name.as_str() == topic)
        .ok_or_else(|| missing(connection, ApiKey::DescribeConfigs, topic))?;
    if result.error_code != 0 {
        return Ok(Err(TopicFailure::new(
            result.error_code,
            result.error_message.as_ref(),
        )));
    }
    let mut configs: Vec<TopicConfig> = result
        .configs
        .iter()
        .map(|c| TopicConfig {
            name: c.name.to_string(),
            value: c.value.as_ref().map(|v| v.to_string()),
            source: source_name(c.config_source).to_string(),
        })
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Ok(configs))
}
