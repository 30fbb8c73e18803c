//! Transactions from a partition's point of view (issue 17, RFC 001): transactional produce
//! checked against the coordinator's record, markers written by the partition's leader for
//! the coordinator's `txn-markers/` requests, the last stable offset and aborted
//! transactions at read_committed (raw Fetch and ListOffsets, and librdkafka consumers at
//! both isolation levels), a marker written exactly once across a kill -9 of its leader,
//! stale marker requests deleted, compaction keeping markers' meaning, and transactional
//! producers end to end (librdkafka on one broker and on three, consume-transform-produce,
//! Kafka's Java client).
//!
//! Transactions are driven through the broker's coordinator in raw frames where exact
//! offsets and error codes matter (InitProducerId, AddPartitionsToTxn, Produce, EndTxn,
//! DescribeTransactions), and with real transactional producers otherwise.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::Cluster;
use common::kafka::create_topic;
use common::wire::Wire;
use common::{Broker, wait_until};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, BrokerId, DescribeProducersRequest, DescribeTransactionsRequest,
    EndTxnRequest, FetchRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest,
    ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, Statistics, TopicPartitionList};
use strato_metadata::etcd::{EtcdConfig, EtcdStore};
use strato_metadata::model::{RECORD_FORMAT_V1, TopicRecord, TxnMarkerRecord};
use strato_metadata::testing::etcd_server::EtcdServer;
use strato_metadata::{MetadataStore, Txn, keys};
use strato_tiering::batch::test_support::{BatchSpec, build_batch, simple_batch};
use strato_tiering::batch::{TxnMarker, iter_batches, parse_marker};

/// The transactional bit of a batch's attributes.
const TRANSACTIONAL: i16 = 0x10;
/// How long a transaction may take to complete (a takeover after kill -9 waits for the dead
/// broker's 10 s lease).
const COMPLETE_DEADLINE: Duration = Duration::from_secs(60);

fn transactional_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// A transactional producer speaking raw frames to the broker's transaction coordinator.
struct RawTxnProducer {
    id: String,
    producer_id: i64,
    producer_epoch: i16,
}

impl RawTxnProducer {
    /// InitProducerId v4 with a transactional id, retried while the coordinator aborts a
    /// transaction a previous instance left open (CONCURRENT_TRANSACTIONS).
    fn init(wire: &mut Wire, id: &str) -> RawTxnProducer {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(transactional_id(id)))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let mut producer = None;
        wait_until(COMPLETE_DEADLINE, "InitProducerId", || {
            let response = wire.call(4, &request);
            if response.error_code == code(ResponseError::ConcurrentTransactions) {
                return false;
            }
            assert_eq!(response.error_code, 0, "InitProducerId for {id}");
            producer = Some((response.producer_id.0, response.producer_epoch));
            true
        });
        let (producer_id, producer_epoch) = producer.expect("initialised");
        RawTxnProducer {
            id: id.to_string(),
            producer_id,
            producer_epoch,
        }
    }

    /// AddPartitionsToTxn v3: `partitions` of `topic` join the transaction.
    fn add(&self, wire: &mut Wire, topic: &str, partitions: &[i32]) {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(transactional_id(&self.id))
            .with_v3_and_below_producer_id(ProducerId(self.producer_id))
            .with_v3_and_below_producer_epoch(self.producer_epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(partitions.to_vec()),
            ]);
        let response = wire.call(3, &request);
        for result in &response.results_by_topic_v3_and_below[0].results_by_partition {
            assert_eq!(result.partition_error_code, 0, "partition added");
        }
    }

    /// EndTxn v3: the coordinator writes Prepare* and the marker requests.
    fn end(&self, wire: &mut Wire, commit: bool) {
        let request = EndTxnRequest::default()
            .with_transactional_id(transactional_id(&self.id))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.producer_epoch)
            .with_committed(commit);
        assert_eq!(wire.call(3, &request).error_code, 0, "EndTxn");
    }

    /// Waits until the coordinator completed the transaction: every marker is written.
    fn wait_complete(&self, wire: &mut Wire, commit: bool) {
        let want = if commit {
            "CompleteCommit"
        } else {
            "CompleteAbort"
        };
        let request = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![transactional_id(&self.id)]);
        wait_until(COMPLETE_DEADLINE, want, || {
            let response = wire.call(0, &request);
            let state = &response.transaction_states[0];
            // NOT_COORDINATOR while a dead coordinator's lease still runs.
            state.error_code == 0 && state.transaction_state.as_str() == want
        });
    }

    /// Produce v9 of a batch with this producer's transactional id.
    fn produce(&self, wire: &mut Wire, topic: &str, partition: i32, batch: Vec<u8>) -> (i16, i64) {
        produce(wire, Some(&self.id), topic, partition, batch)
    }

    /// A transactional batch of this producer.
    fn batch(&self, sequence: i32, records: usize) -> Vec<u8> {
        self.batch_of(self.producer_epoch, sequence, records, 10)
    }

    fn batch_of(&self, epoch: i16, sequence: i32, records: usize, value_len: usize) -> Vec<u8> {
        build_batch(&BatchSpec {
            records,
            value_len,
            attributes: TRANSACTIONAL,
            producer_id: self.producer_id,
            producer_epoch: epoch,
            base_sequence: sequence,
            ..BatchSpec::default()
        })
    }
}

