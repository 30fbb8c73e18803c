//! Topic configs Strato knows: defaults, types, validation, how clients see them, and how
//! AlterConfigs / IncrementalAlterConfigs change a topic's overrides. `TOPIC_CONFIGS` are the
//! ones that act (or are Strato's answer to a Kafka concept); `ignored::IGNORED_CONFIGS` are
//! the rest of Kafka 3.9's topic configs, accepted and described with no effect. [`all`]
//! chains both; names outside them are refused.

mod ignored;

use std::collections::BTreeMap;

/// Kafka's default `max.message.bytes` (1 MiB + record batch overhead).
pub const MAX_MESSAGE_BYTES_DEFAULT: i64 = 1_048_588;

/// Config types as DescribeConfigs v3+ reports them (Kafka `DescribeConfigsResponse.ConfigType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

impl ConfigType {
    pub fn wire(self) -> i8 {
        self as i8
    }
}

pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker config that holds the default (Kafka's synonym, e.g. `log.retention.ms`).
    pub broker_name: &'static str,
    pub default: &'static str,
    pub kind: ConfigType,
    /// What the config does in Strato (DescribeConfigs `documentation`).
    pub doc: &'static str,
    pub validate: fn(&str) -> Result<(), &'static str>,
}

fn long_at_least_minus_one(v: &str) -> Result<(), &'static str> {
    match v.parse::<i64>() {
        Ok(n) if n >= -1 => Ok(()),
        _ => Err("must be an integer >= -1"),
    }
}

fn positive_int(v: &str) -> Result<(), &'static str> {
    match v.parse::<i32>() {
        Ok(n) if n >= 1 => Ok(()),
        _ => Err("must be a positive integer"),
    }
}

fn non_negative_long(v: &str) -> Result<(), &'static str> {
    match v.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(()),
        _ => Err("must be an integer >= 0"),
    }
}

fn positive_long(v: &str) -> Result<(), &'static str> {
    match v.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(()),
        _ => Err("must be a positive integer"),
    }
}

fn ratio(v: &str) -> Result<(), &'static str> {
    match v.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
        _ => Err("must be a number from 0 to 1"),
    }
}

fn cleanup_policy(v: &str) -> Result<(), &'static str> {
    let ok = v
        .split(',')
        .map(str::trim)
        .all(|p| p == "delete" || p == "compact");
    if ok && !v.is_empty() {
        Ok(())
    } else {
        Err("must be a list of delete and compact")
    }
}

fn timestamp_type(v: &str) -> Result<(), &'static str> {
    match v {
        "CreateTime" | "LogAppendTime" => Ok(()),
        _ => Err("must be CreateTime or LogAppendTime"),
    }
}

fn compression_type(v: &str) -> Result<(), &'static str> {
    match TopicCompression::parse(v) {
        Some(_) => Ok(()),
        None => Err("must be one of uncompressed, zstd, lz4, snappy, gzip, producer"),
    }
}

/// Confluent's default subject name strategy, the only one Strato's validation knows.
const TOPIC_NAME_STRATEGY: &str = "io.confluent.kafka.serializers.subject.TopicNameStrategy";

fn subject_name_strategy(v: &str) -> Result<(), &'static str> {
    if v == TOPIC_NAME_STRATEGY || v == "TopicNameStrategy" {
        Ok(())
    } else {
        Err("only io.confluent.kafka.serializers.subject.TopicNameStrategy is supported")
    }
}

/// An int within `min..=max` (Kafka's `ConfigDef.Range.between`).
fn int_between(v: &str, min: i32, max: i32) -> bool {
    v.parse::<i32>().is_ok_and(|n| (min..=max).contains(&n))
}

/// Kafka's `CompressionType.GZIP.levelValidator()`: 1 to 9, or -1 for zlib's default.
fn gzip_level(v: &str) -> Result<(), &'static str> {
    if v == "-1" || int_between(v, 1, 9) {
        Ok(())
    } else {
        Err("must be between 1 and 9 or equal to -1")
    }
}

/// Kafka's `CompressionType.LZ4.levelValidator()`.
fn lz4_level(v: &str) -> Result<(), &'static str> {
    if int_between(v, 1, 17) {
        Ok(())
    } else {
        Err("must be between 1 and 17")
    }
}

