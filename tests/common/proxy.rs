//! A fault-injecting TCP proxy in front of a real service (LocalStack, a broker): while it is
//! "down" it cuts every open connection and closes new ones at once, as a network outage or
//! a crashed endpoint would.
//!
//! In front of a Kafka broker ([`FaultProxy::kafka`]) it reads whole frames and can hold
//! responses back: the broker did the work and answered, the client never hears of it, and
//! [`FaultProxy::cut`] then breaks the connections, as a network failure after the broker
//! answered would. A Kafka proxy is bound before it has a target, so a broker can be started
//! with the proxy as its `--advertised-address` and found again there after a restart on
//! another port ([`FaultProxy::forward_to`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Open connections the proxy tracks at once; more are refused (bounded, like everything).
const CONNECTIONS_MAX: usize = 256;
/// Largest Kafka frame the proxy passes on (the broker's default `max_request_bytes` is
/// 100 MiB); a larger length prefix closes the connection.
const FRAME_BYTES_MAX: usize = 128 << 20;
/// Kafka's API key of Produce.
const PRODUCE_API_KEY: i16 = 0;

pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    /// Where new connections go (`host:port`); none yet: they are closed at once.
    target: Mutex<Option<String>>,
    /// Pass whole Kafka frames (and note which API each response answers) instead of bytes.
    kafka: bool,
    down: AtomicBool,
    stop: AtomicBool,
    /// Responses are read from the target and dropped instead of delivered.
    holding: AtomicBool,
    /// Produce responses dropped while holding, since the proxy started.
    held_produce_responses: AtomicUsize,
    /// Added to every byte going to the target, in milliseconds ([`FaultProxy::delay`]).
    delay_ms: AtomicU64,
    /// Bytes looked for in what clients send (raw proxies), and the chunks that held them
    /// ([`FaultProxy::look_for`]).
    needle: Mutex<Option<Vec<u8>>>,
    needle_chunks: AtomicUsize,
    open: Mutex<Vec<TcpStream>>,
}

impl FaultProxy {
    /// Starts forwarding `127.0.0.1:<free port>` to `target` (`host:port`), byte for byte.
    pub fn start(target: &str) -> FaultProxy {
        let proxy = Self::bind(false);
        proxy.forward_to(target);
        proxy
    }

    /// A proxy for Kafka brokers on `127.0.0.1:<free port>`, with no target yet: connections
    /// are closed at once until [`FaultProxy::forward_to`].
    pub fn kafka() -> FaultProxy {
        Self::bind(true)
    }

