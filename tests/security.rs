//! Kafka's security model from the outside: listeners of every security protocol, TLS with
//! certificates made here (rcgen), SASL (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN) against users
//! made with `strato user`, and connection hygiene. Clients: librdkafka (rdkafka crate) and
//! raw frames for what clients do not show (error codes, closed connections, v0 tokens).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::wire::call;
use common::{Broker, add_user, run_client_script_with_env, wait_until, wire};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use strato::security::scram::{ScramClient, ScramMechanism};

/// Runs `strato ARGS` with `input` on standard input.
fn strato(args: &[&str], input: &str) -> std::process::Output {
    common::run_with_input(
        Command::new(env!("CARGO_BIN_EXE_strato")).args(args),
        Some(input.as_bytes()),
        Duration::from_secs(60),
    )
}

/// librdkafka settings for a SASL login on `bootstrap`.
fn sasl(
    bootstrap: String,
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    ca: Option<&Path>,
) -> Vec<(String, String)> {
    let mut settings = vec![
        ("bootstrap.servers".to_string(), bootstrap),
        ("security.protocol".to_string(), protocol.to_string()),
        ("sasl.mechanism".to_string(), mechanism.to_string()),
        ("sasl.username".to_string(), user.to_string()),
        ("sasl.password".to_string(), password.to_string()),
    ];
    if let Some(ca) = ca {
        settings.push(("ssl.ca.location".to_string(), ca.display().to_string()));
    }
    settings
}

fn config(settings: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("message.timeout.ms", "20000")
        .set("socket.timeout.ms", "10000");
    for (k, v) in settings {
        config.set(k, v);
    }
    config
}

/// Collects the errors librdkafka reports (authentication and TLS failures arrive here).
#[derive(Clone, Default)]
struct ErrorLog(Arc<Mutex<Vec<String>>>);

impl ClientContext for ErrorLog {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for ErrorLog {}

impl ErrorLog {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// Asks for metadata with `settings`: `Ok(broker ports)`, or the errors librdkafka reported
/// (it reports a refused login or TLS handshake within a second or so, then keeps retrying:
/// waiting for the first report is enough).
fn metadata(settings: &[(String, String)]) -> Result<Vec<i32>, String> {
    let errors = ErrorLog::default();
    let mut config = config(settings);
    config.set("group.id", "security-tests");
    let consumer: BaseConsumer<ErrorLog> = config
        .create_with_context(errors.clone())
        .expect("create consumer");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let result = consumer.fetch_metadata(None, Duration::from_secs(2));
        // Error events reach the context only while the consumer is polled.
        let _ = consumer.poll(Duration::from_millis(100));
        match result {
            Ok(metadata) => return Ok(metadata.brokers().iter().map(|b| b.port()).collect()),
            Err(err) if !errors.text().is_empty() => {
                return Err(format!("{err}\n{}", errors.text()));
            }
            Err(err) => assert!(
                Instant::now() < end,
                "no metadata and no error report: {err}"
            ),
        }
    }
}

/// Produces one record with `settings` and returns its offset.
async fn produce_one(settings: &[(String, String)], topic: &str, value: &str) -> i64 {
    let producer: rdkafka::producer::FutureProducer = config(settings).create().unwrap();
    producer
        .send(
            FutureRecord::<(), _>::to(topic).payload(value),
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|(err, _)| panic!("produce {value}: {err}"))
        .offset
}

/// Reads partition 0 of `topic` from the start until `count` values arrived.
fn consume_values(settings: &[(String, String)], topic: &str, count: usize) -> Vec<String> {
    use rdkafka::Message;
    let mut config = config(settings);
    config
        .set("group.id", "security-tests")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut values = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while values.len() < count {
        assert!(Instant::now() < end, "consumed only {values:?}");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume without error");
            values.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into());
        }
    }
    values
}

