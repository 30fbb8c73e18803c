//! Produce and consume through a real broker with librdkafka (the `rdkafka` crate): every
//! compression codec, keys, headers, null values and timestamps come back identical and in
//! offset order; acknowledged records survive a graceful restart and kill -9; a consumer
//! waiting at the end of the log is woken by the flush commit, not by its wait timeout.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Broker;
use common::kafka::{Rec, consume_all, consumer, create_topic, produce_all, producer, record};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

/// Goal: 100,000 records over 3 partitions, 20,000 per compression codec, each with a key,
/// three headers (one with a null value), an explicit timestamp and sometimes a null
/// value, come back exactly as acknowledged, in dense offset order; then the same after a
/// graceful restart and after kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_every_codec_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // Flushes compress (the s3:// default), so both kinds of chunk are written and read;
    // the local default stores both raw (compaction::flushes_store_batches_as_sent_...).
    let broker = Broker::start(dir.path(), &["--flush-compression", "zstd"]);
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
    assert_chunk_encodings(&dir.path().join("data"));
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

/// Batches the producer compressed are stored as they came (raw chunks, no zstd pass);
/// with `--flush-compression zstd` uncompressed ones are zstd-compressed by the broker: both
/// kinds are in the bucket.
fn assert_chunk_encodings(data_dir: &std::path::Path) {
    use strato_tiering::segment::{ChunkEncoding, parse_segment_footer};
    let (mut raw, mut zstd) = (0, 0);
    for file in common::segment_files(data_dir) {
        let object = std::fs::read(&file).unwrap();
        for chunk in parse_segment_footer(&object).unwrap() {
            match chunk.encoding {
                ChunkEncoding::Raw => raw += 1,
                ChunkEncoding::Zstd => zstd += 1,
            }
        }
    }
    assert!(raw > 0 && zstd > 0, "raw chunks {raw}, zstd chunks {zstd}");
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
