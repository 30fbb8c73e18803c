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
