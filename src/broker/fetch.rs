//! Fetch: whole record batches from the batch holding the fetch offset up to the high
//! watermark, within `max_bytes` and `partition_max_bytes` (at least one batch for the
//! first non-empty partition, KIP-74). Long poll: when fewer than `min_bytes` are ready the
//! request parks until a flush commits (woken through the log's commit channel) or
//! `max_wait_ms` passes. Sessions are declined (`session_id` 0, KIP-227 allows it).
//!
//! Any broker serves reads: partitions led elsewhere are read through a replica view of
//! the committed index (`log::replica`). A leader asked by a consumer in another rack
//! (`rack_id`, Fetch v11+) names a broker in the consumer's rack as the preferred read
//! replica instead of returning records (KIP-392), so reads stay inside a zone.
//!
//! Transactions: every answer carries the last stable offset. At read_committed
//! (`isolation_level` 1, Fetch v4+) records stop at the LSO (whole batches: one starting at or
//! past it is cut) and the response lists the aborted transactions overlapping the returned
//! records (last offset at or after the fetch offset, first offset at or before the last
//! returned one), so the client drops their records and the markers.
//!
//! Each topic needs READ (TOPIC_AUTHORIZATION_FAILED per partition), checked when the request
//! is admitted.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ResponseKind, TopicName};
use strato_tiering::batch;

use super::error::{self, NONE};
use super::{BrokerCtx, Reply};
use crate::log::partition::Partition;
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};

/// Longest long poll, whatever the client asks for.
const MAX_WAIT_LIMIT: Duration = Duration::from_secs(60);
/// Index entries looked at per partition and pass.
const CHUNKS_PER_PARTITION_PASS: usize = 64;
/// Most spans (chunks, or frames of compacted chunks) read in the background after one
/// fetch, for the reader's next fetches.
const READ_AHEAD_SPANS_MAX: usize = 16;
/// Spans a fetch reads at once for one partition (each a ranged GET on a cache miss).
const DEMAND_READS_MAX: usize = 4;
/// Kafka's `IsolationLevel.READ_COMMITTED`.
const READ_COMMITTED: i8 = 1;

struct Wanted {
    index: i32,
    /// The consumer's rack (`rack_id`, Fetch v11+), if it gave one.
    client_rack: Option<String>,
    partition: Result<Arc<Partition>, i16>,
    fetch_offset: i64,
    partition_max_bytes: usize,
    current_leader_epoch: i32,
    /// `isolation_level` 1: only decided transactions, up to the last stable offset.
    read_committed: bool,
}

struct WantedTopic {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<Wanted>,
}

pub(super) fn handle(
    ctx: &Arc<BrokerCtx>,
    req: FetchRequest,
    version: i16,
    session: &Session,
) -> Reply {
    let wanted = resolve(ctx, &req, version, session);
    let ctx = ctx.clone();
    Reply::Later(
        async move { Some(ResponseKind::Fetch(fetch(&ctx, req, wanted, version).await)) }.boxed(),
    )
}

fn resolve(
    ctx: &BrokerCtx,
    req: &FetchRequest,
    version: i16,
    session: &Session,
) -> Vec<WantedTopic> {
    let client_rack = (version >= 11 && !req.rack_id.is_empty()).then(|| req.rack_id.to_string());
    let read_committed = version >= 4 && req.isolation_level == READ_COMMITTED;
    req.topics
        .iter()
        .map(|t| {
            let topic = if version >= 13 {
                ctx.topics.get_by_id(t.topic_id)
            } else {
                ctx.topics.get(t.topic.as_str())
            };
            let unknown = if version >= 13 {
                error::code(ResponseError::UnknownTopicId)
            } else {
                error::code(ResponseError::UnknownTopicOrPartition)
            };
            // By name, a topic that does not exist is denied like one that does.
            let name = if version >= 13 {
                topic.as_ref().map(|t| t.name.as_str())
            } else {
                Some(t.topic.as_str())
            };
            let denied = name.is_some_and(|name| {
                !ctx.authorizer
                    .allows(session, AclOperation::Read, ResourceType::Topic, name)
            });
            let partitions = t
                .partitions
                .iter()
                .map(|p| Wanted {
                    index: p.partition,
                    client_rack: client_rack.clone(),
                    partition: match &topic {
                        _ if denied => Err(error::code(ResponseError::TopicAuthorizationFailed)),
                        None => Err(unknown),
                        Some(topic) => topic
                            .partition(p.partition)
                            .ok_or(error::code(ResponseError::UnknownTopicOrPartition)),
                    },
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                    current_leader_epoch: p.current_leader_epoch,
                    read_committed,
                })
                .collect();
            WantedTopic {
                name: t.topic.clone(),
                topic_id: t.topic_id,
                partitions,
            }
        })
        .collect()
}

