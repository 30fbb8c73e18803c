//! `strato segment dump`: a segment object's footer, seek tables and batch headers, as
//! lines or as one JSON document.

use anyhow::Context;
use serde_json::{Value, json};
use strato_tiering::segment::{ChunkEncoding, SegmentDump, dump_segment};

use crate::config::{OutputFormat, SegmentDumpArgs};

pub async fn dump(args: SegmentDumpArgs) -> anyhow::Result<()> {
    let path = std::path::Path::new(&args.object);
    let bytes = if path.is_file() {
        std::fs::read(path).with_context(|| format!("read {}", path.display()))?
    } else {
        let url = args.object_store.clone().unwrap_or_else(|| {
            let dir = std::path::absolute(&args.data_dir).unwrap_or(args.data_dir.clone());
            crate::config::default_object_store_url(&dir)
        });
        let options = strato_tiering::store::StoreOptions {
            s3_endpoint: args.s3_endpoint.clone(),
        };
        let store = strato_tiering::store::open_object_store(&url, &options)?;
        let tier = strato_tiering::Tier::new(
            store,
            strato_tiering::cache::ChunkCache::disabled(),
            Default::default(),
        );
        tier.read_object(&args.object)
            .await
            .with_context(|| format!("read object {}", args.object))?
            .to_vec()
    };
    let dump = dump_segment(&bytes).context("decode segment")?;
    match args.output {
        OutputFormat::Table => print!("{dump}"),
        OutputFormat::Json => println!("{:#}", to_json(&dump)),
    }
    Ok(())
}

fn to_json(dump: &SegmentDump) -> Value {
    let chunks: Vec<Value> = dump
        .chunks
        .iter()
        .map(|chunk| {
            let meta = &chunk.meta;
            let mut out = json!({
                "topic_id": meta.topic_partition.topic_id.to_string(),
                "partition": meta.topic_partition.partition,
                "base_offset": meta.base_offset,
                "last_offset": meta.last_offset,
                "record_count": meta.record_count,
                "max_timestamp": meta.max_timestamp,
                "byte_offset": meta.byte_offset,
                "byte_length": meta.byte_length,
                "uncompressed_length": meta.uncompressed_length,
                "seek_table_length": meta.seek_table_length,
                "encoding": match meta.encoding {
                    ChunkEncoding::Zstd => "zstd",
                    ChunkEncoding::Raw => "raw",
                },
            });
            match &chunk.frames {
                None => {}
                Some(Ok(frames)) => {
                    out["frames"] = frames
                        .iter()
                        .map(|f| {
                            json!({
                                "base_offset": f.base_offset,
                                "last_offset": f.last_offset,
                                "record_count": f.record_count,
                                "max_timestamp": f.max_timestamp,
                                "byte_offset": f.byte_offset,
                                "byte_length": f.byte_length,
                                "uncompressed_length": f.uncompressed_length,
                            })
                        })
                        .collect();
                }
                Some(Err(err)) => out["frames_error"] = json!(err.to_string()),
            }
            match &chunk.batches {
                Ok(batches) => {
                    out["batches"] = batches
                        .iter()
                        .map(|b| {
                            json!({
                                "base_offset": b.base_offset,
                                "last_offset": b.last_offset(),
                                "records": b.records_count,
                                "max_timestamp": b.max_timestamp,
                                "compression": b.compression().to_string(),
                                "producer_id": b.producer_id,
                                "producer_epoch": b.producer_epoch,
                                "base_sequence": b.base_sequence,
                                "transactional": b.is_transactional(),
                            })
                        })
                        .collect();
                }
                Err(err) => out["error"] = json!(err.to_string()),
            }
            out
        })
        .collect();
    json!({ "object_bytes": dump.object_len, "chunks": chunks })
}
