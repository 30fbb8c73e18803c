//! What the console shows, as JSON (`/api/v1/...`, docs/API.md): gathered from the broker's
//! handles (cluster view, topic registry, metadata store, tier, group coordinator) and, for
//! messages, read from the stored log through `strato-replay`. The pages render the same
//! values. Nothing here changes state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};
use strato_metadata::keys;
use strato_metadata::model::{IndexEntry, LeaderRecord, PartitionStateRecord, TopicRecord};

use crate::broker::BrokerCtx;
use crate::log::topics::Topic;
use crate::security::Session;
use crate::security::acl::{AclOperation, CLUSTER_RESOURCE_NAME, ResourceType};

/// Most messages one request returns.
pub const MESSAGES_MAX: usize = 500;
/// Messages returned when the request does not say.
pub const MESSAGES_DEFAULT: usize = 50;
/// Most bytes of a key, value or header value shown (longer ones are cut and flagged).
const SHOWN_BYTES_MAX: usize = 64 * 1024;
/// Most partitions one topics listing reads (each is a state read and an index listing).
const PARTITIONS_LISTED_MAX: usize = 2_000;

/// Why an API call failed: HTTP status and message.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self {
            status: 404,
            message: what.into(),
        }
    }

    pub fn bad_request(what: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: what.into(),
        }
    }

    pub(super) fn forbidden(what: impl Into<String>) -> Self {
        Self {
            status: 403,
            message: what.into(),
        }
    }
}

/// Who asks, and what their ACLs let them see (everything with the authorizer off).
pub struct Viewer<'a> {
    pub ctx: &'a BrokerCtx,
    session: &'a Session,
}

impl<'a> Viewer<'a> {
    pub fn new(ctx: &'a BrokerCtx, session: &'a Session) -> Self {
        Self { ctx, session }
    }

    pub(super) fn session(&self) -> &Session {
        self.session
    }

    pub(super) fn check(
        &self,
        operation: AclOperation,
        resource: ResourceType,
        name: &str,
        what: &str,
    ) -> Result<(), ApiError> {
        if self
            .ctx
            .authorizer
            .allows(self.session, operation, resource, name)
        {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "User {} is denied operation {operation:?} on {what}",
                self.session.principal
            )))
        }
    }

    /// DESCRIBE on the cluster: the overview, the bucket, the traffic.
    pub fn cluster_access(&self) -> Result<(), ApiError> {
        self.check(
            AclOperation::Describe,
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
            "the cluster",
        )
    }

    fn topic_access(&self, operation: AclOperation, topic: &str) -> Result<(), ApiError> {
        self.check(
            operation,
            ResourceType::Topic,
            topic,
            &format!("topic {topic}"),
        )
    }

    /// Whether a listing shows `topic` (not logged as a denial, as Metadata's listing).
    fn sees_topic(&self, topic: &str) -> bool {
        self.ctx.authorizer.allows_quietly(
            self.session,
            AclOperation::Describe,
            ResourceType::Topic,
            topic,
        )
    }

    fn sees_group(&self, group: &str) -> bool {
        self.ctx.authorizer.allows_quietly(
            self.session,
            AclOperation::Describe,
            ResourceType::Group,
            group,
        )
    }
}

impl<E: std::error::Error + 'static> From<E> for ApiError {
    fn from(err: E) -> Self {
        Self {
            status: 503,
            message: strato_tiering::error_chain(&err),
        }
    }
}

pub type ApiResult = Result<Value, ApiError>;

/// One partition as the console shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PartitionInfo {
    pub partition: i32,
    /// Broker that leads it (`None`: no leader now).
    pub leader: Option<i32>,
    pub log_start_offset: i64,
    pub end_offset: i64,
    /// Offsets between the log start and the end (compaction may have removed some).
    pub records: i64,
    /// Compressed bytes of its chunks in the bucket.
    pub bytes: u64,
    /// Index entries (chunks) and the distinct objects holding them.
    pub chunks: usize,
    pub objects: usize,
}

