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

/// Balanced partition owners by (topic id, partition count).
type Assignments = std::collections::HashMap<(uuid::Uuid, i32), Arc<Vec<i32>>>;

/// The leader of a partition as another broker recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    pub broker_id: i32,
    /// -1 when no live broker holds the leader key yet.
    pub leader_epoch: i32,
}

pub struct ClusterView {
    broker_id: i32,
    /// This broker's own registration as it should read (its state changes as it starts
    /// and drains).
    me: RwLock<BrokerRecord>,
    brokers: RwLock<BTreeMap<i32, BrokerRecord>>,
    /// Partition counts of the topics this broker knows (kept by the topic registry): a
    /// topic's partitions are balanced over the serving brokers.
    topic_partitions: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, i32>>,
    /// Balanced owners by topic and partition count, for the current live set (emptied on
    /// every change of it).
    assignments: std::sync::Mutex<Assignments>,
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
            me: RwLock::new(me.clone()),
            brokers: RwLock::new(BTreeMap::from([(broker_id, me)])),
            topic_partitions: std::sync::Mutex::new(std::collections::HashMap::new()),
            assignments: std::sync::Mutex::new(std::collections::HashMap::new()),
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

    /// This broker's registration as it should read now.
    pub fn me(&self) -> BrokerRecord {
        self.me.read().expect("cluster lock").clone()
    }

    /// Changes this broker's state (the caller writes the registration to the store too):
    /// a broker that does not serve gives what it owns to the serving ones at once.
    pub fn set_my_state(&self, state: Option<strato_metadata::model::BrokerState>) {
        let me = {
            let mut me = self.me.write().expect("cluster lock");
            me.state = state;
            me.clone()
        };
        let mut live = self.live();
        live.insert(self.broker_id, me);
        self.set_live(live);
    }

    /// Remembers that `topic_id` has `partitions` partitions (its partitions are balanced
    /// over the serving brokers as a whole).
    pub fn set_topic_partitions(&self, topic_id: uuid::Uuid, partitions: i32) {
        let mut counts = self.topic_partitions.lock().expect("topic counts lock");
        if counts.len() >= LEADER_CACHE_MAX && !counts.contains_key(&topic_id) {
            counts.clear();
        }
        counts.insert(topic_id, partitions);
    }

    pub fn forget_topic(&self, topic_id: uuid::Uuid) {
        self.topic_partitions
            .lock()
            .expect("topic counts lock")
            .remove(&topic_id);
    }

    /// The broker that should lead `tp`: the topic's partitions are spread over the
    /// serving brokers within one of even (see [`balanced_owners`]); a partition of a topic
    /// this broker does not know goes by its rendezvous score alone.
    pub fn partition_owner(&self, tp: TopicPartition) -> i32 {
        let count = self
            .topic_partitions
            .lock()
            .expect("topic counts lock")
            .get(&tp.topic_id)
            .copied();
        match count {
            Some(count) if tp.partition >= 0 && tp.partition < count => {
                self.assignment(tp.topic_id, count)[tp.partition as usize]
            }
            _ => self.owner(&partition_key(tp)),
        }
    }

    /// The balanced owners of the `count` partitions of `topic_id`, computed once per live
    /// set.
    fn assignment(&self, topic_id: uuid::Uuid, count: i32) -> Arc<Vec<i32>> {
        if let Some(owners) = self
            .assignments
            .lock()
            .expect("assignments lock")
            .get(&(topic_id, count))
        {
            return owners.clone();
        }
        let owners = Arc::new(balanced_owners(&self.owners(), topic_id, count));
        let mut assignments = self.assignments.lock().expect("assignments lock");
        if assignments.len() >= LEADER_CACHE_MAX {
            assignments.clear();
        }
        assignments.insert((topic_id, count), owners.clone());
        owners
    }

    /// Whether a live broker other than this one serves (could take what this one owns).
    pub fn others_serve(&self) -> bool {
        self.brokers
            .read()
            .expect("cluster lock")
            .values()
            .any(|b| b.broker_id != self.broker_id && b.serving())
    }

