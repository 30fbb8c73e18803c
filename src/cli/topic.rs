//! `strato topic create|list|describe|alter|delete`: topic administration over the Kafka
//! protocol, like Kafka's `kafka-topics.sh` and `kafka-configs.sh`. Output is an aligned
//! table or, with `--output json`, one JSON document on stdout. A change the broker refuses
//! ends the command with its error code and reason.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use kafka_protocol::error::ResponseError;
use serde_json::{Value, json};

use super::cluster::{Client, OffsetSpec, TopicPartition};
use super::common::{connect, json_text, or_dash};
use super::table::render_table;
use super::topic_api::{self, NewTopic, TopicConfig};
use crate::config::OutputFormat;
use crate::config::tools::{
    TopicAlterArgs, TopicCommand, TopicCreateArgs, TopicDeleteArgs, TopicDescribeArgs,
    TopicListArgs,
};

pub async fn run(command: TopicCommand) -> anyhow::Result<()> {
    let output = match command {
        TopicCommand::Create(args) => create(args).await?,
        TopicCommand::List(args) => list(args).await?,
        TopicCommand::Describe(args) => describe(args).await?,
        TopicCommand::Alter(args) => alter(args).await?,
        TopicCommand::Delete(args) => delete(args).await?,
    };
    print!("{output}");
    Ok(())
}

/// `NAME=VALUE` -> (NAME, VALUE); the flag is named in the error.
pub(super) fn name_value(text: &str, flag: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => bail!("{flag} takes NAME=VALUE, got {text:?}"),
    }
}

fn name_values(texts: &[String], flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    texts.iter().map(|t| name_value(t, flag)).collect()
}

async fn create(args: TopicCreateArgs) -> anyhow::Result<String> {
    let topic = NewTopic {
        name: args.topic.clone(),
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        configs: name_values(&args.configs, "--config")?,
    };
    let mut client = connect(&args.client).await?;
    let timeout = client.request_timeout();
    let outcome = topic_api::create_topic(client.bootstrap(), &topic, args.validate_only, timeout)
        .await
        .context("create topic")?;
    let existed = match outcome {
        Ok(()) => false,
        Err(failure)
            if args.if_not_exists && failure.code.is(ResponseError::TopicAlreadyExists) =>
        {
            true
        }
        Err(failure) => bail!("topic {:?} not created: {failure}", args.topic),
    };
    let partitions = if args.validate_only || existed {
        None
    } else {
        Some(partition_count(&mut client, &args.topic).await?)
    };
    Ok(match args.output {
        OutputFormat::Json => json_text(&json!({
            "topic": args.topic,
            "created": !existed && !args.validate_only,
            "existed": existed,
            "validate_only": args.validate_only,
            "partitions": partitions,
        })),
        OutputFormat::Table => {
            if existed {
                format!("topic {} exists already\n", args.topic)
            } else if args.validate_only {
                format!("topic {} can be created (validate only)\n", args.topic)
            } else {
                format!(
                    "created topic {} with {} partition(s)\n",
                    args.topic,
                    or_dash(partitions.map(i64::from))
                )
            }
        }
    })
}

/// Partition count of `topic` in Metadata (an error if the topic is unknown).
async fn partition_count(client: &mut Client, topic: &str) -> anyhow::Result<i32> {
    let layouts = client
        .topic_layouts(&[topic.to_string()])
        .await
        .context("read topic metadata")?;
    match layouts.get(topic) {
        Some(Ok(layout)) => Ok(i32::try_from(layout.leaders.len()).unwrap_or(i32::MAX)),
        Some(Err(code)) => bail!("topic {topic:?}: {code}"),
        None => bail!("topic {topic:?} is not in the metadata"),
    }
}

async fn list(args: TopicListArgs) -> anyhow::Result<String> {
    let mut client = connect(&args.client).await?;
    let response = client.metadata(None).await.context("read metadata")?;
    let mut topics: Vec<(String, usize, String)> = response
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.name.as_ref()?.to_string();
            Some((name, t.partitions.len(), t.topic_id.to_string()))
        })
        .collect();
    topics.sort();
    Ok(match args.output {
        OutputFormat::Json => json_text(&Value::Array(
            topics
                .iter()
                .map(|(name, partitions, id)| {
                    json!({"topic": name, "partitions": partitions, "topic_id": id})
                })
                .collect(),
        )),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = topics
                .into_iter()
                .map(|(name, partitions, id)| vec![name, partitions.to_string(), id])
                .collect();
            render_table(&["TOPIC", "PARTITIONS", "TOPIC-ID"], &rows)
        }
    })
}

