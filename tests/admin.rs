//! Admin APIs through librdkafka's admin client (CreatePartitions, AlterConfigs,
//! DescribeConfigs) and kafka-python's (IncrementalAlterConfigs, DescribeLogDirs,
//! ElectLeaders, DescribeProducers, error messages): changes take effect on the running
//! brokers, bad requests get Kafka error codes.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::kafka::{consumer, producer};
use common::wire;
use common::{Broker, run_client_script, wait_until};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const DEADLINE: Duration = Duration::from_secs(30);
/// Config resource types (Kafka `ConfigResource.Type`).
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(DEADLINE))
}

async fn create(bootstrap: &str, topic: &str, partitions: i32) {
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for result in admin(bootstrap)
        .create_topics(&[new], &options())
        .await
        .expect("create topics")
    {
        result.expect("topic created");
    }
}

/// CreatePartitions of one topic: Ok, or the error code of the topic's result.
async fn grow(
    bootstrap: &str,
    topic: &str,
    count: usize,
    validate_only: bool,
) -> Result<(), RDKafkaErrorCode> {
    let results = admin(bootstrap)
        .create_partitions(
            &[NewPartitions::new(topic, count)],
            &options().validate_only(validate_only),
        )
        .await
        .expect("create partitions request");
    assert_eq!(results.len(), 1);
    results
        .into_iter()
        .next()
        .unwrap()
        .map(|_| ())
        .map_err(|(_, code)| code)
}

/// AlterConfigs (librdkafka sends the non-incremental API) of one resource. The `rdkafka`
/// crate does not report per-resource errors (it answers Ok for every resource), so refused
/// changes are checked with [`alter_raw`].
async fn alter(bootstrap: &str, resource: ResourceSpecifier<'_>, configs: &[(&str, &str)]) {
    let mut change = AlterConfig::new(resource);
    for (k, v) in configs {
        change = change.set(k, v);
    }
    let results = admin(bootstrap)
        .alter_configs(&[change], &options())
        .await
        .expect("alter configs request");
    assert_eq!(results.len(), 1);
}

/// AlterConfigs v2 sent by hand to `broker`: the resource's error code and message.
fn alter_raw(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    configs: &[(&str, &str)],
) -> (i16, String) {
    let resource = AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let mut conn = wire::connect(broker);
    let request = AlterConfigsRequest::default().with_resources(vec![resource]);
    wire::send(&mut conn, ApiKey::AlterConfigs, 2, 1, &request);
    let response: AlterConfigsResponse = wire::response(&mut conn, ApiKey::AlterConfigs, 2, 1);
    let answer = &response.responses[0];
    (
        answer.error_code,
        answer
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

async fn describe(
    bootstrap: &str,
    resource: ResourceSpecifier<'_>,
) -> Vec<rdkafka::admin::ConfigEntry> {
    let results = admin(bootstrap)
        .describe_configs(&[resource], &options())
        .await
        .expect("describe configs request");
    results
        .into_iter()
        .next()
        .unwrap()
        .expect("described")
        .entries
}

/// Partition count of `topic` as broker `broker` itself answers Metadata (raw request, so
/// the answer is that broker's and no other's).
fn partitions_at(broker: &Broker, topic: &str) -> usize {
    let mut conn = wire::connect(broker);
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(false);
    wire::send(&mut conn, ApiKey::Metadata, 12, 1, &request);
    let response: MetadataResponse = wire::response(&mut conn, ApiKey::Metadata, 12, 1);
    let topic = &response.topics[0];
    assert_eq!(topic.error_code, 0, "topic {topic:?}");
    assert!(
        topic.partitions.iter().all(|p| p.leader_id.0 >= 0),
        "every partition has a leader: {topic:?}"
    );
    topic.partitions.len()
}

/// Produces one record with `value` to `partition`; the delivery result.
async fn produce_to(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    value: &[u8],
    timestamp: i64,
) -> Result<(i32, i64), RDKafkaErrorCode> {
    // Fresh metadata per call: a producer learns new partitions only on a refresh.
    let producer = producer(
        bootstrap,
        &[("message.timeout.ms", "30000"), ("retries", "0")],
    );
    producer
        .send(
            FutureRecord::<(), [u8]>::to(topic)
                .partition(partition)
                .payload(value)
                .timestamp(timestamp),
            DEADLINE,
        )
        .await
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(err, _)| err.rdkafka_error_code().expect("a Kafka error code"))
}

/// The record at `offset` of `partition`: (value, timestamp).
fn read_at(bootstrap: &str, topic: &str, partition: i32, offset: i64) -> (Vec<u8>, Timestamp) {
    let consumer = consumer(bootstrap, &[]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let end = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < end, "no record at {partition}/{offset}");
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg.expect("consume");
            return (msg.payload().unwrap_or_default().to_vec(), msg.timestamp());
        }
    }
}

