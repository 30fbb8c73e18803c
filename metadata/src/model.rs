//! Plain shared types and the persisted record formats of the metadata store.
//!
//! Every persisted record is a deliberate on-store format: JSON with a `v` field that names
//! its format version. Changing a field means a new version and a decoder for the old one.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::MetadataError;

/// Format version written into every record.
pub const RECORD_FORMAT_V1: u32 = 1;

/// A Kafka offset (position of a record in a partition).
pub type Offset = i64;

/// A topic partition addressed by topic id (names can be reused after deletion, ids cannot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic_id: Uuid,
    pub partition: i32,
}

fn encode<T: Serialize>(record: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(record).expect("metadata records always serialize"))
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, value: &[u8]) -> Result<T, MetadataError> {
    serde_json::from_slice(value).map_err(|err| MetadataError::Corrupt {
        key: key.to_string(),
        reason: err.to_string(),
    })
}

macro_rules! record_codec {
    ($t:ty) => {
        impl $t {
            pub fn encode(&self) -> Bytes {
                encode(self)
            }

            /// Decodes the record stored at `key` (the key is only used in the error).
            pub fn decode(key: &str, value: &[u8]) -> Result<Self, MetadataError> {
                let record: Self = decode(key, value)?;
                if record.v != RECORD_FORMAT_V1 {
                    return Err(MetadataError::Corrupt {
                        key: key.to_string(),
                        reason: format!("unknown record format version {}", record.v),
                    });
                }
                Ok(record)
            }
        }
    };
}

/// `topics/<name>`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub v: u32,
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (`retention.ms`, ...). Absent keys use broker defaults.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    pub created_at_ms: i64,
}
record_codec!(TopicRecord);

/// `brokers/<id>`, bound to the broker's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    pub v: u32,
    pub broker_id: i32,
    /// The address of the broker's first listener.
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub rack: Option<String>,
    /// Every listener's advertised address. Absent in records written before listeners
    /// existed: such a broker has one PLAINTEXT listener at `host:port`.
    #[serde(default)]
    pub endpoints: Vec<BrokerEndpoint>,
    /// Port of the broker's HTTP listener (the console; reached at `host`). Absent in records
    /// of brokers from before the console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    /// Where the broker is in its life; absent once it serves (and in records of brokers
    /// from before this field: they served as soon as they registered). Only serving
    /// brokers are given partitions and groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BrokerState>,
}
record_codec!(BrokerRecord);

impl BrokerRecord {
    /// Whether partitions and groups may be given to this broker.
    pub fn serving(&self) -> bool {
        self.state.is_none()
    }
}

/// A broker that registered but does not serve (yet, or any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    /// Still starting: listed, but owns nothing until it is ready.
    Starting,
    /// Shutting down: hands what it owns over to the serving brokers, then leaves.
    Draining,
}

/// One listener of a broker, as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// The listener's name: its security protocol (`PLAINTEXT`, `SASL_SSL`, ...).
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// The listener name of a broker record without endpoints.
const LEGACY_LISTENER: &str = "PLAINTEXT";

impl BrokerRecord {
    /// The advertised address of `listener`, if the broker has that listener.
    pub fn endpoint(&self, listener: &str) -> Option<(&str, u16)> {
        if self.endpoints.is_empty() {
            return (listener == LEGACY_LISTENER).then_some((self.host.as_str(), self.port));
        }
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .map(|e| (e.host.as_str(), e.port))
    }
}

/// `partitions/<topic_id>/<p>/leader`, bound to the leader's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub v: u32,
    pub broker_id: i32,
    pub leader_epoch: i32,
}
record_codec!(LeaderRecord);

/// One batch of an idempotent producer remembered for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatchRecord {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: Offset,
    pub last_offset: Offset,
}

/// Idempotent producer state of one producer id on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerRecord {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The last batches written (oldest first), at most 5 as in Kafka.
    pub batches: Vec<ProducerBatchRecord>,
    pub last_write_ms: i64,
    /// The first offset of the producer's open transaction in this partition (its first
    /// transactional batch since the last marker); the last stable offset is the lowest of
    /// these. Absent when no transaction is open (and in records from before transactions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_first_offset: Option<Offset>,
}

