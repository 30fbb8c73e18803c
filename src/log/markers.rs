//! Transaction markers written by partition leaders (RFC 001). A transaction coordinator
//! that ends a transaction puts one request per partition, `txn-markers/<topic_id>/<p>/<producer
//! id>` (`TxnMarkerRecord`); the partition's leader appends the marker (a control batch)
//! through the normal write path — offset assigned under the partition lock, after everything
//! admitted before it, into the open segment — and the flush that commits it deletes the
//! request in the same fenced transaction (`flush.rs`), with the producer's transaction ended
//! and, for an abort, the partition's aborted entry. So a marker is written exactly once
//! whatever crashes or leadership moves happen: a request whose commit failed is still in
//! the store, and whoever leads next writes it.
//!
//! Every broker watches `txn-markers/` (a full listing when the watch starts or reports
//! missed events) and lists a partition's requests when it takes the partition's leadership.
//! Requests wait in a bounded queue ([`MARKERS_QUEUED_MAX`]; when it overflows, the prefix
//! is listed again once it has drained) and are written in rounds: each request's key is
//! read again just before its marker is appended, and a round waits for its markers'
//! commits before the next starts, so a request already written is never written twice.
//! A request for a topic or partition that does not exist is deleted by the partition's
//! rendezvous owner. `flush::replay` is what the flusher does with a partition's markers
//! before their commit.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use strato_metadata::model::{TopicPartition, TopicRecord, TxnMarkerRecord};
use strato_metadata::{MetadataError, Txn, WatchEvent, keys};
use strato_tiering::batch::{TxnMarker, build_marker_batch};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::flush::{FlushFailure, LogWriter, PendingBatch, PendingMarker, now_ms};
use super::partition::{MARKERS_PENDING_MAX, Partition};
use crate::log::LogTasks;

/// Marker requests queued on one broker; more are dropped and found again by listing the
/// prefix once the queue has drained.
pub const MARKERS_QUEUED_MAX: usize = 10_000;
/// Requests handled per round (their keys read, their markers appended, their commits
/// awaited).
const MARKERS_PER_ROUND_MAX: usize = 1_000;
/// Requests of a round whose keys are read at once.
const MARKER_READS_CONCURRENCY: usize = 16;
/// Wait before a round retries requests that could not be written (a partition reloading
/// its state, a failed flush, too many markers in flight).
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Wait before watching `txn-markers/` again after the watch failed.
const WATCH_RETRY: Duration = Duration::from_secs(1);
/// Size of a marker batch, reserved from the unflushed bytes like a produce.
pub(crate) const MARKER_BATCH_BYTES: usize = 128;

/// One marker to write: partition and producer (the key of its request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct MarkerRequest {
    tp: TopicPartition,
    producer_id: i64,
}

impl MarkerRequest {
    /// Parses `txn-markers/<topic_id>/<p>/<producer id>`.
    fn from_key(key: &str) -> Option<Self> {
        let mut parts = key.strip_prefix(keys::TXN_MARKERS_PREFIX)?.split('/');
        let topic_id = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        let producer_id = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            tp: TopicPartition {
                topic_id,
                partition,
            },
            producer_id,
        })
    }

    fn key(&self) -> String {
        keys::txn_marker(self.tp.topic_id, self.tp.partition, self.producer_id)
    }
}

/// Requests waiting for the writer (a set: the same request seen twice is written once).
#[derive(Default)]
struct Queue {
    requests: Mutex<BTreeSet<MarkerRequest>>,
    /// Something was queued.
    wake: Notify,
    /// A request was dropped for want of room: list the prefix again after draining.
    overflowed: AtomicBool,
    /// The writer drained an overflowed queue: the watcher lists the prefix again.
    rescan: Notify,
}

impl Queue {
    fn push(&self, request: MarkerRequest) {
        {
            let mut requests = self.requests.lock().expect("marker queue lock");
            if requests.len() >= MARKERS_QUEUED_MAX && !requests.contains(&request) {
                self.overflowed.store(true, Ordering::Release);
                return;
            }
            requests.insert(request);
        }
        self.wake.notify_one();
    }

    /// Up to [`MARKERS_PER_ROUND_MAX`] requests, removed from the queue.
    fn take_round(&self) -> Vec<MarkerRequest> {
        let mut requests = self.requests.lock().expect("marker queue lock");
        let mut round = Vec::with_capacity(requests.len().min(MARKERS_PER_ROUND_MAX));
        while round.len() < MARKERS_PER_ROUND_MAX {
            let Some(request) = requests.pop_first() else {
                break;
            };
            round.push(request);
        }
        if requests.is_empty() && self.overflowed.swap(false, Ordering::AcqRel) {
            self.rescan.notify_one();
        }
        round
    }
}

