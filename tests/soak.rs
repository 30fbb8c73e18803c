//! The soak (issue 24): three brokers on etcd and LocalStack for `STRATO_SOAK_MINUTES`
//! (default 30) with two idempotent producers, a consumer group, retention, key compaction,
//! chunk compaction and garbage collection all running, and a broker restarted every
//! `STRATO_SOAK_RESTART_SECONDS` (default 180; slots 1 and 2 in turn, alternately SIGTERM and
//! kill -9; slot 0 runs throughout, so its memory is watched over the whole run).
//!
//! Afterwards: every acknowledged record of the retained topic that retention has not
//! removed is read back exactly once where its acknowledgement said (and every one
//! acknowledged in the last retention period minus a margin is among them); the compacted
//! topic holds the latest acknowledged value of every key; the group committed the log end;
//! no broker panicked. From samples every `SAMPLE_SECONDS`: no broker's RSS is over its
//! configured memory limits plus a constant ([`MEMORY_BOUND_KIB`]); etcd keys, bucket
//! objects and slot 0's RSS stay flat after the warm-up (the last quarter's mean within a quarter, plus
//! a constant, of the first quarter's), judged when the run is at least
//! [`FLATNESS_MINUTES_MIN`] long. Every sample is printed, for docs/SOAK.md.
//!
//! Not part of the default test command (it is `#[ignore]`d, which nextest reports as
//! skipped): `scripts/soak.sh` runs it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::group::{Member, committed_with};
use common::{s3, wait_until};
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::admin::TopicReplication;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const MINUTES_DEFAULT: u64 = 30;
const RESTART_SECONDS_DEFAULT: u64 = 180;
const SAMPLE_SECONDS: u64 = 20;
/// Runs shorter than this are checked for records but not judged for flatness: the
/// warm-up would leave too few samples.
const FLATNESS_MINUTES_MIN: u64 = 15;

/// The retained topic: every record is checked, retention removes what is older than
/// `RETENTION_MS`.
const LOG_TOPIC: &str = "soak-log";
const LOG_PARTITIONS: i32 = 6;
const LOG_RATE: usize = 250;
const RETENTION_MS: u64 = 300_000;
/// Records acknowledged this long before the end, or later, must all still be there
/// (retention works on whole chunks checked every few seconds, never early).
const RETENTION_MARGIN: Duration = Duration::from_secs(60);
const GROUP: &str = "soak-group";
const GROUP_MEMBERS: usize = 2;

/// The compacted topic: `KEYS` keys overwritten over and over.
const COMPACTED_TOPIC: &str = "soak-compacted";
const COMPACTED_PARTITIONS: i32 = 3;
const COMPACTED_RATE: usize = 100;
const KEYS: usize = 500;

/// Bytes of each record's value.
const VALUE_BYTES: usize = 200;

const BROKER_ARGS: &[&str] = &[
    "--compaction-interval-ms",
    "5000",
    "--gc-interval-ms",
    "10000",
    "--gc-grace-ms",
    "30000",
    "--retention-check-interval-ms",
    "5000",
    "--cache-memory-bytes",
    "67108864",
    "--max-unflushed-bytes",
    "16777216",
    "--max-queued-request-bytes",
    "134217728",
];

/// Peak RSS allowed to any broker at any sample: the limits above (cache 64 MiB, unflushed
/// 16 MiB, queued requests 128 MiB) plus a constant of 128 MiB (binary, runtime,
/// allocator, metadata, connections).
const MEMORY_BOUND_KIB: u64 = (64 + 16 + 128 + 128) * 1024;

/// Time for the end of the run: the group catching up, the reads back.
const END_DEADLINE: Duration = Duration::from_secs(180);

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// What a producer thread acknowledged: (partition, offset) -> (record number, when).
type Landed = BTreeMap<(i32, i64), (usize, Instant)>;

/// An idempotent producer sending `rate` records a second (in tenths of a second) to
/// `topic` until stopped. Record `i` has key `key(i)` and a value starting with `i`.
struct RatedProducer {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Landed>>,
}

