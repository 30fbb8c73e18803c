//! DescribeGroups, ListGroups and DeleteGroups: active groups come from the coordinator's
//! memory, groups without members from the metadata store (they have committed offsets).
//!
//! Authorization, as Kafka's: DescribeGroups needs DESCRIBE on each group, DeleteGroups
//! DELETE (GROUP_AUTHORIZATION_FAILED per group); ListGroups lists every group to a client
//! that may DESCRIBE the cluster, else only the groups it may DESCRIBE.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};

use super::super::{BrokerCtx, error};
use super::{opt_text, text};
use crate::group::state::GroupState;
use crate::security::Session;
use crate::security::acl::{AclOperation, CLUSTER_RESOURCE_NAME, ResourceType};

/// `authorized_operations` when the client did not ask for them (Kafka's INT32_MIN).
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Every group here uses the classic protocol (ListGroups v5 `group_type`).
const GROUP_TYPE_CLASSIC: &str = "classic";

pub(in crate::broker) async fn describe(
    ctx: &Arc<BrokerCtx>,
    req: DescribeGroupsRequest,
    version: i16,
    session: &Session,
) -> DescribeGroupsResponse {
    let authorizer = &ctx.authorizer;
    let mut groups = Vec::with_capacity(req.groups.len());
    for group_id in req.groups {
        if !authorizer.allows(
            session,
            AclOperation::Describe,
            ResourceType::Group,
            group_id.as_str(),
        ) {
            groups.push(
                DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
                    .with_error_code(error::code(ResponseError::GroupAuthorizationFailed)),
            );
            continue;
        }
        let authorized_operations = if req.include_authorized_operations {
            authorizer.authorized_operations(session, ResourceType::Group, group_id.as_str())
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
        let described = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_authorized_operations(authorized_operations);
        if !ctx.groups.owns(group_id.as_str()) {
            groups.push(
                described
                    .with_group_state(text(GroupState::Dead.name().to_string()))
                    .with_error_code(error::code(ResponseError::NotCoordinator)),
            );
            continue;
        }
        if let Some(summary) = ctx.groups.summary(group_id.as_str()) {
            let members = summary
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(text(m.member_id))
                        .with_group_instance_id(opt_text(m.group_instance_id))
                        .with_client_id(text(m.client_id))
                        .with_client_host(text(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            groups.push(
                described
                    .with_group_state(text(summary.state.name().to_string()))
                    .with_protocol_type(text(summary.protocol_type))
                    .with_protocol_data(text(summary.protocol_name))
                    .with_members(members),
            );
            continue;
        }
        let stored = match ctx.groups.offsets().stored_group(group_id.as_str()).await {
            Ok(stored) => stored,
            Err(err) => {
                groups.push(described.with_error_code(error::from_group_store(&err)));
                continue;
            }
        };
        let exists = stored.is_some();
        let state = if exists {
            GroupState::Empty
        } else {
            GroupState::Dead
        };
        let described = described
            .with_group_state(text(state.name().to_string()))
            .with_protocol_type(text(stored.unwrap_or_default()));
        // KIP-1043: v6 reports an unknown group as an error, older versions as "Dead".
        groups.push(if !exists && version >= 6 {
            described
                .with_error_code(error::code(ResponseError::GroupIdNotFound))
                .with_error_message(Some(text(format!("group {} not found", group_id.as_str()))))
        } else {
            described
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(in crate::broker) async fn list(
    ctx: &Arc<BrokerCtx>,
    req: ListGroupsRequest,
    session: &Session,
) -> ListGroupsResponse {
    let mut all: BTreeMap<String, (GroupState, String)> =
        match ctx.groups.offsets().list_groups().await {
            Ok(ids) => ids
                .into_iter()
                .map(|(id, protocol_type)| (id, (GroupState::Empty, protocol_type)))
                .collect(),
            Err(err) => {
                tracing::warn!("failed to list groups: {err:#}");
                return ListGroupsResponse::default()
                    .with_error_code(error::from_group_store(&err));
            }
        };
    for (id, (state, protocol_type)) in ctx.groups.active_groups() {
        if state != GroupState::Dead {
            all.insert(id, (state, protocol_type));
        }
    }
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    // Without DESCRIBE on the cluster, only the groups the client may describe (no denial
    // is logged for the others, as in Kafka).
    let authorizer = &ctx.authorizer;
    let sees_all = authorizer.allows_quietly(
        session,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_RESOURCE_NAME,
    );
    let visible = |id: &str| {
        sees_all
            || authorizer.allows_quietly(session, AclOperation::Describe, ResourceType::Group, id)
    };
    // Each broker lists the groups it coordinates; admin clients ask every broker.
    let groups = all
        .into_iter()
        .filter(|(id, _)| ctx.groups.owns(id) && visible(id))
        .filter(|(_, (state, _))| {
            states.is_empty() || states.contains(&state.name().to_ascii_lowercase())
        })
        .filter(|_| types.is_empty() || types.iter().any(|t| t == GROUP_TYPE_CLASSIC))
        .map(|(id, (state, protocol_type))| {
            ListedGroup::default()
                .with_group_id(GroupId(text(id)))
                .with_protocol_type(text(protocol_type))
                .with_group_state(text(state.name().to_string()))
                .with_group_type(text(GROUP_TYPE_CLASSIC.to_string()))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(in crate::broker) async fn delete(
    ctx: &Arc<BrokerCtx>,
    req: DeleteGroupsRequest,
    session: &Session,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group_id in req.groups_names {
        let code = if ctx.authorizer.allows(
            session,
            AclOperation::Delete,
            ResourceType::Group,
            group_id.as_str(),
        ) {
            delete_one(ctx, group_id.as_str()).await
        } else {
            error::code(ResponseError::GroupAuthorizationFailed)
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

async fn delete_one(ctx: &BrokerCtx, group_id: &str) -> i16 {
    if group_id.is_empty() {
        return error::code(ResponseError::InvalidGroupId);
    }
    if !ctx.groups.owns(group_id) {
        return error::code(ResponseError::NotCoordinator);
    }
    let active = ctx.groups.with_group(group_id, |g| !g.is_idle());
    if active {
        return error::code(ResponseError::NonEmptyGroup);
    }
    match ctx.groups.offsets().stored_group(group_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return error::code(ResponseError::GroupIdNotFound),
        Err(err) => return error::from_group_store(&err),
    }
    ctx.groups.forget_group(group_id);
    match ctx.groups.offsets().delete_group(group_id).await {
        Ok(()) => {
            tracing::info!(group = %group_id, "group deleted");
            error::NONE
        }
        Err(err) => {
            tracing::warn!(group = %group_id, "failed to delete group: {err:#}");
            error::from_group_store(&err)
        }
    }
}
