//! The operator CLI's Kafka client (`strato::cli`): against a real broker it negotiates
//! versions, reads Metadata and routes ListOffsets to leaders; against fake peers that
//! misbehave it fails with a clear error instead of hanging or allocating without bound.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::kafka::{create_topic, produce_all, producer, record};
use common::{Broker, run_with_timeout};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DescribeGroupsRequest, ListGroupsRequest,
    MetadataRequest, MetadataResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strato::cli::cluster::{Client, OffsetSpec, TopicPartition};
use strato::cli::kafka_client::{ClientError, ClientOptions, Connection, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Goal: the client's view of a real broker matches what was produced. Method: produce
/// records with rdkafka, then ask for the topic layout and the earliest, latest and
/// by-timestamp offsets of every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_list_offsets_against_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 3).await;
    let records: Vec<_> = (0..60).map(|i| record("none", i)).collect();
    let landed = produce_all(&producer(&bootstrap, &[]), "orders", &records).await;
    let mut produced: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, _) in landed.keys() {
        *produced.entry(*partition).or_default() += 1;
    }

    let mut client = Client::connect(&bootstrap, ClientOptions::default())
        .await
        .expect("connect to the broker");
    assert!(!client.node_ids().is_empty(), "Metadata lists the broker");

    let topics = vec!["orders".to_string(), "no-such-topic".to_string()];
    let layouts = client.topic_layouts(&topics).await.unwrap();
    let orders = layouts["orders"].as_ref().expect("orders exists");
    assert_eq!(orders.leaders.len(), 3);
    assert!(orders.leaders.values().all(Result::is_ok), "{orders:?}");
    assert_eq!(
        layouts["no-such-topic"],
        Err(ErrorCode(3)),
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let again = client.topic_layouts(&topics[1..]).await.unwrap();
    assert!(
        again["no-such-topic"].is_err(),
        "the client's Metadata request does not create topics"
    );

    let partitions: Vec<TopicPartition> =
        (0..3).map(|p| TopicPartition::new("orders", p)).collect();
    let latest = client
        .list_offsets(&partitions, OffsetSpec::Latest)
        .await
        .unwrap();
    let earliest = client
        .list_offsets(&partitions, OffsetSpec::Earliest)
        .await
        .unwrap();
    for tp in &partitions {
        let count = produced.get(&tp.partition).copied().unwrap_or(0);
        assert_eq!(latest[tp], Ok(count), "log end offset of {tp}");
        assert_eq!(earliest[tp], Ok(0), "log start offset of {tp}");
    }
    // Every record is at or after the epoch, none in the year 2100.
    let from_start = client
        .list_offsets(&partitions, OffsetSpec::Timestamp(0))
        .await
        .unwrap();
    let future = client
        .list_offsets(&partitions, OffsetSpec::Timestamp(4_102_444_800_000))
        .await
        .unwrap();
    for tp in &partitions {
        if produced.contains_key(&tp.partition) {
            assert_eq!(from_start[tp], Ok(0), "first record of {tp}");
        }
        assert_eq!(future[tp], Ok(-1), "no record that recent in {tp}");
    }

    let missing = [TopicPartition::new("orders", 7)];
    let result = client
        .list_offsets(&missing, OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(result[&missing[0]], Err(ErrorCode(3)));
}

/// A fake broker on a free port: every connection's requests are answered by `respond`
/// (api key, api version, correlation id) -> whole response frame, or nothing at all.
async fn fake_peer(
    respond: impl Fn(i16, i16, i32) -> Option<Vec<u8>> + Clone + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let respond = respond.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(len) = stream.read_i32().await else {
                        return;
                    };
                    let mut frame = vec![0u8; len as usize];
                    if stream.read_exact(&mut frame).await.is_err() {
                        return;
                    }
                    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
                    let version = i16::from_be_bytes([frame[2], frame[3]]);
                    let correlation_id =
                        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                    match respond(api_key, version, correlation_id) {
                        Some(bytes) => {
                            if stream.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        // Stay silent, keeping the connection open.
                        None => std::future::pending::<()>().await,
                    }
                }
            });
        }
    });
    addr
}

/// A response frame: length, header v0 (correlation id), body at `version`.
fn response_frame(correlation_id: i32, body: &impl Encodable, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, 0)
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

/// An ApiVersions v3 answer advertising `apis`.
fn api_versions(correlation_id: i32, apis: &[(ApiKey, i16, i16)]) -> Vec<u8> {
    let response = ApiVersionsResponse::default().with_api_keys(
        apis.iter()
            .map(|(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(*key as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    );
    response_frame(correlation_id, &response, 3)
}

fn quick_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn an_oversized_response_is_refused() {
    let addr = fake_peer(|api_key, _, correlation_id| {
        if api_key == ApiKey::ApiVersions as i16 {
            Some(api_versions(correlation_id, &[(ApiKey::Metadata, 0, 12)]))
        } else {
            // Claims 2 GiB; the client must not try to allocate it.
            Some(i32::MAX.to_be_bytes().to_vec())
        }
    })
    .await;
    let err = Client::connect(&addr, quick_options()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ResponseSize { size, .. } if size == i64::from(i32::MAX)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_mismatched_correlation_id_is_an_error() {
    let addr = fake_peer(|_, _, correlation_id| {
        Some(api_versions(
            correlation_id + 1,
            &[(ApiKey::Metadata, 0, 12)],
        ))
    })
    .await;
    let err = Connection::connect(&addr, quick_options())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::CorrelationMismatch { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_silent_peer_times_out() {
    let addr = fake_peer(|_, _, _| None).await;
    let err = Connection::connect(&addr, quick_options())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::RequestTimeout {
                api: ApiKey::ApiVersions,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn missing_apis_and_versions_are_named() {
    let addr = fake_peer(|_, _, correlation_id| {
        Some(api_versions(
            correlation_id,
            &[(ApiKey::Metadata, 0, 12), (ApiKey::DescribeGroups, 7, 9)],
        ))
    })
    .await;
    let connection = Connection::connect(&addr, quick_options()).await.unwrap();
    assert_eq!(connection.version::<MetadataRequest>().unwrap(), 12);
    let err = connection.version::<ListGroupsRequest>().unwrap_err();
    assert!(matches!(err, ClientError::UnsupportedApi { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not support ListGroups"),
        "{err}"
    );
    let err = connection.version::<DescribeGroupsRequest>().unwrap_err();
    assert!(
        matches!(err, ClientError::NoCommonVersion { .. }),
        "{err:?}"
    );
}

/// Goal: `strato group list` against a broker without the group APIs says so in one line.
/// Method: a fake broker that answers ApiVersions and Metadata (itself as node 0) only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_list_names_the_missing_api() {
    let port = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let port_in_peer = port.clone();
    let addr = fake_peer(move |api_key, version, correlation_id| {
        if api_key == ApiKey::ApiVersions as i16 {
            return Some(api_versions(
                correlation_id,
                &[(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 1, 1)],
            ));
        }
        let broker = MetadataResponseBroker::default()
            .with_node_id(BrokerId(0))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(i32::from(*port_in_peer.get().expect("port set")));
        let response = MetadataResponse::default().with_brokers(vec![broker]);
        Some(response_frame(correlation_id, &response, version))
    })
    .await;
    let bound: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    port.set(bound).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        run_with_timeout(
            Command::new(env!("CARGO_BIN_EXE_strato")).args([
                "group",
                "list",
                "--bootstrap",
                &addr,
                "--request-timeout-ms",
                "2000",
            ]),
            Duration::from_secs(30),
        )
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not support ListGroups"), "{stderr}");
}
