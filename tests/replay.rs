//! `strato replay` and the `strato-replay` library: a topic read straight from the object
//! store and the metadata store gives exactly what a Kafka consumer from offset 0 gets — on
//! the embedded store after the broker stopped, and on etcd + S3 (LocalStack) while it runs;
//! time ranges select what ListOffsets by timestamp does; a read racing compaction and
//! garbage collection neither skips nor repeats; shards together give every record once;
//! `--to-bootstrap` copies a topic into another broker.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::kafka::{Rec, consume_all, consumer, create_topic, produce_all, producer, record};
use common::{Broker, s3, wait_until};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

type Landed = BTreeMap<(i32, i64), Rec>;

const REPLAY_DEADLINE: Duration = Duration::from_secs(120);

/// Record `i` of the tests: text keys and values (some null), headers, producer timestamps,
/// and every 50th value binary (not UTF-8).
fn rec(i: usize) -> Rec {
    let mut r = record("replay", i);
    if i.is_multiple_of(50) {
        r.value = Some(vec![0xff, 0x00, (i % 251) as u8, 0xfe]);
    }
    r
}

/// Writes `count` records to `topic` (created with `partitions`): the first half
/// lz4-compressed by the producer, the rest uncompressed, in sends of 100 so that there are
/// many chunks.
async fn write(bootstrap: &str, topic: &str, partitions: i32, count: usize) -> Landed {
    create_topic(bootstrap, topic, partitions).await;
    let records: Vec<Rec> = (0..count).map(rec).collect();
    let mut landed = BTreeMap::new();
    for (codec, half) in ["lz4", "none"]
        .iter()
        .zip(records.chunks(count.div_ceil(2)))
    {
        let p = producer(
            bootstrap,
            &[("compression.codec", codec), ("enable.idempotence", "true")],
        );
        for sends in half.chunks(100) {
            landed.extend(produce_all(&p, topic, sends).await);
        }
    }
    assert_eq!(landed.len(), count);
    landed
}

/// Runs `strato replay` with `args`; its standard output.
fn replay_cli(args: &[&str]) -> String {
    let out = common::run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_strato"))
            .arg("replay")
            .args(args)
            .env("STRATO_LOG", "warn"),
        REPLAY_DEADLINE,
    );
    assert!(
        out.status.success(),
        "strato replay {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Bytes of a JSON key, value or header value: a string, null, or {"base64": ...}.
fn json_bytes(v: &serde_json::Value) -> Option<Vec<u8>> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
        serde_json::Value::Object(o) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(o["base64"].as_str().expect("base64 string"))
                .expect("valid base64"),
        ),
        other => panic!("not bytes: {other}"),
    }
}

/// Parses JSON lines of `strato replay`, checking that each partition's offsets ascend.
fn parse_lines(topic: &str, text: &str) -> Landed {
    let mut got = BTreeMap::new();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(v["topic"], topic);
        let partition = v["partition"].as_i64().expect("partition") as i32;
        let offset = v["offset"].as_i64().expect("offset");
        if let Some(previous) = last.insert(partition, offset) {
            assert!(offset > previous, "offsets ascend in partition {partition}");
        }
        let headers = v["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|h| {
                let name = json_bytes(&h[0]).expect("header name");
                (
                    String::from_utf8(name).expect("UTF-8 name"),
                    json_bytes(&h[1]),
                )
            })
            .collect();
        let rec = Rec {
            key: json_bytes(&v["key"]),
            value: json_bytes(&v["value"]),
            headers,
            timestamp: v["timestamp"].as_i64(),
        };
        assert!(
            got.insert((partition, offset), rec).is_none(),
            "offset {offset} of partition {partition} twice"
        );
    }
    got
}

