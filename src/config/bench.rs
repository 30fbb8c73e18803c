//! Flags of `strato bench ...`: `replay` measures a broker of its own (this executable as a
//! child process); `produce`, `consume` and `e2e` measure one of their own or a running one
//! (`--bootstrap`) with a producer and a consumer that behave like librdkafka's defaults.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Args, Subcommand, ValueEnum};

use super::{MIB, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Write N MiB into a topic, restart the broker (its chunk cache starts empty), replay
    /// every partition from offset 0 and report MB/s, object-store GETs and peak memory.
    ///
    /// Starts `strato serve` (this executable) as a child process on free loopback ports and
    /// stops it on exit. S3 buckets must exist (LocalStack: `curl -X PUT
    /// http://127.0.0.1:4566/bench`); `--s3-latency-ms` adds a delay per request to S3 during
    /// the replay.
    ///
    /// Example: `strato bench replay --size-mib 256 --compression lz4 --object-store
    /// s3://bench/run1 --s3-endpoint http://127.0.0.1:4566 --s3-latency-ms 30`
    Replay(BenchReplayArgs),
    /// Produce N MiB like a librdkafka producer (per-partition batches sent when full or
    /// after --linger-ms, up to --in-flight requests per connection, idempotent, acks=all)
    /// and report MB/s, records/s, per-record latency from produce to acknowledgement
    /// (p50/p99/p999/max), and the broker's CPU seconds per GiB, peak RSS and object-store
    /// requests per GiB.
    ///
    /// Starts `strato serve` (this executable) on free loopback ports with an embedded store
    /// in a temporary directory, or measures a running broker with `--bootstrap` (its CPU and
    /// object-store requests from `/metrics` with `--http`, where it exposes them).
    ///
    /// Example: `strato bench produce --size-mib 1024 --partitions 12 --output json`; at
    /// half the maximum rate: `strato bench produce --rate 100000`
    Produce(BenchProduceArgs),
    /// Produce N MiB (as `bench produce`), then read the topic from offset 0 to its end
    /// offsets like a librdkafka consumer (one connection per partition, fetch.max.bytes
    /// 52428800, max.partition.fetch.bytes 1048576, the next fetch in flight while the last
    /// is decoded) and report both.
    ///
    /// With `--bootstrap` it reads the topic as it is, unless `--records` or `--size-mib`
    /// asks for records to be produced first.
    ///
    /// Example: `strato bench consume --size-mib 1024 --partitions 12`; an existing topic:
    /// `strato bench consume --bootstrap 10.0.0.5:9092 --topic orders`
    Consume(BenchConsumeArgs),
    /// Produce at a fixed modest rate (default 1000 records/s, linger 0, acks=all) while a
    /// consumer long-polls (fetch.wait.max.ms 500, fetch.min.bytes 1); every record carries
    /// its send time, and the report gives produce→consume latency p50/p99/p999/max.
    ///
    /// Example: `strato bench e2e --records 2000 --output json`
    E2e(BenchE2eArgs),
}

/// Record compression of the benchmark producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchCompression {
    None,
    Lz4,
    Zstd,
}

/// The broker a benchmark starts: `strato serve` options.
#[derive(Debug, Clone, Args)]
pub struct BenchServeArgs {
    /// Object store of the broker (`strato serve --object-store`; default: file://<data-dir>/objects).
    #[arg(long)]
    pub object_store: Option<String>,
    /// S3 endpoint of the broker (`strato serve --s3-endpoint`), e.g. http://127.0.0.1:4566.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    /// Latency added to every request to --s3-endpoint by a TCP proxy in this process
    /// (emulates a distant S3); `bench replay` adds it during the replay only.
    #[arg(long, default_value_t = 0)]
    pub s3_latency_ms: u64,
    /// Data directory of the broker (metadata, file:// objects); default: a temporary
    /// directory, removed afterwards.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Extra option for `strato serve` (repeatable), e.g.
    /// `--serve-arg=--cache-memory-bytes=67108864`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub serve_arg: Vec<String>,
}

