//! Produce and consume through a real broker with librdkafka (the `rdkafka` crate): every
//! compression codec, keys, headers, null values and timestamps come back identical and in
//! offset order; acknowledged records survive a graceful restart and kill -9; a consumer
//! waiting at the end of the log is woken by the flush commit, not by its wait timeout.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const CONSUME_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
}

fn record(codec: &str, i: usize) -> Rec {
    let value = if i.is_multiple_of(97) {
        None
    } else {
        // Varied sizes and some repetition so every codec has something to compress.
        let len = 10 + (i * 37) % 400;
        Some(
            format!("{codec}-{i}-")
                .bytes()
                .cycle()
                .take(len)
                .collect::<Vec<u8>>(),
        )
    };
    Rec {
        key: Some(format!("key-{}", i % 1000).into_bytes()),
        value,
        headers: vec![
            ("idx".to_string(), Some(i.to_string().into_bytes())),
            ("codec".to_string(), Some(codec.as_bytes().to_vec())),
            ("empty".to_string(), None),
        ],
        timestamp: Some(1_700_000_000_000 + i as i64),
    }
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("create producer")
}

fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.partition.eof", "false")
        // librdkafka's assign() needs a group id even without group membership; offsets
        // are never committed, so no group coordinator is involved.
        .set("group.id", "strato-tests")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("create consumer")
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topics request");
    for result in results {
        result.expect("topic created");
    }
}

/// Produces `records` and returns where each one landed: (partition, offset) -> record.
async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: &[Rec],
) -> BTreeMap<(i32, i64), Rec> {
    let mut landed = BTreeMap::new();
    for chunk in records.chunks(5_000) {
        let mut futures = Vec::with_capacity(chunk.len());
        for rec in chunk {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &rec.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            let mut fr: FutureRecord<'_, Vec<u8>, Vec<u8>> =
                FutureRecord::to(topic).headers(headers);
            if let Some(k) = &rec.key {
                fr = fr.key(k);
            }
            if let Some(v) = &rec.value {
                fr = fr.payload(v);
            }
            if let Some(ts) = rec.timestamp {
                fr = fr.timestamp(ts);
            }
            let future = producer
                .send_result(fr)
                .map_err(|(err, _)| err)
                .expect("enqueue record");
            futures.push((future, rec.clone()));
        }
        for (future, rec) in futures {
            let delivery = future
                .await
                .expect("delivery future")
                .map_err(|(err, _)| err)
                .expect("record acknowledged");
            assert!(
                landed
                    .insert((delivery.partition, delivery.offset), rec)
                    .is_none(),
                "two records acknowledged at the same offset"
            );
        }
    }
    landed
}

/// Reads every partition of `topic` from the beginning until `expected` records arrived.
fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> BTreeMap<(i32, i64), Rec> {
    let consumer = consumer(bootstrap, &[]);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut got = BTreeMap::new();
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let end = Instant::now() + CONSUME_DEADLINE;
    while got.len() < expected {
        assert!(
            Instant::now() < end,
            "consumed only {} of {expected} records",
            got.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.expect("consume without error");
        let previous = last_offset.insert(msg.partition(), msg.offset());
        if let Some(previous) = previous {
            assert_eq!(
                msg.offset(),
                previous + 1,
                "offsets are dense and in order in partition {}",
                msg.partition()
            );
        } else {
            assert_eq!(msg.offset(), 0, "partition {} starts at 0", msg.partition());
        }
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let rec = Rec {
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: msg.timestamp().to_millis(),
        };
        assert!(got.insert((msg.partition(), msg.offset()), rec).is_none());
    }
    got
}

/// Goal: 100,000 records over 3 partitions, 20,000 per compression codec, each with a key,
/// three headers (one with a null value), an explicit timestamp and sometimes a null
/// value, come back exactly as acknowledged, in dense offset order; then the same after a
/// graceful restart and after kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_every_codec_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "codecs", 3).await;

    let mut landed = BTreeMap::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let producer = producer(
            &bootstrap,
            &[("compression.codec", codec), ("enable.idempotence", "true")],
        );
        let records: Vec<Rec> = (0..20_000).map(|i| record(codec, i)).collect();
        landed.extend(produce_all(&producer, "codecs", &records).await);
    }
    assert_eq!(landed.len(), 100_000);
    let partitions_used = landed
        .keys()
        .map(|(p, _)| *p)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(partitions_used.len(), 3, "keys spread over all partitions");

    let consumed = consume_all(&bootstrap, "codecs", 3, landed.len());
    assert_eq!(
        consumed, landed,
        "consumed records equal the acknowledged ones"
    );

    let broker = broker.restart_graceful();
    let consumed = consume_all(&broker.bootstrap(), "codecs", 3, landed.len());
    assert_eq!(consumed, landed, "after a graceful restart");

    let broker = broker.restart_killed();
    let consumed = consume_all(&broker.bootstrap(), "codecs", 3, landed.len());
    assert_eq!(consumed, landed, "after kill -9");
}