/// Goal: the right password logs in with each mechanism over SASL_SSL and SASL_PLAINTEXT,
/// and a wrong one is refused with Kafka's SASL_AUTHENTICATION_FAILED message. Metadata
/// gives each client the addresses of the listener it came in on. Method: a broker with
/// PLAINTEXT, SASL_PLAINTEXT and SASL_SSL listeners and a user made with `strato user`;
/// librdkafka produces with each mechanism and reads everything back.
#[tokio::test(flavor = "multi_thread")]
async fn sasl_logins_with_librdkafka() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let broker = sasl_broker(dir.path(), &pki, &[("alice", "alice-secret")], &[]);
    let sasl_ssl = broker.listener("SASL_SSL");
    let sasl_plaintext = broker.listener("SASL_PLAINTEXT");
    let ca = pki.ca_file();
    let mut expected = Vec::new();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        for (protocol, addr, ca) in [
            ("SASL_SSL", sasl_ssl, Some(ca.as_path())),
            ("SASL_PLAINTEXT", sasl_plaintext, None),
        ] {
            let settings = sasl(
                addr.to_string(),
                protocol,
                mechanism,
                "alice",
                "alice-secret",
                ca,
            );
            assert_eq!(
                metadata(&settings).unwrap(),
                vec![i32::from(addr.port())],
                "{protocol}: Metadata names the {protocol} listener"
            );
            let value = format!("{protocol}-{mechanism}");
            produce_one(&settings, "secured", &value).await;
            expected.push(value);
        }
    }
    let reader = sasl(
        sasl_ssl.to_string(),
        "SASL_SSL",
        "SCRAM-SHA-512",
        "alice",
        "alice-secret",
        Some(&ca),
    );
    assert_eq!(consume_values(&reader, "secured", expected.len()), expected);

    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        for (user, password) in [("alice", "wrong"), ("nobody", "alice-secret")] {
            let settings = sasl(
                sasl_ssl.to_string(),
                "SASL_SSL",
                mechanism,
                user,
                password,
                Some(&ca),
            );
            let err = metadata(&settings).expect_err("a wrong password is refused");
            assert!(
                err.contains(&format!(
                    "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
                )),
                "{mechanism} {user}: {err}"
            );
        }
    }
    let (_, metrics) = broker.http_get("/metrics");
    assert!(
        metrics.contains(
            r#"strato_sasl_authentications_total{mechanism="SCRAM-SHA-512",result="failure"}"#
        ),
        "{metrics}"
    );
    assert!(
        !broker.log_text().contains("alice-secret"),
        "no password in the broker's log"
    );
}

/// Goal: TLS is checked both ways. A client that does not trust the broker's CA fails; an
/// SSL listener with --tls-client-ca refuses a client without a certificate and one whose
/// certificate another CA signed, and serves one the CA signed.
#[tokio::test(flavor = "multi_thread")]
async fn tls_trust_is_checked_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let other = Pki::new(dir.path(), "other");
    let broker_cert = pki.broker();
    let broker = Broker::start(
        dir.path(),
        &[
            "--listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
            "--tls-cert",
            broker_cert.cert.to_str().unwrap(),
            "--tls-key",
            broker_cert.key.to_str().unwrap(),
            "--tls-client-ca",
            pki.ca_file().to_str().unwrap(),
        ],
    );
    let ssl = broker.listener("SSL").to_string();
    let client = |ca: &Path, cert: Option<&common::pki::CertFiles>| {
        let mut settings = vec![
            ("bootstrap.servers".to_string(), ssl.clone()),
            ("security.protocol".to_string(), "SSL".to_string()),
            ("ssl.ca.location".to_string(), ca.display().to_string()),
        ];
        if let Some(cert) = cert {
            settings.push((
                "ssl.certificate.location".to_string(),
                cert.cert.display().to_string(),
            ));
            settings.push((
                "ssl.key.location".to_string(),
                cert.key.display().to_string(),
            ));
        }
        settings
    };
    let bob = pki.client("bob");
    let mallory = other.client("mallory");
    let err = metadata(&client(&other.ca_file(), Some(&bob))).expect_err("unknown CA");
    assert!(err.contains("certificate verify failed"), "{err}");
    let err = metadata(&client(&pki.ca_file(), None)).expect_err("no client certificate");
    assert!(err.contains("certificate required"), "{err}");
    metadata(&client(&pki.ca_file(), Some(&mallory))).expect_err("a stranger's certificate");
    let bob_settings = client(&pki.ca_file(), Some(&bob));
    assert_eq!(
        metadata(&bob_settings).unwrap(),
        vec![i32::from(broker.listener("SSL").port())]
    );
    produce_one(&bob_settings, "mtls", "from bob").await;
    assert!(
        broker
            .log_text()
            .lines()
            .any(|l| l.contains("TLS client authenticated") && l.contains("principal=User:bob")),
        "{}",
        broker.log_text()
    );
    let (_, metrics) = broker.http_get("/metrics");
    assert!(
        !metrics.contains(r#"strato_connections_closed_total{reason="tls_handshake"} 0"#),
        "failed handshakes are counted: {metrics}"
    );
}

