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
pub(super) enum CodecError {
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
pub(super) fn decode(header: &BatchHeader, batch: &Bytes) -> Result<Vec<Record>, CodecError> {
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
        Ok(data)
    };
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(decompress))
        .map_err(|err| CodecError::Corrupt(format!("{err:#}")))?;
    if set.records.len() != claimed {
        return Err(CodecError::Corrupt(format!(
            "the batch claims {claimed} records and holds {}",
            set.records.len()
        )));
    }
    Ok(set.records)
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
