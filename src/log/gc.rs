//! Garbage collection of segment objects: an object that no index entry references any
//! more (its records were removed by retention or DeleteRecords, or its flush never
//! committed) is deleted once it is older than the grace period. One broker of the cluster
//! runs it (rendezvous owner of the task).
//!
//! Promise: an object referenced by an index entry is never deleted. An object is only a
//! candidate when it was created a whole grace period before the index was read, and no
//! commit references an object older than half the grace (`LogWriter` fails such a flush
//! and drops such a compaction swap). So any commit that references a candidate happened
//! before the index was read, and a flush in progress cannot lose its object (a commit
//! transaction must apply within half the grace, which its timeout ensures).
//!
//! Memory: the set of referenced object names; the index and the object listing are both
//! read page by page.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;

use strato_metadata::model::IndexEntry;
use strato_metadata::{MetadataError, MetadataStore};
use strato_tiering::{Tier, TieringError};
use tokio_util::sync::CancellationToken;

use super::flush::now_ms;
use crate::cluster::ClusterView;

/// Objects deleted per pass at most, so one pass stays bounded in time and requests.
const DELETES_PER_PASS_MAX: usize = 10_000;
/// The cluster-wide name of the task, hashed to pick the broker that runs it.
const TASK_NAME: &str = "segment-gc";

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Tier(#[from] TieringError),
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct GcStats {
    pub passes: AtomicU64,
    pub deleted: AtomicU64,
    /// Unreferenced objects the last pass left for their grace period (the backlog; 0 on
    /// brokers that do not run the passes).
    pub waiting: AtomicU64,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub deleted: usize,
    /// Unreferenced objects seen that are still within the grace period.
    pub waiting: usize,
}

/// Every object referenced by an index entry of any partition (read page by page: memory
/// is the set of referenced objects, which compaction keeps small, not the whole index).
async fn referenced_objects(meta: &dyn MetadataStore) -> Result<HashSet<String>, MetadataError> {
    let mut objects = HashSet::new();
    meta.for_each("partitions/", None, &mut |key, value| {
        if key.contains("/index/") {
            let object = IndexEntry::decode(key, &value.value)?.object;
            if !objects.contains(&object) {
                objects.insert(object);
            }
        }
        Ok(())
    })
    .await?;
    Ok(objects)
}

/// One pass: deletes unreferenced objects older than `grace`, and counts the younger ones.
pub async fn collect(
    meta: &dyn MetadataStore,
    tier: &Tier,
    grace: Duration,
) -> Result<Pass, GcError> {
    // Candidates were created a grace period before the index is read: see the module
    // comment.
    let oldest_candidate_ms = u64::try_from(now_ms())
        .unwrap_or(0)
        .saturating_sub(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX));
    let referenced = referenced_objects(meta).await?;
    let mut objects = tier.segment_keys();
    let mut deleted = 0;
    let mut waiting = 0;
    while deleted < DELETES_PER_PASS_MAX {
        let next = tokio::time::timeout(tier.config().get_timeout, objects.next())
            .await
            .map_err(|_| TieringError::Timeout {
                operation: "list objects",
            })?;
        let Some(key) = next.transpose()? else {
            break;
        };
        if referenced.contains(&key) {
            continue;
        }
        // Unknown names are not ours to delete.
        let Some(created_ms) = strato_tiering::keys::segment_created_ms(&key) else {
            continue;
        };
        if created_ms > oldest_candidate_ms {
            waiting += 1;
            continue;
        }
        tier.delete_object(&key).await?;
        tracing::debug!(object = %key, "deleted unreferenced segment");
        deleted += 1;
    }
    Ok(Pass { deleted, waiting })
}

/// Runs [`collect`] every `interval` on the broker that owns the task, until `shutdown`.
pub async fn run(
    meta: Arc<dyn MetadataStore>,
    tier: Arc<Tier>,
    cluster: Arc<ClusterView>,
    stats: Arc<GcStats>,
    interval: Duration,
    grace: Duration,
    shutdown: CancellationToken,
) {
    let mut passes = super::Periodic::new(interval, shutdown.clone());
    while passes.next().await {
        if cluster.task_owner(TASK_NAME) != cluster.broker_id() {
            continue;
        }
        match collect(meta.as_ref(), &tier, grace).await {
            Ok(Pass { deleted, waiting }) => {
                stats.passes.fetch_add(1, Ordering::Relaxed);
                stats.deleted.fetch_add(deleted as u64, Ordering::Relaxed);
                stats.waiting.store(waiting as u64, Ordering::Relaxed);
                if deleted > 0 {
                    tracing::info!(deleted, "garbage collection deleted unreferenced segments");
                }
            }
            Err(err) => tracing::warn!("garbage collection failed, will retry: {err:#}"),
        }
    }
}
