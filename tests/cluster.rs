//! Several brokers on one etcd and one object store: partitions are spread over the live
//! brokers, a broker killed mid-stream loses no acknowledged record (its partitions move
//! when its lease expires), a rolling restart and scaling out and in while producing lose
//! nothing, and consumer groups keep consuming.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::kafka::{Rec, consume_all, create_topic, produce_all, producer, record};
use common::{Broker, wait_until};
use strato_metadata::testing::etcd_server::EtcdServer;

/// Time for leadership to settle after a membership change: a dead broker's lease expires
/// within its 10 s TTL, then the others take over within a reconcile pass.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

/// Partitions of every test topic: rendezvous hashing gives each of three brokers a share,
/// and the chance that one of them leads none is 3 * (2/3)^30 ≈ 1.6e-5 per topic.
const PARTITIONS: i32 = 30;

/// Bound of a producer stream (it normally stops much earlier, when told to).
const STREAM_RECORDS_MAX: usize = 200_000;

/// Brokers sharing an etcd prefix and an object store directory, each with its own data
/// directory (cache only).
struct Cluster {
    root: tempfile::TempDir,
    args: Vec<String>,
    brokers: BTreeMap<usize, Broker>,
    next: usize,
    _etcd: EtcdServer,
}

impl Cluster {
    fn start(n: usize, prefix: &str) -> Cluster {
        let etcd = EtcdServer::start();
        let root = tempfile::tempdir().unwrap();
        let objects = format!("file://{}", root.path().join("objects").display());
        let args = vec![
            "--metadata".to_string(),
            etcd.url(prefix),
            "--object-store".to_string(),
            objects,
            "--group-initial-rebalance-delay-ms".to_string(),
            "300".to_string(),
        ];
        let mut cluster = Cluster {
            root,
            args,
            brokers: BTreeMap::new(),
            next: 0,
            _etcd: etcd,
        };
        for _ in 0..n {
            cluster.add();
        }
        cluster
    }

    /// Starts one more broker; returns its slot.
    fn add(&mut self) -> usize {
        let slot = self.next;
        self.next += 1;
        let dir = self.root.path().join(format!("broker-{slot}"));
        std::fs::create_dir_all(&dir).unwrap();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.brokers
            .insert(slot, Broker::start(Path::new(&dir), &args));
        slot
    }

    fn bootstrap(&self) -> String {
        self.brokers
            .values()
            .map(Broker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn take(&mut self, slot: usize) -> Broker {
        self.brokers.remove(&slot).expect("broker slot")
    }

    /// Partitions each running broker leads, by slot.
    fn led(&self) -> BTreeMap<usize, u64> {
        self.brokers
            .iter()
            .map(|(slot, b)| (*slot, b.metric("strato_partitions{state=\"led\"}") as u64))
            .collect()
    }

    /// Waits until the running brokers lead `partitions` partitions between them, each at
    /// least one.
    fn wait_balanced(&self, partitions: u64) {
        wait_until(SETTLE_DEADLINE, "leadership to settle", || {
            let led = self.led();
            led.values().sum::<u64>() == partitions && led.values().all(|n| *n > 0)
        });
    }
}

/// An idempotent producer streaming to `topic` on a background thread (its own runtime)
/// until stopped; yields what was acknowledged where.
struct Stream {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<BTreeMap<(i32, i64), Rec>>,
}

impl Stream {
    fn start(bootstrap: String, topic: &'static str) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = stop.clone();
            let acknowledged = acknowledged.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let p = producer(
                        &bootstrap,
                        &[
                            ("enable.idempotence", "true"),
                            ("message.timeout.ms", "120000"),
                        ],
                    );
                    let mut landed = BTreeMap::new();
                    // Small sends, so the stream goes on while brokers come and go.
                    let mut next = 0;
                    while !stop.load(Ordering::Relaxed) && next < STREAM_RECORDS_MAX {
                        let chunk: Vec<Rec> =
                            (next..next + 100).map(|i| record("lz4", i)).collect();
                        next += chunk.len();
                        landed.extend(produce_all(&p, topic, &chunk).await);
                        acknowledged.store(landed.len(), Ordering::Relaxed);
                    }
                    landed
                })
            })
        };
        Stream {
            stop,
            acknowledged,
            thread,
        }
    }

    /// Waits until `more` records beyond those acknowledged so far are acknowledged.
    fn wait_progress(&self, more: usize) {
        let target = self.acknowledged.load(Ordering::Relaxed) + more;
        wait_until(SETTLE_DEADLINE, "the producer makes progress", || {
            self.acknowledged.load(Ordering::Relaxed) >= target
        });
    }

    fn finish(self) -> BTreeMap<(i32, i64), Rec> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("producer thread")
    }
}

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
