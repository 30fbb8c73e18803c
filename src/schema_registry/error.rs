//! `RegistryError`: what a registry request can fail with, and the one place where a failure
//! becomes an HTTP status and Confluent's `error_code` (clients branch on the code: 40401
//! subject not found, 409 incompatible, 42201 invalid schema, ...).

use strato_metadata::MetadataError;

#[derive(Debug, thiserror::Error)]
pub(super) enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(u32),
    #[error("Schema {0} not found")]
    SchemaNotFound(u32),
    /// A lookup (POST /subjects/{s}) found no version with the schema.
    #[error("Schema not found")]
    SchemaNotInSubject,
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error(
        "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted { subject: String, version: u32 },
    #[error(
        "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
    )]
    VersionNotSoftDeleted { subject: String, version: u32 },
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotFound(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .messages.join(", "))]
    Incompatible {
        subject: String,
        messages: Vec<String>,
    },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
    )]
    InvalidCompatibility,
    #[error("Invalid mode. Valid values are READWRITE, READONLY and IMPORT")]
    InvalidMode,
    #[error("{0}")]
    NotPermitted(String),
    #[error("One or more references exist to the schema {{subject={subject},version={version}}}")]
    ReferenceExists { subject: String, version: u32 },
    #[error("Invalid subject: {0}")]
    InvalidSubject(String),
    #[error("Schema is larger than {0} bytes")]
    SchemaTooLarge(usize),
    /// A body that is not the JSON the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    #[error("HTTP 404 Not Found")]
    NoSuchEndpoint,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    /// No or wrong credentials (`--schema-registry-auth basic`).
    #[error("Unauthorized")]
    Unauthorized,
    /// Authenticated, but the ACLs do not allow it.
    #[error("{0}")]
    Forbidden(String),
    #[error("Error in the backend data store: {0}")]
    Store(#[from] MetadataError),
    /// Other brokers kept winning the compare-and-set races of a write.
    #[error("Error in the backend data store: too many concurrent writes, try again")]
    Contention,
}

impl RegistryError {
    /// The HTTP status and Confluent `error_code` of the error.
    pub(super) fn codes(&self) -> (u16, u32) {
        match self {
            RegistryError::SubjectNotFound(_) => (404, 40401),
            RegistryError::VersionNotFound(_) => (404, 40402),
            RegistryError::SchemaNotFound(_) | RegistryError::SchemaNotInSubject => (404, 40403),
            RegistryError::SubjectSoftDeleted(_) => (404, 40404),
            RegistryError::SubjectNotSoftDeleted(_) => (404, 40405),
            RegistryError::VersionSoftDeleted { .. } => (404, 40406),
            RegistryError::VersionNotSoftDeleted { .. } => (404, 40407),
            RegistryError::SubjectConfigNotFound(_) => (404, 40408),
            RegistryError::SubjectModeNotFound(_) => (404, 40409),
            RegistryError::Incompatible { .. } => (409, 409),
            RegistryError::InvalidSchema(_) => (422, 42201),
            RegistryError::InvalidVersion(_) => (422, 42202),
            RegistryError::InvalidCompatibility => (422, 42203),
            RegistryError::InvalidMode => (422, 42204),
            RegistryError::NotPermitted(_) => (422, 42205),
            RegistryError::ReferenceExists { .. } => (422, 42206),
            RegistryError::InvalidSubject(_) => (422, 42208),
            RegistryError::SchemaTooLarge(_) => (422, 42209),
            RegistryError::BadRequest(_) => (400, 400),
            RegistryError::NoSuchEndpoint => (404, 404),
            RegistryError::MethodNotAllowed => (405, 405),
            RegistryError::Unauthorized => (401, 401),
            RegistryError::Forbidden(_) => (403, 40301),
            RegistryError::Store(MetadataError::Timeout { .. }) => (500, 50002),
            RegistryError::Store(_) | RegistryError::Contention => (500, 50001),
        }
    }
}
