//! The web console (`/ui/`) and its JSON API (`/api/v1/`) against a broker with topics,
//! messages and an active consumer group: what the API returns is checked against what was
//! written and what the group committed; every page renders and links where it should; the
//! console is read-only.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::kafka::{Rec, create_topic, produce_all, producer};
use common::{Broker, wait_until};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use serde_json::Value;

fn api(broker: &Broker, path: &str) -> Value {
    let (status, body) = broker.http_get(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|err| panic!("GET {path}: {err}: {body}"))
}

/// A raw HTTP/1.1 exchange: status line and headers, and the body.
fn raw(broker: &Broker, method: &str, path: &str) -> (String, String) {
    raw_as(broker, method, path, None)
}

/// [`raw`] with HTTP basic credentials (user, password).
fn raw_as(
    broker: &Broker,
    method: &str,
    path: &str,
    login: Option<(&str, &str)>,
) -> (String, String) {
    use base64::Engine;
    let authorization = login.map(|(user, password)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    });
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|a| ("Authorization", a.as_str()))
        .collect();
    request(broker, method, path, &headers, "")
}

/// A consumer of `topic` in `group` (from the earliest offsets) that has read `records`
/// records and committed its position, still subscribed: an active member.
fn group_member(bootstrap: &str, group: &str, topic: &str, records: usize) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    tokio::task::block_in_place(|| {
        let mut read = 0;
        wait_until(
            Duration::from_secs(60),
            &format!("the group reads {records} records"),
            || {
                if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(100)) {
                    assert_eq!(msg.topic(), topic);
                    read += 1;
                }
                read >= records
            },
        );
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    });
    consumer
}

/// Records of the test topic: JSON values, text, binary, a tombstone, headers.
fn orders() -> Vec<Rec> {
    (0..300)
        .map(|i| Rec {
            key: Some(format!("order-{i}").into_bytes()),
            value: match i % 4 {
                0 => Some(format!("{{\"id\":{i},\"items\":[1,2]}}").into_bytes()),
                1 => Some(format!("plain text {i}").into_bytes()),
                2 => Some(vec![0xde, 0xad, 0xbe, 0xef, i as u8]),
                _ if i == 299 => None,
                _ => Some(b"<script>alert(1)</script>".to_vec()),
            },
            headers: vec![("source".to_string(), Some(b"test".to_vec()))],
            timestamp: Some(1_800_000_000_000 + i as i64 * 1_000),
        })
        .collect()
}

