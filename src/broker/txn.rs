//! The transaction coordinator's APIs (`crate::txn`): InitProducerId with a transactional id,
//! AddPartitionsToTxn (v0-3 from producers, v4+ batched, with `verify_only`),
//! AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions.
//!
//! Authorization, as Kafka's: WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_
//! FAILED); AddPartitionsToTxn also WRITE on each topic; AddOffsetsToTxn READ on the group;
//! DescribeTransactions DESCRIBE on the id; ListTransactions lists the ids the principal may
//! DESCRIBE.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use strato_metadata::model::TxnPartitionRecord;

use super::{BrokerCtx, error};
use crate::security::Session;
use crate::security::acl::{AclOperation, ResourceType};
use crate::txn::CoordinatorError;

/// May the session write as `transactional_id`?
fn may_write_id(ctx: &BrokerCtx, session: &Session, transactional_id: &str) -> bool {
    ctx.authorizer.allows(
        session,
        AclOperation::Write,
        ResourceType::TransactionalId,
        transactional_id,
    )
}

/// Kafka answers PRODUCER_FENCED as INVALID_PRODUCER_EPOCH to clients older than the API
/// version that knows it (KIP-588).
fn code(err: &CoordinatorError, knows_fenced: bool) -> i16 {
    let code = error::from_coordinator(err);
    if !knows_fenced && code == error::code(ResponseError::ProducerFenced) {
        return error::code(ResponseError::InvalidProducerEpoch);
    }
    code
}

/// A partition asked for, with its record or the error it gets.
type ResolvedPartition = (i32, Result<TxnPartitionRecord, i16>);

/// One transaction's partitions resolved.
struct Resolved {
    topics: Vec<(TopicName, Vec<ResolvedPartition>)>,
}

impl Resolved {
    fn records(&self) -> Vec<TxnPartitionRecord> {
        self.topics
            .iter()
            .flat_map(|(_, ps)| ps.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()))
            .collect()
    }

    fn has_errors(&self) -> bool {
        self.topics
            .iter()
            .any(|(_, ps)| ps.iter().any(|(_, r)| r.is_err()))
    }

    /// Every partition answers `code`, or, when some failed, the others OPERATION_NOT_ATTEMPTED.
    fn results(&self, outcome: Result<Vec<bool>, i16>) -> Vec<AddPartitionsToTxnTopicResult> {
        let not_attempted = error::code(ResponseError::OperationNotAttempted);
        let mut verified = outcome.as_ref().ok().map(|v| v.iter());
        self.topics
            .iter()
            .map(|(name, partitions)| {
                let results = partitions
                    .iter()
                    .map(|(index, resolved)| {
                        let code = match (resolved, &outcome) {
                            (Err(code), _) => *code,
                            (Ok(_), _) if self.has_errors() => not_attempted,
                            (Ok(_), Err(code)) => *code,
                            (Ok(_), Ok(_)) => match verified.as_mut().and_then(|v| v.next()) {
                                Some(false) => error::code(ResponseError::InvalidTxnState),
                                _ => error::NONE,
                            },
                        };
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(*index)
                            .with_partition_error_code(code)
                    })
                    .collect();
                AddPartitionsToTxnTopicResult::default()
                    .with_name(name.clone())
                    .with_results_by_partition(results)
            })
            .collect()
    }
}

async fn resolve(
    ctx: &BrokerCtx,
    session: &Session,
    topics: &[AddPartitionsToTxnTopic],
) -> Resolved {
    let mut resolved = Vec::with_capacity(topics.len());
    for topic in topics {
        let name = topic.name.as_str();
        let writable =
            ctx.authorizer
                .allows(session, AclOperation::Write, ResourceType::Topic, name);
        let found = if writable {
            ctx.topics.lookup(name).await.ok().flatten()
        } else {
            None
        };
        let partitions = topic
            .partitions
            .iter()
            .map(|&p| {
                let result = if !writable {
                    Err(error::code(ResponseError::TopicAuthorizationFailed))
                } else {
                    match &found {
                        Some(t) if t.partition(p).is_some() => Ok(TxnPartitionRecord {
                            topic: name.to_string(),
                            topic_id: t.topic_id,
                            partition: p,
                        }),
                        _ => Err(error::code(ResponseError::UnknownTopicOrPartition)),
                    }
                };
                (p, result)
            })
            .collect();
        resolved.push((topic.name.clone(), partitions));
    }
    Resolved { topics: resolved }
}

