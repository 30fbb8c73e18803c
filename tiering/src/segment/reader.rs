//! Reads segment objects: parses and checks the footer of a whole object, and decodes one
//! chunk with its checks (the second of the two checks of a segment; the first runs before
//! upload in the writer).
//!
//! Every input is untrusted: errors, never panics, and memory bounded by
//! [`CHUNK_UNCOMPRESSED_MAX`] rather than by any length read from the bytes. Decoding is CPU
//! work: callers on the async runtime run it inside `spawn_blocking`.

use bytes::Bytes;

use super::SegmentError;
use super::format::{
    CHUNK_UNCOMPRESSED_MAX, ChunkEncoding, ChunkMeta, ExpectedChunk, SEGMENT_LEN_MIN,
    SEGMENT_MAGIC, TRAILER_LEN, decode_footer, decode_trailer,
};
use crate::batch::{
    BATCH_HEADER_LEN, BatchHeader, validate_decompressed_batches, validate_stored_batches,
};

/// Parses the footer of a whole segment object and checks it against the object: both
/// magics, footer length and CRC, and that every chunk lies between the opening magic and
/// the footer, in ascending order without overlap, with plausible offsets and sizes.
pub fn parse_segment_footer(object: &[u8]) -> Result<Vec<ChunkMeta>, SegmentError> {
    if object.len() < SEGMENT_LEN_MIN {
        return Err(SegmentError::corrupt(format!(
            "object of {} bytes is shorter than the smallest segment ({SEGMENT_LEN_MIN} bytes)",
            object.len()
        )));
    }
    if &object[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return Err(SegmentError::corrupt("bad opening magic"));
    }
    let (footer_len, footer_crc) = decode_trailer(object)?;
    let footer_len = footer_len as usize;
    let footer_room = object.len() - SEGMENT_MAGIC.len() - TRAILER_LEN;
    if footer_len > footer_room {
        return Err(SegmentError::corrupt(format!(
            "footer length {footer_len} is more than the {footer_room} bytes available"
        )));
    }
    let footer_end = object.len() - TRAILER_LEN;
    let footer_start = footer_end - footer_len;
    let footer = &object[footer_start..footer_end];
    let actual_crc = crc32c::crc32c(footer);
    if actual_crc != footer_crc {
        return Err(SegmentError::corrupt(format!(
            "footer CRC mismatch: trailer says {footer_crc:#010x}, footer has {actual_crc:#010x}"
        )));
    }
    let chunks = decode_footer(footer)?;
    let mut previous_end = SEGMENT_MAGIC.len() as u64;
    for (index, chunk) in chunks.iter().enumerate() {
        check_chunk_meta(index, chunk, previous_end, footer_start as u64)?;
        previous_end = chunk.byte_offset + chunk.byte_length;
    }
    Ok(chunks)
}

fn check_chunk_meta(
    index: usize,
    chunk: &ChunkMeta,
    previous_end: u64,
    footer_start: u64,
) -> Result<(), SegmentError> {
    let fail = |what: &str| {
        Err(SegmentError::corrupt(format!(
            "footer entry {index} ({:?} offsets {}..={}): {what}",
            chunk.topic_partition, chunk.base_offset, chunk.last_offset
        )))
    };
    if chunk.byte_length == 0 {
        return fail("empty chunk");
    }
    let Some(end) = chunk.byte_offset.checked_add(chunk.byte_length) else {
        return fail("byte range overflows");
    };
    if chunk.byte_offset < previous_end {
        return fail("byte range overlaps the previous chunk or the opening magic");
    }
    if end > footer_start {
        return fail("byte range runs into the footer");
    }
    if chunk.base_offset < 0 || chunk.last_offset < chunk.base_offset {
        return fail("bad offset range");
    }
    if chunk.record_count == 0 {
        return fail("no records");
    }
    if chunk.uncompressed_length < BATCH_HEADER_LEN as u64
        || chunk.uncompressed_length > CHUNK_UNCOMPRESSED_MAX
    {
        return fail("implausible uncompressed length");
    }
    if chunk.seek_table_length >= chunk.byte_length
        || chunk.seek_table_length > super::SEEK_TABLE_BYTES_MAX
    {
        return fail("implausible seek table length");
    }
    if chunk.encoding == ChunkEncoding::Raw
        && (chunk.byte_length != chunk.uncompressed_length || chunk.seek_table_length != 0)
    {
        return fail("raw chunk whose stored and batch lengths differ, or with a seek table");
    }
    Ok(())
}

