//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): Kafka's AdminClient
//! lists users and sets or removes their SCRAM credentials. The client salts the password;
//! only the salt, the iteration count and the derived keys are stored.
//!
//! Describing needs DESCRIBE on the cluster, altering ALTER on the cluster
//! (CLUSTER_AUTHORIZATION_FAILED), as in Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerCtx, error};
use crate::security::Session;
use crate::security::acl::AclOperation;
use crate::security::credentials::{self, Change, UserSummary};
use crate::security::scram::{CredentialError, ScramCredential, ScramMechanism};

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn described(summary: UserSummary) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(text(summary.name))
        .with_credential_infos(
            summary
                .mechanisms
                .into_iter()
                .map(|(mechanism, iterations)| {
                    CredentialInfo::default()
                        .with_mechanism(mechanism.code())
                        .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                })
                .collect(),
        )
}

fn user_error(
    user: &str,
    code: ResponseError,
    message: String,
) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(text(user))
        .with_error_code(error::code(code))
        .with_error_message(Some(text(message)))
}

pub(super) async fn describe(
    ctx: &Arc<BrokerCtx>,
    req: DescribeUserScramCredentialsRequest,
    session: &Session,
) -> DescribeUserScramCredentialsResponse {
    let meta = ctx.meta.as_ref();
    let response = DescribeUserScramCredentialsResponse::default();
    if !ctx
        .authorizer
        .allows_cluster(session, AclOperation::Describe)
    {
        return response
            .with_error_code(error::code(ResponseError::ClusterAuthorizationFailed))
            .with_error_message(Some(text("DESCRIBE on the cluster is not allowed")));
    }
    // KIP-554: a null or empty list asks for every user (librdkafka sends an empty one).
    let users = req.users.filter(|users| !users.is_empty());
    let Some(users) = users else {
        return match credentials::list(meta).await {
            Ok(all) => response.with_results(all.into_iter().map(described).collect()),
            Err(err) => {
                tracing::warn!("failed to list users: {err:#}");
                response
                    .with_error_code(error::from_metadata(&err))
                    .with_error_message(Some(text("users could not be read")))
            }
        };
    };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for user in &users {
        *counts.entry(user.name.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(users.len());
    for user in &users {
        let name = user.name.as_str();
        if counts[name] > 1 {
            // Kafka answers each duplicate once.
            if results
                .iter()
                .any(|r: &DescribeUserScramCredentialsResult| r.user.as_str() == name)
            {
                continue;
            }
            results.push(user_error(
                name,
                ResponseError::DuplicateResource,
                format!("Cannot describe SCRAM credentials for the same user twice in a single request: {name}"),
            ));
            continue;
        }
        results.push(match credentials::describe(meta, name).await {
            Ok(Some(summary)) => described(summary),
            Ok(None) => user_error(
                name,
                ResponseError::ResourceNotFound,
                format!("Attempt to describe a user credential that does not exist: {name}"),
            ),
            Err(err) => {
                tracing::warn!(user = name, "failed to read a user: {err:#}");
                user_error(
                    name,
                    ResponseError::try_from_code(error::from_metadata(&err))
                        .unwrap_or(ResponseError::UnknownServerError),
                    "the user could not be read".to_string(),
                )
            }
        });
    }
    response.with_results(results)
}

/// The changes asked for one user.
#[derive(Default)]
struct UserChanges {
    upserts: Vec<ScramCredential>,
    deletions: Vec<ScramMechanism>,
    /// The first problem found; nothing of this user is changed then.
    refused: Option<(ResponseError, String)>,
}

fn refuse(changes: &mut UserChanges, code: ResponseError, message: String) {
    if changes.refused.is_none() {
        changes.refused = Some((code, message));
    }
}

pub(super) async fn alter(
    ctx: &Arc<BrokerCtx>,
    req: AlterUserScramCredentialsRequest,
    session: &Session,
) -> AlterUserScramCredentialsResponse {
    let authorized = ctx.authorizer.allows_cluster(session, AclOperation::Alter);
    // Per user (in name order), every change and the mechanisms already named.
    let mut users: BTreeMap<String, UserChanges> = BTreeMap::new();
    let mut named: HashMap<(String, i8), usize> = HashMap::new();
    let requests = req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            req.upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        );
    for key in requests {
        *named.entry(key).or_default() += 1;
    }
    for deletion in &req.deletions {
        let name = deletion.name.to_string();
        let changes = users.entry(name.clone()).or_default();
        match ScramMechanism::from_code(deletion.mechanism) {
            _ if name.is_empty() => refuse(
                changes,
                ResponseError::UnacceptableCredential,
                "Username must not be empty".to_string(),
            ),
            None => refuse(
                changes,
                ResponseError::UnsupportedSaslMechanism,
                format!("Unknown SCRAM mechanism {}", deletion.mechanism),
            ),
            Some(_) if named[&(name.clone(), deletion.mechanism)] > 1 => refuse(
                changes,
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request".to_string(),
            ),
            Some(mechanism) => changes.deletions.push(mechanism),
        }
    }
    for upsertion in &req.upsertions {
        let name = upsertion.name.to_string();
        let changes = users.entry(name.clone()).or_default();
        let Some(mechanism) = ScramMechanism::from_code(upsertion.mechanism) else {
            refuse(
                changes,
                ResponseError::UnsupportedSaslMechanism,
                format!("Unknown SCRAM mechanism {}", upsertion.mechanism),
            );
            continue;
        };
        if named[&(name.clone(), upsertion.mechanism)] > 1 {
            refuse(
                changes,
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request".to_string(),
            );
            continue;
        }
        if let Err(err) = credentials::check_user_name(&name) {
            refuse(
                changes,
                ResponseError::UnacceptableCredential,
                err.to_string(),
            );
            continue;
        }
        let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
        match ScramCredential::from_salted_password(
            mechanism,
            &upsertion.salted_password,
            &upsertion.salt,
            iterations,
        ) {
            Ok(credential) => changes.upserts.push(credential),
            Err(
                err @ (CredentialError::Iterations
                | CredentialError::EmptySalt
                | CredentialError::EmptyPassword
                | CredentialError::SaltedPasswordLength(_)),
            ) => refuse(
                changes,
                ResponseError::UnacceptableCredential,
                err.to_string(),
            ),
        }
    }
    let mut results = Vec::with_capacity(users.len());
    for (name, changes) in users {
        let result = AlterUserScramCredentialsResult::default().with_user(text(name.clone()));
        let refused = if authorized {
            changes.refused
        } else {
            Some((
                ResponseError::ClusterAuthorizationFailed,
                "ALTER on the cluster is not allowed".to_string(),
            ))
        };
        if let Some((code, message)) = refused {
            results.push(
                result
                    .with_error_code(error::code(code))
                    .with_error_message(Some(text(message))),
            );
            continue;
        }
        let outcome = credentials::alter(
            ctx.meta.as_ref(),
            &name,
            &changes.upserts,
            &changes.deletions,
        )
        .await;
        results.push(match outcome {
            Ok(Change::Applied) => {
                tracing::info!(
                    user = %name,
                    upserted = changes.upserts.len(),
                    deleted = changes.deletions.len(),
                    "user credentials changed"
                );
                result
            }
            Ok(Change::NotFound) => result
                .with_error_code(error::code(ResponseError::ResourceNotFound))
                .with_error_message(Some(text(format!(
                    "Attempt to delete a user credential that does not exist: {name}"
                )))),
            Err(err) => {
                tracing::warn!(user = %name, "failed to change user credentials: {err:#}");
                result
                    .with_error_code(error::from_metadata(&err))
                    .with_error_message(Some(text("the user could not be changed")))
            }
        });
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}