/// One partition of `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionRow {
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    log_start: Option<i64>,
    log_end: Option<i64>,
}

async fn describe(args: TopicDescribeArgs) -> anyhow::Result<String> {
    let mut client = connect(&args.client).await?;
    let response = client
        .metadata(Some(std::slice::from_ref(&args.topic)))
        .await
        .context("read topic metadata")?;
    let Some(topic) = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == args.topic))
    else {
        bail!("topic {:?} is not in the metadata", args.topic);
    };
    let code = super::kafka_client::ErrorCode(topic.error_code);
    if !code.is_ok() {
        bail!("topic {:?}: {code}", args.topic);
    }
    let topic_id = topic.topic_id.to_string();
    let partitions: Vec<TopicPartition> = topic
        .partitions
        .iter()
        .map(|p| TopicPartition::new(args.topic.clone(), p.partition_index))
        .collect();
    let starts = client
        .list_offsets(&partitions, OffsetSpec::Earliest)
        .await
        .context("look up log start offsets")?;
    let ends = client
        .list_offsets(&partitions, OffsetSpec::Latest)
        .await
        .context("look up log end offsets")?;
    let mut rows: Vec<PartitionRow> = topic
        .partitions
        .iter()
        .map(|p| {
            let tp = TopicPartition::new(args.topic.clone(), p.partition_index);
            PartitionRow {
                partition: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                log_start: starts.get(&tp).and_then(|r| (*r).ok()),
                log_end: ends.get(&tp).and_then(|r| (*r).ok()),
            }
        })
        .collect();
    rows.sort_by_key(|r| r.partition);
    let configs = match topic_api::describe_configs(client.bootstrap(), &args.topic)
        .await
        .context("describe topic configs")?
    {
        Ok(configs) => configs,
        Err(failure) => bail!("configs of topic {:?}: {failure}", args.topic),
    };
    Ok(match args.output {
        OutputFormat::Json => json_text(&describe_json(&args.topic, &topic_id, &rows, &configs)),
        OutputFormat::Table => describe_table(&args.topic, &topic_id, &rows, &configs),
    })
}

fn describe_json(
    topic: &str,
    topic_id: &str,
    rows: &[PartitionRow],
    configs: &[TopicConfig],
) -> Value {
    let configs: BTreeMap<&str, Value> = configs
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                json!({"value": c.value, "source": c.source}),
            )
        })
        .collect();
    json!({
        "topic": topic,
        "topic_id": topic_id,
        "partitions": rows
            .iter()
            .map(|r| json!({
                "partition": r.partition,
                "leader": r.leader,
                "leader_epoch": r.leader_epoch,
                "log_start_offset": r.log_start,
                "log_end_offset": r.log_end,
            }))
            .collect::<Vec<_>>(),
        "configs": configs,
    })
}

fn describe_table(
    topic: &str,
    topic_id: &str,
    rows: &[PartitionRow],
    configs: &[TopicConfig],
) -> String {
    let mut out = format!(
        "Topic: {topic}  Id: {topic_id}  Partitions: {}\n\n",
        rows.len()
    );
    let partition_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.partition.to_string(),
                r.leader.to_string(),
                r.leader_epoch.to_string(),
                or_dash(r.log_start),
                or_dash(r.log_end),
            ]
        })
        .collect();
    out.push_str(&render_table(
        &[
            "PARTITION",
            "LEADER",
            "LEADER-EPOCH",
            "LOG-START",
            "LOG-END",
        ],
        &partition_rows,
    ));
    out.push('\n');
    let config_rows: Vec<Vec<String>> = configs
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.value.clone().unwrap_or_else(|| "-".to_string()),
                c.source.clone(),
            ]
        })
        .collect();
    out.push_str(&render_table(&["CONFIG", "VALUE", "SOURCE"], &config_rows));
    out
}

