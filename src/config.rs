//! Command line, environment and config-file handling: the only code that reads them.
//!
//! Precedence for `strato serve`: command-line flag, then `STRATO_<NAME>` environment
//! variable, then the TOML file given with `--config`, then the built-in default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use strato_tiering::cache::{DISK_BLOCK_BYTES_DEFAULT, DISK_BLOCKS_MIN};

pub mod acl;
pub mod bench;
pub mod client;
pub mod command_config;
pub mod replay;
pub mod schema_registry;
pub mod security;
pub mod tools;
pub mod transactions;
pub mod users;

const MIB: u64 = 1024 * 1024;
/// `--cache-disk-bytes` when not given and the object store is s3://.
const CACHE_DISK_BYTES_S3_DEFAULT: u64 = 1024 * MIB;
/// `--flush-bytes` on s3:// (fewer PUTs) and on local stores (file://, memory://: no
/// request fee, and a producer's burst of requests is flushed in several smaller flushes,
/// acknowledged sooner: 1 partition produced 290-370 MB/s with 2 MiB against 250-275 with
/// 8 MiB in `strato bench produce`, docs/BENCHMARKS.md).
const FLUSH_BYTES_S3_DEFAULT: u64 = 8 * MIB;
const FLUSH_BYTES_LOCAL_DEFAULT: u64 = 2 * MIB;

#[derive(Debug, Parser)]
#[command(
    name = "strato",
    version,
    about = "Strato: a Kafka-compatible broker whose log lives in object storage",
    long_about = "Strato speaks the Kafka protocol to ordinary Kafka clients and keeps its log in \
                  object storage (zstd-compressed segments) and its metadata in an embedded store \
                  or etcd.\n\nQuick start: `strato serve` runs a single node on 127.0.0.1:9092 with \
                  everything under ./strato-data."
)]
pub struct Cli {
    /// Log output format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "STRATO_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How a flush stores the batches of a chunk (`--flush-compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlushCompression {
    /// As the producer sent them; compaction compresses them (zstd level 3) later.
    None,
    /// zstd level 1 in the flush.
    Zstd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a broker.
    ///
    /// Example: `strato serve --data-dir /var/lib/strato --listen 0.0.0.0:9092
    /// --advertised-address broker1.example.com:9092`
    Serve(Box<ServeArgs>),
    /// Inspect segment objects.
    #[command(subcommand)]
    Segment(SegmentCommand),
    /// List, describe, reset and delete consumer groups.
    ///
    /// Talks to a running cluster over the Kafka protocol, like kafka-consumer-groups.sh.
    ///
    /// Example: `strato group describe my-app --bootstrap broker1.example.com:9092`
    #[command(subcommand)]
    Group(GroupCommand),
    /// Benchmarks of a broker of their own (this executable) or, for produce, consume and
    /// e2e, of a running one.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Inspect the cluster's stored state (reads the metadata and object stores directly).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create, list, describe, alter and delete topics.
    ///
    /// Talks to a running cluster over the Kafka protocol, like kafka-topics.sh and
    /// kafka-configs.sh.
    ///
    /// Example: `strato topic create orders --partitions 3 --bootstrap broker1.example.com:9092`
    #[command(subcommand)]
    Topic(tools::TopicCommand),
    /// Write records to a topic: lines of standard input, or --value arguments.
    ///
    /// Example: `printf 'user-1:clicked\nuser-2:left\n' | strato produce events --key-separator :`
    Produce(tools::ProduceArgs),
    /// Read records of a topic and print them (--format) or JSON lines.
    ///
    /// Example: `strato consume events --from-beginning --count 10 --format '%k %v\n'`
    Consume(tools::ConsumeArgs),
    /// Read a topic straight from the object store and the metadata store, no broker in the
    /// path (a backfill that puts no load on the brokers): JSON lines, a count, or records
    /// produced into another cluster. GETs and bytes read are reported at the end.
    ///
    /// Example: `strato replay orders --metadata etcd://10.0.0.5:2379/strato/prod
    /// --object-store s3://strato/prod --from-time 2026-11-01T00:00:00Z --shard 0/4 > part0.jsonl`
    Replay(Box<replay::ReplayArgs>),
    /// Create, delete and list SASL/SCRAM users (writes the metadata store directly, like
    /// `kafka-storage format --add-scram`; AdminClient's AlterUserScramCredentials does the
    /// same over the Kafka protocol).
    ///
    /// Example: `printf '%s' "$PW" | strato user create alice --password-stdin`
    #[command(subcommand)]
    User(users::UserCommand),
    /// List and describe transactions (ListTransactions, DescribeTransactions), like
    /// kafka-transactions.sh.
    ///
    /// Example: `strato transaction describe payments-1`
    #[command(subcommand)]
    Transaction(transactions::TransactionCommand),
    /// Create, list and delete ACLs (brokers started with `--authorizer true`).
    ///
    /// Talks to a running cluster over the Kafka protocol, like kafka-acls.sh.
    ///
    /// Example: `strato acl create --allow-principal User:alice --operation Write --topic orders`
    #[command(subcommand)]
    Acl(acl::AclCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Brokers, topics and per-partition storage: log start, high watermark, index entries
    /// (metadata keys), bytes and objects; with an object store, the objects no index entry
    /// refers to (garbage not yet collected).
    ///
    /// Example: `strato cluster status --metadata etcd://10.0.0.5:2379/strato/prod
    /// --object-store s3://strato/prod`. With the embedded store (`--metadata local`) the
    /// broker must be stopped: its store file is locked while it runs.
    Status(ClusterStatusArgs),
}

#[derive(Debug, Args)]
pub struct ClusterStatusArgs {
    /// Metadata store: `local` (embedded, in --data-dir) or `etcd://host:port[,...][/prefix]`.
    #[arg(long, env = "STRATO_METADATA", default_value = "local")]
    pub metadata: String,
    /// Object store URL, to count unreferenced objects (default: not read).
    #[arg(long, env = "STRATO_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// S3 endpoint (LocalStack, MinIO); overrides AWS_ENDPOINT_URL.
    #[arg(long, env = "STRATO_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Data directory of the embedded metadata store.
    #[arg(long, env = "STRATO_DATA_DIR", default_value = "./strato-data")]
    pub data_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups, with their state and protocol type.
    ///
    /// Example: `strato group list --state Stable,Empty --output json`
    List(GroupListArgs),
    /// Show a group's members, committed offsets and lag.
    ///
    /// Prints the state, protocol and members of the group, and per partition the committed
    /// offset, the log end offset, the lag and the member it is assigned to.
    ///
    /// Example: `strato group describe my-app`
    Describe(GroupDescribeArgs),
    /// Move a group's committed offsets (a dry run unless --execute).
    ///
    /// Prints the plan and, with --execute, commits it. The group must have no active
    /// members: stop its consumers first.
    ///
    /// Example: `strato group reset-offsets my-app --topic orders:0,1 --to-datetime
    /// 2024-05-01T00:00:00Z --execute`
    ResetOffsets(GroupResetOffsetsArgs),
    /// Delete groups and their committed offsets.
    ///
    /// A group with members is not deleted (NON_EMPTY_GROUP). Exits non-zero if any group
    /// was not deleted.
    ///
    /// Example: `strato group delete old-app older-app`
    Delete(GroupDeleteArgs),
}

/// How to reach the cluster, how to log in and how long to wait for it.
#[derive(Debug, Clone, Args)]
pub struct KafkaClientArgs {
    /// host:port of any broker of the cluster.
    #[arg(long, env = "STRATO_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Longest wait for a connection or for one response.
    #[arg(long, env = "STRATO_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// TLS and SASL, for a secured cluster.
    #[command(flatten)]
    pub security: client::ClientSecurityArgs,
}

/// Output for people (aligned columns) or for scripts (JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct GroupListArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// Only groups in these states (comma-separated, case-insensitive): Stable, Empty,
    /// PreparingRebalance, CompletingRebalance, Dead. Needs a broker with ListGroups v4+.
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct GroupDescribeArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The group id.
    pub group: String,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("scope").required(true).args(["topic", "all_topics"])
))]
#[command(group(
    clap::ArgGroup::new("target")
        .required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])
))]
pub struct GroupResetOffsetsArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The group id.
    pub group: String,
    /// A topic, with all its partitions (`orders`) or some (`orders:0,2`). Repeatable.
    #[arg(long)]
    pub topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// Reset to the log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset (kept within the log's start and end).
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// Reset to the first record at or after this time (RFC 3339, e.g.
    /// 2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00); the log end if none is that recent.
    #[arg(long, value_name = "RFC3339")]
    pub to_datetime: Option<String>,
    /// Move the committed offset by N (negative: back), kept within the log's start and end.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Commit the new offsets; without it only the plan is printed.
    #[arg(long)]
    pub execute: bool,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct GroupDeleteArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The group ids.
    #[arg(required = true)]
    pub groups: Vec<String>,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// Print the footer and every record batch header of a segment object.
    ///
    /// Example: `strato segment dump --data-dir ./strato-data segments/3f/01J....seg`
    /// or `strato segment dump ./strato-data/objects/segments/3f/01J....seg`.
    Dump(SegmentDumpArgs),
}