/// A broker on a fresh data directory with a `topic` of `partitions`, a raw connection, and
/// the transactional producer `id` initialised.
async fn start(
    dir: &std::path::Path,
    args: &[&str],
    topic: &str,
    partitions: i32,
    id: &str,
) -> (Broker, Wire, RawTxnProducer) {
    let broker = Broker::start(dir, args);
    create_topic(&broker.bootstrap(), topic, partitions).await;
    let mut wire = Wire::connect(&broker);
    let producer = RawTxnProducer::init(&mut wire, id);
    (broker, wire, producer)
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

/// DescribeProducers v0 of partition 0: (producer id, current transaction start offset).
fn txn_start_offsets(wire: &mut Wire, topic: &str) -> Vec<(i64, i64)> {
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0]),
    ]);
    let response = wire.call(0, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition
        .active_producers
        .iter()
        .map(|p| (p.producer_id.0, p.current_txn_start_offset))
        .collect()
}

/// The offsets of the records a librdkafka consumer at `isolation` ("read_committed" or
/// "read_uncommitted") delivers from the start of partition 0 to its end.
fn consume_offsets(bootstrap: &str, topic: &str, isolation: &str) -> Vec<i64> {
    consume(bootstrap, topic, 1, isolation)
        .into_iter()
        .map(|(_, offset, _)| offset)
        .collect()
}

/// (partition, offset, value) of the records a librdkafka consumer at `isolation` delivers
/// from the start of each of the `partitions` of `topic` to its end, in delivery order.
fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> Vec<(i32, i64, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "txn-tests")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut records = Vec::new();
    let mut at_end = std::collections::BTreeSet::new();
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "{isolation} consumer did not reach the end; got {records:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => records.push((
                message.partition(),
                message.offset(),
                message.payload().unwrap_or_default().to_vec(),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(err)) => panic!("consume: {err}"),
        }
    }
    records
}

