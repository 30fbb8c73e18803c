//! A readable description of a segment object, for `strato segment dump` and debugging.
//!
//! A corrupt footer fails the whole dump; a corrupt chunk is reported in its place so the
//! rest of the object can still be inspected.

use std::fmt;

use super::SegmentError;
use super::format::{ChunkMeta, ExpectedChunk};
use super::reader::{decode_chunk, parse_segment_footer};
use super::seek::{FrameMeta, decode_seek_table};
use crate::batch::{BatchHeader, TxnMarker, iter_batches, parse_marker};

/// Everything a segment object says about itself.
#[derive(Debug)]
pub struct SegmentDump {
    pub object_len: u64,
    pub chunks: Vec<ChunkDump>,
}

/// One footer entry and the batch headers of its decoded chunk.
#[derive(Debug)]
pub struct ChunkDump {
    pub meta: ChunkMeta,
    /// A seekable chunk's frames (from its seek table), or why the table is unreadable;
    /// `None` for a chunk of one frame.
    pub frames: Option<Result<Vec<FrameMeta>, SegmentError>>,
    /// The chunk's batch headers, or why it could not be decoded.
    pub batches: Result<Vec<BatchHeader>, SegmentError>,
    /// The transaction marker of each control batch, by batch base offset.
    pub markers: Vec<(i64, TxnMarker)>,
}

