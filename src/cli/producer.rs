//! The Kafka producer of the command line tools (`strato produce`, `strato replay
//! --to-bootstrap`): records batched per partition and sent with `acks=all`, one request per
//! leader at a time, so each partition's records land in the order they were added.
//!
//! Partitioning follows Kafka's Java client for keyed records (murmur2 of the key), so a
//! key lands where other producers put it; unkeyed records go round-robin per batch; a
//! caller may also name the partition of each record. A partition whose leader moved
//! (NOT_LEADER_OR_FOLLOWER) is retried after a metadata refresh, a bounded number of times:
//! the broker wrote nothing in that case. An idempotent producer (KIP-98: a producer id
//! from InitProducerId, consecutive sequence numbers per partition) also resends a batch
//! whose answer was lost with the connection: the broker writes it once.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;

use super::cluster::Client;
use super::record_api::{self, OutRecord, ProducerStamp};

/// Records sent in one batch per partition, and bytes of one request: well under Kafka's
/// default `max.message.bytes` (1 MiB) for a batch.
const BATCH_RECORDS_MAX: usize = 1_000;
const BATCH_BYTES_MAX: usize = 512 * 1024;
/// Attempts of one batch while its partition's leader moves (or, idempotent, while its
/// connection fails).
const ATTEMPTS_MAX: u32 = 10;
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Kafka's DUPLICATE_SEQUENCE_NUMBER: the batch was written before (an idempotent resend).
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;

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
pub(super) struct Landed {
    pub(super) first_offset: i64,
    pub(super) last_offset: i64,
    pub(super) records: u64,
}

pub(super) struct Producer {
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
    /// An idempotent producer's id and epoch, and the next sequence of each partition.
    idempotence: Option<(ProducerStamp, BTreeMap<i32, i32>)>,
}

impl Producer {
    /// A producer of `topic` (every record to `fixed_partition` if given), idempotent if
    /// asked.
    pub(super) async fn new(
        client: Client,
        topic: &str,
        fixed_partition: Option<i32>,
        idempotent: bool,
    ) -> anyhow::Result<Self> {
        let mut producer = Self {
            client,
            topic: topic.to_string(),
            leaders: BTreeMap::new(),
            fixed_partition,
            next_unkeyed: 0,
            pending: BTreeMap::new(),
            pending_records: 0,
            pending_bytes: 0,
            landed: BTreeMap::new(),
            idempotence: None,
        };
        producer.refresh().await?;
        if let Some(p) = fixed_partition
            && !producer.leaders.contains_key(&p)
        {
            bail!("topic {topic:?} has no partition {p}");
        }
        if idempotent {
            let options = producer.client.options().clone();
            let stamp =
                super::bench_producer::init_producer_id(producer.client.bootstrap(), &options)
                    .await?;
            producer.idempotence = Some((stamp, BTreeMap::new()));
        }
        Ok(producer)
    }

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

    pub(super) fn partition_count(&self) -> i32 {
        i32::try_from(self.leaders.len()).unwrap_or(i32::MAX).max(1)
    }

    /// Where each partition's records landed so far.
    pub(super) fn landed(&self) -> &BTreeMap<i32, Landed> {
        &self.landed
    }

    /// Adds `record`, to the partition its key (or the round robin) picks.
    pub(super) async fn add(&mut self, record: OutRecord) -> anyhow::Result<()> {
        let partition = match (self.fixed_partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => key_partition(key, self.partition_count()),
            (None, None) => self.next_unkeyed,
        };
        self.add_to(partition, record).await
    }

