//! Consumer groups with real clients: librdkafka (rdkafka crate) consumers join, share
//! partitions, rebalance when members come and go (eager and cooperative-sticky), keep
//! static membership across a restart without a rebalance, and resume at committed offsets
//! after a broker restart; kcat -G and kafka-python consume as groups too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::group::{Member, committed};
use common::kafka;
use common::{Broker, wait_until};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Broker flags for group tests: a short initial rebalance delay keeps the tests quick
/// while still exercising the delayed first join.
const BROKER_ARGS: &[&str] = &["--group-initial-rebalance-delay-ms", "300"];

const GROUP_DEADLINE: Duration = Duration::from_secs(60);

fn produce(broker: &Broker, topic: &str, per_partition: usize, partitions: i32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let producer = kafka::producer(&broker.bootstrap(), &[]);
        for p in 0..partitions {
            let values: Vec<String> = (0..per_partition).map(|i| format!("p{p}-{i}")).collect();
            let mut futures = Vec::new();
            for value in &values {
                let record = rdkafka::producer::FutureRecord::<(), _>::to(topic)
                    .partition(p)
                    .payload(value);
                futures.push(producer.send(record, Duration::from_secs(30)));
            }
            for f in futures {
                f.await.expect("record acknowledged");
            }
        }
    });
}

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(kafka::create_topic(&broker.bootstrap(), topic, partitions));
}

fn rebalances_total(broker: &Broker) -> u64 {
    let (_, text) = broker.http_get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("strato_consumer_group_rebalances_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rebalance counter in metrics:\n{text}"))
}

fn distinct(records: &[(i32, i64)]) -> BTreeSet<(i32, i64)> {
    records.iter().copied().collect()
}

#[test]
fn three_members_share_six_partitions_and_survivors_take_over_when_one_leaves() {
    // Goal: partitions are spread evenly, a leaving member's partitions move to the others
    // within the session timeout, and every record is consumed with nothing committed lost.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), BROKER_ARGS);
    let bootstrap = broker.bootstrap();
    create_topic(&broker, "shared", 6);
    produce(&broker, "shared", 50, 6);

    let members: Vec<Member> = (0..3)
        .map(|_| Member::start(&bootstrap, "shared", "g-shared", &[]))
        .collect();
    wait_until(
        GROUP_DEADLINE,
        "each of 3 members owns 2 partitions",
        || {
            let assignments: Vec<BTreeSet<i32>> = members.iter().map(Member::assignment).collect();
            let union: BTreeSet<i32> = assignments.iter().flatten().copied().collect();
            assignments.iter().all(|a| a.len() == 2) && union.len() == 6
        },
    );
    wait_until(GROUP_DEADLINE, "all 300 records consumed", || {
        let all: BTreeSet<(i32, i64)> = members.iter().flat_map(|m| m.records()).collect();
        all.len() == 300
    });

    let mut members = members;
    let leaver = members.remove(0);
    let left_partitions = leaver.assignment();
    let leaver_records = leaver.close();
    let started = std::time::Instant::now();
    wait_until(
        Duration::from_secs(6),
        "the 2 survivors own all 6 partitions",
        || {
            let union: BTreeSet<i32> = members.iter().flat_map(Member::assignment).collect();
            members.iter().all(|m| m.assignment().len() == 3) && union.len() == 6
        },
    );
    eprintln!(
        "takeover of partitions {left_partitions:?} took {:?}",
        started.elapsed()
    );

    produce(&broker, "shared", 50, 6);
    wait_until(GROUP_DEADLINE, "all 600 records consumed", || {
        let mut all = distinct(&leaver_records);
        for m in &members {
            all.extend(m.records());
        }
        all.len() == 600
    });
    let survivors_records: Vec<Vec<(i32, i64)>> = members.into_iter().map(Member::close).collect();
    // Records of the second round on the leaver's partitions went to the survivors.
    for p in &left_partitions {
        assert!(
            survivors_records
                .iter()
                .flatten()
                .any(|(partition, offset)| partition == p && *offset >= 50),
            "partition {p} was taken over"
        );
    }
    let committed = committed(&broker.bootstrap(), "g-shared", "shared", 6);
    assert_eq!(
        committed,
        (0..6).map(|p| (p, 100)).collect(),
        "every partition committed to its end"
    );
}

