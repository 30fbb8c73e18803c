//! Kafka wire protocol: the versions Strato implements, request decoding and response
//! framing. Pure functions over bytes: no IO, no storage.
//!
//! `SUPPORTED_APIS` is exactly what `broker::handle` serves; an ApiVersions request at an
//! unknown version is answered as KIP-511 says. A Fetch response is encoded into
//! `frame::SplicingBuf` (record bytes by reference) and must be byte for byte what the codec
//! encodes, which the tests check at every Fetch version.

use anyhow::Context;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable};

pub mod frame;
mod probe;
use frame::{Frame, SplicingBuf};

/// Error code UNSUPPORTED_VERSION (Kafka protocol).
pub const UNSUPPORTED_VERSION: i16 = 35;

/// Every API Strato answers, with the versions it implements. Advertised in ApiVersions
/// exactly as listed: clients call what is advertised, so nothing unimplemented goes here.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    // v5 is KIP-890's transaction version 2, which needs a finalized feature Strato does not
    // advertise: clients use v4 and below.
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    // v2 adds a regular-expression filter on ids.
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // kafka-protocol implements 1-3 (Kafka 4 dropped v0).
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// Kafka's name for an error code, as in `Errors.java`: `NOT_LEADER_OR_FOLLOWER`, `NONE`
/// for 0, `UNKNOWN_ERROR_CODE_<code>` for codes this build does not know.
pub fn error_name(code: i16) -> String {
    use kafka_protocol::ResponseError;
    let camel = match ResponseError::try_from_code(code) {
        None => return "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => return format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => error.to_string(),
    };
    // `UnknownMemberId` -> `UNKNOWN_MEMBER_ID`.
    let mut name = String::with_capacity(camel.len() + 8);
    for (idx, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && idx > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

pub fn supported_range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|(_, min, max)| (*min, *max))
}

/// The first fields of every request header, readable whatever the API version.
#[derive(Debug, Clone, Copy)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

pub fn peek_header(frame: &[u8]) -> Option<HeaderPrefix> {
    let mut buf = frame.get(..8)?;
    Some(HeaderPrefix {
        api_key: buf.get_i16(),
        api_version: buf.get_i16(),
        correlation_id: buf.get_i32(),
    })
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

/// What a frame turned out to be.
#[derive(Debug)]
pub enum Decoded {
    Request(Box<Request>),
    /// ApiVersions at a version we do not know: answer per KIP-511 with this response.
    UnsupportedApiVersions(Frame),
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {0} bytes is too short for a request header")]
    Truncated(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {api_key:?}")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes one request frame (without its length prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Decoded, DecodeError> {
    let prefix = peek_header(&frame).ok_or(DecodeError::Truncated(frame.len()))?;
    let api_key =
        ApiKey::try_from(prefix.api_key).map_err(|_| DecodeError::UnknownApiKey(prefix.api_key))?;
    let Some((min, max)) = supported_range(api_key) else {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version: prefix.api_version,
        });
    };
    if !(min..=max).contains(&prefix.api_version) {
        if api_key == ApiKey::ApiVersions {
            return Ok(Decoded::UnsupportedApiVersions(
                unsupported_api_versions_response(prefix.correlation_id),
            ));
        }
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version: prefix.api_version,
        });
    }
    let malformed = |err: anyhow::Error| DecodeError::Malformed {
        api_key,
        version: prefix.api_version,
        reason: format!("{err:#}"),
    };
    let header_version = api_key.request_header_version(prefix.api_version);
    // No array length the frame claims may reach the decoder's reservation unchecked.
    probe::check(api_key, prefix.api_version, header_version, &frame).map_err(malformed)?;
    let header = RequestHeader::decode(&mut frame, header_version).map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, prefix.api_version).map_err(malformed)?;
    Ok(Decoded::Request(Box::new(Request {
        header,
        api_key,
        body,
    })))
}

