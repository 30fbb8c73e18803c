//! Authorization with `--authorizer true`: ACLs created through CreateAcls (the `strato acl`
//! CLI, confluent-kafka's AdminClient) decide what librdkafka clients and raw requests may
//! do, with Kafka's error codes; a super user may do everything; ACLs created through one
//! broker of a cluster hold on the others.
//!
//! Most tests give ACLs to `User:ANONYMOUS` (every PLAINTEXT connection's principal): a
//! setup phase runs the broker with `--super-users User:ANONYMOUS` (it creates
//! topics and ACLs), then the broker restarts on the same data directory without it, and the
//! stored ACLs alone decide. Others log in with SASL or a TLS client certificate.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::kafka::producer;
use common::wire::Wire;
use common::{Broker, add_user, run_client_script, run_with_timeout, wait_until};
use kafka_protocol::ResponseError;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

/// How long a CLI command may run.
const CLI_DEADLINE: Duration = Duration::from_secs(60);
/// How long a client may take to see an expected outcome.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long an ACL created through one broker may take to hold on another (the watch
/// delivers it within milliseconds; the margin is for a loaded test machine).
const PROPAGATION_DEADLINE: Duration = Duration::from_secs(5);
/// The principal of every connection until SASL authenticates one.
const ANONYMOUS: &str = "User:ANONYMOUS";
/// A short initial rebalance delay, so group tests do not wait Kafka's 3 s.
const REBALANCE_DELAY: [&str; 2] = ["--group-initial-rebalance-delay-ms", "300"];

fn strato(args: &[&str]) -> Output {
    run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_strato")).args(args),
        CLI_DEADLINE,
    )
}

/// Runs a CLI command that must succeed; returns its stdout.
fn strato_ok(args: &[&str]) -> String {
    let out = strato(args);
    assert!(
        out.status.success(),
        "strato {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let partitions = partitions.to_string();
    strato_ok(&[
        "topic",
        "create",
        name,
        "--partitions",
        &partitions,
        "--bootstrap",
        bootstrap,
    ]);
}

/// `strato acl create --bootstrap <bootstrap> <args>`.
fn grant(bootstrap: &str, args: &[&str]) {
    let mut all = vec!["acl", "create", "--bootstrap", bootstrap];
    all.extend_from_slice(args);
    strato_ok(&all);
}

/// Allows `User:ANONYMOUS` `operation` on a resource (`["--topic", "orders"]`).
fn allow_anonymous(bootstrap: &str, operation: &str, resource: &[&str]) {
    let mut args = vec!["--allow-principal", ANONYMOUS, "--operation", operation];
    args.extend_from_slice(resource);
    grant(bootstrap, &args);
}

/// A broker with the authorizer on whose data directory `setup` prepared while
/// `User:ANONYMOUS` was a super user (topics, records, ACLs).
fn broker_after_setup(dir: &Path, setup: impl FnOnce(&str)) -> Broker {
    let mut admin_args = vec!["--authorizer", "true", "--super-users", ANONYMOUS];
    admin_args.extend_from_slice(&REBALANCE_DELAY);
    let admin = Broker::start(dir, &admin_args);
    setup(&admin.bootstrap());
    admin.stop();
    let mut args = vec!["--authorizer", "true"];
    args.extend_from_slice(&REBALANCE_DELAY);
    Broker::start(dir, &args)
}

/// Produces one record with librdkafka; the error code if it was not acknowledged.
async fn produce_one(bootstrap: &str, topic: &str) -> Result<(), RDKafkaErrorCode> {
    produce_one_as(bootstrap, topic, &[]).await
}

/// [`produce_one`] with more client settings (a SASL login).
async fn produce_one_as(
    bootstrap: &str,
    topic: &str,
    login: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut settings = vec![("message.timeout.ms", "20000"), ("retries", "0")];
    settings.extend_from_slice(login);
    let producer = producer(bootstrap, &settings);
    producer
        .send(
            FutureRecord::<str, str>::to(topic).key("k").payload("v"),
            DEADLINE,
        )
        .await
        .map(|_| ())
        .map_err(|(err, _)| err.rdkafka_error_code().expect("a Kafka error code"))
}

/// A group consumer of `topic` in `group` reading from the beginning.
fn group_consumer(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    group_consumer_as(bootstrap, group, topic, &[])
}

/// [`group_consumer`] with more client settings (a SASL login).
fn group_consumer_as(
    bootstrap: &str,
    group: &str,
    topic: &str,
    login: &[(&str, &str)],
) -> BaseConsumer {
    let mut settings = vec![("group.id", group), ("auto.offset.reset", "earliest")];
    settings.extend_from_slice(login);
    let consumer = common::kafka::consumer(bootstrap, &settings);
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Polls `consumer` until it reports `code`; a record arriving first fails the test.
fn wait_for_error(consumer: &BaseConsumer, code: RDKafkaErrorCode) {
    let end = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < end, "no {code:?} within {DEADLINE:?}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Err(err)) if err.rdkafka_error_code() == Some(code) => return,
            Some(Ok(_)) => panic!("a record arrived instead of {code:?}"),
            _ => {}
        }
    }
}

