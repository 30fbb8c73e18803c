//! Several brokers on one etcd and one object store: partitions are spread over the live
//! brokers, a broker killed mid-stream loses no acknowledged record (its partitions move
//! when its lease expires), a rolling restart and scaling out and in while producing lose
//! nothing, and consumer groups keep consuming.

mod common;

use common::cluster::{Cluster, SETTLE_DEADLINE, Stream};
use common::kafka::{Rec, consume_all, create_topic, produce_all, producer, record};
use common::wait_until;

/// Partitions of every test topic: rendezvous hashing gives each of three brokers a share,
/// and the chance that one of them leads none is 3 * (2/3)^30 ≈ 1.6e-5 per topic.
const PARTITIONS: i32 = 30;

/// Goal: three brokers share the partitions of a topic (each leads some, all are led) and
/// clients connected to any of them produce and consume every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_share_partitions() {
    let cluster = Cluster::start(3, "/strato/cluster-share");
    create_topic(&cluster.bootstrap(), "shared", PARTITIONS).await;
    tokio::task::block_in_place(|| cluster.wait_balanced(PARTITIONS as u64));
    let p = producer(&cluster.bootstrap(), &[("enable.idempotence", "true")]);
    let batch: Vec<Rec> = (0..3_000).map(|i| record("lz4", i)).collect();
    let landed = produce_all(&p, "shared", &batch).await;
    drop(p);
    // A consumer bootstrapped from a single broker finds every leader.
    let one = cluster.brokers[&2].bootstrap();
    let consumed =
        tokio::task::block_in_place(|| consume_all(&one, "shared", PARTITIONS, landed.len()));
    assert_eq!(consumed, landed);
}

/// Goal: kill -9 of one of three brokers while an idempotent producer streams: every
/// acknowledged record is present exactly once, in order per partition, after its
/// partitions moved to the survivors. Method: the producer streams on its own thread; the
/// broker is killed once 1000 records are acknowledged, and the stream must go on after
/// the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_mid_stream_loses_no_acknowledged_record() {
    let mut cluster = Cluster::start(3, "/strato/cluster-kill");
    create_topic(&cluster.bootstrap(), "stream", PARTITIONS).await;
    tokio::task::block_in_place(|| cluster.wait_balanced(PARTITIONS as u64));
    let before = cluster.led();
    let stream = Stream::start(cluster.bootstrap(), "stream");
    tokio::task::block_in_place(|| stream.wait_progress(1_000));
    let victim_partitions = before[&1];
    cluster.take(1).kill();
    // The stream goes on through the failover: the partitions move once the lease expires.
    tokio::task::block_in_place(|| {
        cluster.wait_balanced(PARTITIONS as u64);
        stream.wait_progress(1_000);
    });
    let landed = tokio::task::block_in_place(|| stream.finish());
    tokio::task::block_in_place(|| cluster.wait_balanced(PARTITIONS as u64));
    let consumed = tokio::task::block_in_place(|| {
        consume_all(&cluster.bootstrap(), "stream", PARTITIONS, landed.len())
    });
    assert_eq!(
        consumed, landed,
        "exactly the acknowledged records, in order"
    );
    eprintln!("the killed broker led {victim_partitions} of {PARTITIONS} partitions");
}

