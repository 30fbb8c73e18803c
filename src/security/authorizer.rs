//! The authorizer every handler asks before it reads or changes state: super users
//! (`--super-users`) may do everything, everyone else what the ACLs allow (`acl.rs`), and with
//! `--authorizer false` every check allows, as Kafka without an authorizer.
//!
//! The ACLs are an in-memory snapshot of `acls/` in the metadata store: read at start-up and
//! kept current by a watch (a missed event re-reads the prefix), so an ACL created through
//! any broker holds on every broker within the watch's delay. The snapshot holds at most
//! [`ACL_BINDINGS_MAX`] bindings; a store holding more is refused as a whole — every
//! principal but the super users is denied until bindings are deleted — because a partial
//! snapshot could miss a DENY.
//!
//! A denial is logged at DEBUG (principal, host, operation, resource) and counted in
//! `strato_authorization_denied_total`, except the quiet checks that only filter what a
//! listing shows (Kafka's `logIfDenied = false`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use strato_metadata::model::AclRecord;
use strato_metadata::{MetadataError, MetadataStore, WatchEvent, keys};
use tokio_util::sync::CancellationToken;

use super::Session;
use super::acl::{
    AclBinding, AclBindingFilter, AclIndex, AclOperation, CLUSTER_RESOURCE_NAME, Requester,
    ResourceType, operations_bitfield,
};
use super::principal::Principal;

/// Most ACL bindings a cluster may hold (each broker keeps all of them in memory, a few
/// hundred bytes each). CreateAcls refuses more.
pub const ACL_BINDINGS_MAX: usize = 100_000;
/// Pause before re-establishing a failed watch of `acls/`.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// Resource types and operations, by wire code, for the denial counters.
const RESOURCE_TYPE_CODES: usize = 8;
const OPERATION_CODES: usize = 16;

struct Snapshot {
    index: AclIndex,
    /// False when the store held more than [`ACL_BINDINGS_MAX`] bindings: checks then deny.
    complete: bool,
}

pub struct Authorizer {
    enabled: bool,
    super_users: Vec<Principal>,
    snapshot: RwLock<Snapshot>,
    /// Denials by resource type and operation code.
    denied: [[AtomicU64; OPERATION_CODES]; RESOURCE_TYPE_CODES],
}

impl Authorizer {
    pub fn new(enabled: bool, super_users: Vec<Principal>) -> Self {
        Authorizer {
            enabled,
            super_users,
            snapshot: RwLock::new(Snapshot {
                index: AclIndex::default(),
                complete: true,
            }),
            denied: Default::default(),
        }
    }

    /// `--authorizer`: whether ACLs are checked (and the ACL APIs served) at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `session` may do `operation` on the resource; a denial is logged and counted.
    pub fn allows(
        &self,
        session: &Session,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let allowed = self.decide(session, operation, resource_type, name);
        if !allowed {
            self.record_denial(session, operation, resource_type, name);
        }
        allowed
    }

    /// [`Authorizer::allows`] without logging or counting a denial: for checks that only
    /// decide what a listing shows (all topics in Metadata, ListGroups, all offsets).
    pub fn allows_quietly(
        &self,
        session: &Session,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.decide(session, operation, resource_type, name)
    }

    /// `operation` on the cluster resource (`kafka-cluster`). For the admin APIs that act on
    /// the whole cluster (ACLs, SCRAM credentials, ElectLeaders, broker configs).
    pub fn allows_cluster(&self, session: &Session, operation: AclOperation) -> bool {
        self.allows(
            session,
            operation,
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
        )
    }

    /// InitProducerId without a transactional id: IDEMPOTENT_WRITE on the cluster, or WRITE
    /// on some topic (KIP-679, Kafka's `authorizeByResourceType`). A denial is counted as
    /// IDEMPOTENT_WRITE on the cluster.
    pub fn allows_idempotent_write(&self, session: &Session) -> bool {
        if self.decide(
            session,
            AclOperation::IdempotentWrite,
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
        ) {
            return true;
        }
        let snapshot = self.snapshot.read().expect("acl snapshot lock");
        let allowed = snapshot.complete
            && snapshot.index.authorize_any(
                requester(session),
                AclOperation::Write,
                ResourceType::Topic,
            );
        drop(snapshot);
        if !allowed {
            self.record_denial(
                session,
                AclOperation::IdempotentWrite,
                ResourceType::Cluster,
                CLUSTER_RESOURCE_NAME,
            );
        }
        allowed
    }

    /// Kafka's authorized-operations bitfield of a resource (bit n: the operation of code n
    /// is allowed), over the operations its type supports. Without an authorizer and for
    /// super users, all of them.
    pub fn authorized_operations(
        &self,
        session: &Session,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        if !self.enabled || self.is_super_user(session) {
            return operations_bitfield(resource_type.supported_operations().iter().copied());
        }
        let snapshot = self.snapshot.read().expect("acl snapshot lock");
        if !snapshot.complete {
            return 0;
        }
        snapshot
            .index
            .authorized_operations(requester(session), resource_type, name)
    }

