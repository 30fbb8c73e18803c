//! `strato transaction list|describe`: transactions as their coordinators see them, over the
//! Kafka protocol (ListTransactions at every broker, DescribeTransactions at an id's
//! coordinator), like Kafka's `kafka-transactions.sh`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::cluster::KEY_TYPE_TRANSACTION;
use super::common::connect;
use super::kafka_client::{ClientError, ErrorCode};
use super::table::render_table;
use crate::config::OutputFormat;
use crate::config::transactions::{
    TransactionCommand, TransactionDescribeArgs, TransactionListArgs,
};

/// Transaction states as Kafka names them.
const STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub async fn run(command: TransactionCommand) -> anyhow::Result<()> {
    let output = match command {
        TransactionCommand::List(args) => list(args).await?,
        TransactionCommand::Describe(args) => describe(args).await?,
    };
    print!("{output}");
    Ok(())
}

#[derive(Debug, Serialize)]
struct Listed {
    transactional_id: String,
    producer_id: i64,
    state: String,
    coordinator: i32,
}

async fn list(args: TransactionListArgs) -> anyhow::Result<String> {
    let mut states = Vec::new();
    for state in &args.state {
        let Some(known) = STATES.iter().find(|s| s.eq_ignore_ascii_case(state)) else {
            bail!("--state {state:?}: expected one of {}", STATES.join(", "));
        };
        states.push(known.to_string());
    }
    let mut client = connect(&args.client).await?;
    let node_ids = client
        .live_node_ids()
        .await
        .context("read the cluster's brokers")?;
    let mut listed = BTreeMap::new();
    for node_id in node_ids {
        let connection = client.node(node_id).await?;
        let response = connection
            .send(|version| {
                let mut request = ListTransactionsRequest::default().with_state_filters(
                    states.iter().cloned().map(StrBytes::from_string).collect(),
                );
                if version >= 1 {
                    request.duration_filter = args.min_duration_ms.unwrap_or(-1);
                }
                request
            })
            .await?;
        if response.error_code != 0 {
            return Err(ClientError::Kafka {
                addr: connection.addr().to_string(),
                api: ApiKey::ListTransactions,
                code: ErrorCode(response.error_code),
            }
            .into());
        }
        for state in response.transaction_states {
            let entry = Listed {
                transactional_id: state.transactional_id.to_string(),
                producer_id: state.producer_id.0,
                state: state.transaction_state.to_string(),
                coordinator: node_id,
            };
            listed.insert(entry.transactional_id.clone(), entry);
        }
    }
    let listed: Vec<Listed> = listed.into_values().collect();
    Ok(match args.output {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&listed)?),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|t| {
                    vec![
                        t.transactional_id.clone(),
                        t.state.clone(),
                        t.producer_id.to_string(),
                        t.coordinator.to_string(),
                    ]
                })
                .collect();
            render_table(
                &["TRANSACTIONAL-ID", "STATE", "PRODUCER-ID", "COORDINATOR"],
                &rows,
            )
        }
    })
}

#[derive(Debug, Serialize)]
struct Described {
    transactional_id: String,
    coordinator: i32,
    state: String,
    producer_id: i64,
    producer_epoch: i16,
    timeout_ms: i32,
    /// When the open transaction started (ms since the epoch), absent when none.
    start_time_ms: Option<i64>,
    partitions: Vec<String>,
}

async fn describe(args: TransactionDescribeArgs) -> anyhow::Result<String> {
    let mut client = connect(&args.client).await?;
    let id = args.transactional_id.clone();
    let response = client
        .send_to_coordinator_of(
            KEY_TYPE_TRANSACTION,
            &id,
            |_| {
                DescribeTransactionsRequest::default().with_transactional_ids(vec![
                    TransactionalId(StrBytes::from_string(id.clone())),
                ])
            },
            |r| ErrorCode(r.transaction_states.first().map_or(0, |s| s.error_code)),
        )
        .await?;
    let coordinator = client.coordinator_of(KEY_TYPE_TRANSACTION, &id).await?;
    let Some(state) = response.transaction_states.into_iter().next() else {
        bail!("the coordinator answered no state for {id:?}");
    };
    if state.error_code != 0 {
        return Err(ClientError::Kafka {
            addr: client
                .broker_addr(coordinator)
                .unwrap_or_default()
                .to_string(),
            api: ApiKey::DescribeTransactions,
            code: ErrorCode(state.error_code),
        }
        .into());
    }
    let partitions = state
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| format!("{}:{p}", t.topic.as_str()))
        })
        .collect();
    let described = Described {
        transactional_id: id,
        coordinator,
        state: state.transaction_state.to_string(),
        producer_id: state.producer_id.0,
        producer_epoch: state.producer_epoch,
        timeout_ms: state.transaction_timeout_ms,
        start_time_ms: (state.transaction_start_time_ms >= 0)
            .then_some(state.transaction_start_time_ms),
        partitions,
    };
    Ok(match args.output {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&described)?),
        OutputFormat::Table => {
            let start = described
                .start_time_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "-".to_string());
            let rows = vec![
                vec!["TRANSACTIONAL-ID".to_string(), described.transactional_id],
                vec!["COORDINATOR".to_string(), described.coordinator.to_string()],
                vec!["STATE".to_string(), described.state],
                vec!["PRODUCER-ID".to_string(), described.producer_id.to_string()],
                vec![
                    "PRODUCER-EPOCH".to_string(),
                    described.producer_epoch.to_string(),
                ],
                vec!["TIMEOUT-MS".to_string(), described.timeout_ms.to_string()],
                vec!["START-TIME".to_string(), start],
                vec!["PARTITIONS".to_string(), described.partitions.join(",")],
            ];
            render_table(&["FIELD", "VALUE"], &rows)
        }
    })
}
