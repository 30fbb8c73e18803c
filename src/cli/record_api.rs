//! The record APIs the CLI's benchmarks and `strato produce` / `strato consume` speak, over
//! one [`Connection`] each: CreateTopics, Produce (`acks=all`, record batches built with
//! `RecordBatchEncoder`) and Fetch (whole batches cut from the response and decoded with
//! `RecordBatchDecoder`, decompression included).
//!
//! Produce and Fetch stop at the last versions that name topics (v12): v13 addresses topics
//! by id, which would cost a Metadata round trip and buy nothing here.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
    RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::kafka_client::{ClientError, Connection, ErrorCode};
use super::topic_api::{self, NewTopic};

/// Produce `acks` that waits for the full in-sync replica set (Kafka's `acks=all`).
const ACKS_ALL: i16 = -1;
/// Fetch `replica_id` of an ordinary consumer.
const CONSUMER_REPLICA_ID: i32 = -1;
/// Bytes of a record batch v2 header: base offset (8), length (4), leader epoch (4), magic
/// (1), CRC (4), attributes (2), last offset delta (4), timestamps (16), producer id (8),
/// producer epoch (2), base sequence (4), record count (4). KIP-98 / `DefaultRecordBatch`.
const BATCH_HEADER_BYTES: usize = 61;
/// The batch length field counts the bytes after itself.
const BATCH_LENGTH_OFFSET: usize = 8;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;

/// A record batch that cannot be built or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("encode a record batch: {reason}")]
    Encode { reason: String },
    #[error("record batch at byte {position} of a fetch response: {reason}")]
    Corrupt { position: usize, reason: String },
    #[error("decode the record batch at offset {base_offset}: {reason}")]
    Decode { base_offset: i64, reason: String },
}

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Its own timestamp (ms), instead of the batch's.
    pub timestamp: Option<i64>,
}

/// One record batch v2 of `values` (no keys, no producer id), compressed with
/// `compression`; offsets are relative to the batch (the broker assigns the real ones).
pub fn encode_batch(
    values: &[Bytes],
    compression: Compression,
    timestamp_ms: i64,
) -> Result<Bytes, RecordError> {
    let records: Vec<OutRecord> = values
        .iter()
        .map(|value| OutRecord {
            value: Some(value.clone()),
            ..OutRecord::default()
        })
        .collect();
    encode_records(&records, compression, timestamp_ms)
}

/// One record batch v2 of `records` (no producer id), all with `timestamp_ms`.
pub fn encode_records(
    records: &[OutRecord],
    compression: Compression,
    timestamp_ms: i64,
) -> Result<Bytes, RecordError> {
    encode_stamped(records, compression, timestamp_ms, ProducerStamp::NONE)
}

/// The producer fields of a record batch (KIP-98): an idempotent producer's id and epoch
/// and the sequence number of the batch's first record, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerStamp {
    pub const NONE: ProducerStamp = ProducerStamp {
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        base_sequence: NO_SEQUENCE,
    };
}

/// One record batch v2 of `records` from the producer `stamp` names, all with
/// `timestamp_ms`.
pub fn encode_stamped(
    records: &[OutRecord],
    compression: Compression,
    timestamp_ms: i64,
    stamp: ProducerStamp,
) -> Result<Bytes, RecordError> {
    let records: Vec<Record> = records
        .iter()
        .zip(0i64..)
        .map(|(out, offset)| {
            let mut record = Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: stamp.producer_id,
                producer_epoch: stamp.producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset,
                // The encoder starts a new batch wherever `offset - sequence` changes; this
                // keeps it constant and the batch's base sequence at the stamp's (NONE: -1).
                sequence: stamp.base_sequence.wrapping_add(offset as i32),
                timestamp: out.timestamp.unwrap_or(timestamp_ms),
                key: out.key.clone(),
                value: out.value.clone(),
                headers: Default::default(),
            };
            for (name, value) in &out.headers {
                record
                    .headers
                    .insert(StrBytes::from(name.clone()), value.clone());
            }
            record
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|err| {
        RecordError::Encode {
            reason: format!("{err:#}"),
        }
    })?;
    Ok(buf.freeze())
}

