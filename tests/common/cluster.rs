//! A cluster of brokers for tests: several `strato serve` processes sharing one etcd
//! (started here) and one object store directory, and an idempotent producer that streams
//! on its own thread while brokers come and go.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use strato_metadata::testing::etcd_server::EtcdServer;

use super::kafka::{Rec, produce_all, producer, record};
use super::{Broker, wait_until};

/// Time for leadership to settle after a membership change: a dead broker's lease expires
/// within its 10 s TTL, then the others take over within a reconcile pass.
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

/// Bound of a producer stream (it normally stops much earlier, when told to).
pub const STREAM_RECORDS_MAX: usize = 200_000;

/// Brokers sharing an etcd prefix and an object store directory, each with its own data
/// directory (cache only).
pub struct Cluster {
    root: tempfile::TempDir,
    args: Vec<String>,
    pub brokers: BTreeMap<usize, Broker>,
    next: usize,
    /// Environment variables of every broker started from now on ([`Cluster::set_env`]).
    envs: Vec<(String, String)>,
    etcd: EtcdServer,
    prefix: String,
}

impl Cluster {
    pub fn start(n: usize, prefix: &str) -> Cluster {
        Self::start_with(n, prefix, &[])
    }

    /// [`Cluster::start`] with extra `serve` flags for every broker it ever starts.
    pub fn start_with(n: usize, prefix: &str, extra: &[&str]) -> Cluster {
        Self::start_with_store(n, prefix, None, extra)
    }

    /// [`Cluster::start_with`] on the object store `objects` (e.g. `s3://bucket/prefix`; each
    /// broker's `--s3-endpoint` then comes with `add_with`) instead of a shared directory.
    pub fn start_with_store(
        n: usize,
        prefix: &str,
        objects: Option<&str>,
        extra: &[&str],
    ) -> Cluster {
        let etcd = EtcdServer::start();
        let root = tempfile::tempdir().unwrap();
        let objects = objects
            .map(str::to_string)
            .unwrap_or_else(|| format!("file://{}", root.path().join("objects").display()));
        let args = vec![
            "--metadata".to_string(),
            etcd.url(prefix),
            "--object-store".to_string(),
            objects,
            "--group-initial-rebalance-delay-ms".to_string(),
            "300".to_string(),
        ];
        let args = args
            .into_iter()
            .chain(extra.iter().map(|a| a.to_string()))
            .collect();
        let mut cluster = Cluster {
            root,
            args,
            brokers: BTreeMap::new(),
            next: 0,
            envs: Vec::new(),
            etcd,
            prefix: prefix.to_string(),
        };
        for _ in 0..n {
            cluster.add();
        }
        cluster
    }

    /// Starts one more broker; returns its slot.
    pub fn add(&mut self) -> usize {
        self.add_with(&[])
    }

    /// Starts one more broker with extra `serve` flags (e.g. `--rack`); returns its slot.
    pub fn add_with(&mut self, extra: &[&str]) -> usize {
        let slot = self.next;
        self.next += 1;
        let dir = self.root.path().join(format!("broker-{slot}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.brokers
            .insert(slot, Broker::start_with_env(Path::new(&dir), &args, &envs));
        slot
    }

    /// Sets `key` in the environment of every broker started from now on (restarts keep
    /// the environment a broker started with).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.envs.push((key.to_string(), value.to_string()));
    }

    /// The brokers' `--metadata` URL (`etcd://host:port/prefix`).
    pub fn metadata_url(&self) -> String {
        self.etcd.url(&self.prefix)
    }

    pub fn bootstrap(&self) -> String {
        self.brokers
            .values()
            .map(Broker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn take(&mut self, slot: usize) -> Broker {
        self.brokers.remove(&slot).expect("broker slot")
    }

    /// Partitions each running broker leads, by slot.
    pub fn led(&self) -> BTreeMap<usize, u64> {
        self.brokers
            .iter()
            .map(|(slot, b)| (*slot, b.metric("strato_partitions{state=\"led\"}") as u64))
            .collect()
    }

    /// Waits until the running brokers lead `partitions` partitions between them, each at
    /// least one.
    pub fn wait_balanced(&self, partitions: u64) {
        wait_until(SETTLE_DEADLINE, "leadership to settle", || {
            let led = self.led();
            led.values().sum::<u64>() == partitions && led.values().all(|n| *n > 0)
        });
    }
}

/// An idempotent producer streaming to `topic` on a background thread (its own runtime)
/// until stopped; yields what was acknowledged where. Dropped without `finish` (a failing
/// test), it stops the thread after the records in flight.
pub struct Stream {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<BTreeMap<(i32, i64), Rec>>>,
}

/// What a [`Stream`] sends and how its producer is configured.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Written into each record (value and `codec` header), to tell streams apart.
    pub label: &'static str,
    /// Records sent before waiting for all of them to be acknowledged.
    pub chunk: usize,
    /// librdkafka settings beyond idempotence and the message timeout.
    pub producer: Vec<(&'static str, &'static str)>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            label: "lz4",
            // Small sends, so the stream goes on while brokers come and go.
            chunk: 100,
            producer: Vec::new(),
        }
    }
}

impl Stream {
    pub fn start(bootstrap: String, topic: &'static str) -> Stream {
        Self::start_with(bootstrap, topic, StreamConfig::default())
    }

    /// A stream of `record(config.label, i)` for i = 0, 1, ...
    pub fn start_with(bootstrap: String, topic: &'static str, config: StreamConfig) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = stop.clone();
            let acknowledged = acknowledged.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let mut settings = vec![
                        ("enable.idempotence", "true"),
                        ("message.timeout.ms", "120000"),
                    ];
                    settings.extend_from_slice(&config.producer);
                    let p = producer(&bootstrap, &settings);
                    let mut landed = BTreeMap::new();
                    let mut next = 0;
                    while !stop.load(Ordering::Relaxed) && next < STREAM_RECORDS_MAX {
                        let chunk: Vec<Rec> = (next..next + config.chunk)
                            .map(|i| record(config.label, i))
                            .collect();
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
            thread: Some(thread),
        }
    }

    /// Records acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Waits until `more` records beyond those acknowledged so far are acknowledged. A
    /// producer thread that ended (a record not acknowledged panics it) fails the wait at
    /// once instead of at the deadline.
    pub fn wait_progress(&self, more: usize) {
        let target = self.acknowledged() + more;
        wait_until(SETTLE_DEADLINE, "the producer makes progress", || {
            let thread = self.thread.as_ref().expect("stream running");
            assert!(
                !thread.is_finished(),
                "the producer thread ended after {} acknowledged records (see its panic above)",
                self.acknowledged()
            );
            self.acknowledged() >= target
        });
    }

    pub fn finish(mut self) -> BTreeMap<(i32, i64), Rec> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("stream running");
        thread.join().expect("producer thread")
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
