//! CreateAcls, DescribeAcls and DeleteAcls (versions 1-3: `kafka-protocol` has no v0, which
//! Kafka 4 dropped too). Creating and deleting need ALTER on the cluster, describing DESCRIBE
//! (CLUSTER_AUTHORIZATION_FAILED); with `--authorizer false` all three answer
//! SECURITY_DISABLED, as Kafka does without an authorizer.
//!
//! Bindings are stored by `security::acl_store` and described from this broker's snapshot
//! (`security::authorizer`), which its own writes reach at once and the others' through the
//! watch.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerCtx, error};
use crate::security::Session;
use crate::security::acl::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, PatternType, PermissionType,
    ResourcePattern, ResourceType,
};
use crate::security::acl_store;

/// Kafka's message when no authorizer is configured.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// Why the whole request is refused: no authorizer, or not allowed `operation` on the cluster.
fn refusal(ctx: &BrokerCtx, session: &Session, operation: AclOperation) -> Option<(i16, String)> {
    if !ctx.authorizer.is_enabled() {
        return Some((
            error::code(ResponseError::SecurityDisabled),
            NO_AUTHORIZER.to_string(),
        ));
    }
    if !ctx.authorizer.allows_cluster(session, operation) {
        return Some((
            error::code(ResponseError::ClusterAuthorizationFailed),
            format!("{} on the cluster is not allowed", operation.name()),
        ));
    }
    None
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn creation(c: &AclCreation) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(c.resource_type),
            name: c.resource_name.to_string(),
            pattern_type: PatternType::from_code(c.resource_pattern_type),
        },
        entry: AccessControlEntry {
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: AclOperation::from_code(c.operation),
            permission: PermissionType::from_code(c.permission_type),
        },
    }
}

pub(super) async fn create(
    ctx: &Arc<BrokerCtx>,
    req: CreateAclsRequest,
    session: &Session,
) -> CreateAclsResponse {
    if let Some((code, message)) = refusal(ctx, session, AclOperation::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(text(&message)))
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let bindings: Vec<AclBinding> = req.creations.iter().map(creation).collect();
    let outcomes = acl_store::create(ctx.meta.as_ref(), &ctx.authorizer, bindings.clone()).await;
    let results = bindings
        .iter()
        .zip(outcomes)
        .map(|(binding, outcome)| match outcome {
            Ok(()) => {
                tracing::info!(?binding, "ACL created");
                AclCreationResult::default()
            }
            Err(err) => AclCreationResult::default()
                .with_error_code(error::from_acl_store(&err))
                .with_error_message(Some(text(&err.to_string()))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// A filter of the wire; strings are null for "any".
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_code(resource_type),
        name: name.map(|n| n.to_string()),
        pattern_type: PatternType::from_code(pattern_type),
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: AclOperation::from_code(operation),
        permission: PermissionType::from_code(permission),
    }
}

pub(super) fn describe(
    ctx: &Arc<BrokerCtx>,
    req: DescribeAclsRequest,
    session: &Session,
) -> DescribeAclsResponse {
    let failed = |code: i16, message: String| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    if let Some((code, message)) = refusal(ctx, session, AclOperation::Describe) {
        return failed(code, message);
    }
    let filter = filter(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    );
    if let Err(err) = filter.validate() {
        return failed(error::code(ResponseError::InvalidRequest), err.to_string());
    }
    let mut by_pattern: BTreeMap<ResourcePattern, Vec<AccessControlEntry>> = BTreeMap::new();
    for binding in ctx.authorizer.matching(&filter) {
        by_pattern
            .entry(binding.pattern)
            .or_default()
            .push(binding.entry);
    }
    let resources = by_pattern
        .into_iter()
        .map(|(pattern, entries)| {
            DescribeAclsResource::default()
                .with_resource_type(pattern.resource_type.code())
                .with_resource_name(StrBytes::from_string(pattern.name))
                .with_pattern_type(pattern.pattern_type.code())
                .with_acls(
                    entries
                        .into_iter()
                        .map(|e| {
                            AclDescription::default()
                                .with_principal(StrBytes::from_string(e.principal))
                                .with_host(StrBytes::from_string(e.host))
                                .with_operation(e.operation.code())
                                .with_permission_type(e.permission.code())
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

fn matching_acl(binding: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(binding.pattern.resource_type.code())
        .with_resource_name(StrBytes::from_string(binding.pattern.name))
        .with_pattern_type(binding.pattern.pattern_type.code())
        .with_principal(StrBytes::from_string(binding.entry.principal))
        .with_host(StrBytes::from_string(binding.entry.host))
        .with_operation(binding.entry.operation.code())
        .with_permission_type(binding.entry.permission.code())
}

pub(super) async fn delete(
    ctx: &Arc<BrokerCtx>,
    req: DeleteAclsRequest,
    session: &Session,
) -> DeleteAclsResponse {
    if let Some((code, message)) = refusal(ctx, session, AclOperation::Alter) {
        let results = req
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(text(&message)))
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let filters: Vec<AclBindingFilter> = req
        .filters
        .iter()
        .map(|f: &DeleteAclsFilter| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let outcomes = acl_store::delete(ctx.meta.as_ref(), &ctx.authorizer, filters).await;
    let results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(deleted) => {
                for binding in &deleted {
                    tracing::info!(?binding, "ACL deleted");
                }
                DeleteAclsFilterResult::default()
                    .with_matching_acls(deleted.into_iter().map(matching_acl).collect())
            }
            Err(err) => DeleteAclsFilterResult::default()
                .with_error_code(error::from_acl_store(&err))
                .with_error_message(Some(text(&err.to_string()))),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
