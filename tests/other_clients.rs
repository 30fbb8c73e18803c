//! Clients other than the Rust one, driven as subprocesses: kafka-python 3.x (idempotence
//! on by default), confluent-kafka (librdkafka 2.x) with every codec, kafka-python's admin
//! client, kafkajs (only pre-flexible protocol versions), the official Java client
//! (kafka-clients 4.x) and kcat. The Python venv, kafkajs, the Java client program and kcat
//! come from scripts/test.sh.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Broker, kcat, run_client_script, run_java_client, run_node_script, run_with_input};

/// Goal: kafka-python 3 with its defaults (idempotent producer, acks=all) produces to an
/// auto-created topic and a group-less consumer reads every record back unchanged.
#[test]
fn kafka_python_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--default-partitions", "3"]);
    let result = run_client_script(
        "kafka_python_roundtrip.py",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            "kp",
            "--count",
            "3000",
        ],
    );
    assert_eq!(result["produced"], 3000, "{result}");
    assert_eq!(result["consumed"], 3000, "{result}");
    assert_eq!(result["partitions"], 3, "{result}");
}

/// Goal: confluent-kafka with enable.idempotence=true and each compression codec produces
/// and reads back every record.
#[test]
fn confluent_kafka_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--default-partitions", "2"]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("ck-{codec}");
        let result = run_client_script(
            "confluent_roundtrip.py",
            &[
                "--bootstrap",
                &broker.bootstrap(),
                "--topic",
                &topic,
                "--count",
                "2000",
                "--compression",
                codec,
            ],
        );
        assert_eq!(result["produced"], 2000, "{codec}: {result}");
        assert_eq!(result["consumed"], 2000, "{codec}: {result}");
    }
}

/// Goal: kafka-python's admin client creates a topic, gets TOPIC_ALREADY_EXISTS the second
/// time, and reads the topic's configs with their defaults.
#[test]
fn kafka_python_admin() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let result = run_client_script(
        "kafka_python_admin.py",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            "admin-made",
            "--partitions",
            "4",
        ],
    );
    assert_eq!(result["created"], true, "{result}");
    assert_eq!(result["already_exists_error"], true, "{result}");
    assert_eq!(result["configs"]["retention.ms"], "604800000", "{result}");
    assert_eq!(result["configs"]["cleanup.policy"], "delete", "{result}");
}

/// Goal: kafkajs 2.2.4, which never sends flexible versions (CreateTopics v3, Metadata v6,
/// InitProducerId v1, Produce v7, ListOffsets v3), creates a topic, gets "already exists" the
/// second time, produces with its idempotent producer and reads back the offsets. Method: the
/// script checks every send's base offsets, then ListOffsets (earliest, latest, by timestamp)
/// against what was acknowledged, then consumes everything as a group member and reads the
/// group's committed offsets; here we check its totals.
#[test]
fn kafkajs_produce_offsets_and_group_consume() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let result = run_node_script(
        "kafkajs_roundtrip.mjs",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            "kjs",
            "--count",
            "3000",
        ],
    );
    assert_eq!(result["created"], true, "{result}");
    assert_eq!(result["already_exists"], true, "{result}");
    assert_eq!(result["produced"], 3000, "{result}");
    assert_eq!(result["partitions"], 3, "{result}");
    let high_watermarks = result["high_watermarks"]
        .as_object()
        .unwrap_or_else(|| panic!("no high_watermarks: {result}"));
    assert_eq!(high_watermarks.len(), 3, "{result}");
    let total: u64 = high_watermarks
        .values()
        .map(|v| v.as_u64().expect("high watermark is a number"))
        .sum();
    assert_eq!(total, 3000, "{result}");
    // The group step: the old non-flexible group API versions.
    assert_eq!(result["group_consumed"], 3000, "{result}");
    assert_eq!(
        result["group_committed"], result["high_watermarks"],
        "{result}"
    );
}

