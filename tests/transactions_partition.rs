//! Transactions from a partition's point of view (issue 17, RFC 001): transactional produce
//! checked against the coordinator's record, markers written by the partition's leader for
//! `txn-markers/` requests, the last stable offset and aborted transactions at read_committed
//! (raw Fetch and ListOffsets, and librdkafka consumers at both isolation levels), a marker
//! written exactly once across a kill -9 of its leader, and compaction keeping markers'
//! meaning.
//!
//! The tests play the transaction coordinator: they write `txns/<id>` and the marker
//! requests straight into the broker's etcd, as the coordinator does (Ongoing with the
//! partitions while a transaction is open; PrepareCommit/PrepareAbort and one request per
//! partition in one transaction to end it; the requests disappear once written).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::kafka::create_topic;
use common::wire::{Wire, init_producer_id};
use common::{Broker, wait_until};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, Statistics, TopicPartitionList};
use strato_metadata::etcd::{EtcdConfig, EtcdStore};
use strato_metadata::model::{
    RECORD_FORMAT_V1, TopicRecord, TxnMarkerRecord, TxnPartitionRecord, TxnRecord, TxnState,
};
use strato_metadata::testing::etcd_server::EtcdServer;
use strato_metadata::{MetadataStore, Txn, keys};
use strato_tiering::batch::test_support::{BatchSpec, build_batch, simple_batch};
use strato_tiering::batch::{TxnMarker, iter_batches, parse_marker};

/// The transactional bit of a batch's attributes.
const TRANSACTIONAL: i16 = 0x10;
/// How long a marker request may wait for its leader (a takeover after kill -9 waits for
/// the dead broker's 10 s lease).
const MARKER_DEADLINE: Duration = Duration::from_secs(60);

/// A broker on its own etcd, and a client of that etcd to play the coordinator with.
struct Node {
    broker: Broker,
    store: EtcdStore,
    url: String,
    objects: String,
    dir: tempfile::TempDir,
    _etcd: EtcdServer,
}

impl Node {
    async fn start(extra: &[&str]) -> Node {
        let etcd = EtcdServer::start();
        let url = etcd.url("/strato/txn");
        let dir = tempfile::tempdir().unwrap();
        let objects = format!("file://{}", dir.path().join("objects").display());
        let mut args = vec!["--metadata", &url, "--object-store", &objects];
        args.extend_from_slice(extra);
        let broker = Broker::start(&dir.path().join("first"), &args);
        let store = EtcdStore::connect(EtcdConfig::from_url(&url).unwrap())
            .await
            .unwrap();
        Node {
            broker,
            store,
            url,
            objects,
            dir,
            _etcd: etcd,
        }
    }

    /// The coordinator of a new transactional producer (id from a raw InitProducerId).
    fn coordinator(&self, transactional_id: &str) -> Coordinator {
        let mut stream = common::wire::connect(&self.broker);
        let (producer_id, producer_epoch) = init_producer_id(&mut stream, 1, None);
        Coordinator {
            store: self.store.clone(),
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch,
        }
    }

    async fn partition(&self, topic: &str, partition: i32) -> TxnPartitionRecord {
        let key = keys::topic(topic);
        let value = self.store.get(&key).await.unwrap().expect("topic record");
        TxnPartitionRecord {
            topic: topic.to_string(),
            topic_id: TopicRecord::decode(&key, &value.value).unwrap().topic_id,
            partition,
        }
    }
}

/// A node with a one-partition `topic`, the coordinator of producer `transactional_id`, the
/// partition as the coordinator names it, and a raw connection.
async fn one_partition(
    topic: &str,
    transactional_id: &str,
    extra: &[&str],
) -> (Node, Coordinator, TxnPartitionRecord, Wire) {
    let node = Node::start(extra).await;
    create_topic(&node.broker.bootstrap(), topic, 1).await;
    let coordinator = node.coordinator(transactional_id);
    let partition = node.partition(topic, 0).await;
    let wire = Wire::connect(&node.broker);
    (node, coordinator, partition, wire)
}

