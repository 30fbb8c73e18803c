//! Builds segment objects: collects each partition's batches, then compresses and lays them
//! out with a footer in [`SegmentBuilder::finish`].
//!
//! `add_chunk` is cheap (it only reads batch headers and keeps `Bytes` handles), so it can run
//! on the async runtime. `finish` compresses everything: callers run it inside
//! `tokio::task::spawn_blocking`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strato_metadata::model::{Offset, TopicPartition};
use zstd::zstd_safe::CParameter;

use super::SegmentError;
use super::format::{
    CHUNK_UNCOMPRESSED_MAX, ChunkEncoding, ChunkMeta, SEGMENT_MAGIC, encode_footer, encode_trailer,
};
use super::seek::{FrameMeta, encode_seek_table};
use crate::batch::{BatchHeader, iter_batches, validate_stored_batches};
use crate::direct_file::ALIGN;

/// A chunk whose bytes are at least this share (in percent) of producer-compressed batches
/// is stored raw: zstd would spend CPU to gain next to nothing on them.
const RAW_WHEN_COMPRESSED_PERCENT: u64 = 90;

/// Bytes of one zstd job with worker threads (`with_workers`): smaller jobs spread a chunk
/// over more threads and compress a little worse; zstd's own minimum is 512 KiB.
const WORKER_JOB_BYTES: u32 = 1024 * 1024;

/// An uncompressed builder's chunk of at least this many bytes starts at an [`ALIGN`]
/// boundary of its object, zero bytes before it, so a store writing with direct IO
/// (`DirectFileStore`) writes it from where it is rather than copying it, if it is aligned in
/// memory too (the flusher's chunk buffers are). At most `ALIGN - 1` bytes of padding a
/// chunk: a small share of one this large.
pub const ALIGNED_CHUNK_MIN: usize = 64 * 1024;

/// Room kept per chunk beyond zstd's bound when sizing an object: its seek table (seekable
/// chunks: one entry per frame) and footer entry; a larger table grows the object once.
const CHUNK_SLACK_BYTES: usize = 1024;

/// Whether batches the producer compressed make up (nearly) all of a chunk.
fn mostly_compressed(headers: &[BatchHeader], chunk_len: usize) -> bool {
    let compressed: u64 = headers
        .iter()
        .filter(|h| h.compression() != 0)
        .map(|h| h.total_len() as u64)
        .sum();
    compressed * 100 >= chunk_len as u64 * RAW_WHEN_COMPRESSED_PERCENT
}

/// zstd contexts kept between segment builds ([`SegmentBuilder::with_compressors`]). A fresh
/// context allocates its tables (and, with worker threads, starts the threads and allocates
/// their buffers) on every build; a kept one is reset and reused. At most `max` are kept, so
/// the pool holds a bounded amount of memory (about 2 MiB per context at level 1, 4 MiB with
/// two worker threads); builds beyond that many at once create and drop their own.
pub struct CompressorPool {
    kept: Mutex<Vec<KeptCompressor>>,
    max: usize,
}

struct KeptCompressor {
    level: i32,
    workers: u32,
    compressor: zstd::bulk::Compressor<'static>,
}

impl std::fmt::Debug for CompressorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompressorPool")
            .field("kept", &self.kept().len())
            .field("max", &self.max)
            .finish()
    }
}

impl CompressorPool {
    /// A pool keeping at most `max` contexts.
    pub fn new(max: usize) -> Self {
        Self {
            kept: Mutex::new(Vec::new()),
            max,
        }
    }

    /// Contexts kept now.
    pub fn len(&self) -> usize {
        self.kept().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<KeptCompressor>> {
        // A panic while holding the lock leaves the list as it was: usable.
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A kept context with these settings, or a new one.
    fn take(
        &self,
        level: i32,
        workers: u32,
    ) -> Result<zstd::bulk::Compressor<'static>, SegmentError> {
        let found = {
            let mut kept = self.kept();
            kept.iter()
                .position(|k| k.level == level && k.workers == workers)
                .map(|at| kept.swap_remove(at).compressor)
        };
        match found {
            Some(compressor) => Ok(compressor),
            None => new_compressor(level, workers),
        }
    }

    fn put(&self, level: i32, workers: u32, compressor: zstd::bulk::Compressor<'static>) {
        let mut kept = self.kept();
        if kept.len() < self.max {
            kept.push(KeptCompressor {
                level,
                workers,
                compressor,
            });
        }
    }
}

/// The zstd contexts of one build, taken when first needed: worker threads only pay for
/// themselves on a frame of several jobs, so smaller frames use a context without them (with
/// workers, zstd copies a frame into and out of its jobs' buffers even when there is one job).
struct ChunkCompressors<'a> {
    level: i32,
    workers: u32,
    pool: Option<&'a CompressorPool>,
    single: Option<zstd::bulk::Compressor<'static>>,
    multi: Option<zstd::bulk::Compressor<'static>>,
}