/// Writes the markers requested for partitions this broker leads, until `shutdown`.
pub async fn run(ctx: std::sync::Arc<LogTasks>, shutdown: CancellationToken) {
    let queue = Queue::default();
    tokio::join!(
        watch_requests(&ctx, &queue, &shutdown),
        write_markers(&ctx, &queue, &shutdown),
    );
}

/// Whether this broker handles `request`: it leads the partition, or it owns the partition
/// by rendezvous hashing and does not know it (a request to delete if the partition does not
/// exist).
fn is_mine(ctx: &LogTasks, request: &MarkerRequest) -> bool {
    match ctx
        .topics
        .get_by_id(request.tp.topic_id)
        .and_then(|t| t.partition(request.tp.partition))
    {
        Some(partition) => partition.is_led(),
        None => ctx.cluster.partition_owner(request.tp) == ctx.broker_id,
    }
}

/// Queues every request under `prefix` that this broker handles.
async fn scan(ctx: &LogTasks, queue: &Queue, prefix: &str) -> Result<(), MetadataError> {
    ctx.meta
        .for_each(prefix, None, &mut |key, _| {
            match MarkerRequest::from_key(key) {
                Some(request) if is_mine(ctx, &request) => queue.push(request),
                Some(_) => {}
                None => tracing::warn!(%key, "ignoring a malformed marker request key"),
            }
            Ok(())
        })
        .await
}

/// Follows `txn-markers/` and this broker's leadership changes, queueing the requests of
/// partitions it leads.
async fn watch_requests(ctx: &LogTasks, queue: &Queue, shutdown: &CancellationToken) {
    let mut leadership = ctx.topics.subscribe_leadership();
    // Partitions whose requests were listed, with the leader epoch they were listed at.
    let mut listed: HashMap<TopicPartition, i32> = HashMap::new();
    loop {
        let mut events = match ctx.meta.watch(keys::TXN_MARKERS_PREFIX).await {
            Ok(events) => events,
            Err(err) => {
                tracing::warn!("failed to watch transaction marker requests: {err:#}");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_RETRY) => continue,
                }
            }
        };
        // Listed after the watch started, so no request falls between the two.
        let mut full_scan_due = true;
        let mut acquired_due = true;
        loop {
            if full_scan_due {
                // Partitions led during the whole listing need no listing of their own.
                let led_before = led_partitions(ctx);
                full_scan_due = match scan(ctx, queue, keys::TXN_MARKERS_PREFIX).await {
                    Ok(()) => {
                        listed.extend(led_before);
                        false
                    }
                    Err(err) => {
                        tracing::warn!("failed to list transaction marker requests: {err:#}");
                        true
                    }
                };
            }
            if acquired_due {
                acquired_due = list_acquired(ctx, queue, &mut listed).await;
            }
            let retry = full_scan_due || acquired_due;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = leadership.changed() => match changed {
                    Ok(()) => acquired_due = true,
                    Err(_) => return,
                },
                _ = queue.rescan.notified() => full_scan_due = true,
                _ = tokio::time::sleep(WATCH_RETRY), if retry => {}
                event = events.recv() => match event {
                    None => break,
                    Some(WatchEvent::Put { key, .. }) => match MarkerRequest::from_key(&key) {
                        Some(request) if is_mine(ctx, &request) => queue.push(request),
                        Some(_) => {}
                        None => tracing::warn!(%key, "ignoring a malformed marker request key"),
                    },
                    // Written (by a leader) or withdrawn: nothing to do.
                    Some(WatchEvent::Delete { .. }) => {}
                    Some(WatchEvent::Resync) => full_scan_due = true,
                },
            }
        }
    }
}

/// The partitions this broker leads, with their leader epochs (a new epoch is a new
/// leadership, whose requests are listed again).
fn led_partitions(ctx: &LogTasks) -> HashMap<TopicPartition, i32> {
    let mut led = HashMap::new();
    for topic in ctx.topics.all() {
        for partition in &topic.partitions {
            let state = partition.lock();
            if !state.fenced {
                led.insert(partition.tp, state.leader_epoch);
            }
        }
    }
    led
}