/// Goal: CreatePartitions only grows a topic, its new partitions get leaders and take
/// writes, and the count survives a restart. Method: librdkafka's admin client against one
/// broker: validate-only, a real increase, then a smaller, an equal and an unknown topic;
/// Metadata read raw from the broker; a record produced to a new partition and read back
/// after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_topics_and_only_grows_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create(&bootstrap, "grow", 1).await;

    grow(&bootstrap, "grow", 3, true)
        .await
        .expect("validate only");
    assert_eq!(
        partitions_at(&broker, "grow"),
        1,
        "validate_only changes nothing"
    );

    grow(&bootstrap, "grow", 3, false).await.expect("grow to 3");
    assert_eq!(partitions_at(&broker, "grow"), 3);
    let landed = produce_to(&bootstrap, "grow", 2, b"in a new partition", now_ms())
        .await
        .expect("produce to a new partition");
    assert_eq!(landed, (2, 0));

    assert_eq!(
        grow(&bootstrap, "grow", 2, false).await,
        Err(RDKafkaErrorCode::InvalidPartitions),
        "fewer partitions"
    );
    assert_eq!(
        grow(&bootstrap, "grow", 3, false).await,
        Err(RDKafkaErrorCode::InvalidPartitions),
        "as many partitions"
    );
    assert_eq!(
        grow(&bootstrap, "no-such-topic", 3, false).await,
        Err(RDKafkaErrorCode::UnknownTopicOrPartition)
    );
    assert_eq!(
        grow(&bootstrap, "grow", 10_001, false).await,
        Err(RDKafkaErrorCode::InvalidPartitions),
        "beyond the partition limit"
    );

    let broker = broker.restart_graceful();
    let bootstrap = broker.bootstrap();
    assert_eq!(partitions_at(&broker, "grow"), 3, "the new count is stored");
    let (value, _) = read_at(&bootstrap, "grow", 2, 0);
    assert_eq!(value, b"in a new partition");
    broker.stop();
}