/// Writes what a transaction coordinator writes for one transactional producer.
struct Coordinator {
    store: EtcdStore,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
}

impl Coordinator {
    fn record(&self, state: TxnState, partitions: &[TxnPartitionRecord]) -> TxnRecord {
        TxnRecord {
            v: RECORD_FORMAT_V1,
            transactional_id: self.transactional_id.clone(),
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state,
            partitions: partitions.to_vec(),
            groups: Vec::new(),
            start_ms: 1,
            last_update_ms: 1,
        }
    }

    /// AddPartitionsToTxn: the transaction is Ongoing with `partitions`.
    async fn begin(&self, partitions: &[TxnPartitionRecord]) {
        let record = self.record(TxnState::Ongoing, partitions);
        self.store
            .txn(Txn::new().put(keys::txn(&self.transactional_id), record.encode()))
            .await
            .unwrap();
    }

    /// EndTxn: Prepare* and one marker request per partition, in one transaction.
    async fn end(&self, commit: bool, partitions: &[TxnPartitionRecord]) {
        let state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        let mut txn = Txn::new().put(
            keys::txn(&self.transactional_id),
            self.record(state, partitions).encode(),
        );
        for p in partitions {
            let marker = TxnMarkerRecord {
                v: RECORD_FORMAT_V1,
                transactional_id: self.transactional_id.clone(),
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
                commit,
                coordinator_epoch: 0,
            };
            txn = txn.put(
                keys::txn_marker(p.topic_id, p.partition, self.producer_id),
                marker.encode(),
            );
        }
        self.store.txn(txn).await.unwrap();
    }

    /// Waits until every partition's leader wrote its marker (the requests are gone), then
    /// completes the transaction as the coordinator does.
    async fn complete(&self, commit: bool, partitions: &[TxnPartitionRecord]) {
        let deadline = Instant::now() + MARKER_DEADLINE;
        for p in partitions {
            while self.marker_requested(p).await {
                assert!(
                    Instant::now() < deadline,
                    "marker of partition {} not written",
                    p.partition
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        self.store
            .txn(Txn::new().put(
                keys::txn(&self.transactional_id),
                self.record(state, &[]).encode(),
            ))
            .await
            .unwrap();
    }

    async fn marker_requested(&self, p: &TxnPartitionRecord) -> bool {
        let key = keys::txn_marker(p.topic_id, p.partition, self.producer_id);
        self.store.get(&key).await.unwrap().is_some()
    }

    /// Produces `batch` with this producer's transactional id.
    fn produce(&self, wire: &mut Wire, topic: &str, partition: i32, batch: Vec<u8>) -> (i16, i64) {
        produce(wire, Some(&self.transactional_id), topic, partition, batch)
    }

    /// The same producer at another epoch.
    fn with_epoch(&self, producer_epoch: i16) -> Coordinator {
        Coordinator {
            store: self.store.clone(),
            transactional_id: self.transactional_id.clone(),
            producer_id: self.producer_id,
            producer_epoch,
        }
    }

    /// A transactional batch of this producer.
    fn batch(&self, sequence: i32, records: usize) -> Vec<u8> {
        build_batch(&BatchSpec {
            records,
            attributes: TRANSACTIONAL,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: sequence,
            ..BatchSpec::default()
        })
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

/// Produce v9 (acks all) of one partition's records: (error code, base offset).
fn produce(
    wire: &mut Wire,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_transactional_id(
            transactional_id.map(|id| TransactionalId(StrBytes::from_string(id.to_string()))),
        )
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(records))),
                ]),
        ]);
    let response = wire.call(9, &request);
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

/// Produces `records` plain records (no producer id) to partition 0 of `topic`.
fn produce_plain(wire: &mut Wire, topic: &str, records: usize) -> (i16, i64) {
    produce(wire, None, topic, 0, simple_batch(0, records))
}

/// One batch of a fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FetchedBatch {
    base_offset: i64,
    last_offset: i64,
    producer_id: i64,
    marker: Option<TxnMarker>,
}