    /// The bindings `filter` matches (DescribeAcls), in a stable order.
    pub fn matching(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.snapshot
            .read()
            .expect("acl snapshot lock")
            .index
            .matching(filter)
    }

    /// Bindings held.
    pub fn binding_count(&self) -> usize {
        self.snapshot.read().expect("acl snapshot lock").index.len()
    }

    /// Denials so far, per resource type and operation that a resource of the type supports
    /// (a fixed set of label values).
    pub fn denials(&self) -> Vec<(ResourceType, AclOperation, u64)> {
        let mut out = Vec::new();
        for resource_type in ResourceType::ALL {
            for operation in resource_type.supported_operations() {
                let count = self.denied[code_index(resource_type.code())]
                    [code_index(operation.code())]
                .load(Ordering::Relaxed);
                out.push((*resource_type, *operation, count));
            }
        }
        out
    }

    /// Whether the binding stored at `key` is held.
    pub(super) fn holds(&self, key: &str) -> bool {
        self.snapshot
            .read()
            .expect("acl snapshot lock")
            .index
            .contains(key)
    }

    /// False while the store holds more bindings than [`ACL_BINDINGS_MAX`].
    pub(super) fn is_complete(&self) -> bool {
        self.snapshot.read().expect("acl snapshot lock").complete
    }

    fn is_super_user(&self, session: &Session) -> bool {
        self.super_users.contains(&session.principal)
    }

    fn decide(
        &self,
        session: &Session,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled || self.is_super_user(session) {
            return true;
        }
        let snapshot = self.snapshot.read().expect("acl snapshot lock");
        snapshot.complete
            && snapshot
                .index
                .authorize(requester(session), operation, resource_type, name)
    }

    fn record_denial(
        &self,
        session: &Session,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) {
        tracing::debug!(
            principal = %session.principal,
            host = %session.peer.ip(),
            operation = %operation,
            resource_type = %resource_type,
            resource = name,
            "authorization denied"
        );
        self.denied[code_index(resource_type.code())][code_index(operation.code())]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Applies a binding stored at `key` (a watch event, or this broker's own write).
    pub(super) fn apply_put(&self, key: String, binding: AclBinding) {
        let mut snapshot = self.snapshot.write().expect("acl snapshot lock");
        if snapshot.index.len() >= ACL_BINDINGS_MAX && !snapshot.index.contains(&key) {
            tracing::error!(
                max = ACL_BINDINGS_MAX,
                "the metadata store holds more ACL bindings than a broker keeps: denying \
                 everyone but the super users until bindings are deleted"
            );
            snapshot.complete = false;
            return;
        }
        snapshot.index.insert(key, binding);
    }

    /// Drops the binding stored at `key` (a watch event, or this broker's own delete).
    pub(super) fn apply_delete(&self, key: &str) {
        self.snapshot
            .write()
            .expect("acl snapshot lock")
            .index
            .remove(key);
    }

    /// Reads every binding of the store into a new snapshot, then swaps it in (checks keep
    /// using the old one meanwhile). Returns the number of bindings read.
    pub async fn load(&self, meta: &dyn MetadataStore) -> Result<usize, MetadataError> {
        let mut index = AclIndex::default();
        let mut stored = 0usize;
        meta.for_each(keys::ACLS_PREFIX, None, &mut |key, value| {
            stored += 1;
            if index.len() >= ACL_BINDINGS_MAX {
                return Ok(());
            }
            match AclRecord::decode(key, &value.value) {
                Ok(record) => index.insert(key.to_string(), AclBinding::from_record(&record)),
                Err(err) => tracing::warn!(%key, "ignoring a bad ACL record: {err:#}"),
            }
            Ok(())
        })
        .await?;
        let complete = stored <= ACL_BINDINGS_MAX;
        if !complete {
            tracing::error!(
                stored,
                max = ACL_BINDINGS_MAX,
                "the metadata store holds more ACL bindings than a broker keeps: denying \
                 everyone but the super users until bindings are deleted"
            );
        }
        *self.snapshot.write().expect("acl snapshot lock") = Snapshot { index, complete };
        Ok(stored)
    }

    /// Follows `acls/` until `shutdown`: a full read whenever the watch is (re)established or
    /// reports missed events, single changes in between.
    pub async fn run(self: Arc<Self>, meta: Arc<dyn MetadataStore>, shutdown: CancellationToken) {
        loop {
            let mut events = match meta.watch(keys::ACLS_PREFIX).await {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!("failed to watch ACLs: {err:#}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(WATCH_RETRY) => continue,
                    }
                }
            };
            self.reload(meta.as_ref()).await;
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.recv() => event,
                };
                let Some(event) = event else { break };
                match event {
                    WatchEvent::Put { key, value, .. } => match AclRecord::decode(&key, &value) {
                        Ok(record) => self.apply_put(key, AclBinding::from_record(&record)),
                        Err(err) => tracing::warn!(%key, "ignoring a bad ACL record: {err:#}"),
                    },
                    WatchEvent::Delete { key, .. } => {
                        self.apply_delete(&key);
                        // A binding dropped for want of room may fit now.
                        if !self.is_complete() {
                            self.reload(meta.as_ref()).await;
                        }
                    }
                    WatchEvent::Resync => self.reload(meta.as_ref()).await,
                }
            }
        }
    }

    async fn reload(&self, meta: &dyn MetadataStore) {
        match self.load(meta).await {
            Ok(bindings) => tracing::debug!(bindings, "ACLs read"),
            // The snapshot stays as it was; the next resync or watch restart reads again.
            Err(err) => tracing::warn!("failed to read ACLs: {err:#}"),
        }
    }
}

