//! Kafka conformance of record-level behaviour and topic configs, each with librdkafka (the
//! `rdkafka` crate) and kafka-python (tests/clients/kafka_python_conformance.py; its consume
//! step uses confluent-kafka, which has every codec), plus raw
//! frames where a field must be seen exactly: KIP-467 record errors for keyless records on
//! compacted topics and timestamps outside `message.timestamp.*.max.ms`; ListOffsets by
//! timestamp answering the exact record; `compression.type` recompressing into the topic's
//! codec; Kafka's ignored topic configs accepted and described.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use common::kafka::{consumer, producer};
use common::wire::Wire;
use common::{Broker, run_client_script, wait_until};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    DescribeConfigsRequest, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use strato_tiering::batch;

const DEADLINE: Duration = Duration::from_secs(30);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(DEADLINE))
}

/// CreateTopics through librdkafka: the topic's result (its error code when refused).
async fn create(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let results = admin(bootstrap)
        .create_topics(&[new], &options())
        .await
        .expect("create topics request");
    results[0].clone().map(|_| ()).map_err(|(_, code)| code)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Sends one record with librdkafka and waits for its outcome: its offset or error code.
async fn send(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    key: Option<&str>,
    timestamp: i64,
) -> Result<i64, RDKafkaErrorCode> {
    let mut record: FutureRecord<'_, str, str> = FutureRecord::to(topic)
        .partition(0)
        .payload("value")
        .timestamp(timestamp);
    if let Some(key) = key {
        record = record.key(key);
    }
    match producer.send(record, DEADLINE).await {
        Ok(delivery) => Ok(delivery.offset),
        Err((KafkaError::MessageProduction(code), _)) => Err(code),
        Err((err, _)) => panic!("unexpected produce error: {err}"),
    }
}

fn record(offset: i64, key: Option<&str>, timestamp: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // No producer: base sequence -1 (the encoder derives it from the first record's).
        sequence: offset as i32 - 1,
        timestamp,
        key: key.map(|k| Bytes::from(k.to_string())),
        value: Some(Bytes::from_static(b"raw")),
        headers: Default::default(),
    }
}

/// One uncompressed batch of `records` (key, timestamp), offset deltas from 0.
fn raw_batch(records: &[(Option<&str>, i64)]) -> Bytes {
    let records: Vec<Record> = (0..)
        .zip(records)
        .map(|(i, (key, ts))| record(i, *key, *ts))
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode batch");
    out.freeze()
}

fn partition_data(index: i32, records: Bytes) -> PartitionProduceData {
    PartitionProduceData::default()
        .with_index(index)
        .with_records(Some(records))
}

/// Produce v9 of `partitions` of `topic` in one request.
fn produce_raw(
    wire: &mut Wire,
    topic: &str,
    partitions: Vec<PartitionProduceData>,
) -> ProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(partitions),
        ]);
    wire.call(9, &request)
}

