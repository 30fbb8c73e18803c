//! Overload (issue 24): what a hostile or unlucky day sends a broker. 10,000 connections
//! opened and dropped, frames of 100 MiB, a client that never reads its responses, 1,000
//! producers at once and a fetch flood. In each, the broker keeps serving a canary client
//! (a produce acknowledged and read back), its memory stays within its configured limits
//! plus a stated constant (peak RSS, `VmHWM` from `/proc/<pid>/status`), and the limit it
//! ran into is counted in `/metrics` (`strato_limit_reached_total{limit=...}`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use common::kafka::{consumer, create_topic, producer};
use common::wire::{self, connect};
use common::{Broker, wait_until};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use strato_tiering::batch::test_support::{BatchSpec, build_batch};

const MIB: u64 = 1 << 20;
/// What a broker holds beyond its configured memory limits: the binary, the runtime and
/// its threads, the allocator's arenas, metadata, thousands of connections' buffers.
const MEMORY_CONSTANT: u64 = 192 * MIB;
/// The chunk cache of these brokers (small, so the bound below is tight).
const CACHE_BYTES: u64 = 32 * MIB;
/// The broker's defaults these tests keep.
const UNFLUSHED_BYTES: u64 = 64 * MIB;
/// How long the canary may take while the broker is under load.
const CANARY_DEADLINE: Duration = Duration::from_secs(60);

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count()
}

/// A broker for one scenario, its memory bound and a canary client.
struct Scenario {
    broker: Broker,
    _dir: tempfile::TempDir,
    /// Peak RSS allowed: RSS at start + the configured limits + [`MEMORY_CONSTANT`].
    memory_bound: u64,
    /// The canary's clients; `None` after [`Scenario::wait_connections_closed`] closed
    /// them, until the next canary opens new ones.
    clients: Option<(FutureProducer, BaseConsumer)>,
    canaries: i64,
    rt: tokio::runtime::Runtime,
}

impl Scenario {
    /// Starts a broker with `args` whose request memory is `queued` bytes.
    fn start(args: &[&str], queued: u64) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let cache = CACHE_BYTES.to_string();
        let queued_text = queued.to_string();
        let mut all = vec![
            "--cache-memory-bytes",
            &cache,
            "--max-queued-request-bytes",
            &queued_text,
        ];
        all.extend_from_slice(args);
        let broker = Broker::start(dir.path(), &all);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(create_topic(&broker.bootstrap(), "canary", 1));
        let mut scenario = Scenario {
            memory_bound: 0,
            _dir: dir,
            clients: None,
            canaries: 0,
            rt,
            broker,
        };
        // The canary's connections are open before the load starts.
        scenario.canary();
        let (rss, _) = common::memory_of(scenario.broker.pid());
        scenario.memory_bound = rss + CACHE_BYTES + UNFLUSHED_BYTES + queued + MEMORY_CONSTANT;
        scenario
    }

    /// Produces one record (acks=all) and reads it back, within [`CANARY_DEADLINE`].
    fn canary(&mut self) {
        let started = Instant::now();
        let value = format!("canary-{}", self.canaries);
        let bootstrap = self.broker.bootstrap();
        let (producer, consumer) = self.clients.get_or_insert_with(|| {
            (
                producer(&bootstrap, &[("acks", "all")]),
                consumer(&bootstrap, &[]),
            )
        });
        let delivery = self
            .rt
            .block_on(async {
                tokio::time::timeout(
                    CANARY_DEADLINE,
                    producer.send(
                        FutureRecord::<(), String>::to("canary").payload(&value),
                        CANARY_DEADLINE,
                    ),
                )
                .await
            })
            .expect("the canary is acknowledged in time")
            .map_err(|(err, _)| err)
            .expect("the canary is acknowledged");
        assert_eq!(delivery.offset, self.canaries, "canary offsets are dense");
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset("canary", 0, Offset::Offset(delivery.offset))
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let deadline = Instant::now() + CANARY_DEADLINE;
        loop {
            assert!(Instant::now() < deadline, "the canary is read back in time");
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) if msg.offset() == delivery.offset => {
                    assert_eq!(msg.payload(), Some(value.as_bytes()));
                    break;
                }
                Some(Ok(_)) | None => {}
                Some(Err(err)) => panic!("canary read: {err}"),
            }
        }
        self.canaries += 1;
        eprintln!("canary {} took {:?}", self.canaries, started.elapsed());
    }

    fn limit_reached(&self, limit: &str) -> f64 {
        self.broker
            .metric(&format!("strato_limit_reached_total{{limit=\"{limit}\"}}"))
    }

    /// The broker's peak RSS so far is within its bound; returns it.
    fn check_memory(&self) -> u64 {
        let (_, peak) = common::memory_of(self.broker.pid());
        eprintln!(
            "peak RSS {} MiB (bound {} MiB)",
            peak / MIB,
            self.memory_bound / MIB
        );
        assert!(
            peak <= self.memory_bound,
            "peak RSS {} MiB is over the bound of {} MiB",
            peak / MIB,
            self.memory_bound / MIB
        );
        peak
    }

    /// Closes the canary's clients (librdkafka opens connections as it sees fit, so their
    /// number is not fixed) and waits until the broker holds no client connection but the
    /// test's `others` still open.
    fn wait_connections_closed(&mut self, others: f64) {
        self.clients = None;
        wait_until(Duration::from_secs(60), "connections to be closed", || {
            self.broker.metric("strato_connections") <= others
        });
    }
}

