//! librdkafka (the `rdkafka` crate) helpers shared by integration tests: a record shape with
//! keys, headers, null values and timestamps, and produce/consume loops that check order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

pub const CONSUME_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

pub fn record(codec: &str, i: usize) -> Rec {
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

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
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

pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
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

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
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
pub async fn produce_all(
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
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> BTreeMap<(i32, i64), Rec> {
    consume_all_with(bootstrap, topic, partitions, expected, &[])
}

/// [`consume_all`] with extra consumer configuration (e.g. `client.rack`).
pub fn consume_all_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    extra: &[(&str, &str)],
) -> BTreeMap<(i32, i64), Rec> {
    let starts = vec![0; usize::try_from(partitions).expect("partitions")];
    consume_from(bootstrap, topic, &starts, expected, extra)
}

/// Reads `expected` records of partitions `0..starts.len()`, each from its offset in `starts`
/// (its log start), checking that offsets are dense and in order from there.
pub fn consume_from(
    bootstrap: &str,
    topic: &str,
    starts: &[i64],
    expected: usize,
    extra: &[(&str, &str)],
) -> BTreeMap<(i32, i64), Rec> {
    let consumer = consumer(bootstrap, extra);
    let mut assignment = TopicPartitionList::new();
    for (p, start) in (0..).zip(starts) {
        assignment
            .add_partition_offset(topic, p, Offset::Offset(*start))
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
        let msg = match msg {
            Ok(msg) => msg,
            Err(err) if is_transient(&err) => {
                // A broker of the cluster is down or moving partitions: librdkafka reports
                // it and carries on by itself.
                eprintln!("consumer: transient error: {err}");
                continue;
            }
            Err(err) => panic!("consume without error: {err}"),
        };
        let previous = last_offset.insert(msg.partition(), msg.offset());
        if let Some(previous) = previous {
            assert_eq!(
                msg.offset(),
                previous + 1,
                "offsets are dense and in order in partition {}",
                msg.partition()
            );
        } else {
            let start = starts[usize::try_from(msg.partition()).expect("partition")];
            assert_eq!(
                msg.offset(),
                start,
                "partition {} starts at {start}",
                msg.partition()
            );
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

/// The high watermark (log end offset) of every partition of `topic`.
pub fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer = consumer(bootstrap, &[]);
    (0..partitions)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .expect("fetch watermarks");
            (p, high)
        })
        .collect()
}

/// Errors librdkafka reports while it recovers by itself (a broker down, a leader moving).
pub fn is_transient(err: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        err.rdkafka_error_code(),
        Some(
            Code::BrokerTransportFailure
                | Code::AllBrokersDown
                | Code::NotLeaderForPartition
                | Code::LeaderNotAvailable
                | Code::UnknownTopicOrPartition
        )
    )
}