fn summarize(
    partition: i32,
    leader: Option<i32>,
    start: i64,
    end: i64,
    entries: &[IndexEntry],
) -> PartitionInfo {
    let objects: BTreeSet<&str> = entries.iter().map(|e| e.object.as_str()).collect();
    PartitionInfo {
        partition,
        leader,
        log_start_offset: start,
        end_offset: end,
        records: (end - start).max(0),
        bytes: entries.iter().map(|e| e.byte_length).sum(),
        chunks: entries.len(),
        objects: objects.len(),
    }
}

/// Partition `p` of `topic`: from memory when this broker leads it, else from the store.
pub async fn partition_info(
    ctx: &BrokerCtx,
    topic: &Topic,
    p: i32,
) -> Result<PartitionInfo, ApiError> {
    if let Some(partition) = topic.partition(p)
        && partition.is_led()
    {
        let state = partition.lock();
        let entries: Vec<IndexEntry> = state.index.values().cloned().collect();
        return Ok(summarize(
            p,
            Some(ctx.broker_id),
            state.log_start_offset,
            state.high_watermark,
            &entries,
        ));
    }
    let state = committed_state(ctx, topic.topic_id, p).await?;
    let leader = leader_of(ctx, topic.topic_id, p).await?;
    let entries = index_entries(ctx, topic.topic_id, p).await?;
    Ok(summarize(
        p,
        leader,
        state.log_start_offset,
        state.high_watermark,
        &entries,
    ))
}

/// The committed state of partition `p` in the metadata store.
async fn committed_state(
    ctx: &BrokerCtx,
    topic_id: uuid::Uuid,
    p: i32,
) -> Result<PartitionStateRecord, ApiError> {
    let key = keys::partition_state(topic_id, p);
    Ok(match ctx.meta.get(&key).await? {
        Some(v) => PartitionStateRecord::decode(&key, &v.value)?,
        None => PartitionStateRecord::empty(),
    })
}

/// The broker whose leader key partition `p` holds, if any.
async fn leader_of(ctx: &BrokerCtx, topic_id: uuid::Uuid, p: i32) -> Result<Option<i32>, ApiError> {
    let key = keys::partition_leader(topic_id, p);
    Ok(match ctx.meta.get(&key).await? {
        Some(v) => Some(LeaderRecord::decode(&key, &v.value)?.broker_id),
        None => None,
    })
}

/// Partition `p`'s index entries in the metadata store, by base offset.
async fn index_entries(
    ctx: &BrokerCtx,
    topic_id: uuid::Uuid,
    p: i32,
) -> Result<Vec<IndexEntry>, ApiError> {
    let mut entries = Vec::new();
    for (key, value) in ctx
        .meta
        .list_all(&keys::partition_index_prefix(topic_id, p))
        .await?
    {
        entries.push(IndexEntry::decode(&key, &value.value)?);
    }
    entries.sort_by_key(|e| e.base_offset);
    Ok(entries)
}

/// The end offset of each partition of `topic`: from memory when led here, else the
/// committed state (no index listing: lag needs no more).
async fn end_offsets(ctx: &BrokerCtx, topic: &Topic) -> Result<Vec<i64>, ApiError> {
    let mut ends = Vec::with_capacity(topic.partitions.len());
    for (p, partition) in (0..).zip(&topic.partitions) {
        ends.push(if partition.is_led() {
            partition.high_watermark()
        } else {
            committed_state(ctx, topic.topic_id, p)
                .await?
                .high_watermark
        });
    }
    Ok(ends)
}

/// End offsets by topic, read once per answer however many groups consume a topic.
type Ends = BTreeMap<String, Vec<i64>>;

fn topic_named(ctx: &BrokerCtx, name: &str) -> Result<Arc<Topic>, ApiError> {
    ctx.topics
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("no topic {name:?}")))
}