/// Goal: the API tells what is in the cluster. Method: 300 records to 3 partitions of
/// "orders" and a few to "audit"; a consumer group ("billing") reads "orders" and commits
/// after 150 records, and stays subscribed (an active member); then each API route is read
/// and compared with what was written and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_describes_topics_messages_groups_and_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 3).await;
    create_topic(&bootstrap, "audit", 1).await;
    let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
    let landed = produce_all(&p, "orders", &orders()).await;
    produce_all(&p, "audit", &orders()[..5]).await;

    // An active group that committed part of the topic.
    let consumer = group_member(&bootstrap, "billing", "orders", 150);
    // Lag counts the partitions with a committed offset (as kafka-consumer-groups.sh).
    let committed: Vec<(i32, i64)> = tokio::task::block_in_place(|| {
        consumer
            .committed(Duration::from_secs(10))
            .unwrap()
            .elements()
            .iter()
            .filter_map(|e| e.offset().to_raw().map(|o| (e.partition(), o)))
            .filter(|(_, o)| *o >= 0)
            .collect()
    });
    assert_eq!(committed.iter().map(|(_, o)| o).sum::<i64>(), 150);
    let expected_lag: i64 = committed
        .iter()
        .map(|(p, o)| landed.keys().filter(|(q, _)| q == p).count() as i64 - o)
        .sum();

    tokio::task::block_in_place(|| {
        let cluster = api(&broker, "/api/v1/cluster");
        assert_eq!(cluster["brokers"].as_array().unwrap().len(), 1, "{cluster}");
        assert_eq!(cluster["topics"], 2);
        assert_eq!(cluster["partitions"], 4);
        assert_eq!(cluster["brokers"][0]["partitions_led"], 4, "{cluster}");
        assert_eq!(cluster["brokers"][0]["lease"], "live");
        assert_eq!(cluster["brokers"][0]["state"], "serving");
        assert_eq!(cluster["metadata_store"]["ok"], true);
        assert_eq!(cluster["object_store"]["ok"], true);

        let topics = api(&broker, "/api/v1/topics");
        let names: Vec<&str> = topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["audit", "orders"]);
        assert_eq!(topics["topics"][1]["records"], 300);
        assert!(topics["topics"][1]["bytes"].as_u64().unwrap() > 0);

        let topic = api(&broker, "/api/v1/topics/orders");
        let partitions = topic["partition_details"].as_array().unwrap();
        assert_eq!(partitions.len(), 3);
        for p in partitions {
            let index = p["partition"].as_i64().unwrap() as i32;
            let written = landed.keys().filter(|(q, _)| *q == index).count() as i64;
            assert_eq!(p["end_offset"], written, "{p}");
            assert_eq!(p["leader"], 0);
        }
        assert_eq!(topic["configs"]["cleanup.policy"], "delete");

        // Messages by offset: exactly what landed, values shown by kind.
        let m = api(
            &broker,
            "/api/v1/topics/orders/partitions/0/messages?offset=0&limit=20",
        );
        let messages = m["messages"].as_array().unwrap();
        let in_p0 = landed.keys().filter(|(q, _)| *q == 0).count();
        assert_eq!(messages.len(), 20.min(in_p0));
        for msg in messages {
            let offset = msg["offset"].as_i64().unwrap();
            let rec = &landed[&(0, offset)];
            assert_eq!(
                msg["key"]["text"].as_str().unwrap().as_bytes(),
                rec.key.as_deref().unwrap()
            );
            assert_eq!(msg["timestamp"], rec.timestamp.unwrap());
            assert_eq!(msg["headers"][0]["name"], "source");
            match rec.value.as_deref() {
                None => assert!(msg["value"].is_null()),
                Some(v) if v.starts_with(b"{") => {
                    assert_eq!(msg["value"]["format"], "json");
                    assert!(
                        msg["value"]["text"]
                            .as_str()
                            .unwrap()
                            .contains("\n  \"id\"")
                    );
                }
                Some([0xde, ..]) => {
                    assert_eq!(msg["value"]["format"], "hex");
                    assert!(
                        msg["value"]["text"]
                            .as_str()
                            .unwrap()
                            .starts_with("deadbeef")
                    );
                }
                Some(v) => {
                    assert_eq!(msg["value"]["format"], "text");
                    assert_eq!(msg["value"]["text"].as_str().unwrap().as_bytes(), v);
                }
            }
        }
        // By timestamp: the first record at or after it.
        let (&(_, first_late), _) = landed
            .iter()
            .filter(|((q, _), r)| *q == 1 && r.timestamp.unwrap() >= 1_800_000_150_000)
            .min_by_key(|((_, o), _)| *o)
            .unwrap();
        let m = api(
            &broker,
            "/api/v1/topics/orders/partitions/1/messages?timestamp=1800000150000&limit=1",
        );
        assert_eq!(m["messages"][0]["offset"], first_late, "{m}");
        // Default: the latest records.
        let m = api(
            &broker,
            "/api/v1/topics/orders/partitions/2/messages?limit=5",
        );
        let end = landed.keys().filter(|(q, _)| *q == 2).count() as i64;
        assert_eq!(m["messages"].as_array().unwrap().len(), 5);
        assert_eq!(m["messages"][4]["offset"], end - 1);
        assert!(m["next_offset"].is_null());
        let (status, _) = broker.http_get("/api/v1/topics/orders/partitions/7/messages");
        assert_eq!(status, 404);
        let (status, _) = broker.http_get("/api/v1/topics/nope");
        assert_eq!(status, 404);
        let (status, body) =
            broker.http_get("/api/v1/topics/orders/partitions/0/messages?offset=x");
        assert_eq!(status, 400, "{body}");

        let groups = api(&broker, "/api/v1/groups");
        let billing = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group_id"] == "billing")
            .expect("the group is listed")
            .clone();
        assert_eq!(billing["state"], "Stable", "{billing}");
        assert_eq!(billing["lag"], expected_lag, "{billing}");
        let group = api(&broker, "/api/v1/groups/billing");
        let members = group["members"].as_array().unwrap();
        assert_eq!(members.len(), 1, "{group}");
        let assigned = members[0]["assignment"]["orders"].as_array().unwrap();
        assert_eq!(assigned.len(), 3, "{group}");
        let lag: i64 = group["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["lag"].as_i64().unwrap())
            .sum();
        assert_eq!(lag, expected_lag);
        assert_eq!(group["lag"], lag);

        // The lag history: sampled every 10 s for the groups with members here.
        wait_until(Duration::from_secs(40), "a lag sample of the group", || {
            let group = api(&broker, "/api/v1/groups/billing");
            group["lag_history"]
                .as_array()
                .and_then(|h| h.last())
                .is_some_and(|sample| sample[1] == expected_lag)
        });
        let page = broker.http_get("/ui/groups/billing").1;
        assert!(
            page.contains("Total lag, last hour"),
            "the lag chart is drawn"
        );

        let bucket = api(&broker, "/api/v1/bucket");
        assert!(bucket["objects"].as_u64().unwrap() > 0, "{bucket}");
        assert_eq!(bucket["topics"].as_array().unwrap().len(), 2);
    });
    drop(consumer);
    broker.stop();
}

