//! Produce: validate each partition's batch without decompressing it, check idempotent
//! sequences, assign offsets by rewriting `baseOffset`, append to the open segment, and
//! answer once the flush holding the batch is committed (acks=1 and acks=-1 alike mean
//! "durable in object storage"; acks=0 gets no answer).
//!
//! Each topic needs WRITE (TOPIC_AUTHORIZATION_FAILED per partition); auto-creating one also
//! CREATE on the cluster or the topic. Transactional produce (WRITE on the transactional id)
//! does not exist yet: a transactional id is refused.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strato_tiering::batch::{self, BatchHeader};
use tokio::sync::oneshot;

use super::error::{self, NONE};
use super::{BrokerCtx, Reply, topic_config};
use crate::log::flush::{FlushFailure, PendingBatch, now_ms};
use crate::log::partition::Partition;
use crate::log::producer::{IncomingBatch, SequenceCheck, last_sequence};
use crate::log::topics::Topic;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

/// Produce timeout when the client sends none (Kafka clients default to 30 s).
const PRODUCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Upper bound of a client's produce timeout.
const PRODUCE_TIMEOUT_MAX: Duration = Duration::from_secs(300);
/// Batches accepted in one partition's records (clients send one since Produce v3).
const BATCHES_PER_PARTITION_MAX: usize = 64;

/// How one partition's part of the request ends.
enum Outcome {
    Done(i16, i64, Option<String>),
    /// Appended: answer when the flush commits.
    Appended {
        base_offset: i64,
        log_append_time_ms: i64,
        done: oneshot::Receiver<Result<(), FlushFailure>>,
    },
    /// Already written: answer with its offsets once they are committed.
    Duplicate {
        partition: Arc<Partition>,
        base_offset: i64,
        last_offset: i64,
        rewinds: u64,
    },
}

struct PartitionSlot {
    index: i32,
    /// The partition, when the topic is known (to name its leader in a NOT_LEADER answer).
    tp: Option<strato_metadata::model::TopicPartition>,
    outcome: Outcome,
}

struct TopicSlot {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<PartitionSlot>,
}

pub(super) async fn handle(
    ctx: &Arc<BrokerCtx>,
    req: ProduceRequest,
    version: i16,
    session: &Session,
) -> Reply {
    let acks = req.acks;
    let timeout = match req.timeout_ms {
        t if t <= 0 => PRODUCE_TIMEOUT_DEFAULT,
        t => Duration::from_millis(t as u64).min(PRODUCE_TIMEOUT_MAX),
    };
    let request_error = if !matches!(acks, -1..=1) {
        Some(error::code(ResponseError::InvalidRequiredAcks))
    } else if req.transactional_id.is_some() {
        Some(error::code(
            ResponseError::TransactionalIdAuthorizationFailed,
        ))
    } else {
        None
    };
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let topic = if request_error.is_some() {
            Err(request_error.unwrap_or(NONE))
        } else {
            resolve_topic(ctx, &topic_data.name, topic_data.topic_id, version, session).await
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let outcome = match &topic {
                Err(code) => Outcome::Done(*code, -1, None),
                Ok(topic) => admit(ctx, topic, data.index, data.records, acks == 0).await,
            };
            let tp = topic
                .as_ref()
                .ok()
                .map(|t| strato_metadata::model::TopicPartition {
                    topic_id: t.topic_id,
                    partition: data.index,
                });
            partitions.push(PartitionSlot {
                index: data.index,
                tp,
                outcome,
            });
        }
        topics.push(TopicSlot {
            name: topic_data.name,
            topic_id: topic_data.topic_id,
            partitions,
        });
    }
    if acks == 0 {
        return Reply::Now(None);
    }
    let ctx = ctx.clone();
    Reply::Later(
        async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut responses = Vec::with_capacity(topics.len());
            let mut endpoints = std::collections::BTreeMap::new();
            for topic in topics {
                let mut partition_responses = Vec::with_capacity(topic.partitions.len());
                for slot in topic.partitions {
                    let (code, base_offset, append_time, message) =
                        complete(&ctx, slot.outcome, deadline).await;
                    let mut response = PartitionProduceResponse::default()
                        .with_index(slot.index)
                        .with_error_code(code)
                        .with_base_offset(base_offset)
                        .with_log_append_time_ms(append_time)
                        .with_log_start_offset(0)
                        .with_error_message(message.map(StrBytes::from_string));
                    if version >= CURRENT_LEADER_VERSION
                        && code == error::code(ResponseError::NotLeaderOrFollower)
                        && let Some(tp) = slot.tp
                        && let Some((leader, endpoint)) = current_leader(&ctx, tp).await
                    {
                        response = response.with_current_leader(leader);
                        endpoints.insert(endpoint.node_id.0, endpoint);
                    }
                    partition_responses.push(response);
                }
                responses.push(
                    TopicProduceResponse::default()
                        .with_name(topic.name)
                        .with_topic_id(topic.topic_id)
                        .with_partition_responses(partition_responses),
                );
            }
            let response = ProduceResponse::default().with_responses(responses);
            let response = if version >= CURRENT_LEADER_VERSION {
                response.with_node_endpoints(endpoints.into_values().collect())
            } else {
                response
            };
            Some(kafka_protocol::messages::ResponseKind::Produce(response))
        }
        .boxed(),
    )
}

