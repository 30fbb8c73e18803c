//! The consumer-group APIs over raw frames, at chosen versions: the error codes Kafka's
//! classic group coordinator gives (which real clients rely on but rarely trigger), static
//! membership fencing, batched LeaveGroup and FindCoordinator, and the old and new shapes of
//! OffsetFetch.

mod common;

use std::net::TcpStream;

use bytes::{BufMut, Bytes, BytesMut};
use common::Broker;
use common::wire::{connect, response, send};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolSubscription, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

const BROKER_ARGS: &[&str] = &["--group-initial-rebalance-delay-ms", "0"];

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn code(err: ResponseError) -> i16 {
    err.code()
}

/// Consumer protocol metadata (version 0) subscribing to `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect())
        .encode(&mut buf, 0)
        .unwrap();
    buf.freeze()
}

/// A protocol-level conversation on one connection with increasing correlation ids.
struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    fn new(broker: &Broker) -> Conn {
        Conn {
            stream: connect(broker),
            correlation_id: 0,
        }
    }

    fn call<Req: Encodable, Resp: kafka_protocol::protocol::Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        self.correlation_id += 1;
        send(&mut self.stream, key, version, self.correlation_id, request);
        response(&mut self.stream, key, version, self.correlation_id)
    }

    fn join(&mut self, version: i16, request: JoinGroupRequest) -> JoinGroupResponse {
        self.call(ApiKey::JoinGroup, version, &request)
    }

    fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        instance: Option<&str>,
    ) -> i16 {
        let resp: HeartbeatResponse = self.call(
            ApiKey::Heartbeat,
            4,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_member_id(s(member))
                .with_generation_id(generation)
                .with_group_instance_id(instance.map(s)),
        );
        resp.error_code
    }

    fn commit(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        topic: &str,
        offset: i64,
        metadata: &str,
    ) -> i16 {
        let resp: OffsetCommitResponse = self.call(
            ApiKey::OffsetCommit,
            8,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_member_id(s(member))
                .with_generation_id_or_member_epoch(generation)
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(-1)
                                .with_committed_metadata(Some(s(metadata))),
                        ]),
                ]),
        );
        resp.topics[0].partitions[0].error_code
    }

    fn delete_group(&mut self, group: &str) -> i16 {
        let resp: DeleteGroupsResponse = self.call(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]),
        );
        resp.results[0].error_code
    }
}

fn join_request(group: &str, member: &str, instance: Option<&str>) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription(&["topic-a"])),
        ])
}

fn create_topic(broker: &Broker, name: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::kafka::create_topic(&broker.bootstrap(), name, 1));
}

