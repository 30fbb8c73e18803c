//! `strato group list|describe|reset-offsets|delete` against a real broker and a real
//! consumer group (librdkafka), reading the CLI's `--output json`.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::kafka::{CONSUME_DEADLINE, consumer, create_topic, produce_all, producer, record};
use common::{Broker, run_with_timeout, wait_until};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use serde_json::Value;

const TOPIC: &str = "events";
const GROUP: &str = "cli-app";
const CLIENT_ID: &str = "cli-test-client";
const PARTITIONS: i32 = 2;
const RECORDS: usize = 40;
const GROUP_DEADLINE: Duration = Duration::from_secs(60);

fn strato_group(broker: &Broker, args: &[&str]) -> Output {
    run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_strato"))
            .arg("group")
            .args(args)
            .args(["--bootstrap", &broker.bootstrap()]),
        Duration::from_secs(60),
    )
}

/// Runs a group subcommand with `--output json`, checks it succeeded, parses stdout.
fn group_json(broker: &Broker, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let out = strato_group(broker, &args);
    assert!(
        out.status.success(),
        "strato group {args:?} failed:\n{}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log_text()
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Committed offset, log end offset and lag per partition, from `describe --output json`.
fn offsets(describe: &Value) -> BTreeMap<i64, (Value, Value, Value)> {
    describe["offsets"]
        .as_array()
        .expect("offsets array")
        .iter()
        .filter(|o| o["topic"] == TOPIC)
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                (
                    o["committed_offset"].clone(),
                    o["log_end_offset"].clone(),
                    o["lag"].clone(),
                ),
            )
        })
        .collect()
}

/// A member of `GROUP` that consumed every record and committed its position.
fn consume_and_commit(broker: &Broker) -> BaseConsumer {
    let consumer = consumer(
        &broker.bootstrap(),
        &[
            ("group.id", GROUP),
            ("client.id", CLIENT_ID),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "6000"),
            // The shared helper stores no offsets (it never commits); this member does.
            ("enable.auto.offset.store", "true"),
        ],
    );
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let mut seen = 0;
    let end = Instant::now() + CONSUME_DEADLINE;
    while seen < RECORDS {
        assert!(Instant::now() < end, "consumed only {seen} of {RECORDS}");
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg.expect("consume without error");
            assert_eq!(msg.topic(), TOPIC);
            seen += 1;
        }
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit the group's position");
    consumer
}

