//! The Kafka listener under bad and unusual input, over raw TCP: oversized, negative and
//! garbage frames close only their own connection; corrupt record batches get
//! CORRUPT_MESSAGE and store nothing; unknown versions get the answers the protocol
//! prescribes; pipelined requests are answered in order.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::Broker;
use common::wire::{connect, init_producer_id, read_frame, response, send};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use strato_tiering::batch::test_support::{BatchSpec, build_batch};

fn assert_closed(stream: &mut TcpStream, what: &str) {
    assert!(
        read_frame(stream).is_none(),
        "{what}: connection must be closed"
    );
}

/// One uncompressed v2 record batch with one record per entry of `values`.
fn batch(values: &[&str]) -> Bytes {
    idempotent_batch(values, -1, -1, -1)
}

/// Like [`batch`], from an idempotent producer (`producer_id`, `epoch`, first `sequence`).
fn idempotent_batch(values: &[&str], producer_id: i64, epoch: i16, sequence: i32) -> Bytes {
    Bytes::from(build_batch(&BatchSpec {
        records: values.len(),
        producer_id,
        producer_epoch: epoch,
        base_sequence: sequence,
        value_len: values.iter().map(|v| v.len()).max().unwrap_or(0),
        ..BatchSpec::default()
    }))
}

fn produce(stream: &mut TcpStream, correlation_id: i32, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    send(stream, ApiKey::Produce, 9, correlation_id, &request);
    let response: ProduceResponse = response(stream, ApiKey::Produce, 9, correlation_id);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn latest_offset(stream: &mut TcpStream, correlation_id: i32, topic: &str) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    send(stream, ApiKey::ListOffsets, 7, correlation_id, &request);
    let response: ListOffsetsResponse = response(stream, ApiKey::ListOffsets, 7, correlation_id);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

fn metadata_ok(stream: &mut TcpStream, correlation_id: i32) {
    send(
        stream,
        ApiKey::Metadata,
        12,
        correlation_id,
        &MetadataRequest::default().with_topics(None),
    );
    let response: MetadataResponse = response(stream, ApiKey::Metadata, 12, correlation_id);
    assert_eq!(response.brokers.len(), 1);
}

/// Goal: a frame above max_request_bytes, a negative length, an unknown API key, an
/// unsupported version and a malformed body each close only their own connection; a
/// connection opened before them keeps working and the broker keeps running.
#[test]
fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &["--max-request-bytes", "1048576"]);
    let mut healthy = connect(&broker);
    metadata_ok(&mut healthy, 1);

    let mut oversized = connect(&broker);
    oversized
        .write_all(&(200 * 1024 * 1024i32).to_be_bytes())
        .unwrap();
    assert_closed(&mut oversized, "200 MiB frame");

    let mut just_over = connect(&broker);
    just_over
        .write_all(&(1024 * 1024 + 1i32).to_be_bytes())
        .unwrap();
    assert_closed(&mut just_over, "frame one byte over the limit");

    let mut negative = connect(&broker);
    negative.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert_closed(&mut negative, "negative length");

    let mut unknown_key = connect(&broker);
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(999);
    frame.put_i16(0);
    frame.put_i32(1);
    frame.put_i16(-1);
    unknown_key.write_all(&frame).unwrap();
    assert_closed(&mut unknown_key, "unknown api key");

    let mut unsupported = connect(&broker);
    send(
        &mut unsupported,
        ApiKey::Metadata,
        0,
        1,
        &MetadataRequest::default(),
    );
    let mut raw = BytesMut::new();
    raw.put_i32(10);
    raw.put_i16(ApiKey::Metadata as i16);
    raw.put_i16(99);
    raw.put_i32(2);
    raw.put_i16(-1);
    unsupported.write_all(&raw).unwrap();
    let _: MetadataResponse = response(&mut unsupported, ApiKey::Metadata, 0, 1);
    assert_closed(&mut unsupported, "unsupported Metadata version");

    let mut malformed = connect(&broker);
    let mut frame = BytesMut::new();
    frame.put_i32(8 + 2 + 7);
    frame.put_i16(ApiKey::Produce as i16);
    frame.put_i16(9);
    frame.put_i32(3);
    frame.put_i16(-1);
    frame.put_slice(b"garbage");
    malformed.write_all(&frame).unwrap();
    assert_closed(&mut malformed, "malformed produce body");

    // Deterministic pseudo-random frames with real API keys and supported versions.
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let keys: [(i16, i16); 6] = [(0, 9), (1, 12), (2, 7), (3, 12), (19, 5), (32, 4)];
    for round in 0..200 {
        let (key, version) = keys[(next() % keys.len() as u64) as usize];
        let body_len = (next() % 512) as usize;
        let mut frame = BytesMut::new();
        frame.put_i32((8 + 2 + body_len) as i32);
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(round);
        frame.put_i16(-1);
        for _ in 0..body_len {
            frame.put_u8(next() as u8);
        }
        let mut conn = connect(&broker);
        conn.write_all(&frame).unwrap();
        // Either an answer or a closed connection; never a hang.
        let _ = read_frame(&mut conn);
    }

    metadata_ok(&mut healthy, 2);
    assert!(
        broker.is_running(),
        "broker survived; log:\n{}",
        broker.log_text()
    );
}