async fn fetch(
    ctx: &Arc<BrokerCtx>,
    req: FetchRequest,
    wanted: Vec<WantedTopic>,
    version: i16,
) -> FetchResponse {
    let max_wait =
        Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT_LIMIT);
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let asked = usize::try_from(req.max_bytes)
        .ok()
        .filter(|b| *b > 0)
        .unwrap_or(usize::MAX);
    let max_bytes = asked.min(ctx.config.max_fetch_bytes as usize);
    if asked > max_bytes {
        ctx.metrics
            .limits
            .reached(crate::metrics::limits::Limit::FetchBytes);
    }
    let mut commits = ctx.log.subscribe_commits();
    // Commits of partitions led elsewhere are not announced here: look again periodically.
    let replica_reads = wanted
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|w| w.partition.as_ref().is_ok_and(|p| !p.is_led()));
    loop {
        commits.borrow_and_update();
        let (topics, total, errors) = read_once(ctx, &wanted, max_bytes, version).await;
        if total >= min_bytes.max(1) || errors || tokio::time::Instant::now() >= deadline {
            return FetchResponse::default()
                .with_error_code(NONE)
                .with_session_id(0)
                .with_responses(topics);
        }
        let recheck = if replica_reads {
            (tokio::time::Instant::now() + crate::log::replica::REFRESH_INTERVAL).min(deadline)
        } else {
            deadline
        };
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    return FetchResponse::default().with_responses(topics);
                }
            }
            _ = tokio::time::sleep_until(recheck) => {
                if recheck >= deadline {
                    return FetchResponse::default().with_session_id(0).with_responses(topics);
                }
            }
        }
    }
}

/// One pass over all wanted partitions: (responses, bytes returned, whether any partition
/// has an error that the client must see now).
async fn read_once(
    ctx: &Arc<BrokerCtx>,
    wanted: &[WantedTopic],
    max_bytes: usize,
    version: i16,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let mut topics = Vec::with_capacity(wanted.len());
    for topic in wanted {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for w in &topic.partitions {
            let data = read_partition(ctx, w, max_bytes, &mut total).await;
            errors |= data.error_code != NONE;
            partitions.push(data);
        }
        let response = FetchableTopicResponse::default().with_partitions(partitions);
        topics.push(if version >= 13 {
            response.with_topic_id(topic.topic_id)
        } else {
            response.with_topic(topic.name.clone())
        });
    }
    (topics, total, errors)
}