    fn bind(kafka: bool) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target: Mutex::new(None),
            kafka,
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            held_produce_responses: AtomicUsize::new(0),
            delay_ms: AtomicU64::new(0),
            needle: Mutex::new(None),
            needle_chunks: AtomicUsize::new(0),
            open: Mutex::new(Vec::new()),
        });
        {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(listener, &shared));
        }
        FaultProxy { addr, shared }
    }

    /// New connections go to `target` (`host:port`); open ones stay where they are.
    pub fn forward_to(&self, target: &str) {
        *self.shared.target.lock().unwrap() = Some(target.to_string());
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every open connection and refuses new ones until [`FaultProxy::up`].
    pub fn down(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        self.shared.close_all();
    }

    pub fn up(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// From now on every byte sent to the target arrives `delay` later (a latency, not a
    /// bandwidth limit: bytes in flight overlap), as a distant or overloaded service's
    /// requests would. Byte proxies only.
    pub fn delay(&self, delay: Duration) {
        assert!(!self.shared.kafka, "delays are for byte proxies");
        let ms = u64::try_from(delay.as_millis()).expect("a delay in range");
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// From now on responses are read from the target but not delivered (Kafka proxy only).
    /// A connection that held a response delivers none after it (its client would see
    /// answers out of order), until [`FaultProxy::cut`] breaks it.
    pub fn hold_responses(&self) {
        assert!(self.shared.kafka, "holding responses needs Kafka framing");
        self.shared.holding.store(true, Ordering::SeqCst);
    }

    /// Produce responses held back (and so lost to the client) since the proxy started: each
    /// is a request the broker committed and the client must retry.
    pub fn held_produce_responses(&self) -> usize {
        self.shared.held_produce_responses.load(Ordering::SeqCst)
    }

    /// Stops holding responses and breaks every open connection (the held responses are
    /// lost); new connections are served as before.
    /// From now on, counts the chunks read from clients (of a raw proxy) that contain
    /// `needle`, e.g. an HTTP header (a header split between two reads is not counted).
    pub fn look_for(&self, needle: &[u8]) {
        *self.shared.needle.lock().unwrap() = Some(needle.to_vec());
    }

    /// Chunks that contained the needle of [`FaultProxy::look_for`].
    pub fn chunks_with_needle(&self) -> usize {
        self.shared.needle_chunks.load(Ordering::SeqCst)
    }

    pub fn cut(&self) {
        self.shared.holding.store(false, Ordering::SeqCst);
        self.shared.close_all();
    }
}

impl Shared {
    fn close_all(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let target = shared.target.lock().unwrap().clone();
        let mut tracked = shared.open.lock().unwrap();
        tracked.retain(|s| s.peer_addr().is_ok());
        if shared.down.load(Ordering::SeqCst) || tracked.len() >= CONNECTIONS_MAX {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Some(Ok(server)) = target.map(TcpStream::connect) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        tracked.push(client.try_clone().unwrap());
        tracked.push(server.try_clone().unwrap());
        drop(tracked);
        if shared.kafka {
            // Correlation id -> API key of the requests awaiting an answer on this connection.
            let waiting = Arc::new(Mutex::new(HashMap::new()));
            {
                let (from, to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let waiting = waiting.clone();
                std::thread::spawn(move || pipe_requests(from, to, &waiting));
            }
            let shared = shared.clone();
            std::thread::spawn(move || pipe_responses(server, client, &waiting, &shared));
        } else {
            pipe(
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                Some(shared.clone()),
            );
            pipe(server, client, None);
        }
    }
}

/// Chunks read but not yet delivered by a delayed pipe (bounded, like everything).
const DELAYED_CHUNKS_MAX: usize = 1024;

/// Copies `from` to `to` until either ends. With `delayed`, through a delay line: each
/// chunk is written `delay_ms` (of the shared state, read as it arrives) after it arrived,
/// in order, so chunks in flight overlap.
fn pipe(mut from: TcpStream, mut to: TcpStream, delayed: Option<Arc<Shared>>) {
    let Some(shared) = delayed else {
        std::thread::spawn(move || {
            for_each_chunk(&mut from, |chunk| to.write_all(chunk).is_ok());
            let _ = to.shutdown(Shutdown::Write);
        });
        return;
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Vec<u8>)>(DELAYED_CHUNKS_MAX);
    std::thread::spawn(move || {
        for_each_chunk(&mut from, |chunk| {
            if let Some(needle) = shared.needle.lock().unwrap().as_deref()
                && chunk.windows(needle.len()).any(|w| w == needle)
            {
                shared.needle_chunks.fetch_add(1, Ordering::SeqCst);
            }
            let delay = Duration::from_millis(shared.delay_ms.load(Ordering::SeqCst));
            tx.send((Instant::now() + delay, chunk.to_vec())).is_ok()
        });
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            // The simulated latency itself, not a wait for another thread.
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Reads `from` in chunks, handing each to `f`, until the stream ends or `f` says stop.
fn for_each_chunk(from: &mut TcpStream, mut f: impl FnMut(&[u8]) -> bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) if !f(&buf[..n]) => return,
            Ok(_) => {}
        }
    }
}

/// One length-prefixed Kafka frame, prefix included; `None` at the end of the stream.
fn read_frame(from: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len).ok()?;
    let body_len = usize::try_from(i32::from_be_bytes(len)).ok()?;
    if body_len > FRAME_BYTES_MAX {
        return None;
    }
    let mut frame = vec![0u8; 4 + body_len];
    frame[..4].copy_from_slice(&len);
    from.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

/// Client to broker: notes each request's API key under its correlation id, then passes it on.
fn pipe_requests(mut from: TcpStream, mut to: TcpStream, waiting: &Mutex<HashMap<i32, i16>>) {
    // Request header: api_key i16, api_version i16, correlation_id i32.
    while let Some(frame) = read_frame(&mut from)
        && frame.len() >= 12
    {
        let api_key = i16::from_be_bytes([frame[4], frame[5]]);
        let correlation_id = i32::from_be_bytes(frame[8..12].try_into().unwrap());
        waiting.lock().unwrap().insert(correlation_id, api_key);
        if to.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Broker to client: delivers each response, or drops it while the proxy holds responses.
fn pipe_responses(
    mut from: TcpStream,
    mut to: TcpStream,
    waiting: &Mutex<HashMap<i32, i16>>,
    shared: &Shared,
) {
    let mut held = false;
    // Response header: correlation_id i32.
    while let Some(frame) = read_frame(&mut from)
        && frame.len() >= 8
    {
        let correlation_id = i32::from_be_bytes(frame[4..8].try_into().unwrap());
        let api_key = waiting.lock().unwrap().remove(&correlation_id);
        if held || shared.holding.load(Ordering::SeqCst) {
            held = true;
            if api_key == Some(PRODUCE_API_KEY) {
                shared.held_produce_responses.fetch_add(1, Ordering::SeqCst);
            }
            continue;
        }
        if to.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.down();
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(self.addr);
    }
}
