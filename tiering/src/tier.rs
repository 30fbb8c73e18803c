//! `Tier`: the broker's handle on object storage. It uploads segment objects, reads chunks
//! back through the chunk cache, and owns the timeout and retry policy of every object store
//! call.
//!
//! Every remote call has a per-attempt timeout and a bounded number of retries with capped,
//! jittered exponential backoff. Dropping a returned future cancels the call; for an upload
//! that may leave the object written or not, which is harmless because keys are never reused.
//!
//! Uploads above `multipart_threshold_bytes` go in parts. Reads are by [`Span`] (a whole
//! chunk, or one frame of a seekable chunk) through the cache, with one request per span
//! and per seek table however many readers wait (singleflight), bounded read-ahead and at
//! most `concurrent_requests_max` requests in flight. Cold reads of small flush objects may
//! fetch the whole object instead (`whole_reads`, `whole_object`), bounded by
//! `whole_object_bytes_max` and `whole_object_reads_max`.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use strato_metadata::model::{IndexEntry, Offset};
use strato_metrics::{CallTimer, Histogram, HistogramSnapshot};
use tracing::warn;

use crate::cache::{CacheHit, CacheTier, ChunkCache};
use crate::error::{TieringError, error_chain};
use crate::segment::{ChunkMeta, ExpectedChunk, FrameMeta, decode_chunk, decode_seek_table};

mod seek_tables;
mod whole_object;
mod whole_reads;

use seek_tables::SeekTables;
use whole_reads::{Plan, WholeReads};

/// A piece of a chunk that is read, decoded and cached on its own: a whole chunk of one zstd
/// frame, or one frame of a seekable chunk (`segment::seek`; compaction writes those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub object: String,
    /// Byte range of the compressed span in the object.
    pub byte_offset: u64,
    pub byte_length: u64,
    /// What the span decodes to.
    pub expected: ExpectedChunk,
    /// A frame of a seekable chunk (compaction's): always read by range, never by a
    /// whole-object read (such objects are large).
    pub seekable: bool,
}

impl Span {
    /// The whole chunk of `entry` (for chunks without a seek table).
    fn whole(entry: &IndexEntry) -> Self {
        Self {
            object: entry.object.clone(),
            byte_offset: entry.byte_offset,
            byte_length: entry.byte_length,
            expected: ExpectedChunk::from(entry),
            seekable: false,
        }
    }

    fn frame(entry: &IndexEntry, frame: &FrameMeta) -> Self {
        Self {
            object: entry.object.clone(),
            byte_offset: entry.byte_offset + frame.byte_offset,
            byte_length: frame.byte_length,
            expected: ExpectedChunk::from(frame),
            seekable: true,
        }
    }

    pub fn base_offset(&self) -> Offset {
        self.expected.base_offset
    }

    pub fn last_offset(&self) -> Offset {
        self.expected.last_offset
    }

    pub fn uncompressed_length(&self) -> u64 {
        self.expected.uncompressed_length
    }
}

/// Largest whole object [`Tier::read_object`] reads into memory. Segments are at most a few
/// hundred MiB (compaction's target is 64–256 MiB), so anything larger is not a segment.
pub const OBJECT_READ_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// Timeouts and retry policy of object store calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierConfig {
    /// Longest a single PUT attempt may take.
    pub put_timeout: Duration,
    /// Longest a single GET attempt may take.
    pub get_timeout: Duration,
    /// Retries after a failed PUT attempt (so at most `put_retries_max + 1` attempts).
    pub put_retries_max: u32,
    /// Retries after a failed GET attempt.
    pub get_retries_max: u32,
    /// Backoff before the first retry; it doubles with each retry.
    pub retry_backoff_base: Duration,
    /// Cap of the backoff.
    pub retry_backoff_max: Duration,
    /// Object store requests in flight at once (all kinds); more wait for a slot.
    pub concurrent_requests_max: usize,
    /// Chunks read ahead (in the background) at once for sequential readers.
    pub read_ahead_concurrency_max: usize,
    /// Largest object a cold read may fetch whole, one GET for all its chunks (see
    /// `whole_reads`); chunks of larger objects are read by range. 0: never whole. A flush
    /// object holds at most the broker's open segment (`--max-unflushed-bytes`), compressed;
    /// compacted ones are far larger and seekable.
    pub whole_object_bytes_max: u64,
    /// Whole-object reads in flight at once (each holds up to `whole_object_bytes_max`
    /// compressed bytes and one decoded chunk outside the cache); more wait for a slot.
    /// Several, so that a fast reader is not held to one object GET at a time (S3 serves
    /// one GET stream at around 100 MB/s).
    pub whole_object_reads_max: usize,
    /// Objects larger than this are uploaded in parts (S3 multipart upload).
    pub multipart_threshold_bytes: usize,
    /// Size of each part of a multipart upload (S3 needs at least 5 MiB but the last).
    pub multipart_part_bytes: usize,
}

