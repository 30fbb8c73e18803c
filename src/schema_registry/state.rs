//! `State`: the in-memory copy of `schema-registry/` that every read is served from. It is
//! rebuilt from a full read of the prefix and then changed key by key (watch events, and this
//! broker's own writes as soon as they are committed). Each entry remembers the store version
//! it was written at, so an event older than what the copy holds is ignored and the copy
//! converges on the store whatever order the two sources deliver in.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use strato_metadata::model::{
    SchemaConfigRecord, SchemaFingerprintRecord, SchemaModeRecord, SchemaRecord,
    SubjectVersionRecord,
};
use strato_metadata::{MetadataError, Version, keys};

use super::error::RegistryError;
use super::{Compatibility, Mode, VersionSelector};

/// A value with the store version of its key.
#[derive(Debug, Clone)]
pub(super) struct Entry<T> {
    pub value: T,
    pub version: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct VersionEntry {
    pub id: u32,
    pub deleted: bool,
}

#[derive(Debug, Default)]
pub(super) struct Subject {
    pub versions: BTreeMap<u32, Entry<VersionEntry>>,
    pub config: Option<Entry<Compatibility>>,
    pub mode: Option<Entry<Mode>>,
}

impl Subject {
    fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.config.is_none() && self.mode.is_none()
    }

    /// Versions that are not soft-deleted, with their schema ids, oldest first.
    pub(super) fn live(&self) -> impl DoubleEndedIterator<Item = (u32, u32)> + '_ {
        self.versions
            .iter()
            .filter(|(_, e)| !e.value.deleted)
            .map(|(v, e)| (*v, e.value.id))
    }

    pub(super) fn has_live(&self) -> bool {
        self.live().next().is_some()
    }
}

/// What a key of the prefix holds.
enum KeyKind {
    NextId,
    Config,
    Mode,
    Schema(u32),
    Fingerprint(String),
    SubjectVersion(String, u32),
    SubjectConfig(String),
    SubjectMode(String),
}

fn key_kind(key: &str) -> Option<KeyKind> {
    match key {
        keys::SCHEMA_REGISTRY_NEXT_ID => return Some(KeyKind::NextId),
        keys::SCHEMA_REGISTRY_CONFIG => return Some(KeyKind::Config),
        keys::SCHEMA_REGISTRY_MODE => return Some(KeyKind::Mode),
        _ => {}
    }
    if let Some(id) = key.strip_prefix(keys::SCHEMA_REGISTRY_IDS_PREFIX) {
        return id.parse().ok().map(KeyKind::Schema);
    }
    if let Some(hash) = key.strip_prefix(keys::SCHEMA_REGISTRY_FINGERPRINTS_PREFIX) {
        return Some(KeyKind::Fingerprint(hash.to_string()));
    }
    let rest = key.strip_prefix(keys::SCHEMA_REGISTRY_SUBJECTS_PREFIX)?;
    let (segment, rest) = rest.split_once('/')?;
    let subject = keys::decode_group_id(segment)?;
    match rest {
        "config" => Some(KeyKind::SubjectConfig(subject)),
        "mode" => Some(KeyKind::SubjectMode(subject)),
        _ => {
            let version = rest.strip_prefix("versions/")?.parse().ok()?;
            Some(KeyKind::SubjectVersion(subject, version))
        }
    }
}

/// Replaces `slot` by `value` unless it holds a newer version.
fn put_newer<T>(slot: &mut Option<Entry<T>>, value: T, version: Version) {
    if slot.as_ref().is_none_or(|e| e.version <= version) {
        *slot = Some(Entry { value, version });
    }
}

