//! Users' SCRAM credentials in the metadata store (`users/<user>`): read at every SASL
//! login (so a deleted user cannot log in again, on any broker), written by
//! AlterUserScramCredentials and `strato user`.
//!
//! **Invariant:** only salted keys are stored (see `scram.rs`); a password never reaches the
//! store, a log line or an error.

use std::collections::BTreeMap;

use strato_metadata::model::{RECORD_FORMAT_V1, ScramCredentialRecord, UserRecord};
use strato_metadata::{MetadataError, MetadataStore, Txn, Version, keys};

use super::scram::{ScramCredential, ScramMechanism};

/// Most users one DescribeUserScramCredentials (or `strato user list`) answers with when it
/// lists every user: a response is bounded whatever the store holds.
pub const USERS_LISTED_MAX: usize = 100_000;
/// Longest user name accepted (a name is one metadata key segment, escaped).
pub const USER_NAME_BYTES_MAX: usize = 255;

/// A user's name and the mechanisms (with iterations) it has credentials for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub mechanisms: Vec<(ScramMechanism, u32)>,
}

/// Why a user name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    #[error("a user name must not be empty")]
    Empty,
    #[error("a user name must be at most {USER_NAME_BYTES_MAX} bytes")]
    TooLong,
}

pub fn check_user_name(name: &str) -> Result<(), UserNameError> {
    if name.is_empty() {
        return Err(UserNameError::Empty);
    }
    if name.len() > USER_NAME_BYTES_MAX {
        return Err(UserNameError::TooLong);
    }
    Ok(())
}

fn to_record(credential: &ScramCredential) -> ScramCredentialRecord {
    ScramCredentialRecord {
        salt: credential.salt.clone(),
        iterations: credential.iterations,
        stored_key: credential.stored_key.clone(),
        server_key: credential.server_key.clone(),
    }
}

fn from_record(mechanism: ScramMechanism, record: &ScramCredentialRecord) -> ScramCredential {
    ScramCredential {
        mechanism,
        salt: record.salt.clone(),
        iterations: record.iterations,
        stored_key: record.stored_key.clone(),
        server_key: record.server_key.clone(),
    }
}

fn summary(record: &UserRecord) -> UserSummary {
    UserSummary {
        name: record.name.clone(),
        mechanisms: record
            .scram
            .iter()
            .filter_map(|(name, c)| Some((ScramMechanism::from_name(name)?, c.iterations)))
            .collect(),
    }
}

async fn read_user(
    meta: &dyn MetadataStore,
    name: &str,
) -> Result<(Option<UserRecord>, Version), MetadataError> {
    let key = keys::user(name);
    match meta.get(&key).await? {
        None => Ok((None, 0)),
        Some(v) => Ok((Some(UserRecord::decode(&key, &v.value)?), v.version)),
    }
}

/// The credential `name` has for `mechanism`, if any.
pub async fn credential(
    meta: &dyn MetadataStore,
    name: &str,
    mechanism: ScramMechanism,
) -> Result<Option<ScramCredential>, MetadataError> {
    if check_user_name(name).is_err() {
        return Ok(None);
    }
    let (record, _) = read_user(meta, name).await?;
    Ok(record.and_then(|r| {
        r.scram
            .get(mechanism.name())
            .map(|c| from_record(mechanism, c))
    }))
}

/// Every credential of `name` (PLAIN checks a password against any of them).
pub async fn credentials(
    meta: &dyn MetadataStore,
    name: &str,
) -> Result<Vec<ScramCredential>, MetadataError> {
    if check_user_name(name).is_err() {
        return Ok(Vec::new());
    }
    let (record, _) = read_user(meta, name).await?;
    Ok(record
        .map(|r| {
            r.scram
                .iter()
                .filter_map(|(m, c)| Some(from_record(ScramMechanism::from_name(m)?, c)))
                .collect()
        })
        .unwrap_or_default())
}

/// One user's summary, `None` if it has no credentials.
pub async fn describe(
    meta: &dyn MetadataStore,
    name: &str,
) -> Result<Option<UserSummary>, MetadataError> {
    if check_user_name(name).is_err() {
        return Ok(None);
    }
    let (record, _) = read_user(meta, name).await?;
    Ok(record.map(|r| summary(&r)))
}

/// Every user, in name order (at most [`USERS_LISTED_MAX`]).
pub async fn list(meta: &dyn MetadataStore) -> Result<Vec<UserSummary>, MetadataError> {
    let mut users = Vec::new();
    meta.for_each(keys::USERS_PREFIX, None, &mut |key, value| {
        if users.len() < USERS_LISTED_MAX {
            users.push(summary(&UserRecord::decode(key, &value.value)?));
        }
        Ok(())
    })
    .await?;
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Applied,
    /// A deletion of a credential the user does not have.
    NotFound,
}

