//! The consumer-group APIs as the CLI uses them: ListGroups, DescribeGroups, OffsetFetch,
//! OffsetCommit and DeleteGroups, each built for the negotiated version and flattened into
//! plain types. Requests about one group go to its coordinator.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::cluster::{Client, TopicPartition};
use super::kafka_client::{ClientError, ErrorCode};

/// Highest ConsumerProtocolAssignment version `kafka-protocol` decodes. Later versions only
/// append fields, so a newer assignment is read as this one (as Kafka's own client does).
const ASSIGNMENT_VERSION_MAX: i16 = 3;
/// ListGroups v4 added the states filter (KIP-518).
const LIST_GROUPS_STATES_VERSION: i16 = 4;
/// OffsetFetch v8 moved to a list of groups (KIP-709).
const OFFSET_FETCH_GROUPS_VERSION: i16 = 8;
/// A standalone commit: not from a group member, so no generation and no member id.
const STANDALONE_GENERATION: i32 = -1;

/// One group in a ListGroups answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedGroup {
    pub group_id: String,
    /// `None` when the broker speaks ListGroups below v4, which has no state.
    pub state: Option<String>,
    pub protocol_type: String,
}

/// Lists the groups of every broker (each coordinates some of them), optionally only those
/// in `states` (exact Kafka state names).
pub async fn list_groups(
    client: &mut Client,
    states: &[String],
) -> Result<Vec<ListedGroup>, ClientError> {
    let mut groups = BTreeMap::new();
    for node_id in client.live_node_ids().await? {
        let connection = client.node(node_id).await?;
        let version = connection.version::<ListGroupsRequest>()?;
        if !states.is_empty() && version < LIST_GROUPS_STATES_VERSION {
            return Err(ClientError::FeatureUnsupported {
                addr: connection.addr().to_string(),
                api: ApiKey::ListGroups,
                version,
                needed: LIST_GROUPS_STATES_VERSION,
                feature: "filtering by state",
            });
        }
        let response = connection
            .send(|version| {
                let mut request = ListGroupsRequest::default();
                if version >= LIST_GROUPS_STATES_VERSION {
                    request.states_filter = states.iter().cloned().map(StrBytes::from).collect();
                }
                request
            })
            .await?;
        if response.error_code != 0 {
            return Err(ClientError::Kafka {
                addr: connection.addr().to_string(),
                api: ApiKey::ListGroups,
                code: ErrorCode(response.error_code),
            });
        }
        for group in response.groups {
            let listed = ListedGroup {
                group_id: group.group_id.0.to_string(),
                state: (version >= LIST_GROUPS_STATES_VERSION)
                    .then(|| group.group_state.to_string()),
                protocol_type: group.protocol_type.to_string(),
            };
            groups.insert(listed.group_id.clone(), listed);
        }
    }
    Ok(groups.into_values().collect())
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub error: ErrorCode,
    pub state: String,
    pub protocol_type: String,
    /// The assignor (`range`, `cooperative-sticky`, ...) for consumer groups.
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded for consumer groups; `None` when the assignment is not a consumer one or
    /// does not decode.
    pub assignment: Option<Vec<TopicPartition>>,
}

pub async fn describe_group(
    client: &mut Client,
    group: &str,
) -> Result<DescribedGroup, ClientError> {
    let build = |_version| {
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from(group.to_string()))])
    };
    let error_of = |response: &kafka_protocol::messages::DescribeGroupsResponse| {
        ErrorCode(response.groups.first().map_or(0, |g| g.error_code))
    };
    let response = client.send_to_coordinator(group, build, error_of).await?;
    let Some(described) = response.groups.into_iter().next() else {
        return Err(ClientError::BadResponse {
            addr: format!("coordinator of {group}"),
            api: ApiKey::DescribeGroups,
            reason: "no group in the response".to_string(),
        });
    };
    let is_consumer = described.protocol_type.as_str() == "consumer";
    let members = described
        .members
        .into_iter()
        .map(|m| GroupMember {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.map(|id| id.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: if is_consumer {
                decode_assignment(m.member_assignment)
            } else {
                None
            },
        })
        .collect();
    Ok(DescribedGroup {
        group_id: described.group_id.0.to_string(),
        error: ErrorCode(described.error_code),
        state: described.group_state.to_string(),
        protocol_type: described.protocol_type.to_string(),
        protocol: described.protocol_data.to_string(),
        members,
    })
}

/// A consumer member assignment: a 2-byte version, then ConsumerProtocolAssignment. An
/// empty one (a member that has not synced yet) is no partitions.
pub fn decode_assignment(mut bytes: Bytes) -> Option<Vec<TopicPartition>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let version = bytes.try_get_i16().ok()?;
    if version < 0 {
        return None;
    }
    let assignment =
        ConsumerProtocolAssignment::decode(&mut bytes, version.min(ASSIGNMENT_VERSION_MAX)).ok()?;
    let mut partitions: Vec<TopicPartition> = assignment
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.topic.0.as_str(), *p))
        })
        .collect();
    partitions.sort();
    Some(partitions)
}

