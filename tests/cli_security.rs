//! The CLI's Kafka client against secured listeners: `strato topic create|list`, `strato
//! produce` and `strato consume` over SASL_SSL (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN),
//! SASL_PLAINTEXT and SSL with a client certificate; refused logins and certificates; a
//! long `consume` that outlives its SASL session (KIP-368). Certificates are made here with
//! rcgen; users with `strato user create` before the broker starts. No password may appear
//! in anything the CLI prints, even with debug logging.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Broker, run_with_input, wait_until};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

const CLI_DEADLINE: Duration = Duration::from_secs(60);
const USER: &str = "alice";
const PASSWORD: &str = "alice-s3cret-Pa55";
const WRONG_PASSWORD: &str = "not-alices-Pa55";

/// PEM files of a test PKI: the brokers' CA and certificate (for `localhost` and
/// `127.0.0.1`), the CA of client certificates and one client certificate (CN `carol`),
/// and a CA nobody uses.
struct Pki {
    ca: PathBuf,
    broker_cert: PathBuf,
    broker_key: PathBuf,
    client_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// A CA: its PEM certificate and the issuer that signs with its key.
fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, Issuer::new(params, key))
}

/// A certificate signed by `issuer`: (certificate PEM, key PEM).
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let (ca_pem, ca) = new_ca("strato test CA");
        let (broker_pem, broker_key) = leaf(
            &ca,
            "broker",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_ca_pem, client_ca) = new_ca("strato test client CA");
        let (client_pem, client_key) = leaf(
            &client_ca,
            "carol",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (other_pem, _) = new_ca("some other CA");
        Pki {
            ca: write(dir, "ca.pem", &ca_pem),
            broker_cert: write(dir, "broker.pem", &broker_pem),
            broker_key: write(dir, "broker.key", &broker_key),
            client_ca: write(dir, "client-ca.pem", &client_ca_pem),
            client_cert: write(dir, "carol.pem", &client_pem),
            client_key: write(dir, "carol.key", &client_key),
            other_ca: write(dir, "other-ca.pem", &other_pem),
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `strato` with `envs` (nothing of the test's own STRATO_ or system CA environment) and
/// debug logging, so that a password in a log line would show.
fn command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strato"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("STRATO_") || name.starts_with("SSL_CERT_") {
            command.env_remove(name);
        }
    }
    command
        .env("STRATO_LOG", "debug")
        .envs(envs.iter().copied());
    command
}