/// Whether `frame` starts with a zstd frame header whose Content_Checksum_flag is set.
fn has_content_checksum(frame: &[u8]) -> bool {
    const ZSTD_MAGIC: [u8; 4] = 0xFD2F_B528u32.to_le_bytes();
    const CHECKSUM_FLAG: u8 = 0x04;
    frame.len() > 4 && frame[..4] == ZSTD_MAGIC && frame[4] & CHECKSUM_FLAG != 0
}

/// Decompresses one chunk (a raw chunk is taken as it is, its batch CRCs checked) and
/// checks it is what `expected` says: exactly
/// `uncompressed_length` bytes of whole valid batches (their CRCs vouched for by the zstd
/// content checksum, see [`validate_decompressed_batches`]) with ascending offsets,
/// from `base_offset` to `last_offset`, `record_count` records and `max_timestamp`.
///
/// Allocates at most `expected.uncompressed_length + 1` bytes, and refuses expectations over
/// [`CHUNK_UNCOMPRESSED_MAX`].
pub fn decode_chunk(compressed: &[u8], expected: &ExpectedChunk) -> Result<Bytes, SegmentError> {
    if expected.uncompressed_length > CHUNK_UNCOMPRESSED_MAX {
        return Err(SegmentError::corrupt(format!(
            "expected uncompressed length {} is over the limit of {CHUNK_UNCOMPRESSED_MAX}",
            expected.uncompressed_length
        )));
    }
    let expected_len =
        usize::try_from(expected.uncompressed_length).expect("bounded by CHUNK_UNCOMPRESSED_MAX");
    if expected.encoding == ChunkEncoding::Raw {
        return decode_raw_chunk(compressed, expected, expected_len);
    }
    if !has_content_checksum(compressed) {
        // Batch CRCs are not recomputed below: the frame's checksum must vouch for them.
        return Err(SegmentError::corrupt(
            "chunk is not a zstd frame with a content checksum",
        ));
    }
    // One spare byte: a chunk that decompresses to more than expected fills it (or overflows
    // the buffer, which zstd reports as an error) instead of passing as the right length.
    let data = zstd::bulk::decompress(compressed, expected_len + 1)
        .map_err(|err| SegmentError::corrupt(format!("chunk does not decompress: {err}")))?;
    if data.len() != expected_len {
        return Err(SegmentError::corrupt(format!(
            "chunk decompresses to {} bytes, expected {expected_len}",
            data.len()
        )));
    }
    let headers = validate_decompressed_batches(&data, usize::MAX)
        .map_err(|err| SegmentError::corrupt(format!("chunk holds invalid batches: {err}")))?;
    check_batches(&headers, expected)?;
    Ok(Bytes::from(data))
}

/// A raw chunk (the batches themselves): no checksum covers them but their own CRCs, so
/// those are checked.
fn decode_raw_chunk(
    stored: &[u8],
    expected: &ExpectedChunk,
    expected_len: usize,
) -> Result<Bytes, SegmentError> {
    if stored.len() != expected_len {
        return Err(SegmentError::corrupt(format!(
            "raw chunk is {} bytes, expected {expected_len}",
            stored.len()
        )));
    }
    let headers = validate_stored_batches(stored, usize::MAX)
        .map_err(|err| SegmentError::corrupt(format!("chunk holds invalid batches: {err}")))?;
    check_batches(&headers, expected)?;
    Ok(Bytes::copy_from_slice(stored))
}

