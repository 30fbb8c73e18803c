//! Cold reads through the broker: a consumer of every partition replaying data that is in
//! no cache (after a restart) costs about one GET per flush object, not one per chunk.

mod common;

use std::collections::BTreeMap;

use common::Broker;
use common::kafka::{Rec, consume_all, create_topic, producer};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 12;
const RECORDS: usize = 96 * 1024;
const VALUE_BYTES: usize = 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// A 1 KiB value, every other byte pseudo-random (compresses about 2:1, like real data).
fn value(i: usize) -> Vec<u8> {
    let mut state = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..VALUE_BYTES)
        .map(|n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if n % 2 == 0 { state as u8 } else { b'v' }
        })
        .collect()
}

fn records() -> Vec<Rec> {
    (0..RECORDS)
        .map(|i| Rec {
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(value(i)),
            headers: Vec::new(),
            timestamp: Some(1_700_000_000_000 + i as i64),
        })
        .collect()
}

/// Produces every record at once (all in librdkafka's queue, so flushes fill up to
/// `--flush-bytes` instead of waiting for the flush interval): where each landed.
async fn produce_at_once(producer: &FutureProducer, records: &[Rec]) -> BTreeMap<(i32, i64), Rec> {
    let mut deliveries = Vec::with_capacity(records.len());
    for rec in records {
        let record: FutureRecord<'_, Vec<u8>, Vec<u8>> = FutureRecord::to("cold")
            .key(rec.key.as_ref().expect("keyed"))
            .payload(rec.value.as_ref().expect("valued"))
            .timestamp(rec.timestamp.expect("timestamped"));
        let delivery = producer
            .send_result(record)
            .map_err(|(err, _)| err)
            .expect("enqueue record");
        deliveries.push((delivery, rec));
    }
    let mut landed = BTreeMap::new();
    for (delivery, rec) in deliveries {
        let delivered = delivery
            .await
            .expect("delivery future")
            .map_err(|(err, _)| err)
            .expect("record acknowledged");
        landed.insert((delivered.partition, delivered.offset), rec.clone());
    }
    landed
}

/// Goal: replaying 96 MiB of 12 partitions from a cold cache costs at most one GET per
/// 4 MiB read (issue 19), the objects being read whole, and every record comes back as it
/// was acknowledged. Method: flushes of at least 8 MiB (all records queued at once and a
/// long flush interval, no flush because the flusher is idle, so they fill), no compaction; produce, restart the broker (its chunk cache starts empty), consume all 12
/// partitions from offset 0 with one librdkafka consumer and compare; then compare the
/// broker's GETs with the record bytes its fetches returned (`/metrics`). Per-chunk reads
/// would cost 12 GETs per object, about 1 per 0.7 MiB here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_replay_of_twelve_partitions_costs_one_get_per_four_mib() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--flush-interval-ms",
            "5000",
            // S3's flush size (file:// flushes at 2 MiB by default).
            "--flush-bytes",
            "8388608",
            "--flush-when-idle",
            "false",
            "--compaction-interval-ms",
            "3600000",
        ],
    );
    create_topic(&broker.bootstrap(), "cold", PARTITIONS).await;
    let producer = producer(&broker.bootstrap(), &[("acks", "all")]);
    let landed = produce_at_once(&producer, &records()).await;
    drop(producer);
    assert_eq!(landed.len(), RECORDS);

    let broker = broker.restart_graceful();
    let objects = common::segment_files(&broker.data_dir).len();
    let gets_before = broker.metric("strato_object_store_requests_total{operation=\"get\"}");
    let consumed = consume_all(&broker.bootstrap(), "cold", PARTITIONS, RECORDS);
    assert_eq!(
        consumed, landed,
        "consumed records equal the acknowledged ones"
    );

    let gets = broker.metric("strato_object_store_requests_total{operation=\"get\"}") - gets_before;
    let fetched_mib = broker.metric("strato_fetch_bytes_total") / MIB;
    let whole = broker.metric("strato_whole_object_reads_total{kind=\"object\"}");
    eprintln!("{objects} objects, {fetched_mib:.1} MiB fetched, {gets} GETs, {whole} whole");
    assert!(fetched_mib >= 96.0, "{fetched_mib} MiB fetched");
    assert!(whole > 0.0, "no object was read whole");
    assert!(
        gets <= fetched_mib / 4.0,
        "{gets} GETs for {fetched_mib:.1} MiB: more than one per 4 MiB"
    );
}
