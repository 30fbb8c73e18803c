//! ACL bindings in the metadata store (`acls/`, one key per binding, see
//! `strato_metadata::keys::acl`): creation (idempotent: the same binding is the same key) and
//! deletion by filter (list, then delete in transactions of at most [`OPS_PER_TXN`]). Every
//! write is also applied to this broker's [`Authorizer`] at once; the others see it through
//! their watch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strato_metadata::model::AclRecord;
use strato_metadata::{MetadataError, MetadataStore, Txn, keys};

use super::acl::{AclBinding, AclBindingFilter, InvalidAcl};
use super::authorizer::{ACL_BINDINGS_MAX, Authorizer};

/// Writes per transaction. etcd refuses transactions with more than `--max-txn-ops`
/// operations (default 128, etcd server docs).
const OPS_PER_TXN: usize = 100;

/// Why a binding was not created or a filter not applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AclStoreError {
    #[error(transparent)]
    Invalid(#[from] InvalidAcl),
    #[error("the cluster holds {max} ACL bindings, the most it may")]
    TooMany { max: usize },
    #[error("metadata store: {0}")]
    Metadata(Arc<MetadataError>),
}

/// Creates `bindings` (each validated first); one outcome per binding, in order. A binding
/// that exists already is written again, which changes nothing.
pub async fn create(
    meta: &dyn MetadataStore,
    authorizer: &Authorizer,
    bindings: Vec<AclBinding>,
) -> Vec<Result<(), AclStoreError>> {
    let mut outcomes: Vec<Result<(), AclStoreError>> = Vec::with_capacity(bindings.len());
    // (index into `outcomes`, key, record) of what is to be written: each key once, as etcd
    // refuses a transaction that names a key twice.
    let mut writes: Vec<(usize, String, AclRecord)> = Vec::new();
    // A binding asked for twice: (its outcome, the outcome of its first occurrence).
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut first_by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut room = ACL_BINDINGS_MAX.saturating_sub(authorizer.binding_count());
    for binding in &bindings {
        if let Err(err) = binding.validate() {
            outcomes.push(Err(err.into()));
            continue;
        }
        let record = binding.to_record();
        let key = record.key();
        if let Some(first) = first_by_key.get(&key) {
            repeats.push((outcomes.len(), *first));
            outcomes.push(Ok(()));
            continue;
        }
        if !authorizer.holds(&key) {
            if room == 0 {
                outcomes.push(Err(AclStoreError::TooMany {
                    max: ACL_BINDINGS_MAX,
                }));
                continue;
            }
            room -= 1;
        }
        first_by_key.insert(key.clone(), outcomes.len());
        writes.push((outcomes.len(), key, record));
        outcomes.push(Ok(()));
    }
    for chunk in writes.chunks(OPS_PER_TXN) {
        let txn = chunk.iter().fold(Txn::new(), |txn, (_, key, record)| {
            txn.put(key.clone(), record.encode())
        });
        match meta.txn(txn).await {
            Ok(_) => {
                for (_, key, record) in chunk {
                    authorizer.apply_put(key.clone(), AclBinding::from_record(record));
                }
            }
            Err(err) => {
                tracing::warn!("failed to store ACL bindings: {err:#}");
                let err = Arc::new(err);
                for (idx, _, _) in chunk {
                    outcomes[*idx] = Err(AclStoreError::Metadata(Arc::clone(&err)));
                }
            }
        }
    }
    for (repeat, first) in repeats {
        outcomes[repeat] = outcomes[first].clone();
    }
    outcomes
}

/// Deletes every stored binding a filter matches; per filter, in order, the bindings it
/// matched (a binding two filters match is deleted once and reported by both, as Kafka does).
pub async fn delete(
    meta: &dyn MetadataStore,
    authorizer: &Authorizer,
    filters: Vec<AclBindingFilter>,
) -> Vec<Result<Vec<AclBinding>, AclStoreError>> {
    let stored = match stored_bindings(meta).await {
        Ok(stored) => stored,
        Err(err) => {
            tracing::warn!("failed to read ACL bindings: {err:#}");
            let err = Arc::new(err);
            return filters
                .iter()
                .map(|_| Err(AclStoreError::Metadata(Arc::clone(&err))))
                .collect();
        }
    };
    // Per filter: its validation error, or the keys it matched.
    let matched: Vec<Result<Vec<&str>, InvalidAcl>> = filters
        .iter()
        .map(|filter| {
            filter.validate()?;
            Ok(stored
                .iter()
                .filter(|(_, binding)| filter.matches(binding))
                .map(|(key, _)| key.as_str())
                .collect())
        })
        .collect();
    let doomed: BTreeSet<&str> = matched.iter().flatten().flatten().copied().collect();
    let doomed: Vec<&str> = doomed.into_iter().collect();
    // Keys whose delete failed, with why.
    let mut failed: BTreeMap<&str, Arc<MetadataError>> = BTreeMap::new();
    for chunk in doomed.chunks(OPS_PER_TXN) {
        let txn = chunk.iter().fold(Txn::new(), |txn, key| txn.delete(*key));
        match meta.txn(txn).await {
            Ok(_) => {
                for key in chunk {
                    authorizer.apply_delete(key);
                }
            }
            Err(err) => {
                tracing::warn!("failed to delete ACL bindings: {err:#}");
                let err = Arc::new(err);
                failed.extend(chunk.iter().map(|key| (*key, Arc::clone(&err))));
            }
        }
    }
    if !authorizer.is_complete()
        && let Err(err) = authorizer.load(meta).await
    {
        tracing::warn!("failed to read ACLs: {err:#}");
    }
    matched
        .into_iter()
        .map(|keys| {
            let keys = keys?;
            if let Some(err) = keys.iter().find_map(|key| failed.get(key)) {
                return Err(AclStoreError::Metadata(Arc::clone(err)));
            }
            Ok(keys.iter().map(|key| stored[*key].clone()).collect())
        })
        .collect()
}

/// Every binding in the store, by key (records that do not decode are skipped).
async fn stored_bindings(
    meta: &dyn MetadataStore,
) -> Result<BTreeMap<String, AclBinding>, MetadataError> {
    let mut stored = BTreeMap::new();
    meta.for_each(keys::ACLS_PREFIX, None, &mut |key, value| {
        match AclRecord::decode(key, &value.value) {
            Ok(record) => {
                stored.insert(key.to_string(), AclBinding::from_record(&record));
            }
            Err(err) => tracing::warn!(%key, "ignoring a bad ACL record: {err:#}"),
        }
        Ok(())
    })
    .await?;
    Ok(stored)
}