/// Goal: every page renders from a real broker, links to the next, escapes what it shows,
/// and the console changes nothing. Method: a topic with JSON, text, binary and
/// `<script>` values and a group with committed offsets; GET each page and follow the
/// topic → messages and group → lag links; `/` redirects to `/ui/`; POST is refused; an
/// unknown topic is a 404 page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_and_links_and_the_console_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 2).await;
    let p = producer(&bootstrap, &[]);
    produce_all(&p, "orders", &orders()).await;
    let consumer = group_member(&bootstrap, "shipping", "orders", 100);

    tokio::task::block_in_place(|| {
        let (head, _) = raw(&broker, "GET", "/");
        assert!(head.starts_with("HTTP/1.1 302"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("location: /ui/"),
            "{head}"
        );
        let (head, _) = raw(&broker, "POST", "/api/v1/topics");
        assert!(head.starts_with("HTTP/1.1 405"), "{head}");

        let page = |path: &str| {
            let (status, body) = broker.http_get(path);
            assert_eq!(status, 200, "GET {path}:\n{body}");
            assert!(body.starts_with("<!doctype html>"), "{path}");
            body
        };
        let overview = page("/ui/");
        assert!(overview.contains("Traffic, last hour"));
        assert!(overview.contains("(this one)"));
        let topics = page("/ui/topics");
        assert!(topics.contains("href=\"/ui/topics/orders\""));
        let topic = page("/ui/topics/orders");
        assert!(topic.contains("href=\"/ui/topics/orders?partition=0#messages\""));
        let messages = page("/ui/topics/orders?partition=0&offset=0&limit=50");
        assert!(
            messages.contains("<pre class=\"json\">"),
            "JSON values are pretty-printed"
        );
        assert!(
            messages.contains("<pre class=\"hex\">deadbeef"),
            "binary values in hex"
        );
        assert!(
            messages.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                && !messages.contains("<script>alert"),
            "values are escaped"
        );
        assert!(messages.contains("Next messages"), "a next page link");
        let groups = page("/ui/groups");
        assert!(groups.contains("href=\"/ui/groups/shipping\""));
        let group = page("/ui/groups/shipping");
        assert!(group.contains("Total lag"));
        assert!(group.contains("Committed offsets and lag"));
        assert!(group.contains("href=\"/ui/topics/orders\""));
        let bucket = page("/ui/bucket");
        assert!(bucket.contains("Objects referenced"));
        let (status, css) = broker.http_get("/ui/assets/console.css");
        assert_eq!(status, 200);
        assert!(css.contains("font"));
        let (status, body) = broker.http_get("/ui/topics/missing");
        assert_eq!(status, 404);
        assert!(body.contains("no topic"));
    });
    drop(consumer);
    broker.stop();
}

