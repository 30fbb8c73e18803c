//! Kafka 3.9's topic configs that have no effect in Strato (Kafka's `LogConfig`): local
//! files, flushes, indexes, replication throttles, tiered storage and the old message
//! formats have no counterpart when the log lives in object storage. They are accepted and
//! described with Kafka's defaults, types and broker synonyms, so tools that set them work;
//! their documentation says that they do nothing. An empty `broker_name` marks Kafka's
//! configs without a broker default (`LogConfig.CONFIGS_WITH_NO_SERVER_DEFAULTS`).

use super::{ConfigType, LONG_MAX, TopicConfigDef, boolean, non_negative_long};

fn int_at_least(v: &str, min: i32) -> bool {
    v.parse::<i32>().is_ok_and(|n| n >= min)
}

fn non_negative_int(v: &str) -> Result<(), &'static str> {
    if int_at_least(v, 0) {
        Ok(())
    } else {
        Err("must be an integer >= 0")
    }
}

/// `segment.index.bytes`: Kafka's `atLeast(4)`.
fn index_bytes(v: &str) -> Result<(), &'static str> {
    if int_at_least(v, 4) {
        Ok(())
    } else {
        Err("must be an integer >= 4")
    }
}

fn positive_long(v: &str) -> Result<(), &'static str> {
    match v.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(()),
        _ => Err("must be a positive integer"),
    }
}

/// `local.retention.*`: Kafka's `atLeast(-2)` (-2: the value of `retention.*`).
fn long_at_least_minus_two(v: &str) -> Result<(), &'static str> {
    match v.parse::<i64>() {
        Ok(n) if n >= -2 => Ok(()),
        _ => Err("must be an integer >= -2"),
    }
}

/// `message.format.version`: a Kafka release as Kafka's `MetadataVersionValidator` takes
/// it, `<major>.<minor>[.<patch>][-IV<n>]` (e.g. `0.10.2`, `2.8`, `3.0-IV1`).
fn message_format_version(v: &str) -> Result<(), &'static str> {
    let (release, iv) = match v.split_once("-IV") {
        Some((release, iv)) => (release, Some(iv)),
        None => (v, None),
    };
    let numbers: Vec<&str> = release.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    let valid = (2..=3).contains(&numbers.len())
        && numbers.iter().all(|n| numeric(n))
        && iv.is_none_or(numeric);
    if valid {
        Ok(())
    } else {
        Err("must be a Kafka version such as 3.0-IV1")
    }
}

/// `*.replication.throttled.replicas`: Kafka's `ThrottledReplicaListValidator`, `*` or a
/// list of `<partition>:<broker id>`, or empty.
fn throttled_replicas(v: &str) -> Result<(), &'static str> {
    let pair = |item: &str| {
        item.split_once(':').is_some_and(|(partition, broker)| {
            partition.trim().parse::<u32>().is_ok() && broker.trim().parse::<u32>().is_ok()
        })
    };
    let items: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if v.trim() == "*" || items.iter().all(|i| pair(i)) {
        Ok(())
    } else {
        Err("must be * or a list of <partition>:<broker id>")
    }
}

/// What each of these answers in DescribeConfigs' documentation.
macro_rules! no_effect {
    ($why:literal) => {
        concat!("accepted, no effect in Strato: ", $why)
    };
}