/// Goal: a transactional batch is written only inside the producer's transaction as the
/// coordinator's record describes it, with Kafka's error codes otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_produce_is_checked_against_the_coordinators_record() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, mut wire, producer) = start(dir.path(), &[], "checked", 2, "checked").await;

    // Not added to a transaction yet.
    assert_eq!(
        producer
            .produce(&mut wire, "checked", 0, producer.batch(0, 1))
            .0,
        code(ResponseError::InvalidTxnState)
    );
    // Another producer id than the transactional id's.
    let stranger = RawTxnProducer {
        producer_id: producer.producer_id + 1_000,
        id: producer.id.clone(),
        producer_epoch: 0,
    };
    assert_eq!(
        stranger
            .produce(&mut wire, "checked", 0, stranger.batch(0, 1))
            .0,
        code(ResponseError::InvalidProducerIdMapping)
    );
    // Transactional batches need the transactional id in the request.
    assert_eq!(
        produce(&mut wire, None, "checked", 0, producer.batch(0, 1)).0,
        code(ResponseError::TransactionalIdAuthorizationFailed)
    );

    producer.add(&mut wire, "checked", &[0]);
    // Partition 1 was not added to the transaction.
    assert_eq!(
        producer
            .produce(&mut wire, "checked", 1, producer.batch(0, 1))
            .0,
        code(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        producer.produce(&mut wire, "checked", 0, producer.batch(0, 2)),
        (0, 0)
    );
    // Inside the open transaction: more transactional batches go without a new check; a
    // non-transactional one of the same producer does not.
    assert_eq!(
        producer.produce(&mut wire, "checked", 0, producer.batch(2, 1)),
        (0, 2)
    );
    let plain = build_batch(&BatchSpec {
        producer_id: producer.producer_id,
        producer_epoch: producer.producer_epoch,
        base_sequence: 3,
        ..BatchSpec::default()
    });
    assert_eq!(
        produce(&mut wire, Some("checked"), "checked", 0, plain).0,
        code(ResponseError::InvalidTxnState)
    );

    // A new instance fences the producer: the coordinator aborts the open transaction with
    // a marker of the new epoch, which partition 0 learns; partition 1 never saw the
    // producer and learns it from the coordinator's record.
    let successor = RawTxnProducer::init(&mut wire, "checked");
    assert!(successor.producer_epoch > producer.producer_epoch);
    assert_eq!(
        producer
            .produce(&mut wire, "checked", 0, producer.batch(3, 1))
            .0,
        code(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(
        producer
            .produce(&mut wire, "checked", 1, producer.batch(0, 1))
            .0,
        code(ResponseError::ProducerFenced)
    );
    let fetched = fetch(&mut wire, "checked", 0, 0, true);
    assert_eq!(fetched.aborted, Some(vec![(producer.producer_id, 0)]));
    let marker = fetched
        .batches
        .last()
        .and_then(|b| b.marker)
        .expect("a marker last");
    assert!(!marker.commit);
    assert!(
        marker.producer_epoch > producer.producer_epoch,
        "aborted under a bumped epoch"
    );
}

/// Goal: an aborted transaction is hidden from read_committed readers and visible to
/// read_uncommitted ones, and while it is open the last stable offset holds read_committed
/// readers (Fetch and ListOffsets) at its first offset. Method: plain records around a
/// transaction on one partition; raw Fetch and ListOffsets at both isolation levels before
/// and after the abort, and librdkafka consumers at both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_transaction_is_hidden_at_read_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut wire, producer) = start(dir.path(), &[], "aborts", 1, "aborter").await;
    let bootstrap = broker.bootstrap();

    assert_eq!(produce_plain(&mut wire, "aborts", 2), (0, 0));
    producer.add(&mut wire, "aborts", &[0]);
    assert_eq!(
        producer.produce(&mut wire, "aborts", 0, producer.batch(0, 3)),
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
    assert_eq!(
        txn_start_offsets(&mut wire, "aborts"),
        vec![(producer.producer_id, 2)],
        "DescribeProducers shows the open transaction"
    );

    producer.end(&mut wire, false);
    producer.wait_complete(&mut wire, false);

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
        (6, producer.producer_id)
    );
    assert_eq!(
        marker.marker,
        Some(TxnMarker {
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
            commit: false,
            coordinator_epoch: 0,
        })
    );
    assert_eq!(committed.aborted, Some(vec![(producer.producer_id, 2)]));
    let after = fetch(&mut wire, "aborts", 0, 5, true);
    assert_eq!(
        after.aborted,
        Some(vec![(producer.producer_id, 2)]),
        "the marker at 6 is in the range"
    );
    let past = fetch(&mut wire, "aborts", 0, 7, true);
    assert_eq!(
        past.aborted,
        Some(Vec::new()),
        "nothing returned past the end"
    );
    assert_eq!(latest_offset(&mut wire, "aborts", 0, true), 7);
    assert_eq!(
        txn_start_offsets(&mut wire, "aborts"),
        vec![(producer.producer_id, -1)]
    );

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
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut wire, producer) = start(dir.path(), &[], "commits", 1, "committer").await;
    let bootstrap = broker.bootstrap();
    producer.add(&mut wire, "commits", &[0]);
    assert_eq!(
        producer.produce(&mut wire, "commits", 0, producer.batch(0, 3)),
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

    producer.end(&mut wire, true);
    producer.wait_complete(&mut wire, true);
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

/// A client of the broker's etcd at `url`, and the id of `topic`.
async fn etcd_client(url: &str, topic: &str) -> (EtcdStore, uuid::Uuid) {
    let store = EtcdStore::connect(EtcdConfig::from_url(url).unwrap())
        .await
        .unwrap();
    let key = keys::topic(topic);
    let record = store.get(&key).await.unwrap().expect("topic record");
    let topic_id = TopicRecord::decode(&key, &record.value).unwrap().topic_id;
    (store, topic_id)
}

/// Goal: a marker survives the death of the leader that appended it but had not committed
/// it: the request is still in the store, and the next leader writes the marker exactly
/// once (and the next coordinator completes the transaction). Method: brokers on one etcd
/// and object store; the first flushes only when 1 KiB is waiting (or after 60 s; never
/// because it is idle), so the
/// transaction's 2 KiB batch is committed at once but the marker waits in its open segment;
/// it is killed (-9) once it logged the marker appended, and a second broker takes the
/// partition and the transactional id over when the first one's lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_survives_kill_9_of_its_leader() {
    let etcd = EtcdServer::start();
    let url = etcd.url("/strato/txn");
    let dir = tempfile::tempdir().unwrap();
    let objects = format!("file://{}", dir.path().join("objects").display());
    let shared = ["--metadata", &url, "--object-store", &objects];
    let mut first_args = shared.to_vec();
    first_args.extend([
        "--flush-interval-ms",
        "60000",
        "--flush-bytes",
        "1024",
        "--flush-when-idle",
        "false",
    ]);
    let (first, mut wire, producer) = start(
        &dir.path().join("first"),
        &first_args,
        "survivor",
        1,
        "survivor",
    )
    .await;
    producer.add(&mut wire, "survivor", &[0]);
    let big = producer.batch_of(producer.producer_epoch, 0, 10, 200);
    assert_eq!(producer.produce(&mut wire, "survivor", 0, big), (0, 0));
    producer.end(&mut wire, false);
    tokio::task::block_in_place(|| {
        wait_until(COMPLETE_DEADLINE, "the marker appended", || {
            first.log_text().contains("transaction marker appended")
        })
    });
    drop(wire);
    first.kill();
    let (store, topic_id) = etcd_client(&url, "survivor").await;
    let request = keys::txn_marker(topic_id, 0, producer.producer_id);
    assert!(
        store.get(&request).await.unwrap().is_some(),
        "not committed: the request is still there"
    );

    let second = Broker::start(&dir.path().join("second"), &shared);
    let mut wire = Wire::connect(&second);
    tokio::task::block_in_place(|| producer.wait_complete(&mut wire, false));
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
    assert_eq!(committed.aborted, Some(vec![(producer.producer_id, 0)]));
    drop(second);
}

/// Goal: a marker request for a partition that does not exist (its topic deleted, or never
/// there) does not wait forever: the partition's owner deletes it. Method: requests for an
/// unknown topic id and for a partition past a topic's last, written straight into the
/// broker's etcd (a coordinator racing a topic deletion could leave such keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_requests_for_missing_partitions_are_deleted() {
    let etcd = EtcdServer::start();
    let url = etcd.url("/strato/txn");
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--metadata", &url]);
    create_topic(&broker.bootstrap(), "small", 1).await;
    let (store, topic_id) = etcd_client(&url, "small").await;
    let request = TxnMarkerRecord {
        v: RECORD_FORMAT_V1,
        transactional_id: "ghost".into(),
        producer_id: 42,
        producer_epoch: 0,
        commit: true,
        coordinator_epoch: 0,
    };
    let stale = [
        keys::txn_marker(uuid::Uuid::new_v4(), 0, 42),
        keys::txn_marker(topic_id, 5, 42),
    ];
    for key in &stale {
        store
            .txn(Txn::new().put(key, request.encode()))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + COMPLETE_DEADLINE;
    for key in &stale {
        while store.get(key).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{key} not deleted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(broker);
}

/// Goal: compaction keeps markers' meaning: once the chunks holding an aborted transaction
/// and its marker are merged into one compacted chunk, a read_committed fetch still lists
/// the transaction and librdkafka at read_committed still drops its records. Method: every
/// produce is its own flush (its own chunk); compaction every 100 ms merges all but the
/// newest 2 chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_aborted_transactions_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--compaction-interval-ms", "100"];
    let (broker, mut wire, producer) = start(dir.path(), &args, "compacted", 1, "compacted").await;
    for offset in 0..3 {
        assert_eq!(produce_plain(&mut wire, "compacted", 1), (0, offset));
    }
    producer.add(&mut wire, "compacted", &[0]);
    assert_eq!(
        producer.produce(&mut wire, "compacted", 0, producer.batch(0, 2)),
        (0, 3)
    );
    assert_eq!(produce_plain(&mut wire, "compacted", 1), (0, 5));
    producer.end(&mut wire, false);
    producer.wait_complete(&mut wire, false);
    for offset in 7..11 {
        assert_eq!(produce_plain(&mut wire, "compacted", 1), (0, offset));
    }
    // 10 chunks of one record or batch each (one per flush). Compaction merges runs of 4 or
    // more small chunks, leaving the newest 2 alone, until no such run is left: then the
    // 8 older chunks are at most 3 entries, each either one chunk or a merge of 4 or more,
    // so the transaction's chunk (the 4th) and its marker's (the 6th) are in merged ones.
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "the chunks compacted", || {
            broker.metric("strato_compaction_backlog_entries") == 0.0
                && broker.metric("strato_compactions_total{result=\"merged\"}") >= 1.0
        })
    });
    let committed = fetch(&mut wire, "compacted", 0, 0, true);
    assert_eq!(committed.aborted, Some(vec![(producer.producer_id, 3)]));
    assert_eq!(
        committed
            .batches
            .iter()
            .filter(|b| b.marker.is_some())
            .count(),
        1
    );
    let offsets = tokio::task::block_in_place(|| {
        consume_offsets(&broker.bootstrap(), "compacted", "read_committed")
    });
    assert_eq!(offsets, vec![0, 1, 2, 5, 7, 8, 9, 10]);
}

