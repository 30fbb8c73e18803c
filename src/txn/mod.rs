//! Transaction coordinator (KIP-98; docs/rfcs/001-transactions.md). The live broker that owns
//! a transactional id by rendezvous hashing coordinates it; the id's state is `txns/<id>`,
//! written by compare-and-set, so a coordinator that lost ownership cannot overwrite a
//! newer one. Ending a transaction writes PrepareCommit/PrepareAbort together with one
//! marker request per partition (`txn-markers/...`); partition leaders write the markers
//! and delete the requests; when none is left (and the group offsets of a commit are
//! stored) the coordinator writes CompleteCommit/CompleteAbort.
//!
//! **Invariants:** every state change of an id is one compare-and-set on its record, made
//! only by the broker that owns the id; a transaction is complete only once every one of its
//! marker requests is gone; the coordinator keeps in memory only what it can rebuild from
//! the store (open transactions' deadlines, the requests still owed).

pub mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strato_metadata::model::{
    CommittedOffsetRecord, RECORD_FORMAT_V1, TxnMarkerRecord, TxnPartitionRecord, TxnRecord,
    TxnState,
};
use strato_metadata::{MetadataError, MetadataStore, Txn, Version, WatchEvent, keys};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterView;
use crate::producer_ids::ProducerIdAllocator;
use state::{EndOutcome, InitOutcome, InitRequest, TxnError};

/// Locks that serialise the requests of one transactional id on its coordinator (ids are
/// spread over them by hash; bounded whatever the number of ids).
const LOCK_STRIPES: usize = 256;
/// How often the coordinator lists `txns/` to find the open transactions it owns (after a
/// restart or an ownership move); its own transactions are tracked as they change.
const SCAN_INTERVAL: Duration = Duration::from_secs(5);
/// How often timeouts and completions are checked.
const TICK: Duration = Duration::from_millis(100);
/// Offsets copied per metadata transaction (each is a put and a delete; etcd allows 128
/// operations).
const OFFSET_MOVES_PER_TXN: usize = 50;
/// Delay before a watch is set up again after it failed.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// The coordinator's limits (`--transaction-*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLimits {
    /// Kafka's `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// Partitions in one transaction (its record and marker requests fit one metadata
    /// transaction).
    pub max_partitions: usize,
    /// Open transactions this broker coordinates at once.
    pub max_open: usize,
    /// Kafka's `transactional.id.expiration.ms`: an id with no transaction open and no
    /// request for this long is forgotten (its record deleted), so `txns/` stays bounded.
    pub id_expiration_ms: i64,
}

/// Why a coordinator request failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    Txn(#[from] TxnError),
    #[error("this broker does not coordinate the transactional id")]
    NotCoordinator,
    #[error("this broker coordinates too many open transactions")]
    TooManyOpen,
    #[error("the transactional id is unknown")]
    UnknownId,
    #[error(transparent)]
    Store(#[from] MetadataError),
}

/// What the coordinator follows of a transaction it owns.
#[derive(Debug, Clone)]
enum Tracked {
    /// Open: aborted when the deadline passes.
    Ongoing { deadline_ms: i64, start_ms: i64 },
    /// Prepare*: the marker requests not yet written (their keys), and whether the group
    /// offsets were settled.
    Completing {
        remaining: HashSet<String>,
        offsets_settled: bool,
        start_ms: i64,
    },
}

/// Open transactions and their age, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TxnStats {
    pub open: u64,
    pub completing: u64,
    pub oldest_age_ms: i64,
}

pub struct TxnCoordinator {
    meta: Arc<dyn MetadataStore>,
    cluster: Arc<ClusterView>,
    producer_ids: Arc<ProducerIdAllocator>,
    limits: TxnLimits,
    locks: Vec<tokio::sync::Mutex<()>>,
    tracked: Mutex<HashMap<String, Tracked>>,
    wake: Notify,
}

fn now_ms() -> i64 {
    crate::log::flush::now_ms()
}

