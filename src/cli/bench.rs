//! `strato bench replay`: how fast a consumer replays a topic from object storage with a
//! cold cache (issue 5).
//!
//! It starts `strato serve` (this executable, `bench_broker`), writes N MiB into a topic
//! with several Produce requests in flight, stops the broker with SIGTERM and starts it again
//! on the same data dir and object store (the chunk cache starts empty: its disk tier is
//! cleared at start-up), then replays every partition from its start to its end offset with
//! one connection per partition, the next fetch in flight while the last response is
//! decoded and decompressed. It reports MB/s, records/s, the broker's object-store GETs (from
//! `/metrics`) and its peak memory (VmHWM). A benchmark reports; nothing here asserts speed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::bench_broker::{BrokerProcess, LatencyProxy, ServeOptions, metric};
use super::cluster::{Client, OffsetSpec, TopicPartition};
use super::kafka_client::{ClientError, ClientOptions, Connection};
use super::record_api::{self, DecodedBatch, FetchOptions};
use super::table::render_table;
use super::{bench_load, bench_load_report};
use crate::config::OutputFormat;
use crate::config::bench::{BenchCommand, BenchCompression, BenchLoadConfig, BenchReplayConfig};

/// Record values per produced batch. With 1000-byte values and no compression a batch stays
/// under Kafka's default `max.message.bytes` (1 MiB + 12), which the broker enforces.
const BATCH_VALUE_BYTES: usize = 512 * 1024;
/// Produce requests in flight, one per connection. The broker acknowledges a batch once its
/// segment is flushed (every 5 ms on file://, 100 ms on S3), so throughput needs many
/// batches waiting at once; 32 × 512 KiB stays well under its 64 MiB unflushed-bytes limit.
const PRODUCE_REQUESTS_IN_FLIGHT: usize = 32;
/// Fetch `max_bytes` per request (one partition per request): librdkafka's
/// `max.partition.fetch.bytes` in benches/replay.rs.
const FETCH_BYTES_MAX: i32 = 8 * 1024 * 1024;
/// Largest Fetch response accepted: the broker's default `--max-fetch-bytes`; above
/// `FETCH_BYTES_MAX` only when a single batch is larger (KIP-74).
const FETCH_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Long poll of a fetch that finds nothing new.
const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);
const REPLAY_FETCH: FetchOptions = FetchOptions {
    max_wait: FETCH_MAX_WAIT,
    bytes_max: FETCH_BYTES_MAX,
};
/// Fetched responses waiting for the decoder, per partition: the next fetch overlaps the
/// decoding of the last one, and memory stays bounded.
const DECODE_QUEUE: usize = 2;
/// Partitions replayed at once (one connection each).
const REPLAY_PARTITIONS_CONCURRENT_MAX: usize = 16;
/// A partition that makes no progress for this long fails the replay.
const REPLAY_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a new topic may take to get leaders.
const LEADER_WAIT: Duration = Duration::from_secs(30);
const BYTES_PER_MB: f64 = 1e6;
const BYTES_PER_GIB: f64 = (1u64 << 30) as f64;
const BYTES_PER_MIB: f64 = (1u64 << 20) as f64;

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Replay(args) => {
            let config = args.validate()?;
            // Ctrl-C or SIGTERM drops the benchmark, and with it the broker process (killed
            // by pid) and the temporary data dir.
            let report = tokio::select! {
                report = replay(&config) => report?,
                signal = interrupted() => bail!("{signal}: benchmark stopped"),
            };
            print!("{}", render(&config, &report));
            Ok(())
        }
        BenchCommand::Produce(args) => run_load(args.validate()?).await,
        BenchCommand::Consume(args) => run_load(args.validate()?).await,
        BenchCommand::E2e(args) => run_load(args.validate()?).await,
    }
}

async fn run_load(config: BenchLoadConfig) -> anyhow::Result<()> {
    // As for replay: an interruption drops the run, which kills the broker it started.
    let report = tokio::select! {
        report = bench_load::run(&config) => report?,
        signal = interrupted() => bail!("{signal}: benchmark stopped"),
    };
    print!("{}", bench_load_report::render(&config, &report));
    Ok(())
}