/// Goal: one member's life through every group API, with the exact error code Kafka gives
/// at each wrong step. Method: raw requests at fixed versions on one connection (with no
/// initial rebalance delay, a lone member's join completes at once).
#[test]
fn a_member_lifecycle_gets_kafka_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), BROKER_ARGS);
    create_topic(&broker, "topic-a");
    create_topic(&broker, "topic-b");
    let mut conn = Conn::new(&broker);

    // FindCoordinator: the single (v3) and batched (v4+) forms; share groups are refused.
    let single: FindCoordinatorResponse = conn.call(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(s("g"))
            .with_key_type(0),
    );
    assert_eq!(single.error_code, 0);
    assert_eq!(single.port, i32::from(broker.addr.port()));
    let batched: FindCoordinatorResponse = conn.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s("g"), s("other")]),
    );
    assert_eq!(batched.coordinators.len(), 2);
    assert!(
        batched
            .coordinators
            .iter()
            .all(|c| c.error_code == 0 && c.port == i32::from(broker.addr.port()))
    );
    let share: FindCoordinatorResponse = conn.call(
        ApiKey::FindCoordinator,
        6,
        &FindCoordinatorRequest::default()
            .with_key_type(2)
            .with_coordinator_keys(vec![s("g")]),
    );
    assert_eq!(
        share.coordinators[0].error_code,
        code(ResponseError::InvalidRequest)
    );

    // JoinGroup: a bad group id, then KIP-394's two steps, with a session timeout check.
    assert_eq!(
        conn.join(5, join_request("", "", None)).error_code,
        code(ResponseError::InvalidGroupId)
    );
    let first = conn.join(5, join_request("g", "", None));
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    let short_session = join_request("g", &member, None).with_session_timeout_ms(100);
    assert_eq!(
        conn.join(5, short_session).error_code,
        code(ResponseError::InvalidSessionTimeout)
    );
    let joined = conn.join(7, join_request("g", &member, None));
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(
        joined
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .as_deref(),
        Some("range")
    );
    assert_eq!(
        joined.members.len(),
        1,
        "the leader gets every member's metadata"
    );
    assert_eq!(joined.members[0].metadata, subscription(&["topic-a"]));

    // Heartbeats check member and generation.
    assert_eq!(
        conn.heartbeat("g", &member, 0, None),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        conn.heartbeat("g", "ghost", 1, None),
        code(ResponseError::UnknownMemberId)
    );

    // SyncGroup: the leader's assignment comes back to it.
    let assignment = Bytes::from_static(b"\x00\x00assignment-bytes");
    let synced: SyncGroupResponse = conn.call(
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(&member))
            .with_generation_id(1)
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(assignment.clone()),
            ]),
    );
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, assignment);
    assert_eq!(conn.heartbeat("g", &member, 1, None), 0);

    // OffsetCommit: unknown topics and oversized metadata are refused per partition, and a
    // standalone commit is refused while the group has members.
    assert_eq!(
        conn.commit("g", &member, 1, "nope", 5, ""),
        code(ResponseError::UnknownTopicOrPartition)
    );
    assert_eq!(
        conn.commit("g", &member, 1, "topic-a", 5, &"m".repeat(5000)),
        code(ResponseError::OffsetMetadataTooLarge)
    );
    assert_eq!(
        conn.commit("g", "", -1, "topic-a", 5, ""),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        conn.commit("g", &member, 2, "topic-a", 5, ""),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(conn.commit("g", &member, 1, "topic-a", 7, "meta"), 0);
    assert_eq!(conn.commit("g", &member, 1, "topic-b", 3, ""), 0);

    // OffsetFetch: v1 (named partitions, no group error) and v8 (groups, all topics).
    let v1: OffsetFetchResponse = conn.call(
        ApiKey::OffsetFetch,
        1,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s("topic-a")))
                    .with_partition_indexes(vec![0]),
            ])),
    );
    assert_eq!(v1.topics[0].partitions[0].committed_offset, 7);
    assert_eq!(
        v1.topics[0].partitions[0]
            .metadata
            .as_ref()
            .map(|m| m.to_string())
            .as_deref(),
        Some("meta")
    );
    let v8: OffsetFetchResponse = conn.call(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("never")))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s("topic-a")))
                        .with_partition_indexes(vec![0]),
                ])),
        ]),
    );
    let all: Vec<(String, i64)> = v8.groups[0]
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions[0].committed_offset))
        .collect();
    assert_eq!(
        all,
        vec![("topic-a".to_string(), 7), ("topic-b".to_string(), 3)]
    );
    assert_eq!(
        v8.groups[1].topics[0].partitions[0].committed_offset, -1,
        "no commit yet"
    );

    // Describe and list the live group.
    let described: DescribeGroupsResponse = conn.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
    );
    let group = &described.groups[0];
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!(group.protocol_data.as_str(), "range");
    assert_eq!(group.members[0].member_assignment, assignment);
    assert_eq!(group.members[0].client_host.as_str(), "/127.0.0.1");
    let stable: ListGroupsResponse = conn.call(
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
    );
    assert!(stable.groups.iter().any(|g| g.group_id.as_str() == "g"));

    // A live group keeps its offsets: DeleteGroups and OffsetDelete of subscribed topics are
    // refused; unsubscribed topics may go.
    assert_eq!(conn.delete_group("g"), code(ResponseError::NonEmptyGroup));
    assert_eq!(
        conn.delete_group("never-existed"),
        code(ResponseError::GroupIdNotFound)
    );
    let deleted: OffsetDeleteResponse = conn.call(
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(
                ["topic-a", "topic-b"]
                    .iter()
                    .map(|t| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(vec![
                                OffsetDeleteRequestPartition::default().with_partition_index(0),
                            ])
                    })
                    .collect(),
            ),
    );
    assert_eq!(deleted.error_code, 0);
    assert_eq!(
        deleted.topics[0].partitions[0].error_code,
        code(ResponseError::GroupSubscribedToTopic)
    );
    assert_eq!(deleted.topics[1].partitions[0].error_code, 0);

    // Batched LeaveGroup: per-member answers.
    let left: LeaveGroupResponse = conn.call(
        ApiKey::LeaveGroup,
        5,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_members(vec![
                MemberIdentity::default().with_member_id(s(&member)),
                MemberIdentity::default().with_member_id(s("ghost")),
            ]),
    );
    assert_eq!(left.error_code, 0);
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, code(ResponseError::UnknownMemberId)]);

    // Empty now: standalone commits work, then the group can be deleted, after which
    // DescribeGroups v6 reports it not found (KIP-1043) and v5 as Dead.
    assert_eq!(conn.commit("g", "", -1, "topic-a", 9, ""), 0);
    let empty: DescribeGroupsResponse = conn.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
    );
    assert_eq!(empty.groups[0].group_state.as_str(), "Empty");
    assert_eq!(empty.groups[0].protocol_type.as_str(), "consumer");
    assert_eq!(conn.delete_group("g"), 0);
    let gone: DescribeGroupsResponse = conn.call(
        ApiKey::DescribeGroups,
        6,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
    );
    assert_eq!(
        gone.groups[0].error_code,
        code(ResponseError::GroupIdNotFound)
    );
    let gone_v5: DescribeGroupsResponse = conn.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
    );
    assert_eq!(gone_v5.groups[0].error_code, 0);
    assert_eq!(gone_v5.groups[0].group_state.as_str(), "Dead");
}

