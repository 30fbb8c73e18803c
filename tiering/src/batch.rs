//! Kafka record batch v2 (magic 2) headers over raw bytes: parsing, validation, the two
//! in-place rewrites the broker needs (base offset, partition leader epoch), and transaction
//! markers (control batches), which the broker builds itself and never accepts from clients.
//!
//! Nothing here decompresses records. Every function that reads bytes from the network or
//! from storage returns an error instead of panicking, and nothing allocates in proportion to
//! a count read from those bytes.
//!
//! Layout (big-endian), see Kafka's `DefaultRecordBatch`:
//! ```text
//!  0 baseOffset i64           8 batchLength i32 (bytes after this field)
//! 12 partitionLeaderEpoch i32 16 magic i8      17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16          23 lastOffsetDelta i32   27 baseTimestamp i64
//! 35 maxTimestamp i64        43 producerId i64        51 producerEpoch i16
//! 53 baseSequence i32        57 recordsCount i32      61 records...
//! ```

use std::ops::Range;

use strato_metadata::model::Offset;

use crate::varint::{Reader, RecordError, put_varint};

/// Size of a v2 batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_LEN: usize = 61;
/// The only record batch format Strato accepts.
pub const MAGIC_V2: i8 = 2;
/// `baseOffset` + `batchLength`: the bytes not counted by `batchLength`.
const LOG_OVERHEAD: usize = 12;
/// Smallest `batchLength` of a v2 batch: a header without records.
const BATCH_LENGTH_MIN: i32 = 49;
const _: () = assert!(BATCH_LENGTH_MIN as usize + LOG_OVERHEAD == BATCH_HEADER_LEN);

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// The CRC covers everything from `attributes` to the end of the batch, which is why
/// `baseOffset` and `partitionLeaderEpoch` can be rewritten without recomputing it.
const CRC_COVERED_FROM: usize = 21;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;
const _: () = assert!(RECORDS_COUNT_AT + 4 == BATCH_HEADER_LEN);
const _: () = assert!(PARTITION_LEADER_EPOCH_AT + 4 <= CRC_COVERED_FROM);

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Why a byte string is not a sequence of valid v2 record batches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported record batch magic {0} (only 2 is supported)")]
    BadMagic(i8),
    #[error("bad record batch length {batch_length} with {available} bytes available")]
    BadLength { batch_length: i32, available: usize },
    #[error("record batch CRC mismatch: header says {expected:#010x}, data has {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("bad record count {records_count} with last offset delta {last_offset_delta}")]
    BadRecordCount {
        records_count: i32,
        last_offset_delta: i32,
    },
    #[error("control batches are written by the broker, not by clients")]
    ControlBatch,
    #[error("producer id {producer_id} with negative base sequence {base_sequence}")]
    BadSequence {
        producer_id: i64,
        base_sequence: i32,
    },
    #[error("more than {max} record batches")]
    TooManyBatches { max: usize },
    #[error("bad transaction marker: {reason}")]
    BadMarker { reason: &'static str },
}

/// The fixed-size header of one v2 record batch, as stored in the bytes.
///
/// A `BatchHeader` returned by [`parse_header`] always has `magic == 2` and
/// `batch_length >= 49`; nothing else is checked until [`validate_batches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Size of the whole batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        // parse_header rejects negative lengths, so the conversion cannot fail for a parsed
        // header; a hand-built header with a negative length counts as header-only.
        usize::try_from(self.batch_length).unwrap_or(BATCH_LENGTH_MIN as usize) + LOG_OVERHEAD
    }

    /// Offset of the batch's last record. Saturates instead of overflowing on hostile input.
    pub fn last_offset(&self) -> Offset {
        self.base_offset
            .saturating_add(Offset::from(self.last_offset_delta))
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        // The mask keeps three bits, so the value always fits in a u8.
        (self.attributes & COMPRESSION_MASK) as u8
    }

    /// Whether timestamps are the broker's append time (true) or the producer's create time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the batch comes from an idempotent (or transactional) producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Reads the header at the start of `bytes`.