/// A checked [`BenchServeArgs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchServeConfig {
    pub object_store: Option<String>,
    pub s3_endpoint: Option<String>,
    /// `host:port` of the S3 endpoint and the added latency, when a proxy is wanted.
    pub s3_latency: Option<(String, Duration)>,
    pub data_dir: Option<PathBuf>,
    pub serve_args: Vec<String>,
}

impl BenchServeArgs {
    pub fn validate(&self) -> anyhow::Result<BenchServeConfig> {
        let s3_latency = match (self.s3_latency_ms, &self.s3_endpoint) {
            (0, _) => None,
            (_, None) => bail!("--s3-latency-ms needs --s3-endpoint"),
            (ms, Some(endpoint)) => {
                let Some(host_port) = endpoint
                    .strip_prefix("http://")
                    .map(|rest| rest.trim_end_matches('/'))
                    .filter(|rest| !rest.is_empty() && !rest.contains('/'))
                else {
                    bail!(
                        "--s3-latency-ms needs an http://host:port --s3-endpoint, got {endpoint:?}"
                    );
                };
                if ms > 60_000 {
                    bail!("--s3-latency-ms must be at most 60000");
                }
                Some((host_port.to_string(), Duration::from_millis(ms)))
            }
        };
        if self.s3_endpoint.is_some()
            && !self
                .object_store
                .as_deref()
                .is_some_and(|url| url.starts_with("s3://"))
        {
            bail!("--s3-endpoint needs an s3:// --object-store");
        }
        Ok(BenchServeConfig {
            object_store: self.object_store.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            s3_latency,
            data_dir: self.data_dir.clone(),
            serve_args: self.serve_arg.clone(),
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchReplayArgs {
    /// MiB of record values to write.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// Topic to write and replay (default: strato-bench-replay).
    #[arg(long)]
    pub topic: Option<String>,
    /// Replay the topic as it is in --data-dir instead of writing (no restart needed: the
    /// broker starts with an empty cache).
    #[arg(long)]
    pub existing: bool,
    /// Partitions of the topic the benchmark creates.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Bytes per record value (every other byte random, the rest repetitive).
    #[arg(long, default_value_t = 1000)]
    pub value_bytes: usize,
    /// Compression of the produced record batches.
    #[arg(long, value_enum, default_value = "lz4")]
    pub compression: BenchCompression,
    #[command(flatten)]
    pub serve: BenchServeArgs,
    /// Before the replay, run a broker that compacts every second until nothing is left to
    /// merge: the replay then reads what a topic that has been up a while holds (big
    /// per-partition chunks, read frame by frame) rather than one small chunk per flush.
    #[arg(long)]
    pub compact: bool,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

/// A checked `strato bench replay` plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchReplayConfig {
    pub topic: String,
    /// Records to write; `None` with `--existing`.
    pub records: Option<u64>,
    pub partitions: i32,
    pub value_bytes: usize,
    pub compression: BenchCompression,
    pub serve: BenchServeConfig,
    /// Compact the topic fully before the replay.
    pub compact: bool,
    pub output: OutputFormat,
}

/// The benchmark topic when `--topic` is not given.
pub const BENCH_TOPIC_DEFAULT: &str = "strato-bench-replay";
/// Largest record value: a batch of one must stay under Kafka's default `max.message.bytes`
/// (1 MiB + 12), whatever the compression.
pub const BENCH_VALUE_BYTES_MAX: usize = 512 * 1024;
/// Kafka's topic name limit (`Topic.MAX_NAME_LENGTH`).
const TOPIC_NAME_BYTES_MAX: usize = 249;

fn check_topic(topic: &str) -> anyhow::Result<()> {
    if topic.is_empty() || topic.len() > TOPIC_NAME_BYTES_MAX {
        bail!("--topic must have 1 to {TOPIC_NAME_BYTES_MAX} characters");
    }
    Ok(())
}

fn check_partitions(partitions: i32) -> anyhow::Result<()> {
    if !(1..=10_000).contains(&partitions) {
        bail!("--partitions must be between 1 and 10000");
    }
    Ok(())
}

/// Whole records of `record_bytes` in `size_mib` MiB (at least one).
fn records_in(size_mib: u64, record_bytes: usize) -> anyhow::Result<u64> {
    if size_mib == 0 {
        bail!("--size-mib must be at least 1");
    }
    let bytes = size_mib
        .checked_mul(MIB)
        .context("--size-mib is too large")?;
    let record_bytes = u64::try_from(record_bytes).expect("a usize fits in u64");
    Ok((bytes / record_bytes).max(1))
}

impl BenchReplayArgs {
    /// Checks the flags against each other; a bad combination stops with a clear message.
    pub fn validate(&self) -> anyhow::Result<BenchReplayConfig> {
        check_partitions(self.partitions)?;
        if !(1..=BENCH_VALUE_BYTES_MAX).contains(&self.value_bytes) {
            bail!("--value-bytes must be between 1 and {BENCH_VALUE_BYTES_MAX}");
        }
        if self.existing && self.serve.data_dir.is_none() {
            bail!("--existing needs --data-dir: the topic's metadata lives there");
        }
        let serve = self.serve.validate()?;
        let records = records_in(self.size_mib, self.value_bytes)?;
        let topic = self
            .topic
            .clone()
            .unwrap_or(BENCH_TOPIC_DEFAULT.to_string());
        check_topic(&topic)?;
        Ok(BenchReplayConfig {
            topic,
            records: (!self.existing).then_some(records),
            partitions: self.partitions,
            value_bytes: self.value_bytes,
            compression: self.compression,
            serve,
            compact: self.compact,
            output: self.output,
        })
    }
}

/// The broker `bench produce|consume|e2e` measure.
#[derive(Debug, Clone, Args)]
pub struct BenchBrokerArgs {
    /// Measure the running broker at HOST:PORT instead of starting one. Its CPU, memory and
    /// object-store requests come from its `/metrics` (--http), where it exposes them.
    #[arg(
        long,
        value_name = "HOST:PORT",
        conflicts_with_all = ["object_store", "s3_endpoint", "s3_latency_ms", "data_dir", "serve_arg"]
    )]
    pub bootstrap: Option<String>,
    /// HTTP listener (`strato serve --http-listen`) of the --bootstrap broker, for its
    /// `/metrics`.
    #[arg(long, value_name = "HOST:PORT", requires = "bootstrap")]
    pub http: Option<String>,
    #[command(flatten)]
    pub serve: BenchServeArgs,
}

/// Acknowledgements the benchmark producer asks for (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchAcks {
    /// -1: the full in-sync replica set (on Strato: durable in the object store).
    #[value(name = "all", alias = "-1")]
    All,
    /// The leader (on Strato the same as all).
    #[value(name = "1")]
    Leader,
    /// No answer: a record counts as acknowledged once its request is written.
    #[value(name = "0")]
    None,
}

impl BenchAcks {
    /// The Produce request's `acks` field.
    pub fn code(self) -> i16 {
        match self {
            BenchAcks::All => -1,
            BenchAcks::Leader => 1,
            BenchAcks::None => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BenchAcks::All => "all",
            BenchAcks::Leader => "1",
            BenchAcks::None => "0",
        }
    }
}

/// The benchmark producer, with librdkafka's defaults.
#[derive(Debug, Clone, Args)]
pub struct BenchProducerArgs {
    /// Topic to produce to and read; created with --partitions if missing.
    #[arg(long, default_value = BENCH_LOAD_TOPIC_DEFAULT)]
    pub topic: String,
    /// Partitions of the topic when the benchmark creates it; records are spread round
    /// robin over the topic's partitions.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Bytes per record value (every other byte random, the rest repetitive, so compression
    /// is realistic).
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Records to produce (default: --size-mib's worth; bench e2e: 2000).
    #[arg(long, conflicts_with = "size_mib")]
    pub records: Option<u64>,
    /// MiB of record values to produce (default 1024 for bench produce and consume).
    #[arg(long)]
    pub size_mib: Option<u64>,
    /// Compression of the record batches (compression.type).
    #[arg(long, value_enum, default_value = "none")]
    pub compression: BenchCompression,
    /// Acknowledgements asked for (acks).
    #[arg(long, value_enum, default_value = "all")]
    pub acks: BenchAcks,
    /// How long a partition's batch waits for more records before it is sent (linger.ms;
    /// default 5, bench e2e 0).
    #[arg(long)]
    pub linger_ms: Option<u64>,
    /// Largest batch per partition in bytes of records (batch.size).
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_bytes: usize,
    /// Idempotent producer (enable.idempotence): a producer id and sequence numbers; needs
    /// --acks all and --in-flight at most 5.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub idempotent: bool,
    /// Produce requests in flight per connection (max.in.flight.requests.per.connection).
    #[arg(long, default_value_t = 5)]
    pub in_flight: usize,
    /// Records produced per second, 0 for as fast as the producer's queue takes them
    /// (default 0, bench e2e 1000). Latency without queueing: half the maximum rate.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Records waiting in the producer (queued or in flight) at most
    /// (queue.buffering.max.messages); the application waits when it is full.
    #[arg(long, default_value_t = 100_000)]
    pub queue_records: usize,
}

#[derive(Debug, Clone, Args)]
pub struct BenchProduceArgs {
    #[command(flatten)]
    pub broker: BenchBrokerArgs,
    #[command(flatten)]
    pub producer: BenchProducerArgs,
    /// Aligned columns for people, or one JSON document for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct BenchConsumeArgs {
    #[command(flatten)]
    pub broker: BenchBrokerArgs,
    #[command(flatten)]
    pub producer: BenchProducerArgs,
    /// Largest Fetch response (fetch.max.bytes).
    #[arg(long, default_value_t = 52_428_800)]
    pub fetch_max_bytes: i32,
    /// Largest answer per partition of a Fetch (max.partition.fetch.bytes).
    #[arg(long, default_value_t = 1_048_576)]
    pub max_partition_fetch_bytes: i32,
    /// Aligned columns for people, or one JSON document for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct BenchE2eArgs {
    #[command(flatten)]
    pub broker: BenchBrokerArgs,
    #[command(flatten)]
    pub producer: BenchProducerArgs,
    /// How long a Fetch waits for data (fetch.wait.max.ms; fetch.min.bytes is 1).
    #[arg(long, default_value_t = 500)]
    pub fetch_wait_max_ms: u64,
    /// Aligned columns for people, or one JSON document for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

/// Which of the load benchmarks runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchLoadKind {
    Produce,
    Consume,
    E2e,
}

impl BenchLoadKind {
    pub fn name(self) -> &'static str {
        match self {
            BenchLoadKind::Produce => "produce",
            BenchLoadKind::Consume => "consume",
            BenchLoadKind::E2e => "e2e",
        }
    }
}

/// The broker of a load benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BenchBroker {
    /// A `strato serve` child process.
    Own(BenchServeConfig),
    /// A running broker: its Kafka listener and, if given, its HTTP listener.
    Bootstrap { kafka: String, http: Option<String> },
}