/// The value of the first record `consumer` receives.
fn first_value(consumer: &BaseConsumer) -> Vec<u8> {
    let end = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < end, "no record within {DEADLINE:?}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => return rdkafka::Message::payload(&msg).unwrap_or_default().to_vec(),
            Some(Err(err)) => eprintln!("consumer: {err}"),
            None => {}
        }
    }
}

/// The denial count of `resource_type`/`operation` in the broker's /metrics.
fn denials(broker: &Broker, resource_type: &str, operation: &str) -> f64 {
    broker.metric(&format!(
        "strato_authorization_denied_total{{resource_type=\"{resource_type}\",operation=\"{operation}\"}}"
    ))
}

/// ACL-specific raw requests.
trait WireExt {
    fn topic_metadata(&mut self, topic: &str) -> (i16, i32);
}

impl WireExt for Wire {
    /// Metadata v12 for one topic: (error code, topic authorized operations).
    fn topic_metadata(&mut self, topic: &str) -> (i16, i32) {
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        use kafka_protocol::messages::{MetadataRequest, TopicName};
        let response = self.call(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(topic.into())))),
                ]))
                .with_include_topic_authorized_operations(true),
        );
        let found = &response.topics[0];
        (found.error_code, found.topic_authorized_operations)
    }
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

/// Goal: Produce needs WRITE on the topic. Method: the principal may READ topic `orders`
/// (so Metadata describes it) and WRITE topic `events`; librdkafka's producer gets
/// TOPIC_AUTHORIZATION_FAILED for `orders` and an acknowledgement for `events`, and the
/// denial is counted in /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_without_write_is_refused_with_topic_authorization_failed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tokio::task::block_in_place(|| {
        broker_after_setup(dir.path(), |bootstrap| {
            create_topic(bootstrap, "orders", 1);
            create_topic(bootstrap, "events", 1);
            allow_anonymous(bootstrap, "Read", &["--topic", "orders"]);
            allow_anonymous(bootstrap, "Write", &["--topic", "events"]);
        })
    });
    assert_eq!(
        produce_one(&broker.bootstrap(), "orders").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(produce_one(&broker.bootstrap(), "events").await, Ok(()));
    assert!(denials(&broker, "TOPIC", "WRITE") >= 1.0);
    tokio::task::block_in_place(|| broker.stop());
}

/// Goal: joining a consumer group needs READ on the group. Method: the principal may read
/// topic `orders` and DESCRIBE group `watchers` (FindCoordinator answers) but not READ it:
/// librdkafka's group consumer reports GROUP_AUTHORIZATION_FAILED; in group `readers`, where
/// it may READ, it consumes the record produced during setup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_join_without_read_on_the_group_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tokio::task::block_in_place(|| {
        broker_after_setup(dir.path(), |bootstrap| {
            create_topic(bootstrap, "orders", 1);
            strato_ok(&[
                "produce",
                "orders",
                "--value",
                "hello",
                "--bootstrap",
                bootstrap,
            ]);
            allow_anonymous(bootstrap, "Read", &["--topic", "orders"]);
            allow_anonymous(bootstrap, "Describe", &["--group", "watchers"]);
            allow_anonymous(bootstrap, "Read", &["--group", "readers"]);
        })
    });
    tokio::task::block_in_place(|| {
        let denied = group_consumer(&broker.bootstrap(), "watchers", "orders");
        wait_for_error(&denied, RDKafkaErrorCode::GroupAuthorizationFailed);
        let allowed = group_consumer(&broker.bootstrap(), "readers", "orders");
        assert_eq!(first_value(&allowed), b"hello");
    });
    assert!(denials(&broker, "GROUP", "READ") >= 1.0);
    tokio::task::block_in_place(|| broker.stop());
}