impl ChunkCompressors<'_> {
    /// The context for a frame of `len` uncompressed bytes.
    fn for_len(
        &mut self,
        len: usize,
    ) -> Result<&mut zstd::bulk::Compressor<'static>, SegmentError> {
        let workers = if self.workers > 0 && len > WORKER_JOB_BYTES as usize {
            self.workers
        } else {
            0
        };
        let (level, pool) = (self.level, self.pool);
        let slot = if workers > 0 {
            &mut self.multi
        } else {
            &mut self.single
        };
        if slot.is_none() {
            *slot = Some(match pool {
                Some(pool) => pool.take(level, workers)?,
                None => new_compressor(level, workers)?,
            });
        }
        Ok(slot.as_mut().expect("just filled"))
    }

    /// Returns the contexts to the pool (after a successful build: a failed one may leave a
    /// context mid-frame).
    fn give_back(self) {
        let Some(pool) = self.pool else { return };
        if let Some(single) = self.single {
            pool.put(self.level, 0, single);
        }
        if let Some(multi) = self.multi {
            pool.put(self.level, self.workers, multi);
        }
    }
}

/// A zstd context for segment chunks: `level`, a content checksum and size in every frame,
/// and `workers` worker threads (0: none).
fn new_compressor(
    level: i32,
    workers: u32,
) -> Result<zstd::bulk::Compressor<'static>, SegmentError> {
    let compress_error = |source| SegmentError::Compress { source };
    let mut compressor = zstd::bulk::Compressor::new(level).map_err(compress_error)?;
    // The content checksum lets the reader detect a corrupt chunk before parsing it; the
    // content size lets it be sure the frame is complete.
    let mut parameters = vec![
        CParameter::ChecksumFlag(true),
        CParameter::ContentSizeFlag(true),
    ];
    if workers > 0 {
        parameters.extend([
            CParameter::NbWorkers(workers),
            CParameter::JobSize(WORKER_JOB_BYTES),
        ]);
    }
    for parameter in parameters {
        compressor
            .set_parameter(parameter)
            .map_err(compress_error)?;
    }
    Ok(compressor)
}

/// One partition's batches waiting for `finish`.
#[derive(Debug)]
struct PendingChunk {
    topic_partition: TopicPartition,
    batches: Vec<Bytes>,
    base_offset: Offset,
    last_offset: Offset,
    max_timestamp: i64,
    uncompressed_length: u64,
    record_count: u64,
}

/// Collects chunks for one segment object.
#[derive(Debug)]
pub struct SegmentBuilder {
    zstd_level: i32,
    /// Chunks larger than this are written as frames of about this size with a seek table.
    frame_bytes: Option<u64>,
    /// zstd worker threads for one frame (0: compress on the calling thread).
    workers: u32,
    /// Where the zstd context comes from and goes back to (none: a new one per build).
    compressors: Option<Arc<CompressorPool>>,
    /// Chunks without frames are stored as their batches ([`SegmentBuilder::uncompressed`]).
    raw: bool,
    chunks: Vec<PendingChunk>,
    uncompressed_length: u64,
}

/// A finished segment: the object bytes and what its footer says.
#[derive(Debug, Clone)]
pub struct BuiltSegment {
    /// The object, ready to PUT, in parts (one, unless the builder was
    /// [`SegmentBuilder::uncompressed`]: then each chunk is a part, its batches as they
    /// were added, not copied).
    pub parts: Vec<Bytes>,
    /// Footer entries, in object order.
    pub chunks: Vec<ChunkMeta>,
    /// Uncompressed batches of each chunk, same order as `chunks`: what a read of the chunk
    /// returns, kept so a flush can fill the cache without decompressing.
    pub uncompressed: Vec<Bytes>,
}

impl BuiltSegment {
    /// Bytes in all parts: the object's length.
    pub fn object_len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// The whole object in one buffer (copied when it is in several parts).
    pub fn bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [one] => one.clone(),
            parts => {
                let mut object = Vec::with_capacity(self.object_len());
                for part in parts {
                    object.extend_from_slice(part);
                }
                Bytes::from(object)
            }
        }
    }

    /// `(footer entry, uncompressed batches)` pairs, the shape `Tier::cache_chunks` takes.
    pub fn chunk_data(&self) -> Vec<(ChunkMeta, Bytes)> {
        self.chunks
            .iter()
            .copied()
            .zip(self.uncompressed.iter().cloned())
            .collect()
    }
}

