//! The key cleaner of compacted topics (`cleanup.policy` with `compact`), run by partition
//! leaders in the compaction pass.
//!
//! A partition's log is clean below its checkpoint (`partitions/<id>/<p>/cleaner`): there it
//! holds at most one record per key. Above it is dirty. A pass, when the dirty share of the
//! cleanable log reaches `min.cleanable.dirty.ratio` (or its oldest dirty chunk is older than
//! `max.compaction.lag.ms`):
//!
//! 1. maps the dirty range's keys (hashes) to their latest offsets, at most
//!    `--cleaner-memory-bytes` of map: a bigger dirty range is cleaned over several passes;
//! 2. rewrites the chunks from the log start to the end of the mapped range, keeping the
//!    latest record of each key (tombstones until `delete.retention.ms` after they became
//!    clean), records without a key, control batches, and nothing of aborted transactions;
//!    runs of chunks become one chunk of a new object, swapped in by one fenced transaction
//!    (`LogWriter::replace_chunks`), only where something was removed;
//! 3. writes the new checkpoint (fenced), once every run swapped.
//!
//! The cleanable log ends before the newest chunk (the "active segment"), before the last
//! stable offset (no open transaction is cleaned) and before chunks younger than
//! `min.compaction.lag.ms`. A crash anywhere leaves a log that is correct (every removed
//! record has a later one of its key in the log, or was an expired tombstone or aborted) and
//! garbage for GC; a dropped swap ends the pass without a checkpoint, and the next pass
//! starts over.
//!
//! Cleaned chunks, and so the index, may have offset gaps: every reader looks up the first
//! index entry, and the first batch, at or after the offset it wants.

pub mod filter;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use strato_metadata::keys;
use strato_metadata::model::{CleanerRecord, IndexEntry, Offset, RECORD_FORMAT_V1};

use self::filter::{Aborted, KEY_MAP_BYTES_PER_KEY, KeyMap, Retain, clean_chunk};
use super::chunk_rewrite::{ENTRIES_PER_STEP_MAX, WrittenChunk, read_chunk};
use super::flush::now_ms;
use super::partition::Partition;
use crate::log::LogTasks;
use crate::topic_config;

/// Counters and gauges for metrics.
#[derive(Debug, Default)]
pub struct CleanerStats {
    /// Passes that completed (checkpoint written).
    pub passes: AtomicU64,
    /// Passes that failed or were dropped (retried on a later pass).
    pub failed: AtomicU64,
    /// Uncompressed bytes of the chunks rewritten, before and after.
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Records removed (superseded, expired tombstones, aborted).
    pub records_removed: AtomicU64,
    /// Time spent in passes that did work (mapping, rewriting, swapping), microseconds.
    pub busy_micros: AtomicU64,
    /// Dirty ratio of each compacted partition this broker led at its last pass:
    /// (topic, partition) → ratio. Bounded by the partitions of the cluster.
    pub dirty: Mutex<BTreeMap<(String, i32), f64>>,
}

impl CleanerStats {
    fn set_dirty(&self, topic: &str, partition: i32, ratio: f64) {
        self.dirty
            .lock()
            .expect("dirty ratios lock")
            .insert((topic.to_string(), partition), ratio);
    }

    /// Forgets partitions not in `keep` (deleted topics, partitions led elsewhere now).
    pub fn retain_dirty(&self, keep: impl Fn(&str, i32) -> bool) {
        self.dirty
            .lock()
            .expect("dirty ratios lock")
            .retain(|(topic, partition), _| keep(topic, *partition));
    }
}

/// What a completed pass did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassReport {
    pub clean_end: Offset,
    pub keys: usize,
    pub records_removed: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// Where the cleanable log ends: the index entries a pass may rewrite are `entries[..n]`.
fn cleanable_len(
    entries: &[IndexEntry],
    last_stable: Offset,
    now_ms: i64,
    min_lag_ms: i64,
) -> usize {
    let newest_allowed = now_ms.saturating_sub(min_lag_ms);
    entries[..entries.len().saturating_sub(1)]
        .iter()
        .take_while(|e| e.last_offset < last_stable && e.max_timestamp <= newest_allowed)
        .count()
}