/// Goal: a rotated certificate is served without a restart. Method: replace the broker's
/// certificate and key with ones of another CA; a client trusting only the new CA gets in
/// within the deadline, and one trusting only the old CA no longer does.
#[tokio::test(flavor = "multi_thread")]
async fn certificates_rotate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = Pki::new(dir.path(), "old");
    let new = Pki::new(dir.path(), "new");
    let cert_file = dir.path().join("broker.pem");
    let key_file = dir.path().join("broker.key");
    let old_files = old.broker();
    std::fs::copy(&old_files.cert, &cert_file).unwrap();
    std::fs::copy(&old_files.key, &key_file).unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--listeners",
            "SSL://127.0.0.1:0",
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    );
    let ssl = broker.listener("SSL").to_string();
    let trusting = |ca: &Path| {
        vec![
            ("bootstrap.servers".to_string(), ssl.clone()),
            ("security.protocol".to_string(), "SSL".to_string()),
            ("ssl.ca.location".to_string(), ca.display().to_string()),
        ]
    };
    metadata(&trusting(&old.ca_file())).unwrap();
    metadata(&trusting(&new.ca_file())).expect_err("not yet rotated");
    let new_files = new.broker();
    // The key first, then the certificate, as a careless rotation would: the half-done
    // state is refused and the old pair stays in use until both are there.
    std::fs::copy(&new_files.key, &key_file).unwrap();
    std::fs::copy(&new_files.cert, &cert_file).unwrap();
    wait_until(Duration::from_secs(30), "the new certificate", || {
        metadata(&trusting(&new.ca_file())).is_ok()
    });
    metadata(&trusting(&old.ca_file())).expect_err("the old certificate is gone");
    assert!(broker.log_text().contains("TLS certificates reloaded"));
}

fn connect(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wire::IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(wire::IO_TIMEOUT)).unwrap();
    stream
}

fn handshake(stream: &mut std::net::TcpStream, mechanism: &str, version: i16) -> i16 {
    let response: SaslHandshakeResponse = call(
        stream,
        ApiKey::SaslHandshake,
        version,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
    );
    response.error_code
}

fn authenticate(stream: &mut std::net::TcpStream, token: Vec<u8>) -> SaslAuthenticateResponse {
    call(
        stream,
        ApiKey::SaslAuthenticate,
        2,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(token.into()),
    )
}

/// A whole SCRAM login over SaslAuthenticate v2; the response to the proof.
fn scram_login(
    stream: &mut std::net::TcpStream,
    mechanism: ScramMechanism,
    user: &str,
    password: &str,
) -> SaslAuthenticateResponse {
    assert_eq!(handshake(stream, mechanism.name(), 1), 0);
    let mut client = ScramClient::new(mechanism, user, password);
    let first = authenticate(stream, client.client_first());
    assert_eq!(first.error_code, 0, "{:?}", first.error_message);
    let last = authenticate(stream, client.client_final(&first.auth_bytes).unwrap());
    if last.error_code == 0 {
        client
            .verify_server_final(&last.auth_bytes)
            .expect("the broker knows the credential");
    }
    last
}

