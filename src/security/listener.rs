//! Kafka listeners: `PROTOCOL://host:port` lists as `listeners` and `advertised.listeners`
//! take them, and the security protocol of each. Pure parsing, no IO beyond resolving a
//! host name at start-up.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// Kafka's security protocols (`SecurityProtocol` in Kafka's Java code). A listener is named
/// by its protocol here: each protocol appears at most once in `--listeners`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name, also the listener name stored in broker registrations.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether connections are wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether a client must authenticate with SASL before any other request.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `PROTOCOL://host:port` entry as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerUrl {
    pub protocol: SecurityProtocol,
    /// Empty for `PROTOCOL://:port` (Kafka: all interfaces when binding).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ListenerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.protocol, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.protocol, self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    #[error("listener {0:?} is not PROTOCOL://host:port")]
    Syntax(String),
    #[error(
        "listener {0:?} has an unknown security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
    )]
    UnknownProtocol(String),
    #[error("listener {0:?} has a bad port")]
    BadPort(String),
    #[error("security protocol {0} is listed twice")]
    Duplicate(SecurityProtocol),
    #[error("no listener given")]
    Empty,
}

/// Parses a comma-separated list (`PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093`).
/// Each protocol may appear once: a listener is named by its protocol.
pub fn parse_list(text: &str) -> Result<Vec<ListenerUrl>, ListenerError> {
    let mut out: Vec<ListenerUrl> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let url = parse_one(entry)?;
        if out.iter().any(|l| l.protocol == url.protocol) {
            return Err(ListenerError::Duplicate(url.protocol));
        }
        out.push(url);
    }
    if out.is_empty() {
        return Err(ListenerError::Empty);
    }
    Ok(out)
}

fn parse_one(entry: &str) -> Result<ListenerUrl, ListenerError> {
    let (protocol, rest) = entry
        .split_once("://")
        .ok_or_else(|| ListenerError::Syntax(entry.to_string()))?;
    let protocol = SecurityProtocol::from_name(protocol)
        .ok_or_else(|| ListenerError::UnknownProtocol(entry.to_string()))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| ListenerError::Syntax(entry.to_string()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| ListenerError::BadPort(entry.to_string()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.contains('/') {
        return Err(ListenerError::Syntax(entry.to_string()));
    }
    Ok(ListenerUrl {
        protocol,
        host: host.to_string(),
        port,
    })
}

impl ListenerUrl {
    /// The socket address to bind: an empty host binds all IPv4 interfaces, as Kafka does;
    /// a name is resolved (at start-up).
    pub fn bind_address(&self) -> std::io::Result<SocketAddr> {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            self.host.as_str()
        };
        (host, self.port).to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host} resolves to no address"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_listener_lists_parse() {
        let list =
            parse_list("PLAINTEXT://127.0.0.1:9092, sasl_ssl://:9093,SSL://[::1]:0").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(list[0].host, "127.0.0.1");
        assert_eq!(list[0].port, 9092);
        assert_eq!(list[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(list[1].host, "");
        assert_eq!(
            list[1].bind_address().unwrap(),
            "0.0.0.0:9093".parse().unwrap()
        );
        assert_eq!(list[2].host, "::1");
        assert_eq!(list[2].to_string(), "SSL://[::1]:0");
        assert_eq!(list[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    }

    #[test]
    fn bad_listener_lists_are_refused() {
        for (text, want) in [
            ("", ListenerError::Empty),
            (
                "127.0.0.1:9092",
                ListenerError::Syntax("127.0.0.1:9092".into()),
            ),
            (
                "HTTP://h:1",
                ListenerError::UnknownProtocol("HTTP://h:1".into()),
            ),
            ("SSL://h:x", ListenerError::BadPort("SSL://h:x".into())),
            (
                "SSL://h:70000",
                ListenerError::BadPort("SSL://h:70000".into()),
            ),
            (
                "SSL://h:1,SSL://h:2",
                ListenerError::Duplicate(SecurityProtocol::Ssl),
            ),
        ] {
            assert_eq!(parse_list(text), Err(want), "{text}");
        }
    }

    #[test]
    fn protocols_know_tls_and_sasl() {
        assert!(!SecurityProtocol::Plaintext.uses_tls());
        assert!(!SecurityProtocol::Plaintext.uses_sasl());
        assert!(SecurityProtocol::Ssl.uses_tls());
        assert!(!SecurityProtocol::Ssl.uses_sasl());
        assert!(!SecurityProtocol::SaslPlaintext.uses_tls());
        assert!(SecurityProtocol::SaslPlaintext.uses_sasl());
        assert!(SecurityProtocol::SaslSsl.uses_tls() && SecurityProtocol::SaslSsl.uses_sasl());
        for p in SecurityProtocol::ALL {
            assert_eq!(SecurityProtocol::from_name(p.name()), Some(p));
        }
    }
}
