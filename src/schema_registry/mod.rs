//! The built-in schema registry: Confluent Schema Registry's REST API
//! (`--schema-registry-listen`, default 127.0.0.1:8081), served by every broker from the
//! metadata store, so there is no other service to deploy.
//!
//! - `api.rs` — routes, query parameters and JSON bodies of the REST API.
//! - `auth.rs` — HTTP basic authentication with the SCRAM users, and authorization of
//!   subjects through their topics' ACLs (`--schema-registry-auth basic`).
//! - `error.rs` — `RegistryError`: the one place errors become Confluent's `error_code`s.
//! - `state.rs` — the in-memory copy of `schema-registry/` that every read is served from.
//! - `store.rs` — `Registry`: writes (ids and versions by compare-and-set), the watch that
//!   keeps the copy current, and the queries behind the API.
//! - `avro.rs` — Avro parsing (with references), the stored text and the identity of a
//!   schema.
//! - `compat.rs` — Avro schema resolution rules: can a reader schema read a writer's data.
//! - `json_schema.rs` — JSON Schema parsing, the stored text and the identity of a schema.
//! - `json_compat/` — JSON Schema compatibility rules (Confluent's, by content model).
//! - `protobuf.rs` — Protobuf parsing and linking (`.proto` text or a serialized
//!   descriptor, imports from references and the well-known files), the stored text and
//!   the identity of a schema.
//! - `protobuf_compat.rs` — Protobuf compatibility rules (Confluent's, by field number).
//!
//! Schema types: AVRO, JSON (JSON Schema) and PROTOBUF.

pub mod api;
pub mod auth;
mod avro;
mod compat;
mod error;
mod json_compat;
mod json_schema;
mod protobuf;
mod protobuf_compat;
mod state;
pub mod store;

use std::fmt;

/// What Produce asks the registry when a topic validates schema ids
/// (`confluent.key.schema.validation`, `confluent.value.schema.validation`).
#[async_trait::async_trait]
pub trait SchemaIds: Send + Sync {
    /// Whether schema `id` is the schema of a live (not deleted) version of `subject`.
    fn registered(&self, subject: &str, id: u32) -> bool;

    /// Reads `subject` again from where the registry is stored, when `registered` said no:
    /// a version registered through another broker a moment ago may not have reached this
    /// one's copy yet.
    async fn refresh(&self, subject: &str);
}

/// Bounds of what the registry keeps (each broker holds all of it in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Largest schema text accepted, in bytes (`--schema-registry-max-schema-bytes`).
    pub max_schema_bytes: usize,
    /// Most subjects (`--schema-registry-max-subjects`).
    pub max_subjects: usize,
    /// Most versions of one subject, soft-deleted ones included
    /// (`--schema-registry-max-versions`).
    pub max_versions: usize,
    /// Most distinct schemas (ids) (`--schema-registry-max-schemas`).
    pub max_schemas: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_schema_bytes: 256 * 1024,
            max_subjects: 10_000,
            max_versions: 1_000,
            max_schemas: 20_000,
        }
    }
}

/// The registry's `schemaType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub fn parse(name: &str) -> Option<SchemaType> {
        match name.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "JSON" => Some(SchemaType::Json),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

/// A compatibility level: which earlier versions a new schema is checked against, and in
/// which direction (BACKWARD: the new schema reads data written with the old ones; FORWARD:
/// the old ones read data written with the new one; FULL: both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub const DEFAULT: Compatibility = Compatibility::Backward;

    pub fn parse(name: &str) -> Option<Compatibility> {
        let level = match name.to_ascii_uppercase().as_str() {
            "NONE" => Compatibility::None,
            "BACKWARD" => Compatibility::Backward,
            "BACKWARD_TRANSITIVE" => Compatibility::BackwardTransitive,
            "FORWARD" => Compatibility::Forward,
            "FORWARD_TRANSITIVE" => Compatibility::ForwardTransitive,
            "FULL" => Compatibility::Full,
            "FULL_TRANSITIVE" => Compatibility::FullTransitive,
            _ => return None,
        };
        Some(level)
    }

    pub fn name(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether every earlier live version is checked, not only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// Whether the new schema must read data written with an old one.
    pub fn checks_backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether an old schema must read data written with the new one.
    pub fn checks_forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The registry's mode. IMPORT (registering with given ids) is not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
    /// Registrations carry their ids (and versions), as exported from another registry,
    /// with no compatibility check: how a registry is migrated with its ids.
    Import,
}

impl Mode {
    pub fn parse(name: &str) -> Option<Mode> {
        match name.to_ascii_uppercase().as_str() {
            "READWRITE" => Some(Mode::ReadWrite),
            "READONLY" => Some(Mode::ReadOnly),
            "IMPORT" => Some(Mode::Import),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }
}

/// A version as a request names it: a number, or the latest live one (`latest`, `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    Latest,
    Number(u32),
}

impl VersionSelector {
    /// Confluent's rule: `latest`, `-1` or 1..=2^31-1.
    pub fn parse(text: &str) -> Option<VersionSelector> {
        if text == "latest" || text == "-1" {
            return Some(VersionSelector::Latest);
        }
        let number: i32 = text.parse().ok()?;
        let number = u32::try_from(number).ok().filter(|n| *n >= 1)?;
        Some(VersionSelector::Number(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_case_insensitively() {
        for level in [
            Compatibility::None,
            Compatibility::Backward,
            Compatibility::BackwardTransitive,
            Compatibility::Forward,
            Compatibility::ForwardTransitive,
            Compatibility::Full,
            Compatibility::FullTransitive,
        ] {
            assert_eq!(Compatibility::parse(level.name()), Some(level));
            assert_eq!(
                Compatibility::parse(&level.name().to_lowercase()),
                Some(level)
            );
        }
        assert_eq!(Compatibility::parse("SIDEWAYS"), None);
        assert_eq!(Mode::parse("readonly"), Some(Mode::ReadOnly));
        assert_eq!(Mode::parse("import"), Some(Mode::Import));
        assert_eq!(Mode::parse("READWRITE_OVERRIDE"), None);
        assert_eq!(SchemaType::parse("avro"), Some(SchemaType::Avro));
    }

    #[test]
    fn versions_follow_confluents_range() {
        assert_eq!(
            VersionSelector::parse("latest"),
            Some(VersionSelector::Latest)
        );
        assert_eq!(VersionSelector::parse("-1"), Some(VersionSelector::Latest));
        assert_eq!(
            VersionSelector::parse("7"),
            Some(VersionSelector::Number(7))
        );
        for bad in ["0", "-2", "2147483648", "x", ""] {
            assert_eq!(VersionSelector::parse(bad), None, "{bad}");
        }
    }
}