/// Default of `TierConfig::whole_object_bytes_max`, and the least the broker uses (it
/// derives its bound from `--max-unflushed-bytes`): twice the default `--flush-bytes`.
pub const WHOLE_OBJECT_BYTES_MAX_DEFAULT: u64 = 16 * 1024 * 1024;

/// Most decoded bytes of the other chunks one whole-object read decodes and caches: at most
/// this, and at most an eighth of the cache's memory tier, so that the
/// `whole_object_reads_max` (4) reads in flight together claim at most half of the cache
/// and what one caches is not evicted by the others before readers ask for it. Chunks past
/// the budget are read by range when asked for. Decoded chunks are cached one by one as
/// they are decoded, so a read holds its compressed object and one decoded chunk outside
/// the cache.
const WHOLE_OBJECT_DECODED_BYTES_MAX: u64 = 64 * 1024 * 1024;
const WHOLE_OBJECT_CACHE_SHARE: u64 = 8;

/// S3's smallest part of a multipart upload (except the last one).
const S3_MULTIPART_PART_MIN: usize = 5 * 1024 * 1024;

impl Default for TierConfig {
    fn default() -> Self {
        Self {
            put_timeout: Duration::from_secs(30),
            get_timeout: Duration::from_secs(30),
            put_retries_max: 5,
            get_retries_max: 3,
            retry_backoff_base: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(2),
            concurrent_requests_max: 64,
            read_ahead_concurrency_max: 16,
            whole_object_bytes_max: WHOLE_OBJECT_BYTES_MAX_DEFAULT,
            whole_object_reads_max: 4,
            multipart_threshold_bytes: 64 * 1024 * 1024,
            multipart_part_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Counters since the `Tier` was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierStats {
    /// GET requests sent (each attempt counts).
    pub gets: u64,
    /// PUT requests sent (each attempt counts; a multipart upload counts once).
    pub puts: u64,
    /// Bytes of objects uploaded successfully.
    pub put_bytes: u64,
    /// Bytes received by successful GETs.
    pub get_bytes: u64,
    /// Chunk reads answered by the memory tier of the cache.
    pub cache_memory_hits: u64,
    /// Chunk reads answered by the disk tier of the cache.
    pub cache_disk_hits: u64,
    /// Chunk reads that found the chunk in neither tier and fetched it (one per GET leader).
    pub cache_misses: u64,
    /// Readers that waited for another reader's GET of the same chunk (singleflight).
    pub singleflight_waits: u64,
    /// Background chunk reads started by read-ahead.
    pub prefetches: u64,
    /// Objects read whole by one GET (cold reads of flush objects, see `whole_reads`).
    pub whole_object_reads: u64,
    /// Chunks those reads decoded and cached besides the one their reader asked for.
    pub whole_object_chunks: u64,
    /// Bytes received by those reads (part of `get_bytes`): whole objects, footers and
    /// chunks no index entry points at any more (replaced by compaction) included.
    pub whole_object_bytes: u64,
    /// Readers whose chunk missed and who waited for another reader's whole-object read.
    pub whole_object_waits: u64,
    /// Bytes of decompressed chunks in the memory tier of the cache now.
    pub cache_bytes: u64,
    /// LIST requests (garbage collection).
    pub lists: u64,
    /// DELETE requests (garbage collection).
    pub deletes: u64,
    /// Failed requests (errors and timeouts, each attempt counts), indexed like
    /// [`StoreOperation::ALL`].
    pub failures: [u64; 5],
}

/// Object store operations, as metrics label them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOperation {
    Put,
    Get,
    List,
    Delete,
    /// The readiness probe (`Tier::probe`).
    Head,
}

impl StoreOperation {
    pub const ALL: [StoreOperation; 5] = [
        StoreOperation::Put,
        StoreOperation::Get,
        StoreOperation::List,
        StoreOperation::Delete,
        StoreOperation::Head,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StoreOperation::Put => "put",
            StoreOperation::Get => "get",
            StoreOperation::List => "list",
            StoreOperation::Delete => "delete",
            StoreOperation::Head => "head",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Per operation: requests sent, how long each took, and how many failed.
#[derive(Debug)]
struct RequestCounters {
    requests: [AtomicU64; 5],
    latency: [Histogram; 5],
    failures: [AtomicU64; 5],
}

impl RequestCounters {
    fn new() -> Self {
        Self {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| Histogram::durations()),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts a request of `operation` and times it until the returned timer drops (a
    /// failure unless told otherwise: a cancelled request counts as failed).
    fn start(&self, operation: StoreOperation) -> CallTimer<'_> {
        self.requests[operation.index()].fetch_add(1, Ordering::Relaxed);
        CallTimer::start(
            &self.latency[operation.index()],
            &self.failures[operation.index()],
        )
    }

    fn requests(&self, operation: StoreOperation) -> u64 {
        self.requests[operation.index()].load(Ordering::Relaxed)
    }
}

impl TierStats {
    /// Chunk reads answered by the cache, either tier.
    pub fn cache_hits(&self) -> u64 {
        self.cache_memory_hits + self.cache_disk_hits
    }
}

/// Object storage as the broker sees it. Shared as `Arc<Tier>`.
#[derive(Debug)]
pub struct Tier {
    store: Arc<dyn ObjectStore>,
    cache: ChunkCache,
    config: TierConfig,
    put_bytes: AtomicU64,
    get_bytes: AtomicU64,
    /// Bounds object store requests in flight (`concurrent_requests_max`).
    in_flight: tokio::sync::Semaphore,
    cache_memory_hits: AtomicU64,
    cache_disk_hits: AtomicU64,
    cache_misses: AtomicU64,
    singleflight_waits: AtomicU64,
    prefetches: AtomicU64,
    whole_object_reads: AtomicU64,
    whole_object_chunks: AtomicU64,
    whole_object_bytes: AtomicU64,
    whole_object_waits: AtomicU64,
    /// Which cold reads fetch their object whole, and those reads in flight.
    whole_reads: WholeReads,
    /// Bounds whole-object reads (`whole_object_reads_max`).
    whole_read_slots: tokio::sync::Semaphore,
    /// Chunk GETs in progress, by (object, byte offset): their readers wait on the Notify.
    inflight: InflightReads,
    /// Bounds read-ahead (`read_ahead_concurrency_max`).
    read_ahead: Arc<tokio::sync::Semaphore>,
    /// Seek tables of seekable chunks read lately (bounded by bytes).
    seek_tables: SeekTables,
    /// Advances with every backoff so that concurrent retries draw different jitter.
    jitter_state: AtomicU64,
    requests: RequestCounters,
}

impl Tier {
    /// A tier over `store` reading through `cache` (see [`ChunkCache::open`]).
    pub fn new(store: Arc<dyn ObjectStore>, cache: ChunkCache, config: TierConfig) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        assert!(
            config.multipart_part_bytes >= S3_MULTIPART_PART_MIN,
            "multipart parts must be at least 5 MiB (S3)"
        );
        Self {
            store,
            cache,
            in_flight: tokio::sync::Semaphore::new(config.concurrent_requests_max.max(1)),
            read_ahead: Arc::new(tokio::sync::Semaphore::new(
                config.read_ahead_concurrency_max.max(1),
            )),
            whole_read_slots: tokio::sync::Semaphore::new(config.whole_object_reads_max.max(1)),
            config,
            put_bytes: AtomicU64::new(0),
            get_bytes: AtomicU64::new(0),
            cache_memory_hits: AtomicU64::new(0),
            cache_disk_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            singleflight_waits: AtomicU64::new(0),
            prefetches: AtomicU64::new(0),
            whole_object_reads: AtomicU64::new(0),
            whole_object_chunks: AtomicU64::new(0),
            whole_object_bytes: AtomicU64::new(0),
            whole_object_waits: AtomicU64::new(0),
            whole_reads: WholeReads::default(),
            inflight: std::sync::Mutex::new(std::collections::HashMap::new()),
            seek_tables: SeekTables::default(),
            jitter_state: AtomicU64::new(seed),
            requests: RequestCounters::new(),
        }
    }

    pub fn config(&self) -> &TierConfig {
        &self.config
    }

    pub fn stats(&self) -> TierStats {
        TierStats {
            gets: self.requests.requests(StoreOperation::Get),
            lists: self.requests.requests(StoreOperation::List),
            deletes: self.requests.requests(StoreOperation::Delete),
            puts: self.requests.requests(StoreOperation::Put),
            put_bytes: self.put_bytes.load(Ordering::Relaxed),
            get_bytes: self.get_bytes.load(Ordering::Relaxed),
            cache_memory_hits: self.cache_memory_hits.load(Ordering::Relaxed),
            cache_disk_hits: self.cache_disk_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            singleflight_waits: self.singleflight_waits.load(Ordering::Relaxed),
            prefetches: self.prefetches.load(Ordering::Relaxed),
            whole_object_reads: self.whole_object_reads.load(Ordering::Relaxed),
            whole_object_chunks: self.whole_object_chunks.load(Ordering::Relaxed),
            whole_object_bytes: self.whole_object_bytes.load(Ordering::Relaxed),
            whole_object_waits: self.whole_object_waits.load(Ordering::Relaxed),
            cache_bytes: self.cache.memory_bytes(),
            failures: std::array::from_fn(|i| self.requests.failures[i].load(Ordering::Relaxed)),
        }
    }

    /// How long object store requests of `operation` took (each attempt of a retried call
    /// is one observation; a LIST is one observation for all its pages).
    pub fn request_latency(&self, operation: StoreOperation) -> HistogramSnapshot {
        self.requests.latency[operation.index()].snapshot()
    }

    /// Whether the object store answers: one HEAD of a key that need not exist (a "not
    /// found" answer proves the store is reachable), within `timeout`. For readiness probes.
    pub async fn probe(&self, timeout: Duration) -> Result<(), TieringError> {
        const PROBE_KEY: &str = "ready-probe";
        let path = parse_key(PROBE_KEY)?;
        let mut timer = self.requests.start(StoreOperation::Head);
        let result = match tokio::time::timeout(timeout, self.store.head(&path)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => match store_error("head object", PROBE_KEY, err) {
                TieringError::NotFound { .. } => Ok(()),
                err => Err(err),
            },
            Err(_) => Err(TieringError::Timeout {
                operation: "head object",
            }),
        };
        if result.is_ok() {
            timer.succeeded();
        }
        result
    }

    /// Writes `bytes` as object `key`, retrying failed attempts (same key, so a retry that
    /// races an attempt which did land just writes the same bytes again).
    pub async fn upload(&self, key: &str, bytes: Bytes) -> Result<(), TieringError> {
        self.upload_parts(key, vec![bytes]).await
    }

    /// [`Tier::upload`] of the object made of `parts` in order, none of them copied here
    /// (`BuiltSegment::parts`; a store writing with direct IO writes aligned ones from
    /// where they are).
    pub async fn upload_parts(&self, key: &str, parts: Vec<Bytes>) -> Result<(), TieringError> {
        let path = parse_key(key)?;
        let payload: PutPayload = parts.into_iter().collect();
        let size = payload.content_length() as u64;
        let store = &self.store;
        let multipart = payload.content_length() > self.config.multipart_threshold_bytes;
        let part_bytes = self.config.multipart_part_bytes;
        self.retry(
            "put object",
            key,
            self.config.put_timeout,
            self.config.put_retries_max,
            StoreOperation::Put,
            || {
                let payload = payload.clone();
                let path = &path;
                async move {
                    if multipart {
                        return put_multipart(store.as_ref(), path, payload, part_bytes)
                            .await
                            .map_err(|err| store_error("put object", key, err));
                    }
                    store
                        .put(path, payload)
                        .await
                        .map(|_| ())
                        .map_err(|err| store_error("put object", key, err))
                }
            },
        )
        .await?;
        self.put_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    /// Puts freshly flushed chunks of object `key` in the cache (write-through), so fetches
    /// of recent data need no GET. `chunks` pairs footer entries with uncompressed batches.
    /// Seekable chunks (compaction's) are not cached here: they are read frame by frame.
    pub fn cache_chunks(&self, key: &str, chunks: &[(ChunkMeta, Bytes)]) {
        for (meta, data) in chunks {
            if meta.seek_table_length > 0 {
                continue;
            }
            assert_eq!(
                data.len() as u64,
                meta.uncompressed_length,
                "cache_chunks got data that is not the chunk it names"
            );
            self.cache.insert(key, meta.byte_offset, data.clone());
        }
    }

    /// The uncompressed record batches of the chunk `entry` points at, checked against it.
    /// A seekable chunk is read frame by frame (each frame cached on its own).
    pub async fn read_chunk(&self, entry: &IndexEntry) -> Result<Bytes, TieringError> {
        use futures::{StreamExt, TryStreamExt};
        let spans = self.spans(entry, entry.base_offset).await?;
        if let [span] = spans.as_slice() {
            return self.read_span(span).await;
        }
        let pieces: Vec<Bytes> = futures::stream::iter(spans)
            .map(|span| async move { self.read_span(&span).await })
            .buffered(SPAN_READS_PER_CHUNK)
            .try_collect()
            .await?;
        let mut data =
            bytes::BytesMut::with_capacity(usize::try_from(entry.uncompressed_length).unwrap_or(0));
        for piece in pieces {
            data.extend_from_slice(&piece);
        }
        Ok(data.freeze())
    }

    /// The spans of `entry` that hold offsets from `from` on: the whole chunk, or the frames
    /// of a seekable chunk (its seek table is read with one ranged GET, then kept in memory).
    pub async fn spans(&self, entry: &IndexEntry, from: Offset) -> Result<Vec<Span>, TieringError> {
        if entry.seek_table_length == 0 {
            return Ok(vec![Span::whole(entry)]);
        }
        let corrupt = |reason: String| TieringError::Corrupt {
            key: entry.object.clone(),
            reason,
        };
        let range = chunk_range(entry).map_err(corrupt)?;
        let table_start = range
            .end
            .checked_sub(entry.seek_table_length)
            .filter(|start| *start >= range.start)
            .ok_or_else(|| corrupt("seek table longer than its chunk".to_string()))?;
        // Readers of a new chunk share one GET of its table (its offset is no span's).
        let frames = self
            .singleflight(
                (entry.object.clone(), table_start),
                || async { self.seek_tables.get(&entry.object, entry.byte_offset) },
                || async {
                    let path = parse_key(&entry.object)?;
                    let bytes = self
                        .get_range(&entry.object, &path, table_start..range.end)
                        .await?;
                    self.get_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    let frames: Arc<[FrameMeta]> = decode_seek_table(&bytes, entry)
                        .map_err(|err| corrupt(err.to_string()))?
                        .into();
                    self.seek_tables
                        .insert(&entry.object, entry.byte_offset, frames.clone());
                    Ok(frames)
                },
            )
            .await?;
        Ok(frames
            .iter()
            .filter(|frame| frame.last_offset >= from)
            .map(|frame| Span::frame(entry, frame))
            .collect())
    }

    /// The uncompressed record batches of `span`: from the cache, or by a ranged GET,
    /// decompressed and checked against the span (off the async runtime).
    ///
    /// Singleflight: concurrent readers of the same span share one GET; the others wait for
    /// it and take the result from the cache (if it failed, one of them tries again).
    ///
    /// A miss on a chunk of a small flush object may read the whole object instead (one GET
    /// that caches every chunk of it, see `whole_reads`), so that readers of its other
    /// chunks find them cached.
    pub async fn read_span(&self, span: &Span) -> Result<Bytes, TieringError> {
        self.singleflight(
            (span.object.clone(), span.byte_offset),
            || async {
                let hit = self.cache.get(&span.object, span.byte_offset).await?;
                if !span.seekable {
                    self.whole_reads.note_hit(&span.object, span.byte_offset);
                }
                Some(self.count_hit(hit))
            },
            || self.fetch_span(span),
        )
        .await
    }

    /// The first caller for `key` runs `fetch`; concurrent callers wait for it, then take
    /// the result through `lookup` (if it failed, one of them tries again).
    async fn singleflight<T, L, LF, F, FF>(
        &self,
        key: (String, u64),
        lookup: L,
        fetch: F,
    ) -> Result<T, TieringError>
    where
        L: Fn() -> LF,
        LF: Future<Output = Option<T>>,
        F: FnOnce() -> FF,
        FF: Future<Output = Result<T, TieringError>>,
    {
        loop {
            if let Some(hit) = lookup().await {
                return Ok(hit);
            }
            let (leader, notify) = {
                let mut inflight = self.inflight.lock().expect("inflight lock");
                match inflight.get(&key) {
                    Some(notify) => (false, notify.clone()),
                    None => {
                        let notify = Arc::new(tokio::sync::Notify::new());
                        inflight.insert(key.clone(), notify.clone());
                        (true, notify)
                    }
                }
            };
            if leader {
                // Released on every exit, including cancellation (a reader whose client hung
                // up): a leaked entry would make every later reader of the key wait forever.
                let _leader = InflightLeader {
                    inflight: &self.inflight,
                    key: key.clone(),
                    notify,
                };
                return fetch().await;
            }
            // Registered before looking again, so the wake-up cannot be missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(hit) = lookup().await {
                return Ok(hit);
            }
            if !self
                .inflight
                .lock()
                .expect("inflight lock")
                .contains_key(&key)
            {
                continue; // the leader finished between our two looks
            }
            self.singleflight_waits.fetch_add(1, Ordering::Relaxed);
            notified.await;
        }
    }

    /// Starts background reads of `spans` not yet cached (read-ahead for sequential
    /// readers), at most `read_ahead_concurrency_max` at a time; spans beyond that are
    /// skipped rather than queued, so read-ahead never piles up.
    pub fn prefetch(self: &Arc<Self>, spans: &[Span]) {
        for span in spans {
            // A chunk of an object being read whole will be cached by that read.
            if self.cache.contains(&span.object, span.byte_offset)
                || self.whole_reads.is_reading_object(&span.object)
            {
                continue;
            }
            let Ok(permit) = self.read_ahead.clone().try_acquire_owned() else {
                return;
            };
            self.prefetches.fetch_add(1, Ordering::Relaxed);
            let tier = self.clone();
            let span = span.clone();
            tokio::spawn(async move {
                if let Err(err) = tier.read_span(&span).await {
                    tracing::debug!(object = %span.object, "read-ahead failed: {err}");
                }
                drop(permit);
            });
        }
    }

    fn count_hit(&self, hit: CacheHit) -> Bytes {
        let counter = match hit.tier {
            CacheTier::Memory => &self.cache_memory_hits,
            CacheTier::Disk => &self.cache_disk_hits,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit.data
    }

    /// Reads `span`, which missed the cache, as its singleflight leader: the whole object
    /// or the span alone, as `whole_reads` decides.
    async fn fetch_span(&self, span: &Span) -> Result<Bytes, TieringError> {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        if !self.may_read_whole(span) {
            return self.fetch_range(span).await;
        }
        match self.whole_reads.plan(&span.object, span.byte_offset) {
            Plan::Range => self.fetch_range(span).await,
            Plan::Lead(flight) => self.lead_whole_read(span, flight).await,
            Plan::Wait(flight) => self.await_whole_read(span, flight).await,
        }
    }

    /// Reads `span` alone with one ranged GET, decodes and caches it.
    async fn fetch_range(&self, span: &Span) -> Result<Bytes, TieringError> {
        let corrupt = |reason: String| TieringError::Corrupt {
            key: span.object.clone(),
            reason,
        };
        let path = parse_key(&span.object)?;
        let range = span_range(span).map_err(corrupt)?;
        let compressed = self.get_range(&span.object, &path, range).await?;
        self.get_bytes
            .fetch_add(compressed.len() as u64, Ordering::Relaxed);
        if compressed.len() as u64 != span.byte_length {
            return Err(corrupt(format!(
                "ranged read returned {} bytes, expected {}",
                compressed.len(),
                span.byte_length
            )));
        }
        let expected = span.expected;
        let decoded = tokio::task::spawn_blocking(move || decode_chunk(&compressed, &expected))
            .await
            .map_err(|err| join_error("decode chunk", err))?;
        let data = decoded.map_err(|err| corrupt(err.to_string()))?;
        self.cache
            .insert(&span.object, span.byte_offset, data.clone());
        Ok(data)
    }

    /// Every segment object's key (garbage collection). One LIST stream; object_store pages
    /// it (S3: 1000 keys per request).
    pub async fn list_segments(&self) -> Result<Vec<String>, TieringError> {
        use futures::TryStreamExt;
        let prefix = Path::from(crate::keys::SEGMENTS_PREFIX);
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("semaphore never closed");
        let mut timer = self.requests.start(StoreOperation::List);
        let listed: Result<Vec<object_store::ObjectMeta>, TieringError> = tokio::time::timeout(
            self.config.get_timeout.saturating_mul(10),
            self.store.list(Some(&prefix)).try_collect(),
        )
        .await
        .map_err(|_| TieringError::Timeout {
            operation: "list objects",
        })
        .and_then(|listed| {
            listed.map_err(|err| store_error("list objects", crate::keys::SEGMENTS_PREFIX, err))
        });
        if listed.is_ok() {
            timer.succeeded();
        }
        drop(timer);
        let metas = listed?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }

    /// Segment object keys as the store lists them, page by page (S3: 1000 keys per
    /// request), without holding them all (garbage collection). The caller bounds the wait
    /// for each key (e.g. by `get_timeout`).
    pub fn segment_keys(&self) -> futures::stream::BoxStream<'_, Result<String, TieringError>> {
        use futures::StreamExt;
        let prefix = Path::from(crate::keys::SEGMENTS_PREFIX);
        let listing = self.store.list(Some(&prefix));
        // One LIST request as counted and timed here: the whole stream (a failure unless it
        // ends without error).
        let timer = self.requests.start(StoreOperation::List);
        futures::stream::unfold((listing, Some(timer)), |(mut listing, timer)| async move {
            let mut timer = timer?;
            match listing.next().await {
                Some(Ok(meta)) => Some((Ok(meta.location.to_string()), (listing, Some(timer)))),
                Some(Err(err)) => Some((
                    Err(store_error(
                        "list objects",
                        crate::keys::SEGMENTS_PREFIX,
                        err,
                    )),
                    (listing, None),
                )),
                None => {
                    timer.succeeded();
                    None
                }
            }
        })
        .boxed()
    }

    /// Deletes object `key` (garbage collection); deleting a missing object succeeds.
    pub async fn delete_object(&self, key: &str) -> Result<(), TieringError> {
        let path = parse_key(key)?;
        let store = &self.store;
        let result = self
            .retry(
                "delete object",
                key,
                self.config.put_timeout,
                self.config.put_retries_max,
                StoreOperation::Delete,
                || async {
                    store
                        .delete(&path)
                        .await
                        .map_err(|err| store_error("delete object", key, err))
                },
            )
            .await;
        match result {
            Ok(()) | Err(TieringError::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// The whole object `key` (for tools such as `strato segment dump`), at most
    /// [`OBJECT_READ_BYTES_MAX`] bytes. Bypasses the cache.
    pub async fn read_object(&self, key: &str) -> Result<Bytes, TieringError> {
        self.get_object(key, OBJECT_READ_BYTES_MAX)
            .await?
            .map_err(|size| TieringError::Corrupt {
                key: key.to_string(),
                reason: format!(
                    "object of {size} bytes is larger than any segment ({OBJECT_READ_BYTES_MAX} bytes)"
                ),
            })
    }

    /// The whole object `key` with one GET, or `Err(size)` if it is larger than
    /// `bytes_max` (its body is then dropped unread).
    async fn get_object(
        &self,
        key: &str,
        bytes_max: u64,
    ) -> Result<Result<Bytes, u64>, TieringError> {
        let path = parse_key(key)?;
        let store = &self.store;
        self.retry(
            "get object",
            key,
            self.config.get_timeout,
            self.config.get_retries_max,
            StoreOperation::Get,
            || async {
                let result = store
                    .get(&path)
                    .await
                    .map_err(|err| store_error("get object", key, err))?;
                if result.meta.size > bytes_max {
                    return Ok(Err(result.meta.size));
                }
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|err| store_error("get object", key, err))?;
                Ok(Ok(bytes))
            },
        )
        .await
    }

    async fn get_range(
        &self,
        key: &str,
        path: &Path,
        range: Range<u64>,
    ) -> Result<Bytes, TieringError> {
        let store = &self.store;
        self.retry(
            "get chunk",
            key,
            self.config.get_timeout,
            self.config.get_retries_max,
            StoreOperation::Get,
            || {
                let range = range.clone();
                async move {
                    store
                        .get_range(path, range)
                        .await
                        .map_err(|err| store_error("get chunk", key, err))
                }
            },
        )
        .await
    }

    /// Runs `attempt` until it succeeds, fails with a non-retryable error, or has been
    /// retried `retries_max` times. Each attempt gets `timeout` and bumps `requests`.
    async fn retry<T, F, Fut>(
        &self,
        operation: &'static str,
        key: &str,
        timeout: Duration,
        retries_max: u32,
        kind: StoreOperation,
        mut attempt: F,
    ) -> Result<T, TieringError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, TieringError>>,
    {
        let mut retries = 0u32;
        loop {
            let result = {
                let _slot = self
                    .in_flight
                    .acquire()
                    .await
                    .expect("the request semaphore is never closed");
                let mut timer = self.requests.start(kind);
                let result = tokio::time::timeout(timeout, attempt())
                    .await
                    .unwrap_or(Err(TieringError::Timeout { operation }));
                if result.is_ok() {
                    timer.succeeded();
                }
                result
            };
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            let will_retry = retries < retries_max;
            warn!(
                operation,
                key,
                attempt = retries + 1,
                will_retry,
                "object store call failed: {}",
                error_chain(&err)
            );
            if !will_retry {
                return Err(err);
            }
            tokio::time::sleep(self.backoff(retries)).await;
            retries += 1;
        }
    }

    /// Backoff before retry number `retry` (0-based): exponential from the base, capped, with
    /// "equal jitter" (half fixed, half random) so that retries of many callers spread out.
    fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .config
            .retry_backoff_base
            .saturating_mul(1u32 << retry.min(20))
            .min(self.config.retry_backoff_max);
        let cap_nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        let half = cap_nanos / 2;
        let random = splitmix64(
            self.jitter_state
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed),
        );
        Duration::from_nanos(half + random % (cap_nanos - half + 1))
    }
}

/// Uploads `bytes` in parts of `part_bytes` (S3 multipart upload). A failed upload is
/// aborted; parts left by a crash are for the bucket's lifecycle rule on incomplete
/// multipart uploads.
async fn put_multipart(
    store: &dyn ObjectStore,
    path: &Path,
    payload: PutPayload,
    part_bytes: usize,
) -> object_store::Result<()> {
    let upload = store.put_multipart(path).await?;
    let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, part_bytes);
    for part in payload.iter() {
        writer.put(part.clone());
    }
    // `finish` aborts the upload itself when a part or the completion fails.
    writer.finish().await.map(|_| ())
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn parse_key(key: &str) -> Result<Path, TieringError> {
    Path::parse(key).map_err(|err| TieringError::Corrupt {
        key: key.to_string(),
        reason: format!("invalid object key: {err}"),
    })
}

fn chunk_range(loc: &IndexEntry) -> Result<Range<u64>, String> {
    byte_range(loc.byte_offset, loc.byte_length)
}

fn span_range(span: &Span) -> Result<Range<u64>, String> {
    byte_range(span.byte_offset, span.byte_length)
}

fn byte_range(offset: u64, length: u64) -> Result<Range<u64>, String> {
    if length == 0 {
        return Err("empty byte range".to_string());
    }
    let end = offset
        .checked_add(length)
        .ok_or_else(|| "byte range overflows".to_string())?;
    Ok(offset..end)
}

fn store_error(operation: &'static str, key: &str, err: object_store::Error) -> TieringError {
    match err {
        object_store::Error::NotFound { .. } => TieringError::NotFound {
            key: key.to_string(),
        },
        err => TieringError::from_store(operation, err),
    }
}

fn join_error(operation: &'static str, err: tokio::task::JoinError) -> TieringError {
    match err.try_into_panic() {
        // A panic in the blocking task is a bug in our code: let it crash this task too.
        Ok(payload) => std::panic::resume_unwind(payload),
        Err(_) => TieringError::Cancelled { operation },
    }
}

/// Frames of a seekable chunk read at once by [`Tier::read_chunk`].
const SPAN_READS_PER_CHUNK: usize = 4;

/// Span reads in flight, by (object, byte offset): the singleflight table.
type InflightReads =
    std::sync::Mutex<std::collections::HashMap<(String, u64), Arc<tokio::sync::Notify>>>;

/// The leader of a singleflight read: on drop (done, failed or cancelled) it removes its
/// entry and wakes the waiters, who then find the chunk cached or lead a new read.
struct InflightLeader<'a> {
    inflight: &'a InflightReads,
    key: (String, u64),
    notify: Arc<tokio::sync::Notify>,
}

impl Drop for InflightLeader<'_> {
    fn drop(&mut self) {
        self.inflight
            .lock()
            .expect("inflight lock")
            .remove(&self.key);
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