/// Empties `slot` unless it holds a version newer than the delete.
fn delete_older<T>(slot: &mut Option<Entry<T>>, version: Version) {
    if slot.as_ref().is_some_and(|e| e.version <= version) {
        *slot = None;
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub schemas: BTreeMap<u32, Entry<Arc<SchemaRecord>>>,
    pub fingerprints: HashMap<String, Entry<u32>>,
    pub subjects: BTreeMap<String, Subject>,
    pub config: Option<Entry<Compatibility>>,
    pub mode: Option<Entry<Mode>>,
}

impl State {
    /// Applies the value written to `key` at `version`. A record that does not decode is an
    /// error (the caller logs it and the copy keeps what it had).
    pub(super) fn apply_put(
        &mut self,
        key: &str,
        value: &[u8],
        version: Version,
    ) -> Result<(), MetadataError> {
        let Some(kind) = key_kind(key) else {
            return Ok(());
        };
        match kind {
            KeyKind::NextId => {}
            KeyKind::Config => {
                let level = decode_level(key, value)?;
                put_newer(&mut self.config, level, version);
            }
            KeyKind::Mode => {
                let mode = decode_mode(key, value)?;
                put_newer(&mut self.mode, mode, version);
            }
            KeyKind::Schema(id) => {
                let record = Arc::new(SchemaRecord::decode(key, value)?);
                let mut slot = self.schemas.remove(&id);
                put_newer(&mut slot, record, version);
                self.schemas.extend(slot.map(|e| (id, e)));
            }
            KeyKind::Fingerprint(hash) => {
                let id = SchemaFingerprintRecord::decode(key, value)?.id;
                let mut slot = self.fingerprints.remove(&hash);
                put_newer(&mut slot, id, version);
                self.fingerprints.extend(slot.map(|e| (hash, e)));
            }
            KeyKind::SubjectVersion(subject, number) => {
                let record = SubjectVersionRecord::decode(key, value)?;
                let entry = VersionEntry {
                    id: record.id,
                    deleted: record.deleted,
                };
                let versions = &mut self.subjects.entry(subject).or_default().versions;
                let mut slot = versions.remove(&number);
                put_newer(&mut slot, entry, version);
                versions.extend(slot.map(|e| (number, e)));
            }
            KeyKind::SubjectConfig(subject) => {
                let level = decode_level(key, value)?;
                put_newer(
                    &mut self.subjects.entry(subject).or_default().config,
                    level,
                    version,
                );
            }
            KeyKind::SubjectMode(subject) => {
                let mode = decode_mode(key, value)?;
                put_newer(
                    &mut self.subjects.entry(subject).or_default().mode,
                    mode,
                    version,
                );
            }
        }
        Ok(())
    }

    /// Applies the delete of `key` at `version`.
    pub(super) fn apply_delete(&mut self, key: &str, version: Version) {
        let Some(kind) = key_kind(key) else { return };
        match kind {
            KeyKind::NextId => {}
            KeyKind::Config => delete_older(&mut self.config, version),
            KeyKind::Mode => delete_older(&mut self.mode, version),
            KeyKind::Schema(id) => {
                let mut slot = self.schemas.remove(&id);
                delete_older(&mut slot, version);
                self.schemas.extend(slot.map(|e| (id, e)));
            }
            KeyKind::Fingerprint(hash) => {
                let mut slot = self.fingerprints.remove(&hash);
                delete_older(&mut slot, version);
                self.fingerprints.extend(slot.map(|e| (hash, e)));
            }
            KeyKind::SubjectVersion(subject, number) => {
                self.change_subject(&subject, |s| {
                    let mut slot = s.versions.remove(&number);
                    delete_older(&mut slot, version);
                    s.versions.extend(slot.map(|e| (number, e)));
                });
            }
            KeyKind::SubjectConfig(subject) => {
                self.change_subject(&subject, |s| delete_older(&mut s.config, version));
            }
            KeyKind::SubjectMode(subject) => {
                self.change_subject(&subject, |s| delete_older(&mut s.mode, version));
            }
        }
    }

    /// Changes a known subject and forgets it once nothing is left of it.
    fn change_subject(&mut self, subject: &str, change: impl FnOnce(&mut Subject)) {
        if let Some(state) = self.subjects.get_mut(subject) {
            change(state);
            if state.is_empty() {
                self.subjects.remove(subject);
            }
        }
    }

    /// Subject names, in order: those with a live version, or (`deleted`) with any version.
    pub(super) fn subject_names(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, s)| {
                if deleted {
                    !s.versions.is_empty()
                } else {
                    s.has_live()
                }
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The subject, if it has a live version (or any version, with `deleted`).
    pub(super) fn subject(&self, name: &str, deleted: bool) -> Result<&Subject, RegistryError> {
        match self.subjects.get(name) {
            Some(s) if s.has_live() || (deleted && !s.versions.is_empty()) => Ok(s),
            _ => Err(RegistryError::SubjectNotFound(name.to_string())),
        }
    }

    /// (version, schema id) of the selected version; a soft-deleted one only with `deleted`.
    pub(super) fn version(
        &self,
        name: &str,
        selector: VersionSelector,
        deleted: bool,
    ) -> Result<(u32, u32), RegistryError> {
        let subject = self.subject(name, deleted)?;
        match selector {
            VersionSelector::Latest => {
                let latest = if deleted {
                    subject
                        .versions
                        .iter()
                        .next_back()
                        .map(|(v, e)| (*v, e.value.id))
                } else {
                    subject.live().next_back()
                };
                latest.ok_or_else(|| RegistryError::SubjectNotFound(name.to_string()))
            }
            VersionSelector::Number(number) => match subject.versions.get(&number) {
                Some(e) if deleted || !e.value.deleted => Ok((number, e.value.id)),
                _ => Err(RegistryError::VersionNotFound(number)),
            },
        }
    }

    pub(super) fn schema(&self, id: u32) -> Result<Arc<SchemaRecord>, RegistryError> {
        self.schemas
            .get(&id)
            .map(|e| e.value.clone())
            .ok_or(RegistryError::SchemaNotFound(id))
    }

    /// The subject's compatibility level, else the global one, else BACKWARD.
    pub(super) fn compatibility(&self, subject: &str) -> Compatibility {
        self.subjects
            .get(subject)
            .and_then(|s| s.config.as_ref())
            .or(self.config.as_ref())
            .map_or(Compatibility::DEFAULT, |e| e.value)
    }

    /// The subject's mode, else the global one, else READWRITE.
    pub(super) fn mode(&self, subject: Option<&str>) -> Mode {
        subject
            .and_then(|s| self.subjects.get(s))
            .and_then(|s| s.mode.as_ref())
            .or(self.mode.as_ref())
            .map_or(Mode::ReadWrite, |e| e.value)
    }

    /// (subject, version) pairs that use schema `id`, live ones (or all, with `deleted`).
    pub(super) fn usages(&self, id: u32, deleted: bool) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for (name, subject) in &self.subjects {
            for (version, entry) in &subject.versions {
                if entry.value.id == id && (deleted || !entry.value.deleted) {
                    out.push((name.clone(), *version));
                }
            }
        }
        out
    }

    /// Ids of the schemas of live versions that reference `subject`/`version`.
    pub(super) fn referenced_by(&self, subject: &str, version: u32) -> Vec<u32> {
        self.schemas
            .iter()
            .filter(|(_, e)| {
                e.value
                    .references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .map(|(id, _)| *id)
            .filter(|id| !self.usages(*id, false).is_empty())
            .collect()
    }
}

fn decode_level(key: &str, value: &[u8]) -> Result<Compatibility, MetadataError> {
    let record = SchemaConfigRecord::decode(key, value)?;
    Compatibility::parse(&record.compatibility).ok_or_else(|| MetadataError::Corrupt {
        key: key.to_string(),
        reason: format!("unknown compatibility level {:?}", record.compatibility),
    })
}

fn decode_mode(key: &str, value: &[u8]) -> Result<Mode, MetadataError> {
    let record = SchemaModeRecord::decode(key, value)?;
    Mode::parse(&record.mode).ok_or_else(|| MetadataError::Corrupt {
        key: key.to_string(),
        reason: format!("unknown mode {:?}", record.mode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_metadata::model::RECORD_FORMAT_V1;

    fn version_record(subject: &str, version: u32, id: u32, deleted: bool) -> Vec<u8> {
        SubjectVersionRecord {
            v: RECORD_FORMAT_V1,
            subject: subject.into(),
            version,
            id,
            deleted,
        }
        .encode()
        .to_vec()
    }

    #[test]
    fn older_events_do_not_undo_newer_ones() {
        let mut state = State::default();
        let key = keys::schema_subject_version("a/b", 1);
        state
            .apply_put(&key, &version_record("a/b", 1, 5, true), 20)
            .unwrap();
        // The watch delivers the earlier write after this broker applied its own.
        state
            .apply_put(&key, &version_record("a/b", 1, 5, false), 10)
            .unwrap();
        assert!(state.subject("a/b", false).is_err());
        assert_eq!(
            state.version("a/b", VersionSelector::Latest, true).unwrap(),
            (1, 5)
        );
        state.apply_delete(&key, 15);
        assert_eq!(state.subject_names(true), vec!["a/b".to_string()]);
        state.apply_delete(&key, 21);
        assert!(state.subjects.is_empty());
    }

    #[test]
    fn latest_skips_soft_deleted_versions() {
        let mut state = State::default();
        for (version, deleted) in [(1, false), (2, false), (3, true)] {
            let key = keys::schema_subject_version("s", version);
            state
                .apply_put(
                    &key,
                    &version_record("s", version, version * 10, deleted),
                    1,
                )
                .unwrap();
        }
        assert_eq!(
            state.version("s", VersionSelector::Latest, false).unwrap(),
            (2, 20)
        );
        assert!(matches!(
            state.version("s", VersionSelector::Number(3), false),
            Err(RegistryError::VersionNotFound(3))
        ));
        assert!(matches!(
            state.version("t", VersionSelector::Latest, false),
            Err(RegistryError::SubjectNotFound(_))
        ));
        assert_eq!(state.compatibility("s"), Compatibility::Backward);
        assert_eq!(state.usages(20, false), vec![("s".to_string(), 2)]);
    }
}
