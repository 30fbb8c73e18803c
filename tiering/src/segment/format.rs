//! Byte layout of a segment object, version 1, and the footer codec.
//!
//! ```text
//! "STRSEG01" | chunk 0 | chunk 1 | ... | footer | footer_len: u32 LE | footer_crc32c: u32 LE | "STRSEG01"
//! chunk  = zstd frame (content size + content checksum) of the concatenated raw record batches
//!          of ONE partition, ascending offsets
//!          (or, for a seekable chunk, several such frames and a seek table: see `seek`;
//!          or, encoding 1, the batches themselves: batches the producer compressed are
//!          stored as they came, their CRCs checked on read)
//! footer = version u16 | chunk_count u32 | chunk_count * entry      (all little-endian)
//! entry  = topic_id [u8; 16] | partition i32 | base_offset i64 | last_offset i64
//!        | max_timestamp i64 | byte_offset u64 | byte_length u64 | uncompressed_length u64
//!        | record_count u64 | seek_table_length u64 | encoding u8 (0 zstd, 1 raw)
//! ```
//! Chunks lie where their footer entries say, in footer order, without overlapping; there
//! may be bytes between them (readers never look there): an uncompressed flush puts zeros
//! before a large chunk so that it starts at a 4 KiB boundary (`writer::ALIGNED_CHUNK_MIN`),
//! which any reader of version 1 objects reads as before.
//! This is a persisted format: a change means a new footer version and a decoder for the old
//! one. Version 1 (written before seek tables) has no `seek_table_length`; version 2 adds it;
//! version 3 adds `encoding` (older chunks are all zstd).
//! `footer_crc32c` is CRC-32C over the footer bytes.

use strato_metadata::model::{IndexEntry, Offset, RECORD_FORMAT_V1, TopicPartition};
use uuid::Uuid;

use super::SegmentError;

/// First and last eight bytes of every segment object.
pub const SEGMENT_MAGIC: &[u8; 8] = b"STRSEG01";
/// Footer format written by this code (versions 1 and 2 are still read).
pub const FOOTER_VERSION: u16 = 3;
/// `footer_len` + `footer_crc32c` + closing magic.
pub const TRAILER_LEN: usize = 4 + 4 + SEGMENT_MAGIC.len();
/// `version` + `chunk_count`.
pub(crate) const FOOTER_PREFIX_LEN: usize = 2 + 4;
/// One footer entry per chunk (version 3).
pub(crate) const FOOTER_ENTRY_LEN: usize = 16 + 4 + 8 * 8 + 1;
/// One footer entry per chunk in version 2 footers (no encoding).
const FOOTER_ENTRY_LEN_V2: usize = 16 + 4 + 8 * 8;
/// One footer entry per chunk in version 1 footers (no seek table length either).
const FOOTER_ENTRY_LEN_V1: usize = 16 + 4 + 8 * 7;
/// The smallest object: magics, an empty footer and the trailer.
pub(crate) const SEGMENT_LEN_MIN: usize = SEGMENT_MAGIC.len() + FOOTER_PREFIX_LEN + TRAILER_LEN;
const _: () =
    assert!(FOOTER_ENTRY_LEN == 85 && FOOTER_ENTRY_LEN_V2 == 84 && FOOTER_ENTRY_LEN_V1 == 76);

/// How a chunk's batches are stored in the object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChunkEncoding {
    /// zstd frame(s) with content checksums (the frames' checksums vouch for the batches).
    #[default]
    Zstd,
    /// The batches as they are: chosen when the producer already compressed (nearly) all
    /// of them, where a zstd pass costs CPU and saves next to nothing. Batch CRCs are
    /// checked on read.
    Raw,
}

impl ChunkEncoding {
    fn code(self) -> u8 {
        match self {
            Self::Zstd => 0,
            Self::Raw => 1,
        }
    }

    fn from_code(code: u8) -> Result<Self, SegmentError> {
        match code {
            0 => Ok(Self::Zstd),
            1 => Ok(Self::Raw),
            _ => Err(SegmentError::corrupt(format!(
                "unknown chunk encoding {code}"
            ))),
        }
    }

    /// The encoding an index entry records.
    pub fn of_entry(entry: &IndexEntry) -> Self {
        if entry.raw { Self::Raw } else { Self::Zstd }
    }
}

/// Largest uncompressed chunk a writer produces and a reader accepts. Decoding allocates the
/// expected length up front, so this bounds the memory a corrupt footer or index entry can
/// make a reader allocate. Flushes are 8 MiB by default; compaction must split larger
/// partitions into several chunks (small chunks also keep ranged reads cheap).
pub const CHUNK_UNCOMPRESSED_MAX: u64 = 256 * 1024 * 1024;