fn requester(session: &Session) -> Requester<'_> {
    Requester {
        principal: &session.principal,
        host: session.peer.ip(),
    }
}

/// A wire code as an index of the denial counters (codes are 0..16, see `acl.rs`).
fn code_index(code: i8) -> usize {
    usize::try_from(code).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::{
        AccessControlEntry, PatternType, PermissionType, ResourcePattern, WILDCARD_HOST,
    };
    use crate::security::listener::SecurityProtocol;

    fn session(principal: &str) -> Session {
        Session::new(
            "127.0.0.1:5000".parse().unwrap(),
            SecurityProtocol::Plaintext,
            Principal::parse(principal).unwrap(),
        )
    }

    fn read_topic(principal: &str) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::Topic,
                name: "t".into(),
                pattern_type: PatternType::Literal,
            },
            entry: AccessControlEntry {
                principal: principal.into(),
                host: WILDCARD_HOST.into(),
                operation: AclOperation::Read,
                permission: PermissionType::Allow,
            },
        }
    }

    #[test]
    fn disabled_allows_everything_and_super_users_bypass_acls() {
        let off = Authorizer::new(false, Vec::new());
        let alice = session("User:alice");
        assert!(off.allows(&alice, AclOperation::Write, ResourceType::Topic, "t"));
        assert_eq!(
            off.authorized_operations(&alice, ResourceType::Group, "g"),
            (1 << 3) | (1 << 6) | (1 << 8)
        );
        let on = Authorizer::new(true, vec![Principal::user("admin")]);
        assert!(!on.allows(&alice, AclOperation::Write, ResourceType::Topic, "t"));
        assert!(on.allows(
            &session("User:admin"),
            AclOperation::Write,
            ResourceType::Topic,
            "t"
        ));
        assert!(on.allows_cluster(&session("User:admin"), AclOperation::Alter));
        on.apply_put("k".into(), read_topic("User:alice"));
        assert!(on.allows(&alice, AclOperation::Read, ResourceType::Topic, "t"));
        on.apply_delete("k");
        assert!(!on.allows(&alice, AclOperation::Read, ResourceType::Topic, "t"));
    }

    /// Goal: a snapshot that cannot hold every stored binding denies everyone but super
    /// users (a dropped binding could be a DENY). Method: fill it to the limit, then one more.
    #[test]
    fn more_bindings_than_the_limit_fail_closed() {
        let on = Authorizer::new(true, vec![Principal::user("admin")]);
        let alice = session("User:alice");
        for idx in 0..ACL_BINDINGS_MAX {
            on.apply_put(format!("k{idx}"), read_topic("User:alice"));
        }
        assert!(on.allows(&alice, AclOperation::Read, ResourceType::Topic, "t"));
        // Replacing a held binding is not a new one.
        on.apply_put("k0".into(), read_topic("User:alice"));
        assert!(on.is_complete());
        on.apply_put("one-too-many".into(), read_topic("User:bob"));
        assert!(!on.is_complete());
        assert!(!on.allows(&alice, AclOperation::Read, ResourceType::Topic, "t"));
        assert_eq!(
            on.authorized_operations(&alice, ResourceType::Topic, "t"),
            0
        );
        assert!(on.allows(
            &session("User:admin"),
            AclOperation::Read,
            ResourceType::Topic,
            "t"
        ));
    }

    #[test]
    fn denials_are_counted_unless_quiet() {
        let on = Authorizer::new(true, Vec::new());
        let alice = session("User:alice");
        let count = |on: &Authorizer| {
            on.denials()
                .into_iter()
                .find(|(rt, op, _)| *rt == ResourceType::Topic && *op == AclOperation::Write)
                .map(|(_, _, n)| n)
        };
        assert_eq!(count(&on), Some(0));
        assert!(!on.allows_quietly(&alice, AclOperation::Write, ResourceType::Topic, "t"));
        assert_eq!(count(&on), Some(0));
        assert!(!on.allows(&alice, AclOperation::Write, ResourceType::Topic, "t"));
        assert_eq!(count(&on), Some(1));
        assert!(!on.allows_idempotent_write(&alice));
        let idempotent = on.denials().into_iter().find(|(rt, op, _)| {
            *rt == ResourceType::Cluster && *op == AclOperation::IdempotentWrite
        });
        assert_eq!(idempotent.map(|(_, _, n)| n), Some(1));
    }
}