/// Goal: records a topic refuses inside a batch refuse the whole batch with KIP-467 record
/// errors and Kafka's messages, and leave the request's other partitions alone: keyless
/// records on a compacted topic (INVALID_RECORD), CreateTime timestamps outside
/// `message.timestamp.before/after.max.ms` or the deprecated `difference.max.ms`
/// (INVALID_TIMESTAMP). Method: librdkafka sends single records and sees the error codes;
/// raw Produce v9 requests show the record errors field by field; kafka-python sends a batch
/// with one keyless record and reports each record's exception (the per-record error on
/// that record, "part of a batch" on the others); finally librdkafka reads the compacted
/// partition, which holds only the accepted records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_refuses_batches_with_bad_records_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create(&bootstrap, "changelog", 2, &[("cleanup.policy", "compact")])
        .await
        .unwrap();
    let hour = "3600000";
    create(
        &bootstrap,
        "recent",
        1,
        &[
            ("message.timestamp.before.max.ms", hour),
            ("message.timestamp.after.max.ms", hour),
        ],
    )
    .await
    .unwrap();
    create(
        &bootstrap,
        "legacy-limit",
        1,
        &[("message.timestamp.difference.max.ms", hour)],
    )
    .await
    .unwrap();
    const TWO_HOURS: i64 = 2 * 3_600_000;

    // librdkafka.
    let rdkafka = producer(&bootstrap, &[("linger.ms", "0")]);
    let now = now_ms();
    assert_eq!(
        send(&rdkafka, "changelog", None, now).await,
        Err(RDKafkaErrorCode::InvalidRecord)
    );
    assert_eq!(send(&rdkafka, "changelog", Some("a"), now).await, Ok(0));
    for (topic, ts) in [
        ("recent", now - TWO_HOURS),
        ("recent", now + TWO_HOURS),
        ("legacy-limit", now - TWO_HOURS),
        ("legacy-limit", now + TWO_HOURS),
    ] {
        assert_eq!(
            send(&rdkafka, topic, None, ts).await,
            Err(RDKafkaErrorCode::InvalidTimestamp),
            "{topic} at {ts} (now {now})"
        );
    }
    assert_eq!(send(&rdkafka, "recent", None, now).await, Ok(0));
    assert_eq!(send(&rdkafka, "legacy-limit", None, now).await, Ok(0));

    // Raw Produce v9: the record errors themselves; partition 1 of the same request is kept.
    let mut wire = Wire::connect(&broker);
    let response = produce_raw(
        &mut wire,
        "changelog",
        vec![
            partition_data(0, raw_batch(&[(Some("b"), now), (None, now), (None, now)])),
            partition_data(1, raw_batch(&[(Some("c"), now)])),
        ],
    );
    let refused = &response.responses[0].partition_responses[0];
    assert_eq!(refused.error_code, ResponseError::InvalidRecord.code());
    let errors: Vec<(i32, String)> = refused
        .record_errors
        .iter()
        .map(|e| {
            let message = e.batch_index_error_message.as_deref().unwrap_or("");
            (e.batch_index, message.to_string())
        })
        .collect();
    let keyless = "Compacted topic cannot accept message without key in topic partition \
                   changelog-0.";
    assert_eq!(
        errors,
        vec![(1, keyless.to_string()), (2, keyless.to_string())]
    );
    let message = refused.error_message.as_deref().unwrap_or("");
    assert!(
        message.starts_with("One or more records have been rejected due to 2 record errors"),
        "{message}"
    );
    let kept = &response.responses[0].partition_responses[1];
    assert_eq!(
        (kept.index, kept.error_code, kept.base_offset),
        (1, 0, 0),
        "{kept:?}"
    );
    let response = produce_raw(
        &mut wire,
        "recent",
        vec![partition_data(
            0,
            raw_batch(&[
                (None, now),
                (None, now - TWO_HOURS),
                (None, now + TWO_HOURS),
            ]),
        )],
    );
    let refused = &response.responses[0].partition_responses[0];
    assert_eq!(refused.error_code, ResponseError::InvalidTimestamp.code());
    assert_eq!(
        refused.error_message.as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    let indexes: Vec<i32> = refused
        .record_errors
        .iter()
        .map(|e| e.batch_index)
        .collect();
    assert_eq!(indexes, vec![1, 2]);
    let first = refused.record_errors[0]
        .batch_index_error_message
        .as_deref()
        .unwrap_or("");
    assert!(
        first.starts_with(&format!(
            "Timestamp {} of message with offset 1 is out of range",
            now - TWO_HOURS
        )),
        "{first}"
    );

    // kafka-python: the exception of each record of a refused batch.
    let result = run_client_script(
        "kafka_python_conformance.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--step",
            "record-errors",
            "--topic",
            "changelog",
        ],
    );
    let batch = result["batch"].as_array().expect("batch outcomes");
    let outcome = |i: usize| batch[i].as_str().unwrap_or("");
    assert!(
        outcome(1).contains("InvalidRecordError") && outcome(1).contains(keyless),
        "{result}"
    );
    for i in [0, 2] {
        assert!(
            outcome(i).contains("part of a batch which had one more more invalid records"),
            "{result}"
        );
    }
    assert_eq!(result["keyed"], "ok@1", "{result}");
    let result = run_client_script(
        "kafka_python_conformance.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--step",
            "old-timestamp",
            "--topic",
            "recent",
        ],
    );
    assert!(
        result["old"]
            .as_str()
            .is_some_and(|o| o.contains("InvalidTimestampError")),
        "{result}"
    );
    assert_eq!(result["current"], "ok@1", "{result}");

    // Only the accepted records are stored: "a" and kafka-python's "k3" in partition 0.
    let keys = read_keys(&bootstrap, "changelog", 2);
    assert_eq!(keys, vec![Some("a".to_string()), Some("k3".to_string())]);
}