/// The complete record batches at the start of `records` and the offset after the last of
/// them. A fetch response may end with a partial batch (Kafka cuts at `max_bytes`); it is
/// left out, and fetched again from the returned offset.
pub fn complete_batches(records: &Bytes) -> Result<(Vec<Bytes>, Option<i64>), RecordError> {
    let mut batches = Vec::new();
    let mut next_offset = None;
    let mut position = 0usize;
    while records.len() - position >= BATCH_HEADER_BYTES {
        let mut header = &records[position..];
        let base_offset = header.get_i64();
        let length = header.get_i32();
        let length = usize::try_from(length)
            .ok()
            .filter(|len| *len + BATCH_LENGTH_OFFSET + 4 >= BATCH_HEADER_BYTES)
            .ok_or_else(|| RecordError::Corrupt {
                position,
                reason: format!("batch length {length}"),
            })?;
        let end = position + BATCH_LENGTH_OFFSET + 4 + length;
        if end > records.len() {
            break;
        }
        let mut delta = &records[position + LAST_OFFSET_DELTA_OFFSET..];
        let last_offset_delta = delta.get_i32();
        let last_offset = base_offset
            .checked_add(i64::from(last_offset_delta))
            .filter(|_| last_offset_delta >= 0)
            .ok_or_else(|| RecordError::Corrupt {
                position,
                reason: format!("base offset {base_offset}, last offset delta {last_offset_delta}"),
            })?;
        next_offset = Some(last_offset + 1);
        batches.push(records.slice(position..end));
        position = end;
    }
    Ok((batches, next_offset))
}

/// What one decoded batch held at or after the offset asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodedBatch {
    pub records: u64,
    pub value_bytes: u64,
}

fn decode_set(mut batch: Bytes) -> Result<Vec<Record>, RecordError> {
    let base_offset = batch.clone().get_i64();
    let set = RecordBatchDecoder::decode(&mut batch).map_err(|err| RecordError::Decode {
        base_offset,
        reason: format!("{err:#}"),
    })?;
    Ok(set.records)
}

/// Decodes (and decompresses) one record batch from [`complete_batches`]; counts the data
/// records at or after `from` (a fetch may start inside a batch; control records are not
/// data).
pub fn decode_batch(batch: Bytes, from: i64) -> Result<DecodedBatch, RecordError> {
    let mut decoded = DecodedBatch::default();
    for record in decode_set(batch)?
        .iter()
        .filter(|r| !r.control && r.offset >= from)
    {
        decoded.records += 1;
        decoded.value_bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
    }
    Ok(decoded)
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The data records of one batch from [`complete_batches`] at or after `from`, decompressed.
pub fn decode_records(batch: Bytes, from: i64) -> Result<Vec<InRecord>, RecordError> {
    Ok(decode_set(batch)?
        .into_iter()
        .filter(|r| !r.control && r.offset >= from)
        .map(|r| InRecord {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect(),
        })
        .collect())
}

/// Creates `topic` with `partitions` partitions (replication factor -1: the broker's
/// default). `TOPIC_ALREADY_EXISTS` comes back as a `ClientError::Kafka`.
pub async fn create_topic(
    connection: &mut Connection,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<(), ClientError> {
    let new = NewTopic {
        name: topic.to_string(),
        partitions: Some(partitions),
        ..NewTopic::default()
    };
    match topic_api::create_topic(connection, &new, false, timeout).await? {
        Ok(()) => Ok(()),
        Err(failure) => Err(ClientError::Kafka {
            addr: connection.addr().to_string(),
            api: ApiKey::CreateTopics,
            code: failure.code,
        }),
    }
}

/// Produces one encoded batch per entry of `batches` (partition, batch) with `acks=all`
/// and waits for the answer; any partition's error fails the call.
pub async fn produce(
    connection: &mut Connection,
    topic: &str,
    batches: Vec<(i32, Bytes)>,
    timeout: Duration,
) -> Result<(), ClientError> {
    for (_, result) in produce_partitions(connection, topic, batches, timeout).await? {
        if let Err(code) = result {
            return Err(ClientError::Kafka {
                addr: connection.addr().to_string(),
                api: ApiKey::Produce,
                code,
            });
        }
    }
    Ok(())
}

/// Per partition of a Produce request, the base offset the broker assigned or its error.
pub type PartitionAnswers = Vec<(i32, Result<i64, ErrorCode>)>;

/// Produces one encoded batch per entry of `batches` (partition, batch) with `acks=all`;
/// per partition, the base offset the broker assigned or its error.
pub async fn produce_partitions(
    connection: &mut Connection,
    topic: &str,
    batches: Vec<(i32, Bytes)>,
    timeout: Duration,
) -> Result<PartitionAnswers, ClientError> {
    let partitions: Vec<i32> = batches.iter().map(|(p, _)| *p).collect();
    let request = produce_request(topic, batches, ACKS_ALL, timeout);
    let response = connection.send(|_| request).await?;
    produce_answers(connection.addr(), &partitions, &response)
}

/// A Produce request of one encoded batch per entry of `batches` (partition, batch).
pub fn produce_request(
    topic: &str,
    batches: Vec<(i32, Bytes)>,
    acks: i16,
    timeout: Duration,
) -> ProduceRequest {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let partition_data = batches
        .into_iter()
        .map(|(index, records)| {
            PartitionProduceData::default()
                .with_index(index)
                .with_records(Some(records))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from(topic.to_string())))
                .with_partition_data(partition_data),
        ])
}