/// The dirty share of the cleanable entries' bytes (an entry is dirty when it reaches the
/// clean end).
fn dirty_ratio(cleanable: &[IndexEntry], clean_end: Offset) -> f64 {
    let total: u64 = cleanable.iter().map(|e| e.uncompressed_length).sum();
    let dirty: u64 = cleanable
        .iter()
        .filter(|e| e.last_offset >= clean_end)
        .map(|e| e.uncompressed_length)
        .sum();
    if total == 0 {
        0.0
    } else {
        dirty as f64 / total as f64
    }
}

/// One cleaning pass over `partition` if it is due. `Ok(None)`: nothing to do, or a swap
/// found the partition changed (the next pass tries again).
pub async fn clean_partition(
    ctx: &LogTasks,
    topic_config: &BTreeMap<String, String>,
    partition: &Arc<Partition>,
    memory_bytes: u64,
    target_bytes: u64,
    frame_bytes: u64,
) -> Result<Option<PassReport>, String> {
    let tp = partition.tp;
    let config = topic_config::cleaner_config(topic_config);
    let now = now_ms();
    let (_, entries) = partition.index_snapshot();
    let last_stable = partition.last_stable_offset();
    let aborted = Aborted::new(&partition.aborted_snapshot());
    let checkpoint_key = keys::partition_cleaner(tp.topic_id, tp.partition);
    let checkpoint = match ctx.meta.get(&checkpoint_key).await {
        Ok(Some(versioned)) => CleanerRecord::decode(&checkpoint_key, &versioned.value)
            .map_err(|err| format!("bad cleaner checkpoint: {err}"))?,
        Ok(None) => CleanerRecord {
            v: RECORD_FORMAT_V1,
            clean_end: 0,
            passes: Vec::new(),
        },
        Err(err) => return Err(format!("read the cleaner checkpoint: {err}")),
    };
    let cleanable =
        &entries[..cleanable_len(&entries, last_stable, now, config.min_compaction_lag_ms)];
    let Some(last) = cleanable.last() else {
        return Ok(None);
    };
    let ratio = dirty_ratio(cleanable, checkpoint.clean_end);
    ctx.cleaner.set_dirty(&partition.topic, tp.partition, ratio);
    if last.last_offset < checkpoint.clean_end {
        return Ok(None);
    }
    let first_dirty = cleanable
        .iter()
        .find(|e| e.last_offset >= checkpoint.clean_end)
        .expect("the last cleanable entry is dirty");
    let overdue = first_dirty.max_timestamp < now.saturating_sub(config.max_compaction_lag_ms);
    if ratio < config.min_cleanable_dirty_ratio && !overdue {
        return Ok(None);
    }

    let started = std::time::Instant::now();
    // 1. The key map of the dirty range.
    let max_keys = usize::try_from(memory_bytes / KEY_MAP_BYTES_PER_KEY).unwrap_or(usize::MAX);
    let mut map = KeyMap::new(max_keys, checkpoint.clean_end);
    let dirty = cleanable
        .iter()
        .filter(|e| e.last_offset >= checkpoint.clean_end)
        .cloned()
        .collect();
    let mut reads = read_ahead(ctx, dirty);
    while let Some(data) = reads.next().await {
        let data = data?;
        let from = checkpoint.clean_end;
        let aborted_ref = &aborted;
        // CPU work (decompression, hashing) off the async threads.
        map = tokio::task::block_in_place(move || {
            map.add_chunk(&data, from, aborted_ref).map(|()| map)
        })?;
        if map.full {
            break;
        }
    }
    if map.end <= checkpoint.clean_end {
        return Err(format!(
            "--cleaner-memory-bytes {memory_bytes} holds no key of the dirty range"
        ));
    }

    // 2. Rewrite the chunks below the map's end, run by run.
    let retain = Retain {
        map: &map,
        checkpoint: &checkpoint,
        aborted: &aborted,
        delete_retention_ms: config.delete_retention_ms,
        now_ms: now,
    };
    let mut report = PassReport {
        clean_end: map.end,
        keys: map.len(),
        records_removed: 0,
        bytes_read: 0,
        bytes_written: 0,
    };
    let rewrite: Vec<&IndexEntry> = entries.iter().filter(|e| e.base_offset < map.end).collect();
    let window_ms = topic_config::chunk_window_ms(topic_config);
    let mut run = Run::default();
    let mut reads = read_ahead(ctx, rewrite.iter().map(|e| (*e).clone()).collect());
    for entry in &rewrite {
        let data = reads.next().await.expect("a read per entry")?;
        let cleaned = tokio::task::block_in_place(|| clean_chunk(&data, &retain))?;
        if starts_a_new_run(run.old.last(), entry, window_ms) {
            if !run.swap(ctx, partition, frame_bytes, &mut report).await? {
                return Ok(None);
            }
            run = Run::default();
        }
        run.push((*entry).clone(), cleaned, entry.uncompressed_length);
        if run.old.len() >= ENTRIES_PER_STEP_MAX || run.bytes >= target_bytes {
            if !run.swap(ctx, partition, frame_bytes, &mut report).await? {
                return Ok(None);
            }
            run = Run::default();
        }
    }
    if !run.swap(ctx, partition, frame_bytes, &mut report).await? {
        return Ok(None);
    }

    // 3. The checkpoint.
    let next = filter::next_checkpoint(&checkpoint, map.end, now, config.delete_retention_ms);
    let written = ctx
        .log
        .replace_chunks(
            partition.clone(),
            Vec::new(),
            Vec::new(),
            vec![(checkpoint_key, next.encode())],
        )
        .await
        .map_err(|err| format!("write the cleaner checkpoint: {err}"))?;
    if !written {
        return Ok(None);
    }
    let stats = &ctx.cleaner;
    stats.passes.fetch_add(1, Ordering::Relaxed);
    stats.busy_micros.fetch_add(
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    stats
        .records_removed
        .fetch_add(report.records_removed, Ordering::Relaxed);
    stats
        .bytes_read
        .fetch_add(report.bytes_read, Ordering::Relaxed);
    stats
        .bytes_written
        .fetch_add(report.bytes_written, Ordering::Relaxed);
    let remaining = entries
        .iter()
        .take(cleanable.len())
        .filter(|e| e.last_offset >= map.end)
        .count();
    ctx.cleaner.set_dirty(
        &partition.topic,
        tp.partition,
        if remaining == 0 { 0.0 } else { ratio },
    );
    Ok(Some(report))
}

/// Whether `next` must start a new run after `last`, the run's newest chunk: a run stays in
/// one time window of `window_ms` (`topic_config::chunk_window_ms`), as compaction's merges
/// do, so that on a `compact,delete` topic a cleaned chunk's newest record does not keep
/// older ones from retention.
fn starts_a_new_run(last: Option<&IndexEntry>, next: &IndexEntry, window_ms: i64) -> bool {
    let window = |e: &IndexEntry| topic_config::chunk_window(e.max_timestamp, window_ms);
    last.is_some_and(|last| window(last) != window(next))
}

/// Chunks read at once, ahead of the one being processed (a cold pass reads the log from
/// the object store, one GET per chunk or frame).
const CHUNK_READS_AHEAD: usize = 4;

/// The chunks of `entries`, in order, read [`CHUNK_READS_AHEAD`] at a time.
fn read_ahead(
    ctx: &LogTasks,
    entries: Vec<IndexEntry>,
) -> impl futures::Stream<Item = Result<Bytes, String>> + Send + Unpin + '_ {
    Box::pin(
        futures::stream::iter(entries)
            .map(move |entry| async move { read_chunk(ctx, &entry).await })
            .buffered(CHUNK_READS_AHEAD),
    )
}

