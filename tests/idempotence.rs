//! Idempotent producers across lost responses, restarts and failover (issue 8): a retried
//! batch is written once, always (docs/DESIGN.md invariant 2). The client is librdkafka with
//! `enable.idempotence=true` behind a [`FaultProxy`] that holds back responses the broker
//! already sent (so the broker committed the batch and the client must retry it) and then
//! cuts the connections; producer ids are checked with raw InitProducerId requests.
//!
//! Every test compares counts exactly: the high watermark of each partition equals the
//! records acknowledged there, and the log read back equals what was acknowledged, so a
//! retried batch written twice fails it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::cluster::{Cluster, Stream, StreamConfig};
use common::kafka::{Rec, consume_all, create_topic, high_watermarks};
use common::proxy::FaultProxy;
use common::wire::{connect, init_producer_id};
use common::{Broker, wait_until};

/// How long a proxy may wait for a Produce response to hold back; librdkafka's request
/// timeout (30 s by default) is longer, so a held request is not yet given up.
const HOLD_DEADLINE: Duration = Duration::from_secs(20);

/// Producer settings of the streams here: small batches, so a chunk of records is several
/// Produce requests (librdkafka keeps up to 5 in flight with idempotence), and quick
/// reconnects after the many cuts (librdkafka's backoff would otherwise grow towards 10 s).
const STREAM_PRODUCER: &[(&str, &str)] = &[
    ("batch.num.messages", "20"),
    ("reconnect.backoff.ms", "20"),
    ("reconnect.backoff.max.ms", "500"),
];

fn stream_config(label: &'static str) -> StreamConfig {
    StreamConfig {
        label,
        chunk: 200,
        producer: STREAM_PRODUCER.to_vec(),
    }
}

/// A single broker (embedded store) whose clients reach it only through a Kafka
/// [`FaultProxy`]: Metadata advertises the proxy, so librdkafka never learns the broker's own
/// port and finds the broker again after a restart on another one.
struct ProxiedNode {
    proxy: FaultProxy,
    broker: Broker,
    _dir: tempfile::TempDir,
}

impl ProxiedNode {
    /// Starts the broker and creates `topic` through the proxy.
    async fn start(topic: &str, partitions: i32) -> ProxiedNode {
        let dir = tempfile::tempdir().unwrap();
        let proxy = FaultProxy::kafka();
        let advertised = proxy.addr.to_string();
        let broker = Broker::start(dir.path(), &["--advertised-address", &advertised]);
        proxy.forward_to(&broker.bootstrap());
        let node = ProxiedNode {
            proxy,
            broker,
            _dir: dir,
        };
        create_topic(&node.bootstrap(), topic, partitions).await;
        node
    }

    fn bootstrap(&self) -> String {
        self.proxy.addr.to_string()
    }

    /// kill -9 and start again on the same data directory; the proxy forwards new
    /// connections to the new port and cuts the old ones.
    fn restart_killed(self) -> ProxiedNode {
        let broker = self.broker.restart_killed();
        self.proxy.forward_to(&broker.bootstrap());
        self.proxy.cut();
        ProxiedNode { broker, ..self }
    }
}

/// Holds back responses on `proxy` until at least one more Produce response was held (the
/// broker committed a batch whose answer the client will never get), then cuts.
fn lose_produce_responses(proxy: &FaultProxy) {
    hold_produce_responses(proxy);
    proxy.cut();
}

/// Holds back responses on `proxy` until at least one more Produce response was held.
fn hold_produce_responses(proxy: &FaultProxy) {
    let before = proxy.held_produce_responses();
    proxy.hold_responses();
    wait_until(HOLD_DEADLINE, "a Produce response to hold back", || {
        proxy.held_produce_responses() > before
    });
}

/// Records acknowledged per partition.
fn counts(landed: &BTreeMap<(i32, i64), Rec>, partitions: i32) -> BTreeMap<i32, i64> {
    let mut counts: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    for (partition, _) in landed.keys() {
        *counts.get_mut(partition).expect("a partition of the topic") += 1;
    }
    counts
}

