//! The node's single open segment, shared by all partitions it leads, and the flusher that
//! uploads it as one object and commits each partition's part to the metadata store.
//!
//! Group commit: a flush happens when the oldest batch has waited `flush_interval` or the
//! segment reached `flush_bytes`, or (`flush_when_idle`) as soon as no flush is under way and
//! the segment holds `flush_when_idle_min_bytes`: then it is taken as soon as no Produce
//! request is appending (a batch waits [`IDLE_GATHER`] at most), and under load batches
//! gather while the flushes before them upload and commit. One PUT per flush whatever the
//! number of partitions, then one fenced transaction per partition (sent together with
//! `txn_many`). Only after the commit do high watermarks move, producers get their acks and
//! parked fetches wake.
//!
//! Flushes are pipelined: while one segment uploads, the next can be built and uploaded
//! (at most `uploads_max` uploads in flight, `--flush-uploads-max`), so object store
//! latency costs latency, not throughput. Commits happen one at a time, in flush order,
//! so the high watermark of a partition only ever advances contiguously; the flushes whose
//! uploads ended while a commit ran are committed together in the next one (one
//! transaction per partition for all of them, one fsync on the embedded store), and new
//! flushes start while a commit runs, so a slow commit neither stalls the uploads behind it
//! nor lets the open segment grow past its size. A failed
//! upload or commit rewinds its partitions, and every later batch of those partitions,
//! in the open segment or in a flush still uploading, fails with it (`Rewound`): a batch
//! remembers the partition's rewind count when it was appended, and one appended before
//! a rewind is never committed.
//!
//! Produce waits for room when unflushed bytes reach `--max-unflushed-bytes` (a semaphore).
//! At most `COMMIT_GROUP_MAX` flushes commit together. A commit whose outcome is unknown
//! (store timeout) sets `needs_reload` on its partitions: no produce is admitted there until
//! the committed state is read back.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strato_metadata::model::{
    AbortedTxnRecord, IndexEntry, Offset, PartitionStateRecord, RECORD_FORMAT_V1, TopicPartition,
};
use strato_metadata::{MetadataError, MetadataStore, Txn, keys};
use strato_metrics::{Histogram, HistogramSnapshot};
use strato_tiering::Tier;
use strato_tiering::direct_file::ALIGN;
use strato_tiering::segment::{ALIGNED_CHUNK_MIN, ChunkMeta, CompressorPool, SegmentBuilder};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::partition::{MARKERS_PENDING_MAX, Partition, last_stable_offset};
use super::producer::{IncomingBatch, ProducerStates};

/// zstd level of segment chunks: level 1 keeps a flush cheap on a 2-core node while still
/// shrinking uncompressed client batches several times.
const ZSTD_LEVEL: i32 = 1;

/// A request to move a partition's log start (DeleteRecords, retention), applied by the
/// flusher between flushes so that it never races a flush's commit.
struct TrimRequest {
    partition: Arc<Partition>,
    log_start: Offset,
    done: tokio::sync::oneshot::Sender<Result<Offset, FlushFailure>>,
}

/// A request to replace a run of a partition's index entries by one entry covering the same
/// offsets (compaction), applied by the flusher like a trim.
struct ReplaceRequest {
    partition: Arc<Partition>,
    old: Vec<IndexEntry>,
    new: Vec<IndexEntry>,
    puts: Vec<(String, bytes::Bytes)>,
    done: tokio::sync::oneshot::Sender<Result<bool, FlushFailure>>,
}

/// Index changes (trims, replacements) of each kind waiting for the flusher; more are
/// refused (bounded, like every queue).
const INDEX_CHANGES_QUEUED_MAX: usize = 10_000;
/// Index entries deleted per trim transaction (etcd allows 128 operations per transaction).
const TRIM_ENTRIES_PER_TXN: usize = 100;

/// Why a batch was not made durable. Every variant is retriable for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlushFailure {
    #[error("object store upload failed")]
    Upload,
    #[error("metadata commit failed")]
    Commit,
    #[error("leadership lost")]
    Fenced,
    #[error("an earlier batch of the partition failed")]
    Rewound,
    #[error("broker shutting down")]
    ShuttingDown,
    #[error("too many log start changes queued")]
    Busy,
}

/// A batch accepted for a partition, offsets assigned, waiting in the open segment (its
/// bytes are in the partition's open chunk, see [`LogWriter::append_locked`]).
pub struct PendingBatch {
    pub partition: Arc<Partition>,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub producer: Option<IncomingBatch>,
    /// Set for a transaction marker written for a `txn-markers/` request.
    pub marker: Option<PendingMarker>,
    pub done: Option<oneshot::Sender<Result<(), FlushFailure>>>,
    pub permit: OwnedSemaphorePermit,
    /// The partition's `rewinds` when the batch was appended: a batch appended before a
    /// later rewind is never committed (its offsets were given out again).
    pub rewinds: u64,
}

/// What the commit of a marker batch does besides the batch: end the producer's transaction
/// in the partition state, delete the request `txn-markers/<topic_id>/<p>/<producer id>`
/// and, for an abort of a transaction that wrote here, put its aborted entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
}

impl PendingBatch {
    fn finish(mut self, result: Result<(), FlushFailure>) {
        if let Some(done) = self.done.take() {
            // The producer may have timed out and gone: nothing to tell then.
            let _ = done.send(result);
        }
    }
}

#[derive(Default)]
struct OpenSegment {
    batches: Vec<PendingBatch>,
    /// Each partition's batches, in offset order, in one buffer: the chunk the flush
    /// compresses and caches as it is (produced bytes are copied once, into here).
    chunks: HashMap<TopicPartition, BytesMut>,
    bytes: u64,
    opened_at: Option<Instant>,
}

/// What a flush takes from the open segment.
struct TakenSegment {
    batches: Vec<PendingBatch>,
    chunks: HashMap<TopicPartition, BytesMut>,
}

/// A flush whose segment is being built and uploaded (or is), waiting for its turn to
/// commit.
struct InFlight {
    key: String,
    /// Each partition's batches in offset order, in the segment's chunk order.
    groups: Vec<(Arc<Partition>, Vec<PendingBatch>)>,
    started: Instant,
    /// The build-and-upload task until its outcome is taken into `uploaded`.
    upload: Option<JoinHandle<Result<Uploaded, String>>>,
    uploaded: Option<Result<Uploaded, String>>,
}

/// What a flush's task hands its commit: each chunk's footer entry and batches (for the
/// cache), and the object's size.
struct Uploaded {
    chunk_data: Vec<(ChunkMeta, Bytes)>,
    object_bytes: usize,
    build: Duration,
    upload: Duration,
    /// When the upload ended (the wait for the commit's turn starts).
    uploaded_at: Instant,
}

/// Flushes committed together: per partition, the index entries and batches of every
/// flush, in flush order (contiguous, since a rewind drops every batch appended before it).
#[derive(Default)]
struct CommitGroup {
    parts: Vec<(Arc<Partition>, Vec<IndexEntry>, Vec<PendingBatch>)>,
    part_of: HashMap<TopicPartition, usize>,
    ready: Vec<ReadyFlush>,
}

/// A flush whose upload succeeded, in a group commit.
struct ReadyFlush {
    key: String,
    started: Instant,
    /// The chunks of the partitions it still commits (see `drop_rewound`).
    chunk_data: Vec<(ChunkMeta, Bytes)>,
    object_bytes: usize,
    build: Duration,
    upload: Duration,
    uploaded_at: Instant,
}

impl InFlight {
    fn upload_done(&self) -> bool {
        self.uploaded.is_some() || self.upload.as_ref().is_none_or(|u| u.is_finished())
    }

    async fn take_outcome(&mut self) -> Result<Uploaded, String> {
        if let Some(upload) = self.upload.take() {
            self.uploaded = Some(upload_outcome(upload.await));
        }
        self.uploaded
            .take()
            .unwrap_or(Err("upload outcome taken twice".into()))
    }
}

fn upload_outcome(
    joined: Result<Result<Uploaded, String>, tokio::task::JoinError>,
) -> Result<Uploaded, String> {
    joined.unwrap_or_else(|err| Err(format!("flush task failed: {err}")))
}

/// Builds the segment object of `inputs` (in the blocking pool) and uploads it as `key`.
async fn build_and_upload(
    tier: Arc<Tier>,
    compress: bool,
    compression_workers: u32,
    compressors: Arc<CompressorPool>,
    key: String,
    inputs: Vec<(TopicPartition, BytesMut)>,
) -> Result<Uploaded, String> {
    let build_started = Instant::now();
    let built = tokio::task::spawn_blocking(move || {
        let mut builder = SegmentBuilder::new(ZSTD_LEVEL)
            .with_workers(compression_workers)
            .with_compressors(compressors);
        if !compress {
            builder = builder.uncompressed();
        }
        for (tp, chunk) in inputs {
            builder.add_chunk(tp, std::slice::from_ref(&fit(chunk)));
        }
        builder.finish()
    })
    .await
    .map_err(|err| format!("segment build failed: {err}"))?
    // Batches were validated on the way in, so this is a bug; the flush fails like a
    // failed upload (nothing acknowledged).
    .map_err(|err| format!("failed to build a segment from validated batches: {err:#}"))?;
    let upload_started = Instant::now();
    tier.upload_parts(&key, built.parts.clone())
        .await
        .map_err(|err| format!("{err:#}"))?;
    let uploaded_at = Instant::now();
    Ok(Uploaded {
        chunk_data: built.chunk_data(),
        object_bytes: built.object_len(),
        build: upload_started - build_started,
        upload: uploaded_at - upload_started,
        uploaded_at,
    })
}

/// Waits for the oldest in-flight upload to end (forever when there is none), keeping its
/// outcome in the flush.
async fn wait_oldest_upload(oldest: Option<&mut InFlight>) {
    match oldest {
        Some(flight) if flight.uploaded.is_none() => {
            if let Some(upload) = flight.upload.as_mut() {
                let joined = upload.await;
                flight.upload = None;
                flight.uploaded = Some(upload_outcome(joined));
            }
        }
        _ => std::future::pending().await,
    }
}

/// A commit of flushes under way in the flusher loop.
type CommitFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// Runs the commit under way to its end and clears it (forever when there is none).
async fn finish_commit(committing: &mut Option<CommitFuture<'_>>) {
    match committing.as_mut() {
        Some(commit) => {
            commit.await;
            *committing = None;
        }
        None => std::future::pending().await,
    }
}

/// Flushes committed together at most (group commit): each adds an index entry to its
/// partitions' transactions, which hold at most 128 operations (etcd's limit) with the
/// state and the markers' operations.
const COMMIT_GROUP_MAX: usize = 16;
const _: () = assert!(1 + COMMIT_GROUP_MAX + 2 * MARKERS_PENDING_MAX <= 128);

/// Takes the oldest flushes whose uploads have ended, in flush order, at most
/// [`COMMIT_GROUP_MAX`].
async fn take_uploaded(
    in_flight: &mut VecDeque<InFlight>,
) -> Vec<(InFlight, Result<Uploaded, String>)> {
    let mut ready = Vec::new();
    while ready.len() < COMMIT_GROUP_MAX && in_flight.front().is_some_and(InFlight::upload_done) {
        let mut flight = in_flight.pop_front().expect("front checked");
        let uploaded = flight.take_outcome().await;
        ready.push((flight, uploaded));
    }
    ready
}

/// zstd worker threads for a flush's large chunks: one per core, at most
/// [`COMPRESSION_WORKERS_MAX`] (a flush of one busy partition is one large chunk, and its
/// producer waits for the whole of it).
fn compression_workers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores)
        .unwrap_or(1)
        .min(COMPRESSION_WORKERS_MAX)
}

/// Upper bound of [`compression_workers`].
const COMPRESSION_WORKERS_MAX: u32 = 4;

/// zstd contexts the flusher keeps between builds (about 4 MiB each with two worker
/// threads): as many as builds that run at once on a small machine.
const COMPRESSORS_KEPT: usize = 2;

/// The phases of a committed flush: building its object (compression), its PUT, waiting
/// for the earlier flushes' commits (commits are in flush order), and its metadata commit
/// through the acknowledgements.
pub const FLUSH_PHASES: [&str; 4] = ["build", "upload", "wait", "commit"];

/// Whether a partition's batches of one flush were appended before its last rewind (all of
/// them were appended between the same two rewinds, so the first tells).
fn appended_before_a_rewind(batches: &[PendingBatch], rewinds: u64) -> bool {
    batches.first().is_some_and(|b| b.rewinds != rewinds)
}

/// Sleeps until `due`, or forever when there is nothing to wait for.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}