impl RatedProducer {
    fn start(bootstrap: String, topic: &'static str, rate: usize, keys: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async move {
                    let producer: FutureProducer = ClientConfig::new()
                        .set("bootstrap.servers", &bootstrap)
                        .set("enable.idempotence", "true")
                        .set("message.timeout.ms", "120000")
                        .set("linger.ms", "5")
                        .create()
                        .expect("create producer");
                    let mut landed = Landed::new();
                    let mut next = 0usize;
                    let tick = Duration::from_millis(100);
                    let mut due = tokio::time::Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let batch = (rate / 10).max(1);
                        let mut futures = Vec::with_capacity(batch);
                        for i in next..next + batch {
                            let key = format!("key-{}", i % keys);
                            let value = format!("{i}|")
                                .bytes()
                                .chain(std::iter::repeat(b'x'))
                                .take(VALUE_BYTES)
                                .collect::<Vec<u8>>();
                            let record = FutureRecord::to(topic).key(&key).payload(&value);
                            let future = producer
                                .send_result(record)
                                .map_err(|(err, _)| err)
                                .expect("enqueue record");
                            futures.push((i, future));
                        }
                        next += batch;
                        for (i, future) in futures {
                            let delivery = future
                                .await
                                .expect("delivery future")
                                .map_err(|(err, _)| err)
                                .unwrap_or_else(|err| panic!("record {i} not acknowledged: {err}"));
                            let (partition, offset) = (delivery.partition, delivery.offset);
                            assert!(
                                landed
                                    .insert((partition, offset), (i, Instant::now()))
                                    .is_none(),
                                "two records acknowledged at {partition}/{offset}"
                            );
                        }
                        acknowledged.store(landed.len(), Ordering::Relaxed);
                        // A stall (a failover) is not made up for with a burst afterwards.
                        due = (due + tick).max(tokio::time::Instant::now());
                        tokio::time::sleep_until(due).await;
                    }
                    landed
                })
            })
        };
        RatedProducer {
            stop,
            acknowledged,
            thread: Some(thread),
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::Relaxed)
    }

    fn assert_running(&self) {
        let thread = self.thread.as_ref().expect("producer running");
        assert!(
            !thread.is_finished(),
            "a producer thread ended after {} acknowledged records (see its panic above)",
            self.acknowledged()
        );
    }

    fn finish(mut self) -> Landed {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("producer running");
        thread.join().expect("producer thread")
    }
}

impl Drop for RatedProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One sample of what should stay flat.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    etcd_keys: usize,
    objects: usize,
    object_bytes: u64,
    /// RSS of slot 0 (never restarted), KiB.
    rss_kib: u64,
    /// The largest RSS of any broker, KiB.
    rss_max_kib: u64,
    log_acknowledged: usize,
    compacted_acknowledged: usize,
}

/// VmRSS of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    common::memory_of(pid).0 / 1024
}

struct Counters {
    rt: tokio::runtime::Runtime,
    etcd: strato_metadata::etcd::EtcdStore,
    bucket: object_store::aws::AmazonS3,
}

impl Counters {
    fn new(metadata_url: &str, endpoint: &str, bucket: &str) -> Counters {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = strato_metadata::etcd::EtcdConfig::from_url(metadata_url).unwrap();
        let etcd = rt
            .block_on(strato_metadata::etcd::EtcdStore::connect(config))
            .expect("connect to etcd");
        let bucket = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("S3 client");
        Counters { rt, etcd, bucket }
    }

    fn etcd_keys(&self) -> usize {
        use strato_metadata::MetadataStore;
        self.rt
            .block_on(self.etcd.list_all(""))
            .expect("list etcd keys")
            .len()
    }

    /// (objects, bytes) in the bucket.
    fn objects(&self) -> (usize, u64) {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let listed: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(self.bucket.list(None).try_collect())
            .expect("list the bucket");
        (listed.len(), listed.iter().map(|o| o.size).sum())
    }
}