/// Goal: 10,000 connections opened and dropped (1,250 at a time against a limit of 1,000)
/// leave the broker serving, its memory bounded and every connection closed.
/// Method: eight waves; half of each wave's connections send an ApiVersions request and
/// never read the answer; the canary runs while each wave is held open.
#[test]
fn ten_thousand_connections_opened_and_dropped() {
    const WAVES: usize = 8;
    const WAVE: usize = 1_250;
    let mut s = Scenario::start(&["--max-connections", "1000"], 256 * MIB);
    let fds_before = open_fds(s.broker.pid());
    let api_versions =
        wire::request_frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
    for wave in 0..WAVES {
        let mut held = Vec::with_capacity(WAVE);
        for i in 0..WAVE {
            let mut stream = TcpStream::connect_timeout(&s.broker.addr, Duration::from_secs(30))
                .unwrap_or_else(|err| panic!("wave {wave}: connection {i}: {err}"));
            if i % 2 == 0 {
                stream.write_all(&api_versions).expect("send ApiVersions");
            }
            held.push(stream);
        }
        s.canary();
        drop(held);
    }
    s.wait_connections_closed(0.0);
    wait_until(
        Duration::from_secs(30),
        "the broker's sockets closed",
        || open_fds(s.broker.pid()) <= fds_before + 16,
    );
    assert!(
        s.limit_reached("max_connections") >= 1.0,
        "the connection limit was reached and counted"
    );
    s.check_memory();
    s.canary();
}

/// Goal: frames of 100 MiB cost no more than the request memory they are allowed, a frame
/// over the limit closes its connection, and other clients are served meanwhile.
/// Method: a length prefix of 100 MiB + 1; then six clients each sending a whole 100 MiB
/// Produce frame of garbage (0xFF) at once against 256 MiB of request memory.
#[test]
fn frames_of_100_mib_are_bounded() {
    const FRAME: usize = 100 << 20;
    const CLIENTS: usize = 6;
    let mut s = Scenario::start(&[], 256 * MIB);

    let mut too_large = connect(&s.broker);
    too_large
        .write_all(&(FRAME as i32 + 1).to_be_bytes())
        .unwrap();
    let mut byte = [0u8; 1];
    let read = too_large.read(&mut byte);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "a frame over max_request_bytes closes the connection: {read:?}"
    );
    assert!(s.limit_reached("max_request_bytes") >= 1.0);

    let rejected_before = s.broker.metric("strato_requests_rejected_total");
    let mut header = BytesMut::new();
    header.put_i32(FRAME as i32);
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("overload")))
        .encode(&mut header, ApiKey::Produce.request_header_version(9))
        .unwrap();
    let header = Arc::new(header.to_vec());
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (header, start, addr) = (header.clone(), start.clone(), s.broker.addr);
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream
                    .set_read_timeout(Some(Duration::from_secs(120)))
                    .unwrap();
                start.wait();
                let garbage = vec![0xFFu8; 1 << 20];
                let mut written = stream.write_all(&header);
                let mut left = FRAME + 4 - header.len();
                while written.is_ok() && left > 0 {
                    let n = left.min(garbage.len());
                    written = stream.write_all(&garbage[..n]);
                    left -= n;
                }
                // The broker refuses the frame once it has read it whole: the connection
                // closes (a write may already see that).
                let mut byte = [0u8; 1];
                let read = stream.read(&mut byte);
                assert!(
                    matches!(read, Ok(0)) || read.is_err(),
                    "a malformed 100 MiB frame closes its connection: {read:?}"
                );
            })
        })
        .collect();
    start.wait();
    s.canary();
    for client in clients {
        client.join().expect("client thread");
    }
    assert!(
        s.broker.metric("strato_requests_rejected_total") >= rejected_before + CLIENTS as f64,
        "every garbage frame was read whole and refused"
    );
    assert!(
        s.limit_reached("max_queued_request_bytes") >= 1.0,
        "600 MiB of frames against 256 MiB of request memory waited"
    );
    s.check_memory();
    s.canary();
}

