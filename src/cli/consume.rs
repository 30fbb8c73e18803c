//! `strato consume`: reads partitions of a topic from their leaders (one Fetch per leader
//! for all its partitions, a long poll of `--max-wait-ms`) and prints each record with a
//! format string or as a JSON line. It stops after `--count` records, at the end the
//! partitions had when it started (`--exit-at-end`), or on Ctrl-C.
//!
//! With `--group` it starts from the group's committed offsets and commits its position
//! when it stops (a standalone commit: it does not join the group).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use serde_json::json;

use super::cluster::{Client, OffsetSpec, TopicPartition};
use super::common::connect;
use super::group_api;
use super::kafka_client::ErrorCode;
use super::record_api::{self, FetchOptions, InRecord};
use crate::config::OutputFormat;
use crate::config::tools::ConsumeArgs;

/// Bytes one fetch may return per partition and in total.
const FETCH_BYTES_MAX: i32 = 4 * 1024 * 1024;
/// Fetch rounds in a row in which a partition's leader is unknown or moving, before giving up.
const LEADER_ATTEMPTS_MAX: u32 = 20;
const LEADER_BACKOFF: Duration = Duration::from_millis(200);

/// One piece of a `--format` string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
}

/// Parses `--format`: `%t %p %o %k %v %T %h %%` and the escapes `\n`, `\t`, `\\`.
fn parse_format(format: &str) -> anyhow::Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        let piece = match c {
            '%' => match chars.next() {
                Some('t') => Piece::Topic,
                Some('p') => Piece::Partition,
                Some('o') => Piece::Offset,
                Some('k') => Piece::Key,
                Some('v') => Piece::Value,
                Some('T') => Piece::Timestamp,
                Some('h') => Piece::Headers,
                Some('%') => {
                    text.push('%');
                    continue;
                }
                other => bail!(
                    "--format: unknown placeholder %{}; use %t %p %o %k %v %T %h or %%",
                    other.map(String::from).unwrap_or_default()
                ),
            },
            '\\' => {
                match chars.next() {
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some('\\') => text.push('\\'),
                    Some(other) => {
                        text.push('\\');
                        text.push(other);
                    }
                    None => text.push('\\'),
                }
                continue;
            }
            c => {
                text.push(c);
                continue;
            }
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(piece);
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn lossy(bytes: &Option<Bytes>) -> String {
    bytes
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn render(pieces: &[Piece], topic: &str, partition: i32, record: &InRecord) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Topic => out.push_str(topic),
            Piece::Partition => out.push_str(&partition.to_string()),
            Piece::Offset => out.push_str(&record.offset.to_string()),
            Piece::Key => out.push_str(&lossy(&record.key)),
            Piece::Value => out.push_str(&lossy(&record.value)),
            Piece::Timestamp => out.push_str(&record.timestamp.to_string()),
            Piece::Headers => {
                let headers: Vec<String> = record
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}={}", lossy(v)))
                    .collect();
                out.push_str(&headers.join(","));
            }
        }
    }
    out
}

/// Bytes as JSON: UTF-8 text under `name`, anything else as hex under `name_hex`.
fn json_bytes(
    object: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
    bytes: &Option<Bytes>,
) {
    match bytes {
        None => {
            object.insert(name.to_string(), serde_json::Value::Null);
        }
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => {
                object.insert(name.to_string(), json!(text));
            }
            Err(_) => {
                let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
                object.insert(format!("{name}_hex"), json!(hex));
            }
        },
    }
}

fn json_line(topic: &str, partition: i32, record: &InRecord) -> String {
    let mut object = serde_json::Map::new();
    object.insert("topic".into(), json!(topic));
    object.insert("partition".into(), json!(partition));
    object.insert("offset".into(), json!(record.offset));
    object.insert("timestamp".into(), json!(record.timestamp));
    json_bytes(&mut object, "key", &record.key);
    json_bytes(&mut object, "value", &record.value);
    let headers: serde_json::Map<String, serde_json::Value> = record
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_ref().map_or(serde_json::Value::Null, |v| {
                    json!(String::from_utf8_lossy(v))
                }),
            )
        })
        .collect();
    object.insert("headers".into(), serde_json::Value::Object(headers));
    let mut line = serde_json::Value::Object(object).to_string();
    line.push('\n');
    line
}