fn metadata_call(
    stream: &mut std::net::TcpStream,
    correlation_id: i32,
) -> Option<MetadataResponse> {
    wire::send(
        stream,
        ApiKey::Metadata,
        12,
        correlation_id,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    let mut frame = wire::read_frame(stream)?;
    use kafka_protocol::protocol::Decodable;
    kafka_protocol::messages::ResponseHeader::decode(
        &mut frame,
        ApiKey::Metadata.response_header_version(12),
    )
    .unwrap();
    Some(MetadataResponse::decode(&mut frame, 12).unwrap())
}

/// Goal: the SASL state machine as Kafka defines it, in frames: ApiVersions may come first,
/// anything else before authentication closes the connection; an unknown mechanism is
/// refused with the enabled list; a wrong password is answered SASL_AUTHENTICATION_FAILED
/// no sooner than --auth-failure-delay-ms and the connection closes; SaslHandshake v0 takes
/// bare tokens; with --connections-max-reauth-ms the session lifetime is announced, a
/// re-authentication as the same user succeeds, as another user is refused, and a request
/// after the session expired closes the connection.
#[test]
fn sasl_state_machine_in_frames() {
    let dir = tempfile::tempdir().unwrap();
    add_user(&dir.path().join("data"), "alice", "alice-secret");
    add_user(&dir.path().join("data"), "bob", "bob-secret");
    let broker = Broker::start(
        dir.path(),
        &[
            "--listeners",
            "SASL_PLAINTEXT://127.0.0.1:0",
            "--sasl-mechanisms",
            "SCRAM-SHA-512,PLAIN",
            "--auth-failure-delay-ms",
            "300",
            "--connections-max-reauth-ms",
            "3000",
        ],
    );
    let addr = broker.listener("SASL_PLAINTEXT");

    // Before authentication a frame over 512 KiB (Kafka's sasl.server.max.receive.size)
    // closes the connection before it is read.
    let mut stream = connect(addr);
    stream.write_all(&(600 * 1024_u32).to_be_bytes()).unwrap();
    assert!(
        wire::read_frame(&mut stream).is_none(),
        "a big frame before authentication"
    );

    // A request before authentication closes the connection; ApiVersions is answered.
    let mut stream = connect(addr);
    let versions: ApiVersionsResponse = call(
        &mut stream,
        ApiKey::ApiVersions,
        3,
        0,
        &ApiVersionsRequest::default(),
    );
    assert!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::SaslAuthenticate as i16 && k.max_version == 2)
    );
    assert!(
        metadata_call(&mut stream, 1).is_none(),
        "closed before authentication"
    );

    // An unknown or disabled mechanism: UNSUPPORTED_SASL_MECHANISM with the list, then closed.
    let mut stream = connect(addr);
    let response: SaslHandshakeResponse = call(
        &mut stream,
        ApiKey::SaslHandshake,
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("SCRAM-SHA-256")),
    );
    assert_eq!(response.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
    let names: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["SCRAM-SHA-512", "PLAIN"]);
    assert!(
        wire::read_frame(&mut stream).is_none(),
        "closed after the refusal"
    );

    // A wrong password: SASL_AUTHENTICATION_FAILED after the delay, then closed.
    let mut stream = connect(addr);
    assert_eq!(handshake(&mut stream, "PLAIN", 1), 0);
    let asked = Instant::now();
    let refused = authenticate(&mut stream, b"\0alice\0wrong".to_vec());
    assert!(
        asked.elapsed() >= Duration::from_millis(300),
        "the failure is delayed"
    );
    assert_eq!(refused.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert_eq!(
        refused.error_message.as_ref().map(|m| m.as_str()),
        Some(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN"
        )
    );
    assert!(
        wire::read_frame(&mut stream).is_none(),
        "closed after the failure"
    );

    // SaslHandshake v0: the PLAIN token travels as a bare frame, answered by an empty one.
    let mut stream = connect(addr);
    assert_eq!(handshake(&mut stream, "PLAIN", 0), 0);
    let token = b"\0alice\0alice-secret";
    let mut frame = (token.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(token);
    stream.write_all(&frame).unwrap();
    let answer = wire::read_frame(&mut stream).expect("an empty token");
    assert!(answer.is_empty());
    assert!(
        metadata_call(&mut stream, 5).is_some(),
        "authenticated by v0"
    );

    // SCRAM with a session lifetime; re-authentication; expiry.
    let mut stream = connect(addr);
    let done = scram_login(&mut stream, ScramMechanism::Sha512, "alice", "alice-secret");
    assert_eq!(done.error_code, 0, "{:?}", done.error_message);
    assert_eq!(done.session_lifetime_ms, 3000);
    let session_start = Instant::now();
    assert!(metadata_call(&mut stream, 3).is_some());
    let again = scram_login(&mut stream, ScramMechanism::Sha512, "alice", "alice-secret");
    assert_eq!(again.error_code, 0, "re-authentication as the same user");
    let reauthenticated = Instant::now();
    assert!(metadata_call(&mut stream, 4).is_some());
    assert!(
        session_start.elapsed() < Duration::from_secs(3),
        "took too long to check"
    );
    // The session now ends 3 s after the re-authentication: requests are served until then,
    // and the first one after it closes the connection.
    let mut served = 0;
    while metadata_call(&mut stream, 10 + served).is_some() {
        served += 1;
        assert!(
            reauthenticated.elapsed() < Duration::from_secs(10),
            "the session did not expire"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        reauthenticated.elapsed() >= Duration::from_secs(3),
        "closed before the session's end"
    );

    // Re-authenticating as another user is refused.
    let mut stream = connect(addr);
    assert_eq!(
        scram_login(&mut stream, ScramMechanism::Sha512, "alice", "alice-secret").error_code,
        0
    );
    let switched = scram_login(&mut stream, ScramMechanism::Sha512, "bob", "bob-secret");
    assert_eq!(switched.error_code, 58);
    assert!(wire::read_frame(&mut stream).is_none());
}

/// Goal: connection hygiene. Method: with --max-connections-per-ip 2 a third connection from
/// 127.0.0.1 is closed at once (and counted); with --connections-max-idle-ms 1000 a
/// connection that sends nothing is closed, one that keeps asking is not.
#[test]
fn connections_per_ip_and_idle_connections_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--max-connections-per-ip",
            "2",
            "--connections-max-idle-ms",
            "1000",
        ],
    );
    let versions = |stream: &mut std::net::TcpStream, id: i32| {
        wire::send(
            stream,
            ApiKey::ApiVersions,
            3,
            id,
            &ApiVersionsRequest::default(),
        );
        wire::read_frame(stream)
    };
    let mut first = connect(broker.addr);
    let mut second = connect(broker.addr);
    assert!(versions(&mut first, 1).is_some());
    assert!(versions(&mut second, 1).is_some());
    let mut third = connect(broker.addr);
    assert!(versions(&mut third, 1).is_none(), "over the per-IP limit");
    // The idle one is closed; the busy one keeps its connection meanwhile.
    let idle_since = Instant::now();
    let mut busy_calls = 0;
    while idle_since.elapsed() < Duration::from_millis(2500) {
        assert!(
            versions(&mut second, 2 + busy_calls).is_some(),
            "busy connection kept"
        );
        busy_calls += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(versions(&mut first, 2).is_none(), "idle connection closed");
    drop(second);
    // With the others gone, a new connection is accepted again.
    wait_until(Duration::from_secs(10), "a free per-IP slot", || {
        let mut stream = connect(broker.addr);
        versions(&mut stream, 1).is_some()
    });
    let (_, metrics) = broker.http_get("/metrics");
    let counts: BTreeMap<&str, f64> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("strato_connections_closed_total{reason=\""))
        .filter_map(|l| {
            let (reason, value) = l.split_once("\"} ")?;
            Some((reason, value.parse().ok()?))
        })
        .collect();
    assert!(counts["max_connections_per_ip"] >= 1.0, "{counts:?}");
    assert!(counts["idle"] >= 1.0, "{counts:?}");
}