/// `partitions/<topic_id>/<p>/state`: what a partition's leader commits with every flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStateRecord {
    pub v: u32,
    /// One past the last committed offset: everything below is durable and visible.
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    /// Epoch of the leader that wrote this state.
    pub leader_epoch: i32,
    #[serde(default)]
    pub producers: Vec<ProducerRecord>,
    /// Leader epochs and the offset each started at, oldest first (bounded; for
    /// OffsetForLeaderEpoch, which clients use to detect log truncation).
    #[serde(default)]
    pub epochs: Vec<LeaderEpochRecord>,
}
record_codec!(PartitionStateRecord);

/// The first offset written under a leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderEpochRecord {
    pub epoch: i32,
    pub start_offset: Offset,
}

impl PartitionStateRecord {
    pub fn empty() -> Self {
        Self {
            v: RECORD_FORMAT_V1,
            high_watermark: 0,
            log_start_offset: 0,
            leader_epoch: 0,
            producers: Vec::new(),
            epochs: Vec::new(),
        }
    }
}

/// `partitions/<topic_id>/<p>/index/<base_offset>`: where a chunk of the partition's log lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub v: u32,
    /// Object key of the segment, relative to the object store's root.
    pub object: String,
    /// Byte range of the chunk inside the object.
    pub byte_offset: u64,
    pub byte_length: u64,
    pub uncompressed_length: u64,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp: i64,
    pub record_count: u64,
    /// Bytes of the seek table at the end of the chunk, 0 for a chunk of one zstd frame. A
    /// chunk with a seek table (compaction writes them) is several zstd frames of whole
    /// batches, so a reader can fetch and cache one frame instead of the whole chunk.
    /// Absent in entries written before seek tables existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seek_table_length: u64,
    /// The chunk is the batches themselves, not zstd (producer-compressed batches are
    /// stored as they came). Absent (false) in entries of zstd chunks.
    #[serde(default, skip_serializing_if = "is_false")]
    pub raw: bool,
}
record_codec!(IndexEntry);

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `producers/next_id`: the next producer id not yet handed out in a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlockRecord {
    pub v: u32,
    pub next_id: i64,
}
record_codec!(ProducerIdBlockRecord);

/// `cluster/next_broker_id`: the next generated broker id. Generated ids are never reused:
/// a client that knew an id at one address must not meet it again at another (librdkafka's
/// group coordinator handling was seen to stall on that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerIdCounterRecord {
    pub v: u32,
    pub next_id: i32,
}
record_codec!(BrokerIdCounterRecord);

/// `cluster/id`: the cluster id reported to clients, created once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub v: u32,
    pub cluster_id: String,
}
record_codec!(ClusterRecord);

/// `users/<user>`: a user's SCRAM credentials, by mechanism name (`SCRAM-SHA-256`,
/// `SCRAM-SHA-512`). Only what lets the broker check a proof is stored (RFC 5802's
/// StoredKey and ServerKey), never a password or a salted password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub v: u32,
    pub name: String,
    pub scram: BTreeMap<String, ScramCredentialRecord>,
}
record_codec!(UserRecord);

/// One SCRAM credential of a user; byte strings are hex.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentialRecord {
    #[serde(with = "hex_bytes")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "hex_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentialRecord")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Byte strings as lowercase hex in JSON records.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        for byte in bytes {
            text.push_str(&format!("{byte:02x}"));
        }
        serializer.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom("odd number of hex digits"));
        }
        (0..text.len())
            .step_by(2)
            .map(|idx| {
                text.get(idx..idx + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom("not hex"))
            })
            .collect()
    }
}

/// `groups/<group>/offsets/<topic>/<p>`: a consumer group's committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffsetRecord {
    pub v: u32,
    pub offset: Offset,
    /// Leader epoch of the record the offset points after (-1: unknown), for truncation checks.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}
record_codec!(CommittedOffsetRecord);

/// `group-ids/<group>`: marks that a group has stored state (its offsets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupIdRecord {
    pub v: u32,
    pub group_id: String,
    pub created_at_ms: i64,
    /// The protocol type of the group's members ("consumer"), kept for ListGroups and
    /// DescribeGroups once the group is empty, as Kafka does.
    #[serde(default)]
    pub protocol_type: Option<String>,
}
record_codec!(GroupIdRecord);

/// Kafka's transaction states (`TransactionState`), with Kafka's names (DescribeTransactions
/// and ListTransactions show them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
}

