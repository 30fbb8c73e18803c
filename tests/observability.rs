//! The operator surface: `/metrics` read by the reference Prometheus text parser
//! (prometheus_client, via tests/clients/prometheus_scrape.py) with its histogram invariants,
//! per-API counters that follow real client traffic, `/ready` following the metadata store
//! (a real etcd, stopped and started again) and the object store, the Grafana dashboard's
//! metric names against a real scrape, and request ids in JSON logs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use common::kafka::{Rec, consume_all, create_topic, produce_all, producer, record};
use common::{Broker, wait_until, wire};
use strato_metadata::testing::etcd_server::EtcdServer;

/// A sample's labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// One parsed scrape: sample name -> [(labels, value)], and family name -> type.
struct Scrape {
    samples: BTreeMap<String, Vec<Sample>>,
    families: BTreeMap<String, String>,
    histograms: u64,
}

impl Scrape {
    /// Scrapes `broker` with prometheus_client's parser; the script fails (and so does the
    /// test) if the text does not parse or a histogram breaks an invariant.
    fn of(broker: &Broker) -> Scrape {
        let url = format!("http://{}/metrics", broker.http_addr);
        let out = common::run_client_script("prometheus_scrape.py", &["--url", &url]);
        let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for sample in out["samples"].as_array().expect("samples") {
            let name = sample[0].as_str().unwrap().to_string();
            let labels = sample[1]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            samples
                .entry(name)
                .or_default()
                .push((labels, sample[2].as_f64().unwrap()));
        }
        let families = out["families"]
            .as_object()
            .expect("families")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        Scrape {
            samples,
            families,
            histograms: out["histograms"].as_u64().unwrap(),
        }
    }

    /// The value of the sample `name` whose labels include all of `labels`; 0 when absent
    /// (a counter that never moved may have no series, e.g. errors of one code).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(have, _)| {
                labels
                    .iter()
                    .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, value)| value)
            .sum()
    }
}

/// Produces `n` records to a fresh 2-partition topic with librdkafka and reads them back.
async fn client_traffic(broker: &Broker, topic: &str, n: usize) {
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, topic, 2).await;
    let p = producer(&bootstrap, &[]);
    let records: Vec<Rec> = (0..n).map(|i| record("obs", i)).collect();
    let landed = produce_all(&p, topic, &records).await;
    drop(p);
    assert_eq!(consume_all(&bootstrap, topic, 2, landed.len()), landed);
}

/// Asks for the latest offset of partition 7 of `topic` (which has fewer partitions) over a
/// raw ListOffsets v7 frame and checks the answer is UNKNOWN_TOPIC_OR_PARTITION.
fn list_offsets_of_a_missing_partition(
    stream: &mut std::net::TcpStream,
    topic: &'static str,
    correlation_id: i32,
) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{
        ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(7)
                        .with_timestamp(-1),
                ]),
        ]);
    wire::send(stream, ApiKey::ListOffsets, 7, correlation_id, &request);
    let response: ListOffsetsResponse =
        wire::response(stream, ApiKey::ListOffsets, 7, correlation_id);
    assert_eq!(response.topics[0].partitions[0].error_code, 3);
}

