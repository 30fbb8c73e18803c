//! Compaction: runs of small chunks (one per flush) are merged into per-partition objects,
//! the index shrinks, the old objects are collected, and every record is still read exactly
//! once and in order — from the cache and, after a restart, from the new objects.

mod common;

use std::time::Duration;

use common::kafka::{Rec, consume_all, create_topic, produce_all, producer, record};
use common::{Broker, wait_until};

/// Goal: compaction bounds the index while the data stays identical. Method: 40 separate
/// sends to 2 partitions make 80 index entries (one per flush and partition); compaction
/// runs every 100 ms (also while the sends go on), merges any run of 4 or more small chunks
/// and keeps the newest 2 entries of each partition, so the index drops to at most 5 entries
/// a partition; garbage collection (1 s grace) then deletes the objects
/// no entry refers to; the topic reads back identical before and after a kill -9 restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_shrinks_the_index_and_keeps_every_record() {
    compact_and_check(&[]).await;
}

/// The same on etcd: a swap is one transaction of up to 100 operations, within etcd's
/// default limit of 128.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_on_etcd() {
    let etcd = strato_metadata::testing::etcd_server::EtcdServer::start();
    let url = etcd.url("/strato/compaction");
    compact_and_check(&["--metadata", &url]).await;
}

async fn compact_and_check(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--compaction-interval-ms",
        "100",
        "--gc-interval-ms",
        "100",
        "--gc-grace-ms",
        "1000",
    ];
    args.extend_from_slice(extra);
    let broker = Broker::start(dir.path(), &args);
    create_topic(&broker.bootstrap(), "compacted", 2).await;
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    let records: Vec<Rec> = (0..1_000).map(|i| record("zstd", i)).collect();
    let mut landed = std::collections::BTreeMap::new();
    for chunk in records.chunks(25) {
        landed.extend(produce_all(&p, "compacted", chunk).await);
    }
    drop(p);
    assert_eq!(landed.len(), 1_000);
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "the index is compacted", || {
            broker.metric("strato_index_entries") <= 10.0
        });
        wait_until(
            Duration::from_secs(60),
            "the old objects are collected",
            || broker.metric("strato_gc_deleted_objects_total") >= 30.0,
        );
    });
    let consumed =
        tokio::task::block_in_place(|| consume_all(&broker.bootstrap(), "compacted", 2, 1_000));
    assert_eq!(
        consumed, landed,
        "every record once, in order, after compaction"
    );

    // Cold: the compacted objects are read back from the object store.
    let broker = broker.restart_killed();
    let consumed =
        tokio::task::block_in_place(|| consume_all(&broker.bootstrap(), "compacted", 2, 1_000));
    assert_eq!(consumed, landed, "and after a restart");
    assert!(broker.metric("strato_object_store_requests_total{operation=\"get\"}") >= 1.0);
}
