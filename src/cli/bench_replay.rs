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
use serde_json::{Value, json};

use super::bench_broker::{BrokerProcess, LatencyProxy, ServeOptions, metric};
use super::bench_common::{
    BYTES_PER_MIB, REPLAY_FETCH, Throughput, Totals, bench_values, client_options, compression,
    compression_name, create_topic, leaders, now_ms, per_gib, progress_bar, render_output,
    replay_topic, throughput_json,
};
use super::cluster::Client;
use super::kafka_client::Connection;
use super::record_api::{self};
use super::table::render_table;
use crate::config::bench::BenchReplayConfig;

/// Record values per produced batch. With 1000-byte values and no compression a batch stays
/// under Kafka's default `max.message.bytes` (1 MiB + 12), which the broker enforces.
const BATCH_VALUE_BYTES: usize = 512 * 1024;

/// Produce requests in flight, one per connection. The broker acknowledges a batch once its
/// segment is flushed (every 5 ms on file://, 100 ms on S3), so throughput needs many
/// batches waiting at once; 32 × 512 KiB stays well under its 64 MiB unflushed-bytes limit.
const PRODUCE_REQUESTS_IN_FLIGHT: usize = 32;

/// Object-store GETs per GiB of record values replayed.
fn gets_per_gib(gets: u64, value_bytes: u64) -> f64 {
    per_gib(gets as f64, value_bytes).unwrap_or(0.0)
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
pub(super) struct Report {
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

pub(super) async fn replay(config: &BenchReplayConfig) -> anyhow::Result<Report> {
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

pub(super) fn render(config: &BenchReplayConfig, report: &Report) -> String {
    render_output(
        config.output,
        || report_json(config, report),
        || report_table(config, report),
    )
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
    fn gets_are_counted_per_gib_of_values() {
        assert_eq!(gets_per_gib(352, 1 << 30), 352.0);
        assert_eq!(gets_per_gib(88, 256 << 20), 352.0);
        assert_eq!(gets_per_gib(5, 0), 0.0);
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
}
