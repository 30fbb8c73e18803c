//! The live cluster as this broker sees it: registered brokers (watched under `brokers/`)
//! and who should own what — partition leadership and group coordination — by rendezvous
//! hashing over the live brokers.
//!
//! Promise: every broker computes the same owner from the same set of live brokers (the
//! hash is stable across processes, versions and platforms), so ownership needs no
//! coordination beyond the broker registrations; the metadata store's compare-and-set on
//! leader keys keeps a transient disagreement safe.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use strato_metadata::model::{BrokerRecord, TopicPartition};
use strato_metadata::{MetadataStore, WatchEvent, keys};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a broker that left (its registration gone: a drain, or a lease that expired)
/// is still listed in Metadata responses, though it leads and coordinates nothing. librdkafka
/// (2.10+) drops brokers Metadata no longer lists, and a request waiting for a coordinator
/// on a dropped broker is never retried: a transactional producer's TxnOffsetCommit to the
/// group coordinator that just died then blocks `send_offsets_to_transaction` forever (seen
/// in `transactions_eos`). Listed, the dead broker's failed reconnects make the client
/// look the coordinator up again within a second. 30 s covers librdkafka's longest
/// reconnect backoff (10 s, plus jitter) twice; tools that ask every listed broker
/// (Java's listConsumerGroups) may fail for that long after a broker leaves.
const DEPARTED_LISTED_FOR: Duration = Duration::from_secs(30);
/// Departed brokers remembered at most (the oldest are forgotten first).
const DEPARTED_MAX: usize = 1000;

/// Pause before re-establishing a failed watch of the broker registrations.
const WATCH_RETRY: Duration = Duration::from_secs(1);
/// How long a leader read from the metadata store is reused for Metadata responses.
const LEADER_CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries of the leader cache; it is emptied when full.
const LEADER_CACHE_MAX: usize = 100_000;

/// The leader of a partition as another broker recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    pub broker_id: i32,
    /// -1 when no live broker holds the leader key yet.
    pub leader_epoch: i32,
}

pub struct ClusterView {
    broker_id: i32,
    brokers: RwLock<BTreeMap<i32, BrokerRecord>>,
    /// Brokers that left the live set, and when (see [`DEPARTED_LISTED_FOR`]).
    departed: std::sync::Mutex<BTreeMap<i32, (std::time::Instant, BrokerRecord)>>,
    /// Bumped on every change of the live set; the leadership loop waits on it.
    changes: watch::Sender<u64>,
    leaders:
        std::sync::Mutex<std::collections::HashMap<TopicPartition, (tokio::time::Instant, Leader)>>,
}