    /// The brokers partitions and groups are given to: the serving ones, or, when none
    /// serves (the last broker draining, or all starting), every live broker.
    fn owners(&self) -> Vec<i32> {
        let brokers = self.brokers.read().expect("cluster lock");
        let serving: Vec<i32> = brokers
            .values()
            .filter(|b| b.serving())
            .map(|b| b.broker_id)
            .collect();
        if serving.is_empty() {
            brokers.keys().copied().collect()
        } else {
            serving
        }
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
        let key = partition_key(tp);
        brokers
            .values()
            .filter(|b| b.rack.as_deref() == Some(rack) && b.serving())
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
        self.owners()
            .into_iter()
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
    fn set_live(&self, mut brokers: BTreeMap<i32, BrokerRecord>) -> bool {
        // We are live as long as we run: a registration we cannot see yet (or a lease
        // being renewed) must not make us give everything away. And we are in the state
        // we say, even before the store's copy of our record caught up.
        brokers.insert(self.broker_id, self.me());
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
        self.assignments.lock().expect("assignments lock").clear();
        tracing::info!(?before, ?after, "live brokers changed");
        self.changes.send_modify(|n| *n += 1);
        true
    }

    /// Follows `brokers/` in the metadata store until `shutdown`: a full read at start and
    /// after every missed event, single changes in between.
    pub async fn run(self: Arc<Self>, meta: Arc<dyn MetadataStore>, shutdown: CancellationToken) {
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
            if let Err(err) = self.reload(meta.as_ref()).await {
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
                                self.set_live(live);
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
                            self.set_live(live);
                        }
                    }
                    WatchEvent::Resync => {
                        if let Err(err) = self.reload(meta.as_ref()).await {
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
        self.set_live(live);
        Ok(())
    }
}

/// The rendezvous key of a partition.
fn partition_key(tp: TopicPartition) -> Vec<u8> {
    let mut key = Vec::with_capacity(20);
    key.extend_from_slice(tp.topic_id.as_bytes());
    key.extend_from_slice(&tp.partition.to_be_bytes());
    key
}

/// Owners of the `count` partitions of `topic_id` among `brokers`, each broker given
/// `count / brokers` or one more: rendezvous with bounded loads. Every (partition, broker)
/// pair is taken in order of its score, highest first, and a partition goes to the broker
/// of its first pair that still has room. A broker's room is one more than the even share
/// while fewer brokers than the remainder took that extra one. Most partitions thus stay
/// with their highest-scoring broker, so a change of brokers moves few of them (measured in
/// the tests), and every broker computes the same owners from the same serving brokers.
fn balanced_owners(brokers: &[i32], topic_id: uuid::Uuid, count: i32) -> Vec<i32> {
    let n = usize::try_from(count).unwrap_or(0);
    if brokers.is_empty() {
        return vec![-1; n];
    }
    let share = n / brokers.len();
    let mut extra_left = n % brokers.len();
    let mut pairs: Vec<(u64, i32, usize)> = Vec::with_capacity(n * brokers.len());
    for partition in 0..n {
        let key = partition_key(TopicPartition {
            topic_id,
            partition: partition as i32,
        });
        for broker in brokers {
            pairs.push((rendezvous_score(*broker, &key), *broker, partition));
        }
    }
    pairs.sort_unstable_by(|a, b| b.cmp(a));
    let mut owners = vec![-1; n];
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    let mut assigned = 0;
    for (_, broker, partition) in pairs {
        if owners[partition] != -1 {
            continue;
        }
        let taken = load.get_mut(&broker).expect("every broker has a load");
        if *taken < share {
            *taken += 1;
        } else if *taken == share && extra_left > 0 {
            *taken += 1;
            extra_left -= 1;
        } else {
            continue;
        }
        owners[partition] = broker;
        assigned += 1;
        if assigned == n {
            break;
        }
    }
    owners
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
            state: None,
        }
    }

    fn view(ids: &[i32]) -> ClusterView {
        let view = ClusterView::new(ids[0], record(ids[0]));
        view.set_live(ids.iter().map(|id| (*id, record(*id))).collect());
        view
    }

    /// A view of `ids` that knows the topic of [`partitions`] with `n` partitions.
    fn view_with_topic(ids: &[i32], n: i32) -> ClusterView {
        let view = view(ids);
        view.set_topic_partitions(partitions(1)[0].topic_id, n);
        view
    }