/// Produce v10+ names the new leader in a NOT_LEADER_OR_FOLLOWER answer (KIP-951), so the
/// client can retry there without a Metadata round trip.
const CURRENT_LEADER_VERSION: i16 = 10;

async fn current_leader(
    ctx: &BrokerCtx,
    tp: strato_metadata::model::TopicPartition,
) -> Option<(LeaderIdAndEpoch, NodeEndpoint)> {
    let leader = ctx.cluster.leader_of(ctx.meta.as_ref(), tp).await;
    if leader.broker_id == ctx.broker_id || leader.leader_epoch < 0 {
        return None;
    }
    let broker = ctx.cluster.broker(leader.broker_id)?;
    Some((
        LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(leader.broker_id))
            .with_leader_epoch(leader.leader_epoch),
        NodeEndpoint::default()
            .with_node_id(BrokerId(leader.broker_id))
            .with_host(StrBytes::from_string(broker.host))
            .with_port(i32::from(broker.port))
            .with_rack(broker.rack.map(StrBytes::from_string)),
    ))
}

async fn resolve_topic(
    ctx: &Arc<BrokerCtx>,
    name: &TopicName,
    topic_id: uuid::Uuid,
    version: i16,
    session: &Session,
) -> Result<Arc<Topic>, i16> {
    let may_write = |name: &str| {
        ctx.authorizer
            .allows(session, AclOperation::Write, ResourceType::Topic, name)
    };
    let denied = error::code(ResponseError::TopicAuthorizationFailed);
    if version >= 13 {
        let topic = ctx
            .topics
            .get_by_id(topic_id)
            .ok_or(error::code(ResponseError::UnknownTopicId))?;
        return if may_write(&topic.name) {
            Ok(topic)
        } else {
            Err(denied)
        };
    }
    if !may_write(name.as_str()) {
        return Err(denied);
    }
    match ctx.topics.lookup(name.as_str()).await {
        Ok(Some(topic)) => return Ok(topic),
        Ok(None) => {}
        Err(err) => return Err(error::from_metadata(&err)),
    }
    if !ctx.config.auto_create_topics
        || !super::metadata::may_create_topic(ctx, session, name.as_str())
    {
        return Err(error::code(ResponseError::UnknownTopicOrPartition));
    }
    match ctx
        .topics
        .create(
            name.as_str(),
            ctx.config.default_partitions,
            Default::default(),
            false,
        )
        .await
    {
        Ok(topic) => Ok(topic),
        Err(crate::log::topics::TopicError::AlreadyExists(_)) => ctx
            .topics
            .lookup(name.as_str())
            .await
            .ok()
            .flatten()
            .ok_or(error::code(ResponseError::UnknownTopicOrPartition)),
        Err(err) => Err(error::from_topic(&err)),
    }
}