    /// Adds `record` to partition `partition`.
    pub(super) async fn add_to(&mut self, partition: i32, record: OutRecord) -> anyhow::Result<()> {
        self.pending_bytes +=
            record.key.as_ref().map_or(0, Bytes::len) + record.value.as_ref().map_or(0, Bytes::len);
        self.pending_records += 1;
        self.pending.entry(partition).or_default().push(record);
        if self.pending_records >= BATCH_RECORDS_MAX || self.pending_bytes >= BATCH_BYTES_MAX {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends every pending record, one request per leader, and waits for the answers.
    pub(super) async fn flush(&mut self) -> anyhow::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_records = 0;
        self.pending_bytes = 0;
        self.next_unkeyed = (self.next_unkeyed + 1) % self.partition_count();
        // Encoded once: a resend is the same batch with the same sequence numbers.
        let mut batches: BTreeMap<i32, (Bytes, u64)> = BTreeMap::new();
        for (partition, records) in &pending {
            let stamp = match &self.idempotence {
                Some((stamp, sequences)) => ProducerStamp {
                    base_sequence: sequences.get(partition).copied().unwrap_or(0),
                    ..*stamp
                },
                None => ProducerStamp::NONE,
            };
            let batch = record_api::encode_stamped(records, Compression::None, now_ms(), stamp)?;
            batches.insert(*partition, (batch, records.len() as u64));
        }
        let timeout = self.client.request_timeout();
        let idempotent = self.idempotence.is_some();
        let mut attempt = 1;
        while !batches.is_empty() {
            let mut by_leader: BTreeMap<i32, Vec<(i32, Bytes)>> = BTreeMap::new();
            for (partition, (batch, _)) in &batches {
                let Some(leader) = self.leaders.get(partition) else {
                    bail!(
                        "topic {:?} has no partition {partition} (or it has no leader yet)",
                        self.topic
                    );
                };
                by_leader
                    .entry(*leader)
                    .or_default()
                    .push((*partition, batch.clone()));
            }
            let mut retry = false;
            for (leader, leader_batches) in by_leader {
                let answers = match self.client.node(leader).await {
                    Ok(connection) => {
                        record_api::produce_partitions(
                            connection,
                            &self.topic,
                            leader_batches,
                            timeout,
                        )
                        .await
                    }
                    Err(err) => Err(err),
                };
                let answers = match answers {
                    Ok(answers) => answers,
                    // Resending is safe only when the broker drops what it wrote already.
                    Err(err) if idempotent && err.is_retryable() => {
                        tracing::debug!("produce to node {leader} failed, resending: {err}");
                        retry = true;
                        continue;
                    }
                    Err(err) => return Err(err).context("produce"),
                };
                for (partition, result) in answers {
                    match result {
                        Ok(base_offset) => self.note_landed(&mut batches, partition, base_offset),
                        Err(code) if code.0 == DUPLICATE_SEQUENCE_NUMBER && idempotent => {
                            self.note_landed(&mut batches, partition, -1);
                        }
                        Err(code)
                            if code.is(ResponseError::NotLeaderOrFollower)
                                || code.is(ResponseError::LeaderNotAvailable)
                                || (idempotent && code.is_retryable()) =>
                        {
                            retry = true;
                        }
                        Err(code) => bail!("partition {partition} refused the records: {code}"),
                    }
                }
            }
            if retry {
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

    /// Notes that `partition`'s batch landed at `base_offset` (-1: written before, offset
    /// unknown) and takes it out of `batches`.
    fn note_landed(
        &mut self,
        batches: &mut BTreeMap<i32, (Bytes, u64)>,
        partition: i32,
        base_offset: i64,
    ) {
        let Some((_, count)) = batches.remove(&partition) else {
            return;
        };
        if let Some((_, sequences)) = &mut self.idempotence {
            let next = sequences.entry(partition).or_insert(0);
            // Sequences wrap at i32::MAX (KIP-98).
            *next = next.wrapping_add(count as i32) & i32::MAX;
        }
        let landed = self.landed.entry(partition).or_insert(Landed {
            first_offset: base_offset,
            ..Landed::default()
        });
        if base_offset >= 0 {
            landed.last_offset = base_offset + count as i64 - 1;
        }
        landed.records += count;
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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
}