/// Reads `count` records of partition 0 of `topic` with librdkafka: their keys.
fn read_keys(bootstrap: &str, topic: &str, count: usize) -> Vec<Option<String>> {
    let consumer = consumer(bootstrap, &[]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut keys = Vec::new();
    let end = std::time::Instant::now() + DEADLINE;
    while keys.len() < count {
        assert!(std::time::Instant::now() < end, "read only {keys:?}");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            keys.push(
                message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
            );
        }
    }
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, DEADLINE)
        .expect("watermarks");
    assert_eq!(high, count as i64, "nothing else is stored");
    keys
}

/// librdkafka's ListOffsets by timestamp for partition 0 of `topic`: the offset of each.
fn offsets_for_times(bootstrap: &str, topic: &str, timestamps: &[i64]) -> Vec<i64> {
    let consumer = consumer(bootstrap, &[]);
    timestamps
        .iter()
        .map(|ts| {
            let mut asked = TopicPartitionList::new();
            asked
                .add_partition_offset(topic, 0, Offset::Offset(*ts))
                .unwrap();
            let answer = consumer
                .offsets_for_times(asked, DEADLINE)
                .expect("offsets for times");
            match answer.elements()[0].offset() {
                Offset::Offset(offset) => offset,
                Offset::End => -1,
                other => panic!("unexpected answer {other:?} for {ts}"),
            }
        })
        .collect()
}

