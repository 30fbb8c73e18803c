//! The broker a benchmark measures: `strato serve` (this executable) as a child process on
//! free loopback ports, its `/metrics`, CPU time and peak memory, and a TCP proxy that
//! delays requests to S3.
//!
//! The child is stopped by pid: [`BrokerProcess::stop`] sends SIGTERM and waits (a clean
//! stop flushes what was accepted); dropping a `BrokerProcess` (an error, Ctrl-C) kills it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

/// How long `strato serve` may take to bind its listeners (it opens the stores first).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd broker may take to drain and exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Broker log lines kept to explain a failed start.
const LOG_LINES_KEPT: usize = 40;
/// Time for one `/metrics` exchange.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `/metrics` response read.
const METRICS_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Connections the latency proxy serves at once (the broker keeps at most
/// `concurrent_requests_max` = 64 object-store requests in flight).
const PROXY_CONNECTIONS_MAX: usize = 256;
/// Bytes a proxy connection reads (and delays) at a time.
const PROXY_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks a proxy connection holds in its delay line (4 MiB per connection): data arriving
/// faster than that many chunks per latency waits for room.
const PROXY_CHUNKS_DELAYED_MAX: usize = 64;

/// What `strato serve` is started with, besides free loopback ports.
#[derive(Debug, Clone)]
pub(super) struct ServeOptions {
    pub(super) data_dir: PathBuf,
    pub(super) object_store: Option<String>,
    pub(super) s3_endpoint: Option<String>,
    pub(super) extra_args: Vec<String>,
}

enum Listener {
    Kafka(String),
    Http(String),
}

/// A running `strato serve` child process.
pub(super) struct BrokerProcess {
    child: tokio::process::Child,
    pid: u32,
    pub(super) kafka_addr: String,
    pub(super) http_addr: String,
    log: Arc<Mutex<VecDeque<String>>>,
    clock_ticks_per_second: f64,
}

impl BrokerProcess {
    /// Starts the broker and waits until both listeners are bound.
    pub(super) async fn start(options: &ServeOptions) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("find the strato executable")?;
        let clock_ticks_per_second = clock_ticks_per_second().await?;
        let mut command = tokio::process::Command::new(exe);
        command
            .args(["--log-format", "text", "serve"])
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            // Benchmarks need no schema registry, and 8081 may be taken.
            .args(["--schema-registry-listen", ""])
            .arg("--data-dir")
            .arg(&options.data_dir);
        if let Some(url) = &options.object_store {
            command.args(["--object-store", url]);
        }
        if let Some(endpoint) = &options.s3_endpoint {
            command.args(["--s3-endpoint", endpoint]);
        }
        // The listener lines are INFO; a config file of the caller's must not change the
        // broker under test behind the command line's back.
        command
            .args(&options.extra_args)
            .env("STRATO_LOG", "info")
            .env_remove("STRATO_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().context("start strato serve")?;
        let pid = child.id().context("strato serve exited at once")?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES_KEPT)));
        let (listener_tx, mut listener_rx) = mpsc::channel(2);
        tokio::spawn(read_log(stderr, log.clone(), listener_tx));
        let mut broker = Self {
            child,
            pid,
            kafka_addr: String::new(),
            http_addr: String::new(),
            log,
            clock_ticks_per_second,
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while broker.kafka_addr.is_empty() || broker.http_addr.is_empty() {
            match tokio::time::timeout_at(deadline, listener_rx.recv()).await {
                Ok(Some(Listener::Kafka(addr))) => broker.kafka_addr = addr,
                Ok(Some(Listener::Http(addr))) => broker.http_addr = addr,
                Ok(None) => bail!(
                    "strato serve (pid {pid}) exited before it was ready; its log ends:\n{}",
                    broker.log_tail()
                ),
                Err(_) => bail!(
                    "strato serve (pid {pid}) was not ready within {START_TIMEOUT:?}; its log ends:\n{}",
                    broker.log_tail()
                ),
            }
        }
        tracing::info!(pid, kafka = %broker.kafka_addr, http = %broker.http_addr, "broker started");
        Ok(broker)
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().expect("log lock is never poisoned");
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// The broker's peak resident memory so far (VmHWM), in bytes.
    pub(super) async fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status = tokio::fs::read_to_string(&path)
            .await
            .with_context(|| format!("read {path}"))?;
        vm_hwm_bytes(&status).with_context(|| format!("no VmHWM line in {path}"))
    }

    /// Starts the broker's peak resident memory (VmHWM) again from its current RSS, so the
    /// next [`BrokerProcess::peak_rss_bytes`] is the peak of what ran in between (Linux 4.0+).
    pub(super) async fn reset_peak_rss(&self) -> anyhow::Result<()> {
        let path = format!("/proc/{}/clear_refs", self.pid);
        tokio::fs::write(&path, "5")
            .await
            .with_context(|| format!("write 5 to {path}"))
    }

    /// The broker's CPU time so far (user and system, all threads), in seconds.
    pub(super) async fn cpu_seconds(&self) -> anyhow::Result<f64> {
        process_cpu_seconds(&self.pid.to_string(), self.clock_ticks_per_second).await
    }

    /// The broker's `/metrics` page.
    pub(super) async fn metrics(&self) -> anyhow::Result<String> {
        scrape_metrics(&self.http_addr).await
    }

    /// SIGTERM, then waits for a clean exit (killed after `STOP_TIMEOUT`).
    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.pid.to_string();
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .context("run kill")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed: {status}");
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("wait for strato serve")?;
                if !status.success() {
                    bail!(
                        "strato serve (pid {pid}) stopped with {status}; its log ends:\n{}",
                        self.log_tail()
                    );
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await.context("kill strato serve")?;
                bail!("strato serve (pid {pid}) did not stop within {STOP_TIMEOUT:?}; killed it")
            }
        }
    }
}

