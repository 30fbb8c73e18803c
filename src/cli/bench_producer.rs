//! The load benchmarks' producer, modelled on librdkafka's: the application appends records
//! to per-partition queues (round robin over the partitions, at `--rate` or as fast as the
//! queues take them), and one sender per partition leader — one connection each — takes a
//! batch of up to `--batch-bytes` from every partition that is ready (a full batch, its
//! oldest record older than `--linger-ms`, or the end of the run) into one Produce request,
//! with up to `--in-flight` requests on the wire. With `--idempotent` the producer has an id
//! (InitProducerId) and each partition's batches carry consecutive sequence numbers.
//!
//! A record's latency runs from its append (librdkafka's `produce()` call) to the arrival of
//! the response that acknowledged it (with acks=0, to when its request was written). Memory
//! is bounded by `--queue-records` (the application waits when the queues are full) and the
//! in-flight limit. A failed request (broken connection, timeout) fails the run; a partition
//! error counts its records as errors.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::bench_common::{Throughput, bench_values, compression, now_ms, progress_bar};
use super::bench_latency::LatencyHistogram;
use super::bench_pipeline::{PendingResponse, Pipeline};
use super::kafka_client::{ClientError, ClientOptions, Connection, ErrorCode};
use super::record_api::{self, OutRecord, ProducerStamp};
use crate::config::bench::{BENCH_E2E_STAMP_BYTES, BenchAcks, BenchProducerConfig};

/// Bytes a record adds to its value inside a batch, at most: length (5), attributes (1),
/// timestamp delta (1: one timestamp per batch), offset delta (5), key length (1), value
/// length (3 up to 512 KiB), header count (1) — varints of record batch v2 (KIP-98).
const RECORD_OVERHEAD_BYTES: usize = 17;
/// Records per batch at most: librdkafka's `batch.num.messages` default.
const BATCH_RECORDS_MAX: usize = 10_000;
/// Bytes of queued record values at most: librdkafka's `queue.buffering.max.kbytes`
/// default (1048576 KiB).
const QUEUE_BYTES_MAX: usize = 1 << 30;
/// Distinct values the application cycles through, at least: several per batch, so a batch
/// never repeats a value (compression sees what a real batch holds).
const VALUE_POOL_RECORDS_MIN: usize = 16;
/// At most: values are shared, so tiny records need no more variety than this.
const VALUE_POOL_RECORDS_MAX: usize = 1 << 16;
/// `transaction_timeout_ms` of InitProducerId (unused without a transactional id).
const INIT_PRODUCER_ID_TIMEOUT_MS: i32 = 60_000;

/// Where the records go: the topic's partitions and their leaders' addresses.
pub(super) struct ProduceTarget<'a> {
    pub(super) topic: &'a str,
    pub(super) leaders: &'a BTreeMap<i32, String>,
}

/// The values the application produces: a pool of `--record-bytes` values cycled through;
/// `bench e2e` overwrites the first 8 bytes of each with its send time.
#[derive(Debug, Clone)]
pub(super) struct ValueSource {
    pool: Arc<Vec<Bytes>>,
    /// Stamps each value with the nanoseconds between this instant and its append.
    stamp_epoch: Option<Instant>,
}

impl ValueSource {
    pub(super) fn new(config: &BenchProducerConfig, stamp_epoch: Option<Instant>) -> Self {
        let per_batch = config.batch_bytes / config.record_bytes;
        let records = (2 * per_batch + 1).clamp(VALUE_POOL_RECORDS_MIN, VALUE_POOL_RECORDS_MAX);
        let pool = bench_values(0, records as u64, config.record_bytes);
        Self {
            pool: Arc::new(pool),
            stamp_epoch,
        }
    }

    fn value(&self, idx: u64, now: Instant) -> Bytes {
        let value = &self.pool[(idx % self.pool.len() as u64) as usize];
        match self.stamp_epoch {
            None => value.clone(),
            Some(epoch) => {
                let mut stamped = BytesMut::from(&value[..]);
                let nanos = u64::try_from((now - epoch).as_nanos()).unwrap_or(u64::MAX);
                stamped[..BENCH_E2E_STAMP_BYTES].copy_from_slice(&nanos.to_be_bytes());
                stamped.freeze()
            }
        }
    }
}

