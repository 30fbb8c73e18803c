//! Exactly-once with real clients (issue 17): librdkafka's transactional producer and
//! read_committed consumer, zombie fencing, timeouts, and a consume-transform-produce loop
//! over a 3-broker cluster on etcd with a broker killed in the middle.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::Broker;
use common::cluster::Cluster;
use common::kafka::create_topic;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

const TXN_TIMEOUT: Duration = Duration::from_secs(30);

fn txn_producer(bootstrap: &str, transactional_id: &str, extra: &[(&str, &str)]) -> TxnProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "60000")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let producer: TxnProducer = config.create().expect("create transactional producer");
    producer
        .init_transactions(TXN_TIMEOUT)
        .expect("init_transactions");
    producer
}

fn send(producer: &TxnProducer, topic: &str, partition: i32, value: &str) {
    producer
        .send(
            BaseRecord::<(), str>::to(topic)
                .partition(partition)
                .payload(value),
        )
        .unwrap_or_else(|(err, _)| panic!("send {value}: {err}"));
}

/// Reads `topic` (all `partitions`) from the start at `isolation` until the end offsets
/// (read_committed: the last stable offsets) are reached; returns the values.
fn read_all(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "eos-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut values = Vec::new();
    let mut at_end = BTreeSet::new();
    let end = Instant::now() + Duration::from_secs(60);
    while at_end.len() < usize::try_from(partitions).unwrap() {
        assert!(Instant::now() < end, "read only {values:?}");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            // A broker of the cluster is down: librdkafka reports it and carries on.
            Some(Err(err)) if common::kafka::is_transient(&err) => {}
            Some(Err(err)) => panic!("consume: {err}"),
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                values.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into());
            }
        }
    }
    values
}

/// Goal: librdkafka's transactional producer against Strato: committed records are visible
/// at read_committed, aborted ones never are there and are at read_uncommitted; a zombie
/// with the same transactional id is fenced. Method: one broker; commit a transaction over
/// two partitions, abort one, commit another; read back at both isolation levels; a second
/// producer with the same id fences the first, whose next commit fails fatally.
#[test]
fn committed_records_are_visible_and_aborted_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--default-partitions", "2"]);
    let bootstrap = broker.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&bootstrap, "txn-out", 2));

    let producer = txn_producer(&bootstrap, "writer", &[]);
    producer.begin_transaction().unwrap();
    send(&producer, "txn-out", 0, "committed-1");
    send(&producer, "txn-out", 1, "committed-2");
    producer.commit_transaction(TXN_TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "txn-out", 0, "aborted-1");
    send(&producer, "txn-out", 1, "aborted-2");
    producer.flush(TXN_TIMEOUT).unwrap();
    producer.abort_transaction(TXN_TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "txn-out", 0, "committed-3");
    producer.commit_transaction(TXN_TIMEOUT).unwrap();

    let mut committed = read_all(&bootstrap, "txn-out", 2, "read_committed");
    committed.sort();
    assert_eq!(committed, ["committed-1", "committed-2", "committed-3"]);
    let mut everything = read_all(&bootstrap, "txn-out", 2, "read_uncommitted");
    everything.sort();
    assert_eq!(
        everything,
        [
            "aborted-1",
            "aborted-2",
            "committed-1",
            "committed-2",
            "committed-3"
        ]
    );

    // A new instance fences the old one.
    producer.begin_transaction().unwrap();
    send(&producer, "txn-out", 0, "zombie");
    let successor = txn_producer(&bootstrap, "writer", &[]);
    let fenced = producer.commit_transaction(TXN_TIMEOUT);
    match fenced {
        Err(KafkaError::Transaction(err)) => assert!(err.is_fatal(), "{err}"),
        other => panic!("the zombie's commit must fail fatally: {other:?}"),
    }
    successor.begin_transaction().unwrap();
    send(&successor, "txn-out", 1, "successor");
    successor.commit_transaction(TXN_TIMEOUT).unwrap();
    let committed = read_all(&bootstrap, "txn-out", 2, "read_committed");
    assert!(committed.contains(&"successor".to_string()));
    assert!(!committed.contains(&"zombie".to_string()), "{committed:?}");
}

/// Goal: a transaction left open past transaction.timeout.ms is aborted by the coordinator:
/// read_committed readers get past it and never see its records.
#[test]
fn an_abandoned_transaction_times_out_and_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    let producer = txn_producer(
        &bootstrap,
        "abandoned",
        &[
            ("transaction.timeout.ms", "2000"),
            ("message.timeout.ms", "2000"),
        ],
    );
    producer.begin_transaction().unwrap();
    send(&producer, "abandoned-out", 0, "never visible");
    producer.flush(TXN_TIMEOUT).unwrap();
    // The producer stops here without ending its transaction.
    std::mem::forget(producer);
    let other = txn_producer(&bootstrap, "after", &[]);
    other.begin_transaction().unwrap();
    send(&other, "abandoned-out", 0, "visible");
    other.commit_transaction(TXN_TIMEOUT).unwrap();
    // The abandoned transaction holds the last stable offset (read_committed readers stop
    // before it) until the coordinator aborts it after 2 s; then "visible" can be read and
    // "never visible" never appears.
    common::wait_until(
        Duration::from_secs(30),
        "the abandoned transaction to abort",
        || {
            let values = read_all(&bootstrap, "abandoned-out", 1, "read_committed");
            assert!(!values.contains(&"never visible".to_string()), "{values:?}");
            values == ["visible"]
        },
    );
}

