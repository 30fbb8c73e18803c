//! `EtcdStore`: the metadata store of a cluster, in etcd (v3 API through `etcd-client`).
//!
//! Keys live under a prefix (`/strato/<cluster>/` by default) so several clusters and test
//! runs share one etcd. A key's [`Version`] is etcd's `mod_revision` (0 for an absent key),
//! so the compare-and-set of [`MetadataStore::txn`] maps to etcd's transaction compare on
//! `mod_revision`. Every call has a timeout; etcd being slow or gone gives
//! [`MetadataError::Timeout`] / [`MetadataError::Unavailable`], both retryable, and the
//! client reconnects by itself. Watches re-establish themselves after a disconnect, resume
//! from the last revision seen, and tell the reader [`WatchEvent::Resync`] when events may
//! have been missed. etcd's limits are respected: at most [`TXN_OPS_MAX`] operations per
//! transaction (etcd's default `--max-txn-ops`).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::embedded::TXN_OPS_MAX;
use crate::store::BackendError;
use crate::{LeaseId, MetadataError, MetadataStore, Op, Txn, Version, Versioned, WatchEvent};

/// Events buffered for a watcher before the watch task waits for it.
const WATCH_CHANNEL_CAPACITY: usize = 1024;
/// Transactions of one `txn_many` sent to etcd at the same time.
const TXN_MANY_CONCURRENCY: usize = 16;
/// Attempts of a read whose endpoint was unreachable, and the pause between them.
const READ_ATTEMPTS: u32 = 3;
const READ_RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// Backoff between watch reconnection attempts.
const WATCH_RETRY_MIN: Duration = Duration::from_millis(100);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(2);

/// Where and how to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `host:port` or `http://host:port` of each member.
    pub endpoints: Vec<String>,
    /// Every key is stored under this prefix (ends with `/`).
    pub prefix: String,
    /// Timeout of each call.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self {
            endpoints,
            prefix,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Parses `etcd://host:port[,host:port...][/prefix]`; the default prefix is
    /// `/strato/default/`.
    pub fn from_url(url: &str) -> Result<Self, MetadataError> {
        let rest = url.strip_prefix("etcd://").ok_or(MetadataError::Invalid {
            reason: "an etcd URL starts with etcd://",
        })?;
        let (hosts, prefix) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/strato/default/"),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            return Err(MetadataError::Invalid {
                reason: "an etcd URL needs at least one host:port",
            });
        }
        if prefix.len() < 2 {
            return Err(MetadataError::Invalid {
                reason: "an etcd URL prefix must not be empty",
            });
        }
        Ok(Self::new(endpoints, prefix))
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // all keys
}

#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    config: EtcdConfig,
}

/// gRPC status NOT_FOUND: etcd's answer for a lease that does not exist (any more).
const GRPC_NOT_FOUND: i32 = 5;

/// The text etcd-client puts in `LeaseKeepAliveError` when etcd answers a keep-alive with
/// TTL <= 0, i.e. the lease is gone (etcd-client 0.21 `LeaseClient::keep_alive`). The crate
/// has no structured variant for it.
const KEEP_ALIVE_LEASE_GONE: &str = "lease not found";

fn is_not_found(err: &etcd_client::Error) -> bool {
    match err {
        etcd_client::Error::GRpcStatus(status) => i32::from(status.code()) == GRPC_NOT_FOUND,
        etcd_client::Error::LeaseKeepAliveError(message) => message == KEEP_ALIVE_LEASE_GONE,
        _ => false,
    }
}

fn unavailable(operation: &'static str) -> impl FnOnce(etcd_client::Error) -> MetadataError {
    move |err| MetadataError::Unavailable {
        operation,
        source: BackendError::new(err),
    }
}

