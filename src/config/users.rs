//! Flags of `strato user ...`: SCRAM users written straight into the metadata store, as
//! `kafka-storage format --add-scram` does, so the first administrator exists before any
//! broker accepts a SASL login.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::OutputFormat;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, or replace its password (the mechanisms not named keep theirs).
    ///
    /// The password is read from standard input (a trailing newline is dropped), never from
    /// the command line. With the embedded store the broker must be stopped; with etcd it
    /// works at any time and brokers see the change at the next login.
    ///
    /// Example: `printf '%s' "$ADMIN_PASSWORD" | strato user create admin --password-stdin
    /// --metadata etcd://10.0.0.5:2379/strato/prod`
    Create(UserCreateArgs),
    /// Delete a user and all its credentials (its open connections stay authenticated until
    /// they close or must re-authenticate).
    ///
    /// Example: `strato user delete alice --metadata etcd://10.0.0.5:2379/strato/prod`
    Delete(UserDeleteArgs),
    /// List users and their SCRAM mechanisms.
    ///
    /// Example: `strato user list --output json`
    List(UserListArgs),
}

/// Where the users are stored: the cluster's metadata store.
#[derive(Debug, Clone, Args)]
pub struct MetadataStoreArgs {
    /// Metadata store: `local` (embedded, in --data-dir) or `etcd://host:port[,...][/prefix]`.
    #[arg(long, env = "STRATO_METADATA", default_value = "local")]
    pub metadata: String,
    /// Data directory of the embedded metadata store.
    #[arg(long, env = "STRATO_DATA_DIR", default_value = "./strato-data")]
    pub data_dir: PathBuf,
}

/// SCRAM mechanisms a password is stored for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScramMechanismArg {
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    /// The user name (the principal is `User:<name>`).
    pub name: String,
    /// Read the password from standard input (required: a password is never an argument,
    /// where `ps` and shell history would show it).
    #[arg(long, required = true)]
    pub password_stdin: bool,
    /// Store the password for this mechanism only (default: both).
    #[arg(long, value_enum)]
    pub mechanism: Option<ScramMechanismArg>,
    /// PBKDF2 iterations of the salted password (4096 to 16384, Kafka's bounds).
    #[arg(long, default_value_t = crate::security::scram::ITERATIONS_DEFAULT)]
    pub iterations: u32,
    #[command(flatten)]
    pub store: MetadataStoreArgs,
}

#[derive(Debug, Args)]
pub struct UserDeleteArgs {
    /// The user name.
    pub name: String,
    #[command(flatten)]
    pub store: MetadataStoreArgs,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    #[command(flatten)]
    pub store: MetadataStoreArgs,
    /// Aligned columns for people, or JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}