/// Kafka's `CompressionType.ZSTD.levelValidator()`: zstd's `ZSTD_minCLevel()` to
/// `ZSTD_MAX_CLEVEL`.
fn zstd_level(v: &str) -> Result<(), &'static str> {
    if int_between(v, -131_072, 22) {
        Ok(())
    } else {
        Err("must be between -131072 and 22")
    }
}

fn boolean(v: &str) -> Result<(), &'static str> {
    match v {
        "true" | "false" => Ok(()),
        _ => Err("must be true or false"),
    }
}

pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        default: "delete",
        kind: ConfigType::List,
        doc: "delete: retention.ms and retention.bytes remove old chunks. compact: the \
              cleaner keeps the latest record of every key (and removes tombstones after \
              delete.retention.ms). compact,delete: both",
        validate: cleanup_policy,
    },
    TopicConfigDef {
        name: "confluent.key.schema.validation",
        broker_name: "",
        default: "false",
        kind: ConfigType::Boolean,
        doc: "true: Produce refuses (INVALID_RECORD) a record whose key does not start with \
              the magic byte 0 and the id of a schema registered under the subject \
              <topic>-key in the built-in schema registry (Confluent Server's validation)",
        validate: boolean,
    },
    TopicConfigDef {
        name: "confluent.key.subject.name.strategy",
        broker_name: "",
        default: TOPIC_NAME_STRATEGY,
        kind: ConfigType::String,
        doc: "the subject that keys' schema ids are checked against: only \
              TopicNameStrategy (<topic>-key) is supported",
        validate: subject_name_strategy,
    },
    TopicConfigDef {
        name: "confluent.value.schema.validation",
        broker_name: "",
        default: "false",
        kind: ConfigType::Boolean,
        doc: "true: Produce refuses (INVALID_RECORD) a record whose value is not null and \
              does not start with the magic byte 0 and the id of a schema registered under \
              the subject <topic>-value in the built-in schema registry (Confluent Server's \
              validation)",
        validate: boolean,
    },
    TopicConfigDef {
        name: "confluent.value.subject.name.strategy",
        broker_name: "",
        default: TOPIC_NAME_STRATEGY,
        kind: ConfigType::String,
        doc: "the subject that values' schema ids are checked against: only \
              TopicNameStrategy (<topic>-value) is supported",
        validate: subject_name_strategy,
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        broker_name: "log.cleaner.delete.retention.ms",
        default: "86400000",
        kind: ConfigType::Long,
        doc: "compacted topics: how long a tombstone (a record with a null value) stays \
              after the cleaner first passed over it",
        validate: non_negative_long,
    },
    TopicConfigDef {
        name: "compression.type",
        broker_name: "compression.type",
        default: "producer",
        kind: ConfigType::String,
        doc: "the final compression type of the topic's batches: gzip, snappy, lz4 or zstd; \
              uncompressed (no compression); producer keeps the producer's codec. A batch in \
              another codec is recompressed on produce, as Kafka does",
        validate: compression_type,
    },
    TopicConfigDef {
        name: "compression.gzip.level",
        broker_name: "compression.gzip.level",
        default: "-1",
        kind: ConfigType::Int,
        doc: "the compression level to use if compression.type is set to gzip",
        validate: gzip_level,
    },
    TopicConfigDef {
        name: "compression.lz4.level",
        broker_name: "compression.lz4.level",
        default: "9",
        kind: ConfigType::Int,
        doc: "the compression level to use if compression.type is set to lz4",
        validate: lz4_level,
    },
    TopicConfigDef {
        name: "compression.zstd.level",
        broker_name: "compression.zstd.level",
        default: "3",
        kind: ConfigType::Int,
        doc: "the compression level to use if compression.type is set to zstd",
        validate: zstd_level,
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_name: "message.max.bytes",
        default: "1048588",
        kind: ConfigType::Int,
        doc: "largest record batch a producer may send (MESSAGE_TOO_LARGE above it)",
        validate: positive_int,
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        broker_name: "log.message.timestamp.type",
        default: "CreateTime",
        kind: ConfigType::String,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime sets every batch's \
              timestamp to the time the broker accepted it",
        validate: timestamp_type,
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        broker_name: "log.message.timestamp.before.max.ms",
        default: LONG_MAX,
        kind: ConfigType::Long,
        doc: "CreateTime topics: a batch with a record older than this (by the broker's \
              clock) is refused with INVALID_TIMESTAMP",
        validate: non_negative_long,
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        broker_name: "log.message.timestamp.after.max.ms",
        default: LONG_MAX,
        kind: ConfigType::Long,
        doc: "CreateTime topics: a batch with a record newer than this ahead of the broker's \
              clock is refused with INVALID_TIMESTAMP",
        validate: non_negative_long,
    },
    TopicConfigDef {
        name: "message.timestamp.difference.max.ms",
        broker_name: "log.message.timestamp.difference.max.ms",
        default: LONG_MAX,
        kind: ConfigType::Long,
        doc: "[DEPRECATED] the before and after limit of a CreateTime record's timestamp, \
              where message.timestamp.before.max.ms and message.timestamp.after.max.ms are \
              left at their defaults",
        validate: non_negative_long,
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        broker_name: "log.cleaner.max.compaction.lag.ms",
        default: "9223372036854775807",
        kind: ConfigType::Long,
        doc: "compacted topics: a record stays uncleaned at most this long, whatever the \
              dirty ratio",
        validate: positive_long,
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_name: "log.cleaner.min.cleanable.ratio",
        default: "0.5",
        kind: ConfigType::Double,
        doc: "compacted topics: the cleaner runs on a partition once this share of its \
              cleanable bytes was written since its last pass",
        validate: ratio,
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        broker_name: "log.cleaner.min.compaction.lag.ms",
        default: "0",
        kind: ConfigType::Long,
        doc: "compacted topics: a record stays uncleaned at least this long (by the newest \
              timestamp of its chunk)",
        validate: non_negative_long,
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        broker_name: "min.insync.replicas",
        default: "1",
        kind: ConfigType::Int,
        doc: "accepted, no effect: durability comes from the object store",
        validate: positive_int,
    },
    TopicConfigDef {
        name: "retention.bytes",
        broker_name: "log.retention.bytes",
        default: "-1",
        kind: ConfigType::Long,
        doc: "per partition, oldest whole chunks are removed above this size (-1: no limit)",
        validate: long_at_least_minus_one,
    },
    TopicConfigDef {
        name: "retention.ms",
        broker_name: "log.retention.ms",
        default: "604800000",
        kind: ConfigType::Long,
        doc: "chunks whose newest record is older than this are removed (-1: kept forever)",
        validate: long_at_least_minus_one,
    },
    TopicConfigDef {
        name: "segment.bytes",
        broker_name: "log.segment.bytes",
        default: "1073741824",
        kind: ConfigType::Int,
        doc: "accepted, no effect: segments are cut by --flush-bytes and merged by compaction",
        validate: positive_int,
    },
    TopicConfigDef {
        name: "segment.ms",
        broker_name: "log.roll.ms",
        default: "604800000",
        kind: ConfigType::Long,
        doc: "chunk compaction merges only chunks whose newest records fall in one window of this length (and of retention.ms on deleting topics), so retention removes records at most this late",
        validate: non_negative_long,
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        broker_name: "unclean.leader.election.enable",
        default: "false",
        kind: ConfigType::Boolean,
        doc: "accepted, no effect: every leader reads the same committed log",
        validate: boolean,
    },
];