/// Goal: a person can use the console in a real browser. Method: a topic with messages and
/// a group with committed offsets; tests/clients/console_browser.mjs drives headless
/// chromium (playwright-core, Debian's browser) through overview → topics → topic →
/// partition 0's messages → from offset 0 → next page → groups → the group's lag → bucket,
/// saving a screenshot of each page under the test's target tmp dir; what each page showed
/// is checked here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_walks_from_topics_to_messages_and_from_groups_to_lag() {
    let chromium = std::env::var("STRATO_TEST_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no browser at {chromium}: install Debian's chromium (`apt-get install chromium`; \
         ./scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 1).await;
    let p = producer(&bootstrap, &[]);
    produce_all(&p, "orders", &orders()).await;
    let consumer = group_member(&bootstrap, "invoicing", "orders", 120);
    drop(consumer);
    let screenshots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let url = format!("http://{}", broker.http_addr);
    let out = tokio::task::block_in_place(|| {
        common::run_node_script(
            "console_browser.mjs",
            &[
                "--url",
                &url,
                "--topic",
                "orders",
                "--group",
                "invoicing",
                "--expect-value",
                "plain text 1",
                "--out",
                screenshots.to_str().unwrap(),
                "--chromium",
                &chromium,
            ],
        )
    });
    let pages = &out["pages"];
    assert_eq!(pages["overview"]["heading"], "Overview", "{out}");
    assert_eq!(pages["overview"]["charts"], 3, "{out}");
    assert_eq!(pages["topics"]["rows"], 1, "{out}");
    assert_eq!(pages["topic"]["latest_rows"], 50, "{out}");
    assert_eq!(pages["topic"]["first_offset"], "0", "{out}");
    assert_eq!(pages["topic"]["shows_expected_value"], true, "{out}");
    assert_eq!(pages["topic"]["next_first_offset"], "50", "{out}");
    assert_eq!(pages["group"]["total_lag"], "180", "{out}");
    assert_eq!(pages["group"]["offset_rows"], 1, "{out}");
    assert_ne!(pages["bucket"]["objects"], "0", "{out}");
    assert_eq!(out["page_errors"], serde_json::json!([]), "{out}");
    let shots = out["screenshots"].as_array().unwrap();
    assert_eq!(shots.len(), 6, "{out}");
    for shot in shots {
        let size = std::fs::metadata(shot.as_str().unwrap()).unwrap().len();
        assert!(size > 10_000, "{shot} is a real screenshot ({size} bytes)");
    }
    eprintln!("screenshots in {}", screenshots.display());
    broker.stop();
}

/// The status code of a raw exchange's head.
fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head}"))
}