/// A checked benchmark producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchProducerConfig {
    pub topic: String,
    pub partitions: i32,
    pub record_bytes: usize,
    pub compression: BenchCompression,
    pub acks: BenchAcks,
    pub linger: Duration,
    pub batch_bytes: usize,
    pub idempotent: bool,
    pub in_flight: usize,
    /// Records per second; 0: unlimited.
    pub rate: u64,
    pub queue_records: usize,
}

/// How the benchmark consumer fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchFetchConfig {
    pub bytes_max: i32,
    pub partition_bytes_max: i32,
    pub wait_max: Duration,
}

/// A checked `strato bench produce|consume|e2e` plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchLoadConfig {
    pub kind: BenchLoadKind,
    pub broker: BenchBroker,
    pub producer: BenchProducerConfig,
    /// Records to produce; `None` when `bench consume --bootstrap` reads the topic as it is.
    pub records: Option<u64>,
    pub fetch: BenchFetchConfig,
    pub output: OutputFormat,
}

/// The topic of `bench produce|consume|e2e` when `--topic` is not given.
pub const BENCH_LOAD_TOPIC_DEFAULT: &str = "strato-bench";
/// Largest `--batch-bytes`: a batch must stay under Kafka's default `max.message.bytes`
/// (1048588) with room for its header (61 bytes) and a codec's worst-case growth (lz4: 0.4%).
pub const BENCH_BATCH_BYTES_MAX: usize = 1_048_588 - 8 * 1024;
/// Largest `--in-flight` with `--idempotent true`: Kafka keeps the sequence numbers of the
/// last 5 batches per producer (`max.in.flight.requests.per.connection` ≤ 5).
pub const BENCH_IN_FLIGHT_IDEMPOTENT_MAX: usize = 5;
/// Largest `--in-flight` otherwise: memory is in flight × batch bytes × partitions per
/// connection.
pub const BENCH_IN_FLIGHT_MAX: usize = 100;
/// Largest `--queue-records` (librdkafka's own limit of queue.buffering.max.messages).
pub const BENCH_QUEUE_RECORDS_MAX: usize = 2_147_483_647;
/// Bytes of the send time at the start of every `bench e2e` value.
pub const BENCH_E2E_STAMP_BYTES: usize = 8;
/// Longest `--linger-ms` (librdkafka's limit of linger.ms is 900000).
const LINGER_MS_MAX: u64 = 900_000;
/// Longest `--fetch-wait-max-ms`: well under the client's 30 s request timeout.
const FETCH_WAIT_MS_MAX: u64 = 10_000;
/// `bench e2e`'s defaults: a modest rate, one record per batch.
const E2E_RECORDS_DEFAULT: u64 = 2000;
const E2E_RATE_DEFAULT: u64 = 1000;
/// librdkafka's linger.ms default.
const LINGER_MS_DEFAULT: u64 = 5;
const SIZE_MIB_DEFAULT: u64 = 1024;

