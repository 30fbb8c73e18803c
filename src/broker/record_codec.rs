//! Decoding and encoding the records of v2 record batches through the `kafka-protocol`
//! records codec, for the broker's record-level work (produce's rules and recompression,
//! ListOffsets by timestamp). Decompression is bounded (the cleaner's
//! `strato_tiering::decompress`; the crate's own inflates without a limit), and compression
//! takes Kafka's levels (KIP-390; the crate fixes its own).
//!
//! The crate's codec callbacks return `anyhow::Result`, so the helpers they call do too; the
//! module's functions return [`CodecError`].

use std::io::Write;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use strato_tiering::batch::{self, BatchHeader};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("cannot decode the records of a batch: {0}")]
    Corrupt(String),
    #[error("cannot encode a batch: {0}")]
    Encode(String),
}

/// Largest decompressed size of one produced batch the broker decodes. Producers' batches
/// are far smaller (librdkafka's `message.max.bytes` and Kafka's `max.message.bytes` bound
/// the compressed batch at 1 MB by default); the bound keeps a crafted batch (a few KB of
/// zeros that inflate to gigabytes) from taking the broker's memory.
pub(super) const DECOMPRESSED_BATCH_BYTES_MAX: usize = 32 << 20;
/// Most records in one decoded batch: librdkafka's `batch.num.messages` is at most
/// 1,000,000; the decoded records take about 200 bytes each besides their data.
const RECORDS_PER_BATCH_MAX: i32 = 1_000_000;
/// Smallest encoding of a record: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each. A batch claiming more records than
/// its decompressed bytes can hold is corrupt (checked before the decoder reserves them).
const RECORD_BYTES_MIN: usize = 7;

pub(super) fn codec_of(id: u8) -> Option<Compression> {
    match id {
        0 => Some(Compression::None),
        1 => Some(Compression::Gzip),
        2 => Some(Compression::Snappy),
        3 => Some(Compression::Lz4),
        4 => Some(Compression::Zstd),
        _ => None,
    }
}

/// Decodes the records of `batch` (one whole v2 batch whose header is `header`),
/// decompressing with a bound on size and record count.
pub(crate) fn decode(header: &BatchHeader, batch: &Bytes) -> Result<Vec<Record>, CodecError> {
    if header.records_count > RECORDS_PER_BATCH_MAX {
        return Err(CodecError::Corrupt(format!(
            "{} records in one batch, at most {RECORDS_PER_BATCH_MAX} are accepted",
            header.records_count
        )));
    }
    let claimed = usize::try_from(header.records_count).unwrap_or(usize::MAX);
    let decompress = |payload: &mut Bytes, codec: Compression| -> anyhow::Result<Bytes> {
        let data = decompress(payload, codec)?;
        anyhow::ensure!(
            claimed.saturating_mul(RECORD_BYTES_MIN) <= data.len(),
            "{claimed} records cannot fit in {} bytes",
            data.len()
        );
        check_records(header, &data, claimed)?;
        Ok(data)
    };
    if header.compression() == 0 {
        let section = batch.get(batch::BATCH_HEADER_LEN..).unwrap_or_default();
        check_records(header, section, claimed)
            .map_err(|err| CodecError::Corrupt(format!("{err:#}")))?;
    }
    let mut buf = batch.clone();
    // A panic in the third-party decoder is a corrupt batch too (`check_records` rules out
    // the ones tests/fuzz.rs found).
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(decompress))
    }))
    .map_err(|_| CodecError::Corrupt("the records could not be decoded".into()))?;
    let set = decoded.map_err(|err| CodecError::Corrupt(format!("{err:#}")))?;
    if set.records.len() != claimed {
        return Err(CodecError::Corrupt(format!(
            "the batch claims {claimed} records and holds {}",
            set.records.len()
        )));
    }
    Ok(set.records)
}

/// Checks the records section of a batch with the broker's own parser before the
/// `kafka-protocol` decoder reads it, which trusts what it reads: it reserves room for a
/// record's claimed header count before reading them (a 242-byte produce claiming 2^29
/// headers asked for 19 GB and aborted the process) and adds a record's timestamp delta
/// to the batch's base timestamp unchecked (an overflow). Both found by tests/fuzz.rs.
/// Here every record must be whole (so its header count is bounded by its bytes), exactly
/// `claimed` of them, with a timestamp that does not overflow.
fn check_records(header: &BatchHeader, section: &[u8], claimed: usize) -> anyhow::Result<()> {
    let mut count = 0usize;
    for record in strato_tiering::records::iter_records(section, claimed) {
        let record = record?;
        anyhow::ensure!(
            header
                .base_timestamp
                .checked_add(record.timestamp_delta)
                .is_some()
                && i32::try_from(record.offset_delta).is_ok(),
            "a record's timestamp or offset delta overflows the batch's base"
        );
        count += 1;
    }
    anyhow::ensure!(
        count == claimed,
        "the batch claims {claimed} records and holds {count}"
    );
    Ok(())
}

/// Decompresses a batch's records section, at most [`DECOMPRESSED_BATCH_BYTES_MAX`] (the
/// cleaner's bounded decompression, shared).
pub(super) fn decompress(payload: &Bytes, codec: Compression) -> anyhow::Result<Bytes> {
    if codec == Compression::None {
        return Ok(payload.clone());
    }
    strato_tiering::decompress::decompress(codec as u8, payload, DECOMPRESSED_BATCH_BYTES_MAX)
        .map(Bytes::from)
        .map_err(|why| anyhow::anyhow!(why))
}