/// The stream index (`idx` header) and label (`codec` header) of a record of [`Stream`].
fn stream_position(rec: &Rec) -> (String, usize) {
    let header = |name: &str| {
        let (_, value) = rec
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("record has a {name} header"));
        String::from_utf8(value.clone().expect("header value")).unwrap()
    };
    (header("codec"), header("idx").parse().expect("idx header"))
}

/// Checks that the log holds exactly the acknowledged records, each once, and that each
/// stream's records are in its send order within every partition and all there (indices
/// 0..n with nothing missing or repeated).
fn assert_written_once(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    landed: &BTreeMap<(i32, i64), Rec>,
) {
    assert_eq!(
        high_watermarks(bootstrap, topic, partitions),
        counts(landed, partitions),
        "high watermark per partition equals the records acknowledged there: no retried \
         batch was written twice"
    );
    let consumed = consume_all(bootstrap, topic, partitions, landed.len());
    assert_eq!(
        &consumed, landed,
        "the log holds exactly the acknowledged records"
    );
    let mut last: BTreeMap<(String, i32), usize> = BTreeMap::new();
    let mut seen: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for ((partition, offset), rec) in &consumed {
        let (label, idx) = stream_position(rec);
        if let Some(previous) = last.insert((label.clone(), *partition), idx) {
            assert!(
                idx > previous,
                "stream {label}: record {idx} at offset {offset} of partition {partition} \
                 follows record {previous}: out of send order"
            );
        }
        assert!(
            seen.entry(label.clone()).or_default().insert(idx),
            "stream {label}: record {idx} twice"
        );
    }
    for (label, indices) in seen {
        let n = indices.len();
        assert_eq!(
            indices.into_iter().collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>(),
            "stream {label}: every record sent, once"
        );
    }
}

/// Goal: responses lost on the wire: each cut loses answers to Produce requests the broker
/// already committed, librdkafka retries them, and the broker deduplicates the retries: every
/// acknowledged record is in the log exactly once, in send order. Method: a FaultProxy
/// between the producer and the broker holds responses back until at least one Produce
/// response is held, then cuts every connection; five times while the producer streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_are_retried_and_written_once() {
    const PARTITIONS: i32 = 3;
    const CUTS: usize = 5;
    let node = ProxiedNode::start("lost-responses", PARTITIONS).await;
    let (proxy, bootstrap) = (&node.proxy, node.bootstrap());
    let stream = Stream::start_with(bootstrap.clone(), "lost-responses", stream_config("lost"));
    tokio::task::block_in_place(|| {
        stream.wait_progress(500);
        for _ in 0..CUTS {
            lose_produce_responses(proxy);
            stream.wait_progress(500);
        }
    });
    let landed = tokio::task::block_in_place(|| stream.finish());
    assert!(proxy.held_produce_responses() >= CUTS);
    eprintln!(
        "{} records acknowledged; {} Produce responses lost in {CUTS} cuts",
        landed.len(),
        proxy.held_produce_responses()
    );
    tokio::task::block_in_place(|| {
        assert_written_once(&bootstrap, "lost-responses", PARTITIONS, &landed)
    });
}

/// Goal: a broker killed after the commit but before the answer: the restarted broker
/// deduplicates the producer's retries, because producer state is committed with the
/// partition. Method: a single node (embedded store) behind a FaultProxy it advertises, so
/// the client's address survives the restart on a new port. While the producer streams (up
/// to 5 requests in flight), the proxy holds responses until one committed Produce response
/// is held, then the broker is killed with -9 and restarted, the proxy sent to its new port
/// and the held responses dropped; twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_a_kill_are_deduplicated_by_the_restarted_broker() {
    const PARTITIONS: i32 = 2;
    const KILLS: usize = 2;
    let node = ProxiedNode::start("killed", PARTITIONS).await;
    let bootstrap = node.bootstrap();
    let stream = Stream::start_with(bootstrap.clone(), "killed", stream_config("killed"));
    // The closure hands the restarted node back, so it runs until the end of the test.
    let node = tokio::task::block_in_place(|| {
        stream.wait_progress(500);
        let mut node = node;
        for _ in 0..KILLS {
            hold_produce_responses(&node.proxy);
            node = node.restart_killed();
            stream.wait_progress(500);
        }
        node
    });
    let landed = tokio::task::block_in_place(|| stream.finish());
    assert!(node.proxy.held_produce_responses() >= KILLS);
    eprintln!(
        "{} records acknowledged; {} Produce responses lost to {KILLS} kills",
        landed.len(),
        node.proxy.held_produce_responses()
    );
    tokio::task::block_in_place(|| assert_written_once(&bootstrap, "killed", PARTITIONS, &landed));
}

