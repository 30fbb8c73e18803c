//! Replay from object storage: write N MiB into a topic, restart the broker (its cache is
//! cleared at start), replay the topic from offset 0 with a librdkafka consumer, and report
//! MB/s, object-store GETs per GiB and the broker's peak memory.
//!
//! Run: `cargo bench --bench replay`. Environment:
//! - `STRATO_BENCH_REPLAY_MB` (default 1024): MiB of record values to write;
//! - `STRATO_BENCH_S3_ENDPOINT`: replay from S3 (e.g. LocalStack) instead of file://;
//!   credentials from the AWS environment, a fresh bucket per run;
//! - `STRATO_BENCH_S3_LATENCY_MS`: latency added to every request to S3 by a proxy.
//!
//! Prints one Markdown table row. A benchmark, not a test: nothing is asserted about speed.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use common::{metric, start_broker};

const PARTITIONS: i32 = 3;
const VALUE_BYTES: usize = 1000;

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A TCP proxy that delays every chunk the client sends by `latency` (one request is
/// usually one chunk), emulating a far-away object store.
fn latency_proxy(target: String, latency: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    std::thread::sleep(latency);
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = s_read.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_write.shutdown(Shutdown::Write);
            });
        }
    });
    format!("http://{addr}")
}

fn create_bucket(endpoint: &str) -> String {
    let name = format!("strato-bench-{}", std::process::id());
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).expect("connect to S3 endpoint");
    write!(
        stream,
        "PUT /{name} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "create bucket: {response}"
    );
    name
}

#[tokio::main]
async fn main() {
    let mib: usize = std::env::var("STRATO_BENCH_REPLAY_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let records = mib * 1024 * 1024 / VALUE_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let mut extra: Vec<String> = vec!["--cache-memory-bytes".into(), (64u64 << 20).to_string()];
    let mut store = "file://".to_string();
    if let Ok(endpoint) = std::env::var("STRATO_BENCH_S3_ENDPOINT") {
        let bucket = create_bucket(&endpoint);
        let latency_ms: u64 = std::env::var("STRATO_BENCH_S3_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let endpoint = if latency_ms > 0 {
            latency_proxy(
                endpoint.trim_start_matches("http://").to_string(),
                Duration::from_millis(latency_ms),
            )
        } else {
            endpoint
        };
        store = format!("s3 (LocalStack, +{latency_ms} ms per request)");
        extra.extend([
            "--object-store".into(),
            format!("s3://{bucket}/replay"),
            "--s3-endpoint".into(),
            endpoint,
        ]);
    }

    // Write.
    let broker = start_broker(dir.path(), PARTITIONS, &extra);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.codec", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut payload = vec![0u8; VALUE_BYTES];
    let mut seed = 0x1234_5678_u64;
    let mut deliveries = common::Deliveries::default();
    for i in 0..records {
        // Half random, half repetitive: lz4 compresses it about 2:1.
        for (j, byte) in payload.iter_mut().enumerate() {
            if j % 2 == 0 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *byte = seed as u8;
            } else {
                *byte = b'x';
            }
        }
        let key = (i % 997).to_string();
        deliveries
            .send(
                &producer,
                FutureRecord::to("replay").key(&key).payload(&payload),
            )
            .await;
    }
    deliveries.wait_all().await;
    producer.flush(Duration::from_secs(60)).unwrap();
    drop(producer);
    drop(broker);

    // Replay on a fresh broker process: empty cache.
    let broker = start_broker(dir.path(), PARTITIONS, &extra);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "replay")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "8388608")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("replay", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut consumed = 0usize;
    let mut bytes = 0usize;
    while consumed < records {
        let msg = consumer
            .poll(Duration::from_secs(30))
            .expect("replay stalled")
            .unwrap();
        bytes += msg.payload().map_or(0, <[u8]>::len);
        consumed += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let gets = metric(
        &broker.http,
        "strato_object_store_requests_total{operation=\"get\"}",
    );
    let get_bytes = metric(
        &broker.http,
        "strato_object_store_bytes_total{direction=\"get\"}",
    );
    let read_ahead = metric(
        &broker.http,
        "strato_chunk_reads_total{kind=\"read_ahead\"}",
    );
    let gib = bytes as f64 / (1u64 << 30) as f64;
    println!(
        "| {mib} MiB × {VALUE_BYTES} B, lz4, {store} | replay {:.1} MB/s | {:.0} GETs/GiB ({:.0} MiB fetched, {read_ahead} read-ahead) | broker peak RSS {:.0} MiB |",
        bytes as f64 / 1e6 / secs,
        gets / gib,
        get_bytes / (1u64 << 20) as f64,
        peak_rss_mib(broker.child.id()),
    );
}
