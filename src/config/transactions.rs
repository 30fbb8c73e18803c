//! Flags of `strato transaction list|describe`.

use clap::{Args, Subcommand};

use super::{KafkaClientArgs, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum TransactionCommand {
    /// List the transactional ids every broker coordinates, with their state and producer
    /// id (ListTransactions), like `kafka-transactions.sh list`.
    ///
    /// Example: `strato transaction list --state Ongoing --min-duration-ms 60000`
    List(TransactionListArgs),
    /// Show one transactional id: state, producer id and epoch, timeout, start time and the
    /// partitions of its open transaction (DescribeTransactions at its coordinator).
    ///
    /// Example: `strato transaction describe payments-1`
    Describe(TransactionDescribeArgs),
}

#[derive(Debug, Args)]
pub struct TransactionListArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// Only these states (comma-separated, Kafka's names): Empty, Ongoing, PrepareCommit,
    /// PrepareAbort, CompleteCommit, CompleteAbort.
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    /// Only transactions open for at least this long (ListTransactions v1).
    #[arg(long, value_name = "MS")]
    pub min_duration_ms: Option<i64>,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct TransactionDescribeArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    /// The transactional id.
    pub transactional_id: String,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}
