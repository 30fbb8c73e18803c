//! Record-level rules of a produced partition's batches, the ones the batch headers cannot
//! decide: keys on compacted topics, CreateTime timestamps within
//! `message.timestamp.{before,after}.max.ms`, schema ids of keys and values registered in the
//! schema registry (`confluent.{key,value}.schema.validation`), and the topic's
//! `compression.type`. The
//! records are decoded (and decompressed, bounded) through the `kafka-protocol` records
//! codec only when a rule needs them, so a topic with Kafka's defaults pays nothing.
//!
//! As Kafka's `LogValidator`: a batch with refused records is refused whole, with KIP-467's
//! record errors (the index of each refused record in its batch and why); a batch in another
//! codec than the topic's is rebuilt in that codec, keeping its offset deltas, timestamps,
//! producer id and epoch, base sequence and transactional flag. Control batches are never
//! re-encoded (clients may not send them; the broker writes its markers elsewhere).

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::records::Record;
use strato_tiering::batch::{self, BatchHeader};

use crate::broker::record_codec::{self, CodecError};
use crate::schema_registry::SchemaIds;
use crate::topic_config::{self, SchemaValidation, TimestampLimits, TopicCompression};

/// Record errors returned for one batch (Kafka returns them all; the message still counts
/// every one).
const RECORD_ERRORS_MAX: usize = 1_000;

/// What a topic's configs ask of its records.
#[derive(Clone)]
pub(super) struct RecordRules {
    /// `topic-partition`, as Kafka's messages name it.
    partition_name: String,
    /// The subjects of TopicNameStrategy, `<topic>-key` and `<topic>-value`.
    subjects: [String; 2],
    compacted: bool,
    timestamps: Option<TimestampLimits>,
    compression: TopicCompression,
    schema_ids: SchemaValidation,
    /// Where schema ids are looked up (set by [`named`](Self::named)).
    schemas: Option<std::sync::Arc<dyn SchemaIds>>,
}

impl std::fmt::Debug for RecordRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordRules")
            .field("partition_name", &self.partition_name)
            .field("compacted", &self.compacted)
            .field("timestamps", &self.timestamps)
            .field("compression", &self.compression)
            .field("schema_ids", &self.schema_ids)
            .finish_non_exhaustive()
    }
}

/// Why a partition's batches were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub code: ResponseError,
    pub message: String,
    /// (index of the record in its batch, why), at most [`RECORD_ERRORS_MAX`].
    pub record_errors: Vec<(i32, String)>,
}

impl From<CodecError> for Refusal {
    fn from(err: CodecError) -> Self {
        Refusal {
            code: match err {
                CodecError::Corrupt(_) => ResponseError::CorruptMessage,
                CodecError::Encode(_) => ResponseError::UnknownServerError,
            },
            message: err.to_string(),
            record_errors: Vec::new(),
        }
    }
}

impl RecordRules {
    /// The rules of a topic's `config`; [`named`](Self::named) before they are applied.
    pub(super) fn of(config: &std::collections::BTreeMap<String, String>) -> Self {
        RecordRules {
            partition_name: String::new(),
            subjects: Default::default(),
            compacted: topic_config::compacted(config),
            timestamps: topic_config::timestamp_limits(config),
            compression: topic_config::compression(config),
            schema_ids: topic_config::schema_validation(config),
            schemas: None,
        }
    }

    /// The rules for partition `partition` of `topic` (named in refusals), schema ids looked
    /// up in `schemas`. Only on the slow path: the hot path of a produce allocates nothing
    /// here.
    pub(super) fn named(
        mut self,
        topic: &str,
        partition: i32,
        schemas: std::sync::Arc<dyn SchemaIds>,
    ) -> Self {
        self.partition_name = format!("{topic}-{partition}");
        self.subjects = [format!("{topic}-key"), format!("{topic}-value")];
        self.schemas = Some(schemas);
        self
    }

    /// The subjects whose schema ids are checked.
    pub(super) fn checked_subjects(&self) -> impl Iterator<Item = &str> {
        [self.schema_ids.key, self.schema_ids.value]
            .into_iter()
            .zip(&self.subjects)
            .filter(|(checked, _)| *checked)
            .map(|(_, subject)| subject.as_str())
    }