/// Goal: with the authorizer on, the console is for the cluster's users, and each sees
/// what their ACLs let a Kafka client of theirs see. Method: users alice and admin (SCRAM);
/// while `User:ANONYMOUS` is a super user, topics "public" and "secret" get records and alice
/// gets READ on "public" only; then the broker runs with only admin as super user. No
/// credentials or a wrong password: 401 with a Basic challenge. alice: the topic listing
/// and the topics page show "public" only; "secret" (its page, its messages) is 403, and so
/// is the overview (no DESCRIBE on the cluster); "public"'s messages are served. admin sees
/// everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_authorizer_on_users_log_in_and_see_what_their_acls_allow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    tokio::task::block_in_place(|| {
        common::add_user(&data, "alice", "alice-secret");
        common::add_user(&data, "admin", "admin-secret");
    });
    let setup = Broker::start(
        dir.path(),
        &["--authorizer", "true", "--super-users", "User:ANONYMOUS"],
    );
    let bootstrap = setup.bootstrap();
    create_topic(&bootstrap, "public", 1).await;
    create_topic(&bootstrap, "secret", 1).await;
    let p = producer(&bootstrap, &[]);
    produce_all(&p, "public", &orders()[..10]).await;
    produce_all(&p, "secret", &orders()[..10]).await;
    drop(p);
    let out = tokio::task::block_in_place(|| {
        common::run_with_timeout(
            std::process::Command::new(env!("CARGO_BIN_EXE_strato")).args([
                "acl",
                "create",
                "--bootstrap",
                &bootstrap,
                "--allow-principal",
                "User:alice",
                "--operation",
                "Read",
                "--topic",
                "public",
            ]),
            Duration::from_secs(60),
        )
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    setup.stop();
    let broker = Broker::start(
        dir.path(),
        &["--authorizer", "true", "--super-users", "User:admin"],
    );

    tokio::task::block_in_place(|| {
        let alice = Some(("alice", "alice-secret"));
        let admin = Some(("admin", "admin-secret"));
        let (head, _) = raw_as(&broker, "GET", "/api/v1/topics", None);
        assert_eq!(status_of(&head), 401, "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{head}"
        );
        let (head, _) = raw_as(&broker, "GET", "/ui/topics", Some(("alice", "wrong")));
        assert_eq!(status_of(&head), 401, "{head}");

        let (head, body) = raw_as(&broker, "GET", "/api/v1/topics", alice);
        assert_eq!(status_of(&head), 200, "{body}");
        let topics: Value = serde_json::from_str(&body).unwrap();
        let names: Vec<&str> = topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["public"]);
        let (head, body) = raw_as(&broker, "GET", "/ui/topics", alice);
        assert_eq!(status_of(&head), 200);
        assert!(body.contains("/ui/topics/public") && !body.contains("secret"));
        for path in [
            "/api/v1/topics/secret",
            "/api/v1/topics/secret/partitions/0/messages",
            "/ui/topics/secret",
            "/api/v1/cluster",
            "/ui/",
            "/api/v1/bucket",
        ] {
            let (head, body) = raw_as(&broker, "GET", path, alice);
            assert_eq!(status_of(&head), 403, "{path}: {body}");
        }
        let (head, body) = raw_as(
            &broker,
            "GET",
            "/api/v1/topics/public/partitions/0/messages?offset=0",
            alice,
        );
        assert_eq!(status_of(&head), 200, "{body}");
        let messages: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(messages["messages"].as_array().unwrap().len(), 10);

        let (head, body) = raw_as(&broker, "GET", "/api/v1/topics", admin);
        assert_eq!(status_of(&head), 200);
        let topics: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(topics["topics"].as_array().unwrap().len(), 2);
        let (head, _) = raw_as(&broker, "GET", "/ui/", admin);
        assert_eq!(status_of(&head), 200);
    });
    broker.stop();
}

/// Goal: behind an ingress that forwards `/strato/...` unchanged, the console works under
/// that prefix. Method: a broker with `--console-base-path /strato/`; `/strato` redirects to
/// `/strato/ui/`, pages link and load their stylesheet under the prefix, the API answers
/// there, and `/ui/` (without it) is not the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_lives_under_a_base_path() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--console-base-path", "/strato/"]);
    create_topic(&broker.bootstrap(), "orders", 1).await;
    tokio::task::block_in_place(|| {
        let (head, _) = raw(&broker, "GET", "/strato");
        assert_eq!(status_of(&head), 302, "{head}");
        assert!(
            head.to_ascii_lowercase().contains("location: /strato/ui/"),
            "{head}"
        );
        let (status, body) = broker.http_get("/strato/ui/topics");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("href=\"/strato/ui/topics/orders\""), "{body}");
        assert!(body.contains("href=\"/strato/ui/assets/console.css\""));
        assert!(!body.contains("=\"/ui/"), "no link escapes the prefix");
        let (status, css) = broker.http_get("/strato/ui/assets/console.css");
        assert_eq!(status, 200);
        assert!(css.contains("font"));
        let topics = api(&broker, "/strato/api/v1/topics");
        assert_eq!(topics["topics"][0]["name"], "orders");
        let (status, _) = broker.http_get("/ui/");
        assert_eq!(status, 404);
        let (status, _) = broker.http_get("/metrics");
        assert_eq!(status, 200, "the operators' endpoints stay at the root");
    });
    broker.stop();
}

