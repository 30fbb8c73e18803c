//! Consumer group members for tests: a librdkafka consumer that subscribes with a
//! `group.id` and polls on its own thread, recording what it received and its rebalances,
//! and the group's committed offsets read back with OffsetFetch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::kafka::consumer;

/// What a consumer thread observed.
#[derive(Default)]
struct Observed {
    /// (partition, offset) of every record received, in order.
    records: Vec<(i32, i64)>,
    /// Partitions currently assigned.
    assignment: BTreeSet<i32>,
    /// Rebalance callbacks: ("assign" | "revoke", partitions).
    rebalances: Vec<(&'static str, Vec<i32>)>,
    /// Errors `poll` returned (librdkafka goes on polling after each).
    errors: Vec<rdkafka::error::KafkaError>,
    /// librdkafka's latest view of each partition of the topic it consumes (its statistics,
    /// emitted every second): where it fetches from and at which offsets, for a report.
    partitions: BTreeMap<i32, String>,
}

struct RecordingContext {
    observed: Arc<Mutex<Observed>>,
    /// The member uses the cooperative protocol: a callback's partitions are added to or
    /// taken from the assignment instead of replacing it. Known from the member's config:
    /// `consumer.rebalance_protocol()` is a request to librdkafka's group thread too, and
    /// after the close's last assignment it can wait forever (seen: 1 close in 25 hung).
    cooperative: bool,
}

impl ClientContext for RecordingContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut observed = self.observed.lock().unwrap();
        for topic in statistics.topics.values() {
            for (p, s) in &topic.partitions {
                if *p < 0 {
                    continue; // librdkafka's internal UA partition
                }
                let line = format!(
                    "leader {} broker {} {} next {} app {} committed {} hi {} fetchq {} rx {}",
                    s.leader,
                    s.broker,
                    s.fetch_state,
                    s.next_offset,
                    s.app_offset,
                    s.committed_offset,
                    s.hi_offset,
                    s.fetchq_cnt,
                    s.rxmsgs
                );
                observed.partitions.insert(*p, line);
            }
        }
    }
}

impl ConsumerContext for RecordingContext {
    // The assignment is derived from the callback's own list, never asked of librdkafka
    // (`consumer.assignment()` waits without a deadline for librdkafka's group thread, which
    // during a close may never answer) and never with `observed` locked across a call into
    // librdkafka: the test thread reads `observed` and must not be blocked by the client.
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |tpl: &TopicPartitionList| -> Vec<i32> {
            tpl.elements().iter().map(|e| e.partition()).collect()
        };
        let mut observed = self.observed.lock().unwrap();
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned = partitions(tpl);
                if !self.cooperative {
                    observed.assignment.clear();
                }
                observed.assignment.extend(assigned.iter().copied());
                observed.rebalances.push(("assign", assigned));
            }
            Rebalance::Revoke(tpl) => {
                let revoked = partitions(tpl);
                if self.cooperative {
                    for p in &revoked {
                        observed.assignment.remove(p);
                    }
                } else {
                    observed.assignment.clear();
                }
                observed.rebalances.push(("revoke", revoked));
            }
            Rebalance::Error(_) => {}
        }
    }
}

/// A group member polling on its own thread until stopped (then it closes, committing and
/// leaving the group as librdkafka does on close).
pub struct Member {
    observed: Arc<Mutex<Observed>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    pub fn start(bootstrap: &str, topic: &str, group: &str, extra: &[(&str, &str)]) -> Member {
        let observed = Arc::new(Mutex::new(Observed::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "200")
            .set("statistics.interval.ms", "1000");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        let consumer: BaseConsumer<RecordingContext> = config
            .create_with_context(RecordingContext {
                observed: observed.clone(),
                cooperative: extra.iter().any(|(k, v)| {
                    *k == "partition.assignment.strategy" && v.contains("cooperative")
                }),
            })
            .expect("create group consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let thread = {
            let observed = observed.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(msg)) => observed
                            .lock()
                            .unwrap()
                            .records
                            .push((msg.partition(), msg.offset())),
                        Some(Err(err)) => {
                            eprintln!("consumer error (retried): {err}");
                            observed.lock().unwrap().errors.push(err);
                        }
                        None => {}
                    }
                }
                // Commit what was consumed before leaving, as an application would.
                let _ = consumer.commit_consumer_state(CommitMode::Sync);
                drop(consumer);
            })
        };
        Member {
            observed,
            stop,
            thread: Some(thread),
        }
    }

    pub fn assignment(&self) -> BTreeSet<i32> {
        self.observed.lock().unwrap().assignment.clone()
    }

    pub fn records(&self) -> Vec<(i32, i64)> {
        self.observed.lock().unwrap().records.clone()
    }

    pub fn errors(&self) -> Vec<rdkafka::error::KafkaError> {
        self.observed.lock().unwrap().errors.clone()
    }

    /// librdkafka's latest statistics line for partition `p` (leader, fetch state, offsets).
    pub fn partition_stats(&self, p: i32) -> Option<String> {
        self.observed.lock().unwrap().partitions.get(&p).cloned()
    }

    pub fn rebalances(&self) -> Vec<(&'static str, Vec<i32>)> {
        self.observed.lock().unwrap().rebalances.clone()
    }

    /// Stops polling, commits and closes the consumer. A close that does not end within
    /// [`CLOSE_DEADLINE`] (librdkafka's commit or close blocked, e.g. on a rebalance that
    /// waits for a member) fails the test with what the member saw, instead of hanging it.
    pub fn close(mut self) -> Vec<(i32, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let deadline = std::time::Instant::now() + CLOSE_DEADLINE;
            while !thread.is_finished() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the group member did not close within {CLOSE_DEADLINE:?}; assignment {:?}, rebalances {:?}, errors {:?}",
                    self.assignment(),
                    self.rebalances(),
                    self.errors()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            thread.join().expect("consumer thread");
        }
        self.records()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Bounded like `close`: a thread still blocked after that fails the test (and is
            // left behind) rather than hanging it.
            let deadline = std::time::Instant::now() + CLOSE_DEADLINE;
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else if !std::thread::panicking() {
                panic!("a group member did not close within {CLOSE_DEADLINE:?}");
            }
        }
    }
}

/// How long a member's close (final commit, librdkafka's close) may take.
const CLOSE_DEADLINE: Duration = Duration::from_secs(60);

/// The group's committed offsets, read with a group-less consumer (OffsetFetch); -1 where
/// the group committed none.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer = consumer(bootstrap, &[("group.id", group)]);
    committed_with(&consumer, topic, partitions)
}

/// [`committed`] through an existing consumer whose `group.id` is the group (for polling).
pub fn committed_with(consumer: &BaseConsumer, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("fetch committed offsets");
    offsets
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (e.partition(), offset)
        })
        .collect()
}