/// The `/metrics` page of the broker whose HTTP listener is `http_addr`.
pub(super) async fn scrape_metrics(http_addr: &str) -> anyhow::Result<String> {
    tokio::time::timeout(HTTP_TIMEOUT, http_get(http_addr, "/metrics"))
        .await
        .with_context(|| format!("GET /metrics from {http_addr}: no answer"))?
        .with_context(|| format!("GET /metrics from {http_addr}"))
}

/// CPU time so far (user and system, all threads) of process `pid` (`self`: this one), in
/// seconds, with the kernel's `clock_ticks_per_second`.
pub(super) async fn process_cpu_seconds(
    pid: &str,
    clock_ticks_per_second: f64,
) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = tokio::fs::read_to_string(&path)
        .await
        .with_context(|| format!("read {path}"))?;
    let ticks = cpu_ticks(&stat).with_context(|| format!("no utime and stime in {path}"))?;
    Ok(ticks as f64 / clock_ticks_per_second)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), the unit of `/proc/<pid>/stat`
/// CPU times.
pub(super) async fn clock_ticks_per_second() -> anyhow::Result<f64> {
    let out = tokio::time::timeout(
        HTTP_TIMEOUT,
        tokio::process::Command::new("getconf")
            .arg("CLK_TCK")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .context("getconf CLK_TCK: no answer")?
    .context("run getconf CLK_TCK")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<f64>() {
        Ok(ticks) if out.status.success() && ticks > 0.0 => Ok(ticks),
        _ => bail!(
            "getconf CLK_TCK answered {:?} ({})",
            text.trim(),
            out.status
        ),
    }
}

/// User plus system CPU time (fields 14 and 15, in clock ticks) of a `/proc/<pid>/stat`
/// line. The command name (field 2) is in parentheses and may hold spaces or parentheses,
/// so fields are counted after the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state): utime is its 12th field.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Reads the broker's log: reports the bound listeners, keeps the last lines.
async fn read_log(
    stderr: tokio::process::ChildStderr,
    log: Arc<Mutex<VecDeque<String>>>,
    listeners: mpsc::Sender<Listener>,
) {
    let mut reader = BufReader::new(stderr);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        // Bytes, not `lines()`: a line that is not UTF-8 must not stop the draining (a full
        // pipe would block the broker).
        match reader.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&raw).trim_end().to_string();
        let listener = if let Some(addr) = line.split("kafka listener bound addr=").nth(1) {
            // `addr=HOST:PORT listener=PROTOCOL`: the address is the first field.
            let addr = addr.split_whitespace().next().unwrap_or_default();
            Some(Listener::Kafka(addr.to_string()))
        } else {
            line.split("http listener bound addr=")
                .nth(1)
                .map(|addr| Listener::Http(addr.trim().to_string()))
        };
        if let Some(listener) = listener {
            // The receiver is gone once start-up is over; later lines are only kept.
            let _ = listeners.send(listener).await;
        }
        let mut log = log.lock().expect("log lock is never poisoned");
        if log.len() == LOG_LINES_KEPT {
            log.pop_front();
        }
        log.push_back(line);
    }
}

/// `VmHWM` of a `/proc/<pid>/status` text, in bytes.
fn vm_hwm_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next()? {
        "kB" => value.checked_mul(1024),
        _ => None,
    }
}

/// A plain HTTP/1.1 GET; the body of a 200 answer.
async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .context("send request")?;
    let mut response = Vec::new();
    stream
        .take(METRICS_BYTES_MAX)
        .read_to_end(&mut response)
        .await
        .context("read response")?;
    let response = String::from_utf8(response).context("response is not UTF-8")?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("response without a header end")?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        bail!("status {status}");
    }
    Ok(body.to_string())
}

/// The value of the Prometheus sample `series` (name and labels, as rendered) in `text`.
pub(super) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// A TCP proxy on a free loopback port in front of `target` that delays what a client
/// sends by a fixed latency, as a delay line: each chunk goes on `latency` after it
/// arrived, and chunks in flight do not wait for one another, so a request of any size
/// costs one latency (plus its transfer), as it does from a distant object store.
/// Stopped when dropped.
pub(super) struct LatencyProxy {
    /// `http://127.0.0.1:PORT`, to give the broker as its S3 endpoint.
    pub(super) endpoint: String,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.accept.abort();
    }
}

