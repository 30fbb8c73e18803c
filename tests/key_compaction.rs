//! Compacted topics (`cleanup.policy=compact`): the key cleaner keeps the latest record of
//! every key, in offset order at the offsets they were written, removes tombstones after
//! `delete.retention.ms`, and loses nothing through kill -9 — on the embedded store and on
//! etcd + S3 (LocalStack).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::kafka::{Rec, consumer, produce_all, producer};
use common::{Broker, s3, wait_until};
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

const KEYS: usize = 1_000;
/// Keys whose last update is a tombstone.
const DELETED_KEYS: usize = 10;

/// `max.compaction.lag.ms` of the tests that wait for a log cleaned to its end: a small
/// dirty tail below `min.cleanable.dirty.ratio` is cleaned when it is this old.
const MAX_LAG_MS: &str = "2000";

async fn create_compacted(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create admin client");
    let mut new =
        NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topics request");
    for result in results {
        result.expect("topic created");
    }
}

/// A record of `key` and `value`, no headers, the producer's timestamp.
fn keyed(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Rec {
    Rec {
        key: Some(key.into()),
        value: Some(value.into()),
        headers: Vec::new(),
        timestamp: None,
    }
}

fn update(i: usize, updates: usize) -> Rec {
    let key = i % KEYS;
    // The last update of the first keys deletes them.
    let deleted = key < DELETED_KEYS && i + KEYS >= updates;
    Rec {
        key: Some(format!("key-{key}").into_bytes()),
        value: (!deleted).then(|| format!("value-{i}").into_bytes()),
        headers: vec![("i".to_string(), Some(i.to_string().into_bytes()))],
        timestamp: None,
    }
}

/// Every record of partition 0 of `topic` from offset 0 to the end (offsets may have
/// gaps): (offset, key, value).
type Read = Vec<(i64, Vec<u8>, Option<Vec<u8>>)>;

fn read_all(bootstrap: &str, topic: &str) -> Read {
    let consumer = consumer(bootstrap, &[]);
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(30))
        .expect("fetch watermarks");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).expect("assign");
    let mut got: Read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.last().is_none_or(|(offset, _, _)| *offset < high - 1) {
        assert!(Instant::now() < deadline, "read {} records only", got.len());
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = match msg {
            Ok(msg) => msg,
            Err(err) if common::kafka::is_transient(&err) => continue,
            Err(err) => panic!("consume: {err}"),
        };
        if let Some((previous, _, _)) = got.last() {
            assert!(msg.offset() > *previous, "offsets ascend");
        }
        got.push((
            msg.offset(),
            msg.key().expect("every record has a key").to_vec(),
            msg.payload().map(<[u8]>::to_vec),
        ));
    }
    got
}

/// What the cleaner did (its lines, warnings and errors of the broker's log), to tell a slow
/// pass from a stuck one in a failure message.
fn cleaner_log(broker: &Broker) -> String {
    broker
        .log_text()
        .lines()
        .filter(|l| l.contains("clean") || l.contains("WARN") || l.contains("ERROR"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The latest record of each key among `landed`: key → (offset, value).
fn latest(landed: &BTreeMap<(i32, i64), Rec>) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    let mut latest = BTreeMap::new();
    for ((_, offset), rec) in landed {
        latest.insert(rec.key.clone().unwrap(), (*offset, rec.value.clone()));
    }
    latest
}

/// Whether `read` holds exactly one record per key of `expected` (at its offset, with its
/// value) and nothing else.
fn holds_exactly(read: &Read, expected: &BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)>) -> bool {
    read.len() == expected.len()
        && read
            .iter()
            .all(|(offset, key, value)| expected.get(key) == Some(&(*offset, value.clone())))
}

/// Whether `read` holds the latest record of every key of `expected` and nothing older:
/// each record read is its key's latest (at its offset, with its value), and every key
/// with a value is there. Tombstones may already be gone: they go `delete.retention.ms`
/// after the pass that made them clean, which a slow reader can miss.
fn holds_latest(read: &Read, expected: &BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)>) -> bool {
    let offsets: std::collections::HashSet<i64> = read.iter().map(|r| r.0).collect();
    read.iter()
        .all(|(offset, key, value)| expected.get(key) == Some(&(*offset, value.clone())))
        && expected
            .values()
            .all(|(offset, value)| value.is_none() || offsets.contains(offset))
}

