//! Seek tables: a chunk written as several zstd frames ends with a table of its frames, so a
//! reader can fetch and decode one frame (a few MiB) of a compacted chunk (up to hundreds of
//! MiB) instead of the whole chunk.
//!
//! ```text
//! seekable chunk = frame 0 | frame 1 | ... | frame n-1 | seek table
//! frame          = zstd frame (content size + checksum) of whole batches, ascending offsets
//! seek table     = zstd skippable frame: magic 0x184D2A5E u32 | payload_len u32 | payload
//! payload        = version u16 | frame_count u32 | frame_count * entry | crc32c u32
//! entry          = byte_length u32 | uncompressed_length u32 | base_offset i64
//!                | last_offset i64 | max_timestamp i64 | record_count u32
//! ```
//! (all little-endian; the CRC-32C covers `version` to the last entry). A zstd decoder skips
//! skippable frames, so the whole chunk still decompresses in one call to all its batches.
//! The table's length is in the chunk's index entry (`seek_table_length`, 0 for a chunk of one
//! frame), so a reader fetches it with one ranged GET. Persisted format: a change means a new
//! version and a decoder for the old one.

use strato_metadata::model::{IndexEntry, Offset};

use super::SegmentError;
use super::format::{CHUNK_UNCOMPRESSED_MAX, ChunkEncoding, ExpectedChunk, FieldReader};
use crate::batch::BATCH_HEADER_LEN;

/// zstd skippable frame magic used for seek tables (any of 0x184D2A50..=0x184D2A5F is
/// skippable; this one is ours).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// Seek table format written by this code and the only one it reads.
const SEEK_TABLE_VERSION: u16 = 1;
/// `magic` + `payload_len`.
const SKIPPABLE_HEADER_LEN: usize = 4 + 4;
/// `version` + `frame_count`.
const PAYLOAD_PREFIX_LEN: usize = 2 + 4;
/// One entry per frame.
const ENTRY_LEN: usize = 4 + 4 + 8 + 8 + 8 + 4;
const CRC_LEN: usize = 4;
/// Largest seek table a reader accepts (~29,000 frames), so a corrupt index entry cannot
/// make it allocate much.
pub const SEEK_TABLE_BYTES_MAX: u64 = 1024 * 1024;

/// One frame of a seekable chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Byte range of the compressed frame, relative to the start of its chunk.
    pub byte_offset: u64,
    pub byte_length: u64,
    pub uncompressed_length: u64,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp: i64,
    pub record_count: u64,
}

impl From<&FrameMeta> for ExpectedChunk {
    fn from(frame: &FrameMeta) -> Self {
        Self {
            base_offset: frame.base_offset,
            last_offset: frame.last_offset,
            max_timestamp: frame.max_timestamp,
            uncompressed_length: frame.uncompressed_length,
            record_count: frame.record_count,
            encoding: ChunkEncoding::Zstd,
        }
    }
}