/// Goal: `/metrics` is valid Prometheus text for the reference parser, every histogram
/// holds its invariants (checked by the script), and the per-API, byte, flush, object
/// store and metadata series move with real librdkafka produce and consume traffic, and an
/// error answer is counted under its API and Kafka error name. Method: scrape a fresh
/// broker, run traffic and one ListOffsets for a missing partition, scrape again and
/// compare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_follow_client_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let before = Scrape::of(&broker);
    for (family, kind) in [
        ("strato_requests", "counter"),
        ("strato_request_duration_seconds", "histogram"),
        ("strato_flush_bytes", "histogram"),
        ("strato_flush_duration_seconds", "histogram"),
        ("strato_flush_phase_seconds", "histogram"),
        ("strato_object_store_request_duration_seconds", "histogram"),
        ("strato_metadata_request_duration_seconds", "histogram"),
    ] {
        assert_eq!(
            before.families.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    // 23 APIs + 2 flush + 5 object store + 8 metadata operations.
    assert!(before.histograms >= 38, "{} histograms", before.histograms);
    let produce = [("api", "Produce")];
    assert_eq!(before.value("strato_requests_total", &produce), 0.0);

    client_traffic(&broker, "observed", 500).await;
    list_offsets_of_a_missing_partition(&mut wire::connect(&broker), "observed", 1);
    // Every client has hung up once the gauge is back at 0.
    wait_until(Duration::from_secs(30), "connections to close", || {
        broker.metric("strato_connections ") == 0.0
    });
    let after = Scrape::of(&broker);
    assert_eq!(
        after.value(
            "strato_request_errors_total",
            &[
                ("api", "ListOffsets"),
                ("error", "UNKNOWN_TOPIC_OR_PARTITION")
            ]
        ),
        1.0
    );
    for api in [
        "ApiVersions",
        "Metadata",
        "Produce",
        "Fetch",
        "CreateTopics",
    ] {
        let labels = [("api", api)];
        assert!(
            after.value("strato_requests_total", &labels) >= 1.0,
            "no {api} request counted"
        );
        assert!(
            after.value("strato_request_duration_seconds_count", &labels) >= 1.0,
            "no {api} duration observed"
        );
        let inf = [("api", api), ("le", "+Inf")];
        assert_eq!(
            after.value("strato_request_duration_seconds_bucket", &inf),
            after.value("strato_request_duration_seconds_count", &labels),
        );
    }
    assert!(after.value("strato_produce_bytes_total", &[]) > 0.0);
    assert!(after.value("strato_fetch_bytes_total", &[]) > 0.0);
    let flushes = after.value("strato_flushes_total", &[("result", "committed")]);
    assert!(flushes >= 1.0);
    assert_eq!(after.value("strato_flush_bytes_count", &[]), flushes);
    assert_eq!(
        after.value("strato_flush_duration_seconds_count", &[]),
        flushes
    );
    for phase in ["build", "upload", "wait", "commit"] {
        assert_eq!(
            after.value("strato_flush_phase_seconds_count", &[("phase", phase)]),
            flushes,
            "flush phase {phase}"
        );
    }
    assert_eq!(
        after.value("strato_flush_bytes_sum", &[]),
        after.value("strato_flushed_bytes_total", &[]),
    );
    let put = [("operation", "put")];
    assert_eq!(
        after.value("strato_object_store_request_duration_seconds_count", &put),
        after.value("strato_object_store_requests_total", &put),
    );
    assert!(
        after.value(
            "strato_metadata_request_duration_seconds_count",
            &[("operation", "txn_many")]
        ) >= flushes,
        "each flush commits with one txn_many"
    );
    broker.stop();
}

/// Goal: `/ready` fails with a reason while the metadata store (a real etcd) is down and
/// recovers when it is back; `/health` stays up throughout. Method: kill etcd, wait for
/// 503, restart etcd on its data directory, wait for 200.
#[test]
fn ready_follows_the_metadata_store() {
    let mut etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = etcd.url("/strato/ready");
    let broker = Broker::start(dir.path(), &["--metadata", &url]);
    assert_eq!(broker.http_get("/ready"), (200, "ready\n".to_string()));

    etcd.kill(0);
    let mut reason = String::new();
    wait_until(Duration::from_secs(30), "/ready to fail", || {
        let (status, body) = broker.http_get("/ready");
        reason = body;
        status == 503
    });
    assert!(reason.starts_with("metadata store: "), "{reason}");
    assert_eq!(broker.http_get("/health"), (200, "ok\n".to_string()));
    let failures = |b: &Broker| b.metric("strato_metadata_errors_total{operation=\"get\"}");
    assert!(failures(&broker) >= 1.0, "the failed check counts");

    etcd.restart(0);
    wait_until(Duration::from_secs(60), "/ready to recover", || {
        broker.http_get("/ready") == (200, "ready\n".to_string())
    });
    assert_eq!(broker.metric("strato_broker_lease_held "), 1.0);
    broker.stop();
}

/// Goal: `/ready` fails with an "object store" reason when the object store does not answer,
/// and readiness probes do not each cost an object store request (the outcome is reused
/// for a few seconds). Method: an S3 store whose endpoint is a loopback port nobody listens
/// on (the broker starts without touching the store); five probes in a row.
#[test]
fn ready_reports_an_unreachable_object_store() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{closed_port}");
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with_env(
        dir.path(),
        &[
            "--object-store",
            "s3://unreachable/prefix",
            "--s3-endpoint",
            &endpoint,
        ],
        // Static credentials: no lookup of instance credentials anywhere.
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    const PROBES: usize = 5;
    for _ in 0..PROBES {
        let (status, body) = broker.http_get("/ready");
        assert_eq!(status, 503, "{body}");
        assert!(
            body.lines().any(|l| l.starts_with("object store: ")),
            "{body}"
        );
        assert!(!body.contains("metadata store"), "{body}");
    }
    assert_eq!(broker.http_get("/health"), (200, "ok\n".to_string()));
    let heads = broker.metric("strato_object_store_errors_total{operation=\"head\"}");
    assert!(
        (1.0..PROBES as f64).contains(&heads),
        "{heads} HEADs for {PROBES} probes"
    );
    broker.stop();
}

/// Every `strato_*` name in a PromQL expression or variable query of the dashboard.
fn dashboard_metric_names(value: &serde_json::Value, names: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                if let (true, Some(text)) = (
                    key == "expr" || key == "query" || key == "definition",
                    v.as_str(),
                ) {
                    let mut rest = text;
                    while let Some(start) = rest.find("strato_") {
                        let tail = &rest[start..];
                        let end = tail
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .unwrap_or(tail.len());
                        names.insert(tail[..end].to_string());
                        rest = &tail[end..];
                    }
                }
                dashboard_metric_names(v, names);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                dashboard_metric_names(v, names);
            }
        }
        _ => {}
    }
}