#[derive(Debug)]
struct Fetched {
    high_watermark: i64,
    last_stable_offset: i64,
    /// (producer id, first offset); `None` when the response has no list.
    aborted: Option<Vec<(i64, i64)>>,
    batches: Vec<FetchedBatch>,
}

/// Fetch v11 (no wait) of one partition from `offset`.
fn fetch(
    wire: &mut Wire,
    topic: &str,
    partition: i32,
    offset: i64,
    read_committed: bool,
) -> Fetched {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20)
                        .with_current_leader_epoch(-1),
                ]),
        ]);
    let response = wire.call(11, &request);
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0, "fetch answered without error");
    let records = data.records.clone().unwrap_or_default();
    let batches = iter_batches(&records)
        .map(|item| {
            let (header, range) = item.expect("whole batches");
            FetchedBatch {
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                producer_id: header.producer_id,
                marker: header
                    .is_control()
                    .then(|| parse_marker(&records[range]).expect("a marker")),
            }
        })
        .collect();
    Fetched {
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
        aborted: data.aborted_transactions.as_ref().map(|list| {
            list.iter()
                .map(|a| (a.producer_id.0, a.first_offset))
                .collect()
        }),
        batches,
    }
}

/// ListOffsets v5 latest (-1) of one partition at the given isolation level.
fn latest_offset(wire: &mut Wire, topic: &str, partition: i32, read_committed: bool) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-1)
                        .with_current_leader_epoch(-1),
                ]),
        ]);
    let response = wire.call(5, &request);
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.error_code, 0);
    answer.offset
}

/// The offsets of the records a librdkafka consumer at `isolation` ("read_committed" or
/// "read_uncommitted") delivers from the start of partition 0 to its end.
fn consume_offsets(bootstrap: &str, topic: &str, isolation: &str) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "txn-tests")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut offsets = Vec::new();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => offsets.push(message.offset()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return offsets,
            Some(Err(err)) => panic!("consume: {err}"),
        }
    }
    panic!("{isolation} consumer did not reach the end; got {offsets:?}");
}

/// Goal: a transactional batch is written only inside the producer's transaction as the
/// coordinator's record describes it, with Kafka's error codes otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_produce_is_checked_against_the_coordinators_record() {
    let node = Node::start(&[]).await;
    create_topic(&node.broker.bootstrap(), "checked", 2).await;
    let coordinator = node.coordinator("checked-txn");
    let id = Some("checked-txn");
    let mut wire = Wire::connect(&node.broker);
    let p0 = node.partition("checked", 0).await;

    // No record yet: the coordinator does not know the producer.
    assert_eq!(
        produce(&mut wire, id, "checked", 0, coordinator.batch(0, 1)).0,
        code(ResponseError::InvalidProducerIdMapping)
    );
    // Transactional batches need the transactional id in the request.
    assert_eq!(
        produce(&mut wire, None, "checked", 0, coordinator.batch(0, 1)).0,
        code(ResponseError::TransactionalIdAuthorizationFailed)
    );

    coordinator.begin(std::slice::from_ref(&p0)).await;
    // Partition 1 was not added to the transaction.
    assert_eq!(
        produce(&mut wire, id, "checked", 1, coordinator.batch(0, 1)).0,
        code(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        produce(&mut wire, id, "checked", 0, coordinator.batch(0, 2)),
        (0, 0)
    );
    // Inside the open transaction: more transactional batches go without a new check;
    // a non-transactional one of the same producer does not.
    assert_eq!(
        produce(&mut wire, id, "checked", 0, coordinator.batch(2, 1)),
        (0, 2)
    );
    let plain = build_batch(&BatchSpec {
        producer_id: coordinator.producer_id,
        producer_epoch: coordinator.producer_epoch,
        base_sequence: 3,
        ..BatchSpec::default()
    });
    assert_eq!(
        produce(&mut wire, id, "checked", 0, plain).0,
        code(ResponseError::InvalidTxnState)
    );

    // The coordinator bumped the epoch (the producer was fenced): a batch of the old epoch
    // cannot open a transaction.
    let p1 = node.partition("checked", 1).await;
    let bumped = coordinator.with_epoch(coordinator.producer_epoch + 1);
    bumped.begin(&[p0.clone(), p1.clone()]).await;
    assert_eq!(
        produce(&mut wire, id, "checked", 1, coordinator.batch(0, 1)).0,
        code(ResponseError::ProducerFenced)
    );
    // Completing: the producer is told to retry.
    bumped.end(true, std::slice::from_ref(&p1)).await;
    assert_eq!(
        produce(&mut wire, id, "checked", 1, bumped.batch(0, 1)).0,
        code(ResponseError::NotEnoughReplicas)
    );
}

