//! `strato topic ...`, `strato produce` and `strato consume` end to end: the built binary
//! against a real broker, checked with librdkafka (what the CLI wrote, librdkafka reads, and
//! the other way round) and with the CLI's own `--output json`.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use common::kafka::{consume_all, create_topic, produce_all, producer, record};
use common::{Broker, run_with_input};
use rdkafka::producer::FutureRecord;
use serde_json::Value;

const CLI_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `strato ARGS --bootstrap <broker>` with `stdin`.
fn strato(broker: &Broker, args: &[&str], stdin: Option<&str>) -> Output {
    run_with_input(
        Command::new(env!("CARGO_BIN_EXE_strato"))
            .args(args)
            .args(["--bootstrap", &broker.bootstrap()]),
        stdin.map(str::as_bytes),
        CLI_DEADLINE,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
fn ok(broker: &Broker, args: &[&str], stdin: Option<&str>) -> String {
    let out = strato(broker, args, stdin);
    assert!(
        out.status.success(),
        "strato {args:?} failed:\n{}\nbroker log:\n{}",
        text(&out.stderr),
        broker.log_text()
    );
    text(&out.stdout)
}

/// Runs a command with `--output json` that must succeed; its parsed stdout.
fn json(broker: &Broker, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    serde_json::from_str(&ok(broker, &args, None)).expect("JSON on stdout")
}

/// Runs a command that must fail; its stderr, which must name `code`.
fn refused(broker: &Broker, args: &[&str], code: &str) -> String {
    let out = strato(broker, args, None);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "strato {args:?} succeeded: {}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains(code),
        "strato {args:?}: expected {code} in:\n{stderr}"
    );
    stderr
}

fn configs(described: &Value) -> BTreeMap<String, (String, String)> {
    described["configs"]
        .as_object()
        .expect("configs")
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                (
                    c["value"].as_str().unwrap_or_default().to_string(),
                    c["source"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// Goal: every `strato topic` subcommand does what it says and reports the broker's reason
/// when it refuses. Method: create (with a config, then again: refused, then with
/// --if-not-exists), list, describe, alter (more partitions, a config set and one reset,
/// validate-only), the refusals (fewer partitions, unknown config, invalid value, unknown
/// topic), delete; librdkafka's view of the partitions checks the CLI's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_commands_manage_topics_and_report_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);

    let created = json(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "2",
            "--config",
            "retention.ms=60000",
        ],
    );
    assert_eq!(created["created"], true, "{created:#}");
    assert_eq!(created["partitions"], 2);
    refused(
        &broker,
        &["topic", "create", "orders"],
        "TOPIC_ALREADY_EXISTS",
    );
    let again = json(&broker, &["topic", "create", "orders", "--if-not-exists"]);
    assert_eq!(again["existed"], true);
    let checked = json(
        &broker,
        &[
            "topic",
            "create",
            "checked",
            "--validate-only",
            "--partitions",
            "5",
        ],
    );
    assert_eq!(checked["created"], false);

    let listed = json(&broker, &["topic", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["orders"],
        "validate-only created nothing: {listed:#}"
    );
    assert_eq!(listed[0]["partitions"], 2);

    let described = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(described["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(described["partitions"][0]["log_end_offset"], 0);
    let before = configs(&described);
    assert_eq!(before["retention.ms"], ("60000".into(), "topic".into()));
    assert_eq!(
        before["cleanup.policy"],
        ("delete".into(), "default".into())
    );
    let table = ok(&broker, &["topic", "describe", "orders"], None);
    assert!(table.contains("PARTITION  LEADER"), "{table}");
    assert!(table.contains("retention.ms"), "{table}");

    ok(
        &broker,
        &[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "9",
            "--validate-only",
        ],
        None,
    );
    ok(
        &broker,
        &[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "4",
            "--config",
            "max.message.bytes=5000",
            "--delete-config",
            "retention.ms",
        ],
        None,
    );
    let described = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(
        described["partitions"].as_array().unwrap().len(),
        4,
        "validate-only added nothing; the real change did"
    );
    let after = configs(&described);
    assert_eq!(after["max.message.bytes"], ("5000".into(), "topic".into()));
    assert_eq!(
        after["retention.ms"],
        ("604800000".into(), "default".into())
    );
    let seen_by_librdkafka = common::kafka::high_watermarks(&broker.bootstrap(), "orders", 4);
    assert_eq!(seen_by_librdkafka.len(), 4);

    let fewer = refused(
        &broker,
        &["topic", "alter", "orders", "--partitions", "3"],
        "INVALID_PARTITIONS",
    );
    assert!(fewer.contains("already has 4 partitions"), "{fewer}");
    let unknown = refused(
        &broker,
        &["topic", "alter", "orders", "--config", "retention.msec=1"],
        "INVALID_CONFIG",
    );
    assert!(
        unknown.contains("unknown topic config \"retention.msec\""),
        "{unknown}"
    );
    let invalid = refused(
        &broker,
        &[
            "topic",
            "alter",
            "orders",
            "--config",
            "retention.ms=tomorrow",
        ],
        "INVALID_CONFIG",
    );
    assert!(
        invalid.contains("invalid value \"tomorrow\" for retention.ms"),
        "{invalid}"
    );
    refused(
        &broker,
        &["topic", "create", "bad", "--config", "cleanup.policy=shred"],
        "INVALID_CONFIG",
    );
    refused(
        &broker,
        &["topic", "alter", "absent", "--partitions", "2"],
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    refused(
        &broker,
        &["topic", "describe", "absent"],
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    refused(&broker, &["topic", "alter", "orders"], "required");

    let deleted = strato(&broker, &["topic", "delete", "orders", "absent"], None);
    assert!(!deleted.status.success(), "one of two topics did not exist");
    let table = text(&deleted.stdout);
    assert!(table.contains("orders  deleted"), "{table}");
    assert!(
        table.contains("absent  UNKNOWN_TOPIC_OR_PARTITION"),
        "{table}"
    );
    ok(&broker, &["topic", "delete", "absent", "--if-exists"], None);
    assert_eq!(json(&broker, &["topic", "list"]), serde_json::json!([]));
    broker.stop();
}

/// Goal: `strato produce` writes what librdkafka reads (keys, values, headers, partitions
/// chosen like Kafka's Java client), and `strato consume` reads what librdkafka wrote, from
/// the beginning, an offset or a group's position, up to a count or the end. Method: one
/// broker; lines with keys through the CLI, read back with librdkafka; the same keys
/// produced by librdkafka with its Java-compatible partitioner must land in the same
/// partitions; records from librdkafka read with the CLI's JSON lines and format strings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_agree_with_librdkafka() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "lines", 3).await;

    let input: String = (0..30).map(|i| format!("user-{i}:event {i}\n")).collect();
    let produced: Value = serde_json::from_str(&ok(
        &broker,
        &[
            "produce",
            "lines",
            "--key-separator",
            ":",
            "--header",
            "source=cli",
            "--output",
            "json",
        ],
        Some(&input),
    ))
    .unwrap();
    assert_eq!(produced["records"], 30, "{produced:#}");
    let read = tokio::task::block_in_place(|| consume_all(&bootstrap, "lines", 3, 30));
    let mut partition_of_key = BTreeMap::new();
    for ((partition, _), rec) in &read {
        let key = String::from_utf8(rec.key.clone().unwrap()).unwrap();
        let i: usize = key.strip_prefix("user-").unwrap().parse().unwrap();
        assert_eq!(rec.value.as_deref(), Some(format!("event {i}").as_bytes()));
        assert_eq!(
            rec.headers,
            vec![("source".to_string(), Some(b"cli".to_vec()))]
        );
        partition_of_key.insert(key, *partition);
    }
    assert_eq!(partition_of_key.len(), 30);
    // librdkafka's murmur2 partitioner is the Java client's: the same key, the same partition.
    let java_like = producer(&bootstrap, &[("partitioner", "murmur2")]);
    for (key, partition) in partition_of_key.iter().take(10) {
        let delivery = java_like
            .send(
                FutureRecord::to("lines").key(key).payload("again"),
                CLI_DEADLINE,
            )
            .await
            .expect("delivered");
        assert_eq!(delivery.partition, *partition, "key {key}");
    }

    // Records written by librdkafka, read by the CLI.
    create_topic(&bootstrap, "events", 2).await;
    let records: Vec<_> = (0..20).map(|i| record("none", i + 1)).collect();
    let landed = produce_all(&producer(&bootstrap, &[]), "events", &records).await;
    let lines = ok(
        &broker,
        &[
            "consume",
            "events",
            "--from-beginning",
            "--exit-at-end",
            "--output",
            "json",
        ],
        None,
    );
    let consumed: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(consumed.len(), 20, "{lines}");
    for line in &consumed {
        let at = (
            line["partition"].as_i64().unwrap() as i32,
            line["offset"].as_i64().unwrap(),
        );
        let rec = &landed[&at];
        assert_eq!(line["key"].as_str().map(str::as_bytes), rec.key.as_deref());
        assert_eq!(
            line["value"].as_str().map(str::as_bytes),
            rec.value.as_deref()
        );
        assert_eq!(line["timestamp"].as_i64(), rec.timestamp);
        assert_eq!(
            line["headers"]["idx"],
            rec.headers[0]
                .1
                .as_deref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap()
        );
    }
    let mut offsets_of_p0: Vec<i64> = consumed
        .iter()
        .filter(|l| l["partition"] == 0)
        .map(|l| l["offset"].as_i64().unwrap())
        .collect();
    let in_order = offsets_of_p0.clone();
    offsets_of_p0.sort();
    assert_eq!(
        in_order, offsets_of_p0,
        "a partition is read in offset order"
    );

    // --partition, --offset and --count with a format string.
    let p0 = landed.keys().filter(|(p, _)| *p == 0).count() as i64;
    assert!(p0 >= 2, "both partitions hold records: {landed:?}");
    let formatted = ok(
        &broker,
        &[
            "consume",
            "events",
            "--partition",
            "0",
            "--offset",
            "1",
            "--count",
            "1",
            "--format",
            "%p/%o:%k\\n",
        ],
        None,
    );
    let key = landed[&(0, 1)]
        .key
        .clone()
        .map(|k| String::from_utf8(k).unwrap())
        .unwrap();
    assert_eq!(formatted, format!("0/1:{key}\n"));

    // A group's position: the first read commits it, the second finds nothing new, the
    // third only what came after.
    let group_read = |expect: usize| {
        let out = ok(
            &broker,
            &[
                "consume",
                "events",
                "--group",
                "cli-readers",
                "--from-beginning",
                "--exit-at-end",
            ],
            None,
        );
        assert_eq!(out.lines().count(), expect, "{out}");
    };
    group_read(20);
    group_read(0);
    ok(
        &broker,
        &[
            "produce",
            "events",
            "--partition",
            "1",
            "--value",
            "late-1",
            "--value",
            "late-2",
        ],
        None,
    );
    group_read(2);

    refused(
        &broker,
        &["produce", "absent", "--value", "x"],
        "does not exist",
    );
    refused(
        &broker,
        &[
            "consume",
            "events",
            "--partition",
            "0",
            "--offset",
            "999",
            "--count",
            "1",
        ],
        "OFFSET_OUT_OF_RANGE",
    );
    refused(
        &broker,
        &["consume", "events", "--format", "%x"],
        "unknown placeholder",
    );
    broker.stop();
}