/// Goal: a changelog of 200,000 updates over 1,000 keys compacts to one record per key.
/// Method: produce the updates (the last update of 10 keys is a tombstone), then one more
/// record in a flush of its own (the newest chunk is never cleaned); wait until a consumer
/// from offset 0 reads exactly the latest record of every key at the offset it was written
/// (tombstones too, unless they expired already). Then, producing a record now and then so
/// that passes run, wait until the tombstones are gone (`delete.retention.ms` = 2 s after the
/// pass that made them clean) and check the rest is intact. The metrics count the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changelog_compacts_to_its_latest_values() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--compaction-interval-ms", "200"]);
    let broker = changelog(broker, 200_000, None).await;
    let removed = broker.metric("strato_cleaner_records_removed_total");
    assert!(removed >= 199_000.0, "records removed: {removed}");
    assert!(broker.metric("strato_cleaner_passes_total{result=\"completed\"}") >= 1.0);
    broker.stop();
}

/// Goal: on etcd + S3, cleaning survives kill -9 at any point and loses nothing. Method:
/// 10 rounds of 20,000 updates of 1,000 keys; after each round's acknowledgements the broker is killed
/// (SIGKILL) after a seeded random 0–800 ms while it cleans every 100 ms, and restarted; at
/// the end, the latest value of every key is there, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleaning_on_etcd_and_s3_survives_kill_9() {
    let etcd = strato_metadata::testing::etcd_server::EtcdServer::start();
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint);
    let url = etcd.url("/strato/key-compaction");
    let store = format!("s3://{bucket}/compacted");
    let args = [
        "--metadata",
        url.as_str(),
        "--object-store",
        store.as_str(),
        "--s3-endpoint",
        endpoint.as_str(),
        "--compaction-interval-ms",
        "100",
    ];
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &args);
    let seed: u64 = std::env::var("STRATO_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    eprintln!("kill delays from seed {seed} (STRATO_CHAOS_SEED)");
    changelog(broker, 200_000, Some((seed, 10))).await.stop();
}

