//! Shared setup for integration tests: a real `strato` broker as a subprocess on a free
//! loopback port, with its own data directory, stopped by the test (by pid) even on failure.

#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod elasticity;
pub mod group;
pub mod kafka;
pub mod pki;
pub mod proxy;
pub mod registry;
pub mod s3;
pub mod wire;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a broker may take to start.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a broker may take to stop after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

pub struct Broker {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The /metrics, /health, /ready listener.
    pub http_addr: SocketAddr,
    /// The schema registry's listener, once logged (None: disabled or not logged yet).
    schema_registry_addr: Arc<Mutex<Option<SocketAddr>>>,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    /// Environment variables set for the broker process (kept across restarts).
    envs: Vec<(String, String)>,
    log: Arc<Mutex<Vec<String>>>,
    /// (security protocol, bound address) of every Kafka listener, as logged.
    listeners: Arc<Mutex<Vec<(String, SocketAddr)>>>,
}

impl Broker {
    /// Starts a broker on a fresh data directory inside `dir`.
    pub fn start(dir: &Path, extra_args: &[&str]) -> Broker {
        Self::start_with_env(dir, extra_args, &[])
    }

    /// Starts a broker on a fresh data directory inside `dir`, with `envs` added to its
    /// environment.
    pub fn start_with_env(dir: &Path, extra_args: &[&str], envs: &[(&str, &str)]) -> Broker {
        let data_dir = dir.join("data");
        Self::start_in(
            data_dir,
            extra_args.iter().map(|s| s.to_string()).collect(),
            envs.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn start_in(data_dir: PathBuf, extra_args: Vec<String>, envs: Vec<(String, String)>) -> Broker {
        // A test that names its listeners gets those instead of one PLAINTEXT listener.
        let listen: &[&str] = if extra_args.iter().any(|a| a.starts_with("--listeners")) {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        // Brokers of parallel tests must not race for the registry's default port 8081.
        let registry: &[&str] = if extra_args
            .iter()
            .any(|a| a.starts_with("--schema-registry-listen"))
        {
            &[]
        } else {
            &["--schema-registry-listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_strato"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(listen)
            .arg("--http-listen")
            .arg("127.0.0.1:0")
            .args(registry)
            .args(&extra_args)
            .env("STRATO_LOG", "info,strato=debug")
            .env_remove("STRATO_CONFIG")
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strato broker");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let (http_tx, http_rx) = mpsc::channel::<SocketAddr>();
        let log_writer = log.clone();
        let listeners = Arc::new(Mutex::new(Vec::new()));
        let listeners_writer = listeners.clone();
        let schema_registry_addr = Arc::new(Mutex::new(None));
        let registry_writer = schema_registry_addr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = bound_address(&line, "kafka listener bound") {
                    if let Some(protocol) = bound_listener(&line) {
                        listeners_writer.lock().unwrap().push((protocol, addr));
                    }
                    let _ = tx.send(addr);
                }
                if let Some(addr) = bound_address(&line, "http listener bound") {
                    let _ = http_tx.send(addr);
                }
                if let Some(addr) = bound_address(&line, "schema registry listener bound") {
                    *registry_writer.lock().unwrap() = Some(addr);
                }
                log_writer.lock().unwrap().push(line);
            }
        });
        let mut broker = Broker {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            schema_registry_addr,
            data_dir,
            extra_args,
            envs,
            log,
            listeners,
        };
        // The HTTP line is logged before the Kafka lines.
        match http_rx.recv_timeout(START_DEADLINE) {
            Ok(addr) => broker.http_addr = addr,
            Err(_) => panic!(
                "broker did not start within {START_DEADLINE:?}; log:\n{}",
                broker.log_text()
            ),
        }
        match rx.recv_timeout(START_DEADLINE) {
            Ok(addr) => broker.addr = addr,
            Err(_) => panic!(
                "broker did not start within {START_DEADLINE:?}; log:\n{}",
                broker.log_text()
            ),
        }
        broker
    }

    /// GET `path` on the broker's HTTP listener: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.http_addr).expect("connect HTTP");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http_addr
        )
        .unwrap();
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read HTTP response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// The schema registry's bound address. It is logged before the Kafka listeners, so a
    /// started broker has logged it (unless the test disabled the registry).
    pub fn schema_registry(&self) -> SocketAddr {
        self.schema_registry_addr
            .lock()
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "broker logged no schema registry listener; log:\n{}",
                    self.log_text()
                )
            })
    }

    /// `http://<schema registry address>`, for clients.
    pub fn schema_registry_url(&self) -> String {
        format!("http://{}", self.schema_registry())
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The bound address of the listener of `protocol` (`SASL_SSL`, ...). The broker logs
    /// its listeners one after the other at start-up, so a short wait covers the last ones.
    pub fn listener(&self, protocol: &str) -> SocketAddr {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let found = self
                .listeners
                .lock()
                .unwrap()
                .iter()
                .find(|(p, _)| p == protocol)
                .map(|(_, addr)| *addr);
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "broker logged no {protocol} listener; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The broker's log lines, shared with the thread that reads its stderr: still readable,
    /// and complete, after the broker was killed, stopped or restarted.
    pub fn log_lines(&self) -> Arc<Mutex<Vec<String>>> {
        self.log.clone()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits at most `deadline` for the process to exit; its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait().expect("wait broker") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < end,
                "broker did not exit in time; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait for a clean exit, start again on the same data directory.
    pub fn restart_graceful(self) -> Broker {
        self.terminate();
        self.restart_after_exit()
    }

    /// Sends SIGTERM without waiting (see [`Broker::restart_after_exit`]).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// SIGSTOP: the broker freezes (its connections and lease stay open) until
    /// [`Broker::resume`]. Dropping or killing a paused broker still ends it.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Broker::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Waits for a clean exit (after [`Broker::terminate`]) and starts again.
    pub fn restart_after_exit(mut self) -> Broker {
        let status = self.wait_exit(STOP_DEADLINE);
        assert!(
            status.success(),
            "graceful stop failed: {status}; log:\n{}",
            self.log_text()
        );
        Self::start_in(
            self.data_dir.clone(),
            self.extra_args.clone(),
            self.envs.clone(),
        )
    }

    /// SIGTERM, wait for a clean exit, start again on the same data directory with
    /// `extra_args` instead of the ones it had.
    pub fn restart_with(mut self, extra_args: &[&str]) -> Broker {
        self.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        self.restart_graceful()
    }

    /// kill -9, then start again on the same data directory.
    pub fn restart_killed(mut self) -> Broker {
        self.signal("KILL");
        self.wait_exit(STOP_DEADLINE);
        Self::start_in(
            self.data_dir.clone(),
            self.extra_args.clone(),
            self.envs.clone(),
        )
    }

    /// kill -9 and wait for the process to be gone.
    pub fn kill(mut self) {
        self.signal("KILL");
        self.wait_exit(STOP_DEADLINE);
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        self.terminate();
        let status = self.wait_exit(STOP_DEADLINE);
        assert!(
            status.success(),
            "graceful stop failed: {status}; log:\n{}",
            self.log_text()
        );
    }

    /// A gauge or counter from `/metrics` (0 if the series is absent).
    pub fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.http_get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().expect("wait broker").is_none(),
            None => false,
        }
    }
}