#[derive(Debug, Args)]
pub struct SegmentDumpArgs {
    /// Object key inside the object store, or a path to a segment file on disk.
    pub object: String,
    /// Object store URL to read the key from (default: file://<data-dir>/objects).
    #[arg(long, env = "STRATO_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// S3 endpoint (LocalStack, MinIO); overrides AWS_ENDPOINT_URL.
    #[arg(long, env = "STRATO_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Data directory whose object store is used when --object-store is not given.
    #[arg(long, env = "STRATO_DATA_DIR", default_value = "./strato-data")]
    pub data_dir: PathBuf,
    /// Lines for people, or one JSON document for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file with any of the options below (keys as the flag names, with `-` or `_`).
    /// Flags and environment variables win over the file.
    #[arg(long, env = "STRATO_CONFIG")]
    pub config: Option<PathBuf>,

    /// Local state: embedded metadata (meta/), local objects (objects/).
    #[arg(long, env = "STRATO_DATA_DIR", default_value = "./strato-data")]
    pub data_dir: PathBuf,

    /// Kafka listener bind address, one PLAINTEXT listener (default 127.0.0.1:9092; see
    /// --listeners for more). Port 0 picks a free port (logged at start-up).
    #[arg(long, env = "STRATO_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// HTTP listener for /metrics, /health, /ready and the web console (/ui/, /api/v1/).
    /// Port 0 picks a free port.
    #[arg(long, env = "STRATO_HTTP_LISTEN", default_value = "127.0.0.1:9644")]
    pub http_listen: SocketAddr,

    /// Path prefix of the web console behind a reverse proxy or ingress that forwards
    /// `<prefix>/...` unchanged, e.g. `/strato`: the console is then at `/strato/ui/` and its
    /// API at `/strato/api/v1/` (and its links say so).
    #[arg(long, env = "STRATO_CONSOLE_BASE_PATH", default_value = "")]
    pub console_base_path: String,

    /// Let the web console create and delete topics and reset consumer groups' offsets
    /// (with the authorizer on, as the user's ACLs allow). Read-only by default.
    #[arg(long, env = "STRATO_CONSOLE_WRITE", default_value_t = false, action = clap::ArgAction::Set)]
    pub console_write: bool,

    /// Serve the HTTP listener (console, /metrics, /health, /ready) over TLS with the
    /// broker's --tls-cert and --tls-key: needed before the console's basic authentication
    /// crosses a network.
    #[arg(long, env = "STRATO_HTTP_TLS", default_value_t = false, action = clap::ArgAction::Set)]
    pub http_tls: bool,

    /// host:port that Metadata responses give to clients (default: the bound listen address);
    /// with --listeners, use --advertised-listeners.
    #[arg(long, env = "STRATO_ADVERTISED_ADDRESS")]
    pub advertised_address: Option<String>,

    #[command(flatten)]
    pub security: security::SecurityArgs,

    #[command(flatten)]
    pub schema_registry: schema_registry::SchemaRegistryArgs,

    /// Metadata store: `local` (embedded, in the data dir) or
    /// `etcd://host:port[,host:port...][/prefix]` (default prefix `/strato/default`).
    #[arg(long, env = "STRATO_METADATA", default_value = "local")]
    pub metadata: String,

    /// Object store URL: `file:///path`, `memory://` or `s3://bucket[/prefix]`
    /// (default: file://<data-dir>/objects). S3 credentials, region and endpoint come from
    /// the usual AWS environment (AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL, ...).
    #[arg(long, env = "STRATO_OBJECT_STORE")]
    pub object_store: Option<String>,

