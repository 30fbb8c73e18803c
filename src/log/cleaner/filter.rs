//! The pure part of the key cleaner: the key map of a pass, which records a chunk keeps, and
//! the checkpoint that remembers how far the log is clean and since when.

use std::collections::HashMap;

use bytes::Bytes;
use strato_metadata::model::{AbortedTxnRecord, CleanedRange, CleanerRecord, Offset};
use strato_tiering::batch::{self, BatchHeader};
use strato_tiering::records::{RawRecord, iter_records, rebuild_batch};

use strato_tiering::decompress::decompress;

/// Bytes the key map may spend per key: a 16-byte hash and an 8-byte offset in a hash
/// table that keeps some buckets free and grows by doubling.
pub const KEY_MAP_BYTES_PER_KEY: u64 = 64;

/// Most decompressed bytes of one batch the cleaner reads (a client batch is at most
/// `max.message.bytes`, 1 MiB by default; compressed, it may claim far more).
pub const BATCH_RECORDS_MAX: usize = 64 * 1024 * 1024;

/// Cleaned ranges remembered in a checkpoint; older ones are merged (their tombstones then
/// stay a little longer, never shorter).
pub const CLEANED_RANGES_MAX: usize = 32;

/// A key's identity in the map: the first 128 bits of its SHA-256 (Kafka's offset map keeps
/// an MD5 of the key; a collision would need 2^64 keys).
pub fn key_hash(key: &[u8]) -> u128 {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
    u128::from_be_bytes(digest.as_ref()[..16].try_into().expect("32-byte digest"))
}

/// The aborted transactions of a partition, by producer: a transactional batch is aborted
/// when its producer has an aborted transaction spanning its offset.
#[derive(Debug, Default)]
pub struct Aborted(HashMap<i64, Vec<(Offset, Offset)>>);

impl Aborted {
    pub fn new(records: &[AbortedTxnRecord]) -> Self {
        let mut by_producer: HashMap<i64, Vec<(Offset, Offset)>> = HashMap::new();
        for r in records {
            by_producer
                .entry(r.producer_id)
                .or_default()
                .push((r.first_offset, r.last_offset));
        }
        Self(by_producer)
    }

    fn holds(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self.0.get(&header.producer_id).is_some_and(|ranges| {
                ranges.iter().any(|(first, last)| {
                    *first <= header.base_offset && header.base_offset <= *last
                })
            })
    }
}

/// The records of one batch, decompressed when needed.
fn records_of(header: &BatchHeader, batch: &[u8]) -> Result<Vec<u8>, String> {
    let section = &batch[batch::BATCH_HEADER_LEN..];
    decompress(header.compression(), section, BATCH_RECORDS_MAX)
        .map_err(|err| format!("batch at offset {}: {err}", header.base_offset))
}

fn parse_records<'a>(
    header: &BatchHeader,
    section: &'a [u8],
) -> Result<Vec<RawRecord<'a>>, String> {
    let count = usize::try_from(header.records_count).unwrap_or(0);
    iter_records(section, count)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("batch at offset {}: {err}", header.base_offset))
}

/// The key map of one pass: for each key seen in the dirty range, the offset of its latest
/// record, for at most `max_keys` keys.
#[derive(Debug)]
pub struct KeyMap {
    latest: HashMap<u128, Offset>,
    max_keys: usize,
    /// Offsets below it (and at or above the pass's clean end) are mapped.
    pub end: Offset,
    /// Set once a new key found the map full: `end` is final.
    pub full: bool,
}

