//! Transactions (issue 17) from the outside: the transaction coordinator's APIs in raw
//! frames, where Kafka's error codes are visible.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::wire::{self, call};
use common::{Broker, wait_until};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, OffsetFetchRequest, OffsetFetchResponse, ProducerId, TopicName,
    TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

const CONCURRENT_TRANSACTIONS: i16 = 51;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;

fn tid(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// A raw connection with a running correlation id.
struct Client {
    stream: TcpStream,
    next: i32,
}

impl Client {
    fn new(broker: &Broker) -> Self {
        Client {
            stream: wire::connect(broker),
            next: 0,
        }
    }

    fn call<Req, Resp>(&mut self, key: ApiKey, version: i16, request: &Req) -> Resp
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        self.next += 1;
        call(&mut self.stream, key, version, self.next, request)
    }

    fn init(&mut self, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
        self.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(tid(id)))
                .with_transaction_timeout_ms(timeout_ms)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
    }

    fn add_offsets(&mut self, id: &str, producer: (i64, i16), group: &str) -> i16 {
        let response: AddOffsetsToTxnResponse = self.call(
            ApiKey::AddOffsetsToTxn,
            3,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(tid(id))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_group_id(GroupId(StrBytes::from_string(group.to_string()))),
        );
        response.error_code
    }

    fn commit_offset(&mut self, id: &str, producer: (i64, i16), group: &str, offset: i64) -> i16 {
        let response: TxnOffsetCommitResponse = self.call(
            ApiKey::TxnOffsetCommit,
            3,
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(tid(id))
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_generation_id(-1)
                .with_member_id(StrBytes::default())
                .with_topics(vec![
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("in")))
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(-1),
                        ]),
                ]),
        );
        response.topics[0].partitions[0].error_code
    }

    fn end(&mut self, id: &str, producer: (i64, i16), commit: bool) -> i16 {
        let response: EndTxnResponse = self.call(
            ApiKey::EndTxn,
            3,
            &EndTxnRequest::default()
                .with_transactional_id(tid(id))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_committed(commit),
        );
        response.error_code
    }

    /// (error code, offset) of `in`/0 in `group`.
    fn fetch_offset(&mut self, group: &str, require_stable: bool) -> (i16, i64) {
        let response: OffsetFetchResponse = self.call(
            ApiKey::OffsetFetch,
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_require_stable(require_stable)
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("in")))
                        .with_partition_indexes(vec![0]),
                ])),
        );
        assert_eq!(response.error_code, 0);
        let partition = &response.topics[0].partitions[0];
        (partition.error_code, partition.committed_offset)
    }

    fn state(&mut self, id: &str) -> String {
        let response: DescribeTransactionsResponse = self.call(
            ApiKey::DescribeTransactions,
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![tid(id)]),
        );
        let state = &response.transaction_states[0];
        assert_eq!(state.error_code, 0, "describe {id}");
        state.transaction_state.to_string()
    }

    fn wait_state(&mut self, id: &str, want: &str) {
        wait_until(Duration::from_secs(30), &format!("{id} in {want}"), || {
            self.state(id) == want
        });
    }
}

