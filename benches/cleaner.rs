//! The key cleaner: write a changelog (N updates of K keys, 100-byte values) to a topic that
//! keeps everything, measure the bucket, switch the topic to `cleanup.policy=compact`, wait
//! until it is clean and garbage collection has deleted the replaced objects, and report the
//! cleaning rate (uncompressed MB the cleaner read per second of its passes) and the bucket
//! before and after.
//!
//! Run: `cargo bench --bench cleaner`. Environment: `STRATO_BENCH_CLEANER_UPDATES` (default
//! 2,000,000), `STRATO_BENCH_CLEANER_KEYS` (default 10,000).
//!
//! Prints one Markdown table row. A benchmark, not a test: nothing is asserted about speed.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use common::{metric, start_broker};

const VALUE_BYTES: usize = 100;
const TOPIC: &str = "changelog";

/// Bytes and number of the segment objects under the file store of `data_dir`.
fn bucket(data_dir: &Path) -> (u64, u64) {
    fn walk(dir: &Path, out: &mut (u64, u64)) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "seg") {
                out.0 += entry.metadata().map_or(0, |m| m.len());
                out.1 += 1;
            }
        }
    }
    let mut out = (0, 0);
    walk(data_dir, &mut out);
    out
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let updates = env_usize("STRATO_BENCH_CLEANER_UPDATES", 2_000_000);
    let keys = env_usize("STRATO_BENCH_CLEANER_KEYS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let extra: Vec<String> = [
        "--compaction-interval-ms",
        "500",
        "--gc-interval-ms",
        "500",
        "--gc-grace-ms",
        "2000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let broker = start_broker(dir.path(), 1, &extra);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.codec", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut deliveries = common::Deliveries::default();
    for i in 0..updates {
        let key = format!("key-{:06}", i % keys);
        let value = format!("{{\"key\": {}, \"update\": {i:>12}}}", i % keys);
        let mut payload = value.into_bytes();
        payload.resize(VALUE_BYTES, b' ');
        deliveries
            .send(
                &producer,
                FutureRecord::to(TOPIC).key(&key).payload(&payload),
            )
            .await;
    }
    deliveries.wait_all().await;
    // One record in a flush of its own: every update is then cleanable.
    producer
        .send(
            FutureRecord::to(TOPIC).key("last").payload("x"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    producer.flush(Duration::from_secs(60)).unwrap();
    // Let segment merging settle, then measure.
    let settle = Instant::now() + Duration::from_secs(120);
    while metric(&broker.http, "strato_compaction_backlog_entries") > 0.0 && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let gc_before = metric(&broker.http, "strato_gc_deleted_objects_total");
    while metric(&broker.http, "strato_gc_deleted_objects_total") == gc_before
        && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before = bucket(dir.path());

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .unwrap();
    admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(TOPIC)).set("cleanup.policy", "compact")],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    let started = Instant::now();
    let expected_removed = (updates - keys) as f64;
    while metric(&broker.http, "strato_cleaner_records_removed_total") < expected_removed {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "cleaning stalled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let busy = metric(&broker.http, "strato_cleaner_seconds_total");
    let read = metric(
        &broker.http,
        "strato_cleaner_bytes_total{direction=\"read\"}",
    );
    let written = metric(
        &broker.http,
        "strato_cleaner_bytes_total{direction=\"written\"}",
    );
    // Wait until garbage collection deleted the replaced objects.
    let gc_deadline = Instant::now() + Duration::from_secs(120);
    let mut after = bucket(dir.path());
    while after.0 * 2 > before.0 && Instant::now() < gc_deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = bucket(dir.path());
    }
    println!(
        "| {updates} updates × {VALUE_BYTES} B of {keys} keys, lz4 | cleaning {:.1} MB/s ({:.0} MB read → {:.1} MB written in {busy:.1} s of passes, {wall:.1} s wall) | bucket {:.1} MB in {} objects → {:.2} MB in {} objects |",
        read / 1e6 / busy.max(1e-9),
        read / 1e6,
        written / 1e6,
        before.0 as f64 / 1e6,
        before.1,
        after.0 as f64 / 1e6,
        after.1,
    );
}
