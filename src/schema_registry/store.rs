//! `Registry`: the registry's state in the metadata store under `schema-registry/`, and the
//! in-memory copy (`state.rs`) every read is served from.
//!
//! Writes are transactions with compare-and-set, so any broker may take them concurrently:
//! a new schema id is `next-id` moved by compare-and-set together with a `fingerprints/`
//! key written only if absent (two brokers registering one schema at once agree on one id),
//! and a new version is a `versions/<n>` key written only if absent. A transaction that
//! loses a race re-reads what it depends on and tries again, at most
//! [`WRITE_ATTEMPTS_MAX`] times. A committed write is applied to this broker's copy at once
//! (so the client that made it reads it back here); other brokers see it through their
//! watch of the prefix, normally within milliseconds.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use strato_metadata::model::{
    RECORD_FORMAT_V1, SchemaConfigRecord, SchemaFingerprintRecord, SchemaIdCounterRecord,
    SchemaModeRecord, SchemaRecord, SchemaReferenceRecord, SubjectVersionRecord,
};
use strato_metadata::{MetadataError, MetadataStore, Op, Txn, WatchEvent, keys};
use tokio_util::sync::CancellationToken;

use super::avro::{self, ParsedAvro};
use super::error::RegistryError;
use super::json_schema::{self, ParsedJson};
use super::protobuf::{self, ParsedProtobuf};
use super::state::State;
use super::{
    Compatibility, Mode, RegistryLimits, SchemaType, VersionSelector, compat, json_compat,
    protobuf_compat,
};

/// Attempts of a write that keeps losing compare-and-set races to other brokers.
const WRITE_ATTEMPTS_MAX: usize = 16;
/// Pause before re-establishing a failed watch of `schema-registry/`.
const WATCH_RETRY: Duration = Duration::from_secs(1);
/// Schemas a schema may reach through its references, directly or not.
const REFERENCES_MAX: usize = 100;
/// Versions changed per transaction when a whole subject is deleted (etcd and the embedded
/// store take at most 128 operations per transaction; each version takes a compare and a
/// write).
const VERSIONS_PER_TXN: usize = 60;

/// A schema as a client submits it.
#[derive(Debug, Clone)]
pub struct NewSchema {
    pub schema: String,
    pub schema_type: SchemaType,
    pub references: Vec<SchemaReferenceRecord>,
}

/// A submitted schema, parsed, with the text and identity the registry stores it under.
struct Prepared {
    schema_type: SchemaType,
    text: String,
    references: Vec<SchemaReferenceRecord>,
    fingerprint: String,
    parsed: Parsed,
}

/// For fuzzing (`crate::fuzzing::schema`): `text` (or its two halves, split at the first
/// NUL: reader and writer) parsed as the schema type `kind` picks, normalized when its
/// top bit is set, and the two checked for compatibility.
pub(crate) fn fuzz_schema(kind: u8, text: &str) {
    let types = [SchemaType::Avro, SchemaType::Json, SchemaType::Protobuf];
    let schema_type = types[usize::from(kind & 0x7f) % types.len()];
    let (reader, writer) = text.split_once('\0').unwrap_or((text, text));
    let parse = |text: &str| {
        Parsed::parse(schema_type, text, &[], kind & 0x80 != 0)
            .ok()
            .map(|(parsed, _)| parsed)
    };
    if let (Some(reader), Some(writer)) = (parse(reader), parse(writer)) {
        let _ = reader.can_read(&writer);
    }
}

/// A schema parsed by the rules of its type.
enum Parsed {
    Avro(ParsedAvro),
    Json(ParsedJson),
    Protobuf(ParsedProtobuf),
}

impl Parsed {
    /// Parses `text`, a schema of `schema_type` whose references reach the schemas
    /// `references` ((reference name, text)), and returns it with the text the registry
    /// stores for it.
    fn parse(
        schema_type: SchemaType,
        text: &str,
        references: &[(String, String)],
        normalize: bool,
    ) -> Result<(Parsed, String), String> {
        match schema_type {
            SchemaType::Avro => {
                // Avro references bring named types into scope: each text once.
                let mut texts: Vec<String> = Vec::with_capacity(references.len());
                for (_, reference) in references {
                    if !texts.contains(reference) {
                        texts.push(reference.clone());
                    }
                }
                let parsed = avro::parse(text, &texts)?;
                let stored = avro::stored_text(text, &parsed, normalize)?;
                Ok((Parsed::Avro(parsed), stored))
            }
            // References of a JSON schema are checked to exist, not resolved: a `$ref`
            // outside the document is compared by its text (json_schema.rs).
            SchemaType::Json => {
                let parsed = json_schema::parse(text)?;
                let stored = json_schema::stored_text(&parsed, normalize);
                Ok((Parsed::Json(parsed), stored))
            }
            // A reference's name is the path its importers import it by.
            SchemaType::Protobuf => {
                let parsed = protobuf::parse(text, references)?;
                let stored = protobuf::stored_text(text, &parsed, normalize);
                Ok((Parsed::Protobuf(parsed), stored))
            }
        }
    }