/// `/api/v1/cluster`.
pub async fn cluster(viewer: &Viewer<'_>, object_store: Result<(), String>) -> ApiResult {
    viewer.cluster_access()?;
    let ctx = viewer.ctx;
    let metadata = match ctx.meta.get(keys::CLUSTER_ID).await {
        Ok(_) => json!({"ok": true}),
        Err(err) => json!({"ok": false, "error": strato_tiering::error_chain(&err)}),
    };
    let object_store = match object_store {
        Ok(()) => json!({"ok": true}),
        Err(error) => json!({"ok": false, "error": error}),
    };
    // Partitions each broker should lead (balanced over the serving brokers), and
    // those it leads now (its leader keys; the first PARTITIONS_LISTED_MAX partitions).
    let mut owned: BTreeMap<i32, usize> = BTreeMap::new();
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    let mut partitions = 0usize;
    let topics = ctx.topics.all();
    for topic in &topics {
        for partition in &topic.partitions {
            *owned
                .entry(ctx.cluster.partition_owner(partition.tp))
                .or_default() += 1;
            partitions += 1;
            if partitions > PARTITIONS_LISTED_MAX {
                continue;
            }
            let leader = if partition.is_led() {
                Some(ctx.broker_id)
            } else {
                leader_of(ctx, partition.tp.topic_id, partition.tp.partition).await?
            };
            if let Some(leader) = leader {
                *led.entry(leader).or_default() += 1;
            }
        }
    }
    let brokers: Vec<Value> = ctx
        .cluster
        .live()
        .into_iter()
        .map(|(id, b)| {
            json!({
                "id": id,
                "host": b.host,
                "port": b.port,
                "rack": b.rack,
                // `serving`, or `starting` / `draining` (listed, owning nothing).
                "state": match b.state {
                    None => "serving",
                    Some(strato_metadata::model::BrokerState::Starting) => "starting",
                    Some(strato_metadata::model::BrokerState::Draining) => "draining",
                },
                "partitions": owned.get(&id).copied().unwrap_or(0),
                "partitions_led": led.get(&id).copied().unwrap_or(0),
                // Listed brokers are registered under a lease that is alive.
                "lease": "live",
                "this": id == ctx.broker_id,
            })
        })
        .collect();
    Ok(json!({
        "cluster_id": ctx.cluster_id,
        "broker_id": ctx.broker_id,
        "brokers": brokers,
        "topics": topics.len(),
        "partitions": partitions,
        "lease_held": ctx.lease_held.load(std::sync::atomic::Ordering::Relaxed),
        "metadata_store": metadata,
        "object_store": object_store,
    }))
}

fn topic_json(topic: &Topic, partitions: &[PartitionInfo]) -> Value {
    let config =
        |name: &str| crate::topic_config::effective(&topic.config, name).map(str::to_string);
    json!({
        "name": topic.name,
        "topic_id": topic.topic_id.to_string(),
        "partitions": topic.partitions.len(),
        "records": partitions.iter().map(|p| p.records).sum::<i64>(),
        "bytes": partitions.iter().map(|p| p.bytes).sum::<u64>(),
        "chunks": partitions.iter().map(|p| p.chunks).sum::<usize>(),
        "objects": partitions.iter().map(|p| p.objects).sum::<usize>(),
        "cleanup_policy": config("cleanup.policy"),
        "retention_ms": config("retention.ms"),
        "retention_bytes": config("retention.bytes"),
    })
}

/// `/api/v1/topics`.
pub async fn topics(viewer: &Viewer<'_>) -> ApiResult {
    let ctx = viewer.ctx;
    let mut topics: Vec<Arc<Topic>> = ctx
        .topics
        .all()
        .into_iter()
        .filter(|t| viewer.sees_topic(&t.name))
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::with_capacity(topics.len());
    let mut read = 0usize;
    let mut truncated = false;
    for topic in topics {
        if read + topic.partitions.len() > PARTITIONS_LISTED_MAX {
            truncated = true;
            break;
        }
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in 0..topic.partitions.len() as i32 {
            partitions.push(partition_info(ctx, &topic, p).await?);
        }
        read += partitions.len();
        out.push(topic_json(&topic, &partitions));
    }
    Ok(json!({ "topics": out, "truncated": truncated }))
}

