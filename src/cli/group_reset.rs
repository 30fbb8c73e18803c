//! `strato group reset-offsets`: plans new committed offsets for a group (earliest,
//! latest, an offset, a time, or a shift), prints the plan, and with `--execute` commits
//! it as a standalone commit. Like Kafka's tool it resets only a group without members.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use kafka_protocol::error::ResponseError;
use serde_json::json;

use super::cluster::{Client, OffsetSpec, TopicPartition};
use super::common::{ACTIVE_MEMBERS_HINT, connect, json_text, or_dash};
use super::group_api;
use super::kafka_client::ErrorCode;
use super::table::render_table;
use crate::config::{GroupResetOffsetsArgs, OutputFormat};

/// Where `reset-offsets` moves each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    ShiftBy(i64),
}

impl ResetTarget {
    fn from_args(args: &GroupResetOffsetsArgs) -> anyhow::Result<Self> {
        // clap's "target" ArgGroup lets exactly one of these through.
        Ok(if args.to_earliest {
            ResetTarget::Earliest
        } else if args.to_latest {
            ResetTarget::Latest
        } else if let Some(offset) = args.to_offset {
            ResetTarget::Offset(offset)
        } else if let Some(datetime) = &args.to_datetime {
            ResetTarget::Timestamp(parse_datetime_ms(datetime)?)
        } else if let Some(delta) = args.shift_by {
            ResetTarget::ShiftBy(delta)
        } else {
            bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
        })
    }
}

/// RFC 3339 (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.250+02:00`) to ms since the epoch.
pub fn parse_datetime_ms(text: &str) -> anyhow::Result<i64> {
    let datetime = chrono::DateTime::parse_from_rfc3339(text.trim()).with_context(|| {
        format!("--to-datetime {text:?} is not RFC 3339, e.g. 2024-05-01T12:00:00Z")
    })?;
    Ok(datetime.timestamp_millis())
}

/// `orders` (every partition) or `orders:0,2`.
pub fn parse_topic_spec(spec: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    let Some((topic, partitions)) = spec.split_once(':') else {
        if spec.is_empty() {
            bail!("--topic needs a topic name");
        }
        return Ok((spec.to_string(), None));
    };
    if topic.is_empty() {
        bail!("--topic {spec:?} has no topic name");
    }
    let partitions = partitions
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p >= 0)
                .with_context(|| format!("--topic {spec:?}: {p:?} is not a partition number"))
        })
        .collect::<anyhow::Result<Vec<i32>>>()?;
    Ok((topic.to_string(), Some(partitions)))
}

/// The offsets a partition's log spans: the log start offset and the log end offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRange {
    pub earliest: i64,
    pub latest: i64,
}

impl LogRange {
    /// `offset` moved into the range (written out so that a broker reporting start > end
    /// yields the end rather than a panic).
    fn clamp(self, offset: i64) -> i64 {
        offset.max(self.earliest).min(self.latest)
    }
}

/// The offset `target` gives a partition whose committed offset is `current`. `at_timestamp`
/// is ListOffsets' answer for a timestamp target (-1 or `None`: no record that recent, so
/// the log end). `None` when a shift has no committed offset to start from.
pub fn new_offset(
    target: ResetTarget,
    current: Option<i64>,
    range: LogRange,
    at_timestamp: Option<i64>,
) -> Option<i64> {
    Some(match target {
        ResetTarget::Earliest => range.earliest,
        ResetTarget::Latest => range.latest,
        ResetTarget::Offset(offset) => range.clamp(offset),
        ResetTarget::Timestamp(_) => match at_timestamp {
            Some(offset) if offset >= 0 => range.clamp(offset),
            _ => range.latest,
        },
        ResetTarget::ShiftBy(delta) => range.clamp(current?.saturating_add(delta)),
    })
}

/// One line of the reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedReset {
    tp: TopicPartition,
    current: Option<i64>,
    new: i64,
}