fn run(args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let output = run_with_input(
        &mut command(args, envs),
        stdin.map(str::as_bytes),
        CLI_DEADLINE,
    );
    for secret in [PASSWORD, WRONG_PASSWORD] {
        assert!(
            !text(&output.stdout).contains(secret) && !text(&output.stderr).contains(secret),
            "strato {args:?} printed a password:\n{}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
    output
}

/// Runs a command that must succeed; its stdout.
fn ok(broker: &Broker, args: &[&str], envs: &[(&str, &str)]) -> String {
    let output = run(args, envs, None);
    assert!(
        output.status.success(),
        "strato {args:?} failed:\n{}\nbroker log:\n{}",
        text(&output.stderr),
        broker.log_text()
    );
    text(&output.stdout)
}

/// Runs a command that must fail; its stderr.
fn refused(args: &[&str], envs: &[(&str, &str)]) -> String {
    let output = run(args, envs, None);
    assert!(
        !output.status.success(),
        "strato {args:?} succeeded: {}",
        text(&output.stdout)
    );
    text(&output.stderr)
}

/// Makes `alice` (both SCRAM mechanisms) in the embedded store the broker of `dir` will use
/// (`Broker::start` uses `dir/data`; the store is free before the broker starts).
fn create_user(dir: &Path) {
    let data_dir = dir.join("data");
    let output = run(
        &[
            "user",
            "create",
            USER,
            "--password-stdin",
            "--data-dir",
            path(&data_dir),
        ],
        &[],
        Some(PASSWORD),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// A broker with SASL_SSL, SASL_PLAINTEXT and SSL (client certificates required) listeners.
fn secured_broker(dir: &Path, pki: &Pki, extra: &[&str]) -> Broker {
    create_user(dir);
    let mut args = vec![
        "--listeners",
        "SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "--tls-cert",
        path(&pki.broker_cert),
        "--tls-key",
        path(&pki.broker_key),
        "--tls-client-ca",
        path(&pki.client_ca),
    ];
    args.extend(extra);
    Broker::start(dir, &args)
}

/// The flags of a SASL_SSL login as `user` with `mechanism`, trusting `ca` (the password
/// comes separately).
fn sasl_ssl<'a>(
    bootstrap: &'a str,
    mechanism: &'a str,
    user: &'a str,
    ca: &'a Path,
) -> [&'a str; 10] {
    [
        "--bootstrap",
        bootstrap,
        "--security-protocol",
        "SASL_SSL",
        "--sasl-mechanism",
        mechanism,
        "--sasl-username",
        user,
        "--tls-ca",
        path(ca),
    ]
}

/// Creates `topic`, finds it in `topic list`, writes three records, reads them back for a
/// group (committing its offsets) and finds the group in `group list`, every command with
/// `security` (flags) and `envs`.
fn round_trip(broker: &Broker, topic: &str, security: &[&str], envs: &[(&str, &str)]) {
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(security).map(|a| a.to_string()).collect()
    };
    let call = |args: &[&str]| {
        let args = with(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(broker, &args, envs)
    };
    call(&["topic", "create", topic, "--partitions", "2"]);
    let listed = call(&["topic", "list"]);
    assert!(listed.contains(topic), "{listed}");
    call(&[
        "produce", topic, "--value", "one", "--value", "two", "--value", "three",
    ]);
    let group = format!("{topic}-readers");
    let consumed = call(&[
        "consume",
        topic,
        "--from-beginning",
        "--count",
        "3",
        "--group",
        &group,
    ]);
    let mut values: Vec<&str> = consumed.lines().collect();
    values.sort();
    assert_eq!(values, ["one", "three", "two"], "{consumed}");
    let groups = call(&["group", "list"]);
    assert!(groups.contains(&group), "the consume committed: {groups}");
}

/// Goal: every Kafka-speaking command works over SASL_SSL with each mechanism, the broker's
/// certificate verified by DNS name (bootstrap `localhost`) and by IP address (bootstrap
/// and advertised `127.0.0.1`), the password from a file or the environment. Method: the
/// same round trip (create, list, produce, consume) per mechanism, on its own topic.
#[test]
fn sasl_ssl_works_with_each_mechanism() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = secured_broker(dir.path(), &pki, &[]);
    let port = broker.listener("SASL_SSL").port();
    let password_file = write(dir.path(), "password", &format!("{PASSWORD}\n"));
    for (mechanism, host, from_env) in [
        ("SCRAM-SHA-256", "localhost", true),
        ("SCRAM-SHA-512", "127.0.0.1", false),
        ("PLAIN", "127.0.0.1", false),
    ] {
        let bootstrap = format!("{host}:{port}");
        let mut security = sasl_ssl(&bootstrap, mechanism, USER, &pki.ca).to_vec();
        let envs: &[(&str, &str)] = if from_env {
            &[("STRATO_SASL_PASSWORD", PASSWORD)]
        } else {
            security.extend(["--sasl-password-file", path(&password_file)]);
            &[]
        };
        let topic = format!("events-{}", mechanism.to_lowercase());
        round_trip(&broker, &topic, &security, envs);
    }
    broker.stop();
}

/// Goal: SASL_PLAINTEXT works, with the default mechanism (SCRAM-SHA-512) and every
/// setting from the environment, as a script would pass them; a mechanism the broker does
/// not offer is refused with the list of those it does.
#[test]
fn sasl_plaintext_works_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = secured_broker(
        dir.path(),
        &pki,
        &["--sasl-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256"],
    );
    let bootstrap = broker.listener("SASL_PLAINTEXT").to_string();
    let envs = [
        ("STRATO_BOOTSTRAP", bootstrap.as_str()),
        ("STRATO_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ("STRATO_SASL_USERNAME", USER),
        ("STRATO_SASL_PASSWORD", PASSWORD),
    ];
    round_trip(&broker, "plain-events", &[], &envs);
    let log = broker.log_text();
    assert!(
        log.contains("mechanism=SCRAM-SHA-512") && log.contains("authenticated"),
        "the default mechanism is SCRAM-SHA-512:\n{log}"
    );
    let plain = refused(&["topic", "list", "--sasl-mechanism", "PLAIN"], &envs);
    assert!(
        plain.contains(
            "does not offer SASL mechanism PLAIN; it offers: SCRAM-SHA-512, SCRAM-SHA-256"
        ),
        "{plain}"
    );
    broker.stop();
}

/// Goal: SSL with a client certificate works (mTLS), and a client without one is refused
/// by the listener that requires it. The CA comes once from --tls-ca and once from the
/// system's store (SSL_CERT_FILE, which rustls-native-certs honours).
#[test]
fn ssl_works_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = secured_broker(dir.path(), &pki, &[]);
    let bootstrap = broker.listener("SSL").to_string();
    let mut security = vec![
        "--bootstrap",
        &bootstrap,
        "--security-protocol",
        "SSL",
        "--tls-cert",
        path(&pki.client_cert),
        "--tls-key",
        path(&pki.client_key),
    ];
    round_trip(
        &broker,
        "tls-events",
        &security,
        &[("SSL_CERT_FILE", path(&pki.ca))],
    );
    security.extend(["--tls-ca", path(&pki.ca)]);
    round_trip(&broker, "tls-events-2", &security, &[]);

    let anonymous = refused(
        &[
            "topic",
            "list",
            "--bootstrap",
            &bootstrap,
            "--security-protocol",
            "SSL",
            "--tls-ca",
            path(&pki.ca),
        ],
        &[],
    );
    assert!(
        anonymous.contains("CertificateRequired") && anonymous.contains("see --tls-cert"),
        "{anonymous}"
    );
    broker.stop();
}

/// Goal: `--command-config` takes the client properties files of Kafka's tools (Java names:
/// JAAS login, PEM trust and key stores) and of librdkafka, and a flag wins over the file.
/// Method: round trips over SASL_SSL and SSL configured by files alone; then a file with a
/// wrong password, overridden by the environment.
#[test]
fn command_config_files_configure_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = secured_broker(dir.path(), &pki, &[]);
    let java = write(
        dir.path(),
        "java.properties",
        &format!(
            "security.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n\
             \x20   username=\"{USER}\" password=\"{PASSWORD}\";\n\
             ssl.truststore.type=PEM\n\
             ssl.truststore.location={}\n\
             client.id=ops-tools\n",
            path(&pki.ca)
        ),
    );
    let sasl_ssl = broker.listener("SASL_SSL").to_string();
    let java_flags = ["--bootstrap", &sasl_ssl, "--command-config", path(&java)];
    round_trip(&broker, "java-config", &java_flags, &[]);

    // A PEM key store is the certificate chain and the private key in one file.
    let keystore = write(
        dir.path(),
        "carol-keystore.pem",
        &(std::fs::read_to_string(&pki.client_cert).unwrap()
            + &std::fs::read_to_string(&pki.client_key).unwrap()),
    );
    let java_ssl = write(
        dir.path(),
        "java-ssl.properties",
        &format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\n",
            path(&pki.ca),
            path(&keystore)
        ),
    );
    let ssl = broker.listener("SSL").to_string();
    let flags = ["--bootstrap", &ssl, "--command-config", path(&java_ssl)];
    round_trip(&broker, "java-ssl-config", &flags, &[]);

    let librdkafka = write(
        dir.path(),
        "librdkafka.properties",
        &format!(
            "security.protocol=ssl\nssl.ca.location={}\nssl.certificate.location={}\n\
             ssl.key.location={}\n",
            path(&pki.ca),
            path(&pki.client_cert),
            path(&pki.client_key)
        ),
    );
    let flags = ["--bootstrap", &ssl, "--command-config", path(&librdkafka)];
    round_trip(&broker, "librdkafka-config", &flags, &[]);

    let wrong = write(
        dir.path(),
        "wrong.properties",
        &format!(
            "security.protocol=SASL_SSL\nsasl.username={USER}\nsasl.password={WRONG_PASSWORD}\n\
             ssl.ca.location={}\n",
            path(&pki.ca)
        ),
    );
    let wrong_flags = ["--bootstrap", &sasl_ssl, "--command-config", path(&wrong)];
    let stderr = refused(&[&["topic", "list"][..], &wrong_flags].concat(), &[]);
    assert!(stderr.contains("SASL_AUTHENTICATION_FAILED"), "{stderr}");
    ok(
        &broker,
        &[&["topic", "list"][..], &wrong_flags].concat(),
        &[("STRATO_SASL_PASSWORD", PASSWORD)],
    );
    broker.stop();
}