/// The `addr` of a `<message> addr=...` log line, in the text format or the JSON one
/// (`--log-format json`: `{"fields":{"message":...,"addr":...},...}`).
fn bound_address(line: &str, message: &str) -> Option<SocketAddr> {
    if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = json.get("fields")?;
        if fields.get("message")?.as_str()? != message {
            return None;
        }
        return fields.get("addr")?.as_str()?.parse().ok();
    }
    line.split(&format!("{message} addr="))
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The `listener` field of a `kafka listener bound` line (text or JSON log format).
fn bound_listener(line: &str) -> Option<String> {
    if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        return Some(json.get("fields")?.get("listener")?.as_str()?.to_string());
    }
    let rest = line.split(" listener=").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// (VmRSS, VmHWM: the peak) of process `pid`, in bytes, from `/proc/<pid>/status`.
pub fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("a kB field")
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Makes `name` a SCRAM user (both mechanisms) in the embedded store of `data_dir`, with the
/// broker stopped, as an operator makes the first admin.
pub fn add_user(data_dir: &Path, name: &str, password: &str) {
    let output = run_with_input(
        Command::new(env!("CARGO_BIN_EXE_strato"))
            .args(["user", "create", name, "--password-stdin", "--data-dir"])
            .arg(data_dir),
        Some(format!("{password}\n").as_bytes()),
        Duration::from_secs(60),
    );
    assert!(
        output.status.success(),
        "strato user create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls `cond` until it holds or `deadline` passes (for effects outside the test process).
pub fn wait_until(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Python interpreter with the client libraries, set up by scripts/test.sh.
pub fn python() -> PathBuf {
    match std::env::var_os("STRATO_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "STRATO_TEST_PYTHON is not set: run the tests through ./scripts/test.sh, which \
             creates a venv with kafka-python and confluent-kafka"
        ),
    }
}

/// The kcat binary, installed by scripts/test.sh.
pub fn kcat() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATO_TEST_KCAT") {
        return PathBuf::from(p);
    }
    let default = PathBuf::from("/usr/bin/kcat");
    assert!(
        default.exists(),
        "kcat not found: run ./scripts/test.sh (it installs the Debian package kcat)"
    );
    default
}