/// Goal: an aborted transaction is hidden from read_committed readers and visible to
/// read_uncommitted ones, and while it is open the last stable offset holds read_committed
/// readers (Fetch and ListOffsets) at its first offset. Method: plain records around a
/// transaction on one partition, the abort requested as the coordinator does; raw Fetch and
/// ListOffsets at both isolation levels before and after, and librdkafka consumers at both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_transaction_is_hidden_at_read_committed() {
    let (node, coordinator, p0, mut wire) = one_partition("aborts", "aborter", &[]).await;
    let bootstrap = node.broker.bootstrap();

    assert_eq!(produce_plain(&mut wire, "aborts", 2), (0, 0));
    coordinator.begin(std::slice::from_ref(&p0)).await;
    assert_eq!(
        coordinator.produce(&mut wire, "aborts", 0, coordinator.batch(0, 3)),
        (0, 2)
    );
    assert_eq!(produce_plain(&mut wire, "aborts", 1), (0, 5));

    // Open: HW 6, LSO 2 (the transaction's first offset).
    let committed = fetch(&mut wire, "aborts", 0, 0, true);
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (6, 2)
    );
    assert_eq!(
        committed.batches.last().map(|b| b.last_offset),
        Some(1),
        "read_committed stops at the LSO"
    );
    assert_eq!(committed.aborted, Some(Vec::new()));
    let uncommitted = fetch(&mut wire, "aborts", 0, 0, false);
    assert_eq!(uncommitted.last_stable_offset, 2);
    assert_eq!(uncommitted.batches.last().map(|b| b.last_offset), Some(5));
    assert_eq!(uncommitted.aborted, None);
    assert_eq!(latest_offset(&mut wire, "aborts", 0, true), 2);
    assert_eq!(latest_offset(&mut wire, "aborts", 0, false), 6);

    coordinator.end(false, std::slice::from_ref(&p0)).await;
    coordinator.complete(false, std::slice::from_ref(&p0)).await;

    // Decided: the marker is at 6, HW = LSO = 7, and the transaction is listed as aborted
    // for reads that overlap it.
    let committed = fetch(&mut wire, "aborts", 0, 0, true);
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (7, 7)
    );
    let marker = committed.batches.last().expect("batches");
    assert_eq!(
        (marker.base_offset, marker.producer_id),
        (6, coordinator.producer_id)
    );
    assert_eq!(
        marker.marker,
        Some(TxnMarker {
            producer_id: coordinator.producer_id,
            producer_epoch: coordinator.producer_epoch,
            commit: false,
            coordinator_epoch: 0,
        })
    );
    assert_eq!(committed.aborted, Some(vec![(coordinator.producer_id, 2)]));
    let after = fetch(&mut wire, "aborts", 0, 5, true);
    assert_eq!(
        after.aborted,
        Some(vec![(coordinator.producer_id, 2)]),
        "the marker at 6 is in the range"
    );
    let past = fetch(&mut wire, "aborts", 0, 7, true);
    assert_eq!(
        past.aborted,
        Some(Vec::new()),
        "nothing returned past the end"
    );
    assert_eq!(latest_offset(&mut wire, "aborts", 0, true), 7);

    let (read_committed, read_uncommitted) = tokio::task::block_in_place(|| {
        (
            consume_offsets(&bootstrap, "aborts", "read_committed"),
            consume_offsets(&bootstrap, "aborts", "read_uncommitted"),
        )
    });
    assert_eq!(
        read_committed,
        vec![0, 1, 5],
        "the aborted records are dropped"
    );
    assert_eq!(
        read_uncommitted,
        vec![0, 1, 2, 3, 4, 5],
        "everything but the marker"
    );
}