/// Checks that a chunk's batches ascend and hold what `expected` says.
fn check_batches(headers: &[BatchHeader], expected: &ExpectedChunk) -> Result<(), SegmentError> {
    let mut record_count = 0u64;
    let mut max_timestamp = i64::MIN;
    let mut previous_last: Option<i64> = None;
    for header in headers {
        if let Some(previous_last) = previous_last
            && header.base_offset <= previous_last
        {
            return Err(SegmentError::corrupt(format!(
                "batch at offset {} follows a batch ending at {previous_last}",
                header.base_offset
            )));
        }
        previous_last = Some(header.last_offset());
        // The batch validation checked that every count is positive.
        record_count += header.records_count.unsigned_abs() as u64;
        max_timestamp = max_timestamp.max(header.max_timestamp);
    }
    let first = headers.first().map(|h| h.base_offset);
    let last = headers.last().map(|h| h.last_offset());
    if first != Some(expected.base_offset) || last != Some(expected.last_offset) {
        return Err(SegmentError::corrupt(format!(
            "chunk holds offsets {first:?}..={last:?}, expected {}..={}",
            expected.base_offset, expected.last_offset
        )));
    }
    if record_count != expected.record_count {
        return Err(SegmentError::corrupt(format!(
            "chunk holds {record_count} records, expected {}",
            expected.record_count
        )));
    }
    if max_timestamp != expected.max_timestamp {
        return Err(SegmentError::corrupt(format!(
            "chunk max timestamp is {max_timestamp}, expected {}",
            expected.max_timestamp
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use strato_metadata::model::TopicPartition;
    use uuid::Uuid;

    use super::*;
    use crate::batch::test_support::{BatchSpec, XorShift, build_batch, simple_batch};
    use std::sync::Arc;

    use crate::segment::{BuiltSegment, CompressorPool, SegmentBuilder};

    fn tp(n: u8, partition: i32) -> TopicPartition {
        TopicPartition {
            topic_id: Uuid::from_bytes([n; 16]),
            partition,
        }
    }

    /// Three partitions: several batches each, one buffer holding two batches, and one
    /// idempotent producer batch.
    fn three_partition_segment() -> (BuiltSegment, Vec<(TopicPartition, Vec<u8>)>) {
        let mut inputs = Vec::new();
        let mut builder = SegmentBuilder::new(3);

        let a = vec![simple_batch(0, 3), simple_batch(3, 1), simple_batch(4, 10)];
        let b = {
            let mut two = simple_batch(100, 2);
            two.extend(simple_batch(102, 5));
            vec![two]
        };
        let c = vec![
            build_batch(&BatchSpec {
                base_offset: 7,
                records: 4,
                producer_id: 9,
                producer_epoch: 1,
                base_sequence: 0,
                base_timestamp: 1_800_000_000_000,
                ..BatchSpec::default()
            }),
            simple_batch(11, 2),
        ];
        for (partition, batches) in [(tp(1, 0), a), (tp(1, 1), b), (tp(2, 0), c)] {
            let buffers: Vec<Bytes> = batches.iter().cloned().map(Bytes::from).collect();
            builder.add_chunk(partition, &buffers);
            inputs.push((partition, batches.concat()));
        }
        (builder.finish().unwrap(), inputs)
    }

    /// Goal: a chunk compressed by zstd worker threads (several jobs) is one ordinary
    /// frame that reads back byte for byte, checked like any other.
    #[test]
    fn chunks_compressed_by_worker_threads_read_back() {
        // 3 MiB: three jobs of `WORKER_JOB_BYTES`.
        let batches: Vec<u8> = (0..80)
            .flat_map(|i| {
                build_batch(&BatchSpec {
                    base_offset: i * 20,
                    records: 20,
                    value_len: 2500,
                    ..BatchSpec::default()
                })
            })
            .collect();
        assert!(batches.len() > 3 << 20);
        let mut builder = SegmentBuilder::new(1).with_workers(2);
        builder.add_chunk(tp(1, 0), &[Bytes::from(batches.clone())]);
        let built = builder.finish().unwrap();
        let chunk = built.chunks[0];
        assert_eq!(chunk.encoding, ChunkEncoding::Zstd);
        let stored = &built.bytes()
            [chunk.byte_offset as usize..(chunk.byte_offset + chunk.byte_length) as usize];
        assert_eq!(
            &decode_chunk(stored, &ExpectedChunk::from(&chunk)).unwrap()[..],
            &batches[..]
        );
    }

    /// Goal: an `uncompressed` builder stores the chunks it does not cut into frames as
    /// their batches (raw, for compaction to compress later), and they read back byte for
    /// byte; frames are still compressed.
    #[test]
    fn an_uncompressed_builder_stores_batches_as_they_are() {
        let data: Vec<u8> = (0..20)
            .flat_map(|i| {
                build_batch(&BatchSpec {
                    base_offset: i * 10,
                    records: 10,
                    value_len: 500,
                    ..BatchSpec::default()
                })
            })
            .collect();
        let mut builder = SegmentBuilder::new(1).uncompressed();
        builder.add_chunk(tp(1, 0), &[Bytes::from(data.clone())]);
        let built = builder.finish().unwrap();
        let chunk = built.chunks[0];
        assert_eq!(chunk.encoding, ChunkEncoding::Raw);
        assert_eq!(chunk.byte_length, data.len() as u64);
        let stored = &built.bytes()
            [chunk.byte_offset as usize..(chunk.byte_offset + chunk.byte_length) as usize];
        assert_eq!(stored, &data[..]);
        assert_eq!(
            &decode_chunk(stored, &ExpectedChunk::from(&chunk)).unwrap()[..],
            &data[..]
        );

        let mut builder = SegmentBuilder::new(1).uncompressed().with_frames(4096);
        builder.add_chunk(tp(1, 0), &[Bytes::from(data.clone())]);
        let built = builder.finish().unwrap();
        let chunk = built.chunks[0];
        assert_eq!(chunk.encoding, ChunkEncoding::Zstd, "frames are compressed");
        assert!(chunk.byte_length < data.len() as u64);
    }

    /// Goal: an uncompressed build copies no chunk: each is a part of the object of its
    /// own (the very buffer it was added as), a large one at an `ALIGN` boundary with zeros
    /// before it, a small one right after what precedes it; the object reads back whole.
    #[test]
    fn an_uncompressed_build_puts_each_chunk_in_a_part_of_its_own() {
        use crate::direct_file::ALIGN;
        use crate::segment::ALIGNED_CHUNK_MIN;
        let chunk_of = |base: i64, batches: i64| -> Bytes {
            (0..batches)
                .flat_map(|i| {
                    build_batch(&BatchSpec {
                        base_offset: base + i * 10,
                        records: 10,
                        value_len: 500,
                        ..BatchSpec::default()
                    })
                })
                .collect::<Vec<u8>>()
                .into()
        };
        let small = chunk_of(0, 3);
        let large = chunk_of(0, 20);
        let other_small = chunk_of(100, 2);
        let other_large = chunk_of(100, 30);
        assert!(small.len() < ALIGNED_CHUNK_MIN && large.len() >= ALIGNED_CHUNK_MIN);
        let inputs = [
            (tp(1, 0), small.clone()),
            (tp(1, 1), large.clone()),
            (tp(1, 2), other_small.clone()),
            (tp(1, 3), other_large.clone()),
        ];
        let mut builder = SegmentBuilder::new(1).uncompressed();
        for (tp, data) in &inputs {
            builder.add_chunk(*tp, std::slice::from_ref(data));
        }
        let built = builder.finish().unwrap();
        let object = built.bytes();
        assert_eq!(object.len(), built.object_len());
        assert_eq!(parse_segment_footer(&object).unwrap(), built.chunks);
        let mut previous_end = SEGMENT_MAGIC.len() as u64;
        for ((_, data), chunk) in inputs.iter().zip(&built.chunks) {
            assert_eq!(chunk.encoding, ChunkEncoding::Raw);
            assert!(
                built
                    .parts
                    .iter()
                    .any(|part| part.as_ptr() == data.as_ptr()),
                "chunk {chunk:?} not copied"
            );
            if data.len() >= ALIGNED_CHUNK_MIN {
                assert_eq!(chunk.byte_offset % ALIGN as u64, 0, "{chunk:?}");
                assert!(chunk.byte_offset - previous_end < ALIGN as u64);
                assert!(
                    object[previous_end as usize..chunk.byte_offset as usize]
                        .iter()
                        .all(|b| *b == 0),
                    "zeros before an aligned chunk"
                );
            } else {
                assert_eq!(
                    chunk.byte_offset, previous_end,
                    "no padding before a small chunk"
                );
            }
            let stored = &object
                [chunk.byte_offset as usize..(chunk.byte_offset + chunk.byte_length) as usize];
            assert_eq!(stored, &data[..]);
            previous_end = chunk.byte_offset + chunk.byte_length;
        }
    }

    /// Goal: builds that share a `CompressorPool` reuse its zstd contexts (one without
    /// worker threads, one with them for frames of several jobs; never more than the pool's
    /// bound) and every segment they build reads back byte for byte.
    #[test]
    fn pooled_compressors_are_reused_and_bounded() {
        let pool = Arc::new(CompressorPool::new(2));
        // 60 batches: 1.8 MB, two worker jobs; 10 batches: 0.3 MB, one.
        let build = |workers: u32, seed: i64, batch_count: i64| {
            let data: Vec<u8> = (0..batch_count)
                .flat_map(|i| {
                    build_batch(&BatchSpec {
                        base_offset: seed * 1000 + i * 10,
                        records: 10,
                        value_len: 3000 + seed as usize,
                        ..BatchSpec::default()
                    })
                })
                .collect();
            let mut builder = SegmentBuilder::new(1)
                .with_workers(workers)
                .with_compressors(pool.clone());
            builder.add_chunk(tp(1, 0), &[Bytes::from(data.clone())]);
            let built = builder.finish().unwrap();
            let chunk = built.chunks[0];
            let stored = &built.bytes()
                [chunk.byte_offset as usize..(chunk.byte_offset + chunk.byte_length) as usize];
            assert_eq!(
                &decode_chunk(stored, &ExpectedChunk::from(&chunk)).unwrap()[..],
                &data[..]
            );
        };
        for seed in 0..3 {
            build(0, seed, 60);
            assert_eq!(pool.len(), 1, "one context, reused");
        }
        build(2, 3, 10);
        assert_eq!(pool.len(), 1, "a one-job frame needs no worker threads");
        build(2, 4, 60);
        assert_eq!(
            pool.len(),
            2,
            "a frame of several jobs adds a context with workers"
        );
        build(0, 5, 60);
        build(2, 6, 60);
        assert_eq!(pool.len(), 2);
        // Builds at once take contexts the pool does not have; it keeps at most two.
        std::thread::scope(|scope| {
            for seed in 7..11 {
                let build = &build;
                scope.spawn(move || build(1, seed, 60));
            }
        });
        assert!(pool.len() <= 2, "{}", pool.len());
    }

    /// Goal: a chunk of producer-compressed batches is stored as it came (no zstd pass,
    /// flagged raw in the footer) and reads back byte for byte; a chunk of mostly plain
    /// batches is still zstd; a flipped byte in a raw chunk is caught by the batch CRCs.
    #[test]
    fn producer_compressed_chunks_are_stored_raw_and_checked_on_read() {
        const LZ4: i16 = 3;
        let compressed: Vec<u8> = [0, 5, 9]
            .iter()
            .flat_map(|&base| {
                build_batch(&BatchSpec {
                    base_offset: base,
                    records: if base == 0 { 5 } else { 4 },
                    attributes: LZ4,
                    value_len: 300,
                    ..BatchSpec::default()
                })
            })
            .collect();
        let mut mixed = simple_batch(0, 20);
        mixed.extend(build_batch(&BatchSpec {
            base_offset: 20,
            records: 1,
            attributes: LZ4,
            ..BatchSpec::default()
        }));
        let mut builder = SegmentBuilder::new(3);
        builder.add_chunk(tp(1, 0), &[Bytes::from(compressed.clone())]);
        builder.add_chunk(tp(1, 1), &[Bytes::from(mixed.clone())]);
        let built = builder.finish().unwrap();
        let chunks = parse_segment_footer(&built.bytes()).unwrap();
        assert_eq!(chunks, built.chunks);
        assert_eq!(chunks[0].encoding, ChunkEncoding::Raw);
        assert_eq!(chunks[1].encoding, ChunkEncoding::Zstd);
        let range =
            |c: &ChunkMeta| c.byte_offset as usize..(c.byte_offset + c.byte_length) as usize;
        let stored = &built.bytes()[range(&chunks[0])];
        assert_eq!(stored, &compressed[..], "stored as it came");
        let entry = chunks[0].to_index_entry("segments/00/x.seg");
        assert!(entry.raw);
        let expected = ExpectedChunk::from(&entry);
        assert_eq!(
            &decode_chunk(stored, &expected).unwrap()[..],
            &compressed[..]
        );
        assert_eq!(
            &decode_chunk(
                &built.bytes()[range(&chunks[1])],
                &ExpectedChunk::from(&chunks[1])
            )
            .unwrap()[..],
            &mixed[..]
        );
        let mut flipped = stored.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        assert!(matches!(
            decode_chunk(&flipped, &expected),
            Err(SegmentError::Corrupt { .. })
        ));
        let as_zstd = ExpectedChunk {
            encoding: ChunkEncoding::Zstd,
            ..expected
        };
        assert!(decode_chunk(stored, &as_zstd).is_err(), "not a zstd frame");
    }

    #[test]
    fn segments_round_trip() {
        let (built, inputs) = three_partition_segment();
        let chunks = parse_segment_footer(&built.bytes()).unwrap();
        assert_eq!(chunks, built.chunks);
        assert_eq!(chunks.len(), 3);

        let expected_ranges = [(0, 13, 14), (100, 106, 7), (7, 12, 6)];
        for (index, (chunk, (partition, raw))) in chunks.iter().zip(&inputs).enumerate() {
            assert_eq!(chunk.topic_partition, *partition);
            let (base, last, count) = expected_ranges[index];
            assert_eq!((chunk.base_offset, chunk.last_offset), (base, last));
            assert_eq!(chunk.record_count, count);
            assert_eq!(chunk.uncompressed_length, raw.len() as u64);
            let range =
                chunk.byte_offset as usize..(chunk.byte_offset + chunk.byte_length) as usize;
            let data = decode_chunk(&built.bytes()[range], &ExpectedChunk::from(chunk)).unwrap();
            assert_eq!(&data[..], &raw[..]);
            assert_eq!(built.uncompressed[index], data);
        }
        assert_eq!(chunks[2].max_timestamp, 1_800_000_000_003);
        assert_eq!(built.chunk_data().len(), 3);
    }

    #[test]
    fn empty_segment_round_trips() {
        let built = SegmentBuilder::new(1).finish().unwrap();
        assert!(parse_segment_footer(&built.bytes()).unwrap().is_empty());
    }

    #[test]
    fn footer_corruption_is_detected() {
        let (built, _) = three_partition_segment();
        let object = built.bytes().to_vec();
        let footer_byte = object.len() - TRAILER_LEN - 10;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("flipped footer byte", flip(&object, footer_byte)),
            ("flipped opening magic", flip(&object, 3)),
            ("flipped closing magic", flip(&object, object.len() - 1)),
            (
                "flipped footer length",
                flip(&object, object.len() - TRAILER_LEN),
            ),
            (
                "flipped footer crc",
                flip(&object, object.len() - TRAILER_LEN + 4),
            ),
            ("truncated end", object[..object.len() - 1].to_vec()),
            ("truncated start", object[1..].to_vec()),
            ("tail only", object[object.len() - 100..].to_vec()),
            ("empty", Vec::new()),
        ];
        for (name, bytes) in cases {
            assert!(
                matches!(
                    parse_segment_footer(&bytes),
                    Err(SegmentError::Corrupt { .. })
                ),
                "{name} not detected"
            );
        }
    }

    #[test]
    fn footer_entries_are_checked_against_the_object() {
        let (built, _) = three_partition_segment();
        let rewrite = |edit: &dyn Fn(&mut Vec<ChunkMeta>)| {
            let mut chunks = built.chunks.clone();
            edit(&mut chunks);
            let footer_start = built
                .chunks
                .last()
                .map(|c| c.byte_offset + c.byte_length)
                .unwrap();
            let mut object = built.bytes()[..footer_start as usize].to_vec();
            let footer = super::super::format::encode_footer(&chunks);
            object.extend_from_slice(&footer);
            object.extend_from_slice(&super::super::format::encode_trailer(&footer));
            parse_segment_footer(&object)
        };
        assert!(rewrite(&|_| {}).is_ok());
        assert!(rewrite(&|c| c[1].byte_offset -= 1).is_err(), "overlap");
        assert!(
            rewrite(&|c| c[2].byte_length += 1).is_err(),
            "into the footer"
        );
        assert!(
            rewrite(&|c| c[0].byte_offset = 0).is_err(),
            "over the magic"
        );
        assert!(
            rewrite(&|c| c[0].byte_offset = u64::MAX).is_err(),
            "overflow"
        );
        assert!(rewrite(&|c| c[0].byte_length = 0).is_err(), "empty");
        assert!(rewrite(&|c| c[0].last_offset = -5).is_err(), "offsets");
        assert!(
            rewrite(&|c| c[0].uncompressed_length = u64::MAX).is_err(),
            "size"
        );
    }

    #[test]
    fn chunk_corruption_is_detected() {
        let (built, _) = three_partition_segment();
        let chunk = built.chunks[0];
        let range = chunk.byte_offset as usize..(chunk.byte_offset + chunk.byte_length) as usize;
        let compressed = built.bytes()[range].to_vec();
        let expected = ExpectedChunk::from(&chunk);
        let original = decode_chunk(&compressed, &expected).unwrap();
        let mut detected = 0;
        for at in 0..compressed.len() {
            // A flip in bits zstd does not use (such as an unused part of an entropy table)
            // may decode to the original data; the content checksum proves it is the same.
            match decode_chunk(&flip(&compressed, at), &expected) {
                Err(SegmentError::Corrupt { .. }) => detected += 1,
                Err(err) => panic!("flipped byte {at}: unexpected error {err}"),
                Ok(data) => assert_eq!(data, original, "flipped byte {at} changed the data"),
            }
        }
        assert!(
            detected > compressed.len() * 9 / 10,
            "only {detected} of {} flips detected",
            compressed.len()
        );
        assert!(decode_chunk(&compressed[..compressed.len() - 1], &expected).is_err());
        let mut trailing = compressed.clone();
        trailing.push(0);
        assert!(decode_chunk(&trailing, &expected).is_err());
    }

    /// Batch CRCs are not recomputed on read, so a chunk whose zstd frame carries no
    /// content checksum (which no Strato writer makes) is refused rather than trusted.
    #[test]
    fn a_chunk_without_a_content_checksum_is_refused() {
        let (built, _) = three_partition_segment();
        let chunk = built.chunks[0];
        let data = &built.uncompressed[0];
        let expected = ExpectedChunk::from(&chunk);
        let unchecked = zstd::bulk::compress(data, 3).unwrap();
        let err = decode_chunk(&unchecked, &expected).unwrap_err();
        assert!(err.to_string().contains("content checksum"), "{err}");
        assert!(decode_chunk(b"", &expected).is_err());
    }

    #[test]
    fn wrong_expectations_are_detected() {
        let (built, _) = three_partition_segment();
        let chunk = built.chunks[1];
        let range = chunk.byte_offset as usize..(chunk.byte_offset + chunk.byte_length) as usize;
        let compressed = &built.bytes()[range];
        let good = ExpectedChunk::from(&chunk);
        assert!(decode_chunk(compressed, &good).is_ok());
        let wrong = [
            ExpectedChunk {
                base_offset: good.base_offset + 1,
                ..good
            },
            ExpectedChunk {
                last_offset: good.last_offset - 1,
                ..good
            },
            ExpectedChunk {
                uncompressed_length: good.uncompressed_length - 1,
                ..good
            },
            ExpectedChunk {
                uncompressed_length: good.uncompressed_length + 1,
                ..good
            },
            ExpectedChunk {
                uncompressed_length: u64::MAX,
                ..good
            },
            ExpectedChunk {
                record_count: good.record_count + 1,
                ..good
            },
            ExpectedChunk {
                max_timestamp: good.max_timestamp + 1,
                ..good
            },
        ];
        for expected in wrong {
            assert!(
                matches!(
                    decode_chunk(compressed, &expected),
                    Err(SegmentError::Corrupt { .. })
                ),
                "{expected:?} accepted"
            );
        }
    }

    #[test]
    #[should_panic(expected = "not contiguous")]
    fn builder_rejects_offset_gaps() {
        let mut builder = SegmentBuilder::new(1);
        builder.add_chunk(
            tp(1, 0),
            &[
                Bytes::from(simple_batch(0, 2)),
                Bytes::from(simple_batch(3, 1)),
            ],
        );
    }

    /// Goal: no object makes the reader panic. Method: random bytes, and a valid object
    /// with random bytes overwritten, through footer parsing and chunk decoding.
    #[test]
    fn random_objects_never_panic() {
        let (built, _) = three_partition_segment();
        let valid = built.bytes().to_vec();
        let expected = ExpectedChunk::from(&built.chunks[0]);
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        for _ in 0..3_000 {
            let object = if rng.below(3) == 0 {
                (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect()
            } else {
                let mut object = valid.clone();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(object.len());
                    object[at] = rng.next_u64() as u8;
                }
                object
            };
            if let Ok(chunks) = parse_segment_footer(&object) {
                for chunk in chunks {
                    let range = chunk.byte_offset as usize
                        ..(chunk.byte_offset + chunk.byte_length) as usize;
                    let _ = decode_chunk(&object[range], &ExpectedChunk::from(&chunk));
                }
            }
            let start = rng.below(object.len().max(1));
            let end = start + rng.below(object.len() - start + 1);
            let _ = decode_chunk(object.get(start..end).unwrap_or(&[]), &expected);
        }
    }

    fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out[at] ^= 0x40;
        out
    }
}
