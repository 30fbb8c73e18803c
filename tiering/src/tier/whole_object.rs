//! Whole-object cold reads (`whole_reads` decides when): one GET of a small flush object,
//! its chunks decoded (within a budget) and cached, so that readers of its other partitions
//! find their chunks in the cache instead of sending a ranged GET each.
//!
//! The chunk the leading reader asked for is checked exactly as a ranged read checks it
//! (against its index entry, which must also be the footer's entry for it); the others are
//! checked against the object's footer, whose entries are what the index entries of those
//! chunks hold (both come from the same `ChunkMeta` at flush).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::Notify;

use super::{Span, Tier, WHOLE_OBJECT_CACHE_SHARE, WHOLE_OBJECT_DECODED_BYTES_MAX, join_error};
use crate::error::TieringError;
use crate::segment::{ChunkMeta, ExpectedChunk, SegmentError, decode_chunk, parse_segment_footer};

/// A chunk to decode from a whole object: byte offset, compressed length, what it holds.
struct Piece {
    byte_offset: u64,
    byte_length: u64,
    expected: ExpectedChunk,
}

impl Tier {
    /// Whether a miss on `span` may read its object whole: a chunk without a seek table
    /// that ends within `whole_object_bytes_max` of the object's start, and a cache with
    /// room for what such a read decodes.
    pub(super) fn may_read_whole(&self, span: &Span) -> bool {
        !span.seekable
            && span.byte_offset.saturating_add(span.byte_length)
                <= self.config.whole_object_bytes_max
            && self.whole_read_budget() > 0
    }

    /// Decoded bytes of other chunks one whole read may decode and cache.
    fn whole_read_budget(&self) -> u64 {
        (self.cache.config().memory_bytes / WHOLE_OBJECT_CACHE_SHARE)
            .min(WHOLE_OBJECT_DECODED_BYTES_MAX)
    }

    /// Reads `span`'s object whole as the leader of `flight`; its waiters are woken when
    /// the read ends, however it ends (also when this reader is cancelled).
    pub(super) async fn lead_whole_read(
        &self,
        span: &Span,
        flight: Arc<Notify>,
    ) -> Result<Bytes, TieringError> {
        let mut leader = WholeReadLeader {
            tier: self,
            object: &span.object,
            flight,
            read: false,
        };
        let outcome = {
            let _slot = self
                .whole_read_slots
                .acquire()
                .await
                .expect("the whole-read semaphore is never closed");
            self.read_whole(span).await
        };
        match outcome {
            Ok(Some(data)) => {
                leader.read = true;
                Ok(data)
            }
            Ok(None) => {
                // Too large to read whole: not tried again while remembered. The waiters
                // wake now and read their chunks alone, as this reader does.
                leader.read = true;
                drop(leader);
                self.fetch_range(span).await
            }
            // The leader's caller sees the error; a later miss may try the whole read again.
            Err(err) => Err(err),
        }
    }

    /// Waits for another reader's whole read of `span`'s object (`flight`), then takes the
    /// chunk from the cache, or reads it alone if the read failed or left it out.
    pub(super) async fn await_whole_read(
        &self,
        span: &Span,
        flight: Arc<Notify>,
    ) -> Result<Bytes, TieringError> {
        let notified = flight.notified();
        tokio::pin!(notified);
        // Registered before looking, so a read that ends in between still wakes us.
        notified.as_mut().enable();
        if self.whole_reads.is_reading(&span.object, &flight) {
            self.whole_object_waits.fetch_add(1, Ordering::Relaxed);
            notified.await;
        }
        if let Some(hit) = self.cache.get(&span.object, span.byte_offset).await {
            return Ok(hit.data);
        }
        self.fetch_range(span).await
    }