///
/// Needs at least [`BATCH_HEADER_LEN`] bytes; checks the magic and that `batchLength` is at
/// least a header's worth, but not that the rest of the batch is present (see
/// [`iter_batches`]) nor its CRC (see [`validate_batches`]).
pub fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    // The magic decides how to read the rest, so it is checked as soon as it is readable:
    // an old-format message set gets `BadMagic`, not a misleading length error.
    if bytes.len() <= MAGIC_AT {
        return Err(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: bytes.len(),
        });
    }
    let magic = i8::from_be_bytes(read_array(bytes, MAGIC_AT));
    if magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(magic));
    }
    if bytes.len() < BATCH_HEADER_LEN {
        return Err(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: bytes.len(),
        });
    }
    let batch_length = i32::from_be_bytes(read_array(bytes, BATCH_LENGTH_AT));
    if batch_length < BATCH_LENGTH_MIN {
        return Err(BatchError::BadLength {
            batch_length,
            available: bytes.len(),
        });
    }
    Ok(BatchHeader {
        base_offset: i64::from_be_bytes(read_array(bytes, BASE_OFFSET_AT)),
        batch_length,
        partition_leader_epoch: i32::from_be_bytes(read_array(bytes, PARTITION_LEADER_EPOCH_AT)),
        magic,
        crc: u32::from_be_bytes(read_array(bytes, CRC_AT)),
        attributes: i16::from_be_bytes(read_array(bytes, ATTRIBUTES_AT)),
        last_offset_delta: i32::from_be_bytes(read_array(bytes, LAST_OFFSET_DELTA_AT)),
        base_timestamp: i64::from_be_bytes(read_array(bytes, BASE_TIMESTAMP_AT)),
        max_timestamp: i64::from_be_bytes(read_array(bytes, MAX_TIMESTAMP_AT)),
        producer_id: i64::from_be_bytes(read_array(bytes, PRODUCER_ID_AT)),
        producer_epoch: i16::from_be_bytes(read_array(bytes, PRODUCER_EPOCH_AT)),
        base_sequence: i32::from_be_bytes(read_array(bytes, BASE_SEQUENCE_AT)),
        records_count: i32::from_be_bytes(read_array(bytes, RECORDS_COUNT_AT)),
    })
}

/// Walks a buffer of concatenated batches, yielding each header and its byte range.
///
/// Only the structure is checked (header readable, batch inside the buffer), not CRCs: it is
/// meant for data that was already validated, such as a decoded chunk. After the first error
/// the iterator ends.
pub fn iter_batches(bytes: &[u8]) -> BatchIter<'_> {
    BatchIter {
        bytes,
        position: 0,
        failed: false,
    }
}

/// Iterator returned by [`iter_batches`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
    failed: bool,
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.position..];
        let result = parse_header(rest).and_then(|header| {
            if header.total_len() > rest.len() {
                return Err(BatchError::BadLength {
                    batch_length: header.batch_length,
                    available: rest.len(),
                });
            }
            Ok(header)
        });
        match result {
            Ok(header) => {
                let range = self.position..self.position + header.total_len();
                self.position = range.end;
                Some(Ok((header, range)))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

impl std::iter::FusedIterator for BatchIter<'_> {}

/// Checks that `bytes` is exactly a sequence of at least one whole, valid v2 batch as a
/// client may send it, and returns their headers.
///
/// Per batch: magic 2, `batchLength` at least a header and inside the buffer, CRC-32C,
/// `recordsCount > 0` and equal to `lastOffsetDelta + 1`, not a control batch, and a
/// non-negative base sequence when a producer id is set. More than `max_batches` batches is
/// an error too, which bounds the returned `Vec`.
pub fn validate_batches(bytes: &[u8], max_batches: usize) -> Result<Vec<BatchHeader>, BatchError> {
    validate_all(bytes, max_batches, Origin::Client, Crc::Check)
}

/// Like [`validate_batches`], for batches as the broker stores them: transaction markers
/// (the control batches the broker writes, see [`build_marker_batch`]) are valid too, and
/// so are batches with fewer records than offsets (cleaned, see `records::rebuild_batch`).
/// Segments are checked with this before upload and after read.
pub fn validate_stored_batches(
    bytes: &[u8],
    max_batches: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    validate_all(bytes, max_batches, Origin::Stored, Crc::Check)
}

/// [`validate_stored_batches`] without the CRC-32C pass, for batches just decompressed
/// from a chunk: zstd's content checksum (XXH64, always written by `SegmentBuilder`)
/// already proved them the bytes that were compressed, and those passed the CRC check
/// before upload. Everything else is checked as there.
pub fn validate_decompressed_batches(
    bytes: &[u8],
    max_batches: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    validate_all(bytes, max_batches, Origin::Stored, Crc::Trusted)
}

/// Whether [`validate_all`] recomputes each batch's CRC-32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crc {
    Check,
    Trusted,
}

/// Who wrote the batches being validated: only the broker writes control batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Client,
    Stored,
}