impl SegmentBuilder {
    /// A builder compressing chunks at `zstd_level` (1..=19; 3 is zstd's default).
    pub fn new(zstd_level: i32) -> Self {
        Self {
            zstd_level,
            frame_bytes: None,
            workers: 0,
            compressors: None,
            raw: false,
            chunks: Vec::new(),
            uncompressed_length: 0,
        }
    }

    /// Compresses each frame of more than [`WORKER_JOB_BYTES`] with `workers` zstd worker
    /// threads (smaller frames without them), a job of about that size each, so one large
    /// chunk does not take one core for its whole compression (a flush of one busy partition
    /// is acknowledged sooner). The frames are ordinary zstd frames, read as any other.
    pub fn with_workers(mut self, workers: u32) -> Self {
        self.workers = workers;
        self
    }

    /// Takes the zstd context from `pool` and gives it back after the build.
    pub fn with_compressors(mut self, pool: Arc<CompressorPool>) -> Self {
        self.compressors = Some(pool);
        self
    }

    /// Stores every chunk that is not cut into frames ([`Self::with_frames`]) as its batches
    /// (`ChunkEncoding::Raw`), without zstd: for flushes whose chunks compaction compresses
    /// later anyway (`--flush-compression none`), so the bytes are compressed once. Such a
    /// chunk is not copied into the object: it is a part of [`BuiltSegment::parts`] of its
    /// own, at an [`ALIGN`] boundary when it has at least [`ALIGNED_CHUNK_MIN`] bytes.
    pub fn uncompressed(mut self) -> Self {
        self.raw = true;
        self
    }

    /// Writes chunks of more than `frame_bytes` as seekable chunks: zstd frames of whole
    /// batches, each closed once it holds at least `frame_bytes`, and a seek table.
    pub fn with_frames(mut self, frame_bytes: u64) -> Self {
        self.frame_bytes = Some(frame_bytes.max(1));
        self
    }

    /// Number of chunks added so far.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Total uncompressed bytes added so far.
    pub fn uncompressed_length(&self) -> u64 {
        self.uncompressed_length
    }

    /// Adds one partition's chunk. Each element of `batches` holds one or more whole record
    /// batches that already carry their assigned base offsets; together they must be
    /// non-empty and have contiguous ascending offsets.
    ///
    /// # Panics
    /// If `batches` is empty, is not made of whole batch headers, or its offsets are not
    /// contiguous: the broker validated and numbered these batches, so any of those is a bug.
    pub fn add_chunk(&mut self, topic_partition: TopicPartition, batches: &[Bytes]) {
        self.add(topic_partition, batches, true);
    }

    /// Like [`add_chunk`](Self::add_chunk), but the batches' offsets need only ascend: the
    /// key cleaner removes records, so a cleaned chunk has gaps between its batches (and
    /// merging cleaned chunks keeps them).
    pub fn add_sparse_chunk(&mut self, topic_partition: TopicPartition, batches: &[Bytes]) {
        self.add(topic_partition, batches, false);
    }

    fn add(&mut self, topic_partition: TopicPartition, batches: &[Bytes], contiguous: bool) {
        let mut range: Option<(Offset, Offset)> = None;
        let mut max_timestamp = i64::MIN;
        let mut uncompressed_length = 0u64;
        let mut record_count = 0u64;
        for buffer in batches {
            for item in iter_batches(buffer) {
                let (header, _) = item.unwrap_or_else(|err| {
                    panic!("add_chunk got bytes that are not whole batches (validated on produce): {err}")
                });
                assert!(
                    header.records_count > 0,
                    "add_chunk got a batch without records"
                );
                range = match range {
                    None => Some((header.base_offset, header.last_offset())),
                    Some((base_offset, last_offset)) => {
                        if contiguous {
                            assert_eq!(
                                header.base_offset,
                                last_offset + 1,
                                "offsets of {topic_partition:?} are not contiguous in a chunk"
                            );
                        } else {
                            assert!(
                                header.base_offset > last_offset,
                                "offsets of {topic_partition:?} do not ascend in a chunk"
                            );
                        }
                        Some((base_offset, header.last_offset()))
                    }
                };
                max_timestamp = max_timestamp.max(header.max_timestamp);
                record_count += u64::try_from(header.records_count).expect("checked positive");
            }
            uncompressed_length += buffer.len() as u64;
        }
        let (base_offset, last_offset) = range.expect("add_chunk needs at least one batch");
        self.uncompressed_length += uncompressed_length;
        self.chunks.push(PendingChunk {
            topic_partition,
            batches: batches.to_vec(),
            base_offset,
            last_offset,
            max_timestamp,
            uncompressed_length,
            record_count,
        });
    }

