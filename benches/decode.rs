//! The cost of the request probe (`protocol/probe.rs`): every request frame is decoded once
//! through the probe, then for real. This times `strato::protocol::decode_request` (probe and
//! decode) against `kafka-protocol`'s decode alone (header and body, what the broker did
//! before the probe) on the requests of the hot path.
//!
//! Run: `cargo bench --bench decode`. Environment: `STRATO_BENCH_DECODE_MS` (time per case,
//! default 2,000).
//!
//! Prints one Markdown table row per case. A benchmark, not a test: nothing is asserted
//! about speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, MetadataRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strato_tiering::batch::test_support::{BatchSpec, build_batch};

/// A request frame (no length prefix) of `key` at `version`.
fn frame(key: ApiKey, version: i16, body: &dyn Fn(&mut BytesMut)) -> Bytes {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut out, key.request_header_version(version))
        .unwrap();
    body(&mut out);
    out.freeze()
}

fn topic(i: usize) -> TopicName {
    TopicName(StrBytes::from_string(format!("topic-{i}")))
}

/// Produce v9 of `partitions` partitions, each one batch of `records` records of 1 KiB.
fn produce(partitions: usize, records: usize) -> Bytes {
    let batch = Bytes::from(build_batch(&BatchSpec {
        records,
        value_len: 1024,
        ..BatchSpec::default()
    }));
    frame(ApiKey::Produce, 9, &|out| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic(0))
                    .with_partition_data(
                        (0..partitions)
                            .map(|p| {
                                PartitionProduceData::default()
                                    .with_index(p as i32)
                                    .with_records(Some(batch.clone()))
                            })
                            .collect(),
                    ),
            ])
            .encode(out, 9)
            .unwrap();
    })
}

/// Fetch v12 of `partitions` partitions of one topic.
fn fetch(partitions: usize) -> Bytes {
    frame(ApiKey::Fetch, 12, &|out| {
        FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(64 << 20)
            .with_topics(vec![
                FetchTopic::default().with_topic(topic(0)).with_partitions(
                    (0..partitions)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p as i32)
                                .with_fetch_offset(1_000_000)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
            ])
            .encode(out, 12)
            .unwrap();
    })
}

/// Metadata v12 naming `topics` topics.
fn metadata(topics: usize) -> Bytes {
    frame(ApiKey::Metadata, 12, &|out| {
        MetadataRequest::default()
            .with_topics(Some(
                (0..topics)
                    .map(|i| MetadataRequestTopic::default().with_name(Some(topic(i))))
                    .collect(),
            ))
            .encode(out, 12)
            .unwrap();
    })
}

/// `kafka-protocol`'s decode alone: the header, then the body.
fn decode_plain(key: ApiKey, version: i16, frame: &Bytes) {
    let mut buf = frame.clone();
    let header = RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
    black_box(header);
    match key {
        ApiKey::Produce => {
            black_box(ProduceRequest::decode(&mut buf, version).unwrap());
        }
        ApiKey::Fetch => {
            black_box(FetchRequest::decode(&mut buf, version).unwrap());
        }
        ApiKey::Metadata => {
            black_box(MetadataRequest::decode(&mut buf, version).unwrap());
        }
        _ => unreachable!("only the cases below"),
    }
}

/// Nanoseconds per call of `f`, run for `budget`.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up, then count calls in the budget.
    for _ in 0..100 {
        f();
    }
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        calls += 100;
    }
    started.elapsed().as_nanos() as f64 / calls as f64
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("STRATO_BENCH_DECODE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000),
    );
    let cases: Vec<(&str, ApiKey, i16, Bytes)> = vec![
        (
            "Produce v9, 1 partition, 1 batch of 16 x 1 KiB",
            ApiKey::Produce,
            9,
            produce(1, 16),
        ),
        (
            "Produce v9, 1 partition, 1 batch of 900 x 1 KiB",
            ApiKey::Produce,
            9,
            produce(1, 900),
        ),
        (
            "Produce v9, 100 partitions, 1 batch of 8 x 1 KiB each",
            ApiKey::Produce,
            9,
            produce(100, 8),
        ),
        ("Fetch v12, 1 partition", ApiKey::Fetch, 12, fetch(1)),
        ("Fetch v12, 100 partitions", ApiKey::Fetch, 12, fetch(100)),
        (
            "Metadata v12, 1,000 topics",
            ApiKey::Metadata,
            12,
            metadata(1000),
        ),
    ];
    println!(
        "| request | frame bytes | kafka-protocol decode (ns) | probe + decode (ns) | probe's share |"
    );
    println!("|---|---|---|---|---|");
    for (name, key, version, frame) in cases {
        let plain = time(budget, || decode_plain(key, version, &frame));
        let probed = time(budget, || {
            black_box(strato::protocol::decode_request(frame.clone()).unwrap());
        });
        println!(
            "| {name} | {} | {plain:.0} | {probed:.0} | {:.0}% |",
            frame.len(),
            (probed - plain) / probed * 100.0
        );
    }
}