/// Goal: AlterConfigs changes what the running broker does (max.message.bytes in produce,
/// message.timestamp.type rewriting timestamps, retention.ms in the next retention pass),
/// DescribeConfigs shows overrides as topic configs, and bad changes are refused: unknown
/// names and invalid values with INVALID_CONFIG, broker configs with INVALID_REQUEST.
/// Method: librdkafka's admin client, producer and consumer against one broker whose
/// retention runs every 200 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_topic_configs_take_effect_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--retention-check-interval-ms", "200"]);
    let bootstrap = broker.bootstrap();
    create(&bootstrap, "tuned", 1).await;
    let topic = ResourceSpecifier::Topic("tuned");
    let big = vec![b'x'; 4_000];

    // Before: a 4 kB record and the producer's timestamp are accepted as they are.
    // Recent timestamps: retention (7 days by default) runs every 200 ms here.
    let created = now_ms() - 1_000;
    produce_to(&bootstrap, "tuned", 0, &big, created)
        .await
        .expect("4 kB under the default limit");
    let (_, timestamp) = read_at(&bootstrap, "tuned", 0, 0);
    assert_eq!(timestamp, Timestamp::CreateTime(created));

    alter(
        &bootstrap,
        topic,
        &[
            ("max.message.bytes", "2000"),
            ("message.timestamp.type", "LogAppendTime"),
        ],
    )
    .await;
    let entries = describe(&bootstrap, topic).await;
    let entry = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} described: {entries:?}"))
    };
    assert_eq!(entry("max.message.bytes").value.as_deref(), Some("2000"));
    assert_eq!(
        entry("max.message.bytes").source,
        ConfigSource::DynamicTopic
    );
    assert_eq!(entry("retention.ms").source, ConfigSource::Default);
    assert!(!entry("retention.ms").is_read_only);

    assert_eq!(
        produce_to(&bootstrap, "tuned", 0, &big, created).await,
        Err(RDKafkaErrorCode::MessageSizeTooLarge),
        "over the new max.message.bytes"
    );
    let before = now_ms();
    let (_, offset) = produce_to(&bootstrap, "tuned", 0, b"small", created)
        .await
        .expect("a small record");
    match read_at(&bootstrap, "tuned", 0, offset).1 {
        Timestamp::LogAppendTime(ms) => assert!(ms >= before, "append time {ms} < {before}"),
        other => panic!("expected a log append time, got {other:?}"),
    }

    // AlterConfigs replaces the whole set: what it does not name returns to its default.
    alter(&bootstrap, topic, &[("retention.ms", "1")]).await;
    let entries = describe(&bootstrap, topic).await;
    let max = entries
        .iter()
        .find(|e| e.name == "max.message.bytes")
        .unwrap();
    assert_eq!(max.value.as_deref(), Some("1048588"));
    assert_eq!(max.source, ConfigSource::Default);
    let watermarks = consumer(&bootstrap, &[]);
    wait_until(DEADLINE, "retention to empty the partition", || {
        let (low, high) = watermarks
            .fetch_watermarks("tuned", 0, Duration::from_secs(10))
            .expect("watermarks");
        low == high && high == 2
    });

    for (bad, words) in [
        (
            ("no.such.config", "1"),
            "unknown topic config \"no.such.config\"",
        ),
        (
            ("retention.ms", "-5"),
            "invalid value \"-5\" for retention.ms",
        ),
        (
            ("max.message.bytes", "lots"),
            "invalid value \"lots\" for max.message.bytes",
        ),
        (
            ("cleanup.policy", "shred"),
            "invalid value \"shred\" for cleanup.policy",
        ),
    ] {
        let (code, message) = alter_raw(&broker, TOPIC, "tuned", &[bad]);
        assert_eq!(
            code,
            ResponseError::InvalidConfig.code(),
            "{bad:?}: {message}"
        );
        assert!(message.contains(words), "{bad:?}: {message}");
    }
    let (code, _) = alter_raw(&broker, TOPIC, "absent", &[("retention.ms", "1")]);
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());
    // The refused changes left the last good set in place.
    let entries = describe(&bootstrap, topic).await;
    let retention = entries.iter().find(|e| e.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("1"));

    // Broker configs: described read-only, never altered.
    let broker_entries = describe(&bootstrap, ResourceSpecifier::Broker(0)).await;
    let id = broker_entries
        .iter()
        .find(|e| e.name == "broker.id")
        .expect("broker.id");
    assert_eq!(id.value.as_deref(), Some("0"));
    assert!(id.is_read_only);
    assert!(
        broker_entries
            .iter()
            .any(|e| e.name == "log.retention.ms" && e.value.as_deref() == Some("604800000")),
        "topic defaults under their broker names: {broker_entries:?}"
    );
    let (code, message) = alter_raw(&broker, BROKER, "0", &[("num.partitions", "3")]);
    assert_eq!(code, ResponseError::InvalidRequest.code());
    assert!(message.contains("strato serve"), "{message}");
    broker.stop();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Goal: a change made through one broker of a cluster takes effect on the others:
/// partitions they should lead are led there, and their produce path applies the new
/// configs. Method: two brokers on a real etcd; CreatePartitions sent to broker 0, whose
/// peer's own Metadata answer must show the new partitions; AlterConfigs sent to the broker
/// that leads fewer partitions (so the other one, which leads at least half, must apply
/// it); then a record over the new max.message.bytes must be refused on every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_one_broker_reach_the_others() {
    const PARTITIONS: usize = 8;
    let cluster = Cluster::start(2, "/admin-propagation");
    let first = cluster.brokers[&0].bootstrap();
    create(&first, "shared", 1).await;
    let led_total = || cluster.led().values().sum::<u64>();
    wait_until(DEADLINE, "the first partition to be led", || {
        led_total() == 1
    });

    grow(&first, "shared", PARTITIONS, false)
        .await
        .expect("grow");
    for broker in cluster.brokers.values() {
        wait_until(DEADLINE, "every broker to show the new partitions", || {
            partitions_at(broker, "shared") == PARTITIONS
        });
    }
    wait_until(DEADLINE, "every partition to be led", || {
        led_total() == PARTITIONS as u64
    });

    let led = cluster.led();
    let quieter = led
        .iter()
        .min_by_key(|(_, n)| **n)
        .map(|(slot, _)| *slot)
        .unwrap();
    // By hand: an admin client may route the request to any broker.
    let (code, message) = alter_raw(
        &cluster.brokers[&quieter],
        TOPIC,
        "shared",
        &[("max.message.bytes", "1000")],
    );
    assert_eq!(code, 0, "{message}");
    let big = vec![b'y'; 3_000];
    for partition in 0..PARTITIONS as i32 {
        let end = Instant::now() + DEADLINE;
        // The other broker applies the record when its watch fires.
        loop {
            match produce_to(&cluster.bootstrap(), "shared", partition, &big, now_ms()).await {
                Err(RDKafkaErrorCode::MessageSizeTooLarge) => break,
                other => assert!(
                    Instant::now() < end,
                    "partition {partition} still accepts 3 kB ({led:?}): {other:?}"
                ),
            }
        }
    }
}

/// Goal: the admin APIs kafka-python uses for them: IncrementalAlterConfigs (SET, DELETE,
/// APPEND, SUBTRACT, and error messages for unknown configs and invalid values),
/// CreatePartitions errors, DescribeLogDirs, ElectLeaders and DescribeProducers.
/// Method: tests/clients/kafka_python_admin_ops.py against one broker.
#[test]
fn kafka_python_admin_operations() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let out = run_client_script(
        "kafka_python_admin_ops.py",
        &["--bootstrap", &broker.bootstrap(), "--topic", "ops"],
    );
    broker.stop();
    assert_eq!(out["grown"], "OK", "{out:#}");
    for (key, code) in [
        ("shrink_error", "InvalidPartitionsError"),
        ("same_error", "InvalidPartitionsError"),
        ("unknown_topic_error", "UnknownTopicOrPartitionError"),
    ] {
        let text = out[key].as_str().unwrap();
        assert!(text.starts_with(code), "{key}: {text}");
    }
    assert!(
        out["shrink_error"]
            .as_str()
            .unwrap()
            .contains("already has 3 partitions"),
        "{out:#}"
    );
    assert_eq!(out["set"], "OK");
    assert_eq!(
        out["after_set"],
        serde_json::json!({
            "retention.ms": ["1234", "DYNAMIC_TOPIC_CONFIG"],
            "cleanup.policy": ["delete,compact", "DYNAMIC_TOPIC_CONFIG"],
        })
    );
    assert_eq!(out["delete"], "OK");
    assert_eq!(
        out["after_delete"],
        serde_json::json!({
            "retention.ms": ["604800000", "DEFAULT_CONFIG"],
            "cleanup.policy": ["compact", "DYNAMIC_TOPIC_CONFIG"],
        })
    );
    for (key, words) in [
        ("unknown_config", "unknown topic config \"retention.msec\""),
        ("invalid_value", "invalid value \"soon\" for retention.ms"),
        ("append_non_list", "retention.ms is not a list"),
    ] {
        let text = out[key].as_str().unwrap();
        assert!(
            text.contains("InvalidConfigurationError") && text.contains(words),
            "{key}: {text}"
        );
    }
    let producers = out["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1, "{out:#}");
    assert_eq!(
        producers[0]["last_sequence"], 2,
        "three records, sequences 0-2"
    );
    let dirs = out["log_dirs"][0]["log_dirs"].as_array().unwrap();
    assert_eq!(dirs.len(), 1, "{out:#}");
    assert!(dirs[0]["log_dir"].as_str().unwrap().starts_with("file://"));
    let partitions = dirs[0]["topics"][0]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3, "{out:#}");
    let written = partitions
        .iter()
        .find(|p| p["partition_index"] == 0)
        .unwrap();
    assert!(written["partition_size"].as_i64().unwrap() > 0, "{out:#}");
    // ELECTION_NOT_NEEDED (84) for every partition, UNKNOWN_TOPIC_OR_PARTITION (3) otherwise.
    assert_eq!(
        out["election"],
        serde_json::json!({"0": 84, "1": 84, "2": 84})
    );
    assert_eq!(out["election_unknown"], serde_json::json!({"7": 3}));
}