/// One transaction of AddPartitionsToTxn, whatever the request version.
struct AddRequest<'a> {
    transactional_id: &'a str,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: &'a [AddPartitionsToTxnTopic],
}

/// One transaction of AddPartitionsToTxn: its per-partition results.
async fn add_partitions_one(
    ctx: &BrokerCtx,
    session: &Session,
    request: AddRequest<'_>,
    knows_fenced: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let AddRequest {
        transactional_id,
        producer_id,
        producer_epoch,
        verify_only,
        topics,
    } = request;
    let resolved = resolve(ctx, session, topics).await;
    if !may_write_id(ctx, session, transactional_id) {
        return resolved.results(Err(error::code(
            ResponseError::TransactionalIdAuthorizationFailed,
        )));
    }
    if resolved.has_errors() {
        return resolved.results(Ok(Vec::new()));
    }
    let partitions = resolved.records();
    let outcome = if verify_only {
        ctx.txns
            .verify(transactional_id, producer_id, producer_epoch, &partitions)
            .await
    } else {
        ctx.txns
            .add(
                transactional_id,
                producer_id,
                producer_epoch,
                &partitions,
                &[],
            )
            .await
            .map(|()| Vec::new())
    };
    resolved.results(outcome.map_err(|err| {
        tracing::debug!(transactional_id, "AddPartitionsToTxn refused: {err}");
        code(&err, knows_fenced)
    }))
}

