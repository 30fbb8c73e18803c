//! Time and size retention (`retention.ms`, `retention.bytes`, for topics whose
//! `cleanup.policy` includes `delete`): on partition leaders, a periodic pass moves the log
//! start past whole chunks that are too old or beyond the size limit, through
//! `LogWriter::trim` (fenced like every commit). Index entries go at once; the objects they
//! pointed at are left to garbage collection, and aborted transactions whose marker falls
//! below the new log start are deleted in the same transactions (DeleteRecords trims the
//! same way). Each pass reads the topics' current configs.

use std::sync::Arc;
use std::time::Duration;

use strato_metadata::model::{IndexEntry, Offset};
use tokio_util::sync::CancellationToken;

use super::flush::now_ms;
use crate::log::LogTasks;
use crate::topic_config;

/// Where the log should start under the given limits (-1: no limit), never inside a chunk:
/// only whole chunks go. `entries` are the partition's index entries in offset order,
/// `high_watermark` its end.
pub fn retention_start(
    entries: &[IndexEntry],
    high_watermark: Offset,
    now_ms: i64,
    retention_ms: i64,
    retention_bytes: i64,
) -> Option<Offset> {
    let first = entries.first()?;
    let mut start = first.base_offset;
    if retention_ms >= 0 {
        let oldest_kept = now_ms.saturating_sub(retention_ms);
        start = entries
            .iter()
            .find(|e| e.max_timestamp >= oldest_kept)
            .map_or(high_watermark, |e| e.base_offset);
    }
    if retention_bytes >= 0 {
        let mut total: u64 = entries.iter().map(|e| e.byte_length).sum();
        let limit = u64::try_from(retention_bytes).unwrap_or(0);
        for entry in entries {
            if total <= limit {
                break;
            }
            total -= entry.byte_length;
            start = start.max(entry.last_offset + 1);
        }
    }
    (start > first.base_offset).then_some(start)
}

fn config_i64(config: &std::collections::BTreeMap<String, String>, name: &str) -> i64 {
    topic_config::effective(config, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// Applies retention to every partition this broker leads, every `interval`, until
/// `shutdown`.
pub async fn run(ctx: Arc<LogTasks>, interval: Duration, shutdown: CancellationToken) {
    let (topics, log) = (&ctx.topics, &ctx.log);
    let mut passes = super::Periodic::new(interval, shutdown.clone());
    while passes.next().await {
        for topic in topics.all() {
            let retention_ms = config_i64(&topic.config, "retention.ms");
            let retention_bytes = config_i64(&topic.config, "retention.bytes");
            if (retention_ms < 0 && retention_bytes < 0)
                || !topic_config::retention_deletes(&topic.config)
            {
                continue;
            }
            for partition in &topic.partitions {
                if !partition.is_led() {
                    continue;
                }
                let (high_watermark, entries) = partition.index_snapshot();
                let Some(start) = retention_start(
                    &entries,
                    high_watermark,
                    now_ms(),
                    retention_ms,
                    retention_bytes,
                ) else {
                    continue;
                };
                if let Err(err) = log.trim(partition.clone(), start).await {
                    tracing::warn!(topic = %topic.name, partition = partition.tp.partition, "failed to apply retention: {err}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_entry as entry;

    #[test]
    fn whole_chunks_go_by_age_and_by_size() {
        let entries = [
            entry(0, 9, 1_000, 100),
            entry(10, 19, 2_000, 100),
            entry(20, 29, 3_000, 100),
        ];
        // Nothing to do without limits or when everything is young and small.
        assert_eq!(retention_start(&entries, 30, 10_000, -1, -1), None);
        assert_eq!(retention_start(&entries, 30, 3_500, 5_000, 1_000), None);
        // Chunks whose newest record is older than the retention go.
        assert_eq!(retention_start(&entries, 30, 4_500, 2_600, -1), Some(10));
        assert_eq!(retention_start(&entries, 30, 4_500, 2_000, -1), Some(20));
        // All of them: the log starts at its end.
        assert_eq!(retention_start(&entries, 30, 10_000, 1_000, -1), Some(30));
        // Size: oldest chunks go until the rest fits.
        assert_eq!(retention_start(&entries, 30, 0, -1, 250), Some(10));
        assert_eq!(retention_start(&entries, 30, 0, -1, 0), Some(30));
        // Both limits: the later start wins.
        assert_eq!(retention_start(&entries, 30, 4_500, 3_600, 150), Some(20));
        assert_eq!(retention_start(&[], 0, 0, 0, 0), None);
    }
}
