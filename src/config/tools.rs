//! Flags of the client commands that work on topics and records: `strato topic ...`,
//! `strato produce` and `strato consume`. They speak the Kafka protocol to `--bootstrap`.

use clap::{Args, Subcommand};

use super::{KafkaClientArgs, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    ///
    /// Example: `strato topic create orders --partitions 6 --config retention.ms=86400000`
    Create(TopicCreateArgs),
    /// List topics with their partition counts.
    ///
    /// Example: `strato topic list --output json`
    List(TopicListArgs),
    /// Show a topic's partitions (leader, log start and end offsets) and its configs
    /// (overrides marked `topic`, the rest `default`).
    ///
    /// Example: `strato topic describe orders`
    Describe(TopicDescribeArgs),
    /// Change a topic: add partitions (never fewer), set or reset configs.
    ///
    /// Configs are changed one by one (IncrementalAlterConfigs): the ones not named keep
    /// their values. Unknown configs and invalid values are refused with the broker's reason.
    ///
    /// Example: `strato topic alter orders --partitions 12 --config retention.ms=3600000
    /// --delete-config max.message.bytes`
    Alter(TopicAlterArgs),
    /// Delete topics (their records go with them). Exits non-zero if any was not deleted.
    ///
    /// Example: `strato topic delete old-orders older-orders`
    Delete(TopicDeleteArgs),
}

#[derive(Debug, Args)]
pub struct TopicCreateArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The topic name (letters, digits, `.`, `_`, `-`; at most 249 characters).
    pub topic: String,
    /// Partition count (default: the broker's --default-partitions).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor; accepted for compatibility, durability comes from the object store.
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// A topic config, NAME=VALUE (repeatable), e.g. `--config cleanup.policy=compact`.
    #[arg(long = "config", value_name = "NAME=VALUE")]
    pub configs: Vec<String>,
    /// Succeed without changes when the topic exists already.
    #[arg(long)]
    pub if_not_exists: bool,
    /// Let the broker check the request without creating anything.
    #[arg(long)]
    pub validate_only: bool,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct TopicListArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct TopicDescribeArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The topic name.
    pub topic: String,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["partitions", "configs", "delete_configs"])
))]
pub struct TopicAlterArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The topic name.
    pub topic: String,
    /// New partition count (larger than the current one).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Set a topic config, NAME=VALUE (repeatable).
    #[arg(long = "config", value_name = "NAME=VALUE")]
    pub configs: Vec<String>,
    /// Return a topic config to its default (repeatable).
    #[arg(long = "delete-config", value_name = "NAME")]
    pub delete_configs: Vec<String>,
    /// Let the broker check the change without applying it.
    #[arg(long)]
    pub validate_only: bool,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct TopicDeleteArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The topic names.
    #[arg(required = true)]
    pub topics: Vec<String>,
    /// Count a topic that does not exist as deleted.
    #[arg(long)]
    pub if_exists: bool,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The topic to write to (it must exist: `strato topic create`).
    pub topic: String,
    /// A record value (repeatable); without it, every line of standard input is a record.
    #[arg(long = "value", value_name = "VALUE")]
    pub values: Vec<String>,
    /// The key of every record.
    #[arg(long, conflicts_with = "key_separator")]
    pub key: Option<String>,
    /// Split each line (or --value) at the first SEP into key and value, e.g. `--key-separator :`
    /// reads `user-1:clicked` as key `user-1`, value `clicked`. A line without SEP has no key.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header of every record, NAME=VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// Write every record to this partition. Otherwise keyed records go where Kafka's Java
    /// client puts them (murmur2 of the key), the others round-robin per batch.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Aligned columns for people, or JSON for scripts (offsets written per partition).
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("start").args(["from_beginning", "offset"])
))]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The topic to read.
    pub topic: String,
    /// Only these partitions (comma-separated or repeated; default: all).
    #[arg(long = "partition", value_delimiter = ',')]
    pub partitions: Vec<i32>,
    /// Start at each partition's first record (default: its end, for new records only).
    #[arg(long)]
    pub from_beginning: bool,
    /// Start at this offset in every partition read.
    #[arg(long)]
    pub offset: Option<i64>,
    /// Stop after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop once every partition is read up to where it ended when the command started.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Start where this consumer group's committed offsets are (partitions without one start
    /// as --from-beginning / --offset / the end say) and commit the position at exit. The
    /// command does not join the group: stop the group's consumers first.
    #[arg(long)]
    pub group: Option<String>,
    /// How each record is printed: %t topic, %p partition, %o offset, %k key, %v value,
    /// %T timestamp (ms), %h headers (k=v,...), %% a percent sign, \n newline, \t tab.
    #[arg(long, default_value = "%v\\n")]
    pub format: String,
    /// Longest time one fetch waits for new records.
    #[arg(long, default_value_t = 500)]
    pub max_wait_ms: u64,
    /// `table`: records printed with --format; `json`: one JSON object per record and line
    /// (values as UTF-8 text, or `value_hex` when they are not).
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}