/// Goal: two idempotent producers writing to the same partition at the same time, with
/// responses lost as in `lost_responses_are_retried_and_written_once`: the broker keeps a
/// state per producer id, so each producer's records appear exactly once and in its own send
/// order, interleaved with the other's. Method: two streams with different labels on a
/// one-partition topic; five hold-and-cut rounds while both make progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_producers_on_one_partition_are_deduplicated_separately() {
    const CUTS: usize = 5;
    let node = ProxiedNode::start("shared-partition", 1).await;
    let (proxy, bootstrap) = (&node.proxy, node.bootstrap());
    let first = Stream::start_with(bootstrap.clone(), "shared-partition", stream_config("one"));
    let second = Stream::start_with(bootstrap.clone(), "shared-partition", stream_config("two"));
    tokio::task::block_in_place(|| {
        first.wait_progress(500);
        second.wait_progress(500);
        for _ in 0..CUTS {
            lose_produce_responses(proxy);
            first.wait_progress(300);
            second.wait_progress(300);
        }
    });
    let mut landed = tokio::task::block_in_place(|| first.finish());
    let landed_second = tokio::task::block_in_place(|| second.finish());
    let (n_first, n_second) = (landed.len(), landed_second.len());
    for (position, rec) in landed_second {
        assert!(
            landed.insert(position, rec).is_none(),
            "two producers acknowledged at the same offset {position:?}"
        );
    }
    assert!(proxy.held_produce_responses() >= CUTS);
    eprintln!(
        "{n_first} + {n_second} records acknowledged; {} Produce responses lost in {CUTS} cuts",
        proxy.held_produce_responses()
    );
    tokio::task::block_in_place(|| assert_written_once(&bootstrap, "shared-partition", 1, &landed));
}

/// Goal: producer ids from InitProducerId: each producer (or producer restart) without an id
/// gets a new one; a producer with an id and epoch gets the same id and the next epoch
/// (KIP-360); and no id handed out before a broker restart (kill -9 or graceful) is handed
/// out again, since ids are reserved in blocks in the metadata store. Method: raw
/// InitProducerId v4 requests to a single node.
#[test]
fn producer_ids_are_new_per_producer_and_never_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut handed_out = BTreeSet::new();
    let mut conn = connect(&broker);
    let (first, first_epoch) = init_producer_id(&mut conn, 1, None);
    let (second, second_epoch) = init_producer_id(&mut conn, 2, None);
    assert_eq!(
        (first_epoch, second_epoch),
        (0, 0),
        "a new id starts at epoch 0"
    );
    assert_ne!(first, second, "a restarted producer gets a new id");
    handed_out.extend([first, second]);
    assert_eq!(
        init_producer_id(&mut conn, 3, Some((first, 0))),
        (first, 1),
        "KIP-360: same id, next epoch"
    );
    assert_eq!(
        init_producer_id(&mut conn, 4, Some((first, 1))),
        (first, 2),
        "KIP-360: same id, next epoch"
    );
    drop(conn);

    let broker = broker.restart_killed();
    let mut conn = connect(&broker);
    for correlation_id in 1..=3 {
        let (id, epoch) = init_producer_id(&mut conn, correlation_id, None);
        assert_eq!(epoch, 0);
        assert!(
            handed_out.insert(id),
            "producer id {id} handed out again after kill -9 (before: {handed_out:?})"
        );
    }
    drop(conn);

    let broker = broker.restart_graceful();
    let mut conn = connect(&broker);
    let (id, _) = init_producer_id(&mut conn, 1, None);
    assert!(
        handed_out.insert(id),
        "producer id {id} handed out again after a graceful restart (before: {handed_out:?})"
    );
    drop(conn);
    broker.stop();
}

