//! Elasticity of a cluster under steady load (issue 23): the scenario of
//! tests/common/elasticity.rs — a paced idempotent librdkafka producer and a consumer group
//! member while the cluster goes 1 → 4 → 1 brokers by planned moves and then loses one by
//! kill -9, on a local etcd and a shared object store directory — run
//! `STRATO_BENCH_RUNS` times (default 3), each printed as a Markdown table of the steps:
//! how long leadership took to settle evenly, and the acknowledgement latency of the records
//! sent during each step (its maximum bounds how long a partition was unavailable).
//!
//! Run: `cargo bench --bench elasticity` with the test environment (`eval "$(scripts/test.sh
//! --env)"`, for etcd). Env: `STRATO_BENCH_RATE` (records/s, default 1000),
//! `STRATO_BENCH_PARTITIONS` (default 12). Results go to docs/BENCHMARKS.md. A benchmark,
//! not a test: nothing here asserts a time.

#[path = "../tests/common/mod.rs"]
mod tests_common;

use tests_common::elasticity::{Scenario, run, table};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let runs = env_or("STRATO_BENCH_RUNS", 3);
    let scenario = Scenario {
        rate: env_or("STRATO_BENCH_RATE", 1_000) as u32,
        partitions: env_or("STRATO_BENCH_PARTITIONS", 12) as i32,
        ..Scenario::default()
    };
    println!(
        "elasticity: {} partitions, {} records/s of {} bytes, dwell {:?}, peak {} brokers",
        scenario.partitions, scenario.rate, scenario.value_bytes, scenario.dwell, scenario.peak
    );
    for i in 0..runs {
        let outcome = run(&scenario, &format!("/strato/bench-elastic-{i}"), &[]);
        println!("\nrun {} of {runs}\n\n{}", i + 1, table(&outcome));
        println!(
            "failed records: {}; consumer errors: {} ({} not retriable)",
            outcome.failed.len(),
            outcome.consumer_errors.len(),
            outcome.consumer_errors.iter().filter(|(_, t)| !t).count()
        );
    }
}
