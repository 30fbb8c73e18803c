//! The command line: help texts name every option, bad configuration stops the broker with
//! a clear message, and `strato segment dump` decodes the segment objects a broker wrote.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Broker, run_with_timeout};

fn strato(args: &[&str]) -> std::process::Output {
    run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_strato")).args(args),
        Duration::from_secs(30),
    )
}

#[test]
fn help_explains_every_serve_option() {
    let out = strato(&["serve", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--data-dir",
        "--listen",
        "--advertised-address",
        "--metadata",
        "--object-store",
        "--broker-id",
        "--flush-interval-ms",
        "--flush-bytes",
        "--flush-when-idle",
        "--flush-when-idle-min-bytes",
        "--flush-compression",
        "--auto-create-topics",
        "--default-partitions",
        "--max-request-bytes",
        "--config",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}");
    }
    assert!(
        help.contains("STRATO_FLUSH_BYTES"),
        "env vars are documented"
    );
    let top = String::from_utf8(strato(&["--help"]).stdout).unwrap();
    assert!(top.contains("serve") && top.contains("segment"));
}

#[test]
fn bad_configuration_stops_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = strato(&["serve", "--data-dir", data, "--flush-interval-ms", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--flush-interval-ms"), "{err}");

    let config = dir.path().join("strato.toml");
    std::fs::write(&config, "flush-bytez = 5\n").unwrap();
    let out = strato(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flush-bytez"), "{err}");
}

fn segment_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            segment_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "seg") {
            out.push(path);
        }
    }
}

/// Goal: segment objects written by a broker decode with `strato segment dump`, by file
/// path and by object key; a damaged object is reported, not printed as garbage.
#[test]
fn segment_dump_decodes_what_the_broker_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let input: String = (0..50).map(|i| format!("record-{i}\n")).collect();
    let out = common::run_with_input(
        Command::new(common::kcat()).args(["-b", &broker.bootstrap(), "-P", "-t", "dumped"]),
        Some(input.as_bytes()),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data_dir = broker.data_dir.clone();
    drop(broker);

    let mut files = Vec::new();
    segment_files(&data_dir.join("objects"), &mut files);
    assert!(!files.is_empty(), "the broker wrote segment objects");
    let mut records = 0u64;
    for file in &files {
        let out = strato(&["segment", "dump", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("segment: "), "{text}");
        for line in text.lines().filter(|l| l.starts_with("chunk ")) {
            let count: u64 = line
                .split(" records ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no record count in {line}"));
            records += count;
        }
    }
    assert_eq!(records, 50, "the chunks hold every produced record");

    // By object key, from the data directory's object store.
    let key = files[0]
        .strip_prefix(data_dir.join("objects"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let out = strato(&[
        "segment",
        "dump",
        "--data-dir",
        data_dir.to_str().unwrap(),
        &key,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // JSON for scripts: the same record count, batch by batch.
    let mut json_records = 0u64;
    for file in &files {
        let out = strato(&[
            "segment",
            "dump",
            "--output",
            "json",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success());
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        for chunk in doc["chunks"].as_array().expect("chunks") {
            for batch in chunk["batches"].as_array().expect("batches") {
                json_records += batch["records"].as_u64().expect("records");
            }
        }
    }
    assert_eq!(json_records, 50);

    let damaged = dir.path().join("damaged.seg");
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() - 5]).unwrap();
    let out = strato(&["segment", "dump", damaged.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
}

/// Goal: the HTTP endpoint answers /health and /ready, and /metrics is valid Prometheus
/// text whose counters follow what the broker did (a produce means a PUT and a flush).
#[test]
fn http_health_ready_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    assert_eq!(broker.http_get("/health"), (200, "ok\n".to_string()));
    assert_eq!(broker.http_get("/ready").0, 200);
    assert_eq!(broker.http_get("/nope").0, 404);

    let out = common::run_with_input(
        Command::new(common::kcat()).args(["-b", &broker.bootstrap(), "-P", "-t", "metered"]),
        Some(b"one\ntwo\n"),
        Duration::from_secs(60),
    );
    assert!(out.status.success());

    let (status, text) = broker.http_get("/metrics");
    assert_eq!(status, 200);
    let mut samples = std::collections::BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            assert!(
                line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "bad comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        samples.insert(series.to_string(), value);
    }
    assert!(samples["strato_object_store_requests_total{operation=\"put\"}"] >= 1.0);
    // Tail reads are served from the write-through cache: consuming what was just written
    // costs no GET.
    assert_eq!(kcat_consume(&broker, "metered"), "one\ntwo\n");
    assert_eq!(
        metric_value(
            &broker,
            "strato_object_store_requests_total{operation=\"get\"}"
        ),
        0.0,
        "tail reads need no GET"
    );
    assert!(samples["strato_flushes_total{result=\"committed\"}"] >= 1.0);
    assert_eq!(samples["strato_partitions{state=\"led\"}"], 1.0);
    assert_eq!(samples["strato_topics"], 1.0);
}

/// Reads `topic` from the beginning to the end with kcat; returns the values, one a line.
fn kcat_consume(broker: &Broker, topic: &str) -> String {
    let out = common::run_with_timeout(
        Command::new(common::kcat()).args([
            "-b",
            &broker.bootstrap(),
            "-C",
            "-t",
            topic,
            "-e",
            "-q",
        ]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn metric_value(broker: &Broker, series: &str) -> f64 {
    let (_, text) = broker.http_get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in metrics:\n{text}"))
}

/// Goal: after a restart the cache is cold: the first read of old data costs GETs, a second
/// read of the same data is served from the cache without another GET.
#[test]
fn cold_reads_fill_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let input: String = (0..200).map(|i| format!("cold-{i}\n")).collect();
    let out = common::run_with_input(
        Command::new(common::kcat()).args(["-b", &broker.bootstrap(), "-P", "-t", "cold"]),
        Some(input.as_bytes()),
        Duration::from_secs(60),
    );
    assert!(out.status.success());
    let broker = broker.restart_graceful();
    let consume = || assert_eq!(kcat_consume(&broker, "cold"), input);
    let get = "strato_object_store_requests_total{operation=\"get\"}";
    assert_eq!(metric_value(&broker, get), 0.0);
    consume();
    let cold_gets = metric_value(&broker, get);
    assert!(cold_gets >= 1.0, "a cold read goes to the object store");
    consume();
    assert_eq!(
        metric_value(&broker, get),
        cold_gets,
        "the second read is cached"
    );
    assert!(
        metric_value(
            &broker,
            "strato_chunk_cache_requests_total{result=\"hit\",tier=\"memory\"}"
        ) >= 1.0
    );
}
