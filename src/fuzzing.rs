//! Fuzz targets: every decoder that reads bytes a client, a peer or a store hands the broker,
//! behind one signature, `fn(&[u8])`. Each must return for any input without panicking,
//! looping or allocating without bound; what it returns does not matter.
//!
//! Two drivers run them (docs/FUZZING.md): `fuzz/` (cargo-fuzz, libFuzzer, coverage-guided,
//! needs the nightly toolchain) and `tests/fuzz.rs` (stable: replays the committed corpus in
//! `fuzz/corpus/<target>/` and mutates it for a bounded time, in the test command).
//!
//! A checksum stops random bytes at the first check, but an attacker computes checksums. So
//! the targets fix them up where the format has one (batch CRC-32C, footer CRC-32C, zstd's
//! content checksum) before decoding, to reach the code behind them.

use bytes::{Bytes, BytesMut};
use strato_metadata::model::{self, IndexEntry, RECORD_FORMAT_V1};
use strato_tiering::batch::{self, BATCH_HEADER_LEN};
use strato_tiering::decompress::decompress;
use strato_tiering::records::iter_records;
use strato_tiering::segment::{
    self, ChunkEncoding, ExpectedChunk, SEGMENT_MAGIC, decode_chunk, decode_seek_table,
};

use crate::protocol;
use crate::security::scram::{self, ScramCredential, ScramMechanism, ServerFirst};

/// A fuzz target.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus directory and cargo-fuzz binary have.
pub const TARGETS: &[(&str, Target)] = &[
    ("request_frame", request_frame),
    ("record_batches", record_batches),
    ("segment", segment),
    ("metadata_record", metadata_record),
    ("sasl_scram", sasl_scram),
    ("sasl_plain", sasl_plain),
    ("connection_frames", connection_frames),
    ("schema", schema),
];

/// Largest decompressed batch the targets accept, as the produce path bounds it.
const DECOMPRESSED_MAX: usize = 4 << 20;
/// Batches per input, as `BATCHES_PER_PARTITION_MAX` bounds a produce.
const BATCHES_MAX: usize = 64;

/// A request frame (without its length prefix): header and body of every API and version
/// the broker accepts (`protocol::decode_request`).
pub fn request_frame(data: &[u8]) {
    let _ = protocol::peek_header(data);
    let _ = protocol::decode_request(Bytes::copy_from_slice(data));
}

/// Record batches as a producer sends them, CRCs made right: the header checks of the
/// produce path, the records of each batch (decompressed, bounded) as the key cleaner and
/// replay read them, and the `kafka-protocol` decoder the record rules use.
pub fn record_batches(data: &[u8]) {
    let mut bytes = data.to_vec();
    fix_batch_crcs(&mut bytes);
    let _ = batch::validate_batches(&bytes, BATCHES_MAX);
    let Ok(headers) = batch::validate_stored_batches(&bytes, BATCHES_MAX) else {
        return;
    };
    let mut at = 0;
    for header in headers {
        let whole = &bytes[at..at + header.total_len()];
        at += header.total_len();
        if header.is_control() {
            let _ = batch::parse_marker(whole);
            continue;
        }
        let _ = crate::broker::record_codec::decode(&header, &Bytes::copy_from_slice(whole));
        let payload = &whole[BATCH_HEADER_LEN..];
        let section = match header.compression() {
            0 => payload.to_vec(),
            codec => match decompress(codec, payload, DECOMPRESSED_MAX) {
                Ok(section) => section,
                Err(_) => continue,
            },
        };
        let count = usize::try_from(header.records_count).unwrap_or(0);
        for record in iter_records(&section, count) {
            let Ok(record) = record else { break };
            for field in record.headers() {
                if field.is_err() {
                    break;
                }
            }
        }
    }
}