/// The committed offsets of `group` (OffsetFetch with null topics: all of them). Partitions
/// without a commit (offset -1) are left out.
pub async fn fetch_offsets(
    client: &mut Client,
    group: &str,
) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
    let group_id = GroupId(StrBytes::from(group.to_string()));
    let build = |version| {
        let mut request = OffsetFetchRequest::default();
        if version >= OFFSET_FETCH_GROUPS_VERSION {
            // The top-level `topics` keeps its default: v8+ must not set it.
            request.groups = vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(group_id.clone())
                    .with_topics(None),
            ];
        } else {
            request.group_id = group_id.clone();
            request.topics = None;
        }
        request
    };
    let error_of = |response: &kafka_protocol::messages::OffsetFetchResponse| {
        ErrorCode(
            response
                .groups
                .first()
                .map_or(response.error_code, |g| g.error_code),
        )
    };
    let response = client.send_to_coordinator(group, build, error_of).await?;
    let code = error_of(&response);
    if !code.is_ok() {
        return Err(ClientError::Kafka {
            addr: format!("coordinator of {group}"),
            api: ApiKey::OffsetFetch,
            code,
        });
    }
    // Both layouts flatten to (topic, partition, offset, error).
    let mut rows: Vec<(String, i32, i64, i16)> = Vec::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            rows.push((
                topic.name.0.to_string(),
                p.partition_index,
                p.committed_offset,
                p.error_code,
            ));
        }
    }
    for group in &response.groups {
        for topic in &group.topics {
            for p in &topic.partitions {
                rows.push((
                    topic.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                ));
            }
        }
    }
    let mut offsets = BTreeMap::new();
    for (topic, partition, offset, error_code) in rows {
        if error_code != 0 {
            return Err(ClientError::Kafka {
                addr: format!("coordinator of {group} (partition {topic}-{partition})"),
                api: ApiKey::OffsetFetch,
                code: ErrorCode(error_code),
            });
        }
        if offset >= 0 {
            offsets.insert(TopicPartition::new(topic, partition), offset);
        }
    }
    Ok(offsets)
}

/// Commits `offsets` for `group` as a standalone commit (generation -1, no member id),
/// which a broker accepts only while the group has no members. Returns each partition's
/// result.
pub async fn commit_offsets(
    client: &mut Client,
    group: &str,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<BTreeMap<TopicPartition, ErrorCode>, ClientError> {
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (tp, offset) in offsets {
        by_topic
            .entry(tp.topic.as_str())
            .or_default()
            .push((tp.partition, *offset));
    }
    let build = |_version| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from(group.to_string())))
            .with_generation_id_or_member_epoch(STANDALONE_GENERATION)
            .with_member_id(StrBytes::from_static_str(""))
            .with_topics(
                by_topic
                    .iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from(topic.to_string())))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|(partition, offset)| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(*partition)
                                            .with_committed_offset(*offset)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    };
    // OffsetCommit has no group-level error: a moved coordinator shows in every partition.
    let error_of = |response: &kafka_protocol::messages::OffsetCommitResponse| {
        ErrorCode(
            response
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .map_or(0, |p| p.error_code),
        )
    };
    let response = client.send_to_coordinator(group, build, error_of).await?;
    let mut results = BTreeMap::new();
    for topic in response.topics {
        for p in topic.partitions {
            results.insert(
                TopicPartition::new(topic.name.0.as_str(), p.partition_index),
                ErrorCode(p.error_code),
            );
        }
    }
    Ok(results)
}

/// Deletes each group at its coordinator; returns each group's result. A group whose
/// coordinator cannot be found gets that lookup's error code.
pub async fn delete_groups(
    client: &mut Client,
    groups: &[String],
) -> Result<Vec<(String, ErrorCode)>, ClientError> {
    let mut results = Vec::with_capacity(groups.len());
    for group in groups {
        let build = |_version| {
            DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from(group.clone()))])
        };
        let error_of = |response: &kafka_protocol::messages::DeleteGroupsResponse| {
            ErrorCode(response.results.first().map_or(0, |r| r.error_code))
        };
        let code = match client.send_to_coordinator(group, build, error_of).await {
            Ok(response) => match response.results.first() {
                Some(result) => ErrorCode(result.error_code),
                None => {
                    return Err(ClientError::BadResponse {
                        addr: format!("coordinator of {group}"),
                        api: ApiKey::DeleteGroups,
                        reason: "no result for the group".to_string(),
                    });
                }
            },
            Err(ClientError::Kafka {
                api: ApiKey::FindCoordinator,
                code,
                ..
            }) => code,
            Err(err) => return Err(err),
        };
        results.push((group.clone(), code));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
    use kafka_protocol::protocol::Encodable;

    fn assignment_bytes(version: i16, topics: &[(&str, &[i32])]) -> Bytes {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(TopicName(StrBytes::from(t.to_string())))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        assignment.encode(&mut buf, version.min(3)).unwrap();
        buf.freeze()
    }

    #[test]
    fn consumer_assignments_decode_sorted() {
        let bytes = assignment_bytes(1, &[("b", &[1, 0]), ("a", &[2])]);
        assert_eq!(
            decode_assignment(bytes),
            Some(vec![
                TopicPartition::new("a", 2),
                TopicPartition::new("b", 0),
                TopicPartition::new("b", 1),
            ])
        );
        // A newer version is read as the newest known one.
        let bytes = assignment_bytes(5, &[("t", &[0])]);
        assert_eq!(
            decode_assignment(bytes),
            Some(vec![TopicPartition::new("t", 0)])
        );
        assert_eq!(decode_assignment(Bytes::new()), Some(vec![]));
        assert_eq!(decode_assignment(Bytes::from_static(&[0, 0, 0xff])), None);
    }
}