pub(super) async fn add_partitions(
    ctx: &Arc<BrokerCtx>,
    req: AddPartitionsToTxnRequest,
    version: i16,
    session: &Session,
) -> AddPartitionsToTxnResponse {
    let knows_fenced = version >= 2;
    if version <= 3 {
        let request = AddRequest {
            transactional_id: req.v3_and_below_transactional_id.as_str(),
            producer_id: req.v3_and_below_producer_id.0,
            producer_epoch: req.v3_and_below_producer_epoch,
            verify_only: false,
            topics: &req.v3_and_below_topics,
        };
        let results = add_partitions_one(ctx, session, request, knows_fenced).await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    // v4+: several transactions at once (Kafka sends these broker to broker; the cluster
    // action it needs is ALTER... in Kafka CLUSTER_ACTION on the cluster).
    if !ctx
        .authorizer
        .allows_cluster(session, AclOperation::ClusterAction)
    {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(error::code(ResponseError::ClusterAuthorizationFailed));
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for txn in &req.transactions {
        let request = AddRequest {
            transactional_id: txn.transactional_id.as_str(),
            producer_id: txn.producer_id.0,
            producer_epoch: txn.producer_epoch,
            verify_only: txn.verify_only,
            topics: &txn.topics,
        };
        let topic_results = add_partitions_one(ctx, session, request, true).await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(topic_results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

pub(super) async fn add_offsets(
    ctx: &Arc<BrokerCtx>,
    req: AddOffsetsToTxnRequest,
    version: i16,
    session: &Session,
) -> AddOffsetsToTxnResponse {
    let transactional_id = req.transactional_id.as_str();
    let group = req.group_id.as_str();
    let response = AddOffsetsToTxnResponse::default();
    if !may_write_id(ctx, session, transactional_id) {
        return response.with_error_code(error::code(
            ResponseError::TransactionalIdAuthorizationFailed,
        ));
    }
    if !ctx
        .authorizer
        .allows(session, AclOperation::Read, ResourceType::Group, group)
    {
        return response.with_error_code(error::code(ResponseError::GroupAuthorizationFailed));
    }
    match ctx
        .txns
        .add(
            transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            &[],
            &[group.to_string()],
        )
        .await
    {
        Ok(()) => response,
        Err(err) => {
            tracing::debug!(transactional_id, group, "AddOffsetsToTxn refused: {err}");
            response.with_error_code(code(&err, version >= 2))
        }
    }
}

pub(super) async fn end(
    ctx: &Arc<BrokerCtx>,
    req: EndTxnRequest,
    version: i16,
    session: &Session,
) -> EndTxnResponse {
    let transactional_id = req.transactional_id.as_str();
    let response = EndTxnResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if !may_write_id(ctx, session, transactional_id) {
        return response.with_error_code(error::code(
            ResponseError::TransactionalIdAuthorizationFailed,
        ));
    }
    match ctx
        .txns
        .end(
            transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
        )
        .await
    {
        Ok(()) => response,
        Err(err) => {
            tracing::debug!(
                transactional_id,
                commit = req.committed,
                "EndTxn refused: {err}"
            );
            response.with_error_code(code(&err, version >= 2))
        }
    }
}

fn topics_of(record: &strato_metadata::model::TxnRecord) -> Vec<TopicData> {
    let mut topics: Vec<TopicData> = Vec::new();
    for p in &record.partitions {
        match topics.iter_mut().find(|t| t.topic.as_str() == p.topic) {
            Some(t) => t.partitions.push(p.partition),
            None => topics.push(
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(p.topic.clone())))
                    .with_partitions(vec![p.partition]),
            ),
        }
    }
    topics
}

pub(super) async fn describe(
    ctx: &Arc<BrokerCtx>,
    req: DescribeTransactionsRequest,
    session: &Session,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        let state = TransactionState::default().with_transactional_id(id.clone());
        if !ctx.authorizer.allows(
            session,
            AclOperation::Describe,
            ResourceType::TransactionalId,
            id.as_str(),
        ) {
            states.push(state.with_error_code(error::code(
                ResponseError::TransactionalIdAuthorizationFailed,
            )));
            continue;
        }
        states.push(match ctx.txns.describe(id.as_str()).await {
            Ok(record) => state
                .with_transaction_state(StrBytes::from_static_str(record.state.name()))
                .with_transaction_timeout_ms(record.timeout_ms)
                .with_transaction_start_time_ms(record.start_ms)
                .with_producer_id(ProducerId(record.producer_id))
                .with_producer_epoch(record.producer_epoch)
                .with_topics(topics_of(&record)),
            Err(err) => state.with_error_code(error::from_coordinator(&err)),
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub(super) async fn list(
    ctx: &Arc<BrokerCtx>,
    req: ListTransactionsRequest,
    session: &Session,
) -> ListTransactionsResponse {
    let response = ListTransactionsResponse::default();
    let mut unknown_filters = Vec::new();
    let mut states = Vec::new();
    for filter in &req.state_filters {
        match strato_metadata::model::TxnState::from_name(filter.as_str()) {
            Some(state) => states.push(state),
            None => unknown_filters.push(filter.clone()),
        }
    }
    let records = match ctx.txns.list_owned().await {
        Ok(records) => records,
        Err(err) => {
            tracing::warn!("failed to list transactions: {err:#}");
            return response.with_error_code(error::from_group_store(&err));
        }
    };
    let now = crate::log::flush::now_ms();
    let listed = records
        .into_iter()
        .filter(|r| states.is_empty() || states.contains(&r.state))
        .filter(|r| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(r.producer_id))
        })
        // v1 (KIP-994): only transactions open longer than the duration.
        .filter(|r| {
            req.duration_filter < 0 || (r.start_ms >= 0 && now - r.start_ms >= req.duration_filter)
        })
        .filter(|r| {
            ctx.authorizer.allows_quietly(
                session,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &r.transactional_id,
            )
        })
        .map(|r| {
            ListedState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(r.transactional_id)))
                .with_producer_id(ProducerId(r.producer_id))
                .with_transaction_state(StrBytes::from_static_str(r.state.name()))
        })
        .collect();
    response
        .with_unknown_state_filters(unknown_filters)
        .with_transaction_states(listed)
}
