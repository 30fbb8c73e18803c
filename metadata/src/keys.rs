//! Key layout of the metadata store (see docs/DESIGN.md "Metadata").

use uuid::Uuid;

pub const BROKERS_PREFIX: &str = "brokers/";
pub const TOPICS_PREFIX: &str = "topics/";
pub const PRODUCERS_NEXT_ID: &str = "producers/next_id";
pub const CLUSTER_ID: &str = "cluster/id";
/// The next broker id to generate for a broker started without `--broker-id`.
pub const BROKERS_NEXT_ID: &str = "cluster/next_broker_id";
pub const GROUPS_PREFIX: &str = "groups/";

/// A group id as one key segment: bytes outside `[A-Za-z0-9._-]` are written `%XX`, so a
/// group named `a/offsets` cannot collide with the keys of group `a`, and key order is still
/// a total order over groups.
pub fn encode_group_id(group_id: &str) -> String {
    let mut out = String::with_capacity(group_id.len());
    for byte in group_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The inverse of [`encode_group_id`]; `None` for a segment it could not have produced.
pub fn decode_group_id(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        if bytes[idx] == b'%' {
            let hex = segment.get(idx + 1..idx + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            idx += 3;
        } else {
            out.push(bytes[idx]);
            idx += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `groups/<group>/`: everything stored for one consumer group.
pub fn group_prefix(group_id: &str) -> String {
    format!("{GROUPS_PREFIX}{}/", encode_group_id(group_id))
}

/// `groups/<group>/offsets/`: the group's committed offsets.
pub fn group_offsets_prefix(group_id: &str) -> String {
    format!("{}offsets/", group_prefix(group_id))
}

/// `groups/<group>/offsets/<topic>/`: committed offsets of one topic. Topic names are
/// restricted to `[A-Za-z0-9._-]`, so they need no escaping.
pub fn group_topic_offsets_prefix(group_id: &str, topic: &str) -> String {
    format!("{}{topic}/", group_offsets_prefix(group_id))
}

/// `groups/<group>/offsets/<topic>/<p>`: one committed offset.
pub fn group_offset(group_id: &str, topic: &str, partition: i32) -> String {
    format!("{}{topic}/{partition}", group_offsets_prefix(group_id))
}

/// `group-ids/<group>`: one key per group that has stored anything, so listing groups reads
/// one small key per group instead of every committed offset.
pub const GROUP_IDS_PREFIX: &str = "group-ids/";

pub fn group_id_marker(group_id: &str) -> String {
    format!("{GROUP_IDS_PREFIX}{}", encode_group_id(group_id))
}

/// `acls/`: one key per ACL binding.
pub const ACLS_PREFIX: &str = "acls/";

/// `acls/<resource type>/<pattern type>/<name>/<principal>/<host>/<operation>/<permission>`:
/// the enums as Kafka's wire codes, the strings escaped as group ids are (so a `/` in a
/// resource name or a principal cannot shift the segments). Equal bindings share a key.
pub fn acl(
    resource_type: i8,
    pattern_type: i8,
    resource_name: &str,
    principal: &str,
    host: &str,
    operation: i8,
    permission_type: i8,
) -> String {
    format!(
        "{ACLS_PREFIX}{resource_type}/{pattern_type}/{}/{}/{}/{operation}/{permission_type}",
        encode_group_id(resource_name),
        encode_group_id(principal),
        encode_group_id(host),
    )
}

/// `users/<user>`: one key per user with SCRAM credentials.
pub const USERS_PREFIX: &str = "users/";

/// A user's key; the name is escaped into one segment as group ids are.
pub fn user(name: &str) -> String {
    format!("{USERS_PREFIX}{}", encode_group_id(name))
}

/// `txns/<transactional id>`: one key per transactional id (escaped like group ids).
pub const TXNS_PREFIX: &str = "txns/";

pub fn txn(transactional_id: &str) -> String {
    format!("{TXNS_PREFIX}{}", encode_group_id(transactional_id))
}

/// `txn-markers/<topic_id>/<p>/<producer id>`: markers waiting to be written by partition
/// leaders.
pub const TXN_MARKERS_PREFIX: &str = "txn-markers/";

pub fn txn_markers_of_partition(topic_id: Uuid, partition: i32) -> String {
    format!("{TXN_MARKERS_PREFIX}{topic_id}/{partition}/")
}

pub fn txn_marker(topic_id: Uuid, partition: i32, producer_id: i64) -> String {
    format!("{TXN_MARKERS_PREFIX}{topic_id}/{partition}/{producer_id}")
}

/// `partitions/<topic_id>/<p>/aborted/`: the partition's aborted transactions by the offset of
/// their abort marker (zero-padded: key order is offset order).
pub fn partition_aborted_prefix(topic_id: Uuid, partition: i32) -> String {
    format!("partitions/{topic_id}/{partition}/aborted/")
}

pub fn partition_aborted(topic_id: Uuid, partition: i32, last_offset: i64) -> String {
    format!("partitions/{topic_id}/{partition}/aborted/{last_offset:020}")
}

/// `groups/<group>/txn-offsets/<producer id>/<topic>/<p>`: offsets committed in an open
/// transaction (TxnOffsetCommit), made the group's committed offsets when it commits.
pub fn group_txn_offsets_prefix(group_id: &str) -> String {
    format!("{}txn-offsets/", group_prefix(group_id))
}

pub fn group_txn_offsets_of_producer(group_id: &str, producer_id: i64) -> String {
    format!("{}{producer_id}/", group_txn_offsets_prefix(group_id))
}

pub fn group_txn_offset(group_id: &str, producer_id: i64, topic: &str, partition: i32) -> String {
    format!(
        "{}{topic}/{partition}",
        group_txn_offsets_of_producer(group_id, producer_id)
    )
}

pub fn broker(id: i32) -> String {
    format!("{BROKERS_PREFIX}{id}")
}

pub fn topic(name: &str) -> String {
    format!("{TOPICS_PREFIX}{name}")
}

pub fn partition_prefix(topic_id: Uuid, partition: i32) -> String {
    format!("partitions/{topic_id}/{partition}/")
}

pub fn topic_partitions_prefix(topic_id: Uuid) -> String {
    format!("partitions/{topic_id}/")
}

pub fn partition_leader(topic_id: Uuid, partition: i32) -> String {
    format!("partitions/{topic_id}/{partition}/leader")
}

pub fn partition_state(topic_id: Uuid, partition: i32) -> String {
    format!("partitions/{topic_id}/{partition}/state")
}

/// The key cleaner's checkpoint of a compacted partition (`model::CleanerRecord`).
pub fn partition_cleaner(topic_id: Uuid, partition: i32) -> String {
    format!("partitions/{topic_id}/{partition}/cleaner")
}

pub fn partition_index_prefix(topic_id: Uuid, partition: i32) -> String {
    format!("partitions/{topic_id}/{partition}/index/")
}

/// Base offsets are zero-padded to 20 digits so that key order is offset order.
pub fn partition_index(topic_id: Uuid, partition: i32, base_offset: i64) -> String {
    format!("partitions/{topic_id}/{partition}/index/{base_offset:020}")
}

/// Everything the built-in schema registry stores (`strato::schema_registry`).
pub const SCHEMA_REGISTRY_PREFIX: &str = "schema-registry/";
/// The next schema id to allocate (`model::SchemaIdCounterRecord`), moved by compare-and-set.
pub const SCHEMA_REGISTRY_NEXT_ID: &str = "schema-registry/next-id";
/// The global compatibility level (`model::SchemaConfigRecord`).
pub const SCHEMA_REGISTRY_CONFIG: &str = "schema-registry/config";
/// The global mode (`model::SchemaModeRecord`).
pub const SCHEMA_REGISTRY_MODE: &str = "schema-registry/mode";
pub const SCHEMA_REGISTRY_IDS_PREFIX: &str = "schema-registry/ids/";
pub const SCHEMA_REGISTRY_FINGERPRINTS_PREFIX: &str = "schema-registry/fingerprints/";
pub const SCHEMA_REGISTRY_SUBJECTS_PREFIX: &str = "schema-registry/subjects/";

/// A schema by id (`model::SchemaRecord`); ids are zero-padded so key order is id order.
pub fn schema_by_id(id: u32) -> String {
    format!("{SCHEMA_REGISTRY_IDS_PREFIX}{id:010}")
}

/// The id of the schema whose identity hashes to `fingerprint` (hex), written once: the
/// compare-and-set on it makes concurrent registrations of one schema agree on one id.
pub fn schema_fingerprint(fingerprint: &str) -> String {
    format!("{SCHEMA_REGISTRY_FINGERPRINTS_PREFIX}{fingerprint}")
}

/// `schema-registry/subjects/<subject>/`: everything stored for one subject (escaped into
/// one key segment like a group id).
pub fn schema_subject_prefix(subject: &str) -> String {
    format!(
        "{SCHEMA_REGISTRY_SUBJECTS_PREFIX}{}/",
        encode_group_id(subject)
    )
}

/// One version of a subject (`model::SubjectVersionRecord`), zero-padded for key order.
pub fn schema_subject_version(subject: &str, version: u32) -> String {
    format!("{}versions/{version:010}", schema_subject_prefix(subject))
}

/// A subject's own compatibility level (`model::SchemaConfigRecord`).
pub fn schema_subject_config(subject: &str) -> String {
    format!("{}config", schema_subject_prefix(subject))
}

/// A subject's own mode (`model::SchemaModeRecord`).
pub fn schema_subject_mode(subject: &str) -> String {
    format!("{}mode", schema_subject_prefix(subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_sort_by_offset() {
        let id = Uuid::nil();
        let mut keys: Vec<String> = [10_i64, 9, 1_000_000, 0]
            .iter()
            .map(|o| partition_index(id, 0, *o))
            .collect();
        keys.sort();
        assert!(keys[0].ends_with("/00000000000000000000"));
        assert!(keys[3].ends_with("/00000000000001000000"));
        assert!(keys[1].ends_with("9"));
    }

    #[test]
    fn acl_keys_hold_every_part_in_its_own_segment() {
        assert_eq!(
            acl(2, 3, "orders", "User:alice", "*", 3, 3),
            "acls/2/3/orders/User%3Aalice/%2A/3/3"
        );
        // A slash in a name cannot make two bindings share a key.
        assert_ne!(
            acl(2, 3, "a/b", "User:c", "*", 3, 3),
            acl(2, 3, "a", "b/User:c", "*", 3, 3)
        );
        assert!(acl(3, 4, "g", "User:x", "::1", 8, 2).starts_with(ACLS_PREFIX));
    }

    #[test]
    fn group_ids_are_escaped_into_one_segment() {
        for id in ["plain-group_1.x", "a/offsets/t/0", "100%", "ünï cödé", ""] {
            let encoded = encode_group_id(id);
            assert!(!encoded.contains('/'), "{encoded}");
            assert_eq!(decode_group_id(&encoded).as_deref(), Some(id));
        }
        assert_eq!(encode_group_id("a/b"), "a%2Fb");
        assert!(!group_offsets_prefix("a/offsets").starts_with(&group_prefix("a")));
        assert_eq!(group_offset("g", "t", 3), "groups/g/offsets/t/3");
        assert_eq!(decode_group_id("%zz"), None);
        assert_eq!(decode_group_id("%4"), None);
    }

    #[test]
    fn schema_registry_keys_sort_and_escape_subjects() {
        assert_eq!(schema_by_id(7), "schema-registry/ids/0000000007");
        assert!(schema_by_id(9) < schema_by_id(10));
        assert!(schema_subject_version("s", 9) < schema_subject_version("s", 10));
        assert_eq!(
            schema_subject_version("a/b", 1),
            "schema-registry/subjects/a%2Fb/versions/0000000001"
        );
        assert!(!schema_subject_config("a/versions").starts_with(&schema_subject_prefix("a")));
    }
}