fn validate_all(
    bytes: &[u8],
    max_batches: usize,
    origin: Origin,
    crc: Crc,
) -> Result<Vec<BatchHeader>, BatchError> {
    if bytes.is_empty() {
        return Err(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: 0,
        });
    }
    let mut headers = Vec::new();
    for item in iter_batches(bytes) {
        let (header, range) = item?;
        if headers.len() == max_batches {
            return Err(BatchError::TooManyBatches { max: max_batches });
        }
        validate_batch(&header, &bytes[range], origin, crc)?;
        headers.push(header);
    }
    Ok(headers)
}

fn validate_batch(
    header: &BatchHeader,
    batch: &[u8],
    origin: Origin,
    crc: Crc,
) -> Result<(), BatchError> {
    if crc == Crc::Check {
        let actual = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
        if actual != header.crc {
            return Err(BatchError::CrcMismatch {
                expected: header.crc,
                actual,
            });
        }
    }
    let bad_count = || BatchError::BadRecordCount {
        records_count: header.records_count,
        last_offset_delta: header.last_offset_delta,
    };
    if header.records_count <= 0 || header.last_offset_delta < 0 {
        return Err(bad_count());
    }
    // A client's batch holds a record for every offset it spans; a stored one may hold
    // fewer: the key cleaner removes records but keeps the batch's offsets (as Kafka's).
    let spanned = i64::from(header.last_offset_delta) + 1;
    let count = i64::from(header.records_count);
    if count > spanned || (origin == Origin::Client && count != spanned) {
        return Err(bad_count());
    }
    if header.is_control() {
        return match origin {
            Origin::Client => Err(BatchError::ControlBatch),
            // A marker has no sequence (-1), so the sequence rule below does not apply.
            Origin::Stored => parse_marker(batch).map(|_| ()),
        };
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(BatchError::BadSequence {
            producer_id: header.producer_id,
            base_sequence: header.base_sequence,
        });
    }
    Ok(())
}

/// A transaction marker (Kafka's `EndTransactionMarker`): the control batch a partition leader
/// writes to end a producer's transaction in the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Commit (true) or abort (false).
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// Kafka's `ControlRecordType` ids, the `type` field of a control record's key.
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;
/// Version of the control record key (`version: int16, type: int16`).
const CONTROL_KEY_VERSION: i16 = 0;
const CONTROL_KEY_LEN: usize = 4;
/// Version of the marker value (`version: int16, coordinator_epoch: int32`).
const MARKER_VALUE_VERSION: i16 = 0;
const MARKER_VALUE_LEN: usize = 6;
/// Base sequence of a batch without sequence numbers (Kafka's `RecordBatch.NO_SEQUENCE`).
const NO_SEQUENCE: i32 = -1;

