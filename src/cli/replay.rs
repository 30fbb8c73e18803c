//! `strato replay`: a topic read straight from the object store and the metadata store
//! through `strato-replay` (no broker in the path), written as JSON lines, counted, or
//! produced into a Kafka-protocol cluster (`producer.rs`, idempotent).
//!
//! Each partition's ranges (its share under `--shard`) are read in order by one reader, up
//! to `--parallel` partitions at once; records reach the output through a bounded queue,
//! so a partition's records come out in offset order and memory stays bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::ops::Range;
use std::time::Instant;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use strato_replay::{PartitionSnapshot, Record, Replay, ReplayOptions, shard};

use super::cluster_status::open_metadata;
use super::producer::Producer;
use super::record_api::OutRecord;
use crate::config::KafkaClientArgs;
use crate::config::replay::{Isolation, ReplayArgs};

/// Batches of records queued between the readers and the output.
const QUEUED_BATCHES_MAX: usize = 16;

/// What a partition's replay gave.
#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    records: u64,
    /// Key and value bytes.
    bytes: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
}

impl Counted {
    fn add(&mut self, record: &Record) {
        self.records += 1;
        self.bytes += record.key.as_ref().map_or(0, Bytes::len) as u64
            + record.value.as_ref().map_or(0, Bytes::len) as u64;
        self.first_offset.get_or_insert(record.offset);
        self.last_offset = Some(record.offset);
    }
}

