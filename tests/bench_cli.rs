//! `strato bench replay|produce|consume|e2e`: small runs against the embedded default
//! (file:// objects, a temporary data dir) and against a running broker (`--bootstrap`),
//! whose JSON reports agree with themselves. Nothing is asserted about speed: a benchmark
//! reports, it is not a test.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous for a debug build on two shared cores: the run takes a few seconds.
const RUN_DEADLINE: Duration = Duration::from_secs(300);
/// How long the benchmark may take to stop its broker after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(40);

fn strato() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strato"))
}

/// Waits for `child`; past `deadline` sends SIGTERM (so the benchmark stops the broker it
/// started), then SIGKILL, and fails.
fn wait_or_stop(child: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if let Some(status) = child.try_wait().expect("wait strato bench") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let end = Instant::now() + STOP_DEADLINE;
    while Instant::now() < end {
        if child.try_wait().expect("wait strato bench").is_some() {
            panic!("strato bench did not finish within {deadline:?}; stopped it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("strato bench ignored SIGTERM; killed it (its broker may be left running)");
}

/// Runs `strato bench replay` with `args` and `--output json`; its JSON report.
fn bench_json(args: &[&str]) -> serde_json::Value {
    bench_sub_json("replay", args)
}

/// Runs `strato bench <sub>` with `args` and `--output json`; its JSON report.
fn bench_sub_json(sub: &str, args: &[&str]) -> serde_json::Value {
    let mut child = strato()
        .args(["bench", sub, "--output", "json"])
        .args(args)
        .env_remove("STRATO_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strato bench");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).ok();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).ok();
        text
    });
    let status = wait_or_stop(&mut child, RUN_DEADLINE);
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    serde_json::from_str(&out).expect("one JSON document")
}