/// Lists the requests of partitions this broker leads that were not listed since it took
/// them (at their current leader epoch); forgets the others. `true` if a listing failed (to
/// be tried again).
async fn list_acquired(
    ctx: &LogTasks,
    queue: &Queue,
    listed: &mut HashMap<TopicPartition, i32>,
) -> bool {
    let led = led_partitions(ctx);
    listed.retain(|tp, epoch| led.get(tp) == Some(epoch));
    let mut failed = false;
    for (tp, epoch) in led {
        if listed.contains_key(&tp) {
            continue;
        }
        match scan(
            ctx,
            queue,
            &keys::txn_markers_of_partition(tp.topic_id, tp.partition),
        )
        .await
        {
            Ok(()) => {
                listed.insert(tp, epoch);
            }
            Err(err) => {
                tracing::warn!(topic_id = %tp.topic_id, partition = tp.partition, "failed to list transaction marker requests: {err:#}");
                failed = true;
            }
        }
    }
    failed
}

/// Writes queued requests in rounds until `shutdown`.
async fn write_markers(ctx: &LogTasks, queue: &Queue, shutdown: &CancellationToken) {
    loop {
        let round = queue.take_round();
        if round.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = queue.wake.notified() => continue,
            }
        }
        let retry = write_round(ctx, round).await;
        if retry.is_empty() {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(MARKER_RETRY_BACKOFF) => {}
        }
        for request in retry {
            if is_mine(ctx, &request) {
                queue.push(request);
            }
        }
    }
}

/// What became of one request in a round.
pub(crate) enum Step {
    /// Nothing (more) to do here: written already, withdrawn, or another broker's.
    Done,
    /// Try again in a later round.
    Retry,
    /// Appended: the flush answers.
    Appended(oneshot::Receiver<Result<(), FlushFailure>>),
}

/// Appends the markers of `round` and waits for their commits; returns the requests to try
/// again.
async fn write_round(ctx: &LogTasks, round: Vec<MarkerRequest>) -> Vec<MarkerRequest> {
    let steps: Vec<(MarkerRequest, Step)> = futures::stream::iter(round)
        .map(|request| async move { (request, prepare(ctx, request).await) })
        .buffer_unordered(MARKER_READS_CONCURRENCY)
        .collect()
        .await;
    let mut retry = Vec::new();
    for (request, step) in steps {
        match step {
            Step::Done => {}
            Step::Retry => retry.push(request),
            // Every pending batch is answered by its flush (or dropped at shutdown).
            Step::Appended(done) => match done.await {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => {
                    tracing::debug!(?request, "marker not committed ({failure}); retrying");
                    retry.push(request);
                }
                Err(_) => retry.push(request),
            },
        }
    }
    retry
}

/// Reads `request` again and appends its marker if it is still there and the partition is
/// led here.
async fn prepare(ctx: &LogTasks, request: MarkerRequest) -> Step {
    let Some(partition) = ctx
        .topics
        .get_by_id(request.tp.topic_id)
        .and_then(|t| t.partition(request.tp.partition))
    else {
        return delete_if_unknown(ctx, request).await;
    };
    if !partition.is_led() {
        // Its leader writes it (a new leader lists the requests of what it takes).
        return Step::Done;
    }
    let key = request.key();
    let record = match ctx.meta.get(&key).await {
        Ok(Some(value)) => match TxnMarkerRecord::decode(&key, &value.value) {
            Ok(record) => record,
            Err(err) => {
                tracing::error!(%key, "ignoring a corrupt marker request: {err:#}");
                return Step::Done;
            }
        },
        Ok(None) => return Step::Done,
        Err(err) => {
            tracing::warn!(%key, "failed to read a marker request: {err:#}");
            return Step::Retry;
        }
    };
    if record.producer_id != request.producer_id {
        tracing::error!(%key, producer_id = record.producer_id, "ignoring a marker request for another producer than its key");
        return Step::Done;
    }
    let Ok(permit) = ctx.log.reserve(MARKER_BATCH_BYTES).await else {
        return Step::Done; // shutting down
    };
    append_marker(&ctx.log, &partition, &record, permit)
}