/// Goal: the coordinator's state machine with Kafka's answers, on a transaction that only
/// commits consumer offsets (no partition markers involved). Method: raw frames to one
/// broker: FindCoordinator for the id, InitProducerId, AddOffsetsToTxn, TxnOffsetCommit;
/// the pending offset is unstable for require_stable readers and invisible to others until
/// EndTxn commits; an aborted transaction's offset never appears; misuse gets
/// INVALID_TXN_STATE, INVALID_PRODUCER_ID_MAPPING, INVALID_TRANSACTION_TIMEOUT; a second
/// instance fences the first (PRODUCER_FENCED); a transaction left open past its timeout is
/// aborted and its producer fenced; ListTransactions lists the ids.
#[test]
fn coordinator_commits_and_aborts_offsets_with_kafkas_answers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut client = Client::new(&broker);

    let found: FindCoordinatorResponse = client.call(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("tx-a"))
            .with_key_type(1),
    );
    assert_eq!(found.error_code, 0);
    assert_eq!(found.port, i32::from(broker.addr.port()));

    assert_eq!(
        client.init("tx-a", 10_000_000).error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    let init = client.init("tx-a", 60_000);
    assert_eq!(init.error_code, 0);
    let producer = (init.producer_id.0, init.producer_epoch);
    assert_eq!(producer.1, 0);
    assert_eq!(
        client.end("tx-a", producer, true),
        INVALID_TXN_STATE,
        "nothing to end"
    );
    assert_eq!(
        client.commit_offset("tx-a", producer, "g", 42),
        INVALID_TXN_STATE,
        "the group was not added"
    );
    assert_eq!(client.add_offsets("tx-a", producer, "g"), 0);
    assert_eq!(
        client.add_offsets("tx-a", (producer.0 + 1, 0), "g"),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(client.commit_offset("tx-a", producer, "g", 42), 0);
    assert_eq!(client.fetch_offset("g", true), (UNSTABLE_OFFSET_COMMIT, -1));
    assert_eq!(client.fetch_offset("g", false), (0, -1), "not visible yet");
    assert_eq!(client.end("tx-a", producer, true), 0);
    client.wait_state("tx-a", "CompleteCommit");
    assert_eq!(client.fetch_offset("g", true), (0, 42));
    assert_eq!(
        client.end("tx-a", producer, true),
        0,
        "a retried EndTxn succeeds"
    );
    assert_eq!(client.end("tx-a", producer, false), INVALID_TXN_STATE);

    // An aborted transaction's offset never becomes visible.
    assert_eq!(client.add_offsets("tx-a", producer, "g"), 0);
    assert_eq!(client.commit_offset("tx-a", producer, "g", 99), 0);
    assert_eq!(client.end("tx-a", producer, false), 0);
    client.wait_state("tx-a", "CompleteAbort");
    assert_eq!(client.fetch_offset("g", true), (0, 42));

    // A second instance of the id fences the first.
    let second = client.init("tx-a", 60_000);
    assert_eq!(second.error_code, 0);
    assert_eq!(second.producer_id.0, producer.0);
    assert_eq!(second.producer_epoch, 1);
    assert_eq!(client.add_offsets("tx-a", producer, "g"), PRODUCER_FENCED);

    // A second instance arriving while a transaction is open: the open one is aborted first
    // (CONCURRENT_TRANSACTIONS until then), and its offset never appears.
    let current = (second.producer_id.0, second.producer_epoch);
    assert_eq!(client.add_offsets("tx-a", current, "g"), 0);
    assert_eq!(client.commit_offset("tx-a", current, "g", 7), 0);
    let mut third = client.init("tx-a", 60_000);
    while third.error_code == CONCURRENT_TRANSACTIONS {
        client.wait_state("tx-a", "CompleteAbort");
        third = client.init("tx-a", 60_000);
    }
    assert_eq!(third.error_code, 0);
    assert!(third.producer_epoch > current.1);
    assert_eq!(client.fetch_offset("g", true), (0, 42));

    // A transaction open past its timeout is aborted, and its producer fenced.
    let short = client.init("tx-t", 1_000);
    let short = (short.producer_id.0, short.producer_epoch);
    assert_eq!(client.add_offsets("tx-t", short, "g2"), 0);
    assert_eq!(client.commit_offset("tx-t", short, "g2", 5), 0);
    client.wait_state("tx-t", "CompleteAbort");
    assert_eq!(client.add_offsets("tx-t", short, "g2"), PRODUCER_FENCED);
    assert_eq!(client.fetch_offset("g2", true), (0, -1));

    let listed: ListTransactionsResponse = client.call(
        ApiKey::ListTransactions,
        0,
        &ListTransactionsRequest::default(),
    );
    let mut ids: Vec<(String, String)> = listed
        .transaction_states
        .iter()
        .map(|s| {
            (
                s.transactional_id.to_string(),
                s.transaction_state.to_string(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("tx-a".to_string(), "Empty".to_string()),
            ("tx-t".to_string(), "CompleteAbort".to_string())
        ]
    );
}

/// Goal: AddPartitionsToTxn checks what it is given: an unknown topic gets
/// UNKNOWN_TOPIC_OR_PARTITION and the rest OPERATION_NOT_ATTEMPTED (nothing is added), a known
/// one is added and DescribeTransactions shows it.
#[test]
fn add_partitions_checks_the_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--default-partitions", "2"]);
    let mut client = Client::new(&broker);
    // A Metadata request creates the topic (auto-creation).
    let metadata: kafka_protocol::messages::MetadataResponse = client.call(
        ApiKey::Metadata,
        4,
        &kafka_protocol::messages::MetadataRequest::default()
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("out")))),
            ]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(metadata.topics[0].error_code, 0);
    let init = client.init("tx-p", 60_000);
    let producer = (init.producer_id.0, init.producer_epoch);
    let add = |client: &mut Client, topics: Vec<(&str, Vec<i32>)>| -> Vec<Vec<i16>> {
        let response: AddPartitionsToTxnResponse = client.call(
            ApiKey::AddPartitionsToTxn,
            3,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(tid("tx-p"))
                .with_v3_and_below_producer_id(ProducerId(producer.0))
                .with_v3_and_below_producer_epoch(producer.1)
                .with_v3_and_below_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            AddPartitionsToTxnTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                                .with_partitions(partitions)
                        })
                        .collect(),
                ),
        );
        response
            .results_by_topic_v3_and_below
            .iter()
            .map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        add(
            &mut client,
            vec![("out", vec![0]), ("missing", vec![0]), ("out", vec![7])]
        ),
        vec![
            vec![OPERATION_NOT_ATTEMPTED],
            vec![UNKNOWN_TOPIC_OR_PARTITION],
            vec![UNKNOWN_TOPIC_OR_PARTITION]
        ]
    );
    assert_eq!(client.state("tx-p"), "Empty", "nothing was added");
    assert_eq!(
        add(&mut client, vec![("out", vec![0, 1])]),
        vec![vec![0, 0]]
    );
    let response: DescribeTransactionsResponse = client.call(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![tid("tx-p")]),
    );
    let state = &response.transaction_states[0];
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    assert_eq!(state.topics.len(), 1);
    assert_eq!(state.topics[0].partitions, vec![0, 1]);
    assert!(state.transaction_start_time_ms > 0);
}