/// One HTTP/1.1 exchange with extra headers and a body: (status line and headers, body).
fn request(
    broker: &Broker,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(broker.http_addr).expect("connect HTTP");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: console.test\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(text.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_string(), body.to_string())
}

const JSON: (&str, &str) = ("Content-Type", "application/json");
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// Goal: with `--console-write true` the console creates and deletes topics and resets an
/// inactive group's offsets, through the API and through the pages' forms, with the checks
/// of the Kafka APIs. Method: create "made" (2 partitions, retention.ms) by the API; a bad
/// config is 400, a second create 409, a POST from another site's page 403; 100 records and
/// a group that commits 30 and leaves; reset it to latest (lag 0), to offset 5 and to
/// earliest, each read back; while a member is active the reset is 409; a form creates
/// "formmade" and deletes it once its name is typed; DELETE removes "made".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_console_write_topics_are_created_and_deleted_and_offsets_reset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--console-write", "true"]);
    let bootstrap = broker.bootstrap();
    let create = r#"{"name":"made","partitions":2,"configs":{"retention.ms":"3600000"}}"#;
    tokio::task::block_in_place(|| {
        let (head, body) = request(&broker, "POST", "/api/v1/topics", &[JSON], create);
        assert_eq!(status_of(&head), 201, "{body}");
        let (head, _) = request(&broker, "POST", "/api/v1/topics", &[JSON], create);
        assert_eq!(status_of(&head), 409);
        let bad = r#"{"name":"bad","configs":{"retention.ms":"soon"}}"#;
        let (head, body) = request(&broker, "POST", "/api/v1/topics", &[JSON], bad);
        assert_eq!(status_of(&head), 400, "{body}");
        let (head, _) = request(
            &broker,
            "POST",
            "/api/v1/topics",
            &[JSON, ("Origin", "https://evil.example")],
            r#"{"name":"evil"}"#,
        );
        assert_eq!(status_of(&head), 403, "{head}");
        let topic = api(&broker, "/api/v1/topics/made");
        assert_eq!(topic["partitions"], 2);
        assert_eq!(topic["overrides"]["retention.ms"], "3600000");
        let (status, _) = broker.http_get("/api/v1/topics/evil");
        assert_eq!(status, 404, "the refused create created nothing");
    });

    let p = producer(&bootstrap, &[]);
    let landed = produce_all(&p, "made", &orders()[..100]).await;
    let end = |p: i32| landed.keys().filter(|(q, _)| *q == p).count() as i64;
    let consumer = group_member(&bootstrap, "resettable", "made", 30);
    tokio::task::block_in_place(|| {
        let reset = r#"{"topic":"made","to":"latest"}"#;
        let path = "/api/v1/groups/resettable/reset-offsets";
        let (head, body) = request(&broker, "POST", path, &[JSON], reset);
        assert_eq!(status_of(&head), 409, "an active member: {body}");
    });
    drop(consumer);
    tokio::task::block_in_place(|| {
        let path = "/api/v1/groups/resettable/reset-offsets";
        wait_until(Duration::from_secs(30), "the member has left", || {
            api(&broker, "/api/v1/groups/resettable")["members"]
                .as_array()
                .is_none_or(Vec::is_empty)
        });
        let committed = |group: &Value| -> Vec<i64> {
            group["offsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["committed_offset"].as_i64().unwrap())
                .collect()
        };
        let (head, body) = request(
            &broker,
            "POST",
            path,
            &[JSON],
            r#"{"topic":"made","to":"latest"}"#,
        );
        assert_eq!(status_of(&head), 200, "{body}");
        let group = api(&broker, "/api/v1/groups/resettable");
        assert_eq!(group["lag"], 0, "{group}");
        assert_eq!(committed(&group), vec![end(0), end(1)]);
        let (head, body) = request(
            &broker,
            "POST",
            path,
            &[JSON],
            r#"{"topic":"made","to":"offset","value":5}"#,
        );
        assert_eq!(status_of(&head), 200, "{body}");
        let group = api(&broker, "/api/v1/groups/resettable");
        assert_eq!(committed(&group), vec![5.min(end(0)), 5.min(end(1))]);
        // The page's form: to earliest, then the group page.
        let (head, body) = request(
            &broker,
            "POST",
            "/ui/groups/resettable",
            &[FORM, ("Origin", "http://console.test")],
            "topic=made&to=earliest&value=",
        );
        assert_eq!(status_of(&head), 303, "{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("location: /ui/groups/resettable")
        );
        let group = api(&broker, "/api/v1/groups/resettable");
        assert_eq!(committed(&group), vec![0, 0]);
        assert_eq!(group["lag"], 100);

        // A topic by the form, deleted once its name is typed.
        let (head, body) = request(
            &broker,
            "POST",
            "/ui/topics",
            &[FORM],
            "name=formmade&partitions=1&configs=cleanup.policy%3Dcompact",
        );
        assert_eq!(status_of(&head), 303, "{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("location: /ui/topics/formmade")
        );
        let topic = api(&broker, "/api/v1/topics/formmade");
        assert_eq!(topic["cleanup_policy"], "compact");
        let page = broker.http_get("/ui/topics/formmade").1;
        assert!(page.contains("Delete the topic"));
        let (head, body) = request(
            &broker,
            "POST",
            "/ui/topics/formmade",
            &[FORM],
            "confirm=nope",
        );
        assert_eq!(status_of(&head), 400, "{body}");
        assert!(body.contains("to confirm"));
        let (head, _) = request(
            &broker,
            "POST",
            "/ui/topics/formmade",
            &[FORM],
            "confirm=formmade",
        );
        assert_eq!(status_of(&head), 303);
        let (status, _) = broker.http_get("/api/v1/topics/formmade");
        assert_eq!(status, 404);

        let (head, body) = request(&broker, "DELETE", "/api/v1/topics/made", &[], "");
        assert_eq!(status_of(&head), 200, "{body}");
        let (status, _) = broker.http_get("/api/v1/topics/made");
        assert_eq!(status, 404);
    });
    broker.stop();
}