/// The partitions `--topic`/`--all-topics` name.
async fn reset_scope(
    client: &mut Client,
    args: &GroupResetOffsetsArgs,
    committed: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<Vec<TopicPartition>> {
    if args.all_topics {
        if committed.is_empty() {
            bail!(
                "group {:?} has no committed offsets; name the topics with --topic",
                args.group
            );
        }
        return Ok(committed.keys().cloned().collect());
    }
    let specs = args
        .topic
        .iter()
        .map(|spec| parse_topic_spec(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let topics: Vec<String> = specs.iter().map(|(topic, _)| topic.clone()).collect();
    let layouts = client
        .topic_layouts(&topics)
        .await
        .context("read topic metadata")?;
    let mut scope = BTreeSet::new();
    for (topic, partitions) in specs {
        let layout = match layouts.get(&topic) {
            Some(Ok(layout)) => layout,
            Some(Err(code)) => bail!("topic {topic:?}: {code}"),
            None => bail!("topic {topic:?} is not in the cluster metadata"),
        };
        let partitions = partitions.unwrap_or_else(|| layout.leaders.keys().copied().collect());
        for partition in partitions {
            if !layout.leaders.contains_key(&partition) {
                bail!(
                    "topic {topic:?} has no partition {partition} (it has {})",
                    layout.leaders.len()
                );
            }
            scope.insert(TopicPartition::new(topic.clone(), partition));
        }
    }
    Ok(scope.into_iter().collect())
}

/// ListOffsets `spec` for every partition, failing on the first partition with an error.
async fn offsets_or_fail(
    client: &mut Client,
    partitions: &[TopicPartition],
    spec: OffsetSpec,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let results = client
        .list_offsets(partitions, spec)
        .await
        .with_context(|| format!("look up {spec:?} offsets"))?;
    results
        .into_iter()
        .map(|(tp, result)| match result {
            Ok(offset) => Ok((tp, offset)),
            Err(code) => bail!("look up {spec:?} offset of {tp}: {code}"),
        })
        .collect()
}

pub(super) async fn reset_offsets(args: GroupResetOffsetsArgs) -> anyhow::Result<String> {
    let target = ResetTarget::from_args(&args)?;
    let mut client = connect(&args.client).await?;
    let group = args.group.as_str();
    let described = group_api::describe_group(&mut client, group)
        .await
        .with_context(|| format!("describe group {group}"))?;
    if !described.error.is_ok() {
        bail!("describe group {group}: {}", described.error);
    }
    // Like kafka-consumer-groups: offsets of a group with members would be overwritten by
    // its consumers' next commit, so only an inactive group is reset.
    if described.state != "Empty" && described.state != "Dead" {
        bail!(
            "{ACTIVE_MEMBERS_HINT} (group {group:?} is {})",
            described.state
        );
    }
    let committed = group_api::fetch_offsets(&mut client, group)
        .await
        .with_context(|| format!("fetch committed offsets of group {group}"))?;
    let plan = plan_reset(&mut client, &args, target, &committed).await?;
    if args.execute {
        let offsets = plan.iter().map(|p| (p.tp.clone(), p.new)).collect();
        let results = group_api::commit_offsets(&mut client, group, &offsets)
            .await
            .with_context(|| format!("commit offsets of group {group}"))?;
        check_commit_results(&results)?;
    }
    Ok(render_plan(group, &plan, args.execute, args.output))
}

/// Looks up the log range (and the offset at a time) of every partition in scope and
/// computes its new offset.
async fn plan_reset(
    client: &mut Client,
    args: &GroupResetOffsetsArgs,
    target: ResetTarget,
    committed: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<Vec<PlannedReset>> {
    let scope = reset_scope(client, args, committed).await?;
    let earliest = offsets_or_fail(client, &scope, OffsetSpec::Earliest).await?;
    let latest = offsets_or_fail(client, &scope, OffsetSpec::Latest).await?;
    let at_timestamp = match target {
        ResetTarget::Timestamp(ms) => {
            offsets_or_fail(client, &scope, OffsetSpec::Timestamp(ms)).await?
        }
        _ => BTreeMap::new(),
    };
    let mut plan = Vec::with_capacity(scope.len());
    for tp in scope {
        let (Some(&earliest), Some(&latest)) = (earliest.get(&tp), latest.get(&tp)) else {
            bail!("no log start or end offset for {tp}");
        };
        let range = LogRange { earliest, latest };
        let current = committed.get(&tp).copied();
        let Some(new) = new_offset(target, current, range, at_timestamp.get(&tp).copied()) else {
            bail!(
                "cannot shift {tp}: group {:?} has no committed offset for it",
                args.group
            );
        };
        plan.push(PlannedReset { tp, current, new });
    }
    Ok(plan)
}

fn render_plan(group: &str, plan: &[PlannedReset], executed: bool, output: OutputFormat) -> String {
    match output {
        OutputFormat::Json => json_text(&json!({
            "group": group,
            "executed": executed,
            "partitions": plan
                .iter()
                .map(|p| json!({
                    "topic": p.tp.topic,
                    "partition": p.tp.partition,
                    "current_offset": p.current,
                    "new_offset": p.new,
                }))
                .collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|p| {
                    vec![
                        p.tp.topic.clone(),
                        p.tp.partition.to_string(),
                        or_dash(p.current),
                        p.new.to_string(),
                    ]
                })
                .collect();
            let mut out = render_table(
                &["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
                &rows,
            );
            if executed {
                out.push_str(&format!("\nCommitted new offsets for group {group}.\n"));
            } else {
                out.push_str("\nDry run: nothing committed. Add --execute to commit.\n");
            }
            out
        }
    }
}

/// Turns per-partition commit errors into one error, with the active-members hint for the
/// answers a broker gives to a standalone commit while the group has members.
fn check_commit_results(results: &BTreeMap<TopicPartition, ErrorCode>) -> anyhow::Result<()> {
    let failed: Vec<(&TopicPartition, &ErrorCode)> =
        results.iter().filter(|(_, code)| !code.is_ok()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    if failed.iter().any(|(_, code)| {
        code.is(ResponseError::UnknownMemberId)
            || code.is(ResponseError::RebalanceInProgress)
            || code.is(ResponseError::IllegalGeneration)
    }) {
        bail!(
            "{ACTIVE_MEMBERS_HINT} (the broker refused the commit: {})",
            failed[0].1
        );
    }
    let list: Vec<String> = failed
        .iter()
        .map(|(tp, code)| format!("{tp}: {code}"))
        .collect();
    bail!(
        "commit failed for {} partition(s): {}",
        failed.len(),
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANGE: LogRange = LogRange {
        earliest: 10,
        latest: 100,
    };

    #[test]
    fn targets_land_inside_the_log() {
        assert_eq!(
            new_offset(ResetTarget::Earliest, Some(50), RANGE, None),
            Some(10)
        );
        assert_eq!(
            new_offset(ResetTarget::Latest, None, RANGE, None),
            Some(100)
        );
        assert_eq!(
            new_offset(ResetTarget::Offset(42), None, RANGE, None),
            Some(42)
        );
        assert_eq!(
            new_offset(ResetTarget::Offset(5), None, RANGE, None),
            Some(10)
        );
        assert_eq!(
            new_offset(ResetTarget::Offset(500), None, RANGE, None),
            Some(100)
        );
    }

    #[test]
    fn shifts_start_from_the_committed_offset_and_are_clamped() {
        let shift = |delta, current| new_offset(ResetTarget::ShiftBy(delta), current, RANGE, None);
        assert_eq!(shift(-5, Some(50)), Some(45));
        assert_eq!(shift(30, Some(50)), Some(80));
        assert_eq!(shift(-100, Some(50)), Some(10));
        assert_eq!(shift(1000, Some(50)), Some(100));
        assert_eq!(shift(i64::MAX, Some(50)), Some(100), "no overflow");
        assert_eq!(shift(1, None), None, "nothing to shift from");
    }

    #[test]
    fn timestamps_without_a_match_go_to_the_log_end() {
        let at = |found| new_offset(ResetTarget::Timestamp(1), Some(50), RANGE, found);
        assert_eq!(at(Some(30)), Some(30));
        assert_eq!(at(Some(-1)), Some(100));
        assert_eq!(at(None), Some(100));
    }

    #[test]
    fn a_broker_reporting_start_after_end_does_not_panic() {
        let odd = LogRange {
            earliest: 9,
            latest: 3,
        };
        assert_eq!(new_offset(ResetTarget::Offset(5), None, odd, None), Some(3));
    }

    #[test]
    fn topic_specs_parse() {
        assert_eq!(
            parse_topic_spec("orders").unwrap(),
            ("orders".to_string(), None)
        );
        assert_eq!(
            parse_topic_spec("orders:0, 2").unwrap(),
            ("orders".to_string(), Some(vec![0, 2]))
        );
        assert!(parse_topic_spec("orders:").is_err());
        assert!(parse_topic_spec("orders:x").is_err());
        assert!(parse_topic_spec("orders:-1").is_err());
        assert!(parse_topic_spec(":1").is_err());
    }

    #[test]
    fn datetimes_are_rfc3339_with_any_offset() {
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(
            parse_datetime_ms("2024-05-01T14:00:00.250+02:00").unwrap(),
            parse_datetime_ms("2024-05-01T12:00:00.250Z").unwrap()
        );
        assert!(parse_datetime_ms("2024-05-01").is_err());
        assert!(parse_datetime_ms("yesterday").is_err());
    }

    #[test]
    fn commit_refusals_for_members_get_the_hint() {
        let tp = TopicPartition::new("t", 0);
        let ok = BTreeMap::from([(tp.clone(), ErrorCode::NONE)]);
        assert!(check_commit_results(&ok).is_ok());
        for code in [22, 25, 27] {
            let results = BTreeMap::from([(tp.clone(), ErrorCode(code))]);
            let err = check_commit_results(&results).unwrap_err().to_string();
            assert!(err.contains(ACTIVE_MEMBERS_HINT), "{err}");
        }
        let results = BTreeMap::from([(tp, ErrorCode(3))]);
        let err = check_commit_results(&results).unwrap_err().to_string();
        assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    }

    #[test]
    fn plans_render_as_table_and_json() {
        let plan = vec![
            PlannedReset {
                tp: TopicPartition::new("orders", 0),
                current: Some(120),
                new: 0,
            },
            PlannedReset {
                tp: TopicPartition::new("orders", 1),
                current: None,
                new: 7,
            },
        ];
        let table = render_plan("app", &plan, false, OutputFormat::Table);
        assert_eq!(
            table,
            "TOPIC   PARTITION  CURRENT-OFFSET  NEW-OFFSET\n\
             orders  0          120             0\n\
             orders  1          -               7\n\
             \nDry run: nothing committed. Add --execute to commit.\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_plan("app", &plan, true, OutputFormat::Json)).unwrap();
        assert_eq!(json["executed"], true);
        assert_eq!(
            json["partitions"][1]["current_offset"],
            serde_json::Value::Null
        );
        assert_eq!(json["partitions"][1]["new_offset"], 7);
    }
}