/// Goal: on the embedded store, a replay after the broker stopped gives exactly what a
/// consumer from offset 0 got, and `--count` counts it. Method: 3,000 records (lz4 and
/// uncompressed, binary values, null values, headers) to 3 partitions; a librdkafka consumer
/// reads them all; the broker stops (the embedded store is one process's); `strato replay`
/// prints JSON lines, compared record by record (key, value, headers, timestamp, offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_the_embedded_store_matches_a_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let landed = write(&broker.bootstrap(), "orders", 3, 3_000).await;
    let consumed =
        tokio::task::block_in_place(|| consume_all(&broker.bootstrap(), "orders", 3, landed.len()));
    assert_eq!(consumed, landed);
    broker.stop();
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    let replayed = parse_lines("orders", &replay_cli(&["orders", "--data-dir", data_dir]));
    assert_eq!(replayed, consumed, "the replay gives what the consumer got");

    let count: serde_json::Value =
        serde_json::from_str(&replay_cli(&["orders", "--data-dir", data_dir, "--count"]))
            .expect("count JSON");
    assert_eq!(count["records"], 3_000, "{count}");
    let per_partition: Vec<u64> = count["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["records"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..3)
        .map(|p| consumed.keys().filter(|(q, _)| *q == p).count() as u64)
        .collect();
    assert_eq!(per_partition, expected, "{count}");
    assert!(count["cost"]["gets"].as_u64().unwrap() > 0, "{count}");
}

/// Goal: on etcd + S3 a replay runs beside a live broker and gives exactly what a consumer
/// gets, and shards 0/3, 1/3, 2/3 together give every record once. Method: 3,000 records to
/// 3 partitions on etcd + LocalStack; `strato replay` while the broker runs; then three
/// processes with `--shard i/3 --shard-records 300` (each partition cut into ranges shared
/// by several shards); their union is the consumer's records, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_s3_beside_a_running_broker_and_in_shards() {
    let etcd = strato_metadata::testing::etcd_server::EtcdServer::start();
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint);
    let metadata = etcd.url("/strato/replay");
    let store = format!("s3://{bucket}/cluster");
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--metadata",
            &metadata,
            "--object-store",
            &store,
            "--s3-endpoint",
            &endpoint,
        ],
    );
    let landed = write(&broker.bootstrap(), "events", 3, 3_000).await;
    let consumed =
        tokio::task::block_in_place(|| consume_all(&broker.bootstrap(), "events", 3, landed.len()));
    assert_eq!(consumed, landed);
    let source = [
        "--metadata",
        metadata.as_str(),
        "--object-store",
        store.as_str(),
        "--s3-endpoint",
        endpoint.as_str(),
    ];
    let replayed = parse_lines("events", &replay_cli(&[&["events"][..], &source].concat()));
    assert_eq!(replayed, consumed, "the replay gives what the consumer got");

    let mut union: Landed = BTreeMap::new();
    let mut sizes = Vec::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let args = [
            &["events", "--shard", &shard, "--shard-records", "300"][..],
            &source,
        ]
        .concat();
        let part = parse_lines("events", &replay_cli(&args));
        sizes.push(part.len());
        for (at, rec) in part {
            assert!(union.insert(at, rec).is_none(), "{at:?} in two shards");
        }
    }
    assert!(
        sizes.iter().all(|&n| n > 0),
        "every shard has work: {sizes:?}"
    );
    assert_eq!(
        union, consumed,
        "the shards together give every record once"
    );
    broker.stop();
}

/// librdkafka's ListOffsets by timestamp for partition 0 of `topic`: the offset (the high
/// watermark when no record is that recent).
fn offset_for_time(bootstrap: &str, topic: &str, ts: i64) -> i64 {
    let consumer = consumer(bootstrap, &[]);
    let mut asked = TopicPartitionList::new();
    asked
        .add_partition_offset(topic, 0, Offset::Offset(ts))
        .unwrap();
    let answer = consumer
        .offsets_for_times(asked, Duration::from_secs(30))
        .expect("offsets for times");
    match answer.elements()[0].offset() {
        Offset::Offset(offset) => offset,
        Offset::End => {
            consumer
                .fetch_watermarks(topic, 0, Duration::from_secs(30))
                .expect("watermarks")
                .1
        }
        other => panic!("unexpected answer {other:?} for {ts}"),
    }
}