/// The node binary, found by scripts/test.sh.
pub fn node() -> PathBuf {
    match std::env::var_os("STRATO_TEST_NODE") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "STRATO_TEST_NODE is not set: run the tests through ./scripts/test.sh, which \
             installs Node.js and kafkajs"
        ),
    }
}

/// The node_modules directory with kafkajs, installed by scripts/test.sh.
pub fn node_path() -> PathBuf {
    match std::env::var_os("STRATO_TEST_NODE_PATH") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "STRATO_TEST_NODE_PATH is not set: run the tests through ./scripts/test.sh, which \
             installs kafkajs into a cached node_modules"
        ),
    }
}

/// The java binary, found by scripts/test.sh.
pub fn java() -> PathBuf {
    match std::env::var_os("STRATO_TEST_JAVA") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "STRATO_TEST_JAVA is not set: run the tests through ./scripts/test.sh, which \
             installs a JDK and builds the Java client program"
        ),
    }
}

/// The Java client program (tests/clients/java), built by scripts/test.sh.
pub fn java_client_jar() -> PathBuf {
    match std::env::var_os("STRATO_TEST_JAVA_JAR") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "STRATO_TEST_JAVA_JAR is not set: run the tests through ./scripts/test.sh, which \
             builds tests/clients/java against the pinned kafka-clients jars"
        ),
    }
}

/// How long a client script may run before it is killed (each script also has its own,
/// shorter --timeout-s watchdog that reports what it was doing).
const CLIENT_SCRIPT_DEADLINE: Duration = Duration::from_secs(180);

/// Runs a Python client script from tests/clients with a hard timeout; returns its JSON line.
pub fn run_client_script(script: &str, args: &[&str]) -> serde_json::Value {
    run_client_script_with_env(script, args, &[])
}

/// [`run_client_script`] with environment variables for the script (passwords, which must
/// not appear on a command line).
pub fn run_client_script_with_env(
    script: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> serde_json::Value {
    let output = run_with_timeout(
        Command::new(python())
            .arg(client_script(script))
            .args(args)
            .envs(envs.iter().copied()),
        CLIENT_SCRIPT_DEADLINE,
    );
    script_json(script, &output)
}

/// Runs a Node.js client script from tests/clients with kafkajs on NODE_PATH and a hard
/// timeout; returns its JSON line.
pub fn run_node_script(script: &str, args: &[&str]) -> serde_json::Value {
    let output = run_with_timeout(
        Command::new(node())
            .arg(client_script(script))
            .args(args)
            .env("NODE_PATH", node_path()),
        CLIENT_SCRIPT_DEADLINE,
    );
    script_json(script, &output)
}

/// Runs the Java client program (`java -jar`, kafka-clients) with a hard timeout; returns its
/// JSON line.
pub fn run_java_client(args: &[&str]) -> serde_json::Value {
    run_java_class("strato.JavaRoundTrip", args)
}

/// Runs `class` of the Java client program (tests/clients/java) with a hard timeout; returns
/// its JSON line.
pub fn run_java_class(class: &str, args: &[&str]) -> serde_json::Value {
    let jar = java_client_jar();
    assert!(
        jar.is_file(),
        "{} does not exist: run ./scripts/test.sh, which builds it",
        jar.display()
    );
    let output = run_with_timeout(
        Command::new(java())
            .arg("-cp")
            .arg(&jar)
            .arg(class)
            .args(args),
        CLIENT_SCRIPT_DEADLINE,
    );
    script_json(&format!("tests/clients/java ({class})"), &output)
}

fn client_script(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script)
}

/// The JSON line a client script printed, after checking that it exited 0.
fn script_json(script: &str, output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("{script} printed no JSON:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).expect("client script JSON")
}

/// Runs a command, killing it (by pid) if it outlives `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    run_with_input(cmd, None, timeout)
}

/// Runs a command with `input` on its stdin, killing it (by pid) if it outlives `timeout`.
pub fn run_with_input(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> std::process::Output {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Dropping stdin after writing closes it, which ends the client's input.
        std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    }
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut BufReader::new(stdout), &mut buf).ok();
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut BufReader::new(stderr), &mut buf).ok();
        buf
    });
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait client") {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("client command timed out after {timeout:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}

/// Segment object files (`*.seg`) of a broker's file:// object store under `data_dir`.
pub fn segment_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![data_dir.join("objects").join("segments")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "seg") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
