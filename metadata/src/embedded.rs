//! `EmbeddedStore`: the single-node metadata store, durable on local disk (redb).
//!
//! Every write transaction is committed with fsync before it returns, so a record acked after
//! a commit survives a crash of the process. Leases live in memory only: a lease cannot
//! outlive its process, so keys bound to a lease are deleted when the store is opened.
//! Watches are fed from an in-process broadcast channel (single node: every writer is in this
//! process).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, mpsc};

use crate::store::BackendError;
use crate::{
    Compare, LeaseId, MetadataError, MetadataStore, Op, Txn, Version, Versioned, WatchEvent,
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION_KEY: &str = "revision";
/// Bytes of the value header: version u64 LE + lease i64 LE (0 = no lease).
const VALUE_HEADER_LEN: usize = 16;
/// Events buffered for watchers before a slow watcher is told to resync.
const WATCH_BROADCAST_CAPACITY: usize = 4096;
const WATCH_CHANNEL_CAPACITY: usize = 1024;
/// How often expired leases are looked for.
const LEASE_REAPER_INTERVAL: Duration = Duration::from_millis(100);
/// Largest number of operations of one transaction; matches etcd's default `--max-txn-ops`
/// so that code tested on the embedded store also fits etcd.
pub const TXN_OPS_MAX: usize = 128;

#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    leases: Mutex<HashMap<i64, Lease>>,
    next_lease: AtomicI64,
    events: broadcast::Sender<WatchEvent>,
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
}

fn backend(operation: &'static str) -> impl FnOnce(redb::Error) -> MetadataError {
    move |err| MetadataError::Unavailable {
        operation,
        source: BackendError::new(err),
    }
}

