//! Retention and DeleteRecords: the log start moves forward, records below it are no longer
//! served, their index entries leave the metadata store, and what stays is read unchanged.

mod common;

use std::time::Duration;

use common::kafka::{Rec, produce_all, producer, record};
use common::{Broker, segment_files, wait_until};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin client")
}

async fn create(broker: &Broker, topic: &str, config: &[(&str, &str)]) {
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in config {
        new = new.set(k, v);
    }
    for result in admin(broker)
        .create_topics(&[new], &AdminOptions::new())
        .await
        .expect("create topics")
    {
        result.expect("topic created");
    }
}

/// (low, high) watermarks of partition 0.
fn watermarks(broker: &Broker, topic: &str) -> (i64, i64) {
    let consumer = common::kafka::consumer(&broker.bootstrap(), &[]);
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks")
}

/// Produces `records` in `sends` separate sends (so they land in separate flushes, hence
/// separate chunks) and returns the acknowledged map.
async fn produce_in_chunks(
    broker: &Broker,
    topic: &str,
    records: &[Rec],
    sends: usize,
) -> std::collections::BTreeMap<(i32, i64), Rec> {
    let p = producer(&broker.bootstrap(), &[]);
    let mut landed = std::collections::BTreeMap::new();
    for chunk in records.chunks(records.len().div_ceil(sends)) {
        landed.extend(produce_all(&p, topic, chunk).await);
    }
    landed
}

/// Goal: DeleteRecords (through librdkafka's admin client) moves the low watermark, a
/// consumer from the beginning starts there, and the index entries of wholly deleted chunks
/// leave the metadata store; deleting below the current start changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    create(&broker, "trimmed", &[]).await;
    let records: Vec<Rec> = (0..100).map(|i| record("none", i)).collect();
    let landed = produce_in_chunks(&broker, "trimmed", &records, 10).await;
    assert_eq!(landed.len(), 100);
    let entries_before = broker.metric("strato_index_entries");
    assert!(entries_before >= 2.0, "several chunks: {entries_before}");

    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("trimmed", 0, Offset::Offset(50))
        .unwrap();
    let result = admin(&broker)
        .delete_records(&offsets, &AdminOptions::new())
        .await
        .expect("delete records");
    let element = &result.elements()[0];
    assert!(element.error().is_ok(), "{:?}", element.error());
    assert_eq!(element.offset(), Offset::Offset(50));
    assert_eq!(
        tokio::task::block_in_place(|| watermarks(&broker, "trimmed")),
        (50, 100)
    );
    assert!(
        broker.metric("strato_index_entries") < entries_before,
        "index entries below the new start are gone"
    );

    // A consumer from the beginning reads exactly offsets 50..100.
    let consumer =
        common::kafka::consumer(&broker.bootstrap(), &[("auto.offset.reset", "earliest")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut offsets_read = Vec::new();
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(60),
            "the rest of the log is read",
            || {
                if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(100)) {
                    offsets_read.push(rdkafka::Message::offset(&msg));
                }
                offsets_read.len() >= 50
            },
        )
    });
    assert_eq!(offsets_read, (50..100).collect::<Vec<i64>>());

    // Below the current start: nothing changes; beyond the end: refused.
    offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("trimmed", 0, Offset::Offset(10))
        .unwrap();
    let result = admin(&broker)
        .delete_records(&offsets, &AdminOptions::new())
        .await
        .expect("delete records");
    assert_eq!(result.elements()[0].offset(), Offset::Offset(50));
    offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("trimmed", 0, Offset::Offset(1_000))
        .unwrap();
    let result = admin(&broker)
        .delete_records(&offsets, &AdminOptions::new())
        .await
        .expect("delete records");
    assert!(
        result.elements()[0].error().is_err(),
        "beyond the end is refused"
    );

    // The new start survives a restart (it is committed state).
    let broker = broker.restart_killed();
    assert_eq!(
        tokio::task::block_in_place(|| watermarks(&broker, "trimmed")),
        (50, 100)
    );
}

/// Goal: `retention.ms` removes chunks whose records are all older than the retention and
/// nothing else. Method: records with 2023 timestamps and a retention of one hour go at the
/// next retention pass (the broker checks every 100 ms); records produced afterwards with
/// current timestamps stay and are read unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_ms_removes_only_expired_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--retention-check-interval-ms", "100"]);
    create(&broker, "aged", &[("retention.ms", "3600000")]).await;
    // `record` gives 2023 timestamps: expired under a one-hour retention.
    let old: Vec<Rec> = (0..60).map(|i| record("none", i)).collect();
    produce_in_chunks(&broker, "aged", &old, 3).await;
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), "expired records removed", || {
            watermarks(&broker, "aged") == (60, 60)
        })
    });
    assert_eq!(broker.metric("strato_index_entries"), 0.0);

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let fresh: Vec<Rec> = (0..40)
        .map(|i| Rec {
            timestamp: Some(now_ms),
            ..record("none", i)
        })
        .collect();
    let landed = produce_in_chunks(&broker, "aged", &fresh, 2).await;
    assert!(broker.metric("strato_index_entries") >= 1.0);
    let consumed = tokio::task::block_in_place(|| {
        let consumer = common::kafka::consumer(&broker.bootstrap(), &[]);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("aged", 0, Offset::Offset(60))
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut n = 0;
        wait_until(Duration::from_secs(60), "fresh records read", || {
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                n += 1;
            }
            n >= landed.len()
        });
        n
    });
    assert_eq!(consumed, 40);
    assert_eq!(
        tokio::task::block_in_place(|| watermarks(&broker, "aged")),
        (60, 100)
    );
}

