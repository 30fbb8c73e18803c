//! Segment compaction: a partition's log is written as one small chunk per flush (inside
//! objects shared with other partitions), so its index grows by an entry per flush. On
//! partition leaders, a periodic pass merges runs of consecutive small chunks into one
//! chunk in a new per-partition object and swaps the index entries in one fenced
//! transaction (`LogWriter::replace_chunks`, run by the flusher between flushes). The old
//! objects become garbage once no partition refers to them.
//!
//! A compacted chunk is written as zstd frames of `frame_bytes` with a seek table, so a
//! reader fetches one frame of it (a ranged GET of a few MiB) rather than the whole chunk.
//!
//! Promise: readers never see a gap or a duplicate — the new chunk holds exactly the
//! batches of the entries it replaces (checked before the swap), and the swap is atomic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use strato_metadata::model::IndexEntry;
use tokio_util::sync::CancellationToken;

use super::chunk_rewrite::{ENTRIES_PER_STEP_MAX, WrittenChunk, read_chunk};
use crate::log::LogTasks;

/// Fewest chunks worth merging in one step.
const ENTRIES_PER_STEP_MIN: usize = 4;
/// Newest index entries left out of compaction (the tail is hot in the cache and still
/// growing).
pub const KEEP_NEWEST: usize = 2;

/// How compaction may merge a partition's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeLimits {
    /// `--compaction-target-bytes`: a merged chunk's uncompressed size at most; a chunk of
    /// half of it is "compacted enough".
    pub target_bytes: u64,
    /// `topic_config::chunk_window_ms`: chunks whose newest records fall in different
    /// windows of this length are not merged.
    pub window_ms: i64,
}

impl MergeLimits {
    /// The limits of a topic with `config`.
    pub fn of(target_bytes: u64, config: &std::collections::BTreeMap<String, String>) -> Self {
        MergeLimits {
            target_bytes,
            window_ms: crate::topic_config::chunk_window_ms(config),
        }
    }

    fn window(&self, entry: &IndexEntry) -> i64 {
        crate::topic_config::chunk_window(entry.max_timestamp, self.window_ms)
    }
}

/// The next run of index entries to merge: consecutive entries, each smaller than
/// `target_bytes / 2` (a bigger chunk is already "compacted enough"), together at most
/// `target_bytes` uncompressed, their newest records in one time window, at least
/// [`ENTRIES_PER_STEP_MIN`] of them; the newest `keep_newest` entries are left alone.
pub fn plan(
    entries: &[IndexEntry],
    limits: MergeLimits,
    keep_newest: usize,
) -> Option<Vec<IndexEntry>> {
    runs(entries, limits, keep_newest)
        .first()
        .map(|run| entries[run.clone()].to_vec())
}

/// Every run [`plan`] would pick, one after another, as index ranges of `entries`.
pub fn runs(
    entries: &[IndexEntry],
    limits: MergeLimits,
    keep_newest: usize,
) -> Vec<std::ops::Range<usize>> {
    let target_bytes = limits.target_bytes;
    let candidates = &entries[..entries.len().saturating_sub(keep_newest)];
    let small = target_bytes / 2;
    let mut runs = Vec::new();
    let mut run = 0..0;
    let mut run_bytes = 0u64;
    for (at, entry) in candidates.iter().enumerate() {
        let fits = entry.uncompressed_length < small
            && run_bytes + entry.uncompressed_length <= target_bytes
            && run.len() < ENTRIES_PER_STEP_MAX
            && (run.is_empty()
                || (candidates[run.end - 1].last_offset < entry.base_offset
                    && limits.window(&candidates[run.start]) == limits.window(entry)));
        if fits {
            if run.is_empty() {
                run = at..at;
            }
            run_bytes += entry.uncompressed_length;
            run.end = at + 1;
            continue;
        }
        if run.len() >= ENTRIES_PER_STEP_MIN {
            runs.push(run.clone());
        }
        run = at..at;
        run_bytes = 0;
        if entry.uncompressed_length < small {
            run_bytes = entry.uncompressed_length;
            run.end = at + 1;
        }
    }
    if run.len() >= ENTRIES_PER_STEP_MIN {
        runs.push(run);
    }
    runs
}

/// Compaction's backlog in `entries`: how many entries are in runs it would merge, and when
/// the oldest of them was written (from its object key; `None` when there is nothing to do).
pub fn backlog(entries: &[IndexEntry], limits: MergeLimits) -> (usize, Option<u64>) {
    let runs = runs(entries, limits, KEEP_NEWEST);
    let pending = runs.iter().map(|run| run.len()).sum();
    let oldest = runs
        .iter()
        .flat_map(|run| &entries[run.clone()])
        .filter_map(|entry| strato_tiering::keys::segment_created_ms(&entry.object))
        .min();
    (pending, oldest)
}