/// Admission of one partition's records: everything up to the append happens here, in
/// request order.
async fn admit(
    ctx: &Arc<BrokerCtx>,
    topic: &Arc<Topic>,
    index: i32,
    records: Option<Bytes>,
    fire_and_forget: bool,
) -> Outcome {
    let Some(partition) = topic.partition(index) else {
        return Outcome::Done(
            error::code(ResponseError::UnknownTopicOrPartition),
            -1,
            None,
        );
    };
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Outcome::Done(
            error::code(ResponseError::CorruptMessage),
            -1,
            Some("no record batch".into()),
        );
    };
    let headers = match batch::validate_batches(&records, BATCHES_PER_PARTITION_MAX) {
        Ok(headers) => headers,
        Err(err) => {
            tracing::debug!(topic = %topic.name, partition = index, "rejected batch: {err}");
            let code = match err {
                batch::BatchError::ControlBatch | batch::BatchError::BadSequence { .. } => {
                    ResponseError::InvalidRecord
                }
                _ => ResponseError::CorruptMessage,
            };
            return Outcome::Done(error::code(code), -1, Some(err.to_string()));
        }
    };
    let max_message_bytes = topic_config::max_message_bytes(&topic.config);
    if headers
        .iter()
        .any(|h| h.total_len() as i64 > max_message_bytes)
    {
        return Outcome::Done(error::code(ResponseError::MessageTooLarge), -1, None);
    }
    if headers.iter().any(BatchHeader::is_transactional) {
        return Outcome::Done(error::code(ResponseError::InvalidTxnState), -1, None);
    }
    if headers.len() > 1 && headers.iter().any(BatchHeader::has_producer_id) {
        return Outcome::Done(
            error::code(ResponseError::InvalidRecord),
            -1,
            Some("idempotent produce must carry one batch per partition".into()),
        );
    }
    let permit = match ctx.log.reserve(records.len()).await {
        Ok(permit) => permit,
        Err(failure) => return Outcome::Done(error::from_flush(failure), -1, None),
    };
    let log_append_time = topic_config::log_append_time(&topic.config);

    let mut state = partition.lock();
    if state.fenced || state.needs_reload {
        return Outcome::Done(error::code(ResponseError::NotLeaderOrFollower), -1, None);
    }
    let producer = headers
        .first()
        .filter(|h| h.has_producer_id())
        .map(|h| IncomingBatch {
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            first_sequence: h.base_sequence,
            last_sequence: last_sequence(h.base_sequence, h.records_count),
        });
    if let Some(incoming) = &producer {
        match state.producers.check(incoming) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } => {
                return Outcome::Duplicate {
                    partition: partition.clone(),
                    base_offset,
                    last_offset,
                    rewinds: state.rewinds,
                };
            }
            SequenceCheck::InvalidEpoch => {
                return Outcome::Done(error::code(ResponseError::InvalidProducerEpoch), -1, None);
            }
            SequenceCheck::OutOfOrder => {
                return Outcome::Done(
                    error::code(ResponseError::OutOfOrderSequenceNumber),
                    -1,
                    None,
                );
            }
        }
    }
    let base_offset = state.next_offset;
    let append_time = if log_append_time { now_ms() } else { -1 };
    let mut bytes = BytesMut::from(&records[..]);
    let mut next = base_offset;
    let mut last_offset = base_offset;
    let mut position = 0usize;
    for header in &headers {
        let range = position..position + header.total_len();
        let slice = &mut bytes[range.clone()];
        batch::set_base_offset(slice, next);
        batch::set_partition_leader_epoch(slice, state.leader_epoch);
        if log_append_time {
            set_log_append_time(slice, append_time);
        }
        last_offset = next + i64::from(header.last_offset_delta);
        next = last_offset + 1;
        position = range.end;
    }
    let (done_tx, done_rx) = oneshot::channel();
    let pending = PendingBatch {
        partition: partition.clone(),
        bytes: bytes.freeze(),
        base_offset,
        last_offset,
        producer,
        done: if fire_and_forget { None } else { Some(done_tx) },
        permit,
    };
    if ctx.log.append_locked(pending).is_err() {
        return Outcome::Done(error::from_flush(FlushFailure::ShuttingDown), -1, None);
    }
    state.next_offset = next;
    if let Some(incoming) = &producer {
        state
            .producers
            .record(incoming, base_offset, last_offset, now_ms());
    }
    Outcome::Appended {
        base_offset,
        log_append_time_ms: append_time,
        done: done_rx,
    }
}

/// Marks a batch as LogAppendTime with `now_ms` and recomputes its CRC (the attributes and
/// max timestamp are covered by it).
fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    const ATTRIBUTES_AT: usize = 21;
    const MAX_TIMESTAMP_AT: usize = 35;
    const CRC_AT: usize = 17;
    const TIMESTAMP_TYPE_BIT: u8 = 0x08;
    batch[ATTRIBUTES_AT + 1] |= TIMESTAMP_TYPE_BIT;
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Waits for a partition's outcome: (error code, base offset, log append time, message).
async fn complete(
    ctx: &Arc<BrokerCtx>,
    outcome: Outcome,
    deadline: tokio::time::Instant,
) -> (i16, i64, i64, Option<String>) {
    match outcome {
        Outcome::Done(code, offset, message) => (code, offset, -1, message),
        Outcome::Appended {
            base_offset,
            log_append_time_ms,
            done,
        } => match tokio::time::timeout_at(deadline, done).await {
            Ok(Ok(Ok(()))) => (NONE, base_offset, log_append_time_ms, None),
            Ok(Ok(Err(failure))) => (
                error::from_flush(failure),
                -1,
                -1,
                Some(failure.to_string()),
            ),
            Ok(Err(_)) => (error::from_flush(FlushFailure::ShuttingDown), -1, -1, None),
            Err(_) => (error::code(ResponseError::RequestTimedOut), -1, -1, None),
        },
        Outcome::Duplicate {
            partition,
            base_offset,
            last_offset,
            rewinds,
        } => {
            let mut commits = ctx.log.subscribe_commits();
            loop {
                {
                    let state = partition.lock();
                    if state.high_watermark > last_offset {
                        return (NONE, base_offset, -1, None);
                    }
                    if state.rewinds != rewinds {
                        return (error::from_flush(FlushFailure::Rewound), -1, -1, None);
                    }
                }
                match tokio::time::timeout_at(deadline, commits.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        return (error::from_flush(FlushFailure::ShuttingDown), -1, -1, None);
                    }
                    Err(_) => return (error::code(ResponseError::RequestTimedOut), -1, -1, None),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_append_time_keeps_crc_valid() {
        // A minimal valid batch: header only plus one empty-ish record is not needed; the CRC
        // check covers whatever follows the attributes.
        let mut batch = vec![0u8; 70];
        batch[8..12].copy_from_slice(&(70i32 - 12).to_be_bytes());
        batch[16] = 2;
        batch[57..61].copy_from_slice(&1i32.to_be_bytes());
        set_log_append_time(&mut batch, 1234);
        let crc = u32::from_be_bytes(batch[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&batch[21..]));
        let header = batch::parse_header(&batch).unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 1234);
    }
}
