//! Shared by the benchmarks: a release-build broker as a child process on free loopback
//! ports (Kafka and HTTP), killed when dropped.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
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
