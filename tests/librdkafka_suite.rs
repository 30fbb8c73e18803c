//! librdkafka's own transaction tests (issue 17) against a real broker: the `test-runner` of
//! the librdkafka release that the `rdkafka` dev-dependency bundles, built and cached by
//! scripts/librdkafka-tests.sh (scripts/test.sh runs it and exports its path as
//! `STRATO_TEST_LIBRDKAFKA_RUNNER`).
//!
//! Each test runs one of the suite's test numbers in a runner process of its own, against a
//! broker of its own, set up as the suite's "default" scenario expects of a cluster (what its
//! trivup harness, tests/LibrdkafkaTestApp.py, gives it): topics auto-created with 4
//! partitions, a `test.conf` naming the broker, the Kafka version the broker speaks. 0098
//! (a Java producer) is not run. 0105 runs against librdkafka's mock cluster, so it tests the
//! client and never reaches the broker; it is here because the issue names it.
//!
//! A test passes when the runner exits 0 and its summary lists every test of the number
//! (0103 is `0103_transactions` and `0103_transactions_local`) as PASSED: a test the runner
//! skipped (a version gate, a scenario) fails here.

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Broker;

/// The Kafka version the runner is told the broker is (`TEST_KAFKA_VERSION`), for its
/// version gates (`TEST_BRKVER`). Strato's API version ranges are Kafka 4.0's: Produce from
/// v3, Fetch from v4, record batches v2 only (KIP-896).
const KAFKA_VERSION: &str = "4.0.0";

/// Lines of the runner's output and of the broker's log shown when a test fails.
const OUTPUT_TAIL_LINES: usize = 150;
const BROKER_LOG_TAIL_LINES: usize = 60;
/// Most lines naming a failure quoted from the runner's output.
const FAILURE_LINES_MAX: usize = 40;

fn runner() -> PathBuf {
    let runner = match std::env::var_os("STRATO_TEST_LIBRDKAFKA_RUNNER") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "STRATO_TEST_LIBRDKAFKA_RUNNER is not set: run the tests through ./scripts/test.sh, \
             which builds librdkafka's test runner (scripts/librdkafka-tests.sh) and exports it"
        ),
    };
    assert!(
        runner.is_file(),
        "{} does not exist: run ./scripts/test.sh --setup-only (or scripts/librdkafka-tests.sh), \
         which builds it",
        runner.display()
    );
    runner
}

/// Runs librdkafka test `number` (e.g. "0103") against a fresh broker and asserts that every
/// test of that number passed. `timeout` bounds the runner process, which is killed (by pid)
/// when it outlives it.
fn run_suite_test(number: &str, timeout: Duration) {
    let runner = runner();
    let dir = tempfile::tempdir().unwrap();
    // The suite's default scenario: auto-created topics have 4 partitions. Its consumers join
    // groups one at a time, so the first rebalance need not wait for more members.
    let broker = Broker::start(
        dir.path(),
        &[
            "--default-partitions",
            "4",
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
    );
    // As the suite's trivup harness writes it; `test.timeout.multiplier` scales the suite's
    // own timeouts (the runner adds more when it runs tests concurrently or on CI).
    let conf = dir.path().join("test.conf");
    std::fs::write(
        &conf,
        format!(
            "bootstrap.servers={}\nbroker.address.family=v4\ntest.timeout.multiplier=2\n",
            broker.bootstrap()
        ),
    )
    .unwrap();
    // The runner writes stats and report files into its working directory.
    let work_dir = dir.path().join("run");
    std::fs::create_dir(&work_dir).unwrap();
    let output_path = dir.path().join("runner.log");
    let output = File::create(&output_path).unwrap();
    let mut command = Command::new(&runner);
    command
        .current_dir(&work_dir)
        .env("TESTS", number)
        .env("TEST_KAFKA_VERSION", KAFKA_VERSION)
        .env("RDKAFKA_TEST_CONF", &conf)
        .env("TEST_SCENARIO", "default")
        .env("TEST_MODE", "bare")
        // Variables that would skip tests or subtests, point the runner at another cluster
        // or Kafka installation, or load another librdkafka than the one it was built with
        // (it finds its own through its RUNPATH). TEST_DEBUG, TEST_LEVEL and TEST_SEED pass
        // through for debugging.
        .env_remove("TESTS_SKIP")
        .env_remove("TESTS_SKIP_BEFORE")
        .env_remove("SUBTESTS")
        .env_remove("KAFKA_VERSION")
        .env_remove("KAFKA_PATH")
        .env_remove("ZK_ADDRESS")
        .env_remove("TEST_SOCKEM")
        .env_remove("SOCKEM_CONF")
        .env_remove("TEST_CONSUMER_GROUP_PROTOCOL")
        .env_remove("TEST_REPORT")
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output);
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn librdkafka test-runner");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait test-runner") {
            break Some(status);
        }
        if started.elapsed() >= timeout {
            // Child::kill signals the child's pid.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    let text = strip_ansi(&String::from_utf8_lossy(
        &std::fs::read(&output_path).unwrap(),
    ));
    let summary = summary_states(&text, number);
    let failed: Vec<&(String, String)> = summary.iter().filter(|(_, s)| s != "PASSED").collect();
    let passed = status.is_some_and(|s| s.success()) && !summary.is_empty() && failed.is_empty();
    if !passed {
        let verdict = match status {
            None => format!("killed after the {timeout:?} timeout"),
            Some(s) if !s.success() => format!("exited with {s} after {elapsed:?}"),
            Some(_) if summary.is_empty() => {
                format!("exited 0 after {elapsed:?} but its summary lists no test {number}")
            }
            Some(_) => format!("exited 0 after {elapsed:?} but not every test passed"),
        };
        panic!(
            "librdkafka test {number}: the runner {verdict}\n\
             summary: {summary:?}\n\
             --- lines naming a failure ---\n{}\n\
             --- last {OUTPUT_TAIL_LINES} lines of the runner's output ({} lines) ---\n{}\n\
             --- last {BROKER_LOG_TAIL_LINES} lines of the broker's log ---\n{}",
            failure_lines(&text),
            text.lines().count(),
            tail(&text, OUTPUT_TAIL_LINES),
            tail(&broker.log_text(), BROKER_LOG_TAIL_LINES),
        );
    }
    eprintln!("librdkafka test {number} passed in {elapsed:?}: {summary:?}");
    broker.stop();
}

