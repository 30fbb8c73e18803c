//! The conformance suite every `MetadataStore` implementation must pass.
//!
//! Call [`conformance`] with a fresh, empty store (or one under a unique key prefix). It
//! asserts the semantics the broker relies on: versions, compare-and-set, atomic multi-op
//! transactions, independent `txn_many`, prefix listing, leases and watches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::{MetadataError, MetadataStore, Txn, WatchEvent};

/// How long a conformance check waits for an asynchronous effect (lease expiry, watch event).
const EFFECT_DEADLINE: Duration = Duration::from_secs(10);

pub async fn conformance(store: Arc<dyn MetadataStore>) {
    versions_and_compare_and_set(store.as_ref()).await;
    transactions_are_atomic(store.as_ref()).await;
    txn_many_is_independent(store.as_ref()).await;
    list_by_prefix(store.as_ref()).await;
    racing_writers_one_wins(store.clone()).await;
    leases(store.as_ref()).await;
    watches(store.as_ref()).await;
}

async fn versions_and_compare_and_set(store: &dyn MetadataStore) {
    assert_eq!(store.get("cas/a").await.unwrap(), None);
    // Create only if absent.
    let v1 = store
        .txn(Txn::new().when_version("cas/a", 0).put("cas/a", "1"))
        .await
        .unwrap();
    let got = store.get("cas/a").await.unwrap().unwrap();
    assert_eq!(got.value, Bytes::from_static(b"1"));
    assert_eq!(got.version, v1);
    // A second create fails with the current version.
    match store
        .txn(Txn::new().when_version("cas/a", 0).put("cas/a", "x"))
        .await
    {
        Err(MetadataError::Conflict {
            key,
            current_version,
        }) => {
            assert_eq!(key, "cas/a");
            assert_eq!(current_version, v1);
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    // Update at the right version succeeds and increases the version.
    let v2 = store
        .txn(Txn::new().when_version("cas/a", v1).put("cas/a", "2"))
        .await
        .unwrap();
    assert!(v2 > v1);
    // Stale version fails and changes nothing.
    assert!(matches!(
        store
            .txn(Txn::new().when_version("cas/a", v1).put("cas/a", "stale"))
            .await,
        Err(MetadataError::Conflict { .. })
    ));
    assert_eq!(
        store.get("cas/a").await.unwrap().unwrap().value,
        Bytes::from_static(b"2")
    );
    // Delete.
    store.txn(Txn::new().delete("cas/a")).await.unwrap();
    assert_eq!(store.get("cas/a").await.unwrap(), None);
}

async fn transactions_are_atomic(store: &dyn MetadataStore) {
    store
        .txn(Txn::new().put("atomic/guard", "g"))
        .await
        .unwrap();
    let failed = store
        .txn(
            Txn::new()
                .when_version("atomic/guard", 0)
                .put("atomic/x", "1")
                .put("atomic/y", "1"),
        )
        .await;
    assert!(matches!(failed, Err(MetadataError::Conflict { .. })));
    assert_eq!(store.get("atomic/x").await.unwrap(), None);
    assert_eq!(store.get("atomic/y").await.unwrap(), None);

    let guard = store.get("atomic/guard").await.unwrap().unwrap().version;
    let version = store
        .txn(
            Txn::new()
                .when_version("atomic/guard", guard)
                .put("atomic/x", "1")
                .put("atomic/y", "1")
                .delete("atomic/guard"),
        )
        .await
        .unwrap();
    // All writes of one transaction share its version.
    assert_eq!(
        store.get("atomic/x").await.unwrap().unwrap().version,
        version
    );
    assert_eq!(
        store.get("atomic/y").await.unwrap().unwrap().version,
        version
    );
    assert_eq!(store.get("atomic/guard").await.unwrap(), None);

    let too_big = (0..129).fold(Txn::new(), |t, i| t.put(format!("atomic/big/{i}"), "x"));
    assert!(store.txn(too_big).await.is_err(), "129 ops must be refused");
}

async fn txn_many_is_independent(store: &dyn MetadataStore) {
    let results = store
        .txn_many(vec![
            Txn::new().when_version("many/a", 0).put("many/a", "1"),
            Txn::new().when_version("many/b", 12345).put("many/b", "1"),
            Txn::new().when_version("many/c", 0).put("many/c", "1"),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(MetadataError::Conflict { .. })));
    assert!(results[2].is_ok());
    assert!(store.get("many/a").await.unwrap().is_some());
    assert!(store.get("many/b").await.unwrap().is_none());
    assert!(store.get("many/c").await.unwrap().is_some());
}

async fn list_by_prefix(store: &dyn MetadataStore) {
    let mut txn = Txn::new();
    for i in [3, 1, 2] {
        txn = txn.put(format!("list/p/{i:03}"), format!("{i}"));
    }
    txn = txn
        .put("list/q/001", "other")
        .put("list/p", "not-under-prefix/");
    store.txn(txn).await.unwrap();
    let all = store.list("list/p/", None, 100).await.unwrap();
    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["list/p/001", "list/p/002", "list/p/003"]);
    let limited = store.list("list/p/", None, 2).await.unwrap();
    assert_eq!(limited.len(), 2);
    let rest = store
        .list("list/p/", Some("list/p/002"), 100)
        .await
        .unwrap();
    let keys: Vec<&str> = rest.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["list/p/003"], "strictly after `after`");
    assert!(store.list("list/none/", None, 10).await.unwrap().is_empty());

    // Paging: more keys than one page, in several transactions of at most 128 ops.
    let total = crate::store::LIST_PAGE * 2 + 7;
    for chunk in (0..total).collect::<Vec<_>>().chunks(100) {
        let txn = chunk
            .iter()
            .fold(Txn::new(), |t, i| t.put(format!("list/many/{i:06}"), "x"));
        store.txn(txn).await.unwrap();
    }
    let many = store.list_all("list/many/").await.unwrap();
    assert_eq!(many.len(), total);
    assert!(
        many.windows(2).all(|w| w[0].0 < w[1].0),
        "ascending, no duplicates"
    );
}