#[test]
#[ignore = "the soak runs for 30 minutes: scripts/soak.sh"]
fn soak() {
    let minutes = env_number("STRATO_SOAK_MINUTES", MINUTES_DEFAULT);
    let restart_every = Duration::from_secs(env_number(
        "STRATO_SOAK_RESTART_SECONDS",
        RESTART_SECONDS_DEFAULT,
    ));
    let run_for = Duration::from_secs(minutes * 60);
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint);
    let objects_url = format!("s3://{bucket}/soak");
    let mut args: Vec<&str> = BROKER_ARGS.to_vec();
    args.extend_from_slice(&["--s3-endpoint", &endpoint]);
    let mut cluster = Cluster::start_with_store(0, "/strato/soak", Some(&objects_url), &args);
    // Debug logs of 30 minutes would fill the test's memory.
    cluster.set_env("STRATO_LOG", "info");
    for _ in 0..3 {
        cluster.add();
    }
    let counters = Counters::new(&cluster.metadata_url(), &endpoint, &bucket);
    let bootstrap = cluster.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let retention = RETENTION_MS.to_string();
    let topics = [
        NewTopic::new(LOG_TOPIC, LOG_PARTITIONS, TopicReplication::Fixed(1))
            .set("retention.ms", &retention),
        NewTopic::new(
            COMPACTED_TOPIC,
            COMPACTED_PARTITIONS,
            TopicReplication::Fixed(1),
        )
        .set("cleanup.policy", "compact")
        .set("min.cleanable.dirty.ratio", "0.1"),
    ];
    for result in rt
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .expect("create topics")
    {
        result.expect("topic created");
    }
    cluster.wait_balanced((LOG_PARTITIONS + COMPACTED_PARTITIONS) as u64);

    let started = Instant::now();
    let log_producer = RatedProducer::start(bootstrap.clone(), LOG_TOPIC, LOG_RATE, 1000);
    let compacted_producer =
        RatedProducer::start(bootstrap.clone(), COMPACTED_TOPIC, COMPACTED_RATE, KEYS);
    let members: Vec<Member> = (0..GROUP_MEMBERS)
        .map(|_| Member::start(&bootstrap, LOG_TOPIC, GROUP, &[]))
        .collect();
    eprintln!(
        "soak: {minutes} min, a restart every {restart_every:?}, {LOG_RATE} + {COMPACTED_RATE} records/s of {VALUE_BYTES} B"
    );
    eprintln!(
        "sample: minute etcd_keys objects object_MiB rss0_MiB rss_max_MiB log_acked compacted_acked"
    );

    let mut samples: Vec<Sample> = Vec::new();
    let mut restarts: Vec<String> = Vec::new();
    let mut next_sample = started;
    let mut next_restart = started + restart_every;
    while started.elapsed() < run_for {
        log_producer.assert_running();
        compacted_producer.assert_running();
        let now = Instant::now();
        if now >= next_restart {
            let n = restarts.len();
            let slot = 1 + n % 2;
            let graceful = (n / 2).is_multiple_of(2);
            let broker = cluster.take(slot);
            let began = Instant::now();
            let broker = if graceful {
                broker.restart_graceful()
            } else {
                broker.restart_killed()
            };
            cluster.brokers.insert(slot, broker);
            let what = format!(
                "{:.1} min: slot {slot} {} and started again in {:.1} s",
                started.elapsed().as_secs_f64() / 60.0,
                if graceful {
                    "stopped (SIGTERM)"
                } else {
                    "killed (-9)"
                },
                began.elapsed().as_secs_f64()
            );
            eprintln!("restart: {what}");
            restarts.push(what);
            next_restart = Instant::now() + restart_every;
        }
        if now >= next_sample {
            let (objects, object_bytes) = counters.objects();
            let rss: Vec<u64> = cluster.brokers.values().map(|b| rss_kib(b.pid())).collect();
            let sample = Sample {
                at: started.elapsed(),
                etcd_keys: counters.etcd_keys(),
                objects,
                object_bytes,
                rss_kib: rss_kib(cluster.brokers[&0].pid()),
                rss_max_kib: rss.iter().copied().max().unwrap_or(0),
                log_acknowledged: log_producer.acknowledged(),
                compacted_acknowledged: compacted_producer.acknowledged(),
            };
            eprintln!(
                "sample: {:.1} {} {} {:.1} {:.0} {:.0} {} {}",
                sample.at.as_secs_f64() / 60.0,
                sample.etcd_keys,
                sample.objects,
                sample.object_bytes as f64 / 1048576.0,
                sample.rss_kib as f64 / 1024.0,
                sample.rss_max_kib as f64 / 1024.0,
                sample.log_acknowledged,
                sample.compacted_acknowledged
            );
            samples.push(sample);
            next_sample += Duration::from_secs(SAMPLE_SECONDS);
        }
        // Polled, not slept on: each turn does what is due, then waits for the next due
        // moment (bounded by the run's end).
        let due = next_sample.min(next_restart).min(started + run_for);
        std::thread::sleep(
            due.saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1)),
        );
    }

    let ended = Instant::now();
    let log_landed = log_producer.finish();
    let compacted_landed = compacted_producer.finish();
    eprintln!(
        "producers stopped: {} + {} records acknowledged; {} restarts",
        log_landed.len(),
        compacted_landed.len(),
        restarts.len()
    );
    let bootstrap = cluster.bootstrap();
    let log_end = check_group(&bootstrap, members, &log_landed);
    // Retention stops, so the read back below sees a log start that no longer moves.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    for result in rt
        .block_on(admin.alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(LOG_TOPIC)).set("retention.ms", "-1")],
            &AdminOptions::new(),
        ))
        .expect("alter configs")
    {
        result.expect("retention off");
    }
    check_log(&bootstrap, &log_landed, &log_end, ended, run_for);
    check_compacted(&bootstrap, &compacted_landed);
    for (slot, broker) in cluster.brokers.iter_mut() {
        assert!(broker.is_running(), "broker slot {slot} is not running");
        let log = broker.log_text();
        assert!(
            !log.contains("panicked"),
            "broker slot {slot} panicked:\n{log}"
        );
    }
    let peak = samples.iter().map(|s| s.rss_max_kib).max().unwrap_or(0);
    eprintln!(
        "memory: the largest RSS sampled is {} MiB (bound {} MiB)",
        peak / 1024,
        MEMORY_BOUND_KIB / 1024
    );
    assert!(
        peak <= MEMORY_BOUND_KIB,
        "a broker's RSS reached {} MiB, over its configured limits plus a constant ({} MiB)",
        peak / 1024,
        MEMORY_BOUND_KIB / 1024
    );
    check_flat(&samples, minutes);
}