/// A segment object: its footer (behind a valid trailer and CRC), each chunk it names
/// against its footer entry, `strato segment dump`'s reading; and the input as one chunk
/// (raw, and zstd-compressed with a content checksum) and as a seek table, against
/// expectations taken from its first bytes.
pub fn segment(data: &[u8]) {
    let _ = segment::dump_segment(data);
    let object = with_trailer(data);
    if let Ok(chunks) = segment::parse_segment_footer(&object) {
        for chunk in chunks.iter().take(BATCHES_MAX) {
            let range =
                chunk.byte_offset as usize..(chunk.byte_offset + chunk.byte_length) as usize;
            if let Some(bytes) = object.get(range) {
                let _ = decode_chunk(bytes, &ExpectedChunk::from(chunk));
            }
        }
    }
    let _ = segment::dump_segment(&object);
    let expected = expectation(data);
    let body = data.get(EXPECTATION_BYTES..).unwrap_or_default();
    let mut batches = body.to_vec();
    fix_batch_crcs(&mut batches);
    let _ = decode_chunk(
        &batches,
        &ExpectedChunk {
            encoding: ChunkEncoding::Raw,
            ..expected
        },
    );
    if let Ok(compressed) = zstd_with_checksum(&batches) {
        let _ = decode_chunk(&compressed, &expected);
    }
    let entry = IndexEntry {
        v: RECORD_FORMAT_V1,
        object: "segments/00/fuzz.seg".to_string(),
        byte_offset: 0,
        byte_length: body.len() as u64,
        uncompressed_length: expected.uncompressed_length,
        base_offset: expected.base_offset,
        last_offset: expected.last_offset,
        max_timestamp: expected.max_timestamp,
        record_count: expected.record_count,
        seek_table_length: body.len() as u64,
        raw: false,
    };
    let _ = decode_seek_table(body, &entry);
}

/// A record of the metadata store: the first byte picks the record type, the rest is the
/// stored value.
pub fn metadata_record(data: &[u8]) {
    let Some((&kind, value)) = data.split_first() else {
        return;
    };
    let key = "fuzz";
    macro_rules! decode_one_of {
        ($($t:ident),* $(,)?) => {{
            let decoders: &[fn(&str, &[u8]) -> bool] = &[$(|k, v| model::$t::decode(k, v).is_ok()),*];
            let _ = decoders[usize::from(kind) % decoders.len()](key, value);
        }};
    }
    decode_one_of!(
        TopicRecord,
        BrokerRecord,
        LeaderRecord,
        PartitionStateRecord,
        IndexEntry,
        ProducerIdBlockRecord,
        BrokerIdCounterRecord,
        ClusterRecord,
        UserRecord,
        CommittedOffsetRecord,
        GroupIdRecord,
        TxnRecord,
        TxnMarkerRecord,
        AbortedTxnRecord,
        CleanerRecord,
        AclRecord,
        SchemaIdCounterRecord,
        SchemaRecord,
        SchemaFingerprintRecord,
        SubjectVersionRecord,
        SchemaConfigRecord,
        SchemaModeRecord,
    );
}

/// The SCRAM messages a client sends (RFC 5802): client-first, then client-final against
/// the server-first answer for a fixed credential. The input is split at its first 0 byte.
pub fn sasl_scram(data: &[u8]) {
    let (first, last) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(client_first) = scram::parse_client_first(first) else {
        return;
    };
    let credential = ScramCredential::from_salted_password(
        ScramMechanism::Sha256,
        &[7u8; 32],
        b"fuzz-salt-16byte",
        4096,
    )
    .expect("a valid fixed credential");
    let server_first = ServerFirst::new(client_first, credential);
    let _ = server_first.verify_client_final(last);
}

/// A SASL PLAIN token (RFC 4616) as the broker parses it before looking the user up.
pub fn sasl_plain(data: &[u8]) {
    let _ = crate::security::sasl::parse_plain(data);
}

/// What a client writes on a connection: length-prefixed frames cut by the connection's
/// own reader (frames bounded, request memory reserved before a frame is read), each
/// header peeked as a request's log span does, until the bytes end or a frame is refused.
pub fn connection_frames(data: &[u8]) {
    const FRAME_BYTES_MAX: u64 = 64 * 1024;
    let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(FRAME_BYTES_MAX as usize));
    let limits = crate::metrics::limits::LimitMetrics::default();
    let mut reader = data;
    futures::executor::block_on(async {
        while let Ok(Some((frame, _permit))) =
            crate::connection::read_frame(&mut reader, FRAME_BYTES_MAX, &budget, &limits).await
        {
            let _ = protocol::peek_header(&frame);
        }
    });
}

