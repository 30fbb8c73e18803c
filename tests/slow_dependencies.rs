//! Slow dependencies (issue 24): an object store that answers in 500 ms and an etcd that
//! answers in 200 ms (real LocalStack and etcd behind a delaying TCP proxy) cost latency,
//! never correctness: every acknowledged record is read back where its acknowledgement said,
//! a consumer group commits its offsets, the broker's memory stays within its configured
//! limits, and `/ready` stays ready while naming what is slow.

mod common;

use std::time::{Duration, Instant};

use common::group::{Member, committed};
use common::kafka::{consume_all, create_topic, produce_all, producer, record};
use common::proxy::FaultProxy;
use common::{Broker, s3, wait_until};
use strato_metadata::testing::etcd_server::EtcdServer;

const MIB: u64 = 1 << 20;
const OBJECT_STORE_DELAY: Duration = Duration::from_millis(500);
const ETCD_DELAY: Duration = Duration::from_millis(200);
const CACHE_BYTES: u64 = 32 * MIB;
const QUEUED_BYTES: u64 = 128 * MIB;
/// The broker's default `--max-unflushed-bytes`.
const UNFLUSHED_BYTES: u64 = 64 * MIB;
/// Beyond the configured limits: binary, runtime, allocator, metadata.
const MEMORY_CONSTANT: u64 = 192 * MIB;
const PARTITIONS: i32 = 4;
const RECORDS: usize = 20_000;

/// Goal: with every object store request 500 ms late and every etcd request 200 ms late,
/// produce, consume and a consumer group work, memory stays bounded and `/ready` says
/// "ready" and that both are slow. Method: a broker on etcd and LocalStack through
/// delaying proxies; an idempotent producer sends 20,000 records to four partitions while a
/// group member reads them; all are read back and the group commits the log end.
#[test]
fn slow_object_store_and_etcd_cost_latency_not_correctness() {
    let etcd = EtcdServer::start();
    let etcd_target = etcd.endpoints()[0]
        .trim_start_matches("http://")
        .to_string();
    let etcd_proxy = FaultProxy::start(&etcd_target);
    etcd_proxy.delay(ETCD_DELAY);
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint);
    let s3_proxy = FaultProxy::start(&s3::host_port(&endpoint));
    s3_proxy.delay(OBJECT_STORE_DELAY);

    let dir = tempfile::tempdir().unwrap();
    let metadata = format!("etcd://{}/strato/slow", etcd_proxy.addr);
    let objects = format!("s3://{bucket}/slow");
    let cache = CACHE_BYTES.to_string();
    let queued = QUEUED_BYTES.to_string();
    let broker = Broker::start(
        dir.path(),
        &[
            "--metadata",
            &metadata,
            "--object-store",
            &objects,
            "--s3-endpoint",
            &s3_proxy.endpoint(),
            "--cache-memory-bytes",
            &cache,
            "--max-queued-request-bytes",
            &queued,
        ],
    );
    let (rss_at_start, _) = common::memory_of(broker.pid());
    let bootstrap = broker.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&bootstrap, "slow", PARTITIONS));

    let member = Member::start(&bootstrap, "slow", "slow-group", &[]);
    let p = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "120000"),
        ],
    );
    let records: Vec<_> = (0..RECORDS).map(|i| record("slow", i)).collect();
    let started = Instant::now();
    let landed = rt.block_on(produce_all(&p, "slow", &records));
    eprintln!(
        "{RECORDS} records acknowledged in {:.1} s through a {OBJECT_STORE_DELAY:?} object store and a {ETCD_DELAY:?} etcd",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(landed.len(), RECORDS);

    let (status, body) = broker.http_get("/ready");
    eprintln!("/ready: {status} {body:?}");
    assert_eq!(
        status, 200,
        "slow dependencies keep the broker ready: {body}"
    );
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(body.contains("object store: slow"), "{body}");
    assert!(body.contains("metadata store: slow"), "{body}");

    let consumed = consume_all(&bootstrap, "slow", PARTITIONS, RECORDS);
    assert_eq!(
        consumed, landed,
        "every acknowledged record where it was acknowledged"
    );
    let mut log_end = std::collections::BTreeMap::new();
    for (partition, offset) in landed.keys() {
        let end = log_end.entry(*partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    wait_until(
        Duration::from_secs(120),
        "the group to read everything",
        || member.records().len() >= RECORDS,
    );
    member.close();
    assert_eq!(
        committed(&bootstrap, "slow-group", "slow", PARTITIONS),
        log_end,
        "the group committed the log end through the slow etcd"
    );

    let (_, peak) = common::memory_of(broker.pid());
    let bound = rss_at_start + CACHE_BYTES + QUEUED_BYTES + UNFLUSHED_BYTES + MEMORY_CONSTANT;
    eprintln!("peak RSS {} MiB (bound {} MiB)", peak / MIB, bound / MIB);
    assert!(
        peak <= bound,
        "peak RSS {} MiB over {} MiB",
        peak / MIB,
        bound / MIB
    );
    let puts = broker.metric("strato_object_store_requests_total{operation=\"put\"}");
    assert!(puts >= 1.0, "the broker uploaded through the slow store");
}

/// Goal: a SIGTERM'd broker whose etcd stopped answering still exits within
/// `--shutdown-timeout-ms` (status 1: its drain could not finish) instead of retrying an
/// uncertain commit for half an hour. Method: a broker on etcd behind the delaying proxy;
/// records acknowledged; then etcd's answers are delayed by an hour and one more record is
/// sent, so its commit never gets an answer; SIGTERM; the process is gone within the
/// timeout plus a margin, and says why.
#[test]
fn a_broker_whose_etcd_stopped_answering_exits_after_sigterm() {
    use rdkafka::producer::FutureRecord;

    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
    let etcd = EtcdServer::start();
    let etcd_proxy = FaultProxy::start(etcd.endpoints()[0].trim_start_matches("http://"));
    let dir = tempfile::tempdir().unwrap();
    let metadata = format!("etcd://{}/strato/stuck", etcd_proxy.addr);
    let timeout_ms = SHUTDOWN_TIMEOUT.as_millis().to_string();
    let mut broker = Broker::start(
        dir.path(),
        &[
            "--metadata",
            &metadata,
            "--shutdown-timeout-ms",
            &timeout_ms,
        ],
    );
    let bootstrap = broker.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&bootstrap, "stuck", 1));
    let p = producer(&bootstrap, &[("message.timeout.ms", "120000")]);
    let records: Vec<_> = (0..10).map(|i| record("stuck", i)).collect();
    assert_eq!(rt.block_on(produce_all(&p, "stuck", &records)).len(), 10);

    etcd_proxy.delay(Duration::from_secs(3600));
    let produced = broker.metric("strato_produce_bytes_total");
    let _unanswered = p
        .send_result(FutureRecord::<(), str>::to("stuck").payload("never committed"))
        .map_err(|(err, _)| err)
        .expect("enqueue");
    wait_until(
        Duration::from_secs(30),
        "the broker to take the record",
        || broker.metric("strato_produce_bytes_total") > produced,
    );
    broker.terminate();
    let stopping = Instant::now();
    let status = broker.wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(20));
    eprintln!(
        "exited with {status} {:.1} s after SIGTERM",
        stopping.elapsed().as_secs_f64()
    );
    assert!(!status.success(), "an unfinished drain exits with status 1");
    assert!(
        broker
            .log_text()
            .contains("did not finish within --shutdown-timeout-ms"),
        "the broker says why it exited"
    );
}