    /// S3 endpoint for S3-compatible stores (LocalStack, MinIO), e.g. http://127.0.0.1:4566;
    /// overrides AWS_ENDPOINT_URL. Requests are path-style.
    #[arg(long, env = "STRATO_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Stable id of this node (default: a new id from the cluster's counter, never one an
    /// earlier broker had)
    #[arg(long, env = "STRATO_BROKER_ID")]
    pub broker_id: Option<i32>,

    /// Rack (availability zone) of this broker, given to clients in Metadata; consumers
    /// that set `client.rack` read from a broker in their own rack (KIP-392).
    #[arg(long, env = "STRATO_RACK")]
    pub rack: Option<String>,

    /// Longest time a produced batch waits before its segment is uploaded
    /// (default: 5 for file:// and memory://, 100 for s3://).
    #[arg(long, env = "STRATO_FLUSH_INTERVAL_MS")]
    pub flush_interval_ms: Option<u64>,

    /// Open-segment size that triggers an upload before the interval ends (default: 2 MiB
    /// for file:// and memory://, where a flush costs no request fee and smaller flushes
    /// answer a producer's burst of requests sooner; 8 MiB for s3://, fewer PUTs).
    #[arg(long, env = "STRATO_FLUSH_BYTES")]
    pub flush_bytes: Option<u64>,

    /// Flush at once (within a millisecond) when no flush is uploading or committing,
    /// instead of waiting for the interval: batches wait for a flush only while another one
    /// is under way (group commit), so a lightly loaded broker answers sooner, and a producer
    /// waiting for acknowledgements is not left waiting for the interval (default: true)
    #[arg(long, env = "STRATO_FLUSH_WHEN_IDLE", action = clap::ArgAction::Set)]
    pub flush_when_idle: Option<bool>,

    /// Open-segment size below which --flush-when-idle waits for the interval after all
    /// (default: 0 for file:// and memory://; half of --flush-bytes for s3://, where every
    /// flush is a paid PUT: at most twice the PUTs of full flushes, and none more at rates
    /// below that size per interval)
    #[arg(long, env = "STRATO_FLUSH_WHEN_IDLE_MIN_BYTES")]
    pub flush_when_idle_min_bytes: Option<u64>,

    /// How flushes store batches the producer did not compress (those it did are always
    /// stored as they came): `none` writes them as they are and leaves compression to
    /// compaction, which rewrites every chunk smaller than half --compaction-target-bytes at
    /// zstd level 3 within --compaction-interval-ms, so the bytes are compressed once instead
    /// of twice (about half the broker CPU per GiB produced); `zstd` compresses them at level 1
    /// in the flush, so fewer bytes are written, and on s3:// PUT, before compaction (default:
    /// none for file:// and memory://, zstd for s3://)
    #[arg(long, env = "STRATO_FLUSH_COMPRESSION", value_enum)]
    pub flush_compression: Option<FlushCompression>,

    /// Segment uploads in flight at once: the next flush uploads while earlier ones are
    /// still on their way, so object store latency costs latency, not throughput (commits
    /// stay in flush order). All of them count in --max-unflushed-bytes.
    #[arg(long, env = "STRATO_FLUSH_UPLOADS_MAX", default_value_t = 4)]
    pub flush_uploads_max: u32,

    /// Create unknown topics on Metadata and Produce requests.
    #[arg(long, env = "STRATO_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Partitions of an auto-created topic (and of CreateTopics with num_partitions = -1).
    #[arg(long, env = "STRATO_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: i32,

    /// Largest request frame accepted; a larger frame closes the connection.
    #[arg(long, env = "STRATO_MAX_REQUEST_BYTES", default_value_t = 100 * MIB)]
    pub max_request_bytes: u64,

    /// Request bytes read from all connections but not yet processed; above it the broker
    /// stops reading requests until earlier ones are processed.
    #[arg(long, env = "STRATO_MAX_QUEUED_REQUEST_BYTES", default_value_t = 512 * MIB)]
    pub max_queued_request_bytes: u64,

    /// Produced bytes accepted but not yet durable; above it produce requests wait.
    #[arg(long, env = "STRATO_MAX_UNFLUSHED_BYTES", default_value_t = 64 * MIB)]
    pub max_unflushed_bytes: u64,

    /// Memory for decompressed chunks served to consumers (0 disables the chunk cache).
    #[arg(long, env = "STRATO_CACHE_MEMORY_BYTES", default_value_t = 256 * MIB)]
    pub cache_memory_bytes: u64,

    /// Local disk for decompressed chunks evicted from memory, under <data-dir>/cache
    /// (0: memory only). Emptied at start-up: it is a cache, not state. Default: 1 GiB for
    /// s3://, 0 for file:// and memory:// (a read of a local segment costs no more than a
    /// read of the disk tier, and filling the tier would write every produced byte twice).
    #[arg(long, env = "STRATO_CACHE_DISK_BYTES")]
    pub cache_disk_bytes: Option<u64>,

    /// Most client connections served at once; more wait in the accept queue.
    #[arg(long, env = "STRATO_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Requests of one connection processed ahead of their in-order responses.
    #[arg(long, env = "STRATO_MAX_INFLIGHT_REQUESTS", default_value_t = 32)]
    pub max_inflight_requests: usize,

    /// Largest Fetch response, whatever the client asks for.
    #[arg(long, env = "STRATO_MAX_FETCH_BYTES", default_value_t = 64 * MIB)]
    pub max_fetch_bytes: u64,

    /// Cold reads: how many fetches' worth of data after what a fetch returns is read
    /// ahead in the background for sequential readers (at most 16 chunks or frames). More
    /// hides more object-store latency but needs more chunk cache per reader
    #[arg(long, env = "STRATO_READ_AHEAD_FETCHES", default_value_t = 2)]
    pub read_ahead_fetches: usize,