/// How the log writer flushes (from the broker's flags).
#[derive(Debug, Clone, Copy)]
pub struct LogWriterConfig {
    /// Longest a batch waits in the open segment (`--flush-interval-ms`).
    pub flush_interval: Duration,
    /// Open segment size that starts a flush at once (`--flush-bytes`).
    pub flush_bytes: u64,
    /// Flush after [`IDLE_GATHER`] when no flush is uploading or committing
    /// (`--flush-when-idle`)...
    pub flush_when_idle: bool,
    /// ...and the open segment holds at least this (`--flush-when-idle-min-bytes`).
    pub flush_when_idle_min_bytes: u64,
    /// Longest an idle flusher waits for a Produce request still appending:
    /// [`IDLE_GATHER`] (tests lengthen it).
    pub idle_gather: Duration,
    /// Chunks are compressed (zstd level 1) in the flush; false: stored as the batches came,
    /// compressed once, by compaction (`--flush-compression`).
    pub flush_compress: bool,
    /// Produced bytes accepted but not yet durable (`--max-unflushed-bytes`).
    pub unflushed_max: u32,
    /// Segment uploads in flight at once (`--flush-uploads-max`).
    pub uploads_max: usize,
    /// Idle producer states are dropped after this (`--producer-id-expiration-ms`).
    pub producer_expiration: Duration,
    /// Garbage collection grace (`--gc-grace-ms`), see `reference_age_max_ms`.
    pub gc_grace: Duration,
}

/// First capacity of a partition's open chunk buffer: an estimate of its chunk size (the
/// larger of its last chunk and three quarters of the previous estimate, so a smaller flush
/// does not shrink it at once), plus a quarter, so that under steady load the buffer is
/// not reallocated while it fills; at least this much, at most the flush size.
const CHUNK_BUFFER_MIN: usize = 64 * 1024;
/// Partitions whose last chunk size is remembered for sizing their next buffer.
const CHUNK_SIZES_KEPT_MAX: usize = 100_000;
/// How long at most the open segment gathers batches before an idle flusher takes it
/// while a Produce request is still appending (its partitions' batches, one after another,
/// should go in one flush); with none appending it is taken at once (tokio's timers tick
/// in milliseconds, so this is the shortest wait there is).
pub const IDLE_GATHER: Duration = Duration::from_millis(1);

/// A Produce request appending its batches ([`LogWriter::appending`]); the last one
/// dropped wakes the flusher.
pub struct Appending<'a> {
    writer: &'a LogWriter,
}

impl Drop for Appending<'_> {
    fn drop(&mut self) {
        let before = self
            .writer
            .appending
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if before == 1 {
            self.writer.wake.notify_one();
        }
    }
}

pub struct LogWriter {
    open: Mutex<OpenSegment>,
    wake: Notify,
    unflushed: Arc<Semaphore>,
    unflushed_max: u32,
    tier: Arc<Tier>,
    meta: Arc<dyn MetadataStore>,
    flush_interval: Duration,
    flush_bytes: u64,
    flush_when_idle: bool,
    flush_when_idle_min_bytes: u64,
    idle_gather: Duration,
    flush_compress: bool,
    uploads_max: usize,
    /// zstd worker threads of a flush's large chunks (counted once: reading the cores
    /// reads cgroup files).
    compression_workers: u32,
    /// zstd contexts reused from one flush's build to the next.
    compressors: Arc<CompressorPool>,
    /// Idle producer states are dropped after this (`--producer-id-expiration-ms`).
    producer_expiration_ms: i64,
    /// Oldest a segment object may be when a commit first references it: half the garbage
    /// collection grace. GC only deletes objects created a whole grace before it read the
    /// index, so it can never delete an object a commit is about to reference, however slow
    /// the upload was (up to half a grace of clock skew between brokers is tolerated).
    reference_age_max_ms: u64,
    trims: Mutex<Vec<TrimRequest>>,
    replaces: Mutex<Vec<ReplaceRequest>>,
    /// Each partition's estimated chunk size (see [`CHUNK_BUFFER_MIN`]).
    chunk_sizes: Mutex<HashMap<TopicPartition, usize>>,
    commits: watch::Sender<u64>,
    closed: std::sync::atomic::AtomicBool,
    /// Set when the broker drains: flush whatever is open at once, without waiting for the
    /// interval, so connections can answer their admitted produce requests.
    draining: std::sync::atomic::AtomicBool,
    /// Produce requests appending their batches now ([`LogWriter::appending`]).
    appending: std::sync::atomic::AtomicUsize,
    flushes: std::sync::atomic::AtomicU64,
    failed_flushes: std::sync::atomic::AtomicU64,
    flushed_bytes: std::sync::atomic::AtomicU64,
    uploads_in_flight: std::sync::atomic::AtomicU64,
    unflushed_waits: std::sync::atomic::AtomicU64,
    /// Segment object size of each committed flush.
    flush_size: Histogram,
    /// Build + upload + commit time of each committed flush.
    flush_duration: Histogram,
    /// The parts of it, by [`FLUSH_PHASES`].
    flush_phases: [Histogram; 4],
}

/// Counters of the flusher since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Flushes whose upload succeeded (their partitions' commits counted separately below).
    pub flushes: u64,
    /// Flushes whose upload or commit failed as a whole.
    pub failed_flushes: u64,
    pub flushed_bytes: u64,
    /// Flushes built and not yet committed (uploading, or waiting to commit in order).
    pub uploads_in_flight: u64,
    /// Produce requests that waited because `unflushed_max` bytes were already accepted.
    pub unflushed_waits: u64,
}

impl LogWriter {
    pub fn new(
        tier: Arc<Tier>,
        meta: Arc<dyn MetadataStore>,
        config: LogWriterConfig,
    ) -> Arc<Self> {
        let (commits, _) = watch::channel(0);
        Arc::new(Self {
            open: Mutex::new(OpenSegment::default()),
            wake: Notify::new(),
            unflushed: Arc::new(Semaphore::new(config.unflushed_max as usize)),
            unflushed_max: config.unflushed_max,
            tier,
            meta,
            flush_interval: config.flush_interval,
            flush_bytes: config.flush_bytes,
            flush_when_idle: config.flush_when_idle,
            flush_when_idle_min_bytes: config.flush_when_idle_min_bytes,
            idle_gather: config.idle_gather,
            flush_compress: config.flush_compress,
            uploads_max: config.uploads_max.max(1),
            compression_workers: compression_workers(),
            compressors: Arc::new(CompressorPool::new(COMPRESSORS_KEPT)),
            producer_expiration_ms: i64::try_from(config.producer_expiration.as_millis())
                .unwrap_or(i64::MAX),
            reference_age_max_ms: u64::try_from(config.gc_grace.as_millis() / 2)
                .unwrap_or(u64::MAX),
            trims: Mutex::new(Vec::new()),
            replaces: Mutex::new(Vec::new()),
            chunk_sizes: Mutex::new(HashMap::new()),
            commits,
            closed: std::sync::atomic::AtomicBool::new(false),
            draining: std::sync::atomic::AtomicBool::new(false),
            appending: std::sync::atomic::AtomicUsize::new(0),
            flushes: std::sync::atomic::AtomicU64::new(0),
            failed_flushes: std::sync::atomic::AtomicU64::new(0),
            flushed_bytes: std::sync::atomic::AtomicU64::new(0),
            uploads_in_flight: std::sync::atomic::AtomicU64::new(0),
            unflushed_waits: std::sync::atomic::AtomicU64::new(0),
            flush_size: Histogram::bytes(),
            flush_duration: Histogram::durations(),
            flush_phases: std::array::from_fn(|_| Histogram::durations()),
        })
    }

    pub fn stats(&self) -> LogStats {
        use std::sync::atomic::Ordering::Relaxed;
        LogStats {
            flushes: self.flushes.load(Relaxed),
            failed_flushes: self.failed_flushes.load(Relaxed),
            flushed_bytes: self.flushed_bytes.load(Relaxed),
            uploads_in_flight: self.uploads_in_flight.load(Relaxed),
            unflushed_waits: self.unflushed_waits.load(Relaxed),
        }
    }

    pub fn flush_size(&self) -> HistogramSnapshot {
        self.flush_size.snapshot()
    }

    pub fn flush_duration(&self) -> HistogramSnapshot {
        self.flush_duration.snapshot()
    }