/// Goal: the Grafana dashboard in docs/ uses only metrics a broker exports, takes its
/// Prometheus data source from a variable, and every panel has a query. Method: parse the
/// JSON, collect metric names from every expression, and look each up in a real scrape
/// taken after produce and fetch traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_uses_only_exported_metrics() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("dashboard JSON");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "a Prometheus data source variable"
    );
    let panels: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .collect();
    assert!(panels.len() >= 15, "{} panels", panels.len());
    for panel in &panels {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        for target in targets {
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("strato_")),
                "{}: {target}",
                panel["title"]
            );
        }
    }
    let mut used = BTreeSet::new();
    dashboard_metric_names(&dashboard, &mut used);
    assert!(used.len() >= 25, "{used:?}");

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    client_traffic(&broker, "dashboard", 100).await;
    // An error answer, so the per-code error series exists too.
    list_offsets_of_a_missing_partition(&mut wire::connect(&broker), "dashboard", 1);
    let scrape = Scrape::of(&broker);
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !scrape.samples.contains_key(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics the broker does not export: {missing:?}"
    );
    broker.stop();
}

/// The JSON log lines of `broker` (`--log-format json`).
fn json_lines(broker: &Broker) -> Vec<serde_json::Value> {
    broker
        .log_lines()
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Waits for the JSON log line whose message starts with `message` and whose request id
/// ends with `-<correlation_id>`.
fn wait_for_request_log_line(
    broker: &Broker,
    message: &str,
    correlation_id: i32,
) -> serde_json::Value {
    let suffix = format!("-{correlation_id}");
    let mut found = None;
    wait_until(Duration::from_secs(10), message, || {
        found = json_lines(broker).into_iter().find(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
                && line["span"]["request_id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(&suffix))
        });
        found.is_some()
    });
    found.unwrap()
}

/// Goal: with `--log-format json`, what is logged while a request is handled carries its
/// connection-scoped request id (`<connection id>-<correlation id>`) and the API. Method:
/// over raw frames, a ListOffsets for a partition that does not exist (answered with
/// UNKNOWN_TOPIC_OR_PARTITION: a DEBUG line) and a malformed Produce frame (the
/// connection is closed: a WARN line); find both lines and check their fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids() {
    use kafka_protocol::messages::ApiKey;

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--log-format", "json"]);
    create_topic(&broker.bootstrap(), "one-partition", 1).await;

    let mut stream = wire::connect(&broker);
    list_offsets_of_a_missing_partition(&mut stream, "one-partition", 77);
    let line = wait_for_request_log_line(&broker, "response carries errors", 77);
    assert_eq!(line["level"], "DEBUG");
    assert_eq!(line["fields"]["code"], 3);
    assert_eq!(line["span"]["api"], "ListOffsets");
    assert_eq!(line["span"]["correlation_id"], 77);
    // The id is the connection's id (its span, the outer one) and the correlation id.
    let spans = line["spans"].as_array().expect("span list");
    assert_eq!(spans[0]["name"], "connection");
    let connection_id = spans[0]["connection_id"].as_u64().expect("connection id");
    assert_eq!(
        line["span"]["request_id"],
        format!("{connection_id}-77"),
        "{line}"
    );

    // A Produce v9 frame whose body is garbage: the header decodes, the body does not.
    let mut frame = Vec::new();
    frame.extend_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
    frame.extend_from_slice(&9i16.to_be_bytes());
    frame.extend_from_slice(&4242i32.to_be_bytes());
    frame.extend_from_slice(&[0xff; 7]);
    stream
        .write_all(&(frame.len() as i32).to_be_bytes())
        .unwrap();
    stream.write_all(&frame).unwrap();
    assert!(wire::read_frame(&mut stream).is_none(), "connection closed");
    let line = wait_for_request_log_line(&broker, "closing connection", 4242);
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["span"]["api"], "Produce");
    assert_eq!(line["span"]["request_id"], format!("{connection_id}-4242"));
    assert_eq!(broker.metric("strato_requests_rejected_total "), 1.0);
    broker.stop();
}
