//! FindCoordinator: this broker coordinates every group (and, once transactions exist, every
//! transactional id) until the cluster issue spreads coordination over live brokers.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::super::{BrokerCtx, error};
use super::text;

/// FindCoordinator key types (Kafka `CoordinatorType`).
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub(in crate::broker) fn handle(
    ctx: &Arc<BrokerCtx>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = &ctx.advertised;
    let answer = |key: StrBytes| -> Coordinator {
        let coordinator = Coordinator::default().with_key(key);
        if req.key_type != KEY_TYPE_GROUP && req.key_type != KEY_TYPE_TRANSACTION {
            // Share groups (key type 2) and anything newer are not served here.
            return coordinator
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::default())
                .with_port(-1)
                .with_error_code(error::code(ResponseError::InvalidRequest));
        }
        coordinator
            .with_node_id(BrokerId(ctx.broker_id))
            .with_host(text(host.clone()))
            .with_port(i32::from(*port))
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