/// Produces `updates` updates of [`KEYS`] keys to a new compacted topic (in `kills.1`
/// rounds, killing and restarting the broker after each, when given) and checks the
/// outcome (see the tests). Returns the broker (restarted, when killed).
async fn changelog(mut broker: Broker, updates: usize, kills: Option<(u64, usize)>) -> Broker {
    let topic = "changelog";
    create_compacted(
        &broker.bootstrap(),
        topic,
        &[
            ("delete.retention.ms", "2000"),
            ("min.cleanable.dirty.ratio", "0.01"),
            // The updates' last flush can be a few records, below 1% of the cleaned log
            // once the sentinel makes it cleanable: the lag bound cleans it anyway.
            ("max.compaction.lag.ms", MAX_LAG_MS),
        ],
    )
    .await;
    let records: Vec<Rec> = (0..updates).map(|i| update(i, updates)).collect();
    let mut landed = BTreeMap::new();
    match kills {
        None => {
            let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
            landed.extend(produce_all(&p, topic, &records).await);
        }
        Some((seed, rounds)) => {
            let mut rng = seed;
            // Every incarnation's log, to show what each read at leadership if offsets
            // go back.
            let mut logs = vec![broker.log_lines()];
            for round in records.chunks(updates / rounds) {
                let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
                let acked = produce_all(&p, topic, round).await;
                drop(p);
                // A restarted broker continues above every acknowledged offset.
                let previous_end = landed.keys().next_back().map_or(-1, |(_, o)| *o);
                let first = acked.keys().next().map_or(i64::MAX, |(_, o)| *o);
                if first <= previous_end {
                    let history: Vec<String> = logs
                        .iter()
                        .enumerate()
                        .flat_map(|(i, log)| {
                            let lines = log.lock().unwrap().clone();
                            lines
                                .into_iter()
                                .filter(|l| {
                                    l.contains("leadership")
                                        || l.contains("WARN")
                                        || l.contains("ERROR")
                                        || l.contains("log start")
                                })
                                .map(move |l| format!("[{i}] {l}"))
                        })
                        .collect();
                    panic!(
                        "offsets went back: round acknowledged from {first}, earlier rounds up to {previous_end}; logs:\n{}",
                        history.join("\n")
                    );
                }
                landed.extend(acked);
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                // The kill lands at a random point of the cleaning that follows the round
                // (a deliberate random moment, not a synchronisation).
                tokio::time::sleep(Duration::from_millis(rng % 800)).await;
                broker = tokio::task::block_in_place(|| broker.restart_killed());
                logs.push(broker.log_lines());
            }
        }
    }
    assert_eq!(landed.len(), updates, "every update acknowledged");
    // One more record in a flush of its own: the updates are then all cleanable.
    let sentinel = keyed("sentinel", "0");
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    landed.extend(produce_all(&p, topic, std::slice::from_ref(&sentinel)).await);
    let expected = latest(&landed);
    assert_eq!(expected.len(), KEYS + 1);
    let bootstrap = broker.bootstrap();
    let compacted = tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut read = read_all(&bootstrap, topic);
        while !holds_latest(&read, &expected) && Instant::now() < deadline {
            read = read_all(&bootstrap, topic);
        }
        holds_latest(&read, &expected)
            .then_some(())
            .ok_or(read.len())
    });
    if let Err(records) = compacted {
        panic!(
            "not compacted in 180 s: {records} records, {} expected; cleaner log:\n{}",
            expected.len(),
            cleaner_log(&broker)
        );
    }

    // Tombstones go after delete.retention.ms; new records make passes run.
    let mut expected = expected;
    expected.retain(|_, (_, value)| value.is_some());
    assert_eq!(expected.len(), KEYS - DELETED_KEYS + 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut round = 1;
    loop {
        let read = tokio::task::block_in_place(|| read_all(&bootstrap, topic));
        let sentinels = read.iter().filter(|r| r.1 == b"sentinel").count();
        let others: Read = read
            .iter()
            .filter(|r| r.1 != b"sentinel")
            .cloned()
            .collect();
        let mut without_sentinel = expected.clone();
        without_sentinel.remove(&b"sentinel"[..]);
        if holds_exactly(&others, &without_sentinel) && sentinels >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tombstones still there: {} records",
            read.len()
        );
        round += 1;
        let next = Rec {
            value: Some(round.to_string().into_bytes()),
            ..sentinel.clone()
        };
        produce_all(&p, topic, std::slice::from_ref(&next)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    broker
}

/// Goal: what Kafka Connect does with its config topic works with the official Java client
/// (kafka-clients): a compacted topic of connector configs, written, compacted, the broker
/// killed and restarted, then read back from the beginning into the latest configs.
/// Method: tests/clients/java JavaCompactedConfigs writes 20 rounds of 20 connectors' configs
/// (5 deleted by tombstones in the last round) and a last record alone; wait until the log
/// holds one record per key (librdkafka reads it); kill -9 and restart; the Java reader gets
/// exactly the 15 live configs and the last record, reading 21 records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_style_config_topic_reads_back_after_compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--compaction-interval-ms", "200"]);
    let bootstrap = broker.bootstrap();
    let topic = "connect-configs";
    let written = tokio::task::block_in_place(|| {
        common::run_java_class(
            "strato.JavaCompactedConfigs",
            &[
                "--bootstrap",
                &bootstrap,
                "--topic",
                topic,
                "--mode",
                "write",
                "--rounds",
                "20",
            ],
        )
    });
    assert_eq!(written["written"], 401, "{written}");
    let latest = written["latest"]
        .as_object()
        .expect("latest configs")
        .clone();
    assert_eq!(latest.len(), 21);
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(60),
            "the config topic holds one record per key",
            || read_all(&bootstrap, topic).len() == latest.len(),
        )
    });
    let broker = tokio::task::block_in_place(|| broker.restart_killed());
    let bootstrap = broker.bootstrap();
    let read = tokio::task::block_in_place(|| {
        common::run_java_class(
            "strato.JavaCompactedConfigs",
            &[
                "--bootstrap",
                &bootstrap,
                "--topic",
                topic,
                "--mode",
                "read",
            ],
        )
    });
    let live: serde_json::Map<String, serde_json::Value> =
        latest.into_iter().filter(|(_, v)| !v.is_null()).collect();
    assert_eq!(live.len(), 16);
    assert_eq!(read["configs"], serde_json::Value::Object(live), "{read}");
    assert_eq!(
        read["records"], 21,
        "one record per key, tombstones included: {read}"
    );
    broker.stop();
}

