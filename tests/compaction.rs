//! Compaction: runs of small chunks (one per flush) are merged into per-partition objects,
//! the index shrinks, the old objects are collected, and every record is still read exactly
//! once and in order — from the cache and, after a restart, from the new objects.

mod common;

use std::time::Duration;

use common::kafka::{Rec, consume_all, create_topic, produce_all, producer, record};
use common::{Broker, segment_files, wait_until};

/// Goal: compaction bounds the index while the data stays identical. Method: 40 separate
/// sends to 2 partitions make 80 index entries (one per flush and partition); compaction
/// runs every 100 ms (also while the sends go on), merges any run of 4 or more small chunks
/// and keeps the newest 2 entries of each partition, so the index drops to at most 5 entries
/// a partition; garbage collection (1 s grace) then deletes the objects
/// no entry refers to; the topic reads back identical before and after a kill -9 restart.
/// Compacted chunks are written in frames of 4 KiB: the cold read after the restart fetches
/// them frame by frame, each byte of the stored log once.
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
        "--compaction-frame-bytes",
        "4096",
    ];
    args.extend_from_slice(extra);
    let broker = Broker::start(dir.path(), &args);
    create_topic(&broker.bootstrap(), "compacted", 2).await;
    let records: Vec<Rec> = (0..1_000).map(|i| record("zstd", i)).collect();
    let landed = produce_in_sends(&broker, "compacted", &records).await;
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
    // Per-topic gauges agree with the total (both read from one scrape: compaction may
    // still be merging).
    let (_, scrape) = broker.http_get("/metrics");
    let value = |series: &str| -> f64 {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
    };
    assert_eq!(
        value("strato_topic_index_entries{topic=\"compacted\"} "),
        value("strato_index_entries ")
    );
    assert!(broker.metric("strato_topic_stored_bytes{topic=\"compacted\"}") > 0.0);

    // Cold: the compacted objects are read back from the object store.
    let broker = broker.restart_killed();
    let consumed =
        tokio::task::block_in_place(|| consume_all(&broker.bootstrap(), "compacted", 2, 1_000));
    assert_eq!(consumed, landed, "and after a restart");
    let gets = broker.metric("strato_object_store_requests_total{operation=\"get\"}");
    let get_bytes = broker.metric("strato_object_store_bytes_total{direction=\"get\"}");
    let stored = broker.metric("strato_topic_stored_bytes{topic=\"compacted\"}");
    let entries = broker.metric("strato_index_entries");
    assert!(
        gets > entries,
        "compacted chunks are read frame by frame: {gets} GETs for {entries} index entries"
    );
    // Flush objects not compacted yet may be read whole (both partitions' chunks are asked
    // for), footers and chunks replaced by compaction included: ranged reads alone must
    // not fetch a stored byte twice.
    let whole_bytes = broker.metric("strato_whole_object_read_bytes_total");
    let ranged_bytes = get_bytes - whole_bytes;
    assert!(
        ranged_bytes > 0.0 && ranged_bytes <= stored,
        "each stored byte is fetched by range at most once: {ranged_bytes} bytes fetched by \
         range ({whole_bytes} by whole-object reads), {stored} stored"
    );
}

/// Goal: on the local default (`--flush-compression none`) a flush stores the producer's
/// uncompressed batches as they came and compaction compresses them, once; the records read
/// back the same from the flushed chunks and from the compacted one. Method: 1,000
/// compressible records in uncompressed batches, 40 sends, with compaction off: the stored
/// bytes are at least the values' bytes; restarted with compaction every 100 ms, once the
/// index is compacted the stored bytes are under a third of that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_store_batches_as_sent_and_compaction_compresses_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--compaction-interval-ms", "3600000"]);
    create_topic(&broker.bootstrap(), "deferred", 1).await;
    let records: Vec<Rec> = (0..1_000).map(|i| record("none", i)).collect();
    let landed = produce_in_sends(&broker, "deferred", &records).await;
    let value_bytes: usize = records
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(Vec::len)
        .sum();
    let stored = |broker: &Broker| broker.metric("strato_topic_stored_bytes{topic=\"deferred\"}");
    let flushed = stored(&broker);
    assert!(
        flushed >= value_bytes as f64,
        "flushed chunks hold the batches as sent: {flushed} bytes stored for {value_bytes} \
         bytes of values"
    );
    let consumed =
        tokio::task::block_in_place(|| consume_all(&broker.bootstrap(), "deferred", 1, 1_000));
    assert_eq!(consumed, landed, "every record from the flushed chunks");

    let broker = broker.restart_with(&["--compaction-interval-ms", "100"]);
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "the index is compacted", || {
            broker.metric("strato_index_entries") <= 5.0
        });
    });
    let compacted = stored(&broker);
    assert!(
        compacted * 3.0 < flushed,
        "compaction compresses: {compacted} bytes stored after it, {flushed} before"
    );
    let consumed =
        tokio::task::block_in_place(|| consume_all(&broker.bootstrap(), "deferred", 1, 1_000));
    assert_eq!(consumed, landed, "every record from the compacted chunk");
}