/// Where the records go.
enum Sink {
    Lines(Box<dyn Write + Send>),
    Count,
    Produce {
        producer: Box<Producer>,
        keep_partitions: bool,
    },
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let meta = open_metadata(&args.metadata, &args.data_dir).await?;
    let store_url = args
        .object_store
        .clone()
        .unwrap_or_else(|| crate::config::default_object_store_url(&args.data_dir));
    let store = strato_tiering::store::open_object_store(
        &store_url,
        &strato_tiering::store::StoreOptions {
            s3_endpoint: args.s3_endpoint.clone(),
        },
    )
    .with_context(|| format!("--object-store {store_url}"))?;
    let mut options = ReplayOptions {
        read_ahead_spans: args.read_ahead.max(1),
        read_committed: args.isolation == Isolation::ReadCommitted,
        ..ReplayOptions::default()
    };
    if args.shard.count > 1 {
        // A flush object holds chunks of many partitions, most of them another shard's:
        // reading it whole would fetch them in every shard.
        options.tier.whole_object_bytes_max = 0;
    }
    let replay = Replay::open(meta, store, &args.topic, options).await?;
    let partitions = match &args.partitions {
        Some(list) => parse_partitions(list, replay.partitions())?,
        None => (0..replay.partitions()).collect(),
    };
    let from_time = args.from_time.as_deref().map(parse_time).transpose()?;
    let to_time = args.to_time.as_deref().map(parse_time).transpose()?;
    let mut work: Vec<(PartitionSnapshot, Vec<Range<i64>>)> = Vec::new();
    for partition in partitions {
        let snapshot = replay.snapshot(partition).await?;
        let from = match (args.from_offset, from_time) {
            (Some(offset), _) => offset,
            (None, Some(time)) => replay.offset_for_time(&snapshot, time).await?,
            (None, None) => snapshot.log_start_offset,
        };
        let to = match (args.to_offset, to_time) {
            (Some(offset), _) => offset,
            (None, Some(time)) => replay.offset_for_time(&snapshot, time).await?,
            (None, None) => snapshot.end,
        };
        let range = from.max(snapshot.log_start_offset)..to.min(snapshot.end);
        let ranges = shard::ranges(partition, range, args.shard, args.shard_records);
        if !ranges.is_empty() {
            work.push((snapshot, ranges));
        }
    }
    let offsets: u64 = work
        .iter()
        .flat_map(|(_, ranges)| ranges.iter().map(|r| (r.end - r.start) as u64))
        .sum();
    let mut sink = open_sink(&args, replay.partitions()).await?;
    let progress = args
        .progress
        .unwrap_or_else(|| std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| progress_bar(offsets));

    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<anyhow::Result<Vec<Record>>>(QUEUED_BATCHES_MAX);
    let readers = read_all(replay.clone(), work, args.parallel.max(1), tx);
    let mut counted: BTreeMap<i32, Counted> = BTreeMap::new();
    while let Some(batch) = rx.recv().await {
        let records = batch?;
        for record in &records {
            counted.entry(record.partition).or_default().add(record);
        }
        if let Some(bar) = &progress {
            bar.inc(records.len() as u64);
        }
        write(&mut sink, &args.topic, records).await?;
    }
    readers.await.context("replay readers")?;
    match &mut sink {
        Sink::Lines(out) => out.flush().context("write the records")?,
        Sink::Produce { producer, .. } => producer.flush().await?,
        Sink::Count => {}
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let stats = replay.stats();
    let records: u64 = counted.values().map(|c| c.records).sum();
    let bytes: u64 = counted.values().map(|c| c.bytes).sum();
    let seconds = started.elapsed().as_secs_f64();
    let cost = json!({
        "gets": stats.gets,
        "get_bytes": stats.get_bytes,
        "objects": stats.objects,
        "index_reloads": stats.index_reloads,
    });
    if matches!(sink, Sink::Count) {
        let partitions: Vec<Value> = counted
            .iter()
            .map(|(p, c)| {
                json!({
                    "partition": p,
                    "records": c.records,
                    "bytes": c.bytes,
                    "first_offset": c.first_offset,
                    "last_offset": c.last_offset,
                })
            })
            .collect();
        let summary = json!({
            "topic": args.topic,
            "shard": args.shard.to_string(),
            "records": records,
            "bytes": bytes,
            "seconds": seconds,
            "partitions": partitions,
            "cost": cost,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "replayed {records} records ({bytes} key and value bytes) of {} in {seconds:.1} s: \
             {} GETs, {} bytes read from {} objects",
            args.topic, stats.gets, stats.get_bytes, stats.objects
        );
    }
    Ok(())
}

/// Reads every partition's ranges (one task per partition, `parallel` at once) into `tx`;
/// a failure is sent as the last item.
fn read_all(
    replay: Replay,
    work: Vec<(PartitionSnapshot, Vec<Range<i64>>)>,
    parallel: usize,
    tx: tokio::sync::mpsc::Sender<anyhow::Result<Vec<Record>>>,
) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    tokio::spawn(async move {
        futures::stream::iter(work)
            .for_each_concurrent(parallel, |(snapshot, ranges)| {
                let replay = replay.clone();
                let tx = tx.clone();
                async move {
                    for range in ranges {
                        let mut reader = replay.read(&snapshot, range.start, range.end);
                        loop {
                            let item = match reader.next_records().await {
                                Ok(Some(records)) => Ok(records),
                                Ok(None) => break,
                                Err(err) => Err(anyhow::Error::new(err).context(format!(
                                    "replay partition {} at offset {}",
                                    snapshot.partition,
                                    reader.position()
                                ))),
                            };
                            let failed = item.is_err();
                            if tx.send(item).await.is_err() || failed {
                                return;
                            }
                        }
                    }
                }
            })
            .await;
    })
}

async fn open_sink(args: &ReplayArgs, source_partitions: i32) -> anyhow::Result<Sink> {
    if args.count {
        return Ok(Sink::Count);
    }
    if let (Some(bootstrap), Some(topic)) = (&args.to_bootstrap, &args.to_topic) {
        let client = super::common::connect(&KafkaClientArgs {
            bootstrap: bootstrap.clone(),
            request_timeout_ms: args.to_request_timeout_ms,
            security: args.to_security.clone(),
        })
        .await?;
        let producer = Producer::new(client, topic, None, true).await?;
        let keep_partitions = !args.repartition;
        if keep_partitions && producer.partition_count() < source_partitions {
            bail!(
                "--to-topic {topic:?} has {} partitions, fewer than {source_partitions} of {:?}: \
                 create it with as many, or pass --repartition to place records by key",
                producer.partition_count(),
                args.topic
            );
        }
        return Ok(Sink::Produce {
            producer: Box::new(producer),
            keep_partitions,
        });
    }
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    Ok(Sink::Lines(Box::new(std::io::BufWriter::with_capacity(
        1 << 20,
        out,
    ))))
}

async fn write(sink: &mut Sink, topic: &str, records: Vec<Record>) -> anyhow::Result<()> {
    match sink {
        Sink::Count => {}
        Sink::Lines(out) => {
            for record in &records {
                serde_json::to_writer(&mut *out, &record_json(topic, record))
                    .context("write the records")?;
                out.write_all(b"\n").context("write the records")?;
            }
        }
        Sink::Produce {
            producer,
            keep_partitions,
        } => {
            for record in records {
                let partition = record.partition;
                let out = OutRecord {
                    key: record.key,
                    value: record.value,
                    headers: record
                        .headers
                        .into_iter()
                        .map(|h| (String::from_utf8_lossy(&h.name).into_owned(), h.value))
                        .collect(),
                    timestamp: Some(record.timestamp),
                };
                if *keep_partitions {
                    producer.add_to(partition, out).await?;
                } else {
                    producer.add(out).await?;
                }
            }
        }
    }
    Ok(())
}

/// A record as one JSON line (see `strato replay --help`).
fn record_json(topic: &str, record: &Record) -> Value {
    json!({
        "topic": topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": bytes_json(record.key.as_deref()),
        "value": bytes_json(record.value.as_deref()),
        "headers": record
            .headers
            .iter()
            .map(|h| json!([bytes_json(Some(&h.name)), bytes_json(h.value.as_deref())]))
            .collect::<Vec<Value>>(),
    })
}

/// A string when valid UTF-8, `null` when absent, `{"base64": ...}` otherwise.
fn bytes_json(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::String(text.to_string()),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
        },
    }
}

