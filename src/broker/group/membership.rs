//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: wire types in and out of
//! `crate::group::state::Group`. JoinGroup and SyncGroup usually wait for the rest of the
//! group, so they answer with [`Reply::Later`]. Each needs READ on the group
//! (GROUP_AUTHORIZATION_FAILED), checked first, as Kafka does.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ResponseKind, SyncGroupRequest, SyncGroupResponse,
};
use tokio::time::Instant;

use super::super::{BrokerCtx, Reply, error};
use super::{opt_text, text};
use crate::group::state::{
    Answer, JoinRequest, JoinResult, LeavingMember, Protocol, SyncRequest, SyncResult,
};
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

/// READ on the group, which every membership API needs.
fn may_join(ctx: &BrokerCtx, session: &Session, group_id: &str) -> bool {
    ctx.authorizer
        .allows(session, AclOperation::Read, ResourceType::Group, group_id)
}

fn join_response(result: JoinResult, version: i16) -> JoinGroupResponse {
    let protocol_name = match result.protocol_name {
        Some(name) => Some(name),
        // Before v7 the protocol name is a non-nullable string.
        None if version < 7 => Some(String::new()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(result.error)
        .with_generation_id(result.generation_id)
        .with_protocol_type(opt_text(result.protocol_type))
        .with_protocol_name(opt_text(protocol_name))
        .with_leader(text(result.leader))
        .with_member_id(text(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(text(m.member_id))
                        .with_group_instance_id(opt_text(m.group_instance_id))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

fn join_error(code: i16, member_id: &str, version: i16) -> JoinGroupResponse {
    join_response(
        JoinResult {
            error: code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        },
        version,
    )
}

fn millis(value: i32) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}

pub(in crate::broker) fn join(
    ctx: &Arc<BrokerCtx>,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    session: &Session,
) -> Reply {
    let group_id = req.group_id.0.to_string();
    if !may_join(ctx, session, &group_id) {
        let code = error::code(ResponseError::GroupAuthorizationFailed);
        return Reply::Now(Some(Box::new(ResponseKind::JoinGroup(join_error(
            code,
            req.member_id.as_str(),
            version,
        )))));
    }
    if group_id.is_empty() {
        let code = error::code(ResponseError::InvalidGroupId);
        return Reply::Now(Some(Box::new(ResponseKind::JoinGroup(join_error(
            code,
            req.member_id.as_str(),
            version,
        )))));
    }
    if !ctx.groups.owns(&group_id) {
        let code = error::code(ResponseError::NotCoordinator);
        return Reply::Now(Some(Box::new(ResponseKind::JoinGroup(join_error(
            code,
            req.member_id.as_str(),
            version,
        )))));
    }
    let request = JoinRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", session.peer.ip()),
        session_timeout: millis(req.session_timeout_ms),
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout: if version >= 1 {
            millis(req.rebalance_timeout_ms)
        } else {
            millis(req.session_timeout_ms)
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = request.member_id.clone();
    let Some(answer) = ctx.groups.with_joinable_group(&group_id, |g| {
        g.join(request, Instant::now(), ctx.groups.limits())
    }) else {
        // The coordinator holds `--group-max-groups` groups: clients retry after a backoff.
        tracing::debug!(group = %group_id, "JoinGroup refused: too many groups in memory");
        return Reply::Now(Some(Box::new(ResponseKind::JoinGroup(join_error(
            error::code(ResponseError::CoordinatorNotAvailable),
            &member_id,
            version,
        )))));
    };
    match answer {
        Answer::Now(result) => Reply::Now(Some(Box::new(ResponseKind::JoinGroup(join_response(
            result, version,
        ))))),
        Answer::Later(rx) => Reply::Later(Box::pin(async move {
            let response = match rx.await {
                Ok(result) => join_response(result, version),
                Err(_) => join_error(
                    error::code(ResponseError::CoordinatorNotAvailable),
                    &member_id,
                    version,
                ),
            };
            Some(ResponseKind::JoinGroup(response))
        })),
    }
}

fn sync_response(result: SyncResult) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_error_code(result.error)
        .with_protocol_type(opt_text(result.protocol_type))
        .with_protocol_name(opt_text(result.protocol_name))
        .with_assignment(result.assignment)
}

pub(in crate::broker) fn sync(
    ctx: &Arc<BrokerCtx>,
    req: SyncGroupRequest,
    session: &Session,
) -> Reply {
    let group_id = req.group_id.0.to_string();
    if !may_join(ctx, session, &group_id) {
        return Reply::Now(Some(Box::new(ResponseKind::SyncGroup(
            SyncGroupResponse::default()
                .with_error_code(error::code(ResponseError::GroupAuthorizationFailed)),
        ))));
    }
    if group_id.is_empty() {
        return Reply::Now(Some(Box::new(ResponseKind::SyncGroup(
            SyncGroupResponse::default()
                .with_error_code(error::code(ResponseError::InvalidGroupId)),
        ))));
    }
    if !ctx.groups.owns(&group_id) {
        return Reply::Now(Some(Box::new(ResponseKind::SyncGroup(
            SyncGroupResponse::default()
                .with_error_code(error::code(ResponseError::NotCoordinator)),
        ))));
    }
    let request = SyncRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        generation_id: req.generation_id,
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let answer = ctx.groups.with_group(&group_id, |g| {
        g.sync(request, Instant::now(), ctx.groups.limits())
    });
    match answer {
        Answer::Now(result) => Reply::Now(Some(Box::new(ResponseKind::SyncGroup(sync_response(
            result,
        ))))),
        Answer::Later(rx) => Reply::Later(Box::pin(async move {
            let response = match rx.await {
                Ok(result) => sync_response(result),
                Err(_) => SyncGroupResponse::default()
                    .with_error_code(error::code(ResponseError::CoordinatorNotAvailable)),
            };
            Some(ResponseKind::SyncGroup(response))
        })),
    }
}

pub(in crate::broker) fn heartbeat(
    ctx: &Arc<BrokerCtx>,
    req: HeartbeatRequest,
    session: &Session,
) -> HeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    if !may_join(ctx, session, &group_id) {
        return HeartbeatResponse::default()
            .with_error_code(error::code(ResponseError::GroupAuthorizationFailed));
    }
    if group_id.is_empty() {
        return HeartbeatResponse::default()
            .with_error_code(error::code(ResponseError::InvalidGroupId));
    }
    if !ctx.groups.owns(&group_id) {
        return HeartbeatResponse::default()
            .with_error_code(error::code(ResponseError::NotCoordinator));
    }
    let instance_id = req.group_instance_id.as_ref().map(|s| s.as_str());
    let code = ctx.groups.with_group(&group_id, |g| {
        g.heartbeat(
            req.member_id.as_str(),
            instance_id,
            req.generation_id,
            Instant::now(),
        )
    });
    HeartbeatResponse::default().with_error_code(code)
}

pub(in crate::broker) fn leave(
    ctx: &Arc<BrokerCtx>,
    req: LeaveGroupRequest,
    version: i16,
    session: &Session,
) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !may_join(ctx, session, &group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(error::code(ResponseError::GroupAuthorizationFailed));
    }
    if group_id.is_empty() {
        return LeaveGroupResponse::default()
            .with_error_code(error::code(ResponseError::InvalidGroupId));
    }
    if !ctx.groups.owns(&group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(error::code(ResponseError::NotCoordinator));
    }
    // v0-2 name one member; v3+ a batch (KIP-345).
    let leaving: Vec<LeavingMember> = if version >= 3 {
        req.members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let codes: Vec<i16> = ctx.groups.with_group(&group_id, |g| {
        let now = Instant::now();
        leaving
            .iter()
            .map(|m| g.leave(m, now, ctx.groups.limits()))
            .collect()
    });
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(codes[0]);
    }
    let members = leaving
        .into_iter()
        .zip(codes)
        .map(|(m, code)| {
            MemberResponse::default()
                .with_member_id(text(m.member_id))
                .with_group_instance_id(opt_text(m.group_instance_id))
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
