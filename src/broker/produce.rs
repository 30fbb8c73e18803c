//! Produce: validate each partition's batch without decompressing it, check idempotent
//! sequences, assign offsets by rewriting `baseOffset`, append to the open segment, and
//! answer once the flush holding the batch is committed (acks=1 and acks=-1 alike mean
//! "durable in object storage"; acks=0 gets no answer). Records are decoded only where a
//! topic config needs them (`records.rs`: keys on compacted topics, timestamp limits,
//! recompression into the topic's `compression.type`); refused records are answered with
//! KIP-467's record errors (Produce v8+).
//!
//! Each topic needs WRITE (TOPIC_AUTHORIZATION_FAILED per partition); auto-creating one also
//! CREATE on the cluster or the topic. A request with transactional batches needs its
//! transactional id and WRITE on it (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for the whole
//! request, as Kafka). A transactional batch is written only inside the producer's open
//! transaction on the partition, or, for the first one, when the coordinator's record
//! `txns/<id>` lists the partition in the producer's ongoing transaction (KIP-890 part 1,
//! read before the partition lock and checked against a verification guard under it).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strato_metadata::model::TxnRecord;
use strato_tiering::batch::{self, BatchHeader};
use tokio::sync::oneshot;

use super::error::{self, NONE};
use super::{BrokerCtx, Reply};
use crate::log::flush::{FlushFailure, PendingBatch, now_ms};
use crate::log::partition::{Partition, PartitionState};
use crate::log::producer::{IncomingBatch, SequenceCheck, TxnCheck, last_sequence, verify_in_txn};
use crate::log::topics::Topic;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};
use crate::topic_config;

mod records;

/// Produce timeout when the client sends none (Kafka clients default to 30 s).
const PRODUCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Upper bound of a client's produce timeout.
const PRODUCE_TIMEOUT_MAX: Duration = Duration::from_secs(300);
/// Batches accepted in one partition's records (clients send one since Produce v3).
const BATCHES_PER_PARTITION_MAX: usize = 64;

/// How one partition's part of the request ends.
enum Outcome {
    Done(i16, i64, Option<String>),
    /// Refused for some of its records (KIP-467).
    Refused(records::Refusal),
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
    let transactional_id = req.transactional_id.as_ref().map(|id| id.to_string());
    let request_error = if !matches!(acks, -1..=1) {
        Some(error::code(ResponseError::InvalidRequiredAcks))
    } else if has_transactional_records(&req) && !may_write_txn(ctx, session, &transactional_id) {
        Some(error::code(
            ResponseError::TransactionalIdAuthorizationFailed,
        ))
    } else {
        None
    };
    let mut topics = Vec::with_capacity(req.topic_data.len());
    // Until every batch is appended, an idle flusher waits for the rest (`IDLE_GATHER`).
    let appending = ctx.log.appending();
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
                Ok(topic) => {
                    let target = Target {
                        topic,
                        index: data.index,
                        transactional_id: transactional_id.as_deref(),
                    };
                    admit(ctx, target, data.records, acks == 0).await
                }
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
    drop(appending);
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
                    let (code, base_offset, append_time, message, record_errors) =
                        match slot.outcome {
                            Outcome::Refused(refusal) => (
                                error::code(refusal.code),
                                -1,
                                -1,
                                Some(refusal.message),
                                refusal.record_errors,
                            ),
                            outcome => {
                                let (code, base_offset, append_time, message) =
                                    complete(&ctx, outcome, deadline).await;
                                (code, base_offset, append_time, message, Vec::new())
                            }
                        };
                    let mut response = PartitionProduceResponse::default()
                        .with_index(slot.index)
                        .with_error_code(code)
                        .with_base_offset(base_offset)
                        .with_log_append_time_ms(append_time)
                        .with_log_start_offset(0)
                        .with_error_message(message.map(StrBytes::from_string));
                    if version >= RECORD_ERRORS_VERSION {
                        response = response.with_record_errors(
                            record_errors
                                .into_iter()
                                .map(|(index, message)| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(index)
                                        .with_batch_index_error_message(Some(
                                            StrBytes::from_string(message),
                                        ))
                                })
                                .collect(),
                        );
                    }
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

/// Whether any partition's first batch is transactional (Kafka's
/// `ProduceRequest.hasTransactionalRecords`).
fn has_transactional_records(req: &ProduceRequest) -> bool {
    req.topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref())
        .any(|records| batch::parse_header(records).is_ok_and(|h| h.is_transactional()))
}

/// Kafka's rule for transactional records: a transactional id, and WRITE on it.
fn may_write_txn(ctx: &BrokerCtx, session: &Session, transactional_id: &Option<String>) -> bool {
    transactional_id.as_deref().is_some_and(|id| {
        ctx.authorizer.allows(
            session,
            AclOperation::Write,
            ResourceType::TransactionalId,
            id,
        )
    })
}

