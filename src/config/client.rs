//! Flags of every Kafka-speaking CLI command (`strato topic|group|produce|consume|acl`) on
//! how to reach a secured cluster, named after Kafka's client properties: the security
//! protocol, the SASL login and the TLS files. `validate` checks them together and reads the
//! password; the TLS files are read when the connector is built
//! (`security::tls::client_config`).
//!
//! **Invariant:** a password comes only from a file or the environment, never from a flag
//! value (`ps` and shell history show arguments), and it never reaches a log line, an error
//! or `Debug` output.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

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

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Security (a secured cluster)")]
pub struct ClientSecurityArgs {
    /// How to talk to the brokers (Kafka `security.protocol`): PLAINTEXT, SSL,
    /// SASL_PLAINTEXT or SASL_SSL. Default: PLAINTEXT.
    #[arg(long, env = "STRATO_SECURITY_PROTOCOL", value_name = "PROTOCOL", value_parser = parse_protocol)]
    pub security_protocol: Option<SecurityProtocol>,

    /// SASL mechanism (Kafka `sasl.mechanism`): SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN.
    /// Default: SCRAM-SHA-512.
    #[arg(long, env = "STRATO_SASL_MECHANISM", value_name = "MECHANISM", value_parser = parse_mechanism)]
    pub sasl_mechanism: Option<SaslMechanism>,

    /// SASL user name (the `username` of Kafka's `sasl.jaas.config`; librdkafka
    /// `sasl.username`).
    #[arg(long, env = "STRATO_SASL_USERNAME", value_name = "NAME")]
    pub sasl_username: Option<String>,

    /// File holding the SASL password (one trailing line break is dropped). Instead, the
    /// password may be in the environment variable STRATO_SASL_PASSWORD; it is never a flag
    /// value, which `ps` would show.
    #[arg(long, env = "STRATO_SASL_PASSWORD_FILE", value_name = "PATH")]
    pub sasl_password_file: Option<PathBuf>,

    /// PEM CA certificates the brokers' certificates must be signed by (Kafka
    /// `ssl.truststore.location` with `ssl.truststore.type=PEM`; librdkafka
    /// `ssl.ca.location`). Default: the system's CA certificates (SSL_CERT_FILE and
    /// SSL_CERT_DIR are honoured).
    #[arg(long, env = "STRATO_CLIENT_TLS_CA", value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,

    /// PEM client certificate chain, for SSL listeners that require one (Kafka
    /// `ssl.keystore.location` with `ssl.keystore.type=PEM`; librdkafka
    /// `ssl.certificate.location`). Goes with --tls-key.
    #[arg(long, env = "STRATO_CLIENT_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (unencrypted) of --tls-cert (librdkafka `ssl.key.location`).
    #[arg(long, env = "STRATO_CLIENT_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
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

/// A password, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for the SASL exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Who to log in as, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Password,
}

/// A client certificate chain and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The TLS files of a client (none: the system's CA certificates, no client certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<CertificateFiles>,
}

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
    /// Checks the flags together and reads the password (from --sasl-password-file, else
    /// from STRATO_SASL_PASSWORD). Blocking: it reads a file.
    pub fn validate(&self) -> anyhow::Result<ClientSecurityConfig> {
        let env_password = match std::env::var(SASL_PASSWORD_ENV) {
            Ok(password) if password.is_empty() => None,
            Ok(password) => Some(Password(password)),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => bail!("{SASL_PASSWORD_ENV} is not UTF-8"),
        };
        self.validate_with(env_password)
    }

    /// `validate` with the environment's password given (tests cannot set the environment
    /// of their own process safely).
    fn validate_with(
        &self,
        env_password: Option<Password>,
    ) -> anyhow::Result<ClientSecurityConfig> {
        let protocol = self
            .security_protocol
            .unwrap_or(SecurityProtocol::Plaintext);
        let tls = if protocol.uses_tls() {
            let client_cert = match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(CertificateFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                (None, None) => None,
                _ => bail!("--tls-cert and --tls-key go together"),
            };
            Some(ClientTlsFiles {
                ca: self.tls_ca.clone(),
                client_cert,
            })
        } else {
            let given = [
                ("--tls-ca", self.tls_ca.is_some()),
                ("--tls-cert", self.tls_cert.is_some()),
                ("--tls-key", self.tls_key.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
                bail!("{flag} needs --security-protocol SSL or SASL_SSL (it is {protocol})");
            }
            None
        };
        let sasl = if protocol.uses_sasl() {
            let username = match self.sasl_username.as_deref() {
                Some("") => bail!("--sasl-username is empty"),
                Some(username) => username.to_string(),
                None => bail!("{protocol} needs --sasl-username"),
            };
            let password = match (&self.sasl_password_file, env_password) {
                (Some(path), _) => read_password_file(path)?,
                (None, Some(password)) => password,
                (None, None) => bail!(
                    "{protocol} needs a password: --sasl-password-file PATH or the environment \
                     variable {SASL_PASSWORD_ENV}"
                ),
            };
            Some(SaslCredentials {
                mechanism: self.sasl_mechanism.unwrap_or(SASL_MECHANISM_DEFAULT),
                username,
                password,
            })
        } else {
            let given = [
                ("--sasl-mechanism", self.sasl_mechanism.is_some()),
                ("--sasl-username", self.sasl_username.is_some()),
                ("--sasl-password-file", self.sasl_password_file.is_some()),
                (SASL_PASSWORD_ENV, env_password.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
                bail!(
                    "{flag} needs --security-protocol SASL_PLAINTEXT or SASL_SSL (it is {protocol})"
                );
            }
            None
        };
        Ok(ClientSecurityConfig {
            protocol,
            tls,
            sasl,
        })
    }
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
    Ok(Password(password))
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
        parse(args).validate_with(env_password.map(Password::new))
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
        assert!(
            half.contains("--tls-cert and --tls-key go together"),
            "{half}"
        );
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
