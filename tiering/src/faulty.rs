//! `FaultyObjectStore`: wraps a real `ObjectStore` and injects failures on demand, so tests
//! can show what the broker does when the object store misbehaves (docs/DESIGN.md: a failed PUT
//! is never acked). Faults are armed at run time: `fail_next_puts(n)` fails the next `n`
//! PUTs with a retryable-looking error, `fail_puts_after(n)` lets `n` more PUTs through and
//! fails all later ones (until re-armed), `fail_next_gets(n)` fails the next `n` GETs with a
//! retryable-looking error, `hang_next_gets(n)` makes the next `n` GETs never
//! answer (callers' timeouts must cut them off), `set_latency(d)` delays every request,
//! `set_slow_body(d)` delays every chunk of a GET's body (streamed bodies, as S3's are) and
//! `hold_next_puts(n)` keeps the next `n` PUTs waiting until `release_held_puts(fail)`
//! (with `fail`, they fail, and so does every later PUT to their keys: a retried upload
//! that keeps failing).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

#[derive(Debug)]
pub struct FaultyObjectStore {
    inner: Arc<dyn ObjectStore>,
    put_failures: AtomicU32,
    /// PUTs still allowed before every PUT fails; `u64::MAX` = no such limit.
    puts_before_failing: AtomicU64,
    get_failures: AtomicU32,
    get_hangs: AtomicU32,
    puts_seen: AtomicU64,
    gets_seen: AtomicU64,
    latency_micros: AtomicU64,
    body_chunk_delay_micros: AtomicU64,
    puts_to_hold: AtomicU32,
    puts_held: AtomicU32,
    puts_completed: AtomicU64,
    puts_failed: AtomicU64,
    /// Bumped by each release; a held PUT waits for the next release.
    releases: tokio::sync::watch::Sender<Release>,
    /// Keys whose PUTs fail from now on (held PUTs released with `fail`).
    doomed: Mutex<HashSet<Path>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Release {
    count: u64,
    fail: bool,
}

impl FaultyObjectStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            put_failures: AtomicU32::new(0),
            puts_before_failing: AtomicU64::new(u64::MAX),
            get_failures: AtomicU32::new(0),
            get_hangs: AtomicU32::new(0),
            puts_seen: AtomicU64::new(0),
            gets_seen: AtomicU64::new(0),
            latency_micros: AtomicU64::new(0),
            body_chunk_delay_micros: AtomicU64::new(0),
            puts_to_hold: AtomicU32::new(0),
            puts_held: AtomicU32::new(0),
            puts_completed: AtomicU64::new(0),
            puts_failed: AtomicU64::new(0),
            releases: tokio::sync::watch::Sender::new(Release::default()),
            doomed: Mutex::new(HashSet::new()),
        }
    }

    /// The next `n` PUTs wait (after `set_latency`'s delay) until `release_held_puts`.
    pub fn hold_next_puts(&self, n: u32) {
        self.puts_to_hold.store(n, Ordering::Relaxed);
    }

    /// Lets every held PUT go on: with `fail`, each fails, and so does every later PUT to
    /// the same key.
    pub fn release_held_puts(&self, fail: bool) {
        self.releases.send_modify(|release| {
            release.count += 1;
            release.fail = fail;
        });
    }

    /// PUTs waiting for `release_held_puts` now.
    pub fn puts_held(&self) -> u32 {
        self.puts_held.load(Ordering::Relaxed)
    }

    /// PUTs that succeeded so far.
    pub fn puts_completed(&self) -> u64 {
        self.puts_completed.load(Ordering::Relaxed)
    }

    /// PUTs failed by an injected fault so far.
    pub fn puts_failed(&self) -> u64 {
        self.puts_failed.load(Ordering::Relaxed)
    }

    /// Waits at the gate if this PUT is to be held; `Err` if it is released to fail.
    async fn maybe_hold(&self, location: &Path) -> Result<(), ()> {
        if !take_one(&self.puts_to_hold) {
            return Ok(());
        }
        let mut releases = self.releases.subscribe();
        let before = releases.borrow_and_update().count;
        self.puts_held.fetch_add(1, Ordering::Relaxed);
        let fail = match releases.wait_for(|release| release.count > before).await {
            Ok(release) => release.fail,
            Err(_) => false,
        };
        self.puts_held.fetch_sub(1, Ordering::Relaxed);
        if fail {
            self.doomed
                .lock()
                .expect("doomed lock")
                .insert(location.clone());
            return Err(());
        }
        Ok(())
    }

    fn is_doomed(&self, location: &Path) -> bool {
        self.doomed.lock().expect("doomed lock").contains(location)
    }

    /// Delays each chunk of every streamed GET body by `delay` (a slow or congested link).
    pub fn set_slow_body(&self, delay: std::time::Duration) {
        self.body_chunk_delay_micros.store(
            u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Lets `n` more PUTs succeed, then fails every PUT; `None` lifts the limit.
    pub fn fail_puts_after(&self, n: Option<u64>) {
        self.puts_before_failing
            .store(n.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Delays every request by `latency` (e.g. 30 ms, like a far S3 region).
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.latency_micros.store(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    async fn delay(&self) {
        let micros = self.latency_micros.load(Ordering::Relaxed);
        if micros > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
        }
    }

    fn put_allowed(&self) -> bool {
        self.puts_before_failing
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| match n {
                u64::MAX => Some(u64::MAX),
                0 => None,
                n => Some(n - 1),
            })
            .is_ok()
    }

    /// The next `n` PUTs fail (as an S3 503 would).
    pub fn fail_next_puts(&self, n: u32) {
        self.put_failures.store(n, Ordering::Relaxed);
    }

    /// The next `n` GETs fail (as an S3 503 would).
    pub fn fail_next_gets(&self, n: u32) {
        self.get_failures.store(n, Ordering::Relaxed);
    }

    /// GET attempts seen so far (ranged or whole), failed ones included.
    pub fn gets_seen(&self) -> u64 {
        self.gets_seen.load(Ordering::Relaxed)
    }

    /// The next `n` GETs never complete.
    pub fn hang_next_gets(&self, n: u32) {
        self.get_hangs.store(n, Ordering::Relaxed);
    }

    /// PUT attempts seen so far, failed ones included.
    pub fn puts_seen(&self) -> u64 {
        self.puts_seen.load(Ordering::Relaxed)
    }
}

impl fmt::Display for FaultyObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyObjectStore({})", self.inner)
    }
}

fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl ObjectStore for FaultyObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.puts_seen.fetch_add(1, Ordering::Relaxed);
        self.delay().await;
        let held_to_fail = self.maybe_hold(location).await.is_err();
        if held_to_fail
            || self.is_doomed(location)
            || take_one(&self.put_failures)
            || !self.put_allowed()
        {
            self.puts_failed.fetch_add(1, Ordering::Relaxed);
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: "injected 503 Slow Down".into(),
            });
        }
        let result = self.inner.put_opts(location, payload, opts).await;
        if result.is_ok() {
            self.puts_completed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.gets_seen.fetch_add(1, Ordering::Relaxed);
        self.delay().await;
        if take_one(&self.get_failures) {
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: "injected 503 Slow Down".into(),
            });
        }
        if take_one(&self.get_hangs) {
            std::future::pending::<()>().await;
        }
        let mut result = self.inner.get_opts(location, options).await?;
        let micros = self.body_chunk_delay_micros.load(Ordering::Relaxed);
        if micros > 0
            && let GetResultPayload::Stream(stream) = std::mem::replace(
                &mut result.payload,
                GetResultPayload::Stream(Box::pin(futures::stream::empty())),
            )
        {
            let delay = std::time::Duration::from_micros(micros);
            result.payload =
                GetResultPayload::Stream(Box::pin(stream.then(move |chunk| async move {
                    tokio::time::sleep(delay).await;
                    chunk
                })));
        }
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;

    #[tokio::test]
    async fn faults_are_injected_as_armed() {
        let store = FaultyObjectStore::new(Arc::new(InMemory::new()));
        let path = Path::from("k");
        store.fail_puts_after(Some(2));
        for _ in 0..2 {
            store
                .put(&path, PutPayload::from_static(b"v"))
                .await
                .unwrap();
        }
        assert!(
            store
                .put(&path, PutPayload::from_static(b"v"))
                .await
                .is_err()
        );
        store.fail_puts_after(None);
        store.fail_next_puts(1);
        assert!(
            store
                .put(&path, PutPayload::from_static(b"v"))
                .await
                .is_err()
        );
        store
            .put(&path, PutPayload::from_static(b"v"))
            .await
            .unwrap();
        assert_eq!(store.puts_seen(), 5);
        store.fail_next_gets(1);
        assert!(store.get(&path).await.is_err());
        store.get(&path).await.unwrap();
        assert_eq!(store.gets_seen(), 2);
        store.set_latency(std::time::Duration::from_millis(20));
        let started = tokio::time::Instant::now();
        store.get(&path).await.unwrap();
        assert!(started.elapsed() >= std::time::Duration::from_millis(20));
        store.set_latency(std::time::Duration::ZERO);
        store.set_slow_body(std::time::Duration::from_millis(20));
        let started = tokio::time::Instant::now();
        let body = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&body[..], b"v");
        assert!(started.elapsed() >= std::time::Duration::from_millis(20));
    }

    /// Goal: held PUTs wait for their release; released to fail, they fail and so does
    /// every later PUT to their keys, while other keys still work.
    #[tokio::test]
    async fn held_puts_wait_for_their_release() {
        let store = Arc::new(FaultyObjectStore::new(Arc::new(InMemory::new())));
        store.hold_next_puts(1);
        let held = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .put(&Path::from("a"), PutPayload::from_static(b"v"))
                    .await
            }
        });
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while store.puts_held() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the PUT is held");
        store
            .put(&Path::from("b"), PutPayload::from_static(b"v"))
            .await
            .expect("PUTs beyond the held ones go through");
        assert_eq!(store.puts_completed(), 1);
        assert!(!held.is_finished());
        store.release_held_puts(true);
        assert!(held.await.unwrap().is_err());
        assert!(
            store
                .put(&Path::from("a"), PutPayload::from_static(b"v"))
                .await
                .is_err(),
            "a retry of a PUT released to fail fails too"
        );
        assert_eq!(store.puts_held(), 0);
        assert_eq!(store.puts_completed(), 1);
    }
}
