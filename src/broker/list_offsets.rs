//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4),
//! earliest pending upload (-5) and by timestamp: the first record whose timestamp is at
//! least the one asked, found through the index entries' max timestamps, then the records
//! of the chunk that holds it.
//! At read_committed (`isolation_level` 1, v2+) the latest offset is the last stable offset
//! and lookups find nothing at or past it, as Kafka's `fetchOffsetForTimestamp`.
//! Each topic needs DESCRIBE (TOPIC_AUTHORIZATION_FAILED per partition).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use strato_tiering::batch;

use super::BrokerCtx;
use super::error::{self, NONE};
use super::record_codec::{self, CodecError};
use crate::log::partition::Partition;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;
/// Kafka's `IsolationLevel.READ_COMMITTED`.
const READ_COMMITTED: i8 = 1;

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: ListOffsetsRequest,
    version: i16,
    session: &Session,
) -> ListOffsetsResponse {
    // `leader_epoch` exists from v4 on; older versions must leave it at its default.
    let epoch_field = |epoch: i32| if version >= 4 { epoch } else { -1 };
    let read_committed = version >= 2 && req.isolation_level == READ_COMMITTED;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = ctx.topics.get(t.name.as_str());
        let allowed = ctx.authorizer.allows(
            session,
            AclOperation::Describe,
            ResourceType::Topic,
            t.name.as_str(),
        );
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            if !allowed {
                partitions.push(
                    base.with_error_code(error::code(ResponseError::TopicAuthorizationFailed)),
                );
                continue;
            }
            let partition = topic
                .as_ref()
                .and_then(|topic| topic.partition(p.partition_index));
            let Some(partition) = partition else {
                partitions.push(
                    base.with_error_code(error::code(ResponseError::UnknownTopicOrPartition)),
                );
                continue;
            };
            if !partition.is_led() {
                partitions
                    .push(base.with_error_code(error::code(ResponseError::NotLeaderOrFollower)));
                continue;
            }
            let epoch = partition.leader_epoch();
            if p.current_leader_epoch >= 0 && p.current_leader_epoch != epoch {
                let code = if p.current_leader_epoch < epoch {
                    ResponseError::FencedLeaderEpoch
                } else {
                    ResponseError::UnknownLeaderEpoch
                };
                partitions.push(base.with_error_code(error::code(code)));
                continue;
            }
            // Offsets at or past it are not visible at the request's isolation level.
            let visible_end = if read_committed {
                partition.last_stable_offset()
            } else {
                partition.high_watermark()
            };
            let result = match p.timestamp {
                LATEST => Ok((visible_end, -1)),
                EARLIEST | EARLIEST_LOCAL => Ok((partition.lock().log_start_offset, -1)),
                // Everything committed is already in object storage.
                EARLIEST_PENDING_UPLOAD => Ok((-1, -1)),
                MAX_TIMESTAMP => Ok(max_timestamp(&partition)),
                ts if ts >= 0 => by_timestamp(ctx, &partition, ts).await,
                _ => Err(error::code(ResponseError::InvalidRequest)),
            };
            let result = match result {
                Ok((offset, _))
                    if (p.timestamp == MAX_TIMESTAMP || p.timestamp >= 0)
                        && offset >= visible_end =>
                {
                    Ok((-1, -1))
                }
                other => other,
            };
            partitions.push(match result {
                Ok((offset, timestamp)) => base
                    .with_error_code(NONE)
                    .with_offset(offset)
                    .with_timestamp(timestamp)
                    .with_leader_epoch(epoch_field(epoch)),
                Err(code) => base.with_error_code(code),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// The chunk with the largest max timestamp; the offset is that chunk's last offset (a
/// batch-level answer: records are not decompressed).
fn max_timestamp(partition: &Partition) -> (i64, i64) {
    let (_, entries) = partition.index_snapshot();
    entries
        .iter()
        .max_by_key(|e| (e.max_timestamp, std::cmp::Reverse(e.base_offset)))
        .map_or((-1, -1), |e| (e.last_offset, e.max_timestamp))
}

/// The first record, at or past the log start, whose timestamp is at least `ts`: its offset
/// and timestamp; (-1, -1) when no record is that recent (Kafka's `fetchOffsetByTimestamp`).
/// The index entries' max timestamps pick the chunks that may hold it, the frames' max
/// timestamps the spans to read, the batches' max timestamps the batch; that batch's records
/// decide. A chunk or batch without such a record (a cleaned chunk has offset gaps, or no
/// batch at all; a producer's header may overstate) moves the search on to the next.
async fn by_timestamp(
    ctx: &Arc<BrokerCtx>,
    partition: &Partition,
    ts: i64,
) -> Result<(i64, i64), i16> {
    let (_, entries) = partition.index_snapshot();
    let log_start = partition.lock().log_start_offset;
    let candidates = entries
        .iter()
        .filter(|e| e.max_timestamp >= ts && e.last_offset >= log_start);
    for entry in candidates {
        let storage_error = |what: &str, err: &dyn std::fmt::Display| {
            tracing::error!(object = %entry.object, "failed to {what}: {err:#}");
            error::code(ResponseError::KafkaStorageError)
        };
        let from = entry.base_offset.max(log_start);
        let spans = ctx
            .tier
            .spans(entry, from)
            .await
            .map_err(|err| storage_error("read a chunk", &err))?;
        for span in spans.iter().filter(|s| s.expected.max_timestamp >= ts) {
            let data = ctx
                .tier
                .read_span(span)
                .await
                .map_err(|err| storage_error("read a chunk", &err))?;
            let found = first_record_at_or_after(&data, ts, log_start)
                .map_err(|err| storage_error("decode a stored batch", &err))?;
            if let Some(found) = found {
                return Ok(found);
            }
        }
    }
    Ok((-1, -1))
}

/// In the batches of one span: the first record with a timestamp of at least `ts` and an
/// offset of at least `log_start`, as (offset, timestamp).
fn first_record_at_or_after(
    data: &Bytes,
    ts: i64,
    log_start: i64,
) -> Result<Option<(i64, i64)>, CodecError> {
    for item in batch::iter_batches(data) {
        let (header, range) = item.map_err(|err| CodecError::Corrupt(err.to_string()))?;
        if header.max_timestamp < ts || header.last_offset() < log_start {
            continue;
        }
        let records = record_codec::decode(&header, &data.slice(range))?;
        let found = records.iter().find_map(|record| {
            // A LogAppendTime batch's records all have its max timestamp, the append time.
            let timestamp = if header.is_log_append_time() {
                header.max_timestamp
            } else {
                record.timestamp
            };
            (timestamp >= ts && record.offset >= log_start).then_some((record.offset, timestamp))
        });
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
