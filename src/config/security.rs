//! `strato serve` flags of Kafka's security model: listeners, TLS files, SASL mechanisms,
//! the authorizer and connection hygiene, with Kafka's names where Kafka has the setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::security::listener::{self, ListenerUrl, SecurityProtocol};
use crate::security::principal::Principal;
use crate::security::sasl::SaslMechanism;

#[derive(Debug, Clone, Args)]
pub struct SecurityArgs {
    /// Kafka listeners, Kafka's syntax: a comma list of `PROTOCOL://host:port` with PROTOCOL
    /// one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL (each at most once), e.g.
    /// `PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093`. Port 0 picks a free port (logged).
    /// Replaces --listen.
    #[arg(long, env = "STRATO_LISTENERS")]
    pub listeners: Option<String>,

    /// Addresses given to clients, per listener, same syntax (`SASL_SSL://broker1.example.com:9093`);
    /// a client is answered with the addresses of the listener it came in on. A listener not
    /// named here advertises its bound address.
    #[arg(long, env = "STRATO_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,

    /// PEM certificate chain of SSL and SASL_SSL listeners (re-read when the file changes).
    #[arg(long, env = "STRATO_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (re-read when the file changes).
    #[arg(long, env = "STRATO_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates: SSL listeners then require a client certificate signed by one of
    /// them, and the client's principal is `User:<subject CN>` (re-read when the file changes).
    #[arg(long, env = "STRATO_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// SASL mechanisms offered on SASL_PLAINTEXT and SASL_SSL listeners (Kafka
    /// `sasl.enabled.mechanisms`): SCRAM-SHA-256, SCRAM-SHA-512, PLAIN.
    #[arg(
        long,
        env = "STRATO_SASL_MECHANISMS",
        default_value = "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
    )]
    pub sasl_mechanisms: String,

    /// How long a failed authentication waits before SASL_AUTHENTICATION_FAILED is answered
    /// and the connection closed (Kafka `connection.failed.authentication.delay.ms`).
    #[arg(long, env = "STRATO_AUTH_FAILURE_DELAY_MS", default_value_t = 100)]
    pub auth_failure_delay_ms: u64,

    /// Check every request against the ACLs (deny when none matches). Off: everything is
    /// allowed, as Kafka without an authorizer.
    #[arg(long, env = "STRATO_AUTHORIZER", default_value_t = false, action = clap::ArgAction::Set)]
    pub authorizer: bool,

    /// Principals allowed everything whatever the ACLs, `;`-separated (Kafka `super.users`),
    /// e.g. `User:admin;User:ops`.
    #[arg(long, env = "STRATO_SUPER_USERS")]
    pub super_users: Option<String>,

    /// Most connections from one IP address (Kafka `max.connections.per.ip`); more are
    /// closed at once. Default: no limit beyond --max-connections.
    #[arg(long, env = "STRATO_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,

    /// A connection with no request in flight for this long is closed (Kafka
    /// `connections.max.idle.ms`).
    #[arg(
        long,
        env = "STRATO_CONNECTIONS_MAX_IDLE_MS",
        default_value_t = 600_000
    )]
    pub connections_max_idle_ms: u64,

    /// Longest SASL session before the client must re-authenticate (KIP-368, Kafka
    /// `connections.max.reauth.ms`); 0: sessions do not expire.
    #[arg(long, env = "STRATO_CONNECTIONS_MAX_REAUTH_MS", default_value_t = 0)]
    pub connections_max_reauth_ms: u64,
}

pub use crate::security::tls::TlsFiles;

/// One listener to bind, and what to advertise for it (None: its bound address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    pub advertised: Option<(String, u16)>,
}

/// The validated security settings.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// In the order given; the first one's address is the broker's primary address.
    pub listeners: Vec<ListenerConfig>,
    pub tls: Option<TlsFiles>,
    pub sasl_mechanisms: Vec<SaslMechanism>,
    pub auth_failure_delay: Duration,
    pub authorizer: bool,
    pub super_users: Vec<Principal>,
    pub max_connections_per_ip: Option<usize>,
    pub connections_max_idle: Duration,
    pub connections_max_reauth: Option<Duration>,
}

/// `--listen` when neither it nor --listeners is given (loopback only unless asked).
pub const LISTEN_DEFAULT: &str = "127.0.0.1:9092";