/// Reads `partitions` of `topic` from each one's log start to its end: (partition, offset)
/// -> (key, value), offsets dense from the first one read.
fn read_back(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<(i32, i64), (String, String)> {
    let consumer = common::kafka::consumer(bootstrap, &[]);
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .expect("watermarks");
        if high > low {
            ends.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Offset(low))
                .unwrap();
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut got = BTreeMap::new();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + END_DEADLINE;
    while ends
        .iter()
        .any(|(p, end)| last.get(p).is_none_or(|o| o + 1 < *end))
    {
        assert!(
            Instant::now() < deadline,
            "read back {} records of {topic} only",
            got.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = match msg {
            Ok(msg) => msg,
            Err(err) if common::kafka::is_transient(&err) => continue,
            Err(err) => panic!("reading {topic} back: {err}"),
        };
        if let Some(previous) = last.insert(msg.partition(), msg.offset()) {
            assert!(
                msg.offset() > previous,
                "offsets in order in {topic}/{}",
                msg.partition()
            );
        }
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).to_string();
        got.insert(
            (msg.partition(), msg.offset()),
            (text(msg.key()), text(msg.payload())),
        );
    }
    got
}

/// The record number a value starts with.
fn number(value: &str) -> usize {
    value
        .split('|')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a soak value starts with its number: {value:.40}"))
}

/// Every record read back was acknowledged there; every acknowledged record from the first
/// one read back on is there, densely; and every record acknowledged within the retention
/// period (minus a margin) before the end is among them.
fn check_log(
    bootstrap: &str,
    landed: &Landed,
    log_end: &BTreeMap<i32, i64>,
    ended: Instant,
    run_for: Duration,
) {
    let read = read_back(bootstrap, LOG_TOPIC, LOG_PARTITIONS);
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    for ((p, offset), (_, value)) in &read {
        first.entry(*p).or_insert(*offset);
        let acked = landed
            .get(&(*p, *offset))
            .unwrap_or_else(|| panic!("{LOG_TOPIC}/{p} offset {offset} was never acknowledged"));
        assert_eq!(acked.0, number(value), "{LOG_TOPIC}/{p} offset {offset}");
    }
    let keep_from = ended - Duration::from_millis(RETENTION_MS) + RETENTION_MARGIN;
    let mut removed = 0usize;
    for ((p, offset), (i, at)) in landed {
        let start = first.get(p).copied().unwrap_or(log_end[p]);
        if *offset >= start {
            assert!(
                read.contains_key(&(*p, *offset)),
                "record {i} acknowledged at {LOG_TOPIC}/{p} offset {offset} is missing"
            );
        } else {
            assert!(
                *at < keep_from,
                "record {i} acknowledged at {LOG_TOPIC}/{p} offset {offset} {:.0} s before the \
                 end was removed (retention is {} s)",
                ended.duration_since(*at).as_secs_f64(),
                RETENTION_MS / 1000
            );
            removed += 1;
        }
    }
    if run_for > Duration::from_millis(RETENTION_MS) + RETENTION_MARGIN * 2 {
        assert!(
            removed > 0,
            "retention removed nothing in a run longer than it"
        );
    }
    eprintln!(
        "log checked: {} records acknowledged, {} read back once each, {removed} removed by retention",
        landed.len(),
        read.len()
    );
}

/// The group consumed every record and committed the log end; returns the log end.
fn check_group(bootstrap: &str, members: Vec<Member>, landed: &Landed) -> BTreeMap<i32, i64> {
    let mut log_end: BTreeMap<i32, i64> = (0..LOG_PARTITIONS).map(|p| (p, 0)).collect();
    for (p, offset) in landed.keys() {
        let end = log_end.get_mut(p).expect("a partition");
        *end = (*end).max(offset + 1);
    }
    let reader = common::kafka::consumer(bootstrap, &[("group.id", GROUP)]);
    wait_until(END_DEADLINE, "the group to commit the log end", || {
        let committed = committed_with(&reader, LOG_TOPIC, LOG_PARTITIONS);
        for (p, offset) in &committed {
            assert!(
                *offset <= log_end[p],
                "{p}: committed {offset} past the log end"
            );
        }
        committed == log_end
    });
    let received: BTreeSet<(i32, i64)> = members.iter().flat_map(Member::records).collect();
    // What retention removed before the group read it would be a lag past retention; the
    // group keeps up, so it received every acknowledged record.
    let missed: Vec<&(i32, i64)> = landed
        .keys()
        .filter(|k| !received.contains(k))
        .take(10)
        .collect();
    assert!(missed.is_empty(), "the group never received {missed:?}");
    let deliveries: usize = members.iter().map(|m| m.records().len()).sum();
    for member in members {
        member.close();
    }
    eprintln!(
        "group checked: {} records received {deliveries} times, committed at the log end",
        landed.len()
    );
    log_end
}

/// The compacted topic holds, for every key, the record acknowledged last for it; every
/// record it holds was acknowledged there.
fn check_compacted(bootstrap: &str, landed: &Landed) {
    let read = read_back(bootstrap, COMPACTED_TOPIC, COMPACTED_PARTITIONS);
    let mut latest: BTreeMap<String, usize> = BTreeMap::new();
    for ((p, offset), (key, value)) in &read {
        let acked = landed.get(&(*p, *offset)).unwrap_or_else(|| {
            panic!("{COMPACTED_TOPIC}/{p} offset {offset} was never acknowledged")
        });
        assert_eq!(
            acked.0,
            number(value),
            "{COMPACTED_TOPIC}/{p} offset {offset}"
        );
        latest.insert(key.clone(), acked.0);
    }
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for (i, _) in landed.values() {
        let key = format!("key-{}", i % KEYS);
        let e = expected.entry(key).or_insert(*i);
        *e = (*e).max(*i);
    }
    assert_eq!(latest, expected, "the latest value of every key");
    eprintln!(
        "compacted topic checked: {} records acknowledged, {} left, the latest of each of {} keys",
        landed.len(),
        read.len(),
        expected.len()
    );
    if landed.len() > 20 * KEYS {
        assert!(
            read.len() < landed.len() / 2,
            "the cleaner removed overwritten records ({} of {} left)",
            read.len(),
            landed.len()
        );
    }
}

/// A flat series: its name, how to read it from a sample, and the constant it may grow by.
type Series<'a> = (&'a str, &'a dyn Fn(&Sample) -> f64, f64);

/// After the warm-up, the last quarter's mean of each series stays within 25% plus a
/// constant of the first quarter's.
fn check_flat(samples: &[Sample], minutes: u64) {
    if minutes < FLATNESS_MINUTES_MIN {
        eprintln!(
            "flatness not judged: a {minutes}-minute run is shorter than {FLATNESS_MINUTES_MIN}"
        );
        return;
    }
    // The warm-up: retention has started removing, caches have filled.
    let warm = Duration::from_millis(RETENTION_MS) * 2;
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm).collect();
    assert!(
        steady.len() >= 8,
        "too few samples after the warm-up: {}",
        steady.len()
    );
    let quarter = steady.len() / 4;
    let mean = |part: &[&Sample], f: &dyn Fn(&Sample) -> f64| -> f64 {
        part.iter().map(|s| f(s)).sum::<f64>() / part.len() as f64
    };
    let (head, tail) = (&steady[..quarter], &steady[steady.len() - quarter..]);
    let series: [Series<'_>; 4] = [
        ("etcd keys", &|s| s.etcd_keys as f64, 50.0),
        ("bucket objects", &|s| s.objects as f64, 50.0),
        ("bucket MiB", &|s| s.object_bytes as f64 / 1048576.0, 16.0),
        ("slot 0 RSS MiB", &|s| s.rss_kib as f64 / 1024.0, 64.0),
    ];
    for (name, f, slack) in series {
        let (first, last) = (mean(head, f), mean(tail, f));
        eprintln!("flat: {name}: first quarter {first:.1}, last quarter {last:.1}");
        assert!(
            last <= first * 1.25 + slack,
            "{name} grew from {first:.1} to {last:.1} after the warm-up"
        );
    }
}