/// Goal: a transactional id idle past --transactional-id-expiration-ms is forgotten (its
/// record deleted), and metrics count open transactions. Method: one id opens a transaction
/// (counted in /metrics), another is registered and left idle; the idle one's
/// DescribeTransactions turns into TRANSACTIONAL_ID_NOT_FOUND, the open one stays.
#[test]
fn idle_transactional_ids_expire() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--transactional-id-expiration-ms", "1000"]);
    let mut client = Client::new(&broker);
    let open = client.init("tx-open", 600_000);
    assert_eq!(
        client.add_offsets("tx-open", (open.producer_id.0, open.producer_epoch), "g"),
        0
    );
    assert_eq!(client.init("tx-idle", 60_000).error_code, 0);
    let (_, metrics) = broker.http_get("/metrics");
    assert!(
        metrics.contains("strato_transactions{state=\"open\"} 1"),
        "{metrics}"
    );
    const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
    wait_until(Duration::from_secs(30), "the idle id to expire", || {
        let response: DescribeTransactionsResponse = client.call(
            ApiKey::DescribeTransactions,
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![tid("tx-idle")]),
        );
        response.transaction_states[0].error_code == TRANSACTIONAL_ID_NOT_FOUND
    });
    assert_eq!(client.state("tx-open"), "Ongoing");
}