impl ClusterView {
    pub fn new(broker_id: i32, me: BrokerRecord) -> Self {
        let (changes, _) = watch::channel(0);
        Self {
            broker_id,
            brokers: RwLock::new(BTreeMap::from([(broker_id, me)])),
            departed: std::sync::Mutex::new(BTreeMap::new()),
            changes,
            leaders: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    /// Live brokers by id.
    pub fn live(&self) -> BTreeMap<i32, BrokerRecord> {
        self.brokers.read().expect("cluster lock").clone()
    }

    /// The brokers Metadata lists: the live ones, and those that left less than
    /// [`DEPARTED_LISTED_FOR`] ago (by id).
    pub fn listed(&self) -> BTreeMap<i32, BrokerRecord> {
        let mut listed = self.live();
        let departed = self.departed.lock().expect("departed lock");
        for (id, (left_at, record)) in departed.iter() {
            if left_at.elapsed() < DEPARTED_LISTED_FOR {
                listed.entry(*id).or_insert_with(|| record.clone());
            }
        }
        listed
    }

    pub fn broker(&self, id: i32) -> Option<BrokerRecord> {
        self.brokers.read().expect("cluster lock").get(&id).cloned()
    }

    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.read().expect("cluster lock").contains_key(&id)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The broker that should lead `tp`.
    pub fn partition_owner(&self, tp: TopicPartition) -> i32 {
        let mut key = Vec::with_capacity(20);
        key.extend_from_slice(tp.topic_id.as_bytes());
        key.extend_from_slice(&tp.partition.to_be_bytes());
        self.owner(&key)
    }

    /// The broker a consumer in `rack` should read `tp` from (KIP-392), if a live broker
    /// other than this one is in that rack: spread over the rack's brokers by the same
    /// rendezvous score, so each serves (and caches) a share of the partitions.
    pub fn read_replica(&self, tp: TopicPartition, rack: &str) -> Option<i32> {
        let brokers = self.brokers.read().expect("cluster lock");
        if brokers
            .get(&self.broker_id)
            .is_some_and(|me| me.rack.as_deref() == Some(rack))
        {
            return None;
        }
        let mut key = Vec::with_capacity(20);
        key.extend_from_slice(tp.topic_id.as_bytes());
        key.extend_from_slice(&tp.partition.to_be_bytes());
        brokers
            .values()
            .filter(|b| b.rack.as_deref() == Some(rack))
            .map(|b| b.broker_id)
            .max_by_key(|id| (rendezvous_score(*id, &key), *id))
    }

    /// The broker that should run the cluster-wide background task `name` (one at a time).
    pub fn task_owner(&self, name: &str) -> i32 {
        let mut key = b"task:".to_vec();
        key.extend_from_slice(name.as_bytes());
        self.owner(&key)
    }

    /// The broker that should coordinate `group_id`.
    pub fn group_owner(&self, group_id: &str) -> i32 {
        let mut key = b"group:".to_vec();
        key.extend_from_slice(group_id.as_bytes());
        self.owner(&key)
    }

    fn owner(&self, key: &[u8]) -> i32 {
        let brokers = self.brokers.read().expect("cluster lock");
        brokers
            .keys()
            .copied()
            .max_by_key(|id| (rendezvous_score(*id, key), *id))
            .unwrap_or(self.broker_id)
    }

    /// The leader of a partition this broker does not lead: the holder of its leader key if
    /// that broker is live, else the broker that should take it (epoch unknown). Read from
    /// the metadata store at most once per [`LEADER_CACHE_TTL`].
    pub async fn leader_of(&self, meta: &dyn MetadataStore, tp: TopicPartition) -> Leader {
        let now = tokio::time::Instant::now();
        if let Some((read_at, leader)) = self.leaders.lock().expect("leader cache lock").get(&tp)
            && now.duration_since(*read_at) < LEADER_CACHE_TTL
            && self.is_live(leader.broker_id)
        {
            return *leader;
        }
        let key = keys::partition_leader(tp.topic_id, tp.partition);
        let recorded = match meta.get(&key).await {
            Ok(Some(v)) => strato_metadata::model::LeaderRecord::decode(&key, &v.value).ok(),
            Ok(None) => None,
            Err(err) => {
                tracing::debug!(%key, "failed to read a leader key: {err:#}");
                None
            }
        };
        let leader = match recorded {
            Some(r) if self.is_live(r.broker_id) => Leader {
                broker_id: r.broker_id,
                leader_epoch: r.leader_epoch,
            },
            _ => Leader {
                broker_id: self.partition_owner(tp),
                leader_epoch: -1,
            },
        };
        let mut cache = self.leaders.lock().expect("leader cache lock");
        if cache.len() >= LEADER_CACHE_MAX {
            cache.clear();
        }
        cache.insert(tp, (now, leader));
        leader
    }

    /// Replaces the live set; `true` if it changed.
    fn set_live(&self, mut brokers: BTreeMap<i32, BrokerRecord>, me: &BrokerRecord) -> bool {
        // We are live as long as we run: a registration we cannot see yet (or a lease
        // being renewed) must not make us give everything away.
        brokers.entry(self.broker_id).or_insert_with(|| me.clone());
        let mut current = self.brokers.write().expect("cluster lock");
        if *current == brokers {
            return false;
        }
        let before: Vec<i32> = current.keys().copied().collect();
        let after: Vec<i32> = brokers.keys().copied().collect();
        let left: Vec<(i32, BrokerRecord)> = current
            .iter()
            .filter(|(id, _)| !brokers.contains_key(id))
            .map(|(id, record)| (*id, record.clone()))
            .collect();
        {
            let mut departed = self.departed.lock().expect("departed lock");
            let now = std::time::Instant::now();
            departed.retain(|id, (left_at, _)| {
                !brokers.contains_key(id) && left_at.elapsed() < DEPARTED_LISTED_FOR
            });
            for (id, record) in left {
                departed.insert(id, (now, record));
            }
            while departed.len() > DEPARTED_MAX {
                let oldest = departed
                    .iter()
                    .min_by_key(|(_, (left_at, _))| *left_at)
                    .map(|(id, _)| *id)
                    .expect("not empty");
                departed.remove(&oldest);
            }
        }
        *current = brokers;
        drop(current);
        tracing::info!(?before, ?after, "live brokers changed");
        self.changes.send_modify(|n| *n += 1);
        true
    }

    /// Follows `brokers/` in the metadata store until `shutdown`: a full read at start and
    /// after every missed event, single changes in between.
    pub async fn run(self: Arc<Self>, meta: Arc<dyn MetadataStore>, shutdown: CancellationToken) {
        let me = self
            .broker(self.broker_id)
            .expect("the view always holds this broker");
        loop {
            let mut events = match meta.watch(keys::BROKERS_PREFIX).await {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!("failed to watch broker registrations: {err:#}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(WATCH_RETRY) => continue,
                    }
                }
            };
            if let Err(err) = self.reload(meta.as_ref(), &me).await {
                tracing::warn!("failed to read broker registrations: {err:#}");
            }
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.recv() => event,
                };
                let Some(event) = event else { break };
                match event {
                    WatchEvent::Put { key, value, .. } => {
                        match BrokerRecord::decode(&key, &value) {
                            Ok(record) => {
                                let mut live = self.live();
                                live.insert(record.broker_id, record);
                                self.set_live(live, &me);
                            }
                            Err(err) => {
                                tracing::warn!(%key, "ignoring a bad broker record: {err:#}")
                            }
                        }
                    }
                    WatchEvent::Delete { key, .. } => {
                        if let Some(id) = key
                            .strip_prefix(keys::BROKERS_PREFIX)
                            .and_then(|id| id.parse::<i32>().ok())
                        {
                            let mut live = self.live();
                            live.remove(&id);
                            self.set_live(live, &me);
                        }
                    }
                    WatchEvent::Resync => {
                        if let Err(err) = self.reload(meta.as_ref(), &me).await {
                            tracing::warn!("failed to read broker registrations: {err:#}");
                        }
                    }
                }
            }
        }
    }

    /// Reads every registration (also used at start-up, before serving).
    pub async fn reload(
        &self,
        meta: &dyn MetadataStore,
        me: &BrokerRecord,
    ) -> Result<(), strato_metadata::MetadataError> {
        let mut live = BTreeMap::new();
        for (key, value) in meta.list_all(keys::BROKERS_PREFIX).await? {
            match BrokerRecord::decode(&key, &value.value) {
                Ok(record) => {
                    live.insert(record.broker_id, record);
                }
                Err(err) => tracing::warn!(%key, "ignoring a bad broker record: {err:#}"),
            }
        }
        self.set_live(live, me);
        Ok(())
    }
}

