//! The log in a real S3 bucket (LocalStack, started by scripts/test.sh): produce, consume
//! and restart on S3; segment objects in the bucket decode with `strato segment dump`; the
//! object store failing for a while (a fault-injecting proxy in front of LocalStack) loses no
//! acknowledged record and duplicates none.

mod common;

use std::process::Command;
use std::time::Duration;

use common::kafka::{Rec, consume_all, create_topic, produce_all, producer, record};
use common::proxy::FaultProxy;
use common::{Broker, s3};

fn s3_args(bucket: &str, endpoint: &str) -> Vec<String> {
    vec![
        "--object-store".to_string(),
        format!("s3://{bucket}/cluster-a"),
        "--s3-endpoint".to_string(),
        endpoint.to_string(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Goal: every codec's records go through S3 segments and come back identical, also after
/// kill -9 (the log is in the bucket, the metadata in the data dir); a segment object in
/// the bucket decodes with `strato segment dump --object-store s3://...`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_restart_on_s3() {
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let extra = s3_args(&bucket, &endpoint);
    let broker = Broker::start(dir.path(), &args(&extra));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "on-s3", 3).await;
    let mut landed = std::collections::BTreeMap::new();
    for codec in ["none", "zstd", "lz4"] {
        let p = producer(
            &bootstrap,
            &[("compression.codec", codec), ("enable.idempotence", "true")],
        );
        let records: Vec<Rec> = (0..2_000).map(|i| record(codec, i)).collect();
        landed.extend(produce_all(&p, "on-s3", &records).await);
    }
    assert_eq!(consume_all(&bootstrap, "on-s3", 3, landed.len()), landed);

    let key = broker
        .log_text()
        .lines()
        .find_map(|l| l.split("segment=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|k| k.trim_matches('"').to_string())
        .expect("the broker logged a flushed segment");
    let broker = broker.restart_killed();
    assert_eq!(
        consume_all(&broker.bootstrap(), "on-s3", 3, landed.len()),
        landed
    );
    drop(broker);

    let out = common::run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_strato")).args([
            "segment",
            "dump",
            "--object-store",
            &format!("s3://{bucket}/cluster-a"),
            "--s3-endpoint",
            &endpoint,
            &key,
        ]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "segment dump from S3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("segment: ") && text.contains("chunk 0:"),
        "{text}"
    );
}

/// Goal: PUTs signed without hashing their body (`UNSIGNED-PAYLOAD`: the default over HTTPS,
/// forced here over LocalStack's plain HTTP with `AWS_UNSIGNED_PAYLOAD=true`) are what the
/// broker sends (seen by a proxy in front of LocalStack) and a real S3 implementation
/// accepts; the records come back identical, read from the bucket after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_payloads_are_stored_and_read_back() {
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint);
    let proxy = FaultProxy::start(&s3::host_port(&endpoint));
    proxy.look_for(b"UNSIGNED-PAYLOAD");
    let dir = tempfile::tempdir().unwrap();
    let extra = s3_args(&bucket, &proxy.endpoint());
    let broker = Broker::start_with_env(
        dir.path(),
        &args(&extra),
        &[("AWS_UNSIGNED_PAYLOAD", "true")],
    );
    create_topic(&broker.bootstrap(), "unsigned", 2).await;
    let p = producer(&broker.bootstrap(), &[("enable.idempotence", "true")]);
    let records: Vec<Rec> = (0..1_000).map(|i| record("unsigned", i)).collect();
    let landed = produce_all(&p, "unsigned", &records).await;
    assert_eq!(landed.len(), records.len());
    assert!(
        proxy.chunks_with_needle() > 0,
        "no request with an unsigned payload reached S3"
    );
    // Restarted, the broker's chunk cache is empty: every record is read from the bucket.
    let broker = broker.restart_killed();
    assert_eq!(
        consume_all(&broker.bootstrap(), "unsigned", 2, landed.len()),
        landed
    );
}

