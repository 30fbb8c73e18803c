//! Flags of every Kafka-speaking CLI command (`strato topic|group|produce|consume|acl`) on
//! how to reach a secured cluster, named after Kafka's client properties: the security
//! protocol, the SASL login and the TLS files. `validate` checks them together and reads the
//! password; the TLS files are read when the connector is built
//! (`security::tls::client_config`).
//!
//! **Invariant:** a password comes only from a file or the environment, never from a flag
//! value (`ps` and shell history show arguments), and it never reaches a log line, an error
//! or `Debug` output.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

pub use super::command_config::Password;
use super::command_config::{self, CommandConfig, FromFile};
use crate::security::listener::SecurityProtocol;
use crate::security::sasl::SaslMechanism;

/// The environment variable the SASL password may come from (when --sasl-password-file is
/// not given).
pub const SASL_PASSWORD_ENV: &str = "STRATO_SASL_PASSWORD";
/// Longest password read from a file or standard input.
pub const PASSWORD_BYTES_MAX: u64 = 4096;
/// The mechanism used when none is named. Kafka's own default (GSSAPI) is not served; of
/// those Strato serves, SCRAM-SHA-512 is the strongest, `strato user create` stores it by
/// default, and unlike PLAIN it never sends the password itself.
pub const SASL_MECHANISM_DEFAULT: SaslMechanism = SaslMechanism::ScramSha512;

/// Where the security flags stand in `--help` (per flag: a heading on the struct would
/// carry over to the command's own flags after it).
const SECURITY_HEADING: &str = "Security (a secured cluster)";

#[derive(Debug, Clone, Default, Args)]
pub struct ClientSecurityArgs {
    /// How to talk to the brokers (Kafka `security.protocol`): PLAINTEXT, SSL,
    /// SASL_PLAINTEXT or SASL_SSL. Default: PLAINTEXT.
    #[arg(long, help_heading = SECURITY_HEADING, env = "STRATO_SECURITY_PROTOCOL", value_name = "PROTOCOL", value_parser = parse_protocol)]
    pub security_protocol: Option<SecurityProtocol>,

    /// SASL mechanism (Kafka `sasl.mechanism`): SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN.
    /// Default: SCRAM-SHA-512.
    #[arg(long, help_heading = SECURITY_HEADING, env = "STRATO_SASL_MECHANISM", value_name = "MECHANISM", value_parser = parse_mechanism)]
    pub sasl_mechanism: Option<SaslMechanism>,

    /// SASL user name (the `username` of Kafka's `sasl.jaas.config`; librdkafka
    /// `sasl.username`).
    #[arg(long, help_heading = SECURITY_HEADING, env = "STRATO_SASL_USERNAME", value_name = "NAME")]
    pub sasl_username: Option<String>,

    /// File holding the SASL password (one trailing line break is dropped). Instead, the
    /// password may be in the environment variable STRATO_SASL_PASSWORD; it is never a flag
    /// value, which `ps` would show.
    #[arg(long, help_heading = SECURITY_HEADING, env = "STRATO_SASL_PASSWORD_FILE", value_name = "PATH")]
    pub sasl_password_file: Option<PathBuf>,

    /// PEM CA certificates the brokers' certificates must be signed by (Kafka
    /// `ssl.truststore.location` with `ssl.truststore.type=PEM`; librdkafka
    /// `ssl.ca.location`). Default: the system's CA certificates (SSL_CERT_FILE and
    /// SSL_CERT_DIR are honoured).
    #[arg(long, help_heading = SECURITY_HEADING, env = "STRATO_CLIENT_TLS_CA", value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,

    /// PEM client certificate chain, for SSL listeners that require one (Kafka
    /// `ssl.keystore.location` with `ssl.keystore.type=PEM`; librdkafka
    /// `ssl.certificate.location`). Goes with --tls-key.
    #[arg(long, help_heading = SECURITY_HEADING, env = "STRATO_CLIENT_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (unencrypted) of --tls-cert (librdkafka `ssl.key.location`).
    #[arg(long, help_heading = SECURITY_HEADING, env = "STRATO_CLIENT_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// Kafka client properties file, as kafka-topics.sh --command-config and kcat -F take:
    /// `security.protocol`, `sasl.mechanism`, `sasl.jaas.config` (SCRAM or PLAIN login
    /// module) or `sasl.username`/`sasl.password`, PEM `ssl.truststore.location` or
    /// `ssl.ca.location`, PEM `ssl.keystore.location` or `ssl.certificate.location` and
    /// `ssl.key.location`. The flags above win over it; other keys are ignored.
    #[arg(long, help_heading = SECURITY_HEADING, env = "STRATO_COMMAND_CONFIG", value_name = "PATH")]
    pub command_config: Option<PathBuf>,
}