/// Goal: a rolling restart (SIGTERM, wait, start) of all three brokers while producing
/// costs no record: draining brokers flush and hand their partitions over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_nothing() {
    let mut cluster = Cluster::start(3, "/strato/cluster-rolling");
    create_topic(&cluster.bootstrap(), "rolling", PARTITIONS).await;
    tokio::task::block_in_place(|| cluster.wait_balanced(PARTITIONS as u64));
    let stream = Stream::start(cluster.bootstrap(), "rolling");
    tokio::task::block_in_place(|| stream.wait_progress(500));
    for slot in [0, 1, 2] {
        let broker = cluster.take(slot);
        let restarted = tokio::task::block_in_place(|| broker.restart_graceful());
        cluster.brokers.insert(slot, restarted);
        // A restarted broker listens on a new port; before the next restart the producer
        // must have found it (clients learn addresses from Metadata, as behind a load
        // balancer), so wait until it writes there.
        tokio::task::block_in_place(|| {
            wait_until(
                SETTLE_DEADLINE,
                "the producer writes to the restarted broker",
                || {
                    cluster.brokers[&slot].metric("strato_flushes_total{result=\"committed\"}")
                        > 0.0
                },
            );
            stream.wait_progress(500);
        });
    }
    let landed = tokio::task::block_in_place(|| stream.finish());
    let consumed = tokio::task::block_in_place(|| {
        consume_all(&cluster.bootstrap(), "rolling", PARTITIONS, landed.len())
    });
    assert_eq!(consumed, landed);
}

/// Goal: scaling 1 → 3 → 1 brokers while producing: new brokers take a share of the
/// partitions, leaving brokers hand theirs back, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_out_and_in_while_producing_loses_nothing() {
    let mut cluster = Cluster::start(1, "/strato/cluster-scale");
    // The first broker stays: clients keep a bootstrap address that works throughout.
    let first = cluster.brokers[&0].bootstrap();
    create_topic(&first, "scale", PARTITIONS).await;
    let stream = Stream::start(first.clone(), "scale");
    tokio::task::block_in_place(|| stream.wait_progress(500));
    cluster.add();
    cluster.add();
    tokio::task::block_in_place(|| {
        cluster.wait_balanced(PARTITIONS as u64);
        stream.wait_progress(1_000);
    });
    for slot in [1, 2] {
        let broker = cluster.take(slot);
        tokio::task::block_in_place(|| broker.stop());
    }
    tokio::task::block_in_place(|| {
        cluster.wait_balanced(PARTITIONS as u64);
        stream.wait_progress(1_000);
    });
    let landed = tokio::task::block_in_place(|| stream.finish());
    let consumed =
        tokio::task::block_in_place(|| consume_all(&first, "scale", PARTITIONS, landed.len()));
    assert_eq!(consumed, landed);
}