/// Produces `timestamps` to partition 0 of `topic` with librdkafka as one batch (a long
/// linger, all sent before any is awaited): their offsets.
async fn produce_batch(bootstrap: &str, topic: &str, timestamps: &[i64]) -> Vec<i64> {
    let producer = producer(bootstrap, &[("linger.ms", "500")]);
    let futures: Vec<_> = timestamps
        .iter()
        .map(|ts| {
            let record: FutureRecord<'_, str, str> = FutureRecord::to(topic)
                .partition(0)
                .key("k")
                .payload("v")
                .timestamp(*ts);
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    let mut offsets = Vec::new();
    for future in futures {
        let delivery = future
            .await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("acked");
        offsets.push(delivery.offset);
    }
    offsets
}

/// Goal: ListOffsets by timestamp answers the first record whose timestamp is at least the
/// one asked, not the first offset of the chunk holding it: inside a batch, with timestamps
/// out of order, across chunks, past the log start after DeleteRecords, and on a
/// LogAppendTime topic (where a batch's records share its append time). Method: batches of
/// known timestamps (each batch its own chunk), asked through librdkafka (offsets) and
/// kafka-python (offsets and timestamps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_finds_the_exact_record() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create(&bootstrap, "times", 1, &[]).await.unwrap();
    let t = 1_700_000_000_000i64;
    let first = produce_batch(
        &bootstrap,
        "times",
        &[t + 50, t + 10, t + 30, t + 60, t + 70],
    )
    .await;
    assert_eq!(first, vec![0, 1, 2, 3, 4], "one batch");
    let second = produce_batch(&bootstrap, "times", &[t + 100, t + 110, t + 120]).await;
    assert_eq!(second, vec![5, 6, 7]);

    // (asked, offset, its timestamp)
    let cases = [
        (t, 0, t + 50),
        (t + 20, 0, t + 50),
        (t + 55, 3, t + 60),
        (t + 61, 4, t + 70),
        (t + 71, 5, t + 100),
        (t + 105, 6, t + 110),
        (t + 120, 7, t + 120),
    ];
    let asked: Vec<i64> = cases.iter().map(|c| c.0).chain([t + 121]).collect();
    let expected: Vec<i64> = cases.iter().map(|c| c.1).chain([-1]).collect();
    assert_eq!(offsets_for_times(&bootstrap, "times", &asked), expected);
    let timestamps = asked
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let result = run_client_script(
        "kafka_python_conformance.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--step",
            "offsets-for-times",
            "--topic",
            "times",
            "--timestamps",
            &timestamps,
        ],
    );
    for (ts, offset, timestamp) in cases {
        assert_eq!(
            result["offsets"][ts.to_string()],
            serde_json::json!([offset, timestamp]),
            "{ts}: {result}"
        );
    }
    assert!(
        result["offsets"][(t + 121).to_string()].is_null(),
        "{result}"
    );

    // Past the log start: records below it are not answered.
    let mut below = TopicPartitionList::new();
    below
        .add_partition_offset("times", 0, Offset::Offset(2))
        .unwrap();
    let deleted = admin(&bootstrap)
        .delete_records(&below, &options())
        .await
        .expect("delete records");
    assert!(deleted.elements()[0].error().is_ok(), "{deleted:?}");
    assert_eq!(
        offsets_for_times(&bootstrap, "times", &[t, t + 55]),
        vec![2, 3]
    );

    // LogAppendTime: the append time of each batch finds the batch's first record.
    create(
        &bootstrap,
        "appended",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await
    .unwrap();
    produce_batch(&bootstrap, "appended", &[1, 2, 3]).await;
    let first_time = read_timestamps(&bootstrap, "appended", 3)[0];
    wait_until(DEADLINE, "the clock passes the first append time", || {
        now_ms() > first_time
    });
    produce_batch(&bootstrap, "appended", &[4, 5]).await;
    let times = read_timestamps(&bootstrap, "appended", 5);
    assert!(times[..3].iter().all(|t| *t == first_time), "{times:?}");
    let second_time = times[3];
    assert!(second_time > first_time, "{times:?}");
    assert_eq!(
        offsets_for_times(
            &bootstrap,
            "appended",
            &[first_time, first_time + 1, second_time, second_time + 1]
        ),
        vec![0, 3, 3, -1]
    );
}

/// Reads `count` records of partition 0 of `topic` with librdkafka: their timestamps.
fn read_timestamps(bootstrap: &str, topic: &str, count: usize) -> Vec<i64> {
    let consumer = consumer(bootstrap, &[]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut timestamps = Vec::new();
    let end = std::time::Instant::now() + DEADLINE;
    while timestamps.len() < count {
        assert!(std::time::Instant::now() < end, "read only {timestamps:?}");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            timestamps.push(message.timestamp().to_millis().expect("a timestamp"));
        }
    }
    timestamps
}

/// The stored batches of partition 0 of `topic` (raw Fetch v11 from offset 0 up to the
/// high watermark): their headers.
fn stored_batches(broker: &Broker, topic: &str) -> Vec<batch::BatchHeader> {
    let mut wire = Wire::connect(broker);
    let mut headers: Vec<batch::BatchHeader> = Vec::new();
    loop {
        let next = headers.last().map_or(0, |h| h.last_offset() + 1);
        let request = common::wire::fetch_request(topic, next, 16 << 20, 0);
        let response = wire.call(11, &request);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "{partition:?}");
        let records = partition.records.clone().unwrap_or_default();
        let before = headers.len();
        for item in batch::iter_batches(&records) {
            let header = item.expect("whole batches").0;
            if header.last_offset() >= next {
                headers.push(header);
            }
        }
        if next >= partition.high_watermark || headers.len() == before {
            return headers;
        }
    }
}