fn stripe(transactional_id: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    transactional_id.hash(&mut hasher);
    (hasher.finish() % LOCK_STRIPES as u64) as usize
}

fn marker_key(p: &TxnPartitionRecord, producer_id: i64) -> String {
    keys::txn_marker(p.topic_id, p.partition, producer_id)
}

impl TxnCoordinator {
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        cluster: Arc<ClusterView>,
        producer_ids: Arc<ProducerIdAllocator>,
        limits: TxnLimits,
    ) -> Self {
        Self {
            meta,
            cluster,
            producer_ids,
            limits,
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            tracked: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        }
    }

    pub fn limits(&self) -> &TxnLimits {
        &self.limits
    }

    /// Whether this broker coordinates `transactional_id` now.
    pub fn owns(&self, transactional_id: &str) -> bool {
        self.cluster.group_owner(transactional_id) == self.cluster.broker_id()
    }

    fn check_owner(&self, transactional_id: &str) -> Result<(), CoordinatorError> {
        if self.owns(transactional_id) {
            Ok(())
        } else {
            Err(CoordinatorError::NotCoordinator)
        }
    }

    async fn read(
        &self,
        transactional_id: &str,
    ) -> Result<Option<(TxnRecord, Version)>, MetadataError> {
        let key = keys::txn(transactional_id);
        match self.meta.get(&key).await? {
            None => Ok(None),
            Some(v) => Ok(Some((TxnRecord::decode(&key, &v.value)?, v.version))),
        }
    }

    /// Writes `record` if the id's record is still at `version`, with `extra` operations in
    /// the same transaction. A conflict means another broker wrote it: this one is not (or
    /// no longer) the coordinator.
    async fn write(
        &self,
        record: &TxnRecord,
        version: Version,
        extra: impl FnOnce(Txn) -> Txn,
    ) -> Result<(), CoordinatorError> {
        let key = keys::txn(&record.transactional_id);
        let txn = extra(
            Txn::new()
                .when_version(&key, version)
                .put(&key, record.encode()),
        );
        match self.meta.txn(txn).await {
            Ok(_) => {
                self.track(record);
                Ok(())
            }
            Err(MetadataError::Conflict { .. }) => Err(CoordinatorError::NotCoordinator),
            Err(err) => Err(err.into()),
        }
    }

    /// Follows `record` after it was written (or found): its timeout or its completion.
    fn track(&self, record: &TxnRecord) {
        let mut tracked = self.tracked.lock().expect("tracked lock");
        match record.state {
            TxnState::Ongoing => {
                tracked.insert(
                    record.transactional_id.clone(),
                    Tracked::Ongoing {
                        deadline_ms: record.start_ms.saturating_add(i64::from(record.timeout_ms)),
                        start_ms: record.start_ms,
                    },
                );
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                let remaining = record
                    .partitions
                    .iter()
                    .map(|p| marker_key(p, record.producer_id))
                    .collect();
                tracked.insert(
                    record.transactional_id.clone(),
                    Tracked::Completing {
                        remaining,
                        offsets_settled: false,
                        start_ms: record.start_ms,
                    },
                );
                self.wake.notify_one();
            }
            _ => {
                tracked.remove(&record.transactional_id);
            }
        }
    }

    fn open_count(&self) -> usize {
        self.tracked.lock().expect("tracked lock").len()
    }

    /// The marker requests of a Prepare* record, put in the same metadata transaction.
    fn with_markers(record: &TxnRecord) -> impl FnOnce(Txn) -> Txn + '_ {
        move |mut txn| {
            let marker = TxnMarkerRecord {
                v: RECORD_FORMAT_V1,
                transactional_id: record.transactional_id.clone(),
                producer_id: record.producer_id,
                producer_epoch: record.producer_epoch,
                commit: record.state == TxnState::PrepareCommit,
                coordinator_epoch: 0,
            };
            let value = marker.encode();
            for p in &record.partitions {
                txn = txn.put(marker_key(p, record.producer_id), value.clone());
            }
            txn
        }
    }

    /// InitProducerId with a transactional id: (producer id, epoch).
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        request: InitRequest,
    ) -> Result<(i64, i16), CoordinatorError> {
        self.check_owner(transactional_id)?;
        state::check_timeout(request.timeout_ms, self.limits.max_timeout_ms)?;
        let _guard = self.locks[stripe(transactional_id)].lock().await;
        let now = now_ms();
        let Some((current, version)) = self.read(transactional_id).await? else {
            if request.producer_id >= 0 {
                // KIP-360: the client names an id this coordinator never gave.
                return Err(TxnError::InvalidProducerIdMapping.into());
            }
            let producer_id = self.producer_ids.next(self.meta.as_ref()).await?;
            let record = state::new_record(transactional_id, producer_id, request.timeout_ms, now);
            self.write(&record, 0, |t| t).await?;
            tracing::info!(transactional_id, producer_id, "transactional id registered");
            return Ok((record.producer_id, record.producer_epoch));
        };
        // Only reached when the epoch is exhausted (rare): the id comes from the allocator
        // before the pure decision, which then may not use it.
        let spare_id = if current.producer_epoch >= state::EPOCH_MAX {
            Some(self.producer_ids.next(self.meta.as_ref()).await?)
        } else {
            None
        };
        let new_id = || spare_id.expect("allocated when the epoch is exhausted");
        match state::init_producer_id(&current, request, now, new_id)? {
            InitOutcome::Ready(record) => {
                if record != current {
                    self.write(&record, version, |t| t).await?;
                }
                Ok((record.producer_id, record.producer_epoch))
            }
            InitOutcome::FenceOpen(record) => {
                tracing::info!(
                    transactional_id,
                    epoch = record.producer_epoch,
                    "a new producer instance fences the open transaction: aborting it"
                );
                self.write(&record, version, Self::with_markers(&record))
                    .await?;
                Err(TxnError::ConcurrentTransactions.into())
            }
        }
    }

    /// AddPartitionsToTxn (partitions) and AddOffsetsToTxn (groups).
    pub async fn add(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartitionRecord],
        groups: &[String],
    ) -> Result<(), CoordinatorError> {
        self.check_owner(transactional_id)?;
        let _guard = self.locks[stripe(transactional_id)].lock().await;
        let (current, version) = self
            .read(transactional_id)
            .await?
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        let opening = current.state != TxnState::Ongoing;
        let Some(next) = state::add_to_txn(
            &current,
            producer_id,
            producer_epoch,
            partitions,
            groups,
            self.limits.max_partitions,
            now_ms(),
        )?
        else {
            return Ok(());
        };
        if opening && self.open_count() >= self.limits.max_open {
            return Err(CoordinatorError::TooManyOpen);
        }
        self.write(&next, version, |t| t).await
    }

    /// Whether `partitions` are all in the open transaction of the producer (AddPartitionsToTxn
    /// v4+ `verify_only`, as partition leaders ask in Kafka's KIP-890).
    pub async fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartitionRecord],
    ) -> Result<Vec<bool>, CoordinatorError> {
        self.check_owner(transactional_id)?;
        let (current, _) = self
            .read(transactional_id)
            .await?
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if current.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping.into());
        }
        if current.producer_epoch != producer_epoch {
            return Err(TxnError::ProducerFenced.into());
        }
        Ok(partitions
            .iter()
            .map(|p| current.state == TxnState::Ongoing && current.partitions.contains(p))
            .collect())
    }

    /// EndTxn: commit or abort the open transaction (answered once Prepare* is stored; the
    /// markers follow).
    pub async fn end(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), CoordinatorError> {
        self.check_owner(transactional_id)?;
        let _guard = self.locks[stripe(transactional_id)].lock().await;
        let (current, version) = self
            .read(transactional_id)
            .await?
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        match state::end_txn(&current, producer_id, producer_epoch, commit, now_ms())? {
            EndOutcome::AlreadyDone => Ok(()),
            EndOutcome::Prepare(record) => {
                self.write(&record, version, Self::with_markers(&record))
                    .await?;
                tracing::debug!(
                    transactional_id,
                    commit,
                    partitions = record.partitions.len(),
                    "transaction ending"
                );
                Ok(())
            }
        }
    }

    /// The record of an id (DescribeTransactions).
    pub async fn describe(&self, transactional_id: &str) -> Result<TxnRecord, CoordinatorError> {
        self.check_owner(transactional_id)?;
        self.read(transactional_id)
            .await?
            .map(|(record, _)| record)
            .ok_or(CoordinatorError::UnknownId)
    }

    /// The records of the ids this broker coordinates (ListTransactions).
    pub async fn list_owned(&self) -> Result<Vec<TxnRecord>, MetadataError> {
        let mut records = Vec::new();
        self.meta
            .for_each(keys::TXNS_PREFIX, None, &mut |key, value| {
                let record = TxnRecord::decode(key, &value.value)?;
                if self.owns(&record.transactional_id) {
                    records.push(record);
                }
                Ok(())
            })
            .await?;
        Ok(records)
    }

    pub fn stats(&self) -> TxnStats {
        let now = now_ms();
        let tracked = self.tracked.lock().expect("tracked lock");
        let mut stats = TxnStats::default();
        for entry in tracked.values() {
            let start_ms = match entry {
                Tracked::Ongoing { start_ms, .. } => {
                    stats.open += 1;
                    *start_ms
                }
                Tracked::Completing { start_ms, .. } => {
                    stats.completing += 1;
                    *start_ms
                }
            };
            if start_ms >= 0 {
                stats.oldest_age_ms = stats.oldest_age_ms.max(now - start_ms);
            }
        }
        stats
    }

    /// Background work: timeouts, completions, discovery of owned open transactions, and the
    /// watch on marker requests. Returns on `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let watcher = tokio::spawn(self.clone().watch_markers(shutdown.clone()));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scan: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
                _ = self.wake.notified() => {}
            }
            if last_scan.is_none_or(|at| at.elapsed() >= SCAN_INTERVAL) {
                last_scan = Some(tokio::time::Instant::now());
                if let Err(err) = self.scan().await {
                    tracing::warn!("failed to scan transactions: {err:#}");
                }
            }
            self.abort_timed_out().await;
            self.complete_ready().await;
        }
        let _ = watcher.await;
    }

    /// Finds the open and completing transactions this broker owns (after a restart or an
    /// ownership move) and forgets those it no longer owns.
    async fn scan(&self) -> Result<(), MetadataError> {
        let mut found: Vec<TxnRecord> = Vec::new();
        let mut expired: Vec<(String, Version)> = Vec::new();
        let now = now_ms();
        self.meta
            .for_each(keys::TXNS_PREFIX, None, &mut |key, value| {
                let record = TxnRecord::decode(key, &value.value)?;
                if !self.owns(&record.transactional_id) {
                    return Ok(());
                }
                match record.state {
                    TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort => {
                        found.push(record)
                    }
                    _ if now.saturating_sub(record.last_update_ms)
                        > self.limits.id_expiration_ms =>
                    {
                        expired.push((key.to_string(), value.version));
                    }
                    _ => {}
                }
                Ok(())
            })
            .await?;
        for (key, version) in expired {
            // Compare-and-set: an id used meanwhile is kept.
            match self
                .meta
                .txn(Txn::new().when_version(&key, version).delete(&key))
                .await
            {
                Ok(_) => tracing::debug!(%key, "expired an idle transactional id"),
                Err(MetadataError::Conflict { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        let known: HashSet<String> = {
            let mut tracked = self.tracked.lock().expect("tracked lock");
            tracked.retain(|id, _| self.owns(id));
            tracked.keys().cloned().collect()
        };
        for record in found {
            if known.contains(&record.transactional_id) {
                continue;
            }
            tracing::info!(
                transactional_id = %record.transactional_id,
                state = record.state.name(),
                "took over a transaction"
            );
            self.track(&record);
            if matches!(
                record.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            ) {
                self.refresh_remaining(&record.transactional_id).await?;
            }
        }
        Ok(())
    }

    /// Re-reads which marker requests of a completing transaction still exist.
    async fn refresh_remaining(&self, transactional_id: &str) -> Result<(), MetadataError> {
        let keys: Vec<String> = match self
            .tracked
            .lock()
            .expect("tracked lock")
            .get(transactional_id)
        {
            Some(Tracked::Completing { remaining, .. }) => remaining.iter().cloned().collect(),
            _ => return Ok(()),
        };
        let mut gone = Vec::new();
        for key in keys {
            if self.meta.get(&key).await?.is_none() {
                gone.push(key);
            }
        }
        if let Some(Tracked::Completing { remaining, .. }) = self
            .tracked
            .lock()
            .expect("tracked lock")
            .get_mut(transactional_id)
        {
            for key in gone {
                remaining.remove(&key);
            }
        }
        Ok(())
    }

    async fn abort_timed_out(&self) {
        let now = now_ms();
        let due: Vec<String> = self
            .tracked
            .lock()
            .expect("tracked lock")
            .iter()
            .filter_map(|(id, t)| match t {
                Tracked::Ongoing { deadline_ms, .. } if *deadline_ms <= now => Some(id.clone()),
                _ => None,
            })
            .collect();
        for transactional_id in due {
            if let Err(err) = self.abort_if_timed_out(&transactional_id).await {
                tracing::warn!(%transactional_id, "failed to abort a timed-out transaction: {err:#}");
            }
        }
    }

    async fn abort_if_timed_out(&self, transactional_id: &str) -> Result<(), CoordinatorError> {
        self.check_owner(transactional_id)?;
        let _guard = self.locks[stripe(transactional_id)].lock().await;
        let Some((current, version)) = self.read(transactional_id).await? else {
            self.tracked
                .lock()
                .expect("tracked lock")
                .remove(transactional_id);
            return Ok(());
        };
        let spare_id = if current.producer_epoch >= state::EPOCH_MAX {
            Some(self.producer_ids.next(self.meta.as_ref()).await?)
        } else {
            None
        };
        let new_id = || spare_id.expect("allocated when the epoch is exhausted");
        match state::timed_out(&current, now_ms(), new_id) {
            Some(record) => {
                tracing::info!(
                    transactional_id,
                    timeout_ms = current.timeout_ms,
                    "aborting a transaction open past its timeout"
                );
                self.write(&record, version, Self::with_markers(&record))
                    .await
            }
            None => {
                // Changed meanwhile (ended, or started again later): follow the stored one.
                self.track(&current);
                Ok(())
            }
        }
    }

    async fn complete_ready(&self) {
        let candidates: Vec<(String, bool, bool)> = self
            .tracked
            .lock()
            .expect("tracked lock")
            .iter()
            .filter_map(|(id, t)| match t {
                Tracked::Completing {
                    remaining,
                    offsets_settled,
                    ..
                } => Some((id.clone(), remaining.is_empty(), *offsets_settled)),
                Tracked::Ongoing { .. } => None,
            })
            .collect();
        for (transactional_id, markers_done, offsets_settled) in candidates {
            if offsets_settled && !markers_done {
                continue;
            }
            if let Err(err) = self
                .advance_completion(&transactional_id, markers_done, offsets_settled)
                .await
            {
                tracing::warn!(%transactional_id, "failed to complete a transaction: {err:#}");
            }
        }
    }

    /// Settles the group offsets of a completing transaction, then, once every marker is
    /// written, stores Complete*.
    async fn advance_completion(
        &self,
        transactional_id: &str,
        markers_done: bool,
        offsets_settled: bool,
    ) -> Result<(), CoordinatorError> {
        self.check_owner(transactional_id)?;
        let _guard = self.locks[stripe(transactional_id)].lock().await;
        let Some((current, version)) = self.read(transactional_id).await? else {
            self.tracked
                .lock()
                .expect("tracked lock")
                .remove(transactional_id);
            return Ok(());
        };
        if !matches!(
            current.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort
        ) {
            self.track(&current);
            return Ok(());
        }
        if !offsets_settled {
            settle_group_offsets(self.meta.as_ref(), &current).await?;
            if let Some(Tracked::Completing {
                offsets_settled, ..
            }) = self
                .tracked
                .lock()
                .expect("tracked lock")
                .get_mut(transactional_id)
            {
                *offsets_settled = true;
            }
        }
        if !markers_done {
            return Ok(());
        }
        let record = state::complete(&current, now_ms()).expect("a Prepare* state completes");
        self.write(&record, version, |t| t).await?;
        tracing::debug!(
            transactional_id,
            state = record.state.name(),
            "transaction completed"
        );
        Ok(())
    }

    /// Follows deletions of marker requests (partition leaders wrote them).
    async fn watch_markers(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let mut events = match self.meta.watch(keys::TXN_MARKERS_PREFIX).await {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!("failed to watch transaction markers: {err:#}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(WATCH_RETRY) => continue,
                    }
                }
            };
            // Deletions before the watch started are found by re-reading.
            self.refresh_all().await;
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.recv() => event,
                };
                match event {
                    None => break,
                    Some(WatchEvent::Delete { key, .. }) => {
                        let mut tracked = self.tracked.lock().expect("tracked lock");
                        for entry in tracked.values_mut() {
                            if let Tracked::Completing { remaining, .. } = entry
                                && remaining.remove(&key)
                                && remaining.is_empty()
                            {
                                self.wake.notify_one();
                            }
                        }
                    }
                    Some(WatchEvent::Put { .. }) => {}
                    Some(WatchEvent::Resync) => self.refresh_all().await,
                }
            }
        }
    }

    async fn refresh_all(&self) {
        let ids: Vec<String> = self
            .tracked
            .lock()
            .expect("tracked lock")
            .iter()
            .filter(|(_, t)| matches!(t, Tracked::Completing { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Err(err) = self.refresh_remaining(&id).await {
                tracing::warn!(transactional_id = %id, "failed to read marker requests: {err:#}");
            }
        }
        self.wake.notify_one();
    }
}

/// Moves a committing transaction's pending offsets (TxnOffsetCommit) into the groups'
/// committed offsets, or drops an aborting one's. Idempotent: a retry after a crash finds
/// what is left.
async fn settle_group_offsets(
    meta: &dyn MetadataStore,
    record: &TxnRecord,
) -> Result<(), MetadataError> {
    let commit = record.state == TxnState::PrepareCommit;
    for group in &record.groups {
        let prefix = keys::group_txn_offsets_of_producer(group, record.producer_id);
        let pending = meta.list_all(&prefix).await?;
        let mut moves: BTreeMap<String, (String, Option<CommittedOffsetRecord>)> = BTreeMap::new();
        for (key, value) in pending {
            let target = key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.rsplit_once('/'))
                .and_then(|(topic, p)| Some(keys::group_offset(group, topic, p.parse().ok()?)));
            let Some(target) = target else {
                tracing::warn!(%key, "ignoring a malformed pending offset key");
                continue;
            };
            let offset = if commit {
                Some(CommittedOffsetRecord::decode(&key, &value.value)?)
            } else {
                None
            };
            moves.insert(key, (target, offset));
        }
        let moves: Vec<_> = moves.into_iter().collect();
        for chunk in moves.chunks(OFFSET_MOVES_PER_TXN) {
            let mut txn = Txn::new();
            for (pending_key, (target, offset)) in chunk {
                if let Some(offset) = offset {
                    txn = txn.put(target.clone(), offset.encode());
                }
                txn = txn.delete(pending_key.clone());
            }
            meta.txn(txn).await?;
        }
    }
    Ok(())
}
