//! AlterConfigs (replace a resource's whole set of overrides) and IncrementalAlterConfigs
//! (SET / DELETE / APPEND / SUBTRACT single configs), for topics. The topic record is
//! rewritten by compare-and-set; every broker applies it (see `log::topics::alter`), so a
//! change takes effect with the next produce and retention pass.
//!
//! Broker configs are static: they come from `strato serve` flags, and a change is refused
//! with INVALID_REQUEST naming the flags, as Kafka refuses a non-dynamic broker config.
//!
//! A topic needs ALTER_CONFIGS on it (TOPIC_AUTHORIZATION_FAILED), the broker ALTER_CONFIGS on
//! the cluster (CLUSTER_AUTHORIZATION_FAILED).

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{
    RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_TOPIC, config_access,
};
use super::{BrokerCtx, error};
use crate::log::topics::TopicError;
use crate::security::Session;
use crate::security::acl::AclOperation;
use crate::topic_config::{self, ConfigChangeError, ConfigOp};

const BROKER_CONFIGS_STATIC: &str = "broker configs are static: set them with `strato serve` flags \
                                     (or STRATO_* variables, or --config) and restart the broker";
const BROKER_LOGGERS_STATIC: &str = "log levels are set with STRATO_LOG when the broker starts";

/// One resource's outcome: error code and message.
type Outcome = (i16, Option<String>);

/// What a request asks of one topic's overrides.
enum Change {
    Replace(Vec<(String, Option<String>)>),
    Incremental(Vec<(String, ConfigOp, Option<String>)>),
}

impl Change {
    fn is_empty(&self) -> bool {
        match self {
            Change::Replace(entries) => entries.is_empty(),
            Change::Incremental(ops) => ops.is_empty(),
        }
    }
}

pub(super) async fn alter(
    ctx: &Arc<BrokerCtx>,
    req: AlterConfigsRequest,
    session: &Session,
) -> AlterConfigsResponse {
    let resources = req
        .resources
        .into_iter()
        .map(|r| {
            let entries = r
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            (
                r.resource_type,
                r.resource_name,
                Ok(Change::Replace(entries)),
            )
        })
        .collect();
    let responses = apply_all(ctx, resources, req.validate_only, session)
        .await
        .into_iter()
        .map(|(resource_type, resource_name, (code, message))| {
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(resource_type)
                .with_resource_name(resource_name)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub(super) async fn incremental(
    ctx: &Arc<BrokerCtx>,
    req: IncrementalAlterConfigsRequest,
    session: &Session,
) -> IncrementalAlterConfigsResponse {
    let resources = req
        .resources
        .into_iter()
        .map(|r| {
            let ops: Result<Vec<_>, Outcome> = r
                .configs
                .iter()
                .map(|c| {
                    let op = ConfigOp::from_wire(c.config_operation).ok_or_else(|| {
                        (
                            error::code(ResponseError::InvalidRequest),
                            Some(format!("unknown config operation {}", c.config_operation)),
                        )
                    })?;
                    Ok((
                        c.name.to_string(),
                        op,
                        c.value.as_ref().map(|v| v.to_string()),
                    ))
                })
                .collect();
            (
                r.resource_type,
                r.resource_name,
                ops.map(Change::Incremental),
            )
        })
        .collect();
    let responses = apply_all(ctx, resources, req.validate_only, session)
        .await
        .into_iter()
        .map(|(resource_type, resource_name, (code, message))| {
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(resource_type)
                .with_resource_name(resource_name)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Applies each resource's change (or answers the error its request already had). A
/// resource named more than once is refused, each time: which change would win is not
/// defined (Kafka refuses them too).
async fn apply_all(
    ctx: &Arc<BrokerCtx>,
    resources: Vec<(i8, StrBytes, Result<Change, Outcome>)>,
    validate_only: bool,
    session: &Session,
) -> Vec<(i8, StrBytes, Outcome)> {
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<(i8, StrBytes)> = resources
        .iter()
        .filter(|(kind, name, _)| !seen.insert((*kind, name.clone())))
        .map(|(kind, name, _)| (*kind, name.clone()))
        .collect();
    let mut outcomes = Vec::with_capacity(resources.len());
    for (resource_type, name, change) in resources {
        let outcome = match change {
            _ if duplicates.contains(&(resource_type, name.clone())) => (
                error::code(ResponseError::InvalidRequest),
                Some("the resource appears more than once in the request".to_string()),
            ),
            _ => match config_access(
                ctx,
                session,
                resource_type,
                name.as_str(),
                AclOperation::AlterConfigs,
            ) {
                Err(denied) => (error::code(denied), None),
                Ok(()) => match change {
                    Err(outcome) => outcome,
                    Ok(change) => {
                        apply(ctx, resource_type, name.as_str(), change, validate_only).await
                    }
                },
            },
        };
        outcomes.push((resource_type, name, outcome));
    }
    outcomes
}

async fn apply(
    ctx: &Arc<BrokerCtx>,
    resource_type: i8,
    name: &str,
    change: Change,
    validate_only: bool,
) -> Outcome {
    let refuse =
        |code: ResponseError, message: &str| (error::code(code), Some(message.to_string()));
    match resource_type {
        RESOURCE_TOPIC => alter_topic(ctx, name, change, validate_only).await,
        // Nothing to change is not an error.
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER if change.is_empty() => (error::NONE, None),
        RESOURCE_BROKER => refuse(ResponseError::InvalidRequest, BROKER_CONFIGS_STATIC),
        RESOURCE_BROKER_LOGGER => refuse(ResponseError::InvalidRequest, BROKER_LOGGERS_STATIC),
        other => (
            error::code(ResponseError::InvalidRequest),
            Some(format!("config resource type {other} is not supported")),
        ),
    }
}

async fn alter_topic(
    ctx: &Arc<BrokerCtx>,
    name: &str,
    change: Change,
    validate_only: bool,
) -> Outcome {
    let result = ctx
        .topics
        .update_config(name, validate_only, |current| {
            let next = match &change {
                Change::Replace(entries) => topic_config::replace_all(entries),
                Change::Incremental(ops) => topic_config::apply_incremental(current, ops),
            };
            next.map_err(|err| match err {
                ConfigChangeError::InvalidConfig(message) => TopicError::InvalidConfig(message),
                ConfigChangeError::InvalidRequest(message) => TopicError::InvalidRequest(message),
            })
        })
        .await;
    match result {
        Ok(_) => (error::NONE, None),
        Err(err) => {
            if let TopicError::Metadata(err) = &err {
                tracing::warn!(topic = name, "failed to change topic configs: {err:#}");
            }
            (error::from_topic(&err), Some(err.to_string()))
        }
    }
}
