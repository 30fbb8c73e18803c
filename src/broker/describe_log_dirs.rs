//! DescribeLogDirs: one "log dir" per broker, named by the object store URL, holding the
//! partitions this broker leads with their committed bytes in the object store (compressed
//! chunk bytes). The partitions led elsewhere are in the answers of their leaders, so tools
//! that ask every broker (kafka-log-dirs.sh) see each partition once. A broker has no local
//! log, so total and usable bytes are unknown (-1).
//!
//! Needs DESCRIBE on the cluster: otherwise no result, and CLUSTER_AUTHORIZATION_FAILED from
//! v3 on (older versions have no error field), as Kafka does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerCtx, error};
use crate::security::Session;
use crate::security::acl::AclOperation;

/// `total_bytes` / `usable_bytes` when unknown (KIP-827).
const BYTES_UNKNOWN: i64 = -1;

pub(super) fn handle(
    ctx: &Arc<BrokerCtx>,
    req: DescribeLogDirsRequest,
    session: &Session,
) -> DescribeLogDirsResponse {
    if !ctx
        .authorizer
        .allows_cluster(session, AclOperation::Describe)
    {
        // The field is not encoded before v3: older clients see an empty result.
        return DescribeLogDirsResponse::default().with_error_code(error::code(
            kafka_protocol::ResponseError::ClusterAuthorizationFailed,
        ));
    }
    // None: every partition; else the named partitions of the named topics.
    let wanted: Option<BTreeMap<String, BTreeSet<i32>>> = req.topics.map(|topics| {
        let mut wanted: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for t in topics {
            wanted
                .entry(t.topic.to_string())
                .or_default()
                .extend(t.partitions);
        }
        wanted
    });
    let topics = ctx
        .topics
        .all()
        .into_iter()
        .filter_map(|topic| {
            let asked = match &wanted {
                None => None,
                Some(wanted) => Some(wanted.get(&topic.name)?),
            };
            let partitions: Vec<DescribeLogDirsPartition> = topic
                .partitions
                .iter()
                .filter(|p| asked.is_none_or(|asked| asked.contains(&p.tp.partition)))
                .filter_map(|p| {
                    let bytes = p.stored_bytes()?;
                    Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(p.tp.partition)
                            .with_partition_size(i64::try_from(bytes).unwrap_or(i64::MAX))
                            .with_offset_lag(0)
                            .with_is_future_key(false),
                    )
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let dir = DescribeLogDirsResult::default()
        .with_error_code(error::NONE)
        .with_log_dir(StrBytes::from_string(ctx.config.object_store_url.clone()))
        .with_topics(topics)
        .with_total_bytes(BYTES_UNKNOWN)
        .with_usable_bytes(BYTES_UNKNOWN);
    DescribeLogDirsResponse::default().with_results(vec![dir])
}
