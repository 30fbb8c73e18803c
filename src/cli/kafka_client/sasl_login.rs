//! The client's side of a SASL login on a [`Connection`]: SaslHandshake v1, then the
//! mechanism's tokens in SaslAuthenticate requests. [`SaslLogin`] makes the tokens (pure):
//! PLAIN (RFC 4616: one token, `\0user\0password`) and SCRAM (RFC 5802: client-first,
//! client-final, then the server's signature is checked, so a server that does not know
//! the credential is not trusted). [`login`] carries them and says when the session must be
//! renewed (KIP-368).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::{ClientError, Connection, ErrorCode};
use crate::config::client::SaslCredentials;
use crate::security::sasl::SaslMechanism;
use crate::security::scram::{ScramClient, ScramError};

/// A SASL session is renewed once this share of its lifetime has passed, so the broker never
/// sees a request after it ends (Kafka's clients pick a random point between 85 % and 95 %,
/// `SaslClientAuthenticator`)...
const REAUTHENTICATE_AFTER_PERCENT: u32 = 85;
/// ...and at least this long before it ends (at most half the lifetime before): a request
/// sent just before the renewal point must still reach the broker within the session, also
/// when the lifetime is short (the broker allows 1 s).
const REAUTHENTICATE_MARGIN_MIN: Duration = Duration::from_secs(5);
/// Most SaslAuthenticate round trips of one login (SCRAM needs 2, PLAIN 1).
const SASL_ROUNDS_MAX: usize = 3;

/// Logs in on `connection` (after ApiVersions, or again when the session is due); returns
/// when to renew the session (`None`: it does not expire).
pub(super) async fn login(
    connection: &mut Connection,
    credentials: &SaslCredentials,
) -> Result<Option<Instant>, ClientError> {
    let mechanism = credentials.mechanism;
    handshake(connection, mechanism).await?;
    // The session starts when the broker checks the last token: after this instant.
    let started = Instant::now();
    let (mut login, mut token) = SaslLogin::start(credentials);
    for _ in 0..SASL_ROUNDS_MAX {
        let response = connection
            .send_now(|_| SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)))
            .await?;
        let code = ErrorCode(response.error_code);
        if !code.is_ok() {
            return Err(ClientError::Authentication {
                addr: connection.addr().to_string(),
                mechanism,
                user: credentials.username.clone(),
                code,
                message: response.error_message.map(|m| m.to_string()),
            });
        }
        // SCRAM's final message costs a key derivation: off the async runtime.
        let (returned, next) = tokio::task::spawn_blocking(move || {
            let next = login.step(&response.auth_bytes);
            (login, next)
        })
        .await
        .expect("the SASL step neither panics nor is cancelled: the runtime outlives it");
        login = returned;
        let next = next.map_err(|source| ClientError::SaslExchange {
            addr: connection.addr().to_string(),
            mechanism,
            source,
        })?;
        match next {
            Next::Send(next) => token = next,
            Next::Done => {
                tracing::debug!(
                    addr = %connection.addr(),
                    %mechanism,
                    session_lifetime_ms = response.session_lifetime_ms,
                    "SASL authenticated"
                );
                return Ok(reauthentication_time(started, response.session_lifetime_ms));
            }
        }
    }
    Err(ClientError::SaslExchange {
        addr: connection.addr().to_string(),
        mechanism,
        source: ScramError::Malformed("the exchange does not end"),
    })
}

/// SaslHandshake v1: asks for `mechanism`.
async fn handshake(
    connection: &mut Connection,
    mechanism: SaslMechanism,
) -> Result<(), ClientError> {
    let response = connection
        .send_now(|_| {
            SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(mechanism.name()))
        })
        .await?;
    let code = ErrorCode(response.error_code);
    if code.is(ResponseError::UnsupportedSaslMechanism) {
        let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(ClientError::SaslMechanismRefused {
            addr: connection.addr().to_string(),
            mechanism,
            offered: offered.join(", "),
        });
    }
    if !code.is_ok() {
        return Err(ClientError::Kafka {
            addr: connection.addr().to_string(),
            api: ApiKey::SaslHandshake,
            code,
        });
    }
    Ok(())
}

/// When to renew a SASL session of `lifetime_ms` (0: it does not expire) that started
/// at `started`.
fn reauthentication_time(started: Instant, lifetime_ms: i64) -> Option<Instant> {
    let lifetime = Duration::from_millis(u64::try_from(lifetime_ms).ok().filter(|ms| *ms > 0)?);
    let margin = (lifetime * (100 - REAUTHENTICATE_AFTER_PERCENT) / 100)
        .max(REAUTHENTICATE_MARGIN_MIN.min(lifetime / 2));
    Some(started + lifetime - margin)
}

/// Where the exchange stands.
enum State {
    /// PLAIN's only token was sent; the server's answer ends the exchange.
    PlainSent,
    /// SCRAM: client-first sent, waiting for server-first.
    ScramFirstSent(Box<ScramClient>),
    /// SCRAM: client-final sent, waiting for the server's signature.
    ScramFinalSent(Box<ScramClient>),
    Done,
}

