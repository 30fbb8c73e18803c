//! `strato cluster status`: brokers, topics and per-partition storage read directly from the
//! metadata store (and, if given, the object store). Read-only.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use strato_metadata::model::{
    BrokerRecord, IndexEntry, LeaderRecord, PartitionStateRecord, TopicRecord,
};
use strato_metadata::{MetadataStore, keys};

use crate::cli::table::render_table;
use crate::config::{ClusterStatusArgs, OutputFormat};

#[derive(Debug, Serialize)]
struct PartitionStatus {
    topic: String,
    partition: i32,
    leader: Option<i32>,
    leader_epoch: i32,
    log_start_offset: i64,
    high_watermark: i64,
    index_entries: usize,
    bytes: u64,
    objects: usize,
}

#[derive(Debug, Serialize)]
struct Status {
    brokers: Vec<BrokerRecord>,
    partitions: Vec<PartitionStatus>,
    index_entries: usize,
    objects_referenced: usize,
    /// Objects in the store no index entry refers to (waiting for garbage collection);
    /// `None` without `--object-store`.
    objects_unreferenced: Option<usize>,
}

/// Opens the metadata store named by `--metadata` (`local`: the embedded store in
/// `data_dir`, which only one process may hold at a time).
pub(crate) async fn open_metadata(
    metadata: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<Arc<dyn MetadataStore>> {
    Ok(match metadata {
        "local" => Arc::new(
            strato_metadata::embedded::EmbeddedStore::open(&data_dir.join("meta"))
                .await
                .context("open the embedded metadata store (is the broker still running?)")?,
        ),
        url if url.starts_with("etcd://") => {
            let config = strato_metadata::etcd::EtcdConfig::from_url(url)
                .with_context(|| format!("--metadata {url}"))?;
            Arc::new(
                strato_metadata::etcd::EtcdStore::connect(config)
                    .await
                    .context("connect to etcd")?,
            )
        }
        other => anyhow::bail!("--metadata {other:?}: expected `local` or `etcd://host:port`"),
    })
}

async fn collect(args: &ClusterStatusArgs) -> anyhow::Result<Status> {
    let meta = open_metadata(&args.metadata, &args.data_dir).await?;
    let mut brokers = Vec::new();
    for (key, value) in meta.list_all(keys::BROKERS_PREFIX).await? {
        brokers.push(BrokerRecord::decode(&key, &value.value)?);
    }
    let mut partitions = Vec::new();
    let mut referenced: HashSet<String> = HashSet::new();
    for (key, value) in meta.list_all(keys::TOPICS_PREFIX).await? {
        let topic = TopicRecord::decode(&key, &value.value)?;
        for p in 0..topic.partitions {
            let leader_key = keys::partition_leader(topic.topic_id, p);
            let leader = match meta.get(&leader_key).await? {
                Some(v) => Some(LeaderRecord::decode(&leader_key, &v.value)?),
                None => None,
            };
            let state_key = keys::partition_state(topic.topic_id, p);
            let state = match meta.get(&state_key).await? {
                Some(v) => PartitionStateRecord::decode(&state_key, &v.value)?,
                None => PartitionStateRecord::empty(),
            };
            let mut objects = HashSet::new();
            let mut bytes = 0u64;
            let mut entries = 0usize;
            for (key, value) in meta
                .list_all(&keys::partition_index_prefix(topic.topic_id, p))
                .await?
            {
                let entry = IndexEntry::decode(&key, &value.value)?;
                entries += 1;
                bytes += entry.byte_length;
                objects.insert(entry.object);
            }
            partitions.push(PartitionStatus {
                topic: topic.name.clone(),
                partition: p,
                leader: leader.as_ref().map(|l| l.broker_id),
                leader_epoch: leader.map_or(state.leader_epoch, |l| l.leader_epoch),
                log_start_offset: state.log_start_offset,
                high_watermark: state.high_watermark,
                index_entries: entries,
                bytes,
                objects: objects.len(),
            });
            referenced.extend(objects);
        }
    }
    let objects_unreferenced = match &args.object_store {
        None => None,
        Some(url) => {
            let options = strato_tiering::store::StoreOptions {
                s3_endpoint: args.s3_endpoint.clone(),
            };
            let store = strato_tiering::store::open_object_store(url, &options)?;
            let tier = strato_tiering::Tier::new(
                store,
                strato_tiering::cache::ChunkCache::disabled(),
                Default::default(),
            );
            let all = tier.list_segments().await.context("list segment objects")?;
            Some(all.iter().filter(|k| !referenced.contains(*k)).count())
        }
    };
    Ok(Status {
        brokers,
        index_entries: partitions.iter().map(|p| p.index_entries).sum(),
        partitions,
        objects_referenced: referenced.len(),
        objects_unreferenced,
    })
}

fn render(status: &Status) -> String {
    let mut out = String::new();
    let brokers: Vec<Vec<String>> = status
        .brokers
        .iter()
        .map(|b| {
            vec![
                b.broker_id.to_string(),
                format!("{}:{}", b.host, b.port),
                b.rack.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push_str(&render_table(&["BROKER", "ADDRESS", "RACK"], &brokers));
    out.push('\n');
    let rows: Vec<Vec<String>> = status
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                p.leader.map_or_else(|| "-".into(), |l| l.to_string()),
                p.leader_epoch.to_string(),
                p.log_start_offset.to_string(),
                p.high_watermark.to_string(),
                p.index_entries.to_string(),
                p.bytes.to_string(),
                p.objects.to_string(),
            ]
        })
        .collect();
    out.push_str(&render_table(
        &[
            "TOPIC",
            "PARTITION",
            "LEADER",
            "EPOCH",
            "LOG-START",
            "HIGH-WATERMARK",
            "INDEX-ENTRIES",
            "BYTES",
            "OBJECTS",
        ],
        &rows,
    ));
    let per_topic: BTreeMap<&str, (usize, u64)> =
        status
            .partitions
            .iter()
            .fold(BTreeMap::new(), |mut acc, p| {
                let e = acc.entry(p.topic.as_str()).or_insert((0, 0));
                e.0 += p.index_entries;
                e.1 += p.bytes;
                acc
            });
    out.push('\n');
    for (topic, (entries, bytes)) in per_topic {
        out.push_str(&format!(
            "topic {topic}: {entries} index entries, {bytes} bytes\n"
        ));
    }
    out.push_str(&format!(
        "{} index entries in all; {} objects referenced",
        status.index_entries, status.objects_referenced
    ));
    match status.objects_unreferenced {
        Some(n) => out.push_str(&format!(
            ", {n} unreferenced (awaiting garbage collection)\n"
        )),
        None => out.push('\n'),
    }
    out
}

pub async fn run(args: ClusterStatusArgs) -> anyhow::Result<()> {
    let status = collect(&args).await?;
    let text = match args.output {
        OutputFormat::Table => render(&status),
        OutputFormat::Json => serde_json::to_string_pretty(&status)? + "\n",
    };
    print!("{text}");
    Ok(())
}