/// Parses the footer of a whole object and decodes every chunk. CPU-bound: on the async
/// runtime, run it in `spawn_blocking`.
pub fn dump_segment(object: &[u8]) -> Result<SegmentDump, SegmentError> {
    let metas = parse_segment_footer(object)?;
    let chunks = metas
        .into_iter()
        .map(|meta| {
            // parse_segment_footer checked that the range lies inside the object.
            let start = meta.byte_offset as usize;
            let end = start + meta.byte_length as usize;
            let mut markers = Vec::new();
            let batches =
                decode_chunk(&object[start..end], &ExpectedChunk::from(&meta)).and_then(|data| {
                    iter_batches(&data)
                        .map(|item| {
                            item.map(|(header, range)| {
                                // decode_chunk validated every control batch as a marker.
                                if let Ok(marker) = parse_marker(&data[range]) {
                                    markers.push((header.base_offset, marker));
                                }
                                header
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|err| SegmentError::corrupt(err.to_string()))
                });
            let frames = (meta.seek_table_length > 0).then(|| {
                let table = &object[end - meta.seek_table_length as usize..end];
                decode_seek_table(table, &meta.to_index_entry(""))
            });
            ChunkDump {
                meta,
                frames,
                batches,
                markers,
            }
        })
        .collect();
    Ok(SegmentDump {
        object_len: object.len() as u64,
        chunks,
    })
}

impl fmt::Display for SegmentDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "segment: {} bytes, {} chunks",
            self.object_len,
            self.chunks.len()
        )?;
        for (index, chunk) in self.chunks.iter().enumerate() {
            let meta = &chunk.meta;
            writeln!(
                f,
                "chunk {index}: topic {} partition {} offsets {}..={} records {} max_ts {} \
                 bytes {}+{} uncompressed {}",
                meta.topic_partition.topic_id,
                meta.topic_partition.partition,
                meta.base_offset,
                meta.last_offset,
                meta.record_count,
                meta.max_timestamp,
                meta.byte_offset,
                meta.byte_length,
                meta.uncompressed_length,
            )?;
            match &chunk.frames {
                None => {}
                Some(Ok(frames)) => {
                    for (index, frame) in frames.iter().enumerate() {
                        writeln!(
                            f,
                            "  frame {index}: offsets {}..={} records {} max_ts {} bytes +{}+{} \
                             uncompressed {}",
                            frame.base_offset,
                            frame.last_offset,
                            frame.record_count,
                            frame.max_timestamp,
                            frame.byte_offset,
                            frame.byte_length,
                            frame.uncompressed_length,
                        )?;
                    }
                }
                Some(Err(err)) => writeln!(f, "  seek table error: {err}")?,
            }
            match &chunk.batches {
                Ok(batches) => {
                    for batch in batches {
                        writeln!(
                            f,
                            "  batch offsets {}..={} count {} max_ts {} compression {} \
                             producer {} epoch {} seq {}{}",
                            batch.base_offset,
                            batch.last_offset(),
                            batch.records_count,
                            batch.max_timestamp,
                            batch.compression(),
                            batch.producer_id,
                            batch.producer_epoch,
                            batch.base_sequence,
                            if batch.is_transactional() {
                                " transactional"
                            } else {
                                ""
                            },
                        )?;
                        if let Some((_, marker)) =
                            chunk.markers.iter().find(|(o, _)| *o == batch.base_offset)
                        {
                            writeln!(
                                f,
                                "    {} marker, coordinator epoch {}",
                                if marker.commit { "commit" } else { "abort" },
                                marker.coordinator_epoch
                            )?;
                        }
                    }
                }
                Err(err) => writeln!(f, "  error: {err}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use strato_metadata::model::TopicPartition;
    use uuid::Uuid;

    use super::*;
    use crate::batch::test_support::simple_batch;
    use crate::segment::SegmentBuilder;

    #[test]
    fn dump_lists_chunks_and_batches_and_survives_a_corrupt_chunk() {
        let mut builder = SegmentBuilder::new(3);
        let tp = |partition| TopicPartition {
            topic_id: Uuid::nil(),
            partition,
        };
        builder.add_chunk(
            tp(0),
            &[
                Bytes::from(simple_batch(0, 2)),
                Bytes::from(simple_batch(2, 3)),
                Bytes::from(crate::batch::build_marker_batch(
                    &TxnMarker {
                        producer_id: 8,
                        producer_epoch: 0,
                        commit: false,
                        coordinator_epoch: 2,
                    },
                    5,
                    0,
                    1,
                )),
            ],
        );
        builder.add_chunk(tp(1), &[Bytes::from(simple_batch(50, 1))]);
        let built = builder.finish().unwrap();

        let dump = dump_segment(&built.bytes()).unwrap();
        assert_eq!(dump.chunks.len(), 2);
        assert_eq!(dump.chunks[0].batches.as_ref().unwrap().len(), 3);
        let text = dump.to_string();
        assert!(text.contains("2 chunks"), "{text}");
        assert!(
            text.contains("batch offsets 5..=5 count 1 max_ts 1 compression 0 producer 8 epoch 0 seq -1 transactional\n    abort marker, coordinator epoch 2"),
            "{text}"
        );
        assert!(text.contains("batch offsets 2..=4 count 3"), "{text}");
        assert!(text.contains("partition 1 offsets 50..=50"), "{text}");

        let mut corrupt = built.bytes().to_vec();
        corrupt[built.chunks[0].byte_offset as usize + 5] ^= 0xff;
        let dump = dump_segment(&corrupt).unwrap();
        assert!(dump.chunks[0].batches.is_err());
        assert!(dump.chunks[1].batches.is_ok());
        assert!(dump.to_string().contains("error: corrupt segment"));
    }

    #[test]
    fn dump_lists_the_frames_of_a_seekable_chunk() {
        let batches: Vec<Bytes> = (0..6)
            .map(|i| Bytes::from(simple_batch(i * 2, 2)))
            .collect();
        let mut builder = SegmentBuilder::new(3).with_frames(batches[0].len() as u64 * 3);
        builder.add_chunk(
            TopicPartition {
                topic_id: Uuid::nil(),
                partition: 0,
            },
            &batches,
        );
        let dump = dump_segment(&builder.finish().unwrap().bytes()).unwrap();
        let frames = dump.chunks[0].frames.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(dump.chunks[0].batches.as_ref().unwrap().len(), 6);
        let text = dump.to_string();
        assert!(text.contains("frame 1: offsets 6..=11 records 6"), "{text}");
    }
}
