//! Kafka's security model: listeners and their security protocols (`listener.rs`), TLS
//! (`tls.rs`), SASL authentication (`sasl.rs`, `scram.rs`) against users' credentials in
//! the metadata store (`credentials.rs`), and who a connection is (`principal.rs`,
//! [`Session`]).
//!
//! **Invariant:** a connection's principal changes only through authentication (a TLS
//! client certificate at the handshake, a successful SASL exchange); handlers read it, never
//! write it. On a SASL listener a [`Session`] admits only ApiVersions and SASL requests
//! before authentication, and only re-authentication once the session expired (KIP-368).
//!
//! Authorization: ACL bindings (`acl.rs`), kept in the store under `acls/` (`acl_store.rs`)
//! and in every broker's watched snapshot (`authorizer.rs`); `limits.rs` caps connections
//! per IP.

pub mod acl;
pub mod acl_store;
pub mod authorizer;
pub mod credentials;
pub mod http_basic;
pub mod limits;
pub mod listener;
pub mod principal;
pub mod sasl;
pub mod scram;
pub mod tls;

use std::net::SocketAddr;

use kafka_protocol::messages::ApiKey;
use tokio::time::Instant;

use listener::SecurityProtocol;
use principal::Principal;
use sasl::{SaslExchange, SaslMechanism};

/// One client connection's security state, owned by its connection task and handed to every
/// request's handler.
pub struct Session {
    pub peer: SocketAddr,
    /// The listener (named by its security protocol) the client connected to: Metadata and
    /// FindCoordinator answer with the other brokers' addresses on the same listener.
    pub listener: SecurityProtocol,
    /// `User:ANONYMOUS` until authenticated (or the subject of a TLS client certificate).
    pub principal: Principal,
    /// SASL progress; unused on other listeners.
    pub sasl: SaslSession,
    /// Set by a handler: the connection reads no further request and closes once the
    /// responses of those admitted are written (a failed authentication).
    pub close_after_response: bool,
}

/// Where a connection of a SASL listener stands.
#[derive(Default)]
pub struct SaslSession {
    /// The mechanism of the last successful authentication (a re-authentication must use
    /// it again, as in Kafka).
    pub authenticated: Option<SaslMechanism>,
    /// The exchange in progress between SaslHandshake and the end of authentication.
    pub exchange: Option<SaslExchange>,
    /// SaslHandshake v0: tokens then come as bare length-prefixed frames, not wrapped in
    /// SaslAuthenticate requests.
    pub raw_tokens: bool,
    /// KIP-368: after this instant the client must re-authenticate before anything else.
    pub expires_at: Option<Instant>,
}

/// Why a connection is closed instead of having a request handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0:?} before SASL authentication")]
    NotAuthenticated(ApiKey),
    #[error("{0:?} after the SASL session expired (no re-authentication)")]
    SessionExpired(ApiKey),
}

impl Session {
    pub fn new(peer: SocketAddr, listener: SecurityProtocol, principal: Principal) -> Self {
        Session {
            peer,
            listener,
            principal,
            sasl: SaslSession::default(),
            close_after_response: false,
        }
    }

    /// Whether the next frame is a bare SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        self.sasl.raw_tokens && self.sasl.exchange.is_some()
    }

    /// Whether a request of `api_key` may be handled now: on a SASL listener only
    /// ApiVersions and the SASL requests come before authentication, and after an expired
    /// session (KIP-368) only re-authentication.
    pub fn admits(&self, api_key: ApiKey, now: Instant) -> Result<(), Refusal> {
        if !self.listener.uses_sasl()
            || matches!(
                api_key,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
        {
            return Ok(());
        }
        if self.sasl.authenticated.is_none() {
            return Err(Refusal::NotAuthenticated(api_key));
        }
        if self.sasl.expires_at.is_some_and(|at| now >= at) {
            return Err(Refusal::SessionExpired(api_key));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn sasl_listeners_admit_only_authentication_first() {
        let peer = "127.0.0.1:1".parse().unwrap();
        let now = Instant::now();
        let plain = Session::new(peer, SecurityProtocol::Plaintext, Principal::anonymous());
        assert_eq!(plain.admits(ApiKey::Produce, now), Ok(()));
        let mut sasl = Session::new(peer, SecurityProtocol::SaslSsl, Principal::anonymous());
        for key in [
            ApiKey::ApiVersions,
            ApiKey::SaslHandshake,
            ApiKey::SaslAuthenticate,
        ] {
            assert_eq!(sasl.admits(key, now), Ok(()));
        }
        assert_eq!(
            sasl.admits(ApiKey::Metadata, now),
            Err(Refusal::NotAuthenticated(ApiKey::Metadata))
        );
        sasl.sasl.authenticated = Some(SaslMechanism::Plain);
        assert_eq!(sasl.admits(ApiKey::Metadata, now), Ok(()));
        sasl.sasl.expires_at = Some(now + Duration::from_secs(1));
        assert_eq!(sasl.admits(ApiKey::Metadata, now), Ok(()));
        let later = now + Duration::from_secs(1);
        assert_eq!(
            sasl.admits(ApiKey::Fetch, later),
            Err(Refusal::SessionExpired(ApiKey::Fetch))
        );
        assert_eq!(sasl.admits(ApiKey::SaslHandshake, later), Ok(()));
    }
}