/// Goal: a wrong password (or an unknown user) fails with a non-zero exit and Kafka's
/// SASL_AUTHENTICATION_FAILED message, naming the broker, and never prints the password.
#[test]
fn a_wrong_password_is_refused_with_kafkas_message() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = secured_broker(dir.path(), &pki, &["--auth-failure-delay-ms", "0"]);
    let bootstrap = broker.listener("SASL_SSL").to_string();
    let wrong_file = write(dir.path(), "wrong", WRONG_PASSWORD);
    for (mechanism, user) in [
        ("SCRAM-SHA-512", USER),
        ("SCRAM-SHA-256", "nobody"),
        ("PLAIN", USER),
    ] {
        let login = sasl_ssl(&bootstrap, mechanism, user, &pki.ca);
        let stderr = refused(
            &[
                &["topic", "list", "--sasl-password-file", path(&wrong_file)][..],
                &login,
            ]
            .concat(),
            &[],
        );
        for want in [
            "SASL_AUTHENTICATION_FAILED",
            &format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
            ),
            &bootstrap,
            user,
        ] {
            assert!(
                stderr.contains(want),
                "{mechanism}: no {want:?} in:\n{stderr}"
            );
        }
        assert!(!stderr.contains("see --security-protocol"), "{stderr}");
    }
    broker.stop();
}