    /// The reasons data written with `writer` cannot be read with `self` (empty: it can).
    fn can_read(&self, writer: &Parsed) -> Vec<String> {
        match (self, writer) {
            (Parsed::Avro(reader), Parsed::Avro(writer)) => compat::can_read(reader, writer),
            (Parsed::Json(reader), Parsed::Json(writer)) => json_compat::can_read(reader, writer),
            (Parsed::Protobuf(reader), Parsed::Protobuf(writer)) => {
                protobuf_compat::can_read(reader, writer)
            }
            (reader, writer) => vec![format!(
                "SCHEMA_TYPE_CHANGED: a {} schema cannot read data written with a {} schema",
                reader.schema_type().name(),
                writer.schema_type().name()
            )],
        }
    }

    fn schema_type(&self) -> SchemaType {
        match self {
            Parsed::Avro(_) => SchemaType::Avro,
            Parsed::Json(_) => SchemaType::Json,
            Parsed::Protobuf(_) => SchemaType::Protobuf,
        }
    }
}

/// What registering a schema in a subject comes to, decided on the in-memory copy.
enum RegisterPlan {
    /// A live version of the subject already has the schema.
    Existing { id: u32, version: u32 },
    New {
        /// The schema's id, when the schema is known (in any subject).
        id: Option<u32>,
        version: u32,
        /// (version, id) of the live versions the compatibility level checks against.
        against: Vec<(u32, u32)>,
        level: Compatibility,
    },
}

pub struct Registry {
    meta: Arc<dyn MetadataStore>,
    state: RwLock<State>,
    limits: RegistryLimits,
}

impl Registry {
    pub fn new(meta: Arc<dyn MetadataStore>, limits: RegistryLimits) -> Registry {
        Registry {
            meta,
            state: RwLock::new(State::default()),
            limits,
        }
    }

    pub(super) fn limits(&self) -> &RegistryLimits {
        &self.limits
    }

    /// Runs `read` on the in-memory copy (the lock is never held across an await).
    pub(super) fn read<T>(&self, read: impl FnOnce(&State) -> T) -> T {
        read(&self.state.read().expect("registry state lock"))
    }

    fn write_state<T>(&self, write: impl FnOnce(&mut State) -> T) -> T {
        write(&mut self.state.write().expect("registry state lock"))
    }

    /// Reads all of `schema-registry/` into a new copy and swaps it in. Returns the number
    /// of keys read.
    pub async fn load(&self) -> Result<usize, MetadataError> {
        let mut state = State::default();
        let mut stored = 0usize;
        self.meta
            .for_each(keys::SCHEMA_REGISTRY_PREFIX, None, &mut |key, value| {
                stored += 1;
                if let Err(err) = state.apply_put(key, &value.value, value.version) {
                    tracing::warn!(%key, "ignoring a bad schema registry record: {err:#}");
                }
                Ok(())
            })
            .await?;
        self.write_state(|current| *current = state);
        Ok(stored)
    }