/// Goal (issue 17's exactly-once test): a consume-transform-produce loop with librdkafka
/// (read_committed consumer in a group, transactional producer, sendOffsetsToTransaction)
/// over 3 brokers on etcd, with one broker killed -9 in the middle, writes every input
/// record to the output exactly once, and the group's committed offsets end at the input's
/// end. Method: 3,000 input records in 3 partitions; the loop processes batches of up to
/// 100 records per transaction, aborts and rewinds to the committed offsets on an abortable
/// error, starts a new producer on a fatal one; a broker is killed after a third of the
/// records went through.
#[test]
fn consume_transform_produce_is_exactly_once_through_a_broker_kill() {
    const RECORDS: usize = 3_000;
    let mut cluster = Cluster::start_with(3, "/strato/eos", &["--default-partitions", "3"]);
    let bootstrap = cluster.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&bootstrap, "eos-in", 3));
    rt.block_on(create_topic(&bootstrap, "eos-out", 3));
    // Rendezvous hashing may leave a broker without any of the 6 partitions: wait until
    // all of them are led.
    common::wait_until(common::cluster::SETTLE_DEADLINE, "6 led partitions", || {
        cluster.led().values().sum::<u64>() == 6
    });
    {
        let input: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        for i in 0..RECORDS {
            let key = i.to_string();
            input
                .send(
                    BaseRecord::to("eos-in")
                        .key(&key)
                        .payload(&format!("in-{i}")),
                )
                .unwrap_or_else(|(err, _)| panic!("{err}"));
        }
        input.flush(Duration::from_secs(60)).unwrap();
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "eos")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&["eos-in"]).unwrap();
    let mut producer = txn_producer(&bootstrap, "eos-loop", &[]);
    let mut processed = 0usize;
    let mut killed = false;
    let end = Instant::now() + Duration::from_secs(240);
    let mut seen_inputs = BTreeSet::new();
    while seen_inputs.len() < RECORDS {
        assert!(
            Instant::now() < end,
            "the loop processed {} of {RECORDS} input records",
            seen_inputs.len()
        );
        if !killed && processed >= RECORDS / 3 {
            // The transaction coordinator's broker dies without a goodbye (also the leader
            // of some partitions): its successor must finish or abort what it left.
            let slot = coordinator_slot(&cluster, "eos-loop");
            cluster.take(slot).kill();
            killed = true;
        }
        let mut batch = Vec::new();
        while batch.len() < 100 {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => batch.push((
                    message.partition(),
                    message.offset(),
                    String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
                )),
                Some(Err(err)) => eprintln!("consumer: {err}"),
                None => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let outcome = (|| -> Result<(), KafkaError> {
            producer.begin_transaction()?;
            for (_, _, value) in &batch {
                let out = value.replacen("in-", "out-", 1);
                producer
                    .send(BaseRecord::<(), str>::to("eos-out").payload(&out))
                    .map_err(|(err, _)| err)?;
            }
            let mut offsets = TopicPartitionList::new();
            let mut next: BTreeMap<i32, i64> = BTreeMap::new();
            for (p, offset, _) in &batch {
                next.insert(*p, offset + 1);
            }
            for (p, offset) in next {
                offsets
                    .add_partition_offset("eos-in", p, Offset::Offset(offset))
                    .unwrap();
            }
            let metadata = consumer.group_metadata().expect("group metadata");
            producer.send_offsets_to_transaction(&offsets, &metadata, TXN_TIMEOUT)?;
            producer.commit_transaction(TXN_TIMEOUT)
        })();
        match outcome {
            Ok(()) => {
                processed += batch.len();
                seen_inputs.extend(batch.iter().map(|(_, _, v)| v.clone()));
            }
            Err(err) => {
                eprintln!("transaction failed: {err}");
                let fatal = matches!(&err, KafkaError::Transaction(e) if e.is_fatal());
                if fatal {
                    producer = txn_producer(&bootstrap, "eos-loop", &[]);
                } else {
                    let _ = producer.abort_transaction(TXN_TIMEOUT);
                }
                // Back to the committed offsets: the batch is processed again.
                let assignment = consumer.assignment().unwrap();
                let committed = consumer
                    .committed_offsets(assignment, Duration::from_secs(30))
                    .unwrap();
                for element in committed.elements() {
                    let offset = match element.offset() {
                        Offset::Offset(o) => Offset::Offset(o),
                        _ => Offset::Beginning,
                    };
                    let _ = consumer.seek(
                        element.topic(),
                        element.partition(),
                        offset,
                        Duration::from_secs(10),
                    );
                }
            }
        }
    }
    let bootstrap = cluster.bootstrap();
    let mut outputs = read_all(&bootstrap, "eos-out", 3, "read_committed");
    outputs.sort();
    let mut expected: Vec<String> = (0..RECORDS).map(|i| format!("out-{i}")).collect();
    expected.sort();
    assert_eq!(
        outputs.len(),
        RECORDS,
        "exactly once: no duplicate, none missing"
    );
    assert_eq!(outputs, expected);
    let assignment = consumer.assignment().unwrap();
    let committed = consumer
        .committed_offsets(assignment, Duration::from_secs(30))
        .unwrap();
    let ends = common::kafka::high_watermarks(&bootstrap, "eos-in", 3);
    for element in committed.elements() {
        assert_eq!(
            element.offset(),
            Offset::Offset(ends[&element.partition()]),
            "partition {} committed at its end",
            element.partition()
        );
    }
}