/// Goal: DescribeCluster and Metadata list every live broker, and after a leader change
/// OffsetForLeaderEpoch tells where the old epoch ended, so clients can check for log
/// truncation. Method: raw requests at fixed versions; a broker is stopped so that its
/// partitions move (new epochs) while records were written in the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_and_leader_epochs_follow_leadership() {
    use common::wire::{connect, response, send};
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
        OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let mut cluster = Cluster::start(3, "/strato/cluster-epochs");
    let mut conn = connect(&cluster.brokers[&0]);
    send(
        &mut conn,
        ApiKey::DescribeCluster,
        1,
        1,
        &DescribeClusterRequest::default().with_endpoint_type(1),
    );
    let described: DescribeClusterResponse = response(&mut conn, ApiKey::DescribeCluster, 1, 1);
    assert_eq!(described.error_code, 0);
    let mut ports: Vec<i32> = described.brokers.iter().map(|b| b.port).collect();
    ports.sort();
    let mut expected: Vec<i32> = cluster
        .brokers
        .values()
        .map(|b| i32::from(b.addr.port()))
        .collect();
    expected.sort();
    assert_eq!(ports, expected, "every live broker, with its address");

    create_topic(&cluster.bootstrap(), "epochs", PARTITIONS).await;
    tokio::task::block_in_place(|| cluster.wait_balanced(PARTITIONS as u64));
    let p = producer(&cluster.bootstrap(), &[("enable.idempotence", "true")]);
    let first: Vec<Rec> = (0..600).map(|i| record("none", i)).collect();
    let landed = produce_all(&p, "epochs", &first).await;
    let mut ends: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
    for (partition, offset) in landed.keys() {
        ends.insert(*partition, offset + 1);
    }
    let epochs_of = |conn: &mut std::net::TcpStream,
                     correlation_id: i32|
     -> std::collections::BTreeMap<i32, (i32, i32)> {
        send(
            conn,
            ApiKey::Metadata,
            12,
            correlation_id,
            &MetadataRequest::default().with_topics(None),
        );
        let metadata: MetadataResponse = response(conn, ApiKey::Metadata, 12, correlation_id);
        let topic = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some("epochs"))
            .expect("topic listed");
        topic
            .partitions
            .iter()
            .map(|p| (p.partition_index, (p.leader_id.0, p.leader_epoch)))
            .collect()
    };
    let before = epochs_of(&mut conn, 2);

    // Broker 2 leaves: its partitions get new leaders with new epochs.
    let leaving = cluster.take(2);
    tokio::task::block_in_place(|| leaving.stop());
    tokio::task::block_in_place(|| cluster.wait_balanced(PARTITIONS as u64));
    let second: Vec<Rec> = (600..900).map(|i| record("none", i)).collect();
    produce_all(&p, "epochs", &second).await;
    drop(p);
    let mut conn = connect(&cluster.brokers[&0]);
    let after = tokio::task::block_in_place(|| {
        let mut after = epochs_of(&mut conn, 3);
        common::wait_until(SETTLE_DEADLINE, "metadata shows the new leaders", || {
            after = epochs_of(&mut conn, 4);
            after.values().all(|(_, epoch)| *epoch >= 0)
        });
        after
    });
    let moved: Vec<i32> = before
        .iter()
        .filter(|(p, (_, epoch))| after[p].1 > *epoch)
        .map(|(p, _)| *p)
        .collect();
    assert!(
        !moved.is_empty(),
        "some partitions changed leader: {before:?} -> {after:?}"
    );

    // Ask each moved partition's new leader where the old epoch ended.
    for partition in moved {
        let (leader, _) = after[&partition];
        let (old_epoch, new_epoch) = (before[&partition].1, after[&partition].1);
        let broker = cluster
            .brokers
            .values()
            .find(|b| {
                b.metric("strato_brokers") > 0.0 && broker_id_of(&described, b) == Some(leader)
            })
            .unwrap_or_else(|| panic!("leader {leader} is a running broker"));
        let mut leader_conn = connect(broker);
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("epochs")))
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_partition(partition)
                            .with_current_leader_epoch(new_epoch)
                            .with_leader_epoch(old_epoch),
                        OffsetForLeaderPartition::default()
                            .with_partition(partition)
                            .with_current_leader_epoch(new_epoch)
                            .with_leader_epoch(new_epoch),
                    ]),
            ]);
        send(
            &mut leader_conn,
            ApiKey::OffsetForLeaderEpoch,
            4,
            9,
            &request,
        );
        let answer: OffsetForLeaderEpochResponse =
            response(&mut leader_conn, ApiKey::OffsetForLeaderEpoch, 4, 9);
        let old = &answer.topics[0].partitions[0];
        let current = &answer.topics[0].partitions[1];
        assert_eq!(old.error_code, 0, "{answer:?}");
        assert_eq!(
            (old.leader_epoch, old.end_offset),
            (old_epoch, ends.get(&partition).copied().unwrap_or(0)),
            "the old epoch ended where the first records ended"
        );
        assert_eq!(current.leader_epoch, new_epoch);
        assert!(current.end_offset >= old.end_offset);
    }
}

/// The broker id `broker` registered under, from a DescribeCluster answer (matched by port).
fn broker_id_of(
    described: &kafka_protocol::messages::DescribeClusterResponse,
    broker: &common::Broker,
) -> Option<i32> {
    described
        .brokers
        .iter()
        .find(|b| b.port == i32::from(broker.addr.port()))
        .map(|b| b.broker_id.0)
}