/// Goal: a batch with a bad CRC, a wrong magic, or cut short gets CORRUPT_MESSAGE and
/// nothing of it is stored; a valid batch around them gets consecutive offsets.
#[test]
fn corrupt_batches_are_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut conn = connect(&broker);
    let (code, base) = produce(&mut conn, 1, "corrupt", batch(&["a", "b"]));
    assert_eq!((code, base), (0, 0));

    let good = batch(&["c"]);
    let mut bad_crc = good.to_vec();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let mut bad_magic = good.to_vec();
    bad_magic[16] = 1;
    let truncated = good.slice(..good.len() - 3);
    for (i, bad) in [Bytes::from(bad_crc), Bytes::from(bad_magic), truncated]
        .into_iter()
        .enumerate()
    {
        let (code, _) = produce(&mut conn, 10 + i as i32, "corrupt", bad);
        assert_eq!(code, 2, "CORRUPT_MESSAGE for bad batch {i}");
    }
    assert_eq!(latest_offset(&mut conn, 20, "corrupt"), 2, "nothing stored");
    let (code, base) = produce(&mut conn, 21, "corrupt", good);
    assert_eq!((code, base), (0, 2), "next valid batch continues at 2");
}

/// Goal: ApiVersions at an unknown version gets the KIP-511 answer (v0 body,
/// UNSUPPORTED_VERSION, our ApiVersions range); every known version lists exactly the
/// implemented APIs.
#[test]
fn api_versions_negotiation() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut conn = connect(&broker);
    let mut raw = BytesMut::new();
    raw.put_i32(10);
    raw.put_i16(ApiKey::ApiVersions as i16);
    raw.put_i16(77);
    raw.put_i32(5);
    raw.put_i16(-1);
    conn.write_all(&raw).unwrap();
    let mut frame = read_frame(&mut conn).expect("answer");
    assert_eq!(frame.get_i32(), 5, "response header v0");
    let body = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(body.error_code, 35);
    assert_eq!(body.api_keys.len(), 1);
    assert_eq!(
        (body.api_keys[0].api_key, body.api_keys[0].max_version),
        (18, 4)
    );

    for version in 0..=4 {
        let request = ApiVersionsRequest::default();
        let request = if version >= 3 {
            request
                .with_client_software_name(StrBytes::from_static_str("test"))
                .with_client_software_version(StrBytes::from_static_str("1"))
        } else {
            request
        };
        send(
            &mut conn,
            ApiKey::ApiVersions,
            version,
            100 + version as i32,
            &request,
        );
        let response: ApiVersionsResponse = response(
            &mut conn,
            ApiKey::ApiVersions,
            version,
            100 + version as i32,
        );
        assert_eq!(response.error_code, 0);
        let mut keys: Vec<i16> = response.api_keys.iter().map(|k| k.api_key).collect();
        keys.sort();
        assert_eq!(
            keys,
            // Produce, Fetch, ListOffsets, Metadata, the group APIs (OffsetCommit 8 ..
            // ListGroups 16, DeleteGroups 42, OffsetDelete 47), ApiVersions, CreateTopics,
            // DeleteTopics, DeleteRecords, InitProducerId, OffsetForLeaderEpoch, DescribeConfigs,
            // AlterConfigs 33, DescribeLogDirs 35, CreatePartitions 37, ElectLeaders 43,
            // IncrementalAlterConfigs 44, DescribeCluster 60, DescribeProducers 61, and
            // security: SaslHandshake 17, DescribeAcls 29, CreateAcls 30, DeleteAcls 31,
            // SaslAuthenticate 36, DescribeUserScramCredentials 50, AlterUserScramCredentials 51,
            // and transactions: AddPartitionsToTxn 24, AddOffsetsToTxn 25, EndTxn 26,
            // TxnOffsetCommit 28, DescribeTransactions 65, ListTransactions 66.
            vec![
                0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
                26, 28, 29, 30, 31, 32, 33, 35, 36, 37, 42, 43, 44, 47, 50, 51, 60, 61, 65, 66
            ],
            "exactly what is implemented"
        );
    }
}