impl TxnState {
    pub const ALL: [TxnState; 7] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One partition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxnPartitionRecord {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// `txns/<transactional id>`: a transactional producer's state, written by its transaction
/// coordinator (the broker that owns the id by rendezvous hashing) with compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    pub v: u32,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The producer id and epoch before the last bump (-1 when none): a producer retrying
    /// InitProducerId after a lost answer is recognised (KIP-360).
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the open (or completing) transaction.
    #[serde(default)]
    pub partitions: Vec<TxnPartitionRecord>,
    /// Consumer groups whose offsets the transaction commits (AddOffsetsToTxn).
    #[serde(default)]
    pub groups: Vec<String>,
    /// When the open transaction started (-1 when none).
    pub start_ms: i64,
    pub last_update_ms: i64,
}
record_codec!(TxnRecord);

/// `txn-markers/<topic_id>/<p>/<producer id>`: a request to the partition's leader to write a
/// transaction marker (a control batch). The coordinator writes it with the transaction's
/// PrepareCommit/PrepareAbort state; the leader deletes it in the same metadata transaction
/// that commits the marker, so a marker is written exactly once, whoever leads meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMarkerRecord {
    pub v: u32,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Commit (true) or abort (false).
    pub commit: bool,
    /// Kafka's coordinator epoch, written into the marker.
    pub coordinator_epoch: i32,
}
record_codec!(TxnMarkerRecord);

/// `partitions/<topic_id>/<p>/aborted/<last_offset>`: an aborted transaction of the partition,
/// from its first batch to its abort marker; read_committed fetches list the ones they
/// overlap so that clients drop their records. Deleted when retention passes `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxnRecord {
    pub v: u32,
    pub producer_id: i64,
    pub first_offset: Offset,
    /// The offset of the abort marker.
    pub last_offset: Offset,
    /// The partition's last stable offset right after the marker (Kafka's
    /// `AbortedTxn.lastStableOffset`): no transaction aborted later started below it, so a
    /// reader collecting the aborted transactions overlapping a range stops at the first
    /// one whose value reaches the range's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stable_offset: Option<Offset>,
}
record_codec!(AbortedTxnRecord);

/// `partitions/<topic_id>/<p>/cleaner`: the key cleaner's checkpoint of a compacted
/// partition, written by its leader (fenced like a commit) when a cleaning pass completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanerRecord {
    pub v: u32,
    /// Below it the log holds at most one record per key (Kafka's cleaner checkpoint, the
    /// first dirty offset).
    pub clean_end: Offset,
    /// When offsets became clean: each entry says the offsets below `offset` (and at or above
    /// the previous entry's) were clean from `at_ms` on. A tombstone goes
    /// `delete.retention.ms` after that. Bounded; merging entries only makes a time later.
    pub passes: Vec<CleanedRange>,
}
record_codec!(CleanerRecord);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanedRange {
    pub offset: Offset,
    pub at_ms: i64,
}

/// `acls/<resource type>/<pattern type>/<name>/<principal>/<host>/<operation>/<permission>`:
/// one ACL binding, with Kafka's wire codes for the enums. The key holds every part, so
/// storing the same binding twice writes one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRecord {
    pub v: u32,
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}
record_codec!(AclRecord);

impl AclRecord {
    /// The key this record is stored at.
    pub fn key(&self) -> String {
        crate::keys::acl(
            self.resource_type,
            self.pattern_type,
            &self.resource_name,
            &self.principal,
            &self.host,
            self.operation,
            self.permission_type,
        )
    }
}

/// `schema-registry/next-id`: the next schema id to hand out (ids start at 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaIdCounterRecord {
    pub v: u32,
    pub next_id: u32,
}
record_codec!(SchemaIdCounterRecord);

/// A schema reference: the named type `name` is the schema registered as `subject`/`version`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SchemaReferenceRecord {
    pub name: String,
    pub subject: String,
    pub version: u32,
}

/// `schema-registry/ids/<id>`: a schema, written once with its id and never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    pub v: u32,
    pub id: u32,
    /// `AVRO`, `JSON` or `PROTOBUF` (the registry's `schemaType`).
    pub schema_type: String,
    /// The schema text as the registry returns it.
    pub schema: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReferenceRecord>,
}
record_codec!(SchemaRecord);

/// `schema-registry/fingerprints/<hash>`: the id of the schema with this identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaFingerprintRecord {
    pub v: u32,
    pub id: u32,
}
record_codec!(SchemaFingerprintRecord);

