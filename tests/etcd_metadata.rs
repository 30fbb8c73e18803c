//! The broker with its metadata in a real etcd (`--metadata etcd://...`): the same
//! produce/consume/restart guarantees as on the embedded store, no acknowledged record lost
//! when etcd restarts mid-stream, and a 3-member etcd cluster losing a member keeps working.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Broker;
use common::kafka::{Rec, consume_all, create_topic, produce_all, producer, record};
use strato_metadata::testing::etcd_server::EtcdServer;

fn etcd_args(etcd: &EtcdServer, prefix: &str) -> Vec<String> {
    vec!["--metadata".to_string(), etcd.url(prefix)]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Goal: on etcd, records produced with every guarantee on come back in order, survive
/// kill -9 of the broker, and offsets continue after the restart; nothing is kept locally
/// (a fresh data directory still sees everything, since objects are shared through the
/// same object store directory and metadata through etcd).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_restart_on_etcd() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let objects = format!("file://{}", dir.path().join("shared-objects").display());
    let mut extra = etcd_args(&etcd, "/strato/produce-consume");
    extra.extend(["--object-store".to_string(), objects.clone()]);
    let broker = Broker::start(dir.path(), &args(&extra));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "on-etcd", 3).await;
    let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
    let first: Vec<Rec> = (0..3_000).map(|i| record("etcd", i)).collect();
    let mut landed = produce_all(&p, "on-etcd", &first).await;
    drop(p);
    assert_eq!(consume_all(&bootstrap, "on-etcd", 3, landed.len()), landed);

    let broker = broker.restart_killed();
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    let second: Vec<Rec> = (3_000..4_000).map(|i| record("etcd", i)).collect();
    let more = produce_all(&p, "on-etcd", &second).await;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset) in landed.keys() {
        ends.insert(*partition, offset + 1);
    }
    for (partition, offset) in more.keys() {
        assert!(
            *offset >= ends[partition],
            "offsets continue after the restart"
        );
    }
    landed.extend(more);
    drop(p);
    drop(broker);

    // A broker with an empty data directory serves the same log: the state is in etcd and
    // the shared object store, not on the broker.
    let other_dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(other_dir.path(), &args(&extra));
    assert_eq!(
        consume_all(&broker.bootstrap(), "on-etcd", 3, landed.len()),
        landed
    );
}

/// Goal: etcd killed while a producer streams (idempotence on): produce requests fail with
/// retriable errors while it is down, the broker recovers by itself when it is back, and
/// every acknowledged record is present exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_mid_stream_loses_nothing() {
    let mut etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = etcd_args(&etcd, "/strato/etcd-restart");
    let broker = Broker::start(dir.path(), &args(&extra));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "stream", 2).await;
    let p = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "120000"),
        ],
    );
    let before: Vec<Rec> = (0..1_000).map(|i| record("before", i)).collect();
    let mut landed = produce_all(&p, "stream", &before).await;

    // Produce while etcd is down: the records are acknowledged only after it is back.
    etcd.kill(0);
    let during: Vec<Rec> = (0..1_000).map(|i| record("during", i)).collect();
    let pending = {
        let p = p.clone();
        tokio::spawn(async move { produce_all(&p, "stream", &during).await })
    };
    common::wait_until(
        Duration::from_secs(30),
        "a failed commit in the broker log",
        || broker.log_text().contains("failed to commit"),
    );
    etcd.restart(0);
    let during_landed = tokio::time::timeout(Duration::from_secs(120), pending)
        .await
        .expect("producer finished after etcd came back")
        .unwrap();
    landed.extend(during_landed);
    let after: Vec<Rec> = (0..500).map(|i| record("after", i)).collect();
    landed.extend(produce_all(&p, "stream", &after).await);
    assert_eq!(landed.len(), 2_500);

    let consumed = consume_all(&bootstrap, "stream", 2, landed.len());
    assert_eq!(
        consumed, landed,
        "every acknowledged record exactly once, in order"
    );
}

/// Goal: a broker on a 3-member etcd cluster keeps producing and serving when one etcd
/// member is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_etcd_loses_a_member() {
    let mut etcd = EtcdServer::start_cluster(3);
    let dir = tempfile::tempdir().unwrap();
    let extra = etcd_args(&etcd, "/strato/three");
    let broker = Broker::start(dir.path(), &args(&extra));
    let bootstrap = broker.bootstrap();
    let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
    let first: Vec<Rec> = (0..1_000).map(|i| record("three", i)).collect();
    let mut landed = produce_all(&p, "ha", &first).await;
    etcd.kill(0);
    let second: Vec<Rec> = (1_000..2_000).map(|i| record("three", i)).collect();
    landed.extend(produce_all(&p, "ha", &second).await);
    assert_eq!(consume_all(&bootstrap, "ha", 1, landed.len()), landed);
}

