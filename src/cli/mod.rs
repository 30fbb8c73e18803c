//! The operator CLI's cluster commands (`strato group ...`, `strato topic ...`, `strato
//! produce`, `strato consume`) and benchmarks (`strato bench ...`). They reach brokers only
//! through the Kafka protocol (`kafka_client`), never through the metadata store, so they
//! work against any Kafka-compatible cluster and see exactly what clients see. The
//! exceptions read or write the stores directly: `strato cluster status` (read-only) shows
//! what the protocol cannot (index entries, bytes and garbage), `strato segment dump`
//! (read-only) reads one segment object, and `strato user` makes SCRAM users before anyone
//! can log in.

pub mod acl;
pub mod acl_api;
pub mod bench;
mod bench_broker;
mod bench_common;
mod bench_latency;
mod bench_load;
mod bench_load_report;
mod bench_pipeline;
mod bench_producer;
mod bench_replay;
pub mod cluster;
pub mod cluster_status;
mod common;
pub mod consume;
pub mod group;
pub mod group_api;
pub mod group_reset;
pub mod kafka_client;
pub mod produce;
mod producer;
pub mod record_api;
pub mod replay;
pub mod segment;
pub mod table;
pub mod topic;
pub mod topic_api;
pub mod transaction;
pub mod user;
