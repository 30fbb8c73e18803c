//! SASL mechanisms Strato serves (Kafka's names) and one connection's exchange: PLAIN
//! (RFC 4616) and SCRAM (`scram.rs`), both checked against the stored SCRAM credentials.

use std::fmt;

use strato_metadata::{MetadataError, MetadataStore};

use super::credentials;
use super::principal::Principal;
use super::scram::{
    ScramError, ScramMechanism, ServerFirst, parse_client_first, unknown_user_credential,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// Mechanism names are case-sensitive in Kafka's SaslHandshake.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The SCRAM variant, or `None` for PLAIN.
    pub fn scram(self) -> Option<ScramMechanism> {
        match self {
            SaslMechanism::Plain => None,
            SaslMechanism::ScramSha256 => Some(ScramMechanism::Sha256),
            SaslMechanism::ScramSha512 => Some(ScramMechanism::Sha512),
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One SASL exchange of a connection, from the mechanism chosen in SaslHandshake to its
/// outcome. Credentials are read from the metadata store at each login.
pub struct SaslExchange {
    mechanism: SaslMechanism,
    state: ExchangeState,
}

enum ExchangeState {
    /// Waiting for the client's first token.
    Start,
    /// SCRAM: the server's first message went out; waiting for the client's proof.
    ScramFirstSent(Box<ServerFirst>),
    /// Over (succeeded or failed): no further token is accepted.
    Finished,
}

/// The result of one token.
#[derive(Debug)]
pub enum Step {
    /// Send this challenge and wait for the client's next token.
    Continue(Vec<u8>),
    /// Authenticated: send this last token.
    Done {
        principal: Principal,
        token: Vec<u8>,
    },
    /// Refused (the reason is for the broker's log only; the client learns nothing more
    /// than SASL_AUTHENTICATION_FAILED).
    Failed(AuthFailure),
}

/// Why an authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("invalid credentials for user {user:?}")]
    InvalidCredentials { user: String },
    #[error(transparent)]
    Scram(#[from] ScramError),
    #[error("malformed PLAIN token")]
    MalformedPlain,
    #[error("the authorization id differs from the user name")]
    AuthorizationId,
    #[error("a token after the exchange ended")]
    Finished,
    #[error("could not read credentials: {0}")]
    Store(#[from] MetadataError),
}

impl AuthFailure {
    /// What the client is told: Kafka's wording, nothing about which part was wrong.
    pub fn client_message(&self, mechanism: SaslMechanism) -> String {
        match self {
            AuthFailure::Store(_) => {
                "Authentication failed: credentials could not be read, try again".to_string()
            }
            _ => format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
            ),
        }
    }
}

impl SaslExchange {
    pub fn new(mechanism: SaslMechanism) -> Self {
        SaslExchange {
            mechanism,
            state: ExchangeState::Start,
        }
    }

    pub fn mechanism(&self) -> SaslMechanism {
        self.mechanism
    }

    /// Processes the client's next token.
    pub async fn step(&mut self, meta: &dyn MetadataStore, token: &[u8]) -> Step {
        let state = std::mem::replace(&mut self.state, ExchangeState::Finished);
        let result = match (state, self.mechanism) {
            (ExchangeState::Start, SaslMechanism::Plain) => plain(meta, token).await,
            (ExchangeState::Start, SaslMechanism::ScramSha256) => {
                self.scram_first(meta, ScramMechanism::Sha256, token).await
            }
            (ExchangeState::Start, SaslMechanism::ScramSha512) => {
                self.scram_first(meta, ScramMechanism::Sha512, token).await
            }
            (ExchangeState::ScramFirstSent(server), _) => server
                .verify_client_final(token)
                .map(|token| Step::Done {
                    principal: Principal::user(server.username()),
                    token,
                })
                .map_err(|err| match err {
                    ScramError::InvalidProof => AuthFailure::InvalidCredentials {
                        user: server.username().to_string(),
                    },
                    other => other.into(),
                }),
            (ExchangeState::Finished, _) => Err(AuthFailure::Finished),
        };
        result.unwrap_or_else(Step::Failed)
    }

    async fn scram_first(
        &mut self,
        meta: &dyn MetadataStore,
        mechanism: ScramMechanism,
        token: &[u8],
    ) -> Result<Step, AuthFailure> {
        let first = parse_client_first(token)?;
        let credential = match credentials::credential(meta, &first.username, mechanism).await? {
            Some(credential) => credential,
            // Fails at the proof, like a wrong password.
            None => unknown_user_credential(mechanism, &first.username),
        };
        let server = ServerFirst::new(first, credential);
        let challenge = server.message().to_vec();
        self.state = ExchangeState::ScramFirstSent(Box::new(server));
        Ok(Step::Continue(challenge))
    }
}

/// Longest PLAIN token: user name, password and separators.
const PLAIN_TOKEN_BYTES_MAX: usize = 4096;

/// A PLAIN token's user and password (`authzid NUL authcid NUL passwd`; an authorization
/// id, if any, must be the user). Pure: the fuzz target `sasl_plain` calls it.
pub fn parse_plain(token: &[u8]) -> Result<(&str, &[u8]), AuthFailure> {
    if token.len() > PLAIN_TOKEN_BYTES_MAX {
        return Err(AuthFailure::MalformedPlain);
    }
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthFailure::MalformedPlain);
    };
    let user = std::str::from_utf8(user).map_err(|_| AuthFailure::MalformedPlain)?;
    if user.is_empty() || password.is_empty() {
        return Err(AuthFailure::MalformedPlain);
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(AuthFailure::AuthorizationId);
    }
    Ok((user, password))
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`, checked against the user's stored
/// SCRAM credentials (any mechanism).
async fn plain(meta: &dyn MetadataStore, token: &[u8]) -> Result<Step, AuthFailure> {
    let (user, password) = parse_plain(token)?;
    let mut stored = credentials::credentials(meta, user).await?;
    // An unknown user costs the same key derivation as a known one.
    if stored.is_empty() {
        stored.push(unknown_user_credential(ScramMechanism::Sha256, user));
    }
    let password = password.to_vec();
    // Key derivation takes milliseconds: off the async workers.
    let matched = tokio::task::spawn_blocking(move || {
        // The cheapest credential is enough: they all hold the same password.
        let credential = stored
            .iter()
            .min_by_key(|c| c.iterations)
            .expect("at least one credential");
        credential.matches_password(&password)
    })
    .await
    .unwrap_or(false);
    if !matched {
        return Err(AuthFailure::InvalidCredentials {
            user: user.to_string(),
        });
    }
    Ok(Step::Done {
        principal: Principal::user(user),
        token: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strato_metadata::embedded::EmbeddedStore;

    use super::*;
    use crate::security::scram::{ITERATIONS_MIN, ScramClient, ScramCredential};

    async fn store_with_alice() -> (tempfile::TempDir, Arc<dyn MetadataStore>) {
        let dir = tempfile::tempdir().unwrap();
        let meta: Arc<dyn MetadataStore> = Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha512, b"alice-pw", ITERATIONS_MIN)
                .unwrap();
        credentials::alter(meta.as_ref(), "alice", &[credential], &[])
            .await
            .unwrap();
        (dir, meta)
    }

    #[tokio::test]
    async fn plain_checks_the_stored_scram_credential() {
        let (_dir, meta) = store_with_alice().await;
        let meta = meta.as_ref();
        let mut ok = SaslExchange::new(SaslMechanism::Plain);
        match ok.step(meta, b"\0alice\0alice-pw").await {
            Step::Done { principal, token } => {
                assert_eq!(principal, Principal::user("alice"));
                assert!(token.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ok.step(meta, b"\0alice\0alice-pw").await,
            Step::Failed(AuthFailure::Finished)
        ));
        for (token, what) in [
            (&b"\0alice\0wrong"[..], "wrong password"),
            (b"\0bob\0alice-pw", "unknown user"),
            (b"bob\0alice\0alice-pw", "other authzid"),
            (b"\0alice", "no password"),
            (b"\0alice\0pw\0x", "extra field"),
            (b"\0\0pw", "empty user"),
        ] {
            let mut exchange = SaslExchange::new(SaslMechanism::Plain);
            assert!(
                matches!(exchange.step(meta, token).await, Step::Failed(_)),
                "{what}"
            );
        }
        let mut same_authzid = SaslExchange::new(SaslMechanism::Plain);
        assert!(matches!(
            same_authzid.step(meta, b"alice\0alice\0alice-pw").await,
            Step::Done { .. }
        ));
    }

    #[tokio::test]
    async fn scram_exchange_against_the_store() {
        let (_dir, meta) = store_with_alice().await;
        let meta = meta.as_ref();
        for (user, password, mechanism, want_ok) in [
            ("alice", "alice-pw", SaslMechanism::ScramSha512, true),
            ("alice", "wrong", SaslMechanism::ScramSha512, false),
            // Alice has no SCRAM-SHA-256 credential.
            ("alice", "alice-pw", SaslMechanism::ScramSha256, false),
            ("nobody", "alice-pw", SaslMechanism::ScramSha512, false),
        ] {
            let scram = match mechanism {
                SaslMechanism::ScramSha256 => ScramMechanism::Sha256,
                _ => ScramMechanism::Sha512,
            };
            let mut client = ScramClient::new(scram, user, password);
            let mut exchange = SaslExchange::new(mechanism);
            let Step::Continue(server_first) = exchange.step(meta, &client.client_first()).await
            else {
                panic!("an unknown user still gets a challenge")
            };
            let client_final = client.client_final(&server_first).unwrap();
            match exchange.step(meta, &client_final).await {
                Step::Done { principal, token } => {
                    assert!(want_ok, "{user} {password} {mechanism}");
                    assert_eq!(principal, Principal::user(user));
                    client.verify_server_final(&token).unwrap();
                }
                Step::Failed(AuthFailure::InvalidCredentials { user: u }) => {
                    assert!(!want_ok, "{user} {password} {mechanism}");
                    assert_eq!(u, user);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
