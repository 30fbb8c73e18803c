//! Consumer groups (the classic protocol): the coordinator holds each active group's
//! membership in memory ([`state::Group`]) and keeps committed offsets in the metadata store
//! ([`offsets::OffsetStore`]).
//!
//! Promise: membership is soft state — losing it (a restart, a coordinator move) costs a
//! rebalance, never a committed offset. Groups with no members are dropped from memory;
//! their offsets stay in the store.

pub mod offsets;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strato_metadata::MetadataStore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::offsets::OffsetStore;
use self::state::{Group, GroupLimits, GroupState, GroupSummary};
use crate::cluster::ClusterView;

/// How often deadlines (session timeouts, join phases) are checked: the precision of every
/// group timer.
const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Group ids whose store marker is known to exist, remembered to save a read per commit.
/// Bounded: the set is cleared when full (the cost is one read per group afterwards).
const KNOWN_MARKERS_MAX: usize = 100_000;

pub struct GroupCoordinator {
    cluster: Arc<ClusterView>,
    limits: GroupLimits,
    offsets: OffsetStore,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    /// Group id → the protocol type its marker was written with.
    known_markers: Mutex<HashMap<String, Option<String>>>,
    /// Rebalances completed by any group since start (groups leave memory; this stays).
    rebalances_total: AtomicU64,
    /// JoinGroups refused because `max_groups` groups were in memory.
    refused_joins: AtomicU64,
}

/// Counts for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct GroupStats {
    /// Groups with members (or a rebalance in progress) in this coordinator's memory.
    pub groups: u64,
    pub members: u64,
    /// Completed rebalances since the broker started.
    pub rebalances: u64,
    /// JoinGroups refused since start because the coordinator held `max_groups` groups.
    pub refused_joins: u64,
}