/// A broker with PLAINTEXT, SASL_PLAINTEXT and SASL_SSL listeners, TLS from `pki`, and the
/// users given (made before it starts).
fn sasl_broker(dir: &Path, pki: &Pki, users: &[(&str, &str)], extra: &[&str]) -> Broker {
    let cert = pki.broker();
    for (user, password) in users {
        add_user(&dir.join("data"), user, password);
    }
    let mut args = vec![
        "--listeners",
        "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Broker::start(dir, &args)
}

/// Goal: a second client implementation, kafka-python (pure Python, its own SCRAM and TLS),
/// produces and consumes over SASL_SSL with each SCRAM mechanism and over SASL_PLAINTEXT
/// with PLAIN, and is refused with a wrong password.
#[test]
fn kafka_python_over_sasl() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let broker = sasl_broker(dir.path(), &pki, &[("kp-user", "kp-secret")], &[]);
    let ca = pki.ca_file();
    for (protocol, mechanism) in [
        ("SASL_SSL", "SCRAM-SHA-256"),
        ("SASL_SSL", "SCRAM-SHA-512"),
        ("SASL_PLAINTEXT", "PLAIN"),
    ] {
        let bootstrap = broker.listener(protocol).to_string();
        let topic = format!("kp-{}", mechanism.to_lowercase());
        // A refused login costs kafka-python its whole bootstrap timeout: checked once.
        let check_refusal = mechanism == "SCRAM-SHA-512";
        let mut args = vec![
            "--bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--count",
            "200",
            "--protocol",
            protocol,
            "--mechanism",
            mechanism,
            "--user",
            "kp-user",
            "--ca",
            ca.to_str().unwrap(),
        ];
        if check_refusal {
            args.push("--check-refusal");
        }
        let result = run_client_script_with_env(
            "kafka_python_sasl.py",
            &args,
            &[("STRATO_TEST_PASSWORD", "kp-secret")],
        );
        assert_eq!(result["produced"], 200, "{protocol} {mechanism}: {result}");
        assert_eq!(result["consumed"], 200, "{protocol} {mechanism}: {result}");
        if check_refusal {
            let refused = result["refused"].as_str().unwrap_or_default();
            assert!(
                refused.contains("Authentication failed"),
                "{protocol} {mechanism}: {result}"
            );
        }
    }
}