/// Goal: zone-aware reads (KIP-392) and stateless reads: a consumer that sets `client.rack`
/// reads every partition from the broker in its rack, including partitions other brokers
/// lead, and gets exactly the records produced. Method: three brokers in three racks; the
/// replica-read counter shows who served reads for partitions it does not lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_read_from_the_broker_in_their_rack() {
    let mut cluster = Cluster::start(0, "/strato/cluster-racks");
    let a = cluster.add_with(&["--rack", "az-a"]);
    let b = cluster.add_with(&["--rack", "az-b"]);
    let c = cluster.add_with(&["--rack", "az-c"]);
    create_topic(&cluster.bootstrap(), "zoned", PARTITIONS).await;
    tokio::task::block_in_place(|| cluster.wait_balanced(PARTITIONS as u64));
    let p = producer(&cluster.bootstrap(), &[("enable.idempotence", "true")]);
    let records: Vec<Rec> = (0..3_000).map(|i| record("zstd", i)).collect();
    let landed = produce_all(&p, "zoned", &records).await;
    drop(p);

    // Without a rack, every read goes to the leaders.
    let plain = tokio::task::block_in_place(|| {
        consume_all(&cluster.bootstrap(), "zoned", PARTITIONS, landed.len())
    });
    assert_eq!(plain, landed);
    let replica_reads = |slot| cluster.brokers[&slot].metric("strato_replica_reads_total");
    assert_eq!(
        [replica_reads(a), replica_reads(b), replica_reads(c)],
        [0.0; 3],
        "no replica reads without client.rack"
    );

    let consumed = tokio::task::block_in_place(|| {
        common::kafka::consume_all_with(
            &cluster.bootstrap(),
            "zoned",
            PARTITIONS,
            landed.len(),
            &[("client.rack", "az-a")],
        )
    });
    assert_eq!(consumed, landed);
    assert!(
        replica_reads(a) > 0.0,
        "the az-a broker served partitions it does not lead"
    );
    assert_eq!(
        replica_reads(b),
        0.0,
        "nothing was read from az-b's replicas"
    );
    assert_eq!(
        replica_reads(c),
        0.0,
        "nothing was read from az-c's replicas"
    );
}

/// Goal: a consumer reading at the tail through another broker's replica view (its rack's
/// broker, KIP-392) gets every record while the leader's compaction merges the newest
/// chunks: a merge reaching past what the view knew must not leave a hole in it (records
/// skipped, or a reader waiting below the high watermark for ever). Method: two brokers in
/// two racks compacting every 20 ms, a group member in one rack reading both partitions
/// while an idempotent producer streams small requests (a chunk per flush), then every
/// acknowledged record must reach the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rack_reader_at_the_tail_misses_nothing_while_chunks_merge() {
    const TOPIC: &str = "merging";
    const TAIL_PARTITIONS: i32 = 2;
    let mut cluster = Cluster::start(0, "/strato/cluster-tail-merge");
    let fast_compaction = ["--compaction-interval-ms", "20"];
    let a = cluster.add_with(&[&["--rack", "az-a"][..], &fast_compaction].concat());
    let b = cluster.add_with(&[&["--rack", "az-b"][..], &fast_compaction].concat());
    create_topic(&cluster.bootstrap(), TOPIC, TAIL_PARTITIONS).await;
    tokio::task::block_in_place(|| cluster.wait_balanced(TAIL_PARTITIONS as u64));
    let member = common::group::Member::start(
        &cluster.bootstrap(),
        TOPIC,
        "tail-readers",
        &[("client.rack", "az-a")],
    );
    let stream = Stream::start(cluster.bootstrap(), TOPIC);
    tokio::task::block_in_place(|| stream.wait_progress(20_000));
    let landed = stream.finish();
    let expected: std::collections::BTreeSet<(i32, i64)> = landed.keys().copied().collect();
    let missing = |member: &common::group::Member| -> Vec<(i32, i64)> {
        let received: std::collections::BTreeSet<(i32, i64)> =
            member.records().into_iter().collect();
        expected.difference(&received).copied().collect()
    };
    tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + SETTLE_DEADLINE;
        loop {
            let missing = missing(&member);
            if missing.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {} acknowledged records never reached the reader, first {:?}",
                missing.len(),
                expected.len(),
                &missing[..missing.len().min(10)]
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let metric = |slot: usize, series: &str| cluster.brokers[&slot].metric(series);
    assert!(
        metric(a, "strato_replica_reads_total") > 0.0,
        "the az-a broker served the partition az-b leads"
    );
    assert!(
        metric(a, "strato_compacted_chunks_total") + metric(b, "strato_compacted_chunks_total")
            > 0.0,
        "chunks were merged while the reader read"
    );
    tokio::task::block_in_place(|| member.close());
}