/// Merges `run` into one chunk in a new object and swaps the index entries. Returns false
/// when the partition changed meanwhile (the step is simply dropped).
async fn compact_run(
    ctx: &LogTasks,
    partition: Arc<crate::log::partition::Partition>,
    run: Vec<IndexEntry>,
    frame_bytes: u64,
) -> Result<bool, String> {
    let mut chunks: Vec<Bytes> = Vec::with_capacity(run.len());
    for entry in &run {
        chunks.push(read_chunk(ctx, entry).await?);
    }
    let written = WrittenChunk::upload(ctx, partition.tp, chunks, frame_bytes).await?;
    let new_entry = written.entry.clone();
    // Exactly the records of the run, or the swap would show a gap or a duplicate.
    let first = run.first().expect("a run is not empty");
    let last = run.last().expect("a run is not empty");
    assert_eq!(
        new_entry.base_offset, first.base_offset,
        "compacted chunk starts where the run does"
    );
    assert_eq!(
        new_entry.last_offset, last.last_offset,
        "compacted chunk ends where the run does"
    );
    assert_eq!(
        new_entry.record_count,
        run.iter().map(|e| e.record_count).sum::<u64>(),
        "compacted chunk holds every record of the run"
    );
    let swapped = ctx
        .log
        .replace_chunks(partition.clone(), run, vec![new_entry], Vec::new())
        .await
        .map_err(|err| format!("swap index entries: {err}"))?;
    if swapped {
        written.cache(ctx);
    }
    Ok(swapped)
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct CompactionStats {
    /// Runs merged and swapped in.
    pub merged: AtomicU64,
    /// Runs that failed (retried on a later pass).
    pub failed: AtomicU64,
    /// Chunks replaced by merged ones.
    pub chunks: AtomicU64,
}

/// Compacts the partitions this broker leads every `interval`, until `shutdown`.
pub async fn run(
    ctx: Arc<LogTasks>,
    interval: Duration,
    target_bytes: u64,
    frame_bytes: u64,
    cleaner_memory_bytes: u64,
    shutdown: CancellationToken,
) {
    let mut passes = super::Periodic::new(interval, shutdown.clone());
    while passes.next().await {
        let topics = ctx.topics.all();
        // The cleaner's dirty-ratio gauges cover the compacted partitions led here.
        ctx.cleaner.retain_dirty(|name, index| {
            topics.iter().any(|t| {
                t.name == name
                    && crate::topic_config::compacted(&t.config)
                    && t.partition(index).is_some_and(|p| p.is_led())
            })
        });
        for topic in topics {
            for partition in &topic.partitions {
                if shutdown.is_cancelled() {
                    return;
                }
                if !partition.is_led() {
                    continue;
                }
                if crate::topic_config::compacted(&topic.config) {
                    clean(
                        &ctx,
                        &topic,
                        partition,
                        (target_bytes, frame_bytes),
                        cleaner_memory_bytes,
                    )
                    .await;
                }
                let (_, entries) = partition.index_snapshot();
                let limits = MergeLimits::of(target_bytes, &topic.config);
                let Some(run) = plan(&entries, limits, KEEP_NEWEST) else {
                    continue;
                };
                let merged = run.len();
                let stats = &ctx.compaction;
                match compact_run(&ctx, partition.clone(), run, frame_bytes).await {
                    Ok(true) => {
                        stats.merged.fetch_add(1, Ordering::Relaxed);
                        stats.chunks.fetch_add(merged as u64, Ordering::Relaxed);
                        tracing::info!(
                            topic = %topic.name,
                            partition = partition.tp.partition,
                            merged,
                            "compacted chunks"
                        );
                    }
                    Ok(false) => {}
                    Err(err) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            topic = %topic.name,
                            partition = partition.tp.partition,
                            "failed to compact, will retry: {err}"
                        );
                    }
                }
            }
        }
    }
}