pub(super) const IGNORED_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "file.delete.delay.ms",
        broker_name: "log.segment.delete.delay.ms",
        default: "60000",
        kind: ConfigType::Long,
        doc: no_effect!("objects no index entry refers to are deleted after --gc-grace-ms"),
        validate: non_negative_long,
    },
    TopicConfigDef {
        name: "flush.messages",
        broker_name: "log.flush.interval.messages",
        default: LONG_MAX,
        kind: ConfigType::Long,
        doc: no_effect!("a batch is acknowledged once its segment is in the object store"),
        validate: positive_long,
    },
    TopicConfigDef {
        name: "flush.ms",
        broker_name: "log.flush.interval.ms",
        default: LONG_MAX,
        kind: ConfigType::Long,
        doc: no_effect!("segments are uploaded every --flush-interval-ms or --flush-bytes"),
        validate: non_negative_long,
    },
    TopicConfigDef {
        name: "follower.replication.throttled.replicas",
        broker_name: "",
        default: "",
        kind: ConfigType::List,
        doc: no_effect!("there are no follower replicas; the object store replicates"),
        validate: throttled_replicas,
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        broker_name: "log.index.interval.bytes",
        default: "4096",
        kind: ConfigType::Int,
        doc: no_effect!("the metadata store indexes every chunk"),
        validate: non_negative_int,
    },
    TopicConfigDef {
        name: "leader.replication.throttled.replicas",
        broker_name: "",
        default: "",
        kind: ConfigType::List,
        doc: no_effect!("there are no follower replicas; the object store replicates"),
        validate: throttled_replicas,
    },
    TopicConfigDef {
        name: "local.retention.bytes",
        broker_name: "log.local.retention.bytes",
        default: "-2",
        kind: ConfigType::Long,
        doc: no_effect!("no log is kept on local disks; see retention.bytes"),
        validate: long_at_least_minus_two,
    },
    TopicConfigDef {
        name: "local.retention.ms",
        broker_name: "log.local.retention.ms",
        default: "-2",
        kind: ConfigType::Long,
        doc: no_effect!("no log is kept on local disks; see retention.ms"),
        validate: long_at_least_minus_two,
    },
    TopicConfigDef {
        name: "message.downconversion.enable",
        broker_name: "log.message.downconversion.enable",
        default: "true",
        kind: ConfigType::Boolean,
        doc: no_effect!("batches are only served in the v2 format"),
        validate: boolean,
    },
    TopicConfigDef {
        name: "message.format.version",
        broker_name: "log.message.format.version",
        default: "3.0-IV1",
        kind: ConfigType::String,
        doc: no_effect!("[DEPRECATED] batches are always record batch v2"),
        validate: message_format_version,
    },
    TopicConfigDef {
        name: "preallocate",
        broker_name: "log.preallocate",
        default: "false",
        kind: ConfigType::Boolean,
        doc: no_effect!("the log has no local segment files"),
        validate: boolean,
    },
    TopicConfigDef {
        name: "remote.log.copy.disable",
        broker_name: "",
        default: "false",
        kind: ConfigType::Boolean,
        doc: no_effect!("the whole log is always in the object store"),
        validate: boolean,
    },
    TopicConfigDef {
        name: "remote.log.delete.on.disable",
        broker_name: "",
        default: "false",
        kind: ConfigType::Boolean,
        doc: no_effect!("the whole log is always in the object store"),
        validate: boolean,
    },
    TopicConfigDef {
        name: "remote.storage.enable",
        broker_name: "",
        default: "false",
        kind: ConfigType::Boolean,
        doc: no_effect!("the whole log is always in the object store"),
        validate: boolean,
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        broker_name: "log.index.size.max.bytes",
        default: "10485760",
        kind: ConfigType::Int,
        doc: no_effect!("the metadata store indexes every chunk"),
        validate: index_bytes,
    },
    TopicConfigDef {
        name: "segment.jitter.ms",
        broker_name: "log.roll.jitter.ms",
        default: "0",
        kind: ConfigType::Long,
        doc: no_effect!("segments are cut by --flush-interval-ms"),
        validate: non_negative_long,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_follow_kafka() {
        assert!(message_format_version("3.0-IV1").is_ok());
        assert!(message_format_version("0.10.2").is_ok());
        assert!(message_format_version("2.8").is_ok());
        assert!(message_format_version("3").is_err());
        assert!(message_format_version("3.x").is_err());
        assert!(message_format_version("3.0-IV").is_err());
        assert!(throttled_replicas("").is_ok());
        assert!(throttled_replicas("*").is_ok());
        assert!(throttled_replicas("0:1, 1:2").is_ok());
        assert!(throttled_replicas("0-1").is_err());
        assert!(long_at_least_minus_two("-2").is_ok());
        assert!(long_at_least_minus_two("-3").is_err());
        assert!(index_bytes("3").is_err());
        assert!(positive_long("0").is_err());
    }
}
