//! DescribeCluster: the live brokers (what admin clients show as the cluster). Answered to
//! everyone, as Kafka does; the cluster's authorized operations, when asked for, need DESCRIBE
//! on the cluster (else 0).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::BrokerCtx;
use super::error;
use crate::security::Session;
use crate::security::acl::{AclOperation, CLUSTER_RESOURCE_NAME, ResourceType};

/// `cluster_authorized_operations` when the client did not ask for them (Kafka's INT32_MIN).
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// KIP-919 endpoint types: brokers (1); controllers (2) do not exist here.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub(super) fn handle(
    ctx: &Arc<BrokerCtx>,
    req: DescribeClusterRequest,
    version: i16,
    session: &Session,
) -> DescribeClusterResponse {
    let authorizer = &ctx.authorizer;
    let authorized_operations = if !req.include_cluster_authorized_operations {
        AUTHORIZED_OPERATIONS_OMITTED
    } else if authorizer.allows_cluster(session, AclOperation::Describe) {
        authorizer.authorized_operations(session, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    } else {
        0
    };
    let response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(ctx.cluster_id.clone()))
        .with_cluster_authorized_operations(authorized_operations);
    let response = if version >= 1 {
        response.with_endpoint_type(ENDPOINT_TYPE_BROKERS)
    } else {
        response
    };
    if version >= 1 && req.endpoint_type != ENDPOINT_TYPE_BROKERS {
        return response
            .with_error_code(error::code(ResponseError::UnsupportedEndpointType))
            .with_error_message(Some(StrBytes::from_static_str(
                "Strato has no controllers: every broker serves the cluster",
            )));
    }
    let live = ctx.cluster.live();
    // No controller quorum: the lowest live broker id stands in, as in Metadata.
    let controller = live.keys().next().copied().unwrap_or(ctx.broker_id);
    // Addresses on the client's listener, as in Metadata.
    let listener = session.listener.name();
    let brokers = live
        .into_values()
        .filter_map(|b| {
            let (host, port) = b.endpoint(listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.broker_id))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(i32::from(port))
                    .with_rack(b.rack.map(StrBytes::from_string)),
            )
        })
        .collect();
    response
        .with_controller_id(BrokerId(controller))
        .with_brokers(brokers)
}