/// Goal: when the broker's lease is lost (here revoked behind its back, as after a long GC
/// pause or a network partition), it stops leading at once, takes a new lease, re-takes its
/// partitions with new epochs, and an idempotent producer carries on: every acknowledged
/// record is present exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_lease_is_noticed_and_leadership_regained() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = etcd_args(&etcd, "/strato/lease-loss");
    let broker = Broker::start(dir.path(), &args(&extra));
    let bootstrap = broker.bootstrap();
    let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
    let first: Vec<Rec> = (0..500).map(|i| record("lease", i)).collect();
    let mut landed = produce_all(&p, "leased", &first).await;

    let etcdctl = |args: &[&str]| {
        let out = common::run_with_timeout(
            std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", etcd.endpoints().join(",")))
                .args(args),
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "etcdctl {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let leases: Vec<String> = etcdctl(&["lease", "list"])
        .lines()
        .skip(1) // "found N leases"
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(!leases.is_empty(), "the broker holds a lease");
    for lease in &leases {
        etcdctl(&["lease", "revoke", lease]);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !broker.log_text().contains("partitions re-acquired") {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker did not regain its lease; log:\n{}",
            broker.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(broker.log_text().contains("broker lease lost"));

    let second: Vec<Rec> = (500..1_000).map(|i| record("lease", i)).collect();
    landed.extend(produce_all(&p, "leased", &second).await);
    assert_eq!(consume_all(&bootstrap, "leased", 1, landed.len()), landed);
}

/// Goal: consumer groups work on etcd: a group member's commits are stored there, survive a
/// kill -9 of the broker, and a broker with a fresh data directory (once the dead broker's
/// lease has expired and it coordinates everything) lists the group and serves its offsets. Method: librdkafka group consumer, then OffsetFetch through a
/// group-less consumer and `strato group list --output json` (ListGroups).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_live_in_etcd() {
    use rdkafka::consumer::{CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let objects = format!("file://{}", dir.path().join("shared-objects").display());
    let mut extra = etcd_args(&etcd, "/strato/groups");
    extra.extend(["--object-store".to_string(), objects]);
    let broker = Broker::start(dir.path(), &args(&extra));
    create_topic(&broker.bootstrap(), "grouped", 2).await;
    let records: Vec<Rec> = (0..200).map(|i| record("none", i)).collect();
    let landed = produce_all(&producer(&broker.bootstrap(), &[]), "grouped", &records).await;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::from([(0, 0), (1, 0)]);
    for (partition, offset) in landed.keys() {
        let end = ends.entry(*partition).or_default();
        *end = (*end).max(offset + 1);
    }

    tokio::task::block_in_place(|| {
        let member = common::kafka::consumer(
            &broker.bootstrap(),
            &[
                ("group.id", "etcd-group"),
                ("auto.offset.reset", "earliest"),
                ("enable.auto.offset.store", "true"),
            ],
        );
        member.subscribe(&["grouped"]).expect("subscribe");
        let mut seen = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen < landed.len() {
            assert!(std::time::Instant::now() < deadline, "consumed {seen}");
            if let Some(msg) = member.poll(Duration::from_millis(200)) {
                msg.expect("consume");
                seen += 1;
            }
        }
        member
            .commit_consumer_state(CommitMode::Sync)
            .expect("commit");
    });
    drop(broker);

    let other_dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(other_dir.path(), &args(&extra));
    let committed = tokio::task::block_in_place(|| {
        let reader = common::kafka::consumer(&broker.bootstrap(), &[("group.id", "etcd-group")]);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("grouped", 0);
        tpl.add_partition("grouped", 1);
        reader
            .committed_offsets(tpl, Duration::from_secs(30))
            .expect("committed offsets")
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => (e.partition(), o),
                other => panic!(
                    "partition {} has no committed offset: {other:?}",
                    e.partition()
                ),
            })
            .collect::<BTreeMap<i32, i64>>()
    });
    assert_eq!(committed, ends);

    // ListGroups goes to every live broker; the killed one stays registered until its
    // lease expires (10 s TTL), and until then the listing cannot reach it.
    let list = || {
        common::run_with_timeout(
            std::process::Command::new(env!("CARGO_BIN_EXE_strato")).args([
                "group",
                "list",
                "--bootstrap",
                &broker.bootstrap(),
                "--output",
                "json",
            ]),
            Duration::from_secs(60),
        )
    };
    let mut out = list();
    common::wait_until(
        Duration::from_secs(30),
        "the dead broker's lease expires",
        || {
            if !out.status.success() {
                out = list();
            }
            out.status.success()
        },
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "etcd-group")
        .unwrap_or_else(|| panic!("etcd-group not listed: {listed}"));
    assert_eq!(entry["state"], "Empty", "{listed}");
    assert_eq!(entry["protocol_type"], "consumer", "{listed}");
}