/// Produce v8+ answers record errors (KIP-467).
const RECORD_ERRORS_VERSION: i16 = 8;

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

/// Where one partition's records go.
struct Target<'a> {
    topic: &'a Arc<Topic>,
    index: i32,
    /// The request's transactional id (present and authorized if any batch is transactional).
    transactional_id: Option<&'a str>,
}

/// Times the coordinator's record is read for one batch: a marker for the producer appended
/// meanwhile makes a read stale, and the next one decides.
const TXN_VERIFY_ATTEMPTS_MAX: usize = 3;

/// Admission of one partition's records: everything up to the append happens here, in
/// request order.
async fn admit(
    ctx: &Arc<BrokerCtx>,
    target: Target<'_>,
    records: Option<Bytes>,
    fire_and_forget: bool,
) -> Outcome {
    let Target {
        topic,
        index,
        transactional_id,
    } = target;
    let Some(partition) = topic.partition(index) else {
        return Outcome::Done(
            error::code(ResponseError::UnknownTopicOrPartition),
            -1,
            None,
        );
    };
    let (records, headers) = match validate(topic, index, records) {
        Ok(valid) => valid,
        Err(outcome) => return outcome,
    };
    let (records, headers) =
        match apply_record_rules(topic, index, records, headers, &ctx.schemas).await {
            Ok(valid) => valid,
            Err(outcome) => return outcome,
        };
    let producer = headers
        .first()
        .filter(|h| h.has_producer_id())
        .map(|h| IncomingBatch {
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            first_sequence: h.base_sequence,
            last_sequence: last_sequence(h.base_sequence, h.records_count),
            transactional: h.is_transactional(),
        });
    let permit = match ctx.log.reserve(records.len()).await {
        Ok(permit) => permit,
        Err(failure) => return Outcome::Done(error::from_flush(failure), -1, None),
    };
    let mut permit = Some(permit);
    // (guard, outcome) of the last read of the coordinator's record.
    let mut verification: Option<(u64, Result<(), i16>)> = None;
    for _ in 0..TXN_VERIFY_ATTEMPTS_MAX {
        let guard = {
            let mut state = partition.lock();
            let checked = match check_producer(&mut state, &partition, producer, &mut verification)
            {
                Ok(checked) => checked,
                Err(outcome) => return outcome,
            };
            match checked {
                ProducerCheck::Append => {
                    let batch = Admitted {
                        partition: &partition,
                        records: &records,
                        headers: &headers,
                        producer,
                        log_append_time: topic_config::log_append_time(&topic.config),
                        fire_and_forget,
                    };
                    let permit = permit
                        .take()
                        .expect("the permit is used once, by the append");
                    return append(ctx, &mut state, batch, permit);
                }
                ProducerCheck::Verify(guard) => guard,
            }
        };
        let (Some(incoming), Some(transactional_id)) = (producer, transactional_id) else {
            // Only a transactional batch is verified, and handle() refused those without an
            // authorized transactional id.
            return Outcome::Done(
                error::code(ResponseError::TransactionalIdAuthorizationFailed),
                -1,
                None,
            );
        };
        let result = read_and_verify(ctx, transactional_id, incoming, partition.tp).await;
        verification = Some((guard, result));
    }
    Outcome::Done(
        error::code(ResponseError::NotEnoughReplicas),
        -1,
        Some("transaction markers kept arriving while the transaction was verified".into()),
    )
}

/// The batches of one partition's records, checked as a client may send them: (records,
/// headers), or the outcome that refuses them.
fn validate(
    topic: &Topic,
    index: i32,
    records: Option<Bytes>,
) -> Result<(Bytes, Vec<BatchHeader>), Outcome> {
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err(Outcome::Done(
            error::code(ResponseError::CorruptMessage),
            -1,
            Some("no record batch".into()),
        ));
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
            return Err(Outcome::Done(error::code(code), -1, Some(err.to_string())));
        }
    };
    if over_max_message_bytes(&headers, &topic.config) {
        return Err(Outcome::Done(
            error::code(ResponseError::MessageTooLarge),
            -1,
            None,
        ));
    }
    let invalid = |message: &str| {
        Outcome::Done(
            error::code(ResponseError::InvalidRecord),
            -1,
            Some(message.into()),
        )
    };
    if headers.len() > 1 && headers.iter().any(BatchHeader::has_producer_id) {
        return Err(invalid(
            "idempotent produce must carry one batch per partition",
        ));
    }
    if headers
        .iter()
        .any(|h| h.is_transactional() && !h.has_producer_id())
    {
        return Err(invalid("a transactional batch needs a producer id"));
    }
    Ok((records, headers))
}

