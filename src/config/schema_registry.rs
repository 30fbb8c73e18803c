//! `strato serve` flags of the built-in schema registry: where it listens and how much it
//! keeps.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::Args;

use crate::schema_registry::RegistryLimits;

/// Largest `--schema-registry-max-schema-bytes`: a registration writes the schema (escaped
/// into JSON, so up to twice its size) in one metadata transaction, and etcd takes requests
/// of at most 1.5 MiB by default (`--max-request-bytes`).
const SCHEMA_BYTES_MAX: usize = 512 * 1024;

#[derive(Debug, Clone, Args)]
pub struct SchemaRegistryArgs {
    /// Listen address of the schema registry (Confluent Schema Registry's REST API);
    /// an empty value disables it. Port 0 picks a free port (logged at start-up).
    #[arg(
        long,
        env = "STRATO_SCHEMA_REGISTRY_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub schema_registry_listen: String,

    /// Largest schema text the registry accepts, in bytes (at most 524288).
    #[arg(long, env = "STRATO_SCHEMA_REGISTRY_MAX_SCHEMA_BYTES", default_value_t = RegistryLimits::default().max_schema_bytes)]
    pub schema_registry_max_schema_bytes: usize,

    /// Most subjects the registry holds.
    #[arg(long, env = "STRATO_SCHEMA_REGISTRY_MAX_SUBJECTS", default_value_t = RegistryLimits::default().max_subjects)]
    pub schema_registry_max_subjects: usize,

    /// Most versions of one subject, soft-deleted ones included.
    #[arg(long, env = "STRATO_SCHEMA_REGISTRY_MAX_VERSIONS", default_value_t = RegistryLimits::default().max_versions)]
    pub schema_registry_max_versions: usize,

    /// Most distinct schemas (ids) the registry holds.
    #[arg(long, env = "STRATO_SCHEMA_REGISTRY_MAX_SCHEMAS", default_value_t = RegistryLimits::default().max_schemas)]
    pub schema_registry_max_schemas: usize,

    /// Authentication of the schema registry: `none`, or `basic` (HTTP basic auth with the
    /// SCRAM users of `strato user`; subjects authorized by their topics' ACLs).
    #[arg(
        long,
        env = "STRATO_SCHEMA_REGISTRY_AUTH",
        default_value = "none",
        value_parser = ["none", "basic"]
    )]
    pub schema_registry_auth: String,
}

/// The validated schema registry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRegistryConfig {
    /// None: the registry is disabled.
    pub listen: Option<SocketAddr>,
    pub limits: RegistryLimits,
    /// `--schema-registry-auth basic`.
    pub basic_auth: bool,
}

impl SchemaRegistryArgs {
    pub fn validate(&self) -> anyhow::Result<SchemaRegistryConfig> {
        let listen = match self.schema_registry_listen.trim() {
            "" => None,
            addr => Some(
                addr.parse()
                    .with_context(|| format!("--schema-registry-listen {addr:?}"))?,
            ),
        };
        if !(1..=SCHEMA_BYTES_MAX).contains(&self.schema_registry_max_schema_bytes) {
            bail!("--schema-registry-max-schema-bytes must be between 1 and {SCHEMA_BYTES_MAX}");
        }
        for (flag, value) in [
            (
                "--schema-registry-max-subjects",
                self.schema_registry_max_subjects,
            ),
            (
                "--schema-registry-max-versions",
                self.schema_registry_max_versions,
            ),
            (
                "--schema-registry-max-schemas",
                self.schema_registry_max_schemas,
            ),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        Ok(SchemaRegistryConfig {
            listen,
            basic_auth: self.schema_registry_auth == "basic",
            limits: RegistryLimits {
                max_schema_bytes: self.schema_registry_max_schema_bytes,
                max_subjects: self.schema_registry_max_subjects,
                max_versions: self.schema_registry_max_versions,
                max_schemas: self.schema_registry_max_schemas,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str, schema_bytes: usize) -> SchemaRegistryArgs {
        SchemaRegistryArgs {
            schema_registry_listen: listen.to_string(),
            schema_registry_max_schema_bytes: schema_bytes,
            schema_registry_max_subjects: 1,
            schema_registry_max_versions: 1,
            schema_registry_max_schemas: 1,
            schema_registry_auth: "none".into(),
        }
    }

    #[test]
    fn empty_listen_disables_and_limits_are_checked() {
        assert_eq!(args("", 1).validate().unwrap().listen, None);
        assert_eq!(
            args("127.0.0.1:0", 1).validate().unwrap().listen,
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert!(args("localhost", 1).validate().is_err());
        assert!(args("", 0).validate().is_err());
        assert!(args("", SCHEMA_BYTES_MAX + 1).validate().is_err());
    }
}