/// Goal: requests sent back to back on one connection are answered in order, even when the
/// first one is a fetch parked in a long poll.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut conn = connect(&broker);
    let (code, _) = produce(&mut conn, 1, "pipeline", batch(&["x"]));
    assert_eq!(code, 0);
    let topic_id = {
        send(
            &mut conn,
            ApiKey::Metadata,
            12,
            2,
            &MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("pipeline")))),
            ])),
        );
        let m: MetadataResponse = response(&mut conn, ApiKey::Metadata, 12, 2);
        m.topics[0].topic_id
    };
    let fetch = FetchRequest::default()
        .with_max_wait_ms(1_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(1)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    send(&mut conn, ApiKey::Fetch, 13, 10, &fetch);
    send(
        &mut conn,
        ApiKey::ApiVersions,
        3,
        11,
        &ApiVersionsRequest::default(),
    );
    send(
        &mut conn,
        ApiKey::Metadata,
        12,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let fetched: FetchResponse = response(&mut conn, ApiKey::Fetch, 13, 10);
    let p = &fetched.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 1);
    assert!(
        p.records.as_ref().is_some_and(|r| r.is_empty()),
        "empty, not null"
    );
    let _: ApiVersionsResponse = response(&mut conn, ApiKey::ApiVersions, 3, 11);
    let _: MetadataResponse = response(&mut conn, ApiKey::Metadata, 12, 12);
}

fn fetch(
    stream: &mut TcpStream,
    correlation_id: i32,
    topic: &str,
    offset: i64,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    let mut request = common::wire::fetch_request(topic, offset, max_bytes, 0);
    request.topics[0].partitions[0].partition_max_bytes = partition_max_bytes;
    send(stream, ApiKey::Fetch, 11, correlation_id, &request);
    let response: FetchResponse = response(stream, ApiKey::Fetch, 11, correlation_id);
    response.responses[0].partitions[0].clone()
}

/// Goal: stored batches come back byte-identical except the two fields the broker assigns
/// (base offset, partition leader epoch); a fetch from inside a batch returns that whole
/// batch; byte limits return whole batches only, but at least one (KIP-74); offsets beyond
/// the high watermark get OFFSET_OUT_OF_RANGE.
#[test]
fn fetch_returns_whole_identical_batches_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut conn = connect(&broker);
    let first = batch(&["one", "two", "three"]);
    let second = batch(&["four"]);
    assert_eq!(produce(&mut conn, 1, "fetchy", first.clone()), (0, 0));
    assert_eq!(produce(&mut conn, 2, "fetchy", second.clone()), (0, 3));

    let p = fetch(&mut conn, 3, "fetchy", 1, 1 << 20, 1 << 20);
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 4);
    let records = p.records.unwrap();
    assert_eq!(
        records.len(),
        first.len() + second.len(),
        "both batches, the first whole"
    );
    // Batch 1: everything but baseOffset (0..8) and leader epoch (12..16) is as sent.
    assert_eq!(&records[..8], &0i64.to_be_bytes());
    assert_eq!(&records[16..first.len()], &first[16..]);
    assert_eq!(&records[8..12], &first[8..12]);
    let rest = &records[first.len()..];
    assert_eq!(&rest[..8], &3i64.to_be_bytes());
    assert_eq!(&rest[16..], &second[16..]);

    // A limit smaller than the first batch still returns that one batch, whole.
    let p = fetch(&mut conn, 4, "fetchy", 0, 10, 10);
    assert_eq!(p.records.unwrap().len(), first.len());
    // A limit that fits the first batch but not both returns only the first.
    let p = fetch(&mut conn, 5, "fetchy", 0, 1 << 20, (first.len() + 5) as i32);
    assert_eq!(p.records.unwrap().len(), first.len());

    let p = fetch(&mut conn, 6, "fetchy", 4, 1 << 20, 1 << 20);
    assert_eq!(
        p.error_code, 0,
        "the high watermark itself is a valid position"
    );
    assert!(p.records.unwrap().is_empty());
    let p = fetch(&mut conn, 7, "fetchy", 5, 1 << 20, 1 << 20);
    assert_eq!(
        p.error_code, 1,
        "OFFSET_OUT_OF_RANGE above the high watermark"
    );
    let p = fetch(&mut conn, 8, "fetchy", -1, 1 << 20, 1 << 20);
    assert_eq!(p.error_code, 1, "OFFSET_OUT_OF_RANGE below the log start");
}

