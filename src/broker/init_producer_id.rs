//! InitProducerId for idempotent (non-transactional) producers.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::BrokerCtx;
use super::error;

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // Transactions are not implemented; tell the client at once instead of letting it
        // retry against a coordinator that does not exist.
        return response.with_error_code(error::code(
            ResponseError::TransactionalIdAuthorizationFailed,
        ));
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