    /// Follows `schema-registry/` until `shutdown`: a full read whenever the watch is
    /// (re)established or reports missed events, single changes in between.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let mut events = match self.meta.watch(keys::SCHEMA_REGISTRY_PREFIX).await {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!("failed to watch the schema registry: {err:#}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(WATCH_RETRY) => continue,
                    }
                }
            };
            self.reload().await;
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.recv() => event,
                };
                match event {
                    None => break,
                    Some(WatchEvent::Put {
                        key,
                        value,
                        version,
                    }) => self.apply_put_logged(&key, &value, version),
                    Some(WatchEvent::Delete { key, version }) => {
                        self.write_state(|s| s.apply_delete(&key, version));
                    }
                    Some(WatchEvent::Resync) => self.reload().await,
                }
            }
        }
    }

    async fn reload(&self) {
        match self.load().await {
            Ok(keys) => tracing::debug!(keys, "schema registry read"),
            // The copy stays as it was; the next resync or watch restart reads again.
            Err(err) => tracing::warn!("failed to read the schema registry: {err:#}"),
        }
    }

    fn apply_put_logged(&self, key: &str, value: &[u8], version: u64) {
        if let Err(err) = self.write_state(|s| s.apply_put(key, value, version)) {
            tracing::warn!(%key, "ignoring a bad schema registry record: {err:#}");
        }
    }

    /// Commits `txn` and applies its writes to the copy.
    async fn commit(&self, txn: Txn) -> Result<(), MetadataError> {
        let ops = txn.ops.clone();
        let version = self.meta.txn(txn).await?;
        for op in ops {
            match op {
                Op::Put { key, value, .. } => self.apply_put_logged(&key, &value, version),
                Op::Delete { key } => self.write_state(|s| s.apply_delete(&key, version)),
            }
        }
        Ok(())
    }

    /// Re-reads `prefix` (after a lost race) into the copy.
    async fn refresh(&self, prefix: &str) -> Result<(), MetadataError> {
        for (key, value) in self.meta.list_all(prefix).await? {
            self.apply_put_logged(&key, &value.value, value.version);
        }
        Ok(())
    }

    /// Checks, parses and identifies a submitted schema.
    fn prepare(&self, new: &NewSchema, normalize: bool) -> Result<Prepared, RegistryError> {
        if new.schema.len() > self.limits.max_schema_bytes {
            return Err(RegistryError::SchemaTooLarge(self.limits.max_schema_bytes));
        }
        let references = self.read(|s| reference_texts(s, &new.references))?;
        let (parsed, text) = Parsed::parse(new.schema_type, &new.schema, &references, normalize)
            .map_err(|err| RegistryError::InvalidSchema(format!("{err} {}", new.schema)))?;
        let fingerprint = fingerprint(new.schema_type, &text, &new.references);
        Ok(Prepared {
            schema_type: new.schema_type,
            text,
            references: new.references.clone(),
            fingerprint,
            parsed,
        })
    }

    /// Parses the registered schema `id` with its references.
    fn parse_registered(&self, id: u32) -> Result<Parsed, RegistryError> {
        let (record, reference_texts) = self.read(|s| {
            let record = s.schema(id)?;
            let texts = reference_texts(s, &record.references)?;
            Ok::<_, RegistryError>((record, texts))
        })?;
        let schema_type = SchemaType::parse(&record.schema_type).ok_or_else(|| {
            RegistryError::InvalidSchema(format!(
                "registered schema {id} has the unknown type {:?}",
                record.schema_type
            ))
        })?;
        Parsed::parse(schema_type, &record.schema, &reference_texts, false)
            .map(|(parsed, _)| parsed)
            .map_err(|err| {
                RegistryError::InvalidSchema(format!(
                    "registered schema {id} does not parse: {err}"
                ))
            })
    }

    /// The registered schema `id` in Confluent's serialized format (`format=serialized`):
    /// a Protobuf schema as a base64 `FileDescriptorProto`; `None` for the types that have
    /// no such format (their text is served as it is).
    pub(super) fn serialized(&self, id: u32) -> Result<Option<String>, RegistryError> {
        match self.parse_registered(id)? {
            Parsed::Protobuf(parsed) => Ok(Some(protobuf::serialized(&parsed))),
            Parsed::Avro(_) | Parsed::Json(_) => Ok(None),
        }
    }

    /// Why `new` breaks `level` against the registered versions `against` (empty: it does
    /// not).
    fn incompatibilities(
        &self,
        new: &Parsed,
        against: &[(u32, u32)],
        level: Compatibility,
    ) -> Result<Vec<String>, RegistryError> {
        let mut messages = Vec::new();
        for (version, id) in against {
            let old = self.parse_registered(*id)?;
            if level.checks_backward() {
                for reason in new.can_read(&old) {
                    messages.push(format!(
                        "{{oldSchemaVersion: {version}, compatibility: '{level}', the new schema cannot read data written with the old one: {reason}}}"
                    ));
                }
            }
            if level.checks_forward() {
                for reason in old.can_read(new) {
                    messages.push(format!(
                        "{{oldSchemaVersion: {version}, compatibility: '{level}', the old schema cannot read data written with the new one: {reason}}}"
                    ));
                }
            }
        }
        Ok(messages)
    }

    /// POST /compatibility/subjects/{s}/versions[/{v}]: why `new` is incompatible with the
    /// selected version (`None`: the versions the subject's level checks).
    pub(super) fn check_compatibility(
        &self,
        subject: &str,
        new: &NewSchema,
        version: Option<VersionSelector>,
        normalize: bool,
    ) -> Result<Vec<String>, RegistryError> {
        let prepared = self.prepare(new, normalize)?;
        let (level, against) = self.read(|s| {
            let level = s.compatibility(subject);
            let against = match version {
                None => versions_to_check(s, subject, level),
                Some(VersionSelector::Latest) if s.subject(subject, false).is_err() => Vec::new(),
                Some(selector) => vec![s.version(subject, selector, false)?],
            };
            Ok::<_, RegistryError>((level, against))
        })?;
        self.incompatibilities(&prepared.parsed, &against, level)
    }

    /// POST /subjects/{s}: (version, id) of the subject's latest version holding `new`.
    pub(super) fn lookup(
        &self,
        subject: &str,
        new: &NewSchema,
        normalize: bool,
        deleted: bool,
    ) -> Result<(u32, u32), RegistryError> {
        let prepared = self.prepare(new, normalize)?;
        self.read(|s| {
            let state = s.subject(subject, deleted)?;
            let id = s
                .fingerprints
                .get(&prepared.fingerprint)
                .map(|e| e.value)
                .ok_or(RegistryError::SchemaNotInSubject)?;
            state
                .versions
                .iter()
                .rev()
                .find(|(_, e)| e.value.id == id && (deleted || !e.value.deleted))
                .map(|(version, _)| (*version, id))
                .ok_or(RegistryError::SchemaNotInSubject)
        })
    }

    /// POST /subjects/{s}/versions: registers `new` under `subject` (if the subject's
    /// compatibility level allows it) and returns (id, version); a schema the subject
    /// already has live returns its id and version.
    pub(super) async fn register(
        &self,
        subject: &str,
        new: &NewSchema,
        normalize: bool,
    ) -> Result<(u32, u32), RegistryError> {
        validate_subject(subject)?;
        let prepared = self.prepare(new, normalize)?;
        let fingerprint_key = keys::schema_fingerprint(&prepared.fingerprint);
        for attempt in 0..WRITE_ATTEMPTS_MAX {
            if attempt > 0 {
                self.refresh(&keys::schema_subject_prefix(subject)).await?;
                self.refresh(&fingerprint_key).await?;
            }
            let plan = self.read(|s| plan_register(s, subject, &prepared, &self.limits))?;
            let (id, version, against, level) = match plan {
                RegisterPlan::Existing { id, version } => return Ok((id, version)),
                RegisterPlan::New {
                    id,
                    version,
                    against,
                    level,
                } => (id, version, against, level),
            };
            let messages = self.incompatibilities(&prepared.parsed, &against, level)?;
            if !messages.is_empty() {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_string(),
                    messages,
                });
            }
            let (txn, id) = match id {
                Some(id) => (Txn::new(), id),
                None => self.allocate_id(&prepared, &fingerprint_key).await?,
            };
            if self
                .commit_new_version(txn, subject, version, id, "registered")
                .await?
            {
                return Ok((id, version));
            }
        }
        Err(RegistryError::Contention)
    }

    /// POST /subjects/{s}/versions with an `id` (and maybe a `version`), in IMPORT mode: the
    /// schema is stored under that id and version as given, without a compatibility check.
    /// The same schema, id and version again is answered as registered; another schema for
    /// a taken id or version, or a schema this registry holds under another id, is refused.
    pub(super) async fn import(
        &self,
        subject: &str,
        new: &NewSchema,
        id: u32,
        version: Option<u32>,
        normalize: bool,
    ) -> Result<(u32, u32), RegistryError> {
        validate_subject(subject)?;
        if self.read(|s| s.mode(Some(subject))) != Mode::Import {
            return Err(RegistryError::NotPermitted(format!(
                "Subject {subject} is not in import mode: a schema id may be given only in IMPORT mode"
            )));
        }
        let prepared = self.prepare(new, normalize)?;
        let fingerprint_key = keys::schema_fingerprint(&prepared.fingerprint);
        for attempt in 0..WRITE_ATTEMPTS_MAX {
            if attempt > 0 {
                self.refresh(&keys::schema_subject_prefix(subject)).await?;
                self.refresh(&fingerprint_key).await?;
                self.refresh(&keys::schema_by_id(id)).await?;
            }
            let plan =
                self.read(|s| plan_import(s, subject, &prepared, id, version, &self.limits))?;
            let (version, schema_is_new) = match plan {
                ImportPlan::Existing { version } => return Ok((id, version)),
                ImportPlan::New {
                    version,
                    schema_is_new,
                } => (version, schema_is_new),
            };
            let txn = if schema_is_new {
                // Ids given here from now on start past the imported one.
                let (next_id, counter_version) = self.id_counter().await?;
                let next_id = next_id.max(id.checked_add(1).ok_or(RegistryError::Contention)?);
                new_schema_txn(&prepared, &fingerprint_key, id, next_id, counter_version)
            } else {
                Txn::new()
            };
            if self
                .commit_new_version(txn, subject, version, id, "imported")
                .await?
            {
                return Ok((id, version));
            }
        }
        Err(RegistryError::Contention)
    }

    /// Commits `txn` plus version `version` of `subject` with schema `id`; `false`: another
    /// write got there first (read again and retry).
    async fn commit_new_version(
        &self,
        txn: Txn,
        subject: &str,
        version: u32,
        id: u32,
        what: &str,
    ) -> Result<bool, RegistryError> {
        match self
            .commit(with_new_version(txn, subject, version, id))
            .await
        {
            Ok(()) => {
                tracing::info!(subject, version, id, "schema {what}");
                Ok(true)
            }
            Err(MetadataError::Conflict { .. }) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// The writes that give `prepared` a new id: `next-id` moved by compare-and-set, the
    /// schema, and its fingerprint (only if still absent).
    async fn allocate_id(
        &self,
        prepared: &Prepared,
        fingerprint_key: &str,
    ) -> Result<(Txn, u32), RegistryError> {
        let (id, counter_version) = self.id_counter().await?;
        if self.read(|s| s.schemas.len()) >= self.limits.max_schemas {
            return Err(RegistryError::NotPermitted(format!(
                "the registry holds {} schemas, its limit (--schema-registry-max-schemas)",
                self.limits.max_schemas
            )));
        }
        let next_id = id.checked_add(1).ok_or(RegistryError::Contention)?;
        let txn = new_schema_txn(prepared, fingerprint_key, id, next_id, counter_version);
        Ok((txn, id))
    }

    /// The next id to give and the version of its counter (0: never written).
    async fn id_counter(&self) -> Result<(u32, strato_metadata::Version), RegistryError> {
        Ok(match self.meta.get(keys::SCHEMA_REGISTRY_NEXT_ID).await? {
            Some(stored) => (
                SchemaIdCounterRecord::decode(keys::SCHEMA_REGISTRY_NEXT_ID, &stored.value)?
                    .next_id,
                stored.version,
            ),
            None => (1, 0),
        })
    }

    /// DELETE /subjects/{s}[?permanent=true]: the versions deleted.
    pub(super) async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        self.check_writable(subject)?;
        for attempt in 0..WRITE_ATTEMPTS_MAX {
            if attempt > 0 {
                self.refresh(&keys::schema_subject_prefix(subject)).await?;
            }
            let txns = self.read(|s| plan_subject_delete(s, subject, permanent))?;
            let deleted: Vec<u32> = txns.iter().flat_map(|(v, _)| v.clone()).collect();
            if self.commit_all(txns).await? {
                tracing::info!(subject, permanent, "subject deleted");
                return Ok(deleted);
            }
        }
        Err(RegistryError::Contention)
    }

    /// Commits the transactions one by one; `false` when one lost a race.
    async fn commit_all(&self, txns: Vec<(Vec<u32>, Txn)>) -> Result<bool, RegistryError> {
        for (_, txn) in txns {
            match self.commit(txn).await {
                Ok(()) => {}
                Err(MetadataError::Conflict { .. }) => return Ok(false),
                Err(err) => return Err(err.into()),
            }
        }
        Ok(true)
    }

    /// DELETE /subjects/{s}/versions/{v}[?permanent=true]: the version deleted.
    pub(super) async fn delete_version(
        &self,
        subject: &str,
        selector: VersionSelector,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        self.check_writable(subject)?;
        for attempt in 0..WRITE_ATTEMPTS_MAX {
            if attempt > 0 {
                self.refresh(&keys::schema_subject_prefix(subject)).await?;
            }
            let (version, txn) =
                self.read(|s| plan_version_delete(s, subject, selector, permanent))?;
            match self.commit(txn).await {
                Ok(()) => return Ok(version),
                Err(MetadataError::Conflict { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(RegistryError::Contention)
    }

    fn check_writable(&self, subject: &str) -> Result<(), RegistryError> {
        if self.read(|s| s.mode(Some(subject))) == Mode::ReadOnly {
            return Err(RegistryError::NotPermitted(format!(
                "Subject {subject} is in read-only mode"
            )));
        }
        Ok(())
    }

    /// PUT /config[/{s}].
    pub(super) async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<(), RegistryError> {
        let record = SchemaConfigRecord {
            v: RECORD_FORMAT_V1,
            compatibility: level.name().to_string(),
        };
        let key = self.setting_key(
            subject,
            keys::schema_subject_config,
            keys::SCHEMA_REGISTRY_CONFIG,
        )?;
        self.commit(Txn::new().put(key, record.encode())).await?;
        Ok(())
    }

    /// PUT /mode[/{s}].
    pub(super) async fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<(), RegistryError> {
        if mode == Mode::Import && !force {
            // Imported ids must not meet ids given here: import into an empty registry (or
            // subject), unless told otherwise.
            let used = self.read(|s| match subject {
                None => s.subjects.values().any(|x| !x.versions.is_empty()),
                Some(name) => s.subjects.get(name).is_some_and(|x| !x.versions.is_empty()),
            });
            if used {
                return Err(RegistryError::NotPermitted(
                    "Cannot import since found existing subjects".into(),
                ));
            }
        }
        let record = SchemaModeRecord {
            v: RECORD_FORMAT_V1,
            mode: mode.name().to_string(),
        };
        let key = self.setting_key(
            subject,
            keys::schema_subject_mode,
            keys::SCHEMA_REGISTRY_MODE,
        )?;
        self.commit(Txn::new().put(key, record.encode())).await?;
        Ok(())
    }

    /// The key of a subject's setting (checking the subject may be created), or the global
    /// one.
    fn setting_key(
        &self,
        subject: Option<&str>,
        subject_key: fn(&str) -> String,
        global_key: &str,
    ) -> Result<String, RegistryError> {
        let Some(subject) = subject else {
            return Ok(global_key.to_string());
        };
        validate_subject(subject)?;
        self.check_subject_room(subject)?;
        Ok(subject_key(subject))
    }

    /// Deletes a stored key (DELETE /config/{s}, /mode/{s}, /config).
    pub(super) async fn delete_key(&self, key: String) -> Result<(), RegistryError> {
        self.commit(Txn::new().delete(key)).await?;
        Ok(())
    }

    /// A subject not known yet may be created only below `--schema-registry-max-subjects`.
    fn check_subject_room(&self, subject: &str) -> Result<(), RegistryError> {
        let (known, count) = self.read(|s| (s.subjects.contains_key(subject), s.subjects.len()));
        if !known && count >= self.limits.max_subjects {
            return Err(RegistryError::NotPermitted(format!(
                "the registry holds {count} subjects, its limit (--schema-registry-max-subjects)"
            )));
        }
        Ok(())
    }
}

/// Subject names are kept as given; these would make them unusable or unbounded.
fn validate_subject(subject: &str) -> Result<(), RegistryError> {
    /// Longest subject name, in bytes (a topic name is at most 249 bytes).
    const SUBJECT_BYTES_MAX: usize = 1024;
    if subject.is_empty() || subject.len() > SUBJECT_BYTES_MAX {
        return Err(RegistryError::InvalidSubject(format!(
            "a subject has 1 to {SUBJECT_BYTES_MAX} bytes"
        )));
    }
    if subject.chars().any(char::is_control) {
        return Err(RegistryError::InvalidSubject(
            "a subject has no control characters".into(),
        ));
    }
    Ok(())
}

/// The identity of a schema: identical type, text and references, identical id.
fn fingerprint(
    schema_type: SchemaType,
    text: &str,
    references: &[SchemaReferenceRecord],
) -> String {
    let mut input = Vec::with_capacity(text.len() + 64);
    input.extend_from_slice(schema_type.name().as_bytes());
    input.push(0);
    input.extend_from_slice(text.as_bytes());
    for reference in references {
        input.push(0);
        input.extend_from_slice(
            format!(
                "{}\u{1}{}\u{1}{}",
                reference.name, reference.subject, reference.version
            )
            .as_bytes(),
        );
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// (reference name, text) of every schema `references` reach, directly or not, each
/// (name, schema) once.
fn reference_texts(
    state: &State,
    references: &[SchemaReferenceRecord],
) -> Result<Vec<(String, String)>, RegistryError> {
    let mut texts = Vec::new();
    let mut seen = HashSet::new();
    let mut pending: Vec<SchemaReferenceRecord> = references.to_vec();
    while let Some(reference) = pending.pop() {
        let selector = VersionSelector::Number(reference.version);
        let (_, id) = state
            .version(&reference.subject, selector, true)
            .map_err(|_| {
                RegistryError::InvalidSchema(format!(
                    "reference {} (subject '{}', version {}) is not registered",
                    reference.name, reference.subject, reference.version
                ))
            })?;
        if !seen.insert((reference.name.clone(), id)) {
            continue;
        }
        if seen.len() > REFERENCES_MAX {
            return Err(RegistryError::InvalidSchema(format!(
                "a schema reaches at most {REFERENCES_MAX} schemas through references"
            )));
        }
        let record = state.schema(id)?;
        texts.push((reference.name, record.schema.clone()));
        pending.extend(record.references.iter().cloned());
    }
    Ok(texts)
}

/// The live versions `level` checks a new schema of `subject` against.
fn versions_to_check(state: &State, subject: &str, level: Compatibility) -> Vec<(u32, u32)> {
    if level == Compatibility::None {
        return Vec::new();
    }
    let Ok(subject) = state.subject(subject, false) else {
        return Vec::new();
    };
    if level.is_transitive() {
        subject.live().collect()
    } else {
        subject.live().next_back().into_iter().collect()
    }
}

fn plan_register(
    state: &State,
    subject: &str,
    prepared: &Prepared,
    limits: &RegistryLimits,
) -> Result<RegisterPlan, RegistryError> {
    match state.mode(Some(subject)) {
        Mode::ReadWrite => {}
        Mode::ReadOnly => {
            return Err(RegistryError::NotPermitted(format!(
                "Subject {subject} is in read-only mode"
            )));
        }
        Mode::Import => {
            return Err(RegistryError::NotPermitted(format!(
                "Subject {subject} is in import mode: a registration gives its schema id"
            )));
        }
    }
    let id = state
        .fingerprints
        .get(&prepared.fingerprint)
        .map(|e| e.value);
    let known = state.subjects.get(subject);
    if let (Some(id), Some(known)) = (id, known)
        && let Some((version, _)) = known.live().rev().find(|(_, v_id)| *v_id == id)
    {
        return Ok(RegisterPlan::Existing { id, version });
    }
    let versions = known.map_or(0, |s| s.versions.len());
    if versions >= limits.max_versions {
        return Err(RegistryError::NotPermitted(format!(
            "subject {subject} has {versions} versions, its limit (--schema-registry-max-versions)"
        )));
    }
    if known.is_none() && state.subjects.len() >= limits.max_subjects {
        return Err(RegistryError::NotPermitted(format!(
            "the registry holds {} subjects, its limit (--schema-registry-max-subjects)",
            state.subjects.len()
        )));
    }
    let version = known
        .and_then(|s| s.versions.keys().next_back())
        .map_or(1, |v| v + 1);
    let level = state.compatibility(subject);
    Ok(RegisterPlan::New {
        id,
        version,
        against: versions_to_check(state, subject, level),
        level,
    })
}

/// `txn` plus the new version `version` of `subject` with schema `id` (only if the version
/// is still absent).
fn with_new_version(txn: Txn, subject: &str, version: u32, id: u32) -> Txn {
    let version_key = keys::schema_subject_version(subject, version);
    let record = SubjectVersionRecord {
        v: RECORD_FORMAT_V1,
        subject: subject.to_string(),
        version,
        id,
        deleted: false,
    };
    txn.when_version(version_key.clone(), 0)
        .put(version_key, record.encode())
}

/// The writes of a schema new to the registry under `id`: its record and its fingerprint
/// (each only if still absent), and `next-id` moved to `next_id` by compare-and-set.
fn new_schema_txn(
    prepared: &Prepared,
    fingerprint_key: &str,
    id: u32,
    next_id: u32,
    counter_version: strato_metadata::Version,
) -> Txn {
    let next = SchemaIdCounterRecord {
        v: RECORD_FORMAT_V1,
        next_id,
    };
    let schema = SchemaRecord {
        v: RECORD_FORMAT_V1,
        id,
        schema_type: prepared.schema_type.name().to_string(),
        schema: prepared.text.clone(),
        references: prepared.references.clone(),
    };
    let fingerprint = SchemaFingerprintRecord {
        v: RECORD_FORMAT_V1,
        id,
    };
    let schema_key = keys::schema_by_id(id);
    Txn::new()
        .when_version(keys::SCHEMA_REGISTRY_NEXT_ID, counter_version)
        .when_version(fingerprint_key, 0)
        .when_version(schema_key.clone(), 0)
        .put(keys::SCHEMA_REGISTRY_NEXT_ID, next.encode())
        .put(schema_key, schema.encode())
        .put(fingerprint_key, fingerprint.encode())
}

/// What an import writes.
enum ImportPlan {
    /// The subject already has this schema under this id at `version`.
    Existing { version: u32 },
    /// A new version; `schema_is_new`: the id is not taken yet.
    New { version: u32, schema_is_new: bool },
}

fn plan_import(
    state: &State,
    subject: &str,
    prepared: &Prepared,
    id: u32,
    version: Option<u32>,
    limits: &RegistryLimits,
) -> Result<ImportPlan, RegistryError> {
    let refused = |why: String| Err(RegistryError::NotPermitted(why));
    let holder = state
        .fingerprints
        .get(&prepared.fingerprint)
        .map(|e| e.value);
    let taken = state.schemas.contains_key(&id);
    match holder {
        Some(other) if other != id => {
            return refused(format!(
                "the schema is registered with id {other}: one schema has one id here"
            ));
        }
        None if taken => {
            return refused(format!(
                "Overwrite new schema with id {id} is not permitted."
            ));
        }
        _ => {}
    }
    let known = state.subjects.get(subject);
    let version = match version {
        Some(v) => v,
        None => known
            .and_then(|s| s.versions.keys().next_back())
            .map_or(1, |v| v + 1),
    };
    if let Some(entry) = known.and_then(|s| s.versions.get(&version)) {
        if entry.value.id == id && !entry.value.deleted {
            return Ok(ImportPlan::Existing { version });
        }
        return refused(format!(
            "Overwrite new schema with version {version} is not permitted."
        ));
    }
    let versions = known.map_or(0, |s| s.versions.len());
    if versions >= limits.max_versions {
        return refused(format!(
            "subject {subject} has {versions} versions, its limit (--schema-registry-max-versions)"
        ));
    }
    if known.is_none() && state.subjects.len() >= limits.max_subjects {
        return refused(format!(
            "the registry holds {} subjects, its limit (--schema-registry-max-subjects)",
            state.subjects.len()
        ));
    }
    if !taken && state.schemas.len() >= limits.max_schemas {
        return refused(format!(
            "the registry holds {} schemas, its limit (--schema-registry-max-schemas)",
            limits.max_schemas
        ));
    }
    Ok(ImportPlan::New {
        version,
        schema_is_new: !taken,
    })
}

/// The transactions of a subject delete (each with the versions it deletes). Soft: every
/// live version marked deleted; permanent: every (soft-deleted) version and the subject's
/// config and mode removed.
fn plan_subject_delete(
    state: &State,
    subject: &str,
    permanent: bool,
) -> Result<Vec<(Vec<u32>, Txn)>, RegistryError> {
    let known = state.subject(subject, true)?;
    if !permanent && !known.has_live() {
        return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
    }
    if permanent && known.has_live() {
        return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
    }
    if !permanent
        && let Some((version, _)) = known
            .live()
            .find(|(version, _)| !state.referenced_by(subject, *version).is_empty())
    {
        return Err(RegistryError::ReferenceExists {
            subject: subject.to_string(),
            version,
        });
    }
    let targets: Vec<(u32, u32, u64)> = known
        .versions
        .iter()
        .filter(|(_, e)| permanent || !e.value.deleted)
        .map(|(version, e)| (*version, e.value.id, e.version))
        .collect();
    let mut txns = Vec::new();
    for chunk in targets.chunks(VERSIONS_PER_TXN) {
        let mut txn = Txn::new();
        for (version, id, stored_version) in chunk {
            let key = keys::schema_subject_version(subject, *version);
            txn = txn.when_version(key.clone(), *stored_version);
            txn = if permanent {
                txn.delete(key)
            } else {
                txn.put(key, deleted_record(subject, *version, *id))
            };
        }
        txns.push((chunk.iter().map(|(v, _, _)| *v).collect(), txn));
    }
    if permanent && let Some((_, last)) = txns.last_mut() {
        let txn = std::mem::take(last);
        *last = txn
            .delete(keys::schema_subject_config(subject))
            .delete(keys::schema_subject_mode(subject));
    }
    Ok(txns)
}

fn plan_version_delete(
    state: &State,
    subject: &str,
    selector: VersionSelector,
    permanent: bool,
) -> Result<(u32, Txn), RegistryError> {
    let known = state.subject(subject, true)?;
    // A soft delete of `latest` means the latest live version; a number may name a
    // soft-deleted one (answered with 40406).
    let with_deleted = permanent || matches!(selector, VersionSelector::Number(_));
    let (version, _) = state.version(subject, selector, with_deleted)?;
    let entry = known
        .versions
        .get(&version)
        .ok_or(RegistryError::VersionNotFound(version))?;
    if !permanent && entry.value.deleted {
        return Err(RegistryError::VersionSoftDeleted {
            subject: subject.to_string(),
            version,
        });
    }
    if permanent && !entry.value.deleted {
        return Err(RegistryError::VersionNotSoftDeleted {
            subject: subject.to_string(),
            version,
        });
    }
    if !permanent && !state.referenced_by(subject, version).is_empty() {
        return Err(RegistryError::ReferenceExists {
            subject: subject.to_string(),
            version,
        });
    }
    let key = keys::schema_subject_version(subject, version);
    let txn = Txn::new().when_version(key.clone(), entry.version);
    let txn = if permanent {
        txn.delete(key)
    } else {
        txn.put(key, deleted_record(subject, version, entry.value.id))
    };
    Ok((version, txn))
}

fn deleted_record(subject: &str, version: u32, id: u32) -> Bytes {
    SubjectVersionRecord {
        v: RECORD_FORMAT_V1,
        subject: subject.to_string(),
        version,
        id,
        deleted: true,
    }
    .encode()
}

#[async_trait::async_trait]
impl super::SchemaIds for Registry {
    async fn refresh(&self, subject: &str) {
        let prefix = keys::schema_subject_prefix(subject);
        if let Err(err) = Registry::refresh(self, &prefix).await {
            tracing::warn!(%subject, "failed to read a subject: {err:#}");
        }
    }

    fn registered(&self, subject: &str, id: u32) -> bool {
        self.read(|state| {
            state
                .subjects
                .get(subject)
                .is_some_and(|s| s.live().any(|(_, live_id)| live_id == id))
        })
    }
}
