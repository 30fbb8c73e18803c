//! Flags of `strato replay` (src/cli/replay.rs).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use strato_replay::shard::Shard;

use super::client::ClientSecurityArgs;

/// Which records of transactions a replay gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    /// Committed records only, up to the last stable offset (a Kafka consumer's
    /// `isolation.level=read_committed`).
    ReadCommitted,
    /// Everything up to the high watermark, aborted transactions included.
    ReadUncommitted,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The topic to replay.
    pub topic: String,
    /// Metadata store: `local` (embedded, in --data-dir; the broker must be stopped) or
    /// `etcd://host:port[,...][/prefix]`, as the brokers were started with.
    #[arg(long, env = "STRATO_METADATA", default_value = "local")]
    pub metadata: String,
    /// Object store URL, as the brokers were started with (default:
    /// file://<data-dir>/objects).
    #[arg(long, env = "STRATO_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// S3 endpoint (LocalStack, MinIO); overrides AWS_ENDPOINT_URL.
    #[arg(long, env = "STRATO_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Data directory of the embedded metadata store and default object store.
    #[arg(long, env = "STRATO_DATA_DIR", default_value = "./strato-data")]
    pub data_dir: PathBuf,
    /// Partitions to replay, e.g. `0,3-5` (default: all).
    #[arg(long)]
    pub partitions: Option<String>,
    /// First offset to replay (default: each partition's log start).
    #[arg(long, conflicts_with = "from_time")]
    pub from_offset: Option<i64>,
    /// Replay from the first record of this time on, as ListOffsets by timestamp finds it:
    /// RFC 3339 (`2026-11-01T00:00:00Z`) or milliseconds since the epoch.
    #[arg(long)]
    pub from_time: Option<String>,
    /// Stop before this offset (default: the end when the replay started).
    #[arg(long, conflicts_with = "to_time")]
    pub to_offset: Option<i64>,
    /// Stop before the first record of this time (same forms as --from-time).
    #[arg(long)]
    pub to_time: Option<String>,
    /// Which share of the job this process does, `i/n` (0-based): partitions are cut into
    /// ranges of --shard-records offsets, dealt round robin to the n processes.
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
    /// Offsets per range when sharding: a large partition is shared by several processes.
    #[arg(long, default_value_t = 1_000_000)]
    pub shard_records: u64,
    /// Records of aborted transactions: skipped (read-committed) or included.
    #[arg(long, value_enum, default_value_t = Isolation::ReadCommitted)]
    pub isolation: Isolation,
    /// Write the JSON lines to this file instead of standard output.
    #[arg(long, conflicts_with_all = ["count", "to_bootstrap"])]
    pub output: Option<PathBuf>,
    /// Count records and bytes per partition instead of printing them (one JSON document).
    #[arg(long, conflicts_with = "to_bootstrap")]
    pub count: bool,
    /// Produce the records into this Kafka-protocol cluster (idempotent, acks=all) instead
    /// of printing them; with --to-topic.
    #[arg(long, requires = "to_topic")]
    pub to_bootstrap: Option<String>,
    /// The topic to produce into (it must exist; with as many partitions as the source
    /// unless --repartition).
    #[arg(long, requires = "to_bootstrap")]
    pub to_topic: Option<String>,
    /// Place records by their key's hash (Java client's partitioner) instead of keeping
    /// their partition.
    #[arg(long, requires = "to_bootstrap")]
    pub repartition: bool,
    /// TLS and SASL of the --to-bootstrap cluster.
    #[command(flatten)]
    pub to_security: ClientSecurityArgs,
    /// Longest wait for a connection or a response of the --to-bootstrap cluster.
    #[arg(long, default_value_t = 30_000)]
    pub to_request_timeout_ms: u64,
    /// Ranges read at once (each with its own read-ahead).
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Chunks read ahead per range.
    #[arg(long, default_value_t = 8)]
    pub read_ahead: usize,
    /// Show a progress bar on standard error (default: when it is a terminal).
    #[arg(long)]
    pub progress: Option<bool>,
}