/// Goal: the CLI refuses a broker whose certificate is not signed by the CA it trusts (given
/// or the system's), with a TLS error and a hint at --tls-ca (not a hang); and a client of
/// the wrong protocol gets a hint to check --security-protocol.
#[test]
fn an_untrusted_certificate_or_a_wrong_protocol_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = secured_broker(dir.path(), &pki, &[]);
    let address = broker.listener("SASL_SSL").to_string();
    let envs = [("STRATO_SASL_PASSWORD", PASSWORD)];
    let other_ca = sasl_ssl(&address, "SCRAM-SHA-512", USER, &pki.other_ca);
    let untrusted = refused(&[&["topic", "list"][..], &other_ca].concat(), &envs);
    assert!(untrusted.contains("TLS handshake with"), "{untrusted}");
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    assert!(
        untrusted.contains("is the broker's CA in --tls-ca"),
        "{untrusted}"
    );
    // Without --tls-ca: the system's CA certificates, here only the other CA.
    let login = [
        "--sasl-username",
        USER,
        "--security-protocol",
        "SASL_SSL",
        "--bootstrap",
        &address,
    ];
    let system_roots = refused(
        &[&["topic", "list"][..], &login].concat(),
        &[envs[0], ("SSL_CERT_FILE", path(&pki.other_ca))],
    );
    assert!(system_roots.contains("UnknownIssuer"), "{system_roots}");

    let sasl_plaintext = broker.listener("SASL_PLAINTEXT").to_string();
    let ssl = broker.listener("SSL").to_string();
    for (protocol, bootstrap) in [
        ("PLAINTEXT", &ssl),
        ("PLAINTEXT", &sasl_plaintext),
        ("SSL", &sasl_plaintext),
    ] {
        let stderr = refused(
            &[
                "topic",
                "list",
                "--bootstrap",
                bootstrap,
                "--security-protocol",
                protocol,
                "--request-timeout-ms",
                "10000",
            ],
            &[("SSL_CERT_FILE", path(&pki.ca))],
        );
        assert!(
            stderr.contains(&format!(
                "over {protocol} (does the listener speak this security protocol? see --security-protocol)"
            )),
            "{protocol} to {bootstrap}:\n{stderr}"
        );
    }
    broker.stop();
}

/// Kills a child process (by pid) when dropped, so a failed test leaves none behind.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Goal: a `consume` that runs longer than the SASL session the broker grants
/// (--connections-max-reauth-ms 2000) re-authenticates in time and keeps reading (the
/// broker closes a connection whose session ended). Method: start a consume waiting for one
/// new record; wait until the broker has logged re-authentications; then produce the record
/// and check that the consume prints it and exits 0.
#[test]
fn a_long_consume_renews_its_sasl_session() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = secured_broker(dir.path(), &pki, &["--connections-max-reauth-ms", "2000"]);
    let bootstrap = broker.listener("SASL_SSL").to_string();
    let security = sasl_ssl(&bootstrap, "SCRAM-SHA-256", USER, &pki.ca);
    let envs = [("STRATO_SASL_PASSWORD", PASSWORD)];
    ok(
        &broker,
        &[&["topic", "create", "slow"][..], &security].concat(),
        &envs,
    );
    let consumer = command(
        &[&["consume", "slow", "--count", "1"][..], &security].concat(),
        &envs,
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn strato consume");
    let mut consumer = ChildGuard(Some(consumer));
    let reauthentications = || broker.log_text().matches("re-authenticated").count();
    let mut exited = None;
    wait_until(
        Duration::from_secs(30),
        "the consume to re-authenticate twice",
        || {
            exited = consumer.0.as_mut().unwrap().try_wait().unwrap();
            exited.is_some() || reauthentications() >= 2
        },
    );
    assert!(
        exited.is_none(),
        "the consume ended early ({exited:?}); broker log:\n{}",
        broker.log_text()
    );
    ok(
        &broker,
        &[&["produce", "slow", "--value", "late"][..], &security].concat(),
        &envs,
    );
    let child = consumer.0.take().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(CLI_DEADLINE) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("the consume did not end after its record was produced");
        }
    };
    assert!(
        output.status.success(),
        "consume failed:\n{}\nbroker log:\n{}",
        text(&output.stderr),
        broker.log_text()
    );
    assert_eq!(text(&output.stdout), "late\n");
    assert!(!text(&output.stderr).contains(PASSWORD));
    broker.stop();
}
