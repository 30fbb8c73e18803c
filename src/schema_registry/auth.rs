//! Who may use the schema registry's REST API (`--schema-registry-auth basic`): HTTP basic
//! authentication against the same SCRAM users as the Kafka listeners (`strato user`,
//! AlterUserScramCredentials), and authorization by the same ACLs.
//!
//! Kafka's ACLs have no subject resource, so a subject is authorized through the topic its
//! name follows (TopicNameStrategy, what serializers use by default): `<topic>-key` and
//! `<topic>-value` belong to `<topic>`. Reading a subject (its versions, schemas, lookups,
//! compatibility checks) needs DESCRIBE on the topic, which READ and WRITE imply, so the
//! consumers and producers of a topic read its schemas; registering a version needs WRITE
//! on it (a producer that auto-registers); deleting versions and changing the subject's
//! compatibility or mode needs ALTER on it. Other subjects need the same operations on the
//! cluster resource, and so do the global compatibility and mode. A schema by id is served
//! to whoever may read a subject that uses it; listings show only readable subjects. Super
//! users may do everything; with `--authorizer false` authentication alone decides.
//!
//! **Invariant:** a password is never stored, logged or kept in memory beyond the request:
//! what is remembered of a verified one is its SHA-256 next to the stored key it matched, so
//! a changed or deleted credential stops working on the next request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use base64::Engine;
use hyper::Method;
use strato_metadata::MetadataStore;

use super::error::RegistryError;
use super::store::Registry;
use crate::security::Session;
use crate::security::acl::{AclOperation, CLUSTER_RESOURCE_NAME, ResourceType};
use crate::security::authorizer::Authorizer;
use crate::security::credentials;
use crate::security::listener::SecurityProtocol;
use crate::security::principal::Principal;

/// Passwords remembered as verified; when full the memory is cleared (each entry is a user
/// name and two hashes).
const VERIFIED_MAX: usize = 1024;
/// Longest `Authorization` header value read.
const HEADER_BYTES_MAX: usize = 4096;

/// A user and the SHA-256 of a password of theirs.
type UserPassword = (String, Vec<u8>);

pub struct RegistryAuth {
    meta: Arc<dyn MetadataStore>,
    authorizer: Arc<Authorizer>,
    /// Passwords that matched → the stored key each matched.
    verified: Mutex<HashMap<UserPassword, Vec<u8>>>,
}

/// What a request does to what, for [`RegistryAuth::authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Access {
    /// Open to every authenticated user (schema types, the global config and mode).
    Any,
    Read(String),
    Register(String),
    Alter(String),
    /// The global compatibility or mode.
    AlterGlobal,
    /// A schema by id: readable if some subject using it is.
    Schema(u32),
}

