//! Topics known to this broker and the partitions it leads: creation, loading, and
//! leadership — acquired for the partitions the cluster view assigns to this broker,
//! released for the others — through the metadata store.
//!
//! Acquiring a partition waits (at most `HANDOFF_GRACE`) for another live holder to hand
//! it over, then bumps the epoch in `partitions/<id>/<p>/leader` by compare-and-set under the
//! broker's lease and loads the partition's state and index. Releasing stops admitting
//! produce, lets accepted batches commit (briefly), then deletes the leader key. Deleting a
//! topic removes its record first (no broker loads it again), then its partitions' keys;
//! other brokers forget it on their next pass. A topic's partitions are swapped
//! copy-on-write (a new `Topic`), never changed in place.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use strato_metadata::model::{
    IndexEntry, LeaderRecord, PartitionStateRecord, RECORD_FORMAT_V1, TopicPartition, TopicRecord,
};
use strato_metadata::{LeaseId, MetadataError, MetadataStore, Txn, Version, keys};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cluster::ClusterView;

use super::flush::now_ms;
use super::partition::Partition;

mod alter;

/// Longest topic name, as in Kafka (`Topic.MAX_NAME_LENGTH`).
pub const TOPIC_NAME_MAX_LEN: usize = 249;
/// Most partitions of one topic.
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;