/// Builds the marker batch as Kafka's `MemoryRecords.withEndTransactionMarker` does: magic 2,
/// uncompressed, transactional and control attributes, the producer's id and epoch, no
/// sequence, create time `timestamp_ms`, one record whose key is (version 0, type: 0 abort,
/// 1 commit) and whose value is (version 0, coordinator epoch), and a correct CRC-32C.
pub fn build_marker_batch(
    marker: &TxnMarker,
    base_offset: Offset,
    partition_leader_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let control_type = if marker.commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    let mut record = Vec::with_capacity(32);
    record.push(0u8); // record attributes (unused)
    put_varint(&mut record, 0); // timestamp delta
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, CONTROL_KEY_LEN as i64);
    record.extend_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
    record.extend_from_slice(&control_type.to_be_bytes());
    put_varint(&mut record, MARKER_VALUE_LEN as i64);
    record.extend_from_slice(&MARKER_VALUE_VERSION.to_be_bytes());
    record.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    put_varint(&mut record, 0); // no headers
    let mut records = Vec::with_capacity(record.len() + 2);
    put_varint(&mut records, record.len() as i64);
    records.extend_from_slice(&record);

    let mut batch = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
    batch.extend_from_slice(&base_offset.to_be_bytes());
    let batch_length = i32::try_from(BATCH_HEADER_LEN - LOG_OVERHEAD + records.len())
        .expect("a marker batch is a few dozen bytes");
    batch.extend_from_slice(&batch_length.to_be_bytes());
    batch.extend_from_slice(&partition_leader_epoch.to_be_bytes());
    batch.push(MAGIC_V2 as u8);
    batch.extend_from_slice(&[0; 4]); // crc, set below
    batch.extend_from_slice(&(TRANSACTIONAL_BIT | CONTROL_BIT).to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes()); // last offset delta: one record
    batch.extend_from_slice(&timestamp_ms.to_be_bytes());
    batch.extend_from_slice(&timestamp_ms.to_be_bytes());
    batch.extend_from_slice(&marker.producer_id.to_be_bytes());
    batch.extend_from_slice(&marker.producer_epoch.to_be_bytes());
    batch.extend_from_slice(&NO_SEQUENCE.to_be_bytes());
    batch.extend_from_slice(&1i32.to_be_bytes());
    debug_assert_eq!(batch.len(), BATCH_HEADER_LEN);
    batch.extend_from_slice(&records);
    set_crc(&mut batch);
    batch
}

/// Computes and writes the CRC-32C of a whole batch built in memory.
pub(crate) fn set_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Reads the marker of a control batch (one whole batch, CRC not checked here): transactional
/// and control attributes, uncompressed, one record with a key of version >= 0 and type abort
/// or commit and a value of version >= 0 (later versions may append fields, as in Kafka).
pub fn parse_marker(batch: &[u8]) -> Result<TxnMarker, BatchError> {
    let bad = |reason| BatchError::BadMarker { reason };
    let header = parse_header(batch)?;
    if header.total_len() != batch.len() {
        return Err(BatchError::BadLength {
            batch_length: header.batch_length,
            available: batch.len(),
        });
    }
    if !header.is_control() || !header.is_transactional() {
        return Err(bad("not a transactional control batch"));
    }
    if header.compression() != 0 {
        return Err(bad("compressed"));
    }
    if header.records_count != 1 {
        return Err(bad("not exactly one record"));
    }
    let mut reader = Reader {
        bytes: &batch[BATCH_HEADER_LEN..],
    };
    let record_len = reader.varint()?;
    let record_len = usize::try_from(record_len).map_err(|_| bad("negative record length"))?;
    if record_len != reader.bytes.len() {
        return Err(bad("record length does not match the batch"));
    }
    reader.take(1)?; // attributes
    reader.varint()?; // timestamp delta
    reader.varint()?; // offset delta
    let key_len = usize::try_from(reader.varint()?).map_err(|_| bad("null key"))?;
    if key_len < CONTROL_KEY_LEN {
        return Err(bad("short key"));
    }
    let key = reader.take(key_len)?;
    let key_version = i16::from_be_bytes([key[0], key[1]]);
    let control_type = i16::from_be_bytes([key[2], key[3]]);
    if key_version < 0 {
        return Err(bad("negative key version"));
    }
    let commit = match control_type {
        CONTROL_TYPE_COMMIT => true,
        CONTROL_TYPE_ABORT => false,
        _ => return Err(bad("not an abort or commit marker")),
    };
    let value_len = usize::try_from(reader.varint()?).map_err(|_| bad("null value"))?;
    if value_len < MARKER_VALUE_LEN {
        return Err(bad("short value"));
    }
    let value = reader.take(value_len)?;
    if i16::from_be_bytes([value[0], value[1]]) < 0 {
        return Err(bad("negative value version"));
    }
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    Ok(TxnMarker {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        commit,
        coordinator_epoch,
    })
}