/// Goal: `compression.type` takes every Kafka value and `compression.*.level` Kafka's
/// ranges; a batch in another codec is stored in the topic's (recompressed on produce,
/// keeping the idempotent producer's id, epoch and sequences), and reads back unchanged.
/// Method: librdkafka creates the topics and produces snappy with idempotence to an lz4
/// topic, gzip to an uncompressed one and zstd to an lz4 one with levels; raw Fetch shows
/// the stored batches' codec and producer fields; confluent-kafka reads the values back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_compression_type_recompresses_batches() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    for codec in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create(&bootstrap, &topic, 1, &[("compression.type", codec)])
            .await
            .unwrap_or_else(|code| panic!("compression.type={codec}: {code:?}"));
    }
    for (name, value) in [
        ("compression.type", "brotli"),
        ("compression.gzip.level", "10"),
        ("compression.lz4.level", "0"),
        ("compression.zstd.level", "23"),
    ] {
        assert_eq!(
            create(&bootstrap, "refused", 1, &[(name, value)]).await,
            Err(RDKafkaErrorCode::InvalidConfig),
            "{name}={value}"
        );
    }
    create(
        &bootstrap,
        "levels",
        1,
        &[
            ("compression.type", "lz4"),
            ("compression.gzip.level", "-1"),
            ("compression.lz4.level", "17"),
            ("compression.zstd.level", "-5"),
        ],
    )
    .await
    .unwrap();

    let values: Vec<String> = (0..300)
        .map(|i| format!("value-{i}-").repeat(1 + i % 7))
        .collect();
    for (topic, client_codec, stored_codec) in [
        ("codec-lz4", "snappy", 3),
        ("codec-uncompressed", "gzip", 0),
        ("levels", "zstd", 3),
    ] {
        let snappy = producer(
            &bootstrap,
            &[
                ("compression.codec", client_codec),
                ("enable.idempotence", "true"),
                ("linger.ms", "50"),
            ],
        );
        let futures: Vec<_> = values
            .iter()
            .map(|v| {
                let record: FutureRecord<'_, str, str> =
                    FutureRecord::to(topic).partition(0).key("k").payload(v);
                snappy
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueue")
            })
            .collect();
        for future in futures {
            future
                .await
                .expect("delivery")
                .map_err(|(e, _)| e)
                .expect("acked");
        }
        let stored = stored_batches(&broker, topic);
        assert!(!stored.is_empty());
        let mut next_sequence = 0;
        for header in &stored {
            assert_eq!(header.compression(), stored_codec, "{topic}: {header:?}");
            assert!(
                header.producer_id >= 0,
                "idempotent producer kept: {header:?}"
            );
            assert_eq!(header.base_sequence, next_sequence, "{header:?}");
            next_sequence += header.records_count;
        }
        assert_eq!(next_sequence, 300);
        let result = run_client_script(
            "kafka_python_conformance.py",
            &[
                "--bootstrap",
                &bootstrap,
                "--step",
                "consume",
                "--topic",
                topic,
                "--count",
                "300",
            ],
        );
        assert_eq!(result["values"], serde_json::json!(values), "{topic}");
    }
}

/// One config as DescribeConfigs describes it: (name, value, source, type, documentation,
/// synonym names).
type Described = (String, Option<String>, i8, i8, String, Vec<String>);

/// DescribeConfigs v4 of one resource with synonyms and documentation (raw, to see the
/// fields librdkafka does not surface).
fn describe_raw(broker: &Broker, resource_type: i8, name: &str, keys: &[&str]) -> Vec<Described> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configuration_keys(Some(
                    keys.iter()
                        .map(|k| StrBytes::from_string(k.to_string()))
                        .collect(),
                )),
        ]);
    let response = Wire::connect(broker).call(4, &request);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{result:?}");
    result
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()),
                c.config_source,
                c.config_type,
                c.documentation
                    .as_ref()
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                c.synonyms.iter().map(|s| s.name.to_string()).collect(),
            )
        })
        .collect()
}

