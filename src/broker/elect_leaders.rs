//! ElectLeaders: leadership follows rendezvous hashing over the live brokers (`cluster.rs`),
//! so the leader a partition converges to is always its preferred one and every leader
//! reads the same committed log (an "unclean" election has nothing to lose). There is never
//! an election to run: a named partition gets ELECTION_NOT_NEEDED, as Kafka answers for a
//! partition already led by its preferred replica (admin tools count that as success), an
//! unknown one UNKNOWN_TOPIC_OR_PARTITION. A request for all partitions gets no per-partition
//! results, as in Kafka, where partitions that need no election are left out.
//!
//! Needs ALTER on the cluster: otherwise CLUSTER_AUTHORIZATION_FAILED, at the top (v1+) and
//! for every named partition.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerCtx, error};
use crate::security::Session;
use crate::security::acl::AclOperation;

/// Election types (Kafka `ElectionType`).
const ELECTION_PREFERRED: i8 = 0;
const ELECTION_UNCLEAN: i8 = 1;

const NOT_NEEDED: &str = "leaders follow rendezvous hashing over the live brokers: each \
                          partition is already led by its preferred broker";

pub(super) fn handle(
    ctx: &Arc<BrokerCtx>,
    req: ElectLeadersRequest,
    version: i16,
    session: &Session,
) -> ElectLeadersResponse {
    let authorized = ctx.authorizer.allows_cluster(session, AclOperation::Alter);
    // v0 has no election type: it always asks for the preferred leader.
    if version >= 1 && !matches!(req.election_type, ELECTION_PREFERRED | ELECTION_UNCLEAN) {
        return ElectLeadersResponse::default()
            .with_error_code(error::code(ResponseError::InvalidRequest));
    }
    let denied = error::code(ResponseError::ClusterAuthorizationFailed);
    let top_level = if authorized || version < 1 {
        error::NONE
    } else {
        denied
    };
    let Some(topics) = req.topic_partitions else {
        return ElectLeadersResponse::default().with_error_code(top_level);
    };
    let results = topics
        .into_iter()
        .map(|requested| {
            let topic = ctx.topics.get(requested.topic.as_str());
            let partition_result = requested
                .partitions
                .iter()
                .map(|&index| {
                    let known = topic.as_ref().is_some_and(|t| t.partition(index).is_some());
                    let (code, message) = if !authorized {
                        (
                            ResponseError::ClusterAuthorizationFailed,
                            "Authorization failed.",
                        )
                    } else if known {
                        (ResponseError::ElectionNotNeeded, NOT_NEEDED)
                    } else {
                        (
                            ResponseError::UnknownTopicOrPartition,
                            "unknown topic or partition",
                        )
                    };
                    PartitionResult::default()
                        .with_partition_id(index)
                        .with_error_code(error::code(code))
                        .with_error_message(Some(StrBytes::from_static_str(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(requested.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(top_level)
        .with_replica_election_results(results)
}