/// Kafka's `Long.MAX_VALUE`, the default of limits that are off.
const LONG_MAX: &str = "9223372036854775807";

/// Every topic config Strato accepts: those that act, then those accepted with no effect.
pub fn all() -> impl Iterator<Item = &'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().chain(ignored::IGNORED_CONFIGS)
}

pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    all().find(|c| c.name == name)
}

fn unknown(name: &str) -> String {
    let known: Vec<&str> = all().map(|c| c.name).collect();
    format!("unknown topic config {name:?}; known: {}", known.join(", "))
}

/// Validates config overrides (at topic creation, or a topic's whole set after a change);
/// the error names the bad entry.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        let def = find(name).ok_or_else(|| unknown(name))?;
        (def.validate)(value)
            .map_err(|why| format!("invalid value {value:?} for {name}: {why}"))?;
    }
    Ok(())
}

/// The effective value of `name` for a topic with `overrides`.
pub fn effective<'a>(overrides: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    overrides
        .get(name)
        .map(String::as_str)
        .or_else(|| find(name).map(|d| d.default))
}

pub fn max_message_bytes(overrides: &BTreeMap<String, String>) -> i64 {
    effective(overrides, "max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_MESSAGE_BYTES_DEFAULT)
}

pub fn log_append_time(overrides: &BTreeMap<String, String>) -> bool {
    effective(overrides, "message.timestamp.type") == Some("LogAppendTime")
}

/// The codec a topic stores its batches in (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCompression {
    /// Batches keep the producer's codec.
    Producer,
    /// Batches are stored in this codec (Kafka's attribute bits: 0 none, 1 gzip, 2 snappy,
    /// 3 lz4, 4 zstd) at this level (`compression.<codec>.level`; none for snappy and none).
    Codec { id: u8, level: i32 },
}

