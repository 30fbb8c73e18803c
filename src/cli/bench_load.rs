//! `strato bench produce|consume|e2e` (issue 19): a librdkafka-like producer and consumer
//! against a broker of their own (`strato serve` as a child on free loopback ports, an
//! embedded store in a temporary directory, optionally behind the S3 latency proxy) or a
//! running one (`--bootstrap`), with the broker's cost measured around every phase.
//!
//! Phases: produce (`bench_producer`); consume, which reads the topic from its start to its
//! end offsets as `bench replay` does (one connection per partition, the next fetch in flight
//! while the last one is decoded); e2e, a paced producer while one long-polling consumer per
//! partition reads every record's send time out of its value. Around each phase the broker's
//! CPU time (its own: `/proc/<pid>/stat`; a running one: `process_cpu_seconds_total` of
//! `/metrics`, if there), peak RSS (its own: VmHWM, reset at the start of the phase; a
//! running one: `strato_process_peak_resident_memory_bytes`, its peak since it started),
//! object-store PUTs and GETs (`/metrics`) and this process's own CPU time are read. A
//! benchmark reports; nothing here asserts speed.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;
use tokio::time::Instant;

use super::bench_broker::{
    BrokerProcess, LatencyProxy, ServeOptions, clock_ticks_per_second, metric, process_cpu_seconds,
    scrape_metrics,
};
use super::bench_common::{Throughput, client_options, create_topic, leaders, replay_topic};
use super::bench_latency::LatencyHistogram;
use super::bench_producer::{self, ProduceOutcome, ProduceTarget, ValueSource, value_stamp};
use super::cluster::{Client, OffsetSpec, TopicPartition};
use super::kafka_client::{ClientOptions, Connection};
use super::record_api::{self, FetchOptions};
use crate::config::bench::{BenchBroker, BenchLoadConfig, BenchLoadKind, BenchServeConfig};

/// How long `bench e2e` waits, after the last acknowledgement, for the consumers to see
/// every acknowledged record.
const E2E_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
const PUTS_SERIES: &str = "strato_object_store_requests_total{operation=\"put\"}";
const GETS_SERIES: &str = "strato_object_store_requests_total{operation=\"get\"}";
/// The Prometheus client libraries' standard process metric.
const CPU_SERIES: &str = "process_cpu_seconds_total";
/// Strato's peak resident memory (VmHWM) since the broker started.
const PEAK_RSS_SERIES: &str = "strato_process_peak_resident_memory_bytes";

/// What one phase cost; `None` where it cannot be measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct PhaseCost {
    pub(super) broker_cpu_seconds: Option<f64>,
    pub(super) broker_peak_rss_bytes: Option<u64>,
    pub(super) object_store_puts: Option<u64>,
    pub(super) object_store_gets: Option<u64>,
    /// This process (the benchmark's clients): on a small machine it competes with the
    /// broker for the same cores.
    pub(super) client_cpu_seconds: f64,
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    broker_cpu_seconds: Option<f64>,
    /// A running broker's peak RSS since it started (`/metrics`), if it exposes it.
    broker_peak_rss_bytes: Option<u64>,
    puts: Option<u64>,
    gets: Option<u64>,
    client_cpu_seconds: f64,
}

#[derive(Debug, Clone)]
pub(super) struct ProducePhase {
    pub(super) outcome: ProduceOutcome,
    pub(super) cost: PhaseCost,
}

#[derive(Debug, Clone)]
pub(super) struct ConsumePhase {
    pub(super) throughput: Throughput,
    pub(super) cost: PhaseCost,
}

#[derive(Debug, Clone)]
pub(super) struct E2ePhase {
    /// The paced producer (its latency: append to acknowledgement).
    pub(super) produce: ProduceOutcome,
    /// Records and value bytes consumed, over the whole phase.
    pub(super) consumed: Throughput,
    /// Send time to the arrival of the fetch response that held the record.
    pub(super) latency: LatencyHistogram,
    pub(super) cost: PhaseCost,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub(super) struct LoadReport {
    /// The Kafka listener measured.
    pub(super) kafka_addr: String,
    /// The own broker's object store; `None` with `--bootstrap`.
    pub(super) object_store: Option<String>,
    pub(super) partitions: usize,
    pub(super) produce: Option<ProducePhase>,
    pub(super) consume: Option<ConsumePhase>,
    pub(super) e2e: Option<E2ePhase>,
}

/// The broker under test, and the kernel's clock ticks per second for this process's CPU
/// time.
struct Target {
    broker: TargetBroker,
    clock_ticks_per_second: f64,
}

enum TargetBroker {
    Own(Box<OwnBroker>),
    Remote { kafka: String, http: Option<String> },
}

/// A `strato serve` child with what it needs; fields drop in order, so the process is
/// killed before its proxy and data dir go.
struct OwnBroker {
    process: BrokerProcess,
    proxy: Option<LatencyProxy>,
    temp_dir: Option<tempfile::TempDir>,
    object_store: String,
}

impl Target {
    async fn start(broker: &BenchBroker) -> anyhow::Result<Self> {
        let clock_ticks_per_second = clock_ticks_per_second().await?;
        let broker = match broker {
            BenchBroker::Own(serve) => TargetBroker::Own(Box::new(OwnBroker::start(serve).await?)),
            BenchBroker::Bootstrap { kafka, http } => TargetBroker::Remote {
                kafka: kafka.clone(),
                http: http.clone(),
            },
        };
        Ok(Self {
            broker,
            clock_ticks_per_second,
        })
    }

