//! InitProducerId. Idempotent (non-transactional) producers need IDEMPOTENT_WRITE on the
//! cluster or WRITE on some topic (KIP-679), else CLUSTER_AUTHORIZATION_FAILED; a
//! transactional id needs WRITE on it and is served by its transaction coordinator
//! (`crate::txn`).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::BrokerCtx;
use super::error;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};
use crate::txn::state::InitRequest;

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: InitProducerIdRequest,
    version: i16,
    session: &Session,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(transactional_id) = req.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        let transactional_id = transactional_id.as_str();
        if !ctx.authorizer.allows(
            session,
            AclOperation::Write,
            ResourceType::TransactionalId,
            transactional_id,
        ) {
            return response.with_error_code(error::code(
                ResponseError::TransactionalIdAuthorizationFailed,
            ));
        }
        let request = InitRequest {
            timeout_ms: req.transaction_timeout_ms,
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
        };
        return match ctx.txns.init_producer_id(transactional_id, request).await {
            Ok((id, epoch)) => response
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(err) => {
                tracing::debug!(transactional_id, "InitProducerId refused: {err}");
                let code = error::from_coordinator(&err);
                // PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v4 (KIP-588).
                let code = if version < 4 && code == error::code(ResponseError::ProducerFenced) {
                    error::code(ResponseError::InvalidProducerEpoch)
                } else {
                    code
                };
                response.with_error_code(code)
            }
        };
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