/// A librdkafka transactional producer.
fn transactional_producer(bootstrap: &str, id: &str) -> ThreadedProducer<DefaultProducerContext> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("linger.ms", "5")
        .create()
        .expect("create transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init transactions");
    producer
}

/// Goal: librdkafka's transactional producer works end to end: transactions over several
/// partitions commit or abort as a whole, read_committed consumers see exactly the committed
/// ones (in each partition in send order), read_uncommitted consumers see everything.
/// Method: three transactions of 30 records over 3 partitions, the middle one aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_transactions_commit_and_abort_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "spread", 3).await;
    tokio::task::block_in_place(|| {
        commit_abort_commit(&bootstrap, "spread", 3);
        check_committed_only(&bootstrap, "spread", 3);
    });
}

/// The same on three brokers: the transaction's partitions have different leaders, each
/// writing its markers, and a consumer bootstrapped from one broker reads them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_span_partitions_led_by_different_brokers() {
    // Enough partitions that rendezvous hashing gives each broker some (all but surely).
    const PARTITIONS: i32 = 30;
    let cluster = Cluster::start(3, "/strato/txn-cluster");
    create_topic(&cluster.bootstrap(), "spread", PARTITIONS).await;
    tokio::task::block_in_place(|| {
        cluster.wait_balanced(PARTITIONS as u64);
        commit_abort_commit(&cluster.bootstrap(), "spread", PARTITIONS);
        check_committed_only(&cluster.brokers[&2].bootstrap(), "spread", PARTITIONS);
    });
}

