//! Shared by the benchmarks: a release-build broker as a child process on free loopback
//! ports (Kafka and HTTP), killed when dropped.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Broker {
    pub child: Child,
    pub bootstrap: String,
    pub http: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `strato serve` on `data_dir` with `extra` flags, `partitions` per new topic.
pub fn start_broker(data_dir: &std::path::Path, partitions: i32, extra: &[String]) -> Broker {
    // A benchmark that names its listeners gets those instead of one PLAINTEXT listener.
    let listen: &[&str] = if extra.iter().any(|a| a.starts_with("--listeners")) {
        &[]
    } else {
        &["--listen", "127.0.0.1:0"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_strato"))
        .args(["serve", "--http-listen", "127.0.0.1:0"])
        .args(["--schema-registry-listen", ""])
        .args(listen)
        .args(["--default-partitions", &partitions.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("STRATO_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn broker");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for (marker, kind) in [
                ("kafka listener bound addr=", 'k'),
                ("http listener bound addr=", 'h'),
            ] {
                if let Some(addr) = line.split(marker).nth(1) {
                    // `addr=HOST:PORT listener=PROTOCOL`: the address is the first field.
                    let addr = addr.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send((kind, addr.to_string()));
                }
            }
        }
    });
    let (mut bootstrap, mut http) = (String::new(), String::new());
    while bootstrap.is_empty() || http.is_empty() {
        let (kind, addr) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("broker started");
        if kind == 'k' {
            bootstrap = addr
        } else {
            http = addr
        }
    }
    Broker {
        child,
        bootstrap,
        http,
    }
}

/// The value of `series` (name and labels, as exposed) on the broker's `/metrics` at `http`;
/// 0 when absent.
pub fn metric(http: &str, series: &str) -> f64 {
    let mut stream = TcpStream::connect(http).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Delivery futures of a librdkafka producer, awaited 50,000 at a time so a benchmark's
/// memory stays bounded; every delivery must succeed.
#[derive(Default)]
pub struct Deliveries(Vec<rdkafka::producer::DeliveryFuture>);

impl Deliveries {
    /// Enqueues `record` (the local queue must have room) and keeps its delivery future.
    pub async fn send<K, P>(
        &mut self,
        producer: &rdkafka::producer::FutureProducer,
        record: rdkafka::producer::FutureRecord<'_, K, P>,
    ) where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let future = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueue");
        self.0.push(future);
        if self.0.len() >= 50_000 {
            self.wait_all().await;
        }
    }

    /// Waits for every delivery kept so far.
    pub async fn wait_all(&mut self) {
        for future in self.0.drain(..) {
            future.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    }
}
