//! What the benchmarks share (`bench_replay` and the load benchmarks `bench_load`,
//! `bench_producer`, `bench_load_report`): the throughput arithmetic, client options, topic
//! creation and leader discovery, the generated record values, the replay of a topic end to
//! end with one connection per partition, and the JSON and table output.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::cluster::{Client, OffsetSpec, TopicPartition};
use super::kafka_client::{ClientError, ClientOptions, Connection};
use super::record_api::{self, DecodedBatch, FetchOptions};
use crate::config::OutputFormat;
use crate::config::bench::BenchCompression;

/// Fetch `max_bytes` per request (one partition per request): librdkafka's
/// `max.partition.fetch.bytes` in benches/replay.rs.
pub(super) const FETCH_BYTES_MAX: i32 = 8 * 1024 * 1024;

/// Largest Fetch response accepted: the broker's default `--max-fetch-bytes`; above
/// `FETCH_BYTES_MAX` only when a single batch is larger (KIP-74).
pub(super) const FETCH_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Long poll of a fetch that finds nothing new.
pub(super) const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);

pub(super) const REPLAY_FETCH: FetchOptions = FetchOptions {
    max_wait: FETCH_MAX_WAIT,
    bytes_max: FETCH_BYTES_MAX,
};

/// Fetched responses waiting for the decoder, per partition: the next fetch overlaps the
/// decoding of the last one, and memory stays bounded.
pub(super) const DECODE_QUEUE: usize = 2;

/// Partitions replayed at once (one connection each).
pub(super) const REPLAY_PARTITIONS_CONCURRENT_MAX: usize = 16;

/// A partition that makes no progress for this long fails the replay.
pub(super) const REPLAY_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a new topic may take to get leaders.
pub(super) const LEADER_WAIT: Duration = Duration::from_secs(30);

pub(super) const BYTES_PER_MB: f64 = 1e6;

pub(super) const BYTES_PER_GIB: f64 = (1u64 << 30) as f64;

pub(super) const BYTES_PER_MIB: f64 = (1u64 << 20) as f64;

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

/// `amount` per GiB of `value_bytes`; `None` without bytes.
pub(super) fn per_gib(amount: f64, value_bytes: u64) -> Option<f64> {
    (value_bytes > 0).then(|| amount / (value_bytes as f64 / BYTES_PER_GIB))
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
pub(super) struct Totals {
    records: AtomicU64,
    value_bytes: AtomicU64,
    wire_bytes: AtomicU64,
}

impl Totals {
    pub(super) fn add(&self, records: u64, value_bytes: u64, wire_bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.value_bytes.fetch_add(value_bytes, Ordering::Relaxed);
        self.wire_bytes.fetch_add(wire_bytes, Ordering::Relaxed);
    }

    pub(super) fn throughput(&self, elapsed: Duration) -> Throughput {
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
pub(super) async fn replay_partition(
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
    fn amounts_per_gib_scale_to_a_gib_of_values() {
        assert_eq!(per_gib(3.0, 1 << 30), Some(3.0));
        assert_eq!(per_gib(1.0, 256 << 20), Some(4.0));
        assert_eq!(per_gib(1.0, 0), None);
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
