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
//! Authentication is `security::http_basic` (its invariant: no password is kept).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::Method;
use strato_metadata::MetadataStore;

use super::error::RegistryError;
use super::store::Registry;
use crate::security::Session;
use crate::security::acl::{AclOperation, CLUSTER_RESOURCE_NAME, ResourceType};
use crate::security::authorizer::Authorizer;
use crate::security::http_basic::{BasicAuth, BasicAuthError};

pub struct RegistryAuth {
    basic: BasicAuth,
    authorizer: Arc<Authorizer>,
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
            basic: BasicAuth::new(meta),
            authorizer,
        }
    }

    /// The session of a request with `Authorization: Basic ...` for a user whose password
    /// matches one of its SCRAM credentials.
    pub(super) async fn authenticate(
        &self,
        header: Option<&hyper::header::HeaderValue>,
        peer: SocketAddr,
    ) -> Result<Session, RegistryError> {
        self.basic
            .authenticate(header, peer)
            .await
            .map_err(|err| match err {
                BasicAuthError::Unauthorized => RegistryError::Unauthorized,
                BasicAuthError::Metadata(err) => err.into(),
            })
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