/// Consecutive chunks being cleaned into one.
#[derive(Default)]
struct Run {
    old: Vec<IndexEntry>,
    batches: Vec<Bytes>,
    changed: bool,
    records_removed: u64,
    /// Uncompressed bytes of the old chunks.
    bytes: u64,
}

impl Run {
    fn push(&mut self, entry: IndexEntry, cleaned: filter::Cleaned, bytes: u64) {
        self.old.push(entry);
        self.batches.extend(cleaned.batches);
        self.changed |= cleaned.changed;
        self.records_removed += cleaned.records_removed;
        self.bytes += bytes;
    }

    /// Writes the run's kept batches as one chunk of a new object and swaps it in (nothing
    /// to do when no record was removed). False when the partition changed meanwhile.
    async fn swap(
        self,
        ctx: &LogTasks,
        partition: &Arc<Partition>,
        frame_bytes: u64,
        report: &mut PassReport,
    ) -> Result<bool, String> {
        if !self.changed || self.old.is_empty() {
            return Ok(true);
        }
        let kept_bytes: u64 = self.batches.iter().map(|b| b.len() as u64).sum();
        let written = if self.batches.is_empty() {
            None
        } else {
            Some(WrittenChunk::upload(ctx, partition.tp, self.batches, frame_bytes).await?)
        };
        let new_entries = written.iter().map(|w| w.entry.clone()).collect();
        let swapped = ctx
            .log
            .replace_chunks(partition.clone(), self.old, new_entries, Vec::new())
            .await
            .map_err(|err| format!("swap cleaned chunks: {err}"))?;
        if swapped {
            if let Some(written) = &written {
                written.cache(ctx);
            }
            report.records_removed += self.records_removed;
            report.bytes_read += self.bytes;
            report.bytes_written += kept_bytes;
        }
        Ok(swapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_entry as entry;

    #[test]
    fn the_cleanable_log_stops_at_the_active_chunk_the_lso_and_the_lag() {
        let entries = [
            entry(0, 9, 1_000, 100),
            entry(10, 19, 2_000, 100),
            entry(20, 29, 3_000, 100),
            entry(30, 39, 4_000, 100),
        ];
        // The newest chunk is never cleaned.
        assert_eq!(cleanable_len(&entries, 40, 10_000, 0), 3);
        // Nor anything at or above the last stable offset.
        assert_eq!(cleanable_len(&entries, 25, 10_000, 0), 2);
        // Nor chunks younger than the lag.
        assert_eq!(cleanable_len(&entries, 40, 10_000, 8_500), 1);
        assert_eq!(cleanable_len(&entries[..1], 40, 10_000, 0), 0);
        assert_eq!(cleanable_len(&[], 40, 10_000, 0), 0);
    }

    #[test]
    fn a_cleaned_run_stays_in_one_time_window() {
        let at = |base: i64, max_timestamp: i64| entry(base, base + 9, max_timestamp, 100);
        let (minute, window) = (60_000, 300_000);
        assert!(!starts_a_new_run(None, &at(0, 0), window), "an empty run");
        assert!(!starts_a_new_run(
            Some(&at(0, minute)),
            &at(10, 4 * minute),
            window
        ));
        assert!(starts_a_new_run(
            Some(&at(0, 4 * minute)),
            &at(10, 5 * minute),
            window
        ));
        // Timestamps before 1970 (allowed in Kafka) fall in windows too.
        assert!(starts_a_new_run(Some(&at(0, -1)), &at(10, 0), window));
    }

    #[test]
    fn the_dirty_ratio_is_the_share_of_bytes_from_the_clean_end_on() {
        let entries = [
            entry(0, 9, 0, 300),
            entry(10, 19, 0, 100),
            entry(20, 29, 0, 100),
        ];
        assert_eq!(dirty_ratio(&entries, 0), 1.0);
        assert_eq!(dirty_ratio(&entries, 10), 0.4);
        assert_eq!(dirty_ratio(&entries, 15), 0.4);
        assert_eq!(dirty_ratio(&entries, 30), 0.0);
        assert_eq!(dirty_ratio(&[], 0), 0.0);
    }
}
