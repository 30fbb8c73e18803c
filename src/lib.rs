//! Strato: a Kafka-compatible broker whose log lives in object storage.
//!
//! Request flow: `connection` (frames) -> `protocol` (decode) -> `broker` (one handler per
//! API) -> `log` (offsets, open segment, flush) -> `strato_tiering` (segments, object store)
//! and `strato_metadata` (commits). `server` wires it together; `main.rs` parses the CLI. `cli` holds the operator
//! commands that talk to a running cluster over the Kafka protocol.

pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod console;
#[doc(hidden)]
pub mod fuzzing;
pub mod group;
pub mod http;
pub mod http_server;
pub mod log;
pub mod metrics;
pub mod producer_ids;
pub mod protocol;
pub mod schema_registry;
pub mod security;
pub mod server;
pub mod topic_config;
pub mod txn;