    /// Compresses the chunks and lays out the object. CPU-bound: run it in `spawn_blocking`.
    pub fn finish(self) -> Result<BuiltSegment, SegmentError> {
        for chunk in &self.chunks {
            if chunk.uncompressed_length > CHUNK_UNCOMPRESSED_MAX {
                return Err(SegmentError::ChunkTooLarge {
                    uncompressed_length: chunk.uncompressed_length,
                    max: CHUNK_UNCOMPRESSED_MAX,
                });
            }
        }
        let mut compressors = ChunkCompressors {
            level: self.zstd_level,
            workers: self.workers,
            pool: self.compressors.as_deref(),
            single: None,
            multi: None,
        };
        let built = self.build(&mut compressors);
        if built.is_ok() {
            compressors.give_back();
        }
        built
    }

    fn build(&self, compressors: &mut ChunkCompressors<'_>) -> Result<BuiltSegment, SegmentError> {
        // Room for the worst case of every chunk that goes into `object`, so no chunk makes
        // it grow (a reallocation copies what it holds); the unused part is given back at
        // the end. An uncompressed builder's chunks are parts of their own (not copied).
        let worst_case: usize = self
            .chunks
            .iter()
            .map(|c| {
                let length =
                    usize::try_from(c.uncompressed_length).expect("checked against the limit");
                if self.raw && self.frame_bytes.is_none_or(|f| c.uncompressed_length <= f) {
                    CHUNK_SLACK_BYTES
                } else {
                    zstd::zstd_safe::compress_bound(length) + CHUNK_SLACK_BYTES
                }
            })
            .sum();
        let mut layout = Layout {
            parts: Vec::new(),
            before: 0,
            object: Vec::with_capacity(SEGMENT_MAGIC.len() + worst_case + ALIGN),
        };
        layout.object.extend_from_slice(SEGMENT_MAGIC);
        let mut chunks = Vec::with_capacity(self.chunks.len());
        let mut uncompressed = Vec::with_capacity(self.chunks.len());
        for pending in &self.chunks {
            // One buffer (a flush's chunk) is used as it is; several are joined.
            let data = match pending.batches.as_slice() {
                [one] => one.clone(),
                several => {
                    let mut data = Vec::with_capacity(
                        usize::try_from(pending.uncompressed_length)
                            .expect("checked against the limit"),
                    );
                    for buffer in several {
                        data.extend_from_slice(buffer);
                    }
                    Bytes::from(data)
                }
            };
            // The first of the two checks of a segment (the other is on read): the bytes we
            // upload are whole batches with valid CRCs and the offsets the footer claims.
            // Failing means the broker corrupted data in memory, which is a bug.
            let headers = validate_stored_batches(&data, usize::MAX).unwrap_or_else(|err| {
                panic!(
                    "chunk of {:?} is invalid before upload: {err}",
                    pending.topic_partition
                )
            });
            assert_eq!(
                headers.first().map(|h| h.base_offset),
                Some(pending.base_offset)
            );
            assert_eq!(
                headers.last().map(|h| h.last_offset()),
                Some(pending.last_offset)
            );

            let frames = self
                .frame_bytes
                .map(|frame_bytes| split_frames(&data, frame_bytes))
                .unwrap_or_default();
            let mut byte_offset = layout.position();
            let mut seek_table_length = 0;
            let mut encoding = ChunkEncoding::Zstd;
            if frames.len() <= 1 && self.raw {
                encoding = ChunkEncoding::Raw;
                byte_offset = layout.push_part(data.clone(), data.len() >= ALIGNED_CHUNK_MIN);
            } else if frames.len() <= 1 && mostly_compressed(&headers, data.len()) {
                encoding = ChunkEncoding::Raw;
                layout.object.extend_from_slice(&data);
            } else if frames.len() > 1 {
                let mut metas = Vec::with_capacity(frames.len());
                for (range, mut meta) in frames {
                    let frame_start = layout.position();
                    compress_into(
                        compressors.for_len(range.len())?,
                        &data[range],
                        &mut layout.object,
                    )?;
                    meta.byte_offset = frame_start - byte_offset;
                    meta.byte_length = layout.position() - frame_start;
                    metas.push(meta);
                }
                let table = encode_seek_table(&metas);
                seek_table_length = table.len() as u64;
                layout.object.extend_from_slice(&table);
            } else {
                compress_into(compressors.for_len(data.len())?, &data, &mut layout.object)?;
            }
            chunks.push(ChunkMeta {
                topic_partition: pending.topic_partition,
                base_offset: pending.base_offset,
                last_offset: pending.last_offset,
                max_timestamp: pending.max_timestamp,
                byte_offset,
                byte_length: layout.position() - byte_offset,
                uncompressed_length: pending.uncompressed_length,
                record_count: pending.record_count,
                seek_table_length,
                encoding,
            });
            uncompressed.push(data);
        }
        let footer = encode_footer(&chunks);
        layout.object.extend_from_slice(&footer);
        layout.object.extend_from_slice(&encode_trailer(&footer));
        let Layout {
            mut parts,
            mut object,
            ..
        } = layout;
        if object.capacity() > object.len() + object.len() / 4 {
            object.shrink_to_fit();
        }
        parts.push(Bytes::from(object));
        Ok(BuiltSegment {
            parts,
            chunks,
            uncompressed,
        })
    }
}