/// A marker record's fields are read like any record's; their errors are the marker's.
impl From<RecordError> for BatchError {
    fn from(err: RecordError) -> Self {
        BatchError::BadMarker { reason: err.reason }
    }
}

/// Rewrites `baseOffset`, which the CRC does not cover, so the batch stays valid.
///
/// # Panics
/// If `batch` is shorter than a header: callers pass batches they validated.
pub fn set_base_offset(batch: &mut [u8], base_offset: Offset) {
    assert!(
        batch.len() >= BATCH_HEADER_LEN,
        "set_base_offset on {} bytes, callers pass validated batches",
        batch.len()
    );
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch`, which the CRC does not cover, so the batch stays valid.
///
/// # Panics
/// If `batch` is shorter than a header: callers pass batches they validated.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(
        batch.len() >= BATCH_HEADER_LEN,
        "set_partition_leader_epoch on {} bytes, callers pass validated batches",
        batch.len()
    );
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Builders of valid batches for tests (this crate's, and other crates' with the `testing`
/// feature).
#[cfg(any(test, feature = "testing"))]
pub mod test_support {
    use super::*;
    /// Kafka's zigzag varint, for tests that write records by hand.
    pub use crate::varint::put_varint;

    /// What a test batch looks like; `Default` is a plain batch of one record.
    #[derive(Debug, Clone)]
    pub struct BatchSpec {
        pub base_offset: i64,
        pub records: usize,
        pub base_timestamp: i64,
        pub attributes: i16,
        pub producer_id: i64,
        pub producer_epoch: i16,
        pub base_sequence: i32,
        pub value_len: usize,
    }

    impl Default for BatchSpec {
        fn default() -> Self {
            Self {
                base_offset: 0,
                records: 1,
                base_timestamp: 1_700_000_000_000,
                attributes: 0,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                value_len: 10,
            }
        }
    }

    fn put_varlong(out: &mut Vec<u8>, value: i64) {
        put_varint(out, value);
    }

    /// An uncompressed v2 batch with `spec.records` records (key null, value of
    /// `value_len` bytes, no headers), timestamps one ms apart and a correct CRC.
    pub fn build_batch(spec: &BatchSpec) -> Vec<u8> {
        let mut records = Vec::new();
        for index in 0..spec.records {
            let mut record = Vec::new();
            record.push(0u8); // attributes
            put_varlong(&mut record, index as i64); // timestamp delta
            put_varlong(&mut record, index as i64); // offset delta
            put_varlong(&mut record, -1); // null key
            put_varlong(&mut record, spec.value_len as i64);
            record.extend((0..spec.value_len).map(|i| (i + index) as u8));
            put_varlong(&mut record, 0); // no headers
            put_varlong(&mut records, record.len() as i64);
            records.extend_from_slice(&record);
        }
        let last_offset_delta = spec.records as i32 - 1;
        let mut batch = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
        batch.extend_from_slice(&spec.base_offset.to_be_bytes());
        let batch_length = (BATCH_HEADER_LEN - LOG_OVERHEAD + records.len()) as i32;
        batch.extend_from_slice(&batch_length.to_be_bytes());
        batch.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
        batch.push(MAGIC_V2 as u8);
        batch.extend_from_slice(&[0; 4]); // crc, patched below
        batch.extend_from_slice(&spec.attributes.to_be_bytes());
        batch.extend_from_slice(&last_offset_delta.to_be_bytes());
        batch.extend_from_slice(&spec.base_timestamp.to_be_bytes());
        let max_timestamp = spec.base_timestamp + i64::from(last_offset_delta.max(0));
        batch.extend_from_slice(&max_timestamp.to_be_bytes());
        batch.extend_from_slice(&spec.producer_id.to_be_bytes());
        batch.extend_from_slice(&spec.producer_epoch.to_be_bytes());
        batch.extend_from_slice(&spec.base_sequence.to_be_bytes());
        batch.extend_from_slice(&(spec.records as i32).to_be_bytes());
        assert_eq!(batch.len(), BATCH_HEADER_LEN);
        batch.extend_from_slice(&records);
        fix_crc(&mut batch);
        batch
    }

    /// Recomputes the CRC after a test edited a covered field.
    pub fn fix_crc(batch: &mut [u8]) {
        set_crc(batch);
    }

    /// A plain batch of `records` records starting at `base_offset`.
    pub fn simple_batch(base_offset: i64, records: usize) -> Vec<u8> {
        build_batch(&BatchSpec {
            base_offset,
            records,
            ..BatchSpec::default()
        })
    }

    /// A deterministic xorshift64 generator, so fuzz-style tests need no extra crate.
    pub struct XorShift(pub u64);

    impl XorShift {
        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        pub fn below(&mut self, bound: usize) -> usize {
            (self.next_u64() % bound as u64) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn write_i32(batch: &mut [u8], at: usize, value: i32) {
        batch[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    #[test]
    fn valid_batches_parse_with_their_fields() {
        let spec = BatchSpec {
            base_offset: 100,
            records: 5,
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 40,
            attributes: 4, // zstd, per the header only: the records are not actually compressed
            ..BatchSpec::default()
        };
        let mut bytes = build_batch(&spec);
        bytes.extend(simple_batch(105, 3));
        let headers = validate_batches(&bytes, 10).unwrap();
        assert_eq!(headers.len(), 2);
        let first = headers[0];
        assert_eq!(first.base_offset, 100);
        assert_eq!(first.last_offset(), 104);
        assert_eq!(first.records_count, 5);
        assert_eq!(first.producer_id, 7);
        assert_eq!(first.producer_epoch, 2);
        assert_eq!(first.base_sequence, 40);
        assert_eq!(first.compression(), 4);
        assert!(first.has_producer_id());
        assert!(!first.is_transactional());
        assert!(!first.is_control());
        assert_eq!(first.max_timestamp, spec.base_timestamp + 4);
        assert_eq!(first.total_len() + headers[1].total_len(), bytes.len());
        assert!(!headers[1].has_producer_id());
        assert_eq!(headers[1].last_offset(), 107);

        let ranges: Vec<_> = iter_batches(&bytes).map(|item| item.unwrap().1).collect();
        assert_eq!(
            ranges,
            vec![0..first.total_len(), first.total_len()..bytes.len()]
        );
    }

    #[test]
    fn each_kind_of_corruption_is_rejected() {
        let valid = simple_batch(0, 3);
        let reject = |bytes: &[u8]| validate_batches(bytes, 10).unwrap_err();

        assert!(matches!(reject(&[]), BatchError::Truncated { .. }));
        assert!(matches!(
            reject(&valid[..40]),
            BatchError::Truncated {
                needed: 61,
                available: 40
            }
        ));
        assert!(matches!(reject(&valid[..10]), BatchError::Truncated { .. }));

        let mut bad_magic = valid.clone();
        bad_magic[MAGIC_AT] = 1;
        assert_eq!(reject(&bad_magic), BatchError::BadMagic(1));

        let mut bad_crc = valid.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0x01;
        assert!(matches!(reject(&bad_crc), BatchError::CrcMismatch { .. }));

        let mut beyond_buffer = valid.clone();
        write_i32(&mut beyond_buffer, BATCH_LENGTH_AT, valid.len() as i32);
        assert!(matches!(
            reject(&beyond_buffer),
            BatchError::BadLength { .. }
        ));
        assert!(matches!(
            reject(&valid[..valid.len() - 1]),
            BatchError::BadLength { .. }
        ));

        let mut too_short = valid.clone();
        write_i32(&mut too_short, BATCH_LENGTH_AT, 48);
        assert!(matches!(reject(&too_short), BatchError::BadLength { .. }));
        write_i32(&mut too_short, BATCH_LENGTH_AT, -1);
        assert!(matches!(reject(&too_short), BatchError::BadLength { .. }));

        let mut count_mismatch = valid.clone();
        write_i32(&mut count_mismatch, RECORDS_COUNT_AT, 4);
        fix_crc(&mut count_mismatch);
        assert!(matches!(
            reject(&count_mismatch),
            BatchError::BadRecordCount { .. }
        ));

        let mut zero_records = valid.clone();
        write_i32(&mut zero_records, RECORDS_COUNT_AT, 0);
        write_i32(&mut zero_records, LAST_OFFSET_DELTA_AT, -1);
        fix_crc(&mut zero_records);
        assert!(matches!(
            reject(&zero_records),
            BatchError::BadRecordCount { .. }
        ));

        let control = build_batch(&BatchSpec {
            attributes: CONTROL_BIT,
            ..BatchSpec::default()
        });
        assert_eq!(reject(&control), BatchError::ControlBatch);

        let negative_sequence = build_batch(&BatchSpec {
            producer_id: 3,
            producer_epoch: 0,
            base_sequence: -1,
            ..BatchSpec::default()
        });
        assert!(matches!(
            reject(&negative_sequence),
            BatchError::BadSequence { .. }
        ));

        let mut trailing_garbage = valid.clone();
        trailing_garbage.extend_from_slice(&[0xab; 5]);
        assert!(matches!(
            reject(&trailing_garbage),
            BatchError::Truncated { .. }
        ));

        let mut two = valid.clone();
        two.extend(simple_batch(3, 1));
        assert_eq!(
            validate_batches(&two, 1).unwrap_err(),
            BatchError::TooManyBatches { max: 1 }
        );
        assert_eq!(validate_batches(&two, 2).unwrap().len(), 2);
    }

    #[test]
    fn offset_and_epoch_rewrites_keep_the_crc_valid() {
        let mut batch = simple_batch(0, 4);
        set_base_offset(&mut batch, 1_234_567);
        set_partition_leader_epoch(&mut batch, 42);
        let headers = validate_batches(&batch, 1).unwrap();
        assert_eq!(headers[0].base_offset, 1_234_567);
        assert_eq!(headers[0].last_offset(), 1_234_570);
        assert_eq!(headers[0].partition_leader_epoch, 42);
    }

    #[test]
    fn hostile_header_values_do_not_overflow() {
        let mut batch = simple_batch(0, 1);
        set_base_offset(&mut batch, i64::MAX);
        write_i32(&mut batch, LAST_OFFSET_DELTA_AT, i32::MAX);
        write_i32(&mut batch, RECORDS_COUNT_AT, i32::MIN);
        fix_crc(&mut batch);
        let header = parse_header(&batch).unwrap();
        assert_eq!(header.last_offset(), i64::MAX);
        assert!(matches!(
            validate_batches(&batch, 1),
            Err(BatchError::BadRecordCount { .. })
        ));
    }

    /// Goal: a marker batch is byte for byte what Kafka writes. Method: the expected bytes
    /// of a commit marker written out field by field from Kafka's `DefaultRecordBatch` and
    /// `EndTransactionMarker` layouts (CRC computed independently).
    #[test]
    fn marker_batch_has_kafkas_layout() {
        let marker = TxnMarker {
            producer_id: 4000,
            producer_epoch: 3,
            commit: true,
            coordinator_epoch: 7,
        };
        let batch = build_marker_batch(&marker, 42, 5, 1_700_000_000_123);
        let mut expected = Vec::new();
        expected.extend_from_slice(&42i64.to_be_bytes());
        expected.extend_from_slice(&(49i32 + 17).to_be_bytes()); // header rest + records
        expected.extend_from_slice(&5i32.to_be_bytes());
        expected.push(2);
        expected.extend_from_slice(&[0; 4]);
        expected.extend_from_slice(&0x30i16.to_be_bytes()); // transactional | control
        expected.extend_from_slice(&0i32.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        expected.extend_from_slice(&4000i64.to_be_bytes());
        expected.extend_from_slice(&3i16.to_be_bytes());
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        expected.extend_from_slice(&1i32.to_be_bytes());
        // Record: length 16 (zigzag 32), attributes, timestamp and offset deltas, key
        // length 4 (zigzag 8), key (0, 1), value length 6 (zigzag 12), value (0, 7), no
        // headers.
        expected.extend_from_slice(&[32, 0, 0, 0, 8, 0, 0, 0, 1, 12, 0, 0, 0, 0, 0, 7, 0]);
        let crc = crc32c::crc32c(&expected[21..]);
        expected[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(batch, expected);

        let header = parse_header(&batch).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(header.last_offset(), 42);
        assert_eq!(parse_marker(&batch).unwrap(), marker);
        let abort = TxnMarker {
            commit: false,
            ..marker
        };
        assert_eq!(
            parse_marker(&build_marker_batch(&abort, 0, 0, 0)).unwrap(),
            abort
        );
    }

    /// Goal: markers are valid in stored data (segments) and refused from clients.
    #[test]
    fn markers_are_stored_but_never_accepted_from_clients() {
        let marker = TxnMarker {
            producer_id: 1,
            producer_epoch: 0,
            commit: false,
            coordinator_epoch: 0,
        };
        let mut bytes = simple_batch(0, 2);
        bytes.extend(build_marker_batch(&marker, 2, 0, 0));
        assert_eq!(validate_stored_batches(&bytes, 10).unwrap().len(), 2);
        assert_eq!(
            validate_batches(&bytes, 10).unwrap_err(),
            BatchError::ControlBatch
        );
        // A control batch that is not a marker is corrupt even in storage.
        let not_a_marker = build_batch(&BatchSpec {
            attributes: CONTROL_BIT | TRANSACTIONAL_BIT,
            producer_id: 1,
            producer_epoch: 0,
            ..BatchSpec::default()
        });
        assert!(matches!(
            validate_stored_batches(&not_a_marker, 1),
            Err(BatchError::BadMarker { .. })
        ));
        assert!(matches!(
            parse_marker(&simple_batch(0, 1)),
            Err(BatchError::BadMarker { .. })
        ));
    }

    /// Goal: a damaged marker never panics the parser. Method: every byte of a marker
    /// overwritten with random values, and every truncation.
    #[test]
    fn damaged_markers_never_panic() {
        let marker = TxnMarker {
            producer_id: 9,
            producer_epoch: 1,
            commit: true,
            coordinator_epoch: -1,
        };
        let valid = build_marker_batch(&marker, 10, 1, 1);
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let mut mutated = valid.clone();
            let at = BATCH_HEADER_LEN + rng.below(valid.len() - BATCH_HEADER_LEN);
            mutated[at] = rng.next_u64() as u8;
            let _ = parse_marker(&mutated);
            let _ = validate_stored_batches(&mutated, 1);
        }
        for len in 0..valid.len() {
            assert!(parse_marker(&valid[..len]).is_err());
        }
    }

    /// Goal: no input makes the parsers panic. Method: random byte strings, and valid batch
    /// sequences with random bytes overwritten, from a fixed-seed generator.
    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut valid = simple_batch(0, 3);
        valid.extend(simple_batch(3, 2));
        for _ in 0..20_000 {
            let bytes: Vec<u8> = if rng.below(2) == 0 {
                let len = rng.below(200);
                (0..len).map(|_| rng.next_u64() as u8).collect()
            } else {
                let mut mutated = valid.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(mutated.len());
                    mutated[at] = rng.next_u64() as u8;
                }
                if rng.below(2) == 0 {
                    let keep = mutated.len() - rng.below(mutated.len());
                    mutated.truncate(keep);
                }
                mutated
            };
            let _ = parse_header(&bytes);
            let _ = validate_batches(&bytes, 1 + rng.below(3));
            for (header, range) in iter_batches(&bytes).flatten() {
                assert!(range.end <= bytes.len());
                let _ = (
                    header.last_offset(),
                    header.total_len(),
                    header.compression(),
                );
            }
        }
    }
}