/// Goal: a produce to a broker that does not lead the partition gets
/// NOT_LEADER_OR_FOLLOWER and, from Produce v10 on, the current leader with its address
/// (KIP-951), so clients retry there without another Metadata round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_to_a_non_leader_names_the_leader() {
    use common::wire::{connect, response, send};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use strato_tiering::batch::test_support::{BatchSpec, build_batch};

    let cluster = Cluster::start(2, "/strato/cluster-kip951");
    create_topic(&cluster.bootstrap(), "led", PARTITIONS).await;
    tokio::task::block_in_place(|| cluster.wait_balanced(PARTITIONS as u64));
    // Produce one batch to every partition through broker slot 0: the partitions slot 1
    // leads are refused with a pointer to slot 1.
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("led")))
                .with_partition_data(
                    (0..PARTITIONS)
                        .map(|index| {
                            PartitionProduceData::default()
                                .with_index(index)
                                .with_records(Some(bytes::Bytes::from(build_batch(
                                    &BatchSpec::default(),
                                ))))
                        })
                        .collect(),
                ),
        ]);
    let mut conn = connect(&cluster.brokers[&0]);
    send(&mut conn, ApiKey::Produce, 10, 1, &request);
    let answer: ProduceResponse = response(&mut conn, ApiKey::Produce, 10, 1);
    let partitions = &answer.responses[0].partition_responses;
    let refused: Vec<_> = partitions.iter().filter(|p| p.error_code != 0).collect();
    let accepted = partitions.len() - refused.len();
    assert_eq!(
        accepted as f64,
        cluster.brokers[&0].metric("strato_partitions{state=\"led\"}"),
        "exactly the partitions slot 0 leads are written"
    );
    assert!(!refused.is_empty(), "slot 1 leads some partitions");
    let other_port = i32::from(cluster.brokers[&1].addr.port());
    for p in refused {
        assert_eq!(
            p.error_code,
            kafka_protocol::ResponseError::NotLeaderOrFollower.code()
        );
        assert!(p.current_leader.leader_epoch >= 0, "{p:?}");
        let endpoint = answer
            .node_endpoints
            .iter()
            .find(|e| e.node_id == p.current_leader.leader_id)
            .unwrap_or_else(|| panic!("no endpoint for the named leader: {answer:?}"));
        assert_eq!(endpoint.port, other_port);
    }
}

/// Goal: a broker started without `--broker-id` gets an id no earlier broker had, so a
/// client never meets a known id at a new address (librdkafka's group coordinator lookup
/// stalled on that: chaos seed 8 with 10 steps). Method: one broker restarted gracefully
/// twice on the same data dir (each time on a new port); the ids from its "broker ready"
/// lines.
#[test]
fn generated_broker_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let id = |broker: &common::Broker| -> i32 {
        let text = broker.log_text();
        let ready = text
            .lines()
            .rfind(|l| l.contains("broker ready"))
            .unwrap_or_else(|| panic!("no \"broker ready\" line in:\n{text}"));
        ready
            .split("broker_id=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no broker_id in {ready}"))
    };
    let mut broker = common::Broker::start(dir.path(), &[]);
    let mut ids = vec![id(&broker)];
    for _ in 0..2 {
        broker = broker.restart_graceful();
        ids.push(id(&broker));
    }
    assert_eq!(ids, vec![0, 1, 2], "a new id each start, none reused");
}