/// `schema-registry/subjects/<subject>/versions/<version>`: one version of a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectVersionRecord {
    pub v: u32,
    pub subject: String,
    pub version: u32,
    pub id: u32,
    /// Soft-deleted: hidden unless asked for with `deleted=true`, kept until deleted
    /// permanently.
    #[serde(default)]
    pub deleted: bool,
}
record_codec!(SubjectVersionRecord);

/// `schema-registry/config` and `schema-registry/subjects/<subject>/config`: a
/// compatibility level (`BACKWARD`, `FULL_TRANSITIVE`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaConfigRecord {
    pub v: u32,
    pub compatibility: String,
}
record_codec!(SchemaConfigRecord);

/// `schema-registry/mode` and `schema-registry/subjects/<subject>/mode`: `READWRITE`,
/// `READONLY` or `IMPORT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaModeRecord {
    pub v: u32,
    pub mode: String,
}
record_codec!(SchemaModeRecord);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_records_keep_bytes_as_hex() {
        let record = UserRecord {
            v: RECORD_FORMAT_V1,
            name: "alice".into(),
            scram: BTreeMap::from([(
                "SCRAM-SHA-256".to_string(),
                ScramCredentialRecord {
                    salt: vec![0, 1, 0xfe],
                    iterations: 4096,
                    stored_key: vec![0xab],
                    server_key: vec![],
                },
            )]),
        };
        let encoded = record.encode();
        let text = std::str::from_utf8(&encoded).unwrap();
        assert!(text.contains(r#""salt":"0001fe""#), "{text}");
        assert_eq!(UserRecord::decode("k", &encoded).unwrap(), record);
        let bad = text.replace("0001fe", "0001f");
        assert!(UserRecord::decode("k", bad.as_bytes()).is_err());
        let bad = text.replace("0001fe", "0001zz");
        assert!(UserRecord::decode("k", bad.as_bytes()).is_err());
        assert!(!format!("{record:?}").contains("ab"), "no key in Debug");
    }

    #[test]
    fn broker_endpoints_by_listener() {
        let mut record = BrokerRecord {
            v: RECORD_FORMAT_V1,
            broker_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
            endpoints: Vec::new(),
            http_port: None,
            state: None,
        };
        // A record written before listeners existed: PLAINTEXT at host:port only.
        let old = br#"{"v":1,"broker_id":1,"host":"h","port":9092}"#;
        assert_eq!(BrokerRecord::decode("k", old).unwrap(), record);
        assert!(
            record.serving(),
            "brokers from before states served at once"
        );
        let draining = BrokerRecord {
            state: Some(BrokerState::Draining),
            ..record.clone()
        };
        let text = String::from_utf8(draining.encode().to_vec()).unwrap();
        assert!(text.contains(r#""state":"draining""#), "{text}");
        assert_eq!(
            BrokerRecord::decode("k", text.as_bytes()).unwrap(),
            draining
        );
        assert!(!draining.serving());
        assert_eq!(record.endpoint("PLAINTEXT"), Some(("h", 9092)));
        assert_eq!(record.endpoint("SASL_SSL"), None);
        record.endpoints = vec![BrokerEndpoint {
            listener: "SASL_SSL".into(),
            host: "b1.example.com".into(),
            port: 9093,
        }];
        assert_eq!(record.endpoint("SASL_SSL"), Some(("b1.example.com", 9093)));
        assert_eq!(record.endpoint("PLAINTEXT"), None);
    }

    #[test]
    fn records_round_trip_and_reject_unknown_versions() {
        let entry = IndexEntry {
            v: RECORD_FORMAT_V1,
            object: "segments/ab/x.seg".into(),
            byte_offset: 8,
            byte_length: 100,
            uncompressed_length: 300,
            base_offset: 10,
            last_offset: 19,
            max_timestamp: 1_700_000_000_000,
            record_count: 10,
            seek_table_length: 0,
            raw: false,
        };
        let bytes = entry.encode();
        assert_eq!(IndexEntry::decode("k", &bytes).unwrap(), entry);
        assert!(
            !String::from_utf8_lossy(&bytes).contains("raw"),
            "a zstd entry is written as before raw chunks existed"
        );
        let raw = IndexEntry {
            raw: true,
            ..entry.clone()
        };
        assert_eq!(IndexEntry::decode("k", &raw.encode()).unwrap(), raw);

        let mut future = entry.clone();
        future.v = 99;
        assert!(matches!(
            IndexEntry::decode("k", &future.encode()),
            Err(MetadataError::Corrupt { .. })
        ));
        assert!(IndexEntry::decode("k", b"not json").is_err());
    }
}