/// Goal: idempotent producer rules on the wire: a retried batch is acknowledged with its
/// original offset and written once (also after a restart, since producer state is
/// committed with the partition); a sequence gap gets OUT_OF_ORDER_SEQUENCE_NUMBER; an
/// older epoch gets INVALID_PRODUCER_EPOCH; producer ids are not reused after a restart.
#[test]
fn idempotent_producer_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let mut conn = connect(&broker);
    let (pid, epoch) = init_producer_id(&mut conn, 1, None);
    assert_eq!(epoch, 0);
    let first = idempotent_batch(&["a", "b"], pid, 0, 0);
    assert_eq!(produce(&mut conn, 2, "idem", first.clone()), (0, 0));
    assert_eq!(
        produce(&mut conn, 3, "idem", first.clone()),
        (0, 0),
        "duplicate: original offset"
    );
    assert_eq!(latest_offset(&mut conn, 4, "idem"), 2, "written once");
    let gap = idempotent_batch(&["x"], pid, 0, 5);
    assert_eq!(
        produce(&mut conn, 5, "idem", gap).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    let next = idempotent_batch(&["c"], pid, 0, 2);
    assert_eq!(produce(&mut conn, 6, "idem", next.clone()), (0, 2));
    // A newer epoch starts again at sequence 0; the old epoch is then fenced.
    assert_eq!(
        produce(&mut conn, 7, "idem", idempotent_batch(&["d"], pid, 1, 0)),
        (0, 3)
    );
    let stale = idempotent_batch(&["e"], pid, 0, 3);
    assert_eq!(
        produce(&mut conn, 8, "idem", stale).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    drop(conn);

    let broker = broker.restart_killed();
    let mut conn = connect(&broker);
    let retried = idempotent_batch(&["d"], pid, 1, 0);
    assert_eq!(
        produce(&mut conn, 1, "idem", retried),
        (0, 3),
        "deduplicated after restart"
    );
    assert_eq!(latest_offset(&mut conn, 2, "idem"), 4);
    let (new_pid, _) = init_producer_id(&mut conn, 3, None);
    assert_ne!(new_pid, pid, "producer ids are not reused");
}

/// Goal: SIGTERM drains: a produce request admitted before the signal is answered with
/// success (its batch goes out with the final flush), and the record is there after the
/// restart. Method: a long flush interval (and no flush because the flusher is idle) keeps
/// the batch pending; the test waits for the
/// broker's log to show the request before sending SIGTERM.
#[test]
fn sigterm_answers_admitted_produce_requests() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &["--flush-interval-ms", "60000", "--flush-when-idle", "false"],
    );
    let mut conn = connect(&broker);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("drained")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(&["last words"]))),
                ]),
        ]);
    send(&mut conn, ApiKey::Produce, 9, 77, &request);
    common::wait_until(Duration::from_secs(10), "produce request admitted", || {
        broker.log_text().contains("correlation_id=77")
    });
    broker.terminate();
    let response: ProduceResponse = response(&mut conn, ApiKey::Produce, 9, 77);
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "acknowledged by the drain"
    );
    let broker = broker.restart_after_exit();
    let mut conn = connect(&broker);
    assert_eq!(latest_offset(&mut conn, 1, "drained"), 1);
}
