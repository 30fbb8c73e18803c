//! Chaos scenarios (issue 7): brokers of a cluster are killed, restarted, added and stopped
//! at random points of a producer stream, chosen by a seeded PRNG, while a consumer group
//! reads the topic, and compaction and garbage collection run all along; afterwards the
//! invariants of docs/DESIGN.md hold. `STRATO_CHAOS_SEED`
//! replays a run (the seed is printed at the start and in every failure),
//! `STRATO_CHAOS_STEPS` and `STRATO_CHAOS_SECONDS` make it longer.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Stream};
use common::group::{Member, committed_with};
use common::kafka::{self, Rec, consume_all, create_topic, high_watermarks};
use common::wait_until;

/// The seed of the default run (CI). Any other seed is a different, equally valid run.
const SEED_DEFAULT: u64 = 7;
/// Actions of the default run: with the failovers they cause it stays near a minute on a
/// 2-core machine.
const STEPS_DEFAULT: usize = 6;
/// No action starts after this much time (`STRATO_CHAOS_SECONDS`); every wait has its own
/// deadline too, so the whole run is bounded.
const CHAOS_SECONDS_DEFAULT: u64 = 60;

/// Compaction (in small frames) and garbage collection run all along, so their swaps and
/// deletions meet the kills and leadership moves too. The grace period stays well above
/// any flush's upload-to-commit time on a loaded 2-core machine.
const BROKER_ARGS: &[&str] = &[
    "--compaction-interval-ms",
    "300",
    "--compaction-frame-bytes",
    "4096",
    "--gc-interval-ms",
    "500",
    "--gc-grace-ms",
    "10000",
];

const TOPIC: &str = "chaos";
const GROUP: &str = "chaos-group";
/// Partitions of the topic: with up to four brokers, the chance that rendezvous hashing
/// leaves one of them without a partition (`wait_balanced` needs each to lead one) is
/// 4 * (3/4)^30 ≈ 7e-4.
const PARTITIONS: i32 = 30;
const GROUP_MEMBERS: usize = 2;
const BROKERS_START: usize = 3;
const BROKERS_MIN: usize = 2;
const BROKERS_MAX: usize = 4;
/// Acknowledged records waited for between two actions: [min, max).
const PROGRESS_MIN: usize = 200;
const PROGRESS_MAX: usize = 2_000;
/// Time for the group to consume and commit what was produced, after the last failover.
const GROUP_DEADLINE: Duration = Duration::from_secs(60);
/// Lines of each broker's log in a failure report.
const LOG_TAIL_LINES: usize = 25;
/// Differences listed when the records read back differ from the acknowledged ones.
const DIFFERENCES_SHOWN: usize = 10;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny and good enough to pick actions; the same seed
/// gives the same choices.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[lo, hi)` (the modulo bias is irrelevant for these small ranges).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        assert!(lo < hi, "empty range");
        let width = u64::try_from(hi - lo).expect("range fits u64");
        lo + usize::try_from(self.next_u64() % width).expect("below the width")
    }

    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.range(0, choices.len())]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// kill -9 a broker and start a replacement (a new slot).
    KillAndReplace,
    /// SIGTERM a broker, wait for its clean exit, start it again.
    RestartGraceful,
    /// kill -9 a broker and start it again at once.
    RestartKilled,
    /// One more broker (up to `BROKERS_MAX`).
    Add,
    /// SIGTERM a broker for good (down to `BROKERS_MIN`).
    Stop,
}

/// One chaos run: the cluster, which brokers the clients can bootstrap from, what was done
/// and when, and the log of every broker process started (the report of a failure).
struct Run {
    seed: u64,
    started: Instant,
    cluster: Cluster,
    /// Slots whose current address is in the clients' `bootstrap.servers`.
    ///
    /// Restarted and new brokers listen on new ports, so clients learn them only from
    /// Metadata. Clients always keep their bootstrap brokers and librdkafka refreshes
    /// Metadata through any broker it knows, so as long as one bootstrap broker lives the
    /// clients can find every other broker. The runner therefore never takes down the last
    /// live bootstrap broker (it is the only one the scenario cannot pick); every other
    /// broker, the first ones included, is fair game until then. Waiting for clients to
    /// have learned new addresses would need a view into librdkafka's broker list.
    bootstrap_slots: BTreeSet<usize>,
    actions: Vec<String>,
    logs: Vec<(String, Arc<Mutex<Vec<String>>>)>,
}

impl Run {
    fn start(seed: u64) -> Run {
        let cluster = Cluster::start_with(BROKERS_START, "/strato/chaos", BROKER_ARGS);
        let mut run = Run {
            seed,
            started: Instant::now(),
            bootstrap_slots: cluster.brokers.keys().copied().collect(),
            cluster,
            actions: Vec::new(),
            logs: Vec::new(),
        };
        let slots: Vec<usize> = run.cluster.brokers.keys().copied().collect();
        for slot in slots {
            run.track_log(slot);
        }
        run
    }

