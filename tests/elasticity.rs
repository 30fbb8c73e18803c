//! Elasticity (issue 23): brokers come and go under a steady producer and a consumer group
//! with nothing to move but leadership. The cluster goes 1 → 4 → 1 brokers by planned moves
//! (a broker started; a broker stopped with SIGTERM) and then loses one by kill -9
//! (tests/common/elasticity.rs). What must hold: no acknowledged record lost, none failed,
//! the group member receives every acknowledged record and sees no error librdkafka does
//! not recover from by itself, and after every step the partitions are spread within one of
//! even over the running brokers. The timings are printed (and measured as a benchmark by
//! `cargo bench --bench elasticity`), not asserted.

mod common;

use common::elasticity::{Scenario, balanced, run, table};

#[test]
fn scaling_1_to_4_to_1_and_a_crash_lose_nothing_and_stay_balanced() {
    let scenario = Scenario::default();
    let outcome = run(&scenario, "/strato/elastic", &[]);
    eprintln!("{}", table(&outcome));
    assert!(
        outcome.failed.is_empty(),
        "records not acknowledged: {:?}",
        &outcome.failed[..outcome.failed.len().min(10)]
    );
    assert!(
        outcome.acknowledged.len() > 10 * scenario.rate as usize,
        "the producer ran throughout: {} acknowledged",
        outcome.acknowledged.len()
    );
    // Offsets per partition are dense from 0: nothing acknowledged was overwritten, and
    // (idempotence) nothing written twice.
    let mut per_partition = std::collections::BTreeMap::<i32, Vec<i64>>::new();
    for (partition, offset) in outcome.acknowledged.keys() {
        per_partition.entry(*partition).or_default().push(*offset);
    }
    for (partition, offsets) in &per_partition {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {partition}: acknowledged offsets are 0..n"
        );
    }
    let consumed: std::collections::BTreeSet<(i32, i64)> =
        outcome.consumed.iter().copied().collect();
    let missing: Vec<_> = outcome
        .acknowledged
        .keys()
        .filter(|k| !consumed.contains(k))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never consumed: {missing:?}"
    );
    let fatal: Vec<_> = outcome
        .consumer_errors
        .iter()
        .filter(|(_, transient)| !transient)
        .collect();
    assert!(
        fatal.is_empty(),
        "consumer errors beyond retriables: {fatal:?}"
    );
    assert_eq!(outcome.steps.len(), 2 * (scenario.peak - 1) + 2);
    for step in &outcome.steps {
        assert!(
            balanced(&step.led, scenario.partitions as u64),
            "{}: partitions per broker {:?}",
            step.name,
            step.led
        );
    }
    let brokers: Vec<usize> = outcome.steps.iter().map(|s| s.led.len()).collect();
    assert_eq!(brokers, [2, 3, 4, 3, 2, 1, 2, 1]);
}

/// Goal: a new broker takes its share only once it is ready: while its object store does
/// not answer (a fault proxy in front of LocalStack, down), it is listed as `starting`,
/// owns nothing and the serving broker keeps every partition; once the store answers, it
/// serves and takes half. A producer streams throughout without an error.
#[test]
fn a_new_broker_takes_partitions_only_once_its_object_store_answers() {
    use common::cluster::{Cluster, Stream};
    use common::proxy::FaultProxy;
    use common::{s3, wait_until};
    use std::time::Duration;

    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint);
    let objects = format!("s3://{bucket}/elastic");
    let mut cluster = Cluster::start_with_store(0, "/strato/elastic-ready", Some(&objects), &[]);
    cluster.add_with(&["--s3-endpoint", &endpoint]);
    let first = cluster.brokers[&0].bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::kafka::create_topic(&first, "ready", 8));
    let stream = Stream::start(first.clone(), "ready");
    stream.wait_progress(200);

    let proxy = FaultProxy::start(&s3::host_port(&endpoint));
    proxy.down();
    let slot = cluster.add_with(&["--s3-endpoint", &proxy.endpoint()]);
    let state_of = |slot: usize| -> String {
        let (_, body) = cluster.brokers[&0].http_get("/api/v1/cluster");
        let cluster_json: serde_json::Value = serde_json::from_str(&body).unwrap();
        // Matched by port: brokers register their listener's address.
        let port = cluster.brokers[&slot].addr.port();
        cluster_json["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["port"] == port)
            .map(|b| b["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    wait_until(
        Duration::from_secs(30),
        "the new broker to try its object store",
        || {
            cluster.brokers[&slot]
                .log_text()
                .contains("not ready to serve yet")
        },
    );
    assert_eq!(state_of(slot), "starting");
    stream.wait_progress(300);
    assert_eq!(
        cluster.led()[&0],
        8,
        "the serving broker keeps every partition"
    );
    assert_eq!(cluster.led()[&slot], 0, "a starting broker leads nothing");
    let (status, _) = cluster.brokers[&slot].http_get("/ready");
    assert_eq!(status, 503, "/ready agrees it is not ready");

    proxy.up();
    wait_until(Duration::from_secs(30), "the new broker to serve", || {
        state_of(slot) == "serving"
    });
    wait_until(Duration::from_secs(30), "half the partitions each", || {
        cluster.led().values().all(|n| *n == 4)
    });
    stream.wait_progress(300);
    let landed = stream.finish();
    let consumed = common::kafka::consume_all(&first, "ready", 8, landed.len());
    assert_eq!(consumed, landed);
}
