//! Builds the object store a URL names: `file:///abs/path`, `memory://`, `s3://bucket[/prefix]`.
//!
//! This is the only place that picks an `ObjectStore` implementation; the rest of the tier
//! runs the same code on all of them.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::direct_file::DirectFileStore;
use crate::error::{StoreError, TieringError};

/// Opens the object store named by `url`.
///
/// - `file:///abs/path`: objects are files under that directory, created if missing. Only
///   absolute paths: `file://relative/path` would name a host, so it is rejected.
/// - `memory://`: a fresh in-memory store, lost with the process (tests, demos).
/// - `s3://bucket[/prefix]`: see [`open_object_store`].
///
/// Creating the directory is blocking IO; this runs once at startup.
pub fn object_store_from_url(url: &str) -> Result<Arc<dyn ObjectStore>, TieringError> {
    open_object_store(url, &StoreOptions::default())
}

/// Settings that are not part of the URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// S3 endpoint (LocalStack, MinIO, ...); overrides `AWS_ENDPOINT_URL`.
    pub s3_endpoint: Option<String>,
}

/// Per-request timeout of S3 calls made by `object_store` (the tier adds its own timeouts
/// and retries around whole operations).
const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries inside `object_store` for one call (throttling, 5xx); the tier retries the whole
/// upload or read on top, so this stays small.
const S3_CLIENT_RETRIES: usize = 2;

/// Opens the object store named by `url`. For `s3://bucket[/prefix]` the configuration
/// comes from the usual AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, container and
/// instance credentials, then the `AWS_PROFILE` of `~/.aws/credentials` and `~/.aws/config`),
/// like every AWS tool; requests are path-style unless
/// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`, and plain HTTP is allowed when the endpoint is
/// `http://` (LocalStack, MinIO on a private network).
pub fn open_object_store(
    url: &str,
    options: &StoreOptions,
) -> Result<Arc<dyn ObjectStore>, TieringError> {
    let unsupported = |reason: &str| TieringError::UnsupportedUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = Url::parse(url).map_err(|err| unsupported(&err.to_string()))?;
    match parsed.scheme() {
        "file" => {
            if parsed.host_str().is_some_and(|host| !host.is_empty()) {
                return Err(unsupported(
                    "file URLs take an absolute path (file:///abs/path), not a host or relative path",
                ));
            }
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(unsupported("file URLs take no query or fragment"));
            }
            let path = parsed
                .to_file_path()
                .map_err(|()| unsupported("not a local absolute path"))?;
            std::fs::create_dir_all(&path).map_err(|err| TieringError::Unavailable {
                operation: "create object store directory",
                source: StoreError::io(err),
            })?;
            // Every write is made durable before it returns (file and directory fsync), as
            // a PUT to S3 is: the commit that references an object follows its upload, and
            // an acknowledged record must survive the machine, not only the process.
            let store = LocalFileSystem::new_with_prefix(&path)
                .map_err(|err| TieringError::from_store("open object store directory", err))?
                .with_fsync(true);
            // What PUTs cut short by a crash left behind, listings never show.
            crate::direct_file::sweep_stale_staging_in_background(path);
            // Whole-object PUTs (flushes, compaction) bypass the page cache.
            Ok(Arc::new(DirectFileStore::new(store)))
        }
        "memory" => {
            if !matches!(parsed.path(), "" | "/")
                || parsed.host_str().is_some_and(|h| !h.is_empty())
            {
                return Err(unsupported("memory URLs take no path: use memory://"));
            }
            Ok(Arc::new(InMemory::new()))
        }
        "s3" => {
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| unsupported("S3 URLs name a bucket: s3://bucket[/prefix]"))?;
            let prefix = parsed.path().trim_matches('/').to_string();
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: S3_CLIENT_RETRIES,
                    retry_timeout: S3_REQUEST_TIMEOUT,
                })
                .with_client_options(
                    ClientOptions::new()
                        .with_timeout(S3_REQUEST_TIMEOUT)
                        .with_connect_timeout(S3_CONNECT_TIMEOUT),
                );
            // Shared config files, for what the environment did not set (the AWS tools'
            // precedence: environment first, then the profile).
            let profile = crate::aws_profile::load_from_environment();
            if !profile.unsupported.is_empty() {
                tracing::warn!(
                    keys = ?profile.unsupported,
                    "the AWS profile uses settings Strato does not support (role assumption, \
                     SSO); use environment credentials or an instance role instead"
                );
            }
            let unset = |b: &AmazonS3Builder, key| b.get_config_value(&key).is_none();
            if unset(&builder, AmazonS3ConfigKey::AccessKeyId)
                && let (Some(id), Some(secret)) =
                    (&profile.access_key_id, &profile.secret_access_key)
            {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
                if let Some(token) = &profile.session_token {
                    builder = builder.with_token(token);
                }
            }
            if unset(&builder, AmazonS3ConfigKey::Region)
                && let Some(region) = &profile.region
            {
                builder = builder.with_region(region);
            }
            if unset(&builder, AmazonS3ConfigKey::Endpoint)
                && let Some(endpoint) = &profile.endpoint_url
            {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(endpoint) = &options.s3_endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
            if endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"))
            {
                builder = builder.with_allow_http(true);
            }
            if std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none() {
                builder = builder.with_unsigned_payload(unsigned_payload(endpoint.as_deref()));
            }
            let store = builder
                .build()
                .map_err(|err| TieringError::from_store("configure S3 object store", err))?;
            if prefix.is_empty() {
                Ok(Arc::new(store))
            } else {
                Ok(Arc::new(PrefixStore::new(store, prefix.as_str())))
            }
        }
        other => Err(unsupported(&format!(
            "unknown scheme {other:?}, expected file, memory or s3"
        ))),
    }
}