impl TopicCompression {
    fn parse(v: &str) -> Option<(Self, &'static str)> {
        let (id, level_config) = match v {
            "producer" => return Some((Self::Producer, "")),
            "uncompressed" => (0, ""),
            "gzip" => (1, "compression.gzip.level"),
            "snappy" => (2, ""),
            "lz4" => (3, "compression.lz4.level"),
            "zstd" => (4, "compression.zstd.level"),
            _ => return None,
        };
        Some((Self::Codec { id, level: 0 }, level_config))
    }
}

/// The topic's `compression.type` with its level.
pub fn compression(overrides: &BTreeMap<String, String>) -> TopicCompression {
    let parsed = effective(overrides, "compression.type").and_then(TopicCompression::parse);
    match parsed {
        Some((TopicCompression::Codec { id, .. }, level_config)) => TopicCompression::Codec {
            id,
            level: if level_config.is_empty() {
                0
            } else {
                long_config(overrides, level_config) as i32
            },
        },
        _ => TopicCompression::Producer,
    }
}

/// The range of CreateTime timestamps a topic accepts, as limits relative to the broker's
/// clock (`message.timestamp.before.max.ms`, `message.timestamp.after.max.ms`; each falls
/// back to the deprecated `message.timestamp.difference.max.ms` while at its default, as
/// Kafka's `LogConfig`). `None` when both are off or the topic uses LogAppendTime, so
/// produce never needs to look at record timestamps.
pub fn timestamp_limits(overrides: &BTreeMap<String, String>) -> Option<TimestampLimits> {
    if log_append_time(overrides) {
        return None;
    }
    let difference = long_config(overrides, "message.timestamp.difference.max.ms");
    let limit = |name: &str| match long_config(overrides, name) {
        i64::MAX => difference,
        set => set,
    };
    let limits = TimestampLimits {
        before_max_ms: limit("message.timestamp.before.max.ms"),
        after_max_ms: limit("message.timestamp.after.max.ms"),
    };
    (limits.before_max_ms != i64::MAX || limits.after_max_ms != i64::MAX).then_some(limits)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampLimits {
    pub before_max_ms: i64,
    pub after_max_ms: i64,
}

impl TimestampLimits {
    /// Kafka's `LogValidator.recordHasInvalidTimestamp` (without overflow).
    pub fn admits(&self, timestamp: i64, now_ms: i64) -> bool {
        let difference = i128::from(now_ms) - i128::from(timestamp);
        difference <= i128::from(self.before_max_ms) && -difference <= i128::from(self.after_max_ms)
    }
}

fn long_config(overrides: &BTreeMap<String, String>, name: &str) -> i64 {
    effective(overrides, name)
        .and_then(|v| v.parse().ok())
        .or_else(|| find(name).and_then(|d| d.default.parse().ok()))
        .unwrap_or(0)
}

/// Which parts of a topic's records Produce checks for registered schema ids
/// (`confluent.key.schema.validation`, `confluent.value.schema.validation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaValidation {
    pub key: bool,
    pub value: bool,
}

impl SchemaValidation {
    pub fn any(self) -> bool {
        self.key || self.value
    }
}

pub fn schema_validation(overrides: &BTreeMap<String, String>) -> SchemaValidation {
    let on = |name| effective(overrides, name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    SchemaValidation {
        key: on("confluent.key.schema.validation"),
        value: on("confluent.value.schema.validation"),
    }
}

/// Whether the cleaner compacts the topic by key (`cleanup.policy` includes `compact`).
pub fn compacted(overrides: &BTreeMap<String, String>) -> bool {
    effective(overrides, "cleanup.policy")
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "compact"))
}

/// The cleaner's settings of a compacted topic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
}

