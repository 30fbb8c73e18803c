//! Changes to existing topics: config overrides (AlterConfigs, IncrementalAlterConfigs) and
//! more partitions (CreatePartitions). The topic record is rewritten by compare-and-set; this
//! broker applies the new record at once, the others when their leadership loop sees it
//! change (a watch on `topics/`, and every reconcile interval).

use std::collections::BTreeMap;
use std::sync::Arc;

use strato_metadata::model::TopicRecord;
use strato_metadata::{MetadataError, Txn, Version, keys};

use super::{TOPIC_PARTITIONS_MAX, TopicError, TopicRegistry, valid_topic_name};

/// Attempts of a read-modify-write of a topic record that keeps losing the race to other
/// writers of the same record.
const UPDATE_ATTEMPTS_MAX: usize = 8;

impl TopicRegistry {
    /// The stored record of topic `name`: what every broker converges to.
    pub async fn stored(&self, name: &str) -> Result<Option<TopicRecord>, MetadataError> {
        // A name no topic can have is not looked up (it may not even make a valid key).
        if !valid_topic_name(name) {
            return Ok(None);
        }
        let key = keys::topic(name);
        match self.meta.get(&key).await? {
            Some(value) => Ok(Some(TopicRecord::decode(&key, &value.value)?)),
            None => Ok(None),
        }
    }

    /// Replaces the config overrides of topic `name` by what `change` makes of the stored
    /// ones (it validates; its error is returned as is). With `validate_only`, nothing is
    /// written. Returns the new record.
    pub async fn update_config(
        &self,
        name: &str,
        validate_only: bool,
        change: impl Fn(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, TopicError>,
    ) -> Result<TopicRecord, TopicError> {
        let record = self
            .update(name, validate_only, |record| {
                record.config = change(&record.config)?;
                Ok(())
            })
            .await?;
        if !validate_only {
            tracing::info!(topic = name, config = ?record.config, "topic config changed");
        }
        Ok(record)
    }

    /// Grows topic `name` to `count` partitions (CreatePartitions). The new partitions are
    /// led like any other: this broker takes those it should own at once.
    pub async fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<TopicRecord, TopicError> {
        let record = self
            .update(name, validate_only, |record| {
                if count <= record.partitions {
                    return Err(TopicError::PartitionsNotIncreased {
                        topic: name.to_string(),
                        current: record.partitions,
                        requested: count,
                    });
                }
                if count > TOPIC_PARTITIONS_MAX {
                    return Err(TopicError::InvalidPartitions(count));
                }
                record.partitions = count;
                Ok(())
            })
            .await?;
        if !validate_only {
            tracing::info!(topic = name, partitions = count, "topic partitions added");
        }
        Ok(record)
    }

    /// Read-modify-write of the record of topic `name` by compare-and-set, retried (a
    /// bounded number of times) when another writer got there first.
    async fn update(
        &self,
        name: &str,
        validate_only: bool,
        change: impl Fn(&mut TopicRecord) -> Result<(), TopicError>,
    ) -> Result<TopicRecord, TopicError> {
        if !valid_topic_name(name) {
            return Err(TopicError::UnknownTopic(name.to_string()));
        }
        let key = keys::topic(name);
        for _ in 0..UPDATE_ATTEMPTS_MAX {
            let Some(value) = self.meta.get(&key).await? else {
                return Err(TopicError::UnknownTopic(name.to_string()));
            };
            let mut record = TopicRecord::decode(&key, &value.value)?;
            change(&mut record)?;
            if validate_only {
                return Ok(record);
            }
            let txn = Txn::new()
                .when_version(&key, value.version)
                .put(&key, record.encode());
            match self.meta.txn(txn).await {
                Ok(version) => {
                    let _guard = self.load_lock.lock().await;
                    self.refresh(record.clone(), version).await?;
                    return Ok(record);
                }
                Err(MetadataError::Conflict { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(TopicError::Contended(name.to_string()))
    }

    /// Applies a stored topic record newer than what this broker has: new configs take
    /// effect with the next request or retention pass, new partitions are registered (and
    /// led here at once if this broker should own them). A record with another topic id is
    /// a topic deleted and created again: the old one is forgotten. Called under the load
    /// lock.
    pub(super) async fn refresh(
        &self,
        record: TopicRecord,
        version: Version,
    ) -> Result<(), MetadataError> {
        let Some(known) = self.get(&record.name) else {
            self.load(record, version, false).await?;
            return Ok(());
        };
        if known.topic_id != record.topic_id {
            tracing::info!(topic = %record.name, "topic was created again elsewhere; reloading it");
            self.forget(&record.name);
            self.load(record, version, false).await?;
            return Ok(());
        }
        if version <= known.record_version {
            return Ok(());
        }
        let mut partitions = known.partitions.clone();
        let known_count = i32::try_from(partitions.len()).expect("at most 10000 partitions");
        for index in known_count..record.partitions {
            let partition = match self.open_partition(&record, index, false).await {
                Ok(partition) => partition,
                Err(err) => {
                    // `reconcile` takes it on its next pass.
                    tracing::warn!(topic = %record.name, partition = index, "failed to lead a new partition, will retry: {err:#}");
                    super::Partition::not_led(
                        strato_metadata::model::TopicPartition {
                            topic_id: record.topic_id,
                            partition: index,
                        },
                        record.name.clone(),
                    )
                }
            };
            partitions.push(Arc::new(partition));
        }
        self.install(record, version, partitions);
        Ok(())
    }
}
