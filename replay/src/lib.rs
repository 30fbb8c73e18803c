//! Replay straight from the bucket (docs/rfcs/002-replay.md): a topic's records read from the
//! metadata store's index and the object store's chunks, with no broker in the path.
//!
//! [`Replay::open`] finds the topic; [`Replay::snapshot`] reads a partition's state and index
//! (a consistent end: the high watermark of that moment, or its last stable offset for
//! read_committed); [`Replay::read`] gives a [`PartitionReader`] of an offset range of it,
//! whose chunks are read with a bounded read-ahead and decoded off the async threads.
//! [`Replay::offset_for_time`] turns a timestamp into an offset as ListOffsets does, and
//! [`shard::ranges`] splits a job among processes.
//!
//! **Invariant:** a reader yields every record of its range that the snapshot holds exactly
//! once, in offset order, whatever compaction and garbage collection do meanwhile (a chunk
//! whose object is gone makes it read the index again from where it is), or fails naming
//! what it could not read. Nothing here writes to either store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use object_store::ObjectStore;
use strato_metadata::model::{Offset, TopicRecord};
use strato_metadata::{MetadataError, MetadataStore, keys};
use strato_tiering::cache::{ChunkCache, ChunkCacheConfig};
use strato_tiering::{Tier, TierConfig, TieringError};

mod decode;
mod reader;
pub mod shard;
mod snapshot;

pub use decode::{Header, Record, TimestampType};
pub use reader::PartitionReader;
pub use snapshot::PartitionSnapshot;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("topic {0:?} not found")]
    TopicNotFound(String),
    #[error("topic {topic:?} has {partitions} partitions; there is no partition {partition}")]
    NoSuchPartition {
        topic: String,
        partition: i32,
        partitions: i32,
    },
    #[error(
        "offsets {from}..{to} of partition {partition} were deleted (retention) before they \
         were read"
    )]
    Lost {
        partition: i32,
        from: Offset,
        to: Offset,
    },
    #[error(
        "partition {partition}: object {object} is gone and the index still refers to it at \
         offset {offset}"
    )]
    Missing {
        partition: i32,
        object: String,
        offset: Offset,
    },
    #[error("corrupt data in object {object}: {reason}")]
    Corrupt { object: String, reason: String },
    #[error("metadata store: {0}")]
    Metadata(#[from] MetadataError),
    #[error("object store: {0}")]
    Tier(#[from] TieringError),
}

/// How a replay reads.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Spans (whole chunks, or frames of compacted chunks) read ahead per partition.
    pub read_ahead_spans: usize,
    /// Most uncompressed bytes read ahead per partition (at least one span is).
    pub read_ahead_bytes: u64,
    /// Memory for chunks read with their whole object (one GET for all chunks of a small
    /// flush object, the other partitions' readers then find theirs here).
    pub cache_bytes: u64,
    /// Timeouts, retries and request concurrency of object store calls.
    pub tier: TierConfig,
    /// Skip records of aborted transactions and end at the last stable offset (a Kafka
    /// consumer's `isolation.level=read_committed`); otherwise end at the high watermark.
    pub read_committed: bool,
    /// Largest records section a producer-compressed batch may inflate to.
    pub batch_bytes_max: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            read_ahead_spans: 8,
            read_ahead_bytes: 64 << 20,
            cache_bytes: 256 << 20,
            tier: TierConfig::default(),
            read_committed: true,
            batch_bytes_max: 128 << 20,
        }
    }
}

/// What a replay cost, for pricing a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Object store GET requests (retries included).
    pub gets: u64,
    /// Bytes those GETs returned.
    pub get_bytes: u64,
    /// Distinct objects read from.
    pub objects: u64,
    /// Times a reader read the index again because a chunk's object was gone (compaction
    /// swapped it meanwhile).
    pub index_reloads: u64,
}

/// What the readers of one replay share.
pub(crate) struct Shared {
    pub(crate) meta: Arc<dyn MetadataStore>,
    pub(crate) tier: Arc<Tier>,
    pub(crate) topic: TopicRecord,
    pub(crate) options: ReplayOptions,
    /// Objects read from (bounded by the objects the index refers to).
    pub(crate) objects: Mutex<HashSet<String>>,
    pub(crate) index_reloads: std::sync::atomic::AtomicU64,
}

/// A replay of one topic.
#[derive(Clone)]
pub struct Replay {
    shared: Arc<Shared>,
}

impl Replay {
    /// Opens topic `topic` of the cluster whose metadata is in `meta` and whose log is in
    /// `store`.
    pub async fn open(
        meta: Arc<dyn MetadataStore>,
        store: Arc<dyn ObjectStore>,
        topic: &str,
        options: ReplayOptions,
    ) -> Result<Self, ReplayError> {
        let key = keys::topic(topic);
        let record = meta
            .get(&key)
            .await?
            .ok_or_else(|| ReplayError::TopicNotFound(topic.to_string()))?;
        let topic = TopicRecord::decode(&key, &record.value)?;
        let cache = ChunkCache::open(ChunkCacheConfig::memory(options.cache_bytes)).await?;
        let tier = Arc::new(Tier::new(store, cache, options.tier.clone()));
        Ok(Self::with_tier(meta, tier, topic, options))
    }

    /// A replay of `topic` through an existing `tier` (a broker's, with its chunk cache:
    /// the web console reads messages this way). `options.cache_bytes` and `options.tier`
    /// are not used; the stats count the tier's requests of everyone.
    pub fn with_tier(
        meta: Arc<dyn MetadataStore>,
        tier: Arc<Tier>,
        topic: TopicRecord,
        options: ReplayOptions,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                meta,
                tier,
                topic,
                options,
                objects: Mutex::new(HashSet::new()),
                index_reloads: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    pub fn topic(&self) -> &str {
        &self.shared.topic.name
    }

    pub fn partitions(&self) -> i32 {
        self.shared.topic.partitions
    }

    /// Partition `partition`'s state and index now: what a replay of it reads.
    pub async fn snapshot(&self, partition: i32) -> Result<PartitionSnapshot, ReplayError> {
        if !(0..self.partitions()).contains(&partition) {
            return Err(ReplayError::NoSuchPartition {
                topic: self.topic().to_string(),
                partition,
                partitions: self.partitions(),
            });
        }
        snapshot::load(&self.shared, partition).await
    }

    /// The offset of the first record of `snapshot` whose timestamp is at least `timestamp`
    /// (ms), as ListOffsets by timestamp finds it; the snapshot's end when there is none.
    pub async fn offset_for_time(
        &self,
        snapshot: &PartitionSnapshot,
        timestamp: i64,
    ) -> Result<Offset, ReplayError> {
        snapshot::offset_for_time(&self.shared, snapshot, timestamp).await
    }

    /// A reader of the records of `snapshot` from `from` to `to` (exclusive; both clamped
    /// to the snapshot's range).
    pub fn read(&self, snapshot: &PartitionSnapshot, from: Offset, to: Offset) -> PartitionReader {
        PartitionReader::new(self.shared.clone(), snapshot, from, to)
    }

    pub fn stats(&self) -> ReplayStats {
        let tier = self.shared.tier.stats();
        ReplayStats {
            gets: tier.gets,
            get_bytes: tier.get_bytes,
            objects: self.shared.objects.lock().expect("objects lock").len() as u64,
            index_reloads: self
                .shared
                .index_reloads
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}
