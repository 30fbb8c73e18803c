//! Request handlers: one file per Kafka API. A handler receives a decoded request and the
//! `BrokerCtx` and returns a response; writing to the socket is `connection.rs`'s job.
//!
//! Handlers are split in two phases so a connection can pipeline: the admission phase
//! (awaited in request order: offsets are assigned here) returns a [`Reply`] whose future
//! completes later (a produce waiting for its flush, a fetch in a long poll). Responses are
//! still written in request order.

use std::sync::Arc;

use futures::future::BoxFuture;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use strato_metadata::MetadataStore;
use strato_tiering::Tier;

use crate::config::Config;
use crate::log::flush::LogWriter;
use crate::log::topics::TopicRegistry;
use crate::producer_ids::ProducerIdAllocator;
use crate::protocol::{self, Request};
use crate::security::Session;

mod acls;
mod alter_configs;
mod broker_config;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod describe_producers;
mod elect_leaders;
pub mod error;
mod fetch;
mod group;
mod init_producer_id;
mod list_offsets;
mod metadata;
pub mod metrics_page;
mod offset_for_leader_epoch;
mod produce;
pub(crate) mod record_codec;
mod sasl;
mod txn;
mod users;

/// Everything a handler may use.
pub struct BrokerCtx {
    pub config: Config,
    pub broker_id: i32,
    pub cluster_id: String,
    /// Live brokers and who owns which partition and group.
    pub cluster: Arc<crate::cluster::ClusterView>,
    /// This broker's registration: its advertised address on every listener.
    pub registration: strato_metadata::model::BrokerRecord,
    pub meta: Arc<dyn MetadataStore>,
    pub tier: Arc<Tier>,
    pub topics: Arc<TopicRegistry>,
    pub log: Arc<LogWriter>,
    /// Garbage collection counters.
    pub gc: Arc<crate::log::gc::GcStats>,
    /// Views of partitions other brokers lead, for reads served here (KIP-392).
    pub replicas: crate::log::replica::ReplicaViews,
    pub producer_ids: Arc<ProducerIdAllocator>,
    /// Transaction coordination for the transactional ids this broker owns.
    pub txns: Arc<crate::txn::TxnCoordinator>,
    pub groups: Arc<crate::group::GroupCoordinator>,
    /// Whether a session may do what it asks (ACLs, super users, `--authorizer`).
    pub authorizer: Arc<crate::security::authorizer::Authorizer>,
    /// The schema registry's in-memory copy, for Produce's schema id validation
    /// (kept current whether or not this broker serves the registry's REST API).
    pub schemas: Arc<dyn crate::schema_registry::SchemaIds>,
    /// Bytes of request frames read but not yet admitted, across all connections.
    pub request_memory: Arc<tokio::sync::Semaphore>,
    /// TLS of SSL and SASL_SSL listeners (`None` without --tls-cert).
    pub tls: Option<Arc<crate::security::tls::Tls>>,
    /// Open connections per client address (`--max-connections-per-ip`).
    pub connections_per_ip: Arc<crate::security::limits::ConnectionsPerIp>,
    /// Open Kafka client connections (for metrics).
    pub open_connections: std::sync::atomic::AtomicU64,
    /// Source of connection ids (connection-scoped request ids in logs).
    pub next_connection_id: std::sync::atomic::AtomicU64,
    /// Whether the broker's registration lease is being kept alive (`/ready`, metrics);
    /// written by the keep-alive task only.
    pub lease_held: std::sync::atomic::AtomicBool,
    pub metrics: crate::metrics::BrokerMetrics,
}

/// The outcome of a request's admission phase.
pub enum Reply {
    Now(Option<Box<ResponseKind>>),
    Later(BoxFuture<'static, Option<ResponseKind>>),
}

fn now(response: ResponseKind) -> Reply {
    Reply::Now(Some(Box::new(response)))
}

/// Why a request could not be handled at all: the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("{0:?} is decoded but has no handler")]
    Unhandled(kafka_protocol::messages::ApiKey),
}

/// A bare SASL token (after SaslHandshake v0); the future yields the framed answer, `None`
/// when there is none to send (the exchange failed and the connection closes).
pub async fn handle_raw_sasl_token(
    ctx: &Arc<BrokerCtx>,
    session: &mut Session,
    token: bytes::Bytes,
) -> BoxFuture<'static, Option<bytes::BytesMut>> {
    sasl::raw_token(ctx, session, token).await
}