/// Per partition asked for (in that order), the base offset the broker assigned or its
/// error; a partition the response leaves out makes it a bad response.
pub fn produce_answers(
    addr: &str,
    partitions: &[i32],
    response: &ProduceResponse,
) -> Result<PartitionAnswers, ClientError> {
    let answers: Vec<_> = response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .collect();
    partitions
        .iter()
        .map(|&partition| {
            let Some(answer) = answers.iter().find(|a| a.index == partition) else {
                return Err(ClientError::BadResponse {
                    addr: addr.to_string(),
                    api: ApiKey::Produce,
                    reason: format!("no answer for partition {partition}"),
                });
            };
            let code = ErrorCode(answer.error_code);
            Ok((
                partition,
                if code.is_ok() {
                    Ok(answer.base_offset)
                } else {
                    Err(code)
                },
            ))
        })
        .collect()
}

/// How a consumer fetches.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// Long poll: how long the broker may wait for data (`max_wait_ms`).
    pub max_wait: Duration,
    /// `partition_max_bytes` and `max_bytes` (one partition per request).
    pub bytes_max: i32,
}

/// One partition's answer to Fetch.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    pub high_watermark: i64,
    /// Record batches as the broker sent them (the last one may be partial).
    pub records: Bytes,
}

/// Fetches `topic`/`partition` from `offset` (read uncommitted, no fetch session).
pub async fn fetch(
    connection: &mut Connection,
    topic: &str,
    partition: i32,
    offset: i64,
    options: FetchOptions,
) -> Result<FetchedPartition, ClientError> {
    let fetched = fetch_partitions(connection, topic, &[(partition, offset)], options).await?;
    match fetched.into_iter().next() {
        Some((_, Ok(data))) => Ok(data),
        Some((_, Err(code))) => Err(ClientError::Kafka {
            addr: connection.addr().to_string(),
            api: ApiKey::Fetch,
            code,
        }),
        None => unreachable!("fetch_partitions answers every partition asked"),
    }
}