fn parse_protocol(text: &str) -> Result<SecurityProtocol, String> {
    SecurityProtocol::from_name(text).ok_or_else(|| {
        format!("unknown security protocol {text:?} (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)")
    })
}

fn parse_mechanism(text: &str) -> Result<SaslMechanism, String> {
    SaslMechanism::from_name(text).ok_or_else(|| {
        format!("unknown SASL mechanism {text:?} (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)")
    })
}

/// Who to log in as, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Password,
}

pub use crate::security::tls::{CertificateFiles, ClientTlsFiles};

/// The validated security settings of a CLI command: TLS settings exactly when the protocol
/// uses TLS, SASL credentials exactly when it uses SASL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecurityConfig {
    pub protocol: SecurityProtocol,
    pub tls: Option<ClientTlsFiles>,
    pub sasl: Option<SaslCredentials>,
}

impl Default for ClientSecurityConfig {
    fn default() -> Self {
        ClientSecurityConfig {
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }
}

impl ClientSecurityArgs {
    /// Checks the flags together (with --command-config's settings where a flag is not
    /// given) and reads the password: from --sasl-password-file, else STRATO_SASL_PASSWORD,
    /// else --command-config. Blocking: it reads files.
    pub fn validate(&self) -> anyhow::Result<ClientSecurityConfig> {
        let env_password = match std::env::var(SASL_PASSWORD_ENV) {
            Ok(password) if password.is_empty() => None,
            Ok(password) => Some(Password::new(password)),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => bail!("{SASL_PASSWORD_ENV} is not UTF-8"),
        };
        let file = match &self.command_config {
            Some(path) => command_config::read(path)?,
            None => CommandConfig::default(),
        };
        if !file.ignored.is_empty() {
            tracing::warn!(
                keys = %file.ignored.join(", "),
                "--command-config: ignoring keys that are not security settings"
            );
        }
        self.validate_with(env_password, file)
    }

    /// `validate` with the environment's password and the --command-config file's
    /// settings given (tests cannot set the environment of their own process safely).
    fn validate_with(
        &self,
        env_password: Option<Password>,
        file: CommandConfig,
    ) -> anyhow::Result<ClientSecurityConfig> {
        let protocol = merge(self.security_protocol, "--security-protocol", file.protocol)
            .map_or(SecurityProtocol::Plaintext, |p| p.value);
        let ca = merge(self.tls_ca.clone(), "--tls-ca", file.tls_ca);
        let cert = merge(self.tls_cert.clone(), "--tls-cert", file.tls_cert);
        let key = merge(self.tls_key.clone(), "--tls-key", file.tls_key);
        let mechanism = merge(self.sasl_mechanism, "--sasl-mechanism", file.mechanism);
        let username = merge(self.sasl_username.clone(), "--sasl-username", file.username);
        let password = match (&self.sasl_password_file, env_password) {
            (Some(path), _) => Some(Sourced {
                value: PasswordFrom::File(path.clone()),
                source: "--sasl-password-file".to_string(),
            }),
            (None, Some(password)) => Some(Sourced {
                value: PasswordFrom::Value(password),
                source: SASL_PASSWORD_ENV.to_string(),
            }),
            (None, None) => merge(
                None,
                "",
                file.password.map(|f| FromFile {
                    value: PasswordFrom::Value(f.value),
                    key: f.key,
                }),
            ),
        };
        let tls = if protocol.uses_tls() {
            Some(tls_files(ca, cert, key)?)
        } else {
            refuse_unused(
                &[source(&ca), source(&cert), source(&key)],
                "SSL or SASL_SSL",
                protocol,
            )?;
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(sasl_credentials(protocol, mechanism, username, password)?)
        } else {
            refuse_unused(
                &[source(&mechanism), source(&username), source(&password)],
                "SASL_PLAINTEXT or SASL_SSL",
                protocol,
            )?;
            None
        };
        Ok(ClientSecurityConfig {
            protocol,
            tls,
            sasl,
        })
    }
}

fn tls_files(
    ca: Option<Sourced<PathBuf>>,
    cert: Option<Sourced<PathBuf>>,
    key: Option<Sourced<PathBuf>>,
) -> anyhow::Result<ClientTlsFiles> {
    let client_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some(CertificateFiles {
            cert: cert.value,
            key: key.value,
        }),
        (None, None) => None,
        (Some(half), None) | (None, Some(half)) => bail!(
            "{} alone: a client certificate needs --tls-cert and --tls-key",
            half.source
        ),
    };
    Ok(ClientTlsFiles {
        ca: ca.map(|ca| ca.value),
        client_cert,
    })
}