/// Runs `strato ARGS` against `broker`; (success, stdout, stderr).
fn strato_cli(broker: &Broker, args: &[&str]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_strato"));
    command
        .args(args)
        .args(["--bootstrap", &broker.bootstrap()]);
    let output = common::run_with_timeout(&mut command, Duration::from_secs(60));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Goal: `strato transaction list|describe` show what the coordinators hold. Method: one id
/// with an open transaction on two partitions, one idle; list (JSON, and filtered by state)
/// and describe (JSON and table); an unknown id fails with Kafka's error name.
#[test]
fn the_cli_lists_and_describes_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--default-partitions", "2"]);
    let mut client = Client::new(&broker);
    let (ok, _, stderr) = strato_cli(&broker, &["topic", "create", "out", "--partitions", "2"]);
    assert!(ok, "{stderr}");
    let open = client.init("tx-open", 60_000);
    let response: AddPartitionsToTxnResponse = client.call(
        ApiKey::AddPartitionsToTxn,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(tid("tx-open"))
            .with_v3_and_below_producer_id(open.producer_id)
            .with_v3_and_below_producer_epoch(open.producer_epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("out")))
                    .with_partitions(vec![0, 1]),
            ]),
    );
    assert_eq!(
        response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    assert_eq!(client.init("tx-idle", 60_000).error_code, 0);

    let (ok, stdout, stderr) = strato_cli(&broker, &["transaction", "list", "--output", "json"]);
    assert!(ok, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let states: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["transactional_id"].as_str().unwrap().to_string(),
                t["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("tx-idle".to_string(), "Empty".to_string()),
            ("tx-open".to_string(), "Ongoing".to_string())
        ]
    );
    let (ok, stdout, _) = strato_cli(&broker, &["transaction", "list", "--state", "ongoing"]);
    assert!(ok);
    assert!(
        stdout.contains("tx-open") && !stdout.contains("tx-idle"),
        "{stdout}"
    );

    let (ok, stdout, stderr) = strato_cli(
        &broker,
        &["transaction", "describe", "tx-open", "--output", "json"],
    );
    assert!(ok, "{stderr}");
    let described: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(described["state"], "Ongoing");
    assert_eq!(described["producer_id"], open.producer_id.0);
    assert_eq!(described["timeout_ms"], 60_000);
    assert_eq!(
        described["partitions"],
        serde_json::json!(["out:0", "out:1"])
    );
    assert!(described["start_time_ms"].as_i64().unwrap() > 0);
    let (ok, stdout, _) = strato_cli(&broker, &["transaction", "describe", "tx-idle"]);
    assert!(ok);
    assert!(stdout.contains("Empty"), "{stdout}");
    let (ok, _, stderr) = strato_cli(&broker, &["transaction", "describe", "no-such-id"]);
    assert!(!ok);
    assert!(stderr.contains("TRANSACTIONAL_ID_NOT_FOUND"), "{stderr}");
    let (ok, _, stderr) = strato_cli(&broker, &["transaction", "list", "--state", "Sideways"]);
    assert!(!ok);
    assert!(stderr.contains("--state"), "{stderr}");
}

/// Goal: KIP-447's fencing in TxnOffsetCommit: a member of an older generation
/// (ILLEGAL_GENERATION) or one the group does not know (UNKNOWN_MEMBER_ID) cannot commit
/// offsets in a transaction, the current member can. Method: one member joins group `g`
/// in raw frames (JoinGroup, SyncGroup), then TxnOffsetCommit v3 with its generation, an
/// older one and a made-up member id.
#[test]
fn txn_offset_commit_fences_stale_members() {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{
        JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
    };
    const ILLEGAL_GENERATION: i16 = 22;
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const MEMBER_ID_REQUIRED: i16 = 79;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]);
    let mut client = Client::new(&broker);
    let join = |client: &mut Client, member_id: &str| -> JoinGroupResponse {
        client.call(
            ApiKey::JoinGroup,
            5,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_session_timeout_ms(30_000)
                .with_rebalance_timeout_ms(30_000)
                .with_member_id(StrBytes::from_string(member_id.to_string()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0])),
                ]),
        )
    };
    let first = join(&mut client, "");
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let joined = join(&mut client, first.member_id.as_str());
    assert_eq!(joined.error_code, 0);
    let synced: SyncGroupResponse = client.call(
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id(joined.generation_id)
            .with_member_id(joined.member_id.clone()),
    );
    assert_eq!(synced.error_code, 0);

    let init = client.init("tx-m", 60_000);
    let producer = (init.producer_id.0, init.producer_epoch);
    assert_eq!(client.add_offsets("tx-m", producer, "g"), 0);
    let commit = |client: &mut Client, member: &str, generation: i32| -> i16 {
        let response: TxnOffsetCommitResponse = client.call(
            ApiKey::TxnOffsetCommit,
            3,
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(tid("tx-m"))
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_generation_id(generation)
                .with_member_id(StrBytes::from_string(member.to_string()))
                .with_topics(vec![
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("in")))
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(3)
                                .with_committed_leader_epoch(-1),
                        ]),
                ]),
        );
        response.topics[0].partitions[0].error_code
    };
    let member = joined.member_id.to_string();
    assert_eq!(
        commit(&mut client, &member, joined.generation_id - 1),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut client, "not-a-member", joined.generation_id),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(commit(&mut client, &member, joined.generation_id), 0);
    assert_eq!(client.end("tx-m", producer, true), 0);
    client.wait_state("tx-m", "CompleteCommit");
    let response: OffsetFetchResponse = client.call(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("in")))
                    .with_partition_indexes(vec![0]),
            ])),
    );
    assert_eq!(response.topics[0].partitions[0].committed_offset, 3);
}