/// Goal: Kafka's AdminClient manages users (KIP-554) and the users it makes log in.
/// Method: an admin made with `strato user`; confluent-kafka's AdminClient, logged in as it
/// over SASL_SSL, upserts a user with both SCRAM mechanisms, describes it (iterations as
/// given) and all users, deletes one mechanism; the user produces with each mechanism, and
/// with the deleted one no longer logs in.
#[test]
fn admin_client_manages_users_who_then_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let broker = sasl_broker(dir.path(), &pki, &[("admin", "admin-secret")], &[]);
    let bootstrap = broker.listener("SASL_SSL").to_string();
    let ca = pki.ca_file();
    let result = run_client_script_with_env(
        "confluent_admin_users.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--admin",
            "admin",
            "--user",
            "carol",
            "--topic",
            "admin-users",
            "--ca",
            ca.to_str().unwrap(),
        ],
        &[
            ("STRATO_TEST_ADMIN_PASSWORD", "admin-secret"),
            ("STRATO_TEST_PASSWORD", "carol-secret"),
        ],
    );
    assert_eq!(
        result["described"],
        serde_json::json!({"SCRAM-SHA-256": 8192, "SCRAM-SHA-512": 4096}),
        "{result}"
    );
    assert_eq!(
        result["all_users"],
        serde_json::json!(["admin", "carol"]),
        "{result}"
    );
    assert_eq!(
        result["produced"],
        serde_json::json!({"SCRAM-SHA-256": true, "SCRAM-SHA-512": true}),
        "{result}"
    );
    assert!(
        result["deleted_refused"]
            .as_str()
            .unwrap_or_default()
            .contains("Authentication failed"),
        "{result}"
    );
    assert_eq!(result["after_delete_sha512"], true, "{result}");
    assert!(
        result["unknown_user_error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist"),
        "{result}"
    );
    assert!(!broker.log_text().contains("carol-secret"));
}