/// `/api/v1/topics/{name}`.
pub async fn topic(viewer: &Viewer<'_>, name: &str) -> ApiResult {
    let ctx = viewer.ctx;
    viewer.topic_access(AclOperation::Describe, name)?;
    let topic = topic_named(ctx, name)?;
    let mut partitions = Vec::with_capacity(topic.partitions.len());
    for p in 0..topic.partitions.len() as i32 {
        partitions.push(partition_info(ctx, &topic, p).await?);
    }
    let mut value = topic_json(&topic, &partitions);
    value["partition_details"] = serde_json::to_value(&partitions).expect("plain data");
    let configs: BTreeMap<&str, Option<&str>> = crate::topic_config::all()
        .map(|def| {
            (
                def.name,
                crate::topic_config::effective(&topic.config, def.name),
            )
        })
        .collect();
    value["configs"] = json!(configs);
    value["overrides"] = json!(topic.config);
    Ok(value)
}

/// Where a message listing starts: an offset, or the first record at or after a time.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    Offset(i64),
    Timestamp(i64),
    /// The last `limit` records.
    Latest,
}

/// `/api/v1/topics/{name}/partitions/{p}/messages`: committed records read from the log
/// (cache or bucket) with `strato-replay`, at most `limit` (≤ [`MESSAGES_MAX`]).
pub async fn messages(
    viewer: &Viewer<'_>,
    name: &str,
    partition: i32,
    from: Start,
    limit: usize,
) -> ApiResult {
    let ctx = viewer.ctx;
    viewer.topic_access(AclOperation::Read, name)?;
    let topic = topic_named(ctx, name)?;
    if !(0..topic.partitions.len() as i32).contains(&partition) {
        return Err(ApiError::not_found(format!(
            "topic {name:?} has no partition {partition}"
        )));
    }
    let limit = limit.clamp(1, MESSAGES_MAX);
    let key = keys::topic(name);
    let record = match ctx.meta.get(&key).await? {
        Some(v) => TopicRecord::decode(&key, &v.value)?,
        None => return Err(ApiError::not_found(format!("no topic {name:?}"))),
    };
    let options = strato_replay::ReplayOptions {
        read_ahead_spans: 2,
        read_committed: false,
        ..Default::default()
    };
    let replay =
        strato_replay::Replay::with_tier(ctx.meta.clone(), ctx.tier.clone(), record, options);
    let snapshot = replay.snapshot(partition).await.map_err(replay_error)?;
    let start = match from {
        Start::Offset(offset) => offset.max(snapshot.log_start_offset),
        Start::Timestamp(ts) => replay
            .offset_for_time(&snapshot, ts)
            .await
            .map_err(replay_error)?,
        Start::Latest => (snapshot.end - limit as i64).max(snapshot.log_start_offset),
    };
    let mut reader = replay.read(&snapshot, start, snapshot.end);
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(records) = reader.next_records().await.map_err(replay_error)? else {
            break;
        };
        out.extend(records.iter().take(limit - out.len()).map(message_json));
    }
    let next = out
        .last()
        .and_then(|m| m["offset"].as_i64())
        .map_or(start, |o| o + 1);
    Ok(json!({
        "topic": name,
        "partition": partition,
        "log_start_offset": snapshot.log_start_offset,
        "end_offset": snapshot.end,
        "messages": out,
        "next_offset": (next < snapshot.end).then_some(next),
    }))
}

fn replay_error(err: strato_replay::ReplayError) -> ApiError {
    ApiError {
        status: 503,
        message: err.to_string(),
    }
}

fn message_json(record: &strato_replay::Record) -> Value {
    json!({
        "offset": record.offset,
        "timestamp": record.timestamp,
        "timestamp_type": match record.timestamp_type {
            strato_replay::TimestampType::CreateTime => "create",
            strato_replay::TimestampType::LogAppendTime => "log_append",
        },
        "key": shown(record.key.as_deref()),
        "value": shown(record.value.as_deref()),
        "headers": record.headers.iter().map(|h| json!({
            "name": String::from_utf8_lossy(&h.name),
            "value": shown(h.value.as_deref()),
        })).collect::<Vec<Value>>(),
    })
}