    /// Shortest consumer session timeout accepted in JoinGroup (Kafka
    /// `group.min.session.timeout.ms`).
    #[arg(
        long,
        env = "STRATO_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6_000
    )]
    pub group_min_session_timeout_ms: u64,

    /// Longest consumer session timeout accepted (Kafka `group.max.session.timeout.ms`).
    #[arg(
        long,
        env = "STRATO_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000
    )]
    pub group_max_session_timeout_ms: u64,

    /// Longest time from SIGTERM to exit. A drain that has not finished by then (a
    /// dependency unreachable: the final flush or a commit retrying) is abandoned and the
    /// process exits with status 1; acknowledged records are durable already, and
    /// producers retry what was not acknowledged. A second SIGTERM or SIGINT exits at once.
    #[arg(long, env = "STRATO_SHUTDOWN_TIMEOUT_MS", default_value_t = 120_000)]
    pub shutdown_timeout_ms: u64,

    /// How long a new group's first rebalance waits for more members (Kafka
    /// `group.initial.rebalance.delay.ms`); 0 completes it as soon as all have joined.
    #[arg(
        long,
        env = "STRATO_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3_000
    )]
    pub group_initial_rebalance_delay_ms: u64,

    /// Most members in one consumer group (Kafka `group.max.size`).
    #[arg(long, env = "STRATO_GROUP_MAX_SIZE", default_value_t = 1_000)]
    pub group_max_size: usize,

    /// Most consumer groups with members that this broker coordinates at once; a JoinGroup
    /// that would start one more gets COORDINATOR_NOT_AVAILABLE (clients retry) until one
    /// empties. Bounds the coordinator's memory (Strato's own setting)
    #[arg(long, env = "STRATO_GROUP_MAX_GROUPS", default_value_t = 100_000)]
    pub group_max_groups: usize,

    /// How long an idempotent producer's state is kept after its last write (Kafka
    /// `producer.id.expiration.ms`); a producer that writes again later starts afresh.
    #[arg(
        long,
        env = "STRATO_PRODUCER_ID_EXPIRATION_MS",
        default_value_t = 86_400_000
    )]
    pub producer_id_expiration_ms: u64,

    /// How often partition leaders apply `retention.ms` / `retention.bytes` (Kafka
    /// `log.retention.check.interval.ms`).
    #[arg(
        long,
        env = "STRATO_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 300_000
    )]
    pub retention_check_interval_ms: u64,

    /// How often one broker of the cluster deletes segment objects no index entry refers to.
    #[arg(long, env = "STRATO_GC_INTERVAL_MS", default_value_t = 600_000)]
    pub gc_interval_ms: u64,

    /// Age below which an unreferenced segment object is kept (its flush may still be
    /// committing, or a reader may still hold it). A flush whose upload takes more than half
    /// of it is not committed (its producers retry)
    #[arg(long, env = "STRATO_GC_GRACE_MS", default_value_t = 3_600_000)]
    pub gc_grace_ms: u64,

    /// How often partition leaders merge runs of small chunks into bigger per-partition
    /// objects (fewer index entries in the metadata store, fewer GETs on replay).
    #[arg(long, env = "STRATO_COMPACTION_INTERVAL_MS", default_value_t = 60_000)]
    pub compaction_interval_ms: u64,

    /// Uncompressed size a compacted chunk grows to at most.
    #[arg(long, env = "STRATO_COMPACTION_TARGET_BYTES", default_value_t = 64 * MIB)]
    pub compaction_target_bytes: u64,

    /// Longest `transaction.timeout.ms` a transactional producer may ask for (Kafka
    /// `transaction.max.timeout.ms`); a transaction open longer is aborted.
    #[arg(
        long,
        env = "STRATO_TRANSACTION_MAX_TIMEOUT_MS",
        default_value_t = 900_000
    )]
    pub transaction_max_timeout_ms: u64,

    /// Most partitions in one transaction (its state and marker requests are written in one
    /// metadata transaction; etcd allows 128 operations). More: TRANSACTION_ABORTABLE.
    #[arg(long, env = "STRATO_TRANSACTION_MAX_PARTITIONS", default_value_t = 100)]
    pub transaction_max_partitions: usize,

    /// Most open transactions this broker coordinates at once; a transaction that would open
    /// one more gets COORDINATOR_NOT_AVAILABLE (clients retry). Bounds coordinator memory.
    #[arg(long, env = "STRATO_TRANSACTION_MAX_OPEN", default_value_t = 10_000)]
    pub transaction_max_open: usize,

    /// How long a transactional id with no transaction open is remembered after its last
    /// request (Kafka `transactional.id.expiration.ms`); then its record is deleted and the
    /// id starts afresh.
    #[arg(
        long,
        env = "STRATO_TRANSACTIONAL_ID_EXPIRATION_MS",
        default_value_t = 604_800_000
    )]
    pub transactional_id_expiration_ms: u64,

    /// Memory of the key cleaner's map in one pass over a compacted partition (Kafka's
    /// `log.cleaner.dedupe.buffer.size`): up to 64 bytes per distinct key; a partition whose
    /// dirty part has more keys is cleaned over several passes.
    #[arg(long, env = "STRATO_CLEANER_MEMORY_BYTES", default_value_t = 128 * MIB)]
    pub cleaner_memory_bytes: u64,

    /// Compacted chunks are written as zstd frames of about this many uncompressed bytes
    /// with a seek table, so a consumer's fetch reads and caches one frame, not the whole
    /// chunk (one ranged GET per frame on a cold read); at most --compaction-target-bytes
    #[arg(long, env = "STRATO_COMPACTION_FRAME_BYTES", default_value_t = 4 * MIB)]
    pub compaction_frame_bytes: u64,
}

/// The validated broker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `--shutdown-timeout-ms`: from SIGTERM to a forced exit.
    pub shutdown_timeout: Duration,
    pub http_listen: SocketAddr,
    /// The console's path prefix: empty, or `/a/b` (no trailing slash).
    pub console_base_path: String,
    /// Whether the console may create and delete topics and reset offsets.
    pub console_write: bool,
    /// Whether the HTTP listener speaks TLS (with `security.tls`).
    pub http_tls: bool,
    /// Listeners, TLS, SASL, authorizer, connection limits.
    pub security: security::SecurityConfig,
    pub schema_registry: schema_registry::SchemaRegistryConfig,
    pub metadata: MetadataUrl,
    pub object_store_url: String,
    pub s3_endpoint: Option<String>,
    pub broker_id: Option<i32>,
    pub rack: Option<String>,
    pub flush_interval: Duration,
    pub flush_bytes: u64,
    pub flush_when_idle: bool,
    pub flush_when_idle_min_bytes: u64,
    pub flush_compression: FlushCompression,
    pub flush_uploads_max: u32,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub max_request_bytes: u64,
    pub max_queued_request_bytes: u64,
    pub max_unflushed_bytes: u64,
    pub cache_memory_bytes: u64,
    pub cache_disk_bytes: u64,
    /// Directory of the chunk cache's disk tier: `<data-dir>/cache`.
    pub cache_dir: PathBuf,
    pub max_connections: usize,
    pub max_inflight_requests: usize,
    pub max_fetch_bytes: u64,
    pub read_ahead_fetches: usize,
    pub group_limits: crate::group::state::GroupLimits,
    pub producer_id_expiration: Duration,
    pub retention_check_interval: Duration,
    pub gc_interval: Duration,
    pub gc_grace: Duration,
    pub compaction_interval: Duration,
    pub compaction_target_bytes: u64,
    pub compaction_frame_bytes: u64,
    pub cleaner_memory_bytes: u64,
    pub txn_limits: crate::txn::TxnLimits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataUrl {
    Local,
    Etcd(strato_metadata::etcd::EtcdConfig),
}

