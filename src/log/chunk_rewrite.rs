//! Rewriting a partition's chunks into a new object of its own, shared by segment
//! compaction (`compaction`, merging small chunks) and the key cleaner (`cleaner`, dropping
//! superseded records): reading a chunk whole and writing the result as one seekable chunk.

use bytes::Bytes;
use strato_metadata::model::{IndexEntry, TopicPartition};
use strato_tiering::segment::{ChunkMeta, SegmentBuilder};

use crate::log::LogTasks;

/// Chunks merged at most in one step: the swap deletes them and puts one entry in a single
/// transaction, and etcd allows 128 operations per transaction.
pub(super) const ENTRIES_PER_STEP_MAX: usize = 99;
/// zstd level of compacted chunks: they are written once and read many times.
const ZSTD_LEVEL: i32 = 3;

/// The uncompressed batches of the chunk `entry` points at (what compaction and the key
/// cleaner rewrite).
pub(crate) async fn read_chunk(ctx: &LogTasks, entry: &IndexEntry) -> Result<Bytes, String> {
    ctx.tier
        .read_chunk(entry)
        .await
        .map_err(|err| format!("read chunk of {}: {err:#}", entry.object))
}

/// One partition's chunk, alone in a new object that is uploaded already: its index entry,
/// and what `Tier::cache_chunks` takes once the entry is swapped in.
pub(crate) struct WrittenChunk {
    pub key: String,
    pub entry: IndexEntry,
    pub cache: Vec<(ChunkMeta, Bytes)>,
}

impl WrittenChunk {
    /// Writes `batches` (ascending offsets, gaps allowed) of `tp` as one seekable chunk
    /// (frames of `frame_bytes`) of a new object and uploads it.
    pub(crate) async fn upload(
        ctx: &LogTasks,
        tp: TopicPartition,
        batches: Vec<Bytes>,
        frame_bytes: u64,
    ) -> Result<Self, String> {
        let built = tokio::task::spawn_blocking(move || {
            let mut builder = SegmentBuilder::new(ZSTD_LEVEL).with_frames(frame_bytes);
            builder.add_sparse_chunk(tp, &batches);
            builder.finish()
        })
        .await
        .map_err(|err| format!("build segment: {err}"))?
        .map_err(|err| format!("build segment: {err:#}"))?;
        let key = strato_tiering::keys::new_segment_key();
        let cache = built.chunk_data();
        let (meta, _) = cache.first().ok_or("built segment has no chunk")?;
        let entry = meta.to_index_entry(&key);
        ctx.tier
            .upload_parts(&key, built.parts)
            .await
            .map_err(|err| format!("upload segment: {err:#}"))?;
        Ok(Self { key, entry, cache })
    }

    /// Fills the chunk cache (after the swap).
    pub(crate) fn cache(&self, ctx: &LogTasks) {
        ctx.tier.cache_chunks(&self.key, &self.cache);
    }
}