/// Goal: records acknowledged just before kill -9 are there after the restart, and offsets
/// continue where they stopped (no reuse, no gap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_survive_kill_and_offsets_continue() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let producer1 = producer(&broker.bootstrap(), &[("acks", "all")]);
    let first: Vec<Rec> = (0..1_000).map(|i| record("first", i)).collect();
    let mut landed = produce_all(&producer1, "restarts", &first).await;
    drop(producer1);
    // Kill right after the last acknowledgement: acked means committed.
    let broker = broker.restart_killed();

    let producer2 = producer(&broker.bootstrap(), &[("acks", "1")]);
    let second: Vec<Rec> = (0..1_000).map(|i| record("second", i)).collect();
    let more = produce_all(&producer2, "restarts", &second).await;
    let first_new = more.keys().next().copied().unwrap();
    assert_eq!(first_new, (0, 1_000), "offsets continue after the restart");
    landed.extend(more);
    drop(producer2);

    let broker = broker.restart_graceful();
    let consumed = consume_all(&broker.bootstrap(), "restarts", 1, landed.len());
    assert_eq!(consumed, landed);
}

/// Goal: a consumer parked at the end of the log (fetch.wait.max.ms = 20 s) receives a new
/// record when its flush commits. If fetches were only answered at their wait timeout, the
/// record would arrive after ~20 s; the test allows 10 s, far above the expected few ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_is_woken_by_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "tail", 1).await;
    let producer = producer(&bootstrap, &[("linger.ms", "0")]);
    produce_all(&producer, "tail", &[record("warmup", 0)]).await;

    let consumer = consumer(&bootstrap, &[("fetch.wait.max.ms", "20000")]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("tail", 0, Offset::Offset(1))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    // Let the consumer reach the end of the log and park its fetch there.
    assert!(consumer.poll(Duration::from_secs(2)).is_none());

    let mut latencies = Vec::new();
    for i in 1..=5 {
        let sent = Instant::now();
        produce_all(&producer, "tail", &[record("tail", i)]).await;
        let msg = loop {
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "record {i} not delivered by the long poll"
            );
            if let Some(msg) = consumer.poll(Duration::from_millis(100)) {
                break msg.expect("consume");
            }
        };
        assert_eq!(msg.offset(), i as i64);
        latencies.push(sent.elapsed());
    }
    eprintln!("produce->consume latencies: {latencies:?}");
}

/// Goal: with auto-creation off, producing to an unknown topic fails with
/// UNKNOWN_TOPIC_OR_PARTITION; after CreateTopics the same produce succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--auto-create-topics", "false"]);
    let bootstrap = broker.bootstrap();
    let short = producer(&bootstrap, &[("message.timeout.ms", "3000")]);
    let result = short
        .send(
            FutureRecord::<(), _>::to("not-there").payload("x"),
            Duration::from_secs(0),
        )
        .await;
    let (err, _) = result.expect_err("unknown topic must fail");
    let text = format!("{err}");
    assert!(
        text.contains("Unknown topic")
            || text.contains("UnknownTopic")
            || text.contains("timed out"),
        "unexpected error {text}"
    );

    create_topic(&bootstrap, "not-there", 2).await;
    let retry = producer(&bootstrap, &[]);
    let landed = produce_all(&retry, "not-there", &[record("x", 1), record("x", 2)]).await;
    assert_eq!(landed.len(), 2);
}

/// Goal: acks=0 produce requests get no response (librdkafka does not wait for one) and
/// their records are still stored; a later acks=1 request on the same connection is
/// answered normally (no stray response shifted the correlation ids).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_is_stored_without_responses() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "fire", 1).await;
    let fire = producer(&bootstrap, &[("acks", "0"), ("linger.ms", "0")]);
    let records: Vec<Rec> = (0..1_000).map(|i| record("fire", i)).collect();
    for rec in &records {
        let fr: FutureRecord<'_, Vec<u8>, Vec<u8>> = FutureRecord::to("fire")
            .key(rec.key.as_ref().unwrap())
            .headers(rec.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: v.as_deref(),
                })
            }));
        let fr = match &rec.value {
            Some(v) => fr.payload(v),
            None => fr,
        };
        let fr = fr.timestamp(rec.timestamp.unwrap());
        let delivery = fire.send(fr, Duration::from_secs(10)).await;
        let delivery = delivery.map_err(|(e, _)| e).expect("acks=0 send");
        // The client never sees a response with acks=0, so it reports no offset.
        assert!(delivery.offset < 0, "no offset without a response");
    }
    let consumed = consume_all(&bootstrap, "fire", 1, 1_000);
    let values: Vec<_> = consumed.values().cloned().collect();
    assert_eq!(values, records, "every acks=0 record stored, in order");
}