/// Goal: every `strato group` subcommand reports and changes what a real consumer group
/// did. Method: a librdkafka consumer joins `GROUP`, consumes everything and commits; the
/// CLI then describes it live (members, assignment), refuses to reset or delete it while it
/// has a member, and after the consumer leaves lists, resets (dry run, then --execute),
/// shifts and deletes it, checking each step with `describe`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commands_follow_a_real_consumer_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    create_topic(&broker.bootstrap(), TOPIC, PARTITIONS).await;
    let records: Vec<_> = (0..RECORDS).map(|i| record("none", i)).collect();
    let landed = produce_all(&producer(&broker.bootstrap(), &[]), TOPIC, &records).await;
    let mut per_partition: BTreeMap<i64, i64> =
        (0..i64::from(PARTITIONS)).map(|p| (p, 0)).collect();
    for (partition, _) in landed.keys() {
        *per_partition.get_mut(&i64::from(*partition)).unwrap() += 1;
    }

    let member = tokio::task::block_in_place(|| consume_and_commit(&broker));

    // Live: one member that owns both partitions, nothing left to consume.
    let live = group_json(&broker, &["describe", GROUP]);
    assert_eq!(live["group"], GROUP);
    assert_eq!(live["state"], "Stable", "{live:#}");
    assert_eq!(live["protocol_type"], "consumer");
    let members = live["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{live:#}");
    assert_eq!(members[0]["client_id"], CLIENT_ID);
    let assigned = members[0]["assignment"]
        .as_array()
        .expect("decoded assignment");
    assert_eq!(assigned.len(), PARTITIONS as usize, "{live:#}");
    for (partition, (committed, log_end, lag)) in offsets(&live) {
        let count = per_partition[&partition];
        assert_eq!(
            committed, count,
            "committed offset of partition {partition}"
        );
        assert_eq!(log_end, count, "log end offset of partition {partition}");
        assert_eq!(lag, 0);
    }
    assert!(live["offsets"][0]["member_id"].is_string(), "{live:#}");

    // A group with a member is neither reset nor deleted.
    let out = strato_group(
        &broker,
        &[
            "reset-offsets",
            GROUP,
            "--all-topics",
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stop its consumers first"), "{stderr}");
    let out = strato_group(&broker, &["delete", GROUP]);
    assert!(
        !out.status.success(),
        "a group with a member is not deleted"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("NON_EMPTY_GROUP"), "{stdout}");

    // The consumer leaves; the group stays, Empty, with its offsets.
    tokio::task::block_in_place(|| {
        member.unsubscribe();
        drop(member);
    });
    wait_until(GROUP_DEADLINE, "the group to become Empty", || {
        group_json(&broker, &["describe", GROUP])["state"] == "Empty"
    });
    let listed = group_json(&broker, &["list"]);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == GROUP)
        .unwrap_or_else(|| panic!("{GROUP} listed: {listed:#}"));
    assert_eq!(entry["state"], "Empty");
    assert_eq!(entry["protocol_type"], "consumer");
    let empty_only = group_json(&broker, &["list", "--state", "empty"]);
    assert!(
        empty_only
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == GROUP),
        "{empty_only:#}"
    );
    let stable_only = group_json(&broker, &["list", "--state", "Stable"]);
    assert!(
        !stable_only
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == GROUP),
        "{stable_only:#}"
    );

    // Dry run: a plan, nothing committed.
    let plan = group_json(
        &broker,
        &["reset-offsets", GROUP, "--all-topics", "--to-earliest"],
    );
    assert_eq!(plan["executed"], false);
    let planned = plan["partitions"].as_array().unwrap();
    assert_eq!(planned.len(), PARTITIONS as usize, "{plan:#}");
    assert!(planned.iter().all(|p| p["new_offset"] == 0), "{plan:#}");
    let unchanged = group_json(&broker, &["describe", GROUP]);
    for (partition, (committed, _, _)) in offsets(&unchanged) {
        assert_eq!(
            committed, per_partition[&partition],
            "dry run commits nothing"
        );
    }

    // --execute commits the plan.
    let done = group_json(
        &broker,
        &[
            "reset-offsets",
            GROUP,
            "--all-topics",
            "--to-earliest",
            "--execute",
        ],
    );
    assert_eq!(done["executed"], true);
    let reset = group_json(&broker, &["describe", GROUP]);
    for (partition, (committed, log_end, lag)) in offsets(&reset) {
        let count = per_partition[&partition];
        assert_eq!(committed, 0, "partition {partition} reset to earliest");
        assert_eq!(log_end, count);
        assert_eq!(lag, count);
    }

    // A shift of one named partition, clamped to its log end.
    let partition0 = format!("{TOPIC}:0");
    group_json(
        &broker,
        &[
            "reset-offsets",
            GROUP,
            "--topic",
            &partition0,
            "--shift-by",
            "1000",
            "--execute",
        ],
    );
    let shifted = group_json(&broker, &["describe", GROUP]);
    let by_partition = offsets(&shifted);
    assert_eq!(
        by_partition[&0].0, per_partition[&0],
        "clamped to the log end"
    );
    assert_eq!(by_partition[&1].0, 0, "other partitions untouched");

    // Delete: once, then it is gone.
    let deleted = group_json(&broker, &["delete", GROUP]);
    assert_eq!(deleted[0]["group"], GROUP);
    assert_eq!(deleted[0]["deleted"], true, "{deleted:#}");
    let out = strato_group(&broker, &["describe", GROUP]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    let out = strato_group(&broker, &["delete", GROUP]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("GROUP_ID_NOT_FOUND"), "{stdout}");
}

/// Goal: unknown groups give a clear error, not an empty table.
#[test]
fn describing_an_unknown_group_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let out = strato_group(&broker, &["describe", "never-existed"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("consumer group \"never-existed\" does not exist"),
        "{stderr}"
    );
}