pub fn cleaner_config(overrides: &BTreeMap<String, String>) -> CleanerConfig {
    CleanerConfig {
        delete_retention_ms: long_config(overrides, "delete.retention.ms"),
        min_compaction_lag_ms: long_config(overrides, "min.compaction.lag.ms"),
        max_compaction_lag_ms: long_config(overrides, "max.compaction.lag.ms"),
        min_cleanable_dirty_ratio: effective(overrides, "min.cleanable.dirty.ratio")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.5),
    }
}

/// Whether retention may remove records (`cleanup.policy` includes `delete`). A topic that
/// is only `compact` loses records only to the cleaner.
pub fn retention_deletes(overrides: &BTreeMap<String, String>) -> bool {
    effective(overrides, "cleanup.policy")
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "delete"))
}

/// The time window chunk compaction keeps a merged chunk within, in ms: chunks whose newest
/// records fall in different windows of this length are never merged, so a chunk covers
/// at most about one window and retention (which drops whole chunks by their newest record)
/// removes a record at most one window after it expires. `segment.ms` (Kafka's roll time;
/// a segment there is deleted only once rolled), and no more than `retention.ms` when the
/// topic deletes by time: without this a quiet topic's merged chunk kept taking newer
/// records, its newest record never aged, and nothing was ever removed (the soak found it,
/// docs/SOAK.md).
pub fn chunk_window_ms(overrides: &BTreeMap<String, String>) -> i64 {
    let long = |name: &str| -> Option<i64> {
        effective(overrides, name).and_then(|v| v.parse::<i64>().ok())
    };
    let segment = long("segment.ms").filter(|ms| *ms > 0).unwrap_or(i64::MAX);
    let retention = long("retention.ms")
        .filter(|ms| *ms > 0 && retention_deletes(overrides))
        .unwrap_or(i64::MAX);
    segment.min(retention)
}

/// The time window (of [`chunk_window_ms`] `window_ms`) a chunk whose newest record is at
/// `max_timestamp` falls in; chunks of different windows are never merged.
pub fn chunk_window(max_timestamp: i64, window_ms: i64) -> i64 {
    max_timestamp.div_euclid(window_ms.max(1))
}

/// Why a config change was refused: a bad config (INVALID_CONFIG) or a malformed request
/// (INVALID_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChangeError {
    InvalidConfig(String),
    InvalidRequest(String),
}

/// The overrides AlterConfigs asks for: exactly `entries`, every other config back to its
/// default (Kafka's non-incremental semantics).
pub fn replace_all(
    entries: &[(String, Option<String>)],
) -> Result<BTreeMap<String, String>, ConfigChangeError> {
    let mut configs = BTreeMap::new();
    for (name, value) in entries {
        let Some(value) = value else {
            return Err(ConfigChangeError::InvalidRequest(format!(
                "null value for {name}: AlterConfigs sets every config it names"
            )));
        };
        if configs.insert(name.clone(), value.clone()).is_some() {
            return Err(ConfigChangeError::InvalidRequest(format!(
                "config {name} appears twice"
            )));
        }
    }
    validate(&configs).map_err(ConfigChangeError::InvalidConfig)?;
    Ok(configs)
}

/// One IncrementalAlterConfigs operation (Kafka `AlterConfigOp.OpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    pub fn from_wire(op: i8) -> Option<Self> {
        match op {
            0 => Some(Self::Set),
            1 => Some(Self::Delete),
            2 => Some(Self::Append),
            3 => Some(Self::Subtract),
            _ => None,
        }
    }
}