    /// Each phase of the committed flushes, by name ([`FLUSH_PHASES`]).
    pub fn flush_phases(&self) -> impl Iterator<Item = (&'static str, HistogramSnapshot)> + '_ {
        FLUSH_PHASES
            .into_iter()
            .zip(self.flush_phases.iter().map(Histogram::snapshot))
    }

    /// A receiver that changes after every flush commit (wakes long-poll fetches).
    pub fn subscribe_commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Waits until `bytes` more unflushed bytes fit under the limit (backpressure).
    pub async fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, FlushFailure> {
        let wanted = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.unflushed_max);
        if let Ok(permit) = self.unflushed.clone().try_acquire_many_owned(wanted) {
            return Ok(permit);
        }
        self.unflushed_waits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.unflushed
            .clone()
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| FlushFailure::ShuttingDown)
    }

    /// Adds a batch to the open segment: copies `data` (whole record batches) to the end
    /// of the partition's open chunk and lets `patch` set what the log decides in the copy
    /// (base offsets, leader epoch, append time). The caller holds the partition's lock, so
    /// batches of one partition enter the segment in offset order. Once the flusher
    /// stopped, the batch is dropped (its `done` sender with it) and `ShuttingDown`
    /// returned.
    pub fn append_locked(
        &self,
        batch: PendingBatch,
        data: &[u8],
        patch: impl FnOnce(&mut [u8]),
    ) -> Result<(), FlushFailure> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(FlushFailure::ShuttingDown);
        }
        let tp = batch.partition.tp;
        let mut open = self.open.lock().expect("open segment lock");
        let was_empty = open.batches.is_empty();
        let before = open.bytes;
        open.bytes += data.len() as u64;
        let chunk = match open.chunks.entry(tp) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let last = self
                    .chunk_sizes
                    .lock()
                    .expect("chunk sizes lock")
                    .get(&tp)
                    .copied()
                    .unwrap_or(0);
                let flush_bytes = usize::try_from(self.flush_bytes).unwrap_or(usize::MAX);
                let capacity = (last + last / 4)
                    .clamp(CHUNK_BUFFER_MIN, flush_bytes.max(CHUNK_BUFFER_MIN))
                    .max(data.len());
                entry.insert(chunk_buffer(capacity))
            }
        };
        let start = chunk.len();
        chunk.extend_from_slice(data);
        patch(&mut chunk[start..]);
        open.batches.push(batch);
        if was_empty {
            open.opened_at = Some(Instant::now());
        }
        let full = open.bytes >= self.flush_bytes;
        // Reaching the idle minimum may make the segment due (when no flush is under way).
        let idle_min = self.flush_when_idle_min_bytes;
        let idle_ready = self.flush_when_idle && before < idle_min && open.bytes >= idle_min;
        drop(open);
        if was_empty || full || idle_ready {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Marks a Produce request as appending its batches until the guard drops. An idle
    /// flusher takes the open segment as soon as no request is appending (a request's
    /// batches still go in one flush), rather than [`IDLE_GATHER`] after its first batch.
    pub fn appending(&self) -> Appending<'_> {
        self.appending
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Appending { writer: self }
    }

    /// From now on, flush as soon as anything is open (used while the broker drains).
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// Runs the flusher until `shutdown`; then flushes what is open and returns.
    ///
    /// One task does everything that writes the partitions' committed state (commits,
    /// trims, chunk swaps), so those never race; only uploads run beside it.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        // The commit under way: flushes keep starting while it runs, so a slow commit
        // neither delays the next uploads nor lets the open segment grow past its size.
        let mut committing: Option<CommitFuture<'_>> = None;
        loop {
            if committing.is_none() {
                // Trims and chunk swaps run between commits, never beside one.
                self.apply_trims().await;
                let ready = take_uploaded(&mut in_flight).await;
                if !ready.is_empty() {
                    committing = Some(Box::pin(self.commit_flushes(ready)));
                }
            }
            let room = in_flight.len() < self.uploads_max;
            let idle = in_flight.is_empty() && committing.is_none();
            let due = if room { self.flush_due(idle) } else { None };
            if due.is_some_and(|due| due <= Instant::now()) {
                self.start_flush(&mut in_flight).await;
                continue;
            }
            tokio::select! {
                _ = finish_commit(&mut committing) => {}
                _ = wait_oldest_upload(in_flight.front_mut()) => {}
                _ = sleep_until(due) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Drain: no new batches, then make the accepted ones durable.
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(commit) = committing.take() {
            commit.await;
        }
        self.start_flush(&mut in_flight).await;
        while !in_flight.is_empty() {
            wait_oldest_upload(in_flight.front_mut()).await;
            let ready = take_uploaded(&mut in_flight).await;
            self.commit_flushes(ready).await;
        }
        self.unflushed.close();
        for trim in std::mem::take(&mut *self.trims.lock().expect("trims lock")) {
            let _ = trim.done.send(Err(FlushFailure::ShuttingDown));
        }
        for replace in std::mem::take(&mut *self.replaces.lock().expect("replaces lock")) {
            let _ = replace.done.send(Err(FlushFailure::ShuttingDown));
        }
    }

    /// When the open segment is due for a flush, if anything is open; `idle`: no flush is
    /// uploading or committing.
    fn flush_due(&self, idle: bool) -> Option<Instant> {
        let open = self.open.lock().expect("open segment lock");
        let draining = self.draining.load(std::sync::atomic::Ordering::Acquire);
        match open.opened_at {
            None => None,
            Some(_) if draining || open.bytes >= self.flush_bytes => Some(Instant::now()),
            Some(at)
                if idle && self.flush_when_idle && open.bytes >= self.flush_when_idle_min_bytes =>
            {
                let appending = self.appending.load(std::sync::atomic::Ordering::Acquire);
                if appending == 0 {
                    Some(Instant::now())
                } else {
                    Some(at + self.idle_gather.min(self.flush_interval))
                }
            }
            Some(at) => Some(at + self.flush_interval),
        }
    }

    /// Replaces the index entries `old` (consecutive) by `new` (none, or entries inside the
    /// range `old` covered, in offset order), and puts `puts` (e.g. the cleaner's checkpoint),
    /// in one fenced transaction run by the flusher between flushes. `Ok(false)`: the
    /// partition's index no longer holds exactly `old` (a trim got there first), nothing
    /// changed. With `old` empty only `puts` are written (fenced all the same).
    ///
    /// Merging chunks keeps the range; the key cleaner may leave less (records removed: the
    /// index then has a gap, which readers skip).
    pub async fn replace_chunks(
        &self,
        partition: Arc<Partition>,
        old: Vec<IndexEntry>,
        new: Vec<IndexEntry>,
        puts: Vec<(String, bytes::Bytes)>,
    ) -> Result<bool, FlushFailure> {
        assert!(
            !old.is_empty() || new.is_empty(),
            "new entries replace something"
        );
        if let (Some(first), Some(last)) = (old.first(), old.last()) {
            let mut floor = first.base_offset;
            for entry in &new {
                assert!(
                    entry.base_offset >= floor && entry.last_offset >= entry.base_offset,
                    "new entries ascend inside the replaced range"
                );
                floor = entry.last_offset + 1;
            }
            assert!(
                floor <= last.last_offset + 1,
                "new entries end inside the range"
            );
        }
        let (done, rx) = tokio::sync::oneshot::channel();
        self.enqueue(
            &self.replaces,
            ReplaceRequest {
                partition,
                old,
                new,
                puts,
                done,
            },
        )?;
        rx.await.unwrap_or(Err(FlushFailure::ShuttingDown))
    }

    /// How old segment object `key` is (from its ULID), if that is older than a commit may
    /// reference (`reference_age_max_ms`).
    fn too_old_to_reference(&self, key: &str) -> Option<u64> {
        let created = strato_tiering::keys::segment_created_ms(key)?;
        let age = u64::try_from(now_ms()).unwrap_or(0).saturating_sub(created);
        (age > self.reference_age_max_ms).then_some(age)
    }

    /// Queues an index change for the flusher (bounded by [`INDEX_CHANGES_QUEUED_MAX`]).
    fn enqueue<T>(&self, queue: &Mutex<Vec<T>>, request: T) -> Result<(), FlushFailure> {
        {
            let mut queue = queue.lock().expect("index change queue lock");
            if self.closed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(FlushFailure::ShuttingDown);
            }
            if queue.len() >= INDEX_CHANGES_QUEUED_MAX {
                return Err(FlushFailure::Busy);
            }
            queue.push(request);
        }
        self.wake.notify_one();
        Ok(())
    }

    async fn apply_replace(
        &self,
        partition: &Arc<Partition>,
        old: &[IndexEntry],
        new: Vec<IndexEntry>,
        puts: Vec<(String, bytes::Bytes)>,
    ) -> Result<bool, FlushFailure> {
        let tp = partition.tp;
        let txn = {
            let state = partition.lock();
            if state.fenced {
                return Err(FlushFailure::Fenced);
            }
            if state.needs_reload {
                return Ok(false);
            }
            if old
                .iter()
                .any(|e| state.index.get(&e.base_offset) != Some(e))
            {
                return Ok(false);
            }
            for entry in &new {
                if let Some(age_ms) = self.too_old_to_reference(&entry.object) {
                    // Garbage collection may already delete it: drop the step (the object is
                    // then an orphan and collected).
                    tracing::warn!(topic = %partition.topic, partition = tp.partition, object = %entry.object, age_ms, "rewritten object too old to reference (slow upload or queue); swap dropped");
                    return Ok(false);
                }
            }
            // The state is written unchanged so that its version moves: a reload after an
            // uncertain outcome then sees that something applied and reads the index again.
            let record = state.state_record(state.high_watermark, &state.committed_producers);
            let mut txn = state.fenced_state_txn(tp, &record);
            for e in old {
                if !new.iter().any(|n| n.base_offset == e.base_offset) {
                    txn = txn.delete(keys::partition_index(
                        tp.topic_id,
                        tp.partition,
                        e.base_offset,
                    ));
                }
            }
            for n in &new {
                txn = txn.put(
                    keys::partition_index(tp.topic_id, tp.partition, n.base_offset),
                    n.encode(),
                );
            }
            for (key, value) in puts {
                txn = txn.put(key, value);
            }
            txn
        };
        match self.meta.txn(txn).await {
            Ok(version) => {
                let mut state = partition.lock();
                state.state_version = version;
                for e in old {
                    state.index.remove(&e.base_offset);
                }
                for n in new {
                    state.index.insert(n.base_offset, n);
                }
                Ok(true)
            }
            Err(MetadataError::Conflict { .. }) => {
                partition.lock().fenced = true;
                Err(FlushFailure::Fenced)
            }
            Err(err) => {
                tracing::warn!(topic = %partition.topic, partition = tp.partition, "failed to swap compacted chunks: {err:#}");
                if err.is_retryable() {
                    partition.lock().needs_reload = true;
                    self.spawn_reload(partition.clone());
                }
                Err(FlushFailure::Commit)
            }
        }
    }

    /// Moves the log start of `partition` up to `log_start` (capped at the high watermark):
    /// index entries wholly below it are deleted, in fenced transactions run by the flusher
    /// between flushes. Returns the new log start.
    pub async fn trim(
        &self,
        partition: Arc<Partition>,
        log_start: Offset,
    ) -> Result<Offset, FlushFailure> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.enqueue(
            &self.trims,
            TrimRequest {
                partition,
                log_start,
                done,
            },
        )?;
        rx.await.unwrap_or(Err(FlushFailure::ShuttingDown))
    }

    async fn apply_trims(&self) {
        let trims = std::mem::take(&mut *self.trims.lock().expect("trims lock"));
        for trim in trims {
            let result = self.apply_trim(&trim.partition, trim.log_start).await;
            let _ = trim.done.send(result);
        }
        let replaces = std::mem::take(&mut *self.replaces.lock().expect("replaces lock"));
        for replace in replaces {
            let result = self
                .apply_replace(&replace.partition, &replace.old, replace.new, replace.puts)
                .await;
            let _ = replace.done.send(result);
        }
    }

    async fn apply_trim(
        &self,
        partition: &Arc<Partition>,
        target: Offset,
    ) -> Result<Offset, FlushFailure> {
        loop {
            let (txn, new_start, doomed, doomed_aborted, done) = {
                let state = partition.lock();
                if state.fenced {
                    return Err(FlushFailure::Fenced);
                }
                if state.needs_reload {
                    return Err(FlushFailure::Commit);
                }
                let target = target.min(state.high_watermark).max(state.log_start_offset);
                // Aborted transactions whose marker is below the log start go with it (some
                // may be left from a trim that had more than one transaction's worth).
                if target == state.log_start_offset
                    && state.aborted.range(..target).next().is_none()
                {
                    return Ok(state.log_start_offset);
                }
                let below: Vec<&IndexEntry> = state
                    .index
                    .values()
                    .take_while(|e| e.last_offset < target)
                    .collect();
                let doomed: Vec<Offset> = below
                    .iter()
                    .take(TRIM_ENTRIES_PER_TXN)
                    .map(|e| e.base_offset)
                    .collect();
                let new_start = if below.len() > TRIM_ENTRIES_PER_TXN {
                    below[TRIM_ENTRIES_PER_TXN - 1].last_offset + 1
                } else {
                    target
                };
                let aborted_below = state.aborted.range(..new_start).count();
                let doomed_aborted: Vec<Offset> = state
                    .aborted
                    .range(..new_start)
                    .map(|(last_offset, _)| *last_offset)
                    .take(TRIM_ENTRIES_PER_TXN - doomed.len())
                    .collect();
                let done = new_start >= target && doomed_aborted.len() == aborted_below;
                let mut record =
                    state.state_record(state.high_watermark, &state.committed_producers);
                record.log_start_offset = new_start;
                let tp = partition.tp;
                let mut txn = state.fenced_state_txn(tp, &record);
                for base in &doomed {
                    txn = txn.delete(keys::partition_index(tp.topic_id, tp.partition, *base));
                }
                for last_offset in &doomed_aborted {
                    txn = txn.delete(keys::partition_aborted(
                        tp.topic_id,
                        tp.partition,
                        *last_offset,
                    ));
                }
                (txn, new_start, doomed, doomed_aborted, done)
            };
            match self.meta.txn(txn).await {
                Ok(version) => {
                    let mut state = partition.lock();
                    assert!(
                        new_start >= state.log_start_offset,
                        "the log start never goes back"
                    );
                    state.log_start_offset = new_start;
                    state.state_version = version;
                    for base in doomed {
                        state.index.remove(&base);
                    }
                    for last_offset in doomed_aborted {
                        state.aborted.remove(&last_offset);
                    }
                    tracing::info!(
                        topic = %partition.topic,
                        partition = partition.tp.partition,
                        log_start_offset = new_start,
                        "log start moved"
                    );
                    if done {
                        return Ok(new_start);
                    }
                }
                Err(MetadataError::Conflict { .. }) => {
                    partition.lock().fenced = true;
                    return Err(FlushFailure::Fenced);
                }
                Err(err) => {
                    tracing::warn!(topic = %partition.topic, partition = partition.tp.partition, "failed to move the log start: {err:#}");
                    if !err.is_retryable() {
                        return Err(FlushFailure::Commit);
                    }
                    // The outcome is unknown: read the committed state back before anything
                    // else is written to the partition.
                    partition.lock().needs_reload = true;
                    self.spawn_reload(partition.clone());
                    return Err(FlushFailure::Commit);
                }
            }
        }
    }

    fn take_open(&self) -> TakenSegment {
        let mut open = self.open.lock().expect("open segment lock");
        let open = std::mem::take(&mut *open);
        TakenSegment {
            batches: open.batches,
            chunks: open.chunks,
        }
    }

    /// Takes the open segment (if anything is open), builds its object and starts its
    /// upload.
    async fn start_flush(&self, in_flight: &mut VecDeque<InFlight>) {
        let started = Instant::now();
        let TakenSegment {
            batches,
            mut chunks,
        } = self.take_open();
        if batches.is_empty() {
            return;
        }
        // Group by partition, keeping each partition's batches in offset order.
        let mut groups: Vec<(Arc<Partition>, Vec<PendingBatch>)> = Vec::new();
        let mut group_of: std::collections::HashMap<TopicPartition, usize> =
            std::collections::HashMap::new();
        for batch in batches {
            let next = groups.len();
            let index = *group_of.entry(batch.partition.tp).or_insert(next);
            if index == next {
                groups.push((batch.partition.clone(), Vec::new()));
            }
            groups[index].1.push(batch);
        }
        let inputs: Vec<(TopicPartition, BytesMut)> = groups
            .iter()
            .map(|(p, _)| {
                let chunk = chunks
                    .remove(&p.tp)
                    .expect("a partition with batches has an open chunk");
                (p.tp, chunk)
            })
            .collect();
        {
            let mut sizes = self.chunk_sizes.lock().expect("chunk sizes lock");
            if sizes.len() >= CHUNK_SIZES_KEPT_MAX {
                sizes.clear();
            }
            for (tp, chunk) in &inputs {
                let estimate = sizes.entry(*tp).or_insert(0);
                *estimate = chunk.len().max(*estimate / 4 * 3);
            }
        }
        let key = strato_tiering::keys::new_segment_key();
        // Built and uploaded in a task: several flushes build and upload at once, and
        // this loop goes on taking and committing meanwhile.
        let upload = tokio::spawn(build_and_upload(
            self.tier.clone(),
            self.flush_compress,
            self.compression_workers,
            self.compressors.clone(),
            key.clone(),
            inputs,
        ));
        self.uploads_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        in_flight.push_back(InFlight {
            key,
            groups,
            started,
            upload: Some(upload),
            uploaded: None,
        });
    }

    /// Commits flushes whose uploads ended, in flush order, together (group commit): one
    /// fenced transaction per partition for all of them, holding each flush's index entry,
    /// then high watermarks move and producers get their answers. A failed upload fails its
    /// flush (its partitions rewind) after the flushes before it are committed, as if each
    /// had committed alone; partitions rewound since their batches were appended fail them
    /// (`Rewound`) without a commit.
    async fn commit_flushes(&self, flights: Vec<(InFlight, Result<Uploaded, String>)>) {
        let mut group = CommitGroup::default();
        for (flight, uploaded) in flights {
            self.uploads_in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let InFlight {
                key,
                groups,
                started,
                ..
            } = flight;
            let failure = match uploaded {
                Err(err) => Err(err),
                Ok(uploaded) => match self.too_old_to_reference(&key) {
                    // Garbage collection may already delete an object this old: fail the
                    // flush as if the upload had failed (nothing acknowledged).
                    Some(age_ms) => Err(format!(
                        "the object is {age_ms} ms old, more than half the GC grace period; not committed"
                    )),
                    None => Ok(uploaded),
                },
            };
            let uploaded = match failure {
                Ok(uploaded) => uploaded,
                Err(why) => {
                    // Its partitions rewind to what is committed, so the flushes before it
                    // commit first (a rewind must never pass batches still to commit).
                    self.commit_group(std::mem::take(&mut group)).await;
                    self.fail_upload(&key, groups, &why);
                    continue;
                }
            };
            let (groups, chunk_data) = self.drop_rewound(groups, uploaded.chunk_data);
            for ((partition, list), (meta, _)) in groups.into_iter().zip(&chunk_data) {
                let entry: IndexEntry = meta.to_index_entry(&key);
                assert_eq!(
                    entry.base_offset,
                    list.first().expect("batches").base_offset
                );
                assert_eq!(entry.last_offset, list.last().expect("batches").last_offset);
                let next = group.parts.len();
                let index = *group.part_of.entry(partition.tp).or_insert(next);
                if index == next {
                    group.parts.push((partition, Vec::new(), Vec::new()));
                }
                group.parts[index].1.push(entry);
                group.parts[index].2.extend(list);
            }
            if chunk_data.is_empty() {
                // Every partition of it was rewound: nothing of it is committed or counted.
                continue;
            }
            group.ready.push(ReadyFlush {
                key,
                started,
                chunk_data,
                object_bytes: uploaded.object_bytes,
                build: uploaded.build,
                upload: uploaded.upload,
                uploaded_at: uploaded.uploaded_at,
            });
        }
        self.commit_group(group).await;
    }

    /// Commits a group of flushes (see [`Self::commit_flushes`]).
    async fn commit_group(&self, group: CommitGroup) {
        let CommitGroup { parts, ready, .. } = group;
        if parts.is_empty() {
            self.notify_commit();
            return;
        }
        let mut txns = Vec::with_capacity(parts.len());
        let mut staged = Vec::with_capacity(parts.len());
        for (partition, entries, list) in &parts {
            let state = partition.lock();
            let first = list.first().expect("a partition here has batches");
            let last = list.last().expect("a partition here has batches");
            assert_eq!(
                first.base_offset, state.high_watermark,
                "flush of {:?} must continue at the high watermark",
                partition.tp
            );
            let mut producers = state.committed_producers.clone();
            let now_ms = now_ms();
            // Idle producers leave the state with this commit (bounded state, Kafka's
            // producer.id.expiration.ms); one with batches in this flush is not idle.
            producers.expire(now_ms, self.producer_expiration_ms);
            let markers = replay(list.iter(), &mut producers, now_ms);
            let new_hw = last.last_offset + 1;
            let record = state.state_record(new_hw, &producers);
            let tp = partition.tp;
            let mut txn = state.fenced_state_txn(tp, &record);
            for entry in entries {
                txn = txn.put(
                    keys::partition_index(tp.topic_id, tp.partition, entry.base_offset),
                    entry.encode(),
                );
            }
            txns.push(markers.add_to(txn, tp));
            staged.push((new_hw, producers, markers));
        }
        let commit_started = Instant::now();
        let results = match self.meta.txn_many(txns).await {
            Ok(results) => results,
            Err(err) => {
                self.failed_flushes
                    .fetch_add(ready.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let segments: Vec<&str> = ready.iter().map(|r| r.key.as_str()).collect();
                tracing::error!(?segments, "failed to commit flushes: {err:#}");
                for (partition, _, list) in parts {
                    // The outcome is unknown: the commit may have applied.
                    if self.rewind(&partition, list, FlushFailure::Commit) {
                        self.spawn_reload(partition);
                    }
                }
                self.notify_commit();
                return;
            }
        };
        self.flushes
            .fetch_add(ready.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for flush in &ready {
            self.flushed_bytes.fetch_add(
                flush.object_bytes as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.flush_size.observe(flush.object_bytes as u64);
            // Chunks go to the cache before the HW moves, so the first fetch finds them.
            self.tier.cache_chunks(&flush.key, &flush.chunk_data);
        }
        let mut committed_batches = 0usize;
        for (((partition, entries, list), (new_hw, producers, markers)), result) in
            parts.into_iter().zip(staged).zip(results)
        {
            match result {
                Ok(version) => {
                    {
                        let mut state = partition.lock();
                        state.high_watermark = new_hw;
                        state.state_version = version;
                        for entry in entries {
                            state.index.insert(entry.base_offset, entry);
                        }
                        for producer_id in &markers.producers {
                            state.pending_markers.remove(producer_id);
                        }
                        for aborted in markers.aborted {
                            state.aborted.insert(aborted.last_offset, aborted);
                        }
                        // What expired from the committed states goes from the checked
                        // ones too (an idle producer has nothing pending).
                        let now_ms = now_ms();
                        state.producers.expire(now_ms, self.producer_expiration_ms);
                        state.committed_producers = producers;
                    }
                    committed_batches += list.len();
                    for batch in list {
                        batch.finish(Ok(()));
                    }
                }
                Err(err) => {
                    let failure = match err {
                        MetadataError::Conflict { .. } => FlushFailure::Fenced,
                        _ => FlushFailure::Commit,
                    };
                    tracing::error!(
                        topic = %partition.topic,
                        partition = partition.tp.partition,
                        "failed to commit partition: {err:#}"
                    );
                    if failure == FlushFailure::Fenced {
                        partition.lock().fenced = true;
                    }
                    let rewound = self.rewind(&partition, list, failure);
                    if rewound && failure == FlushFailure::Commit {
                        // A timeout or lost connection: the commit may have applied.
                        self.spawn_reload(partition);
                    }
                }
            }
        }
        self.notify_commit();
        for flush in &ready {
            self.flush_duration
                .observe_duration(flush.started.elapsed());
            let phases = [
                flush.build,
                flush.upload,
                commit_started.saturating_duration_since(flush.uploaded_at),
                commit_started.elapsed(),
            ];
            for (histogram, took) in self.flush_phases.iter().zip(phases) {
                histogram.observe_duration(took);
            }
            tracing::debug!(
                segment = %flush.key,
                bytes = flush.object_bytes,
                elapsed_ms = flush.started.elapsed().as_millis() as u64,
                "segment flushed"
            );
        }
        tracing::debug!(
            flushes = ready.len(),
            batches = committed_batches,
            elapsed_ms = commit_started.elapsed().as_millis() as u64,
            "flushes committed"
        );
    }

    /// A flush whose build or upload failed: nothing of it is acknowledged, its partitions
    /// rewind.
    fn fail_upload(&self, key: &str, groups: Vec<(Arc<Partition>, Vec<PendingBatch>)>, err: &str) {
        self.failed_flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(segment = %key, "failed to upload segment: {err}");
        for (partition, list) in groups {
            self.rewind(&partition, list, FlushFailure::Upload);
        }
        self.notify_commit();
    }

    /// Fails `failed` and every later batch of the partition still in the open segment, and
    /// rewinds the partition to its committed state: nothing above the HW was visible or
    /// acked, so those offsets are simply assigned again.
    ///
    /// Batches appended before the partition's last rewind (a later flush still uploading
    /// when an earlier one failed) only fail, with `Rewound`: the partition was rewound
    /// for them already, and what was appended since is valid. Returns whether it rewound.
    fn rewind(
        &self,
        partition: &Arc<Partition>,
        failed: Vec<PendingBatch>,
        why: FlushFailure,
    ) -> bool {
        let later: Vec<PendingBatch> = {
            let mut state = partition.lock();
            if appended_before_a_rewind(&failed, state.rewinds) {
                drop(state);
                for batch in failed {
                    batch.finish(Err(FlushFailure::Rewound));
                }
                return false;
            }
            let mut open = self.open.lock().expect("open segment lock");
            let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut open.batches)
                .into_iter()
                .partition(|b| Arc::ptr_eq(&b.partition, partition));
            open.batches = others;
            if let Some(chunk) = open.chunks.remove(&partition.tp) {
                open.bytes -= chunk.len() as u64;
            }
            if open.batches.is_empty() {
                open.opened_at = None;
            }
            state.next_offset = state.high_watermark;
            state.producers = state.committed_producers.clone();
            // Every pending batch of the partition fails, its markers too: their requests
            // are still in the store and are appended again.
            state.pending_markers.clear();
            state.rewinds += 1;
            if why == FlushFailure::Commit {
                // The commit's outcome is unknown; `spawn_reload` finds it out.
                state.needs_reload = true;
            }
            mine
        };
        for batch in failed {
            batch.finish(Err(why));
        }
        for batch in later {
            batch.finish(Err(FlushFailure::Rewound));
        }
        true
    }

    /// Fails the groups of `groups` whose partition was rewound since their batches were
    /// appended (`Rewound`), and returns the others with their chunks.
    #[allow(clippy::type_complexity)]
    fn drop_rewound(
        &self,
        groups: Vec<(Arc<Partition>, Vec<PendingBatch>)>,
        chunk_data: Vec<(ChunkMeta, Bytes)>,
    ) -> (
        Vec<(Arc<Partition>, Vec<PendingBatch>)>,
        Vec<(ChunkMeta, Bytes)>,
    ) {
        assert_eq!(chunk_data.len(), groups.len(), "one chunk per partition");
        let mut kept = (
            Vec::with_capacity(groups.len()),
            Vec::with_capacity(groups.len()),
        );
        for ((partition, list), chunk) in groups.into_iter().zip(chunk_data) {
            let rewinds = partition.lock().rewinds;
            if appended_before_a_rewind(&list, rewinds) {
                for batch in list {
                    batch.finish(Err(FlushFailure::Rewound));
                }
            } else {
                kept.0.push((partition, list));
                kept.1.push(chunk);
            }
        }
        kept
    }

    /// After a commit whose outcome is unknown, the partition takes no produce until its
    /// committed state is read back from the metadata store (retried with backoff while the
    /// store is unreachable). If the commit did apply, the high watermark, index and producer
    /// states catch up, so a producer retrying those batches is deduplicated.
    fn spawn_reload(&self, partition: Arc<Partition>) {
        // `rewind` set `needs_reload` under the partition lock, so no produce slipped in
        // between; admission stays closed until this task clears it.
        debug_assert!(partition.lock().needs_reload);
        let meta = self.meta.clone();
        let commits = self.commits.clone();
        tokio::spawn(async move {
            let mut backoff = RELOAD_BACKOFF_MIN;
            for attempt in 1..=RELOAD_ATTEMPTS_MAX {
                match reload_partition(meta.as_ref(), &partition).await {
                    Ok(()) => {
                        commits.send_modify(|n| *n = n.wrapping_add(1));
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(
                            topic = %partition.topic,
                            partition = partition.tp.partition,
                            attempt,
                            "failed to reload partition state: {err:#}"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(RELOAD_BACKOFF_MAX);
                    }
                }
            }
            tracing::error!(
                topic = %partition.topic,
                partition = partition.tp.partition,
                "giving up reloading partition state; it stays unavailable until the broker \
                 regains its lease or restarts"
            );
        });
    }

    fn notify_commit(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A flushed chunk as the cache keeps it. The cache weighs a chunk by its length, so a
/// buffer with more than half its length spare (it doubled when the estimate fell short,
/// the estimate was high, or the chunk is smaller than [`CHUNK_BUFFER_MIN`]) is copied into
/// one of its length rather than kept with its spare capacity: cached chunks take at most
/// 1.5 times their weight. (Small chunks kept in 64 KiB buffers once let a 64 MiB cache
/// hold gigabytes: the soak found it, docs/SOAK.md.)
fn fit(chunk: BytesMut) -> Bytes {
    if chunk.capacity() > chunk.len() + chunk.len() / 2 {
        let mut fitted = chunk_buffer(chunk.len());
        fitted.extend_from_slice(&chunk);
        fitted.freeze()
    } else {
        chunk.freeze()
    }
}

/// A chunk buffer of at least `capacity` bytes. One that may hold a chunk of
/// [`ALIGNED_CHUNK_MIN`] starts at an [`ALIGN`] boundary of memory (at most `ALIGN` bytes
/// more are allocated): its chunk, laid at such a boundary of the flush object, is then
/// written with direct IO from here, not copied (`DirectFileStore`).
fn chunk_buffer(capacity: usize) -> BytesMut {
    if capacity < ALIGNED_CHUNK_MIN {
        return BytesMut::with_capacity(capacity);
    }
    let mut buffer = BytesMut::with_capacity(capacity + ALIGN);
    let skip = (ALIGN - buffer.as_ptr() as usize % ALIGN) % ALIGN;
    buffer.resize(skip, 0);
    bytes::Buf::advance(&mut buffer, skip);
    buffer
}

/// Backoff and bound of the reload after an uncertain commit (about 30 minutes in all).
const RELOAD_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RELOAD_BACKOFF_MAX: Duration = Duration::from_secs(2);
const RELOAD_ATTEMPTS_MAX: u32 = 1000;

/// Reads a partition's committed state back after an uncertain commit.
async fn reload_partition(
    meta: &dyn MetadataStore,
    partition: &Partition,
) -> Result<(), MetadataError> {
    let tp = partition.tp;
    let leader_key = keys::partition_leader(tp.topic_id, tp.partition);
    let state_key = keys::partition_state(tp.topic_id, tp.partition);
    let leader_version = meta.get(&leader_key).await?.map_or(0, |v| v.version);
    let (state_version, record) = match meta.get(&state_key).await? {
        Some(v) => (
            v.version,
            PartitionStateRecord::decode(&state_key, &v.value)?,
        ),
        None => (0, PartitionStateRecord::empty()),
    };
    let old_hw = partition.high_watermark();
    let known_state_version = partition.lock().state_version;
    let mut new_entries = Vec::new();
    // Something applied that was not answered: it may have appended (new entries above the
    // HW), moved the log start or swapped compacted chunks, so read the whole index again.
    let full_index = if state_version != known_state_version {
        let prefix = keys::partition_index_prefix(tp.topic_id, tp.partition);
        let mut index = std::collections::BTreeMap::new();
        for (key, value) in meta.list_all(&prefix).await? {
            let entry = IndexEntry::decode(&key, &value.value)?;
            if entry.last_offset < record.high_watermark {
                index.insert(entry.base_offset, entry);
            }
        }
        let aborted = super::partition::load_aborted(meta, tp, record.high_watermark).await?;
        Some((index, aborted))
    } else {
        None
    };
    if full_index.is_none() && record.high_watermark > old_hw {
        // Only the entries at or above the old HW, page by page (keys sort by offset).
        let prefix = keys::partition_index_prefix(tp.topic_id, tp.partition);
        let after =
            (old_hw > 0).then(|| keys::partition_index(tp.topic_id, tp.partition, old_hw - 1));
        meta.for_each(&prefix, after, &mut |key, value| {
            let entry = IndexEntry::decode(key, &value.value)?;
            if entry.base_offset >= old_hw {
                new_entries.push(entry);
            }
            Ok(())
        })
        .await?;
    }
    let mut state = partition.lock();
    if leader_version != state.leader_version {
        tracing::error!(topic = %partition.topic, partition = tp.partition, "leadership lost");
        state.fenced = true;
        state.needs_reload = false;
        return Ok(());
    }
    if state_version != state.state_version {
        tracing::warn!(
            topic = %partition.topic,
            partition = tp.partition,
            from = state.high_watermark,
            to = record.high_watermark,
            "an unacknowledged commit had applied; catching up"
        );
        assert!(
            record.high_watermark >= state.high_watermark,
            "committed HW never goes back"
        );
        for entry in new_entries {
            state.index.insert(entry.base_offset, entry);
        }
        if let Some((index, aborted)) = full_index {
            state.index = index;
            state.aborted = aborted;
        }
        state.high_watermark = record.high_watermark;
        state.next_offset = record.high_watermark;
        state.state_version = state_version;
        // A log start move (trim) may be what applied.
        state.log_start_offset = state.log_start_offset.max(record.log_start_offset);
        let log_start = state.log_start_offset;
        state.index.retain(|_, e| e.last_offset >= log_start);
        let producers = super::producer::ProducerStates::from_records(&record.producers);
        state.producers = producers.clone();
        state.committed_producers = producers;
        state.rewinds += 1;
    }
    state.needs_reload = false;
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the markers of one partition's flush add to its commit.
#[derive(Debug, Default)]
pub(crate) struct MarkerCommit {
    /// Producers whose marker is in the flush (their requests are deleted).
    pub(crate) producers: Vec<i64>,
    /// Aborted transactions ended by the flush's abort markers.
    pub(crate) aborted: Vec<AbortedTxnRecord>,
}

impl MarkerCommit {
    /// Adds the request deletions and aborted entries to the partition's commit `txn`.
    pub(crate) fn add_to(&self, mut txn: Txn, tp: TopicPartition) -> Txn {
        for producer_id in &self.producers {
            txn = txn.delete(keys::txn_marker(tp.topic_id, tp.partition, *producer_id));
        }
        for aborted in &self.aborted {
            txn = txn.put(
                keys::partition_aborted(tp.topic_id, tp.partition, aborted.last_offset),
                aborted.encode(),
            );
        }
        txn
    }
}

/// Applies a partition's flushed batches, in offset order, to its committed producer
/// states (the flusher, before the commit): data batches as written (opening transactions),
/// markers ending them; returns what the markers add to the commit.
pub(crate) fn replay<'a>(
    list: impl Iterator<Item = &'a PendingBatch>,
    producers: &mut ProducerStates,
    now_ms: i64,
) -> MarkerCommit {
    let mut markers = MarkerCommit::default();
    for batch in list {
        if let Some(p) = &batch.producer {
            producers.record(p, batch.base_offset, batch.last_offset, now_ms);
        }
        if let Some(marker) = &batch.marker {
            let first_offset = producers.end_txn(marker.producer_id, marker.producer_epoch, now_ms);
            markers.producers.push(marker.producer_id);
            // A producer that wrote nothing here in the transaction needs no entry: there is
            // nothing for readers to drop.
            if let (false, Some(first_offset)) = (marker.commit, first_offset) {
                markers.aborted.push(AbortedTxnRecord {
                    v: RECORD_FORMAT_V1,
                    producer_id: marker.producer_id,
                    first_offset,
                    last_offset: batch.base_offset,
                    // Not raised to the log start: it only bounds where readers look
                    // for transactions aborted later.
                    last_stable_offset: Some(last_stable_offset(
                        producers,
                        batch.last_offset + 1,
                        0,
                    )),
                });
            }
        }
    }
    markers
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cached_chunk_holds_at_most_half_its_length_spare() {
        use bytes::BufMut;
        // A small chunk in a buffer of CHUNK_BUFFER_MIN is copied out of it.
        let mut small = BytesMut::with_capacity(super::CHUNK_BUFFER_MIN);
        small.put_slice(&[7u8; 2048]);
        let buffer = small.as_ptr();
        let fitted = super::fit(small);
        assert_eq!(&fitted[..], &[7u8; 2048][..]);
        assert_ne!(
            fitted.as_ptr(),
            buffer,
            "copied into a buffer of its length"
        );
        // A chunk that filled most of its buffer is kept in it.
        let mut full = BytesMut::with_capacity(super::CHUNK_BUFFER_MIN);
        full.put_slice(&vec![1u8; super::CHUNK_BUFFER_MIN - 100]);
        let buffer = full.as_ptr();
        assert_eq!(super::fit(full).as_ptr(), buffer, "kept without a copy");
        // A large chunk copied out of its buffer is aligned, as new chunk buffers are.
        let mut large = super::chunk_buffer(4 * super::ALIGNED_CHUNK_MIN);
        assert_eq!(large.as_ptr() as usize % super::ALIGN, 0);
        assert!(large.capacity() >= 4 * super::ALIGNED_CHUNK_MIN);
        large.put_slice(&vec![2u8; super::ALIGNED_CHUNK_MIN + 1]);
        let fitted = super::fit(large);
        assert_eq!(fitted.as_ptr() as usize % super::ALIGN, 0);
        assert_eq!(&fitted[..], &vec![2u8; super::ALIGNED_CHUNK_MIN + 1][..]);
    }

    use std::collections::{BTreeMap, HashSet};

    use object_store::memory::InMemory;
    use strato_metadata::Txn;
    use strato_metadata::embedded::EmbeddedStore;
    use strato_metadata::model::{LeaderRecord, PartitionStateRecord, RECORD_FORMAT_V1};
    use strato_metadata::testing::faulty::FaultyMetadataStore;
    use strato_tiering::TierConfig;
    use strato_tiering::batch::test_support::simple_batch;
    use strato_tiering::cache::{ChunkCache, ChunkCacheConfig};
    use strato_tiering::faulty::FaultyObjectStore;

    use super::*;
    use crate::log::topics::{Topic, TopicRegistry};

    /// Uploads in flight in these tests: more than one, so pipelining is exercised.
    const UPLOADS_MAX_TEST: usize = 4;

    struct Setup {
        log: Arc<LogWriter>,
        meta: Arc<dyn MetadataStore>,
        faulty_meta: Arc<FaultyMetadataStore>,
        store: Arc<FaultyObjectStore>,
        topic: Arc<Topic>,
        shutdown: CancellationToken,
        _dir: tempfile::TempDir,
    }

    async fn setup(partitions: i32, flush_interval: Duration, flush_bytes: u64) -> Setup {
        setup_with(
            partitions,
            flush_interval,
            flush_bytes,
            Duration::from_secs(3600),
            None,
        )
        .await
    }

    /// `idle_min`: `--flush-when-idle` with that `--flush-when-idle-min-bytes`, or off.
    async fn setup_with(
        partitions: i32,
        flush_interval: Duration,
        flush_bytes: u64,
        gc_grace: Duration,
        idle_min: Option<u64>,
    ) -> Setup {
        setup_on(
            Objects::in_memory(),
            partitions,
            flush_interval,
            flush_bytes,
            gc_grace,
            idle_min,
            IDLE_GATHER,
        )
        .await
    }

    /// The object store under the fault wrapper, and `flush_compress`.
    struct Objects {
        store: Arc<dyn object_store::ObjectStore>,
        compress: bool,
    }

    impl Objects {
        /// What most tests flush to: memory, zstd-compressed.
        fn in_memory() -> Self {
            Self {
                store: Arc::new(InMemory::new()),
                compress: true,
            }
        }
    }

    async fn setup_on(
        objects: Objects,
        partitions: i32,
        flush_interval: Duration,
        flush_bytes: u64,
        gc_grace: Duration,
        idle_min: Option<u64>,
        idle_gather: Duration,
    ) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let embedded: Arc<dyn MetadataStore> =
            Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
        let faulty_meta = Arc::new(FaultyMetadataStore::new(embedded));
        let meta: Arc<dyn MetadataStore> = faulty_meta.clone();
        let lease = meta.grant_lease(Duration::from_secs(60)).await.unwrap();
        let me = strato_metadata::model::BrokerRecord {
            v: strato_metadata::model::RECORD_FORMAT_V1,
            broker_id: 0,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            endpoints: Vec::new(),
            http_port: None,
            state: None,
        };
        let cluster = Arc::new(crate::cluster::ClusterView::new(0, me));
        let registry = TopicRegistry::new(meta.clone(), cluster, lease);
        let topic = registry
            .create("t", partitions, BTreeMap::new(), false)
            .await
            .unwrap();
        let store = Arc::new(FaultyObjectStore::new(objects.store));
        let config = TierConfig {
            put_retries_max: 2,
            retry_backoff_base: Duration::from_millis(1),
            retry_backoff_max: Duration::from_millis(2),
            ..TierConfig::default()
        };
        let cache = ChunkCache::open(ChunkCacheConfig::memory(1 << 20))
            .await
            .unwrap();
        let tier = Arc::new(Tier::new(store.clone(), cache, config));
        let log = LogWriter::new(
            tier,
            meta.clone(),
            LogWriterConfig {
                flush_interval,
                flush_bytes,
                flush_when_idle: idle_min.is_some(),
                flush_when_idle_min_bytes: idle_min.unwrap_or(0),
                idle_gather,
                flush_compress: objects.compress,
                unflushed_max: 1 << 24,
                uploads_max: UPLOADS_MAX_TEST,
                producer_expiration: Duration::from_secs(86_400),
                gc_grace,
            },
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(log.clone().run(shutdown.clone()));
        Setup {
            log,
            meta,
            faulty_meta,
            store,
            topic,
            shutdown,
            _dir: dir,
        }
    }

    /// The objects of `partition`'s index entries, in offset order.
    fn chunk_objects(partition: &Arc<Partition>) -> Vec<String> {
        partition
            .lock()
            .index
            .values()
            .map(|e| e.object.clone())
            .collect()
    }

    /// What the produce handler does for one batch: assign offsets under the partition lock
    /// and append to the open segment.
    async fn append(
        log: &LogWriter,
        partition: &Arc<Partition>,
        records: usize,
    ) -> (Offset, oneshot::Receiver<Result<(), FlushFailure>>) {
        let mut bytes = simple_batch(0, records);
        let permit = log.reserve(bytes.len()).await.unwrap();
        let mut state = partition.lock();
        let base = state.next_offset;
        strato_tiering::batch::set_base_offset(&mut bytes, base);
        let (tx, rx) = oneshot::channel();
        let pending = PendingBatch {
            partition: partition.clone(),
            base_offset: base,
            last_offset: base + records as i64 - 1,
            producer: None,
            marker: None,
            done: Some(tx),
            permit,
            rewinds: state.rewinds,
        };
        assert!(log.append_locked(pending, &bytes, |_| {}).is_ok());
        state.next_offset = base + records as i64;
        (base, rx)
    }

    /// A transactional batch of `records` records of producer `producer_id` (epoch 0,
    /// sequence `sequence`), appended as the produce handler does once it is verified.
    async fn append_txn(
        log: &LogWriter,
        partition: &Arc<Partition>,
        producer_id: i64,
        sequence: i32,
        records: usize,
    ) -> (Offset, oneshot::Receiver<Result<(), FlushFailure>>) {
        let mut bytes = strato_tiering::batch::test_support::build_batch(
            &strato_tiering::batch::test_support::BatchSpec {
                records,
                attributes: 0x10,
                producer_id,
                producer_epoch: 0,
                base_sequence: sequence,
                ..Default::default()
            },
        );
        let permit = log.reserve(bytes.len()).await.unwrap();
        let mut state = partition.lock();
        let base = state.next_offset;
        strato_tiering::batch::set_base_offset(&mut bytes, base);
        let incoming = IncomingBatch {
            producer_id,
            producer_epoch: 0,
            first_sequence: sequence,
            last_sequence: sequence + records as i32 - 1,
            transactional: true,
        };
        let last = base + records as i64 - 1;
        let (tx, rx) = oneshot::channel();
        let pending = PendingBatch {
            partition: partition.clone(),
            base_offset: base,
            last_offset: last,
            producer: Some(incoming),
            marker: None,
            done: Some(tx),
            permit,
            rewinds: state.rewinds,
        };
        assert!(log.append_locked(pending, &bytes, |_| {}).is_ok());
        state.next_offset = last + 1;
        state.producers.record(&incoming, base, last, now_ms());
        (base, rx)
    }

    /// Requests a marker in the store and appends it as the marker writer does.
    async fn append_marker(
        s: &Setup,
        partition: &Arc<Partition>,
        producer_id: i64,
        commit: bool,
    ) -> oneshot::Receiver<Result<(), FlushFailure>> {
        let record = request_marker(s, partition, producer_id, commit).await;
        append_requested(s, partition, &record).await
    }

    async fn request_marker(
        s: &Setup,
        partition: &Arc<Partition>,
        producer_id: i64,
        commit: bool,
    ) -> strato_metadata::model::TxnMarkerRecord {
        let tp = partition.tp;
        let record = strato_metadata::model::TxnMarkerRecord {
            v: RECORD_FORMAT_V1,
            transactional_id: "txn".into(),
            producer_id,
            producer_epoch: 0,
            commit,
            coordinator_epoch: 0,
        };
        s.meta
            .txn(Txn::new().put(
                keys::txn_marker(tp.topic_id, tp.partition, producer_id),
                record.encode(),
            ))
            .await
            .unwrap();
        record
    }

    async fn append_requested(
        s: &Setup,
        partition: &Arc<Partition>,
        record: &strato_metadata::model::TxnMarkerRecord,
    ) -> oneshot::Receiver<Result<(), FlushFailure>> {
        let permit = s
            .log
            .reserve(crate::log::markers::MARKER_BATCH_BYTES)
            .await
            .unwrap();
        match crate::log::markers::append_marker(&s.log, partition, record, permit) {
            crate::log::markers::Step::Appended(done) => done,
            _ => panic!("marker not appended"),
        }
    }

    async fn marker_requested(meta: &dyn MetadataStore, tp: TopicPartition, id: i64) -> bool {
        let key = keys::txn_marker(tp.topic_id, tp.partition, id);
        meta.get(&key).await.unwrap().is_some()
    }

    /// Goal: a transaction holds the last stable offset at its first offset until its marker
    /// commits; the marker's commit deletes its request and, for an abort, puts the aborted
    /// entry (also in memory), and a commit marker leaves no entry. Method: two producers'
    /// transactions on one partition, one aborted and one committed, through the flusher.
    #[tokio::test]
    async fn markers_end_transactions_in_the_commit_that_writes_them() {
        let s = setup(1, Duration::from_millis(5), 8 << 20).await;
        let partition = s.topic.partitions[0].clone();
        let tp = partition.tp;
        let (_, plain) = append(&s.log, &partition, 2).await;
        let (first_a, a) = append_txn(&s.log, &partition, 100, 0, 3).await;
        let (first_b, b) = append_txn(&s.log, &partition, 200, 0, 1).await;
        for done in [plain, a, b] {
            assert_eq!(done.await.unwrap(), Ok(()));
        }
        assert_eq!((first_a, first_b), (2, 5));
        assert_eq!(partition.high_watermark(), 6);
        assert_eq!(
            partition.last_stable_offset(),
            2,
            "held at A's first offset"
        );
        let committed = committed_state(s.meta.as_ref(), &partition).await;
        let first_offsets: Vec<_> = committed
            .producers
            .iter()
            .map(|p| (p.producer_id, p.txn_first_offset))
            .collect();
        assert_eq!(first_offsets, vec![(100, Some(2)), (200, Some(5))]);

        let abort_a = append_marker(&s, &partition, 100, false).await;
        assert_eq!(abort_a.await.unwrap(), Ok(()));
        assert_eq!(partition.high_watermark(), 7);
        assert_eq!(partition.last_stable_offset(), 5, "now held by B");
        assert!(!marker_requested(s.meta.as_ref(), tp, 100).await);
        let aborted_key = keys::partition_aborted(tp.topic_id, tp.partition, 6);
        let stored = s
            .meta
            .get(&aborted_key)
            .await
            .unwrap()
            .expect("aborted entry");
        let stored =
            strato_metadata::model::AbortedTxnRecord::decode(&aborted_key, &stored.value).unwrap();
        assert_eq!(
            (stored.producer_id, stored.first_offset, stored.last_offset),
            (100, 2, 6)
        );
        assert_eq!(stored.last_stable_offset, Some(5), "B was still open");
        assert_eq!(partition.lock().aborted.get(&6), Some(&stored));

        let commit_b = append_marker(&s, &partition, 200, true).await;
        assert_eq!(commit_b.await.unwrap(), Ok(()));
        assert_eq!(partition.high_watermark(), 8);
        assert_eq!(partition.last_stable_offset(), 8, "nothing open: the HW");
        assert!(!marker_requested(s.meta.as_ref(), tp, 200).await);
        assert_eq!(partition.lock().aborted.len(), 1, "a commit adds no entry");
        let committed = committed_state(s.meta.as_ref(), &partition).await;
        assert!(
            committed
                .producers
                .iter()
                .all(|p| p.txn_first_offset.is_none())
        );
        assert!(partition.lock().pending_markers.is_empty());

        // Retention past the abort marker deletes its entry in the same transaction.
        assert_eq!(s.log.trim(partition.clone(), 7).await, Ok(7));
        assert!(s.meta.get(&aborted_key).await.unwrap().is_none());
        assert!(partition.lock().aborted.is_empty());
        s.shutdown.cancel();
    }

    /// Goal: a marker whose flush fails is not half-applied: the transaction is still open,
    /// the request is still in the store, no aborted entry exists, and the marker can be
    /// appended again and commits once.
    #[tokio::test]
    async fn a_failed_marker_flush_leaves_the_request_for_a_retry() {
        let s = setup(1, Duration::from_millis(5), 8 << 20).await;
        let partition = s.topic.partitions[0].clone();
        let tp = partition.tp;
        let (_, a) = append_txn(&s.log, &partition, 100, 0, 2).await;
        assert_eq!(a.await.unwrap(), Ok(()));
        s.store.fail_next_puts(1000);
        let abort = append_marker(&s, &partition, 100, false).await;
        assert_eq!(abort.await.unwrap(), Err(FlushFailure::Upload));
        {
            let state = partition.lock();
            assert!(state.pending_markers.is_empty());
            assert_eq!(state.last_stable_offset(), 0);
            assert_eq!(state.next_offset, 2, "rewound");
            assert!(state.aborted.is_empty());
        }
        assert!(marker_requested(s.meta.as_ref(), tp, 100).await);
        s.store.fail_next_puts(0);
        let abort = append_marker(&s, &partition, 100, false).await;
        assert_eq!(abort.await.unwrap(), Ok(()));
        assert_eq!(partition.last_stable_offset(), 3);
        assert_eq!(partition.lock().aborted.len(), 1);
        assert!(!marker_requested(s.meta.as_ref(), tp, 100).await);
        s.shutdown.cancel();
    }

    /// Goal: after a marker commit whose answer was lost, the reload finds the aborted entry
    /// and the closed transaction (so nothing is written twice and reads hide the aborted
    /// records).
    #[tokio::test]
    async fn reload_after_a_lost_marker_commit_answer_restores_aborted_transactions() {
        let s = setup(1, Duration::from_millis(5), 8 << 20).await;
        let partition = s.topic.partitions[0].clone();
        let (_, a) = append_txn(&s.log, &partition, 100, 0, 2).await;
        assert_eq!(a.await.unwrap(), Ok(()));
        let record = request_marker(&s, &partition, 100, false).await;
        s.faulty_meta.lose_next_txn_answers(1);
        let abort = append_requested(&s, &partition, &record).await;
        assert_eq!(abort.await.unwrap(), Err(FlushFailure::Commit));
        wait_reloaded(&partition).await;
        let state = partition.lock();
        assert_eq!(state.high_watermark, 3);
        assert_eq!(state.last_stable_offset(), 3);
        assert_eq!(state.aborted.keys().copied().collect::<Vec<_>>(), vec![2]);
        drop(state);
        s.shutdown.cancel();
    }

    async fn committed_state(
        meta: &dyn MetadataStore,
        partition: &Partition,
    ) -> PartitionStateRecord {
        let key = keys::partition_state(partition.tp.topic_id, partition.tp.partition);
        let value = meta.get(&key).await.unwrap().expect("state committed");
        PartitionStateRecord::decode(&key, &value.value).unwrap()
    }

    /// Goal: when the upload fails after its retries, no batch of that flush (nor a later
    /// pending batch of the partition) is acknowledged, the partition rewinds to its high
    /// watermark, and the next produce reuses the offsets once the store recovers.
    #[tokio::test]
    async fn failed_upload_acks_nothing_and_rewinds() {
        let s = setup(1, Duration::from_millis(5), 8 << 20).await;
        let partition = s.topic.partitions[0].clone();
        s.store.fail_next_puts(1000);
        let (base_a, a) = append(&s.log, &partition, 2).await;
        let (base_b, b) = append(&s.log, &partition, 3).await;
        assert_eq!((base_a, base_b), (0, 2));
        assert_eq!(a.await.unwrap(), Err(FlushFailure::Upload));
        assert!(b.await.unwrap().is_err());
        {
            let state = partition.lock();
            assert_eq!(state.high_watermark, 0);
            assert_eq!(state.next_offset, 0, "rewound to the high watermark");
            assert!(state.index.is_empty());
        }
        s.store.fail_next_puts(0);
        let (base_c, c) = append(&s.log, &partition, 4).await;
        assert_eq!(base_c, 0, "offsets of the failed batches are reused");
        assert_eq!(c.await.unwrap(), Ok(()));
        assert_eq!(partition.high_watermark(), 4);
        assert_eq!(
            committed_state(s.meta.as_ref(), &partition)
                .await
                .high_watermark,
            4
        );
        s.shutdown.cancel();
    }

    /// Waits (polling, with a deadline) until `ready` holds.
    async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !ready() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Goal: a flush uploads while an earlier one is still uploading (pipelined), and
    /// commits still happen in flush order: the later flush, though uploaded first, is
    /// acknowledged only after the earlier one commits.
    /// Method: the first PUT is held until released; the second goes through.
    #[tokio::test]
    async fn uploads_overlap_and_commits_keep_flush_order() {
        let s = setup(2, Duration::from_millis(5), 8 << 20).await;
        let (p0, p1) = (s.topic.partitions[0].clone(), s.topic.partitions[1].clone());
        s.store.hold_next_puts(1);
        let (_, mut a) = append(&s.log, &p0, 2).await;
        wait_until("first upload held", || s.store.puts_held() == 1).await;
        let (_, mut b) = append(&s.log, &p1, 3).await;
        wait_until("second upload done", || s.store.puts_completed() == 1).await;
        assert!(
            a.try_recv().is_err() && b.try_recv().is_err(),
            "nothing acked yet"
        );
        assert_eq!((p0.high_watermark(), p1.high_watermark()), (0, 0));
        s.store.release_held_puts(false);
        assert_eq!(a.await.unwrap(), Ok(()));
        assert_eq!(b.await.unwrap(), Ok(()));
        assert_eq!((p0.high_watermark(), p1.high_watermark()), (2, 3));
        let objects: HashSet<String> = [&p0, &p1].iter().flat_map(|p| chunk_objects(p)).collect();
        assert_eq!(objects.len(), 2, "two flushes, two objects");
        s.shutdown.cancel();
    }

    /// Goal: with `flush_when_idle`, a batch appended while no flush is under way is flushed
    /// at once (the interval here is an hour), and batches appended while a flush uploads
    /// gather and go together in one flush after it.
    /// Method: the first PUT is held; two appends to two partitions meanwhile; once it is
    /// released, all three are acknowledged, the later two from one object.
    #[tokio::test]
    async fn an_idle_flusher_flushes_at_once_and_gathers_while_busy() {
        let s = setup_with(
            2,
            Duration::from_secs(3600),
            8 << 20,
            Duration::from_secs(3600),
            Some(0),
        )
        .await;
        let (p0, p1) = (s.topic.partitions[0].clone(), s.topic.partitions[1].clone());
        s.store.hold_next_puts(1);
        let (_, a) = append(&s.log, &p0, 2).await;
        wait_until("the first flush's upload", || s.store.puts_held() == 1).await;
        let (_, b) = append(&s.log, &p0, 1).await;
        let (_, c) = append(&s.log, &p1, 3).await;
        s.store.release_held_puts(false);
        for done in [a, b, c] {
            let acked = tokio::time::timeout(Duration::from_secs(10), done).await;
            assert_eq!(
                acked.expect("acknowledged without the interval"),
                Ok(Ok(()))
            );
        }
        assert_eq!((p0.high_watermark(), p1.high_watermark()), (3, 3));
        let (first, second) = (chunk_objects(&p0), chunk_objects(&p1));
        assert_eq!(first.len(), 2, "p0: one chunk per flush");
        assert_eq!(
            second,
            vec![first[1].clone()],
            "the gathered batches share a flush"
        );
        s.shutdown.cancel();
    }

    /// Goal: an idle flusher waits for a Produce request that is still appending (its
    /// batches go in one flush) and flushes the moment the last one is done.
    /// Method: an hour's interval and an hour's `idle_gather`; while a request's guard is
    /// held, two batches of two partitions are appended; both are acknowledged once the
    /// guard drops (not an hour later), from one object.
    #[tokio::test]
    async fn an_idle_flusher_waits_for_the_appending_request_and_no_longer() {
        let hour = Duration::from_secs(3600);
        let s = setup_on(Objects::in_memory(), 2, hour, 8 << 20, hour, Some(0), hour).await;
        let (p0, p1) = (s.topic.partitions[0].clone(), s.topic.partitions[1].clone());
        let request = s.log.appending();
        let (_, a) = append(&s.log, &p0, 2).await;
        tokio::task::yield_now().await;
        let (_, b) = append(&s.log, &p1, 3).await;
        drop(request);
        for done in [a, b] {
            let acked = tokio::time::timeout(Duration::from_secs(10), done).await;
            assert_eq!(acked.expect("acknowledged once appended"), Ok(Ok(())));
        }
        assert_eq!(
            chunk_objects(&p0),
            chunk_objects(&p1),
            "one request, one flush"
        );
        assert_eq!(s.store.puts_completed(), 1);
        s.shutdown.cancel();
    }

    /// Goal: with a minimum for idle flushes (S3's default), an idle segment smaller than it
    /// waits for the interval, and the append that brings it to the minimum flushes it at
    /// once (with what was waiting).
    /// Method: an hour's interval; a small batch is not acknowledged while the flusher is
    /// idle; a batch that passes the minimum gets both acknowledged from one object.
    #[tokio::test]
    async fn an_idle_flush_waits_for_its_minimum_size() {
        let first = simple_batch(0, 1).len() as u64;
        let s = setup_with(
            1,
            Duration::from_secs(3600),
            8 << 20,
            Duration::from_secs(3600),
            Some(first + 1),
        )
        .await;
        let p0 = s.topic.partitions[0].clone();
        let (_, mut small) = append(&s.log, &p0, 1).await;
        // Nothing is under way, so the flusher would have flushed within IDLE_GATHER; give it
        // a hundred times that (an interval of an hour cannot have elapsed).
        let waited = tokio::time::timeout(IDLE_GATHER * 100, &mut small).await;
        assert!(waited.is_err(), "flushed below the idle minimum");
        assert_eq!(s.store.puts_completed(), 0);
        let (_, larger) = append(&s.log, &p0, 2).await;
        for done in [small, larger] {
            let acked = tokio::time::timeout(Duration::from_secs(10), done).await;
            assert_eq!(
                acked.expect("acknowledged once the minimum was reached"),
                Ok(Ok(()))
            );
        }
        assert_eq!(p0.high_watermark(), 3);
        assert_eq!(p0.lock().index.len(), 1, "both batches in one flush");
        s.shutdown.cancel();
    }

    /// Goal: at most `uploads_max` flushes upload at once; a segment due meanwhile waits
    /// in the open segment, then goes when one of them commits.
    /// Method: every append fills the segment (flush at once); the first 4 PUTs are held;
    /// two trims, run by the flusher loop one pass after another, prove the loop went
    /// round with the fifth segment due.
    /// Goal: while a commit runs, new flushes start and upload, and the flushes whose uploads
    /// ended meanwhile are committed together (group commit) in flush order: one more
    /// `txn_many`, one transaction per partition holding each flush's index entry.
    /// Method: the first commit is held until released; two more flushes upload meanwhile.
    #[tokio::test]
    async fn flushes_uploaded_during_a_commit_are_committed_together() {
        let s = setup(2, Duration::from_millis(5), 8 << 20).await;
        let (p0, p1) = (s.topic.partitions[0].clone(), s.topic.partitions[1].clone());
        s.faulty_meta.hold_next_txn_manys(1);
        let (_, a) = append(&s.log, &p0, 2).await;
        wait_until("first commit held", || s.faulty_meta.txn_manys_held() == 1).await;
        let calls_before = s.faulty_meta.txn_many_calls();
        let (_, b) = append(&s.log, &p0, 3).await;
        let (_, c) = append(&s.log, &p1, 1).await;
        wait_until("second upload done", || s.store.puts_completed() == 2).await;
        let (_, d) = append(&s.log, &p0, 4).await;
        wait_until("third upload done", || s.store.puts_completed() == 3).await;
        assert_eq!((p0.high_watermark(), p1.high_watermark()), (0, 0));
        s.faulty_meta.release_held_txn_manys();
        for (name, ack) in [("a", a), ("b", b), ("c", c), ("d", d)] {
            assert_eq!(ack.await.unwrap(), Ok(()), "batch {name}");
        }
        assert_eq!((p0.high_watermark(), p1.high_watermark()), (9, 1));
        assert_eq!(
            s.faulty_meta.txn_many_calls() - calls_before,
            1,
            "the two later flushes commit in one txn_many"
        );
        let entries: Vec<(Offset, Offset, String)> = p0
            .lock()
            .index
            .values()
            .map(|e| (e.base_offset, e.last_offset, e.object.clone()))
            .collect();
        assert_eq!(
            entries.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(),
            vec![(0, 1), (2, 4), (5, 8)]
        );
        let objects: HashSet<&String> = entries.iter().map(|e| &e.2).collect();
        assert_eq!(objects.len(), 3, "three flushes, three objects");
        for partition in [&p0, &p1] {
            let state = committed_state(s.meta.as_ref(), partition).await;
            assert_eq!(state.high_watermark, partition.high_watermark());
            let stored = s
                .meta
                .list_all(&keys::partition_index_prefix(
                    partition.tp.topic_id,
                    partition.tp.partition,
                ))
                .await
                .unwrap();
            assert_eq!(stored.len(), partition.lock().index.len());
        }
        s.shutdown.cancel();
    }

    /// Goal: a group commit that fails fails every batch of every flush in it (nothing of
    /// them acknowledged), the partitions rewind to what committed before, and produce goes
    /// on from there once their state is read back.
    /// Method: the first commit is held, a failure is armed for the next one, and two
    /// flushes upload meanwhile.
    #[tokio::test]
    async fn a_failed_group_commit_fails_all_of_its_flushes() {
        let s = setup(2, Duration::from_millis(5), 8 << 20).await;
        let (p0, p1) = (s.topic.partitions[0].clone(), s.topic.partitions[1].clone());
        s.faulty_meta.hold_next_txn_manys(1);
        let (_, a) = append(&s.log, &p0, 2).await;
        wait_until("first commit held", || s.faulty_meta.txn_manys_held() == 1).await;
        s.faulty_meta.fail_next_txns(1);
        let (_, b) = append(&s.log, &p0, 3).await;
        let (_, c) = append(&s.log, &p1, 1).await;
        wait_until("second upload done", || s.store.puts_completed() == 2).await;
        let (_, d) = append(&s.log, &p0, 4).await;
        wait_until("third upload done", || s.store.puts_completed() == 3).await;
        s.faulty_meta.release_held_txn_manys();
        assert_eq!(a.await.unwrap(), Ok(()));
        for (name, ack) in [("b", b), ("c", c), ("d", d)] {
            assert_eq!(
                ack.await.unwrap(),
                Err(FlushFailure::Commit),
                "batch {name}"
            );
        }
        wait_reloaded(&p0).await;
        wait_reloaded(&p1).await;
        assert_eq!((p0.high_watermark(), p1.high_watermark()), (2, 0));
        assert_eq!(
            committed_state(s.meta.as_ref(), &p0).await.high_watermark,
            2
        );
        let (base, e) = append(&s.log, &p0, 1).await;
        assert_eq!(base, 2, "the failed offsets are given out again");
        assert_eq!(e.await.unwrap(), Ok(()));
        assert_eq!(p0.high_watermark(), 3);
        s.shutdown.cancel();
    }

    /// Goal: a flush whose upload failed, in the middle of a group commit, fails after the
    /// flushes before it commit, as if each had committed alone: its partition rewinds to the
    /// high watermark those commits set, the flushes after it lose only that partition's
    /// batches (`Rewound`), and the next batch continues at the high watermark (a rewind that
    /// passed batches still to commit would give their offsets out again).
    /// Method: the first commit is held while three flushes upload, the middle one failing.
    #[tokio::test]
    async fn a_failed_upload_inside_a_group_commits_the_flushes_before_it_first() {
        let s = setup(2, Duration::from_millis(5), 8 << 20).await;
        let (p0, p1) = (s.topic.partitions[0].clone(), s.topic.partitions[1].clone());
        s.faulty_meta.hold_next_txn_manys(1);
        let (_, a) = append(&s.log, &p1, 1).await;
        wait_until("first commit held", || s.faulty_meta.txn_manys_held() == 1).await;
        let (_, b) = append(&s.log, &p0, 2).await;
        wait_until("second upload done", || s.store.puts_completed() == 2).await;
        s.store.hold_next_puts(1);
        let (_, c) = append(&s.log, &p0, 3).await;
        wait_until("third upload held", || s.store.puts_held() == 1).await;
        let (_, d) = append(&s.log, &p0, 4).await;
        let (_, e) = append(&s.log, &p1, 5).await;
        wait_until("fourth upload done", || s.store.puts_completed() == 3).await;
        s.store.release_held_puts(true);
        // The held PUT and its two retries (`put_retries_max` 2) fail.
        wait_until("third upload failed", || s.store.puts_failed() == 3).await;
        s.faulty_meta.release_held_txn_manys();
        assert_eq!(a.await.unwrap(), Ok(()));
        assert_eq!(b.await.unwrap(), Ok(()));
        assert_eq!(c.await.unwrap(), Err(FlushFailure::Upload));
        assert_eq!(d.await.unwrap(), Err(FlushFailure::Rewound));
        assert_eq!(e.await.unwrap(), Ok(()));
        assert_eq!((p0.high_watermark(), p1.high_watermark()), (2, 6));
        assert_eq!(p0.lock().next_offset, 2);
        let (base, f) = append(&s.log, &p0, 1).await;
        assert_eq!(base, 2, "p0 continues at its high watermark");
        assert_eq!(f.await.unwrap(), Ok(()));
        assert_eq!(
            committed_state(s.meta.as_ref(), &p0).await.high_watermark,
            3
        );
        s.shutdown.cancel();
    }

    #[tokio::test]
    async fn uploads_in_flight_are_bounded() {
        let batch_len = simple_batch(0, 1).len() as u64;
        let s = setup(1, Duration::from_secs(3600), batch_len).await;
        let partition = s.topic.partitions[0].clone();
        s.store.hold_next_puts(UPLOADS_MAX_TEST as u32);
        let mut acks = Vec::new();
        for held in 1..=UPLOADS_MAX_TEST as u32 {
            acks.push(append(&s.log, &partition, 1).await.1);
            wait_until("upload held", || s.store.puts_held() == held).await;
        }
        acks.push(append(&s.log, &partition, 1).await.1);
        for _ in 0..2 {
            s.log.trim(partition.clone(), 0).await.unwrap();
        }
        assert_eq!(
            s.store.puts_seen(),
            UPLOADS_MAX_TEST as u64,
            "no fifth upload"
        );
        assert_eq!(s.log.stats().uploads_in_flight, UPLOADS_MAX_TEST as u64);
        s.store.release_held_puts(false);
        for ack in acks {
            assert_eq!(ack.await.unwrap(), Ok(()));
        }
        assert_eq!(partition.high_watermark(), UPLOADS_MAX_TEST as i64 + 1);
        assert_eq!(s.log.stats().uploads_in_flight, 0);
        s.shutdown.cancel();
    }

    /// Goal: when a flush's upload fails while a later flush is already uploaded, the
    /// later flush commits its other partitions but not the failed partition's batches
    /// (their offsets are given out again): those fail as `Rewound`, nothing of them is
    /// acknowledged or indexed, and the partition goes on from its high watermark.
    #[tokio::test]
    async fn a_failed_upload_fails_the_later_flushes_of_its_partitions_only() {
        let s = setup(2, Duration::from_millis(5), 8 << 20).await;
        let (p0, p1) = (s.topic.partitions[0].clone(), s.topic.partitions[1].clone());
        s.store.hold_next_puts(1);
        let (_, a) = append(&s.log, &p0, 2).await;
        wait_until("first upload held", || s.store.puts_held() == 1).await;
        let (base_b, b) = append(&s.log, &p0, 3).await;
        let (_, c) = append(&s.log, &p1, 1).await;
        assert_eq!(base_b, 2);
        wait_until("later upload done", || s.store.puts_completed() >= 1).await;
        s.store.release_held_puts(true);
        assert_eq!(a.await.unwrap(), Err(FlushFailure::Upload));
        assert_eq!(b.await.unwrap(), Err(FlushFailure::Rewound));
        assert_eq!(c.await.unwrap(), Ok(()));
        assert_eq!(p1.high_watermark(), 1);
        {
            let state = p0.lock();
            assert_eq!((state.high_watermark, state.next_offset), (0, 0));
            assert!(state.index.is_empty(), "nothing of p0 indexed");
        }
        let (base_d, d) = append(&s.log, &p0, 4).await;
        assert_eq!(base_d, 0, "the failed offsets are given out again");
        assert_eq!(d.await.unwrap(), Ok(()));
        assert_eq!(p0.high_watermark(), 4);
        assert_eq!(p0.lock().index.len(), 1);
        assert_eq!(
            committed_state(s.meta.as_ref(), &p0).await.high_watermark,
            4
        );
        s.shutdown.cancel();
    }

    /// Goal: an object older than half the GC grace when its upload ends is never
    /// referenced, since garbage collection may already be deleting it: the flush fails
    /// like a failed upload (nothing acknowledged) and works again once uploads are fast.
    /// Method: a 1 s grace and 600 ms of latency on every object store request.
    #[tokio::test]
    async fn an_upload_slower_than_half_the_gc_grace_is_not_committed() {
        let s = setup_with(
            1,
            Duration::from_millis(5),
            8 << 20,
            Duration::from_secs(1),
            None,
        )
        .await;
        let partition = s.topic.partitions[0].clone();
        s.store.set_latency(Duration::from_millis(600));
        let (_, a) = append(&s.log, &partition, 2).await;
        assert_eq!(a.await.unwrap(), Err(FlushFailure::Upload));
        assert_eq!(partition.high_watermark(), 0);
        assert!(partition.lock().index.is_empty());
        s.store.set_latency(Duration::ZERO);
        let (base, b) = append(&s.log, &partition, 3).await;
        assert_eq!(base, 0);
        assert_eq!(b.await.unwrap(), Ok(()));
        assert_eq!(partition.high_watermark(), 3);
        s.shutdown.cancel();
    }

    /// Goal: one flush is one PUT whatever the number of partitions in it, and each
    /// partition's commit moves its own high watermark.
    #[tokio::test]
    async fn one_put_per_flush_for_many_partitions() {
        let batch_len = simple_batch(0, 10).len() as u64;
        // A long interval and a size trigger equal to the four batches: exactly one flush.
        let s = setup(4, Duration::from_secs(3600), 4 * batch_len).await;
        let mut waiters = Vec::new();
        for partition in &s.topic.partitions {
            waiters.push(append(&s.log, partition, 10).await.1);
        }
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Ok(()));
        }
        assert_eq!(s.store.puts_seen(), 1);
        for partition in &s.topic.partitions {
            assert_eq!(partition.high_watermark(), 10);
            assert_eq!(
                committed_state(s.meta.as_ref(), partition)
                    .await
                    .high_watermark,
                10
            );
        }
        s.shutdown.cancel();
    }

    /// Goal: with `--flush-compression none` on `file://`, a flush's large chunk goes from
    /// the partition's chunk buffer to the disk (direct IO) without a copy: the buffer is
    /// aligned, the builder lays the chunk at an aligned offset of the object, and the store
    /// writes it from there; only its last partial block is copied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_uncompressed_chunk_is_written_from_its_buffer() {
        let objects = tempfile::tempdir().unwrap();
        // Every segment directory exists: a PUT into a missing one is not written direct.
        for prefix in 0..=0xff {
            let dir = objects.path().join(format!(
                "{}/{prefix:02x}",
                strato_tiering::keys::SEGMENTS_PREFIX
            ));
            std::fs::create_dir_all(dir).unwrap();
        }
        let direct = Arc::new(strato_tiering::direct_file::DirectFileStore::new(
            object_store::local::LocalFileSystem::new_with_prefix(objects.path())
                .unwrap()
                .with_fsync(true),
        ));
        let objects_of = Objects {
            store: direct.clone(),
            compress: false,
        };
        let s = setup_on(
            objects_of,
            1,
            Duration::from_millis(5),
            8 << 20,
            Duration::from_secs(3600),
            None,
            IDLE_GATHER,
        )
        .await;
        let partition = s.topic.partitions[0].clone();
        let chunk_len = simple_batch(0, 5000).len();
        assert!(chunk_len > ALIGNED_CHUNK_MIN);
        let (_, acked) = append(&s.log, &partition, 5000).await;
        assert_eq!(acked.await.unwrap(), Ok(()));
        assert!(
            direct.writes_direct(),
            "this test needs a file system taking O_DIRECT"
        );
        assert_eq!(direct.direct_puts(), 1);
        assert_eq!(
            direct.uncopied_bytes(),
            (chunk_len / ALIGN * ALIGN) as u64,
            "the chunk's whole blocks were written from its buffer"
        );
        let entry = partition.lock().index.values().next().cloned().unwrap();
        assert_eq!(entry.byte_offset % ALIGN as u64, 0);
        s.shutdown.cancel();
    }

    /// Goal: a broker whose leadership was taken over cannot commit (epoch fencing): its
    /// batch fails, the partition is marked fenced, and the committed state is untouched.
    #[tokio::test]
    async fn commit_after_losing_leadership_is_fenced() {
        let s = setup(1, Duration::from_millis(5), 8 << 20).await;
        let partition = s.topic.partitions[0].clone();
        let (_, first) = append(&s.log, &partition, 1).await;
        assert_eq!(first.await.unwrap(), Ok(()));
        // Another broker takes the leader key (bumping the epoch).
        let leader_key = keys::partition_leader(partition.tp.topic_id, partition.tp.partition);
        let usurper = LeaderRecord {
            v: RECORD_FORMAT_V1,
            broker_id: 7,
            leader_epoch: partition.leader_epoch() + 1,
        };
        s.meta
            .txn(Txn::new().put(&leader_key, usurper.encode()))
            .await
            .unwrap();
        let (_, second) = append(&s.log, &partition, 1).await;
        assert_eq!(second.await.unwrap(), Err(FlushFailure::Fenced));
        assert!(partition.lock().fenced);
        assert_eq!(partition.high_watermark(), 1);
        assert_eq!(
            committed_state(s.meta.as_ref(), &partition)
                .await
                .high_watermark,
            1
        );
        s.shutdown.cancel();
    }

    /// Goal: accepted-but-unflushed bytes are bounded: once the limit is reserved, the next
    /// produce waits (backpressure) instead of growing memory, and proceeds when a flush
    /// makes room.
    #[tokio::test]
    async fn unflushed_bytes_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let meta: Arc<dyn MetadataStore> = Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
        let cache = ChunkCache::open(ChunkCacheConfig::memory(1 << 20))
            .await
            .unwrap();
        let tier = Arc::new(Tier::new(
            Arc::new(InMemory::new()),
            cache,
            TierConfig::default(),
        ));
        let log = LogWriter::new(
            tier,
            meta,
            LogWriterConfig {
                flush_interval: Duration::from_secs(3600),
                flush_bytes: 1 << 20,
                flush_when_idle: false,
                flush_when_idle_min_bytes: 0,
                idle_gather: IDLE_GATHER,
                flush_compress: true,
                unflushed_max: 4096,
                uploads_max: UPLOADS_MAX_TEST,
                producer_expiration: Duration::from_secs(86_400),
                gc_grace: Duration::from_secs(3600),
            },
        );
        let held = log.reserve(4096).await.unwrap();
        let mut waiting = Box::pin(log.reserve(100));
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "a reservation over the limit must wait"
        );
        drop(held); // what a completed flush does with its batches' permits
        assert!(waiting.await.is_ok());
        // A batch larger than the whole limit still gets through alone (clamped).
        drop(log.reserve(1 << 30).await.unwrap());
    }

    /// Waits (bounded) until the partition has read its state back after a failed commit.
    async fn wait_reloaded(partition: &Partition) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while partition.lock().needs_reload {
            assert!(
                tokio::time::Instant::now() < deadline,
                "reload did not finish"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Goal: a commit that applied but whose answer was lost is not acknowledged, the
    /// partition refuses produce until it has read its state back, and then it continues
    /// after the batch that did commit (nothing lost, no offset reused).
    #[tokio::test]
    async fn lost_commit_answer_is_recovered_by_reload() {
        let s = setup(1, Duration::from_millis(5), 8 << 20).await;
        let partition = s.topic.partitions[0].clone();
        s.faulty_meta.lose_next_txn_answers(1);
        let (_, a) = append(&s.log, &partition, 3).await;
        assert_eq!(
            a.await.unwrap(),
            Err(FlushFailure::Commit),
            "not acknowledged"
        );
        wait_reloaded(&partition).await;
        {
            let state = partition.lock();
            assert_eq!(
                state.high_watermark, 3,
                "the applied commit is visible after reload"
            );
            assert_eq!(state.next_offset, 3);
            assert_eq!(state.index.len(), 1);
            assert!(!state.fenced);
        }
        let (base, b) = append(&s.log, &partition, 2).await;
        assert_eq!(base, 3);
        assert_eq!(b.await.unwrap(), Ok(()));
        assert_eq!(
            committed_state(s.meta.as_ref(), &partition)
                .await
                .high_watermark,
            5
        );
        s.shutdown.cancel();
    }

    /// Goal: a commit that did not apply (store unreachable) is not acknowledged; after the
    /// reload the partition reuses the offsets.
    #[tokio::test]
    async fn failed_commit_is_rewound_after_reload() {
        let s = setup(1, Duration::from_millis(5), 8 << 20).await;
        let partition = s.topic.partitions[0].clone();
        s.faulty_meta.fail_next_txns(1);
        let (_, a) = append(&s.log, &partition, 3).await;
        assert_eq!(a.await.unwrap(), Err(FlushFailure::Commit));
        wait_reloaded(&partition).await;
        assert_eq!(partition.high_watermark(), 0);
        let (base, b) = append(&s.log, &partition, 2).await;
        assert_eq!(base, 0, "offsets of the failed commit are reused");
        assert_eq!(b.await.unwrap(), Ok(()));
        s.shutdown.cancel();
    }
}
