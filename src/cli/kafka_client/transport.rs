//! The byte stream under a CLI [`Connection`](super::kafka_client::Connection): TCP, or TLS
//! over TCP (rustls, aws-lc-rs) that verifies the broker's certificate against the host of
//! the address dialled: the bootstrap host as given, or the host a broker advertises in
//! Metadata (a name or an IP address). [`Security`] holds what every connection of one
//! command shares: the protocol, the TLS connector and the SASL credentials.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use super::ClientError;
use crate::config::client::{ClientSecurityConfig, SaslCredentials};
use crate::security::listener::SecurityProtocol;
use crate::security::tls::{self, TlsError};

/// A connection's stream: plain TCP or TLS (boxed: a TLS stream holds its buffers inline).
pub type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// The security settings every connection of a client shares.
#[derive(Clone)]
pub struct Security {
    protocol: SecurityProtocol,
    /// Set exactly when the protocol uses TLS.
    tls: Option<TlsConnector>,
    /// Set exactly when the protocol uses SASL.
    sasl: Option<Arc<SaslCredentials>>,
}

impl Security {
    /// PLAINTEXT: no TLS, no login.
    pub fn plaintext() -> Self {
        Security {
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }

    /// Builds the TLS connector of `config` (reading the CA and client certificate files,
    /// or the system's CA certificates). Blocking: call it off the async runtime.
    pub fn load(config: &ClientSecurityConfig) -> Result<Self, TlsError> {
        let tls = match &config.tls {
            Some(files) => Some(TlsConnector::from(Arc::new(tls::client_config(files)?))),
            None => None,
        };
        Ok(Security {
            protocol: config.protocol,
            tls,
            sasl: config.sasl.clone().map(Arc::new),
        })
    }

    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    pub fn sasl(&self) -> Option<&SaslCredentials> {
        self.sasl.as_deref()
    }
}

impl Default for Security {
    fn default() -> Self {
        Self::plaintext()
    }
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SaslCredentials' Debug leaves the password out.
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// `host:port` for a host as Metadata gives it: an IPv6 address goes in brackets.
pub fn host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The TLS server name of `addr` (`host:port`, `[v6]:port`): a DNS name or an IP address.
fn server_name(addr: &str) -> Option<ServerName<'static>> {
    let (host, _port) = addr.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_string()).ok()
}

/// Connects to `addr`; with TLS, completes the handshake. Each step has `timeout`.
pub(super) async fn open(
    addr: &str,
    security: &Security,
    timeout: Duration,
) -> Result<Stream, ClientError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ClientError::ConnectTimeout {
            addr: addr.to_string(),
            timeout,
        })?
        .map_err(|source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    // Requests are small and sent one at a time: Nagle would only add latency.
    stream
        .set_nodelay(true)
        .map_err(|source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let Some(connector) = &security.tls else {
        return Ok(Either::Left(stream));
    };
    let name = server_name(addr).ok_or_else(|| ClientError::ServerName {
        addr: addr.to_string(),
    })?;
    let stream = tokio::time::timeout(timeout, connector.connect(name, stream))
        .await
        .map_err(|_| ClientError::TlsTimeout {
            addr: addr.to_string(),
            timeout,
        })?
        .map_err(|source| ClientError::Tls {
            addr: addr.to_string(),
            source,
        })?;
    Ok(Either::Right(Box::new(stream)))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn server_names_are_hosts_or_ip_addresses() {
        let dns = |name: &str| Some(ServerName::try_from(name.to_string()).unwrap());
        let ip = |text: &str| {
            Some(ServerName::IpAddress(
                text.parse::<IpAddr>().unwrap().into(),
            ))
        };
        assert_eq!(
            server_name("broker-1.example.com:9093"),
            dns("broker-1.example.com")
        );
        assert_eq!(server_name("localhost:9093"), dns("localhost"));
        assert_eq!(server_name("127.0.0.1:9093"), ip("127.0.0.1"));
        assert_eq!(server_name("[::1]:9093"), ip("::1"));
        assert_eq!(server_name("no-port"), None);
        assert_eq!(server_name("bad host:9093"), None);
        assert_eq!(server_name(":9093"), None);
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(host_port("broker-1", 9092), "broker-1:9092");
        assert_eq!(host_port("10.0.0.1", 9092), "10.0.0.1:9092");
        assert_eq!(host_port("::1", 9092), "[::1]:9092");
        assert_eq!(
            server_name(&host_port("::1", 9092)),
            server_name("[::1]:9092")
        );
    }
}