/// Rendezvous (highest random weight) score of `broker` for `key`: FNV-1a over the key and
/// the broker id, then the splitmix64 finalizer so that close inputs spread. Written out so
/// that it never changes with a Rust or crate version: all brokers must agree.
fn rendezvous_score(broker: i32, key: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    for byte in key.iter().chain(broker.to_be_bytes().iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_metadata::model::RECORD_FORMAT_V1;
    use uuid::Uuid;

    fn record(id: i32) -> BrokerRecord {
        BrokerRecord {
            v: RECORD_FORMAT_V1,
            broker_id: id,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            endpoints: Vec::new(),
            http_port: None,
        }
    }

    fn view(ids: &[i32]) -> ClusterView {
        let view = ClusterView::new(ids[0], record(ids[0]));
        view.set_live(
            ids.iter().map(|id| (*id, record(*id))).collect(),
            &record(ids[0]),
        );
        view
    }

    fn partitions(n: i32) -> Vec<TopicPartition> {
        let topic_id = Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788);
        (0..n)
            .map(|partition| TopicPartition {
                topic_id,
                partition,
            })
            .collect()
    }

    #[test]
    fn the_score_is_stable() {
        // Pinned values (checked against an independent Python implementation): a change
        // here would make brokers of two versions disagree.
        assert_eq!(rendezvous_score(0, b""), 0xaca6_d6b5_4be3_ed05);
        assert_eq!(rendezvous_score(7, b"group:orders"), 0x4151_0ddd_70a5_f26c);
    }

    #[test]
    fn partitions_spread_over_brokers_and_move_minimally() {
        let three = view(&[0, 1, 2]);
        let tps = partitions(300);
        let mut counts = BTreeMap::new();
        for tp in &tps {
            *counts.entry(three.partition_owner(*tp)).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(
            counts.values().all(|n| *n >= 70),
            "roughly even: {counts:?}"
        );

        // A fourth broker takes partitions only from the others, never reshuffles them.
        let four = view(&[0, 1, 2, 3]);
        for tp in &tps {
            let before = three.partition_owner(*tp);
            let after = four.partition_owner(*tp);
            assert!(
                after == before || after == 3,
                "{tp:?} moved {before} -> {after}"
            );
        }
        // Removing a broker only moves that broker's partitions.
        let two = view(&[0, 2]);
        for tp in &tps {
            let before = three.partition_owner(*tp);
            if before != 1 {
                assert_eq!(two.partition_owner(*tp), before);
            }
        }
    }

    #[test]
    fn every_view_of_the_same_brokers_agrees() {
        let a = view(&[2, 0, 1]);
        let b = view(&[1, 2, 0]);
        for tp in partitions(50) {
            assert_eq!(a.partition_owner(tp), b.partition_owner(tp));
        }
        assert_eq!(a.group_owner("g"), b.group_owner("g"));
    }

    #[test]
    fn this_broker_stays_live_in_its_own_view() {
        let v = ClusterView::new(5, record(5));
        assert!(!v.set_live(BTreeMap::new(), &record(5)));
        assert!(v.is_live(5));
        assert_eq!(v.group_owner("anything"), 5);
    }

    /// A broker that left owns nothing at once but stays listed for Metadata a while (so
    /// clients waiting on it as a coordinator look again); back again, it is live.
    #[test]
    fn a_broker_that_left_is_still_listed_but_owns_nothing() {
        let v = view(&[1, 2, 3]);
        v.set_live(BTreeMap::from([(1, record(1)), (3, record(3))]), &record(1));
        assert!(!v.is_live(2));
        assert_eq!(v.live().keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(v.listed().keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        for tp in partitions(50) {
            assert_ne!(v.partition_owner(tp), 2);
        }
        v.set_live(
            BTreeMap::from([(1, record(1)), (2, record(2)), (3, record(3))]),
            &record(1),
        );
        assert!(v.is_live(2));
        assert!(v.departed.lock().unwrap().is_empty());
    }
}