/// Goal: `--from-time`/`--to-time` select what ListOffsets by timestamp would. Method: 2,000
/// records in one partition with timestamps that are not in offset order (each send of 100
/// goes back 10 s before moving on); for several ranges, the replay holds exactly offsets
/// ListOffsets(from) up to ListOffsets(to), as librdkafka's offsets_for_times answers them
/// from the broker (RFC 3339 and millisecond forms both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_ranges_select_what_list_offsets_does() {
    let etcd = strato_metadata::testing::etcd_server::EtcdServer::start();
    let metadata = etcd.url("/strato/replay-time");
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let store = format!("file://{}", objects.display());
    let broker = Broker::start(
        dir.path(),
        &["--metadata", &metadata, "--object-store", &store],
    );
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "timed", 1).await;
    let base = 1_800_000_000_000i64;
    let records: Vec<Rec> = (0..2_000)
        .map(|i| {
            let mut r = rec(i);
            // Sends of 100, each 10 s later than the one before, and inside a send the
            // timestamps go down then up: not monotonic in offsets.
            let send = (i / 100) as i64;
            let inside = (i % 100) as i64;
            r.timestamp = Some(base + send * 10_000 + (inside - 50).abs() * 10);
            r
        })
        .collect();
    let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
    let mut landed = BTreeMap::new();
    for sends in records.chunks(100) {
        landed.extend(produce_all(&p, "timed", sends).await);
    }
    let source = [
        "--metadata",
        metadata.as_str(),
        "--object-store",
        store.as_str(),
    ];
    let cases = [
        (base, base + 50_000),
        (base + 5, base + 5),
        (base + 12_345, base + 120_000),
        (base + 190_000, base + 400_000),
        (base - 1_000, base + 1),
    ];
    for (from, to) in cases {
        let (expected_from, expected_to) = tokio::task::block_in_place(|| {
            (
                offset_for_time(&bootstrap, "timed", from),
                offset_for_time(&bootstrap, "timed", to),
            )
        });
        let from_text = chrono::DateTime::from_timestamp_millis(from)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let to_text = to.to_string();
        let args = [
            &["timed", "--from-time", &from_text, "--to-time", &to_text][..],
            &source,
        ]
        .concat();
        let got: Vec<i64> = parse_lines("timed", &replay_cli(&args))
            .keys()
            .map(|(_, o)| *o)
            .collect();
        let expected: Vec<i64> = (expected_from..expected_to.max(expected_from)).collect();
        assert_eq!(
            got, expected,
            "--from-time {from_text} --to-time {to}: ListOffsets says {expected_from}..{expected_to}"
        );
    }
    broker.stop();
}