/// One key cleaning pass over `partition` of compacted `topic` (see `log::cleaner`).
async fn clean(
    ctx: &LogTasks,
    topic: &crate::log::topics::Topic,
    partition: &Arc<crate::log::partition::Partition>,
    (target_bytes, frame_bytes): (u64, u64),
    memory_bytes: u64,
) {
    let result = crate::log::cleaner::clean_partition(
        ctx,
        &topic.config,
        partition,
        memory_bytes,
        target_bytes,
        frame_bytes,
    )
    .await;
    match result {
        Ok(Some(report)) => tracing::info!(
            topic = %topic.name,
            partition = partition.tp.partition,
            clean_end = report.clean_end,
            keys = report.keys,
            removed = report.records_removed,
            bytes_read = report.bytes_read,
            bytes_written = report.bytes_written,
            "cleaned compacted partition"
        ),
        Ok(None) => {}
        Err(err) => {
            ctx.cleaner.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                topic = %topic.name,
                partition = partition.tp.partition,
                "failed to clean, will retry: {err}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_metadata::model::Offset;

    fn entry(base: Offset, last: Offset, bytes: u64) -> IndexEntry {
        crate::log::test_entry(base, last, 0, bytes)
    }

    /// Limits by size only (no time window).
    fn bytes(target_bytes: u64) -> MergeLimits {
        MergeLimits {
            target_bytes,
            window_ms: i64::MAX,
        }
    }

    fn run_bases(run: Option<Vec<IndexEntry>>) -> Vec<Offset> {
        run.unwrap_or_default()
            .iter()
            .map(|e| e.base_offset)
            .collect()
    }

    #[test]
    fn runs_of_small_consecutive_chunks_are_planned() {
        let entries: Vec<IndexEntry> = (0..10).map(|i| entry(i * 10, i * 10 + 9, 100)).collect();
        // The newest two stay; the rest merge.
        assert_eq!(
            run_bases(plan(&entries, bytes(10_000), 2)),
            (0..8).map(|i| i * 10).collect::<Vec<_>>()
        );
        // The target bounds a run.
        assert_eq!(
            run_bases(plan(&entries, bytes(450), 0)),
            vec![0, 10, 20, 30]
        );
        // Too few small chunks: nothing to do.
        assert_eq!(plan(&entries[..3], bytes(10_000), 0), None);
        // A big chunk splits runs; chunks already big are left alone.
        let mut mixed = entries.clone();
        mixed[4] = entry(40, 49, 9_000);
        assert_eq!(
            run_bases(plan(&mixed, bytes(10_000), 0)),
            vec![0, 10, 20, 30]
        );
        let mut mixed = entries.clone();
        mixed[2] = entry(20, 29, 9_000);
        assert_eq!(
            run_bases(plan(&mixed, bytes(10_000), 0)),
            vec![30, 40, 50, 60, 70, 80, 90]
        );
        // At most one transaction's worth of entries per step.
        let many: Vec<IndexEntry> = (0..300).map(|i| entry(i, i, 10)).collect();
        assert_eq!(
            plan(&many, bytes(u64::MAX), 0).unwrap().len(),
            ENTRIES_PER_STEP_MAX
        );
    }

    #[test]
    fn chunks_are_merged_only_within_one_time_window() {
        // Ten chunks a minute apart (newest record each), windows of five minutes.
        let entries: Vec<IndexEntry> = (0..10)
            .map(|i| {
                let mut e = entry(i * 10, i * 10 + 9, 100);
                e.max_timestamp = 60_000 * i;
                e
            })
            .collect();
        let limits = MergeLimits {
            target_bytes: 10_000,
            window_ms: 300_000,
        };
        assert_eq!(runs(&entries, limits, 0), vec![0..5, 5..10]);
        // A merged chunk does not keep taking newer chunks: its newest record ages.
        let mut merged = vec![entry(0, 49, 500)];
        merged[0].max_timestamp = 240_000;
        merged.extend_from_slice(&entries[5..]);
        assert_eq!(runs(&merged, limits, 0), vec![1..6]);
        // The window comes from segment.ms, capped by retention.ms on deleting topics.
        let config = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let window = |pairs: &[(&str, &str)]| MergeLimits::of(1, &config(pairs)).window_ms;
        assert_eq!(window(&[]), 604_800_000, "segment.ms's default, a week");
        assert_eq!(window(&[("retention.ms", "300000")]), 300_000);
        assert_eq!(window(&[("retention.ms", "-1")]), 604_800_000);
        assert_eq!(
            window(&[("segment.ms", "60000"), ("retention.ms", "300000")]),
            60_000
        );
        assert_eq!(
            window(&[("cleanup.policy", "compact"), ("retention.ms", "300000")]),
            604_800_000,
            "retention does not apply to a compact-only topic"
        );
    }

    #[test]
    fn the_backlog_counts_every_run_and_dates_the_oldest_entry() {
        let mut entries: Vec<IndexEntry> =
            (0..10).map(|i| entry(i * 10, i * 10 + 9, 100)).collect();
        assert_eq!(
            backlog(&entries, bytes(10_000)),
            (8, None),
            "keys without a ULID have no date"
        );
        let keys: Vec<String> = (0..10)
            .map(|_| strato_tiering::keys::new_segment_key())
            .collect();
        for (entry, key) in entries.iter_mut().zip(&keys) {
            entry.object = key.clone();
        }
        let oldest = keys[..8]
            .iter()
            .filter_map(|k| strato_tiering::keys::segment_created_ms(k))
            .min();
        assert!(oldest.is_some());
        // Two runs of four under a target of 450 bytes: both count.
        assert_eq!(runs(&entries, bytes(450), KEEP_NEWEST), vec![0..4, 4..8]);
        assert_eq!(backlog(&entries, bytes(450)), (8, oldest));
        // Nothing to merge: no backlog.
        assert_eq!(backlog(&entries[..5], bytes(10_000)), (0, None));
    }
}