/// The records of transaction `round`: 10 a partition.
fn round_values(round: usize, partitions: i32) -> Vec<String> {
    (0..10 * partitions as usize)
        .map(|i| format!("{round}-{i}"))
        .collect()
}

/// Three transactions of librdkafka's transactional producer over all `partitions` of
/// `topic` (record i to partition i mod `partitions`): committed, aborted, committed.
fn commit_abort_commit(bootstrap: &str, topic: &str, partitions: i32) {
    let producer = transactional_producer(bootstrap, "spreader");
    for (round, commit) in [(0, true), (1, false), (2, true)] {
        producer.begin_transaction().expect("begin");
        for (i, value) in round_values(round, partitions).iter().enumerate() {
            let record: BaseRecord<'_, (), String> = BaseRecord::to(topic)
                .partition(i as i32 % partitions)
                .payload(value);
            producer.send(record).map_err(|(err, _)| err).expect("send");
        }
        let timeout = Duration::from_secs(30);
        // Written before the abort (an abort purges what is still queued).
        producer.flush(timeout).expect("flush");
        if commit {
            producer.commit_transaction(timeout).expect("commit");
        } else {
            producer.abort_transaction(timeout).expect("abort");
        }
    }
}

/// After [`commit_abort_commit`]: read_committed consumers see rounds 0 and 2 in each
/// partition, read_uncommitted ones all three.
fn check_committed_only(bootstrap: &str, topic: &str, partitions: i32) {
    let committed = consume(bootstrap, topic, partitions, "read_committed");
    let uncommitted = consume(bootstrap, topic, partitions, "read_uncommitted");
    let in_partition = |records: &[(i32, i64, Vec<u8>)], partition: i32| -> Vec<String> {
        records
            .iter()
            .filter(|(p, _, _)| *p == partition)
            .map(|(_, _, v)| String::from_utf8(v.clone()).unwrap())
            .collect()
    };
    for partition in 0..partitions {
        let sent = |rounds: &[usize]| -> Vec<String> {
            rounds
                .iter()
                .flat_map(|round| {
                    round_values(*round, partitions)
                        .into_iter()
                        .skip(partition as usize)
                        .step_by(partitions as usize)
                })
                .collect()
        };
        assert_eq!(
            in_partition(&committed, partition),
            sent(&[0, 2]),
            "partition {partition} at read_committed"
        );
        assert_eq!(
            in_partition(&uncommitted, partition),
            sent(&[0, 1, 2]),
            "partition {partition} at read_uncommitted"
        );
    }
}