/// A schema as `POST /subjects/<s>/versions` takes it: the first byte picks Avro,
/// Protobuf or JSON Schema, the rest is the schema text.
pub fn schema(data: &[u8]) {
    let Some((&kind, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    crate::schema_registry::store::fuzz_schema(kind, text);
}

/// Rewrites the CRC-32C of every batch whose length fits in `bytes`, as a producer would
/// compute it.
fn fix_batch_crcs(bytes: &mut [u8]) {
    const LENGTH_AT: usize = 8;
    const CRC_AT: usize = 17;
    const CRC_FROM: usize = 21;
    let mut at = 0;
    while at + BATCH_HEADER_LEN <= bytes.len() {
        let length = i32::from_be_bytes(
            bytes[at + LENGTH_AT..at + LENGTH_AT + 4]
                .try_into()
                .expect("four bytes"),
        );
        let Ok(length) = usize::try_from(length) else {
            return;
        };
        let end = at + 12 + length;
        if length < BATCH_HEADER_LEN - 12 || end > bytes.len() {
            return;
        }
        let crc = crc32c::crc32c(&bytes[at + CRC_FROM..end]);
        bytes[at + CRC_AT..at + CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

/// `data` as a segment object: the opening magic, then `data` with its last
/// `data[0] * 4` bytes (at most all of it) taken as the footer, the trailer (footer length
/// and CRC-32C) and the closing magic.
fn with_trailer(data: &[u8]) -> Vec<u8> {
    let footer_len = data
        .first()
        .map_or(0, |b| usize::from(*b) * 4)
        .min(data.len());
    let footer = &data[data.len() - footer_len..];
    let mut object = BytesMut::with_capacity(data.len() + 2 * SEGMENT_MAGIC.len() + 8);
    object.extend_from_slice(SEGMENT_MAGIC);
    object.extend_from_slice(data);
    object.extend_from_slice(&(footer_len as u32).to_le_bytes());
    object.extend_from_slice(&crc32c::crc32c(footer).to_le_bytes());
    object.extend_from_slice(SEGMENT_MAGIC);
    object.to_vec()
}

/// Bytes of the input that [`expectation`] reads.
const EXPECTATION_BYTES: usize = 8 * 5;

/// What a chunk is expected to hold, from the first bytes of the input (zeros past its end).
fn expectation(data: &[u8]) -> ExpectedChunk {
    let mut head = [0u8; EXPECTATION_BYTES];
    let n = data.len().min(EXPECTATION_BYTES);
    head[..n].copy_from_slice(&data[..n]);
    let word = |i: usize| i64::from_be_bytes(head[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    ExpectedChunk {
        base_offset: word(0),
        last_offset: word(1),
        max_timestamp: word(2),
        // Small lengths and counts, as real chunks have: the decoder's bound on what it
        // allocates is checked separately (it refuses over CHUNK_UNCOMPRESSED_MAX).
        uncompressed_length: word(3).unsigned_abs() % (1 << 20),
        record_count: word(4).unsigned_abs() % (1 << 16),
        encoding: ChunkEncoding::Zstd,
    }
}

/// `bytes` as one zstd frame with a content checksum, as `SegmentBuilder` writes chunks.
fn zstd_with_checksum(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = zstd::bulk::Compressor::new(1)?;
    encoder.include_checksum(true)?;
    encoder.compress(bytes)
}

/// Valid inputs of target `name`, built with the encoders the broker and its clients use:
/// where a fuzzer starts (tests/fuzz.rs adds them to the corpus; `cargo fuzz` gets them from
/// `target/fuzz-seeds/`, docs/FUZZING.md).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "request_frame" => request_seeds(),
        "record_batches" => batch_seeds().into_iter().map(|b| b.to_vec()).collect(),
        "segment" => segment_seeds(),
        "metadata_record" => metadata_seeds(),
        "sasl_scram" => {
            let client = scram::ScramClient::new(ScramMechanism::Sha256, "alice", "secret");
            let mut first = client.client_first();
            first.push(0);
            first.extend_from_slice(b"c=biws,r=abcdefghijklmnop,p=dGhpcyBpcyBub3QgYSBwcm9vZg==");
            vec![first, b"n,,n=bob,r=rOprNGfwEbeRWgbNEkqO".to_vec()]
        }
        "sasl_plain" => vec![
            b"\0alice\0alice-secret".to_vec(),
            b"alice\0alice\0pw".to_vec(),
            b"bob\0alice\0pw".to_vec(),
        ],
        "connection_frames" => {
            // The request seeds one after another on one connection, then a frame over the
            // bound and a negative length.
            let mut stream = Vec::new();
            for frame in request_seeds() {
                stream.extend_from_slice(&(frame.len() as i32).to_be_bytes());
                stream.extend_from_slice(&frame);
            }
            let mut too_large = stream.clone();
            too_large.extend_from_slice(&(1i32 << 20).to_be_bytes());
            let mut negative = stream.clone();
            negative.extend_from_slice(&(-1i32).to_be_bytes());
            vec![stream, too_large, negative]
        }
        "schema" => schema_seeds(),
        _ => Vec::new(),
    }
}

fn request_seeds() -> Vec<Vec<u8>> {
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, FetchRequest, FindCoordinatorRequest, InitProducerIdRequest,
        JoinGroupRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, ProduceRequest,
        RequestHeader, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName, fetch_request,
        join_group_request, list_offsets_request, metadata_request, offset_commit_request,
        produce_request,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn frame(api: ApiKey, version: i16, body: &dyn Fn(&mut BytesMut, i16)) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("fuzz")));
        let mut out = BytesMut::new();
        header
            .encode(&mut out, api.request_header_version(version))
            .expect("encode a header");
        body(&mut out, version);
        out.to_vec()
    }
    let topic = || TopicName(StrBytes::from_static_str("orders"));
    let batch = batch_seeds().into_iter().next().expect("a batch seed");
    let mut frames = Vec::new();
    for version in [0, 3] {
        frames.push(frame(ApiKey::ApiVersions, version, &|out, v| {
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("fuzz"))
                .with_client_software_version(StrBytes::from_static_str("1"))
                .encode(out, v)
                .expect("encode");
        }));
    }
    for version in [1, 12] {
        frames.push(frame(ApiKey::Metadata, version, &|out, v| {
            MetadataRequest::default()
                .with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
                ]))
                .encode(out, v)
                .expect("encode");
        }));
    }
    for version in [3, 9] {
        frames.push(frame(ApiKey::Produce, version, &|out, v| {
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(topic())
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch.clone())),
                        ]),
                ])
                .encode(out, v)
                .expect("encode");
        }));
    }
    for version in [4, 12] {
        frames.push(frame(ApiKey::Fetch, version, &|out, v| {
            FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![
                    fetch_request::FetchTopic::default()
                        .with_topic(topic())
                        .with_partitions(vec![
                            fetch_request::FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(5)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ])
                .encode(out, v)
                .expect("encode");
        }));
    }
    frames.push(frame(ApiKey::ListOffsets, 7, &|out, v| {
        ListOffsetsRequest::default()
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
                    ]),
            ])
            .encode(out, v)
            .expect("encode");
    }));
    frames.push(frame(ApiKey::FindCoordinator, 3, &|out, v| {
        FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("group-a"))
            .encode(out, v)
            .expect("encode");
    }));
    frames.push(frame(ApiKey::JoinGroup, 5, &|out, v| {
        JoinGroupRequest::default()
            .with_group_id(StrBytes::from_static_str("group-a").into())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(30_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x06orders\0\0\0\0")),
            ])
            .encode(out, v)
            .expect("encode");
    }));
    frames.push(frame(ApiKey::OffsetCommit, 8, &|out, v| {
        OffsetCommitRequest::default()
            .with_group_id(StrBytes::from_static_str("group-a").into())
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_committed_offset(42),
                    ]),
            ])
            .encode(out, v)
            .expect("encode");
    }));
    frames.push(frame(ApiKey::InitProducerId, 4, &|out, v| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(StrBytes::from_static_str("txn-a").into()))
            .with_transaction_timeout_ms(60_000)
            .encode(out, v)
            .expect("encode");
    }));
    frames.push(frame(ApiKey::SaslHandshake, 1, &|out, v| {
        SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-256"))
            .encode(out, v)
            .expect("encode");
    }));
    frames.push(frame(ApiKey::SaslAuthenticate, 2, &|out, v| {
        SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from_static(b"n,,n=alice,r=abcdefgh"))
            .encode(out, v)
            .expect("encode");
    }));
    frames
}