fn encode_value(version: Version, lease: Option<LeaseId>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VALUE_HEADER_LEN + data.len());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&lease.map_or(0, |l| l.0).to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn decode_value(key: &str, raw: &[u8]) -> Result<(Version, i64, Bytes), MetadataError> {
    if raw.len() < VALUE_HEADER_LEN {
        return Err(MetadataError::Corrupt {
            key: key.to_string(),
            reason: format!("value of {} bytes has no header", raw.len()),
        });
    }
    let version = u64::from_le_bytes(raw[0..8].try_into().expect("8 bytes"));
    let lease = i64::from_le_bytes(raw[8..16].try_into().expect("8 bytes"));
    Ok((
        version,
        lease,
        Bytes::copy_from_slice(&raw[VALUE_HEADER_LEN..]),
    ))
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` and starts its lease reaper on the current
    /// tokio runtime.
    pub async fn open(dir: &Path) -> Result<Self, MetadataError> {
        let dir = dir.to_path_buf();
        let db = tokio::task::spawn_blocking(move || -> Result<Database, MetadataError> {
            std::fs::create_dir_all(&dir).map_err(|err| MetadataError::Unavailable {
                operation: "create metadata directory",
                source: BackendError::new(err),
            })?;
            let db = Database::create(dir.join("meta.redb"))
                .map_err(|e| backend("open metadata database")(e.into()))?;
            drop_leased_keys(&db)?;
            Ok(db)
        })
        .await
        .expect("metadata open task does not panic")?;
        let (events, _) = broadcast::channel(WATCH_BROADCAST_CAPACITY);
        let store = Self {
            inner: Arc::new(Inner {
                db,
                leases: Mutex::new(HashMap::new()),
                next_lease: AtomicI64::new(1),
                events,
            }),
        };
        let weak = Arc::downgrade(&store.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE_REAPER_INTERVAL);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let expired: Vec<i64> = {
                    let mut leases = inner.leases.lock().expect("lease lock");
                    let now = Instant::now();
                    let expired: Vec<i64> = leases
                        .iter()
                        .filter(|(_, l)| l.deadline <= now)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in &expired {
                        leases.remove(id);
                    }
                    expired
                };
                for id in expired {
                    let store = EmbeddedStore {
                        inner: inner.clone(),
                    };
                    if let Err(err) = store.delete_lease_keys(id).await {
                        tracing::warn!("failed to delete keys of expired lease {id}: {err:#}");
                    }
                }
            }
        });
        Ok(store)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, MetadataError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, MetadataError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .expect("metadata task does not panic")
    }

    async fn delete_lease_keys(&self, lease: i64) -> Result<(), MetadataError> {
        let events = self
            .blocking(move |inner| {
                let tx = inner
                    .db
                    .begin_write()
                    .map_err(|e| backend("begin")(e.into()))?;
                let mut events = Vec::new();
                {
                    let mut kv = tx.open_table(KV).map_err(|e| backend("open")(e.into()))?;
                    let mut meta = tx.open_table(META).map_err(|e| backend("open")(e.into()))?;
                    let mut doomed = Vec::new();
                    for item in kv.iter().map_err(|e| backend("scan")(e.into()))? {
                        let (k, v) = item.map_err(|e| backend("scan")(e.into()))?;
                        let (_, l, _) = decode_value(k.value(), v.value())?;
                        if l == lease {
                            doomed.push(k.value().to_string());
                        }
                    }
                    if !doomed.is_empty() {
                        let revision = next_revision(&mut meta)?;
                        for key in doomed {
                            kv.remove(key.as_str())
                                .map_err(|e| backend("delete")(e.into()))?;
                            events.push(WatchEvent::Delete {
                                key,
                                version: revision,
                            });
                        }
                    }
                }
                tx.commit().map_err(|e| backend("commit")(e.into()))?;
                Ok(events)
            })
            .await?;
        for event in events {
            let _ = self.inner.events.send(event);
        }
        Ok(())
    }

    fn check_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        let leases = self.inner.leases.lock().expect("lease lock");
        match leases.get(&lease.0) {
            Some(l) if l.deadline > Instant::now() => Ok(()),
            _ => Err(MetadataError::LeaseNotFound(lease)),
        }
    }
}

fn drop_leased_keys(db: &Database) -> Result<(), MetadataError> {
    let tx = db.begin_write().map_err(|e| backend("begin")(e.into()))?;
    {
        let mut kv = tx.open_table(KV).map_err(|e| backend("open")(e.into()))?;
        let _ = tx.open_table(META).map_err(|e| backend("open")(e.into()))?;
        let mut doomed = Vec::new();
        for item in kv.iter().map_err(|e| backend("scan")(e.into()))? {
            let (k, v) = item.map_err(|e| backend("scan")(e.into()))?;
            let (_, lease, _) = decode_value(k.value(), v.value())?;
            if lease != 0 {
                doomed.push(k.value().to_string());
            }
        }
        for key in doomed {
            kv.remove(key.as_str())
                .map_err(|e| backend("delete")(e.into()))?;
        }
    }
    tx.commit().map_err(|e| backend("commit")(e.into()))?;
    Ok(())
}

fn next_revision(meta: &mut redb::Table<&str, u64>) -> Result<Version, MetadataError> {
    let current = meta
        .get(REVISION_KEY)
        .map_err(|e| backend("read revision")(e.into()))?
        .map_or(0, |v| v.value());
    let next = current + 1;
    meta.insert(REVISION_KEY, next)
        .map_err(|e| backend("write revision")(e.into()))?;
    Ok(next)
}

/// Applies one transaction inside an open write transaction.
fn apply_txn(
    kv: &mut redb::Table<&str, &[u8]>,
    meta: &mut redb::Table<&str, u64>,
    txn: &Txn,
    events: &mut Vec<WatchEvent>,
) -> Result<Version, MetadataError> {
    if txn.ops.len() > TXN_OPS_MAX {
        return Err(MetadataError::Invalid {
            reason: "transaction has more than 128 operations",
        });
    }
    for compare in &txn.compares {
        let Compare::Version { key, version } = compare;
        let current = match kv.get(key.as_str()).map_err(|e| backend("get")(e.into()))? {
            Some(raw) => decode_value(key, raw.value())?.0,
            None => 0,
        };
        if current != *version {
            return Err(MetadataError::Conflict {
                key: key.clone(),
                current_version: current,
            });
        }
    }
    let revision = next_revision(meta)?;
    for op in &txn.ops {
        match op {
            Op::Put { key, value, lease } => {
                let raw = encode_value(revision, *lease, value);
                kv.insert(key.as_str(), raw.as_slice())
                    .map_err(|e| backend("put")(e.into()))?;
                events.push(WatchEvent::Put {
                    key: key.clone(),
                    value: value.clone(),
                    version: revision,
                });
            }
            Op::Delete { key } => {
                let existed = kv
                    .remove(key.as_str())
                    .map_err(|e| backend("delete")(e.into()))?
                    .is_some();
                if existed {
                    events.push(WatchEvent::Delete {
                        key: key.clone(),
                        version: revision,
                    });
                }
            }
        }
    }
    Ok(revision)
}

#[async_trait]
impl MetadataStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, MetadataError> {
        let key = key.to_string();
        self.blocking(move |inner| {
            let tx = inner
                .db
                .begin_read()
                .map_err(|e| backend("begin")(e.into()))?;
            let kv = match tx.open_table(KV) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(backend("open")(e.into())),
            };
            let Some(raw) = kv.get(key.as_str()).map_err(|e| backend("get")(e.into()))? else {
                return Ok(None);
            };
            let (version, _, value) = decode_value(&key, raw.value())?;
            Ok(Some(Versioned { value, version }))
        })
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Versioned)>, MetadataError> {
        let prefix = prefix.to_string();
        let after = after.map(str::to_string);
        self.blocking(move |inner| {
            let tx = inner
                .db
                .begin_read()
                .map_err(|e| backend("begin")(e.into()))?;
            let kv = match tx.open_table(KV) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(backend("open")(e.into())),
            };
            let mut out = Vec::new();
            let start = match &after {
                Some(after) if after.as_str() >= prefix.as_str() => after.as_str(),
                _ => prefix.as_str(),
            };
            for item in kv.range(start..).map_err(|e| backend("list")(e.into()))? {
                let (k, v) = item.map_err(|e| backend("list")(e.into()))?;
                let key = k.value();
                if after.as_deref() == Some(key) {
                    continue;
                }
                if !key.starts_with(prefix.as_str()) || out.len() >= limit {
                    break;
                }
                let (version, _, value) = decode_value(key, v.value())?;
                out.push((key.to_string(), Versioned { value, version }));
            }
            Ok(out)
        })
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<Version, MetadataError> {
        let mut results = self.txn_many(vec![txn]).await?;
        results.pop().expect("one result per transaction")
    }

    async fn txn_many(
        &self,
        txns: Vec<Txn>,
    ) -> Result<Vec<Result<Version, MetadataError>>, MetadataError> {
        for txn in &txns {
            for op in &txn.ops {
                if let Op::Put {
                    lease: Some(lease), ..
                } = op
                {
                    self.check_lease(*lease)?;
                }
            }
        }
        let (results, events) = self
            .blocking(move |inner| {
                let tx = inner
                    .db
                    .begin_write()
                    .map_err(|e| backend("begin")(e.into()))?;
                let mut results = Vec::with_capacity(txns.len());
                let mut events = Vec::new();
                {
                    let mut kv = tx.open_table(KV).map_err(|e| backend("open")(e.into()))?;
                    let mut meta = tx.open_table(META).map_err(|e| backend("open")(e.into()))?;
                    for txn in &txns {
                        let mut txn_events = Vec::new();
                        let result = apply_txn(&mut kv, &mut meta, txn, &mut txn_events);
                        if result.is_ok() {
                            events.append(&mut txn_events);
                        }
                        results.push(result);
                    }
                }
                tx.commit().map_err(|e| backend("commit")(e.into()))?;
                Ok((results, events))
            })
            .await?;
        for event in events {
            // No receiver is fine: nobody watches.
            let _ = self.inner.events.send(event);
        }
        Ok(results)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        let id = self.inner.next_lease.fetch_add(1, Ordering::Relaxed);
        self.inner.leases.lock().expect("lease lock").insert(
            id,
            Lease {
                ttl,
                deadline: Instant::now() + ttl,
            },
        );
        Ok(LeaseId(id))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        let mut leases = self.inner.leases.lock().expect("lease lock");
        match leases.get_mut(&lease.0) {
            Some(l) if l.deadline > Instant::now() => {
                l.deadline = Instant::now() + l.ttl;
                Ok(())
            }
            _ => Err(MetadataError::LeaseNotFound(lease)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        let existed = self
            .inner
            .leases
            .lock()
            .expect("lease lock")
            .remove(&lease.0)
            .is_some();
        if !existed {
            return Err(MetadataError::LeaseNotFound(lease));
        }
        self.delete_lease_keys(lease.0).await
    }

    async fn watch(&self, prefix: &str) -> Result<mpsc::Receiver<WatchEvent>, MetadataError> {
        let mut events = self.inner.events.subscribe();
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL_CAPACITY);
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => WatchEvent::Resync,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let relevant = match &event {
                    WatchEvent::Put { key, .. } | WatchEvent::Delete { key, .. } => {
                        key.starts_with(prefix.as_str())
                    }
                    WatchEvent::Resync => true,
                };
                if relevant && tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        crate::testing::conformance(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn data_survives_reopen_and_leased_keys_do_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).await.unwrap();
            let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
            store
                .txn(
                    Txn::new()
                        .put("durable", "yes")
                        .put_with_lease("leased", "gone", lease),
                )
                .await
                .unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        let durable = store.get("durable").await.unwrap().unwrap();
        assert_eq!(durable.value, Bytes::from_static(b"yes"));
        assert_eq!(store.get("leased").await.unwrap(), None);
        // Versions keep increasing after a reopen.
        let v = store.txn(Txn::new().put("durable", "again")).await.unwrap();
        assert!(v > durable.version);
    }
}