impl BenchBrokerArgs {
    fn validate(&self) -> anyhow::Result<BenchBroker> {
        let Some(kafka) = &self.bootstrap else {
            return Ok(BenchBroker::Own(self.serve.validate()?));
        };
        for (flag, addr) in [("--bootstrap", Some(kafka)), ("--http", self.http.as_ref())] {
            if let Some(addr) = addr
                && !addr
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            {
                bail!("{flag} must be HOST:PORT, got {addr:?}");
            }
        }
        Ok(BenchBroker::Bootstrap {
            kafka: kafka.clone(),
            http: self.http.clone(),
        })
    }
}

impl BenchProducerArgs {
    fn validate(&self, kind: BenchLoadKind) -> anyhow::Result<BenchProducerConfig> {
        check_topic(&self.topic)?;
        check_partitions(self.partitions)?;
        let record_bytes_min = match kind {
            BenchLoadKind::E2e => BENCH_E2E_STAMP_BYTES,
            BenchLoadKind::Produce | BenchLoadKind::Consume => 1,
        };
        if !(record_bytes_min..=BENCH_VALUE_BYTES_MAX).contains(&self.record_bytes) {
            bail!("--record-bytes must be between {record_bytes_min} and {BENCH_VALUE_BYTES_MAX}");
        }
        if !(1..=BENCH_BATCH_BYTES_MAX).contains(&self.batch_bytes) {
            bail!("--batch-bytes must be between 1 and {BENCH_BATCH_BYTES_MAX}");
        }
        if self.idempotent && self.acks != BenchAcks::All {
            bail!("--idempotent true needs --acks all (pass --idempotent false)");
        }
        let in_flight_max = if self.idempotent {
            BENCH_IN_FLIGHT_IDEMPOTENT_MAX
        } else {
            BENCH_IN_FLIGHT_MAX
        };
        if !(1..=in_flight_max).contains(&self.in_flight) {
            bail!(
                "--in-flight must be between 1 and {in_flight_max} with --idempotent {}",
                self.idempotent
            );
        }
        if !(1..=BENCH_QUEUE_RECORDS_MAX).contains(&self.queue_records) {
            bail!("--queue-records must be between 1 and {BENCH_QUEUE_RECORDS_MAX}");
        }
        let linger_ms = self.linger_ms.unwrap_or(match kind {
            BenchLoadKind::E2e => 0,
            BenchLoadKind::Produce | BenchLoadKind::Consume => LINGER_MS_DEFAULT,
        });
        if linger_ms > LINGER_MS_MAX {
            bail!("--linger-ms must be at most {LINGER_MS_MAX}");
        }
        let rate = self.rate.unwrap_or(match kind {
            BenchLoadKind::E2e => E2E_RATE_DEFAULT,
            BenchLoadKind::Produce | BenchLoadKind::Consume => 0,
        });
        Ok(BenchProducerConfig {
            topic: self.topic.clone(),
            partitions: self.partitions,
            record_bytes: self.record_bytes,
            compression: self.compression,
            acks: self.acks,
            linger: Duration::from_millis(linger_ms),
            batch_bytes: self.batch_bytes,
            idempotent: self.idempotent,
            in_flight: self.in_flight,
            rate,
            queue_records: self.queue_records,
        })
    }