/// Where one partition's chunk lives in a segment object and what it holds: one footer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub topic_partition: TopicPartition,
    /// Base offset of the first batch.
    pub base_offset: Offset,
    /// Last offset of the last batch.
    pub last_offset: Offset,
    /// Largest `maxTimestamp` of the chunk's batches.
    pub max_timestamp: i64,
    /// Byte range of the compressed chunk in the object.
    pub byte_offset: u64,
    pub byte_length: u64,
    pub uncompressed_length: u64,
    /// Sum of the batches' `recordsCount`.
    pub record_count: u64,
    /// Bytes of the seek table at the end of the chunk (0: one zstd frame, no table).
    pub seek_table_length: u64,
    pub encoding: ChunkEncoding,
}

impl ChunkMeta {
    /// The metadata index entry that points at this chunk of object `object_key`.
    pub fn to_index_entry(&self, object_key: &str) -> IndexEntry {
        IndexEntry {
            v: RECORD_FORMAT_V1,
            object: object_key.to_string(),
            byte_offset: self.byte_offset,
            byte_length: self.byte_length,
            uncompressed_length: self.uncompressed_length,
            base_offset: self.base_offset,
            last_offset: self.last_offset,
            max_timestamp: self.max_timestamp,
            record_count: self.record_count,
            seek_table_length: self.seek_table_length,
            raw: self.encoding == ChunkEncoding::Raw,
        }
    }
}

/// What a decoded chunk must contain, from its footer entry or its metadata index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedChunk {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp: i64,
    pub uncompressed_length: u64,
    pub record_count: u64,
    pub encoding: ChunkEncoding,
}

impl From<&ChunkMeta> for ExpectedChunk {
    fn from(meta: &ChunkMeta) -> Self {
        Self {
            base_offset: meta.base_offset,
            last_offset: meta.last_offset,
            max_timestamp: meta.max_timestamp,
            uncompressed_length: meta.uncompressed_length,
            record_count: meta.record_count,
            encoding: meta.encoding,
        }
    }
}

impl From<&IndexEntry> for ExpectedChunk {
    fn from(entry: &IndexEntry) -> Self {
        Self {
            base_offset: entry.base_offset,
            last_offset: entry.last_offset,
            max_timestamp: entry.max_timestamp,
            uncompressed_length: entry.uncompressed_length,
            record_count: entry.record_count,
            encoding: ChunkEncoding::of_entry(entry),
        }
    }
}

/// Encodes the footer (without the trailer).
pub(crate) fn encode_footer(chunks: &[ChunkMeta]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FOOTER_PREFIX_LEN + chunks.len() * FOOTER_ENTRY_LEN);
    out.extend_from_slice(&FOOTER_VERSION.to_le_bytes());
    let count = u32::try_from(chunks.len()).expect("a segment never holds 2^32 chunks");
    out.extend_from_slice(&count.to_le_bytes());
    for chunk in chunks {
        out.extend_from_slice(chunk.topic_partition.topic_id.as_bytes());
        out.extend_from_slice(&chunk.topic_partition.partition.to_le_bytes());
        out.extend_from_slice(&chunk.base_offset.to_le_bytes());
        out.extend_from_slice(&chunk.last_offset.to_le_bytes());
        out.extend_from_slice(&chunk.max_timestamp.to_le_bytes());
        out.extend_from_slice(&chunk.byte_offset.to_le_bytes());
        out.extend_from_slice(&chunk.byte_length.to_le_bytes());
        out.extend_from_slice(&chunk.uncompressed_length.to_le_bytes());
        out.extend_from_slice(&chunk.record_count.to_le_bytes());
        out.extend_from_slice(&chunk.seek_table_length.to_le_bytes());
        out.push(chunk.encoding.code());
    }
    debug_assert_eq!(
        out.len(),
        FOOTER_PREFIX_LEN + chunks.len() * FOOTER_ENTRY_LEN
    );
    out
}

/// Reads fixed-size little-endian fields from a slice whose length the caller checked.
pub(crate) struct FieldReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> FieldReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.position..self.position + N]);
        self.position += N;
        out
    }

    pub(crate) fn u8(&mut self) -> u8 {
        u8::from_le_bytes(self.array())
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub(crate) fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.array())
    }

    pub(crate) fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.array())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