/// Bytes as a person reads them: JSON pretty-printed, text, or hex for binary; `null` when
/// absent; at most [`SHOWN_BYTES_MAX`] bytes (`truncated` says when cut).
pub fn shown(bytes: Option<&[u8]>) -> Value {
    let Some(bytes) = bytes else {
        return Value::Null;
    };
    let truncated = bytes.len() > SHOWN_BYTES_MAX;
    let cut = &bytes[..bytes.len().min(SHOWN_BYTES_MAX)];
    let (format, text) = match std::str::from_utf8(cut) {
        Ok(text) => match serde_json::from_str::<Value>(text) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) if !truncated => (
                "json",
                serde_json::to_string_pretty(&parsed).expect("a parsed value prints"),
            ),
            _ => ("text", text.to_string()),
        },
        Err(_) => (
            "hex",
            cut.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        ),
    };
    json!({
        "format": format,
        "text": text,
        "bytes": bytes.len(),
        "truncated": truncated,
    })
}

/// Committed offsets of a group joined with the partitions' end offsets: per partition the
/// lag, and the total.
async fn group_offsets(
    viewer: &Viewer<'_>,
    group: &str,
    ends: &mut Ends,
) -> Result<(Vec<Value>, i64), ApiError> {
    // Offsets of topics the viewer may not see are left out (as OffsetFetch does).
    lag_rows(viewer.ctx, group, |topic| viewer.sees_topic(topic), ends).await
}

/// A group's total lag (every topic), for the lag history (`samples.rs`).
pub async fn group_lag(ctx: &BrokerCtx, group: &str) -> Result<i64, ApiError> {
    Ok(lag_rows(ctx, group, |_| true, &mut Ends::new()).await?.1)
}

async fn lag_rows(
    ctx: &BrokerCtx,
    group: &str,
    shown: impl Fn(&str) -> bool,
    ends: &mut Ends,
) -> Result<(Vec<Value>, i64), ApiError> {
    let mut committed = ctx.groups.offsets().fetch_all(group).await?;
    committed.retain(|(topic, _), _| shown(topic));
    let names: BTreeSet<&str> = committed.keys().map(|(t, _)| t.as_str()).collect();
    for name in names {
        if !ends.contains_key(name)
            && let Some(topic) = ctx.topics.get(name)
        {
            ends.insert(name.to_string(), end_offsets(ctx, &topic).await?);
        }
    }
    let mut total = 0i64;
    let rows = committed
        .iter()
        .map(|((topic, partition), record)| {
            let end = ends
                .get(topic)
                .and_then(|e| e.get(usize::try_from(*partition).ok()?))
                .copied();
            let lag = end.map(|end| (end - record.offset).max(0));
            total += lag.unwrap_or(0);
            json!({
                "topic": topic,
                "partition": partition,
                "committed_offset": record.offset,
                "end_offset": end,
                "lag": lag,
                "metadata": record.metadata,
            })
        })
        .collect();
    Ok((rows, total))
}

/// `/api/v1/groups`.
pub async fn groups(viewer: &Viewer<'_>) -> ApiResult {
    let ctx = viewer.ctx;
    let active = ctx.groups.active_groups();
    let mut out = Vec::new();
    let mut ends = Ends::new();
    for (group, protocol_type) in ctx.groups.offsets().list_groups().await? {
        if !viewer.sees_group(&group) {
            continue;
        }
        let coordinator = ctx.cluster.group_owner(&group);
        let state = active
            .get(&group)
            .map(|(state, _)| format!("{state:?}"))
            .or_else(|| (coordinator == ctx.broker_id).then(|| "Empty".to_string()));
        let (_, lag) = group_offsets(viewer, &group, &mut ends).await?;
        out.push(json!({
            "group_id": group,
            "protocol_type": protocol_type,
            "coordinator": coordinator,
            "state": state,
            "lag": lag,
        }));
    }
    Ok(json!({ "groups": out }))
}

