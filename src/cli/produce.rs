//! `strato produce`: records from standard input (one per line) or `--value` arguments,
//! written with `acks=all` in batches to the partition leaders; prints where they landed.
//!
//! Partitioning follows Kafka's Java client for keyed records (murmur2 of the key), so a
//! key lands where other producers put it; unkeyed records go round-robin per batch. A
//! partition whose leader moved (NOT_LEADER_OR_FOLLOWER) is retried after a metadata
//! refresh, a bounded number of times: the broker wrote nothing in that case.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::cluster::Client;
use super::group::{connect, json_text};
use super::record_api::{self, OutRecord};
use super::table::render_table;
use super::topic::name_value;
use crate::config::OutputFormat;
use crate::config::tools::ProduceArgs;

/// Records sent in one batch per partition, and bytes of one request: well under Kafka's
/// default `max.message.bytes` (1 MiB) for a batch.
const BATCH_RECORDS_MAX: usize = 1_000;
const BATCH_BYTES_MAX: usize = 512 * 1024;
/// Attempts of one batch while its partition's leader moves.
const ATTEMPTS_MAX: u32 = 10;
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Kafka's `Utils.murmur2` (MurmurHash2, seed 0x9747b28c), as the Java client's default
/// partitioner uses it for keyed records.
pub(super) fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(first) = tail.first() {
        h ^= u32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record among `partitions` (Java client: positive murmur2 modulo
/// the partition count).
pub(super) fn key_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Where one partition's records landed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Landed {
    first_offset: i64,
    last_offset: i64,
    records: u64,
}

struct Producer {
    client: Client,
    topic: String,
    /// Partition -> leader node id.
    leaders: BTreeMap<i32, i32>,
    fixed_partition: Option<i32>,
    next_unkeyed: i32,
    pending: BTreeMap<i32, Vec<OutRecord>>,
    pending_records: usize,
    pending_bytes: usize,
    landed: BTreeMap<i32, Landed>,
}

impl Producer {
    async fn refresh(&mut self) -> anyhow::Result<()> {
        let layouts = self
            .client
            .topic_layouts(std::slice::from_ref(&self.topic))
            .await?;
        let layout = match layouts.get(&self.topic) {
            Some(Ok(layout)) => layout,
            Some(Err(code)) if code.is(ResponseError::UnknownTopicOrPartition) => bail!(
                "topic {:?} does not exist; create it with `strato topic create`",
                self.topic
            ),
            Some(Err(code)) => bail!("topic {:?}: {code}", self.topic),
            None => bail!("topic {:?} is not in the metadata", self.topic),
        };
        self.leaders = layout
            .leaders
            .iter()
            .filter_map(|(p, leader)| leader.as_ref().ok().map(|l| (*p, *l)))
            .collect();
        Ok(())
    }

    fn partition_count(&self) -> i32 {
        i32::try_from(self.leaders.len()).unwrap_or(i32::MAX).max(1)
    }

    async fn add(&mut self, record: OutRecord) -> anyhow::Result<()> {
        let partition = match (self.fixed_partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => key_partition(key, self.partition_count()),
            (None, None) => self.next_unkeyed,
        };
        self.pending_bytes +=
            record.key.as_ref().map_or(0, Bytes::len) + record.value.as_ref().map_or(0, Bytes::len);
        self.pending_records += 1;
        self.pending.entry(partition).or_default().push(record);
        if self.pending_records >= BATCH_RECORDS_MAX || self.pending_bytes >= BATCH_BYTES_MAX {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends every pending record, one request per leader.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        self.pending_records = 0;
        self.pending_bytes = 0;
        self.next_unkeyed = (self.next_unkeyed + 1) % self.partition_count();
        let timeout = self.client.request_timeout();
        let mut attempt = 1;
        while !pending.is_empty() {
            let mut by_leader: BTreeMap<i32, Vec<(i32, Bytes)>> = BTreeMap::new();
            for (partition, records) in &pending {
                let Some(leader) = self.leaders.get(partition) else {
                    bail!(
                        "topic {:?} has no partition {partition} (or it has no leader yet)",
                        self.topic
                    );
                };
                let batch = record_api::encode_records(records, Compression::None, now_ms())?;
                by_leader
                    .entry(*leader)
                    .or_default()
                    .push((*partition, batch));
            }
            let mut moved = false;
            for (leader, batches) in by_leader {
                let connection = self.client.node(leader).await?;
                let results =
                    record_api::produce_partitions(connection, &self.topic, batches, timeout)
                        .await
                        .context("produce")?;
                for (partition, result) in results {
                    match result {
                        Ok(base_offset) => {
                            let records = pending.remove(&partition).unwrap_or_default();
                            let count = records.len() as u64;
                            let landed = self.landed.entry(partition).or_insert(Landed {
                                first_offset: base_offset,
                                ..Landed::default()
                            });
                            landed.last_offset = base_offset + count as i64 - 1;
                            landed.records += count;
                        }
                        Err(code)
                            if code.is(ResponseError::NotLeaderOrFollower)
                                || code.is(ResponseError::LeaderNotAvailable) =>
                        {
                            moved = true;
                        }
                        Err(code) => bail!("partition {partition} refused the records: {code}"),
                    }
                }
            }
            if moved {
                if attempt >= ATTEMPTS_MAX {
                    bail!("partition leaders kept moving; gave up after {attempt} attempts");
                }
                attempt += 1;
                tokio::time::sleep(RETRY_BACKOFF).await;
                self.refresh().await?;
            }
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

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
    let mut producer = Producer {
        client,
        topic: args.topic.clone(),
        leaders: BTreeMap::new(),
        fixed_partition: args.partition,
        next_unkeyed: 0,
        pending: BTreeMap::new(),
        pending_records: 0,
        pending_bytes: 0,
        landed: BTreeMap::new(),
    };
    producer.refresh().await?;
    if let Some(p) = args.partition
        && !producer.leaders.contains_key(&p)
    {
        bail!("topic {:?} has no partition {p}", args.topic);
    }
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
    print!("{}", summary(&args.topic, &producer.landed, args.output));
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

    /// Kafka's own vectors for `Utils.murmur2` (UtilsTest), so keyed records land where
    /// the Java client puts them.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(murmur2(data), expected, "{}", String::from_utf8_lossy(data));
        }
        assert!((0..4).contains(&key_partition(b"foobar", 4)));
    }

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
