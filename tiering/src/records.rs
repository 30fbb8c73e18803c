//! The records inside a v2 record batch, for the key cleaner and for readers of the log
//! without a broker: iterate the (uncompressed) records section record by record without
//! copying (key, value and headers borrowed from it), and rebuild a batch that keeps some
//! of its records byte for byte.
//!
//! A rebuilt batch keeps the original's base offset, base timestamp, last offset delta,
//! producer id, epoch and base sequence, so every kept record's offset, timestamp and
//! sequence (all deltas from those) are what they were; only the record count, the max
//! timestamp, the compression (none: chunks are zstd-compressed as a whole) and the CRC
//! change. This is what Kafka's cleaner does for v2 batches.
//!
//! Every input is untrusted: errors, never panics.

use crate::batch::{BATCH_HEADER_LEN, BatchHeader};
pub use crate::varint::RecordError;
use crate::varint::{Reader, bad};

/// One record of a batch, borrowed from the records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The whole record, its length prefix included (what a rebuilt batch copies).
    pub bytes: &'a [u8],
    pub offset_delta: i64,
    pub timestamp_delta: i64,
    /// `None` for a record without a key.
    pub key: Option<&'a [u8]>,
    /// `None` for a record whose value is null: a tombstone on a compacted topic.
    pub value: Option<&'a [u8]>,
    /// The headers section (after its count), read with [`RawRecord::headers`].
    pub headers_section: &'a [u8],
    pub header_count: usize,
}

impl<'a> RawRecord<'a> {
    /// Whether the value is null (a tombstone on a compacted topic).
    pub fn value_is_null(&self) -> bool {
        self.value.is_none()
    }

    /// The headers, in order: (name, value), `None` for a null value.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            reader: Reader {
                bytes: self.headers_section,
            },
            left: self.header_count,
        }
    }
}

/// The headers of a record (see [`RawRecord::headers`]); checked when the record was read,
/// so an error here is not expected, but never a panic.
pub struct HeaderIter<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<(&'a [u8], Option<&'a [u8]>), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let header = next_header(&mut self.reader);
        if header.is_err() {
            self.left = 0;
        }
        Some(header)
    }
}

fn next_header<'a>(reader: &mut Reader<'a>) -> Result<(&'a [u8], Option<&'a [u8]>), RecordError> {
    let name_len = reader.varint()?;
    let name_len = usize::try_from(name_len).map_err(|_| bad("negative header name length"))?;
    let name = reader.take(name_len)?;
    let value = nullable(reader, "negative header value length")?;
    Ok((name, value))
}

/// A length-prefixed field, `None` for length -1.
fn nullable<'a>(
    reader: &mut Reader<'a>,
    negative: &'static str,
) -> Result<Option<&'a [u8]>, RecordError> {
    match reader.varint()? {
        -1 => Ok(None),
        n if n >= 0 => Ok(Some(
            reader.take(usize::try_from(n).map_err(|_| bad(negative))?)?,
        )),
        _ => Err(bad(negative)),
    }
}

/// The records of `section` (a batch's records, uncompressed), at most `count` of them; the
/// section must hold exactly that many.
pub fn iter_records(section: &[u8], count: usize) -> RecordIter<'_> {
    RecordIter {
        rest: section,
        left: count,
        failed: false,
    }
}

pub struct RecordIter<'a> {
    rest: &'a [u8],
    left: usize,
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RawRecord<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if self.rest.is_empty() {
                return None;
            }
            self.failed = true;
            return Some(Err(bad("bytes after the last record")));
        }
        self.left -= 1;
        let result = next_record(&mut self.rest);
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