/// The record-level rules of the topic's configs (`records.rs`): the records to append (the
/// same, or rebuilt in the topic's codec) and their headers, or the outcome that refuses
/// them. Decoding runs on the blocking pool, and only when a rule needs it.
async fn apply_record_rules(
    topic: &Topic,
    index: i32,
    records: Bytes,
    headers: Vec<BatchHeader>,
    schemas: &Arc<dyn crate::schema_registry::SchemaIds>,
) -> Result<(Bytes, Vec<BatchHeader>), Outcome> {
    let rules = records::RecordRules::of(&topic.config);
    let now = now_ms();
    if !rules.needs_records(&headers, now) {
        return Ok((records, headers));
    }
    let rules = rules.named(&topic.name, index, schemas.clone());
    let checks_schema_ids = rules.checked_subjects().next().is_some();
    let run = |rules: records::RecordRules, records: Bytes, headers: Vec<BatchHeader>| {
        tokio::task::spawn_blocking(move || {
            let rebuilt = rules.apply(&records, &headers, now)?;
            Ok::<_, records::Refusal>(match rebuilt {
                Some(rebuilt) => (rebuilt, None),
                None => (records, Some(headers)),
            })
        })
    };
    // Kept for a second check (cheap: `Bytes` is shared, the headers are a few).
    let kept = checks_schema_ids.then(|| (records.clone(), headers.clone()));
    let mut applied = run(rules.clone(), records, headers).await;
    if let Some((records_again, headers_again)) = kept
        && let Ok(Err(refusal)) = &applied
        && refusal.code == ResponseError::InvalidRecord
    {
        // An id registered through another broker a moment ago may not be in this one's
        // copy yet: read the subjects again and check once more.
        for subject in rules.checked_subjects() {
            schemas.refresh(subject).await;
        }
        applied = run(rules, records_again, headers_again).await;
    }
    let (records, headers) = match applied {
        Ok(Ok(applied)) => applied,
        Ok(Err(refusal)) => {
            tracing::debug!(topic = %topic.name, partition = index, ?refusal, "refused records");
            return Err(Outcome::Refused(refusal));
        }
        Err(err) => {
            tracing::error!(topic = %topic.name, "failed to check records: {err}");
            return Err(Outcome::Done(
                error::code(ResponseError::UnknownServerError),
                -1,
                None,
            ));
        }
    };
    let headers = match headers {
        Some(headers) => headers,
        // Rebuilt batches are checked like produced ones, their size included (Kafka
        // checks it again after recompression).
        None => match batch::validate_batches(&records, BATCHES_PER_PARTITION_MAX) {
            Ok(headers) => headers,
            Err(err) => {
                tracing::error!(topic = %topic.name, "a recompressed batch is invalid: {err}");
                return Err(Outcome::Done(
                    error::code(ResponseError::UnknownServerError),
                    -1,
                    None,
                ));
            }
        },
    };
    if over_max_message_bytes(&headers, &topic.config) {
        return Err(Outcome::Done(
            error::code(ResponseError::MessageTooLarge),
            -1,
            Some("the batch recompressed in the topic's compression.type is too large".into()),
        ));
    }
    Ok((records, headers))
}

/// What the producer rules say about a batch that may be written.
enum ProducerCheck {
    Append,
    /// The batch opens a transaction here: read the coordinator's record, then check again
    /// with this verification guard.
    Verify(u64),
}

/// Sequence and transaction rules of the batch's producer under the partition lock; `Err`
/// is the outcome that ends the admission (a duplicate, or a refusal).
fn check_producer(
    state: &mut PartitionState,
    partition: &Arc<Partition>,
    producer: Option<IncomingBatch>,
    verification: &mut Option<(u64, Result<(), i16>)>,
) -> Result<ProducerCheck, Outcome> {
    let refuse = |err: ResponseError| Outcome::Done(error::code(err), -1, None);
    if state.fenced || state.needs_reload {
        return Err(refuse(ResponseError::NotLeaderOrFollower));
    }
    let Some(incoming) = producer else {
        return Ok(ProducerCheck::Append);
    };
    match state.producers.check(&incoming) {
        SequenceCheck::Append => {}
        SequenceCheck::Duplicate {
            base_offset,
            last_offset,
        } => {
            return Err(Outcome::Duplicate {
                partition: partition.clone(),
                base_offset,
                last_offset,
                rewinds: state.rewinds,
            });
        }
        SequenceCheck::InvalidEpoch => return Err(refuse(ResponseError::InvalidProducerEpoch)),
        SequenceCheck::OutOfOrder => return Err(refuse(ResponseError::OutOfOrderSequenceNumber)),
    }
    if !state.producers.has_room_for(incoming.producer_id) {
        // Every remembered producer has an open transaction: none may be forgotten. The
        // producer retries (as after Kafka's failed transaction verifications).
        return Err(Outcome::Done(
            error::code(ResponseError::NotEnoughReplicas),
            -1,
            Some("too many open transactions on the partition".into()),
        ));
    }
    match state.producers.txn_check(&incoming) {
        TxnCheck::Append => Ok(ProducerCheck::Append),
        TxnCheck::Invalid => Err(refuse(ResponseError::InvalidTxnState)),
        TxnCheck::NeedsVerification => match verification.take() {
            // A refusal stands whatever happened since: the client only sends after its
            // coordinator added the partition, which a later read would see as well.
            Some((_, Err(code))) => Err(Outcome::Done(code, -1, None)),
            Some((guard, Ok(()))) if state.take_txn_verification(incoming.producer_id, guard) => {
                Ok(ProducerCheck::Append)
            }
            _ => Ok(ProducerCheck::Verify(
                state.start_txn_verification(incoming.producer_id),
            )),
        },
    }
}