/// Goal: KIP-345 static membership at the protocol level: a static member joins without
/// MEMBER_ID_REQUIRED, a restart under the same instance id replaces it (same generation),
/// and the old incarnation is fenced everywhere.
#[test]
fn static_members_are_replaced_and_the_old_incarnation_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), BROKER_ARGS);
    let mut conn = Conn::new(&broker);
    let joined = conn.join(5, join_request("sg", "", Some("instance-1")));
    assert_eq!(joined.error_code, 0, "static members get their id at once");
    let old = joined.member_id.to_string();
    let synced: SyncGroupResponse = conn.call(
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s("sg")))
            .with_member_id(s(&old))
            .with_group_instance_id(Some(s("instance-1")))
            .with_generation_id(joined.generation_id)
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&old))
                    .with_assignment(Bytes::from_static(b"mine")),
            ]),
    );
    assert_eq!(synced.error_code, 0);

    let restarted = conn.join(5, join_request("sg", "", Some("instance-1")));
    assert_eq!(restarted.error_code, 0);
    assert_eq!(
        restarted.generation_id, joined.generation_id,
        "no rebalance"
    );
    let new = restarted.member_id.to_string();
    assert_ne!(new, old);
    assert_eq!(
        conn.heartbeat("sg", &old, joined.generation_id, Some("instance-1")),
        code(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        conn.heartbeat("sg", &new, joined.generation_id, Some("instance-1")),
        0
    );
    let fenced_leave: LeaveGroupResponse = conn.call(
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("sg")))
            .with_members(vec![
                MemberIdentity::default()
                    .with_member_id(s(&old))
                    .with_group_instance_id(Some(s("instance-1"))),
            ]),
    );
    assert_eq!(
        fenced_leave.members[0].error_code,
        code(ResponseError::FencedInstanceId)
    );
    // An admin removes a static member by instance id alone.
    let removed: LeaveGroupResponse = conn.call(
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("sg")))
            .with_members(vec![
                MemberIdentity::default()
                    .with_member_id(s(""))
                    .with_group_instance_id(Some(s("instance-1"))),
            ]),
    );
    assert_eq!(removed.members[0].error_code, 0);
    assert_eq!(
        conn.heartbeat("sg", &new, joined.generation_id, Some("instance-1")),
        code(ResponseError::UnknownMemberId)
    );
}

/// Goal: the coordinator holds at most `--group-max-groups` groups; a JoinGroup that would
/// start one more is answered COORDINATOR_NOT_AVAILABLE (retriable) and counted, and is let
/// in once a group empties. Method: raw JoinGroup v3 (member ids given at once) into groups
/// a and b with a limit of 2, then c; a's member leaves; c again.
#[test]
fn the_number_of_groups_in_memory_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = BROKER_ARGS.to_vec();
    args.extend(["--group-max-groups", "2"]);
    let broker = Broker::start(dir.path(), &args);
    create_topic(&broker, "topic-a");
    let mut conn = Conn::new(&broker);
    let a = conn.join(3, join_request("a", "", None));
    assert_eq!(a.error_code, 0);
    assert_eq!(conn.join(3, join_request("b", "", None)).error_code, 0);
    assert_eq!(
        conn.join(3, join_request("c", "", None)).error_code,
        code(ResponseError::CoordinatorNotAvailable)
    );
    assert_eq!(
        broker.metric("strato_consumer_group_joins_refused_total"),
        1.0
    );
    assert_eq!(broker.metric("strato_consumer_groups"), 2.0);

    let left: LeaveGroupResponse = conn.call(
        ApiKey::LeaveGroup,
        0,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("a")))
            .with_member_id(a.member_id.clone()),
    );
    assert_eq!(left.error_code, 0);
    assert_eq!(conn.join(3, join_request("c", "", None)).error_code, 0);
}