/// Goal: Kafka's own Java client (kafka-clients 4.3) runs transactions against the broker:
/// committed and aborted transactions over 3 partitions, read back at both isolation levels,
/// and endOffsets at read_committed is the last stable offset (30 records and 3 markers a
/// partition). Method: tests/clients/java (JavaTransactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_client_transactions_commit_and_abort() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    create_topic(&broker.bootstrap(), "java-spread", 3).await;
    let result = tokio::task::block_in_place(|| {
        common::run_java_class(
            "strato.JavaTransactions",
            &[
                "--bootstrap",
                &broker.bootstrap(),
                "--topic",
                "java-spread",
                "--partitions",
                "3",
                "--transactional-id",
                "java-spreader",
            ],
        )
    });
    for partition in 0..3 {
        let values = |isolation: &str| -> Vec<String> {
            result[isolation][partition.to_string()]
                .as_array()
                .unwrap_or_else(|| panic!("{isolation} values of {partition}: {result}"))
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let sent = |rounds: &[usize]| -> Vec<String> {
            rounds
                .iter()
                .flat_map(|round| {
                    round_values(*round, 3)
                        .into_iter()
                        .skip(partition)
                        .step_by(3)
                })
                .collect()
        };
        assert_eq!(values("read_committed"), sent(&[0, 2]), "{partition}");
        assert_eq!(values("read_uncommitted"), sent(&[0, 1, 2]), "{partition}");
        assert_eq!(
            result["end_offsets"][partition.to_string()].as_i64(),
            Some(33),
            "{result}"
        );
    }
}

/// Goal: consume-transform-produce exactly once with librdkafka: the output records and the
/// input offsets commit in one transaction. Method: a group consumer reads 20 input records;
/// a transactional producer writes one output record per input record and sends the
/// consumer's offsets with the transaction; after the commit, a read_committed reader sees
/// the 20 outputs and the group's committed offset is the end of the input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_consume_transform_produce_commits_offsets_with_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "input", 1).await;
    create_topic(&bootstrap, "output", 1).await;
    let mut wire = Wire::connect(&broker);
    assert_eq!(produce_plain(&mut wire, "input", 20), (0, 0));
    tokio::task::block_in_place(|| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "transformers")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create()
            .expect("create consumer");
        consumer.subscribe(&["input"]).unwrap();
        let producer = transactional_producer(&bootstrap, "transformer");
        let mut inputs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while inputs.len() < 20 {
            assert!(Instant::now() < deadline, "read {} inputs", inputs.len());
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                inputs.push(message.expect("no consumer error").offset());
            }
        }
        producer.begin_transaction().expect("begin");
        for offset in &inputs {
            let value = format!("out-{offset}");
            let record: BaseRecord<'_, (), String> = BaseRecord::to("output").payload(&value);
            producer.send(record).map_err(|(err, _)| err).expect("send");
        }
        let positions = consumer.position().unwrap();
        let group = consumer.group_metadata().expect("group metadata");
        producer
            .send_offsets_to_transaction(&positions, &group, Duration::from_secs(30))
            .expect("send offsets");
        producer
            .commit_transaction(Duration::from_secs(30))
            .expect("commit");
        let committed = consumer
            .committed(Duration::from_secs(10))
            .expect("committed offsets");
        assert_eq!(
            committed.find_partition("input", 0).map(|p| p.offset()),
            Some(Offset::Offset(20))
        );
    });
    let outputs =
        tokio::task::block_in_place(|| consume(&bootstrap, "output", 1, "read_committed"));
    let values: Vec<String> = outputs
        .into_iter()
        .map(|(_, _, v)| String::from_utf8(v).unwrap())
        .collect();
    assert_eq!(
        values,
        (0..20).map(|i| format!("out-{i}")).collect::<Vec<_>>()
    );
}