pub async fn handle(
    ctx: &Arc<BrokerCtx>,
    request: Request,
    session: &mut Session,
) -> Result<Reply, HandleError> {
    let version = request.header.request_api_version;
    let client_id = request
        .header
        .client_id
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let reply = match request.body {
        RequestKind::ApiVersions(_) => Reply::Now(Some(Box::new(ResponseKind::ApiVersions(
            protocol::api_versions_response(),
        )))),
        RequestKind::DescribeUserScramCredentials(req) => now(
            ResponseKind::DescribeUserScramCredentials(users::describe(ctx, req, session).await),
        ),
        RequestKind::AlterUserScramCredentials(req) => now(
            ResponseKind::AlterUserScramCredentials(users::alter(ctx, req, session).await),
        ),
        RequestKind::AddPartitionsToTxn(req) => now(ResponseKind::AddPartitionsToTxn(
            txn::add_partitions(ctx, req, version, session).await,
        )),
        RequestKind::AddOffsetsToTxn(req) => now(ResponseKind::AddOffsetsToTxn(
            txn::add_offsets(ctx, req, version, session).await,
        )),
        RequestKind::EndTxn(req) => now(ResponseKind::EndTxn(
            txn::end(ctx, req, version, session).await,
        )),
        RequestKind::TxnOffsetCommit(req) => now(ResponseKind::TxnOffsetCommit(
            group::txn_offsets::commit(ctx, req, version, session).await,
        )),
        RequestKind::DescribeTransactions(req) => now(ResponseKind::DescribeTransactions(
            txn::describe(ctx, req, session).await,
        )),
        RequestKind::ListTransactions(req) => now(ResponseKind::ListTransactions(
            txn::list(ctx, req, session).await,
        )),
        RequestKind::SaslHandshake(req) => sasl::handshake(ctx, req, version, session),
        RequestKind::SaslAuthenticate(req) => sasl::authenticate(ctx, req, version, session).await,
        RequestKind::Metadata(req) => Reply::Now(Some(Box::new(ResponseKind::Metadata(
            metadata::handle(ctx, req, version, session).await,
        )))),
        RequestKind::CreateTopics(req) => Reply::Now(Some(Box::new(ResponseKind::CreateTopics(
            create_topics::handle(ctx, req, version, session).await,
        )))),
        RequestKind::DescribeConfigs(req) => now(ResponseKind::DescribeConfigs(
            describe_configs::handle(ctx, req, session).await,
        )),
        RequestKind::AlterConfigs(req) => now(ResponseKind::AlterConfigs(
            alter_configs::alter(ctx, req, session).await,
        )),
        RequestKind::IncrementalAlterConfigs(req) => now(ResponseKind::IncrementalAlterConfigs(
            alter_configs::incremental(ctx, req, session).await,
        )),
        RequestKind::CreatePartitions(req) => now(ResponseKind::CreatePartitions(
            create_partitions::handle(ctx, req, session).await,
        )),
        RequestKind::DescribeLogDirs(req) => now(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(ctx, req, session),
        )),
        RequestKind::ElectLeaders(req) => now(ResponseKind::ElectLeaders(elect_leaders::handle(
            ctx, req, version, session,
        ))),
        RequestKind::DescribeProducers(req) => now(ResponseKind::DescribeProducers(
            describe_producers::handle(ctx, req, session),
        )),
        RequestKind::InitProducerId(req) => {
            Reply::Now(Some(Box::new(ResponseKind::InitProducerId(
                init_producer_id::handle(ctx, req, version, session).await,
            ))))
        }
        RequestKind::ListOffsets(req) => Reply::Now(Some(Box::new(ResponseKind::ListOffsets(
            list_offsets::handle(ctx, req, version, session).await,
        )))),
        RequestKind::Produce(req) => produce::handle(ctx, req, version, session).await,
        RequestKind::Fetch(req) => fetch::handle(ctx, req, version, session),
        RequestKind::OffsetForLeaderEpoch(req) => now(ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(ctx, req, session),
        )),
        RequestKind::DescribeCluster(req) => now(ResponseKind::DescribeCluster(
            describe_cluster::handle(ctx, req, version, session),
        )),
        RequestKind::DeleteRecords(req) => delete_records::handle(ctx, req, session),
        RequestKind::DeleteTopics(req) => now(ResponseKind::DeleteTopics(
            delete_topics::handle(ctx, req, version, session).await,
        )),
        RequestKind::FindCoordinator(req) => now(ResponseKind::FindCoordinator(
            group::find_coordinator::handle(ctx, req, version, session),
        )),
        RequestKind::JoinGroup(req) => {
            group::membership::join(ctx, req, version, &client_id, session)
        }
        RequestKind::SyncGroup(req) => group::membership::sync(ctx, req, session),
        RequestKind::Heartbeat(req) => now(ResponseKind::Heartbeat(group::membership::heartbeat(
            ctx, req, session,
        ))),
        RequestKind::LeaveGroup(req) => now(ResponseKind::LeaveGroup(group::membership::leave(
            ctx, req, version, session,
        ))),
        RequestKind::OffsetCommit(req) => now(ResponseKind::OffsetCommit(
            group::offsets::commit(ctx, req, session).await,
        )),
        RequestKind::OffsetFetch(req) => now(ResponseKind::OffsetFetch(
            group::offsets::fetch(ctx, req, version, session).await,
        )),
        RequestKind::OffsetDelete(req) => now(ResponseKind::OffsetDelete(
            group::offsets::delete(ctx, req, session).await,
        )),
        RequestKind::DescribeGroups(req) => now(ResponseKind::DescribeGroups(
            group::admin::describe(ctx, req, version, session).await,
        )),
        RequestKind::ListGroups(req) => now(ResponseKind::ListGroups(
            group::admin::list(ctx, req, session).await,
        )),
        RequestKind::DeleteGroups(req) => now(ResponseKind::DeleteGroups(
            group::admin::delete(ctx, req, session).await,
        )),
        RequestKind::CreateAcls(req) => now(ResponseKind::CreateAcls(
            acls::create(ctx, req, session).await,
        )),
        RequestKind::DescribeAcls(req) => now(ResponseKind::DescribeAcls(acls::describe(
            ctx, req, session,
        ))),
        RequestKind::DeleteAcls(req) => now(ResponseKind::DeleteAcls(
            acls::delete(ctx, req, session).await,
        )),
        _ => return Err(HandleError::Unhandled(request.api_key)),
    };
    Ok(reply)
}
