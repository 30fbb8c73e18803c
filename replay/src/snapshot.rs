//! A partition's state and index as a replay sees them: read once at the start (the end of
//! the replay is fixed then), and read again by a reader whose chunk vanished.

use std::sync::Arc;

use strato_metadata::model::{AbortedTxnRecord, IndexEntry, Offset, PartitionStateRecord};
use strato_metadata::{index, keys};
use strato_tiering::batch;

use crate::decode::{Aborted, batch_records};
use crate::{ReplayError, Shared};

/// A partition at one moment: its range, index and aborted transactions.
#[derive(Debug, Clone)]
pub struct PartitionSnapshot {
    pub partition: i32,
    pub log_start_offset: Offset,
    pub high_watermark: Offset,
    /// The first offset of the oldest open transaction, or the high watermark.
    pub last_stable_offset: Offset,
    /// Where a replay of this snapshot ends (exclusive): the last stable offset for
    /// read_committed, else the high watermark.
    pub end: Offset,
    /// Index entries holding offsets from the log start to the end, by base offset.
    pub(crate) entries: Arc<Vec<IndexEntry>>,
    pub(crate) aborted: Arc<Aborted>,
}

impl PartitionSnapshot {
    /// The index entries (chunks) of the snapshot, by base offset.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Compressed bytes of the chunks holding offsets `from..to`.
    pub fn stored_bytes(&self, from: Offset, to: Offset) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.last_offset >= from && e.base_offset < to)
            .map(|e| e.byte_length)
            .sum()
    }
}

/// Reads partition `partition`'s state, index and aborted transactions.
pub(crate) async fn load(
    shared: &Shared,
    partition: i32,
) -> Result<PartitionSnapshot, ReplayError> {
    let topic_id = shared.topic.topic_id;
    let state_key = keys::partition_state(topic_id, partition);
    let state = match shared.meta.get(&state_key).await? {
        Some(v) => PartitionStateRecord::decode(&state_key, &v.value)?,
        None => PartitionStateRecord::empty(),
    };
    let entries = load_index(
        shared,
        partition,
        state.log_start_offset,
        state.high_watermark,
    )
    .await?;
    let mut aborted = Vec::new();
    for (key, value) in shared
        .meta
        .list_all(&keys::partition_aborted_prefix(topic_id, partition))
        .await?
    {
        let record = AbortedTxnRecord::decode(&key, &value.value)?;
        if record.last_offset < state.high_watermark {
            aborted.push(record);
        }
    }
    let last_stable_offset = state
        .producers
        .iter()
        .filter_map(|p| p.txn_first_offset)
        .min()
        .map_or(state.high_watermark, |first| {
            first.clamp(state.log_start_offset, state.high_watermark)
        });
    let end = if shared.options.read_committed {
        last_stable_offset
    } else {
        state.high_watermark
    };
    Ok(PartitionSnapshot {
        partition,
        log_start_offset: state.log_start_offset,
        high_watermark: state.high_watermark,
        last_stable_offset,
        end,
        entries: Arc::new(entries),
        aborted: Arc::new(Aborted::new(aborted)),
    })
}

/// The index entries of `partition` holding offsets in `log_start..high_watermark`, by
/// base offset.
pub(crate) async fn load_index(
    shared: &Shared,
    partition: i32,
    log_start: Offset,
    high_watermark: Offset,
) -> Result<Vec<IndexEntry>, ReplayError> {
    let mut entries = index::read_whole_index(
        shared.meta.as_ref(),
        shared.topic.topic_id,
        partition,
        high_watermark,
    )
    .await?;
    entries.retain(|e| e.last_offset >= log_start);
    Ok(entries)
}

/// The state's log start now (a reader checks it after its chunk vanished).
pub(crate) async fn log_start_now(shared: &Shared, partition: i32) -> Result<Offset, ReplayError> {
    let state_key = keys::partition_state(shared.topic.topic_id, partition);
    Ok(match shared.meta.get(&state_key).await? {
        Some(v) => PartitionStateRecord::decode(&state_key, &v.value)?.log_start_offset,
        None => 0,
    })
}

/// See [`crate::Replay::offset_for_time`]. As the broker's ListOffsets: the entries' max
/// timestamps pick the chunks that may hold the record, the frames' the spans to read, the
/// batches' the batch; its records decide (a chunk or batch without one moves on).
pub(crate) async fn offset_for_time(
    shared: &Shared,
    snapshot: &PartitionSnapshot,
    timestamp: i64,
) -> Result<Offset, ReplayError> {
    let candidates = snapshot
        .entries
        .iter()
        .filter(|e| e.max_timestamp >= timestamp && e.last_offset >= snapshot.log_start_offset);
    for entry in candidates {
        let from = entry.base_offset.max(snapshot.log_start_offset);
        let spans = shared.tier.spans(entry, from).await?;
        for span in spans
            .iter()
            .filter(|s| s.expected.max_timestamp >= timestamp)
        {
            let data = shared.tier.read_span(span).await?;
            let corrupt = |reason: String| ReplayError::Corrupt {
                object: span.object.clone(),
                reason,
            };
            for item in batch::iter_batches(&data) {
                let (header, range) = item.map_err(|e| corrupt(e.to_string()))?;
                if header.max_timestamp < timestamp || header.last_offset() < from {
                    continue;
                }
                let records = batch_records(
                    &header,
                    data.slice(range),
                    snapshot.partition,
                    shared.options.batch_bytes_max,
                )
                .map_err(corrupt)?;
                for record in records {
                    if record.timestamp >= timestamp && record.offset >= from {
                        return Ok(record.offset.min(snapshot.end));
                    }
                }
            }
        }
    }
    Ok(snapshot.end)
}