/// Goal: a PREFIXED ACL grants a family of topics and nothing else. Method: WRITE on topics
/// prefixed `team-a-`; librdkafka produces to `team-a-1` and `team-a-2` but gets
/// TOPIC_AUTHORIZATION_FAILED for `team-b-1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefixed_acl_grants_a_family_of_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tokio::task::block_in_place(|| {
        broker_after_setup(dir.path(), |bootstrap| {
            for topic in ["team-a-1", "team-a-2", "team-b-1"] {
                create_topic(bootstrap, topic, 1);
            }
            allow_anonymous(
                bootstrap,
                "Write",
                &["--topic", "team-a-", "--resource-pattern-type", "prefixed"],
            );
        })
    });
    for topic in ["team-a-1", "team-a-2"] {
        assert_eq!(
            produce_one(&broker.bootstrap(), topic).await,
            Ok(()),
            "{topic}"
        );
    }
    assert_eq!(
        produce_one(&broker.bootstrap(), "team-b-1").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    tokio::task::block_in_place(|| broker.stop());
}

/// Goal: a DENY beats an ALLOW. Method: everyone (`User:*`) may do everything on every topic
/// (literal `*`), and the principal is denied WRITE on `orders`: producing to `orders` is
/// refused, producing to `other` is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_beats_an_allow() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tokio::task::block_in_place(|| {
        broker_after_setup(dir.path(), |bootstrap| {
            create_topic(bootstrap, "orders", 1);
            create_topic(bootstrap, "other", 1);
            grant(
                bootstrap,
                &[
                    "--allow-principal",
                    "User:*",
                    "--operation",
                    "All",
                    "--topic",
                    "*",
                ],
            );
            grant(
                bootstrap,
                &[
                    "--deny-principal",
                    ANONYMOUS,
                    "--operation",
                    "Write",
                    "--topic",
                    "orders",
                ],
            );
        })
    });
    assert_eq!(
        produce_one(&broker.bootstrap(), "orders").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(produce_one(&broker.bootstrap(), "other").await, Ok(()));
    tokio::task::block_in_place(|| broker.stop());
}

/// Goal: without any ACL everything is denied, and a super user may do everything. Method:
/// the same data directory, once without and once with `--super-users User:ANONYMOUS`:
/// creating a topic, producing, reading its configs and deleting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_super_user_may_do_everything_and_nobody_else_without_acls() {
    let dir = tempfile::tempdir().unwrap();
    let broker =
        tokio::task::block_in_place(|| Broker::start(dir.path(), &["--authorizer", "true"]));
    let bootstrap = broker.bootstrap();
    let out = tokio::task::block_in_place(|| {
        strato(&["topic", "create", "t", "--bootstrap", &bootstrap])
    });
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TOPIC_AUTHORIZATION_FAILED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        produce_one(&bootstrap, "t").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    tokio::task::block_in_place(|| broker.stop());

    let broker = tokio::task::block_in_place(|| {
        Broker::start(
            dir.path(),
            &["--authorizer", "true", "--super-users", ANONYMOUS],
        )
    });
    let bootstrap = broker.bootstrap();
    tokio::task::block_in_place(|| create_topic(&bootstrap, "t", 2));
    assert_eq!(produce_one(&bootstrap, "t").await, Ok(()));
    tokio::task::block_in_place(|| {
        strato_ok(&["topic", "describe", "t", "--bootstrap", &bootstrap]);
        strato_ok(&["acl", "list", "--bootstrap", &bootstrap]);
        strato_ok(&["topic", "delete", "t", "--bootstrap", &bootstrap]);
        broker.stop();
    });
}

/// Goal: Metadata for all topics leaves out the topics the client may not describe, and
/// names them TOPIC_AUTHORIZATION_FAILED when asked by name; the authorized-operations
/// bitfields are Kafka's. Method: three topics, DESCRIBE on `visible` only; librdkafka's
/// metadata for all topics and for `hidden`, raw Metadata v12 for the bitfields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_leaves_out_unauthorized_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tokio::task::block_in_place(|| {
        broker_after_setup(dir.path(), |bootstrap| {
            for topic in ["visible", "hidden", "secret"] {
                create_topic(bootstrap, topic, 1);
            }
            allow_anonymous(bootstrap, "Describe", &["--topic", "visible"]);
        })
    });
    tokio::task::block_in_place(|| {
        let consumer = common::kafka::consumer(&broker.bootstrap(), &[]);
        let all = consumer.fetch_metadata(None, DEADLINE).expect("metadata");
        let names: Vec<&str> = all.topics().iter().map(|t| t.name()).collect();
        assert_eq!(names, vec!["visible"]);
        let hidden = consumer
            .fetch_metadata(Some("hidden"), DEADLINE)
            .expect("metadata");
        assert_eq!(
            hidden.topics()[0].error(),
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        );
        let mut wire = Wire::connect(&broker);
        // DESCRIBE only: bit 8.
        assert_eq!(wire.topic_metadata("visible"), (0, 1 << 8));
        let (error, _) = wire.topic_metadata("secret");
        assert_eq!(error, code(ResponseError::TopicAuthorizationFailed));
        // A topic that does not exist is not told apart from one that does.
        let (error, _) = wire.topic_metadata("no-such-topic");
        assert_eq!(error, code(ResponseError::TopicAuthorizationFailed));
        broker.stop();
    });
}