impl Cli {
    /// Parses the process arguments, folding a `serve --config` file into the values that the
    /// command line and environment left at their defaults.
    pub fn parse_all() -> anyhow::Result<Self> {
        let matches = Self::command().get_matches();
        let mut cli = Self::from_arg_matches(&matches)?;
        if let Command::Serve(args) = &mut cli.command {
            let serve_matches = matches
                .subcommand_matches("serve")
                .expect("serve subcommand matched");
            if let Some(path) = args.config.clone() {
                apply_config_file(args, serve_matches, &path)?;
            }
        }
        Ok(cli)
    }
}

/// The `ServeArgs` fields a config file sets, as three lists (`ServeArgs`, its `security`
/// and its `schema_registry`) handed to the three macros named. One list serves both the
/// file's application and the test that every flag is in it (a flag left out was accepted in
/// a file and silently ignored).
macro_rules! config_file_fields {
    ($serve:ident, $security:ident, $schema_registry:ident) => {
        $serve!(
            data_dir,
            listen,
            http_listen,
            console_base_path,
            console_write,
            http_tls,
            advertised_address,
            metadata,
            object_store,
            s3_endpoint,
            broker_id,
            rack,
            flush_interval_ms,
            flush_bytes,
            flush_when_idle,
            flush_when_idle_min_bytes,
            flush_compression,
            flush_uploads_max,
            auto_create_topics,
            default_partitions,
            max_request_bytes,
            max_queued_request_bytes,
            max_unflushed_bytes,
            cache_memory_bytes,
            cache_disk_bytes,
            max_connections,
            max_inflight_requests,
            max_fetch_bytes,
            read_ahead_fetches,
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            group_initial_rebalance_delay_ms,
            shutdown_timeout_ms,
            group_max_size,
            group_max_groups,
            producer_id_expiration_ms,
            retention_check_interval_ms,
            gc_interval_ms,
            gc_grace_ms,
            compaction_interval_ms,
            compaction_target_bytes,
            compaction_frame_bytes,
            cleaner_memory_bytes,
            transaction_max_timeout_ms,
            transaction_max_partitions,
            transaction_max_open,
            transactional_id_expiration_ms
        );
        $security!(
            listeners,
            advertised_listeners,
            tls_cert,
            tls_key,
            tls_client_ca,
            sasl_mechanisms,
            auth_failure_delay_ms,
            authorizer,
            super_users,
            max_connections_per_ip,
            connections_max_idle_ms,
            connections_max_reauth_ms
        );
        $schema_registry!(
            schema_registry_listen,
            schema_registry_max_schema_bytes,
            schema_registry_max_subjects,
            schema_registry_max_versions,
            schema_registry_max_schemas,
            schema_registry_auth
        );
    };
}

/// Reads `path` and overrides every argument whose value came from clap's default.
fn apply_config_file(
    args: &mut ServeArgs,
    matches: &ArgMatches,
    path: &Path,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read config file {}", path.display()))?;
    let table: BTreeMap<String, toml::Value> =
        toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))?;
    let mut argv = vec!["serve".to_string()];
    for (key, value) in table {
        let id = key.replace('-', "_");
        if id == "config"
            || !ServeArgs::augment_args(clap::Command::new("x"))
                .get_arguments()
                .any(|a| a.get_id() == id.as_str())
        {
            bail!("unknown option {key:?} in config file {}", path.display());
        }
        let from_default = matches!(
            matches.value_source(&id),
            None | Some(ValueSource::DefaultValue)
        );
        if !from_default {
            continue;
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "option {key:?} in {} has unsupported type {other}",
                path.display()
            ),
        };
        argv.push(format!("--{}", id.replace('_', "-")));
        argv.push(value);
    }
    // Re-parse the file's values through clap so they get the same validation as flags.
    let file_matches = ServeArgs::augment_args(clap::Command::new("serve").no_binary_name(false))
        .try_get_matches_from(&argv)
        .with_context(|| format!("invalid value in config file {}", path.display()))?;
    let from_file = ServeArgs::from_arg_matches(&file_matches)?;
    let overridden = |id: &str| file_matches.value_source(id) == Some(ValueSource::CommandLine);
    macro_rules! take {
        ($($field:ident),*) => {$(
            if overridden(stringify!($field)) {
                args.$field = from_file.$field.clone();
            }
        )*};
    }
    macro_rules! take_security {
        ($($field:ident),*) => {$(
            if overridden(stringify!($field)) {
                args.security.$field = from_file.security.$field.clone();
            }
        )*};
    }
    macro_rules! take_schema_registry {
        ($($field:ident),*) => {$(
            if overridden(stringify!($field)) {
                args.schema_registry.$field = from_file.schema_registry.$field.clone();
            }
        )*};
    }
    config_file_fields!(take, take_security, take_schema_registry);
    Ok(())
}

