//! DescribeConfigs for topics (every known config, overrides as TOPIC_CONFIG and the rest as
//! DEFAULT_CONFIG; read from the stored topic record, so a change made through any broker is
//! seen at once) and for this broker (its effective settings, read-only). A topic needs
//! DESCRIBE_CONFIGS on it (TOPIC_AUTHORIZATION_FAILED), the broker DESCRIBE_CONFIGS on the
//! cluster (CLUSTER_AUTHORIZATION_FAILED).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerCtx, broker_config, error};
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};
use crate::topic_config::{self, ConfigType};

/// Resource types (Kafka `ConfigResource.Type`).
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;
pub(super) const RESOURCE_BROKER_LOGGER: i8 = 8;
/// Config sources (Kafka `DescribeConfigsResponse.ConfigSource`).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// What the client asked to see besides names and values.
#[derive(Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
}

struct Entry<'a> {
    name: &'a str,
    value: Option<String>,
    source: i8,
    read_only: bool,
    kind: ConfigType,
    doc: String,
    synonyms: Vec<DescribeConfigsSynonym>,
}

impl Entry<'_> {
    fn into_result(self, detail: Detail) -> DescribeConfigsResourceResult {
        DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_string(self.name.to_string()))
            .with_value(self.value.map(StrBytes::from_string))
            .with_read_only(self.read_only)
            .with_config_source(self.source)
            .with_is_sensitive(false)
            .with_config_type(self.kind.wire())
            .with_synonyms(if detail.synonyms {
                self.synonyms
            } else {
                Vec::new()
            })
            .with_documentation(
                detail
                    .documentation
                    .then(|| StrBytes::from_string(self.doc)),
            )
    }
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value.to_string())))
        .with_source(source)
}

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: DescribeConfigsRequest,
    session: &Session,
) -> DescribeConfigsResponse {
    let detail = Detail {
        synonyms: req.include_synonyms,
        documentation: req.include_documentation,
    };
    let mut results = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        results.push(describe(ctx, resource, detail, session).await);
    }
    DescribeConfigsResponse::default().with_results(results)
}

async fn describe(
    ctx: &Arc<BrokerCtx>,
    resource: DescribeConfigsResource,
    detail: Detail,
    session: &Session,
) -> DescribeConfigsResult {
    let base = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let fail = |code: ResponseError, message: String| {
        base.clone()
            .with_error_code(error::code(code))
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    if let Err(denied) = config_access(
        ctx,
        session,
        resource.resource_type,
        resource.resource_name.as_str(),
        AclOperation::DescribeConfigs,
    ) {
        return base.with_error_code(error::code(denied));
    }
    let wanted = |name: &str| {
        resource
            .configuration_keys
            .as_ref()
            .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
    };
    match resource.resource_type {
        RESOURCE_TOPIC => {
            let name = resource.resource_name.as_str();
            let record = match ctx.topics.stored(name).await {
                Ok(Some(record)) => record,
                Ok(None) => {
                    return fail(
                        ResponseError::UnknownTopicOrPartition,
                        format!("unknown topic {name:?}"),
                    );
                }
                Err(err) => {
                    tracing::warn!(topic = name, "failed to read a topic record: {err:#}");
                    return base
                        .with_error_code(error::from_metadata(&err))
                        .with_error_message(Some(StrBytes::from_string(err.to_string())));
                }
            };
            let configs = topic_config::all()
                .filter(|def| wanted(def.name))
                .map(|def| {
                    // Kafka lists the broker default as a synonym, except for configs that
                    // have none (an empty `broker_name`).
                    let default = (!def.broker_name.is_empty())
                        .then(|| synonym(def.broker_name, def.default, SOURCE_DEFAULT));
                    let entry = match record.config.get(def.name) {
                        Some(value) => Entry {
                            value: Some(value.clone()),
                            source: SOURCE_TOPIC,
                            synonyms: std::iter::once(synonym(def.name, value, SOURCE_TOPIC))
                                .chain(default)
                                .collect(),
                            ..topic_entry(def)
                        },
                        None => Entry {
                            synonyms: default.into_iter().collect(),
                            ..topic_entry(def)
                        },
                    };
                    entry.into_result(detail)
                })
                .collect();
            base.with_configs(configs)
        }
        RESOURCE_BROKER => {
            // Kafka's default-broker resource is the empty name.
            let name = resource.resource_name.as_str();
            if !name.is_empty() && name != ctx.broker_id.to_string() {
                return fail(
                    ResponseError::InvalidRequest,
                    format!(
                        "this is broker {}; send the request to broker {name}",
                        ctx.broker_id
                    ),
                );
            }
            let configs = broker_config::settings(ctx)
                .into_iter()
                .filter(|s| wanted(&s.name))
                .map(|s| {
                    let (source, doc) = if s.fixed_default {
                        (SOURCE_DEFAULT, s.doc.to_string())
                    } else {
                        (
                            SOURCE_STATIC_BROKER,
                            format!("set by `strato serve {}`", s.doc),
                        )
                    };
                    let synonyms = s
                        .value
                        .as_deref()
                        .map(|v| vec![synonym(&s.name, v, source)])
                        .unwrap_or_default();
                    Entry {
                        name: &s.name,
                        value: s.value.clone(),
                        source,
                        read_only: true,
                        kind: s.kind,
                        doc,
                        synonyms,
                    }
                    .into_result(detail)
                })
                .collect();
            base.with_configs(configs)
        }
        other => fail(
            ResponseError::InvalidRequest,
            format!("config resource type {other} is not supported"),
        ),
    }
}

/// Whether `session` may do `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a config
/// resource: on the topic for a topic, on the cluster for the broker and its loggers (other
/// resource types are refused later as unsupported). The error is Kafka's for a denial.
pub(super) fn config_access(
    ctx: &BrokerCtx,
    session: &Session,
    resource_type: i8,
    name: &str,
    operation: AclOperation,
) -> Result<(), ResponseError> {
    match resource_type {
        RESOURCE_TOPIC
            if !ctx
                .authorizer
                .allows(session, operation, ResourceType::Topic, name) =>
        {
            Err(ResponseError::TopicAuthorizationFailed)
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER
            if !ctx.authorizer.allows_cluster(session, operation) =>
        {
            Err(ResponseError::ClusterAuthorizationFailed)
        }
        _ => Ok(()),
    }
}

/// A topic config at its default.
fn topic_entry(def: &'static topic_config::TopicConfigDef) -> Entry<'static> {
    Entry {
        name: def.name,
        value: Some(def.default.to_string()),
        source: SOURCE_DEFAULT,
        read_only: false,
        kind: def.kind,
        doc: def.doc.to_string(),
        synonyms: Vec::new(),
    }
}