fn next_record<'a>(rest: &mut &'a [u8]) -> Result<RawRecord<'a>, RecordError> {
    let whole: &'a [u8] = rest;
    let mut reader = Reader { bytes: whole };
    let length = reader.varint()?;
    let length = usize::try_from(length).map_err(|_| bad("negative record length"))?;
    let prefix = whole.len() - reader.bytes.len();
    let end = prefix
        .checked_add(length)
        .filter(|end| *end <= whole.len())
        .ok_or(bad("record longer than its batch"))?;
    let bytes = &whole[..end];
    let mut body = Reader {
        bytes: &whole[prefix..end],
    };
    body.take(1)?; // attributes (unused)
    let timestamp_delta = body.varint()?;
    let offset_delta = body.varint()?;
    let key = nullable(&mut body, "negative key length")?;
    let value = nullable(&mut body, "negative value length")?;
    let header_count = body.varint()?;
    let header_count = usize::try_from(header_count).map_err(|_| bad("negative header count"))?;
    let headers_section = body.bytes;
    // Checked here, so that a reader of the headers meets no error later.
    let mut headers = Reader {
        bytes: headers_section,
    };
    for _ in 0..header_count {
        next_header(&mut headers)?;
    }
    if !headers.bytes.is_empty() {
        return Err(bad("bytes after the last header"));
    }
    *rest = &whole[end..];
    Ok(RawRecord {
        bytes,
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers_section,
        header_count,
    })
}

