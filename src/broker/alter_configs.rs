//! AlterConfigs (replace a resource's whole set of overrides) and IncrementalAlterConfigs
//! (SET / DELETE / APPEND / SUBTRACT single configs), for topics. The topic record is
//! rewritten by compare-and-set; every broker applies it (see `log::topics::alter`), so a
//! change takes effect with the next produce and retention pass.
//!
//! Broker configs are static: they come from `strato serve` flags, and a change is refused
//! with INVALID_REQUEST naming the flags, as Kafka refuses a non-dynamic broker config.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_TOPIC};
use super::topic_config::{self, ConfigChangeError, ConfigOp};
use super::{BrokerCtx, error};
use crate::log::topics::TopicError;

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

pub(super) async fn alter(ctx: &Arc<BrokerCtx>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let duplicates = duplicate_resources(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        let entries = resource
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let duplicate =
            duplicates.contains(&(resource.resource_type, resource.resource_name.to_string()));
        let (code, message) = apply(
            ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            Change::Replace(entries),
            req.validate_only,
            duplicate,
        )
        .await;
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub(super) async fn incremental(
    ctx: &Arc<BrokerCtx>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let duplicates = duplicate_resources(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        let ops: Result<Vec<_>, i8> = resource
            .configs
            .iter()
            .map(|c| {
                let op = ConfigOp::from_wire(c.config_operation).ok_or(c.config_operation)?;
                Ok((
                    c.name.to_string(),
                    op,
                    c.value.as_ref().map(|v| v.to_string()),
                ))
            })
            .collect();
        let duplicate =
            duplicates.contains(&(resource.resource_type, resource.resource_name.to_string()));
        let (code, message) = match ops {
            Err(op) => (
                error::code(ResponseError::InvalidRequest),
                Some(format!("unknown config operation {op}")),
            ),
            Ok(ops) => {
                apply(
                    ctx,
                    resource.resource_type,
                    resource.resource_name.as_str(),
                    Change::Incremental(ops),
                    req.validate_only,
                    duplicate,
                )
                .await
            }
        };
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Resources named more than once in one request (Kafka refuses them all: which change
/// would win is not defined).
fn duplicate_resources<'a>(
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> BTreeSet<(i8, String)> {
    let mut seen = BTreeSet::new();
    resources
        .filter(|(kind, name)| !seen.insert((*kind, name.to_string())))
        .map(|(kind, name)| (kind, name.to_string()))
        .collect()
}

async fn apply(
    ctx: &Arc<BrokerCtx>,
    resource_type: i8,
    name: &str,
    change: Change,
    validate_only: bool,
    duplicate: bool,
) -> Outcome {
    let refuse =
        |code: ResponseError, message: &str| (error::code(code), Some(message.to_string()));
    if duplicate {
        return refuse(
            ResponseError::InvalidRequest,
            "the resource appears more than once in the request",
        );
    }
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