impl LatencyProxy {
    pub(super) async fn start(target: String, latency: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the latency proxy")?;
        let addr = listener.local_addr().context("latency proxy address")?;
        let accept = tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(PROXY_CONNECTIONS_MAX));
            let mut connections = JoinSet::new();
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(err) => {
                        tracing::warn!("latency proxy failed to accept: {err:#}");
                        continue;
                    }
                };
                let target = target.clone();
                connections.spawn(async move {
                    if let Err(err) = proxy_connection(client, &target, latency).await {
                        tracing::debug!("latency proxy connection ended: {err:#}");
                    }
                    drop(slot);
                });
                // Reap finished connections so the set stays as small as the live ones.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            accept,
        })
    }
}

async fn proxy_connection(
    client: TcpStream,
    target: &str,
    latency: Duration,
) -> anyhow::Result<()> {
    let server = tokio::time::timeout(HTTP_TIMEOUT, TcpStream::connect(target))
        .await
        .with_context(|| format!("connect to {target}: no answer"))?
        .with_context(|| format!("connect to {target}"))?;
    client.set_nodelay(true).context("set TCP_NODELAY")?;
    server.set_nodelay(true).context("set TCP_NODELAY")?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (delayed, mut due) =
        mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(PROXY_CHUNKS_DELAYED_MAX);
    let receive = async move {
        loop {
            let mut buf = vec![0u8; PROXY_CHUNK_BYTES];
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            let at = tokio::time::Instant::now() + latency;
            if delayed.send((at, buf)).await.is_err() {
                break;
            }
        }
        anyhow::Ok(())
    };
    let upstream = async {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            server_write.write_all(&chunk).await?;
        }
        server_write.shutdown().await
    };
    let downstream = async {
        tokio::io::copy(&mut server_read, &mut client_write).await?;
        client_write.shutdown().await
    };
    let relay = async { tokio::try_join!(upstream, downstream).map_err(anyhow::Error::from) };
    tokio::try_join!(receive, relay).context("relay")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the latency proxy relays every byte in order both ways, delays what the
    /// client sends by its latency, and a large request costs one latency, not one per
    /// chunk (checked loosely: well under the 32 chunk delays a per-chunk delay would add).
    #[tokio::test]
    async fn latency_proxy_delays_requests_once_and_keeps_their_bytes() {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target_addr = target.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut conn, _) = target.accept().await.unwrap();
            let mut received = Vec::new();
            conn.read_to_end(&mut received).await.unwrap();
            let digest = crc32c::crc32c(&received).to_be_bytes();
            conn.write_all(&digest).await.unwrap();
            conn.shutdown().await.unwrap();
            received.len()
        });
        let latency = Duration::from_millis(50);
        let proxy = LatencyProxy::start(target_addr, latency).await.unwrap();
        let addr = proxy.endpoint.strip_prefix("http://").unwrap().to_string();
        let request: Vec<u8> = (0..32 * PROXY_CHUNK_BYTES)
            .map(|i| (i % 251) as u8)
            .collect();
        let started = tokio::time::Instant::now();
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(&request).await.unwrap();
        conn.shutdown().await.unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(server.await.unwrap(), request.len());
        assert_eq!(answer, crc32c::crc32c(&request).to_be_bytes());
        assert!(elapsed >= latency, "delayed by {elapsed:?}");
        assert!(
            elapsed < latency * 16,
            "a 32-chunk request took {elapsed:?}: delayed per chunk"
        );
    }

    #[test]
    fn peak_rss_comes_from_vm_hwm() {
        let status = "Name:\tstrato\nVmPeak:\t  900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(vm_hwm_bytes(status), Some(2048 * 1024));
        assert_eq!(vm_hwm_bytes("Name:\tstrato\n"), None);
        assert_eq!(vm_hwm_bytes("VmHWM:\t12 MB\n"), None, "only kB is known");
    }

    #[test]
    fn cpu_time_is_utime_plus_stime() {
        let stat = "4242 (strato (x) y) S 1 4242 4242 0 -1 4194560 9823 0 0 0 1500 250 0 0 \
                    20 0 9 0 77 1234 567 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(1750));
        assert_eq!(cpu_ticks("4242 (strato) S 1"), None);
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn metrics_are_found_by_exact_series() {
        let text = "# HELP x\n\
                    strato_object_store_requests_total{operation=\"put\"} 7\n\
                    strato_object_store_requests_total{operation=\"get\"} 352\n\
                    strato_object_store_requests_total{operation=\"get\",x=\"y\"} 9\n";
        let get = "strato_object_store_requests_total{operation=\"get\"}";
        assert_eq!(metric(text, get), Some(352.0));
        assert_eq!(metric(text, "strato_object_store_requests_total"), None);
        assert_eq!(metric(text, "strato_missing"), None);
    }
}