/// Goal: any broker's console shows a group's members, though only its coordinator keeps
/// them. Method: two brokers on etcd; a consumer of group "spread" stays subscribed; the
/// broker that does not coordinate the group answers `/api/v1/groups/spread` with the
/// member (asked from the coordinator's console) and its page lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_broker_shows_the_members_of_a_group_another_coordinates() {
    let cluster = tokio::task::block_in_place(|| {
        common::cluster::Cluster::start(2, "/strato/console-members")
    });
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "spread", 2).await;
    let p = producer(&bootstrap, &[]);
    produce_all(&p, "spread", &orders()[..20]).await;
    let consumer = group_member(&bootstrap, "spread", "spread", 20);
    tokio::task::block_in_place(|| {
        let brokers: Vec<&Broker> = cluster.brokers.values().collect();
        let group = api(brokers[0], "/api/v1/groups/spread");
        let coordinator = group["coordinator"].as_i64().unwrap();
        let other = brokers
            .iter()
            .find(|b| api(b, "/api/v1/cluster")["broker_id"].as_i64() != Some(coordinator))
            .expect("a broker that does not coordinate the group");
        wait_until(
            Duration::from_secs(30),
            "the other broker shows the member",
            || {
                let group = api(other, "/api/v1/groups/spread");
                group["members"].as_array().is_some_and(|m| m.len() == 1)
            },
        );
        let group = api(other, "/api/v1/groups/spread");
        assert_eq!(group["state"], "Stable", "{group}");
        // Every broker's view counts the actual leaders of both partitions.
        for broker in &brokers {
            let cluster = api(broker, "/api/v1/cluster");
            let led: i64 = cluster["brokers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["partitions_led"].as_i64().unwrap())
                .sum();
            assert_eq!(led, 2, "{cluster}");
        }
        assert_eq!(
            group["members"][0]["assignment"]["spread"],
            serde_json::json!([0, 1])
        );
        let page = other.http_get("/ui/groups/spread").1;
        assert!(
            page.contains("Assigned partitions") && page.contains("spread [0,1]"),
            "{page}"
        );
    });
    drop(consumer);
}