impl ServeArgs {
    /// Checks every value once; a bad value stops the process with a clear message.
    pub fn validate(&self) -> anyhow::Result<Config> {
        let data_dir = if self.data_dir.is_absolute() {
            self.data_dir.clone()
        } else {
            std::env::current_dir()
                .context("read current directory")?
                .join(&self.data_dir)
        };
        let metadata = match self.metadata.as_str() {
            "local" => MetadataUrl::Local,
            other if other.starts_with("etcd://") => MetadataUrl::Etcd(
                strato_metadata::etcd::EtcdConfig::from_url(other)
                    .with_context(|| format!("--metadata {other}"))?,
            ),
            other => bail!("--metadata {other:?}: expected `local` or `etcd://host:port`"),
        };
        let object_store_url = match &self.object_store {
            Some(url) => url.clone(),
            None => default_object_store_url(&data_dir),
        };
        let on_s3 = object_store_url.starts_with("s3://");
        let default_interval_ms = if on_s3 { 100 } else { 5 };
        let flush_bytes = self.flush_bytes.unwrap_or(if on_s3 {
            FLUSH_BYTES_S3_DEFAULT
        } else {
            FLUSH_BYTES_LOCAL_DEFAULT
        });
        let flush_interval_ms = self.flush_interval_ms.unwrap_or(default_interval_ms);
        if flush_interval_ms == 0 || flush_interval_ms > 60_000 {
            bail!("--flush-interval-ms must be between 1 and 60000, got {flush_interval_ms}");
        }
        if flush_bytes < 1024 {
            bail!("--flush-bytes must be at least 1024");
        }
        if !(1..=10_000).contains(&self.default_partitions) {
            bail!("--default-partitions must be between 1 and 10000");
        }
        if self.max_request_bytes < 1024 || self.max_request_bytes > i32::MAX as u64 {
            bail!("--max-request-bytes must be between 1024 and {}", i32::MAX);
        }
        if self.max_queued_request_bytes < self.max_request_bytes
            || self.max_queued_request_bytes > u32::MAX as u64
        {
            bail!(
                "--max-queued-request-bytes must be between --max-request-bytes and {}",
                u32::MAX
            );
        }
        if !(1..=64).contains(&self.flush_uploads_max) {
            bail!(
                "--flush-uploads-max must be between 1 and 64, got {}",
                self.flush_uploads_max
            );
        }
        if self.max_unflushed_bytes < flush_bytes {
            bail!("--max-unflushed-bytes must be at least --flush-bytes");
        }
        if self.max_unflushed_bytes > u32::MAX as u64 {
            bail!("--max-unflushed-bytes must be at most {}", u32::MAX);
        }
        if !(1..=1_000_000).contains(&self.max_connections) || self.max_inflight_requests == 0 {
            bail!("--max-connections must be 1..=1000000 and --max-inflight-requests positive");
        }
        let disk_bytes_min = DISK_BLOCKS_MIN * DISK_BLOCK_BYTES_DEFAULT;
        let cache_disk_bytes = self.cache_disk_bytes.unwrap_or(
            if object_store_url.starts_with("s3://") && self.cache_memory_bytes > 0 {
                CACHE_DISK_BYTES_S3_DEFAULT
            } else {
                0
            },
        );
        if cache_disk_bytes != 0 && cache_disk_bytes < disk_bytes_min {
            bail!(
                "--cache-disk-bytes must be 0 (no disk tier) or at least {disk_bytes_min} ({DISK_BLOCKS_MIN} blocks of {DISK_BLOCK_BYTES_DEFAULT} bytes)"
            );
        }
        if cache_disk_bytes != 0 && self.cache_memory_bytes == 0 {
            bail!(
                "--cache-disk-bytes needs --cache-memory-bytes: the disk tier holds chunks evicted from memory"
            );
        }
        if self.group_min_session_timeout_ms == 0
            || self.group_min_session_timeout_ms > self.group_max_session_timeout_ms
        {
            bail!(
                "--group-min-session-timeout-ms must be positive and at most --group-max-session-timeout-ms"
            );
        }
        if self.group_initial_rebalance_delay_ms > 300_000 {
            bail!("--group-initial-rebalance-delay-ms must be at most 300000");
        }
        // A flush whose upload takes more than half the grace is not committed (see
        // log/gc.rs), so the grace must be well above upload times: seconds at least.
        if self.http_tls && (self.security.tls_cert.is_none() || self.security.tls_key.is_none()) {
            bail!("--http-tls needs --tls-cert and --tls-key");
        }
        let console_base_path = self.console_base_path.trim_end_matches('/').to_string();
        if !console_base_path.is_empty()
            && (!console_base_path.starts_with('/')
                || !console_base_path[1..].split('/').all(|s| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
                }))
        {
            bail!(
                "--console-base-path must be a path like /strato (letters, digits, -._~ between slashes)"
            );
        }
        if self.gc_grace_ms < 1_000 || self.gc_interval_ms < 10 {
            bail!("--gc-grace-ms must be at least 1000 and --gc-interval-ms at least 10");
        }
        // A compacted chunk must stay below the segment format's chunk limit.
        if self.compaction_interval_ms < 10
            || !(MIB..=strato_tiering::segment::CHUNK_UNCOMPRESSED_MAX)
                .contains(&self.compaction_target_bytes)
        {
            bail!(
                "--compaction-interval-ms must be at least 10 and --compaction-target-bytes between 1 MiB and 256 MiB"
            );
        }
        if self.read_ahead_fetches > 16 {
            bail!("--read-ahead-fetches must be at most 16");
        }
        if self.compaction_frame_bytes < 1024 {
            bail!("--compaction-frame-bytes must be at least 1024");
        }
        if self.cleaner_memory_bytes < 64 * 1024 {
            bail!("--cleaner-memory-bytes must be at least 65536 (1024 keys)");
        }
        if self.retention_check_interval_ms < 10 {
            bail!("--retention-check-interval-ms must be at least 10");
        }
        if self.producer_id_expiration_ms < 1_000 {
            bail!("--producer-id-expiration-ms must be at least 1000");
        }
        if !(1_000..=3_600_000).contains(&self.shutdown_timeout_ms) {
            bail!("--shutdown-timeout-ms must be between 1000 and 3600000");
        }
        if !(1..=100_000).contains(&self.group_max_size) {
            bail!("--group-max-size must be between 1 and 100000");
        }
        if !(1..=10_000_000).contains(&self.group_max_groups) {
            bail!("--group-max-groups must be between 1 and 10000000");
        }
        let group_limits = crate::group::state::GroupLimits {
            min_session_timeout: Duration::from_millis(self.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(self.group_max_session_timeout_ms),
            initial_rebalance_delay: Duration::from_millis(self.group_initial_rebalance_delay_ms),
            max_members: self.group_max_size,
            max_groups: self.group_max_groups,
            max_member_metadata_bytes: GROUP_MEMBER_METADATA_BYTES_MAX,
        };
        let advertised_address = match &self.advertised_address {
            None => None,
            Some(addr) => Some(parse_host_port(addr)?),
        };
        let security = self.security.validate(self.listen, advertised_address)?;
        let schema_registry = self.schema_registry.validate()?;
        // One metadata transaction holds the state and a marker request per partition.
        const TRANSACTION_PARTITIONS_MAX: usize = 120;
        if !(1_000..=i32::MAX as u64).contains(&self.transaction_max_timeout_ms) {
            bail!(
                "--transaction-max-timeout-ms must be between 1000 and {}",
                i32::MAX
            );
        }
        if !(1..=TRANSACTION_PARTITIONS_MAX).contains(&self.transaction_max_partitions) {
            bail!(
                "--transaction-max-partitions must be between 1 and {TRANSACTION_PARTITIONS_MAX}"
            );
        }
        if self.transactional_id_expiration_ms < 1_000 {
            bail!("--transactional-id-expiration-ms must be at least 1000");
        }
        if !(1..=1_000_000).contains(&self.transaction_max_open) {
            bail!("--transaction-max-open must be between 1 and 1000000");
        }
        let txn_limits = crate::txn::TxnLimits {
            max_timeout_ms: i32::try_from(self.transaction_max_timeout_ms).expect("checked above"),
            max_partitions: self.transaction_max_partitions,
            max_open: self.transaction_max_open,
            id_expiration_ms: i64::try_from(self.transactional_id_expiration_ms)
                .unwrap_or(i64::MAX),
        };
        let cache_dir = data_dir.join("cache");
        Ok(Config {
            data_dir,
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
            http_listen: self.http_listen,
            console_base_path,
            console_write: self.console_write,
            http_tls: self.http_tls,
            security,
            schema_registry,
            metadata,
            object_store_url,
            s3_endpoint: self.s3_endpoint.clone(),
            broker_id: self.broker_id,
            rack: self.rack.clone(),
            flush_interval: Duration::from_millis(flush_interval_ms),
            flush_bytes,
            flush_when_idle: self.flush_when_idle.unwrap_or(true),
            flush_when_idle_min_bytes: self.flush_when_idle_min_bytes.unwrap_or(if on_s3 {
                flush_bytes / 2
            } else {
                0
            }),
            flush_compression: self.flush_compression.unwrap_or(if on_s3 {
                FlushCompression::Zstd
            } else {
                FlushCompression::None
            }),
            flush_uploads_max: self.flush_uploads_max,
            auto_create_topics: self.auto_create_topics,
            default_partitions: self.default_partitions,
            max_request_bytes: self.max_request_bytes,
            max_queued_request_bytes: self.max_queued_request_bytes,
            max_unflushed_bytes: self.max_unflushed_bytes,
            cache_memory_bytes: self.cache_memory_bytes,
            cache_disk_bytes,
            cache_dir,
            max_connections: self.max_connections,
            max_inflight_requests: self.max_inflight_requests,
            max_fetch_bytes: self.max_fetch_bytes.clamp(1024, i32::MAX as u64),
            read_ahead_fetches: self.read_ahead_fetches,
            group_limits,
            producer_id_expiration: Duration::from_millis(self.producer_id_expiration_ms),
            retention_check_interval: Duration::from_millis(self.retention_check_interval_ms),
            gc_interval: Duration::from_millis(self.gc_interval_ms),
            gc_grace: Duration::from_millis(self.gc_grace_ms),
            compaction_interval: Duration::from_millis(self.compaction_interval_ms),
            compaction_target_bytes: self.compaction_target_bytes,
            compaction_frame_bytes: self
                .compaction_frame_bytes
                .min(self.compaction_target_bytes),
            cleaner_memory_bytes: self.cleaner_memory_bytes,
            txn_limits,
        })
    }
}