async fn read_partition(
    ctx: &Arc<BrokerCtx>,
    w: &Wanted,
    max_bytes: usize,
    total: &mut usize,
) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(w.index)
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(Some(Bytes::new()));
    let partition = match &w.partition {
        Ok(p) => p,
        Err(code) => {
            return base
                .with_error_code(*code)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
        }
    };
    let led = partition.is_led();
    if led
        && let Some(rack) = &w.client_rack
        && let Some(replica) = ctx.cluster.read_replica(partition.tp, rack)
    {
        // KIP-392: the consumer reads from a broker in its own rack; no records here.
        let view = partition.read_view(w.fetch_offset, 0);
        return base
            .with_error_code(NONE)
            .with_high_watermark(view.high_watermark)
            .with_last_stable_offset(view.last_stable_offset)
            .with_log_start_offset(view.log_start_offset)
            .with_preferred_read_replica(BrokerId(replica));
    }
    let view = if led {
        partition.read_view(w.fetch_offset, CHUNKS_PER_PARTITION_PASS)
    } else {
        // Led elsewhere: serve the committed log from the metadata store's index.
        match ctx
            .replicas
            .read_view(partition.tp, w.fetch_offset, CHUNKS_PER_PARTITION_PASS)
            .await
        {
            Ok(view) => view,
            Err(err) => {
                tracing::warn!(topic = %partition.topic, partition = w.index, "failed to read a replica view: {err:#}");
                return base
                    .with_error_code(error::code(ResponseError::NotLeaderOrFollower))
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1);
            }
        }
    };
    let base = base
        .with_high_watermark(view.high_watermark)
        .with_last_stable_offset(view.last_stable_offset)
        .with_log_start_offset(view.log_start_offset)
        .with_aborted_transactions(w.read_committed.then(Vec::new));
    // Nothing at or past it is returned.
    let visible_end = if w.read_committed {
        view.last_stable_offset
    } else {
        view.high_watermark
    };
    if w.current_leader_epoch >= 0 && w.current_leader_epoch != view.leader_epoch {
        let code = if w.current_leader_epoch < view.leader_epoch {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        };
        return base.with_error_code(error::code(code));
    }
    if w.fetch_offset < view.log_start_offset || w.fetch_offset > view.high_watermark {
        return base.with_error_code(error::code(ResponseError::OffsetOutOfRange));
    }
    // Cold reads: the spans this fetch needs are read a few at a time (not one GET latency
    // after another), and the spans after them, `--read-ahead-fetches` times as many bytes,
    // are read ahead in the background for the reader's next fetches. Cached spans cost
    // nothing here.
    let serve_bytes = w
        .partition_max_bytes
        .min(max_bytes.saturating_sub(*total))
        .max(1);
    let plan = match plan_spans(ctx, &view.entries, w.fetch_offset, serve_bytes).await {
        Ok(plan) => plan,
        Err((object, err)) => {
            return storage_error(ctx, partition, w.index, led, &object, &err, base);
        }
    };
    ctx.tier.prefetch(&plan.spans[plan.demand..]);
    let mut reads = futures::stream::iter(plan.spans[..plan.demand].to_vec())
        .map(|span| async move { ctx.tier.read_span(&span).await })
        .buffered(DEMAND_READS_MAX);
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut partition_bytes = 0usize;
    let mut last_returned: Option<i64> = None;
    let mut index = 0;
    'chunks: while let Some(result) = reads.next().await {
        let span = &plan.spans[index];
        index += 1;
        let data = match result {
            Ok(data) => data,
            Err(err) => {
                if pieces.is_empty() {
                    return storage_error(ctx, partition, w.index, led, &span.object, &err, base);
                }
                log_read_error(ctx, partition, w.index, led, &span.object, &err);
                break;
            }
        };
        let mut run: Option<std::ops::Range<usize>> = None;
        for item in batch::iter_batches(&data) {
            let Ok((header, range)) = item else {
                // Chunks are verified when decoded; a bad one here is a bug.
                panic!("verified chunk of {} has a bad batch", span.object);
            };
            if header.last_offset() < w.fetch_offset {
                continue;
            }
            if header.base_offset >= visible_end {
                if let Some(run) = run.take() {
                    pieces.push(data.slice(run));
                }
                break 'chunks;
            }
            let len = range.len();
            let fits = partition_bytes + len <= w.partition_max_bytes && *total + len <= max_bytes;
            if !fits && *total > 0 {
                if let Some(run) = run.take() {
                    pieces.push(data.slice(run));
                }
                break 'chunks;
            }
            partition_bytes += len;
            *total += len;
            last_returned = Some(header.last_offset());
            run = Some(match run {
                Some(r) => r.start..range.end,
                None => range,
            });
        }
        if let Some(run) = run {
            pieces.push(data.slice(run));
        }
    }
    let records = match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.pop().expect("one piece"),
        _ => {
            let mut out = BytesMut::with_capacity(partition_bytes);
            for piece in pieces {
                out.extend_from_slice(&piece);
            }
            out.freeze()
        }
    };
    let base = match last_returned {
        Some(last_returned) if w.read_committed => base.with_aborted_transactions(Some(
            aborted_in(&view.aborted, w.fetch_offset, last_returned),
        )),
        _ => base,
    };
    base.with_error_code(NONE).with_records(Some(records))
}