/// Goal: S3 unreachable for a while (every connection cut, new ones refused) while an
/// idempotent producer streams: produce requests fail with retriable errors and are never
/// acknowledged before their segment is stored; once S3 is back the producer finishes and
/// every acknowledged record is present exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_outage_loses_and_duplicates_nothing() {
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint);
    let proxy = FaultProxy::start(&s3::host_port(&endpoint));
    let dir = tempfile::tempdir().unwrap();
    let extra = s3_args(&bucket, &proxy.endpoint());
    let broker = Broker::start(dir.path(), &args(&extra));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "outage", 2).await;
    let p = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "120000"),
        ],
    );
    let before: Vec<Rec> = (0..1_000).map(|i| record("before", i)).collect();
    let mut landed = produce_all(&p, "outage", &before).await;

    proxy.down();
    let during: Vec<Rec> = (0..1_000).map(|i| record("during", i)).collect();
    let pending = {
        let p = p.clone();
        tokio::spawn(async move { produce_all(&p, "outage", &during).await })
    };
    common::wait_until(
        Duration::from_secs(60),
        "a failed upload in the broker log",
        || broker.log_text().contains("failed to upload segment"),
    );
    proxy.up();
    let during_landed = tokio::time::timeout(Duration::from_secs(120), pending)
        .await
        .expect("producer finished after S3 came back")
        .unwrap();
    landed.extend(during_landed);
    let after: Vec<Rec> = (0..500).map(|i| record("after", i)).collect();
    landed.extend(produce_all(&p, "outage", &after).await);
    assert_eq!(landed.len(), 2_500);
    assert_eq!(
        consume_all(&bootstrap, "outage", 2, landed.len()),
        landed,
        "every acknowledged record exactly once, in order"
    );
}

/// Goal: garbage collection works against S3 (LIST under the prefix, DELETE): records
/// removed by DeleteRecords free their objects, which go once older than the grace;
/// objects still referenced stay. Method: the broker's LIST/DELETE counters and the
/// readability of the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_on_s3() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::{Offset, TopicPartitionList};

    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let mut extra = s3_args(&bucket, &endpoint);
    extra.extend(
        [
            "--gc-interval-ms",
            "200",
            "--gc-grace-ms",
            "1000",
            "--flush-interval-ms",
            "5",
        ]
        .map(String::from),
    );
    let broker = Broker::start(dir.path(), &args(&extra));
    create_topic(&broker.bootstrap(), "gc-s3", 1).await;
    let p = producer(&broker.bootstrap(), &[]);
    let mut landed = std::collections::BTreeMap::new();
    for chunk in (0..300)
        .map(|i| record("none", i))
        .collect::<Vec<_>>()
        .chunks(100)
    {
        landed.extend(produce_all(&p, "gc-s3", chunk).await);
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("gc-s3", 0, Offset::Offset(200))
        .unwrap();
    admin
        .delete_records(&offsets, &AdminOptions::new())
        .await
        .expect("delete records");
    tokio::task::block_in_place(|| {
        common::wait_until(Duration::from_secs(60), "freed objects deleted", || {
            broker.metric("strato_gc_deleted_objects_total") >= 1.0
        })
    });
    assert!(broker.metric("strato_object_store_requests_total{operation=\"list\"}") >= 1.0);
    // What is left is still read from the bucket (after a restart: nothing cached).
    let broker = broker.restart_killed();
    let rest: std::collections::BTreeMap<(i32, i64), Rec> =
        landed.into_iter().filter(|((_, o), _)| *o >= 200).collect();
    let consumer = common::kafka::consumer(&broker.bootstrap(), &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("gc-s3", 0, Offset::Offset(200))
        .unwrap();
    rdkafka::consumer::Consumer::assign(&consumer, &tpl).unwrap();
    let mut got = 0;
    tokio::task::block_in_place(|| {
        common::wait_until(Duration::from_secs(60), "the kept records read", || {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(_)) => got += 1,
                Some(Err(err)) => panic!("read failed: {err}"),
                None => {}
            }
            got >= rest.len()
        })
    });
    assert_eq!(got, 100);
}
