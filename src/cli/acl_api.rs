//! The ACL APIs the CLI speaks, each over one [`Connection`] (any broker answers them):
//! CreateAcls, DescribeAcls and DeleteAcls. A refused binding or filter comes back as a
//! [`Refusal`] with the broker's reason, a failed exchange as a `ClientError`.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::kafka_client::{ClientError, Connection, Refusal};
use crate::security::acl::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, PatternType, PermissionType,
    ResourcePattern, ResourceType,
};

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// A binding from the fields of a response.
fn binding(
    pattern: (i8, &StrBytes, i8),
    principal: &StrBytes,
    host: &StrBytes,
    operation: i8,
    permission: i8,
) -> AclBinding {
    let (resource_type, name, pattern_type) = pattern;
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(resource_type),
            name: name.to_string(),
            pattern_type: PatternType::from_code(pattern_type),
        },
        entry: AccessControlEntry {
            principal: principal.to_string(),
            host: host.to_string(),
            operation: AclOperation::from_code(operation),
            permission: PermissionType::from_code(permission),
        },
    }
}

fn result_count_mismatch(connection: &Connection, api: ApiKey, sent: usize) -> ClientError {
    ClientError::BadResponse {
        addr: connection.addr().to_string(),
        api,
        reason: format!("not one result for each of the {sent} sent"),
    }
}

/// Creates `bindings`; one outcome per binding, in order.
pub async fn create_acls(
    connection: &mut Connection,
    bindings: &[AclBinding],
) -> Result<Vec<Result<(), Refusal>>, ClientError> {
    let response = connection
        .send(|_| {
            CreateAclsRequest::default().with_creations(
                bindings
                    .iter()
                    .map(|b| {
                        AclCreation::default()
                            .with_resource_type(b.pattern.resource_type.code())
                            .with_resource_name(text(&b.pattern.name))
                            .with_resource_pattern_type(b.pattern.pattern_type.code())
                            .with_principal(text(&b.entry.principal))
                            .with_host(text(&b.entry.host))
                            .with_operation(b.entry.operation.code())
                            .with_permission_type(b.entry.permission.code())
                    })
                    .collect(),
            )
        })
        .await?;
    if response.results.len() != bindings.len() {
        return Err(result_count_mismatch(
            connection,
            ApiKey::CreateAcls,
            bindings.len(),
        ));
    }
    Ok(response
        .results
        .iter()
        .map(|r| match r.error_code {
            0 => Ok(()),
            code => Err(Refusal::new(code, r.error_message.as_ref())),
        })
        .collect())
}

/// The bindings `filter` matches.
pub async fn describe_acls(
    connection: &mut Connection,
    filter: &AclBindingFilter,
) -> Result<Result<Vec<AclBinding>, Refusal>, ClientError> {
    let response = connection
        .send(|_| {
            DescribeAclsRequest::default()
                .with_resource_type_filter(filter.resource_type.code())
                .with_resource_name_filter(filter.name.as_deref().map(text))
                .with_pattern_type_filter(filter.pattern_type.code())
                .with_principal_filter(filter.principal.as_deref().map(text))
                .with_host_filter(filter.host.as_deref().map(text))
                .with_operation(filter.operation.code())
                .with_permission_type(filter.permission.code())
        })
        .await?;
    if response.error_code != 0 {
        return Ok(Err(Refusal::new(
            response.error_code,
            response.error_message.as_ref(),
        )));
    }
    let mut found = Vec::new();
    for resource in &response.resources {
        let pattern = (
            resource.resource_type,
            &resource.resource_name,
            resource.pattern_type,
        );
        for acl in &resource.acls {
            found.push(binding(
                pattern,
                &acl.principal,
                &acl.host,
                acl.operation,
                acl.permission_type,
            ));
        }
    }
    Ok(Ok(found))
}

/// Deletes what each filter matches; per filter, in order, the bindings it deleted.
pub async fn delete_acls(
    connection: &mut Connection,
    filters: &[AclBindingFilter],
) -> Result<Vec<Result<Vec<AclBinding>, Refusal>>, ClientError> {
    let response = connection
        .send(|_| {
            DeleteAclsRequest::default().with_filters(
                filters
                    .iter()
                    .map(|f| {
                        DeleteAclsFilter::default()
                            .with_resource_type_filter(f.resource_type.code())
                            .with_resource_name_filter(f.name.as_deref().map(text))
                            .with_pattern_type_filter(f.pattern_type.code())
                            .with_principal_filter(f.principal.as_deref().map(text))
                            .with_host_filter(f.host.as_deref().map(text))
                            .with_operation(f.operation.code())
                            .with_permission_type(f.permission.code())
                    })
                    .collect(),
            )
        })
        .await?;
    if response.filter_results.len() != filters.len() {
        return Err(result_count_mismatch(
            connection,
            ApiKey::DeleteAcls,
            filters.len(),
        ));
    }
    Ok(response
        .filter_results
        .iter()
        .map(|r| {
            if r.error_code != 0 {
                return Err(Refusal::new(r.error_code, r.error_message.as_ref()));
            }
            Ok(r.matching_acls
                .iter()
                .map(|m| {
                    binding(
                        (m.resource_type, &m.resource_name, m.pattern_type),
                        &m.principal,
                        &m.host,
                        m.operation,
                        m.permission_type,
                    )
                })
                .collect())
        })
        .collect())
}