/// The send time a `bench e2e` value carries, as an offset from the epoch it was stamped
/// against.
pub(super) fn value_stamp(value: &[u8]) -> Option<Duration> {
    let stamp: [u8; BENCH_E2E_STAMP_BYTES] = value.get(..BENCH_E2E_STAMP_BYTES)?.try_into().ok()?;
    Some(Duration::from_nanos(u64::from_be_bytes(stamp)))
}

/// What a producer run did.
#[derive(Debug, Clone, Default)]
pub(super) struct ProduceOutcome {
    /// Records the application appended.
    pub(super) records_produced: u64,
    /// Acknowledged records, their value bytes and batch bytes, from the first append to the
    /// last acknowledgement.
    pub(super) acked: Throughput,
    /// Records whose partition answered with an error.
    pub(super) errors: u64,
    pub(super) error_codes: BTreeMap<String, u64>,
    pub(super) requests: u64,
    pub(super) batches: u64,
    /// Append to acknowledgement, per acknowledged record.
    pub(super) latency: LatencyHistogram,
    /// Request written to response read, per answered Produce request (librdkafka's `rtt`):
    /// the broker's part of `latency`, without the time records waited in the queue.
    pub(super) request_latency: LatencyHistogram,
}

impl ProduceOutcome {
    fn merge(&mut self, other: SenderTotals) {
        self.acked.records += other.records_acked;
        self.acked.value_bytes += other.value_bytes_acked;
        self.acked.wire_bytes += other.wire_bytes_acked;
        self.errors += other.errors;
        for (code, count) in other.error_codes {
            *self.error_codes.entry(code).or_default() += count;
        }
        self.requests += other.requests;
        self.batches += other.batches;
        self.latency.merge(&other.latency);
        self.request_latency.merge(&other.request_latency);
    }
}

/// Produces `records` records to `target` as `config` says; returns what happened.
pub(super) async fn produce(
    target: &ProduceTarget<'_>,
    config: &BenchProducerConfig,
    values: ValueSource,
    records: u64,
    options: &ClientOptions,
) -> anyhow::Result<ProduceOutcome> {
    let routes = route_partitions(target.leaders);
    if routes.route.is_empty() {
        bail!("topic {} has no partitions", target.topic);
    }
    let mut leaders = Vec::with_capacity(routes.leaders.len());
    let mut connections = Vec::with_capacity(routes.leaders.len());
    for (addr, partitions) in &routes.leaders {
        let connection = Connection::connect(addr, options.clone())
            .await
            .with_context(|| format!("connect to the leader at {addr}"))?;
        connections.push(connection);
        leaders.push(Arc::new(LeaderQueues::new(addr, partitions)));
    }

    let stamp = if config.idempotent {
        init_producer_id(&mut connections[0], options).await?
    } else {
        ProducerStamp::NONE
    };
    let queue_records = config
        .queue_records
        .min((QUEUE_BYTES_MAX / config.record_bytes).max(1));
    let ctx = Arc::new(SenderContext {
        topic: target.topic.to_string(),
        config: config.clone(),
        stamp,
        request_timeout: options.request_timeout,
        queue_slots: Semaphore::new(queue_records),
        progress: progress_bar("produce", records),
    });
    let started = Instant::now();
    let mut senders = JoinSet::new();
    for (connection, queues) in connections.into_iter().zip(&leaders) {
        let version = connection.version::<ProduceRequest>()?;
        let pipeline = Pipeline::new(connection, options, config.in_flight)?;
        senders.spawn(run_sender(queues.clone(), pipeline, version, ctx.clone()));
    }
    let application = append_records(&leaders, &routes.route, records, config, &values, &ctx);
    let mut outcome = run_to_end(application, senders).await?;
    ctx.progress.finish_and_clear();
    outcome.records_produced = records;
    outcome.acked.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Where the application's records go.
struct Routes<'a> {
    /// Each leader's address and partitions.
    leaders: Vec<(&'a str, Vec<i32>)>,
    /// For the round robin (in partition order): the leader and queue slot of each partition.
    route: Vec<(usize, usize)>,
}

fn route_partitions(leaders: &BTreeMap<i32, String>) -> Routes<'_> {
    let mut routes = Routes {
        leaders: Vec::new(),
        route: Vec::with_capacity(leaders.len()),
    };
    for (partition, addr) in leaders {
        let leader_idx = match routes.leaders.iter().position(|(a, _)| a == addr) {
            Some(idx) => idx,
            None => {
                routes.leaders.push((addr, Vec::new()));
                routes.leaders.len() - 1
            }
        };
        let partitions = &mut routes.leaders[leader_idx].1;
        routes.route.push((leader_idx, partitions.len()));
        partitions.push(*partition);
    }
    routes
}