/// An object being laid out: `parts` (in order, `before` bytes in all), then `object`.
struct Layout {
    parts: Vec<Bytes>,
    before: usize,
    object: Vec<u8>,
}

impl Layout {
    /// Where the next byte goes in the object.
    fn position(&self) -> u64 {
        (self.before + self.object.len()) as u64
    }

    /// Puts `data` into the object as a part of its own (not copied), at an [`ALIGN`]
    /// boundary (zero bytes before it) when `aligned`; returns its offset.
    fn push_part(&mut self, data: Bytes, aligned: bool) -> u64 {
        if aligned {
            let end = self.before + self.object.len();
            self.object
                .resize(self.object.len() + (end.next_multiple_of(ALIGN) - end), 0);
        }
        if !self.object.is_empty() {
            let capacity = self.object.capacity() - self.object.len();
            let object = std::mem::replace(&mut self.object, Vec::with_capacity(capacity));
            self.before += object.len();
            self.parts.push(Bytes::from(object));
        }
        let offset = self.before as u64;
        self.before += data.len();
        self.parts.push(data);
        offset
    }
}

/// Appends `data` compressed as one zstd frame to `object`, compressing straight into its
/// spare capacity (no intermediate buffer).
fn compress_into(
    compressor: &mut zstd::bulk::Compressor<'_>,
    data: &[u8],
    object: &mut Vec<u8>,
) -> Result<(), SegmentError> {
    object.reserve(zstd::zstd_safe::compress_bound(data.len()));
    let end = object.len();
    // A cursor at the end: zstd writes after what `object` holds, not over it.
    let mut cursor = std::io::Cursor::new(&mut *object);
    cursor.set_position(end as u64);
    compressor
        .compress_to_buffer(data, &mut cursor)
        .map_err(|source| SegmentError::Compress { source })?;
    debug_assert!(object.len() > end, "a zstd frame is never empty");
    Ok(())
}

/// Cuts the validated batches `data` into frames: each closed at the first batch boundary at
/// or after `frame_bytes`. Byte offsets and compressed lengths are filled in by the caller.
fn split_frames(data: &[u8], frame_bytes: u64) -> Vec<(std::ops::Range<usize>, FrameMeta)> {
    let mut frames: Vec<(std::ops::Range<usize>, FrameMeta)> = Vec::new();
    let mut open = false;
    for item in iter_batches(data) {
        let (header, range) = item.expect("validated before");
        let records = u64::try_from(header.records_count).expect("validated positive");
        match frames.last_mut() {
            Some((frame_range, meta)) if open => {
                frame_range.end = range.end;
                meta.last_offset = header.last_offset();
                meta.max_timestamp = meta.max_timestamp.max(header.max_timestamp);
                meta.record_count += records;
                meta.uncompressed_length = frame_range.len() as u64;
            }
            _ => frames.push((
                range.clone(),
                FrameMeta {
                    byte_offset: 0,
                    byte_length: 0,
                    uncompressed_length: range.len() as u64,
                    base_offset: header.base_offset,
                    last_offset: header.last_offset(),
                    max_timestamp: header.max_timestamp,
                    record_count: records,
                },
            )),
        }
        open = frames
            .last()
            .is_some_and(|(r, _)| (r.len() as u64) < frame_bytes);
    }
    frames
}