impl KeyMap {
    pub fn new(max_keys: usize, clean_end: Offset) -> Self {
        Self {
            latest: HashMap::new(),
            max_keys: max_keys.max(1),
            end: clean_end,
            full: false,
        }
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Adds the keyed records of chunk `data` at offsets from `from` on (the clean end),
    /// skipping control batches and aborted transactions, until the map is full.
    pub fn add_chunk(
        &mut self,
        data: &[u8],
        from: Offset,
        aborted: &Aborted,
    ) -> Result<(), String> {
        for item in batch::iter_batches(data) {
            if self.full {
                return Ok(());
            }
            let (header, range) = item.map_err(|err| format!("chunk: {err}"))?;
            if header.last_offset() < from {
                continue;
            }
            if header.is_control() || aborted.holds(&header) {
                self.end = self.end.max(header.last_offset() + 1);
                continue;
            }
            let section = records_of(&header, &data[range])?;
            for record in parse_records(&header, &section)? {
                let offset = header.base_offset + record.offset_delta;
                if offset < from {
                    continue;
                }
                if let Some(key) = record.key {
                    let hash = key_hash(key);
                    if self.latest.len() >= self.max_keys && !self.latest.contains_key(&hash) {
                        self.full = true;
                        self.end = self.end.max(offset);
                        return Ok(());
                    }
                    self.latest.insert(hash, offset);
                }
                self.end = self.end.max(offset + 1);
            }
            self.end = self.end.max(header.last_offset() + 1);
        }
        Ok(())
    }
}

/// What a pass knows when it decides which records stay.
pub struct Retain<'a> {
    pub map: &'a KeyMap,
    /// The checkpoint before this pass (offsets below its `clean_end` are clean).
    pub checkpoint: &'a CleanerRecord,
    pub aborted: &'a Aborted,
    pub delete_retention_ms: i64,
    pub now_ms: i64,
}

impl Retain<'_> {
    /// Whether the tombstone at `offset` has been clean for `delete.retention.ms`.
    fn tombstone_expired(&self, offset: Offset) -> bool {
        if offset >= self.checkpoint.clean_end {
            return false;
        }
        clean_since(&self.checkpoint.passes, offset)
            .is_some_and(|at| at.saturating_add(self.delete_retention_ms) <= self.now_ms)
    }

    fn keeps(&self, offset: Offset, record: &RawRecord) -> bool {
        if offset >= self.map.end {
            return true;
        }
        let Some(key) = record.key else {
            // Nothing to compare it with (a compacted topic refuses such records now).
            return true;
        };
        match self.map.latest.get(&key_hash(key)) {
            Some(latest) if *latest > offset => false,
            _ => !(record.value_is_null() && self.tombstone_expired(offset)),
        }
    }
}

/// One chunk after cleaning.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// The batches kept, in order: untouched ones as slices of the chunk, the others
    /// rebuilt with the records they keep.
    pub batches: Vec<Bytes>,
    pub changed: bool,
    pub records_removed: u64,
    pub bytes: u64,
}

/// The records of chunk `data` that stay: every record at or above the map's end, control
/// batches, and below it the latest record of each key (tombstones until they expire),
/// records without a key, and nothing of aborted transactions.
pub fn clean_chunk(data: &Bytes, retain: &Retain) -> Result<Cleaned, String> {
    let mut out = Cleaned::default();
    for item in batch::iter_batches(data) {
        let (header, range) = item.map_err(|err| format!("chunk: {err}"))?;
        let count = u64::try_from(header.records_count).unwrap_or(0);
        if header.base_offset >= retain.map.end || header.is_control() {
            out.bytes += range.len() as u64;
            out.batches.push(data.slice(range));
            continue;
        }
        if retain.aborted.holds(&header) {
            out.changed = true;
            out.records_removed += count;
            continue;
        }
        let section = records_of(&header, &data[range.clone()])?;
        let records = parse_records(&header, &section)?;
        let mut kept: Vec<&[u8]> = Vec::with_capacity(records.len());
        let mut max_timestamp = i64::MIN;
        for record in &records {
            if retain.keeps(header.base_offset + record.offset_delta, record) {
                kept.push(record.bytes);
                max_timestamp =
                    max_timestamp.max(header.base_timestamp.saturating_add(record.timestamp_delta));
            }
        }
        if kept.len() == records.len() {
            out.bytes += range.len() as u64;
            out.batches.push(data.slice(range));
            continue;
        }
        out.changed = true;
        out.records_removed += (records.len() - kept.len()) as u64;
        if kept.is_empty() {
            continue;
        }
        if header.is_log_append_time() {
            max_timestamp = header.max_timestamp;
        }
        let rebuilt = rebuild_batch(&header, &kept, max_timestamp);
        out.bytes += rebuilt.len() as u64;
        out.batches.push(Bytes::from(rebuilt));
    }
    Ok(out)
}

/// When `offset` became clean, if it is.
pub fn clean_since(passes: &[CleanedRange], offset: Offset) -> Option<i64> {
    passes.iter().find(|p| p.offset > offset).map(|p| p.at_ms)
}