async fn racing_writers_one_wins(store: Arc<dyn MetadataStore>) {
    store.txn(Txn::new().put("race/state", "0")).await.unwrap();
    let version = store.get("race/state").await.unwrap().unwrap().version;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .txn(
                    Txn::new()
                        .when_version("race/state", version)
                        .put("race/state", format!("{i}")),
                )
                .await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => winners += 1,
            Err(MetadataError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners, 1, "exactly one racing writer wins");
}

async fn leases(store: &dyn MetadataStore) {
    let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    store
        .txn(Txn::new().put_with_lease("lease/revoked", "x", lease))
        .await
        .unwrap();
    store.keep_alive(lease).await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    assert_eq!(store.get("lease/revoked").await.unwrap(), None);
    assert!(
        matches!(
            store.keep_alive(lease).await,
            Err(MetadataError::LeaseNotFound(_))
        ),
        "a revoked lease is reported as not found (the broker then stops leading)"
    );
    assert!(matches!(
        store.revoke_lease(lease).await,
        Err(MetadataError::LeaseNotFound(_))
    ));
    assert!(
        store
            .txn(Txn::new().put_with_lease("lease/x", "x", lease))
            .await
            .is_err(),
        "a revoked lease cannot bind keys"
    );

    // Expiry: a short lease that is not kept alive disappears with its keys.
    let short = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    store
        .txn(Txn::new().put_with_lease("lease/expiring", "x", short))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + EFFECT_DEADLINE;
    while store.get("lease/expiring").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "leased key still present after expiry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn watches(store: &dyn MetadataStore) {
    let mut rx = store.watch("watch/").await.unwrap();
    store.txn(Txn::new().put("other/x", "no")).await.unwrap();
    store.txn(Txn::new().put("watch/a", "1")).await.unwrap();
    store.txn(Txn::new().delete("watch/a")).await.unwrap();
    let first = tokio::time::timeout(EFFECT_DEADLINE, rx.recv())
        .await
        .expect("watch event in time")
        .expect("watch open");
    match first {
        WatchEvent::Put { key, value, .. } => {
            assert_eq!(key, "watch/a");
            assert_eq!(value, Bytes::from_static(b"1"));
        }
        other => panic!("expected put, got {other:?}"),
    }
    let second = tokio::time::timeout(EFFECT_DEADLINE, rx.recv())
        .await
        .expect("watch event in time")
        .expect("watch open");
    assert!(matches!(second, WatchEvent::Delete { key, .. } if key == "watch/a"));
}