/// Reads `txns/<transactional id>` and checks that it lets `incoming` open a transaction in
/// partition `tp`: `Err` is the error code to answer.
async fn read_and_verify(
    ctx: &BrokerCtx,
    transactional_id: &str,
    incoming: IncomingBatch,
    tp: strato_metadata::model::TopicPartition,
) -> Result<(), i16> {
    let key = strato_metadata::keys::txn(transactional_id);
    let record = match ctx.meta.get(&key).await {
        Ok(Some(value)) => match TxnRecord::decode(&key, &value.value) {
            Ok(record) => Some(record),
            Err(err) => {
                tracing::error!(%key, "failed to read a transaction record: {err:#}");
                return Err(error::from_metadata(&err));
            }
        },
        Ok(None) => None,
        Err(err) => {
            tracing::warn!(%key, "failed to read a transaction record: {err:#}");
            return Err(error::from_metadata(&err));
        }
    };
    verify_in_txn(
        record.as_ref(),
        incoming.producer_id,
        incoming.producer_epoch,
        tp,
    )
    .map_err(error::from_txn_verification)
}

/// Whether a batch is over the topic's `max.message.bytes` (Kafka compares whole batches).
fn over_max_message_bytes(
    headers: &[BatchHeader],
    config: &std::collections::BTreeMap<String, String>,
) -> bool {
    let max_message_bytes = topic_config::max_message_bytes(config);
    headers
        .iter()
        .any(|h| h.total_len() as i64 > max_message_bytes)
}

/// A partition's batches that passed every check, ready for offsets.
struct Admitted<'a> {
    partition: &'a Arc<Partition>,
    records: &'a Bytes,
    headers: &'a [BatchHeader],
    producer: Option<IncomingBatch>,
    log_append_time: bool,
    fire_and_forget: bool,
}

/// Assigns offsets and appends to the open segment, under the partition lock.
fn append(
    ctx: &BrokerCtx,
    state: &mut PartitionState,
    batch: Admitted<'_>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Outcome {
    let base_offset = state.next_offset;
    let append_time = if batch.log_append_time { now_ms() } else { -1 };
    let spanned: i64 = batch
        .headers
        .iter()
        .map(|header| i64::from(header.last_offset_delta) + 1)
        .sum();
    let next = base_offset + spanned;
    let last_offset = next - 1;
    let (done_tx, done_rx) = oneshot::channel();
    let pending = PendingBatch {
        partition: batch.partition.clone(),
        base_offset,
        last_offset,
        producer: batch.producer,
        marker: None,
        done: if batch.fire_and_forget {
            None
        } else {
            Some(done_tx)
        },
        permit,
        rewinds: state.rewinds,
    };
    let leader_epoch = state.leader_epoch;
    // The records are copied once, into the partition's open chunk, and numbered there.
    let patch = |bytes: &mut [u8]| {
        let mut next = base_offset;
        let mut position = 0usize;
        for header in batch.headers {
            let slice = &mut bytes[position..position + header.total_len()];
            batch::set_base_offset(slice, next);
            batch::set_partition_leader_epoch(slice, leader_epoch);
            if batch.log_append_time {
                set_log_append_time(slice, append_time);
            }
            next += i64::from(header.last_offset_delta) + 1;
            position += header.total_len();
        }
    };
    if ctx
        .log
        .append_locked(pending, batch.records, patch)
        .is_err()
    {
        return Outcome::Done(error::from_flush(FlushFailure::ShuttingDown), -1, None);
    }
    state.next_offset = next;
    if let Some(incoming) = &batch.producer {
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
        Outcome::Refused(refusal) => (error::code(refusal.code), -1, -1, Some(refusal.message)),
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
                    // A rewind first: the original batch may have been dropped and other
                    // batches committed at its offsets since (the retry then finds out).
                    if state.rewinds != rewinds {
                        return (error::from_flush(FlushFailure::Rewound), -1, -1, None);
                    }
                    if state.high_watermark > last_offset {
                        return (NONE, base_offset, -1, None);
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