/// Produces `records` 25 at a time, each send acknowledged before the next (a flush, so an
/// index entry, per send); returns where each landed.
async fn produce_in_sends(
    broker: &Broker,
    topic: &str,
    records: &[Rec],
) -> std::collections::BTreeMap<(i32, i64), Rec> {
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    let mut landed = std::collections::BTreeMap::new();
    for chunk in records.chunks(25) {
        landed.extend(produce_all(&p, topic, chunk).await);
    }
    landed
}

/// Goal: a consumer reading while compaction and garbage collection run sees every record
/// once and in order, and a broker killed while it compacts loses nothing and leaves no
/// garbage once the grace period has passed. Method: a consumer thread reads the topic as
/// it is written (checking dense offsets); once compaction has run at least once the broker
/// is killed at once (in the middle of the next passes) and restarted; the topic is read
/// again; after more collection passes than the grace needs, no more objects exist than
/// index entries refer to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_and_crashing_during_compaction_loses_nothing() {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Message;

    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--compaction-interval-ms",
        "50",
        "--gc-interval-ms",
        "100",
        "--gc-grace-ms",
        "1000",
    ];
    let broker = Broker::start(dir.path(), &args);
    let data_dir = dir.path().join("data");
    create_topic(&broker.bootstrap(), "busy", 2).await;

    // A consumer follows the topic while it is written and compacted.
    let reader = {
        let bootstrap = broker.bootstrap();
        std::thread::spawn(move || {
            let consumer = common::kafka::consumer(&bootstrap, &[]);
            let mut tpl = rdkafka::TopicPartitionList::new();
            for p in 0..2 {
                tpl.add_partition_offset("busy", p, rdkafka::Offset::Beginning)
                    .unwrap();
            }
            consumer.assign(&tpl).unwrap();
            let mut next = [0i64; 2];
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while next.iter().sum::<i64>() < 1_000 && std::time::Instant::now() < deadline {
                if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(100)) {
                    let p = msg.partition() as usize;
                    assert_eq!(msg.offset(), next[p], "dense, in order, once");
                    next[p] += 1;
                }
            }
            next.iter().sum::<i64>()
        })
    };
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    let records: Vec<Rec> = (0..1_000).map(|i| record("lz4", i)).collect();
    let mut landed = std::collections::BTreeMap::new();
    for chunk in records.chunks(20) {
        landed.extend(produce_all(&p, "busy", chunk).await);
    }
    drop(p);
    assert_eq!(
        tokio::task::block_in_place(|| reader.join().expect("reader thread")),
        1_000,
        "the concurrent reader saw every record"
    );

    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "compaction has run", || {
            broker.log_text().contains("compacted chunks")
        })
    });
    let broker = broker.restart_killed();
    let consumed =
        tokio::task::block_in_place(|| consume_all(&broker.bootstrap(), "busy", 2, 1_000));
    assert_eq!(consumed, landed, "nothing lost or doubled by the crash");
    let passes = broker.metric("strato_gc_passes_total");
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(60),
            "compaction settles and garbage goes",
            || {
                broker.metric("strato_gc_passes_total") >= passes + 20.0
                    && segment_files(&data_dir).len() as f64
                        <= broker.metric("strato_index_entries")
            },
        )
    });
}