/// Goal: the console's passwords need not cross a network in the clear: with `--http-tls
/// true` the HTTP listener speaks TLS with the broker's certificate. Method: a broker with
/// a certificate from a test CA, the authorizer on and user admin; Python's urllib, trusting
/// only that CA, logs in and reads `/api/v1/cluster` over HTTPS; plain HTTP to the same port
/// gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let pki = common::pki::Pki::new(dir.path(), "console");
    let cert = pki.broker();
    tokio::task::block_in_place(|| common::add_user(&data, "admin", "admin-secret"));
    let broker = Broker::start(
        dir.path(),
        &[
            "--tls-cert",
            cert.cert.to_str().unwrap(),
            "--tls-key",
            cert.key.to_str().unwrap(),
            "--http-tls",
            "true",
            "--authorizer",
            "true",
            "--super-users",
            "User:admin",
        ],
    );
    let url = format!(
        "https://127.0.0.1:{}/api/v1/cluster",
        broker.http_addr.port()
    );
    let script = "import base64, json, ssl, sys, urllib.request\n\
                  context = ssl.create_default_context(cafile=sys.argv[1])\n\
                  login = base64.b64encode(b'admin:admin-secret').decode()\n\
                  request = urllib.request.Request(sys.argv[2], headers={'Authorization': 'Basic ' + login})\n\
                  print(json.dumps(json.load(urllib.request.urlopen(request, context=context, timeout=30))))\n";
    let out = tokio::task::block_in_place(|| {
        common::run_with_timeout(
            std::process::Command::new(common::python())
                .args(["-c", script])
                .arg(pki.ca_file())
                .arg(&url),
            Duration::from_secs(60),
        )
    });
    assert!(
        out.status.success(),
        "HTTPS request failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(cluster["brokers"].as_array().unwrap().len(), 1, "{cluster}");
    tokio::task::block_in_place(|| {
        let mut stream = std::net::TcpStream::connect(broker.http_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        write!(
            stream,
            "GET /api/v1/cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        assert!(
            !response.starts_with(b"HTTP/1.1"),
            "plain HTTP is not answered: {:?}",
            String::from_utf8_lossy(&response)
        );
    });
    broker.stop();
}

/// Goal: the bucket page shows the garbage waiting for its grace period. Method: 20 sends
/// make 20 small chunks; compaction (every 100 ms) merges them, leaving their objects
/// unreferenced; collection passes (every 100 ms, 1 h grace) count them without deleting
/// them: `/api/v1/bucket` reports them as waiting, and none deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_shows_garbage_waiting_for_its_grace() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--compaction-interval-ms",
            "100",
            "--gc-interval-ms",
            "100",
            "--gc-grace-ms",
            "3600000",
        ],
    );
    create_topic(&broker.bootstrap(), "merged", 1).await;
    let p = producer(&broker.bootstrap(), &[]);
    for sends in orders()[..200].chunks(10) {
        produce_all(&p, "merged", sends).await;
    }
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(60),
            "merged chunks' objects wait",
            || {
                api(&broker, "/api/v1/bucket")["gc"]["waiting_objects"]
                    .as_u64()
                    .is_some_and(|n| n >= 10)
            },
        );
        let bucket = api(&broker, "/api/v1/bucket");
        assert_eq!(bucket["gc"]["deleted_objects"], 0, "{bucket}");
        let page = broker.http_get("/ui/bucket").1;
        assert!(page.contains("Garbage within its grace"));
    });
    broker.stop();
}