/// Applies IncrementalAlterConfigs operations to `current` overrides: SET replaces, DELETE
/// returns to the default, APPEND / SUBTRACT add or remove items of a list config (starting
/// from its effective value). The result is validated as a whole.
pub fn apply_incremental(
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp, Option<String>)],
) -> Result<BTreeMap<String, String>, ConfigChangeError> {
    let mut configs = current.clone();
    let mut seen = std::collections::BTreeSet::new();
    for (name, op, value) in ops {
        if !seen.insert(name.as_str()) {
            return Err(ConfigChangeError::InvalidRequest(format!(
                "config {name} appears twice"
            )));
        }
        let def = find(name).ok_or_else(|| ConfigChangeError::InvalidConfig(unknown(name)))?;
        let value_of = |op: &str| {
            value.clone().ok_or_else(|| {
                ConfigChangeError::InvalidRequest(format!("{op} of {name} needs a value"))
            })
        };
        match op {
            ConfigOp::Set => {
                configs.insert(name.clone(), value_of("SET")?);
            }
            ConfigOp::Delete => {
                configs.remove(name);
            }
            ConfigOp::Append | ConfigOp::Subtract => {
                if def.kind != ConfigType::List {
                    return Err(ConfigChangeError::InvalidConfig(format!(
                        "{name} is not a list: APPEND and SUBTRACT apply only to list configs"
                    )));
                }
                let given = value_of(if *op == ConfigOp::Append {
                    "APPEND"
                } else {
                    "SUBTRACT"
                })?;
                let mut items: Vec<String> = effective(&configs, name)
                    .unwrap_or(def.default)
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in given.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if *op == ConfigOp::Append {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(name.clone(), items.join(","));
            }
        }
    }
    validate(&configs).map_err(ConfigChangeError::InvalidConfig)?;
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate(&map(&[("retention.ms", "1000")])).is_ok());
        let unknown = validate(&map(&[("nope", "1")])).unwrap_err();
        assert!(
            unknown.contains("nope") && unknown.contains("retention.ms"),
            "{unknown}"
        );
        let bad = validate(&map(&[("max.message.bytes", "x")])).unwrap_err();
        assert!(bad.contains("max.message.bytes"), "{bad}");
        assert_eq!(
            max_message_bytes(&BTreeMap::new()),
            MAX_MESSAGE_BYTES_DEFAULT
        );
    }

    #[test]
    fn alter_configs_replaces_the_whole_set() {
        let set = replace_all(&[("retention.ms".into(), Some("5".into()))]).unwrap();
        assert_eq!(set, map(&[("retention.ms", "5")]));
        assert!(matches!(
            replace_all(&[("retention.ms".into(), None)]),
            Err(ConfigChangeError::InvalidRequest(_))
        ));
        assert!(matches!(
            replace_all(&[("retention.ms".into(), Some("-2".into()))]),
            Err(ConfigChangeError::InvalidConfig(_))
        ));
    }

    #[test]
    fn incremental_operations() {
        let current = map(&[("retention.ms", "1000"), ("max.message.bytes", "2000")]);
        let ops = [
            ("retention.ms".to_string(), ConfigOp::Delete, None),
            (
                "retention.bytes".to_string(),
                ConfigOp::Set,
                Some("10".to_string()),
            ),
            (
                "cleanup.policy".to_string(),
                ConfigOp::Append,
                Some("compact".to_string()),
            ),
        ];
        let next = apply_incremental(&current, &ops).unwrap();
        assert_eq!(
            next,
            map(&[
                ("cleanup.policy", "delete,compact"),
                ("max.message.bytes", "2000"),
                ("retention.bytes", "10"),
            ])
        );
        let subtract = [(
            "cleanup.policy".to_string(),
            ConfigOp::Subtract,
            Some("delete".to_string()),
        )];
        let next = apply_incremental(&next, &subtract).unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
        assert!(!retention_deletes(&next));
        // Subtracting the last item leaves an invalid (empty) policy.
        let emptied = [(
            "cleanup.policy".to_string(),
            ConfigOp::Subtract,
            Some("compact".to_string()),
        )];
        assert!(matches!(
            apply_incremental(&next, &emptied),
            Err(ConfigChangeError::InvalidConfig(_))
        ));
        // Lists only, known names only, one operation per name.
        let append_long = [(
            "retention.ms".to_string(),
            ConfigOp::Append,
            Some("1".to_string()),
        )];
        assert!(matches!(
            apply_incremental(&current, &append_long),
            Err(ConfigChangeError::InvalidConfig(_))
        ));
        let unknown = [("retention.msx".to_string(), ConfigOp::Delete, None)];
        assert!(matches!(
            apply_incremental(&current, &unknown),
            Err(ConfigChangeError::InvalidConfig(m)) if m.contains("retention.msx")
        ));
        let twice = [
            ("retention.ms".to_string(), ConfigOp::Delete, None),
            (
                "retention.ms".to_string(),
                ConfigOp::Set,
                Some("1".to_string()),
            ),
        ];
        assert!(matches!(
            apply_incremental(&current, &twice),
            Err(ConfigChangeError::InvalidRequest(_))
        ));
        assert!(retention_deletes(&BTreeMap::new()));
    }
}