/// Goal: the report describes a cold replay of exactly what was written. Method: run
/// `strato bench replay --size-mib 4 --output json` and check its JSON: every record and
/// value byte written is replayed, the broker went to the object store (its cache was
/// dropped by the restart), and peak memory was measured.
#[test]
fn bench_replay_reports_a_cold_replay_of_what_it_wrote() {
    let report = bench_json(&["--size-mib", "4"]);

    assert_eq!(report["partitions"], 3);
    assert_eq!(report["compression"], "lz4");
    assert!(
        report["object_store"]
            .as_str()
            .unwrap()
            .starts_with("file://"),
        "{report}"
    );
    let (write, replay) = (&report["write"], &report["replay"]);
    let records = replay["records"].as_u64().unwrap();
    assert!(records > 0, "{report}");
    assert_eq!(records, write["records"].as_u64().unwrap(), "{report}");
    assert_eq!(records, 4 * 1024 * 1024 / 1000, "{report}");
    assert_eq!(replay["value_bytes"], write["value_bytes"], "{report}");
    assert_eq!(replay["wire_bytes"], write["wire_bytes"], "{report}");
    assert!(
        replay["object_store_gets"].as_u64().unwrap() > 0,
        "the cache was dropped, so chunks come from the store: {report}"
    );
    assert!(
        replay["object_store_get_bytes"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        replay["broker_peak_rss_bytes"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        write["broker_peak_rss_bytes"].as_u64().unwrap() > 0,
        "{report}"
    );
}

/// Goal: `--compact` replays a compacted topic. Method: 64 MiB (128 produce requests of one
/// 512 KiB batch: a few dozen flushes, so about a dozen chunks per partition) with a 16 MiB
/// compaction target; the report shows fewer index entries
/// after compaction than before, and the replay still returns every record written.
#[test]
fn bench_replay_compacts_before_replaying_when_asked() {
    let report = bench_json(&[
        "--size-mib",
        "64",
        "--compact",
        "--serve-arg=--compaction-target-bytes=16777216",
    ]);
    let compaction = &report["compaction"];
    let before = compaction["index_entries_before"].as_u64().unwrap();
    let after = compaction["index_entries_after"].as_u64().unwrap();
    assert!(after > 0 && after < before, "{report}");
    assert_eq!(
        report["replay"]["records"], report["write"]["records"],
        "{report}"
    );
}

#[test]
fn bench_replay_help_has_an_example_and_bad_flags_stop_it() {
    let out = strato()
        .args(["bench", "replay", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--size-mib",
        "--existing",
        "--compression",
        "--s3-latency-ms",
        "--data-dir",
        "--output",
        "Example: `strato bench replay",
    ] {
        assert!(help.contains(flag), "bench replay --help lacks {flag}");
    }
    // Refused before any broker starts.
    let out = strato()
        .args(["bench", "replay", "--s3-latency-ms", "30"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--s3-endpoint"), "{err}");
}

/// Every `latency_<p>_ms` with `prefix` of a phase: present, positive and ordered.
fn assert_latencies_ordered(phase: &serde_json::Value, prefix: &str) {
    let get = |name: &str| {
        phase[format!("{prefix}{name}_ms")]
            .as_f64()
            .unwrap_or_else(|| panic!("no {prefix}{name}_ms: {phase}"))
    };
    let (p50, p99, p999, max) = (get("p50"), get("p99"), get("p999"), get("max"));
    assert!(p50 > 0.0, "{phase}");
    assert!(p50 <= p99 && p99 <= p999 && p999 <= max, "{phase}");
}

/// The cost fields of a phase of a run on its own broker: the broker's CPU time, peak
/// memory and PUTs measured and positive (a produce flushes at least once), GETs counted,
/// the client's CPU time measured.
fn assert_own_broker_measured(phase: &serde_json::Value) {
    for field in [
        "broker_cpu_seconds",
        "broker_cpu_seconds_per_gib",
        "broker_peak_rss_bytes",
        "object_store_puts",
        "puts_per_gib",
    ] {
        let value = phase[field]
            .as_f64()
            .unwrap_or_else(|| panic!("no {field}: {phase}"));
        assert!(value > 0.0, "{field}: {phase}");
    }
    assert!(phase["object_store_gets"].is_u64(), "{phase}");
    assert!(phase["gets_per_gib"].is_f64(), "{phase}");
    // In clock ticks (10 ms), which a short phase of this process may not fill.
    assert!(
        phase["client_cpu_seconds"].as_f64().unwrap() >= 0.0,
        "{phase}"
    );
}

/// The producer's own account: every record produced was acknowledged, none failed.
fn assert_all_acked(phase: &serde_json::Value, records: u64) {
    assert_eq!(phase["records_produced"], records, "{phase}");
    assert_eq!(phase["records_acked"], records, "{phase}");
    assert_eq!(phase["errors"], 0, "{phase}");
    assert_eq!(phase["error_codes"], serde_json::json!({}), "{phase}");
    assert!(phase["requests"].as_u64().unwrap() > 0, "{phase}");
    assert!(
        phase["batches"].as_u64().unwrap() >= phase["requests"].as_u64().unwrap(),
        "{phase}"
    );
}

/// Goal: `bench produce` reports an idempotent, lingering producer that got every record
/// acknowledged, with per-record latency and the broker's cost. Method: 16 MiB of 1 KiB
/// records, lz4, over 3 partitions on the embedded default; the JSON report agrees with
/// itself.
#[test]
fn bench_produce_reports_every_record_acknowledged_and_the_broker_cost() {
    let report = bench_sub_json(
        "produce",
        &[
            "--size-mib",
            "16",
            "--partitions",
            "3",
            "--compression",
            "lz4",
        ],
    );
    assert_eq!(report["benchmark"], "produce");
    assert_eq!(report["partitions"], 3);
    assert_eq!(report["compression"], "lz4");
    assert_eq!(report["acks"], "all");
    assert_eq!(report["idempotent"], true);
    assert_eq!(report["broker"]["kind"], "own");
    assert!(
        report["consume"].is_null() && report["e2e"].is_null(),
        "{report}"
    );
    let produce = &report["produce"];
    let records = 16 * 1024 * 1024 / 1024;
    assert_all_acked(produce, records);
    assert_eq!(produce["records"], records, "{report}");
    assert_eq!(produce["value_bytes"], records * 1024, "{report}");
    let wire = produce["wire_bytes"].as_u64().unwrap();
    assert!(
        wire > 0 && wire < records * 1024,
        "lz4 shrinks the values: {report}"
    );
    assert!(
        produce["value_mb_per_s"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert_latencies_ordered(produce, "latency_");
    // Each record waited for its request's answer, and maybe in the queue before.
    assert_latencies_ordered(produce, "request_latency_");
    assert!(
        produce["request_latency_max_ms"].as_f64() <= produce["latency_max_ms"].as_f64(),
        "no request took longer than its records: {report}"
    );
    assert_own_broker_measured(produce);
}

/// Goal: `bench consume` reads back exactly what its produce phase wrote. Method: 32 MiB
/// over 2 partitions, then a read from offset 0 to the end offsets; records, value bytes and
/// batch bytes agree between the phases.
#[test]
fn bench_consume_reads_back_every_record_produced() {
    let report = bench_sub_json("consume", &["--size-mib", "32", "--partitions", "2"]);
    assert_eq!(report["benchmark"], "consume");
    let (produce, consume) = (&report["produce"], &report["consume"]);
    let records = 32 * 1024;
    assert_all_acked(produce, records);
    assert_eq!(consume["records"], records, "{report}");
    assert_eq!(consume["value_bytes"], produce["value_bytes"], "{report}");
    assert_eq!(
        consume["wire_bytes"], produce["wire_bytes"],
        "the broker returns the batches as produced: {report}"
    );
    assert_eq!(report["max_partition_fetch_bytes"], 1_048_576);
    assert_eq!(report["fetch_max_bytes"], 52_428_800);
    assert_latencies_ordered(produce, "latency_");
    assert_own_broker_measured(produce);
    for field in ["broker_cpu_seconds", "broker_cpu_seconds_per_gib"] {
        // The kernel counts CPU time in clock ticks (10 ms), which a short read may not fill.
        assert!(consume[field].as_f64().unwrap() >= 0.0, "{field}: {report}");
    }
    assert!(
        consume["broker_peak_rss_bytes"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(consume["object_store_gets"].is_u64(), "{report}");
}

/// Goal: `bench e2e` measures produce→consume latency of every record a paced producer
/// sent. Method: 300 records at the default 1000 records/s with linger 0 and a long-polling
/// consumer; every record is consumed once, and both latency sets are ordered.
#[test]
fn bench_e2e_reports_produce_to_consume_latency_of_every_record() {
    let report = bench_sub_json("e2e", &["--records", "300"]);
    assert_eq!(report["benchmark"], "e2e");
    assert_eq!(report["rate"], 1000);
    assert_eq!(report["linger_ms"], 0);
    assert_eq!(report["fetch_wait_max_ms"], 500);
    assert!(report["produce"].is_null(), "{report}");
    let e2e = &report["e2e"];
    assert_all_acked(e2e, 300);
    assert_eq!(e2e["records"], 300, "consumed: {report}");
    assert_eq!(e2e["value_bytes"], 300 * 1024, "{report}");
    assert_latencies_ordered(e2e, "latency_");
    assert_latencies_ordered(e2e, "produce_latency_");
    assert_own_broker_measured(e2e);
}

/// Goal: with `--bootstrap` the benchmarks measure a running broker, taking its costs from
/// `/metrics` (`--http`) and leaving out what it cannot see. Method: a broker started by the
/// test; `bench produce` writes 2 MiB to it, then `bench consume` reads the topic as it is.
#[test]
fn bench_measures_a_running_broker_with_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::Broker::start(dir.path(), &[]);
    let (kafka, http) = (broker.bootstrap(), broker.http_addr.to_string());
    let target = [
        "--bootstrap",
        &kafka,
        "--http",
        &http,
        "--topic",
        "bench-running",
    ];
    let mut args = target.to_vec();
    args.extend(["--size-mib", "2", "--partitions", "2"]);
    let report = bench_sub_json("produce", &args);
    assert_eq!(report["broker"]["kind"], "bootstrap");
    let produce = &report["produce"];
    assert_all_acked(produce, 2048);
    assert!(
        produce["broker_peak_rss_bytes"].as_u64().unwrap() > 0,
        "the running broker's peak RSS from /metrics: {report}"
    );
    assert!(
        produce["object_store_puts"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        produce["broker_cpu_seconds"]
            .as_f64()
            .is_some_and(|cpu| cpu >= 0.0),
        "the running broker's CPU from process_cpu_seconds_total: {report}"
    );

    let report = bench_sub_json("consume", &target);
    assert!(report["produce"].is_null(), "reads what is there: {report}");
    assert_eq!(report["partitions"], 2);
    assert_eq!(report["consume"]["records"], 2048, "{report}");
    broker.stop();
}

#[test]
fn bench_load_help_has_examples_and_bad_flags_stop_it() {
    for (sub, flags) in [
        (
            "produce",
            &[
                "--bootstrap",
                "--http",
                "--records",
                "--size-mib",
                "--record-bytes",
                "--compression",
                "--acks",
                "--linger-ms",
                "--batch-bytes",
                "--idempotent",
                "--in-flight",
                "--rate",
                "--s3-latency-ms",
                "--serve-arg",
                "--output",
            ][..],
        ),
        (
            "consume",
            &["--fetch-max-bytes", "--max-partition-fetch-bytes"],
        ),
        ("e2e", &["--fetch-wait-max-ms", "--rate"]),
    ] {
        let out = strato().args(["bench", sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        for flag in flags {
            assert!(help.contains(flag), "bench {sub} --help lacks {flag}");
        }
        let example = format!("Example: `strato bench {sub}");
        assert!(
            help.contains(&example),
            "bench {sub} --help lacks an example"
        );
    }
    // Refused before any broker starts.
    for (args, message) in [
        (&["produce", "--acks", "1"][..], "--idempotent"),
        (&["e2e", "--http", "127.0.0.1:1"], "--bootstrap"),
        (&["consume", "--s3-latency-ms", "30"], "--s3-endpoint"),
    ] {
        let out = strato().arg("bench").args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}