/// Goal: every API but ApiVersions and SASL is checked, with Kafka's error codes. Method:
/// raw requests to a broker where the principal has no ACL (topic `t` exists).
#[test]
fn every_api_answers_kafkas_authorization_errors() {
    use kafka_protocol::messages::*;
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_after_setup(dir.path(), |bootstrap| {
        create_topic(bootstrap, "t", 1);
        strato_ok(&["produce", "t", "--value", "v", "--bootstrap", bootstrap]);
    });
    let mut wire = Wire::connect(&broker);
    let topic = || TopicName(StrBytes::from_static_str("t"));
    let group = || GroupId(StrBytes::from_static_str("g"));
    let topic_denied = code(ResponseError::TopicAuthorizationFailed);
    let group_denied = code(ResponseError::GroupAuthorizationFailed);
    let cluster_denied = code(ResponseError::ClusterAuthorizationFailed);

    let versions = wire.call(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0, "ApiVersions is never checked");

    let all = wire.call(12, &MetadataRequest::default().with_topics(None));
    assert!(all.topics.is_empty(), "no topic may be described");

    use produce_request::{PartitionProduceData, TopicProduceData};
    let produce = wire.call(
        9,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic())
                    .with_partition_data(vec![PartitionProduceData::default().with_index(0)]),
            ]),
    );
    assert_eq!(
        produce.responses[0].partition_responses[0].error_code,
        topic_denied
    );

    use fetch_request::{FetchPartition, FetchTopic};
    let fetch = wire.call(
        12,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic())
                    .with_partitions(vec![
                        FetchPartition::default().with_partition_max_bytes(1 << 20),
                    ]),
            ]),
    );
    assert_eq!(fetch.responses[0].partitions[0].error_code, topic_denied);

    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let offsets = wire.call(
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
            ]),
    );
    assert_eq!(offsets.topics[0].partitions[0].error_code, topic_denied);

    use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let epochs = wire.call(
        4,
        &OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic())
                .with_partitions(vec![
                    OffsetForLeaderPartition::default().with_current_leader_epoch(-1),
                ]),
        ]),
    );
    assert_eq!(epochs.topics[0].partitions[0].error_code, topic_denied);

    use create_topics_request::CreatableTopic;
    let created = wire.call(
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("new")))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
    );
    assert_eq!(created.topics[0].error_code, topic_denied);

    use delete_topics_request::DeleteTopicState;
    let deleted = wire.call(
        6,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![DeleteTopicState::default().with_name(Some(topic()))]),
    );
    assert_eq!(deleted.responses[0].error_code, topic_denied);

    use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let trimmed = wire.call(
        2,
        &DeleteRecordsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![DeleteRecordsPartition::default().with_offset(0)]),
            ]),
    );
    assert_eq!(trimmed.topics[0].partitions[0].error_code, topic_denied);

    use create_partitions_request::CreatePartitionsTopic;
    let grown = wire.call(
        3,
        &CreatePartitionsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic())
                    .with_count(2),
            ]),
    );
    assert_eq!(grown.results[0].error_code, topic_denied);

    use describe_configs_request::DescribeConfigsResource;
    let configs = wire.call(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t")),
            DescribeConfigsResource::default().with_resource_type(4),
        ]),
    );
    let codes: Vec<i16> = configs.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![topic_denied, cluster_denied]);

    let altered = wire.call(
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t")),
        ]),
    );
    assert_eq!(altered.responses[0].error_code, topic_denied);
    let altered = wire.call(
        2,
        &AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default().with_resource_type(4),
        ]),
    );
    assert_eq!(altered.responses[0].error_code, cluster_denied);

    let producer_id = wire.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(producer_id.error_code, cluster_denied);

    let coordinator = |key_type: i8, key: &'static str| {
        FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![StrBytes::from_static_str(key)])
    };
    let found = wire.call(4, &coordinator(0, "g"));
    assert_eq!(found.coordinators[0].error_code, group_denied);
    let found = wire.call(4, &coordinator(1, "tx"));
    assert_eq!(
        found.coordinators[0].error_code,
        code(ResponseError::TransactionalIdAuthorizationFailed)
    );

    let joined = wire.call(
        9,
        &JoinGroupRequest::default()
            .with_group_id(group())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer")),
    );
    assert_eq!(joined.error_code, group_denied);
    let synced = wire.call(5, &SyncGroupRequest::default().with_group_id(group()));
    assert_eq!(synced.error_code, group_denied);
    let beat = wire.call(4, &HeartbeatRequest::default().with_group_id(group()));
    assert_eq!(beat.error_code, group_denied);
    let left = wire.call(5, &LeaveGroupRequest::default().with_group_id(group()));
    assert_eq!(left.error_code, group_denied);

    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let committed = wire.call(
        9,
        &OffsetCommitRequest::default()
            .with_group_id(group())
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![OffsetCommitRequestPartition::default()]),
            ]),
    );
    assert_eq!(committed.topics[0].partitions[0].error_code, group_denied);

    use offset_fetch_request::OffsetFetchRequestGroup;
    let fetched = wire.call(
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default().with_group_id(group()),
        ]),
    );
    assert_eq!(fetched.groups[0].error_code, group_denied);

    let offsets_deleted = wire.call(0, &OffsetDeleteRequest::default().with_group_id(group()));
    assert_eq!(offsets_deleted.error_code, group_denied);

    let described = wire.call(
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![group()])
            .with_include_authorized_operations(true),
    );
    assert_eq!(described.groups[0].error_code, group_denied);
    let listed = wire.call(4, &ListGroupsRequest::default());
    assert_eq!((listed.error_code, listed.groups.len()), (0, 0));
    let groups_deleted = wire.call(
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![group()]),
    );
    assert_eq!(groups_deleted.results[0].error_code, group_denied);

    // DescribeCluster is answered to everyone, as in Kafka; its bitfield needs DESCRIBE.
    let cluster = wire.call(
        1,
        &DescribeClusterRequest::default()
            .with_include_cluster_authorized_operations(true)
            .with_endpoint_type(1),
    );
    assert_eq!(
        (cluster.error_code, cluster.cluster_authorized_operations),
        (0, 0)
    );
    assert_eq!(cluster.brokers.len(), 1);

    let dirs = wire.call(4, &DescribeLogDirsRequest::default());
    assert_eq!((dirs.error_code, dirs.results.len()), (cluster_denied, 0));

    use elect_leaders_request::TopicPartitions;
    let elected = wire.call(
        2,
        &ElectLeadersRequest::default()
            .with_timeout_ms(5_000)
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic())
                    .with_partitions(vec![0]),
            ])),
    );
    assert_eq!(elected.error_code, cluster_denied);
    assert_eq!(
        elected.replica_election_results[0].partition_result[0].error_code,
        cluster_denied
    );

    use describe_producers_request::TopicRequest;
    let producers = wire.call(
        0,
        &DescribeProducersRequest::default().with_topics(vec![
            TopicRequest::default()
                .with_name(topic())
                .with_partition_indexes(vec![0]),
        ]),
    );
    assert_eq!(producers.topics[0].partitions[0].error_code, topic_denied);

    use create_acls_request::AclCreation;
    let acl_created = wire.call(
        3,
        &CreateAclsRequest::default().with_creations(vec![
            AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_resource_pattern_type(3)
                .with_principal(StrBytes::from_static_str(ANONYMOUS))
                .with_host(StrBytes::from_static_str("*"))
                .with_operation(2)
                .with_permission_type(3),
        ]),
    );
    assert_eq!(acl_created.results[0].error_code, cluster_denied);
    let acls = wire.call(
        3,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
    );
    assert_eq!(acls.error_code, cluster_denied);
    let acls_deleted = wire.call(
        3,
        &DeleteAclsRequest::default().with_filters(vec![
            delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        ]),
    );
    assert_eq!(acls_deleted.filter_results[0].error_code, cluster_denied);

    let users = wire.call(0, &DescribeUserScramCredentialsRequest::default());
    assert_eq!(users.error_code, cluster_denied);
    use alter_user_scram_credentials_request::ScramCredentialDeletion;
    let altered_users = wire.call(
        0,
        &AlterUserScramCredentialsRequest::default().with_deletions(vec![
            ScramCredentialDeletion::default()
                .with_name(StrBytes::from_static_str("alice"))
                .with_mechanism(1),
        ]),
    );
    assert_eq!(altered_users.results[0].error_code, cluster_denied);

    assert!(denials(&broker, "CLUSTER", "ALTER") >= 4.0);
    broker.stop();
}