/// Runs the application to its end while the senders send, then waits for the senders
/// (they finish once everything appended is answered); one that fails stops the run
/// (dropping the set aborts the others).
async fn run_to_end(
    application: impl Future<Output = anyhow::Result<()>>,
    mut senders: JoinSet<anyhow::Result<SenderTotals>>,
) -> anyhow::Result<ProduceOutcome> {
    tokio::pin!(application);
    let mut appended = false;
    let mut outcome = ProduceOutcome::default();
    loop {
        tokio::select! {
            result = &mut application, if !appended => {
                result?;
                appended = true;
            }
            joined = senders.join_next() => match joined {
                Some(result) => outcome.merge(result.context("producer task")??),
                None if appended => return Ok(outcome),
                None => bail!("the producer's senders stopped before the application finished"),
            },
        }
    }
}

/// An idempotent producer's id and epoch (InitProducerId without a transactional id).
pub(super) async fn init_producer_id(
    connection: &mut Connection,
    options: &ClientOptions,
) -> anyhow::Result<ProducerStamp> {
    let response = connection
        .send(|_| {
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(INIT_PRODUCER_ID_TIMEOUT_MS)
        })
        .await
        .context("InitProducerId")?;
    let code = ErrorCode(response.error_code);
    if !code.is_ok() {
        bail!(
            "InitProducerId at {} failed: {code} (timeout {:?})",
            connection.addr(),
            options.request_timeout
        );
    }
    Ok(ProducerStamp {
        producer_id: response.producer_id.0,
        producer_epoch: response.producer_epoch,
        base_sequence: 0,
    })
}

/// The application: appends `records` records round robin over the partitions, paced to
/// `--rate`, waiting while the queues are full; then marks the end of the run.
async fn append_records(
    leaders: &[Arc<LeaderQueues>],
    route: &[(usize, usize)],
    records: u64,
    config: &BenchProducerConfig,
    values: &ValueSource,
    ctx: &SenderContext,
) -> anyhow::Result<()> {
    let started = Instant::now();
    for idx in 0..records {
        if config.rate > 0 {
            // An absolute schedule: a late wake-up is made up by the records after it.
            let due = started + Duration::from_secs_f64(idx as f64 / config.rate as f64);
            tokio::time::sleep_until(due).await;
        }
        ctx.queue_slots
            .acquire()
            .await
            .context("the producer queue closed")?
            .forget();
        let (leader_idx, slot) = route[(idx % route.len() as u64) as usize];
        let queues = &leaders[leader_idx];
        let now = Instant::now();
        let wake = queues.append(slot, values.value(idx, now), now, config.batch_bytes);
        if wake {
            queues.wake.notify_one();
        }
    }
    for queues in leaders {
        queues.close();
    }
    Ok(())
}

/// A record waiting for its batch.
#[derive(Debug)]
struct Queued {
    value: Bytes,
    appended: Instant,
}

#[derive(Debug)]
struct PartitionQueue {
    partition: i32,
    records: VecDeque<Queued>,
    /// Batch bytes of the queued records (values plus `RECORD_OVERHEAD_BYTES` each).
    bytes: usize,
    /// Sequence number of the next record (idempotent producer).
    next_sequence: i32,
}

#[derive(Debug)]
struct QueueState {
    partitions: Vec<PartitionQueue>,
    /// The application appended its last record: send whatever is queued.
    closed: bool,
}

/// The partition queues of one leader, shared by the application and the leader's sender.
#[derive(Debug)]
struct LeaderQueues {
    addr: String,
    state: Mutex<QueueState>,
    /// Wakes the sender: a queue became non-empty or reached a full batch, or the run ended.
    wake: Notify,
}

/// A batch taken from a partition queue.
#[derive(Debug)]
struct TakenBatch {
    partition: i32,
    records: Vec<Queued>,
    base_sequence: i32,
}

fn batch_size(value: &Bytes) -> usize {
    value.len() + RECORD_OVERHEAD_BYTES
}

impl LeaderQueues {
    fn new(addr: &str, partitions: &[i32]) -> Self {
        Self {
            addr: addr.to_string(),
            state: Mutex::new(QueueState {
                partitions: partitions
                    .iter()
                    .map(|&partition| PartitionQueue {
                        partition,
                        records: VecDeque::new(),
                        bytes: 0,
                        next_sequence: 0,
                    })
                    .collect(),
                closed: false,
            }),
            wake: Notify::new(),
        }
    }