impl GroupCoordinator {
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        cluster: Arc<ClusterView>,
        limits: GroupLimits,
    ) -> Self {
        Self {
            cluster,
            limits,
            offsets: OffsetStore::new(meta),
            groups: Mutex::new(HashMap::new()),
            known_markers: Mutex::new(HashMap::new()),
            rebalances_total: AtomicU64::new(0),
            refused_joins: AtomicU64::new(0),
        }
    }

    /// Whether this broker coordinates `group_id` (rendezvous hashing over live brokers).
    pub fn owns(&self, group_id: &str) -> bool {
        self.cluster.group_owner(group_id) == self.cluster.broker_id()
    }

    pub fn limits(&self) -> &GroupLimits {
        &self.limits
    }

    pub fn offsets(&self) -> &OffsetStore {
        &self.offsets
    }

    /// Runs `f` on the group's in-memory state (created empty if absent) and drops the group
    /// from memory again if it ends up idle.
    pub fn with_group<R>(&self, group_id: &str, f: impl FnOnce(&mut Group) -> R) -> R {
        self.with_group_within(group_id, usize::MAX, f)
            .expect("no limit on groups")
    }

    /// [`Self::with_group`] for JoinGroup: a group not in memory is only created while this
    /// coordinator holds fewer than `max_groups`; `None` (and counted) otherwise.
    pub fn with_joinable_group<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut Group) -> R,
    ) -> Option<R> {
        let result = self.with_group_within(group_id, self.limits.max_groups, f);
        if result.is_none() {
            self.refused_joins.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn with_group_within<R>(
        &self,
        group_id: &str,
        max_groups: usize,
        f: impl FnOnce(&mut Group) -> R,
    ) -> Option<R> {
        let group = {
            let mut groups = self.groups.lock().expect("group map lock poisoned");
            match groups.get(group_id) {
                Some(group) => Arc::clone(group),
                None if groups.len() >= max_groups => return None,
                None => {
                    let group = Arc::new(Mutex::new(Group::new(group_id)));
                    groups.insert(group_id.to_string(), Arc::clone(&group));
                    group
                }
            }
        };
        let (result, idle) = {
            let mut state = group.lock().expect("group lock poisoned");
            let rebalances_before = state.rebalances();
            let result = f(&mut state);
            self.rebalances_total
                .fetch_add(state.rebalances() - rebalances_before, Ordering::Relaxed);
            (result, state.is_idle() || state.state() == GroupState::Dead)
        };
        if idle {
            self.forget_if_idle(group_id);
        }
        Some(result)
    }

    /// The group's in-memory state if it has any (members or a rebalance in progress).
    pub fn summary(&self, group_id: &str) -> Option<GroupSummary> {
        let group = self.lookup(group_id)?;
        let state = group.lock().expect("group lock poisoned");
        Some(state.summary())
    }

    fn lookup(&self, group_id: &str) -> Option<Arc<Mutex<Group>>> {
        let groups = self.groups.lock().expect("group map lock poisoned");
        groups.get(group_id).cloned()
    }

    fn forget_if_idle(&self, group_id: &str) {
        let mut groups = self.groups.lock().expect("group map lock poisoned");
        let idle = groups.get(group_id).is_some_and(|g| {
            let g = g.lock().expect("group lock poisoned");
            g.is_idle() || g.state() == GroupState::Dead
        });
        if idle {
            groups.remove(group_id);
        }
    }

    /// Active groups with their states and protocol types.
    pub fn active_groups(&self) -> BTreeMap<String, (GroupState, String)> {
        let groups: Vec<(String, Arc<Mutex<Group>>)> = {
            let map = self.groups.lock().expect("group map lock poisoned");
            map.iter()
                .map(|(k, v)| (k.clone(), Arc::clone(v)))
                .collect()
        };
        groups
            .into_iter()
            .map(|(id, g)| {
                let g = g.lock().expect("group lock poisoned");
                (
                    id,
                    (g.state(), g.protocol_type().unwrap_or_default().to_string()),
                )
            })
            .collect()
    }

    pub fn stats(&self) -> GroupStats {
        let groups: Vec<Arc<Mutex<Group>>> = {
            let map = self.groups.lock().expect("group map lock poisoned");
            map.values().cloned().collect()
        };
        let mut stats = GroupStats::default();
        for g in groups {
            let g = g.lock().expect("group lock poisoned");
            stats.groups += 1;
            stats.members += g.member_count() as u64;
        }
        stats.rebalances = self.rebalances_total.load(Ordering::Relaxed);
        stats.refused_joins = self.refused_joins.load(Ordering::Relaxed);
        stats
    }

    /// Makes sure ListGroups will show the group, with its protocol type (one read the
    /// first time per group and type).
    pub async fn remember_group(
        &self,
        group_id: &str,
        protocol_type: Option<&str>,
    ) -> Result<(), strato_metadata::MetadataError> {
        {
            let known = self.known_markers.lock().expect("marker set lock poisoned");
            if let Some(known_type) = known.get(group_id)
                && (protocol_type.is_none() || known_type.as_deref() == protocol_type)
            {
                return Ok(());
            }
        }
        self.offsets
            .ensure_group_marker(group_id, protocol_type)
            .await?;
        let mut known = self.known_markers.lock().expect("marker set lock poisoned");
        if known.len() >= KNOWN_MARKERS_MAX {
            known.clear();
        }
        known.insert(group_id.to_string(), protocol_type.map(str::to_string));
        Ok(())
    }

    /// Forgets that the group's marker exists (after DeleteGroups).
    pub fn forget_group(&self, group_id: &str) {
        let mut known = self.known_markers.lock().expect("marker set lock poisoned");
        known.remove(group_id);
    }

    /// Answers every waiting JoinGroup and SyncGroup with NOT_COORDINATOR (broker shutdown).
    pub fn abandon_waiters(&self) {
        let groups: Vec<Arc<Mutex<Group>>> = {
            let map = self.groups.lock().expect("group map lock poisoned");
            map.values().cloned().collect()
        };
        for g in groups {
            g.lock().expect("group lock poisoned").abandon_waiters();
        }
    }

    /// Fires group deadlines until `shutdown`.
    pub async fn run_timers(self: Arc<Self>, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(TICK_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let ids: Vec<String> = {
                let map = self.groups.lock().expect("group map lock poisoned");
                map.keys().cloned().collect()
            };
            let now = Instant::now();
            for id in ids {
                if !self.owns(&id) {
                    // Coordination moved to another broker: its members find the new
                    // coordinator (NOT_COORDINATOR) and rejoin there.
                    tracing::info!(group = %id, "group coordination moved to another broker");
                    let group = self
                        .groups
                        .lock()
                        .expect("group map lock poisoned")
                        .remove(&id);
                    if let Some(group) = group {
                        group.lock().expect("group lock poisoned").abandon_waiters();
                    }
                    continue;
                }
                self.with_group(&id, |g| {
                    g.tick(now, &self.limits);
                });
            }
        }
    }
}