/// Goal: ACLs created through one broker hold on the other within a deadline, and so do
/// deletions. Method: two brokers on one etcd, both with `--authorizer true`, only the first
/// with `User:ANONYMOUS` as a super user; the second answers Metadata for topic `shared`
/// with TOPIC_AUTHORIZATION_FAILED until an ACL created through the first arrives, and again
/// once it is deleted through the first.
#[test]
fn acls_created_on_one_broker_hold_on_the_other() {
    let mut cluster = Cluster::start_with(0, "/strato/acl-propagation", &["--authorizer", "true"]);
    let admin = cluster.add_with(&["--super-users", ANONYMOUS]);
    let enforcing = cluster.add();
    let admin_bootstrap = cluster.brokers[&admin].bootstrap();
    create_topic(&admin_bootstrap, "shared", 1);
    let mut wire = Wire::connect(&cluster.brokers[&enforcing]);
    let denied = code(ResponseError::TopicAuthorizationFailed);
    assert_eq!(wire.topic_metadata("shared").0, denied);

    let acl = [
        "--allow-principal",
        ANONYMOUS,
        "--operation",
        "Describe",
        "--topic",
        "shared",
    ];
    grant(&admin_bootstrap, &acl);
    let created = Instant::now();
    wait_until(
        PROPAGATION_DEADLINE,
        "the ACL to hold on the other broker",
        || wire.topic_metadata("shared").0 == 0,
    );
    eprintln!("ACL held on the other broker after {:?}", created.elapsed());

    let mut delete = vec!["acl", "delete", "--bootstrap", &admin_bootstrap];
    delete.extend_from_slice(&acl);
    strato_ok(&delete);
    let deleted = Instant::now();
    wait_until(
        PROPAGATION_DEADLINE,
        "the deletion to hold on the other broker",
        || wire.topic_metadata("shared").0 == denied,
    );
    eprintln!(
        "deletion held on the other broker after {:?}",
        deleted.elapsed()
    );
    for slot in [admin, enforcing] {
        cluster.take(slot).stop();
    }
}