/// `/api/v1/groups/{id}`.
pub async fn group(viewer: &Viewer<'_>, id: &str) -> ApiResult {
    let ctx = viewer.ctx;
    viewer.check(
        AclOperation::Describe,
        ResourceType::Group,
        id,
        &format!("group {id}"),
    )?;
    let stored = ctx.groups.offsets().stored_group(id).await?;
    let summary = ctx.groups.summary(id);
    if stored.is_none() && summary.is_none() {
        return Err(ApiError::not_found(format!("no group {id:?}")));
    }
    let coordinator = ctx.cluster.group_owner(id);
    let (offsets, lag) = group_offsets(viewer, id, &mut Ends::new()).await?;
    let members: Option<Vec<Value>> = summary.as_ref().map(|s| {
        s.members
            .iter()
            .map(|m| {
                json!({
                    "member_id": m.member_id,
                    "group_instance_id": m.group_instance_id,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "assignment": assignment_json(&m.assignment),
                })
            })
            .collect()
    });
    let state = match &summary {
        Some(s) => Some(format!("{:?}", s.state)),
        None if coordinator == ctx.broker_id => Some("Empty".to_string()),
        None => None,
    };
    Ok(json!({
        "group_id": id,
        "coordinator": coordinator,
        "state": state,
        "protocol_type": summary.as_ref().map(|s| s.protocol_type.clone()).or(stored),
        "protocol": summary.as_ref().map(|s| s.protocol_name.clone()),
        // Members live in the coordinator's memory: another broker's are not shown here.
        "members": members,
        "offsets": offsets,
        "lag": lag,
    }))
}

/// A consumer member's assignment (ConsumerProtocolAssignment): topic -> partitions;
/// `null` for other protocols or bytes that do not decode.
fn assignment_json(bytes: &[u8]) -> Value {
    use kafka_protocol::messages::ConsumerProtocolAssignment;
    use kafka_protocol::protocol::Decodable;
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    if buf.len() < 2 {
        return Value::Null;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(assignment) => {
            let topics: BTreeMap<String, Vec<i32>> = assignment
                .assigned_partitions
                .iter()
                .map(|t| (t.topic.to_string(), t.partitions.clone()))
                .collect();
            json!(topics)
        }
        Err(_) => Value::Null,
    }
}

/// `/api/v1/bucket`: what the index refers to in the object store, per topic, and the
/// background work waiting (compaction runs, collection passes).
pub async fn bucket(viewer: &Viewer<'_>) -> ApiResult {
    viewer.cluster_access()?;
    let ctx = viewer.ctx;
    let mut topics = ctx.topics.all();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rows = Vec::new();
    let mut all_objects: BTreeSet<String> = BTreeSet::new();
    let mut total_bytes = 0u64;
    let mut total_chunks = 0usize;
    for topic in topics.iter().take(PARTITIONS_LISTED_MAX) {
        let mut bytes = 0u64;
        let mut chunks = 0usize;
        let mut objects: BTreeSet<String> = BTreeSet::new();
        let mut backlog = 0usize;
        for p in 0..topic.partitions.len() as i32 {
            let entries = index_entries(ctx, topic.topic_id, p).await?;
            backlog += crate::log::compaction::backlog(
                &entries,
                crate::log::compaction::MergeLimits::of(
                    ctx.config.compaction_target_bytes,
                    &topic.config,
                ),
            )
            .0;
            bytes += entries.iter().map(|e| e.byte_length).sum::<u64>();
            chunks += entries.len();
            objects.extend(entries.into_iter().map(|e| e.object));
        }
        total_bytes += bytes;
        total_chunks += chunks;
        rows.push(json!({
            "topic": topic.name,
            "bytes": bytes,
            "chunks": chunks,
            "objects": objects.len(),
            "compaction_backlog_chunks": backlog,
        }));
        all_objects.extend(objects);
    }
    let stats = ctx.tier.stats();
    Ok(json!({
        "object_store": ctx.config.object_store_url,
        "bytes": total_bytes,
        "chunks": total_chunks,
        "objects": all_objects.len(),
        "topics": rows,
        "gc": {
            "passes": ctx.gc.passes.load(std::sync::atomic::Ordering::Relaxed),
            "deleted_objects": ctx.gc.deleted.load(std::sync::atomic::Ordering::Relaxed),
            "waiting_objects": ctx.gc.waiting.load(std::sync::atomic::Ordering::Relaxed),
            "grace_ms": ctx.config.gc_grace.as_millis() as u64,
        },
        "requests": {
            "gets": stats.gets,
            "puts": stats.puts,
            "deletes": stats.deletes,
            "get_bytes": stats.get_bytes,
            "put_bytes": stats.put_bytes,
        },
    }))
}