    /// Reads `span`'s object with one GET, decodes `span` and, within the budget, every
    /// other chunk not cached yet, and caches them. `None` if the object is larger than
    /// `whole_object_bytes_max` (its body is not read).
    async fn read_whole(&self, span: &Span) -> Result<Option<Bytes>, TieringError> {
        let bytes_max = self.config.whole_object_bytes_max;
        let object = match self.get_object(&span.object, bytes_max).await? {
            Ok(object) => object,
            Err(size) => {
                tracing::debug!(object = %span.object, size, "too large to read whole");
                return Ok(None);
            }
        };
        self.get_bytes
            .fetch_add(object.len() as u64, Ordering::Relaxed);
        self.whole_object_bytes
            .fetch_add(object.len() as u64, Ordering::Relaxed);
        let corrupt = |reason: String| TieringError::Corrupt {
            key: span.object.clone(),
            reason,
        };
        // The footer's CRC covers only the footer (84 bytes a chunk): cheap enough here.
        let footer = parse_segment_footer(&object).map_err(|err| corrupt(err.to_string()))?;
        check_in_footer(&footer, span).map_err(corrupt)?;
        let mut pieces = self
            .pieces_to_decode(&span.object, &footer, span)
            .into_iter();
        let wanted = pieces.next().expect("the wanted chunk is decoded first");
        let data = decode_piece(&object, wanted)
            .await?
            .map_err(|err| corrupt(err.to_string()))?;
        self.cache
            .insert(&span.object, span.byte_offset, data.clone());
        self.whole_object_reads.fetch_add(1, Ordering::Relaxed);
        for piece in pieces {
            self.cache_other(&span.object, &object, piece).await?;
        }
        Ok(Some(data))
    }

    /// `span` first, then the other chunks of `footer` that are not cached, have no seek
    /// table and fit in the decode budget.
    fn pieces_to_decode(&self, object: &str, footer: &[ChunkMeta], span: &Span) -> Vec<Piece> {
        let mut pieces = vec![Piece {
            byte_offset: span.byte_offset,
            byte_length: span.byte_length,
            expected: span.expected,
        }];
        let mut budget = self.whole_read_budget();
        for meta in footer {
            if meta.byte_offset == span.byte_offset
                || meta.seek_table_length > 0
                || meta.uncompressed_length > budget
                || self.cache.contains(object, meta.byte_offset)
            {
                continue;
            }
            budget -= meta.uncompressed_length;
            pieces.push(Piece {
                byte_offset: meta.byte_offset,
                byte_length: meta.byte_length,
                expected: ExpectedChunk::from(meta),
            });
        }
        pieces
    }

    /// Decodes and caches another chunk of a whole read; one that does not decode is left
    /// out (a reader of it reads it by range and gets the error there).
    async fn cache_other(
        &self,
        key: &str,
        object: &Bytes,
        piece: Piece,
    ) -> Result<(), TieringError> {
        let byte_offset = piece.byte_offset;
        match decode_piece(object, piece).await? {
            Ok(data) => {
                self.cache.insert(key, byte_offset, data);
                self.whole_object_chunks.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                tracing::warn!(
                    object = key,
                    byte_offset,
                    "chunk of a whole read does not decode: {err}"
                );
            }
        }
        Ok(())
    }
}

/// Checks that `span` is one of the object's chunks exactly as its footer describes it: an
/// index entry that disagrees with the footer is as corrupt as one that disagrees with the
/// chunk's data, and nothing of such an object is cached.
fn check_in_footer(footer: &[ChunkMeta], span: &Span) -> Result<(), String> {
    let agrees = footer.iter().any(|meta| {
        meta.byte_offset == span.byte_offset
            && meta.byte_length == span.byte_length
            && meta.seek_table_length == 0
            && ExpectedChunk::from(meta) == span.expected
    });
    if agrees {
        Ok(())
    } else {
        Err(format!(
            "no footer entry matches the chunk at byte {} ({} bytes, offsets {}..={})",
            span.byte_offset,
            span.byte_length,
            span.base_offset(),
            span.last_offset()
        ))
    }
}

/// Decodes one piece of `object` off the async runtime (one piece at a time, so a whole
/// read holds at most one decoded chunk that is not cached yet). The footer was parsed and
/// checked, so the piece lies inside the object.
async fn decode_piece(
    object: &Bytes,
    piece: Piece,
) -> Result<Result<Bytes, SegmentError>, TieringError> {
    let start = usize::try_from(piece.byte_offset).expect("inside the object");
    let length = usize::try_from(piece.byte_length).expect("inside the object");
    let compressed = object.slice(start..start + length);
    tokio::task::spawn_blocking(move || decode_chunk(&compressed, &piece.expected))
        .await
        .map_err(|err| join_error("decode chunk", err))
}

/// The leader of a whole read: on drop (done, failed or cancelled) it ends the flight and
/// wakes its waiters, who then find their chunks cached or read them alone.
struct WholeReadLeader<'a> {
    tier: &'a Tier,
    object: &'a str,
    flight: Arc<Notify>,
    /// The object was read (or found too large): not to be read whole again.
    read: bool,
}

impl Drop for WholeReadLeader<'_> {
    fn drop(&mut self) {
        self.tier
            .whole_reads
            .finish(self.object, &self.flight, self.read);
        self.flight.notify_waiters();
    }
}