/// Appends the marker of `record` to `partition`'s log under its lock: the offset after
/// everything admitted before, the producer's transaction ended in the pending producer
/// states (the flush does the same to the committed ones).
pub(crate) fn append_marker(
    log: &LogWriter,
    partition: &std::sync::Arc<Partition>,
    record: &TxnMarkerRecord,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Step {
    let mut state = partition.lock();
    if state.fenced {
        return Step::Done;
    }
    if state.needs_reload || state.pending_markers.len() >= MARKERS_PENDING_MAX {
        return Step::Retry;
    }
    if state.pending_markers.contains(&record.producer_id) {
        // In flight from an earlier round that gave up waiting; its flush decides.
        return Step::Retry;
    }
    let marker = TxnMarker {
        producer_id: record.producer_id,
        producer_epoch: record.producer_epoch,
        commit: record.commit,
        coordinator_epoch: record.coordinator_epoch,
    };
    let offset = state.next_offset;
    let now_ms = now_ms();
    let bytes = build_marker_batch(&marker, offset, state.leader_epoch, now_ms);
    let (done, answer) = oneshot::channel();
    let pending = PendingBatch {
        partition: partition.clone(),
        base_offset: offset,
        last_offset: offset,
        producer: None,
        marker: Some(PendingMarker {
            producer_id: record.producer_id,
            producer_epoch: record.producer_epoch,
            commit: record.commit,
        }),
        done: Some(done),
        permit,
        rewinds: state.rewinds,
    };
    if log.append_locked(pending, &bytes, |_| {}).is_err() {
        return Step::Done; // shutting down: the next leader writes it
    }
    state.next_offset = offset + 1;
    state
        .producers
        .end_txn(record.producer_id, record.producer_epoch, now_ms);
    state.forget_txn_verification(record.producer_id);
    state.pending_markers.insert(record.producer_id);
    tracing::debug!(
        topic = %partition.topic,
        partition = partition.tp.partition,
        producer_id = record.producer_id,
        commit = record.commit,
        offset,
        "transaction marker appended"
    );
    Step::Appended(answer)
}

/// A request for a partition this broker does not know: deleted by the partition's
/// rendezvous owner if the store has no such topic or partition (deleted, or never there);
/// left alone if the topic exists (not loaded here yet: its leader lists the request).
async fn delete_if_unknown(ctx: &LogTasks, request: MarkerRequest) -> Step {
    if ctx.cluster.partition_owner(request.tp) != ctx.broker_id {
        return Step::Done;
    }
    let mut partitions = None;
    let found = ctx
        .meta
        .for_each(keys::TOPICS_PREFIX, None, &mut |key, value| {
            let record = TopicRecord::decode(key, &value.value)?;
            if record.topic_id == request.tp.topic_id {
                partitions = Some(record.partitions);
            }
            Ok(())
        })
        .await;
    if let Err(err) = found {
        tracing::warn!("failed to read topics: {err:#}");
        return Step::Retry;
    }
    if partitions.is_some_and(|n| (0..n).contains(&request.tp.partition)) {
        return Step::Done;
    }
    let key = request.key();
    match ctx.meta.txn(Txn::new().delete(&key)).await {
        Ok(_) => {
            tracing::info!(%key, "deleted a marker request for a partition that does not exist");
            Step::Done
        }
        Err(err) => {
            tracing::warn!(%key, "failed to delete a marker request: {err:#}");
            Step::Retry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_round_trip_and_junk_is_refused() {
        let request = MarkerRequest {
            tp: TopicPartition {
                topic_id: uuid::Uuid::from_u128(42),
                partition: 3,
            },
            producer_id: 9_000,
        };
        assert_eq!(MarkerRequest::from_key(&request.key()), Some(request));
        for junk in [
            "txn-markers/",
            "txn-markers/not-a-uuid/0/1",
            "txn-markers/00000000-0000-0000-0000-00000000002a/0",
            "txn-markers/00000000-0000-0000-0000-00000000002a/0/1/extra",
            "txn-markers/00000000-0000-0000-0000-00000000002a/x/1",
            "txns/00000000-0000-0000-0000-00000000002a/0/1",
        ] {
            assert_eq!(MarkerRequest::from_key(junk), None, "{junk}");
        }
    }

    #[test]
    fn the_queue_is_a_bounded_set_and_asks_for_a_rescan_after_overflowing() {
        let queue = Queue::default();
        let request = |producer_id| MarkerRequest {
            tp: TopicPartition {
                topic_id: uuid::Uuid::nil(),
                partition: 0,
            },
            producer_id,
        };
        queue.push(request(1));
        queue.push(request(1));
        assert_eq!(queue.take_round(), vec![request(1)]);
        for id in 0..MARKERS_QUEUED_MAX as i64 + 5 {
            queue.push(request(id));
        }
        assert!(queue.overflowed.load(Ordering::Acquire));
        let mut taken = 0;
        loop {
            let round = queue.take_round();
            if round.is_empty() {
                break;
            }
            assert!(round.len() <= MARKERS_PER_ROUND_MAX);
            taken += round.len();
        }
        assert_eq!(taken, MARKERS_QUEUED_MAX);
        assert!(
            !queue.overflowed.load(Ordering::Acquire),
            "a rescan was asked for"
        );
    }
}
