//! `strato group list|describe|reset-offsets|delete`: consumer-group administration over
//! the Kafka protocol, like Kafka's `kafka-consumer-groups.sh`. Output is an aligned table
//! or, with `--output json`, one JSON document on stdout.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use kafka_protocol::error::ResponseError;
use serde_json::{Value, json};

use super::cluster::{Client, OffsetSpec, TopicPartition};
use super::common::{connect, json_text, or_dash};
use super::group_api::{self, DescribedGroup};
use super::group_reset;
use super::kafka_client::ErrorCode;
use super::table::render_table;
use crate::config::{
    GroupCommand, GroupDeleteArgs, GroupDescribeArgs, GroupListArgs, OutputFormat,
};

/// Group states as Kafka names them (`ConsumerGroupState`, `GroupState`).
const GROUP_STATES: &[&str] = &[
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
    "Assigning",
    "Reconciling",
];

pub async fn run(command: GroupCommand) -> anyhow::Result<()> {
    let output = match command {
        GroupCommand::List(args) => list(args).await?,
        GroupCommand::Describe(args) => describe(args).await?,
        GroupCommand::ResetOffsets(args) => group_reset::reset_offsets(args).await?,
        GroupCommand::Delete(args) => delete(args).await?,
    };
    print!("{output}");
    Ok(())
}

/// `stable,EMPTY` -> `["Stable", "Empty"]`; an unknown state is refused.
fn canonical_states(states: &[String]) -> anyhow::Result<Vec<String>> {
    states
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            GROUP_STATES
                .iter()
                .find(|known| known.eq_ignore_ascii_case(s.trim()))
                .map(|known| known.to_string())
                .with_context(|| {
                    format!(
                        "unknown group state {s:?}; expected one of {}",
                        GROUP_STATES.join(", ")
                    )
                })
        })
        .collect()
}

async fn list(args: GroupListArgs) -> anyhow::Result<String> {
    let states = canonical_states(&args.state)?;
    let mut client = connect(&args.client).await?;
    let groups = group_api::list_groups(&mut client, &states)
        .await
        .context("list groups")?;
    Ok(match args.output {
        OutputFormat::Json => json_text(&Value::Array(
            groups
                .iter()
                .map(|g| {
                    json!({
                        "group": g.group_id,
                        "state": g.state,
                        "protocol_type": g.protocol_type,
                    })
                })
                .collect(),
        )),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    vec![
                        g.group_id.clone(),
                        g.state.clone().unwrap_or_else(|| "-".to_string()),
                        g.protocol_type.clone(),
                    ]
                })
                .collect();
            render_table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows)
        }
    })
}

/// One partition of `describe`: where the group is and where the log ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionLag {
    tp: TopicPartition,
    committed: Option<i64>,
    log_end: Result<i64, ErrorCode>,
    /// The member the partition is assigned to.
    member: Option<usize>,
}

impl PartitionLag {
    fn lag(&self) -> Option<i64> {
        match (self.committed, &self.log_end) {
            (Some(committed), Ok(log_end)) => Some((log_end - committed).max(0)),
            _ => None,
        }
    }
}

/// Reads the group's description and offsets and fails when the group does not exist.
async fn describe_existing(
    client: &mut Client,
    group: &str,
) -> anyhow::Result<(DescribedGroup, BTreeMap<TopicPartition, i64>)> {
    let described = group_api::describe_group(client, group)
        .await
        .with_context(|| format!("describe group {group}"))?;
    // DescribeGroups v6+ reports an unknown group as GROUP_ID_NOT_FOUND (KIP-1043); older
    // versions as state "Dead" without an error.
    let not_found = described.error.0 == kafka_protocol::ResponseError::GroupIdNotFound.code();
    if !described.error.is_ok() && !not_found {
        bail!("describe group {group}: {}", described.error);
    }
    let committed = group_api::fetch_offsets(client, group)
        .await
        .with_context(|| format!("fetch committed offsets of group {group}"))?;
    if (not_found || described.state == "Dead") && committed.is_empty() {
        bail!("consumer group {group:?} does not exist");
    }
    Ok((described, committed))
}

async fn describe(args: GroupDescribeArgs) -> anyhow::Result<String> {
    let mut client = connect(&args.client).await?;
    let (described, committed) = describe_existing(&mut client, &args.group).await?;
    let mut owners: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    for (idx, member) in described.members.iter().enumerate() {
        for tp in member.assignment.iter().flatten() {
            owners.insert(tp.clone(), idx);
        }
    }
    let partitions: BTreeSet<TopicPartition> =
        committed.keys().chain(owners.keys()).cloned().collect();
    let partitions: Vec<TopicPartition> = partitions.into_iter().collect();
    let log_ends = client
        .list_offsets(&partitions, OffsetSpec::Latest)
        .await
        .context("look up log end offsets")?;
    let rows: Vec<PartitionLag> = partitions
        .into_iter()
        .map(|tp| PartitionLag {
            committed: committed.get(&tp).copied(),
            log_end: log_ends.get(&tp).cloned().unwrap_or(Err(ErrorCode(
                ResponseError::UnknownTopicOrPartition.code(),
            ))),
            member: owners.get(&tp).copied(),
            tp,
        })
        .collect();
    Ok(match args.output {
        OutputFormat::Json => json_text(&describe_json(&described, &rows)),
        OutputFormat::Table => describe_table(&described, &rows),
    })
}