/// `0,3-5` → [0, 3, 4, 5], each below `count`.
fn parse_partitions(list: &str, count: i32) -> anyhow::Result<Vec<i32>> {
    let mut out = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<i32>(), b.trim().parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        let (Ok(first), Ok(last)) = (first, last) else {
            bail!("--partitions {list:?}: {part:?} is not a partition or a range like 3-5");
        };
        if first < 0 || first > last || last >= count {
            bail!(
                "--partitions {list:?}: {part:?} is not within 0-{}",
                count - 1
            );
        }
        out.extend(first..=last);
    }
    if out.is_empty() {
        bail!("--partitions {list:?}: no partition");
    }
    Ok(out.into_iter().collect())
}

/// RFC 3339, or milliseconds since the epoch.
fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .with_context(|| {
            format!("{text:?}: expected RFC 3339 (2026-11-01T00:00:00Z) or milliseconds")
        })
}

fn progress_bar(offsets: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(offsets),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "replay [{bar:40}] {human_pos} records of at most {human_len} ({percent}%), eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_lists_parse() {
        assert_eq!(parse_partitions("0,3-5", 6).unwrap(), vec![0, 3, 4, 5]);
        assert_eq!(parse_partitions("2, 1", 3).unwrap(), vec![1, 2]);
        assert!(parse_partitions("6", 6).is_err());
        assert!(parse_partitions("3-1", 6).is_err());
        assert!(parse_partitions("x", 6).is_err());
        assert!(parse_partitions("", 6).is_err());
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00").unwrap(),
            1_700_000_000_000
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn bytes_are_text_null_or_base64() {
        assert_eq!(bytes_json(Some(b"caf\xc3\xa9")), json!("café"));
        assert_eq!(bytes_json(None), Value::Null);
        assert_eq!(bytes_json(Some(&[0xff, 0x00])), json!({"base64": "/wA="}));
    }
}