/// The aborted transactions a read_committed client needs for records returned from
/// `fetch_offset` to `last_returned`: those ending at or after the fetch offset and starting
/// at or before the last returned offset (Kafka's `collectAbortedTransactions`).
fn aborted_in(
    candidates: &[strato_metadata::model::AbortedTxnRecord],
    fetch_offset: i64,
    last_returned: i64,
) -> Vec<AbortedTransaction> {
    candidates
        .iter()
        .filter(|a| a.last_offset >= fetch_offset && a.first_offset <= last_returned)
        .map(|a| {
            AbortedTransaction::default()
                .with_producer_id(kafka_protocol::messages::ProducerId(a.producer_id))
                .with_first_offset(a.first_offset)
        })
        .collect()
}

/// The spans of a fetch: `spans[..demand]` hold about `serve_bytes` from the fetch offset on
/// (the fetch reads them), the rest up to `--read-ahead-fetches` times as many bytes more
/// (read ahead).
struct SpanPlan {
    spans: Vec<strato_tiering::Span>,
    demand: usize,
}

async fn plan_spans(
    ctx: &BrokerCtx,
    entries: &[strato_metadata::model::IndexEntry],
    fetch_offset: i64,
    serve_bytes: usize,
) -> Result<SpanPlan, (String, strato_tiering::TieringError)> {
    let ahead_bytes = serve_bytes.saturating_mul(ctx.config.read_ahead_fetches);
    let (mut demand_planned, mut ahead_planned) = (0usize, 0usize);
    let mut plan = SpanPlan {
        spans: Vec::new(),
        demand: 0,
    };
    'entries: for entry in entries {
        let spans = match ctx.tier.spans(entry, fetch_offset).await {
            Ok(spans) => spans,
            // A seek table that cannot be read fails the fetch only when nothing before it
            // can be served.
            Err(err) if plan.spans.is_empty() => return Err((entry.object.clone(), err)),
            Err(err) => {
                tracing::warn!(object = %entry.object, "failed to read a seek table: {err:#}");
                break;
            }
        };
        for span in spans {
            let length = span.uncompressed_length() as usize;
            if demand_planned < serve_bytes {
                demand_planned = demand_planned.saturating_add(length);
                plan.demand += 1;
            } else if ahead_planned < ahead_bytes
                && plan.spans.len() - plan.demand < READ_AHEAD_SPANS_MAX
            {
                ahead_planned = ahead_planned.saturating_add(length);
            } else {
                break 'entries;
            }
            plan.spans.push(span);
        }
    }
    Ok(plan)
}

fn log_read_error(
    ctx: &BrokerCtx,
    partition: &Partition,
    index: i32,
    led: bool,
    object: &str,
    err: &strato_tiering::TieringError,
) {
    if !led && matches!(err, strato_tiering::TieringError::NotFound { .. }) {
        // The replica view is older than a compaction whose old objects are collected
        // already: read the index again next time.
        ctx.replicas.invalidate(partition.tp);
    }
    tracing::error!(
        topic = %partition.topic,
        partition = index,
        object = %object,
        "failed to read chunk: {err:#}"
    );
}

fn storage_error(
    ctx: &BrokerCtx,
    partition: &Partition,
    index: i32,
    led: bool,
    object: &str,
    err: &strato_tiering::TieringError,
    base: PartitionData,
) -> PartitionData {
    log_read_error(ctx, partition, index, led, object, err);
    base.with_error_code(error::code(ResponseError::KafkaStorageError))
}