    fn note(&mut self, what: String) {
        let line = format!("[{:6.1} s] {what}", self.started.elapsed().as_secs_f64());
        eprintln!("chaos: {line}");
        self.actions.push(line);
    }

    /// Keeps the log of the process now in `slot`, for the report and the panic check.
    fn track_log(&mut self, slot: usize) {
        let broker = &self.cluster.brokers[&slot];
        let label = format!("broker slot {slot}, pid {}, {}", broker.pid(), broker.addr);
        self.logs.push((label, broker.log_lines()));
    }

    /// Brokers an action may take down: all but the last live bootstrap broker.
    fn victims(&self) -> Vec<usize> {
        let live_bootstrap: Vec<usize> = self
            .bootstrap_slots
            .iter()
            .copied()
            .filter(|slot| self.cluster.brokers.contains_key(slot))
            .collect();
        self.cluster
            .brokers
            .keys()
            .copied()
            .filter(|slot| live_bootstrap.len() > 1 || !live_bootstrap.contains(slot))
            .collect()
    }

    fn choose(&self, rng: &mut SplitMix64) -> Action {
        let n = self.cluster.brokers.len();
        let mut allowed = vec![
            Action::KillAndReplace,
            Action::RestartGraceful,
            Action::RestartKilled,
        ];
        if n < BROKERS_MAX {
            allowed.push(Action::Add);
        }
        if n > BROKERS_MIN {
            allowed.push(Action::Stop);
        }
        rng.pick(&allowed)
    }

    fn apply(&mut self, step: usize, action: Action, rng: &mut SplitMix64) {
        if action == Action::Add {
            let slot = self.cluster.add();
            self.track_log(slot);
            let addr = self.cluster.brokers[&slot].addr;
            self.note(format!("step {step}: added broker slot {slot} on {addr}"));
            return;
        }
        let victim = rng.pick(&self.victims());
        // Whatever happens to it, the victim's address is gone from then on.
        self.bootstrap_slots.remove(&victim);
        let broker = self.cluster.take(victim);
        let old = format!("slot {victim} (pid {}, {})", broker.pid(), broker.addr);
        self.note(format!("step {step}: {action:?} broker {old}"));
        let outcome = match action {
            Action::KillAndReplace => {
                broker.kill();
                let slot = self.cluster.add();
                self.track_log(slot);
                format!(
                    "replacement slot {slot} on {}",
                    self.cluster.brokers[&slot].addr
                )
            }
            Action::RestartGraceful => {
                let restarted = broker.restart_graceful();
                self.cluster.brokers.insert(victim, restarted);
                self.track_log(victim);
                format!("back on {}", self.cluster.brokers[&victim].addr)
            }
            Action::RestartKilled => {
                let restarted = broker.restart_killed();
                self.cluster.brokers.insert(victim, restarted);
                self.track_log(victim);
                format!("back on {}", self.cluster.brokers[&victim].addr)
            }
            Action::Stop => {
                broker.stop();
                "stopped".to_string()
            }
            Action::Add => unreachable!("handled above"),
        };
        self.note(format!("step {step}: {action:?} done: {outcome}"));
    }

    /// The seed, the actions and the tail of every broker's log.
    fn report(&self) -> String {
        let mut out = format!(
            "chaos seed {} (rerun with STRATO_CHAOS_SEED={})\nactions:\n",
            self.seed, self.seed
        );
        for line in &self.actions {
            out.push_str(&format!("  {line}\n"));
        }
        for (label, log) in &self.logs {
            let log = log.lock().unwrap();
            let tail = &log[log.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!(
                "--- {label}: last {} of {} log lines\n",
                tail.len(),
                log.len()
            ));
            for line in tail {
                out.push_str(&format!("{line}\n"));
            }
        }
        out
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number")),
        Err(_) => default,
    }
}

/// Goal: no acknowledged record is lost or duplicated, no committed group offset points
/// past what the group consumed, and no broker crashes, whatever sequence of broker kills,
/// restarts, additions and removals happens under load (docs/DESIGN.md invariants 1-3, and 5
/// for crashes). Method: three brokers on one etcd and object store; an idempotent
/// producer streams and a two-member group consumes throughout. Each step waits for a
/// random amount of producer progress, then applies a random action to a random broker,
/// all drawn from the seed. At the end leadership settles and the whole topic, the group's
/// committed offsets and the broker processes and logs are checked.
#[test]
fn random_broker_failures_keep_the_invariants() {
    let seed = env_number("STRATO_CHAOS_SEED", SEED_DEFAULT);
    let steps = env_number("STRATO_CHAOS_STEPS", STEPS_DEFAULT);
    let seconds = env_number("STRATO_CHAOS_SECONDS", CHAOS_SECONDS_DEFAULT);
    eprintln!("chaos seed {seed}, {steps} steps, actions start within {seconds} s");
    let mut run = Run::start(seed);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        scenario(&mut run, steps, Duration::from_secs(seconds));
    }));
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(not a string)");
        panic!(
            "chaos run with seed {seed} failed: {message}\n{}",
            run.report()
        );
    }
}

