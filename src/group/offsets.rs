//! Committed offsets of consumer groups in the metadata store
//! (`groups/<group>/offsets/<topic>/<p>`, plus one `group-ids/<group>` marker per group).
//!
//! Offsets are durable the moment the store's transaction returns, so a broker restart or a
//! coordinator move never loses a committed offset.

use std::collections::BTreeMap;
use std::sync::Arc;

use strato_metadata::model::{CommittedOffsetRecord, GroupIdRecord, RECORD_FORMAT_V1};
use strato_metadata::{MetadataError, MetadataStore, Txn, keys};

/// Writes per transaction. etcd refuses transactions with more than `--max-txn-ops`
/// operations (default 128, etcd server docs), so a large commit is split.
const OPS_PER_TXN: usize = 100;

/// `(topic, partition)`.
pub type TopicPartitionName = (String, i32);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct OffsetStore {
    meta: Arc<dyn MetadataStore>,
}

impl OffsetStore {
    pub fn new(meta: Arc<dyn MetadataStore>) -> Self {
        Self { meta }
    }

    /// Writes the marker that lists the group in ListGroups, if it is not there yet, or
    /// records a protocol type it lacks.
    pub async fn ensure_group_marker(
        &self,
        group_id: &str,
        protocol_type: Option<&str>,
    ) -> Result<(), MetadataError> {
        let key = keys::group_id_marker(group_id);
        let (created_at_ms, version) = match self.meta.get(&key).await? {
            Some(existing) => {
                let record = GroupIdRecord::decode(&key, &existing.value)?;
                if protocol_type.is_none() || record.protocol_type.as_deref() == protocol_type {
                    return Ok(());
                }
                (record.created_at_ms, existing.version)
            }
            None => (now_ms(), 0),
        };
        let record = GroupIdRecord {
            v: RECORD_FORMAT_V1,
            group_id: group_id.to_string(),
            created_at_ms,
            protocol_type: protocol_type.map(str::to_string),
        };
        match self
            .meta
            .txn(
                Txn::new()
                    .when_version(&key, version)
                    .put(&key, record.encode()),
            )
            .await
        {
            // Someone else wrote it meanwhile: it exists, which is what matters.
            Ok(_) | Err(MetadataError::Conflict { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Stores `offsets`; each chunk of [`OPS_PER_TXN`] is atomic. Returns, per offset in input
    /// order, whether it was written.
    pub async fn commit(
        &self,
        group_id: &str,
        offsets: Vec<(TopicPartitionName, CommittedOffsetRecord)>,
    ) -> Vec<Result<(), Arc<MetadataError>>> {
        let mut results = Vec::with_capacity(offsets.len());
        for chunk in offsets.chunks(OPS_PER_TXN) {
            let mut txn = Txn::new();
            for ((topic, partition), record) in chunk {
                txn = txn.put(
                    keys::group_offset(group_id, topic, *partition),
                    record.encode(),
                );
            }
            match self.meta.txn(txn).await {
                Ok(_) => results.extend(chunk.iter().map(|_| Ok(()))),
                Err(err) => {
                    tracing::warn!(group = %group_id, "failed to commit offsets: {err:#}");
                    let err = Arc::new(err);
                    results.extend(chunk.iter().map(|_| Err(Arc::clone(&err))));
                }
            }
        }
        results
    }

    /// Every committed offset of the group.
    pub async fn fetch_all(
        &self,
        group_id: &str,
    ) -> Result<BTreeMap<TopicPartitionName, CommittedOffsetRecord>, MetadataError> {
        let prefix = keys::group_offsets_prefix(group_id);
        let mut offsets = BTreeMap::new();
        for (key, versioned) in self.meta.list_all(&prefix).await? {
            let Some((topic, partition)) = parse_offset_key(&prefix, &key) else {
                tracing::warn!(%key, "ignoring a malformed committed-offset key");
                continue;
            };
            let record = CommittedOffsetRecord::decode(&key, &versioned.value)?;
            offsets.insert((topic, partition), record);
        }
        Ok(offsets)
    }

    /// Groups with stored state, in key order, with their protocol types ("" if unknown).
    pub async fn list_groups(&self) -> Result<Vec<(String, String)>, MetadataError> {
        let entries = self.meta.list_all(keys::GROUP_IDS_PREFIX).await?;
        let mut groups = Vec::with_capacity(entries.len());
        for (key, versioned) in entries {
            let record = GroupIdRecord::decode(&key, &versioned.value)?;
            groups.push((record.group_id, record.protocol_type.unwrap_or_default()));
        }
        Ok(groups)
    }

    /// The stored protocol type of a group without members: `None` if the group has no
    /// stored state at all.
    pub async fn stored_group(&self, group_id: &str) -> Result<Option<String>, MetadataError> {
        let key = keys::group_id_marker(group_id);
        match self.meta.get(&key).await? {
            None => Ok(None),
            Some(versioned) => {
                let record = GroupIdRecord::decode(&key, &versioned.value)?;
                Ok(Some(record.protocol_type.unwrap_or_default()))
            }
        }
    }

    /// Deletes some committed offsets of a group.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartitionName],
    ) -> Result<(), MetadataError> {
        for chunk in partitions.chunks(OPS_PER_TXN) {
            let mut txn = Txn::new();
            for (topic, partition) in chunk {
                txn = txn.delete(keys::group_offset(group_id, topic, *partition));
            }
            self.meta.txn(txn).await?;
        }
        Ok(())
    }

    /// Deletes every group's committed offsets of `topic` (the topic was deleted: a topic
    /// created later under the same name starts without them, as in Kafka). Returns how many
    /// offsets went.
    pub async fn delete_topic_offsets(&self, topic: &str) -> Result<usize, MetadataError> {
        let mut deleted = 0;
        for (group_id, _) in self.list_groups().await? {
            deleted += self
                .delete_prefix(&keys::group_topic_offsets_prefix(&group_id, topic))
                .await?;
        }
        Ok(deleted)
    }

    /// Deletes every key under `prefix`, in transactions of at most [`OPS_PER_TXN`].
    async fn delete_prefix(&self, prefix: &str) -> Result<usize, MetadataError> {
        let keys_to_delete: Vec<String> = self
            .meta
            .list_all(prefix)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        for chunk in keys_to_delete.chunks(OPS_PER_TXN) {
            let txn = chunk.iter().fold(Txn::new(), |txn, key| txn.delete(key));
            self.meta.txn(txn).await?;
        }
        Ok(keys_to_delete.len())
    }

    /// Deletes everything stored for the group: offsets first, the marker last, so a failure
    /// half way leaves a group that is still listed and can be deleted again.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), MetadataError> {
        self.delete_prefix(&keys::group_prefix(group_id)).await?;
        self.meta
            .txn(Txn::new().delete(keys::group_id_marker(group_id)))
            .await?;
        Ok(())
    }
}

/// `<prefix><topic>/<partition>` → `(topic, partition)`.
fn parse_offset_key(prefix: &str, key: &str) -> Option<TopicPartitionName> {
    let rest = key.strip_prefix(prefix)?;
    let (topic, partition) = rest.rsplit_once('/')?;
    Some((topic.to_string(), partition.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_metadata::embedded::EmbeddedStore;

    fn record(offset: i64) -> CommittedOffsetRecord {
        CommittedOffsetRecord {
            v: RECORD_FORMAT_V1,
            offset,
            leader_epoch: -1,
            metadata: Some("m".into()),
            commit_timestamp_ms: 1,
        }
    }

    #[tokio::test]
    async fn offsets_round_trip_in_chunks_and_groups_are_deleted_whole() {
        let dir = tempfile::tempdir().unwrap();
        let meta: Arc<dyn MetadataStore> = Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
        let store = OffsetStore::new(meta);
        let group = "odd/group name";
        store.ensure_group_marker(group, None).await.unwrap();
        store
            .ensure_group_marker(group, Some("consumer"))
            .await
            .unwrap();
        store.ensure_group_marker(group, None).await.unwrap();
        store.ensure_group_marker("other", None).await.unwrap();
        // More partitions than one transaction may hold.
        let offsets: Vec<_> = (0..250)
            .map(|p| (("topic.a".to_string(), p), record(i64::from(p) * 10)))
            .collect();
        let results = store.commit(group, offsets).await;
        assert_eq!(results.len(), 250);
        assert!(results.iter().all(Result::is_ok));
        let fetched = store.fetch_all(group).await.unwrap();
        assert_eq!(fetched.len(), 250);
        assert_eq!(fetched[&("topic.a".to_string(), 249)].offset, 2490);
        assert!(store.fetch_all("other").await.unwrap().is_empty());
        assert_eq!(
            store.list_groups().await.unwrap(),
            vec![
                (group.to_string(), "consumer".to_string()),
                ("other".to_string(), String::new())
            ]
        );

        store
            .delete_offsets(group, &[("topic.a".to_string(), 0)])
            .await
            .unwrap();
        assert_eq!(store.fetch_all(group).await.unwrap().len(), 249);
        store.delete_group(group).await.unwrap();
        assert!(store.fetch_all(group).await.unwrap().is_empty());
        assert_eq!(store.stored_group(group).await.unwrap(), None);
        assert_eq!(
            store.stored_group("other").await.unwrap(),
            Some(String::new())
        );
    }

    #[tokio::test]
    async fn a_deleted_topics_offsets_go_from_every_group_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let meta: Arc<dyn MetadataStore> = Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
        let store = OffsetStore::new(meta);
        for group in ["a", "b"] {
            store.ensure_group_marker(group, None).await.unwrap();
            let offsets = [("gone", 0), ("gone", 1), ("gone-not", 0), ("kept", 0)]
                .map(|(t, p)| ((t.to_string(), p), record(5)));
            assert!(
                store
                    .commit(group, offsets.to_vec())
                    .await
                    .iter()
                    .all(Result::is_ok)
            );
        }
        assert_eq!(store.delete_topic_offsets("gone").await.unwrap(), 4);
        for group in ["a", "b"] {
            let left: Vec<_> = store.fetch_all(group).await.unwrap().into_keys().collect();
            assert_eq!(
                left,
                vec![("gone-not".to_string(), 0), ("kept".to_string(), 0)]
            );
        }
        assert_eq!(store.delete_topic_offsets("gone").await.unwrap(), 0);
    }

    #[test]
    fn offset_keys_parse_back() {
        let prefix = keys::group_offsets_prefix("g");
        assert_eq!(
            parse_offset_key(&prefix, &keys::group_offset("g", "t-1", 7)),
            Some(("t-1".to_string(), 7))
        );
        assert_eq!(parse_offset_key(&prefix, "groups/g/offsets/t"), None);
    }
}