impl RegistryAuth {
    pub fn new(meta: Arc<dyn MetadataStore>, authorizer: Arc<Authorizer>) -> Self {
        RegistryAuth {
            meta,
            authorizer,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The session of a request with `Authorization: Basic ...` for a user whose password
    /// matches one of its SCRAM credentials.
    pub(super) async fn authenticate(
        &self,
        header: Option<&hyper::header::HeaderValue>,
        peer: SocketAddr,
    ) -> Result<Session, RegistryError> {
        let (user, password) = header
            .filter(|h| h.len() <= HEADER_BYTES_MAX)
            .and_then(|h| h.to_str().ok())
            .and_then(parse_basic)
            .ok_or(RegistryError::Unauthorized)?;
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
            tracing::debug!(user = %key.0, %peer, "schema registry authentication failed");
            return Err(RegistryError::Unauthorized);
        }
        Ok(Session::new(
            peer,
            SecurityProtocol::SaslPlaintext,
            Principal::user(key.0),
        ))
    }

    /// Whether `session` may do `access`; a denial names what was denied.
    pub(super) fn authorize(
        &self,
        session: &Session,
        registry: &Registry,
        access: &Access,
    ) -> Result<(), RegistryError> {
        let (operation, subject) = match access {
            Access::Any => return Ok(()),
            Access::Read(s) => (AclOperation::Describe, Some(s.as_str())),
            Access::Register(s) => (AclOperation::Write, Some(s.as_str())),
            Access::Alter(s) => (AclOperation::Alter, Some(s.as_str())),
            Access::AlterGlobal => (AclOperation::Alter, None),
            Access::Schema(id) => {
                let usages = registry.read(|s| s.usages(*id, true));
                // An unknown id is answered 404 by the endpoint.
                if usages.is_empty() || usages.iter().any(|(s, _)| self.may_read(session, s)) {
                    return Ok(());
                }
                return Err(RegistryError::Forbidden(format!(
                    "User {} is denied operation Read on schema id {id}",
                    session.principal
                )));
            }
        };
        let (resource_type, name) = subject_resource(subject);
        if self
            .authorizer
            .allows(session, operation, resource_type, name)
        {
            Ok(())
        } else {
            Err(RegistryError::Forbidden(format!(
                "User {} is denied operation {operation:?} on {}",
                session.principal,
                subject.map_or("the global configuration".to_string(), |s| format!(
                    "subject {s}"
                ))
            )))
        }
    }

    /// Whether `session` may read `subject` (for filtering listings; not logged).
    pub(super) fn may_read(&self, session: &Session, subject: &str) -> bool {
        let (resource_type, name) = subject_resource(Some(subject));
        self.authorizer
            .allows_quietly(session, AclOperation::Describe, resource_type, name)
    }
}

/// The resource a subject is authorized through: its topic under TopicNameStrategy, else
/// the cluster (also for `None`, the global settings).
fn subject_resource(subject: Option<&str>) -> (ResourceType, &str) {
    let topic = subject.and_then(|s| {
        s.strip_suffix("-value")
            .or_else(|| s.strip_suffix("-key"))
            .filter(|t| !t.is_empty())
    });
    match topic {
        Some(topic) => (ResourceType::Topic, topic),
        None => (ResourceType::Cluster, CLUSTER_RESOURCE_NAME),
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

/// What a request (method and decoded path segments) does, for authorization.
pub(super) fn access_of(method: &Method, segments: &[&str]) -> Access {
    let subject = |s: &str| s.to_string();
    match segments {
        ["subjects", s, "versions"] if *method == Method::POST => Access::Register(subject(s)),
        ["subjects", s, ..] if *method == Method::DELETE => Access::Alter(subject(s)),
        ["subjects", s, ..] => Access::Read(subject(s)),
        ["compatibility", "subjects", s, ..] => Access::Read(subject(s)),
        ["config" | "mode", s] if *method == Method::GET => Access::Read(subject(s)),
        ["config" | "mode", s] => Access::Alter(subject(s)),
        ["config" | "mode"] if *method == Method::GET => Access::Any,
        ["config" | "mode"] => Access::AlterGlobal,
        ["schemas", "ids", id, ..] => match id.parse() {
            Ok(id) => Access::Schema(id),
            // The endpoint answers 404 for it.
            Err(_) => Access::Any,
        },
        // `/subjects` is filtered to readable subjects; the rest is open or does not exist.
        _ => Access::Any,
    }
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

    #[test]
    fn requests_map_to_the_subjects_topic_or_the_cluster() {
        use Access::*;
        let cases: &[(Method, &[&str], Access)] = &[
            (Method::GET, &["subjects"], Any),
            (
                Method::POST,
                &["subjects", "t-value", "versions"],
                Register("t-value".into()),
            ),
            (
                Method::GET,
                &["subjects", "t-value", "versions"],
                Read("t-value".into()),
            ),
            (
                Method::POST,
                &["subjects", "t-value"],
                Read("t-value".into()),
            ),
            (
                Method::DELETE,
                &["subjects", "t-value", "versions", "1"],
                Alter("t-value".into()),
            ),
            (
                Method::POST,
                &["compatibility", "subjects", "t-key", "versions"],
                Read("t-key".into()),
            ),
            (Method::PUT, &["config", "t-key"], Alter("t-key".into())),
            (Method::GET, &["config"], Any),
            (Method::PUT, &["mode"], AlterGlobal),
            (Method::GET, &["schemas", "ids", "7", "schema"], Schema(7)),
            (Method::GET, &["schemas", "types"], Any),
        ];
        for (method, segments, expected) in cases {
            assert_eq!(
                &access_of(method, segments),
                expected,
                "{method} {segments:?}"
            );
        }
        assert_eq!(
            subject_resource(Some("orders-value")),
            (ResourceType::Topic, "orders")
        );
        assert_eq!(
            subject_resource(Some("orders-key")),
            (ResourceType::Topic, "orders")
        );
        assert_eq!(
            subject_resource(Some("com.example.Order")),
            (ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
        );
        assert_eq!(
            subject_resource(Some("-value")),
            (ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
        );
    }
}
