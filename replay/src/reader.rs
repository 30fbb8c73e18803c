//! `PartitionReader`: the records of one partition's range, in offset order, read chunk by
//! chunk with a bounded read-ahead. Each span (a whole chunk, or one frame of a compacted
//! chunk) is fetched and decoded in a task of its own, so that up to `read_ahead_spans`
//! spans (and `read_ahead_bytes` of them) are on their way while the caller works.
//!
//! Compaction swaps index entries for a merged chunk in a new object, and garbage collection
//! deletes the old object a grace period later. A reader that finds its object gone reads
//! the index again and goes on from the entry covering its next offset: the merged chunk
//! holds exactly the batches it replaced (less what the key cleaner removed), so nothing is
//! skipped or repeated. Retention having moved the log start past it is an error.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::Stream;
use strato_metadata::model::{IndexEntry, Offset};
use strato_tiering::{Span, TieringError};
use tokio::task::JoinHandle;

use crate::decode::{Aborted, Record, SpanFilter, span_records};
use crate::snapshot::{self, PartitionSnapshot};
use crate::{ReplayError, Shared};

/// Index reloads in a row that find the object of the next offset gone without any record
/// read in between: the object is missing for good, not swapped.
const RELOADS_WITHOUT_PROGRESS_MAX: u32 = 3;

type SpanRead = JoinHandle<Result<Vec<Record>, ReplayError>>;

/// Reads one partition's records from `from` to `to` (see [`crate::Replay::read`]).
pub struct PartitionReader {
    shared: Arc<Shared>,
    partition: i32,
    /// The next offset to hand out.
    position: Offset,
    /// The end (exclusive).
    end: Offset,
    /// Entries not yet cut into spans, by base offset.
    entries: VecDeque<IndexEntry>,
    /// Spans found and not started.
    spans: VecDeque<Span>,
    /// Where the spans found so far end: the next span starts reading here.
    enumerated_to: Offset,
    /// Span reads under way, in offset order, with their uncompressed lengths.
    in_flight: VecDeque<(Span, u64, SpanRead)>,
    in_flight_bytes: u64,
    aborted: Option<Arc<Aborted>>,
    reloads_without_progress: u32,
}