/// `text` without ANSI colour sequences (`ESC [ ... m`), which the runner prints everywhere.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// (test name, state) of the summary table's rows for the tests of `number`, e.g.
/// `| 0103_transactions                        |     PASSED |  12.345s |`.
fn summary_states(text: &str, number: &str) -> Vec<(String, String)> {
    let prefix = format!("{number}_");
    text.lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
            let name = cells.next()?;
            let state = cells.next()?;
            name.starts_with(&prefix)
                .then(|| (name.to_string(), state.to_string()))
        })
        .collect()
}

/// The runner's lines that report a failure (test and subtest failures, failed assertions).
fn failure_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("FAIL") || l.contains("TEST FAILURE"))
        .take(FAILURE_LINES_MAX)
        .collect();
    lines.join("\n")
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The summary table is read as the runner prints it: coloured, with the <MAIN> row and the
/// rows of other numbers left out.
#[test]
fn summary_rows_are_parsed() {
    let output = "\u{1b}[36m[<MAIN> / 1.0s] ALL-TESTS: duration 1.0ms\u{1b}[0m\n\
        #==================================================================#\n\
        |\u{1b}[32m <MAIN>                                   |     PASSED |  12.345s \u{1b}[0m|\n\
        |\u{1b}[31m 0103_transactions                        |     FAILED |  11.000s \u{1b}[0m|\u{1b}[31m why\u{1b}[0m\n\
        |\u{1b}[32m 0103_transactions_local                  |     PASSED |   0.100s \u{1b}[0m|\n\
        |\u{1b}[32m 0105_transactions_mock                   |     PASSED |   1.000s \u{1b}[0m|\n";
    let text = strip_ansi(output);
    assert_eq!(
        summary_states(&text, "0103"),
        [
            ("0103_transactions".to_string(), "FAILED".to_string()),
            ("0103_transactions_local".to_string(), "PASSED".to_string()),
        ]
    );
    assert!(summary_states(&text, "0129").is_empty());
    assert_eq!(failure_lines(&text).lines().count(), 1);
}

/// 0103: the transactional producer against the broker (misuse, basic transactions with and
/// without compression, consume-transform-produce with read_committed consumers, fencing,
/// KIP-360, empty transactions, high watermark vs LSO, leader epochs of control batches) and
/// 0103_transactions_local (no broker).
#[test]
fn librdkafka_0103_transactions() {
    run_suite_test("0103", Duration::from_secs(600));
}

/// 0105: the transactional producer's error handling against librdkafka's mock cluster
/// (about 6.5 minutes on 2 cores; it never connects to the broker).
#[test]
fn librdkafka_0105_transactions_mock() {
    run_suite_test("0105", Duration::from_secs(1200));
}

/// 0129: a fetch response holding only aborted records (topic `max.message.bytes` 10000)
/// must not fail the consumer with MSG_SIZE_TOO_LARGE.
#[test]
fn librdkafka_0129_fetch_aborted_msgs() {
    run_suite_test("0129", Duration::from_secs(300));
}