impl SecurityArgs {
    /// Checks the security flags together with the legacy `--listen` /
    /// `--advertised-address` pair (`None` when not given).
    pub fn validate(
        &self,
        listen: Option<SocketAddr>,
        advertised_address: Option<(String, u16)>,
    ) -> anyhow::Result<SecurityConfig> {
        let listeners = match (&self.listeners, listen) {
            (Some(_), Some(_)) => {
                bail!("--listen and --listeners both given: --listen is a PLAINTEXT --listeners")
            }
            (Some(_), None) if advertised_address.is_some() => bail!(
                "--advertised-address goes with --listen; use --advertised-listeners with --listeners"
            ),
            (Some(text), None) => {
                let urls = listener::parse_list(text).context("--listeners")?;
                let advertised = match &self.advertised_listeners {
                    None => Vec::new(),
                    Some(text) => listener::parse_list(text).context("--advertised-listeners")?,
                };
                listener_configs(&urls, &advertised)?
            }
            (None, listen) => {
                if self.advertised_listeners.is_some() {
                    bail!("--advertised-listeners needs --listeners");
                }
                let bind = listen.unwrap_or_else(|| {
                    LISTEN_DEFAULT
                        .parse()
                        .expect("the default listen address parses")
                });
                vec![ListenerConfig {
                    protocol: SecurityProtocol::Plaintext,
                    bind,
                    advertised: advertised_address,
                }]
            }
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        if tls.is_none() && self.tls_client_ca.is_some() {
            bail!("--tls-client-ca needs --tls-cert and --tls-key");
        }
        if let Some(l) = listeners.iter().find(|l| l.protocol.uses_tls())
            && tls.is_none()
        {
            bail!("the {} listener needs --tls-cert and --tls-key", l.protocol);
        }
        let mut sasl_mechanisms = Vec::new();
        for name in self
            .sasl_mechanisms
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let mechanism = SaslMechanism::from_name(name).with_context(|| {
                format!("--sasl-mechanisms: unknown mechanism {name:?} (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)")
            })?;
            if !sasl_mechanisms.contains(&mechanism) {
                sasl_mechanisms.push(mechanism);
            }
        }
        if sasl_mechanisms.is_empty() && listeners.iter().any(|l| l.protocol.uses_sasl()) {
            bail!("a SASL listener needs at least one --sasl-mechanisms");
        }
        if self.auth_failure_delay_ms > 60_000 {
            bail!("--auth-failure-delay-ms must be at most 60000");
        }
        let mut super_users = Vec::new();
        for text in self
            .super_users
            .as_deref()
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let principal = Principal::parse(text).with_context(|| {
                format!("--super-users: {text:?} is not a principal (User:name)")
            })?;
            super_users.push(principal);
        }
        if self.max_connections_per_ip == Some(0) {
            bail!("--max-connections-per-ip must be positive");
        }
        if self.connections_max_idle_ms < 1_000 {
            bail!("--connections-max-idle-ms must be at least 1000");
        }
        let connections_max_reauth = match self.connections_max_reauth_ms {
            0 => None,
            ms if ms < 1_000 => bail!("--connections-max-reauth-ms must be 0 or at least 1000"),
            ms => Some(Duration::from_millis(ms)),
        };
        Ok(SecurityConfig {
            listeners,
            tls,
            sasl_mechanisms,
            auth_failure_delay: Duration::from_millis(self.auth_failure_delay_ms),
            authorizer: self.authorizer,
            super_users,
            max_connections_per_ip: self.max_connections_per_ip,
            connections_max_idle: Duration::from_millis(self.connections_max_idle_ms),
            connections_max_reauth,
        })
    }
}

/// Pairs each listener with its advertised address; an advertised protocol must be listened
/// on (Kafka refuses the same).
fn listener_configs(
    urls: &[ListenerUrl],
    advertised: &[ListenerUrl],
) -> anyhow::Result<Vec<ListenerConfig>> {
    if let Some(a) = advertised
        .iter()
        .find(|a| !urls.iter().any(|u| u.protocol == a.protocol))
    {
        bail!(
            "--advertised-listeners names {} but --listeners has no {} listener",
            a,
            a.protocol
        );
    }
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        let bind = url
            .bind_address()
            .with_context(|| format!("--listeners: resolve {url}"))?;
        let advertised = match advertised.iter().find(|a| a.protocol == url.protocol) {
            None => None,
            Some(a) if a.host.is_empty() || a.port == 0 => {
                bail!("--advertised-listeners: {a} needs a host and a non-zero port")
            }
            Some(a) => Some((a.host.clone(), a.port)),
        };
        out.push(ListenerConfig {
            protocol: url.protocol,
            bind,
            advertised,
        });
    }
    Ok(out)
}