impl EtcdStore {
    /// Connects to etcd. Fails if no member answers within the connect timeout.
    pub async fn connect(config: EtcdConfig) -> Result<Self, MetadataError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = tokio::time::timeout(
            config.connect_timeout,
            Client::connect(&config.endpoints, Some(options)),
        )
        .await
        .map_err(|_| MetadataError::Timeout {
            operation: "connect to etcd",
        })?
        .map_err(unavailable("connect to etcd"))?;
        let store = Self { client, config };
        // Fail fast on a wrong endpoint instead of at the first real request.
        store.get("cluster/id").await?;
        Ok(store)
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.config.prefix)
    }

    fn strip<'a>(&self, full: &'a [u8]) -> Result<&'a str, MetadataError> {
        std::str::from_utf8(full)
            .ok()
            .and_then(|k| k.strip_prefix(self.config.prefix.as_str()))
            .ok_or_else(|| MetadataError::Corrupt {
                key: String::from_utf8_lossy(full).into_owned(),
                reason: "key outside the store's prefix or not UTF-8".to_string(),
            })
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        future: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, MetadataError> {
        match tokio::time::timeout(self.config.request_timeout, future).await {
            Ok(result) => result.map_err(unavailable(operation)),
            Err(_) => Err(MetadataError::Timeout { operation }),
        }
    }

    /// Runs a read, retried a few times when the endpoint it went to was unreachable (the
    /// client balances over all members, and a dead member is only noticed after a failed
    /// call). Reads are idempotent; transactions are never retried here (their outcome
    /// would be unknown).
    async fn read<T, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, MetadataError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut attempt = 1;
        loop {
            match self.timed(operation, call()).await {
                Err(MetadataError::Unavailable { .. }) if attempt < READ_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(READ_RETRY_BACKOFF).await;
                }
                result => return result,
            }
        }
    }

    async fn txn_one(&self, txn: Txn) -> Result<Version, MetadataError> {
        if txn.ops.len() > TXN_OPS_MAX || txn.compares.len() > TXN_OPS_MAX {
            return Err(MetadataError::Invalid {
                reason: "transaction has more than 128 operations",
            });
        }
        let compares: Vec<Compare> = txn
            .compares
            .iter()
            .map(|c| {
                let crate::Compare::Version { key, version } = c;
                Compare::mod_revision(self.full_key(key), CompareOp::Equal, *version as i64)
            })
            .collect();
        let ops: Vec<TxnOp> = txn
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => TxnOp::put(
                    self.full_key(key),
                    value.to_vec(),
                    lease.map(|l| PutOptions::new().with_lease(l.0)),
                ),
                Op::Delete { key } => TxnOp::delete(self.full_key(key), None),
            })
            .collect();
        // On failure, read the compared keys to say which one moved and to what version.
        let reads: Vec<TxnOp> = txn
            .compares
            .iter()
            .map(|c| {
                let crate::Compare::Version { key, .. } = c;
                TxnOp::get(self.full_key(key), None)
            })
            .collect();
        let request = etcd_client::Txn::new()
            .when(compares)
            .and_then(ops)
            .or_else(reads);
        let mut kv = self.client.kv_client();
        let response = self.timed("transaction", kv.txn(request)).await?;
        if response.succeeded() {
            return Ok(response.header().map_or(0, |h| h.revision()) as Version);
        }
        for (compare, read) in txn.compares.iter().zip(response.op_responses()) {
            let crate::Compare::Version { key, version } = compare;
            let TxnOpResponse::Get(get) = read else {
                continue;
            };
            let current = get
                .kvs()
                .first()
                .map_or(0, |kv| kv.mod_revision() as Version);
            if current != *version {
                return Err(MetadataError::Conflict {
                    key: key.clone(),
                    current_version: current,
                });
            }
        }
        // A compared key changed and changed back between the two reads is impossible
        // (one transaction); a lease-bound put on an expired lease lands here too.
        Err(MetadataError::Conflict {
            key: String::new(),
            current_version: 0,
        })
    }
}

