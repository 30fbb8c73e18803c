//! Topic configs Strato knows: defaults, validation, and how clients see them.

use std::collections::BTreeMap;

/// Kafka's default `max.message.bytes` (1 MiB + record batch overhead).
pub const MAX_MESSAGE_BYTES_DEFAULT: i64 = 1_048_588;

pub struct TopicConfigDef {
    pub name: &'static str,
    pub default: &'static str,
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
    // Batches are stored as the producer sent them; recompression is not implemented.
    match v {
        "producer" => Ok(()),
        _ => Err("only `producer` is supported: batches are stored as produced"),
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
        default: "delete",
        validate: cleanup_policy,
    },
    TopicConfigDef {
        name: "compression.type",
        default: "producer",
        validate: compression_type,
    },
    TopicConfigDef {
        name: "max.message.bytes",
        default: "1048588",
        validate: positive_int,
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        default: "CreateTime",
        validate: timestamp_type,
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        default: "1",
        validate: positive_int,
    },
    TopicConfigDef {
        name: "retention.bytes",
        default: "-1",
        validate: long_at_least_minus_one,
    },
    TopicConfigDef {
        name: "retention.ms",
        default: "604800000",
        validate: long_at_least_minus_one,
    },
    TopicConfigDef {
        name: "segment.bytes",
        default: "1073741824",
        validate: positive_int,
    },
    TopicConfigDef {
        name: "segment.ms",
        default: "604800000",
        validate: non_negative_long,
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        default: "false",
        validate: boolean,
    },
];

pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|c| c.name == name)
}

/// Validates config overrides given at topic creation; the error names the bad entry.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        let def = find(name).ok_or_else(|| format!("unknown topic config {name:?}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let ok: BTreeMap<String, String> = [("retention.ms".into(), "1000".into())].into();
        assert!(validate(&ok).is_ok());
        let unknown: BTreeMap<String, String> = [("nope".into(), "1".into())].into();
        assert!(validate(&unknown).unwrap_err().contains("nope"));
        let bad: BTreeMap<String, String> = [("max.message.bytes".into(), "x".into())].into();
        assert!(validate(&bad).unwrap_err().contains("max.message.bytes"));
        assert_eq!(
            max_message_bytes(&BTreeMap::new()),
            MAX_MESSAGE_BYTES_DEFAULT
        );
    }
}