/// Goal: `strato cluster status` reports what is stored: brokers, each partition's log range
/// and index entries, and the objects referenced and unreferenced. Method: a broker on etcd
/// (the status reads etcd while the broker runs) with a file:// object store; its JSON output
/// is checked against what was produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_reports_storage() {
    let etcd = strato_metadata::testing::etcd_server::EtcdServer::start();
    let url = etcd.url("/strato/status");
    let dir = tempfile::tempdir().unwrap();
    let objects = format!("file://{}", dir.path().join("objects").display());
    let broker = Broker::start(
        dir.path(),
        &["--metadata", &url, "--object-store", &objects],
    );
    create_topic(&broker.bootstrap(), "reported", 2).await;
    let p = producer(&broker.bootstrap(), &[]);
    let records: Vec<Rec> = (0..100).map(|i| record("none", i)).collect();
    for chunk in records.chunks(25) {
        produce_all(&p, "reported", chunk).await;
    }
    let out = common::run_with_timeout(
        std::process::Command::new(env!("CARGO_BIN_EXE_strato")).args([
            "cluster",
            "status",
            "--metadata",
            &url,
            "--object-store",
            &objects,
            "--output",
            "json",
        ]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["brokers"].as_array().unwrap().len(), 1, "{status}");
    let partitions = status["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2);
    let total: i64 = partitions
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap() - p["log_start_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 100);
    assert!(partitions.iter().all(|p| p["leader"].is_number()));
    let entries: u64 = partitions
        .iter()
        .map(|p| p["index_entries"].as_u64().unwrap())
        .sum();
    assert_eq!(status["index_entries"].as_u64(), Some(entries));
    assert!(entries >= 4, "one entry per flush and partition: {status}");
    assert_eq!(status["objects_unreferenced"].as_u64(), Some(0), "{status}");
    assert!(status["objects_referenced"].as_u64().unwrap() >= 4);
}

/// Goal (issue 9): under a sustained produce load, the metadata store's keys and the
/// bucket's objects stay bounded while everything retained stays readable. Method: a real
/// etcd; every threshold compressed in time (compaction, garbage collection and retention
/// passes every 200 ms, a 1 s grace, `retention.bytes` of 64 KiB per partition); one
/// producer sends 50-record batches back to back for 24 s, each its own flush: a new object
/// and an index entry per partition every few milliseconds. Etcd keys and segment objects
/// are counted every second. Without compaction, retention and collection both would grow
/// with the flushes (at least an object and two keys each); the test checks that over the
/// last two thirds of the samples both grow by less than a tenth of the flush rate (a
/// least-squares slope: the counts saw-tooth between passes), peak far below the number of
/// flushes, and that the retained records then read back once, in order, as produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_load_keeps_keys_and_objects_bounded() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use strato_metadata::MetadataStore;

    const LOAD: Duration = Duration::from_secs(24);
    let etcd = strato_metadata::testing::etcd_server::EtcdServer::start();
    let url = etcd.url("/strato/sustained");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let broker = Broker::start(
        dir.path(),
        &[
            "--metadata",
            &url,
            "--compaction-interval-ms",
            "200",
            "--compaction-target-bytes",
            "1048576",
            "--gc-interval-ms",
            "200",
            "--gc-grace-ms",
            "1000",
            "--retention-check-interval-ms",
            "200",
        ],
    );
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    // Test records carry 2023 timestamps: time-based retention is off, size-based is on.
    let topic = NewTopic::new("steady", 2, TopicReplication::Fixed(1))
        .set("retention.ms", "-1")
        .set("retention.bytes", "65536");
    for result in admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.expect("topic created");
    }
    let store = strato_metadata::etcd::EtcdStore::connect(
        strato_metadata::etcd::EtcdConfig::from_url(&url).unwrap(),
    )
    .await
    .unwrap();

    // (etcd keys, segment objects) once a second while the load runs.
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let stop = stop.clone();
        let data_dir = data_dir.clone();
        tokio::spawn(async move {
            let mut samples: Vec<(usize, usize)> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return samples,
                    _ = tick.tick() => {}
                }
                let keys = store.list_all("").await.unwrap().len();
                samples.push((keys, segment_files(&data_dir).len()));
            }
        })
    };
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    let mut landed = std::collections::BTreeMap::new();
    let started = std::time::Instant::now();
    let mut i = 0;
    while started.elapsed() < LOAD {
        let batch: Vec<Rec> = (i..i + 50).map(|n| record("none", n)).collect();
        landed.extend(produce_all(&p, "steady", &batch).await);
        i += 50;
    }
    drop(p);
    stop.cancel();
    let samples = sampler.await.unwrap();
    let flushes = broker.metric("strato_flushes_total{result=\"committed\"}");

    // Growth per second over the last two thirds (least squares); unbounded growth would be
    // at least one object and two index entries per flush.
    let flush_rate = flushes / LOAD.as_secs_f64();
    let tail = &samples[samples.len() / 3..];
    let slope = |value: fn(&(usize, usize)) -> usize| {
        let n = tail.len() as f64;
        let mean_x = (n - 1.0) / 2.0;
        let mean_y = tail.iter().map(|s| value(s) as f64).sum::<f64>() / n;
        let (mut num, mut den) = (0.0, 0.0);
        for (x, s) in tail.iter().enumerate() {
            num += (x as f64 - mean_x) * (value(s) as f64 - mean_y);
            den += (x as f64 - mean_x).powi(2);
        }
        num / den
    };
    let (keys_slope, objects_slope) = (slope(|s| s.0), slope(|s| s.1));
    let keys_peak = tail.iter().map(|s| s.0).max().unwrap();
    let objects_peak = tail.iter().map(|s| s.1).max().unwrap();
    let report = format!(
        "{flushes} flushes ({flush_rate:.0}/s), {} records; growth per second: {keys_slope:.2} keys, \
         {objects_slope:.2} objects; samples (etcd keys, objects): {samples:?}",
        landed.len()
    );
    assert!(samples.len() >= 20 && flush_rate >= 10.0, "{report}");
    assert!(
        keys_slope < flush_rate / 10.0 && objects_slope < flush_rate / 10.0,
        "keys or objects still growing: {report}"
    );
    assert!(
        (keys_peak as f64) < flushes / 4.0 && (objects_peak as f64) < flushes / 4.0,
        "keys or objects not bounded well below the flushes: {report}"
    );
    eprintln!("{report}");

    // What retention kept reads back exactly as produced, from the log start on.
    let consumer = common::kafka::consumer(&broker.bootstrap(), &[]);
    let mut retained = 0;
    let mut starts = Vec::new();
    for partition in 0..2 {
        let (low, high) = tokio::task::block_in_place(|| {
            use rdkafka::consumer::Consumer;
            consumer
                .fetch_watermarks("steady", partition, Duration::from_secs(10))
                .unwrap()
        });
        assert!(low > 0, "retention removed the oldest records: {report}");
        retained += usize::try_from(high - low).unwrap();
        starts.push(low);
    }
    let consumed = tokio::task::block_in_place(|| {
        common::kafka::consume_from(&broker.bootstrap(), "steady", &starts, retained, &[])
    });
    assert_eq!(consumed.len(), retained);
    for (at, rec) in &consumed {
        assert_eq!(Some(rec), landed.get(at), "record at {at:?}");
    }
}