fn describe_json(group: &DescribedGroup, rows: &[PartitionLag]) -> Value {
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": m.assignment.as_ref().map(|tps| tps
                    .iter()
                    .map(|tp| json!({"topic": tp.topic, "partition": tp.partition}))
                    .collect::<Vec<_>>()),
            })
        })
        .collect();
    let offsets: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "topic": row.tp.topic,
                "partition": row.tp.partition,
                "committed_offset": row.committed,
                "log_end_offset": row.log_end.as_ref().ok(),
                "log_end_error": row.log_end.as_ref().err().map(|code| code.name()),
                "lag": row.lag(),
                "member_id": row.member.map(|idx| &group.members[idx].member_id),
            })
        })
        .collect();
    json!({
        "group": group.group_id,
        "state": group.state,
        "protocol_type": group.protocol_type,
        "protocol": group.protocol,
        "members": members,
        "offsets": offsets,
    })
}

fn describe_table(group: &DescribedGroup, rows: &[PartitionLag]) -> String {
    let mut out = format!(
        "Group {}: state {}, protocol type {}, protocol {}, {} member(s)\n\n",
        group.group_id,
        group.state,
        if group.protocol_type.is_empty() {
            "-"
        } else {
            &group.protocol_type
        },
        if group.protocol.is_empty() {
            "-"
        } else {
            &group.protocol
        },
        group.members.len(),
    );
    let partition_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let member = row.member.map(|idx| &group.members[idx]);
            vec![
                row.tp.topic.clone(),
                row.tp.partition.to_string(),
                or_dash(row.committed),
                match &row.log_end {
                    Ok(offset) => offset.to_string(),
                    Err(code) => code.name(),
                },
                or_dash(row.lag()),
                member.map_or("-".to_string(), |m| m.member_id.clone()),
                member.map_or("-".to_string(), |m| m.client_host.clone()),
                member.map_or("-".to_string(), |m| m.client_id.clone()),
            ]
        })
        .collect();
    out.push_str(&render_table(
        &[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &partition_rows,
    ));
    if !group.members.is_empty() {
        out.push('\n');
        out.push_str(&members_table(group));
    }
    out
}

fn members_table(group: &DescribedGroup) -> String {
    let rows: Vec<Vec<String>> = group
        .members
        .iter()
        .map(|m| {
            vec![
                m.member_id.clone(),
                m.group_instance_id
                    .clone()
                    .unwrap_or_else(|| "-".to_string()),
                m.client_host.clone(),
                m.client_id.clone(),
                match &m.assignment {
                    Some(tps) => tps.len().to_string(),
                    None => "-".to_string(),
                },
            ]
        })
        .collect();
    render_table(
        &[
            "CONSUMER-ID",
            "INSTANCE-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS",
        ],
        &rows,
    )
}

async fn delete(args: GroupDeleteArgs) -> anyhow::Result<String> {
    let mut client = connect(&args.client).await?;
    let results = group_api::delete_groups(&mut client, &args.groups)
        .await
        .context("delete groups")?;
    let output = match args.output {
        OutputFormat::Json => json_text(&Value::Array(
            results
                .iter()
                .map(|(group, code)| {
                    json!({
                        "group": group,
                        "deleted": code.is_ok(),
                        "error": (!code.is_ok()).then(|| code.name()),
                    })
                })
                .collect(),
        )),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|(group, code)| {
                    let result = if code.is_ok() {
                        "deleted".to_string()
                    } else {
                        code.name()
                    };
                    vec![group.clone(), result]
                })
                .collect();
            render_table(&["GROUP", "RESULT"], &rows)
        }
    };
    let failed = results.iter().filter(|(_, code)| !code.is_ok()).count();
    if failed > 0 {
        // The per-group results still reach the operator before the error.
        print!("{output}");
        bail!("{failed} of {} group(s) not deleted", results.len());
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_matched_case_insensitively() {
        let states = canonical_states(&["stable".to_string(), "EMPTY".to_string()]).unwrap();
        assert_eq!(states, vec!["Stable", "Empty"]);
        assert!(canonical_states(&["Sleepy".to_string()]).is_err());
    }

    #[test]
    fn describe_table_shows_lag_and_owner() {
        let group = DescribedGroup {
            group_id: "app".to_string(),
            error: ErrorCode::NONE,
            state: "Stable".to_string(),
            protocol_type: "consumer".to_string(),
            protocol: "range".to_string(),
            members: vec![group_api::GroupMember {
                member_id: "m-1".to_string(),
                group_instance_id: None,
                client_id: "c".to_string(),
                client_host: "/127.0.0.1".to_string(),
                assignment: Some(vec![TopicPartition::new("t", 0)]),
            }],
        };
        let rows = vec![
            PartitionLag {
                tp: TopicPartition::new("t", 0),
                committed: Some(7),
                log_end: Ok(10),
                member: Some(0),
            },
            PartitionLag {
                tp: TopicPartition::new("t", 1),
                committed: None,
                log_end: Err(ErrorCode(6)),
                member: None,
            },
        ];
        let table = describe_table(&group, &rows);
        assert!(table.starts_with("Group app: state Stable, protocol type consumer"));
        let cells = |line: &str| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert!(
            table
                .lines()
                .any(|l| cells(l) == ["t", "0", "7", "10", "3", "m-1", "/127.0.0.1", "c"]),
            "{table}"
        );
        assert!(table.contains("NOT_LEADER_OR_FOLLOWER"), "{table}");
        let json = describe_json(&group, &rows);
        assert_eq!(json["offsets"][0]["lag"], 3);
        assert_eq!(json["offsets"][0]["member_id"], "m-1");
        assert_eq!(json["offsets"][1]["lag"], Value::Null);
        assert_eq!(json["members"][0]["assignment"][0]["topic"], "t");
    }
}