/// `n` client threads, each with its own connection to `addr`, run `client(i, stream)`
/// together once all of them are connected; returns when they have started.
fn start_clients(
    n: usize,
    addr: std::net::SocketAddr,
    client: impl Fn(usize, &mut TcpStream) + Clone + Send + 'static,
) -> Vec<std::thread::JoinHandle<()>> {
    let start = Arc::new(Barrier::new(n + 1));
    let threads = (0..n)
        .map(|i| {
            let (start, client) = (start.clone(), client.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut stream = TcpStream::connect(addr).expect("connect");
                    stream
                        .set_read_timeout(Some(Duration::from_secs(120)))
                        .unwrap();
                    start.wait();
                    client(i, &mut stream);
                })
                .expect("spawn client thread")
        })
        .collect();
    start.wait();
    threads
}

/// Produces `batches` batches of `records` records of `value_len` bytes to `topic`
/// partition 0 over `stream` (acks=all); panics on an error.
fn produce_batches(
    stream: &mut TcpStream,
    topic: &str,
    partition: i32,
    batches: usize,
    records: usize,
    value_len: usize,
) {
    for i in 0..batches {
        let batch = build_batch(&BatchSpec {
            records,
            value_len,
            ..BatchSpec::default()
        });
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(bytes::Bytes::from(batch))),
                    ]),
            ]);
        let correlation_id = i as i32 + 1;
        wire::send(stream, ApiKey::Produce, 9, correlation_id, &request);
        let response: ProduceResponse = wire::response(stream, ApiKey::Produce, 9, correlation_id);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "{partition:?}");
    }
}