/// Goal: the CLI creates, lists (as a table and as JSON, by resource, by principal, with
/// MATCH) and deletes ACLs; without an authorizer the ACL APIs answer SECURITY_DISABLED.
#[test]
fn the_cli_creates_lists_and_deletes_acls() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &["--authorizer", "true", "--super-users", ANONYMOUS],
    );
    let bootstrap = broker.bootstrap();
    let created = strato_ok(&[
        "acl",
        "create",
        "--bootstrap",
        &bootstrap,
        "--allow-principal",
        "User:alice",
        "--allow-principal",
        "User:bob",
        "--operation",
        "Read",
        "--operation",
        "Describe",
        "--topic",
        "orders",
        "--group",
        "billing",
    ]);
    assert_eq!(
        created.lines().count(),
        1 + 8,
        "a header and 2x2x2 bindings:\n{created}"
    );
    strato_ok(&[
        "acl",
        "create",
        "--bootstrap",
        &bootstrap,
        "--deny-principal",
        "User:mallory",
        "--deny-host",
        "10.0.0.9",
        "--operation",
        "All",
        "--topic",
        "ord",
        "--resource-pattern-type",
        "prefixed",
    ]);
    let out = strato(&[
        "acl",
        "create",
        "--bootstrap",
        &bootstrap,
        "--allow-principal",
        "alice",
        "--operation",
        "Read",
        "--topic",
        "orders",
    ]);
    assert!(
        !out.status.success(),
        "a principal without a type is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_REQUEST"));

    let list = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["acl", "list", "--bootstrap", &bootstrap, "--output", "json"];
        args.extend_from_slice(extra);
        let json: serde_json::Value = serde_json::from_str(&strato_ok(&args)).expect("JSON");
        json["acls"].as_array().expect("an acls list").clone()
    };
    assert_eq!(list(&[]).len(), 9);
    assert_eq!(list(&["--principal", "User:bob"]).len(), 4);
    let orders = list(&["--topic", "orders"]);
    assert_eq!(orders.len(), 4);
    assert_eq!(
        orders[0],
        serde_json::json!({
            "resource_type": "TOPIC", "resource_name": "orders", "pattern_type": "LITERAL",
            "principal": "User:alice", "host": "*", "operation": "READ", "permission": "ALLOW",
        })
    );
    let applying = list(&["--topic", "orders", "--resource-pattern-type", "match"]);
    assert_eq!(
        applying.len(),
        5,
        "the four literal ones and the prefixed DENY"
    );
    let table = strato_ok(&[
        "acl",
        "list",
        "--bootstrap",
        &bootstrap,
        "--group",
        "billing",
    ]);
    assert!(table.starts_with("RESOURCE TYPE"), "{table}");
    assert_eq!(table.lines().count(), 1 + 4, "{table}");

    let deleted = strato_ok(&[
        "acl",
        "delete",
        "--bootstrap",
        &bootstrap,
        "--output",
        "json",
        "--topic",
        "orders",
        "--allow-principal",
        "User:bob",
    ]);
    let deleted: serde_json::Value = serde_json::from_str(&deleted).expect("JSON");
    assert_eq!(deleted["deleted"].as_array().map(Vec::len), Some(2));
    strato_ok(&[
        "acl",
        "delete",
        "--bootstrap",
        &bootstrap,
        "--group",
        "billing",
    ]);
    assert_eq!(list(&[]).len(), 3);
    broker.stop();

    // The ACLs survive a restart.
    let broker = Broker::start(
        dir.path(),
        &["--authorizer", "true", "--super-users", ANONYMOUS],
    );
    let restarted = strato_ok(&[
        "acl",
        "list",
        "--bootstrap",
        &broker.bootstrap(),
        "--output",
        "json",
    ]);
    let restarted: serde_json::Value = serde_json::from_str(&restarted).expect("JSON");
    assert_eq!(restarted["acls"].as_array().map(Vec::len), Some(3));
    broker.stop();

    let plain = tempfile::tempdir().unwrap();
    let broker = Broker::start(plain.path(), &[]);
    let out = strato(&["acl", "list", "--bootstrap", &broker.bootstrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SECURITY_DISABLED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    broker.stop();
}

/// Goal: confluent-kafka's AdminClient manages ACLs: create (an invalid binding refused, the
/// others created), describe with a principal filter and a MATCH filter, delete by filter.
#[test]
fn confluent_admin_client_manages_acls() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &["--authorizer", "true", "--super-users", ANONYMOUS],
    );
    let out = run_client_script(
        "confluent_acls.py",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--principal",
            "User:alice",
            "--topic",
            "payments",
            "--group",
            "auditors",
        ],
    );
    assert_eq!(out["created"], 3);
    assert_eq!(out["invalid_refused"], true);
    let strings = |key: &str| -> Vec<String> {
        out[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} in {out}"))
            .iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect()
    };
    assert_eq!(
        strings("described"),
        vec![
            "GROUP:LITERAL:auditors:DESCRIBE:DENY",
            "TOPIC:LITERAL:payments:READ:ALLOW",
            "TOPIC:PREFIXED:payments:WRITE:ALLOW",
        ]
    );
    assert_eq!(
        strings("matched"),
        vec!["TOPIC:PREFIXED:payments:WRITE:ALLOW"]
    );
    assert_eq!(
        strings("deleted"),
        vec![
            "TOPIC:LITERAL:payments:READ:ALLOW",
            "TOPIC:PREFIXED:payments:WRITE:ALLOW",
        ]
    );
    assert_eq!(
        strings("remaining"),
        vec!["GROUP:LITERAL:auditors:DESCRIBE:DENY"]
    );
    broker.stop();
}