    fn kafka_addr(&self) -> &str {
        match &self.broker {
            TargetBroker::Own(own) => &own.process.kafka_addr,
            TargetBroker::Remote { kafka, .. } => kafka,
        }
    }

    fn object_store(&self) -> Option<String> {
        match &self.broker {
            TargetBroker::Own(own) => Some(own.object_store.clone()),
            TargetBroker::Remote { .. } => None,
        }
    }

    /// The `/metrics` page, if the broker's HTTP listener is known.
    async fn metrics(&self) -> anyhow::Result<Option<String>> {
        match &self.broker {
            TargetBroker::Own(own) => own.process.metrics().await.map(Some),
            TargetBroker::Remote {
                http: Some(http), ..
            } => scrape_metrics(http).await.map(Some),
            TargetBroker::Remote { http: None, .. } => Ok(None),
        }
    }

    async fn reading(&self) -> anyhow::Result<Reading> {
        let text = self.metrics().await?;
        let series = |name: &str| text.as_deref().and_then(|t| metric(t, name));
        let broker_cpu_seconds = match &self.broker {
            TargetBroker::Own(own) => Some(own.process.cpu_seconds().await?),
            TargetBroker::Remote { .. } => series(CPU_SERIES),
        };
        Ok(Reading {
            broker_cpu_seconds,
            broker_peak_rss_bytes: series(PEAK_RSS_SERIES).map(|v| v as u64),
            puts: series(PUTS_SERIES).map(|v| v as u64),
            gets: series(GETS_SERIES).map(|v| v as u64),
            client_cpu_seconds: process_cpu_seconds("self", self.clock_ticks_per_second).await?,
        })
    }

    /// Reads the counters a phase starts from (and restarts the broker's peak RSS).
    async fn phase_start(&self) -> anyhow::Result<Reading> {
        if let TargetBroker::Own(own) = &self.broker
            && let Err(err) = own.process.reset_peak_rss().await
        {
            tracing::warn!("peak RSS covers the broker's life so far: failed to reset it: {err:#}");
        }
        self.reading().await
    }

    async fn phase_end(&self, start: Reading) -> anyhow::Result<PhaseCost> {
        let end = self.reading().await?;
        let broker_peak_rss_bytes = match &self.broker {
            TargetBroker::Own(own) => Some(own.process.peak_rss_bytes().await?),
            // Not reset per phase: the peak since the broker started.
            TargetBroker::Remote { .. } => end.broker_peak_rss_bytes,
        };
        let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
        // Rounded to microseconds: the readings are whole clock ticks.
        let seconds = |a: f64, b: f64| ((b - a).max(0.0) * 1e6).round() / 1e6;
        Ok(PhaseCost {
            broker_cpu_seconds: start
                .broker_cpu_seconds
                .zip(end.broker_cpu_seconds)
                .map(|(a, b)| seconds(a, b)),
            broker_peak_rss_bytes,
            object_store_puts: delta(start.puts, end.puts),
            object_store_gets: delta(start.gets, end.gets),
            client_cpu_seconds: seconds(start.client_cpu_seconds, end.client_cpu_seconds),
        })
    }

