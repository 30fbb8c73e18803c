//! `strato produce`: records from standard input (one per line) or `--value` arguments,
//! written with `acks=all` in batches to the partition leaders (`producer.rs`); prints
//! where they landed.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::common::{connect, json_text};
use super::producer::{Landed, Producer};
use super::record_api::OutRecord;
use super::table::render_table;
use super::topic::name_value;
use crate::config::OutputFormat;
use crate::config::tools::ProduceArgs;

/// A line or `--value` as a record: split at the key separator if there is one.
fn record_of(text: &str, args: &ProduceArgs, headers: &[(String, Option<Bytes>)]) -> OutRecord {
    let (key, value) = match (&args.key, &args.key_separator) {
        (Some(key), _) => (Some(key.as_str()), text),
        (None, Some(sep)) => match text.split_once(sep.as_str()) {
            Some((key, value)) => (Some(key), value),
            None => (None, text),
        },
        (None, None) => (None, text),
    };
    OutRecord {
        key: key.map(|k| Bytes::from(k.to_string())),
        value: Some(Bytes::from(value.to_string())),
        headers: headers.to_vec(),
        timestamp: None,
    }
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    if args.key_separator.as_deref() == Some("") {
        bail!("--key-separator must not be empty");
    }
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|h| name_value(h, "--header").map(|(k, v)| (k, Some(Bytes::from(v)))))
        .collect::<anyhow::Result<_>>()?;
    let client = connect(&args.client).await?;
    let mut producer = Producer::new(client, &args.topic, args.partition, false).await?;
    if args.values.is_empty() {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await.context("read standard input")? {
            producer.add(record_of(&line, &args, &headers)).await?;
        }
    } else {
        for value in &args.values {
            producer.add(record_of(value, &args, &headers)).await?;
        }
    }
    producer.flush().await?;
    print!("{}", summary(&args.topic, producer.landed(), args.output));
    Ok(())
}

fn summary(topic: &str, landed: &BTreeMap<i32, Landed>, output: OutputFormat) -> String {
    let total: u64 = landed.values().map(|l| l.records).sum();
    match output {
        OutputFormat::Json => json_text(&json!({
            "topic": topic,
            "records": total,
            "partitions": landed
                .iter()
                .map(|(p, l)| json!({
                    "partition": p,
                    "first_offset": l.first_offset,
                    "last_offset": l.last_offset,
                    "records": l.records,
                }))
                .collect::<Vec<Value>>(),
        })),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = landed
                .iter()
                .map(|(p, l)| {
                    vec![
                        p.to_string(),
                        l.first_offset.to_string(),
                        l.last_offset.to_string(),
                        l.records.to_string(),
                    ]
                })
                .collect();
            format!(
                "produced {total} record(s) to {topic}\n{}",
                render_table(
                    &["PARTITION", "FIRST-OFFSET", "LAST-OFFSET", "RECORDS"],
                    &rows
                )
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let args = ProduceArgs {
            client: crate::config::KafkaClientArgs {
                bootstrap: String::new(),
                request_timeout_ms: 1,
                security: Default::default(),
            },
            topic: "t".to_string(),
            values: Vec::new(),
            key: None,
            key_separator: Some(":".to_string()),
            headers: Vec::new(),
            partition: None,
            output: OutputFormat::Table,
        };
        let record = record_of("user-1:clicked:twice", &args, &[]);
        assert_eq!(record.key.as_deref(), Some(&b"user-1"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"clicked:twice"[..]));
        assert_eq!(record_of("plain", &args, &[]).key, None);
    }
}