/// librdkafka settings of a SCRAM-SHA-256 login as `user` (password `<user>-secret`).
fn scram_login(user: &str) -> [(&'static str, String); 4] {
    [
        ("security.protocol", "SASL_PLAINTEXT".to_string()),
        ("sasl.mechanism", "SCRAM-SHA-256".to_string()),
        ("sasl.username", user.to_string()),
        ("sasl.password", format!("{user}-secret")),
    ]
}

fn settings<'a>(login: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    login.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `strato ARGS` logged in as `user` (password `<user>-secret`) with SCRAM-SHA-256 over
/// SASL_PLAINTEXT.
fn strato_as(user: &str, args: &[&str]) -> Output {
    run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_strato"))
            .args(args)
            .args([
                "--security-protocol",
                "SASL_PLAINTEXT",
                "--sasl-mechanism",
                "SCRAM-SHA-256",
                "--sasl-username",
                user,
            ])
            .env("STRATO_SASL_PASSWORD", format!("{user}-secret")),
        CLI_DEADLINE,
    )
}

/// Goal: distinct SASL users get the rights their ACLs give them, and a super user among
/// them may do everything. Method: users alice, bob, carol and admin made with `strato
/// user`, a broker whose only listener is SASL_PLAINTEXT and whose super user is admin;
/// admin creates topics and ACLs with the CLI logged in over SASL (alice may not), and
/// librdkafka logs in with SCRAM-SHA-256. alice may write `ledger`, bob may read it in group
/// `auditors`, everyone (`User:*`) may describe topic `public`, carol has nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_users_get_the_rights_of_their_acls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for user in ["alice", "bob", "carol", "admin"] {
        add_user(&data, user, &format!("{user}-secret"));
    }
    let mut args = vec![
        "--listeners",
        "SASL_PLAINTEXT://127.0.0.1:0",
        "--authorizer",
        "true",
        "--super-users",
        "User:admin",
    ];
    args.extend_from_slice(&REBALANCE_DELAY);
    let broker = tokio::task::block_in_place(|| Broker::start(dir.path(), &args));
    let sasl = broker.listener("SASL_PLAINTEXT").to_string();
    tokio::task::block_in_place(|| {
        let admin_ok = |args: &[&str]| {
            let out = strato_as("admin", args);
            assert!(
                out.status.success(),
                "strato {args:?} as admin: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for topic in ["ledger", "public"] {
            admin_ok(&["topic", "create", topic, "--bootstrap", &sasl]);
        }
        let allow = |principal: &str, operation: &str, resource: &[&str]| {
            let mut args = vec![
                "acl",
                "create",
                "--bootstrap",
                &sasl,
                "--allow-principal",
                principal,
                "--operation",
                operation,
            ];
            args.extend_from_slice(resource);
            admin_ok(&args);
        };
        allow("User:alice", "Write", &["--topic", "ledger"]);
        allow("User:bob", "Read", &["--topic", "ledger"]);
        allow("User:bob", "Read", &["--group", "auditors"]);
        allow("User:*", "Describe", &["--topic", "public"]);
        // alice may not give herself more.
        let out = strato_as(
            "alice",
            &[
                "acl",
                "create",
                "--bootstrap",
                &sasl,
                "--allow-principal",
                "User:alice",
                "--operation",
                "All",
                "--topic",
                "*",
            ],
        );
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("CLUSTER_AUTHORIZATION_FAILED"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let [alice, bob, carol, admin] = ["alice", "bob", "carol", "admin"].map(scram_login);

    assert_eq!(
        produce_one_as(&sasl, "ledger", &settings(&alice)).await,
        Ok(())
    );
    assert_eq!(
        produce_one_as(&sasl, "ledger", &settings(&bob)).await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(
        produce_one_as(&sasl, "ledger", &settings(&carol)).await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(
        produce_one_as(&sasl, "ledger", &settings(&admin)).await,
        Ok(())
    );
    tokio::task::block_in_place(|| {
        let reader = group_consumer_as(&sasl, "auditors", "ledger", &settings(&bob));
        assert_eq!(first_value(&reader), b"v");
        let intruder = group_consumer_as(&sasl, "auditors", "ledger", &settings(&carol));
        wait_for_error(&intruder, RDKafkaErrorCode::GroupAuthorizationFailed);
        // carol sees only what everyone may describe; admin sees everything.
        for (login, expected) in [(&carol, vec!["public"]), (&admin, vec!["ledger", "public"])] {
            let consumer = common::kafka::consumer(&sasl, &settings(login));
            let metadata = consumer.fetch_metadata(None, DEADLINE).expect("metadata");
            let mut names: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
            names.sort();
            assert_eq!(names, expected);
        }
        broker.stop();
    });
}

/// Goal: an mTLS client's principal is `User:<certificate CN>` and its ACLs decide. Method: a
/// broker with an SSL listener that requires client certificates (--tls-client-ca) and a
/// PLAINTEXT one whose anonymous clients are super users (only to set up); `User:bob` may
/// write topic `mtls`; librdkafka with bob's certificate is acknowledged, with carol's
/// (same CA) it gets TOPIC_AUTHORIZATION_FAILED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtls_client_has_the_rights_of_its_certificate_cn() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki::Pki::new(dir.path(), "mtls");
    let cert = pki.broker();
    let ca = pki.ca_file();
    let broker = Broker::start(
        dir.path(),
        &[
            "--listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
            "--tls-cert",
            cert.cert.to_str().unwrap(),
            "--tls-key",
            cert.key.to_str().unwrap(),
            "--tls-client-ca",
            ca.to_str().unwrap(),
            "--authorizer",
            "true",
            "--super-users",
            ANONYMOUS,
        ],
    );
    let admin = broker.bootstrap();
    tokio::task::block_in_place(|| {
        create_topic(&admin, "mtls", 1);
        grant(
            &admin,
            &[
                "--allow-principal",
                "User:bob",
                "--operation",
                "Write",
                "--topic",
                "mtls",
            ],
        );
    });
    let ssl = broker.listener("SSL").to_string();
    let ca = ca.display().to_string();
    for (cn, expected) in [
        ("bob", Ok(())),
        ("carol", Err(RDKafkaErrorCode::TopicAuthorizationFailed)),
    ] {
        let client = pki.client(cn);
        let (cert, key) = (
            client.cert.display().to_string(),
            client.key.display().to_string(),
        );
        let login = [
            ("security.protocol", "SSL"),
            ("ssl.ca.location", ca.as_str()),
            ("ssl.certificate.location", cert.as_str()),
            ("ssl.key.location", key.as_str()),
        ];
        assert_eq!(produce_one_as(&ssl, "mtls", &login).await, expected, "{cn}");
    }
    tokio::task::block_in_place(|| broker.stop());
}
