//! InitProducerId for idempotent (non-transactional) producers: IDEMPOTENT_WRITE on the
//! cluster or WRITE on some topic (KIP-679), else CLUSTER_AUTHORIZATION_FAILED.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::BrokerCtx;
use super::error;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: InitProducerIdRequest,
    session: &Session,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(transactional_id) = &req.transactional_id {
        // Transactions are not implemented; tell the client at once instead of letting it
        // retry against a coordinator that does not exist. Kafka's check (WRITE on the
        // transactional id) still runs, so a denial is logged and counted as in Kafka.
        let authorized = ctx.authorizer.allows(
            session,
            AclOperation::Write,
            ResourceType::TransactionalId,
            transactional_id.as_str(),
        );
        tracing::debug!(authorized, "InitProducerId for a transactional id refused");
        return response.with_error_code(error::code(
            ResponseError::TransactionalIdAuthorizationFailed,
        ));
    }
    if !ctx.authorizer.allows_idempotent_write(session) {
        return response.with_error_code(error::code(ResponseError::ClusterAuthorizationFailed));
    }
    // KIP-360: a producer that already has an id asks for an epoch bump.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return response
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match ctx.producer_ids.next(ctx.meta.as_ref()).await {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(err) => {
            tracing::warn!("failed to allocate a producer id: {err:#}");
            response.with_error_code(error::from_metadata(&err))
        }
    }
}