/// The cluster slot of the broker that coordinates `transactional_id` (FindCoordinator).
fn coordinator_slot(cluster: &Cluster, transactional_id: &str) -> usize {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
    use kafka_protocol::protocol::StrBytes;
    let any = cluster.brokers.values().next().expect("a broker");
    let mut stream = common::wire::connect(any);
    let found: FindCoordinatorResponse = common::wire::call(
        &mut stream,
        ApiKey::FindCoordinator,
        3,
        1,
        &FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(transactional_id.to_string()))
            .with_key_type(1),
    );
    assert_eq!(found.error_code, 0);
    *cluster
        .brokers
        .iter()
        .find(|(_, b)| i32::from(b.addr.port()) == found.port)
        .expect("the coordinator is a running broker")
        .0
}

/// The cluster slot of the broker that leads `topic`/`partition` (Metadata).
fn leader_slot(cluster: &Cluster, topic: &str, partition: i32) -> usize {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let any = cluster.brokers.values().next().expect("a broker");
    let mut stream = common::wire::connect(any);
    let metadata: MetadataResponse = common::wire::call(
        &mut stream,
        ApiKey::Metadata,
        9,
        1,
        &MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(topic.to_string())),
            ))])),
    );
    let leader = metadata.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .expect("the partition")
        .leader_id;
    let port = metadata
        .brokers
        .iter()
        .find(|b| b.node_id == leader)
        .expect("the leader is listed")
        .port;
    *cluster
        .brokers
        .iter()
        .find(|(_, b)| i32::from(b.addr.port()) == port)
        .expect("the leader is a running broker")
        .0
}

/// Goal: a coordinator that dies between PrepareCommit and the markers leaves nothing
/// half-visible: the next coordinator finishes the commit. Method: two brokers on etcd; a
/// transaction writes to a partition led by the broker that does not coordinate it; that
/// leader is frozen (SIGSTOP) so the marker cannot be written, the commit is asked for
/// (PrepareCommit stored), then the coordinator is killed -9 and the leader thawed. The
/// survivor writes the marker, takes the coordination over and completes the transaction;
/// read_committed readers see the records, and its next transaction works.
#[test]
fn a_commit_survives_its_coordinator_dying_before_the_markers() {
    let mut cluster =
        Cluster::start_with(2, "/strato/eos-prepared", &["--default-partitions", "8"]);
    let bootstrap = cluster.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&bootstrap, "prepared", 8));
    // Both brokers lead some partitions: the first to start may take all 8 before the
    // second registers, and hands some over only when leadership settles.
    cluster.wait_balanced(8);
    let coordinator = coordinator_slot(&cluster, "prepared-tx");
    let Some(partition) = (0..8).find(|p| leader_slot(&cluster, "prepared", *p) != coordinator)
    else {
        panic!("rendezvous hashing gave every partition to the coordinator's broker");
    };
    let leader = leader_slot(&cluster, "prepared", partition);
    let producer = txn_producer(&bootstrap, "prepared-tx", &[]);
    producer.begin_transaction().unwrap();
    send(&producer, "prepared", partition, "survives");
    producer.flush(TXN_TIMEOUT).unwrap();
    cluster.brokers[&leader].pause();
    // EndTxn is answered once PrepareCommit is stored; the marker waits for the leader.
    producer.commit_transaction(TXN_TIMEOUT).unwrap();
    drop(producer);
    cluster.take(coordinator).kill();
    cluster.brokers[&leader].resume();
    let survivor = cluster.brokers[&leader].bootstrap();
    common::wait_until(Duration::from_secs(60), "the commit to complete", || {
        read_all(&survivor, "prepared", 8, "read_committed") == ["survives"]
    });
    let next = txn_producer(&survivor, "prepared-tx", &[]);
    next.begin_transaction().unwrap();
    send(&next, "prepared", partition, "next");
    next.commit_transaction(TXN_TIMEOUT).unwrap();
    let mut values = read_all(&survivor, "prepared", 8, "read_committed");
    values.sort();
    assert_eq!(values, ["next", "survives"]);
}