    /// Stops the own broker cleanly (SIGTERM, then waits).
    async fn stop(self) -> anyhow::Result<()> {
        match self.broker {
            TargetBroker::Own(own) => own.stop().await,
            TargetBroker::Remote { .. } => Ok(()),
        }
    }
}

impl OwnBroker {
    async fn start(serve: &BenchServeConfig) -> anyhow::Result<Self> {
        let (data_dir, temp_dir) = match &serve.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("strato-bench-")
                    .tempdir()
                    .context("create a temporary data dir")?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let proxy = match &serve.s3_latency {
            Some((target, latency)) => Some(LatencyProxy::start(target.clone(), *latency).await?),
            None => None,
        };
        let object_store = serve
            .object_store
            .clone()
            .unwrap_or_else(|| crate::config::default_object_store_url(&data_dir));
        let process = BrokerProcess::start(&ServeOptions {
            data_dir,
            object_store: serve.object_store.clone(),
            s3_endpoint: proxy
                .as_ref()
                .map(|p| p.endpoint.clone())
                .or(serve.s3_endpoint.clone()),
            extra_args: serve.serve_args.clone(),
        })
        .await?;
        Ok(Self {
            process,
            proxy,
            temp_dir,
            object_store,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let OwnBroker {
            process,
            proxy,
            temp_dir,
            ..
        } = self;
        let stopped = process.stop().await.context("stop the broker");
        drop(proxy);
        drop(temp_dir);
        stopped
    }
}

/// Runs the benchmark `config` describes; the own broker is stopped whatever happens.
pub(super) async fn run(config: &BenchLoadConfig) -> anyhow::Result<LoadReport> {
    let target = Target::start(&config.broker).await?;
    let report = run_phases(config, &target).await;
    let stopped = target.stop().await;
    let report = report?;
    stopped?;
    Ok(report)
}

async fn run_phases(config: &BenchLoadConfig, target: &Target) -> anyhow::Result<LoadReport> {
    let options = client_options();
    let topic = &config.producer.topic;
    let mut client = Client::connect(target.kafka_addr(), options.clone()).await?;
    if config.records.is_some() {
        create_topic(&mut client, topic, config.producer.partitions, &options).await?;
    }
    let leaders = leaders(&mut client, topic).await?;
    let mut report = LoadReport {
        kafka_addr: target.kafka_addr().to_string(),
        object_store: target.object_store(),
        partitions: leaders.len(),
        produce: None,
        consume: None,
        e2e: None,
    };
    let produce_target = ProduceTarget {
        topic,
        leaders: &leaders,
    };
    if config.kind == BenchLoadKind::E2e {
        let records = config.records.context("bench e2e has a record count")?;
        let start = target.phase_start().await?;
        let mut phase = e2e(config, &mut client, &produce_target, records, &options).await?;
        phase.cost = target.phase_end(start).await?;
        report.e2e = Some(phase);
        return Ok(report);
    }
    if let Some(records) = config.records {
        let start = target.phase_start().await?;
        let values = ValueSource::new(&config.producer, None);
        let outcome =
            bench_producer::produce(&produce_target, &config.producer, values, records, &options)
                .await
                .with_context(|| format!("produce to topic {topic}"))?;
        let cost = target.phase_end(start).await?;
        report.produce = Some(ProducePhase { outcome, cost });
    }
    if config.kind == BenchLoadKind::Consume {
        let start = target.phase_start().await?;
        let fetch = fetch_options(config);
        let (throughput, _) = replay_topic(target.kafka_addr(), topic, "consume", fetch)
            .await
            .with_context(|| format!("consume topic {topic}"))?;
        let cost = target.phase_end(start).await?;
        report.consume = Some(ConsumePhase { throughput, cost });
    }
    Ok(report)
}

/// What the e2e consumers share.
struct E2eConsumers {
    /// Records consumed so far, watched by the run.
    consumed: watch::Sender<u64>,
    value_bytes: std::sync::atomic::AtomicU64,
    latency: Mutex<LatencyHistogram>,
    /// The instant the producer's send times count from.
    epoch: Instant,
}

/// The paced producer and one long-polling consumer per partition, started at the end
/// offsets; ends when every acknowledged record was consumed.
async fn e2e(
    config: &BenchLoadConfig,
    client: &mut Client,
    target: &ProduceTarget<'_>,
    records: u64,
    options: &ClientOptions,
) -> anyhow::Result<E2ePhase> {
    // Every consumer is connected before the first record is produced.
    let consumers = connect_at_end(client, target, options).await?;
    let fetch = fetch_options(config);
    let (consumed_tx, mut consumed_rx) = watch::channel(0u64);
    let shared = E2eConsumers {
        consumed: consumed_tx,
        value_bytes: Default::default(),
        latency: Mutex::new(LatencyHistogram::default()),
        epoch: Instant::now(),
    };
    let started = Instant::now();
    let consuming = futures::future::try_join_all(consumers.into_iter().map(
        |(connection, partition, start)| {
            consume_stamped(connection, target.topic, partition, start, fetch, &shared)
        },
    ));
    let values = ValueSource::new(&config.producer, Some(shared.epoch));
    let producing = async {
        let outcome = bench_producer::produce(target, &config.producer, values, records, options)
            .await
            .with_context(|| format!("produce to topic {}", target.topic))?;
        let acked = outcome.acked.records;
        let drained =
            tokio::time::timeout(E2E_DRAIN_TIMEOUT, consumed_rx.wait_for(|c| *c >= acked)).await;
        match drained {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => bail!("the consumers stopped"),
            Err(_) => bail!(
                "consumed {} of {acked} acknowledged records within {E2E_DRAIN_TIMEOUT:?} of the last acknowledgement",
                *shared.consumed.borrow()
            ),
        }
        anyhow::Ok(outcome)
    };
    // The consumers run until the producer's records are all in (or one fails).
    let produce = tokio::select! {
        outcome = producing => outcome?,
        consumed = consuming => {
            consumed?;
            bail!("the consumers stopped before the end of the run")
        }
    };
    let latency = shared
        .latency
        .into_inner()
        .expect("latency lock is never poisoned");
    Ok(E2ePhase {
        produce,
        consumed: Throughput {
            records: *shared.consumed.borrow(),
            value_bytes: shared.value_bytes.into_inner(),
            wire_bytes: 0,
            seconds: started.elapsed().as_secs_f64(),
        },
        latency,
        cost: PhaseCost::default(),
    })
}

/// A connection to each partition's leader and the partition's end offset.
async fn connect_at_end(
    client: &mut Client,
    target: &ProduceTarget<'_>,
    options: &ClientOptions,
) -> anyhow::Result<Vec<(Connection, i32, i64)>> {
    let tps: Vec<TopicPartition> = target
        .leaders
        .keys()
        .map(|p| TopicPartition::new(target.topic, *p))
        .collect();
    let ends = client.list_offsets(&tps, OffsetSpec::Latest).await?;
    let mut consumers = Vec::with_capacity(tps.len());
    for tp in &tps {
        let end = ends[tp].map_err(|code| anyhow::anyhow!("end offset of {tp}: {code}"))?;
        let addr = &target.leaders[&tp.partition];
        let connection = Connection::connect(addr, options.clone())
            .await
            .with_context(|| format!("connect to the leader of {tp} at {addr}"))?;
        consumers.push((connection, tp.partition, end));
    }
    Ok(consumers)
}

/// How the consumers fetch. One partition per request: its answer is bounded by the smaller
/// of the two limits, as librdkafka's would be (a first batch above them still comes whole,
/// KIP-74).
fn fetch_options(config: &BenchLoadConfig) -> FetchOptions {
    FetchOptions {
        max_wait: config.fetch.wait_max,
        bytes_max: config.fetch.bytes_max.min(config.fetch.partition_bytes_max),
    }
}

/// One partition's e2e consumer: long polls from `start` forever, recording for every
/// record the time from its send time to the arrival of the response that held it.
async fn consume_stamped(
    mut connection: Connection,
    topic: &str,
    partition: i32,
    start: i64,
    fetch: FetchOptions,
    shared: &E2eConsumers,
) -> anyhow::Result<()> {
    let mut offset = start;
    loop {
        let fetched = record_api::fetch(&mut connection, topic, partition, offset, fetch)
            .await
            .with_context(|| format!("fetch partition {partition} at offset {offset}"))?;
        let received_at = Instant::now();
        let (batches, next) = record_api::complete_batches(&fetched.records)?;
        let mut latencies = Vec::new();
        let mut value_bytes = 0u64;
        for batch in batches {
            for record in record_api::decode_records(batch, offset)? {
                let value = record.value.unwrap_or_default();
                let stamp = value_stamp(&value).with_context(|| {
                    format!(
                        "record {} of partition {partition} has no send time: is another producer writing to {topic}?",
                        record.offset
                    )
                })?;
                latencies.push(received_at.saturating_duration_since(shared.epoch + stamp));
                value_bytes += value.len() as u64;
            }
        }
        if let Some(next) = next {
            offset = offset.max(next);
        }
        if !latencies.is_empty() {
            let mut histogram = shared
                .latency
                .lock()
                .expect("latency lock is never poisoned");
            for latency in &latencies {
                histogram.record(*latency);
            }
            drop(histogram);
            let count = latencies.len() as u64;
            shared
                .value_bytes
                .fetch_add(value_bytes, std::sync::atomic::Ordering::Relaxed);
            shared.consumed.send_modify(|consumed| *consumed += count);
        }
    }
}