async fn alter(args: TopicAlterArgs) -> anyhow::Result<String> {
    let set = name_values(&args.configs, "--config")?;
    let mut client = connect(&args.client).await?;
    let timeout = client.request_timeout();
    let topic = &args.topic;
    if let Some(count) = args.partitions {
        topic_api::create_partitions(
            client.bootstrap(),
            topic,
            count,
            args.validate_only,
            timeout,
        )
        .await
        .context("add partitions")?
        .map_err(|failure| {
            anyhow::anyhow!("partitions of topic {topic:?} not changed: {failure}")
        })?;
    }
    if !set.is_empty() || !args.delete_configs.is_empty() {
        topic_api::alter_configs(
            client.bootstrap(),
            topic,
            &set,
            &args.delete_configs,
            args.validate_only,
        )
        .await
        .context("alter topic configs")?
        .map_err(|failure| anyhow::anyhow!("configs of topic {topic:?} not changed: {failure}"))?;
    }
    Ok(match args.output {
        OutputFormat::Json => json_text(&json!({
            "topic": topic,
            "validate_only": args.validate_only,
            "partitions": args.partitions,
            "configs_set": set.iter().cloned().collect::<BTreeMap<String, String>>(),
            "configs_deleted": args.delete_configs,
        })),
        OutputFormat::Table => {
            let mut out = String::new();
            let verb = if args.validate_only { "can be" } else { "is" };
            if let Some(count) = args.partitions {
                out.push_str(&format!(
                    "topic {topic} {verb} grown to {count} partition(s)\n"
                ));
            }
            for (name, value) in &set {
                out.push_str(&format!("{name} {verb} set to {value}\n"));
            }
            for name in &args.delete_configs {
                out.push_str(&format!("{name} {verb} back to its default\n"));
            }
            out
        }
    })
}

async fn delete(args: TopicDeleteArgs) -> anyhow::Result<String> {
    let mut client = connect(&args.client).await?;
    let timeout = client.request_timeout();
    let results = topic_api::delete_topics(client.bootstrap(), &args.topics, timeout)
        .await
        .context("delete topics")?;
    let deleted = |outcome: &topic_api::Outcome| match outcome {
        Ok(()) => true,
        Err(failure) => args.if_exists && failure.code.is(ResponseError::UnknownTopicOrPartition),
    };
    let output = match args.output {
        OutputFormat::Json => json_text(&Value::Array(
            results
                .iter()
                .map(|(topic, outcome)| {
                    json!({
                        "topic": topic,
                        "deleted": deleted(outcome),
                        "error": outcome.as_ref().err().map(|f| f.code.name()),
                    })
                })
                .collect(),
        )),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|(topic, outcome)| {
                    let result = match outcome {
                        Ok(()) => "deleted".to_string(),
                        Err(failure) if deleted(outcome) => {
                            format!("deleted ({})", failure.code.name())
                        }
                        Err(failure) => failure.code.name(),
                    };
                    vec![topic.clone(), result]
                })
                .collect();
            render_table(&["TOPIC", "RESULT"], &rows)
        }
    };
    let failed = results.iter().filter(|(_, o)| !deleted(o)).count();
    if failed > 0 {
        // The per-topic results still reach the operator before the error.
        print!("{output}");
        bail!("{failed} of {} topic(s) not deleted", results.len());
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_value_pairs_need_a_name_and_an_equals_sign() {
        assert_eq!(
            name_value("retention.ms=1000", "--config").unwrap(),
            ("retention.ms".to_string(), "1000".to_string())
        );
        assert_eq!(
            name_value("a=b=c", "--config").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert!(name_value("retention.ms", "--config").is_err());
        assert!(name_value("=1", "--config").is_err());
    }

    #[test]
    fn describe_table_lists_partitions_then_configs() {
        let rows = [PartitionRow {
            partition: 0,
            leader: 1,
            leader_epoch: 3,
            log_start: Some(0),
            log_end: None,
        }];
        let configs = [TopicConfig {
            name: "retention.ms".to_string(),
            value: Some("1000".to_string()),
            source: "topic".to_string(),
        }];
        assert_eq!(
            describe_table("orders", "id-1", &rows, &configs),
            "Topic: orders  Id: id-1  Partitions: 1\n\n\
             PARTITION  LEADER  LEADER-EPOCH  LOG-START  LOG-END\n\
             0          1       3             0          -\n\
             \n\
             CONFIG        VALUE  SOURCE\n\
             retention.ms  1000   topic\n"
        );
    }
}