/// The checkpoint after a pass that made everything below `clean_end` clean at `now_ms`.
pub fn next_checkpoint(
    old: &CleanerRecord,
    clean_end: Offset,
    now_ms: i64,
    delete_retention_ms: i64,
) -> CleanerRecord {
    let mut passes = old.passes.clone();
    if passes.last().is_none_or(|p| p.offset < clean_end) {
        passes.push(CleanedRange {
            offset: clean_end,
            at_ms: now_ms,
        });
    }
    // Ranges whose tombstones may all go already need no distinction: keep the last one.
    let expired = passes
        .iter()
        .take_while(|p| p.at_ms.saturating_add(delete_retention_ms) <= now_ms)
        .count();
    if expired > 1 {
        passes.drain(..expired - 1);
    }
    // Bounded: a range merged into the next one takes its (later) time.
    while passes.len() > CLEANED_RANGES_MAX {
        passes.remove(0);
    }
    CleanerRecord {
        v: strato_metadata::model::RECORD_FORMAT_V1,
        clean_end: clean_end.max(old.clean_end),
        passes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An uncompressed batch of `(key, value)` records from `base` on, one offset each.
    fn batch(base: Offset, records: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
        use strato_tiering::batch::test_support::put_varint as varint;
        let mut section = Vec::new();
        for (i, (key, value)) in records.iter().enumerate() {
            let mut r = vec![0u8];
            varint(&mut r, i as i64);
            varint(&mut r, i as i64);
            for field in [key, value] {
                match field {
                    Some(s) => {
                        varint(&mut r, s.len() as i64);
                        r.extend_from_slice(s.as_bytes());
                    }
                    None => varint(&mut r, -1),
                }
            }
            varint(&mut r, 0);
            varint(&mut section, r.len() as i64);
            section.extend_from_slice(&r);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&base.to_be_bytes());
        b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&((records.len() - 1) as i32).to_be_bytes());
        b.extend_from_slice(&1_000i64.to_be_bytes());
        b.extend_from_slice(&(1_000 + records.len() as i64 - 1).to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&(records.len() as i32).to_be_bytes());
        b.extend_from_slice(&section);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn values(batches: &[Bytes]) -> Vec<(Offset, Option<String>, Option<String>)> {
        let mut out = Vec::new();
        for b in batches {
            let headers = batch::validate_stored_batches(b, 10).unwrap();
            let section = records_of(&headers[0], b).unwrap();
            for r in parse_records(&headers[0], &section).unwrap() {
                out.push((
                    headers[0].base_offset + r.offset_delta,
                    r.key.map(|k| String::from_utf8(k.to_vec()).unwrap()),
                    (!r.value_is_null()).then(|| "v".to_string()),
                ));
            }
        }
        out
    }

    fn empty_checkpoint() -> CleanerRecord {
        CleanerRecord {
            v: 1,
            clean_end: 0,
            passes: Vec::new(),
        }
    }

    #[test]
    fn the_latest_record_of_each_key_stays() {
        let mut chunk = batch(0, &[(Some("a"), Some("1")), (Some("b"), Some("1"))]);
        chunk.extend(batch(2, &[(Some("a"), Some("2")), (None, Some("x"))]));
        chunk.extend(batch(4, &[(Some("b"), None)]));
        let chunk = Bytes::from(chunk);
        let aborted = Aborted::default();
        let mut map = KeyMap::new(100, 0);
        map.add_chunk(&chunk, 0, &aborted).unwrap();
        assert_eq!((map.len(), map.end, map.full), (2, 5, false));
        let checkpoint = empty_checkpoint();
        let retain = Retain {
            map: &map,
            checkpoint: &checkpoint,
            aborted: &aborted,
            delete_retention_ms: 0,
            now_ms: 10_000,
        };
        let cleaned = clean_chunk(&chunk, &retain).unwrap();
        assert!(cleaned.changed);
        assert_eq!(cleaned.records_removed, 2);
        // a@2, the keyless record and the tombstone of b (dirty: it stays this pass).
        let kept = values(&cleaned.batches);
        assert_eq!(
            kept.iter().map(|k| k.0).collect::<Vec<_>>(),
            vec![2, 3, 4],
            "{kept:?}"
        );
        // The first batch went entirely; the second is untouched (a slice of the chunk).
        assert_eq!(cleaned.batches.len(), 2);

        // Next pass: the tombstone is clean since t=10_000; it goes once delete.retention.ms
        // has passed since then.
        let checkpoint = next_checkpoint(&empty_checkpoint(), 5, 10_000, 1_000);
        let rebuilt: Vec<u8> = cleaned.batches.iter().flat_map(|b| b.to_vec()).collect();
        let rebuilt = Bytes::from(rebuilt);
        let map = KeyMap::new(100, 5);
        for (now, expect) in [(10_500, vec![2, 3, 4]), (11_000, vec![2, 3])] {
            let retain = Retain {
                map: &map,
                checkpoint: &checkpoint,
                aborted: &aborted,
                delete_retention_ms: 1_000,
                now_ms: now,
            };
            let again = clean_chunk(&rebuilt, &retain).unwrap();
            let offsets: Vec<Offset> = values(&again.batches).iter().map(|k| k.0).collect();
            assert_eq!(offsets, expect, "at {now}");
        }
    }

    #[test]
    fn a_full_map_ends_the_mapped_range() {
        let chunk = Bytes::from(batch(
            10,
            &[
                (Some("a"), Some("1")),
                (Some("b"), Some("1")),
                (Some("a"), Some("2")),
                (Some("c"), Some("1")),
            ],
        ));
        let mut map = KeyMap::new(2, 10);
        map.add_chunk(&chunk, 10, &Aborted::default()).unwrap();
        assert!(map.full);
        assert_eq!(map.end, 13, "c at 13 did not fit");
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn aborted_transactions_are_neither_mapped_nor_kept() {
        let mut txn = batch(0, &[(Some("a"), Some("aborted"))]);
        // Transactional producer 7.
        txn[21..23].copy_from_slice(&0x10i16.to_be_bytes());
        txn[43..51].copy_from_slice(&7i64.to_be_bytes());
        txn[51..53].copy_from_slice(&0i16.to_be_bytes());
        txn[53..57].copy_from_slice(&0i32.to_be_bytes());
        let crc = crc32c::crc32c(&txn[21..]);
        txn[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut data = batch(0, &[(Some("a"), Some("1"))]);
        let mut second = txn.clone();
        second[..8].copy_from_slice(&1i64.to_be_bytes());
        data.extend(second);
        let data = Bytes::from(data);
        let aborted = Aborted::new(&[AbortedTxnRecord {
            v: 1,
            producer_id: 7,
            first_offset: 1,
            last_offset: 2,
            last_stable_offset: None,
        }]);
        let mut map = KeyMap::new(10, 0);
        map.add_chunk(&data, 0, &aborted).unwrap();
        let checkpoint = empty_checkpoint();
        let retain = Retain {
            map: &map,
            checkpoint: &checkpoint,
            aborted: &aborted,
            delete_retention_ms: 0,
            now_ms: 0,
        };
        let cleaned = clean_chunk(&data, &retain).unwrap();
        let kept: Vec<Offset> = values(&cleaned.batches).iter().map(|k| k.0).collect();
        assert_eq!(
            kept,
            vec![0],
            "a@0 stays: the aborted a@1 does not supersede it"
        );
    }

    #[test]
    fn checkpoints_stay_bounded_and_never_shorten_a_tombstone() {
        let mut cp = empty_checkpoint();
        for pass in 1..=100i64 {
            cp = next_checkpoint(&cp, pass * 10, pass * 1_000, 1_000_000);
        }
        assert_eq!(cp.clean_end, 1_000);
        assert!(cp.passes.len() <= CLEANED_RANGES_MAX);
        // Every offset is clean since no earlier than the pass that really cleaned it.
        for offset in 0..1_000 {
            let real = (offset / 10 + 1) * 1_000;
            assert!(clean_since(&cp.passes, offset).unwrap() >= real);
        }
        // Long expired ranges collapse into one (and the new pass's).
        let cp = next_checkpoint(&cp, 1_010, 10_000_000, 1_000);
        assert_eq!(cp.passes.len(), 2);
        assert!(clean_since(&cp.passes, 5).unwrap() + 1_000 <= 10_000_000);
        assert_eq!(clean_since(&cp.passes, 1_005), Some(10_000_000));
    }
}