/// A real etcd for tests: one member or a cluster on free loopback ports, each member a
/// child process with its data in a temp dir, killed (by pid) when dropped.
#[cfg(any(test, feature = "testing"))]
pub mod etcd_server {
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// How long a member may take to become healthy.
    const READY_DEADLINE: Duration = Duration::from_secs(30);

    struct Member {
        name: String,
        client_port: u16,
        peer_port: u16,
        data_dir: PathBuf,
        log: PathBuf,
        child: Option<Child>,
    }

    pub struct EtcdServer {
        members: Vec<Member>,
        initial_cluster: String,
        _dir: tempfile::TempDir,
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free port")
            .port()
    }

    impl EtcdServer {
        /// One member.
        pub fn start() -> Self {
            Self::start_cluster(1)
        }

        /// `n` members forming one cluster.
        pub fn start_cluster(n: usize) -> Self {
            // A free port is found by binding port 0 and letting it go; another process of a
            // parallel test run can take it before etcd binds it. Then start over with new
            // ports (bounded).
            const ATTEMPTS: usize = 5;
            for attempt in 1..=ATTEMPTS {
                match Self::try_start_cluster(n) {
                    Ok(server) => return server,
                    Err(log) if attempt < ATTEMPTS && log.contains("address already in use") => {
                        continue;
                    }
                    Err(log) => panic!("etcd did not start; log:\n{log}"),
                }
            }
            unreachable!("the last attempt returns or panics")
        }

        fn try_start_cluster(n: usize) -> Result<Self, String> {
            let dir = tempfile::tempdir().expect("temp dir for etcd");
            let members: Vec<Member> = (0..n)
                .map(|i| Member {
                    name: format!("m{i}"),
                    client_port: free_port(),
                    peer_port: free_port(),
                    data_dir: dir.path().join(format!("m{i}")),
                    log: dir.path().join(format!("m{i}.log")),
                    child: None,
                })
                .collect();
            let initial_cluster = members
                .iter()
                .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
                .collect::<Vec<_>>()
                .join(",");
            let mut server = Self {
                members,
                initial_cluster,
                _dir: dir,
            };
            for i in 0..n {
                server.spawn(i, "new");
            }
            for i in 0..n {
                // On failure `server` is dropped, which kills the members already started.
                server.try_wait_healthy(i)?;
            }
            Ok(server)
        }