/// Fetches several partitions of `topic` (partition, offset) from one broker in one request
/// (read uncommitted, no fetch session); per partition, its data or its error. `bytes_max`
/// bounds each partition and the whole response.
pub async fn fetch_partitions(
    connection: &mut Connection,
    topic: &str,
    positions: &[(i32, i64)],
    options: FetchOptions,
) -> Result<Vec<(i32, Result<FetchedPartition, ErrorCode>)>, ClientError> {
    let max_wait_ms = i32::try_from(options.max_wait.as_millis()).unwrap_or(i32::MAX);
    let response = connection
        .send(|_| {
            FetchRequest::default()
                .with_replica_id(BrokerId(CONSUMER_REPLICA_ID))
                .with_max_wait_ms(max_wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(options.bytes_max)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from(topic.to_string())))
                        .with_partitions(
                            positions
                                .iter()
                                .map(|(partition, offset)| {
                                    FetchPartition::default()
                                        .with_partition(*partition)
                                        .with_fetch_offset(*offset)
                                        .with_partition_max_bytes(options.bytes_max)
                                })
                                .collect(),
                        ),
                ])
        })
        .await?;
    if response.error_code != 0 {
        return Err(ClientError::Kafka {
            addr: connection.addr().to_string(),
            api: ApiKey::Fetch,
            code: ErrorCode(response.error_code),
        });
    }
    let mut answers: Vec<_> = response
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .collect();
    positions
        .iter()
        .map(|(partition, _)| {
            let Some(idx) = answers.iter().position(|p| p.partition_index == *partition) else {
                return Err(ClientError::BadResponse {
                    addr: connection.addr().to_string(),
                    api: ApiKey::Fetch,
                    reason: format!("no answer for partition {partition}"),
                });
            };
            let data = answers.swap_remove(idx);
            Ok((
                *partition,
                if data.error_code != 0 {
                    Err(ErrorCode(data.error_code))
                } else {
                    Ok(FetchedPartition {
                        high_watermark: data.high_watermark,
                        records: data.records.unwrap_or_default(),
                    })
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; 100 + i]))
            .collect()
    }

    /// Goal: what `encode_batch` writes, `complete_batches` cuts and `decode_batch` reads
    /// back, for every codec, and a partial trailing batch is left for the next fetch.
    #[test]
    fn batches_round_trip_and_partial_tails_are_left_out() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let first = encode_batch(&values(10), compression, 1).unwrap();
            let second = encode_batch(&values(5), compression, 2).unwrap();
            // The broker assigns offsets: the second batch starts at 10.
            let mut second = BytesMut::from(&second[..]);
            second[..8].copy_from_slice(&10i64.to_be_bytes());
            let mut wire = BytesMut::from(&first[..]);
            wire.extend_from_slice(&second);
            let wire = wire.freeze();

            let (batches, next) = complete_batches(&wire).unwrap();
            assert_eq!(batches.len(), 2, "{compression:?}");
            assert_eq!(next, Some(15));
            let total_values: u64 = (0..10).map(|i| 100 + i).sum::<u64>();
            let decoded = decode_batch(batches[0].clone(), 0).unwrap();
            assert_eq!(decoded.records, 10);
            assert_eq!(decoded.value_bytes, total_values);
            let decoded = decode_batch(batches[1].clone(), 12).unwrap();
            assert_eq!(
                decoded.records, 3,
                "records before the fetch offset are skipped"
            );

            let partial = wire.slice(..wire.len() - 1);
            let (batches, next) = complete_batches(&partial).unwrap();
            assert_eq!(batches.len(), 1);
            assert_eq!(next, Some(10));
            let (batches, next) = complete_batches(&wire.slice(..20)).unwrap();
            assert!(batches.is_empty());
            assert_eq!(next, None);
        }
    }

    #[test]
    fn corrupt_batches_are_errors_not_panics() {
        let batch = encode_batch(&values(3), Compression::Lz4, 1).unwrap();
        let mut bad_length = BytesMut::from(&batch[..]);
        bad_length[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(complete_batches(&bad_length.freeze()).is_err());
        let mut bad_crc = BytesMut::from(&batch[..]);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        assert!(decode_batch(bad_crc.freeze(), 0).is_err());
    }
}
