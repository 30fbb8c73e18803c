//! HTTP basic authentication against the SCRAM users of the Kafka listeners (`strato user`,
//! AlterUserScramCredentials), for the HTTP APIs: the schema registry
//! (`--schema-registry-auth basic`) and the web console (when the authorizer is on).
//!
//! **Invariant:** a password is never stored, logged or kept in memory beyond the request:
//! what is remembered of a verified one is its SHA-256 next to the stored key it matched, so
//! a changed or deleted credential stops working on the next request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use base64::Engine;
use strato_metadata::{MetadataError, MetadataStore};

use super::Session;
use super::credentials;
use super::listener::SecurityProtocol;
use super::principal::Principal;

/// Passwords remembered as verified; when full the memory is cleared (each entry is a user
/// name and two hashes).
const VERIFIED_MAX: usize = 1024;
/// Longest `Authorization` header value read.
const HEADER_BYTES_MAX: usize = 4096;

/// A user and the SHA-256 of a password of theirs.
type UserPassword = (String, Vec<u8>);

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum BasicAuthError {
    /// No `Authorization: Basic` header, or a user or password that does not match.
    #[error("unauthorized")]
    Unauthorized,
    /// The users could not be read.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

pub struct BasicAuth {
    meta: Arc<dyn MetadataStore>,
    /// Passwords that matched → the stored key each matched.
    verified: Mutex<HashMap<UserPassword, Vec<u8>>>,
}

impl BasicAuth {
    pub fn new(meta: Arc<dyn MetadataStore>) -> Self {
        Self {
            meta,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The session of a request with `Authorization: Basic ...` for a user whose password
    /// matches one of its SCRAM credentials.
    pub async fn authenticate(
        &self,
        header: Option<&hyper::header::HeaderValue>,
        peer: SocketAddr,
    ) -> Result<Session, BasicAuthError> {
        let (user, password) = header
            .filter(|h| h.len() <= HEADER_BYTES_MAX)
            .and_then(|h| h.to_str().ok())
            .and_then(parse_basic)
            .ok_or(BasicAuthError::Unauthorized)?;
        let stored = credentials::credentials(self.meta.as_ref(), &user).await?;
        let hashed = digest::digest(&digest::SHA256, password.as_bytes())
            .as_ref()
            .to_vec();
        let key = (user, hashed);
        let remembered = self
            .verified
            .lock()
            .expect("verified lock")
            .get(&key)
            .cloned();
        let matched = match remembered {
            Some(stored_key) if stored.iter().any(|c| c.stored_key == stored_key) => true,
            _ => {
                // A key derivation per credential: off the async workers.
                let matched = tokio::task::spawn_blocking(move || {
                    stored
                        .into_iter()
                        .find(|c| c.matches_password(password.as_bytes()))
                        .map(|c| c.stored_key)
                })
                .await
                .ok()
                .flatten();
                match matched {
                    Some(stored_key) => {
                        let mut verified = self.verified.lock().expect("verified lock");
                        if verified.len() >= VERIFIED_MAX {
                            verified.clear();
                        }
                        verified.insert(key.clone(), stored_key);
                        true
                    }
                    None => false,
                }
            }
        };
        if !matched {
            tracing::debug!(user = %key.0, %peer, "HTTP basic authentication failed");
            return Err(BasicAuthError::Unauthorized);
        }
        Ok(Session::new(
            peer,
            SecurityProtocol::SaslPlaintext,
            Principal::user(key.0),
        ))
    }
}

/// `Basic base64(user:password)`.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:s3cr:et")
        );
        assert_eq!(
            parse_basic(&header),
            Some(("alice".into(), "s3cr:et".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic %%%"), None);
        assert_eq!(parse_basic("Basic"), None);
    }
}