/// Goal: a replay racing compaction and garbage collection neither skips nor repeats.
/// Method (library): 40 sends make 40 small chunks while compaction is off (a long
/// interval); a replay takes its snapshot and reads the first chunk (one chunk of
/// read-ahead); the broker restarts with compaction every 100 ms and a 1 s GC grace, merges
/// the chunks and deletes their objects; the reader goes on, finds its next object gone,
/// reads the index again, and ends with exactly the records a consumer reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_racing_compaction_and_gc_neither_skips_nor_repeats() {
    let etcd = strato_metadata::testing::etcd_server::EtcdServer::start();
    let metadata = etcd.url("/strato/replay-race");
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let store_url = format!("file://{}", objects.display());
    let source = [
        "--metadata",
        metadata.as_str(),
        "--object-store",
        store_url.as_str(),
    ];
    let broker = Broker::start(
        dir.path(),
        &[&source[..], &["--compaction-interval-ms", "3600000"]].concat(),
    );
    create_topic(&broker.bootstrap(), "raced", 1).await;
    let records: Vec<Rec> = (0..2_000).map(rec).collect();
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    let mut landed = BTreeMap::new();
    for sends in records.chunks(50) {
        landed.extend(produce_all(&p, "raced", sends).await);
    }
    drop(p);

    let meta: Arc<dyn strato_metadata::MetadataStore> = Arc::new(
        strato_metadata::etcd::EtcdStore::connect(
            strato_metadata::etcd::EtcdConfig::from_url(&metadata).unwrap(),
        )
        .await
        .expect("connect to etcd"),
    );
    let store = strato_tiering::store::object_store_from_url(&store_url).unwrap();
    let options = strato_replay::ReplayOptions {
        read_ahead_spans: 1,
        cache_bytes: 1 << 20,
        ..Default::default()
    };
    let replay = strato_replay::Replay::open(meta, store, "raced", options)
        .await
        .expect("open the replay");
    let snapshot = replay.snapshot(0).await.expect("snapshot");
    assert!(
        snapshot.entries().len() >= 20,
        "many small chunks before compaction: {}",
        snapshot.entries().len()
    );
    let old_objects: Vec<String> = snapshot
        .entries()
        .iter()
        .map(|e| e.object.clone())
        .collect();
    let mut reader = replay.read(&snapshot, 0, i64::MAX);
    let mut got: Vec<strato_replay::Record> =
        reader.next_records().await.expect("read").expect("records");

    // Compaction merges the chunks; GC deletes the objects they were in.
    let broker = broker.restart_with(
        &[
            &source[..],
            &[
                "--compaction-interval-ms",
                "100",
                "--gc-interval-ms",
                "100",
                "--gc-grace-ms",
                "1000",
            ],
        ]
        .concat(),
    );
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(60),
            "the old chunks' objects are deleted",
            || {
                // The newest chunks are never merged; the second one, which the reader
                // reads next, is.
                let gone = old_objects
                    .iter()
                    .filter(|key| !object_exists(&objects, key))
                    .count();
                !object_exists(&objects, &old_objects[1]) && gone + 5 >= old_objects.len()
            },
        )
    });
    while let Some(records) = reader.next_records().await.expect("read on") {
        got.extend(records);
    }
    let consumed =
        tokio::task::block_in_place(|| consume_all(&broker.bootstrap(), "raced", 1, 2_000));
    assert_eq!(consumed, landed);
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (0..2_000).collect::<Vec<i64>>(),
        "every offset once, in order"
    );
    for record in &got {
        let expected = &consumed[&(0, record.offset)];
        assert_eq!(record.key.as_deref(), expected.key.as_deref());
        assert_eq!(record.value.as_deref(), expected.value.as_deref());
        assert_eq!(Some(record.timestamp), expected.timestamp);
    }
    let stats = replay.stats();
    assert!(
        stats.index_reloads >= 1,
        "the reader found its objects gone and read the index again: {stats:?}"
    );
    broker.stop();
}

fn object_exists(objects: &Path, key: &str) -> bool {
    objects.join(key).exists()
}

/// Goal: `--to-bootstrap` copies a topic into another cluster: same partitions, keys,
/// values, headers and timestamps, in order. Method: 2,000 records to 3 partitions of a
/// broker on the embedded store, which then stops; a second broker gets a topic of 3
/// partitions; `strato replay --to-bootstrap` copies; a consumer of the second broker reads
/// exactly the source's records at the same offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_bootstrap_copies_a_topic_into_another_broker() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Broker::start(source_dir.path(), &[]);
    let landed = write(&source.bootstrap(), "orders", 3, 2_000).await;
    source.stop();

    let target_dir = tempfile::tempdir().unwrap();
    let target = Broker::start(target_dir.path(), &[]);
    create_topic(&target.bootstrap(), "orders-copy", 3).await;
    let data_dir = source_dir.path().join("data");
    let bootstrap = target.bootstrap();
    replay_cli(&[
        "orders",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--to-bootstrap",
        &bootstrap,
        "--to-topic",
        "orders-copy",
    ]);
    let copied =
        tokio::task::block_in_place(|| consume_all(&bootstrap, "orders-copy", 3, landed.len()));
    assert_eq!(
        copied, landed,
        "the copy holds the source's records at their offsets"
    );

    // Fewer partitions than the source: refused unless records are placed by key.
    create_topic(&bootstrap, "narrow", 2).await;
    let out = common::run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_strato")).args([
            "replay",
            "orders",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--to-bootstrap",
            &bootstrap,
            "--to-topic",
            "narrow",
        ]),
        REPLAY_DEADLINE,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--repartition"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    replay_cli(&[
        "orders",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--to-bootstrap",
        &bootstrap,
        "--to-topic",
        "narrow",
        "--repartition",
    ]);
    let narrow = tokio::task::block_in_place(|| consume_all(&bootstrap, "narrow", 2, 2_000));
    let mut by_key: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for ((partition, _), rec) in &narrow {
        let key = rec.key.clone().expect("keyed");
        assert_eq!(
            *by_key.entry(key).or_insert(*partition),
            *partition,
            "a key stays in one partition"
        );
    }
    target.stop();
}