#[async_trait]
impl MetadataStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, MetadataError> {
        let full_key = self.full_key(key);
        let response = self
            .read("get", || {
                let mut kv = self.client.kv_client();
                let key = full_key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        Ok(response.kvs().first().map(|kv| Versioned {
            value: Bytes::copy_from_slice(kv.value()),
            version: kv.mod_revision() as Version,
        }))
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Versioned)>, MetadataError> {
        let kv = self.client.kv_client();
        let full_prefix = self.full_key(prefix);
        // [start, end of prefix): start just after `after` when given.
        let start = match after {
            Some(after) if after >= prefix => {
                let mut start = self.full_key(after).into_bytes();
                start.push(0);
                start
            }
            _ => full_prefix.clone().into_bytes(),
        };
        let mut options = GetOptions::new().with_range(prefix_end(full_prefix.as_bytes()));
        if limit < i64::MAX as usize {
            options = options.with_limit(limit as i64);
        }
        let response = self
            .read("list", || {
                let mut kv = kv.clone();
                let (start, options) = (start.clone(), options.clone());
                async move { kv.get(start, Some(options)).await }
            })
            .await?;
        response
            .kvs()
            .iter()
            .map(|kv| {
                Ok((
                    self.strip(kv.key())?.to_string(),
                    Versioned {
                        value: Bytes::copy_from_slice(kv.value()),
                        version: kv.mod_revision() as Version,
                    },
                ))
            })
            .collect()
    }

    async fn txn(&self, txn: Txn) -> Result<Version, MetadataError> {
        self.txn_one(txn).await
    }

    async fn txn_many(
        &self,
        txns: Vec<Txn>,
    ) -> Result<Vec<Result<Version, MetadataError>>, MetadataError> {
        // Independent transactions: send them concurrently (bounded), keep their order.
        let results = futures::stream::iter(txns)
            .map(|txn| self.txn_one(txn))
            .buffered(TXN_MANY_CONCURRENCY)
            .collect()
            .await;
        Ok(results)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
        let mut lease = self.client.lease_client();
        let seconds = ttl.as_secs().max(1) as i64;
        let response = self
            .timed("grant lease", lease.grant(seconds, None))
            .await?;
        Ok(LeaseId(response.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
        let mut client = self.client.lease_client();
        let lost = |err: etcd_client::Error| {
            if is_not_found(&err) {
                MetadataError::LeaseNotFound(lease)
            } else {
                unavailable("keep lease alive")(err)
            }
        };
        let attempt = async {
            let (mut keeper, mut responses) = client.keep_alive(lease.0).await.map_err(lost)?;
            keeper.keep_alive().await.map_err(lost)?;
            responses.message().await.map_err(lost)
        };
        let response = tokio::time::timeout(self.config.request_timeout, attempt)
            .await
            .map_err(|_| MetadataError::Timeout {
                operation: "keep lease alive",
            })??;
        match response {
            // etcd answers TTL 0 for a lease that no longer exists.
            Some(response) if response.ttl() > 0 => Ok(()),
            _ => Err(MetadataError::LeaseNotFound(lease)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
        let mut client = self.client.lease_client();
        let attempt = client.revoke(lease.0);
        match tokio::time::timeout(self.config.request_timeout, attempt).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) if is_not_found(&err) => Err(MetadataError::LeaseNotFound(lease)),
            Ok(Err(err)) => Err(unavailable("revoke lease")(err)),
            Err(_) => Err(MetadataError::Timeout {
                operation: "revoke lease",
            }),
        }
    }

    async fn watch(&self, prefix: &str) -> Result<mpsc::Receiver<WatchEvent>, MetadataError> {
        let full_prefix = self.full_key(prefix);
        let mut watch_client = self.client.watch_client();
        let stream = self
            .timed(
                "watch",
                watch_client.watch(full_prefix.clone(), Some(WatchOptions::new().with_prefix())),
            )
            .await?;
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL_CAPACITY);
        let store = self.clone();
        tokio::spawn(async move {
            store.run_watch(full_prefix, stream, tx).await;
        });
        Ok(rx)
    }
}

impl EtcdStore {
    /// Forwards watch events; re-establishes the watch after errors, resuming after the
    /// last revision seen. Ends when the receiver is dropped.
    async fn run_watch(
        &self,
        full_prefix: String,
        mut stream: etcd_client::WatchStream,
        tx: mpsc::Sender<WatchEvent>,
    ) {
        let mut last_revision: i64 = 0;
        let mut backoff = WATCH_RETRY_MIN;
        loop {
            match stream.message().await {
                Ok(Some(response)) => {
                    backoff = WATCH_RETRY_MIN;
                    if response.canceled() {
                        // Compacted past our revision, or cancelled by the server.
                        if tx.send(WatchEvent::Resync).await.is_err() {
                            return;
                        }
                        last_revision = 0;
                    } else {
                        for event in response.events() {
                            let Some(kv) = event.kv() else { continue };
                            let Ok(key) = self.strip(kv.key()) else {
                                continue;
                            };
                            last_revision = last_revision.max(kv.mod_revision());
                            let event = match event.event_type() {
                                EventType::Put => WatchEvent::Put {
                                    key: key.to_string(),
                                    value: Bytes::copy_from_slice(kv.value()),
                                    version: kv.mod_revision() as Version,
                                },
                                EventType::Delete => WatchEvent::Delete {
                                    key: key.to_string(),
                                    version: kv.mod_revision() as Version,
                                },
                            };
                            if tx.send(event).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                }
                Ok(None) | Err(_) => {
                    if tx.is_closed() {
                        return;
                    }
                    tracing::warn!(prefix = %full_prefix, "etcd watch broke; re-establishing");
                }
            }
            // Re-establish, with backoff, until it works or the reader is gone.
            loop {
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(WATCH_RETRY_MAX);
                let mut options = WatchOptions::new().with_prefix();
                if last_revision > 0 {
                    options = options.with_start_revision(last_revision + 1);
                }
                let mut client = self.client.watch_client();
                match self
                    .timed("watch", client.watch(full_prefix.clone(), Some(options)))
                    .await
                {
                    Ok(new_stream) => {
                        stream = new_stream;
                        if last_revision == 0 && tx.send(WatchEvent::Resync).await.is_err() {
                            return;
                        }
                        break;
                    }
                    Err(err) => tracing::debug!("failed to re-establish etcd watch: {err:#}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let c = EtcdConfig::from_url("etcd://127.0.0.1:2379").unwrap();
        assert_eq!(c.endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!(c.prefix, "/strato/default/");
        let c = EtcdConfig::from_url("etcd://a:1,b:2/strato/prod").unwrap();
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!(c.prefix, "/strato/prod/");
        assert!(EtcdConfig::from_url("etcd://").is_err());
        assert!(EtcdConfig::from_url("http://a:1").is_err());
        assert!(EtcdConfig::from_url("etcd://a:1/").is_err());
    }
}

#[cfg(test)]
mod etcd_tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::etcd_server::EtcdServer;

    fn unique_prefix() -> String {
        format!("/strato-test/{}/", uuid::Uuid::new_v4())
    }

    /// Goal: the etcd store passes the same conformance suite as the embedded store,
    /// against a real etcd process.
    #[tokio::test]
    async fn conformance_on_real_etcd() {
        let etcd = EtcdServer::start();
        let store = EtcdStore::connect(EtcdConfig::new(etcd.endpoints(), unique_prefix()))
            .await
            .unwrap();
        crate::testing::conformance(Arc::new(store)).await;
    }

    /// Goal: two stores under different prefixes do not see each other's keys.
    #[tokio::test]
    async fn prefixes_isolate_clusters() {
        let etcd = EtcdServer::start();
        let a = EtcdStore::connect(EtcdConfig::new(etcd.endpoints(), unique_prefix()))
            .await
            .unwrap();
        let b = EtcdStore::connect(EtcdConfig::new(etcd.endpoints(), unique_prefix()))
            .await
            .unwrap();
        a.txn(Txn::new().put("topics/x", "a")).await.unwrap();
        assert!(b.get("topics/x").await.unwrap().is_none());
        assert!(b.list("topics/", None, 10).await.unwrap().is_empty());
        assert_eq!(a.list("topics/", None, 10).await.unwrap().len(), 1);
    }

    /// Goal: with etcd gone, calls fail within the timeout with a retryable error; after
    /// etcd comes back the same store works again, and a watch resumes delivering events
    /// (after telling the reader to resync or by resuming at the last revision).
    #[tokio::test]
    async fn survives_an_etcd_restart() {
        let mut etcd = EtcdServer::start();
        let mut config = EtcdConfig::new(etcd.endpoints(), unique_prefix());
        config.request_timeout = Duration::from_secs(1);
        let store = EtcdStore::connect(config).await.unwrap();
        store.txn(Txn::new().put("k", "1")).await.unwrap();
        let mut watch = store.watch("w/").await.unwrap();

        etcd.kill(0);
        let err = store.get("k").await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        let err = store.txn(Txn::new().put("k", "2")).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");

        etcd.restart(0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let value = loop {
            match store.get("k").await {
                Ok(v) => break v,
                Err(err) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "no reconnect: {err:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert_eq!(
            value.unwrap().value,
            Bytes::from_static(b"1"),
            "nothing half-applied"
        );
        // The watch comes back by itself: events written now arrive.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut n = 0;
        loop {
            n += 1;
            store
                .txn(Txn::new().put(format!("w/{n}"), "x"))
                .await
                .unwrap();
            match tokio::time::timeout(Duration::from_millis(500), watch.recv()).await {
                Ok(Some(WatchEvent::Put { key, .. })) if key.starts_with("w/") => break,
                Ok(Some(WatchEvent::Resync)) | Err(_) => {}
                Ok(other) => panic!("unexpected watch event {other:?}"),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "watch never resumed"
            );
        }
    }

    /// Goal: a 3-member cluster keeps serving reads and compare-and-set writes with one
    /// member killed, through a store that knows all three endpoints.
    #[tokio::test]
    async fn three_member_cluster_survives_a_member_loss() {
        let mut etcd = EtcdServer::start_cluster(3);
        let store = EtcdStore::connect(EtcdConfig::new(etcd.endpoints(), unique_prefix()))
            .await
            .unwrap();
        let v1 = store
            .txn(Txn::new().when_version("c", 0).put("c", "1"))
            .await
            .unwrap();
        etcd.kill(0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let v2 = loop {
            match store
                .txn(Txn::new().when_version("c", v1).put("c", "2"))
                .await
            {
                Ok(v) => break v,
                Err(MetadataError::Conflict { .. }) => {
                    // An earlier attempt may have applied before its answer was lost.
                    let now = store.get("c").await.unwrap().unwrap();
                    assert_eq!(now.value, Bytes::from_static(b"2"));
                    break now.version;
                }
                Err(err) => {
                    assert!(err.is_retryable(), "{err:?}");
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "cluster unavailable"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert!(v2 > v1);
        assert_eq!(store.get("c").await.unwrap().unwrap().version, v2);
    }
}