/// Compresses a batch's records section with the topic's level (Kafka's
/// `compression.<codec>.level`, KIP-390).
pub(super) fn compress(
    plain: &mut BytesMut,
    out: &mut BytesMut,
    codec: Compression,
    level: i32,
) -> anyhow::Result<()> {
    use bytes::BufMut;
    use kafka_protocol::compression::Compressor;
    match codec {
        Compression::None => out.extend_from_slice(plain),
        Compression::Gzip => {
            let level = match u32::try_from(level) {
                Ok(level) => flate2::Compression::new(level),
                // -1: zlib's default, as Kafka's `GzipCompression`.
                Err(_) => flate2::Compression::default(),
            };
            let mut encoder = flate2::write::GzEncoder::new(out.writer(), level);
            encoder.write_all(plain)?;
            encoder.finish()?;
        }
        Compression::Snappy => {
            // Snappy has no levels; the crate writes Kafka's xerial framing.
            kafka_protocol::compression::Snappy::compress(out, |buf: &mut BytesMut| {
                buf.extend_from_slice(plain);
                Ok(())
            })?;
        }
        Compression::Lz4 => {
            // Independent blocks, as Kafka's `Lz4BlockOutputStream` writes them.
            let mut encoder = lz4::EncoderBuilder::new()
                .level(u32::try_from(level).unwrap_or(1))
                .block_mode(lz4::BlockMode::Independent)
                .build(out.writer())?;
            encoder.write_all(plain)?;
            let (_, result) = encoder.finish();
            result?;
        }
        Compression::Zstd => {
            let compressed = zstd::bulk::compress(plain, level)?;
            out.extend_from_slice(&compressed);
        }
    }
    Ok(())
}

/// Appends `records` to `out` as one v2 batch compressed with codec `id` (Kafka's attribute
/// bits) at `level`; the batch's producer fields, base sequence, transactional flag and
/// offset deltas come from the records. Its first timestamp is the smallest one (Kafka's is
/// the first record's): every record keeps its timestamp either way.
pub(super) fn encode(
    out: &mut BytesMut,
    records: &[Record],
    id: u8,
    level: i32,
) -> Result<(), CodecError> {
    let compression =
        codec_of(id).ok_or_else(|| CodecError::Encode(format!("unknown codec {id}")))?;
    let options = RecordEncodeOptions {
        version: batch::MAGIC_V2,
        compression,
    };
    let compressor = |plain: &mut BytesMut, out: &mut BytesMut, codec: Compression| {
        compress(plain, out, codec, level)
    };
    RecordBatchEncoder::encode_with_custom_compression(out, records, &options, Some(compressor))
        .map_err(|err| CodecError::Encode(format!("{err:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    use strato_tiering::batch::test_support::put_varint as varint;

    /// One uncompressed batch holding `record` (a record's fields after its length).
    fn batch_of_one(record: &[u8]) -> (BatchHeader, Bytes) {
        let mut section = Vec::new();
        varint(&mut section, record.len() as i64);
        section.extend_from_slice(record);
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes()); // base offset
        b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes()); // batch length
        b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc, below
        b.extend_from_slice(&0i16.to_be_bytes()); // attributes
        b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
        b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // base timestamp
        b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // max timestamp
        b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        b.extend_from_slice(&1i32.to_be_bytes()); // records count
        b.extend_from_slice(&section);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let header = batch::parse_header(&b).unwrap();
        (header, Bytes::from(b))
    }

    /// attributes, timestamp delta, offset delta, no key, `value`, then `headers`.
    fn record(timestamp_delta: i64, headers: i64) -> Vec<u8> {
        let mut r = vec![0];
        varint(&mut r, timestamp_delta);
        varint(&mut r, 0);
        varint(&mut r, -1);
        varint(&mut r, 1);
        r.push(b'v');
        varint(&mut r, headers);
        r
    }

    #[test]
    fn a_claimed_header_count_is_checked_against_the_bytes_before_decoding() {
        let (header, good) = batch_of_one(&record(5, 0));
        assert_eq!(decode(&header, &good).unwrap().len(), 1);
        // Found by tests/fuzz.rs: 2^29 headers claimed in a few bytes made the decoder
        // reserve 19 GB and abort the process.
        let (header, bad) = batch_of_one(&record(5, 1 << 29));
        assert!(matches!(decode(&header, &bad), Err(CodecError::Corrupt(_))));
    }

    #[test]
    fn a_timestamp_delta_that_overflows_is_corrupt() {
        let (header, bad) = batch_of_one(&record(i64::MAX, 0));
        assert!(matches!(decode(&header, &bad), Err(CodecError::Corrupt(_))));
    }

    #[test]
    fn decompression_is_bounded() {
        // 64 MiB of zeros gzip to ~64 KB: refused, not inflated.
        let zeros = vec![0u8; 64 << 20];
        let mut plain = BytesMut::from(&zeros[..]);
        let mut out = BytesMut::new();
        compress(&mut plain, &mut out, Compression::Gzip, 9).unwrap();
        assert!(decompress(&out.freeze(), Compression::Gzip).is_err());
    }
}