/// How long a new owner waits for the current, still live leader to release a partition
/// (finish its in-flight flush and delete its leader key) before taking it anyway.
const HANDOFF_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a releasing leader waits for its accepted batches to be committed.
const RELEASE_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Poll interval of both waits above.
const HANDOFF_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// The leadership loop also runs this often without a membership change (to pick up topics
/// created through other brokers and retry failed acquisitions).
const RECONCILE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Keys deleted per transaction when a topic goes (etcd allows 128 operations).
const DELETES_PER_TXN: usize = 100;
/// Leadership changes (acquire or release) in flight at once.
const LEADERSHIP_CONCURRENCY: usize = 16;

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub topic_id: Uuid,
    pub config: BTreeMap<String, String>,
    /// Version of the topic record this state comes from: a record is applied only if it
    /// is newer, so a slow reader never undoes a later change.
    pub record_version: Version,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// Partition `index`, if the topic has it (indexes come from the network: any i32).
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    #[error("invalid topic name {0:?}")]
    InvalidName(String),
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// CreatePartitions may only add partitions.
    #[error(
        "topic {topic:?} already has {current} partitions; partitions can only be added \
         (asked for {requested})"
    )]
    PartitionsNotIncreased {
        topic: String,
        current: i32,
        requested: i32,
    },
    /// A config change that is not allowed; the message says why.
    #[error("{0}")]
    InvalidConfig(String),
    /// A malformed change request; the message says why.
    #[error("{0}")]
    InvalidRequest(String),
    /// The topic record kept changing under a read-modify-write.
    #[error("topic {0:?} changed concurrently too often; try again")]
    Contended(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// Kafka's rule: 1..=249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TOPIC_NAME_MAX_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

pub struct TopicRegistry {
    meta: Arc<dyn MetadataStore>,
    broker_id: i32,
    cluster: Arc<ClusterView>,
    /// The broker lease that leader keys are bound to (replaced after a lease loss).
    lease: std::sync::Mutex<LeaseId>,
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
    by_id: RwLock<HashMap<Uuid, Arc<Topic>>>,
    /// Serializes loads and creations so one topic is never loaded twice.
    load_lock: tokio::sync::Mutex<()>,
    /// Leadership changes since start (for metrics).
    pub acquisitions: std::sync::atomic::AtomicU64,
    pub releases: std::sync::atomic::AtomicU64,
    /// Bumped whenever partitions are installed (led or not): the marker writer lists the
    /// requests of partitions it newly leads.
    leadership: watch::Sender<u64>,
}

impl TopicRegistry {
    pub fn new(meta: Arc<dyn MetadataStore>, cluster: Arc<ClusterView>, lease: LeaseId) -> Self {
        Self {
            meta,
            broker_id: cluster.broker_id(),
            cluster,
            lease: std::sync::Mutex::new(lease),
            by_name: RwLock::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
            load_lock: tokio::sync::Mutex::new(()),
            acquisitions: std::sync::atomic::AtomicU64::new(0),
            releases: std::sync::atomic::AtomicU64::new(0),
            leadership: watch::channel(0).0,
        }
    }

    /// A receiver that changes after partitions were installed (acquired, released, loaded).
    pub fn subscribe_leadership(&self) -> watch::Receiver<u64> {
        self.leadership.subscribe()
    }

    /// The lease this broker's leader keys (and registration) are bound to.
    pub fn lease(&self) -> LeaseId {
        *self.lease.lock().expect("lease lock")
    }

    /// Stops leading every partition at once (the broker lease is lost or may be): no
    /// produce is admitted, and pending commits fail their fence.
    pub fn fence_all(&self) {
        for topic in self.all() {
            for partition in &topic.partitions {
                partition.lock().fenced = true;
            }
        }
    }

    /// After a lease loss: binds leadership to `lease` and takes the partitions this broker
    /// should own again (new epochs, state reloaded from the metadata store).
    pub async fn reacquire_all(&self, lease: LeaseId) -> Result<(), MetadataError> {
        *self.lease.lock().expect("lease lock") = lease;
        self.reload_topics().await?;
        self.reconcile().await;
        Ok(())
    }

    /// Registers every known topic again with no partition led (after a lease loss).
    async fn reload_topics(&self) -> Result<(), MetadataError> {
        let _guard = self.load_lock.lock().await;
        for topic in self.all() {
            let key = keys::topic(&topic.name);
            match self.meta.get(&key).await? {
                Some(value) => {
                    let record = TopicRecord::decode(&key, &value.value)?;
                    self.load(record, value.version, false).await?;
                }
                None => {
                    // Deleted meanwhile (a later issue adds deletion): forget it.
                    self.by_name
                        .write()
                        .expect("topics lock")
                        .remove(&topic.name);
                    self.by_id
                        .write()
                        .expect("topics lock")
                        .remove(&topic.topic_id);
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.by_name.read().expect("topics lock").get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.by_id.read().expect("topics lock").get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<Arc<Topic>> = self
            .by_name
            .read()
            .expect("topics lock")
            .values()
            .cloned()
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Deletes topic `name`: its record first (no broker loads it again), then every key of
    /// its partitions, in transactions of at most [`DELETES_PER_TXN`] keys. Its objects are
    /// left to garbage collection. `Ok(false)`: no such topic.
    pub async fn delete(&self, name: &str) -> Result<bool, MetadataError> {
        let key = keys::topic(name);
        let Some(value) = self.meta.get(&key).await? else {
            return Ok(false);
        };
        let record = TopicRecord::decode(&key, &value.value)?;
        match self
            .meta
            .txn(Txn::new().when_version(&key, value.version).delete(&key))
            .await
        {
            Ok(_) => {}
            // Deleted or re-created meanwhile: the caller's topic is gone either way.
            Err(MetadataError::Conflict { .. }) => return Ok(false),
            Err(err) => return Err(err),
        }
        self.forget(name);
        // Marker requests of its partitions go too: no leader will write them.
        let mut partition_keys: Vec<String> = Vec::new();
        for prefix in [
            keys::topic_partitions_prefix(record.topic_id),
            format!("{}{}/", keys::TXN_MARKERS_PREFIX, record.topic_id),
        ] {
            partition_keys.extend(
                self.meta
                    .list_all(&prefix)
                    .await?
                    .into_iter()
                    .map(|(k, _)| k),
            );
        }
        for chunk in partition_keys.chunks(DELETES_PER_TXN) {
            let txn = chunk.iter().fold(Txn::new(), |txn, k| txn.delete(k));
            self.meta.txn(txn).await?;
        }
        tracing::info!(topic = name, topic_id = %record.topic_id, "topic deleted");
        Ok(true)
    }

    /// Drops topic `name` from this broker: its partitions stop being led here at once
    /// (pending produce fails its commit, the leader keys being gone).
    fn forget(&self, name: &str) {
        let removed = self.by_name.write().expect("topics lock").remove(name);
        if let Some(topic) = removed {
            self.by_id
                .write()
                .expect("topics lock")
                .remove(&topic.topic_id);
            self.cluster.forget_topic(topic.topic_id);
            for partition in &topic.partitions {
                partition.lock().fenced = true;
            }
        }
    }

    /// Loads every topic in the metadata store and takes leadership of its partitions;
    /// forgets topics deleted through other brokers.
    pub async fn load_all(&self) -> Result<usize, MetadataError> {
        let records = self.meta.list_all(keys::TOPICS_PREFIX).await?;
        let stored: std::collections::HashSet<String> = records
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(keys::TOPICS_PREFIX).map(str::to_string))
            .collect();
        let gone: Vec<String> = self
            .all()
            .into_iter()
            .map(|t| t.name.clone())
            .filter(|name| !stored.contains(name))
            .collect();
        for name in gone {
            // Checked again under the load lock: a topic created here after the listing
            // has its record by now.
            let _guard = self.load_lock.lock().await;
            if self.meta.get(&keys::topic(&name)).await?.is_none() {
                tracing::info!(topic = %name, "topic deleted elsewhere; forgetting it");
                self.forget(&name);
            }
        }
        let mut loaded = 0;
        for (key, value) in records {
            let record = TopicRecord::decode(&key, &value.value)?;
            let _guard = self.load_lock.lock().await;
            match self.get(&record.name) {
                None => {
                    self.load(record, value.version, false).await?;
                    loaded += 1;
                }
                // Altered through another broker: new configs or more partitions.
                Some(_) => self.refresh(record, value.version).await?,
            }
        }
        Ok(loaded)
    }

    /// Returns the topic, loading it from the metadata store if another path created it.
    pub async fn lookup(&self, name: &str) -> Result<Option<Arc<Topic>>, MetadataError> {
        if let Some(topic) = self.get(name) {
            return Ok(Some(topic));
        }
        if !valid_topic_name(name) {
            return Ok(None);
        }
        let _guard = self.load_lock.lock().await;
        if let Some(topic) = self.get(name) {
            return Ok(Some(topic));
        }
        match self.meta.get(&keys::topic(name)).await? {
            None => Ok(None),
            Some(value) => {
                let record = TopicRecord::decode(&keys::topic(name), &value.value)?;
                Ok(Some(self.load(record, value.version, false).await?))
            }
        }
    }

    /// Creates a topic (or, with `validate_only`, checks that it could be created).
    pub async fn create(
        &self,
        name: &str,
        partitions: i32,
        config: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        if !valid_topic_name(name) {
            return Err(TopicError::InvalidName(name.to_string()));
        }
        if !(1..=TOPIC_PARTITIONS_MAX).contains(&partitions) {
            return Err(TopicError::InvalidPartitions(partitions));
        }
        let _guard = self.load_lock.lock().await;
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let record = TopicRecord {
            v: RECORD_FORMAT_V1,
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions,
            config,
            created_at_ms: now_ms(),
        };
        let key = keys::topic(name);
        if validate_only {
            if self.meta.get(&key).await?.is_some() {
                return Err(TopicError::AlreadyExists(name.to_string()));
            }
            return Ok(Arc::new(Topic {
                name: record.name,
                topic_id: record.topic_id,
                config: record.config,
                record_version: 0,
                partitions: Vec::new(),
            }));
        }
        let version = match self
            .meta
            .txn(Txn::new().when_version(&key, 0).put(&key, record.encode()))
            .await
        {
            Ok(version) => version,
            Err(MetadataError::Conflict { .. }) => {
                return Err(TopicError::AlreadyExists(name.to_string()));
            }
            Err(err) => return Err(err.into()),
        };
        tracing::info!(topic = name, partitions, topic_id = %record.topic_id, "topic created");
        Ok(self.load(record, version, true).await?)
    }

    /// Registers the topic, leading at once the partitions this broker should own that no
    /// other live broker holds (always, for a topic created here). Partitions still held by
    /// a live broker are left to `reconcile`, which waits for hand-overs concurrently, so
    /// start-up never waits for them (up to a lease TTL while a killed broker still holds
    /// its partitions).
    async fn load(
        &self,
        record: TopicRecord,
        version: Version,
        acquire_now: bool,
    ) -> Result<Arc<Topic>, MetadataError> {
        let mut partitions = Vec::with_capacity(record.partitions as usize);
        for p in 0..record.partitions {
            partitions.push(Arc::new(
                self.open_partition(&record, p, acquire_now).await?,
            ));
        }
        Ok(self.install(record, version, partitions))
    }

    /// Partition `index` of the topic `record`: led at once if this broker should own it
    /// and no other live broker holds it (or `acquire_now`), else left to `reconcile`.
    async fn open_partition(
        &self,
        record: &TopicRecord,
        index: i32,
        acquire_now: bool,
    ) -> Result<Partition, MetadataError> {
        let tp = TopicPartition {
            topic_id: record.topic_id,
            partition: index,
        };
        // Owners are balanced over the topic's partitions: the count first.
        self.cluster
            .set_topic_partitions(record.topic_id, record.partitions);
        let owned = self.cluster.partition_owner(tp) == self.broker_id;
        Ok(
            if owned && (acquire_now || !self.held_by_other(tp).await?) {
                self.acquire(tp, &record.name).await?
            } else {
                Partition::not_led(tp, record.name.clone())
            },
        )
    }

    /// Makes `record` (stored at `version`) with `partitions` the registered state of its
    /// topic.
    fn install(
        &self,
        record: TopicRecord,
        version: Version,
        partitions: Vec<Arc<Partition>>,
    ) -> Arc<Topic> {
        self.cluster
            .set_topic_partitions(record.topic_id, record.partitions);
        let topic = Arc::new(Topic {
            name: record.name.clone(),
            topic_id: record.topic_id,
            config: record.config,
            record_version: version,
            partitions,
        });
        self.by_id
            .write()
            .expect("topics lock")
            .insert(record.topic_id, topic.clone());
        self.by_name
            .write()
            .expect("topics lock")
            .insert(record.name, topic.clone());
        self.leadership.send_modify(|n| *n = n.wrapping_add(1));
        topic
    }

    /// Whether another live broker holds the leader key of `tp` (a hand-over to wait for).
    async fn held_by_other(&self, tp: TopicPartition) -> Result<bool, MetadataError> {
        let leader_key = keys::partition_leader(tp.topic_id, tp.partition);
        Ok(match self.meta.get(&leader_key).await? {
            Some(v) => {
                let holder = LeaderRecord::decode(&leader_key, &v.value)?.broker_id;
                holder != self.broker_id && self.cluster.is_live(holder)
            }
            None => false,
        })
    }

    /// Waits (at most [`HANDOFF_GRACE`]) while another live broker holds the leader key, so
    /// a leader that is handing the partition over can commit what it accepted first.
    async fn await_handoff(&self, leader_key: &str) -> Result<(), MetadataError> {
        let deadline = tokio::time::Instant::now() + HANDOFF_GRACE;
        loop {
            let holder = match self.meta.get(leader_key).await? {
                Some(v) => LeaderRecord::decode(leader_key, &v.value)?.broker_id,
                None => return Ok(()),
            };
            if holder == self.broker_id
                || !self.cluster.is_live(holder)
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(());
            }
            tokio::time::sleep(HANDOFF_POLL).await;
        }
    }

    /// Becomes leader of `tp`: bumps the leader epoch under our lease, then loads the
    /// committed state and index.
    async fn acquire(&self, tp: TopicPartition, topic: &str) -> Result<Partition, MetadataError> {
        let leader_key = keys::partition_leader(tp.topic_id, tp.partition);
        let state_key = keys::partition_state(tp.topic_id, tp.partition);
        self.await_handoff(&leader_key).await?;
        let (leader_version, leader_epoch) = loop {
            let current = self.meta.get(&leader_key).await?;
            let (version, previous_epoch) = match &current {
                Some(v) => (
                    v.version,
                    LeaderRecord::decode(&leader_key, &v.value)?.leader_epoch,
                ),
                None => (0, -1),
            };
            // The state remembers the epoch of its last writer, so epochs grow even after
            // the leader key vanished with an old lease.
            let state_epoch = match self.meta.get(&state_key).await? {
                Some(v) => PartitionStateRecord::decode(&state_key, &v.value)?.leader_epoch,
                None => -1,
            };
            let epoch = previous_epoch.max(state_epoch) + 1;
            let record = LeaderRecord {
                v: RECORD_FORMAT_V1,
                broker_id: self.broker_id,
                leader_epoch: epoch,
            };
            match self
                .meta
                .txn(
                    Txn::new()
                        .when_version(&leader_key, version)
                        .put_with_lease(&leader_key, record.encode(), self.lease()),
                )
                .await
            {
                Ok(new_version) => break (new_version, epoch),
                Err(MetadataError::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        };
        let (state_version, state) = match self.meta.get(&state_key).await? {
            Some(v) => (
                v.version,
                PartitionStateRecord::decode(&state_key, &v.value)?,
            ),
            None => (0, PartitionStateRecord::empty()),
        };
        let mut index = BTreeMap::new();
        for (key, value) in self
            .meta
            .list_all(&keys::partition_index_prefix(tp.topic_id, tp.partition))
            .await?
        {
            let entry = IndexEntry::decode(&key, &value.value)?;
            index.insert(entry.base_offset, entry);
        }
        let aborted =
            super::partition::load_aborted(self.meta.as_ref(), tp, state.high_watermark).await?;
        tracing::info!(
            topic,
            partition = tp.partition,
            leader_epoch,
            high_watermark = state.high_watermark,
            chunks = index.len(),
            aborted_transactions = aborted.len(),
            "partition leadership acquired"
        );
        self.acquisitions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut state = state;
        state.leader_epoch = leader_epoch;
        // The new epoch starts at the committed end; it is persisted with the first commit
        // (an epoch that writes nothing needs no entry: the next one starts at the same
        // offset).
        super::partition::push_epoch(&mut state.epochs, leader_epoch, state.high_watermark);
        Ok(Partition::new(
            tp,
            topic.to_string(),
            leader_epoch,
            leader_version,
            state_version,
            &state,
            super::partition::CommittedLog { index, aborted },
        ))
    }

    /// Replaces partition `index` of `topic` (copy on write: readers holding the old topic
    /// keep a consistent, if stale, view and get NOT_LEADER_OR_FOLLOWER from it).
    fn set_partition(&self, topic_id: Uuid, index: usize, partition: Arc<Partition>) {
        let mut by_id = self.by_id.write().expect("topics lock");
        let Some(current) = by_id.get(&topic_id).cloned() else {
            return;
        };
        let mut partitions = current.partitions.clone();
        partitions[index] = partition;
        let topic = Arc::new(Topic {
            name: current.name.clone(),
            topic_id,
            config: current.config.clone(),
            record_version: current.record_version,
            partitions,
        });
        by_id.insert(topic_id, topic.clone());
        self.by_name
            .write()
            .expect("topics lock")
            .insert(topic.name.clone(), topic);
        drop(by_id);
        self.leadership.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Stops leading `partition`: no new produce is admitted, batches already accepted are
    /// given a moment to commit, then the leader key is deleted so the new owner can take
    /// over at once.
    async fn release(&self, partition: &Partition) -> Result<(), MetadataError> {
        {
            let mut state = partition.lock();
            if state.fenced {
                return Ok(());
            }
            state.fenced = true;
        }
        let deadline = tokio::time::Instant::now() + RELEASE_FLUSH_WAIT;
        loop {
            {
                let state = partition.lock();
                if state.next_offset == state.high_watermark || state.needs_reload {
                    break;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    topic = %partition.topic,
                    partition = partition.tp.partition,
                    "releasing leadership with batches still in flight; they fail and are retried"
                );
                break;
            }
            tokio::time::sleep(HANDOFF_POLL).await;
        }
        let leader_version = partition.lock().leader_version;
        let leader_key = keys::partition_leader(partition.tp.topic_id, partition.tp.partition);
        match self
            .meta
            .txn(
                Txn::new()
                    .when_version(&leader_key, leader_version)
                    .delete(&leader_key),
            )
            .await
        {
            // Taken over already: nothing of ours to delete.
            Ok(_) | Err(MetadataError::Conflict { .. }) => {}
            Err(err) => return Err(err),
        }
        tracing::info!(
            topic = %partition.topic,
            partition = partition.tp.partition,
            "partition leadership released"
        );
        self.releases
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Brings leadership in line with the cluster view: acquires what this broker should
    /// own and does not lead, releases what it leads and should not.
    pub async fn reconcile(&self) {
        use futures::StreamExt;
        let _guard = self.load_lock.lock().await;
        let mut changes = Vec::new();
        for topic in self.all() {
            for (index, partition) in topic.partitions.iter().enumerate() {
                let should_lead = self.cluster.partition_owner(partition.tp) == self.broker_id;
                let (led, needs_reload) = {
                    let state = partition.lock();
                    (!state.fenced, state.needs_reload)
                };
                if should_lead == led || needs_reload {
                    continue;
                }
                changes.push((topic.clone(), index, partition.clone(), should_lead));
            }
        }
        let results: Vec<_> = futures::stream::iter(changes)
            .map(|(topic, index, partition, should_lead)| async move {
                let tp = partition.tp;
                let result = if should_lead {
                    match self.acquire(tp, &topic.name).await {
                        Ok(acquired) => {
                            self.set_partition(topic.topic_id, index, Arc::new(acquired));
                            Ok(())
                        }
                        Err(err) => Err(err),
                    }
                } else {
                    match self.release(&partition).await {
                        Ok(()) => {
                            let idle = Partition::not_led(tp, topic.name.clone());
                            self.set_partition(topic.topic_id, index, Arc::new(idle));
                            Ok(())
                        }
                        Err(err) => Err(err),
                    }
                };
                (topic.name.clone(), tp.partition, result)
            })
            .buffer_unordered(LEADERSHIP_CONCURRENCY)
            .collect()
            .await;
        for (topic, partition, result) in results {
            if let Err(err) = result {
                tracing::warn!(%topic, partition, "failed to change partition leadership, will retry: {err:#}");
            }
        }
    }

    /// Keeps leadership in line with the cluster until `shutdown`: after every change of the
    /// live brokers and every [`RECONCILE_INTERVAL`] (topics created through other brokers
    /// are loaded then).
    pub async fn run_leadership(
        &self,
        mut changes: watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) {
        let mut interval = tokio::time::interval(RECONCILE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut topic_events = None;
        loop {
            if topic_events.is_none() {
                // Without a watch, topic changes made through other brokers still arrive
                // with the next interval.
                topic_events = match self.meta.watch(keys::TOPICS_PREFIX).await {
                    Ok(events) => Some(events),
                    Err(err) => {
                        tracing::warn!("failed to watch topics, will retry: {err:#}");
                        None
                    }
                };
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
                _ = interval.tick() => {}
                event = next_event(&mut topic_events) => match event {
                    // One pass covers a burst of changes.
                    Some(_) => while topic_events.as_mut().is_some_and(|rx| rx.try_recv().is_ok()) {},
                    None => topic_events = None,
                },
            }
            if let Err(err) = self.load_all().await {
                tracing::warn!("failed to load new topics: {err:#}");
            }
            self.reconcile().await;
        }
    }
}

/// The next event of an open watch; never, without one.
async fn next_event(
    events: &mut Option<tokio::sync::mpsc::Receiver<strato_metadata::WatchEvent>>,
) -> Option<strato_metadata::WatchEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}
