//! Kafka's security model: listeners and their security protocols (`listener.rs`), who a
//! connection is (`principal.rs`, [`Session`]).
//!
//! **Invariant:** a connection's principal changes only through authentication (a TLS
//! client certificate at the handshake, a successful SASL exchange); handlers read it, never
//! write it.

pub mod credentials;
pub mod listener;
pub mod principal;
pub mod sasl;
pub mod scram;

use std::net::SocketAddr;

use listener::SecurityProtocol;
use principal::Principal;

/// One client connection's security state, owned by its connection task and handed to every
/// request's handler.
#[derive(Debug)]
pub struct Session {
    pub peer: SocketAddr,
    /// The listener (named by its security protocol) the client connected to: Metadata and
    /// FindCoordinator answer with the other brokers' addresses on the same listener.
    pub listener: SecurityProtocol,
    /// `User:ANONYMOUS` until authenticated.
    pub principal: Principal,
}

impl Session {
    pub fn new(peer: SocketAddr, listener: SecurityProtocol) -> Self {
        Session {
            peer,
            listener,
            principal: Principal::anonymous(),
        }
    }
}
