//! Flags of `strato acl create|list|delete`, modelled on Kafka's `kafka-acls.sh`. They speak
//! the Kafka protocol to `--bootstrap` (CreateAcls, DescribeAcls, DeleteAcls).

use clap::{Args, Subcommand, ValueEnum};

use super::{KafkaClientArgs, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Create ACLs: one per principal, host, operation and resource named. Needs ALTER on the
    /// cluster (or a super user) and a broker started with `--authorizer true`.
    ///
    /// Example: `strato acl create --allow-principal User:alice --operation Read --operation
    /// Describe --topic orders --group billing`
    Create(AclCreateArgs),
    /// List ACLs: all of them, or those of the named resources (`--resource-pattern-type match`:
    /// every ACL that applies to them, wildcards and prefixes included).
    ///
    /// Example: `strato acl list --topic orders --resource-pattern-type match --output json`
    List(AclListArgs),
    /// Delete the ACLs of the named resources: all of them, or only those of the principals,
    /// hosts and operations given. Prints what was deleted.
    ///
    /// Example: `strato acl delete --topic orders --allow-principal User:alice --operation Read`
    Delete(AclDeleteArgs),
}

/// Resource pattern types (`--resource-pattern-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PatternTypeArg {
    /// The exact name (`*`: every name of the type).
    Literal,
    /// Every name that starts with the given one.
    Prefixed,
    /// Filters only: every ACL that applies to the named resource (literal, `*`, prefixes).
    Match,
    /// Filters only: ACLs of any pattern type whose name is exactly the given one.
    Any,
}

/// The resources an ACL command names. Each flag is repeatable.
#[derive(Debug, Clone, Args)]
pub struct AclResourceArgs {
    /// A topic (with `--resource-pattern-type prefixed`, a prefix of topic names; `*`: every
    /// topic).
    #[arg(long, value_name = "NAME")]
    pub topic: Vec<String>,
    /// A consumer group.
    #[arg(long, value_name = "NAME")]
    pub group: Vec<String>,
    /// A transactional id.
    #[arg(long, value_name = "ID")]
    pub transactional_id: Vec<String>,
    /// The cluster (`kafka-cluster`): cluster-wide operations such as creating topics or
    /// managing ACLs.
    #[arg(long)]
    pub cluster: bool,
}

impl AclResourceArgs {
    pub fn is_empty(&self) -> bool {
        self.topic.is_empty()
            && self.group.is_empty()
            && self.transactional_id.is_empty()
            && !self.cluster
    }
}

/// Who, from where, may or may not do what.
#[derive(Debug, Clone, Args)]
pub struct AclEntryArgs {
    /// A principal that is allowed (`User:alice`, `User:*` for everyone). Repeatable.
    #[arg(long, value_name = "PRINCIPAL")]
    pub allow_principal: Vec<String>,
    /// A principal that is denied; a DENY wins over every ALLOW. Repeatable.
    #[arg(long, value_name = "PRINCIPAL")]
    pub deny_principal: Vec<String>,
    /// An IP address the allowed principals may connect from (default `*`: any). Repeatable.
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// An IP address the denied principals are denied from (default `*`: any). Repeatable.
    #[arg(long, value_name = "HOST")]
    pub deny_host: Vec<String>,
    /// An operation, Kafka's names, case-insensitive: Read, Write, Create, Delete, Alter,
    /// Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All.
    /// Repeatable.
    #[arg(long, value_name = "OPERATION")]
    pub operation: Vec<String>,
}

/// What creating and deleting ACLs share: where, which resources, which entries, how shown.
#[derive(Debug, Args)]
pub struct AclChangeArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    #[command(flatten)]
    pub resources: AclResourceArgs,
    #[command(flatten)]
    pub entries: AclEntryArgs,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct AclCreateArgs {
    #[command(flatten)]
    pub change: AclChangeArgs,
    /// How the resource names match: literal or prefixed.
    #[arg(long, value_enum, default_value = "literal")]
    pub resource_pattern_type: PatternTypeArg,
}

#[derive(Debug, Args)]
pub struct AclListArgs {
    #[command(flatten)]
    pub client: KafkaClientArgs,
    #[command(flatten)]
    pub resources: AclResourceArgs,
    /// Only the ACLs of this principal (repeatable).
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: Vec<String>,
    /// How the resource names match (default: literal when a resource is named; every ACL
    /// when none is).
    #[arg(long, value_enum)]
    pub resource_pattern_type: Option<PatternTypeArg>,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct AclDeleteArgs {
    #[command(flatten)]
    pub change: AclChangeArgs,
    /// How the resource names match: literal, prefixed, match (every ACL that applies to the
    /// named resources: use with care) or any.
    #[arg(long, value_enum, default_value = "literal")]
    pub resource_pattern_type: PatternTypeArg,
}