/// One login: [`SaslLogin::start`] gives the first token, then [`SaslLogin::step`] takes
/// each answer of the server until it returns [`Next::Done`].
pub(super) struct SaslLogin {
    state: State,
}

/// What to do after the server's answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Send this token.
    Send(Vec<u8>),
    /// Authenticated.
    Done,
}

impl SaslLogin {
    /// Starts a login: its state and the first token to send.
    pub(super) fn start(credentials: &SaslCredentials) -> (Self, Vec<u8>) {
        match credentials.mechanism.scram() {
            None => {
                // authzid empty: the identity is the user name (Kafka refuses any other).
                let mut token = Vec::new();
                token.push(0);
                token.extend_from_slice(credentials.username.as_bytes());
                token.push(0);
                token.extend_from_slice(credentials.password.expose().as_bytes());
                let state = State::PlainSent;
                (SaslLogin { state }, token)
            }
            Some(mechanism) => {
                let client = ScramClient::new(
                    mechanism,
                    &credentials.username,
                    credentials.password.expose(),
                );
                let token = client.client_first();
                let state = State::ScramFirstSent(Box::new(client));
                (SaslLogin { state }, token)
            }
        }
    }

    /// Takes the server's token (from a successful SaslAuthenticate). The SCRAM final
    /// message derives the salted password (PBKDF2, some milliseconds of CPU).
    pub(super) fn step(&mut self, server_token: &[u8]) -> Result<Next, ScramError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::PlainSent => Ok(Next::Done),
            State::ScramFirstSent(mut client) => {
                let token = client.client_final(server_token)?;
                self.state = State::ScramFinalSent(client);
                Ok(Next::Send(token))
            }
            State::ScramFinalSent(client) => {
                client.verify_server_final(server_token)?;
                Ok(Next::Done)
            }
            State::Done => Err(ScramError::Malformed(
                "a server message outside the exchange",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::client::Password;
    use crate::security::sasl::SaslMechanism;
    use crate::security::scram::{
        ITERATIONS_MIN, ScramCredential, ServerFirst, parse_client_first,
    };

    fn credentials(mechanism: SaslMechanism, password: &str) -> SaslCredentials {
        SaslCredentials {
            mechanism,
            username: "alice".to_string(),
            password: Password::new(password),
        }
    }

    #[test]
    fn sessions_are_renewed_before_they_end() {
        let started = Instant::now();
        assert_eq!(reauthentication_time(started, 0), None);
        assert_eq!(reauthentication_time(started, -1), None);
        let at = |ms: u64| Some(started + Duration::from_millis(ms));
        assert_eq!(
            reauthentication_time(started, 3_600_000),
            at(3_060_000),
            "85 %"
        );
        assert_eq!(reauthentication_time(started, 60_000), at(51_000), "85 %");
        assert_eq!(
            reauthentication_time(started, 20_000),
            at(15_000),
            "5 s before"
        );
        assert_eq!(reauthentication_time(started, 2_000), at(1_000), "half way");
    }

    #[test]
    fn plain_is_one_token() {
        let credentials = credentials(SaslMechanism::Plain, "pw");
        let (mut login, token) = SaslLogin::start(&credentials);
        assert_eq!(token, b"\0alice\0pw");
        assert_eq!(login.step(b""), Ok(Next::Done));
        assert!(login.step(b"").is_err(), "nothing after the end");
    }

    /// Goal: the login completes against the server's SCRAM code and refuses a server
    /// that cannot sign the exchange with the user's ServerKey. Method: run both sides in
    /// memory; then answer a second login with the first exchange's (replayed) signature.
    #[test]
    fn scram_checks_the_server_signature() {
        for mechanism in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
            let scram = mechanism.scram().unwrap();
            let stored = ScramCredential::from_password(scram, b"pw", ITERATIONS_MIN).unwrap();
            let credentials = credentials(mechanism, "pw");
            let (mut login, token) = SaslLogin::start(&credentials);
            let first = parse_client_first(&token).unwrap();
            let server = ServerFirst::new(first, stored.clone());
            let Next::Send(client_final) = login.step(server.message()).unwrap() else {
                panic!("SCRAM sends a final message");
            };
            let server_final = server.verify_client_final(&client_final).unwrap();
            assert_eq!(login.step(&server_final), Ok(Next::Done));

            let (mut replayed, token) = SaslLogin::start(&credentials);
            let first = parse_client_first(&token).unwrap();
            let server = ServerFirst::new(first, stored);
            assert!(matches!(replayed.step(server.message()), Ok(Next::Send(_))));
            assert_eq!(
                replayed.step(&server_final),
                Err(ScramError::ServerSignature),
                "{mechanism}"
            );
        }
    }

    #[test]
    fn scram_server_errors_are_reported() {
        let credentials = credentials(SaslMechanism::ScramSha512, "pw");
        let (mut login, _) = SaslLogin::start(&credentials);
        assert_eq!(
            login.step(b"e=unknown-user"),
            Err(ScramError::ServerError("unknown-user".to_string()))
        );
    }
}