/// Goal: brokers of a cluster reserve disjoint blocks of producer ids, also for a broker that
/// replaces a killed one: no id is ever handed out twice. Method: raw InitProducerId to each
/// of two brokers on one etcd, then to a third started after one was killed.
#[test]
fn producer_ids_are_unique_across_brokers() {
    let mut cluster = Cluster::start(2, "/strato/idempotence-ids");
    let mut handed_out = BTreeSet::new();
    let mut ask = |broker: &Broker, n: i32| {
        let mut conn = connect(broker);
        for correlation_id in 1..=n {
            let (id, _) = init_producer_id(&mut conn, correlation_id, None);
            assert!(handed_out.insert(id), "producer id {id} handed out twice");
        }
    };
    ask(&cluster.brokers[&0], 3);
    ask(&cluster.brokers[&1], 3);
    ask(&cluster.brokers[&0], 2);
    cluster.take(0).kill();
    let slot = cluster.add();
    ask(&cluster.brokers[&slot], 3);
    ask(&cluster.brokers[&1], 2);
}

/// Goal: failover: the new leader deduplicates retries of batches the old leader committed.
/// Method: three brokers (etcd), each behind a FaultProxy it advertises; an idempotent
/// producer streams to 30 partitions. Responses are lost on every proxy (hold, cut) twice;
/// then the proxy of broker 1 holds responses until one committed Produce response is held
/// and broker 1 is killed with -9, so the producer retries those batches against whichever
/// broker takes the partitions over; after the failover responses are lost twice more. The
/// log must hold every acknowledged record exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_leader_deduplicates_retries_of_batches_the_old_one_committed() {
    const PARTITIONS: i32 = 30;
    let mut cluster = Cluster::start(0, "/strato/idempotence-failover");
    let mut proxies = BTreeMap::new();
    for _ in 0..3 {
        let proxy = FaultProxy::kafka();
        let advertised = proxy.addr.to_string();
        let slot = cluster.add_with(&["--advertised-address", &advertised]);
        proxy.forward_to(&cluster.brokers[&slot].bootstrap());
        proxies.insert(slot, proxy);
    }
    let bootstrap = |proxies: &BTreeMap<usize, FaultProxy>| {
        proxies
            .values()
            .map(|p| p.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    create_topic(&bootstrap(&proxies), "failover", PARTITIONS).await;
    tokio::task::block_in_place(|| cluster.wait_balanced(PARTITIONS as u64));
    let stream = Stream::start_with(bootstrap(&proxies), "failover", stream_config("failover"));
    // One proxy at a time: while one holds responses, the producer's other requests go on,
    // so its current records complete and later ones reach the holding proxy too (every
    // broker leads some partitions). Holding on all at once could stall a producer that
    // waits on one proxy's held answers while another has nothing left to answer.
    let lose_everywhere = |proxies: &BTreeMap<usize, FaultProxy>| {
        for proxy in proxies.values() {
            lose_produce_responses(proxy);
        }
    };
    tokio::task::block_in_place(|| {
        stream.wait_progress(1_000);
        for _ in 0..2 {
            lose_everywhere(&proxies);
            stream.wait_progress(1_000);
        }
    });
    let victim = proxies.remove(&1).expect("broker 1's proxy");
    tokio::task::block_in_place(|| {
        hold_produce_responses(&victim);
        cluster.take(1).kill();
        victim.cut();
        cluster.wait_balanced(PARTITIONS as u64);
        stream.wait_progress(1_000);
        for _ in 0..2 {
            lose_everywhere(&proxies);
            stream.wait_progress(1_000);
        }
    });
    let landed = tokio::task::block_in_place(|| stream.finish());
    let lost: usize = proxies
        .values()
        .chain([&victim])
        .map(FaultProxy::held_produce_responses)
        .sum();
    eprintln!(
        "{} records acknowledged; {lost} Produce responses lost, {} of them to the kill",
        landed.len(),
        victim.held_produce_responses()
    );
    tokio::task::block_in_place(|| {
        assert_written_once(&bootstrap(&proxies), "failover", PARTITIONS, &landed)
    });
}