/// One batch per codec (the first uncompressed), with keys, values and headers, and a
/// transaction marker.
fn batch_seeds() -> Vec<Bytes> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 7,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: (i != 1).then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'v'; 40])),
            headers: [(
                kafka_protocol::protocol::StrBytes::from_static_str("trace"),
                Some(Bytes::from_static(b"abc")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut batches: Vec<Bytes> = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .map(|compression| {
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode a batch");
        out.freeze()
    })
    .collect();
    let marker = batch::TxnMarker {
        producer_id: 7,
        producer_epoch: 0,
        commit: false,
        coordinator_epoch: 3,
    };
    batches.push(Bytes::from(batch::build_marker_batch(
        &marker,
        3,
        1,
        1_700_000_000_003,
    )));
    batches
}

/// A flush object of two partitions and a seekable compacted chunk, and a chunk body with
/// its expectation in front (what the second half of [`segment`] reads).
fn segment_seeds() -> Vec<Vec<u8>> {
    use strato_metadata::model::TopicPartition;
    let batches = batch_seeds();
    let tp = |partition| TopicPartition {
        topic_id: uuid::Uuid::from_u128(1),
        partition,
    };
    let mut seeds = Vec::new();
    let mut flush = segment::SegmentBuilder::new(1);
    flush.add_chunk(tp(0), &batches[..1]);
    flush.add_chunk(tp(1), &batches[1..2]);
    if let Ok(built) = flush.finish() {
        seeds.push(built.bytes().to_vec());
    }
    let mut compacted = segment::SegmentBuilder::new(1).with_frames(64);
    compacted.add_chunk(tp(0), &batches[..1]);
    if let Ok(built) = compacted.finish() {
        seeds.push(built.bytes().to_vec());
    }
    let mut chunk = Vec::new();
    for word in [0i64, 2, 1_700_000_000_002, batches[0].len() as i64, 3] {
        chunk.extend_from_slice(&word.to_be_bytes());
    }
    chunk.extend_from_slice(&batches[0]);
    seeds.push(chunk);
    seeds
}

/// One stored record of each kind the store holds most (the first byte picks the type, in
/// the order of [`metadata_record`]).
fn metadata_seeds() -> Vec<Vec<u8>> {
    let records: [(u8, &str); 5] = [
        (
            0,
            r#"{"v":1,"topic_id":"00000000-0000-0000-0000-000000000001","partitions":3,"config":{"cleanup.policy":"compact"},"created_ms":1}"#,
        ),
        (2, r#"{"v":1,"broker_id":1,"epoch":4}"#),
        (
            4,
            r#"{"v":1,"object":"segments/00/x.seg","byte_offset":0,"byte_length":10,"uncompressed_length":20,"base_offset":0,"last_offset":3,"max_timestamp":5,"record_count":4}"#,
        ),
        (
            9,
            r#"{"v":1,"offset":42,"leader_epoch":-1,"metadata":"","commit_timestamp_ms":1}"#,
        ),
        (
            13,
            r#"{"v":1,"producer_id":7,"first_offset":0,"last_offset":3,"last_stable_offset":4}"#,
        ),
    ];
    records
        .into_iter()
        .map(|(kind, json)| {
            let mut seed = vec![kind];
            seed.extend_from_slice(json.as_bytes());
            seed
        })
        .collect()
}

/// An Avro, a JSON Schema and a Protobuf schema, each with an evolved writer after a NUL.
fn schema_seeds() -> Vec<Vec<u8>> {
    let avro = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null},{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}}]}"#;
    let avro_old = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;
    let json = r##"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"id":{"type":"integer"},"tags":{"type":"array","items":{"$ref":"#/definitions/tag"}}},"required":["id"],"additionalProperties":false,"definitions":{"tag":{"type":"string","maxLength":10}}}"##;
    let json_old = r#"{"type":"object","properties":{"id":{"type":"integer"}}}"#;
    let proto = "syntax = \"proto3\";\npackage shop;\nimport \"google/protobuf/timestamp.proto\";\nmessage Order {\n  int64 id = 1;\n  repeated string tags = 2;\n  oneof pay { string card = 3; string iban = 4; }\n  map<string, int32> counts = 5;\n  enum Kind { A = 0; B = 1; }\n  Kind kind = 6;\n}\n";
    let proto_old = "syntax = \"proto3\";\nmessage Order { int64 id = 1; }\n";
    [
        (0u8, avro, avro_old),
        (1, json, json_old),
        (2, proto, proto_old),
    ]
    .into_iter()
    .flat_map(|(kind, new, old)| {
        let mut alone = vec![kind];
        alone.extend_from_slice(new.as_bytes());
        let mut pair = vec![kind | 0x80];
        pair.extend_from_slice(new.as_bytes());
        pair.push(0);
        pair.extend_from_slice(old.as_bytes());
        [alone, pair]
    })
    .collect()
}