fn scenario(run: &mut Run, steps: usize, chaos_time: Duration) {
    let bootstrap = run.cluster.bootstrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(create_topic(&bootstrap, TOPIC, PARTITIONS));
    run.cluster.wait_balanced(PARTITIONS as u64);
    // Declared after the cluster's brokers started and dropped before them: on a failure the
    // threads stop while the brokers still answer.
    let stream = Stream::start(bootstrap.clone(), TOPIC);
    let members: Vec<Member> = (0..GROUP_MEMBERS)
        .map(|_| Member::start(&bootstrap, TOPIC, GROUP, &[]))
        .collect();
    run.note(format!(
        "producer and {GROUP_MEMBERS} group members started on {bootstrap}"
    ));

    let mut rng = SplitMix64(run.seed);
    for step in 1..=steps {
        if run.started.elapsed() >= chaos_time {
            run.note(format!(
                "chaos time is up after {} of {steps} steps",
                step - 1
            ));
            break;
        }
        let progress = rng.range(PROGRESS_MIN, PROGRESS_MAX);
        stream.wait_progress(progress);
        let action = run.choose(&mut rng);
        run.note(format!(
            "step {step}: {} records acknowledged (waited for {progress} more)",
            stream.acknowledged()
        ));
        run.apply(step, action, &mut rng);
    }
    // The stream goes on after the last action, through its failover if any.
    stream.wait_progress(PROGRESS_MIN);
    let landed = stream.finish();
    run.note(format!(
        "producer finished: {} records acknowledged",
        landed.len()
    ));
    run.cluster.wait_balanced(PARTITIONS as u64);
    run.note(format!("leadership settled: {:?}", run.cluster.led()));
    // Compaction catches up after the chaos; the log is then read through its output.
    let total = |run: &Run, series: &str| -> f64 {
        run.cluster.brokers.values().map(|b| b.metric(series)).sum()
    };
    wait_until(GROUP_DEADLINE, "compaction to catch up", || {
        total(run, "strato_compaction_backlog_entries") == 0.0
    });
    run.note(format!(
        "compaction caught up: {} index entries, {} chunks merged by the live brokers",
        total(run, "strato_index_entries"),
        total(run, "strato_compacted_chunks_total"),
    ));

    let log_end = check_log(run, &landed);
    check_group(run, members, &log_end);
    check_brokers(run);
}

/// Invariants 1 and 2: the topic holds exactly the acknowledged records, each where its
/// acknowledgement said, offsets dense from 0 in every partition (`consume_all` asserts
/// the order); no partition has records past them. Returns the log end of each partition.
fn check_log(run: &mut Run, landed: &BTreeMap<(i32, i64), Rec>) -> BTreeMap<i32, i64> {
    let bootstrap = run.cluster.bootstrap();
    let consumed = consume_all(&bootstrap, TOPIC, PARTITIONS, landed.len());
    let differences = record_differences(landed, &consumed);
    assert!(
        differences.is_empty(),
        "the topic holds exactly the acknowledged records; first differences:\n{}",
        differences.join("\n")
    );
    let mut log_end: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    for (p, offset) in landed.keys() {
        let end = log_end.get_mut(p).expect("a partition of the topic");
        *end = (*end).max(offset + 1);
    }
    let watermarks = high_watermarks(&bootstrap, TOPIC, PARTITIONS);
    assert_eq!(
        watermarks, log_end,
        "each partition ends right after its last acknowledged record (nothing unacknowledged)"
    );
    run.note(format!(
        "log checked: {} records in {PARTITIONS} partitions",
        landed.len()
    ));
    log_end
}

/// Where `actual` differs from `expected`, at most `DIFFERENCES_SHOWN` lines.
fn record_differences(
    expected: &BTreeMap<(i32, i64), Rec>,
    actual: &BTreeMap<(i32, i64), Rec>,
) -> Vec<String> {
    let keys: BTreeSet<&(i32, i64)> = expected.keys().chain(actual.keys()).collect();
    keys.into_iter()
        .filter_map(|key| match (expected.get(key), actual.get(key)) {
            (Some(_), None) => Some(format!("{key:?}: acknowledged, not in the log")),
            (None, Some(_)) => Some(format!("{key:?}: in the log, never acknowledged")),
            (Some(e), Some(a)) if e != a => Some(format!(
                "{key:?}: acknowledged {:?}, the log has {:?}",
                e.headers, a.headers
            )),
            _ => None,
        })
        .take(DIFFERENCES_SHOWN)
        .collect()
}

