//! FindCoordinator: coordination of groups (and, once transactions exist, transactional
//! ids) is spread over the live brokers by rendezvous hashing (`ClusterView::group_owner`).
//! Each key needs DESCRIBE on its group (GROUP_AUTHORIZATION_FAILED) or transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::super::{BrokerCtx, error};
use super::text;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

/// FindCoordinator key types (Kafka `CoordinatorType`).
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub(in crate::broker) fn handle(
    ctx: &Arc<BrokerCtx>,
    req: FindCoordinatorRequest,
    version: i16,
    session: &Session,
) -> FindCoordinatorResponse {
    let listener = session.listener.name();
    let answer = |key: StrBytes| -> Coordinator {
        let coordinator = Coordinator::default().with_key(key.clone());
        if req.key_type != KEY_TYPE_GROUP && req.key_type != KEY_TYPE_TRANSACTION {
            // Share groups (key type 2) and anything newer are not served here.
            return no_coordinator(coordinator, ResponseError::InvalidRequest);
        }
        let (resource_type, denied) = if req.key_type == KEY_TYPE_GROUP {
            (ResourceType::Group, ResponseError::GroupAuthorizationFailed)
        } else {
            (
                ResourceType::TransactionalId,
                ResponseError::TransactionalIdAuthorizationFailed,
            )
        };
        if !ctx
            .authorizer
            .allows(session, AclOperation::Describe, resource_type, key.as_str())
        {
            return no_coordinator(coordinator, denied);
        }
        let owner = ctx.cluster.group_owner(key.as_str());
        let broker = ctx.cluster.broker(owner);
        match broker.as_ref().and_then(|b| b.endpoint(listener)) {
            Some((host, port)) => coordinator
                .with_node_id(BrokerId(owner))
                .with_host(text(host.to_string()))
                .with_port(i32::from(port)),
            // The owner left between the two reads (the client asks again), or it has no
            // listener of this protocol.
            None => no_coordinator(coordinator, ResponseError::CoordinatorNotAvailable),
        }
    };
    if version >= 4 {
        let coordinators = req.coordinator_keys.iter().cloned().map(answer).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let single = answer(req.key.clone());
    FindCoordinatorResponse::default()
        .with_error_code(single.error_code)
        .with_node_id(single.node_id)
        .with_host(single.host)
        .with_port(single.port)
}

/// An answer without a coordinator, for `reason`.
fn no_coordinator(coordinator: Coordinator, reason: ResponseError) -> Coordinator {
    coordinator
        .with_node_id(BrokerId(-1))
        .with_host(StrBytes::default())
        .with_port(-1)
        .with_error_code(error::code(reason))
}