/// librdkafka's view of partition 0 of a topic, from its statistics: (high watermark, last
/// stable offset).
#[derive(Default)]
struct Watermarks {
    topic: String,
    latest: Mutex<Option<(i64, i64)>>,
}

struct StatsContext(Arc<Watermarks>);

impl ClientContext for StatsContext {
    fn stats(&self, statistics: Statistics) {
        let partition = statistics
            .topics
            .get(&self.0.topic)
            .and_then(|t| t.partitions.get(&0));
        if let Some(p) = partition {
            *self.0.latest.lock().unwrap() = Some((p.hi_offset, p.ls_offset));
        }
    }
}

impl ConsumerContext for StatsContext {}

/// Polls `consumer`, adding the offsets it delivers to `delivered`, until `done` holds.
fn poll_until(
    consumer: &BaseConsumer<StatsContext>,
    delivered: &mut Vec<i64>,
    what: &str,
    done: &dyn Fn(&[i64]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(delivered) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            delivered.push(message.expect("no consumer error").offset());
        }
    }
}

/// Goal: the LSO holds a read_committed librdkafka consumer back while a transaction is
/// open, even though records after it are there, and the transaction's records reach it
/// when the commit marker is written. Method: the consumer polls while its statistics show
/// what the broker told it: it has learnt HW 4 and LSO 0 (so its fetches ran) and delivered
/// nothing; after the commit marker it delivers offsets 0..=3 in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_marker_releases_read_committed_consumers() {
    let (node, coordinator, p0, mut wire) = one_partition("commits", "committer", &[]).await;
    let bootstrap = node.broker.bootstrap();
    coordinator.begin(std::slice::from_ref(&p0)).await;
    assert_eq!(
        coordinator.produce(&mut wire, "commits", 0, coordinator.batch(0, 3)),
        (0, 0)
    );
    assert_eq!(produce_plain(&mut wire, "commits", 1), (0, 3));

    let watermarks = Arc::new(Watermarks {
        topic: "commits".into(),
        ..Watermarks::default()
    });
    let consumer: BaseConsumer<StatsContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "txn-tests")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("statistics.interval.ms", "100")
        .create_with_context(StatsContext(watermarks.clone()))
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("commits", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut delivered = Vec::new();
    tokio::task::block_in_place(|| {
        poll_until(&consumer, &mut delivered, "HW 4 and LSO 0", &|_| {
            *watermarks.latest.lock().unwrap() == Some((4, 0))
        })
    });
    assert_eq!(delivered, Vec::<i64>::new(), "held back at the LSO");

    coordinator.end(true, std::slice::from_ref(&p0)).await;
    coordinator.complete(true, std::slice::from_ref(&p0)).await;
    tokio::task::block_in_place(|| {
        poll_until(&consumer, &mut delivered, "the committed records", &|d| {
            d.len() >= 4
        })
    });
    assert_eq!(delivered, vec![0, 1, 2, 3]);
    let fetched = fetch(&mut wire, "commits", 0, 0, true);
    assert_eq!((fetched.high_watermark, fetched.last_stable_offset), (5, 5));
    assert_eq!(fetched.aborted, Some(Vec::new()), "a commit aborts nothing");
}

