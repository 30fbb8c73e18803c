//! Produce and consume throughput and end-to-end latency of a real broker (release build)
//! with librdkafka, on the embedded default (local filesystem + embedded metadata).
//!
//! Run: `cargo bench --bench throughput` (env: `STRATO_BENCH_RECORDS`, default 1,000,000;
//! `STRATO_BENCH_VALUE_BYTES`, default 100; `STRATO_BENCH_CODEC`, default none;
//! `STRATO_BENCH_SECURITY`, `plaintext` (default) or `sasl_ssl`: every client logs in with
//! SCRAM-SHA-512 over TLS, certificates made by the benchmark).
//! Prints a Markdown table row; results go to docs/BENCHMARKS.md. This is a benchmark, not a
//! test: nothing here asserts a speed.

mod common;
#[path = "../tests/common/pki.rs"]
mod pki;

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let records = env_or("STRATO_BENCH_RECORDS", 1_000_000);
    let value_bytes = env_or("STRATO_BENCH_VALUE_BYTES", 100);
    let codec = std::env::var("STRATO_BENCH_CODEC").unwrap_or_else(|_| "none".into());
    let security = std::env::var("STRATO_BENCH_SECURITY").unwrap_or_else(|_| "plaintext".into());
    let dir = tempfile::tempdir().unwrap();
    let (extra, client_security) = match security.as_str() {
        "plaintext" => (Vec::new(), Vec::new()),
        "sasl_ssl" => sasl_ssl(dir.path()),
        other => panic!("STRATO_BENCH_SECURITY={other}: expected plaintext or sasl_ssl"),
    };
    let broker = common::start_broker(dir.path(), 3, &extra);
    let bootstrap = broker.bootstrap.clone();
    let client = || {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &bootstrap);
        for (k, v) in &client_security {
            config.set(k, v);
        }
        config
    };
    let payload: Vec<u8> = (0..value_bytes).map(|i| b'a' + (i % 26) as u8).collect();

    let producer: FutureProducer = client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("compression.codec", &codec)
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let started = Instant::now();
    let mut futures = Vec::with_capacity(100_000);
    for i in 0..records {
        let key = (i % 1024).to_string();
        loop {
            match producer.send_result(FutureRecord::to("bench").key(&key).payload(&payload)) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((_, _)) => {
                    // Local queue full: wait for some deliveries.
                    for f in futures.drain(..) {
                        f.await.unwrap().map_err(|(e, _)| e).unwrap();
                    }
                }
            }
        }
        if futures.len() >= 100_000 {
            for f in futures.drain(..) {
                f.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        }
    }
    for f in futures.drain(..) {
        f.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let produce_secs = started.elapsed().as_secs_f64();
    let mb = (records * value_bytes) as f64 / 1e6;

    let consumer: BaseConsumer = client()
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("bench", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut consumed = 0;
    while consumed < records {
        if let Some(msg) = consumer.poll(Duration::from_secs(10)) {
            msg.unwrap();
            consumed += 1;
        } else {
            panic!("consumer stalled at {consumed}");
        }
    }
    let consume_secs = started.elapsed().as_secs_f64();

    // End-to-end latency: one record at a time, produce -> consumer (parked in a long poll).
    let latency_producer: FutureProducer = client().set("linger.ms", "0").create().unwrap();
    let tail: BaseConsumer = client()
        .set("group.id", "bench-tail")
        .set("fetch.wait.max.ms", "10000")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("latency", 0, Offset::End).unwrap();
    tail.assign(&tpl).unwrap();
    // Warm up until the consumer has received a record: then it is positioned at the end
    // and every later record measures produce -> fetch wake-up -> delivery.
    let mut positioned = false;
    for _ in 0..30 {
        latency_producer
            .send(
                FutureRecord::<(), _>::to("latency")
                    .partition(0)
                    .payload("warmup"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        if tail.poll(Duration::from_secs(1)).is_some() {
            positioned = true;
            break;
        }
    }
    assert!(
        positioned,
        "latency consumer never received a warm-up record"
    );
    while tail.poll(Duration::from_millis(200)).is_some() {}
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let sent = Instant::now();
        latency_producer
            .send(
                FutureRecord::<(), _>::to("latency")
                    .partition(0)
                    .payload("x"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        let msg = tail
            .poll(Duration::from_secs(10))
            .expect("the record arrives within 10 s");
        assert!(msg.unwrap().payload().is_some());
        latencies.push(sent.elapsed());
    }
    latencies.sort();

    println!(
        "| {records} x {value_bytes} B, codec {codec}, {security} | produce {:.1} MB/s ({:.0} rec/s) | consume {:.1} MB/s ({:.0} rec/s) | e2e p50 {:.1} ms p99 {:.1} ms |",
        mb / produce_secs,
        records as f64 / produce_secs,
        mb / consume_secs,
        records as f64 / consume_secs,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

/// A SASL_SSL-only broker's flags and the clients' settings: a CA and broker certificate
/// (rcgen) and a SCRAM user made with `strato user create` before the broker starts.
fn sasl_ssl(dir: &std::path::Path) -> (Vec<String>, Vec<(String, String)>) {
    use std::io::Write;
    let pki = pki::Pki::new(dir, "bench");
    let cert = pki.broker();
    let mut create = std::process::Command::new(env!("CARGO_BIN_EXE_strato"))
        .args(["user", "create", "bench", "--password-stdin", "--data-dir"])
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"bench-password")
        .unwrap();
    assert!(create.wait().unwrap().success(), "strato user create");
    let extra = vec![
        "--listeners".to_string(),
        "SASL_SSL://127.0.0.1:0".to_string(),
        "--tls-cert".to_string(),
        cert.cert.display().to_string(),
        "--tls-key".to_string(),
        cert.key.display().to_string(),
    ];
    let client = [
        ("security.protocol", "SASL_SSL".to_string()),
        ("ssl.ca.location", pki.ca_file().display().to_string()),
        ("sasl.mechanism", "SCRAM-SHA-512".to_string()),
        ("sasl.username", "bench".to_string()),
        ("sasl.password", "bench-password".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    (extra, client)
}