        fn spawn(&mut self, i: usize, state: &str) {
            let m = &self.members[i];
            let log = std::fs::File::create(&m.log).expect("etcd log file");
            let child = Command::new("etcd")
                .args(["--name", &m.name])
                .arg("--data-dir")
                .arg(&m.data_dir)
                .arg(format!(
                    "--listen-client-urls=http://127.0.0.1:{}",
                    m.client_port
                ))
                .arg(format!(
                    "--advertise-client-urls=http://127.0.0.1:{}",
                    m.client_port
                ))
                .arg(format!(
                    "--listen-peer-urls=http://127.0.0.1:{}",
                    m.peer_port
                ))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                    m.peer_port
                ))
                .arg(format!("--initial-cluster={}", self.initial_cluster))
                .arg(format!("--initial-cluster-state={state}"))
                .arg("--initial-cluster-token=strato-test")
                .arg("--auto-compaction-mode=periodic")
                .arg("--auto-compaction-retention=1h")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|err| {
                    panic!(
                        "cannot start etcd ({err}): install it with `apt-get install -y \
                         etcd-server etcd-client` (./scripts/test.sh does)"
                    )
                });
            self.members[i].child = Some(child);
        }

        fn wait_healthy(&mut self, i: usize) {
            if let Err(log) = self.try_wait_healthy(i) {
                panic!("{log}");
            }
        }

        /// Waits for member `i` to answer; `Err` with its log if it exited.
        fn try_wait_healthy(&mut self, i: usize) -> Result<(), String> {
            let end = Instant::now() + READY_DEADLINE;
            loop {
                let m = &mut self.members[i];
                if let Some(child) = &mut m.child
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return Err(format!(
                        "etcd member {} exited ({status}); log:\n{}",
                        m.name,
                        std::fs::read_to_string(&m.log).unwrap_or_default()
                    ));
                }
                // Healthy, and ours: ports are found free and let go before etcd binds
                // them, so another test's etcd may have taken this client port (ours then
                // fails to bind and exits). Only our member lists our peer URL.
                let ours = format!("http://127.0.0.1:{}", m.peer_port);
                let members = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .arg(format!("--endpoints=http://127.0.0.1:{}", m.client_port))
                    .args([
                        "--dial-timeout=1s",
                        "--command-timeout=2s",
                        "member",
                        "list",
                    ])
                    .stderr(Stdio::null())
                    .output();
                let healthy = members.is_ok_and(|out| {
                    out.status.success()
                        && String::from_utf8_lossy(&out.stdout)
                            .split([',', ' ', '\n'])
                            .any(|url| url == ours)
                });
                if healthy {
                    return Ok(());
                }
                assert!(
                    Instant::now() < end,
                    "etcd member {} not healthy in time; log:\n{}",
                    m.name,
                    std::fs::read_to_string(&m.log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        /// Client endpoints (`http://127.0.0.1:port`) of the members.
        pub fn endpoints(&self) -> Vec<String> {
            self.members
                .iter()
                .map(|m| format!("http://127.0.0.1:{}", m.client_port))
                .collect()
        }

        /// `etcd://` URL of the cluster with `prefix` (e.g. `/strato/test-1`).
        pub fn url(&self, prefix: &str) -> String {
            let hosts: Vec<String> = self
                .members
                .iter()
                .map(|m| format!("127.0.0.1:{}", m.client_port))
                .collect();
            format!("etcd://{}{prefix}", hosts.join(","))
        }

        /// kill -9 one member.
        pub fn kill(&mut self, i: usize) {
            if let Some(mut child) = self.members[i].child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        /// Starts a killed member again on its data directory and waits until it is
        /// healthy.
        pub fn restart(&mut self, i: usize) {
            assert!(self.members[i].child.is_none(), "member {i} is running");
            self.spawn(i, "existing");
            self.wait_healthy(i);
        }
    }

    impl Drop for EtcdServer {
        fn drop(&mut self) {
            for i in 0..self.members.len() {
                self.kill(i);
            }
        }
    }
}

/// An index entry for tests of index readers: chunk `object`, offsets `base..=last`, one
/// byte long.
pub fn index_entry(
    object: &str,
    base: crate::model::Offset,
    last: crate::model::Offset,
) -> crate::model::IndexEntry {
    crate::model::IndexEntry {
        v: crate::model::RECORD_FORMAT_V1,
        object: object.to_string(),
        byte_offset: 0,
        byte_length: 1,
        uncompressed_length: 1,
        base_offset: base,
        last_offset: last,
        max_timestamp: 0,
        record_count: u64::try_from(last - base + 1).unwrap_or(0),
        seek_table_length: 0,
        raw: false,
    }
}

/// `FaultyMetadataStore`: wraps a real store and makes transactions fail on demand, to test
/// what callers do when a commit fails or its answer is lost.
#[cfg(any(test, feature = "testing"))]
pub mod faulty {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::mpsc;

    use crate::{LeaseId, MetadataError, MetadataStore, Txn, Version, Versioned, WatchEvent};

    pub struct FaultyMetadataStore {
        inner: Arc<dyn MetadataStore>,
        fail_txns: AtomicU32,
        lose_txn_answers: AtomicU32,
        hold_txn_manys: AtomicU32,
        held_txn_manys: AtomicU32,
        /// `true` lets held calls go on.
        released: tokio::sync::watch::Sender<bool>,
        txn_many_calls: AtomicU32,
        /// A transaction applied right after a `list` call read its page: (calls to let by
        /// first, the transaction).
        txn_between_lists: std::sync::Mutex<Option<(u32, Txn)>>,
    }

    fn take_one(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    impl FaultyMetadataStore {
        pub fn new(inner: Arc<dyn MetadataStore>) -> Self {
            Self {
                inner,
                fail_txns: AtomicU32::new(0),
                lose_txn_answers: AtomicU32::new(0),
                hold_txn_manys: AtomicU32::new(0),
                held_txn_manys: AtomicU32::new(0),
                released: tokio::sync::watch::Sender::new(false),
                txn_many_calls: AtomicU32::new(0),
                txn_between_lists: std::sync::Mutex::new(None),
            }
        }

        /// Applies `txn` to the store right after the `(skip + 1)`-th `list` call from now
        /// has read its page, before its caller sees it: another writer landing between
        /// two pages of a listing (or between a listing and the next).
        pub fn txn_after_list(&self, skip: u32, txn: Txn) {
            *self.txn_between_lists.lock().unwrap() = Some((skip, txn));
        }

        /// The next `n` `txn_many` calls wait, before they are applied, until
        /// [`Self::release_held_txn_manys`].
        pub fn hold_next_txn_manys(&self, n: u32) {
            self.released.send_replace(false);
            self.hold_txn_manys.store(n, Ordering::Relaxed);
        }

        /// Lets the held `txn_many` calls (and those still to be held) go on.
        pub fn release_held_txn_manys(&self) {
            self.released.send_replace(true);
        }

        /// `txn_many` calls waiting to be released.
        pub fn txn_manys_held(&self) -> u32 {
            self.held_txn_manys.load(Ordering::Relaxed)
        }

        /// `txn_many` calls so far.
        pub fn txn_many_calls(&self) -> u32 {
            self.txn_many_calls.load(Ordering::Relaxed)
        }

        /// The next `n` transaction calls are not applied and time out.
        pub fn fail_next_txns(&self, n: u32) {
            self.fail_txns.store(n, Ordering::Relaxed);
        }

        /// The next `n` transaction calls are applied, but the caller gets a timeout (the
        /// answer was lost on the way back).
        pub fn lose_next_txn_answers(&self, n: u32) {
            self.lose_txn_answers.store(n, Ordering::Relaxed);
        }

        fn injected(&self) -> Option<bool> {
            if take_one(&self.fail_txns) {
                Some(false)
            } else if take_one(&self.lose_txn_answers) {
                Some(true)
            } else {
                None
            }
        }
    }

    const TIMEOUT: MetadataError = MetadataError::Timeout {
        operation: "injected fault",
    };

    #[async_trait]
    impl MetadataStore for FaultyMetadataStore {
        async fn get(&self, key: &str) -> Result<Option<Versioned>, MetadataError> {
            self.inner.get(key).await
        }

        async fn list(
            &self,
            prefix: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<(String, Versioned)>, MetadataError> {
            let page = self.inner.list(prefix, after, limit).await;
            let due = {
                let mut pending = self.txn_between_lists.lock().unwrap();
                match pending.as_mut() {
                    Some((0, _)) => pending.take().map(|(_, txn)| txn),
                    Some((skip, _)) => {
                        *skip -= 1;
                        None
                    }
                    None => None,
                }
            };
            if let Some(txn) = due {
                self.inner.txn(txn).await?;
            }
            page
        }

        async fn txn(&self, txn: Txn) -> Result<Version, MetadataError> {
            match self.injected() {
                None => self.inner.txn(txn).await,
                Some(false) => Err(TIMEOUT),
                Some(true) => {
                    self.inner.txn(txn).await?;
                    Err(TIMEOUT)
                }
            }
        }

        async fn txn_many(
            &self,
            txns: Vec<Txn>,
        ) -> Result<Vec<Result<Version, MetadataError>>, MetadataError> {
            self.txn_many_calls.fetch_add(1, Ordering::Relaxed);
            // A fault is decided when the call starts, so one armed while a call is held
            // falls on the next call.
            let injected = self.injected();
            if take_one(&self.hold_txn_manys) {
                let mut released = self.released.subscribe();
                self.held_txn_manys.fetch_add(1, Ordering::Relaxed);
                // The sender lives as long as `self`, so this ends only on release.
                let _ = released.wait_for(|released| *released).await;
                self.held_txn_manys.fetch_sub(1, Ordering::Relaxed);
            }
            match injected {
                None => self.inner.txn_many(txns).await,
                Some(false) => Err(TIMEOUT),
                Some(true) => {
                    self.inner.txn_many(txns).await?;
                    Err(TIMEOUT)
                }
            }
        }

        async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetadataError> {
            self.inner.grant_lease(ttl).await
        }

        async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetadataError> {
            self.inner.keep_alive(lease).await
        }

        async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetadataError> {
            self.inner.revoke_lease(lease).await
        }

        async fn watch(&self, prefix: &str) -> Result<mpsc::Receiver<WatchEvent>, MetadataError> {
            self.inner.watch(prefix).await
        }
    }
}