/// Goal: `strato user` manages users in etcd while brokers run (no restart, no broker API),
/// as the first admin is made in a cluster. Method: a broker on etcd; users made, listed as
/// JSON, restricted to one mechanism and deleted with the CLI; librdkafka logs in (or not)
/// after each step; bad input is refused and the password never printed.
#[test]
fn strato_user_manages_users_in_etcd_while_brokers_run() {
    use strato_metadata::testing::etcd_server::EtcdServer;
    let etcd = EtcdServer::start();
    let url = etcd.url("/strato/users-test");
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--metadata",
            &url,
            "--listeners",
            "SASL_PLAINTEXT://127.0.0.1:0",
        ],
    );
    let bootstrap = broker.listener("SASL_PLAINTEXT").to_string();
    let login = |user: &str, password: &str, mechanism: &str| {
        metadata(&sasl(
            bootstrap.clone(),
            "SASL_PLAINTEXT",
            mechanism,
            user,
            password,
            None,
        ))
    };
    login("dave", "dave-secret", "SCRAM-SHA-512").expect_err("no such user yet");
    let created = strato(
        &[
            "user",
            "create",
            "dave",
            "--password-stdin",
            "--metadata",
            &url,
        ],
        "dave-secret\n",
    );
    assert!(created.status.success(), "{created:?}");
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(
        stdout.contains("SCRAM-SHA-256") && stdout.contains("SCRAM-SHA-512"),
        "{stdout}"
    );
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        login("dave", "dave-secret", mechanism).unwrap_or_else(|e| panic!("{mechanism}: {e}"));
    }
    let only = strato(
        &[
            "user",
            "create",
            "erin",
            "--password-stdin",
            "--mechanism",
            "SCRAM-SHA-256",
            "--iterations",
            "4096",
            "--metadata",
            &url,
        ],
        "erin-secret",
    );
    assert!(only.status.success(), "{only:?}");
    login("erin", "erin-secret", "SCRAM-SHA-256").unwrap();
    login("erin", "erin-secret", "SCRAM-SHA-512").expect_err("no SCRAM-SHA-512 credential");
    let listed = strato(
        &["user", "list", "--output", "json", "--metadata", &url],
        "",
    );
    assert!(listed.status.success(), "{listed:?}");
    let users: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        users,
        serde_json::json!([
            {"name": "dave", "mechanisms": [
                {"mechanism": "SCRAM-SHA-256", "iterations": 8192},
                {"mechanism": "SCRAM-SHA-512", "iterations": 8192}]},
            {"name": "erin", "mechanisms": [
                {"mechanism": "SCRAM-SHA-256", "iterations": 4096}]}
        ])
    );
    // A new password replaces the old one at once.
    let changed = strato(
        &[
            "user",
            "create",
            "dave",
            "--password-stdin",
            "--metadata",
            &url,
        ],
        "dave-new\n",
    );
    assert!(changed.status.success());
    login("dave", "dave-secret", "SCRAM-SHA-512").expect_err("the old password");
    login("dave", "dave-new", "SCRAM-SHA-512").unwrap();
    let deleted = strato(&["user", "delete", "dave", "--metadata", &url], "");
    assert!(deleted.status.success(), "{deleted:?}");
    login("dave", "dave-new", "SCRAM-SHA-512").expect_err("a deleted user");
    let again = strato(&["user", "delete", "dave", "--metadata", &url], "");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no user"),
        "{again:?}"
    );
    for (args, input, message) in [
        (
            vec!["user", "create", "x", "--password-stdin"],
            "\n",
            "empty",
        ),
        (
            vec![
                "user",
                "create",
                "x",
                "--password-stdin",
                "--iterations",
                "100",
            ],
            "pw",
            "--iterations",
        ),
        (vec!["user", "create", "x"], "pw", "--password-stdin"),
    ] {
        let mut args = args;
        args.extend(["--metadata", url.as_str()]);
        let refused = strato(&args, input);
        assert!(!refused.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    for output in [created, only, changed] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !text.contains("secret") && !text.contains("dave-new"),
            "{text}"
        );
    }
}

/// Goal: the official Java client logs in over SASL_SSL and, with a broker session lifetime
/// shorter than its run (KIP-368, --connections-max-reauth-ms), re-authenticates its
/// connections while it produces, without an error or a lost record. Method: the Java
/// program (tests/clients/java, JavaSasl) produces one record every 100 ms for 6 s with a
/// 2 s lifetime, then reads them back; the broker's log must show re-authentications.
#[test]
fn java_client_reauthenticates_while_it_produces() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let broker = sasl_broker(
        dir.path(),
        &pki,
        &[("jane", "jane-secret")],
        &["--connections-max-reauth-ms", "2000"],
    );
    let bootstrap = broker.listener("SASL_SSL").to_string();
    let ca = pki.ca_file();
    let jar = common::java_client_jar();
    assert!(
        jar.is_file(),
        "{} does not exist: run ./scripts/test.sh",
        jar.display()
    );
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let topic = format!("java-{}", mechanism.to_lowercase());
        let output = common::run_with_timeout(
            Command::new(common::java())
                .arg("-cp")
                .arg(&jar)
                .arg("strato.JavaSasl")
                .args(["--bootstrap", &bootstrap, "--topic", &topic])
                .args(["--mechanism", mechanism, "--user", "jane"])
                .args(["--ca", ca.to_str().unwrap(), "--seconds", "6"])
                .env("STRATO_TEST_PASSWORD", "jane-secret"),
            Duration::from_secs(120),
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
            panic!(
                "JavaSasl printed no JSON: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert!(output.status.success(), "{mechanism}: {result}");
        let produced = result["produced"].as_u64().unwrap_or(0);
        assert!(produced >= 20, "{mechanism}: {result}");
        assert_eq!(
            result["consumed"].as_u64(),
            Some(produced),
            "{mechanism}: {result}"
        );
    }
    let reauthentications = broker
        .log_text()
        .lines()
        .filter(|l| l.contains("re-authenticated") && l.contains("principal=User:jane"))
        .count();
    assert!(
        reauthentications >= 2,
        "the Java client re-authenticated {reauthentications} times"
    );
}