/// The login of a SASL protocol: a user name and a password are required (the password
/// file is read here).
fn sasl_credentials(
    protocol: SecurityProtocol,
    mechanism: Option<Sourced<SaslMechanism>>,
    username: Option<Sourced<String>>,
    password: Option<Sourced<PasswordFrom>>,
) -> anyhow::Result<SaslCredentials> {
    let username = match username {
        Some(Sourced { value, source }) if value.is_empty() => bail!("{source} is empty"),
        Some(username) => username.value,
        None => bail!("{protocol} needs --sasl-username"),
    };
    let password = match password.map(|p| p.value) {
        Some(PasswordFrom::File(path)) => read_password_file(&path)?,
        Some(PasswordFrom::Value(password)) => password,
        None => bail!(
            "{protocol} needs a password: --sasl-password-file PATH or the environment \
             variable {SASL_PASSWORD_ENV}"
        ),
    };
    Ok(SaslCredentials {
        mechanism: mechanism.map_or(SASL_MECHANISM_DEFAULT, |m| m.value),
        username,
        password,
    })
}

/// A setting and where it came from (a flag, an environment variable, a key of
/// --command-config), to name it in messages.
struct Sourced<T> {
    value: T,
    source: String,
}

/// The flag's value if given, else the file's.
fn merge<T>(flag: Option<T>, flag_name: &str, file: Option<FromFile<T>>) -> Option<Sourced<T>> {
    match (flag, file) {
        (Some(value), _) => Some(Sourced {
            value,
            source: flag_name.to_string(),
        }),
        (None, Some(file)) => Some(Sourced {
            value: file.value,
            source: format!("{} in --command-config", file.key),
        }),
        (None, None) => None,
    }
}

fn source<T>(setting: &Option<Sourced<T>>) -> Option<&str> {
    setting.as_ref().map(|s| s.source.as_str())
}

/// Refuses settings of a protocol other than `protocol`: they would silently do nothing.
fn refuse_unused(
    sources: &[Option<&str>],
    protocols: &str,
    protocol: SecurityProtocol,
) -> anyhow::Result<()> {
    match sources.iter().flatten().next() {
        Some(source) => bail!("{source} needs --security-protocol {protocols} (it is {protocol})"),
        None => Ok(()),
    }
}

/// Where the password is.
enum PasswordFrom {
    File(PathBuf),
    Value(Password),
}

/// Reads a password: at most [`PASSWORD_BYTES_MAX`] bytes of UTF-8, one trailing line
/// break dropped, not empty. `source` names where it comes from in errors (never the
/// password itself).
pub fn read_password(reader: impl Read, source: &str) -> anyhow::Result<Password> {
    let mut bytes = Vec::new();
    reader
        .take(PASSWORD_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("read the password from {source}"))?;
    if bytes.len() as u64 > PASSWORD_BYTES_MAX {
        bail!("the password in {source} is longer than {PASSWORD_BYTES_MAX} bytes");
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        bail!("the password in {source} is empty");
    }
    // Both SCRAM (RFC 5802: a UTF-8 string) and Kafka's PLAIN take text.
    let password = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the password in {source} is not UTF-8"))?;
    Ok(Password::new(password))
}

