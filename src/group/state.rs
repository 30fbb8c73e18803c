//! The classic consumer-group state machine of one group (Kafka's `GroupMetadata` and the
//! membership half of its `GroupCoordinator`): Empty → PreparingRebalance →
//! CompletingRebalance → Stable, with member ids, static members, protocol selection,
//! rebalance and session timeouts.
//!
//! Pure and synchronous: every operation takes `now` and returns either an answer or a
//! receiver that is answered when the rebalance moves on, so it can be driven by unit tests
//! without sockets or sleeps. The coordinator calls [`Group::tick`] to fire deadlines.
//! Errors are Kafka error codes (`i16`), because that is all a member ever sees.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Limits and timeouts of the group coordinator (from `Config`).
#[derive(Debug, Clone)]
pub struct GroupLimits {
    /// Kafka `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// Kafka `group.initial.rebalance.delay.ms`: how long a new group waits for more members
    /// before its first rebalance completes.
    pub initial_rebalance_delay: Duration,
    /// Kafka `group.max.size`.
    pub max_members: usize,
    /// Groups one coordinator holds in memory at most (Strato's own bound; Kafka has none):
    /// a JoinGroup that would create one more is answered COORDINATOR_NOT_AVAILABLE.
    pub max_groups: usize,
    /// Bytes of protocol metadata one member may send in a JoinGroup, and of the assignment
    /// it may be given, so a group's memory is bounded by `max_members` times these.
    pub max_member_metadata_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a new member first gets its id with MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member's metadata for the chosen protocol; only the leader gets it.
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    fn error(error: ResponseError, member_id: &str) -> Self {
        Self {
            error: error.code(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: ResponseError) -> Self {
        Self {
            error: error.code(),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer now, or one that comes when the group moves on.
#[derive(Debug)]
pub enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A SyncGroup request, decoded.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// SyncGroup v5+: must match the group's (INCONSISTENT_GROUP_PROTOCOL otherwise).
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// A member that asks to leave: by member id, or (static members) by instance id.
#[derive(Debug, Clone)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// What DescribeGroups shows of a member.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug)]
struct Member {
    client_id: String,
    client_host: String,
    group_instance_id: Option<String>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<Protocol>,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// The member is removed when this passes without a heartbeat (unless it waits in a
    /// JoinGroup or SyncGroup, which keeps it alive).
    session_deadline: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    fn awaiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }
}

/// When the PreparingRebalance phase ends.
#[derive(Debug, Clone, Copy)]
struct JoinPhase {
    /// The join completes at this instant even if members are missing.
    deadline: Instant,
    /// A new group's first rebalance waits out `initial_rebalance_delay` (extended by each new
    /// member up to this limit) instead of completing as soon as everyone has joined.
    initial_until: Option<Instant>,
}

/// One consumer group's membership.
#[derive(Debug)]
pub struct Group {
    id: String,
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pending: BTreeMap<String, Instant>,
    /// Static members: `group.instance.id` → current member id.
    static_members: BTreeMap<String, String>,
    join_phase: Option<JoinPhase>,
    rebalances: u64,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            static_members: BTreeMap::new(),
            join_phase: None,
            rebalances: 0,
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Completed rebalances since the group was loaded (for metrics and tests).
    pub fn rebalances(&self) -> u64 {
        self.rebalances
    }

    /// Nothing in memory is worth keeping: no members, nobody waiting.
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty() && self.state == GroupState::Empty
    }

    /// The coordinator stops: members waiting in JoinGroup or SyncGroup are told to find the
    /// coordinator again instead of waiting for a rebalance that will not end here.
    pub fn abandon_waiters(&mut self) {
        for (id, member) in &mut self.members {
            if let Some(tx) = member.join_waiter.take() {
                let _ = tx.send(JoinResult::error(ResponseError::NotCoordinator, id));
            }
            if let Some(tx) = member.sync_waiter.take() {
                let _ = tx.send(SyncResult::error(ResponseError::NotCoordinator));
            }
        }
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// Protocol metadata of every member for the selected protocol (topic subscriptions of
    /// consumer groups, used by OffsetDelete).
    pub fn member_metadata(&self) -> Vec<Bytes> {
        let Some(protocol) = &self.protocol_name else {
            return Vec::new();
        };
        self.members
            .values()
            .map(|m| m.metadata_for(protocol))
            .collect()
    }

    pub fn summary(&self) -> GroupSummary {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupSummary {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberSummary {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    // Like Kafka, metadata and assignment only describe a settled group.
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// The static-membership check shared by every request that names a member: a known
    /// instance id must come with its current member id.
    fn fenced_instance(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        match instance_id.and_then(|i| self.static_members.get(i)) {
            Some(current) => current != member_id,
            None => false,
        }
    }

    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        limits: &GroupLimits,
    ) -> Answer<JoinResult> {
        if let Some(error) = self.validate_join(&req, limits) {
            return Answer::Now(JoinResult::error(error, &req.member_id));
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(req, now, limits)
        } else {
            self.join_known_member(req, now, limits)
        }
    }

    fn validate_join(&self, req: &JoinRequest, limits: &GroupLimits) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            // The group was just deleted; the client looks up the coordinator and retries.
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if req.session_timeout < limits.min_session_timeout
            || req.session_timeout > limits.max_session_timeout
        {
            return Some(ResponseError::InvalidSessionTimeout);
        }
        let metadata_bytes: usize = req
            .protocols
            .iter()
            .map(|p| p.metadata.len() + p.name.len())
            .sum();
        if metadata_bytes > limits.max_member_metadata_bytes {
            return Some(ResponseError::InvalidRequest);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Some(ResponseError::InconsistentGroupProtocol);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols, &req.member_id) {
            return Some(ResponseError::InconsistentGroupProtocol);
        }
        None
    }

    /// A joining member must speak the group's protocol type and share at least one protocol
    /// with every other member.
    fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[Protocol],
        member_id: &str,
    ) -> bool {
        let others: Vec<&Member> = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .map(|(_, m)| m)
            .collect();
        if others.is_empty() {
            return true;
        }
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != protocol_type)
        {
            return false;
        }
        protocols.iter().any(|p| {
            others
                .iter()
                .all(|m| m.protocols.iter().any(|q| q.name == p.name))
        })
    }

    fn new_member_id(client_id: &str, instance_id: Option<&str>) -> String {
        format!(
            "{}-{}",
            instance_id.unwrap_or(client_id),
            uuid::Uuid::new_v4()
        )
    }

    fn join_unknown_member(
        &mut self,
        req: JoinRequest,
        now: Instant,
        limits: &GroupLimits,
    ) -> Answer<JoinResult> {
        if let Some(instance_id) = req.group_instance_id.clone()
            && let Some(old_id) = self.static_members.get(&instance_id).cloned()
        {
            return self.rejoin_static_member(&old_id, req, now, limits);
        }
        if self.members.len() + self.pending.len() >= limits.max_members {
            return Answer::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
        }
        let member_id = Self::new_member_id(&req.client_id, req.group_instance_id.as_deref());
        if req.require_known_member_id && req.group_instance_id.is_none() {
            // KIP-394: the member learns its id first, so a client that times out and retries
            // does not leave a ghost member behind.
            self.pending
                .insert(member_id.clone(), now + req.session_timeout);
            return Answer::Now(JoinResult::error(
                ResponseError::MemberIdRequired,
                &member_id,
            ));
        }
        self.add_member_and_rebalance(member_id, req, now, limits)
    }

    fn join_known_member(
        &mut self,
        req: JoinRequest,
        now: Instant,
        limits: &GroupLimits,
    ) -> Answer<JoinResult> {
        let member_id = req.member_id.clone();
        if self.pending.remove(&member_id).is_some() {
            return self.add_member_and_rebalance(member_id, req, now, limits);
        }
        if self.fenced_instance(&member_id, req.group_instance_id.as_deref()) {
            return Answer::Now(JoinResult::error(
                ResponseError::FencedInstanceId,
                &member_id,
            ));
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            return Answer::Now(JoinResult::error(
                ResponseError::UnknownMemberId,
                &member_id,
            ));
        };
        let unchanged = member.same_protocols(&req.protocols);
        member.session_deadline = now + req.session_timeout;
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(&member_id, req);
                let rx = self.await_join(&member_id);
                self.maybe_complete_join(now);
                Answer::Later(rx)
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged
                    && (self.state == GroupState::CompletingRebalance
                        || self.leader.as_deref() != Some(member_id.as_str())) =>
            {
                // The member lost our answer, or a follower rejoins without changes: it gets
                // the current generation again and no rebalance happens.
                let members = if self.leader.as_deref() == Some(member_id.as_str()) {
                    self.join_members()
                } else {
                    Vec::new()
                };
                Answer::Now(self.join_result(&member_id, members))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(&member_id, req);
                let rx = self.await_join(&member_id);
                self.prepare_rebalance(now, limits);
                Answer::Later(rx)
            }
            // A known member of an empty or dead group cannot exist.
            GroupState::Empty | GroupState::Dead => Answer::Now(JoinResult::error(
                ResponseError::UnknownMemberId,
                &member_id,
            )),
        }
    }

    /// A static member restarted (same `group.instance.id`, no member id): it replaces its
    /// old incarnation under a new member id, and a Stable group does not rebalance unless
    /// the protocol choice changes.
    fn rejoin_static_member(
        &mut self,
        old_id: &str,
        req: JoinRequest,
        now: Instant,
        limits: &GroupLimits,
    ) -> Answer<JoinResult> {
        let new_id = Self::new_member_id(&req.client_id, req.group_instance_id.as_deref());
        let Some(mut member) = self.members.remove(old_id) else {
            // The map says the instance is here; the member must be too.
            self.static_members
                .remove(req.group_instance_id.as_deref().unwrap_or_default());
            return self.join_unknown_member(req, now, limits);
        };
        // The old incarnation's waiting requests are fenced.
        if let Some(tx) = member.join_waiter.take() {
            let _ = tx.send(JoinResult::error(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(tx) = member.sync_waiter.take() {
            let _ = tx.send(SyncResult::error(ResponseError::FencedInstanceId));
        }
        member.protocols = req.protocols.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.session_deadline = now + req.session_timeout;
        self.members.insert(new_id.clone(), member);
        let instance_id = req.group_instance_id.clone().unwrap_or_default();
        self.static_members.insert(instance_id, new_id.clone());
        let old_leader = self.leader.clone().unwrap_or_default();
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable
                if self.select_protocol().as_ref() == self.protocol_name.as_ref() =>
            {
                // Answer with the old leader id: even if this member leads, it must not run
                // an assignment that a Stable group would never distribute.
                let mut result = self.join_result(&new_id, Vec::new());
                result.leader = old_leader;
                Answer::Now(result)
            }
            GroupState::PreparingRebalance => {
                let rx = self.await_join(&new_id);
                self.maybe_complete_join(now);
                Answer::Later(rx)
            }
            _ => {
                // CompletingRebalance: the leader may already be assigning to the old member
                // id, so everyone goes round once more. Stable with a changed protocol choice
                // likewise.
                let rx = self.await_join(&new_id);
                self.prepare_rebalance(now, limits);
                Answer::Later(rx)
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        now: Instant,
        limits: &GroupLimits,
    ) -> Answer<JoinResult> {
        if self.members.len() >= limits.max_members {
            return Answer::Now(JoinResult::error(
                ResponseError::GroupMaxSizeReached,
                &member_id,
            ));
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance_id) = &req.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                client_id: req.client_id,
                client_host: req.client_host,
                group_instance_id: req.group_instance_id,
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: None,
                sync_waiter: None,
                session_deadline: now + req.session_timeout,
            },
        );
        let rx = self.await_join(&member_id);
        if self.state == GroupState::PreparingRebalance {
            if let Some(phase) = &mut self.join_phase
                && let Some(until) = phase.initial_until
            {
                // Another member arrived during the initial delay: wait a little longer.
                phase.deadline = (now + limits.initial_rebalance_delay).min(until);
            }
            self.maybe_complete_join(now);
        } else {
            self.prepare_rebalance(now, limits);
        }
        Answer::Later(rx)
    }

    fn update_member(&mut self, member_id: &str, req: JoinRequest) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.protocols = req.protocols;
            member.client_id = req.client_id;
            member.client_host = req.client_host;
            member.session_timeout = req.session_timeout;
            member.rebalance_timeout = req.rebalance_timeout;
        }
    }

    fn await_join(&mut self, member_id: &str) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let member = self
            .members
            .get_mut(member_id)
            .expect("await_join is called for a member of the group");
        if let Some(old) = member.join_waiter.replace(tx) {
            // A second JoinGroup from the same member supersedes the first.
            let _ = old.send(JoinResult::error(
                ResponseError::RebalanceInProgress,
                member_id,
            ));
        }
        rx
    }

    /// Enters PreparingRebalance: members must rejoin before the join phase ends.
    fn prepare_rebalance(&mut self, now: Instant, limits: &GroupLimits) {
        if self.state == GroupState::CompletingRebalance {
            // Assignments being collected belong to a generation that will not happen.
            for member in self.members.values_mut() {
                if let Some(tx) = member.sync_waiter.take() {
                    let _ = tx.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
                member.assignment = Bytes::new();
            }
        }
        let rebalance_timeout = self.max_rebalance_timeout();
        let phase = if self.state == GroupState::Empty {
            let delay = limits.initial_rebalance_delay.min(rebalance_timeout);
            JoinPhase {
                deadline: now + delay,
                initial_until: Some(now + rebalance_timeout),
            }
        } else {
            JoinPhase {
                deadline: now + rebalance_timeout,
                initial_until: None,
            }
        };
        tracing::info!(group = %self.id, generation = self.generation_id, "group is rebalancing");
        self.join_phase = Some(phase);
        self.state = GroupState::PreparingRebalance;
        self.maybe_complete_join(now);
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Completes the join phase once every member has rejoined (outside the initial delay)
    /// or the deadline has passed.
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let Some(phase) = self.join_phase else {
            return;
        };
        let everyone_joined =
            self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some());
        let in_initial_delay = phase.initial_until.is_some() && now < phase.deadline;
        if now >= phase.deadline || (everyone_joined && !in_initial_delay) {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Instant) {
        // Dynamic members that did not rejoin are gone; static ones stay until their session
        // times out (their restart must not cost a rebalance).
        let absent: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none() && m.group_instance_id.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in absent {
            self.remove_member(&id);
        }
        let joined: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        if joined.is_empty() && !self.members.is_empty() {
            // Only absent static members are left: keep waiting for them to come back (or for
            // their sessions to time out), as Kafka does.
            let rebalance_timeout = self.max_rebalance_timeout();
            self.join_phase = Some(JoinPhase {
                deadline: now + rebalance_timeout,
                initial_until: None,
            });
            return;
        }
        self.join_phase = None;
        if joined.is_empty() {
            self.complete_empty();
            return;
        }
        self.generation_id += 1;
        self.rebalances += 1;
        if !self.leader.as_ref().is_some_and(|l| joined.contains(l)) {
            self.leader = joined.first().cloned();
        }
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation_id,
            members = self.members.len(),
            protocol = ?self.protocol_name,
            "group rebalanced; waiting for the leader's assignment"
        );
        let leader_members = self.join_members();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let members = if self.leader.as_deref() == Some(id.as_str()) {
                leader_members.clone()
            } else {
                Vec::new()
            };
            let result = self.join_result(&id, members);
            let member = self.members.get_mut(&id).expect("id taken from the map");
            member.session_deadline = now + member.session_timeout;
            if let Some(tx) = member.join_waiter.take() {
                let _ = tx.send(result);
            }
        }
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|p| p.name == *name))
            })
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(choice) = member
                .protocols
                .iter()
                .find(|p| candidates.contains(&p.name.as_str()))
            {
                *votes.entry(choice.name.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(name, _)| name.to_string())
    }

    fn join_members(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|(id, m)| JoinMember {
                member_id: id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    fn join_result(&self, member_id: &str, members: Vec<JoinMember>) -> JoinResult {
        JoinResult {
            error: 0,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let mut member = self.members.remove(member_id)?;
        if let Some(instance_id) = &member.group_instance_id
            && self.static_members.get(instance_id).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance_id);
        }
        if let Some(tx) = member.join_waiter.take() {
            let _ = tx.send(JoinResult::error(ResponseError::UnknownMemberId, member_id));
        }
        if let Some(tx) = member.sync_waiter.take() {
            let _ = tx.send(SyncResult::error(ResponseError::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        Some(member)
    }

    /// A member is gone (left or timed out): the others rebalance.
    fn member_departed(&mut self, member_id: &str, now: Instant, limits: &GroupLimits) {
        if self.remove_member(member_id).is_none() {
            return;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.complete_empty();
                } else {
                    self.prepare_rebalance(now, limits);
                }
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn complete_empty(&mut self) {
        self.generation_id += 1;
        self.state = GroupState::Empty;
        self.protocol_name = None;
        self.protocol_type = None;
        self.leader = None;
        self.join_phase = None;
    }

    pub fn sync(
        &mut self,
        req: SyncRequest,
        now: Instant,
        limits: &GroupLimits,
    ) -> Answer<SyncResult> {
        let SyncRequest {
            member_id,
            group_instance_id,
            generation_id,
            protocol_type,
            protocol_name,
            assignments,
        } = req;
        let member_id = member_id.as_str();
        let instance_id = group_instance_id.as_deref();
        if self.state == GroupState::Dead {
            return Answer::Now(SyncResult::error(ResponseError::CoordinatorNotAvailable));
        }
        if self.fenced_instance(member_id, instance_id) {
            return Answer::Now(SyncResult::error(ResponseError::FencedInstanceId));
        }
        if !self.members.contains_key(member_id) {
            return Answer::Now(SyncResult::error(ResponseError::UnknownMemberId));
        }
        if generation_id != self.generation_id {
            return Answer::Now(SyncResult::error(ResponseError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|t| Some(t.as_str()) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n.as_str()) != self.protocol_name.as_deref())
        {
            return Answer::Now(SyncResult::error(ResponseError::InconsistentGroupProtocol));
        }
        if assignments
            .iter()
            .any(|(_, a)| a.len() > limits.max_member_metadata_bytes)
        {
            return Answer::Now(SyncResult::error(ResponseError::InvalidRequest));
        }
        let member = self.members.get_mut(member_id).expect("checked above");
        member.session_deadline = now + member.session_timeout;
        match self.state {
            GroupState::PreparingRebalance => {
                Answer::Now(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(old) = member.sync_waiter.replace(tx) {
                    let _ = old.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut assignments: BTreeMap<String, Bytes> =
                        assignments.into_iter().collect();
                    for (id, member) in &mut self.members {
                        member.assignment = assignments.remove(id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    tracing::info!(group = %self.id, generation = self.generation_id, "group is stable");
                    let protocol_type = self.protocol_type.clone();
                    let protocol_name = self.protocol_name.clone();
                    for member in self.members.values_mut() {
                        if let Some(tx) = member.sync_waiter.take() {
                            let _ = tx.send(SyncResult {
                                error: 0,
                                protocol_type: protocol_type.clone(),
                                protocol_name: protocol_name.clone(),
                                assignment: member.assignment.clone(),
                            });
                        }
                    }
                }
                Answer::Later(rx)
            }
            GroupState::Stable => Answer::Now(SyncResult {
                error: 0,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                assignment: member.assignment.clone(),
            }),
            GroupState::Empty | GroupState::Dead => {
                Answer::Now(SyncResult::error(ResponseError::UnknownMemberId))
            }
        }
    }

    /// A heartbeat, or anything else that proves a member alive (an offset commit).
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return ResponseError::CoordinatorNotAvailable.code();
        }
        if self.fenced_instance(member_id, instance_id) {
            return ResponseError::FencedInstanceId.code();
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if generation_id != self.generation_id {
            return ResponseError::IllegalGeneration.code();
        }
        member.session_deadline = now + member.session_timeout;
        match self.state {
            GroupState::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            _ => 0,
        }
    }

    /// Whether an offset commit from this member (or a standalone commit, generation -1 and
    /// no member id) may be written now. Kafka's `doCommitOffsets` rules.
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return ResponseError::CoordinatorNotAvailable.code();
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return 0;
        }
        if self.state == GroupState::CompletingRebalance {
            return ResponseError::RebalanceInProgress.code();
        }
        if self.fenced_instance(member_id, instance_id) {
            return ResponseError::FencedInstanceId.code();
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if generation_id != self.generation_id {
            return ResponseError::IllegalGeneration.code();
        }
        member.session_deadline = now + member.session_timeout;
        0
    }

    /// LeaveGroup for one member; the group rebalances without it.
    pub fn leave(&mut self, leaving: &LeavingMember, now: Instant, limits: &GroupLimits) -> i16 {
        if self.state == GroupState::Dead {
            return ResponseError::CoordinatorNotAvailable.code();
        }
        let member_id = match &leaving.group_instance_id {
            Some(instance_id) => {
                let Some(current) = self.static_members.get(instance_id).cloned() else {
                    return ResponseError::UnknownMemberId.code();
                };
                // KIP-345: an empty member id leaves whatever incarnation is current (admin
                // tools remove static members that way); a wrong one is fenced.
                if !leaving.member_id.is_empty() && leaving.member_id != current {
                    return ResponseError::FencedInstanceId.code();
                }
                current
            }
            None => leaving.member_id.clone(),
        };
        if self.pending.remove(&member_id).is_some() {
            return 0;
        }
        if !self.members.contains_key(&member_id) {
            return ResponseError::UnknownMemberId.code();
        }
        tracing::info!(group = %self.id, member = %member_id, "member left the group");
        self.member_departed(&member_id, now, limits);
        0
    }

    /// Fires due deadlines: expired sessions, expired MEMBER_ID_REQUIRED ids and the end of a
    /// join phase. Returns the next instant at which something is due.
    pub fn tick(&mut self, now: Instant, limits: &GroupLimits) -> Option<Instant> {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| !m.awaiting() && m.session_deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session timed out");
            self.member_departed(&id, now, limits);
        }
        self.maybe_complete_join(now);
        self.next_deadline()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| !m.awaiting())
            .map(|m| m.session_deadline);
        let pending = self.pending.values().copied();
        let join = self.join_phase.map(|p| p.deadline);
        sessions.chain(pending).chain(join).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> GroupLimits {
        GroupLimits {
            min_session_timeout: Duration::from_secs(1),
            max_session_timeout: Duration::from_secs(60),
            initial_rebalance_delay: Duration::from_secs(3),
            max_members: 4,
            max_groups: 10,
            max_member_metadata_bytes: 1024,
        }
    }

    fn join_req(member_id: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            group_instance_id: None,
            client_id: "client".to_string(),
            client_host: "/127.0.0.1".to_string(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".to_string(),
            protocols: protocols
                .iter()
                .map(|name| Protocol {
                    name: name.to_string(),
                    metadata: Bytes::from(format!("meta-{name}")),
                })
                .collect(),
            require_known_member_id: true,
        }
    }

    fn sync_req(
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncRequest {
        SyncRequest {
            member_id: member_id.to_string(),
            group_instance_id: instance_id.map(str::to_string),
            generation_id,
            protocol_type: None,
            protocol_name: None,
            assignments,
        }
    }

    fn now_value<T>(answer: Answer<T>) -> T {
        match answer {
            Answer::Now(value) => value,
            Answer::Later(_) => panic!("expected an immediate answer"),
        }
    }

    fn later<T: std::fmt::Debug>(answer: Answer<T>) -> oneshot::Receiver<T> {
        match answer {
            Answer::Later(rx) => rx,
            Answer::Now(value) => panic!("expected a pending answer, got {value:?}"),
        }
    }

    /// Joins a new dynamic member in two steps (MEMBER_ID_REQUIRED, then with the id).
    fn join_new(group: &mut Group, now: Instant) -> (String, oneshot::Receiver<JoinResult>) {
        let first = now_value(group.join(join_req("", &["range"]), now, &limits()));
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        let id = first.member_id.clone();
        let rx = later(group.join(join_req(&id, &["range"]), now, &limits()));
        (id, rx)
    }

    fn sync_all(group: &mut Group, ids: &[String], leader: &str, now: Instant) -> Vec<SyncResult> {
        let gen_id = group.generation_id();
        let mut rxs = Vec::new();
        for id in ids.iter().filter(|id| id.as_str() != leader) {
            rxs.push(later(group.sync(
                sync_req(id, None, gen_id, vec![]),
                now,
                &limits(),
            )));
        }
        let assignments = ids
            .iter()
            .map(|id| (id.clone(), Bytes::from(format!("assign-{id}"))))
            .collect();
        rxs.push(later(group.sync(
            sync_req(leader, None, gen_id, assignments),
            now,
            &limits(),
        )));
        rxs.into_iter()
            .map(|mut rx| rx.try_recv().unwrap())
            .collect()
    }

    #[test]
    fn first_rebalance_waits_for_the_initial_delay_then_everyone_gets_a_generation() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let (a, mut rx_a) = join_new(&mut group, t0);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        let (b, mut rx_b) = join_new(&mut group, t0 + Duration::from_secs(1));
        // Everyone has joined, but the initial delay holds the join open.
        assert!(rx_a.try_recv().is_err());
        group.tick(t0 + Duration::from_secs(3), &limits());
        assert!(
            rx_a.try_recv().is_err(),
            "the second member extended the delay"
        );
        group.tick(t0 + Duration::from_secs(4), &limits());
        let ra = rx_a.try_recv().unwrap();
        let rb = rx_b.try_recv().unwrap();
        assert_eq!(ra.error, 0);
        assert_eq!(ra.generation_id, 1);
        assert_eq!(rb.generation_id, 1);
        assert_eq!(ra.leader, rb.leader);
        let (leader, follower) = if ra.leader == a {
            (&ra, &rb)
        } else {
            (&rb, &ra)
        };
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        assert_eq!(leader.protocol_name.as_deref(), Some("range"));
        assert_eq!(group.state(), GroupState::CompletingRebalance);

        let results = sync_all(
            &mut group,
            &[a.clone(), b.clone()],
            &ra.leader,
            t0 + Duration::from_secs(4),
        );
        assert!(results.iter().all(|r| r.error == 0));
        assert_eq!(group.state(), GroupState::Stable);
        let summary = group.summary();
        assert_eq!(summary.members.len(), 2);
        assert!(
            summary
                .members
                .iter()
                .all(|m| m.assignment == format!("assign-{}", m.member_id))
        );
    }

    fn stable_group(n: usize) -> (Group, Vec<String>, Instant) {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let mut ids = Vec::new();
        let mut rxs = Vec::new();
        for _ in 0..n {
            let (id, rx) = join_new(&mut group, t0);
            ids.push(id);
            rxs.push(rx);
        }
        let t1 = t0 + Duration::from_secs(3);
        group.tick(t1, &limits());
        let leader = rxs[0].try_recv().unwrap().leader;
        sync_all(&mut group, &ids, &leader, t1);
        assert_eq!(group.state(), GroupState::Stable);
        (group, ids, t1)
    }

    #[test]
    fn a_leaving_member_triggers_a_rebalance_that_completes_when_the_rest_rejoin() {
        let (mut group, ids, t) = stable_group(3);
        let generation = group.generation_id();
        let code = group.leave(
            &LeavingMember {
                member_id: ids[0].clone(),
                group_instance_id: None,
            },
            t,
            &limits(),
        );
        assert_eq!(code, 0);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert_eq!(
            group.heartbeat(&ids[1], None, generation, t),
            ResponseError::RebalanceInProgress.code()
        );
        let mut rx1 = later(group.join(join_req(&ids[1], &["range"]), t, &limits()));
        assert!(rx1.try_recv().is_err());
        let mut rx2 = later(group.join(join_req(&ids[2], &["range"]), t, &limits()));
        assert_eq!(rx1.try_recv().unwrap().generation_id, generation + 1);
        assert_eq!(rx2.try_recv().unwrap().error, 0);
        assert_eq!(group.member_count(), 2);
        assert_eq!(
            group.leave(
                &LeavingMember {
                    member_id: ids[0].clone(),
                    group_instance_id: None
                },
                t,
                &limits()
            ),
            ResponseError::UnknownMemberId.code()
        );
    }

    #[test]
    fn members_that_do_not_rejoin_in_time_are_dropped() {
        let (mut group, ids, t) = stable_group(2);
        // A changed subscription from member 0 starts a rebalance; member 1 never rejoins.
        let mut rx = later(group.join(join_req(&ids[0], &["range", "roundrobin"]), t, &limits()));
        assert!(rx.try_recv().is_err());
        let t_late = t + Duration::from_secs(31);
        group.tick(t_late, &limits());
        let result = rx.try_recv().unwrap();
        assert_eq!(result.error, 0);
        assert_eq!(result.members.len(), 1);
        assert_eq!(group.member_count(), 1);
        assert!(!group.has_member(&ids[1]));
    }

    #[test]
    fn sessions_expire_without_heartbeats() {
        let (mut group, ids, t) = stable_group(2);
        let generation = group.generation_id();
        let t5 = t + Duration::from_secs(5);
        assert_eq!(group.heartbeat(&ids[0], None, generation, t5), 0);
        group.tick(t + Duration::from_secs(11), &limits());
        assert!(group.has_member(&ids[0]));
        assert!(!group.has_member(&ids[1]));
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert_eq!(
            group.heartbeat(&ids[1], None, generation, t5),
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(
            group.heartbeat(&ids[0], None, generation - 1, t5),
            ResponseError::IllegalGeneration.code()
        );
        // The last member times out too: the group ends up empty with a new generation.
        group.tick(t + Duration::from_secs(60), &limits());
        assert_eq!(group.state(), GroupState::Empty);
        assert!(group.is_idle());
    }

    #[test]
    fn static_member_restart_keeps_its_assignment_without_a_rebalance() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let mut req = join_req("", &["range"]);
        req.group_instance_id = Some("instance-1".to_string());
        // Static members get their id at once (no MEMBER_ID_REQUIRED round).
        let mut rx = later(group.join(req.clone(), t0, &limits()));
        let (b, mut rx_b) = join_new(&mut group, t0);
        group.tick(t0 + Duration::from_secs(3), &limits());
        let ra = rx.try_recv().unwrap();
        let rb = rx_b.try_recv().unwrap();
        let a = ra.member_id.clone();
        sync_all(
            &mut group,
            &[a.clone(), b.clone()],
            &ra.leader,
            t0 + Duration::from_secs(3),
        );
        let generation = group.generation_id();
        let rebalances = group.rebalances();
        let _ = rb;

        // The static member restarts: a new member id, same generation, same assignment.
        let t1 = t0 + Duration::from_secs(5);
        let rejoin = now_value(group.join(req.clone(), t1, &limits()));
        assert_eq!(rejoin.error, 0);
        assert_ne!(rejoin.member_id, a);
        assert_eq!(rejoin.generation_id, generation);
        assert_ne!(
            rejoin.leader, rejoin.member_id,
            "it must not run an assignment"
        );
        assert_eq!(group.state(), GroupState::Stable);
        assert_eq!(group.rebalances(), rebalances);
        let sync = now_value(group.sync(
            sync_req(&rejoin.member_id, Some("instance-1"), generation, vec![]),
            t1,
            &limits(),
        ));
        assert_eq!(sync.assignment, Bytes::from(format!("assign-{a}")));
        // The old incarnation is fenced.
        assert_eq!(
            group.heartbeat(&a, Some("instance-1"), generation, t1),
            ResponseError::FencedInstanceId.code()
        );
        assert_eq!(
            group.heartbeat(&rejoin.member_id, Some("instance-1"), generation, t1),
            0
        );
    }

    #[test]
    fn incompatible_protocols_and_bad_timeouts_are_refused() {
        let (mut group, _ids, t) = stable_group(1);
        let other = now_value(group.join(join_req("", &["sticky"]), t, &limits()));
        assert_eq!(other.error, ResponseError::InconsistentGroupProtocol.code());
        let mut req = join_req("", &["range"]);
        req.protocol_type = "connect".to_string();
        assert_eq!(
            now_value(group.join(req, t, &limits())).error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let mut req = join_req("", &["range"]);
        req.session_timeout = Duration::from_millis(10);
        assert_eq!(
            now_value(group.join(req, t, &limits())).error,
            ResponseError::InvalidSessionTimeout.code()
        );
        let mut req = join_req("", &["range"]);
        req.protocols[0].metadata = Bytes::from(vec![0; 4096]);
        assert_eq!(
            now_value(group.join(req, t, &limits())).error,
            ResponseError::InvalidRequest.code()
        );
        assert_eq!(
            now_value(group.join(join_req("nobody", &["range"]), t, &limits())).error,
            ResponseError::UnknownMemberId.code()
        );
    }

    #[test]
    fn group_size_is_bounded() {
        let (mut group, _ids, t) = stable_group(4);
        let full = now_value(group.join(join_req("", &["range"]), t, &limits()));
        assert_eq!(full.error, ResponseError::GroupMaxSizeReached.code());
    }

    #[test]
    fn protocol_selection_follows_the_members_preferences() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let mut rxs = Vec::new();
        for protocols in [
            &["cooperative-sticky", "range"][..],
            &["range", "cooperative-sticky"],
            &["cooperative-sticky", "range"],
        ] {
            let first = now_value(group.join(join_req("", protocols), t0, &limits()));
            rxs.push(later(group.join(
                join_req(&first.member_id, protocols),
                t0,
                &limits(),
            )));
        }
        group.tick(t0 + Duration::from_secs(3), &limits());
        let result = rxs[0].try_recv().unwrap();
        assert_eq!(result.protocol_name.as_deref(), Some("cooperative-sticky"));
    }

    #[test]
    fn commits_follow_kafka_rules() {
        let mut empty = Group::new("g");
        let t = Instant::now();
        assert_eq!(
            empty.validate_commit("", None, -1, t),
            0,
            "standalone commits to an empty group"
        );
        let (mut group, ids, t) = stable_group(2);
        let generation = group.generation_id();
        assert_eq!(
            group.validate_commit("", None, -1, t),
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(group.validate_commit(&ids[0], None, generation, t), 0);
        assert_eq!(
            group.validate_commit(&ids[0], None, generation + 1, t),
            ResponseError::IllegalGeneration.code()
        );
        // While others rejoin, a member of the current generation may still commit what it
        // consumed (so a rebalance loses no progress).
        let _rx = later(group.join(join_req(&ids[1], &["range", "roundrobin"]), t, &limits()));
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert_eq!(group.validate_commit(&ids[0], None, generation, t), 0);
    }

    #[test]
    fn a_rebalance_during_sync_tells_waiting_followers_to_rejoin() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let (a, mut rx_a) = join_new(&mut group, t0);
        let (b, mut rx_b) = join_new(&mut group, t0);
        group.tick(t0 + Duration::from_secs(3), &limits());
        let ra = rx_a.try_recv().unwrap();
        rx_b.try_recv().unwrap();
        let follower = if ra.leader == a { b.clone() } else { a.clone() };
        let mut sync_rx = later(group.sync(
            sync_req(&follower, None, ra.generation_id, vec![]),
            t0,
            &limits(),
        ));
        let leader = ra.leader.clone();
        assert_eq!(
            group.leave(
                &LeavingMember {
                    member_id: leader,
                    group_instance_id: None
                },
                t0,
                &limits()
            ),
            0
        );
        assert_eq!(
            sync_rx.try_recv().unwrap().error,
            ResponseError::RebalanceInProgress.code()
        );
    }
}