    /// Whether any batch needs its records decoded (the cheap check of the hot path).
    pub(super) fn needs_records(&self, headers: &[BatchHeader], now_ms: i64) -> bool {
        headers.iter().any(|h| self.batch_needs_records(h, now_ms))
    }

    fn batch_needs_records(&self, header: &BatchHeader, now_ms: i64) -> bool {
        self.compacted
            || (self.schema_ids.any() && !header.is_control())
            || self.recompresses(header)
            || self
                .timestamps
                .is_some_and(|limits| !header_admits(&limits, header, now_ms))
    }

    /// The codec a batch is rebuilt in, if it is not in the topic's.
    fn recompresses(&self, header: &BatchHeader) -> bool {
        match self.compression {
            TopicCompression::Producer => false,
            TopicCompression::Codec { id, .. } => {
                header.compression() != id && !header.is_control()
            }
        }
    }

    /// Checks the records of the batches in `records` (described by `headers`) and rebuilds
    /// those in another codec: `Ok(None)` keeps `records` as they are, `Ok(Some(bytes))`
    /// replaces them. CPU-bound: the caller runs it off the async workers.
    pub(super) fn apply(
        &self,
        records: &Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<Option<Bytes>, Refusal> {
        let mut rebuilt: Option<BytesMut> = None;
        let mut position = 0usize;
        for (n, header) in headers.iter().enumerate() {
            let range = position..position + header.total_len();
            position = range.end;
            let slice = records.slice(range);
            if !self.batch_needs_records(header, now_ms) {
                if let Some(out) = rebuilt.as_mut() {
                    out.extend_from_slice(&slice);
                }
                continue;
            }
            let decoded = record_codec::decode(header, &slice)?;
            self.check(&decoded, header, now_ms)?;
            if !self.recompresses(header) {
                if let Some(out) = rebuilt.as_mut() {
                    out.extend_from_slice(&slice);
                }
                continue;
            }
            let out = rebuilt.get_or_insert_with(|| {
                // The batches before this one were kept as they are.
                let mut out = BytesMut::with_capacity(records.len());
                let kept: usize = headers[..n].iter().map(BatchHeader::total_len).sum();
                out.extend_from_slice(&records[..kept]);
                out
            });
            encode(out, &decoded, header, self.compression)?;
        }
        Ok(rebuilt.map(BytesMut::freeze))
    }

    /// Kafka's `LogValidator.validateRecord` over one batch's records.
    fn check(&self, records: &[Record], header: &BatchHeader, now_ms: i64) -> Result<(), Refusal> {
        let mut errors: Vec<(i32, String)> = Vec::new();
        let mut count = 0usize;
        let mut any_timestamp = false;
        for (index, record) in records.iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            let error = if self.compacted && record.key.is_none() {
                Some(format!(
                    "Compacted topic cannot accept message without key in topic partition {}.",
                    self.partition_name
                ))
            } else if let Some(error) = self.schema_id_error(record, header) {
                Some(error)
            } else {
                self.timestamps.and_then(|limits| {
                    let ts = record.timestamp;
                    (ts != kafka_protocol::records::NO_TIMESTAMP && !limits.admits(ts, now_ms))
                        .then(|| {
                            any_timestamp = true;
                            timestamp_error(&limits, ts, header.base_offset, index, now_ms)
                        })
                })
            };
            if let Some(message) = error {
                count += 1;
                if errors.len() < RECORD_ERRORS_MAX {
                    errors.push((index, message));
                }
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        // Kafka's `LogValidator.processRecordErrors`.
        let (code, message) = if any_timestamp {
            (
                ResponseError::InvalidTimestamp,
                "One or more records have been rejected due to invalid timestamp".to_string(),
            )
        } else {
            let first: Vec<String> = errors
                .iter()
                .take(3)
                .map(|(index, message)| {
                    format!("RecordError(batchIndex={index}, message='{message}')")
                })
                .collect();
            (
                ResponseError::InvalidRecord,
                format!(
                    "One or more records have been rejected due to {count} record errors in \
                     total, and only showing the first three errors at most: [{}]",
                    first.join(", ")
                ),
            )
        };
        Err(Refusal {
            code,
            message,
            record_errors: errors,
        })
    }
}

impl RecordRules {
    /// Why a record's key or value does not carry a schema id registered under its subject
    /// (Confluent's wire format: the magic byte 0, then the id as a big-endian u32).
    fn schema_id_error(&self, record: &Record, header: &BatchHeader) -> Option<String> {
        if header.is_control() {
            return None;
        }
        let parts = [
            (self.schema_ids.key, "key", &record.key, &self.subjects[0]),
            (
                self.schema_ids.value,
                "value",
                &record.value,
                &self.subjects[1],
            ),
        ];
        for (checked, part, bytes, subject) in parts {
            // A null value is a tombstone and a null key no key: nothing to check.
            let Some(bytes) = bytes.as_ref().filter(|_| checked) else {
                continue;
            };
            let id = match bytes.as_ref() {
                [0, a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
                _ => {
                    return Some(format!(
                        "the record's {part} does not start with a schema id (magic byte 0 and \
                         4 id bytes) for subject {subject} in topic partition {}",
                        self.partition_name
                    ));
                }
            };
            let registered = self
                .schemas
                .as_ref()
                .is_some_and(|schemas| schemas.registered(subject, id));
            if !registered {
                return Some(format!(
                    "schema id {id} of the record's {part} is not registered under subject \
                     {subject} in topic partition {}",
                    self.partition_name
                ));
            }
        }
        None
    }
}

/// Whether the batch header alone shows every record within `limits`: with no lower limit,
/// a max timestamp within the upper one does. (The first timestamp is not the smallest one
/// when a producer sets timestamps out of order, so a lower limit needs the records.)
fn header_admits(limits: &TimestampLimits, header: &BatchHeader, now_ms: i64) -> bool {
    limits.before_max_ms == i64::MAX && limits.admits(header.max_timestamp, now_ms)
}

/// Kafka's message for a record outside the limits (the offset is the record's in the
/// request, as Kafka names it before assigning offsets).
fn timestamp_error(
    limits: &TimestampLimits,
    timestamp: i64,
    base_offset: i64,
    index: i32,
    now_ms: i64,
) -> String {
    format!(
        "Timestamp {timestamp} of message with offset {} is out of range. The timestamp \
         should be within [{}, {}]",
        base_offset.saturating_add(i64::from(index)),
        now_ms.saturating_sub(limits.before_max_ms),
        now_ms.saturating_add(limits.after_max_ms),
    )
}

/// Appends `records` to `out` as one batch in the topic's codec, and checks that it kept
/// the header fields of the batch they came from.
fn encode(
    out: &mut BytesMut,
    records: &[Record],
    header: &BatchHeader,
    target: TopicCompression,
) -> Result<(), Refusal> {
    let TopicCompression::Codec { id, level } = target else {
        return Ok(());
    };
    let start = out.len();
    record_codec::encode(out, records, id, level)?;
    // The encoder starts a new batch where the records' producer fields or sequences change;
    // those of one decoded batch never do, so it wrote exactly one.
    let internal = |why: String| Refusal::from(CodecError::Encode(why));
    let written = batch::validate_batches(&out[start..], 1)
        .map_err(|err| internal(format!("the re-encoded batch is not valid: {err}")))?;
    let rebuilt = written[0];
    let same = rebuilt.records_count == header.records_count
        && rebuilt.last_offset_delta == header.last_offset_delta
        && rebuilt.producer_id == header.producer_id
        && rebuilt.producer_epoch == header.producer_epoch
        && rebuilt.base_sequence == header.base_sequence
        && rebuilt.is_transactional() == header.is_transactional();
    if !same {
        return Err(internal(format!(
            "the re-encoded batch differs from the produced one: {rebuilt:?} for {header:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    };
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// A registry without schemas.
    struct NoSchemas;

    #[async_trait::async_trait]
    impl SchemaIds for NoSchemas {
        async fn refresh(&self, _subject: &str) {}

        fn registered(&self, _subject: &str, _id: u32) -> bool {
            false
        }
    }

    /// A registry with the given (subject, id) pairs.
    struct Registered(Vec<(&'static str, u32)>);

    #[async_trait::async_trait]
    impl SchemaIds for Registered {
        async fn refresh(&self, _subject: &str) {}

        fn registered(&self, subject: &str, id: u32) -> bool {
            self.0.contains(&(subject, id))
        }
    }

    fn framed(id: u32, payload: &[u8]) -> Bytes {
        let mut out = vec![0u8];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(payload);
        Bytes::from(out)
    }

    /// Goal: with `confluent.value.schema.validation`, a batch is refused whole
    /// (INVALID_RECORD, one record error per bad record) when a value lacks the magic byte
    /// or carries an id not registered under `<topic>-value`; null values pass, keys are not
    /// checked unless their own flag is on, and a valid batch is kept as it is.
    #[test]
    fn schema_ids_are_checked_against_the_topic_subjects() {
        let config: BTreeMap<String, String> = [(
            "confluent.value.schema.validation".to_string(),
            "true".to_string(),
        )]
        .into();
        let registry = Arc::new(Registered(vec![("t-value", 5), ("t-key", 9)]));
        let rules = RecordRules::of(&config).named("t", 0, registry.clone());
        let with_value = |offset, value: Option<Bytes>| Record {
            value,
            ..record(offset, Some("k"), 5)
        };
        let good = batch_of(
            &[with_value(0, Some(framed(5, b"x"))), with_value(1, None)],
            Compression::Lz4,
        );
        assert!(rules.needs_records(&headers(&good), 1_000));
        assert_eq!(rules.apply(&good, &headers(&good), 1_000), Ok(None));
        let bad = batch_of(
            &[
                with_value(0, Some(framed(5, b"x"))),
                with_value(1, Some(Bytes::from_static(b"plain json"))),
                with_value(2, Some(framed(9, b"x"))),
                with_value(3, Some(Bytes::from_static(&[0, 0, 5]))),
            ],
            Compression::None,
        );
        let refusal = rules.apply(&bad, &headers(&bad), 1_000).unwrap_err();
        assert_eq!(refusal.code, ResponseError::InvalidRecord);
        let indexes: Vec<i32> = refusal.record_errors.iter().map(|e| e.0).collect();
        assert_eq!(indexes, vec![1, 2, 3]);
        assert!(refusal.record_errors[1].1.contains("schema id 9"));
        assert!(refusal.record_errors[1].1.contains("t-value"));

        let keys: BTreeMap<String, String> = [(
            "confluent.key.schema.validation".to_string(),
            "true".to_string(),
        )]
        .into();
        let rules = RecordRules::of(&keys).named("t", 0, registry);
        let keyed = |offset, key: &[u8]| Record {
            key: Some(Bytes::copy_from_slice(key)),
            ..record(offset, None, 5)
        };
        let key_ok = batch_of(&[keyed(0, &framed(9, b"k"))], Compression::None);
        assert_eq!(rules.apply(&key_ok, &headers(&key_ok), 1_000), Ok(None));
        let key_bad = batch_of(&[keyed(0, &framed(5, b"k"))], Compression::None);
        assert!(rules.apply(&key_bad, &headers(&key_bad), 1_000).is_err());
        assert!(!RecordRules::of(&BTreeMap::new()).needs_records(&headers(&good), 1_000));
    }

    fn record(offset: i64, key: Option<&'static str>, timestamp: i64) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 7,
            producer_epoch: 2,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset,
            sequence: 40 + offset as i32,
            timestamp,
            key: key.map(|k| Bytes::from_static(k.as_bytes())),
            value: Some(Bytes::from(vec![b'v'; 200])),
            headers: Default::default(),
        }
    }

    fn batch_of(records: &[Record], compression: Compression) -> Bytes {
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut out, records, &options).unwrap();
        out.freeze()
    }

    fn rules(config: &[(&str, &str)]) -> RecordRules {
        let config: BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RecordRules::of(&config).named("t", 0, Arc::new(NoSchemas))
    }

    fn headers(bytes: &Bytes) -> Vec<BatchHeader> {
        batch::validate_batches(bytes, 8).unwrap()
    }

    #[test]
    fn defaults_never_decode() {
        let bytes = batch_of(&[record(0, None, 5)], Compression::Gzip);
        let rules = rules(&[]);
        assert!(!rules.needs_records(&headers(&bytes), 1_000));
        assert_eq!(rules.apply(&bytes, &headers(&bytes), 1_000), Ok(None));
    }

    #[test]
    fn compacted_topics_refuse_keyless_records() {
        let records = [
            record(0, Some("a"), 5),
            record(1, None, 5),
            record(2, Some("b"), 5),
        ];
        let bytes = batch_of(&records, Compression::Snappy);
        let rules = rules(&[("cleanup.policy", "compact")]);
        assert!(rules.needs_records(&headers(&bytes), 1_000));
        let refusal = rules.apply(&bytes, &headers(&bytes), 1_000).unwrap_err();
        assert_eq!(refusal.code, ResponseError::InvalidRecord);
        assert_eq!(refusal.record_errors.len(), 1);
        assert_eq!(refusal.record_errors[0].0, 1);
        assert!(
            refusal.record_errors[0].1.contains(
                "Compacted topic cannot accept message without key in topic partition t-0"
            ),
            "{refusal:?}"
        );
        assert!(refusal.message.contains("1 record errors"), "{refusal:?}");
        let keyed = batch_of(&[record(0, Some("a"), 5)], Compression::Lz4);
        assert_eq!(rules.apply(&keyed, &headers(&keyed), 1_000), Ok(None));
    }

    #[test]
    fn timestamps_outside_the_limits_are_refused() {
        let now = 1_000_000;
        let bytes = batch_of(
            &[record(0, None, now - 10), record(1, None, now - 5_000)],
            Compression::Zstd,
        );
        let rules = rules(&[("message.timestamp.before.max.ms", "1000")]);
        let refusal = rules.apply(&bytes, &headers(&bytes), now).unwrap_err();
        assert_eq!(refusal.code, ResponseError::InvalidTimestamp);
        assert_eq!(refusal.record_errors.len(), 1);
        assert_eq!(refusal.record_errors[0].0, 1);
        // The deprecated difference applies to both sides while they are at their defaults.
        let difference = rules_with_difference();
        let future = batch_of(&[record(0, None, now + 5_000)], Compression::None);
        assert!(difference.apply(&future, &headers(&future), now).is_err());
        // With only an upper limit, the header decides a batch within it.
        let after = self::rules(&[("message.timestamp.after.max.ms", "1000")]);
        assert!(!after.needs_records(&headers(&bytes), now));
        assert!(after.needs_records(&headers(&future), now));
        // LogAppendTime topics never look at producers' timestamps.
        let append = self::rules(&[
            ("message.timestamp.type", "LogAppendTime"),
            ("message.timestamp.before.max.ms", "1"),
        ]);
        assert!(!append.needs_records(&headers(&bytes), now));
    }

    fn rules_with_difference() -> RecordRules {
        rules(&[("message.timestamp.difference.max.ms", "1000")])
    }

    #[test]
    fn other_codecs_are_rebuilt_in_the_topics() {
        let records: Vec<Record> = (0..50)
            .map(|i| record(i, Some("k"), 1_000 + (i * 7) % 13))
            .collect();
        for (topic_codec, id) in [
            ("lz4", 3),
            ("gzip", 1),
            ("zstd", 4),
            ("snappy", 2),
            ("uncompressed", 0),
        ] {
            let rules = rules(&[("compression.type", topic_codec)]);
            for source in [
                Compression::None,
                Compression::Gzip,
                Compression::Snappy,
                Compression::Lz4,
                Compression::Zstd,
            ] {
                let bytes = batch_of(&records, source);
                let before = headers(&bytes)[0];
                let result = rules.apply(&bytes, &headers(&bytes), 0).unwrap();
                let Some(rebuilt) = result else {
                    assert_eq!(source as u8, id, "{topic_codec} from {source:?}");
                    continue;
                };
                let after = headers(&rebuilt)[0];
                assert_eq!(after.compression(), id);
                assert_eq!(after.base_sequence, before.base_sequence);
                assert_eq!(after.producer_id, 7);
                assert_eq!(after.producer_epoch, 2);
                assert_eq!(after.max_timestamp, before.max_timestamp);
                let decoded = RecordBatchDecoder::decode(&mut rebuilt.clone()).unwrap();
                assert_eq!(decoded.records.len(), 50);
                for (a, b) in decoded.records.iter().zip(&records) {
                    assert_eq!(
                        (a.offset, a.timestamp, &a.value),
                        (b.offset, b.timestamp, &b.value)
                    );
                }
            }
        }
    }
}