fn read_password_file(path: &Path) -> anyhow::Result<Password> {
    let source = format!("--sasl-password-file {}", path.display());
    let file = std::fs::File::open(path).with_context(|| format!("open {source}"))?;
    read_password(file, &source)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        security: ClientSecurityArgs,
    }

    fn parse(args: &[&str]) -> ClientSecurityArgs {
        TestCli::try_parse_from(std::iter::once("strato").chain(args.iter().copied()))
            .unwrap()
            .security
    }

    fn validate(args: &[&str], env_password: Option<&str>) -> anyhow::Result<ClientSecurityConfig> {
        parse(args).validate_with(env_password.map(Password::new), CommandConfig::default())
    }

    fn refusal(args: &[&str], env_password: Option<&str>) -> String {
        format!("{:#}", validate(args, env_password).unwrap_err())
    }

    #[test]
    fn defaults_are_plaintext_without_login() {
        assert_eq!(
            validate(&[], None).unwrap(),
            ClientSecurityConfig::default()
        );
    }

    #[test]
    fn sasl_needs_a_user_and_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let file = file.to_str().unwrap();
        let config = validate(
            &[
                "--security-protocol",
                "sasl_ssl",
                "--sasl-username",
                "alice",
                "--sasl-password-file",
                file,
            ],
            Some("from-env"),
        )
        .unwrap();
        assert_eq!(config.protocol, SecurityProtocol::SaslSsl);
        assert_eq!(config.tls, Some(ClientTlsFiles::default()));
        let sasl = config.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(sasl.username, "alice");
        assert_eq!(
            sasl.password.expose(),
            "s3cret",
            "the file wins, newline dropped"
        );
        assert!(!format!("{sasl:?}").contains("s3cret"));

        let plain = [
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanism",
            "PLAIN",
            "--sasl-username",
            "alice",
        ];
        let config = validate(&plain, Some("from-env")).unwrap();
        assert_eq!(config.tls, None);
        let sasl = config.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::Plain);
        assert_eq!(sasl.password.expose(), "from-env");

        let no_password = refusal(&plain, None);
        assert!(no_password.contains(SASL_PASSWORD_ENV), "{no_password}");
        let no_user = refusal(&["--security-protocol", "SASL_SSL"], Some("pw"));
        assert!(no_user.contains("needs --sasl-username"), "{no_user}");
        let missing = refusal(
            &[
                "--security-protocol",
                "SASL_SSL",
                "--sasl-username",
                "alice",
                "--sasl-password-file",
                "/nonexistent/pw",
            ],
            None,
        );
        assert!(missing.contains("/nonexistent/pw"), "{missing}");
    }

    #[test]
    fn options_of_another_protocol_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "pw").unwrap();
        let file = file.to_str().unwrap();
        for (args, env, flag) in [
            (&["--tls-ca", "ca.pem"][..], None, "--tls-ca"),
            (
                &[
                    "--security-protocol",
                    "SASL_PLAINTEXT",
                    "--sasl-username",
                    "a",
                    "--tls-cert",
                    "c",
                ],
                Some("pw"),
                "--tls-cert",
            ),
            (&["--sasl-username", "alice"], None, "--sasl-username"),
            (&["--sasl-mechanism", "PLAIN"], None, "--sasl-mechanism"),
            (
                &["--sasl-password-file", file],
                None,
                "--sasl-password-file",
            ),
            (
                &["--security-protocol", "SSL"],
                Some("pw"),
                SASL_PASSWORD_ENV,
            ),
        ] {
            let message = refusal(args, env);
            assert!(message.starts_with(flag), "{args:?}: {message}");
            assert!(message.contains("needs --security-protocol"), "{message}");
        }
        let half = refusal(&["--security-protocol", "SSL", "--tls-cert", "c.pem"], None);
        assert!(half.starts_with("--tls-cert alone"), "{half}");
        let ssl = validate(
            &[
                "--security-protocol",
                "SSL",
                "--tls-ca",
                "ca.pem",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            ssl.tls,
            Some(ClientTlsFiles {
                ca: Some(PathBuf::from("ca.pem")),
                client_cert: Some(CertificateFiles {
                    cert: PathBuf::from("c.pem"),
                    key: PathBuf::from("k.pem"),
                }),
            })
        );
        assert_eq!(ssl.sasl, None);
    }

    /// Goal: --command-config fills what the flags leave out, flags and the environment
    /// win, and messages name the file's key for its settings.
    #[test]
    fn command_config_fills_in_behind_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let properties = dir.path().join("client.properties");
        std::fs::write(
            &properties,
            "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=bob\n\
             sasl.password=file-pw\nssl.ca.location=file-ca.pem\nssl.key.location=k.pem\n",
        )
        .unwrap();
        let file = || command_config::read(&properties).unwrap();
        let from_file = |args: &[&str], env: Option<&str>| {
            parse(args).validate_with(env.map(Password::new), file())
        };
        let refused = format!("{:#}", from_file(&[], None).unwrap_err());
        assert!(
            refused.starts_with("ssl.key.location in --command-config alone"),
            "{refused}"
        );
        let config = from_file(&["--tls-key", "flag-k.pem", "--tls-cert", "c.pem"], None).unwrap();
        assert_eq!(config.protocol, SecurityProtocol::SaslSsl);
        let tls = config.tls.unwrap();
        assert_eq!(tls.ca, Some(PathBuf::from("file-ca.pem")));
        assert_eq!(tls.client_cert.unwrap().key, PathBuf::from("flag-k.pem"));
        let sasl = config.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::Plain);
        assert_eq!(sasl.username, "bob");
        assert_eq!(sasl.password.expose(), "file-pw");

        let config = from_file(
            &[
                "--security-protocol",
                "SASL_PLAINTEXT",
                "--sasl-username",
                "carol",
                "--sasl-mechanism",
                "SCRAM-SHA-256",
            ],
            Some("env-pw"),
        );
        let refused = format!("{:#}", config.unwrap_err());
        assert!(
            refused
                .starts_with("ssl.ca.location in --command-config needs --security-protocol SSL"),
            "{refused}"
        );
        std::fs::write(&properties, "sasl.username=bob\nsasl.password=file-pw\n").unwrap();
        let sasl = from_file(
            &[
                "--security-protocol",
                "SASL_PLAINTEXT",
                "--sasl-username",
                "carol",
            ],
            Some("env-pw"),
        )
        .unwrap()
        .sasl
        .unwrap();
        assert_eq!(sasl.username, "carol");
        assert_eq!(
            sasl.password.expose(),
            "env-pw",
            "the environment wins over the file"
        );
        let refused = format!("{:#}", from_file(&[], None).unwrap_err());
        assert!(
            refused.starts_with("sasl.username in --command-config needs --security-protocol SASL"),
            "{refused}"
        );
    }

    #[test]
    fn unknown_protocols_and_mechanisms_are_refused_at_parse() {
        for args in [
            &["--security-protocol", "TLS"][..],
            &["--sasl-mechanism", "GSSAPI"],
            // Mechanism names are case-sensitive in Kafka.
            &["--sasl-mechanism", "plain"],
        ] {
            let err =
                TestCli::try_parse_from(std::iter::once("strato").chain(args.iter().copied()))
                    .unwrap_err();
            assert!(err.to_string().contains("unknown"), "{args:?}: {err}");
        }
    }

    #[test]
    fn passwords_are_bounded_trimmed_text() {
        let read =
            |bytes: &[u8]| read_password(bytes, "test input").map(|p| p.expose().to_string());
        assert_eq!(read(b"pw\r\n").unwrap(), "pw");
        assert_eq!(
            read(b"pw\n\n").unwrap(),
            "pw\n",
            "only one line break is dropped"
        );
        assert_eq!(
            read(b" pw ").unwrap(),
            " pw ",
            "spaces are part of a password"
        );
        for (bytes, want) in [
            (&b"\n"[..], "empty"),
            (b"\xff\xfe", "not UTF-8"),
            (&[b'a'; PASSWORD_BYTES_MAX as usize + 1], "longer than"),
        ] {
            let message = format!("{:#}", read(bytes).unwrap_err());
            assert!(message.contains(want), "{message}");
            assert!(message.contains("test input"), "{message}");
        }
        assert_eq!(
            format!("{:?}", Password::new("s3cret")),
            "Password(<redacted>)"
        );
    }
}