#[test]
fn cooperative_sticky_moves_only_the_partitions_that_change_owner() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), BROKER_ARGS);
    let bootstrap = broker.bootstrap();
    create_topic(&broker, "coop", 6);
    let cooperative = [("partition.assignment.strategy", "cooperative-sticky")];
    let first = Member::start(&bootstrap, "coop", "g-coop", &cooperative);
    let second = Member::start(&bootstrap, "coop", "g-coop", &cooperative);
    wait_until(GROUP_DEADLINE, "two members own 3 partitions each", || {
        first.assignment().len() == 3 && second.assignment().len() == 3
    });
    let before = [first.assignment(), second.assignment()];
    let revokes_before = [first.rebalances(), second.rebalances()]
        .map(|r| r.iter().filter(|(kind, _)| *kind == "revoke").count());

    let third = Member::start(&bootstrap, "coop", "g-coop", &cooperative);
    wait_until(
        GROUP_DEADLINE,
        "three members own 2 partitions each",
        || {
            [&first, &second, &third]
                .iter()
                .all(|m| m.assignment().len() == 2)
        },
    );
    for (idx, member) in [&first, &second].iter().enumerate() {
        let after = member.assignment();
        assert!(
            after.is_subset(&before[idx]),
            "a member only gives partitions away: {:?} -> {after:?}",
            before[idx]
        );
        let revokes: Vec<Vec<i32>> = member
            .rebalances()
            .into_iter()
            .filter(|(kind, _)| *kind == "revoke")
            .skip(revokes_before[idx])
            .map(|(_, p)| p)
            .collect();
        // Incremental: exactly the partition handed to the newcomer is revoked, never the
        // whole assignment as in an eager rebalance.
        assert_eq!(revokes.concat().len(), 1, "revocations: {revokes:?}");
    }
    drop((first, second, third));
}

#[test]
fn a_restarted_static_member_gets_its_partitions_back_without_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), BROKER_ARGS);
    let bootstrap = broker.bootstrap();
    create_topic(&broker, "static", 4);
    let static_a = [
        ("group.instance.id", "instance-a"),
        ("session.timeout.ms", "10000"),
    ];
    let static_b = [
        ("group.instance.id", "instance-b"),
        ("session.timeout.ms", "10000"),
    ];
    let a = Member::start(&bootstrap, "static", "g-static", &static_a);
    let b = Member::start(&bootstrap, "static", "g-static", &static_b);
    wait_until(
        GROUP_DEADLINE,
        "two static members own 2 partitions each",
        || a.assignment().len() == 2 && b.assignment().len() == 2,
    );
    let a_partitions = a.assignment();
    let b_rebalances = b.rebalances();
    let generations = rebalances_total(&broker);

    // A static member does not leave the group on close; restarted within its session
    // timeout it takes its old place.
    a.close();
    let a = Member::start(&bootstrap, "static", "g-static", &static_a);
    wait_until(
        GROUP_DEADLINE,
        "the restarted member is assigned again",
        || !a.assignment().is_empty(),
    );
    assert_eq!(a.assignment(), a_partitions, "same partitions as before");
    assert_eq!(
        b.rebalances(),
        b_rebalances,
        "the other member saw no rebalance"
    );
    assert_eq!(rebalances_total(&broker), generations, "no new generation");
    drop((a, b));
}

#[test]
fn consumers_resume_at_committed_offsets_after_a_broker_crash() {
    // Offsets are committed to the metadata store before the commit is answered, so a
    // kill -9 of the broker loses none; a new consumer of the group resumes exactly there.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), BROKER_ARGS);
    create_topic(&broker, "resume", 3);
    produce(&broker, "resume", 40, 3);
    let consumer = kafka::consumer(&broker.bootstrap(), &[("group.id", "g-resume")]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("resume", p, Offset::Offset(i64::from(p) * 10))
            .unwrap();
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("standalone commit");
    drop(consumer);

    let broker = broker.restart_killed();
    assert_eq!(
        committed(&broker.bootstrap(), "g-resume", "resume", 3),
        BTreeMap::from([(0, 0), (1, 10), (2, 20)])
    );
    let member = Member::start(&broker.bootstrap(), "resume", "g-resume", &[]);
    wait_until(
        GROUP_DEADLINE,
        "the rest of every partition is consumed",
        || member.records().len() >= 90,
    );
    let records = member.close();
    let first: BTreeMap<i32, i64> = records.iter().fold(BTreeMap::new(), |mut m, (p, o)| {
        m.entry(*p).or_insert(*o);
        m
    });
    assert_eq!(first, BTreeMap::from([(0, 0), (1, 10), (2, 20)]));
    assert_eq!(records.len(), 90, "no record consumed twice: {records:?}");
    assert_eq!(
        committed(&broker.bootstrap(), "g-resume", "resume", 3),
        BTreeMap::from([(0, 40), (1, 40), (2, 40)])
    );
}

#[test]
fn kcat_balanced_consumer_commits_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), BROKER_ARGS);
    create_topic(&broker, "kcat-group", 2);
    produce(&broker, "kcat-group", 25, 2);
    let kcat_group = || {
        let out = common::run_with_timeout(
            Command::new(common::kcat()).args([
                "-b",
                &broker.bootstrap(),
                "-G",
                "g-kcat",
                "-X",
                "auto.offset.reset=earliest",
                "-e",
                "-q",
                "-f",
                "%p:%o\n",
                "kcat-group",
            ]),
            GROUP_DEADLINE,
        );
        assert!(
            out.status.success(),
            "kcat -G failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = kcat_group();
    assert_eq!(first.lines().count(), 50, "{first}");
    assert_eq!(
        committed(&broker.bootstrap(), "g-kcat", "kcat-group", 2),
        BTreeMap::from([(0, 25), (1, 25)])
    );
    produce(&broker, "kcat-group", 5, 2);
    let second = kcat_group();
    let mut lines: Vec<&str> = second.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "0:25", "0:26", "0:27", "0:28", "0:29", "1:25", "1:26", "1:27", "1:28", "1:29"
        ]
    );
}