/// Encodes the seek table of `frames` (byte offsets are implied by the order and lengths).
pub(crate) fn encode_seek_table(frames: &[FrameMeta]) -> Vec<u8> {
    let payload_len = PAYLOAD_PREFIX_LEN + frames.len() * ENTRY_LEN + CRC_LEN;
    let mut out = Vec::with_capacity(SKIPPABLE_HEADER_LEN + payload_len);
    out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    let payload_len = u32::try_from(payload_len).expect("a seek table is never 4 GiB");
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&SEEK_TABLE_VERSION.to_le_bytes());
    let count = u32::try_from(frames.len()).expect("a chunk never has 2^32 frames");
    out.extend_from_slice(&count.to_le_bytes());
    let narrow = |n: u64| u32::try_from(n).expect("frames are bounded by CHUNK_UNCOMPRESSED_MAX");
    for frame in frames {
        out.extend_from_slice(&narrow(frame.byte_length).to_le_bytes());
        out.extend_from_slice(&narrow(frame.uncompressed_length).to_le_bytes());
        out.extend_from_slice(&frame.base_offset.to_le_bytes());
        out.extend_from_slice(&frame.last_offset.to_le_bytes());
        out.extend_from_slice(&frame.max_timestamp.to_le_bytes());
        out.extend_from_slice(&narrow(frame.record_count).to_le_bytes());
    }
    let crc = crc32c::crc32c(&out[SKIPPABLE_HEADER_LEN..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Parses the seek table `bytes` (the last `entry.seek_table_length` bytes of the chunk) and
/// checks it against the chunk's index entry: the frames tile the chunk exactly, in offset
/// order, and add up to its length, records, offsets and max timestamp.
pub fn decode_seek_table(bytes: &[u8], entry: &IndexEntry) -> Result<Vec<FrameMeta>, SegmentError> {
    let corrupt = |what: String| {
        SegmentError::corrupt(format!(
            "seek table of the chunk at {}+{} ({}..={}): {what}",
            entry.object, entry.byte_offset, entry.base_offset, entry.last_offset
        ))
    };
    let fixed = SKIPPABLE_HEADER_LEN + PAYLOAD_PREFIX_LEN + CRC_LEN;
    if bytes.len() as u64 != entry.seek_table_length {
        return Err(corrupt(format!(
            "{} bytes, the index entry says {}",
            bytes.len(),
            entry.seek_table_length
        )));
    }
    if bytes.len() < fixed || bytes.len() as u64 > SEEK_TABLE_BYTES_MAX {
        return Err(corrupt(format!("implausible length {}", bytes.len())));
    }
    let mut reader = FieldReader::new(bytes);
    if reader.u32() != SKIPPABLE_MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    if reader.u32() as usize != bytes.len() - SKIPPABLE_HEADER_LEN {
        return Err(corrupt(
            "payload length disagrees with the table length".into(),
        ));
    }
    let crc_at = bytes.len() - CRC_LEN;
    let stored_crc = u32::from_le_bytes(bytes[crc_at..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[SKIPPABLE_HEADER_LEN..crc_at]) != stored_crc {
        return Err(corrupt("CRC mismatch".into()));
    }
    let version = reader.u16();
    if version != SEEK_TABLE_VERSION {
        return Err(corrupt(format!("unknown version {version}")));
    }
    let count = reader.u32();
    let entries_len = bytes.len() - fixed;
    if entries_len as u64 != u64::from(count) * ENTRY_LEN as u64 || count == 0 {
        return Err(corrupt(format!(
            "says {count} frames but has {entries_len} bytes of entries"
        )));
    }
    let mut frames = Vec::with_capacity(entries_len / ENTRY_LEN);
    let mut byte_offset = 0u64;
    for _ in 0..count {
        let frame = FrameMeta {
            byte_offset,
            byte_length: u64::from(reader.u32()),
            uncompressed_length: u64::from(reader.u32()),
            base_offset: reader.i64(),
            last_offset: reader.i64(),
            max_timestamp: reader.i64(),
            record_count: u64::from(reader.u32()),
        };
        byte_offset += frame.byte_length;
        frames.push(frame);
    }
    check_frames(&frames, entry).map_err(corrupt)?;
    Ok(frames)
}

fn check_frames(frames: &[FrameMeta], entry: &IndexEntry) -> Result<(), String> {
    let mut previous_last: Option<Offset> = None;
    let (mut bytes, mut uncompressed, mut records) = (0u64, 0u64, 0u64);
    let mut max_timestamp = i64::MIN;
    for (index, frame) in frames.iter().enumerate() {
        if frame.byte_length == 0
            || frame.record_count == 0
            || frame.uncompressed_length < BATCH_HEADER_LEN as u64
            || frame.uncompressed_length > CHUNK_UNCOMPRESSED_MAX
            || frame.last_offset < frame.base_offset
            || previous_last.is_some_and(|last| frame.base_offset <= last)
        {
            return Err(format!("frame {index} is implausible: {frame:?}"));
        }
        previous_last = Some(frame.last_offset);
        bytes += frame.byte_length;
        uncompressed += frame.uncompressed_length;
        records += frame.record_count;
        max_timestamp = max_timestamp.max(frame.max_timestamp);
    }
    let first = frames.first().map(|f| f.base_offset);
    if first != Some(entry.base_offset) || previous_last != Some(entry.last_offset) {
        return Err(format!("frames hold offsets {first:?}..={previous_last:?}"));
    }
    if bytes + entry.seek_table_length != entry.byte_length {
        return Err(format!(
            "frames take {bytes} bytes of the chunk's {}",
            entry.byte_length
        ));
    }
    if uncompressed != entry.uncompressed_length {
        return Err(format!("frames decompress to {uncompressed} bytes"));
    }
    if records != entry.record_count {
        return Err(format!("frames hold {records} records"));
    }
    if max_timestamp != entry.max_timestamp {
        return Err(format!("frames' max timestamp is {max_timestamp}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use strato_metadata::model::TopicPartition;
    use uuid::Uuid;

    use super::*;
    use crate::batch::test_support::{BatchSpec, build_batch};
    use crate::segment::{SegmentBuilder, decode_chunk, parse_segment_footer};

    /// 40 batches of 5 records (ascending timestamps) in one partition's chunk, written with
    /// frames of at least `frame_bytes`: the object, the chunk's index entry and the batches.
    fn seekable(frame_bytes: u64) -> (Bytes, IndexEntry, Vec<u8>) {
        let tp = TopicPartition {
            topic_id: Uuid::from_bytes([7; 16]),
            partition: 0,
        };
        let batches: Vec<Vec<u8>> = (0..40)
            .map(|i| {
                build_batch(&BatchSpec {
                    base_offset: i * 5,
                    records: 5,
                    base_timestamp: 1_800_000_000_000 + i * 1000,
                    ..BatchSpec::default()
                })
            })
            .collect();
        let buffers: Vec<Bytes> = batches.iter().cloned().map(Bytes::from).collect();
        let mut builder = SegmentBuilder::new(3).with_frames(frame_bytes);
        builder.add_chunk(tp, &buffers);
        let built = builder.finish().unwrap();
        let entry = built.chunks[0].to_index_entry("segments/x.seg");
        (built.bytes(), entry, batches.concat())
    }

    fn chunk_bytes<'a>(object: &'a [u8], entry: &IndexEntry) -> &'a [u8] {
        &object[entry.byte_offset as usize..(entry.byte_offset + entry.byte_length) as usize]
    }

    fn table_bytes<'a>(object: &'a [u8], entry: &IndexEntry) -> &'a [u8] {
        let chunk = chunk_bytes(object, entry);
        &chunk[chunk.len() - entry.seek_table_length as usize..]
    }

    #[test]
    fn frames_decode_one_by_one_and_the_whole_chunk_still_decodes_in_one_call() {
        let one_batch = build_batch(&BatchSpec {
            base_offset: 0,
            records: 5,
            ..BatchSpec::default()
        })
        .len() as u64;
        // Frames close at the first batch boundary at or after 4 batches' worth.
        let (object, entry, data) = seekable(4 * one_batch - 1);
        assert!(entry.seek_table_length > 0);
        let footer = parse_segment_footer(&object).unwrap();
        assert_eq!(footer[0].to_index_entry("segments/x.seg"), entry);

        let frames = decode_seek_table(table_bytes(&object, &entry), &entry).unwrap();
        assert_eq!(frames.len(), 10);
        let chunk = chunk_bytes(&object, &entry);
        let mut joined = Vec::new();
        for (index, frame) in frames.iter().enumerate() {
            assert_eq!(frame.base_offset, index as i64 * 20);
            assert_eq!(frame.record_count, 20);
            let bytes = &chunk[frame.byte_offset as usize..][..frame.byte_length as usize];
            joined.extend_from_slice(&decode_chunk(bytes, &ExpectedChunk::from(frame)).unwrap());
        }
        assert_eq!(joined, data);
        // A zstd decoder skips the seek table (a skippable frame) and joins the frames.
        assert_eq!(
            decode_chunk(chunk, &ExpectedChunk::from(&footer[0])).unwrap(),
            data
        );
    }

    #[test]
    fn a_chunk_that_fits_one_frame_has_no_seek_table() {
        let (object, entry, data) = seekable(u64::MAX);
        assert_eq!(entry.seek_table_length, 0);
        let expected = ExpectedChunk::from(&parse_segment_footer(&object).unwrap()[0]);
        assert_eq!(
            decode_chunk(chunk_bytes(&object, &entry), &expected).unwrap(),
            data
        );
    }

    #[test]
    fn corrupt_tables_and_disagreeing_entries_are_refused() {
        let (object, entry, _) = seekable(1);
        let table = table_bytes(&object, &entry).to_vec();
        assert_eq!(decode_seek_table(&table, &entry).unwrap().len(), 40);
        for position in [0, 5, 9, 20, table.len() - 1] {
            let mut bad = table.clone();
            bad[position] ^= 0x40;
            assert!(
                decode_seek_table(&bad, &entry).is_err(),
                "flip at {position}"
            );
        }
        assert!(decode_seek_table(&table[..table.len() - 1], &entry).is_err());
        let disagreeing = [
            IndexEntry {
                record_count: entry.record_count + 1,
                ..entry.clone()
            },
            IndexEntry {
                last_offset: entry.last_offset + 1,
                ..entry.clone()
            },
            IndexEntry {
                byte_length: entry.byte_length - 1,
                ..entry.clone()
            },
            IndexEntry {
                uncompressed_length: entry.uncompressed_length + 1,
                ..entry.clone()
            },
            IndexEntry {
                max_timestamp: entry.max_timestamp - 1,
                ..entry.clone()
            },
        ];
        for other in disagreeing {
            assert!(decode_seek_table(&table, &other).is_err(), "{other:?}");
        }
    }
}
