//! This broker's effective settings as DescribeConfigs shows them for a broker resource:
//! Kafka's names where Kafka has the setting, `strato.*` for Strato's own. All of them are
//! read-only: they come from `strato serve` flags (see `config.rs`).

use super::BrokerCtx;
use crate::config::MetadataUrl;
use crate::topic_config::{self, ConfigType};

/// One broker setting.
pub(super) struct BrokerSetting {
    pub name: String,
    pub value: Option<String>,
    pub kind: ConfigType,
    /// A Kafka topic default Strato does not let a flag change (source DEFAULT_CONFIG);
    /// otherwise the value comes from the broker's flags (STATIC_BROKER_CONFIG).
    pub fixed_default: bool,
    pub doc: &'static str,
}

fn setting(name: &str, value: impl ToString, kind: ConfigType, doc: &'static str) -> BrokerSetting {
    BrokerSetting {
        name: name.to_string(),
        value: Some(value.to_string()),
        kind,
        fixed_default: false,
        doc,
    }
}

fn millis(duration: std::time::Duration) -> u128 {
    duration.as_millis()
}

pub(super) fn settings(ctx: &BrokerCtx) -> Vec<BrokerSetting> {
    use ConfigType::{Boolean, Int, Long, String};
    let c = &ctx.config;
    let listeners = c
        .security
        .listeners
        .iter()
        .map(|l| format!("{}://{}", l.protocol, l.bind))
        .collect::<Vec<_>>()
        .join(",");
    let advertised = ctx
        .registration
        .endpoints
        .iter()
        .map(|e| format!("{}://{}:{}", e.listener, e.host, e.port))
        .collect::<Vec<_>>()
        .join(",");
    let metadata = match &c.metadata {
        MetadataUrl::Local => "local".to_string(),
        MetadataUrl::Etcd(etcd) => format!("etcd://{}{}", etcd.endpoints.join(","), etcd.prefix),
    };
    let mut settings = vec![
        setting("broker.id", ctx.broker_id, Int, "--broker-id"),
        BrokerSetting {
            value: c.rack.clone(),
            ..setting("broker.rack", "", String, "--rack")
        },
        setting("listeners", listeners, String, "--listeners (or --listen)"),
        setting(
            "advertised.listeners",
            advertised,
            String,
            "--advertised-listeners (or --advertised-address)",
        ),
        setting(
            "auto.create.topics.enable",
            c.auto_create_topics,
            Boolean,
            "--auto-create-topics",
        ),
        setting(
            "num.partitions",
            c.default_partitions,
            Int,
            "--default-partitions",
        ),
        setting(
            "default.replication.factor",
            1,
            Int,
            "fixed: durability comes from the object store",
        ),
        setting(
            "socket.request.max.bytes",
            c.max_request_bytes,
            Long,
            "--max-request-bytes",
        ),
        setting(
            "max.connections",
            c.max_connections,
            Int,
            "--max-connections",
        ),
        setting(
            "group.min.session.timeout.ms",
            millis(c.group_limits.min_session_timeout),
            Int,
            "--group-min-session-timeout-ms",
        ),
        setting(
            "group.max.session.timeout.ms",
            millis(c.group_limits.max_session_timeout),
            Int,
            "--group-max-session-timeout-ms",
        ),
        setting(
            "group.initial.rebalance.delay.ms",
            millis(c.group_limits.initial_rebalance_delay),
            Int,
            "--group-initial-rebalance-delay-ms",
        ),
        setting(
            "group.max.size",
            c.group_limits.max_members,
            Int,
            "--group-max-size",
        ),
        setting(
            "producer.id.expiration.ms",
            millis(c.producer_id_expiration),
            Int,
            "--producer-id-expiration-ms",
        ),
        setting(
            "log.retention.check.interval.ms",
            millis(c.retention_check_interval),
            Long,
            "--retention-check-interval-ms",
        ),
        setting("strato.metadata", metadata, String, "--metadata"),
        setting(
            "strato.object.store",
            &c.object_store_url,
            String,
            "--object-store",
        ),
        setting(
            "strato.flush.interval.ms",
            millis(c.flush_interval),
            Long,
            "--flush-interval-ms",
        ),
        setting("strato.flush.bytes", c.flush_bytes, Long, "--flush-bytes"),
        setting(
            "strato.max.unflushed.bytes",
            c.max_unflushed_bytes,
            Long,
            "--max-unflushed-bytes",
        ),
        setting(
            "strato.max.queued.request.bytes",
            c.max_queued_request_bytes,
            Long,
            "--max-queued-request-bytes",
        ),
        setting(
            "strato.max.inflight.requests",
            c.max_inflight_requests,
            Int,
            "--max-inflight-requests",
        ),
        setting(
            "strato.max.fetch.bytes",
            c.max_fetch_bytes,
            Long,
            "--max-fetch-bytes",
        ),
        setting(
            "strato.cache.memory.bytes",
            c.cache_memory_bytes,
            Long,
            "--cache-memory-bytes",
        ),
        setting(
            "strato.cache.disk.bytes",
            c.cache_disk_bytes,
            Long,
            "--cache-disk-bytes",
        ),
        setting(
            "strato.compaction.interval.ms",
            millis(c.compaction_interval),
            Long,
            "--compaction-interval-ms",
        ),
        setting(
            "strato.compaction.target.bytes",
            c.compaction_target_bytes,
            Long,
            "--compaction-target-bytes",
        ),
        setting(
            "strato.gc.interval.ms",
            millis(c.gc_interval),
            Long,
            "--gc-interval-ms",
        ),
        setting(
            "strato.gc.grace.ms",
            millis(c.gc_grace),
            Long,
            "--gc-grace-ms",
        ),
    ];
    // The defaults of topic configs, under their broker names (`log.retention.ms`,
    // `compression.type`, ...), described as the topic configs they are the defaults of.
    settings.extend(
        topic_config::all()
            .filter(|def| !def.broker_name.is_empty())
            .map(|def| BrokerSetting {
                fixed_default: true,
                ..setting(def.broker_name, def.default, def.kind, def.doc)
            }),
    );
    settings
}