/// Whether S3 PUTs are signed without hashing their payload (`UNSIGNED-PAYLOAD`), unless
/// `AWS_UNSIGNED_PAYLOAD` says otherwise: yes over HTTPS (AWS itself when no endpoint is
/// set), where TLS protects the bytes in transit, as the AWS SDKs do; no over plain HTTP,
/// where the signature is the only check of the body on its way. Every chunk carries its
/// own checksums, verified on each read, either way. Hashing each payload (SigV4) took
/// 7–13% of the broker's CPU producing to S3 at full speed (docs/BENCHMARKS.md).
fn unsigned_payload(endpoint: Option<&str>) -> bool {
    endpoint.is_none_or(|e| {
        e.get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    })
}

#[cfg(test)]
mod tests {
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;

    #[test]
    fn payloads_go_unsigned_over_https_only() {
        assert!(unsigned_payload(None), "AWS's own endpoints are HTTPS");
        assert!(unsigned_payload(Some("https://s3.eu-west-1.amazonaws.com")));
        assert!(unsigned_payload(Some("HTTPS://minio.internal:9000")));
        assert!(!unsigned_payload(Some("http://127.0.0.1:4566")));
        assert!(!unsigned_payload(Some("http")));
    }

    #[tokio::test]
    async fn file_urls_create_the_directory_and_store_objects_there() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects/nested");
        let url = Url::from_file_path(&root).unwrap().to_string();
        let store = object_store_from_url(&url).unwrap();
        assert!(root.is_dir());
        store
            .put(
                &Path::from("segments/ab/x.seg"),
                PutPayload::from_static(b"hello"),
            )
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(root.join("segments/ab/x.seg")).unwrap(),
            b"hello"
        );
    }

    #[tokio::test]
    async fn opening_a_file_store_sweeps_stale_staging_files() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("segments/ab/x.seg#9223372036854775809");
        std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&stale).unwrap();
        file.set_modified(
            std::time::SystemTime::now()
                - crate::direct_file::STAGING_STALE_AFTER
                - std::time::Duration::from_secs(1),
        )
        .unwrap();
        drop(file);
        let url = Url::from_file_path(dir.path()).unwrap().to_string();
        let _store = object_store_from_url(&url).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stale.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "stale staging file still there after 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn memory_urls_give_a_working_store() {
        let store = object_store_from_url("memory://").unwrap();
        let path = Path::from("k");
        store
            .put(&path, PutPayload::from_static(b"v"))
            .await
            .unwrap();
        let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&bytes[..], b"v");
    }

    #[test]
    fn other_urls_are_rejected_clearly() {
        for url in [
            "file://relative/path",
            "s3:///no-bucket",
            "gs://bucket",
            "/abs/path/without/scheme",
            "memory://somewhere/else",
            "",
        ] {
            let err = object_store_from_url(url).expect_err(url);
            assert!(
                matches!(err, TieringError::UnsupportedUrl { .. }),
                "{url}: {err}"
            );
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn s3_urls_build_a_store_without_contacting_s3() {
        let options = StoreOptions {
            s3_endpoint: Some("http://127.0.0.1:1".to_string()),
        };
        assert!(open_object_store("s3://bucket", &options).is_ok());
        assert!(open_object_store("s3://bucket/some/prefix", &options).is_ok());
    }
}