/// Invariant 1 for the group: its committed offsets never point past the log end or past a
/// record no member received (a committed offset below which a record was never consumed
/// means that record is lost to the group). The group also keeps going through the
/// failures: it consumes every record and commits its position at the log end.
fn check_group(run: &mut Run, members: Vec<Member>, log_end: &BTreeMap<i32, i64>) {
    let bootstrap = run.cluster.bootstrap();
    let expected: BTreeSet<(i32, i64)> = log_end
        .iter()
        .flat_map(|(p, end)| (0..*end).map(move |o| (*p, o)))
        .collect();
    let received = |members: &[Member]| -> BTreeSet<(i32, i64)> {
        members.iter().flat_map(Member::records).collect()
    };
    // What the members hold, received and went through, for a failure message.
    let group_report = |members: &[Member], log_end: &BTreeMap<i32, i64>| -> String {
        let received = received(members);
        let short: Vec<String> = log_end
            .iter()
            .filter_map(|(p, end)| {
                let got = received.iter().filter(|(rp, _)| rp == p).count() as i64;
                (got < *end).then(|| format!("p{p}: {got} of {end}"))
            })
            .collect();
        let mut text = format!("partitions not fully received: {short:?}\n");
        for (i, m) in members.iter().enumerate() {
            let rebalances = m.rebalances();
            let last: Vec<_> = rebalances.iter().rev().take(4).collect();
            text.push_str(&format!(
                "member {i}: assignment {:?}; {} rebalances, last (newest first) {last:?}\n",
                m.assignment(),
                rebalances.len()
            ));
            for p in m.assignment() {
                let end = log_end.get(&p).copied().unwrap_or(0);
                let got = received.iter().filter(|(rp, _)| *rp == p).count() as i64;
                if got < end {
                    text.push_str(&format!(
                        "  p{p} as librdkafka sees it: {}\n",
                        m.partition_stats(p).unwrap_or_default()
                    ));
                }
            }
        }
        text
    };
    let end = Instant::now() + GROUP_DEADLINE;
    while !received(&members).is_superset(&expected) {
        assert!(
            Instant::now() < end,
            "timed out waiting for the group to consume every record\n{}",
            group_report(&members, log_end)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let reader = kafka::consumer(&bootstrap, &[("group.id", GROUP)]);
    let commit_end = Instant::now() + GROUP_DEADLINE;
    let committed = loop {
        let committed = committed_with(&reader, TOPIC, PARTITIONS);
        for (p, offset) in &committed {
            assert!(
                *offset <= log_end[p],
                "partition {p}: committed offset {offset} is past the log end {}",
                log_end[p]
            );
        }
        // A partition without records has no committed offset (-1).
        let behind: Vec<String> = committed
            .iter()
            .filter(|(p, offset)| **offset != log_end[p] && !(**offset == -1 && log_end[p] == 0))
            .map(|(p, offset)| format!("p{p}: {offset} of {}", log_end[p]))
            .collect();
        if behind.is_empty() {
            break committed;
        }
        assert!(
            Instant::now() < commit_end,
            "timed out waiting for the group to commit the log end of every partition; \
             behind: {behind:?}\n{}",
            group_report(&members, log_end)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(reader);
    let received = received(&members);
    for (p, offset) in &committed {
        let missed: Vec<i64> = (0..*offset)
            .filter(|o| !received.contains(&(*p, *o)))
            .take(DIFFERENCES_SHOWN)
            .collect();
        assert!(
            missed.is_empty(),
            "partition {p}: committed offset {offset}, but no member received offsets {missed:?}"
        );
    }
    let deliveries: usize = members.iter().map(|m| m.records().len()).sum();
    for member in members {
        member.close();
    }
    run.note(format!(
        "group checked: {} records received {deliveries} times, committed at the log end",
        expected.len()
    ));
}

/// Invariants 5 (and the absence of crashes): every broker still in the cluster runs, and
/// no broker process ever started logged a panic.
fn check_brokers(run: &mut Run) {
    for (slot, broker) in run.cluster.brokers.iter_mut() {
        assert!(broker.is_running(), "broker slot {slot} is not running");
    }
    for (label, log) in &run.logs {
        let log = log.lock().unwrap();
        let panics: Vec<&String> = log.iter().filter(|l| l.contains("panicked")).collect();
        assert!(panics.is_empty(), "{label} panicked: {panics:?}");
    }
    run.note(format!(
        "brokers checked: {} running, {} processes started, no panic",
        run.cluster.brokers.len(),
        run.logs.len()
    ));
}