pub(super) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// Records and bytes moved in some seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Throughput {
    pub(super) records: u64,
    /// Record value bytes (what an application sees).
    pub(super) value_bytes: u64,
    /// Record batch bytes on the wire (compressed).
    pub(super) wire_bytes: u64,
    pub(super) seconds: f64,
}

impl Throughput {
    pub(super) fn per_second(&self, amount: f64) -> f64 {
        if self.seconds > 0.0 {
            amount / self.seconds
        } else {
            0.0
        }
    }

    pub(super) fn value_mb_per_s(&self) -> f64 {
        self.per_second(self.value_bytes as f64 / BYTES_PER_MB)
    }

    pub(super) fn wire_mb_per_s(&self) -> f64 {
        self.per_second(self.wire_bytes as f64 / BYTES_PER_MB)
    }

    pub(super) fn records_per_s(&self) -> f64 {
        self.per_second(self.records as f64)
    }
}

/// Object-store GETs per GiB of record values replayed.
fn gets_per_gib(gets: u64, value_bytes: u64) -> f64 {
    per_gib(gets as f64, value_bytes).unwrap_or(0.0)
}

/// `amount` per GiB of `value_bytes`; `None` without bytes.
pub(super) fn per_gib(amount: f64, value_bytes: u64) -> Option<f64> {
    (value_bytes > 0).then(|| amount / (value_bytes as f64 / BYTES_PER_GIB))
}

/// The broker's object-store and cache counters from `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StoreCounters {
    gets: u64,
    get_bytes: u64,
    cache_misses: u64,
    read_ahead: u64,
}