    /// Appends a record to partition `slot`; whether the sender should look (the queue was
    /// empty, so a linger timer starts, or it now holds a full batch).
    fn append(&self, slot: usize, value: Bytes, now: Instant, batch_bytes: usize) -> bool {
        let mut state = self.state.lock().expect("queue lock is never poisoned");
        let queue = &mut state.partitions[slot];
        let was_empty = queue.records.is_empty();
        let was_full = queue.bytes >= batch_bytes;
        queue.bytes += batch_size(&value);
        queue.records.push_back(Queued {
            value,
            appended: now,
        });
        was_empty || (!was_full && queue.bytes >= batch_bytes)
    }

    fn close(&self) {
        self.state
            .lock()
            .expect("queue lock is never poisoned")
            .closed = true;
        self.wake.notify_one();
    }

    /// One batch from every partition that is ready at `now`: a full batch queued, the
    /// oldest record waited `linger`, or the run ended.
    fn take_ready(&self, now: Instant, linger: Duration, batch_bytes: usize) -> Vec<TakenBatch> {
        let mut state = self.state.lock().expect("queue lock is never poisoned");
        let closed = state.closed;
        let mut taken = Vec::new();
        for queue in &mut state.partitions {
            let Some(oldest) = queue.records.front() else {
                continue;
            };
            let ready = closed
                || queue.bytes >= batch_bytes
                || queue.records.len() >= BATCH_RECORDS_MAX
                || oldest.appended + linger <= now;
            if !ready {
                continue;
            }
            let mut records = Vec::new();
            let mut bytes = 0usize;
            while let Some(next) = queue.records.front() {
                let size = batch_size(&next.value);
                // At least one record, however big.
                if !records.is_empty()
                    && (bytes + size > batch_bytes || records.len() == BATCH_RECORDS_MAX)
                {
                    break;
                }
                bytes += size;
                records.push(queue.records.pop_front().expect("front exists"));
            }
            queue.bytes -= bytes;
            let count = i32::try_from(records.len()).expect("at most BATCH_RECORDS_MAX");
            let base_sequence = queue.next_sequence;
            queue.next_sequence = base_sequence
                .checked_add(count)
                .expect("at most i32::MAX records per run (checked by the flags)");
            taken.push(TakenBatch {
                partition: queue.partition,
                records,
                base_sequence,
            });
        }
        taken
    }

    /// When the next partition becomes ready by linger (`None`: nothing queued), and whether
    /// the run is over (closed and nothing queued).
    fn next_deadline(&self, linger: Duration) -> (Option<Instant>, bool) {
        let state = self.state.lock().expect("queue lock is never poisoned");
        let deadline = state
            .partitions
            .iter()
            .filter_map(|q| q.records.front())
            .map(|oldest| oldest.appended + linger)
            .min();
        (deadline, state.closed && deadline.is_none())
    }
}

/// What the senders share.
struct SenderContext {
    topic: String,
    config: BenchProducerConfig,
    stamp: ProducerStamp,
    /// Produce `timeout_ms`: how long the broker may take to acknowledge.
    request_timeout: Duration,
    /// Records queued or in flight at most (`--queue-records`): one permit each, taken by
    /// the application and given back when the record is acknowledged or failed.
    queue_slots: Semaphore,
    progress: indicatif::ProgressBar,
}

/// A batch in a request: its partition, its records' append times and sizes.
struct SentBatch {
    partition: i32,
    appended: Vec<Instant>,
    value_bytes: u64,
    wire_bytes: u64,
}

/// What one sender saw.
#[derive(Debug, Default)]
struct SenderTotals {
    records_acked: u64,
    value_bytes_acked: u64,
    wire_bytes_acked: u64,
    errors: u64,
    error_codes: BTreeMap<String, u64>,
    requests: u64,
    batches: u64,
    latency: LatencyHistogram,
    request_latency: LatencyHistogram,
}

impl SenderTotals {
    /// Accounts for a batch answered `answer` at `at`.
    fn settle(&mut self, batch: &SentBatch, answer: Result<(), ErrorCode>, at: Instant) {
        let records = batch.appended.len() as u64;
        match answer {
            Ok(()) => {
                self.records_acked += records;
                self.value_bytes_acked += batch.value_bytes;
                self.wire_bytes_acked += batch.wire_bytes;
                for appended in &batch.appended {
                    self.latency.record(at.saturating_duration_since(*appended));
                }
            }
            Err(code) => {
                self.errors += records;
                *self.error_codes.entry(code.name()).or_default() += records;
            }
        }
    }
}

