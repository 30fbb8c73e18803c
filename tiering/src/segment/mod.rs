//! The segment object format: one object per flush holding one chunk per partition and a
//! footer that makes the object self-describing. A chunk is zstd-compressed, or stored raw
//! (`ChunkEncoding::Raw`, flagged in the footer and in `IndexEntry.raw`) when its batches
//! were compressed by the producer.
//!
//! `format` owns the byte layout, `seek` the seek tables of chunks written as several
//! frames, `writer` builds objects, `reader` parses footers and decodes chunks, `dump`
//! renders an object for `strato segment dump`. All of it is pure CPU work over byte slices:
//! callers on the async runtime run it inside `spawn_blocking`.

mod dump;
mod format;
mod reader;
mod seek;
mod writer;

// The files split the work; callers see one path per item, `strato_tiering::segment::X`.
pub use dump::{ChunkDump, SegmentDump, dump_segment};
pub use format::{
    CHUNK_UNCOMPRESSED_MAX, ChunkEncoding, ChunkMeta, ExpectedChunk, FOOTER_VERSION, SEGMENT_MAGIC,
    TRAILER_LEN,
};
pub use reader::{decode_chunk, parse_segment_footer};
pub use seek::{FrameMeta, SEEK_TABLE_BYTES_MAX, decode_seek_table};
pub use writer::{ALIGNED_CHUNK_MIN, BuiltSegment, CompressorPool, SegmentBuilder};

/// Why a segment could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The bytes are not a valid segment, or a chunk disagrees with what its index says.
    #[error("corrupt segment: {reason}")]
    Corrupt { reason: String },
    /// A chunk is larger than [`CHUNK_UNCOMPRESSED_MAX`], so readers would refuse it.
    #[error("chunk of {uncompressed_length} bytes is over the limit of {max} bytes")]
    ChunkTooLarge { uncompressed_length: u64, max: u64 },
    #[error("failed to compress chunk")]
    Compress {
        #[source]
        source: std::io::Error,
    },
}

impl SegmentError {
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Self::Corrupt {
            reason: reason.into(),
        }
    }
}