/// Goal: a dirty range with more keys than the key map holds is cleaned over several passes.
/// Method: `--cleaner-memory-bytes 65536` holds 1,024 keys; 5,000 keys updated 10 times each
/// (50,000 records) and a last record alone; wait until a reader from offset 0 gets exactly
/// the latest record of every key, and check that it took several passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_keys_than_the_map_holds_are_cleaned_over_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--compaction-interval-ms",
            "100",
            "--cleaner-memory-bytes",
            "65536",
        ],
    );
    let topic = "many-keys";
    create_compacted(
        &broker.bootstrap(),
        topic,
        &[
            ("min.cleanable.dirty.ratio", "0.01"),
            ("max.compaction.lag.ms", MAX_LAG_MS),
        ],
    )
    .await;
    let keys = 5_000;
    let records: Vec<Rec> = (0..keys * 10)
        .map(|i| keyed(format!("key-{}", i % keys), format!("value-{i}")))
        .collect();
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    let mut landed = produce_all(&p, topic, &records).await;
    let last = keyed("last", "x");
    landed.extend(produce_all(&p, topic, std::slice::from_ref(&last)).await);
    let expected = latest(&landed);
    assert_eq!(expected.len(), keys + 1);
    let bootstrap = broker.bootstrap();
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(120),
            "every key is down to its latest record",
            || holds_exactly(&read_all(&bootstrap, topic), &expected),
        )
    });
    let passes = broker.metric("strato_cleaner_passes_total{result=\"completed\"}");
    assert!(
        passes >= 5.0,
        "5,000 keys in maps of 1,024: {passes} passes"
    );
    broker.stop();
}

/// Goal: a dirty tail far below `min.cleanable.dirty.ratio` is still cleaned once it is
/// older than `max.compaction.lag.ms`. Method: 1,000 keys and a record alone (cleanable, so
/// a first pass cleans them), then 10 updates of existing keys and a record alone (of keys
/// of their own: the newest chunk is never cleaned): 11 dirty records of about 1,000 (1%,
/// below the default ratio 0.5); with `max.compaction.lag.ms` 2 s, wait until a reader from
/// offset 0 gets exactly the latest record of every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_dirty_tail_is_cleaned_after_the_max_compaction_lag() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--compaction-interval-ms", "100"]);
    let topic = "lagging";
    create_compacted(
        &broker.bootstrap(),
        topic,
        &[("max.compaction.lag.ms", MAX_LAG_MS)],
    )
    .await;
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    let first: Vec<Rec> = (0..KEYS)
        .map(|k| keyed(format!("key-{k}"), "first"))
        .collect();
    let mut landed = produce_all(&p, topic, &first).await;
    landed.extend(produce_all(&p, topic, &[keyed("alone-1", "x")]).await);
    let completed = "strato_cleaner_passes_total{result=\"completed\"}";
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "a first cleaning pass", || {
            broker.metric(completed) >= 1.0
        })
    });
    let updates: Vec<Rec> = (0..10)
        .map(|k| keyed(format!("key-{k}"), "second"))
        .collect();
    landed.extend(produce_all(&p, topic, &updates).await);
    landed.extend(produce_all(&p, topic, &[keyed("alone-2", "x")]).await);
    let expected = latest(&landed);
    assert_eq!(expected.len(), KEYS + 2);
    let bootstrap = broker.bootstrap();
    let mut read = Vec::new();
    let cleaned = tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            read = read_all(&bootstrap, topic);
            if holds_exactly(&read, &expected) {
                return true;
            }
        }
        false
    });
    if !cleaned {
        panic!(
            "not cleaned in 60 s: read {} records ({:?}), {} expected; log:\n{}",
            read.len(),
            &read[..read.len().min(3)],
            expected.len(),
            cleaner_log(&broker)
        );
    }
    broker.stop();
}