/// Sets (creates or replaces) credentials and removes others of one user, in one
/// compare-and-set write (nothing is written if a deletion names a credential the user does
/// not have); a user left with no credential is deleted.
pub async fn alter(
    meta: &dyn MetadataStore,
    name: &str,
    upserts: &[ScramCredential],
    deletions: &[ScramMechanism],
) -> Result<Change, MetadataError> {
    let key = keys::user(name);
    // Bounded: each round loses only to another writer of the same user.
    const ATTEMPTS: usize = 16;
    for _ in 0..ATTEMPTS {
        let (record, version) = read_user(meta, name).await?;
        let mut scram: BTreeMap<String, ScramCredentialRecord> =
            record.map(|r| r.scram).unwrap_or_default();
        let mut change = Change::Applied;
        for mechanism in deletions {
            if scram.remove(mechanism.name()).is_none() {
                change = Change::NotFound;
            }
        }
        for credential in upserts {
            scram.insert(
                credential.mechanism.name().to_string(),
                to_record(credential),
            );
        }
        // A deletion of a credential the user lacks refuses the user's whole change, as Kafka
        // does.
        if change == Change::NotFound {
            return Ok(Change::NotFound);
        }
        let txn = Txn::new().when_version(&key, version);
        let txn = if scram.is_empty() {
            txn.delete(&key)
        } else {
            let record = UserRecord {
                v: RECORD_FORMAT_V1,
                name: name.to_string(),
                scram,
            };
            txn.put(&key, record.encode())
        };
        match meta.txn(txn).await {
            Ok(_) => return Ok(change),
            Err(MetadataError::Conflict { .. }) => continue,
            Err(err) => return Err(err),
        }
    }
    Err(MetadataError::Timeout {
        operation: "alter user credentials (contended)",
    })
}

/// Deletes a user and all its credentials; `false` if there was none.
pub async fn delete_user(meta: &dyn MetadataStore, name: &str) -> Result<bool, MetadataError> {
    if check_user_name(name).is_err() {
        return Ok(false);
    }
    let key = keys::user(name);
    let Some(current) = meta.get(&key).await? else {
        return Ok(false);
    };
    match meta
        .txn(Txn::new().when_version(&key, current.version).delete(&key))
        .await
    {
        Ok(_) => Ok(true),
        // Changed meanwhile: delete whatever it is now.
        Err(MetadataError::Conflict { .. }) => {
            meta.txn(Txn::new().delete(&key)).await?;
            Ok(true)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strato_metadata::embedded::EmbeddedStore;

    use super::*;
    use crate::security::scram::ITERATIONS_MIN;

    #[tokio::test]
    async fn credentials_are_created_replaced_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let meta: Arc<dyn MetadataStore> = Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
        let meta = meta.as_ref();
        let sha256 =
            ScramCredential::from_password(ScramMechanism::Sha256, b"one", ITERATIONS_MIN).unwrap();
        let sha512 =
            ScramCredential::from_password(ScramMechanism::Sha512, b"one", ITERATIONS_MIN + 1)
                .unwrap();
        assert_eq!(
            alter(meta, "a/b", &[sha256.clone(), sha512.clone()], &[])
                .await
                .unwrap(),
            Change::Applied
        );
        assert_eq!(
            credential(meta, "a/b", ScramMechanism::Sha256)
                .await
                .unwrap(),
            Some(sha256.clone())
        );
        assert_eq!(credentials(meta, "a/b").await.unwrap().len(), 2);
        let summary = describe(meta, "a/b").await.unwrap().unwrap();
        assert_eq!(
            summary.mechanisms,
            vec![
                (ScramMechanism::Sha256, ITERATIONS_MIN),
                (ScramMechanism::Sha512, ITERATIONS_MIN + 1)
            ]
        );
        // Replacing one mechanism keeps the other.
        let replaced =
            ScramCredential::from_password(ScramMechanism::Sha256, b"two", ITERATIONS_MIN).unwrap();
        alter(meta, "a/b", std::slice::from_ref(&replaced), &[])
            .await
            .unwrap();
        assert_eq!(
            credential(meta, "a/b", ScramMechanism::Sha256)
                .await
                .unwrap(),
            Some(replaced)
        );
        assert_eq!(
            credential(meta, "a/b", ScramMechanism::Sha512)
                .await
                .unwrap(),
            Some(sha512)
        );
        alter(meta, "zed", &[sha256], &[]).await.unwrap();
        let names: Vec<String> = list(meta)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["a/b", "zed"]);
        // Deleting a mechanism the user lacks changes nothing.
        assert_eq!(
            alter(meta, "zed", &[], &[ScramMechanism::Sha512])
                .await
                .unwrap(),
            Change::NotFound
        );
        // Deleting the last credential deletes the user.
        alter(meta, "zed", &[], &[ScramMechanism::Sha256])
            .await
            .unwrap();
        assert_eq!(describe(meta, "zed").await.unwrap(), None);
        assert!(delete_user(meta, "a/b").await.unwrap());
        assert!(!delete_user(meta, "a/b").await.unwrap());
        assert!(list(meta).await.unwrap().is_empty());
        assert_eq!(credentials(meta, "").await.unwrap(), vec![]);
    }
}