/// Partition -> leader node id, for the partitions read.
async fn leaders(
    client: &mut Client,
    topic: &str,
) -> anyhow::Result<BTreeMap<i32, Result<i32, ErrorCode>>> {
    let layouts = client
        .topic_layouts(&[topic.to_string()])
        .await
        .context("read topic metadata")?;
    match layouts.get(topic) {
        Some(Ok(layout)) => Ok(layout.leaders.clone()),
        Some(Err(code)) => bail!("topic {topic:?}: {code}"),
        None => bail!("topic {topic:?} is not in the metadata"),
    }
}

/// Where each partition starts: the group's committed offset, else --offset, the log start
/// (--from-beginning) or the log end.
async fn start_positions(
    client: &mut Client,
    args: &ConsumeArgs,
    partitions: &[TopicPartition],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let committed = match &args.group {
        Some(group) => group_api::fetch_offsets(client, group)
            .await
            .with_context(|| format!("read the committed offsets of group {group}"))?,
        None => BTreeMap::new(),
    };
    let spec = if args.from_beginning {
        OffsetSpec::Earliest
    } else {
        OffsetSpec::Latest
    };
    let looked_up = if args.offset.is_some() {
        BTreeMap::new()
    } else {
        client
            .list_offsets(partitions, spec)
            .await
            .context("look up start offsets")?
    };
    partitions
        .iter()
        .map(|tp| {
            let offset = match (committed.get(tp), args.offset, looked_up.get(tp)) {
                (Some(committed), _, _) => *committed,
                (None, Some(offset), _) => offset,
                (None, None, Some(Ok(offset))) => *offset,
                (None, None, Some(Err(code))) => bail!("partition {tp}: {code}"),
                (None, None, None) => bail!("partition {tp}: no start offset"),
            };
            Ok((tp.partition, offset))
        })
        .collect()
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let pieces = parse_format(&args.format)?;
    let mut client = connect(&args.client).await?;
    let topic = args.topic.clone();
    let mut layout = leaders(&mut client, &topic).await?;
    let wanted: Vec<i32> = if args.partitions.is_empty() {
        layout.keys().copied().collect()
    } else {
        for p in &args.partitions {
            if !layout.contains_key(p) {
                bail!("topic {topic:?} has no partition {p}");
            }
        }
        args.partitions.clone()
    };
    let partitions: Vec<TopicPartition> = wanted
        .iter()
        .map(|p| TopicPartition::new(topic.clone(), *p))
        .collect();
    let mut positions = start_positions(&mut client, &args, &partitions).await?;
    let ends: BTreeMap<i32, i64> = if args.exit_at_end {
        client
            .list_offsets(&partitions, OffsetSpec::Latest)
            .await
            .context("look up end offsets")?
            .into_iter()
            .map(|(tp, end)| {
                end.map(|end| (tp.partition, end))
                    .map_err(|code| anyhow::anyhow!("partition {tp}: {code}"))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        BTreeMap::new()
    };
    let options = FetchOptions {
        max_wait: Duration::from_millis(args.max_wait_ms),
        bytes_max: FETCH_BYTES_MAX,
    };
    let mut printed: u64 = 0;
    let mut leader_failures = 0;
    let stdout = std::io::stdout();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    'rounds: loop {
        let done = |positions: &BTreeMap<i32, i64>, printed: u64| {
            args.count.is_some_and(|count| printed >= count)
                || (args.exit_at_end
                    && positions
                        .iter()
                        .all(|(p, at)| ends.get(p).is_none_or(|end| at >= end)))
        };
        if done(&positions, printed) {
            break;
        }
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        let mut leaderless = false;
        for (partition, offset) in &positions {
            if args.exit_at_end && ends.get(partition).is_some_and(|end| offset >= end) {
                continue;
            }
            match layout.get(partition) {
                Some(Ok(leader)) => by_leader
                    .entry(*leader)
                    .or_default()
                    .push((*partition, *offset)),
                _ => leaderless = true,
            }
        }
        let mut moved = leaderless;
        for (leader, asked) in by_leader {
            let connection = client.node(leader).await?;
            let fetched = tokio::select! {
                _ = &mut ctrl_c => break 'rounds,
                fetched = record_api::fetch_partitions(connection, &topic, &asked, options) => fetched.context("fetch")?,
            };
            let mut out = stdout.lock();
            for (partition, result) in fetched {
                let data = match result {
                    Ok(data) => data,
                    Err(code) if code.is(ResponseError::OffsetOutOfRange) => bail!(
                        "partition {partition}: offset {} is outside the log ({code})",
                        positions[&partition]
                    ),
                    Err(code) if code.is_retryable() => {
                        moved = true;
                        continue;
                    }
                    Err(code) => bail!("partition {partition}: {code}"),
                };
                let from = positions[&partition];
                let (batches, _) = record_api::complete_batches(&data.records)?;
                for batch in batches {
                    // A batch may hold only control records: the position moves past it.
                    let last = batch_last_offset(&batch);
                    for record in record_api::decode_records(batch, from)? {
                        if args.count.is_some_and(|count| printed >= count) {
                            break;
                        }
                        let text = match args.output {
                            OutputFormat::Json => json_line(&topic, partition, &record),
                            OutputFormat::Table => render(&pieces, &topic, partition, &record),
                        };
                        out.write_all(text.as_bytes())
                            .context("write standard output")?;
                        printed += 1;
                        positions.insert(partition, record.offset + 1);
                    }
                    if args.count.is_none_or(|count| printed < count) {
                        positions.insert(partition, (last + 1).max(positions[&partition]));
                    }
                }
            }
            out.flush().context("write standard output")?;
        }
        if moved {
            leader_failures += 1;
            if leader_failures >= LEADER_ATTEMPTS_MAX {
                bail!("partition leaders of {topic:?} are unavailable; gave up");
            }
            tokio::time::sleep(LEADER_BACKOFF).await;
            layout = leaders(&mut client, &topic).await?;
        } else {
            leader_failures = 0;
        }
    }
    if let Some(group) = &args.group {
        let offsets: BTreeMap<TopicPartition, i64> = positions
            .iter()
            .map(|(p, offset)| (TopicPartition::new(topic.clone(), *p), *offset))
            .collect();
        let results = group_api::commit_offsets(&mut client, group, &offsets)
            .await
            .with_context(|| format!("commit the position of group {group}"))?;
        if let Some((tp, code)) = results.iter().find(|(_, code)| !code.is_ok()) {
            bail!("group {group} did not take the position of {tp}: {code}");
        }
    }
    Ok(())
}

/// The last offset of a whole batch cut by `complete_batches` (base offset + last offset delta).
fn batch_last_offset(batch: &Bytes) -> i64 {
    let base = i64::from_be_bytes(batch[..8].try_into().expect("a batch header"));
    let delta = i32::from_be_bytes(batch[23..27].try_into().expect("a batch header"));
    base + i64::from(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> InRecord {
        InRecord {
            offset: 7,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![("h".to_string(), Some(Bytes::from_static(b"v")))],
        }
    }

    #[test]
    fn formats_render_every_placeholder() {
        let pieces = parse_format("%t/%p@%o %k=%v %T [%h] 100%%\\n").unwrap();
        assert_eq!(
            render(&pieces, "events", 2, &record()),
            "events/2@7 k1=hello 1700000000000 [h=v] 100%\n"
        );
        assert!(parse_format("%x").is_err());
        assert!(parse_format("50%").is_err());
    }

    #[test]
    fn json_lines_keep_binary_values_as_hex() {
        let mut binary = record();
        binary.value = Some(Bytes::from_static(&[0xff, 0x00]));
        binary.key = None;
        let line: serde_json::Value = serde_json::from_str(&json_line("t", 0, &binary)).unwrap();
        assert_eq!(line["value_hex"], "ff00");
        assert!(line["key"].is_null());
        assert_eq!(line["headers"]["h"], "v");
        assert_eq!(line["offset"], 7);
    }
}