/// Goal: the topic configs Kafka 3.9 still accepts but Strato ignores are accepted on
/// CreateTopics and (Incremental)AlterConfigs and described as Kafka describes them
/// (value, default, broker synonym, type) with documentation saying they have no effect;
/// unknown names stay refused; the broker's `compression.type` is described as Kafka's.
/// Method: librdkafka creates a topic with them and describes it; kafka-python creates
/// another, describes it, changes one incrementally and tries an unknown one; raw
/// DescribeConfigs shows synonyms, types and documentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_kafka_configs_are_accepted_and_described() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    let set = [
        ("message.downconversion.enable", "false"),
        ("follower.replication.throttled.replicas", "*"),
        ("leader.replication.throttled.replicas", "0:1"),
        ("segment.jitter.ms", "10"),
        ("flush.messages", "1000"),
        ("index.interval.bytes", "8192"),
        ("local.retention.bytes", "-2"),
        ("remote.log.copy.disable", "false"),
    ];
    create(&bootstrap, "ignored", 1, &set).await.unwrap();
    let results = admin(&bootstrap)
        .describe_configs(&[ResourceSpecifier::Topic("ignored")], &options())
        .await
        .expect("describe configs");
    let entries = &results[0].as_ref().expect("described").entries;
    for (name, value) in set {
        let entry = entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} described"));
        assert_eq!(entry.value.as_deref(), Some(value), "{entry:?}");
        assert!(!entry.is_default, "{entry:?}");
    }
    let flush_ms = entries
        .iter()
        .find(|e| e.name == "flush.ms")
        .expect("flush.ms");
    assert_eq!(flush_ms.value.as_deref(), Some("9223372036854775807"));
    assert!(flush_ms.is_default);
    assert_eq!(
        create(&bootstrap, "unknown", 1, &[("flush.msec", "1")]).await,
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        create(
            &bootstrap,
            "bad-format",
            1,
            &[("message.format.version", "latest")]
        )
        .await,
        Err(RDKafkaErrorCode::InvalidConfig)
    );

    let result = run_client_script(
        "kafka_python_conformance.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--step",
            "configs",
            "--topic",
            "ignored-by-python",
        ],
    );
    assert_eq!(
        result["described"],
        serde_json::json!({
            "message.format.version": "2.8",
            "message.downconversion.enable": "false",
            "file.delete.delay.ms": "1000",
            "preallocate": "true",
            "segment.index.bytes": "4096",
            "remote.storage.enable": "false",
            "local.retention.ms": "1000",
            "flush.ms": "9223372036854775807",
            "leader.replication.throttled.replicas": "",
        }),
        "{result}"
    );
    assert_eq!(result["flush.ms"], "5000", "{result}");
    assert!(
        result["unknown"]
            .as_str()
            .is_some_and(|u| u.contains("InvalidConfiguration") && u.contains("flush.msec")),
        "{result}"
    );

    // What Kafka 3.9 answers: broker synonyms (none for configs without a broker default),
    // types, and documentation that says they do nothing here.
    const TOPIC: i8 = 2;
    const BROKER: i8 = 4;
    const DEFAULT_CONFIG: i8 = 5;
    const STRING: i8 = 2;
    const BOOLEAN: i8 = 1;
    const LONG: i8 = 5;
    let described = describe_raw(
        &broker,
        TOPIC,
        "ignored-by-python",
        &[
            "message.format.version",
            "remote.storage.enable",
            "flush.ms",
        ],
    );
    assert_eq!(described.len(), 3, "{described:?}");
    for (name, value, source, kind, doc, synonyms) in &described {
        assert!(doc.contains("no effect"), "{name}: {doc}");
        match name.as_str() {
            "message.format.version" => {
                assert_eq!((value.as_deref(), *kind), (Some("2.8"), STRING));
                assert_eq!(
                    synonyms,
                    &["message.format.version", "log.message.format.version"]
                );
            }
            "remote.storage.enable" => {
                assert_eq!((value.as_deref(), *kind), (Some("false"), BOOLEAN));
                assert_eq!(synonyms, &["remote.storage.enable"], "no broker default");
            }
            _ => {
                assert_eq!((value.as_deref(), *kind), (Some("5000"), LONG));
                assert_eq!(synonyms, &["flush.ms", "log.flush.interval.ms"]);
            }
        }
        assert_eq!(*source, 1, "TOPIC_CONFIG: {name}");
    }
    let compression = describe_raw(&broker, BROKER, "", &["compression.type"]);
    assert_eq!(compression.len(), 1, "{compression:?}");
    let (_, value, source, kind, doc, _) = &compression[0];
    assert_eq!(
        (value.as_deref(), *source, *kind),
        (Some("producer"), DEFAULT_CONFIG, STRING)
    );
    assert!(doc.contains("final compression type"), "{doc}");
}
