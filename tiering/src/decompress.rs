//! Decompresses the records section of a client's batch (Kafka's codecs: gzip, snappy in
//! raw or xerial framing, lz4 frames, zstd) into at most a given number of bytes: stored
//! batches are untrusted input, and a small batch may claim to inflate to gigabytes. Used by
//! the broker's key cleaner and produce-side record rules, and by readers of the log without
//! a broker (docs/rfcs/002-replay.md).

use std::io::Read;

/// Kafka's codec ids (the low three bits of a batch's attributes).
const NONE: u8 = 0;
const GZIP: u8 = 1;
const SNAPPY: u8 = 2;
const LZ4: u8 = 3;
const ZSTD: u8 = 4;

/// xerial snappy-java's stream header, which Kafka's Java client writes.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// The records of a batch's section `data` in codec `codec`, at most `limit` bytes.
pub fn decompress(codec: u8, data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    match codec {
        NONE => {
            if data.len() > limit {
                return Err(format!("{} bytes of records, over {limit}", data.len()));
            }
            Ok(data.to_vec())
        }
        GZIP => read_bounded(flate2::read::GzDecoder::new(data), limit, "gzip"),
        SNAPPY => snappy(data, limit),
        LZ4 => {
            let decoder = lz4::Decoder::new(data).map_err(|err| format!("lz4: {err}"))?;
            read_bounded(decoder, limit, "lz4")
        }
        ZSTD => {
            let decoder =
                zstd::stream::read::Decoder::new(data).map_err(|err| format!("zstd: {err}"))?;
            read_bounded(decoder, limit, "zstd")
        }
        other => Err(format!("unknown compression codec {other}")),
    }
}

fn read_bounded(reader: impl Read, limit: usize, codec: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|err| format!("{codec}: {err}"))?;
    if out.len() > limit {
        return Err(format!("{codec} records inflate past {limit} bytes"));
    }
    Ok(out)
}

fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
        let len = snap::raw::decompress_len(block).map_err(|err| format!("snappy: {err}"))?;
        if out.len().saturating_add(len) > limit {
            return Err(format!("snappy records inflate past {limit} bytes"));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|err| format!("snappy: {err}"))?;
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        raw(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or("snappy: truncated xerial header")?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_at_checked(4)
            .ok_or("snappy: truncated block length")?;
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let (block, tail) = tail
            .split_at_checked(len)
            .ok_or("snappy: truncated block")?;
        raw(block, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_codec_round_trips_and_is_bounded() {
        let data: Vec<u8> = (0..10_000u32).flat_map(|i| (i % 7).to_be_bytes()).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let raw_snappy = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for part in [&data[..20_000], &data[20_000..]] {
            let block = snap::raw::Encoder::new().compress_vec(part).unwrap();
            xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&block);
        }
        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz.write_all(&data).unwrap();
        let (lz, result) = lz.finish();
        result.unwrap();
        let zs = zstd::bulk::compress(&data, 3).unwrap();
        for (codec, bytes) in [
            (NONE, data.clone()),
            (GZIP, gz),
            (SNAPPY, raw_snappy),
            (SNAPPY, xerial),
            (LZ4, lz),
            (ZSTD, zs),
        ] {
            assert_eq!(
                decompress(codec, &bytes, data.len()).unwrap(),
                data,
                "codec {codec}"
            );
            assert!(
                decompress(codec, &bytes, data.len() - 1).is_err(),
                "codec {codec} bounded"
            );
            // Garbage is an error, never a panic.
            let _ = decompress(codec, &bytes[..bytes.len() / 2], data.len());
        }
        assert!(decompress(7, &[], 10).is_err());
    }
}