/// The ApiVersions response listing everything in [`SUPPORTED_APIS`].
pub fn api_versions_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        SUPPORTED_APIS
            .iter()
            .map(|(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(*key as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

/// KIP-511: a v0 body with UNSUPPORTED_VERSION and our ApiVersions range, so the client
/// retries with a version we know.
fn unsupported_api_versions_response(correlation_id: i32) -> Frame {
    let (min, max) = supported_range(ApiKey::ApiVersions).expect("ApiVersions is supported");
    let body = ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(min)
                .with_max_version(max),
        ]);
    encode_response(
        correlation_id,
        ApiKey::ApiVersions,
        0,
        &ResponseKind::ApiVersions(body),
    )
    .expect("ApiVersions v0 always encodes")
}

/// Frames a response: length prefix, response header, body.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> anyhow::Result<Frame> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let context = || format!("encode {api_key:?} v{version} response");
    if let ResponseKind::Fetch(fetch) = body {
        // The record bytes are spliced in by reference (see `frame`).
        let records = fetch
            .responses
            .iter()
            .flat_map(|topic| &topic.partitions)
            .filter_map(|partition| partition.records.clone());
        let mut out = SplicingBuf::new(256, records);
        out.put_i32(0);
        header
            .encode(&mut out, header_version)
            .context("encode response header")?;
        fetch.encode(&mut out, version).with_context(context)?;
        let len = i32::try_from(out.offset() - 4).context("response larger than 2 GiB")?;
        out.prefix_mut(4).copy_from_slice(&len.to_be_bytes());
        return Ok(out.into_frame());
    }
    let mut out = BytesMut::with_capacity(64);
    out.put_i32(0);
    header
        .encode(&mut out, header_version)
        .context("encode response header")?;
    body.encode(&mut out, version).with_context(context)?;
    let len = i32::try_from(out.len() - 4).context("response larger than 2 GiB")?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(Frame {
        segments: vec![out.freeze()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Fetch v4 frame (found by tests/fuzz.rs) whose topics array claims `count` topics
    /// in the 30 bytes that follow.
    fn fetch_claiming(count: i32) -> Bytes {
        let mut frame = hex_bytes(
            "0001000400000007000466757a7affffffff000001f40000000100100000000020000100066f7264656e72730000000100000000000000000000000500100000",
        );
        frame[31..35].copy_from_slice(&count.to_be_bytes());
        Bytes::from(frame)
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_claimed_array_length_over_the_frame_is_malformed_not_a_reservation() {
        // Without the probe, 2^31 - 1 topics made the decoder ask for hundreds of GB and the
        // allocator's refusal aborted the process.
        for count in [i32::MAX, 2_097_153, 31] {
            assert!(
                matches!(
                    decode_request(fetch_claiming(count)),
                    Err(DecodeError::Malformed { .. })
                ),
                "{count} topics"
            );
        }
        // A real request decodes, whatever its plain fields hold (a wait and sizes far over
        // its length are not lengths).
        let fetch = kafka_protocol::messages::FetchRequest::default()
            .with_max_wait_ms(i32::MAX)
            .with_max_bytes(i32::MAX)
            .with_topics(vec![
                kafka_protocol::messages::fetch_request::FetchTopic::default()
                    .with_topic(kafka_protocol::messages::TopicName(
                        kafka_protocol::protocol::StrBytes::from_static_str("t"),
                    ))
                    .with_partitions(vec![
                        kafka_protocol::messages::fetch_request::FetchPartition::default()
                            .with_fetch_offset(i64::MAX)
                            .with_partition_max_bytes(i32::MAX),
                    ]),
            ]);
        for version in [4, 12] {
            let Ok(Decoded::Request(request)) =
                decode_request(frame_of(ApiKey::Fetch, version, &fetch))
            else {
                panic!("fetch v{version} did not decode");
            };
            let RequestKind::Fetch(decoded) = request.body else {
                panic!("not a fetch");
            };
            assert_eq!(decoded.max_wait_ms, i32::MAX);
            assert_eq!(
                decoded.topics[0].partitions[0].partition_max_bytes,
                i32::MAX
            );
        }
    }
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

    fn frame_of(key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut out = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .encode(&mut out, key.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        out.freeze()
    }

    /// Goal: splicing Fetch records by reference changes nothing on the wire. Method: a
    /// Fetch response with topics, partitions (records big and small, none, aborted
    /// transactions, a tagged current leader) encoded at every supported version both ways.
    #[test]
    fn fetch_responses_with_spliced_records_encode_as_the_codec_does() {
        use kafka_protocol::messages::fetch_response::{
            AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
        };
        use kafka_protocol::messages::{BrokerId, FetchResponse, TopicName};
        let records = |len: usize, seed: u8| {
            Some(Bytes::from(
                (0..len).map(|i| (i as u8) ^ seed).collect::<Vec<u8>>(),
            ))
        };
        let partition = |version: i16, index: i32, records: Option<Bytes>| {
            PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(1000 + i64::from(index))
                .with_last_stable_offset(990)
                .with_log_start_offset(if version >= 5 { 5 } else { -1 })
                .with_records(records)
        };
        // Fields a version lacks stay at their defaults (the codec refuses them).
        let response = |version: i16| {
            FetchResponse::default()
                .with_session_id(if version >= 7 { 7 } else { 0 })
                .with_responses(vec![
                    FetchableTopicResponse::default()
                        .with_topic(TopicName::from(
                            kafka_protocol::protocol::StrBytes::from_static_str("a"),
                        ))
                        .with_topic_id(if version >= 13 {
                            uuid::Uuid::from_u128(42)
                        } else {
                            uuid::Uuid::nil()
                        })
                        .with_partitions(vec![
                            partition(version, 0, records(100_000, 1)),
                            partition(version, 1, records(10, 2)),
                            partition(version, 2, None)
                                .with_error_code(6)
                                .with_current_leader(if version >= 12 {
                                    LeaderIdAndEpoch::default()
                                        .with_leader_id(BrokerId(3))
                                        .with_leader_epoch(9)
                                } else {
                                    LeaderIdAndEpoch::default()
                                }),
                            partition(version, 3, records(70_000, 3)).with_aborted_transactions(
                                Some(vec![
                                    AbortedTransaction::default()
                                        .with_producer_id(kafka_protocol::messages::ProducerId(11))
                                        .with_first_offset(12),
                                ]),
                            ),
                        ]),
                    FetchableTopicResponse::default()
                        .with_topic(TopicName::from(
                            kafka_protocol::protocol::StrBytes::from_static_str("b"),
                        ))
                        .with_topic_id(if version >= 13 {
                            uuid::Uuid::from_u128(43)
                        } else {
                            uuid::Uuid::nil()
                        })
                        .with_partitions(vec![partition(version, 0, records(5000, 4))]),
                ])
        };
        let (min, max) = supported_range(ApiKey::Fetch).unwrap();
        for version in min..=max {
            let body = ResponseKind::Fetch(response(version));
            let frame = encode_response(99, ApiKey::Fetch, version, &body).unwrap();
            assert!(frame.segments.len() > 1, "v{version}: records were spliced");
            let mut expected = BytesMut::new();
            expected.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(99)
                .encode(
                    &mut expected,
                    ApiKey::Fetch.response_header_version(version),
                )
                .unwrap();
            body.encode(&mut expected, version).unwrap();
            let len = (expected.len() - 4) as i32;
            expected[..4].copy_from_slice(&len.to_be_bytes());
            assert_eq!(frame.to_vec(), expected.to_vec(), "Fetch v{version}");
        }
    }

    #[test]
    fn advertised_ranges_are_within_the_codec() {
        for (key, min, max) in SUPPORTED_APIS {
            let codec = key.valid_versions();
            assert!(codec.min <= *min && *max <= codec.max, "{key:?}");
        }
    }

    #[test]
    fn decodes_flexible_and_old_requests() {
        for version in [0, 4, 9, 12] {
            let frame = frame_of(ApiKey::Metadata, version, &MetadataRequest::default());
            let Decoded::Request(req) = decode_request(frame).unwrap() else {
                panic!("request")
            };
            assert_eq!(req.header.correlation_id, 7);
            assert!(matches!(req.body, RequestKind::Metadata(_)));
        }
    }

    #[test]
    fn unknown_api_versions_version_gets_kip_511_answer() {
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::ApiVersions as i16);
        frame.put_i16(99);
        frame.put_i32(42);
        frame.put_i16(-1);
        let Decoded::UnsupportedApiVersions(out) = decode_request(frame.freeze()).unwrap() else {
            panic!("expected fallback")
        };
        let mut out = Bytes::from(out.to_vec());
        let _len = out.get_i32();
        assert_eq!(out.get_i32(), 42, "correlation id, response header v0");
        let body = ApiVersionsResponse::decode(&mut out, 0).unwrap();
        assert_eq!(body.error_code, UNSUPPORTED_VERSION);
        assert_eq!(body.api_keys[0].max_version, 4);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_request(Bytes::from_static(b"\x00")).is_err());
        assert!(decode_request(Bytes::from_static(b"\x7f\x7f\x00\x00\x00\x00\x00\x01")).is_err());
        // Known key, supported version, truncated body.
        let mut frame = frame_of(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).to_vec();
        frame.truncate(frame.len() - 2);
        assert!(decode_request(Bytes::from(frame)).is_err());
        // Every prefix of a valid request decodes or errors, never panics.
        let full = frame_of(ApiKey::Metadata, 12, &MetadataRequest::default());
        for cut in 0..full.len() {
            let _ = decode_request(full.slice(..cut));
        }
    }
}