/// Goal: kafka-python's own group implementation (not librdkafka) joins, consumes, commits
/// and leaves; a second run of the group continues exactly at the committed offsets.
#[test]
fn kafka_python_group_consumer_commits_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), BROKER_ARGS);
    create_topic(&broker, "py-group", 3);
    produce(&broker, "py-group", 30, 3);
    let run = |expect: &str| {
        common::run_client_script(
            "kafka_python_group.py",
            &[
                "--bootstrap",
                &broker.bootstrap(),
                "--topic",
                "py-group",
                "--group",
                "g-python",
                "--expect",
                expect,
            ],
        )
    };
    let first = run("90");
    assert_eq!(first["consumed"], 90, "{first}");
    assert_eq!(first["assignment"], serde_json::json!([0, 1, 2]), "{first}");
    assert_eq!(
        first["committed"],
        serde_json::json!({"0": 30, "1": 30, "2": 30}),
        "{first}"
    );
    produce(&broker, "py-group", 5, 3);
    let second = run("15");
    assert_eq!(second["consumed"], 15, "{second}");
    assert_eq!(
        second["first_offsets"],
        serde_json::json!({"0": 30, "1": 30, "2": 30}),
        "{second}"
    );
    assert_eq!(
        committed(&broker.bootstrap(), "g-python", "py-group", 3),
        BTreeMap::from([(0, 35), (1, 35), (2, 35)])
    );
}

/// Goal: a member that dies without leaving (kill -9 of a kcat -G process) is dropped when
/// its session times out, and the survivors take its partitions over. Method: two librdkafka
/// members and one kcat member with a 6 s session timeout; after the kill the survivors must
/// own all partitions within the session timeout plus one rebalance.
#[test]
fn a_crashed_member_is_dropped_after_its_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), BROKER_ARGS);
    let bootstrap = broker.bootstrap();
    create_topic(&broker, "crash", 6);
    let members: Vec<Member> = (0..2)
        .map(|_| Member::start(&bootstrap, "crash", "g-crash", &[]))
        .collect();
    wait_until(GROUP_DEADLINE, "two members own 3 partitions each", || {
        members.iter().all(|m| m.assignment().len() == 3)
    });
    let mut kcat = KillOnDrop(
        Command::new(common::kcat())
            .args([
                "-b",
                &bootstrap,
                "-G",
                "g-crash",
                "-X",
                "session.timeout.ms=6000",
                "-q",
                "crash",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start kcat -G"),
    );
    wait_until(GROUP_DEADLINE, "kcat joined: each member owns 2", || {
        members.iter().all(|m| m.assignment().len() == 2)
    });
    kcat.0.kill().expect("kill -9 kcat");
    kcat.0.wait().expect("reap kcat");
    let killed = std::time::Instant::now();
    wait_until(
        Duration::from_secs(20),
        "survivors own all 6 partitions",
        || {
            let union: BTreeSet<i32> = members.iter().flat_map(Member::assignment).collect();
            union.len() == 6 && members.iter().all(|m| m.assignment().len() == 3)
        },
    );
    let took = killed.elapsed();
    eprintln!("takeover after kill -9 took {took:?}");
    assert!(
        took >= Duration::from_secs(5),
        "the dead member is only dropped by its session timeout, took {took:?}"
    );
}

/// Kills (SIGKILL, by pid) a child process when dropped, so a failing test leaves none.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