impl StoreCounters {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let counter = |series: &str| {
            metric(text, series)
                .map(|v| v as u64)
                .with_context(|| format!("/metrics has no {series}"))
        };
        Ok(Self {
            gets: counter("strato_object_store_requests_total{operation=\"get\"}")?,
            get_bytes: counter("strato_object_store_bytes_total{direction=\"get\"}")?,
            cache_misses: counter("strato_chunk_cache_requests_total{result=\"miss\"}")?,
            read_ahead: counter("strato_chunk_reads_total{kind=\"read_ahead\"}")?,
        })
    }

    fn since(self, before: Self) -> Self {
        Self {
            gets: self.gets.saturating_sub(before.gets),
            get_bytes: self.get_bytes.saturating_sub(before.get_bytes),
            cache_misses: self.cache_misses.saturating_sub(before.cache_misses),
            read_ahead: self.read_ahead.saturating_sub(before.read_ahead),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Report {
    object_store: String,
    partitions: usize,
    /// `None` with `--existing`.
    write: Option<Throughput>,
    write_peak_rss_bytes: Option<u64>,
    /// With `--compact`.
    compaction: Option<Compaction>,
    replay: Throughput,
    store: StoreCounters,
    replay_peak_rss_bytes: u64,
}

/// What `--compact` did before the replay.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Compaction {
    entries_before: u64,
    entries_after: u64,
    seconds: f64,
}

/// Longest `--compact` waits for compaction to finish.
const COMPACTION_DEADLINE: Duration = Duration::from_secs(3600);

/// Runs a broker that compacts every second until its backlog is empty; returns the index
/// entries before and after.
async fn compact(serve: &ServeOptions) -> anyhow::Result<Compaction> {
    let mut extra_args = serve.extra_args.clone();
    if !extra_args
        .iter()
        .any(|a| a.starts_with("--compaction-interval-ms"))
    {
        extra_args.push("--compaction-interval-ms=1000".to_string());
    }
    let broker = BrokerProcess::start(&ServeOptions {
        extra_args,
        ..serve.clone()
    })
    .await?;
    let started = Instant::now();
    let gauge = |text: &str, series: &str| {
        metric(text, series).with_context(|| format!("/metrics has no {series}"))
    };
    let mut entries_before = None;
    let entries_after = loop {
        let text = broker.metrics().await?;
        let entries = gauge(&text, "strato_index_entries")? as u64;
        let backlog = gauge(&text, "strato_compaction_backlog_entries")? as u64;
        // Zero entries: the broker has not loaded its partitions yet.
        if entries > 0 {
            entries_before.get_or_insert(entries);
            if backlog == 0 {
                break entries;
            }
        }
        if started.elapsed() > COMPACTION_DEADLINE {
            bail!("compaction still has {backlog} entries to merge after {COMPACTION_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    broker
        .stop()
        .await
        .context("stop the broker after compacting")?;
    Ok(Compaction {
        entries_before: entries_before.unwrap_or(entries_after),
        entries_after,
        seconds,
    })
}

async fn replay(config: &BenchReplayConfig) -> anyhow::Result<Report> {
    // Declared before the brokers, so it is removed after they are stopped.
    let temp_dir;
    let data_dir = match &config.serve.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp_dir = tempfile::Builder::new()
                .prefix("strato-bench-")
                .tempdir()
                .context("create a temporary data dir")?;
            temp_dir.path().to_path_buf()
        }
    };
    let serve = ServeOptions {
        data_dir,
        object_store: config.serve.object_store.clone(),
        s3_endpoint: config.serve.s3_endpoint.clone(),
        extra_args: config.serve.serve_args.clone(),
    };
    let object_store = config
        .serve
        .object_store
        .clone()
        .unwrap_or_else(|| crate::config::default_object_store_url(&serve.data_dir));

    let (write, write_peak_rss_bytes) = match config.records {
        Some(records) => {
            let broker = BrokerProcess::start(&serve).await?;
            let write = write_topic(&broker.kafka_addr, config, records)
                .await
                .with_context(|| format!("write topic {}", config.topic))?;
            let peak = broker.peak_rss_bytes().await?;
            broker
                .stop()
                .await
                .context("stop the broker after writing")?;
            (Some(write), Some(peak))
        }
        None => (None, None),
    };
    let compaction = if config.compact {
        Some(compact(&serve).await.context("compact the topic")?)
    } else {
        None
    };

    // A fresh broker process: its chunk cache is empty, every chunk comes from the store.
    let proxy = match &config.serve.s3_latency {
        Some((target, latency)) => Some(LatencyProxy::start(target.clone(), *latency).await?),
        None => None,
    };
    let replay_serve = ServeOptions {
        s3_endpoint: proxy
            .as_ref()
            .map(|p| p.endpoint.clone())
            .or(serve.s3_endpoint.clone()),
        ..serve
    };
    let broker = BrokerProcess::start(&replay_serve).await?;
    let before = StoreCounters::parse(&broker.metrics().await?)?;
    let (replay, partitions) =
        replay_topic(&broker.kafka_addr, &config.topic, "replay", REPLAY_FETCH)
            .await
            .with_context(|| format!("replay topic {}", config.topic))?;
    let store = StoreCounters::parse(&broker.metrics().await?)?.since(before);
    let replay_peak_rss_bytes = broker.peak_rss_bytes().await?;
    broker
        .stop()
        .await
        .context("stop the broker after the replay")?;
    drop(proxy);
    Ok(Report {
        compaction,
        object_store,
        partitions,
        write,
        write_peak_rss_bytes,
        replay,
        store,
        replay_peak_rss_bytes,
    })
}

pub(super) fn client_options() -> ClientOptions {
    ClientOptions {
        response_bytes_max: FETCH_RESPONSE_BYTES_MAX,
        ..ClientOptions::default()
    }
}

/// Creates `topic` with `partitions` partitions; false if it exists already.
pub(super) async fn create_topic(
    client: &mut Client,
    topic: &str,
    partitions: i32,
    options: &ClientOptions,
) -> anyhow::Result<bool> {
    let node = *client
        .node_ids()
        .first()
        .context("the cluster has no brokers")?;
    let created = record_api::create_topic(
        client.node(node).await?,
        topic,
        partitions,
        options.request_timeout,
    )
    .await;
    match created {
        Ok(()) => Ok(true),
        Err(ClientError::Kafka { code, .. }) if code.is(ResponseError::TopicAlreadyExists) => {
            Ok(false)
        }
        Err(err) => Err(err).with_context(|| format!("create topic {topic}")),
    }
}

/// Partition -> host:port of its leader, once every partition of `topic` has one.
pub(super) async fn leaders(
    client: &mut Client,
    topic: &str,
) -> anyhow::Result<BTreeMap<i32, String>> {
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        let layouts = client.topic_layouts(&[topic.to_string()]).await?;
        let layout = match layouts.get(topic) {
            Some(Ok(layout)) => layout,
            Some(Err(code)) if code.is(ResponseError::UnknownTopicOrPartition) => {
                bail!("topic {topic} does not exist")
            }
            Some(Err(code)) => bail!("topic {topic}: {code}"),
            None => bail!("topic {topic} does not exist"),
        };
        let addrs: Option<BTreeMap<i32, String>> = layout
            .leaders
            .iter()
            .map(|(partition, leader)| {
                let node = leader.ok()?;
                Some((*partition, client.broker_addr(node)?.to_string()))
            })
            .collect();
        match addrs {
            Some(addrs) if !addrs.is_empty() => return Ok(addrs),
            _ if Instant::now() >= deadline => {
                bail!("topic {topic} has partitions without a leader after {LEADER_WAIT:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn write_topic(
    bootstrap: &str,
    config: &BenchReplayConfig,
    records: u64,
) -> anyhow::Result<Throughput> {
    let options = client_options();
    let mut client = Client::connect(bootstrap, options.clone()).await?;
    if !create_topic(&mut client, &config.topic, config.partitions, &options).await? {
        bail!(
            "topic {} exists already: pass --existing to replay it as it is, or choose another --topic",
            config.topic
        )
    }
    let leaders = Arc::new(leaders(&mut client, &config.topic).await?);
    let partitions: Vec<i32> = leaders.keys().copied().collect();
    let records_per_batch = (BATCH_VALUE_BYTES / config.value_bytes).max(1) as u64;
    let compression = compression(config.compression);
    let next_batch = AtomicU64::new(0);
    let totals = Totals::default();
    let progress = progress_bar("write", records);
    let started = Instant::now();
    let workers = (0..PRODUCE_REQUESTS_IN_FLIGHT).map(|_| async {
        // One connection per leader, opened on first use.
        let mut connections: BTreeMap<String, Connection> = BTreeMap::new();
        loop {
            let batch_idx = next_batch.fetch_add(1, Ordering::Relaxed);
            let first = batch_idx.saturating_mul(records_per_batch);
            if first >= records {
                return anyhow::Ok(());
            }
            let count = records_per_batch.min(records - first);
            let partition = partitions[(batch_idx % partitions.len() as u64) as usize];
            let value_bytes = config.value_bytes;
            let batch = tokio::task::spawn_blocking(move || {
                let values = bench_values(batch_idx, count, value_bytes);
                record_api::encode_batch(&values, compression, now_ms())
            })
            .await
            .context("build a record batch")??;
            let addr = &leaders[&partition];
            if !connections.contains_key(addr) {
                let connection = Connection::connect(addr, options.clone()).await?;
                connections.insert(addr.clone(), connection);
            }
            let connection = connections.get_mut(addr).expect("inserted above");
            let wire_bytes = batch.len() as u64;
            record_api::produce(
                connection,
                &config.topic,
                vec![(partition, batch)],
                options.request_timeout,
            )
            .await
            .with_context(|| format!("produce to partition {partition}"))?;
            totals.add(count, count * value_bytes as u64, wire_bytes);
            progress.inc(count);
        }
    });
    futures::future::try_join_all(workers).await?;
    progress.finish_and_clear();
    Ok(totals.throughput(started.elapsed()))
}

pub(super) fn compression(choice: BenchCompression) -> Compression {
    match choice {
        BenchCompression::None => Compression::None,
        BenchCompression::Lz4 => Compression::Lz4,
        BenchCompression::Zstd => Compression::Zstd,
    }
}

pub(super) fn compression_name(choice: BenchCompression) -> &'static str {
    match choice {
        BenchCompression::None => "none",
        BenchCompression::Lz4 => "lz4",
        BenchCompression::Zstd => "zstd",
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `count` values of `value_bytes` for batch `batch_idx`: every other byte random
/// (xorshift), the rest `x`, like benches/replay.rs (lz4 shrinks them by about a fifth).
pub(super) fn bench_values(batch_idx: u64, count: u64, value_bytes: usize) -> Vec<Bytes> {
    let mut seed = batch_idx.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            let mut value = vec![b'x'; value_bytes];
            for byte in value.iter_mut().step_by(2) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *byte = seed.to_le_bytes()[0];
            }
            Bytes::from(value)
        })
        .collect()
}

/// A progress bar of `records` on standard error; indicatif hides it when standard error is
/// not a terminal (scripts, `--output json` piped, tests).
pub(super) fn progress_bar(phase: &'static str, records: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(records),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>6} [{bar:40}] {human_pos}/{human_len} records ({percent}%), eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(phase);
    bar
}

/// Counters shared by concurrent producers.
#[derive(Debug, Default)]
struct Totals {
    records: AtomicU64,
    value_bytes: AtomicU64,
    wire_bytes: AtomicU64,
}

impl Totals {
    fn add(&self, records: u64, value_bytes: u64, wire_bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.value_bytes.fetch_add(value_bytes, Ordering::Relaxed);
        self.wire_bytes.fetch_add(wire_bytes, Ordering::Relaxed);
    }

    fn throughput(&self, elapsed: Duration) -> Throughput {
        Throughput {
            records: self.records.load(Ordering::Relaxed),
            value_bytes: self.value_bytes.load(Ordering::Relaxed),
            wire_bytes: self.wire_bytes.load(Ordering::Relaxed),
            seconds: elapsed.as_secs_f64(),
        }
    }
}

/// Replays every partition of `topic` from its start to its end offset (as ListOffsets gives
/// them before the replay starts); returns the throughput and the number of partitions.
pub(super) async fn replay_topic(
    bootstrap: &str,
    topic: &str,
    phase: &'static str,
    fetch: FetchOptions,
) -> anyhow::Result<(Throughput, usize)> {
    let options = client_options();
    let mut client = Client::connect(bootstrap, options.clone()).await?;
    let leaders = leaders(&mut client, topic).await?;
    let tps: Vec<TopicPartition> = leaders
        .keys()
        .map(|p| TopicPartition::new(topic, *p))
        .collect();
    let starts = client.list_offsets(&tps, OffsetSpec::Earliest).await?;
    let ends = client.list_offsets(&tps, OffsetSpec::Latest).await?;
    let mut plans = Vec::with_capacity(tps.len());
    for tp in &tps {
        let start = starts[tp].map_err(|code| anyhow::anyhow!("start offset of {tp}: {code}"))?;
        let end = ends[tp].map_err(|code| anyhow::anyhow!("end offset of {tp}: {code}"))?;
        plans.push((leaders[&tp.partition].clone(), tp.partition, start, end));
    }
    let totals = Totals::default();
    let records: i64 = plans.iter().map(|(_, _, start, end)| end - start).sum();
    let progress = progress_bar(phase, u64::try_from(records).unwrap_or(0));
    let started = Instant::now();
    futures::stream::iter(plans)
        .map(|(addr, partition, start, end)| {
            let totals = &totals;
            let progress = progress.clone();
            let options = options.clone();
            async move {
                let (decoded, wire_bytes) = replay_partition(
                    &addr,
                    topic,
                    (partition, start, end),
                    fetch,
                    options,
                    progress,
                )
                .await
                .with_context(|| format!("replay partition {partition}"))?;
                totals.add(decoded.records, decoded.value_bytes, wire_bytes);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(REPLAY_PARTITIONS_CONCURRENT_MAX)
        .try_collect::<Vec<()>>()
        .await?;
    progress.finish_and_clear();
    Ok((totals.throughput(started.elapsed()), tps.len()))
}

/// One partition on a connection of its own: fetches from `start` until `end` while a second
/// task decodes what was fetched (decompression included). Returns what was decoded and the
/// record batch bytes fetched.
async fn replay_partition(
    addr: &str,
    topic: &str,
    (partition, start, end): (i32, i64, i64),
    fetch_options: FetchOptions,
    options: ClientOptions,
    progress: indicatif::ProgressBar,
) -> anyhow::Result<(DecodedBatch, u64)> {
    let mut connection = Connection::connect(addr, options).await?;
    let (batches_tx, mut batches_rx) = mpsc::channel::<(Vec<Bytes>, i64)>(DECODE_QUEUE);
    let fetcher = async move {
        let mut offset = start;
        let mut wire_bytes = 0u64;
        let mut progress_at = Instant::now();
        while offset < end {
            let fetched =
                record_api::fetch(&mut connection, topic, partition, offset, fetch_options).await?;
            let (batches, next) = record_api::complete_batches(&fetched.records)?;
            match next {
                Some(next) if next > offset => {
                    wire_bytes += batches.iter().map(|b| b.len() as u64).sum::<u64>();
                    batches_tx
                        .send((batches, offset))
                        .await
                        .context("the decoder stopped")?;
                    offset = next;
                    progress_at = Instant::now();
                }
                _ if progress_at.elapsed() >= REPLAY_STALL_TIMEOUT => bail!(
                    "no progress at offset {offset} for {REPLAY_STALL_TIMEOUT:?} (end {end}, high watermark {})",
                    fetched.high_watermark
                ),
                _ => {}
            }
        }
        anyhow::Ok(wire_bytes)
    };
    let decoder = async move {
        let mut decoded = DecodedBatch::default();
        while let Some((batches, from)) = batches_rx.recv().await {
            // Decompression is CPU work: off the async workers.
            let part = tokio::task::spawn_blocking(move || {
                batches
                    .into_iter()
                    .try_fold(DecodedBatch::default(), |sum, batch| {
                        let one = record_api::decode_batch(batch, from)?;
                        anyhow::Ok(DecodedBatch {
                            records: sum.records + one.records,
                            value_bytes: sum.value_bytes + one.value_bytes,
                        })
                    })
            })
            .await
            .context("decode record batches")??;
            decoded.records += part.records;
            decoded.value_bytes += part.value_bytes;
            progress.inc(part.records);
        }
        anyhow::Ok(decoded)
    };
    let (wire_bytes, decoded) = tokio::try_join!(fetcher, decoder)?;
    Ok((decoded, wire_bytes))
}

fn render(config: &BenchReplayConfig, report: &Report) -> String {
    render_output(
        config.output,
        || report_json(config, report),
        || report_table(config, report),
    )
}

/// A benchmark's report as `output` asks: one pretty JSON document, or tables.
pub(super) fn render_output(
    output: OutputFormat,
    json: impl FnOnce() -> Value,
    table: impl FnOnce() -> String,
) -> String {
    match output {
        OutputFormat::Json => {
            let mut text =
                serde_json::to_string_pretty(&json()).expect("a serde_json::Value serializes");
            text.push('\n');
            text
        }
        OutputFormat::Table => table(),
    }
}

pub(super) fn throughput_json(t: &Throughput) -> Value {
    json!({
        "records": t.records,
        "value_bytes": t.value_bytes,
        "wire_bytes": t.wire_bytes,
        "seconds": t.seconds,
        "value_mb_per_s": t.value_mb_per_s(),
        "wire_mb_per_s": t.wire_mb_per_s(),
        "records_per_s": t.records_per_s(),
    })
}

fn report_json(config: &BenchReplayConfig, report: &Report) -> Value {
    let write = report.write.as_ref().map(|w| {
        let mut value = throughput_json(w);
        value["broker_peak_rss_bytes"] = json!(report.write_peak_rss_bytes);
        value
    });
    let mut replay = throughput_json(&report.replay);
    replay["object_store_gets"] = json!(report.store.gets);
    replay["object_store_get_bytes"] = json!(report.store.get_bytes);
    replay["gets_per_gib"] = json!(gets_per_gib(report.store.gets, report.replay.value_bytes));
    replay["chunk_cache_misses"] = json!(report.store.cache_misses);
    replay["read_ahead_chunks"] = json!(report.store.read_ahead);
    replay["broker_peak_rss_bytes"] = json!(report.replay_peak_rss_bytes);
    let compaction = report.compaction.map(|c| {
        json!({
            "index_entries_before": c.entries_before,
            "index_entries_after": c.entries_after,
            "seconds": c.seconds,
        })
    });
    json!({
        "topic": config.topic,
        "partitions": report.partitions,
        "value_bytes": config.value_bytes,
        "compression": compression_name(config.compression),
        "object_store": report.object_store,
        "s3_latency_ms": config.serve.s3_latency.as_ref().map_or(0, |(_, l)| l.as_millis() as u64),
        "write": write,
        "compaction": compaction,
        "replay": replay,
    })
}

fn report_table(config: &BenchReplayConfig, report: &Report) -> String {
    let latency = match &config.serve.s3_latency {
        Some((_, latency)) => format!(", +{} ms per S3 request", latency.as_millis()),
        None => String::new(),
    };
    let mut out = format!(
        "topic {} ({} partitions), {} B values, {} compression, {}{latency}\n\n",
        config.topic,
        report.partitions,
        config.value_bytes,
        compression_name(config.compression),
        report.object_store,
    );
    let mib = |bytes: u64| format!("{:.1}", bytes as f64 / BYTES_PER_MIB);
    let row = |phase: &str, t: &Throughput, rss: Option<u64>| {
        vec![
            phase.to_string(),
            t.records.to_string(),
            mib(t.value_bytes),
            mib(t.wire_bytes),
            format!("{:.2}", t.seconds),
            format!("{:.1}", t.value_mb_per_s()),
            format!("{:.1}", t.wire_mb_per_s()),
            format!("{:.0}", t.records_per_s()),
            rss.map_or("-".to_string(), mib),
        ]
    };
    let mut rows = Vec::new();
    if let Some(write) = &report.write {
        rows.push(row("write", write, report.write_peak_rss_bytes));
    }
    rows.push(row(
        "replay",
        &report.replay,
        Some(report.replay_peak_rss_bytes),
    ));
    out.push_str(&render_table(
        &[
            "PHASE",
            "RECORDS",
            "VALUE_MIB",
            "WIRE_MIB",
            "SECONDS",
            "MB/S",
            "WIRE_MB/S",
            "RECORDS/S",
            "BROKER_PEAK_RSS_MIB",
        ],
        &rows,
    ));
    if let Some(c) = report.compaction {
        out.push_str(&format!(
            "\ncompaction: {} index entries before, {} after, {:.1} s\n",
            c.entries_before, c.entries_after, c.seconds
        ));
    }
    out.push_str(&format!(
        "\nreplay: {} GETs ({} MiB, {:.0} GETs/GiB), {} chunk cache misses, {} chunks read ahead\n",
        report.store.gets,
        mib(report.store.get_bytes),
        gets_per_gib(report.store.gets, report.replay.value_bytes),
        report.store.cache_misses,
        report.store.read_ahead,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_and_never_divide_by_zero() {
        let t = Throughput {
            records: 1000,
            value_bytes: 5_000_000,
            wire_bytes: 2_500_000,
            seconds: 2.0,
        };
        assert_eq!(t.value_mb_per_s(), 2.5);
        assert_eq!(t.wire_mb_per_s(), 1.25);
        assert_eq!(t.records_per_s(), 500.0);
        let instant = Throughput { seconds: 0.0, ..t };
        assert_eq!(instant.value_mb_per_s(), 0.0);
    }

    #[test]
    fn gets_are_counted_per_gib_of_values() {
        assert_eq!(gets_per_gib(352, 1 << 30), 352.0);
        assert_eq!(gets_per_gib(88, 256 << 20), 352.0);
        assert_eq!(gets_per_gib(5, 0), 0.0);
    }

    #[test]
    fn amounts_per_gib_scale_to_a_gib_of_values() {
        assert_eq!(per_gib(3.0, 1 << 30), Some(3.0));
        assert_eq!(per_gib(1.0, 256 << 20), Some(4.0));
        assert_eq!(per_gib(1.0, 0), None);
    }

    #[test]
    fn store_counters_are_the_difference_of_two_scrapes() {
        let scrape = |gets: u64, bytes: u64| {
            format!(
                "strato_object_store_requests_total{{operation=\"get\"}} {gets}\n\
                 strato_object_store_bytes_total{{direction=\"get\"}} {bytes}\n\
                 strato_chunk_cache_requests_total{{result=\"miss\"}} {gets}\n\
                 strato_chunk_reads_total{{kind=\"read_ahead\"}} 1\n"
            )
        };
        let before = StoreCounters::parse(&scrape(2, 100)).unwrap();
        let after = StoreCounters::parse(&scrape(12, 1100)).unwrap();
        let delta = after.since(before);
        assert_eq!(delta.gets, 10);
        assert_eq!(delta.get_bytes, 1000);
        assert_eq!(delta.read_ahead, 0);
        assert!(StoreCounters::parse("strato_up 1\n").is_err());
    }

    #[test]
    fn bench_values_are_half_random_and_differ_per_batch() {
        let a = bench_values(1, 3, 1000);
        let b = bench_values(2, 3, 1000);
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|v| v.len() == 1000));
        assert!(a[0].iter().skip(1).step_by(2).all(|b| *b == b'x'));
        assert_ne!(a[0], a[1]);
        assert_ne!(a[0], b[0]);
    }
}
