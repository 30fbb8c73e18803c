//! The elasticity scenario (issue 23), shared by `tests/elasticity.rs` (which asserts what
//! must hold) and `benches/elasticity.rs` (which reports the timings): a steady idempotent
//! producer and a consumer group member run while the cluster goes 1 → 4 → 1 brokers by
//! planned moves (a broker started, a broker stopped with SIGTERM), then grows to 2 and
//! loses one by kill -9. Each step reports how long leadership took to settle, where the
//! partitions ended up, and the acknowledgement latency of the records sent meanwhile: a
//! record sent while its partition moves waits for the move, so the largest latency of a
//! step bounds how long a partition was unavailable to the producer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};

use super::cluster::{Cluster, SETTLE_DEADLINE};
use super::group::Member;
use super::kafka::{create_topic, is_transient, producer};
use super::wait_until;

/// What a run of the scenario is made of.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub topic: &'static str,
    pub partitions: i32,
    /// Records sent per second, spread over the partitions by key.
    pub rate: u32,
    pub value_bytes: usize,
    /// How long the stream runs between steps (steady state after a step settled).
    pub dwell: Duration,
    /// Largest number of brokers of the scale-out.
    pub peak: usize,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            topic: "elastic",
            partitions: 12,
            rate: 1_000,
            value_bytes: 512,
            dwell: Duration::from_secs(2),
            peak: 4,
        }
    }
}