/// Goal: a client that sends requests and never reads the answers costs the broker a
/// bounded amount of memory: one Fetch of a connection is processed at a time (a second
/// waits, and the requests behind it), the connection stops being read once
/// `max_inflight_requests` requests wait, and other clients go on being served.
/// Method: 16 MiB in partition 0 of a topic; a client pipelines Fetch requests of 1 MiB
/// each from offset 0 without reading until its writes stall (the broker stopped reading
/// it); the canary then runs; the client is dropped and its connection closes.
#[test]
fn a_client_that_never_reads_its_responses() {
    let mut s = Scenario::start(&[], 256 * MIB);
    s.rt.block_on(create_topic(&s.broker.bootstrap(), "unread", 1));
    let mut stream = connect(&s.broker);
    produce_batches(&mut stream, "unread", 0, 32, 32, 16 * 1024);
    let mut reader = connect(&s.broker);
    reader
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = wire::request_frame(
        ApiKey::Fetch,
        12,
        1,
        &wire::fetch_request("unread", 0, 1 << 20, 0),
    );
    // First a long poll at the log end (it waits its full 10 s for data that never comes),
    // so the fetches behind it wait for it rather than pile up.
    let long_poll = wire::request_frame(
        ApiKey::Fetch,
        12,
        1,
        &wire::fetch_request("unread", 32 * 32, 1 << 20, 10_000),
    );
    reader.write_all(&long_poll).expect("send the long poll");
    let mut sent = 0usize;
    let stalled = loop {
        assert!(
            sent < 1_000_000,
            "the broker kept reading a client that never reads"
        );
        match reader.write_all(&request) {
            Ok(()) => sent += 1,
            Err(err) => break err,
        }
    };
    assert!(
        matches!(
            stalled.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "writes stall, the connection stays open: {stalled}"
    );
    eprintln!("{sent} fetches sent before the broker stopped reading");
    assert!(s.limit_reached("max_inflight_requests") >= 1.0);
    assert!(
        s.limit_reached("fetches_per_connection") >= 1.0,
        "the second pipelined Fetch waited for the first"
    );
    s.canary();
    s.check_memory();
    drop(reader);
    // Only the producing connection is left.
    s.wait_connections_closed(1.0);
    s.canary();
}

/// Goal: 1,000 producers at once are all served, through the unflushed-bytes limit.
/// Method: 1,000 threads, each with its own connection, start together and each produce
/// ten batches of ten 100-byte records (acks=all) to one of four partitions; the broker's
/// unflushed bytes are limited to 256 KiB. Every batch is acknowledged, the partitions
/// hold every record, and the limit was reached and counted.
#[test]
fn a_thousand_producers_at_once() {
    const PRODUCERS: usize = 1_000;
    const BATCHES: usize = 10;
    const RECORDS: usize = 10;
    const PARTITIONS: i32 = 4;
    let mut s = Scenario::start(
        &["--flush-bytes", "131072", "--max-unflushed-bytes", "262144"],
        256 * MIB,
    );
    s.rt.block_on(create_topic(&s.broker.bootstrap(), "many", PARTITIONS));
    let producers = start_clients(PRODUCERS, s.broker.addr, |i, stream| {
        let partition = (i % PARTITIONS as usize) as i32;
        produce_batches(stream, "many", partition, BATCHES, RECORDS, 100);
    });
    s.canary();
    for producer in producers {
        producer
            .join()
            .expect("every producer's batches acknowledged");
    }
    let watermarks = common::kafka::high_watermarks(&s.broker.bootstrap(), "many", PARTITIONS);
    assert_eq!(
        watermarks.values().sum::<i64>(),
        (PRODUCERS * BATCHES * RECORDS) as i64,
        "every acknowledged record is there: {watermarks:?}"
    );
    assert!(s.limit_reached("max_unflushed_bytes") >= 1.0);
    s.check_memory();
    s.canary();
}

/// Goal: a flood of fetches (200 clients reading a 16 MiB partition from the start over and
/// over, 200 more long-polling at its end) leaves produce served and memory bounded.
/// Method: 400 threads, each with its own connection, 20 fetches each (Fetch responses
/// capped at 4 MiB by `--max-fetch-bytes`); the canary runs during the flood.
#[test]
fn a_fetch_flood() {
    const READERS: usize = 200;
    const POLLERS: usize = 200;
    const FETCHES: usize = 20;
    let mut s = Scenario::start(&["--max-fetch-bytes", "4194304"], 256 * MIB);
    s.rt.block_on(create_topic(&s.broker.bootstrap(), "flood", 1));
    let mut stream = connect(&s.broker);
    produce_batches(&mut stream, "flood", 0, 32, 32, 16 * 1024);
    let end = 32 * 32;
    let clients = start_clients(READERS + POLLERS, s.broker.addr, move |i, stream| {
        let (offset, wait) = if i < READERS { (0, 0) } else { (end, 500) };
        for n in 0..FETCHES {
            let request = wire::fetch_request("flood", offset, 64 << 20, wait);
            let correlation_id = n as i32 + 1;
            wire::send(stream, ApiKey::Fetch, 12, correlation_id, &request);
            let response: FetchResponse = wire::response(stream, ApiKey::Fetch, 12, correlation_id);
            let partition = &response.responses[0].partitions[0];
            assert_eq!(partition.error_code, 0, "{partition:?}");
            let bytes = partition.records.as_ref().map_or(0, |r| r.len());
            assert!(bytes <= 4 << 20, "a fetch answered {bytes} bytes");
            if i < READERS {
                assert!(bytes > 0, "a read from the start returns records");
            }
        }
    });
    s.canary();
    s.canary();
    for client in clients {
        client.join().expect("every fetch answered");
    }
    assert!(
        s.limit_reached("max_fetch_bytes") >= (READERS * FETCHES) as f64,
        "every fetch asking for 64 MiB was held to the limit, and counted"
    );
    s.check_memory();
    s.canary();
}