/// Reads `topic` (all `partitions`) from the start at `isolation` until each partition's end
/// (read_committed: its last stable offset): (partition, offset) -> value.
fn read_isolated(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BTreeMap<(i32, i64), Option<Vec<u8>>> {
    use rdkafka::Message;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::error::KafkaError;
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "replay-reader")
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
    let mut got = BTreeMap::new();
    let mut at_end = std::collections::BTreeSet::new();
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while at_end.len() < usize::try_from(partitions).unwrap() {
        assert!(
            std::time::Instant::now() < end,
            "read only {} records",
            got.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(err)) if common::kafka::is_transient(&err) => {}
            Some(Err(err)) => panic!("consume: {err}"),
            Some(Ok(msg)) => {
                got.insert(
                    (msg.partition(), msg.offset()),
                    msg.payload().map(<[u8]>::to_vec),
                );
            }
        }
    }
    got
}

/// Goal: a replay skips what a read_committed consumer skips (aborted transactions, control
/// records) and stops where it stops (the last stable offset, before an open transaction);
/// `--isolation read-uncommitted` gives what a read_uncommitted consumer gets. Method: on
/// etcd, a transactional producer commits, aborts and commits 100 records a partition, then
/// leaves a fourth transaction open; both isolation levels of the replay (while the broker
/// runs) are compared with librdkafka consumers of the same level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transactions_are_skipped_as_a_read_committed_consumer_skips_them() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let etcd = strato_metadata::testing::etcd_server::EtcdServer::start();
    let metadata = etcd.url("/strato/replay-txn");
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().join("objects").display());
    let source = [
        "--metadata",
        metadata.as_str(),
        "--object-store",
        store.as_str(),
    ];
    let broker = Broker::start(dir.path(), &source);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "txns", 2).await;
    let timeout = Duration::from_secs(30);
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "replay-txn")
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer");
    tokio::task::block_in_place(|| {
        producer.init_transactions(timeout).expect("init");
        for (name, commit) in [
            ("c1", Some(true)),
            ("a2", Some(false)),
            ("c3", Some(true)),
            ("open", None),
        ] {
            producer.begin_transaction().expect("begin");
            for i in 0..200 {
                let value = format!("{name}-{i}");
                producer
                    .send(
                        BaseRecord::<(), str>::to("txns")
                            .partition(i % 2)
                            .payload(&value),
                    )
                    .unwrap_or_else(|(err, _)| panic!("send {value}: {err}"));
            }
            match commit {
                Some(true) => producer.commit_transaction(timeout).expect("commit"),
                Some(false) => {
                    // Written first: an abort purges what is still queued in the client.
                    producer
                        .flush(timeout)
                        .expect("flush the aborted transaction");
                    producer.abort_transaction(timeout).expect("abort")
                }
                None => producer.flush(timeout).expect("flush the open transaction"),
            }
        }
    });
    let replayed = |isolation: &str| -> BTreeMap<(i32, i64), Option<Vec<u8>>> {
        let args = [&["txns", "--isolation", isolation][..], &source].concat();
        parse_lines("txns", &replay_cli(&args))
            .into_iter()
            .map(|(at, rec)| (at, rec.value))
            .collect()
    };
    let (committed, uncommitted) = tokio::task::block_in_place(|| {
        (
            read_isolated(&bootstrap, "txns", 2, "read_committed"),
            read_isolated(&bootstrap, "txns", 2, "read_uncommitted"),
        )
    });
    assert_eq!(committed.len(), 400, "c1 and c3");
    assert_eq!(uncommitted.len(), 800, "everything but the markers");
    assert_eq!(replayed("read-committed"), committed);
    assert_eq!(replayed("read-uncommitted"), uncommitted);
    tokio::task::block_in_place(|| {
        producer
            .abort_transaction(timeout)
            .expect("abort the open one")
    });
    broker.stop();
}