/// Goal: a marker survives the death of the leader that appended it but had not committed
/// it: the request is still in the store, and the next leader writes the marker exactly
/// once. Method: the first broker flushes only when 1 KiB is waiting (or after 60 s), so
/// the transaction's 2 KiB batch is committed at once but the marker waits in its open
/// segment; the broker is killed (-9) once it logged the marker appended, and a second
/// broker (same etcd and object store) takes the partition over when the first one's lease
/// expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_survives_kill_9_of_its_leader() {
    let (node, coordinator, p0, mut wire) = one_partition(
        "survivor",
        "survivor",
        &["--flush-interval-ms", "60000", "--flush-bytes", "1024"],
    )
    .await;
    coordinator.begin(std::slice::from_ref(&p0)).await;
    let big = build_batch(&BatchSpec {
        records: 10,
        value_len: 200,
        attributes: TRANSACTIONAL,
        producer_id: coordinator.producer_id,
        producer_epoch: coordinator.producer_epoch,
        base_sequence: 0,
        ..BatchSpec::default()
    });
    assert_eq!(coordinator.produce(&mut wire, "survivor", 0, big), (0, 0));
    coordinator.end(false, std::slice::from_ref(&p0)).await;
    tokio::task::block_in_place(|| {
        wait_until(MARKER_DEADLINE, "the marker appended", || {
            node.broker
                .log_text()
                .contains("transaction marker appended")
        })
    });
    let Node {
        broker,
        store,
        url,
        objects,
        dir,
        _etcd: etcd,
    } = node;
    drop(wire);
    broker.kill();
    let key = keys::txn_marker(p0.topic_id, p0.partition, coordinator.producer_id);
    assert!(
        store.get(&key).await.unwrap().is_some(),
        "not committed: the request is still there"
    );

    let second = Broker::start(
        &dir.path().join("second"),
        &["--metadata", &url, "--object-store", &objects],
    );
    coordinator.complete(false, std::slice::from_ref(&p0)).await;
    let mut wire = Wire::connect(&second);
    let fetched = fetch(&mut wire, "survivor", 0, 0, false);
    let markers: Vec<_> = fetched
        .batches
        .iter()
        .filter(|b| b.marker.is_some())
        .collect();
    assert_eq!(markers.len(), 1, "one marker: {:?}", fetched.batches);
    assert_eq!(markers[0].base_offset, 10);
    assert_eq!(fetched.high_watermark, 11);
    let committed = fetch(&mut wire, "survivor", 0, 0, true);
    assert_eq!(committed.last_stable_offset, 11);
    assert_eq!(committed.aborted, Some(vec![(coordinator.producer_id, 0)]));
    drop(second);
    drop(etcd);
}

/// Goal: compaction keeps markers' meaning: once the chunks holding an aborted transaction
/// and its marker are merged into one compacted chunk, a read_committed fetch still lists
/// the transaction and librdkafka at read_committed still drops its records. Method: every
/// produce is its own flush (its own chunk); compaction every 100 ms merges all but the
/// newest 2 chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_aborted_transactions_hidden() {
    let (node, coordinator, p0, mut wire) = one_partition(
        "compacted",
        "compacted",
        &["--compaction-interval-ms", "100"],
    )
    .await;
    let bootstrap = node.broker.bootstrap();
    for offset in 0..3 {
        assert_eq!(produce_plain(&mut wire, "compacted", 1), (0, offset));
    }
    coordinator.begin(std::slice::from_ref(&p0)).await;
    assert_eq!(
        coordinator.produce(&mut wire, "compacted", 0, coordinator.batch(0, 2)),
        (0, 3)
    );
    assert_eq!(produce_plain(&mut wire, "compacted", 1), (0, 5));
    coordinator.end(false, std::slice::from_ref(&p0)).await;
    coordinator.complete(false, std::slice::from_ref(&p0)).await;
    for offset in 7..11 {
        assert_eq!(produce_plain(&mut wire, "compacted", 1), (0, offset));
    }
    // 10 chunks (one per flush) down to the compacted one and the newest 2.
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "the chunks compacted", || {
            node.broker.metric("strato_index_entries") <= 3.0
        })
    });
    let committed = fetch(&mut wire, "compacted", 0, 0, true);
    assert_eq!(committed.aborted, Some(vec![(coordinator.producer_id, 3)]));
    assert_eq!(
        committed
            .batches
            .iter()
            .filter(|b| b.marker.is_some())
            .count(),
        1
    );
    let offsets =
        tokio::task::block_in_place(|| consume_offsets(&bootstrap, "compacted", "read_committed"));
    assert_eq!(offsets, vec![0, 1, 2, 5, 7, 8, 9, 10]);
}