impl PartitionReader {
    pub(crate) fn new(
        shared: Arc<Shared>,
        snapshot: &PartitionSnapshot,
        from: Offset,
        to: Offset,
    ) -> Self {
        let position = from.max(snapshot.log_start_offset);
        let end = to.min(snapshot.end);
        let entries = snapshot
            .entries
            .iter()
            .filter(|e| e.last_offset >= position && e.base_offset < end)
            .cloned()
            .collect();
        let aborted = shared
            .options
            .read_committed
            .then(|| snapshot.aborted.clone());
        Self {
            shared,
            partition: snapshot.partition,
            position,
            end,
            entries,
            spans: VecDeque::new(),
            enumerated_to: position,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            aborted,
            reloads_without_progress: 0,
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The next offset this reader hands out (where a job stopped can start again).
    pub fn position(&self) -> Offset {
        self.position
    }

    /// The next records in offset order (at least one), or `None` at the end of the range.
    pub async fn next_records(&mut self) -> Result<Option<Vec<Record>>, ReplayError> {
        loop {
            if self.position >= self.end {
                self.stop();
                return Ok(None);
            }
            match self.fill().await {
                Ok(()) => {}
                Err(ReplayError::Tier(TieringError::NotFound { key })) => {
                    self.reload(key).await?;
                    continue;
                }
                Err(err) => return Err(err),
            }
            let Some((span, bytes, read)) = self.in_flight.pop_front() else {
                // No chunk holds the rest of the range: the key cleaner removed its records.
                self.position = self.end;
                continue;
            };
            self.in_flight_bytes -= bytes;
            let result = match read.await {
                Ok(result) => result,
                Err(err) => {
                    return Err(ReplayError::Corrupt {
                        object: span.object.clone(),
                        reason: format!("decoding task failed: {err}"),
                    });
                }
            };
            match result {
                Ok(records) => {
                    let records: Vec<Record> = records
                        .into_iter()
                        .filter(|r| r.offset >= self.position)
                        .collect();
                    self.position = self.position.max(span.last_offset() + 1).min(self.end);
                    self.reloads_without_progress = 0;
                    if !records.is_empty() {
                        return Ok(Some(records));
                    }
                }
                Err(ReplayError::Tier(TieringError::NotFound { key })) => self.reload(key).await?,
                Err(err) => return Err(err),
            }
        }
    }

    /// The records one by one (see [`Self::next_records`]).
    pub fn into_stream(self) -> impl Stream<Item = Result<Record, ReplayError>> + Send {
        use futures::StreamExt;
        futures::stream::unfold(Some(self), |reader| async move {
            let mut reader = reader?;
            match reader.next_records().await {
                Ok(Some(records)) => Some((
                    futures::stream::iter(records.into_iter().map(Ok)).left_stream(),
                    Some(reader),
                )),
                Ok(None) => None,
                Err(err) => Some((futures::stream::iter([Err(err)]).right_stream(), None)),
            }
        })
        .flatten()
    }

    /// Starts span reads until the read-ahead is full or the range is all under way.
    async fn fill(&mut self) -> Result<(), ReplayError> {
        let options = &self.shared.options;
        while self.in_flight.len() < options.read_ahead_spans.max(1)
            && (self.in_flight.is_empty() || self.in_flight_bytes < options.read_ahead_bytes)
        {
            if self.spans.is_empty() {
                let Some(entry) = self.entries.pop_front() else {
                    return Ok(());
                };
                let from = self.enumerated_to.max(entry.base_offset);
                let spans = self.shared.tier.spans(&entry, from).await?;
                self.spans.extend(spans);
                continue;
            }
            let span = self.spans.pop_front().expect("checked non-empty");
            if span.base_offset() >= self.end {
                self.spans.clear();
                self.entries.clear();
                return Ok(());
            }
            let from = self.enumerated_to.max(span.base_offset());
            self.enumerated_to = span.last_offset() + 1;
            let bytes = span.uncompressed_length();
            let read = self.start_read(span.clone(), from);
            self.in_flight_bytes += bytes;
            self.in_flight.push_back((span, bytes, read));
        }
        Ok(())
    }

    /// Reads and decodes `span` (its records from `from` on) in a task of its own.
    fn start_read(&self, span: Span, from: Offset) -> SpanRead {
        let shared = self.shared.clone();
        let partition = self.partition;
        let to = self.end;
        let aborted = self.aborted.clone();
        tokio::spawn(async move {
            let data = shared.tier.read_span(&span).await?;
            shared
                .objects
                .lock()
                .expect("objects lock")
                .insert(span.object.clone());
            let batch_bytes_max = shared.options.batch_bytes_max;
            let object = span.object.clone();
            let decoded = tokio::task::spawn_blocking(move || {
                let filter = SpanFilter {
                    partition,
                    from,
                    to,
                    aborted: aborted.as_deref(),
                    batch_bytes_max,
                };
                span_records(&data, &filter)
            })
            .await
            .map_err(|err| ReplayError::Corrupt {
                object: object.clone(),
                reason: format!("decoding task failed: {err}"),
            })?;
            decoded.map_err(|reason| ReplayError::Corrupt { object, reason })
        })
    }

    /// The object `gone` was not found: read the index again and go on from the position.
    async fn reload(&mut self, gone: String) -> Result<(), ReplayError> {
        self.stop();
        self.reloads_without_progress += 1;
        if self.reloads_without_progress > RELOADS_WITHOUT_PROGRESS_MAX {
            return Err(ReplayError::Missing {
                partition: self.partition,
                object: gone,
                offset: self.position,
            });
        }
        self.shared
            .index_reloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log_start = snapshot::log_start_now(&self.shared, self.partition).await?;
        if log_start > self.position {
            return Err(ReplayError::Lost {
                partition: self.partition,
                from: self.position,
                to: log_start.min(self.end),
            });
        }
        let entries =
            snapshot::load_index(&self.shared, self.partition, self.position, self.end).await?;
        tracing::debug!(
            partition = self.partition,
            object = %gone,
            position = self.position,
            entries = entries.len(),
            "chunk gone (compacted meanwhile); index read again"
        );
        self.entries = entries.into();
        self.enumerated_to = self.position;
        Ok(())
    }

    /// Cancels the reads under way.
    fn stop(&mut self) {
        for (_, _, read) in self.in_flight.drain(..) {
            read.abort();
        }
        self.in_flight_bytes = 0;
        self.spans.clear();
    }
}

impl Drop for PartitionReader {
    fn drop(&mut self) {
        self.stop();
    }
}