/// A batch like `original` (its header) holding only `kept` records (whole records as
/// [`RawRecord::bytes`], in their order), uncompressed, with `max_timestamp` (the kept
/// records' newest; for LogAppendTime batches the original's).
///
/// # Panics
/// If `kept_count` is 0 (drop the batch instead) or the batch would not fit an i32 length.
pub fn rebuild_batch(original: &BatchHeader, kept: &[&[u8]], max_timestamp: i64) -> Vec<u8> {
    assert!(!kept.is_empty(), "a rebuilt batch keeps a record");
    let records_len: usize = kept.iter().map(|r| r.len()).sum();
    let mut batch = Vec::with_capacity(BATCH_HEADER_LEN + records_len);
    batch.extend_from_slice(&original.base_offset.to_be_bytes());
    let batch_length = i32::try_from(BATCH_HEADER_LEN - 12 + records_len)
        .expect("kept records are fewer bytes than their batch");
    batch.extend_from_slice(&batch_length.to_be_bytes());
    batch.extend_from_slice(&original.partition_leader_epoch.to_be_bytes());
    batch.push(original.magic as u8);
    batch.extend_from_slice(&[0; 4]); // CRC, set below
    let attributes = original.attributes & !0x07; // no compression
    batch.extend_from_slice(&attributes.to_be_bytes());
    batch.extend_from_slice(&original.last_offset_delta.to_be_bytes());
    batch.extend_from_slice(&original.base_timestamp.to_be_bytes());
    batch.extend_from_slice(&max_timestamp.to_be_bytes());
    batch.extend_from_slice(&original.producer_id.to_be_bytes());
    batch.extend_from_slice(&original.producer_epoch.to_be_bytes());
    batch.extend_from_slice(&original.base_sequence.to_be_bytes());
    let count = i32::try_from(kept.len()).expect("fewer records than the original");
    batch.extend_from_slice(&count.to_be_bytes());
    debug_assert_eq!(batch.len(), BATCH_HEADER_LEN);
    for record in kept {
        batch.extend_from_slice(record);
    }
    crate::batch::set_crc(&mut batch);
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_support::{BatchSpec, build_batch};
    use crate::batch::{parse_header, validate_stored_batches};

    /// A record's fields as Kafka's encoding writes them (zigzag varints).
    fn encoded_record(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Vec<u8> {
        use crate::varint::put_varint as varint;
        fn field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
            use crate::varint::put_varint as varint;
            match bytes {
                None => varint(out, -1),
                Some(b) => {
                    varint(out, b.len() as i64);
                    out.extend_from_slice(b);
                }
            }
        }
        let mut body = vec![0u8]; // attributes
        varint(&mut body, 7); // timestamp delta
        varint(&mut body, 3); // offset delta
        field(&mut body, key);
        field(&mut body, value);
        varint(&mut body, headers.len() as i64);
        for (name, value) in headers {
            field(&mut body, Some(name));
            field(&mut body, *value);
        }
        let mut out = Vec::new();
        varint(&mut out, body.len() as i64);
        out.extend(body);
        out
    }

    /// Goal: a record's key, value and headers are read as written, nulls included, and a
    /// record whose headers run past it (or leave bytes over) is an error, never a panic.
    #[test]
    fn keys_values_and_headers_are_read() {
        let headers: [(&[u8], Option<&[u8]>); 2] = [(b"trace", Some(b"abc")), (b"empty", None)];
        let mut section = encoded_record(Some(b"k1"), Some(b"value one"), &headers);
        section.extend(encoded_record(None, None, &[]));
        let records: Vec<RawRecord> = iter_records(&section, 2).collect::<Result<_, _>>().unwrap();
        assert_eq!(records[0].key, Some(&b"k1"[..]));
        assert_eq!(records[0].value, Some(&b"value one"[..]));
        assert_eq!(
            (records[0].offset_delta, records[0].timestamp_delta),
            (3, 7)
        );
        let read: Vec<(&[u8], Option<&[u8]>)> =
            records[0].headers().collect::<Result<_, _>>().unwrap();
        assert_eq!(read, headers.to_vec());
        assert_eq!((records[1].key, records[1].value), (None, None));
        assert!(records[1].value_is_null());
        assert_eq!(records[1].headers().count(), 0);

        let good = encoded_record(Some(b"k"), Some(b"v"), &[(b"h", Some(b"x"))]);
        // The header count says 1; claim 2, and cut the record short everywhere.
        let mut bad_count = good.clone();
        let count_at = good.len() - 5;
        bad_count[count_at] = 4; // zigzag 2
        assert!(iter_records(&bad_count, 1).next().unwrap().is_err());
        for cut in 1..good.len() {
            let mut truncated = good[..cut].to_vec();
            // Keep the length prefix consistent with what is left.
            truncated[0] = ((cut as i64 - 1) << 1) as u8;
            let result = iter_records(&truncated, 1).next().unwrap();
            assert!(result.is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn records_are_read_and_a_rebuilt_batch_keeps_offsets_and_timestamps() {
        let original = build_batch(&BatchSpec {
            base_offset: 100,
            records: 5,
            base_timestamp: 1_000,
            producer_id: 7,
            producer_epoch: 1,
            base_sequence: 40,
            ..BatchSpec::default()
        });
        let header = parse_header(&original).unwrap();
        let records: Vec<RawRecord> = iter_records(&original[BATCH_HEADER_LEN..], 5)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 5);
        assert_eq!(
            records.iter().map(|r| r.offset_delta).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        // Keep the second and the fourth.
        let kept = [records[1].bytes, records[3].bytes];
        let rebuilt = rebuild_batch(&header, &kept, 1_003);
        let headers = validate_stored_batches(&rebuilt, 1).unwrap();
        let new = headers[0];
        assert_eq!(new.base_offset, 100);
        assert_eq!(new.last_offset(), 104, "the batch still ends where it did");
        assert_eq!(new.records_count, 2);
        assert_eq!(new.base_sequence, 40);
        assert_eq!(new.producer_id, 7);
        assert_eq!(new.max_timestamp, 1_003);
        let again: Vec<RawRecord> = iter_records(&rebuilt[BATCH_HEADER_LEN..], 2)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(again[0], records[1]);
        assert_eq!(again[1], records[3]);
    }

    #[test]
    fn malformed_records_are_errors() {
        let original = build_batch(&BatchSpec {
            records: 3,
            ..BatchSpec::default()
        });
        let section = &original[BATCH_HEADER_LEN..];
        // Too few records claimed: bytes left over.
        assert!(iter_records(section, 2).any(|r| r.is_err()));
        // Too many: truncated.
        assert!(iter_records(section, 4).any(|r| r.is_err()));
        // Cut anywhere: an error, never a panic.
        for cut in 0..section.len() {
            assert!(iter_records(&section[..cut], 3).any(|r| r.is_err()));
        }
        // A huge length.
        let huge = [0xfe, 0xff, 0xff, 0xff, 0x0f];
        assert!(iter_records(&huge, 1).next().unwrap().is_err());
    }
}
