//! `strato bench replay`: a small run against the embedded default (file:// objects, a
//! temporary data dir) writes, restarts the broker and replays, and its JSON report agrees
//! with itself. Nothing is asserted about speed: a benchmark reports, it is not a test.

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
            panic!("strato bench replay did not finish within {deadline:?}; stopped it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("strato bench replay ignored SIGTERM; killed it (its broker may be left running)");
}

/// Runs `strato bench replay` with `args` and `--output json`; its JSON report.
fn bench_json(args: &[&str]) -> serde_json::Value {
    let mut child = strato()
        .args(["bench", "replay", "--output", "json"])
        .args(args)
        .env_remove("STRATO_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strato bench replay");
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
