//! Builds the object store a URL names: `file:///abs/path`, `memory://` (and, later, `s3://`).
//!
//! This is the only place that picks an `ObjectStore` implementation; the rest of the tier
//! runs the same code on all of them.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use url::Url;

use crate::error::{StoreError, TieringError};

/// Opens the object store named by `url`.
///
/// - `file:///abs/path`: objects are files under that directory, created if missing. Only
///   absolute paths: `file://relative/path` would name a host, so it is rejected.
/// - `memory://`: a fresh in-memory store, lost with the process (tests, demos).
/// - `s3://bucket[/prefix]`: not supported yet.
///
/// Creating the directory is blocking IO; this runs once at startup.
pub fn object_store_from_url(url: &str) -> Result<Arc<dyn ObjectStore>, TieringError> {
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
            let store = LocalFileSystem::new_with_prefix(&path)
                .map_err(|err| TieringError::from_store("open object store directory", err))?;
            Ok(Arc::new(store))
        }
        "memory" => {
            if !matches!(parsed.path(), "" | "/")
                || parsed.host_str().is_some_and(|h| !h.is_empty())
            {
                return Err(unsupported("memory URLs take no path: use memory://"));
            }
            Ok(Arc::new(InMemory::new()))
        }
        "s3" => Err(unsupported("S3 object stores are not supported yet")),
        other => Err(unsupported(&format!(
            "unknown scheme {other:?}, expected file, memory or s3"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;

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
            "s3://bucket/prefix",
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
}