/// Goal: the official Java client (kafka-clients 4.3.0) with its defaults works end to end:
/// Admin creates a topic (3 partitions) and gets TopicExistsException the second time, reads
/// the topic's configs; the producer (idempotent, acks=all by default) sends 3000 records; a
/// consumer without group.id assigns every partition, seeks to
/// the beginning and reads every record back. Method: the program (tests/clients/java) checks
/// offsets dense from 0 per partition, beginning/end offsets, and key, value and header of
/// every record at the (partition, offset) its RecordMetadata gave; here we check its totals.
/// Then a group consumes, and Admin alters configs (an unknown name refused), adds a
/// partition, describes log dirs, runs a preferred election and describes producers.
#[test]
fn java_client_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let result = run_java_client(&[
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        "java",
        "--count",
        "3000",
    ]);
    assert_eq!(result["created"], true, "{result}");
    assert_eq!(result["already_exists"], true, "{result}");
    assert_eq!(result["configs"]["retention.ms"], "604800000", "{result}");
    assert_eq!(result["configs"]["cleanup.policy"], "delete", "{result}");
    assert_eq!(result["partitions"], 3, "{result}");
    assert_eq!(result["produced"], 3000, "{result}");
    assert_eq!(result["consumed"], 3000, "{result}");
    let end_offsets = result["end_offsets"]
        .as_object()
        .unwrap_or_else(|| panic!("no end_offsets: {result}"));
    assert_eq!(end_offsets.len(), 3, "{result}");
    let total: u64 = end_offsets
        .values()
        .map(|v| v.as_u64().expect("end offset is a number"))
        .sum();
    assert_eq!(total, 3000, "{result}");
    // The group step: JoinGroup/SyncGroup/OffsetCommit/OffsetFetch at the Java client's
    // newest versions, then Admin's group calls.
    assert_eq!(result["group_consumed"], 3000, "{result}");
    assert_eq!(result["group_assigned_partitions"], 3, "{result}");
    assert_eq!(result["group_listed"], true, "{result}");
    assert_eq!(result["group_state"], "Empty", "{result}");
    assert_eq!(result["group_members"], 0, "{result}");
    assert_eq!(result["group_committed"], result["end_offsets"], "{result}");
    assert_eq!(result["group_deleted"], true, "{result}");
    // The admin step: configs, partitions, log dirs, elections and producers.
    assert_eq!(result["altered_retention_ms"], "3600000", "{result}");
    assert_eq!(result["unknown_config_refused"], true, "{result}");
    assert_eq!(result["partitions_after_create_partitions"], 4, "{result}");
    assert_eq!(result["log_dir_replicas"], 4, "{result}");
    assert_eq!(result["elections_fine"], true, "{result}");
    assert_eq!(
        result["producer_states"], 3,
        "the idempotent producer wrote every partition: {result}"
    );
}

fn kcat_run(args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new(kcat());
    cmd.args(args);
    let output = run_with_input(&mut cmd, stdin.map(str::as_bytes), Duration::from_secs(60));
    assert!(
        output.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Goal: the README quickstart works: kcat -P with keys into an auto-created topic, kcat -C
/// from the beginning, from the end minus N, and from a timestamp.
#[test]
fn kcat_produce_and_consume() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let b = broker.bootstrap();
    let input: String = (0..100).map(|i| format!("key{i}:value{i}\n")).collect();
    kcat_run(&["-b", &b, "-P", "-t", "orders", "-K", ":"], Some(&input));

    let all = kcat_run(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "orders",
            "-e",
            "-q",
            "-f",
            "%o %k=%s\n",
        ],
        None,
    );
    let expected: String = (0..100).map(|i| format!("{i} key{i}=value{i}\n")).collect();
    assert_eq!(all, expected);

    let tail = kcat_run(
        &[
            "-b", &b, "-C", "-t", "orders", "-o", "-3", "-e", "-q", "-f", "%s\n",
        ],
        None,
    );
    assert_eq!(tail, "value97\nvalue98\nvalue99\n");

    // Records produced now have timestamps after `since`; the earlier ones before it.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1;
    common::wait_until(Duration::from_secs(5), "clock to pass `since`", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            > since
    });
    kcat_run(&["-b", &b, "-P", "-t", "orders"], Some("late1\nlate2\n"));
    let from_time = kcat_run(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "orders",
            "-o",
            &format!("s@{since}"),
            "-e",
            "-q",
            "-f",
            "%o %s\n",
        ],
        None,
    );
    assert_eq!(from_time, "100 late1\n101 late2\n");
}