/// Requests awaiting their answers, in the order they were written.
type InFlight = FuturesOrdered<
    BoxFuture<
        'static,
        (
            Vec<SentBatch>,
            Instant,
            Result<(Instant, ProduceResponse), ClientError>,
        ),
    >,
>;

/// One leader's sender: sends ready batches while fewer than `--in-flight` requests are
/// unanswered, settles answers in order, and ends when the run is over and all is answered.
async fn run_sender(
    queues: Arc<LeaderQueues>,
    mut pipeline: Pipeline,
    version: i16,
    ctx: Arc<SenderContext>,
) -> anyhow::Result<SenderTotals> {
    let config = &ctx.config;
    let mut totals = SenderTotals::default();
    let mut in_flight: InFlight = FuturesOrdered::new();
    loop {
        while in_flight.len() < config.in_flight {
            let taken = queues.take_ready(Instant::now(), config.linger, config.batch_bytes);
            if taken.is_empty() {
                break;
            }
            let (request, sent) = encode_request(&ctx, taken).await?;
            totals.requests += 1;
            totals.batches += sent.len() as u64;
            if config.acks == BenchAcks::None {
                let written = pipeline
                    .send_unanswered(version, &request)
                    .await
                    .with_context(|| format!("produce to {}", queues.addr))?;
                for batch in &sent {
                    totals.settle(batch, Ok(()), written);
                }
                release(&ctx, &sent);
                continue;
            }
            let sent_at = Instant::now();
            let pending: PendingResponse<ProduceRequest> =
                pipeline
                    .send(version, &request)
                    .await
                    .with_context(|| format!("produce to {}", queues.addr))?;
            in_flight.push_back(Box::pin(
                async move { (sent, sent_at, pending.wait().await) },
            ));
        }
        let (deadline, over) = queues.next_deadline(config.linger);
        if over && in_flight.is_empty() {
            return Ok(totals);
        }
        let room = in_flight.len() < config.in_flight;
        tokio::select! {
            Some((sent, sent_at, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                let (received_at, response) =
                    answer.with_context(|| format!("produce to {}", queues.addr))?;
                totals
                    .request_latency
                    .record(received_at.saturating_duration_since(sent_at));
                let partitions: Vec<i32> = sent.iter().map(|b| b.partition).collect();
                let answers = record_api::produce_answers(&queues.addr, &partitions, &response)?;
                for (batch, (_, answer)) in sent.iter().zip(answers) {
                    totals.settle(batch, answer.map(|_| ()), received_at);
                }
                release(&ctx, &sent);
            }
            () = queues.wake.notified() => {}
            () = sleep_until_some(deadline), if room && deadline.is_some() => {}
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Gives the queue slots of answered records back and advances the progress bar.
fn release(ctx: &SenderContext, sent: &[SentBatch]) {
    let records: usize = sent.iter().map(|b| b.appended.len()).sum();
    ctx.queue_slots.add_permits(records);
    ctx.progress.inc(records as u64);
}

/// The Produce request of `taken` (one batch per partition, encoded and compressed off the
/// async workers) and what it holds.
async fn encode_request(
    ctx: &Arc<SenderContext>,
    taken: Vec<TakenBatch>,
) -> anyhow::Result<(ProduceRequest, Vec<SentBatch>)> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        let config = &ctx.config;
        let mut batches = Vec::with_capacity(taken.len());
        let mut sent = Vec::with_capacity(taken.len());
        let timestamp_ms = now_ms();
        for batch in taken {
            let stamp = if config.idempotent {
                ProducerStamp {
                    base_sequence: batch.base_sequence,
                    ..ctx.stamp
                }
            } else {
                ProducerStamp::NONE
            };
            let records: Vec<OutRecord> = batch
                .records
                .iter()
                .map(|r| OutRecord {
                    value: Some(r.value.clone()),
                    ..OutRecord::default()
                })
                .collect();
            let encoded = record_api::encode_stamped(
                &records,
                compression(config.compression),
                timestamp_ms,
                stamp,
            )
            .with_context(|| format!("encode a batch for partition {}", batch.partition))?;
            sent.push(SentBatch {
                partition: batch.partition,
                appended: batch.records.iter().map(|r| r.appended).collect(),
                value_bytes: batch.records.iter().map(|r| r.value.len() as u64).sum(),
                wire_bytes: encoded.len() as u64,
            });
            batches.push((batch.partition, encoded));
        }
        let request = record_api::produce_request(
            &ctx.topic,
            batches,
            config.acks.code(),
            ctx.request_timeout,
        );
        anyhow::Ok((request, sent))
    })
    .await
    .context("encode record batches")?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues() -> LeaderQueues {
        LeaderQueues::new("127.0.0.1:9092", &[0, 1])
    }

    fn value(bytes: usize) -> Bytes {
        Bytes::from(vec![b'x'; bytes])
    }

    /// Goal: a partition is sent when its batch is full, when its oldest record lingered, or
    /// at the end of the run, in batches no bigger than the limit, with consecutive
    /// sequence numbers.
    #[test]
    fn batches_are_taken_when_full_lingered_or_closed() {
        let queues = queues();
        let t0 = Instant::now();
        let linger = Duration::from_millis(5);
        let record = 100 + RECORD_OVERHEAD_BYTES;
        let batch_bytes = 3 * record;
        assert!(
            queues.append(0, value(100), t0, batch_bytes),
            "first record"
        );
        assert!(!queues.append(0, value(100), t0, batch_bytes));
        assert!(queues.take_ready(t0, linger, batch_bytes).is_empty());
        assert_eq!(queues.next_deadline(linger), (Some(t0 + linger), false));
        assert!(queues.append(0, value(100), t0, batch_bytes), "full batch");
        assert!(
            !queues.append(0, value(100), t0, batch_bytes),
            "already full"
        );

        let taken = queues.take_ready(t0, linger, batch_bytes);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].partition, 0);
        assert_eq!(taken[0].records.len(), 3);
        assert_eq!(taken[0].base_sequence, 0);
        assert!(
            queues.take_ready(t0, linger, batch_bytes).is_empty(),
            "one left"
        );

        let taken = queues.take_ready(t0 + linger, linger, batch_bytes);
        assert_eq!(taken[0].records.len(), 1, "lingered");
        assert_eq!(taken[0].base_sequence, 3);

        assert!(queues.append(1, value(100), t0, batch_bytes));
        queues.close();
        let taken = queues.take_ready(t0, linger, batch_bytes);
        assert_eq!((taken[0].partition, taken[0].records.len()), (1, 1));
        assert_eq!(taken[0].base_sequence, 0, "sequences are per partition");
        assert_eq!(queues.next_deadline(linger), (None, true));
    }

    #[test]
    fn partitions_are_routed_to_their_leaders_in_partition_order() {
        let leaders: BTreeMap<i32, String> = [(0, "b"), (1, "a"), (2, "b"), (3, "a")]
            .into_iter()
            .map(|(p, addr)| (p, addr.to_string()))
            .collect();
        let routes = route_partitions(&leaders);
        assert_eq!(routes.leaders, [("b", vec![0, 2]), ("a", vec![1, 3])]);
        assert_eq!(routes.route, [(0, 0), (1, 0), (0, 1), (1, 1)]);
    }

    #[test]
    fn a_record_bigger_than_a_batch_goes_alone() {
        let queues = queues();
        let t0 = Instant::now();
        queues.append(0, value(1000), t0, 10);
        queues.append(0, value(1000), t0, 10);
        let taken = queues.take_ready(t0, Duration::ZERO, 10);
        assert_eq!(taken[0].records.len(), 1);
    }

    #[test]
    fn e2e_values_carry_their_send_time() {
        let config = BenchProducerConfig {
            topic: "t".to_string(),
            partitions: 1,
            record_bytes: 64,
            compression: crate::config::bench::BenchCompression::None,
            acks: BenchAcks::All,
            linger: Duration::ZERO,
            batch_bytes: 1000,
            idempotent: true,
            in_flight: 5,
            rate: 0,
            queue_records: 10,
        };
        let epoch = Instant::now();
        let values = ValueSource::new(&config, Some(epoch));
        let value = values.value(3, epoch + Duration::from_micros(1500));
        assert_eq!(value.len(), 64);
        assert_eq!(value_stamp(&value), Some(Duration::from_micros(1500)));
        assert_eq!(value_stamp(b"short"), None);
        let plain = ValueSource::new(&config, None);
        assert_eq!(
            plain.value(3, epoch),
            plain.value(3 + plain.pool.len() as u64, epoch)
        );
        assert_ne!(plain.value(3, epoch), plain.value(4, epoch));
    }
}