/// One membership change and what it cost.
#[derive(Debug, Clone)]
pub struct Step {
    /// e.g. "1 -> 2 (start)", "4 -> 3 (SIGTERM)", "2 -> 1 (kill -9)".
    pub name: String,
    /// Partitions each running broker leads once settled, by slot.
    pub led: BTreeMap<usize, u64>,
    /// From the change (process started or signalled) to every partition led by the
    /// brokers that remain, spread within one of even.
    pub settled_after: Duration,
    /// Acknowledgement latency of the records answered from this change until the next one
    /// (a dwell after this one settled).
    pub records: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Everything a run observed.
pub struct Outcome {
    pub steps: Vec<Step>,
    /// (partition, offset) -> record index, of every acknowledged record.
    pub acknowledged: BTreeMap<(i32, i64), usize>,
    /// Records the producer gave up on, with librdkafka's error (none should be).
    pub failed: Vec<String>,
    /// Errors the group member's poll surfaced, and whether librdkafka recovers from them
    /// by itself.
    pub consumer_errors: Vec<(String, bool)>,
    /// (partition, offset) of every record the group member received.
    pub consumed: Vec<(i32, i64)>,
    /// Latency over the whole run, for comparison with the steps.
    pub steady_p99: Duration,
}

/// One acknowledged (or failed) record: when it was sent and when the answer came.
struct Sent {
    index: usize,
    at: Instant,
    answered: Instant,
    result: Result<(i32, i64), String>,
}

/// The paced producer: `rate` records per second until stopped.
struct Pacer {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Vec<Sent>>>,
}

impl Pacer {
    fn start(bootstrap: String, scenario: &Scenario) -> Pacer {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let topic = scenario.topic;
        let rate = scenario.rate.max(100);
        let value_bytes = scenario.value_bytes;
        let thread = {
            let stop = stop.clone();
            let sent = sent.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let p: FutureProducer = producer(
                        &bootstrap,
                        &[
                            ("enable.idempotence", "true"),
                            ("message.timeout.ms", "120000"),
                        ],
                    );
                    let answers = Arc::new(Mutex::new(Vec::new()));
                    let mut pending = Vec::new();
                    // Ticks of 10 ms, rate / 100 records each.
                    let per_tick = (rate / 100) as usize;
                    let mut tick = tokio::time::interval(Duration::from_millis(10));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    let mut index = 0usize;
                    let value = vec![b'v'; value_bytes];
                    while !stop.load(Ordering::Relaxed) {
                        tick.tick().await;
                        for _ in 0..per_tick {
                            let key = format!("key-{index}");
                            let record: FutureRecord<'_, String, Vec<u8>> =
                                FutureRecord::to(topic).key(&key).payload(&value);
                            let at = Instant::now();
                            let future = p
                                .send_result(record)
                                .map_err(|(err, _)| err)
                                .expect("enqueue record (queue bounded by librdkafka)");
                            let answers = answers.clone();
                            let this = index;
                            pending.push(tokio::spawn(async move {
                                let result = match future.await {
                                    Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
                                    Ok(Err((err, _))) => Err(err.to_string()),
                                    Err(_) => Err("delivery future cancelled".to_string()),
                                };
                                answers.lock().unwrap().push(Sent {
                                    index: this,
                                    at,
                                    answered: Instant::now(),
                                    result,
                                });
                            }));
                            index += 1;
                            sent.store(index, Ordering::Relaxed);
                        }
                        pending.retain(|task| !task.is_finished());
                    }
                    for task in pending {
                        let _ = task.await;
                    }
                    std::mem::take(&mut *answers.lock().unwrap())
                })
            })
        };
        Pacer {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    fn finish(mut self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("pacer running")
            .join()
            .expect("pacer thread")
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether every running broker leads its share of `partitions`, within one of even.
pub fn balanced(led: &BTreeMap<usize, u64>, partitions: u64) -> bool {
    let n = led.len() as u64;
    n > 0
        && led.values().sum::<u64>() == partitions
        && led
            .values()
            .all(|c| *c == partitions / n || *c == partitions / n + 1)
}

/// Runs the scenario on a cluster of its own (etcd started here, objects in a temporary
/// directory) with extra `serve` flags for every broker.
pub fn run(scenario: &Scenario, prefix: &str, serve_args: &[&str]) -> Outcome {
    let mut cluster = Cluster::start_with(1, prefix, serve_args);
    // The first broker stays to the end: the clients' bootstrap address.
    let first = cluster.brokers[&0].bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&first, scenario.topic, scenario.partitions));
    let partitions = scenario.partitions as u64;
    let settle = |cluster: &Cluster| {
        wait_until(SETTLE_DEADLINE, "leadership to settle evenly", || {
            balanced(&cluster.led(), partitions)
        });
    };
    settle(&cluster);
    let member = Member::start(&first, scenario.topic, "elastic-group", &[]);
    let pacer = Pacer::start(first.clone(), scenario);
    let run_started = Instant::now();
    let mut marks: Vec<(String, Instant, Instant, BTreeMap<usize, u64>)> = Vec::new();
    let dwell = |pacer: &Pacer| {
        let target = pacer.sent() + (scenario.rate as f64 * scenario.dwell.as_secs_f64()) as usize;
        wait_until(SETTLE_DEADLINE, "the producer sends on", || {
            pacer.sent() >= target
        });
    };
    dwell(&pacer);
    let mut step = |cluster: &mut Cluster, name: String, change: &dyn Fn(&mut Cluster)| {
        let at = Instant::now();
        change(cluster);
        settle(cluster);
        marks.push((name, at, Instant::now(), cluster.led()));
        dwell(&pacer);
    };
    for n in 1..scenario.peak {
        step(&mut cluster, format!("{n} -> {} (start)", n + 1), &|c| {
            c.add();
        });
    }
    for n in (2..=scenario.peak).rev() {
        step(&mut cluster, format!("{n} -> {} (SIGTERM)", n - 1), &|c| {
            let slot = *c.brokers.keys().last().expect("a broker");
            c.take(slot).stop();
        });
    }
    step(&mut cluster, "1 -> 2 (start)".to_string(), &|c| {
        c.add();
    });
    step(&mut cluster, "2 -> 1 (kill -9)".to_string(), &|c| {
        let slot = *c.brokers.keys().last().expect("a broker");
        c.take(slot).kill();
    });
    let answers = pacer.finish();
    // Everything acknowledged reaches the group member (it consumes as it goes).
    let acknowledged: BTreeMap<(i32, i64), usize> = answers
        .iter()
        .filter_map(|s| s.result.as_ref().ok().map(|at| (*at, s.index)))
        .collect();
    wait_until(SETTLE_DEADLINE, "the group member to catch up", || {
        let seen: std::collections::BTreeSet<(i32, i64)> = member.records().into_iter().collect();
        acknowledged.keys().all(|k| seen.contains(k))
    });
    let consumer_errors = member
        .errors()
        .into_iter()
        .map(|err| {
            let transient = is_transient(&err);
            (err.to_string(), transient)
        })
        .collect();
    let consumed = member.close();
    let failed = answers
        .iter()
        .filter_map(|s| s.result.as_ref().err().cloned())
        .collect();
    // A record counts for the step during which its answer came (from that change to the
    // next): a record held up by a change is answered after it, even if it was sent a
    // moment before.
    let latency = |from: Instant, to: Option<Instant>| -> Vec<Duration> {
        let mut l: Vec<Duration> = answers
            .iter()
            .filter(|s| s.answered >= from && to.is_none_or(|to| s.answered < to))
            .map(|s| s.answered - s.at)
            .collect();
        l.sort();
        l
    };
    let pick = |l: &[Duration], p: f64| -> Duration {
        if l.is_empty() {
            Duration::ZERO
        } else {
            l[((l.len() - 1) as f64 * p).round() as usize]
        }
    };
    let next_changes: Vec<Option<Instant>> = marks
        .iter()
        .skip(1)
        .map(|(_, at, _, _)| Some(*at))
        .chain(std::iter::once(None))
        .collect();
    let steps = marks
        .into_iter()
        .zip(next_changes)
        .map(|((name, at, settled, led), next)| {
            let l = latency(at, next);
            Step {
                name,
                led,
                settled_after: settled - at,
                records: l.len(),
                p50: pick(&l, 0.5),
                p99: pick(&l, 0.99),
                max: l.last().copied().unwrap_or_default(),
            }
        })
        .collect();
    let all = latency(run_started, None);
    Outcome {
        steps,
        acknowledged,
        failed,
        consumer_errors,
        consumed,
        steady_p99: pick(&all, 0.99),
    }
}

/// The steps as a Markdown table (docs/BENCHMARKS.md).
pub fn table(outcome: &Outcome) -> String {
    let mut out = String::from(
        "| step | settled after | partitions per broker | records | p50 | p99 | max |\n|---|---|---|---|---|---|---|\n",
    );
    for s in &outcome.steps {
        out.push_str(&format!(
            "| {} | {:.2} s | {:?} | {} | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            s.name,
            s.settled_after.as_secs_f64(),
            s.led.values().collect::<Vec<_>>(),
            s.records,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            s.max.as_secs_f64() * 1e3,
        ));
    }
    out.push_str(&format!(
        "\nwhole run: {} records acknowledged, p99 {:.1} ms\n",
        outcome.acknowledged.len(),
        outcome.steady_p99.as_secs_f64() * 1e3
    ));
    out
}