/// Protocol metadata (subscriptions) per JoinGroup member and assignment per member: 1 MiB
/// is far above what consumer assignors produce for thousands of partitions.
const GROUP_MEMBER_METADATA_BYTES_MAX: usize = 1024 * 1024;

fn parse_host_port(addr: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("address {addr:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("address {addr:?} has a bad port"))?;
    if host.is_empty() || port == 0 {
        bail!("address {addr:?} needs a host and a non-zero port");
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The object store of a data directory when `--object-store` is not given: its `objects/`.
pub fn default_object_store_url(data_dir: &std::path::Path) -> String {
    format!("file://{}", data_dir.join("objects").display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> (ServeArgs, ArgMatches) {
        let mut argv = vec!["strato", "serve"];
        argv.extend_from_slice(args);
        let matches = Cli::command().try_get_matches_from(argv).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("serve")
        };
        let sub = matches.subcommand_matches("serve").unwrap().clone();
        (*serve, sub)
    }

    #[test]
    fn console_base_paths_are_checked_and_normalized() {
        let base = |arg: &str| {
            serve(&["--console-base-path", arg])
                .0
                .validate()
                .map(|c| c.console_base_path)
        };
        assert_eq!(base("").unwrap(), "");
        assert_eq!(base("/strato/").unwrap(), "/strato");
        assert_eq!(base("/a/b-c.d").unwrap(), "/a/b-c.d");
        for bad in ["strato", "/a//b", "/a b", "/<x>", "/a?b"] {
            assert!(base(bad).is_err(), "{bad}");
        }
        let err = serve(&["--http-tls", "true"]).0.validate().unwrap_err();
        assert!(err.to_string().contains("--tls-cert"), "{err}");
    }

    #[test]
    fn defaults_follow_design() {
        let (args, _) = serve(&[]);
        let config = args.validate().unwrap();
        assert_eq!(config.security.listeners.len(), 1);
        assert_eq!(
            config.security.listeners[0].bind.to_string(),
            "127.0.0.1:9092"
        );
        assert!(!config.security.authorizer);
        assert_eq!(config.flush_interval, Duration::from_millis(5));
        assert_eq!(config.flush_bytes, 2 * MIB);
        assert!(config.flush_when_idle, "local stores flush when idle");
        assert_eq!(config.flush_when_idle_min_bytes, 0);
        assert_eq!(
            config.flush_compression,
            FlushCompression::None,
            "compaction compresses local chunks"
        );
        assert!(config.auto_create_topics);
        assert!(config.object_store_url.starts_with("file:///"));
        assert!(config.object_store_url.ends_with("strato-data/objects"));
        assert_eq!(config.cache_memory_bytes, 256 * MIB);
        // A local object store gets no disk tier: reading its segments is as cheap.
        assert_eq!(config.cache_disk_bytes, 0);
        assert!(config.cache_dir.ends_with("strato-data/cache"));
    }

    #[test]
    fn s3_gets_a_disk_tier_and_a_longer_flush_interval_by_default() {
        let (args, _) = serve(&["--object-store", "s3://bucket/prefix"]);
        let config = args.validate().unwrap();
        assert_eq!(config.cache_disk_bytes, 1024 * MIB);
        assert_eq!(config.flush_interval, Duration::from_millis(100));
        assert_eq!(config.flush_bytes, 8 * MIB);
        assert!(config.flush_when_idle);
        assert_eq!(
            config.flush_when_idle_min_bytes,
            4 * MIB,
            "every flush on S3 is a paid PUT: idle flushes of at least half a full one"
        );
        assert_eq!(config.flush_compression, FlushCompression::Zstd);
        let (args, _) = serve(&["--object-store", "s3://bucket", "--cache-disk-bytes", "0"]);
        assert_eq!(args.validate().unwrap().cache_disk_bytes, 0);
        let (args, _) = serve(&["--cache-disk-bytes", "67108864"]);
        assert_eq!(args.validate().unwrap().cache_disk_bytes, 64 * MIB);
    }

    /// Every `serve` flag can be set in a config file: a flag missing from
    /// `config_file_fields!` was accepted there and silently ignored (it happened to
    /// `--flush-compression`).
    #[test]
    fn a_config_file_can_set_every_serve_flag() {
        let mut listed: Vec<&str> = Vec::new();
        macro_rules! names {
            ($($field:ident),*) => {
                listed.extend([$(stringify!($field)),*]);
            };
        }
        config_file_fields!(names, names, names);
        let ids: Vec<String> = ServeArgs::augment_args(clap::Command::new("x"))
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| id != "config")
            .collect();
        assert!(ids.len() > 50, "the flags are listed: {ids:?}");
        let missing: Vec<&String> = ids
            .iter()
            .filter(|id| !listed.contains(&id.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "flags a config file would accept and ignore: {missing:?}"
        );
    }

    #[test]
    fn config_file_fills_defaults_but_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strato.toml");
        std::fs::write(
            &path,
            "flush-interval-ms = 50\nflush-when-idle = false\nflush-compression = \"zstd\"\ndefault_partitions = 4\nauto-create-topics = false\nlisten = \"127.0.0.1:1234\"\nschema-registry-auth = \"basic\"\n",
        )
        .unwrap();
        let path_str = path.to_str().unwrap();
        let (mut args, matches) = serve(&["--config", path_str, "--listen", "127.0.0.1:999"]);
        apply_config_file(&mut args, &matches, &path).unwrap();
        let config = args.validate().unwrap();
        assert_eq!(config.flush_interval, Duration::from_millis(50));
        assert!(!config.flush_when_idle);
        assert_eq!(config.flush_compression, FlushCompression::Zstd);
        assert_eq!(config.default_partitions, 4);
        assert!(!config.auto_create_topics);
        assert!(
            config.schema_registry.basic_auth,
            "the registry's authentication is not left off"
        );
        assert_eq!(
            config.security.listeners[0].bind.to_string(),
            "127.0.0.1:999",
            "flag wins"
        );
    }

    #[test]
    fn security_flags_are_checked_together() {
        let (args, _) = serve(&[
            "--listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
            "--advertised-listeners",
            "SASL_SSL://b1.example.com:9093",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--super-users",
            "User:admin; User:ops",
            "--sasl-mechanisms",
            "PLAIN,SCRAM-SHA-512,PLAIN",
            "--connections-max-reauth-ms",
            "60000",
        ]);
        let security = args.validate().unwrap().security;
        assert_eq!(security.listeners.len(), 2);
        assert_eq!(security.listeners[0].advertised, None);
        assert_eq!(
            security.listeners[1].advertised,
            Some(("b1.example.com".to_string(), 9093))
        );
        assert_eq!(security.super_users.len(), 2);
        assert_eq!(security.super_users[1].to_string(), "User:ops");
        assert_eq!(security.sasl_mechanisms.len(), 2, "duplicates dropped");
        assert_eq!(
            security.connections_max_reauth,
            Some(Duration::from_secs(60))
        );
        for (flags, message) in [
            (
                &["--listen", "127.0.0.1:1", "--listeners", "PLAINTEXT://:1"][..],
                "--listen and --listeners",
            ),
            (
                &["--advertised-listeners", "PLAINTEXT://h:1"],
                "needs --listeners",
            ),
            (&["--listeners", "SSL://127.0.0.1:0"], "--tls-cert"),
            (&["--tls-cert", "c.pem"], "go together"),
            (&["--tls-client-ca", "ca.pem"], "--tls-client-ca needs"),
            (
                &[
                    "--listeners",
                    "PLAINTEXT://127.0.0.1:0",
                    "--advertised-listeners",
                    "SSL://h:1",
                ],
                "no SSL listener",
            ),
            (&["--sasl-mechanisms", "GSSAPI"], "unknown mechanism"),
            (
                &[
                    "--listeners",
                    "SASL_PLAINTEXT://127.0.0.1:0",
                    "--sasl-mechanisms",
                    "",
                ],
                "at least one",
            ),
            (&["--super-users", "admin"], "not a principal"),
            (&["--connections-max-reauth-ms", "10"], "at least 1000"),
            (&["--max-connections-per-ip", "0"], "positive"),
        ] {
            let (args, _) = serve(flags);
            let err = format!("{:#}", args.validate().unwrap_err());
            assert!(err.contains(message), "{flags:?}: {err}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let (args, _) = serve(&["--flush-interval-ms", "0"]);
        assert!(args.validate().is_err());
        let (args, _) = serve(&["--flush-uploads-max", "0"]);
        assert!(args.validate().is_err());
        let (args, _) = serve(&["--metadata", "zookeeper://x"]);
        assert!(args.validate().is_err());
        let (args, _) = serve(&["--advertised-address", "nohost"]);
        assert!(args.validate().is_err());
        let (args, _) = serve(&["--cache-disk-bytes", "1048576"]);
        assert!(
            args.validate().is_err(),
            "a disk tier of less than 4 blocks"
        );
        let (args, _) = serve(&[
            "--cache-memory-bytes",
            "0",
            "--cache-disk-bytes",
            "67108864",
        ]);
        assert!(
            args.validate().is_err(),
            "a disk tier without a memory tier"
        );
        let (args, _) = serve(&["--cache-memory-bytes", "0", "--object-store", "s3://b"]);
        assert_eq!(
            args.validate().unwrap().cache_disk_bytes,
            0,
            "no default disk tier without a memory tier"
        );
        let (args, _) = serve(&["--cache-memory-bytes", "0", "--cache-disk-bytes", "0"]);
        assert!(args.validate().is_ok(), "no chunk cache at all");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strato.toml");
        std::fs::write(&path, "no-such-option = 1\n").unwrap();
        let (mut args, matches) = serve(&[]);
        assert!(apply_config_file(&mut args, &matches, &path).is_err());
    }
}