    /// Records to produce: `--records`, `--size-mib`'s worth, or the benchmark's default
    /// (`None`: none asked for).
    fn records(&self, kind: BenchLoadKind) -> anyhow::Result<Option<u64>> {
        let records = match (self.records, self.size_mib) {
            (Some(0), _) => bail!("--records must be at least 1"),
            (Some(records), _) => Some(records),
            (None, Some(size_mib)) => Some(records_in(size_mib, self.record_bytes)?),
            (None, None) => None,
        };
        let records = records.or(match kind {
            BenchLoadKind::E2e => Some(E2E_RECORDS_DEFAULT),
            BenchLoadKind::Produce | BenchLoadKind::Consume => {
                Some(records_in(SIZE_MIB_DEFAULT, self.record_bytes)?)
            }
        });
        // Sequence numbers are 32-bit (they would wrap within a partition).
        if records.is_some_and(|r| r > i32::MAX as u64) {
            bail!("at most {} records per run", i32::MAX);
        }
        Ok(records)
    }
}

fn load_config(
    kind: BenchLoadKind,
    broker: &BenchBrokerArgs,
    producer: &BenchProducerArgs,
    fetch: BenchFetchConfig,
    output: OutputFormat,
) -> anyhow::Result<BenchLoadConfig> {
    let broker = broker.validate()?;
    let producer_config = producer.validate(kind)?;
    let mut records = producer.records(kind)?;
    // `bench consume --bootstrap` reads what is there unless asked to produce first.
    if kind == BenchLoadKind::Consume
        && matches!(broker, BenchBroker::Bootstrap { .. })
        && producer.records.is_none()
        && producer.size_mib.is_none()
    {
        records = None;
    }
    if fetch.bytes_max < 1 || fetch.partition_bytes_max < 1 {
        bail!("--fetch-max-bytes and --max-partition-fetch-bytes must be positive");
    }
    Ok(BenchLoadConfig {
        kind,
        producer: producer_config,
        broker,
        records,
        fetch,
        output,
    })
}