/// Goal: garbage collection deletes the objects that retention left unreferenced, once
/// they are older than the grace period, and never an object still referenced. Method:
/// expired records go by retention, then their objects go; fresh records written
/// afterwards outlive many collection passes beyond the grace period and stay readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_deletes_only_unreferenced_objects() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--retention-check-interval-ms",
            "100",
            "--gc-interval-ms",
            "100",
            "--gc-grace-ms",
            "1000",
        ],
    );
    let data_dir = dir.path().join("data");
    create(&broker, "collected", &[("retention.ms", "3600000")]).await;
    let old: Vec<Rec> = (0..60).map(|i| record("none", i)).collect();
    produce_in_chunks(&broker, "collected", &old, 3).await;
    assert!(segment_files(&data_dir).len() >= 3, "one object per flush");
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), "expired records removed", || {
            watermarks(&broker, "collected") == (60, 60)
        });
        wait_until(Duration::from_secs(30), "their objects collected", || {
            segment_files(&data_dir).is_empty()
        });
    });
    assert!(broker.metric("strato_gc_deleted_objects_total") >= 3.0);
    assert!(broker.metric("strato_object_store_requests_total{operation=\"delete\"}") >= 3.0);

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let fresh: Vec<Rec> = (0..40)
        .map(|i| Rec {
            timestamp: Some(now_ms),
            ..record("none", i)
        })
        .collect();
    produce_in_chunks(&broker, "collected", &fresh, 2).await;
    let kept = segment_files(&data_dir);
    assert!(kept.len() >= 2);
    // Twenty passes at 100 ms: the fresh objects are then older than the 1 s grace.
    let passes = broker.metric("strato_gc_passes_total");
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(30),
            "twenty more collection passes",
            || broker.metric("strato_gc_passes_total") >= passes + 20.0,
        )
    });
    assert_eq!(segment_files(&data_dir), kept, "referenced objects stay");
    // And their records are served (after a restart, so from the objects, not the cache).
    let broker = broker.restart_killed();
    let consumer = common::kafka::consumer(&broker.bootstrap(), &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("collected", 0, Offset::Offset(60))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut n = 0;
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "fresh records read", || {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(_)) => n += 1,
                Some(Err(err)) => panic!("read failed: {err}"),
                None => {}
            }
            n >= 40
        })
    });
}

/// Goal: deleting a topic removes it at once (metadata, reads, groups' committed offsets)
/// and its objects eventually; the name can be used again and starts from offset 0, without
/// the old offsets. Method: librdkafka's admin client and a group consumer's commit; the
/// object files are counted in the file:// store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_topics_go_at_once_and_their_objects_eventually() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &["--gc-interval-ms", "100", "--gc-grace-ms", "1000"],
    );
    let data_dir = dir.path().join("data");
    create(&broker, "doomed", &[]).await;
    let records: Vec<Rec> = (0..50).map(|i| record("none", i)).collect();
    produce_in_chunks(&broker, "doomed", &records, 5).await;
    assert!(!segment_files(&data_dir).is_empty());
    let group = common::kafka::consumer(&broker.bootstrap(), &[("group.id", "doomed-readers")]);
    let mut at_40 = TopicPartitionList::new();
    at_40
        .add_partition_offset("doomed", 0, Offset::Offset(40))
        .unwrap();
    let committed = |group: &rdkafka::consumer::BaseConsumer| {
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition("doomed", 0);
        tokio::task::block_in_place(|| {
            group
                .committed_offsets(wanted, Duration::from_secs(10))
                .expect("committed offsets")
                .find_partition("doomed", 0)
                .expect("partition 0")
                .offset()
        })
    };
    tokio::task::block_in_place(|| {
        group
            .commit(&at_40, rdkafka::consumer::CommitMode::Sync)
            .expect("commit")
    });
    assert_eq!(committed(&group), Offset::Offset(40));

    for result in admin(&broker)
        .delete_topics(&["doomed"], &AdminOptions::new())
        .await
        .expect("delete topics")
    {
        result.expect("topic deleted");
    }
    // Gone from metadata at once.
    let consumer = common::kafka::consumer(&broker.bootstrap(), &[]);
    let metadata = tokio::task::block_in_place(|| {
        consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata")
    });
    assert!(metadata.topics().iter().all(|t| t.name() != "doomed"));
    // Its objects go after the grace period.
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(30),
            "the topic's objects collected",
            || segment_files(&data_dir).is_empty(),
        )
    });
    // The name starts afresh.
    create(&broker, "doomed", &[]).await;
    let again: Vec<Rec> = (0..10).map(|i| record("none", i)).collect();
    let landed = produce_in_chunks(&broker, "doomed", &again, 1).await;
    assert_eq!(
        landed.keys().map(|(_, o)| *o).collect::<Vec<_>>(),
        (0..10).collect::<Vec<i64>>()
    );
    assert_eq!(
        tokio::task::block_in_place(|| watermarks(&broker, "doomed")),
        (0, 10)
    );
    assert_eq!(
        committed(&group),
        Offset::Invalid,
        "the group's offset of the deleted topic went with it"
    );
}
