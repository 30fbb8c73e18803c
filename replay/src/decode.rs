//! Records out of a span's batches: control batches and aborted transactions skipped,
//! producer-compressed batches inflated (bounded), keys, values and headers sliced from the
//! section without copying when the batch was not compressed.

use std::collections::HashMap;

use bytes::Bytes;
use strato_metadata::model::{AbortedTxnRecord, Offset};
use strato_tiering::batch::{self, BATCH_HEADER_LEN, BatchHeader};
use strato_tiering::decompress::decompress;
use strato_tiering::records::iter_records;

/// Whose clock a record's timestamp is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's.
    CreateTime,
    /// The broker's, when it appended the batch (`message.timestamp.type=LogAppendTime`).
    LogAppendTime,
}

/// A record header: Kafka's header names are strings, but nothing checks that they are UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: Bytes,
    pub value: Option<Bytes>,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: Offset,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    /// `None` for a tombstone.
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// What a span's records are filtered by.
pub(crate) struct SpanFilter<'a> {
    pub(crate) partition: i32,
    /// Records from this offset on...
    pub(crate) from: Offset,
    /// ...and before this one.
    pub(crate) to: Offset,
    /// Aborted transactions to skip (read_committed), if any.
    pub(crate) aborted: Option<&'a Aborted>,
    pub(crate) batch_bytes_max: usize,
}

/// The records of the batches in `data` (a decoded span) that `filter` lets through, in
/// offset order.
pub(crate) fn span_records(data: &Bytes, filter: &SpanFilter<'_>) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    for item in batch::iter_batches(data) {
        let (header, range) = item.map_err(|e| e.to_string())?;
        if header.last_offset() < filter.from || header.base_offset >= filter.to {
            continue;
        }
        if header.is_control() {
            continue;
        }
        if header.is_transactional()
            && filter
                .aborted
                .is_some_and(|a| a.covers(header.producer_id, header.base_offset))
        {
            continue;
        }
        for record in batch_records(
            &header,
            data.slice(range),
            filter.partition,
            filter.batch_bytes_max,
        )? {
            if record.offset >= filter.from && record.offset < filter.to {
                out.push(record);
            }
        }
    }
    Ok(out)
}

/// Every record of one batch (`batch`: the whole batch, header included).
pub(crate) fn batch_records(
    header: &BatchHeader,
    batch: Bytes,
    partition: i32,
    batch_bytes_max: usize,
) -> Result<Vec<Record>, String> {
    let section = batch.slice(BATCH_HEADER_LEN.min(batch.len())..);
    let section = match header.compression() {
        0 => section,
        codec => Bytes::from(decompress(codec, &section, batch_bytes_max)?),
    };
    let count = usize::try_from(header.records_count)
        .map_err(|_| format!("negative record count {}", header.records_count))?;
    // Every record takes at least 7 bytes: a count beyond that is a lie, not a reason to
    // reserve memory.
    let mut records = Vec::with_capacity(count.min(section.len() / 7 + 1));
    let (timestamp_type, append_time) = if header.is_log_append_time() {
        (TimestampType::LogAppendTime, Some(header.max_timestamp))
    } else {
        (TimestampType::CreateTime, None)
    };
    for raw in iter_records(&section, count) {
        let raw = raw.map_err(|e| e.to_string())?;
        let mut headers = Vec::with_capacity(raw.header_count.min(raw.headers_section.len()));
        for h in raw.headers() {
            let (name, value) = h.map_err(|e| e.to_string())?;
            headers.push(Header {
                name: section.slice_ref(name),
                value: value.map(|v| section.slice_ref(v)),
            });
        }
        records.push(Record {
            partition,
            offset: header.base_offset.saturating_add(raw.offset_delta),
            timestamp: append_time
                .unwrap_or_else(|| header.base_timestamp.saturating_add(raw.timestamp_delta)),
            timestamp_type,
            key: raw.key.map(|k| section.slice_ref(k)),
            value: raw.value.map(|v| section.slice_ref(v)),
            headers,
        });
    }
    Ok(records)
}

/// Aborted transactions by producer: (first offset, abort marker offset), sorted.
#[derive(Debug, Default)]
pub(crate) struct Aborted {
    by_producer: HashMap<i64, Vec<(Offset, Offset)>>,
}

impl Aborted {
    pub(crate) fn new(records: impl IntoIterator<Item = AbortedTxnRecord>) -> Self {
        let mut by_producer: HashMap<i64, Vec<(Offset, Offset)>> = HashMap::new();
        for r in records {
            by_producer
                .entry(r.producer_id)
                .or_default()
                .push((r.first_offset, r.last_offset));
        }
        for list in by_producer.values_mut() {
            list.sort_unstable();
        }
        Self { by_producer }
    }

    /// Whether a transactional batch of `producer_id` at `offset` belongs to an aborted
    /// transaction (it started at or before the batch, its abort marker comes after it).
    pub(crate) fn covers(&self, producer_id: i64, offset: Offset) -> bool {
        let Some(list) = self.by_producer.get(&producer_id) else {
            return false;
        };
        // The transactions of one producer do not overlap: the last one starting at or
        // before `offset` is the only candidate.
        let at = list.partition_point(|(first, _)| *first <= offset);
        at > 0 && offset < list[at - 1].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aborted(producer_id: i64, first_offset: Offset, last_offset: Offset) -> AbortedTxnRecord {
        AbortedTxnRecord {
            v: 1,
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: None,
        }
    }

    #[test]
    fn a_batch_is_aborted_between_its_transaction_start_and_marker() {
        let a = Aborted::new([aborted(7, 10, 20), aborted(7, 30, 35), aborted(8, 0, 5)]);
        assert!(!a.covers(7, 9));
        assert!(a.covers(7, 10));
        assert!(a.covers(7, 19));
        assert!(!a.covers(7, 20));
        assert!(!a.covers(7, 25));
        assert!(a.covers(7, 34));
        assert!(!a.covers(7, 36));
        assert!(a.covers(8, 0));
        assert!(!a.covers(9, 12));
    }
}