/// Goal: /metrics shows compaction's backlog (entries it would still merge, and the age of
/// the oldest) and the objects each topic references. Method: with compaction effectively
/// off (one pass per 10 minutes), 10 separate sends make 10 small chunks in 10 objects: the
/// backlog is 8 (the newest 2 are left alone) and its age grows past a second; after a
/// restart with compaction every 100 ms the backlog drains to 0 with no age, and the topic
/// references fewer objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_backlog_and_objects_per_topic_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--compaction-interval-ms", "600000"]);
    create_topic(&broker.bootstrap(), "lagging", 1).await;
    let p = producer(&broker.bootstrap(), &[]);
    let records: Vec<Rec> = (0..100).map(|i| record("none", i)).collect();
    for chunk in records.chunks(10) {
        produce_all(&p, "lagging", chunk).await;
    }
    drop(p);
    assert_eq!(broker.metric("strato_index_entries"), 10.0);
    assert_eq!(
        broker.metric("strato_topic_objects{topic=\"lagging\"}"),
        10.0
    );
    assert_eq!(broker.metric("strato_compaction_backlog_entries"), 8.0);
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), "the backlog ages", || {
            broker.metric("strato_compaction_lag_seconds") >= 1.0
        });
    });
    broker.stop();

    let broker = Broker::start(dir.path(), &["--compaction-interval-ms", "100"]);
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), "the backlog drains", || {
            broker.metric("strato_compaction_backlog_entries") == 0.0
                && broker.metric("strato_index_entries") == 3.0
        });
    });
    assert_eq!(broker.metric("strato_compaction_lag_seconds"), 0.0);
    assert_eq!(
        broker.metric("strato_topic_objects{topic=\"lagging\"}"),
        3.0
    );
}