/// Decodes the footer bytes (without the trailer). Checks the version and that the chunk
/// count matches the footer length exactly, so the count never drives an allocation.
pub(crate) fn decode_footer(footer: &[u8]) -> Result<Vec<ChunkMeta>, SegmentError> {
    if footer.len() < FOOTER_PREFIX_LEN {
        return Err(SegmentError::corrupt(format!(
            "footer of {} bytes is shorter than its {FOOTER_PREFIX_LEN} byte prefix",
            footer.len()
        )));
    }
    let mut reader = FieldReader::new(footer);
    let version = reader.u16();
    let entry_len = match version {
        1 => FOOTER_ENTRY_LEN_V1,
        2 => FOOTER_ENTRY_LEN_V2,
        FOOTER_VERSION => FOOTER_ENTRY_LEN,
        _ => {
            return Err(SegmentError::corrupt(format!(
                "unknown footer version {version}"
            )));
        }
    };
    let count = reader.u32();
    let entries_len = footer.len() - FOOTER_PREFIX_LEN;
    if entries_len as u64 != u64::from(count) * entry_len as u64 {
        return Err(SegmentError::corrupt(format!(
            "footer says {count} chunks but has {entries_len} bytes of entries"
        )));
    }
    let mut chunks = Vec::with_capacity(entries_len / entry_len);
    for _ in 0..count {
        chunks.push(ChunkMeta {
            topic_partition: TopicPartition {
                topic_id: Uuid::from_bytes(reader.array()),
                partition: reader.i32(),
            },
            base_offset: reader.i64(),
            last_offset: reader.i64(),
            max_timestamp: reader.i64(),
            byte_offset: reader.u64(),
            byte_length: reader.u64(),
            uncompressed_length: reader.u64(),
            record_count: reader.u64(),
            seek_table_length: if version == 1 { 0 } else { reader.u64() },
            encoding: if version < 3 {
                ChunkEncoding::Zstd
            } else {
                ChunkEncoding::from_code(reader.u8())?
            },
        });
    }
    Ok(chunks)
}

/// Reads `footer_len` and `footer_crc32c` from the trailer at the end of `object`.
pub(crate) fn decode_trailer(object: &[u8]) -> Result<(u32, u32), SegmentError> {
    if object.len() < TRAILER_LEN {
        return Err(SegmentError::corrupt(format!(
            "object of {} bytes has no room for the trailer",
            object.len()
        )));
    }
    let trailer = &object[object.len() - TRAILER_LEN..];
    let mut reader = FieldReader::new(trailer);
    let footer_len = reader.u32();
    let footer_crc = reader.u32();
    if reader.array::<8>() != *SEGMENT_MAGIC {
        return Err(SegmentError::corrupt("bad closing magic"));
    }
    Ok((footer_len, footer_crc))
}

/// Encodes the trailer for a footer.
pub(crate) fn encode_trailer(footer: &[u8]) -> [u8; TRAILER_LEN] {
    let footer_len = u32::try_from(footer.len()).expect("a footer is never 4 GiB");
    let mut out = [0u8; TRAILER_LEN];
    out[0..4].copy_from_slice(&footer_len.to_le_bytes());
    out[4..8].copy_from_slice(&crc32c::crc32c(footer).to_le_bytes());
    out[8..].copy_from_slice(SEGMENT_MAGIC);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_footers_still_decode_without_seek_tables() {
        let meta = ChunkMeta {
            topic_partition: TopicPartition {
                topic_id: Uuid::from_bytes([3; 16]),
                partition: 2,
            },
            base_offset: 10,
            last_offset: 19,
            max_timestamp: 5,
            byte_offset: 8,
            byte_length: 100,
            uncompressed_length: 300,
            record_count: 10,
            seek_table_length: 0,
            encoding: ChunkEncoding::Zstd,
        };
        let v3 = encode_footer(&[meta]);
        assert_eq!(decode_footer(&v3).unwrap(), vec![meta]);
        let raw = ChunkMeta {
            encoding: ChunkEncoding::Raw,
            ..meta
        };
        assert_eq!(decode_footer(&encode_footer(&[raw])).unwrap(), vec![raw]);
        let mut unknown = encode_footer(&[raw]);
        *unknown.last_mut().unwrap() = 7;
        assert!(decode_footer(&unknown).is_err(), "unknown encoding");
        // Version 2: the same entry without its encoding (zstd).
        let mut v2 = v3[..v3.len() - 1].to_vec();
        v2[..2].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(decode_footer(&v2).unwrap(), vec![meta]);
        // Version 1: without its seek table length either.
        let mut v1 = v3[..v3.len() - 9].to_vec();
        v1[..2].copy_from_slice(&1u16.to_le_bytes());
        assert_eq!(decode_footer(&v1).unwrap(), vec![meta]);
        v1[..2].copy_from_slice(&3u16.to_le_bytes());
        assert!(decode_footer(&v1).is_err());
    }
}