/// librdkafka's consumer defaults: fetch.max.bytes, max.partition.fetch.bytes and
/// fetch.wait.max.ms.
pub const BENCH_FETCH_DEFAULTS: BenchFetchConfig = BenchFetchConfig {
    bytes_max: 52_428_800,
    partition_bytes_max: 1_048_576,
    wait_max: Duration::from_millis(500),
};

impl BenchProduceArgs {
    pub fn validate(&self) -> anyhow::Result<BenchLoadConfig> {
        load_config(
            BenchLoadKind::Produce,
            &self.broker,
            &self.producer,
            BENCH_FETCH_DEFAULTS,
            self.output,
        )
    }
}

impl BenchConsumeArgs {
    pub fn validate(&self) -> anyhow::Result<BenchLoadConfig> {
        let fetch = BenchFetchConfig {
            bytes_max: self.fetch_max_bytes,
            partition_bytes_max: self.max_partition_fetch_bytes,
            ..BENCH_FETCH_DEFAULTS
        };
        load_config(
            BenchLoadKind::Consume,
            &self.broker,
            &self.producer,
            fetch,
            self.output,
        )
    }
}

impl BenchE2eArgs {
    pub fn validate(&self) -> anyhow::Result<BenchLoadConfig> {
        if self.fetch_wait_max_ms > FETCH_WAIT_MS_MAX {
            bail!("--fetch-wait-max-ms must be at most {FETCH_WAIT_MS_MAX}");
        }
        let fetch = BenchFetchConfig {
            wait_max: Duration::from_millis(self.fetch_wait_max_ms),
            ..BENCH_FETCH_DEFAULTS
        };
        load_config(
            BenchLoadKind::E2e,
            &self.broker,
            &self.producer,
            fetch,
            self.output,
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn bench_replay(args: &[&str]) -> anyhow::Result<BenchReplayConfig> {
        let mut argv = vec!["strato", "bench", "replay"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::Bench(BenchCommand::Replay(replay)) = cli.command else {
            panic!("bench replay")
        };
        replay.validate()
    }

    #[test]
    fn bench_replay_flags_are_checked_together() {
        let config = bench_replay(&[]).unwrap();
        assert_eq!(config.records, Some(1024 * MIB / 1000));
        assert_eq!(config.topic, BENCH_TOPIC_DEFAULT);
        assert_eq!(config.partitions, 3);
        assert_eq!(config.compression, BenchCompression::Lz4);
        assert_eq!(config.serve.s3_latency, None);
        assert_eq!(config.output, OutputFormat::Table);
        let config = bench_replay(&[
            "--object-store",
            "s3://bench/run1",
            "--s3-endpoint",
            "http://127.0.0.1:4566/",
            "--s3-latency-ms",
            "30",
            "--serve-arg=--cache-memory-bytes=67108864",
            "--value-bytes",
            "3000",
            "--size-mib",
            "1",
        ])
        .unwrap();
        assert_eq!(
            config.serve.s3_latency,
            Some(("127.0.0.1:4566".to_string(), Duration::from_millis(30)))
        );
        assert_eq!(config.serve.serve_args, ["--cache-memory-bytes=67108864"]);
        assert_eq!(config.records, Some(MIB / 3000), "whole records only");
        let config = bench_replay(&["--existing", "--data-dir", "/tmp/x"]).unwrap();
        assert_eq!(config.records, None, "--existing writes nothing");

        for (args, message) in [
            (&["--size-mib", "0"][..], "--size-mib"),
            (&["--partitions", "0"], "--partitions"),
            (&["--value-bytes", "0"], "--value-bytes"),
            (&["--value-bytes", "1000000"], "--value-bytes"),
            (&["--existing"], "--data-dir"),
            (&["--s3-latency-ms", "30"], "--s3-endpoint"),
            (
                &[
                    "--object-store",
                    "s3://b",
                    "--s3-endpoint",
                    "https://s3.example.com",
                    "--s3-latency-ms",
                    "30",
                ],
                "http://",
            ),
            (&["--s3-endpoint", "http://127.0.0.1:4566"], "s3://"),
            (&["--topic", ""], "--topic"),
        ] {
            let err = bench_replay(args).unwrap_err().to_string();
            assert!(err.contains(message), "{args:?}: {err}");
        }
    }

    fn bench_load(sub: &str, args: &[&str]) -> anyhow::Result<BenchLoadConfig> {
        let mut argv = vec!["strato", "bench", sub];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        match cli.command {
            Command::Bench(BenchCommand::Produce(args)) => args.validate(),
            Command::Bench(BenchCommand::Consume(args)) => args.validate(),
            Command::Bench(BenchCommand::E2e(args)) => args.validate(),
            _ => panic!("bench {sub}"),
        }
    }

    #[test]
    fn bench_load_defaults_are_librdkafkas() {
        let config = bench_load("produce", &[]).unwrap();
        assert_eq!(config.kind, BenchLoadKind::Produce);
        assert_eq!(
            config.broker,
            BenchBroker::Own(BenchServeConfig {
                object_store: None,
                s3_endpoint: None,
                s3_latency: None,
                data_dir: None,
                serve_args: Vec::new(),
            })
        );
        assert_eq!(config.records, Some(1024 * MIB / 1024));
        let producer = &config.producer;
        assert_eq!(producer.topic, BENCH_LOAD_TOPIC_DEFAULT);
        assert_eq!(producer.partitions, 1);
        assert_eq!(producer.record_bytes, 1024);
        assert_eq!(producer.compression, BenchCompression::None);
        assert_eq!(producer.acks, BenchAcks::All);
        assert_eq!(producer.linger, Duration::from_millis(5));
        assert_eq!(producer.batch_bytes, 1_000_000);
        assert!(producer.idempotent);
        assert_eq!(producer.in_flight, 5);
        assert_eq!(producer.rate, 0);
        assert_eq!(producer.queue_records, 100_000);
        assert_eq!(config.fetch, BENCH_FETCH_DEFAULTS);
        assert_eq!(config.output, OutputFormat::Table);

        let e2e = bench_load("e2e", &[]).unwrap();
        assert_eq!(e2e.records, Some(2000));
        assert_eq!(e2e.producer.rate, 1000);
        assert_eq!(e2e.producer.linger, Duration::ZERO);
        assert_eq!(e2e.fetch.wait_max, Duration::from_millis(500));

        let consume = bench_load("consume", &["--size-mib", "2", "--record-bytes", "100"]).unwrap();
        assert_eq!(consume.records, Some(2 * MIB / 100));
        assert_eq!(consume.fetch.bytes_max, 52_428_800);
        assert_eq!(consume.fetch.partition_bytes_max, 1_048_576);
        let existing = bench_load("consume", &["--bootstrap", "10.0.0.5:9092"]).unwrap();
        assert_eq!(existing.records, None, "reads the topic as it is");
        let produce_first = bench_load(
            "consume",
            &["--bootstrap", "10.0.0.5:9092", "--records", "10"],
        )
        .unwrap();
        assert_eq!(produce_first.records, Some(10));
        assert_eq!(
            produce_first.broker,
            BenchBroker::Bootstrap {
                kafka: "10.0.0.5:9092".to_string(),
                http: None
            }
        );

        let config = bench_load(
            "produce",
            &[
                "--acks",
                "1",
                "--idempotent",
                "false",
                "--in-flight",
                "20",
                "--linger-ms",
                "0",
                "--rate",
                "5000",
                "--compression",
                "zstd",
            ],
        )
        .unwrap();
        assert_eq!(config.producer.acks, BenchAcks::Leader);
        assert_eq!(config.producer.acks.code(), 1);
        assert!(!config.producer.idempotent);
        assert_eq!(config.producer.in_flight, 20);
        assert_eq!(config.producer.rate, 5000);
    }

    #[test]
    fn bench_load_flags_are_checked_together() {
        for (sub, args, message) in [
            ("produce", &["--size-mib", "0"][..], "--size-mib"),
            ("produce", &["--records", "0"], "--records"),
            ("produce", &["--records", "3000000000"], "records per run"),
            ("produce", &["--partitions", "0"], "--partitions"),
            ("produce", &["--record-bytes", "0"], "--record-bytes"),
            ("e2e", &["--record-bytes", "7"], "--record-bytes"),
            ("produce", &["--batch-bytes", "2000000"], "--batch-bytes"),
            ("produce", &["--acks", "1"], "--idempotent"),
            ("produce", &["--in-flight", "6"], "--in-flight"),
            (
                "produce",
                &["--idempotent", "false", "--in-flight", "0"],
                "--in-flight",
            ),
            ("produce", &["--queue-records", "0"], "--queue-records"),
            ("produce", &["--linger-ms", "1000000"], "--linger-ms"),
            ("produce", &["--s3-latency-ms", "30"], "--s3-endpoint"),
            ("produce", &["--bootstrap", "nohost"], "HOST:PORT"),
            (
                "produce",
                &["--bootstrap", "h:1", "--http", "h:x"],
                "--http",
            ),
            ("consume", &["--fetch-max-bytes", "0"], "--fetch-max-bytes"),
            (
                "e2e",
                &["--fetch-wait-max-ms", "20000"],
                "--fetch-wait-max-ms",
            ),
            ("produce", &["--topic", ""], "--topic"),
        ] {
            let err = bench_load(sub, args).unwrap_err().to_string();
            assert!(err.contains(message), "{sub} {args:?}: {err}");
        }
        // Refused by clap: flags of the own broker with --bootstrap, --http without it.
        for args in [
            &["--bootstrap", "h:1", "--serve-arg=--x"][..],
            &["--bootstrap", "h:1", "--object-store", "memory://"],
            &["--http", "h:1"],
            &["--records", "1", "--size-mib", "1"],
        ] {
            let mut argv = vec!["strato", "bench", "produce"];
            argv.extend_from_slice(args);
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
    }
}