    fn counts(view: &ClusterView, tps: &[TopicPartition]) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for tp in tps {
            *counts.entry(view.partition_owner(*tp)).or_insert(0) += 1;
        }
        counts
    }

    fn moved(a: &ClusterView, b: &ClusterView, tps: &[TopicPartition]) -> usize {
        tps.iter()
            .filter(|tp| a.partition_owner(**tp) != b.partition_owner(**tp))
            .count()
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
        let counts = counts(&three, &tps);
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

    /// A known topic's partitions are spread within one of even, whatever the brokers,
    /// and a change of brokers moves few more partitions than it must (the brokers that
    /// come or go take or give their share; rendezvous alone moves exactly that, unevenly).
    #[test]
    fn a_topics_partitions_are_balanced_and_move_little() {
        for n in [1, 2, 5, 12, 30, 100, 301] {
            let tps = partitions(n);
            for ids in [
                &[0][..],
                &[0, 1],
                &[0, 1, 2],
                &[3, 0, 1, 2],
                &[0, 1, 2, 3, 4, 7, 9],
            ] {
                let v = view_with_topic(ids, n);
                let counts = counts(&v, &tps);
                let even = n as usize / ids.len();
                assert!(
                    ids.iter().all(|id| {
                        let c = counts.get(id).copied().unwrap_or(0);
                        c == even || c == even + 1
                    }),
                    "{n} partitions over {ids:?}: {counts:?}"
                );
            }
        }
        let mut report = Vec::new();
        for n in [12, 30, 300] {
            let tps = partitions(n);
            let sizes = [1, 2, 3, 4, 3, 2, 1];
            for step in sizes.windows(2) {
                let ids = |k: i32| (0..k).collect::<Vec<_>>();
                let a = view_with_topic(&ids(step[0]), n);
                let b = view_with_topic(&ids(step[1]), n);
                let moved = moved(&a, &b, &tps);
                // The fewest moves: the partitions the broker that comes takes, or the
                // broker that goes had.
                let least = n as usize / step[0].max(step[1]) as usize;
                report.push(format!(
                    "{n}: {}->{} moved {moved} (least {least})",
                    step[0], step[1]
                ));
                assert!(
                    moved <= least + least / 2 + 2,
                    "{n} partitions, {} -> {} brokers moved {moved}, least {least}",
                    step[0],
                    step[1]
                );
            }
        }
        eprintln!("{}", report.join("\n"));
    }

    /// Only serving brokers own partitions and groups: one that starts or drains gives its
    /// share to the others, unless no broker serves.
    #[test]
    fn only_serving_brokers_own_anything() {
        use strato_metadata::model::BrokerState;
        let tps = partitions(30);
        let v = view_with_topic(&[1, 2, 3], 30);
        assert!(counts(&v, &tps).contains_key(&1));
        for state in [BrokerState::Starting, BrokerState::Draining] {
            v.set_my_state(Some(state));
            let c = counts(&v, &tps);
            assert!(!c.contains_key(&1), "{state:?}: {c:?}");
            assert_eq!(c.values().sum::<usize>(), 30);
            assert!(c.values().all(|n| *n == 15), "{c:?}");
            assert_ne!(v.group_owner("g"), 1);
            assert!(v.is_live(1), "still registered and listed");
        }
        v.set_my_state(None);
        assert_eq!(counts(&v, &tps).get(&1), Some(&10));
        // Alone and draining, it keeps what it has: nobody else could take it.
        let alone = view_with_topic(&[1], 30);
        alone.set_my_state(Some(BrokerState::Draining));
        assert_eq!(counts(&alone, &tps).get(&1), Some(&30));
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
        assert!(!v.set_live(BTreeMap::new()));
        assert!(v.is_live(5));
        assert_eq!(v.group_owner("anything"), 5);
    }

    /// A broker that left owns nothing at once but stays listed for Metadata a while (so
    /// clients waiting on it as a coordinator look again); back again, it is live.
    #[test]
    fn a_broker_that_left_is_still_listed_but_owns_nothing() {
        let v = view(&[1, 2, 3]);
        v.set_live(BTreeMap::from([(1, record(1)), (3, record(3))]));
        assert!(!v.is_live(2));
        assert_eq!(v.live().keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(v.listed().keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        for tp in partitions(50) {
            assert_ne!(v.partition_owner(tp), 2);
        }
        v.set_live(BTreeMap::from([
            (1, record(1)),
            (2, record(2)),
            (3, record(3)),
        ]));
        assert!(v.is_live(2));
        assert!(v.departed.lock().unwrap().is_empty());
    }
}
