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
