//! Per-API request metrics: requests, how long they took (admission to response ready,
//! so a Fetch long poll counts its wait, as Kafka's `TotalTimeMs` does), error codes in
//! responses, and the record bytes Produce requests bring and Fetch responses carry.
//!
//! Labels stay bounded: one series set per API of [`protocol::SUPPORTED_APIS`] and per
//! Kafka error code (a fixed table; codes outside it share one slot).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use strato_metrics::{Histogram, HistogramSnapshot};

use crate::protocol;

/// Highest Kafka error code with a slot of its own (ShareSessionLimitReached, Kafka 4.1);
/// codes above it, or below -1, count as `OTHER`.
const ERROR_CODE_MAX: i16 = 133;
/// Slots: -1 (UNKNOWN_SERVER_ERROR) and 1..=ERROR_CODE_MAX by `code + 1` (0 is "no error"
/// and unused), and one for every other code.
const ERROR_SLOTS: usize = ERROR_CODE_MAX as usize + 3;
const OTHER_SLOT: usize = ERROR_SLOTS - 1;

fn error_slot(code: i16) -> usize {
    match code {
        -1..=ERROR_CODE_MAX => (code + 1) as usize,
        _ => OTHER_SLOT,
    }
}

/// The Kafka name of the error code of `slot` (`NOT_LEADER_OR_FOLLOWER`), as Kafka's own
/// request metrics label it.
fn error_name(slot: usize) -> String {
    if slot == OTHER_SLOT {
        return "OTHER".to_string();
    }
    protocol::error_name(slot as i16 - 1)
}

#[derive(Debug)]
struct ApiMetrics {
    api_key: ApiKey,
    requests: AtomicU64,
    duration: Histogram,
    errors: Box<[AtomicU64]>,
}

/// One API's numbers at one moment.
#[derive(Debug, Clone)]
pub struct ApiSnapshot {
    /// The API's name as Kafka spells it (`Produce`, `JoinGroup`).
    pub api: String,
    pub requests: u64,
    pub duration: HistogramSnapshot,
    /// `(error name, responses or response parts carrying it)`, non-zero ones only.
    pub errors: Vec<(String, u64)>,
}

#[derive(Debug)]
pub struct RequestMetrics {
    /// In the order of [`protocol::SUPPORTED_APIS`].
    apis: Vec<ApiMetrics>,
    /// Frames that could not be decoded (unknown API, unsupported version, malformed): the
    /// connection was closed.
    rejected: AtomicU64,
    produce_bytes: AtomicU64,
    fetch_bytes: AtomicU64,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestMetrics {
    pub fn new() -> Self {
        Self {
            apis: protocol::SUPPORTED_APIS
                .iter()
                .map(|(api_key, _, _)| ApiMetrics {
                    api_key: *api_key,
                    requests: AtomicU64::new(0),
                    duration: Histogram::durations(),
                    errors: (0..ERROR_SLOTS).map(|_| AtomicU64::new(0)).collect(),
                })
                .collect(),
            rejected: AtomicU64::new(0),
            produce_bytes: AtomicU64::new(0),
            fetch_bytes: AtomicU64::new(0),
        }
    }

    fn api(&self, api_key: ApiKey) -> Option<&ApiMetrics> {
        // 23 entries: a scan costs less than hashing.
        self.apis.iter().find(|a| a.api_key == api_key)
    }

    /// A decoded request was admitted.
    pub fn request(&self, api_key: ApiKey, body: &RequestKind) {
        if let Some(api) = self.api(api_key) {
            api.requests.fetch_add(1, Ordering::Relaxed);
        }
        if let RequestKind::Produce(req) = body {
            let bytes: usize = req
                .topic_data
                .iter()
                .flat_map(|t| &t.partition_data)
                .filter_map(|p| p.records.as_ref().map(|r| r.len()))
                .sum();
            self.produce_bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// A frame could not be decoded.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A request's response is ready (`None`: acks=0 Produce, no response) after `elapsed`.
    /// Calls `on_error` with each non-zero error code it carries.
    pub fn response(
        &self,
        api_key: ApiKey,
        body: Option<&ResponseKind>,
        elapsed: Duration,
        mut on_error: impl FnMut(i16),
    ) {
        let Some(api) = self.api(api_key) else { return };
        api.duration.observe_duration(elapsed);
        let Some(body) = body else { return };
        error_codes(body, &mut |code| {
            if code != 0 {
                api.errors[error_slot(code)].fetch_add(1, Ordering::Relaxed);
                on_error(code);
            }
        });
        if let ResponseKind::Fetch(res) = body {
            let bytes: usize = res
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .filter_map(|p| p.records.as_ref().map(|r| r.len()))
                .sum();
            self.fetch_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> Vec<ApiSnapshot> {
        self.apis
            .iter()
            .map(|api| ApiSnapshot {
                api: format!("{:?}", api.api_key),
                requests: api.requests.load(Ordering::Relaxed),
                duration: api.duration.snapshot(),
                errors: api
                    .errors
                    .iter()
                    .enumerate()
                    .filter_map(|(slot, n)| {
                        let n = n.load(Ordering::Relaxed);
                        (n > 0).then(|| (error_name(slot), n))
                    })
                    .collect(),
            })
            .collect()
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Record bytes received in Produce requests.
    pub fn produce_bytes(&self) -> u64 {
        self.produce_bytes.load(Ordering::Relaxed)
    }

    /// Record bytes sent in Fetch responses.
    pub fn fetch_bytes(&self) -> u64 {
        self.fetch_bytes.load(Ordering::Relaxed)
    }
}

/// Every error code a response carries, at the top and per topic, partition or group, as
/// Kafka's own `errorCounts` counts them (a Produce response with three failed partitions
/// counts three).
fn error_codes(body: &ResponseKind, f: &mut impl FnMut(i16)) {
    match body {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| f(p.error_code)),
        ResponseKind::Fetch(r) => {
            f(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| f(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        ResponseKind::Metadata(r) => {
            for t in &r.topics {
                f(t.error_code);
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::ApiVersions(r) => f(r.error_code),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| f(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| f(t.error_code)),
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        ResponseKind::InitProducerId(r) => f(r.error_code),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|c| f(c.error_code)),
        ResponseKind::DescribeCluster(r) => f(r.error_code),
        ResponseKind::OffsetForLeaderEpoch(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        ResponseKind::FindCoordinator(r) => {
            f(r.error_code);
            r.coordinators.iter().for_each(|c| f(c.error_code));
        }
        ResponseKind::JoinGroup(r) => f(r.error_code),
        ResponseKind::SyncGroup(r) => f(r.error_code),
        ResponseKind::Heartbeat(r) => f(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            f(r.error_code);
            r.members.iter().for_each(|m| f(m.error_code));
        }
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            f(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| f(p.error_code));
            for g in &r.groups {
                f(g.error_code);
                g.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::OffsetDelete(r) => {
            f(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| f(p.error_code));
        }
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| f(g.error_code)),
        ResponseKind::ListGroups(r) => f(r.error_code),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| f(g.error_code)),
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| f(t.error_code)),
        ResponseKind::AlterConfigs(r) => r.responses.iter().for_each(|c| f(c.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().for_each(|c| f(c.error_code));
        }
        ResponseKind::DescribeLogDirs(r) => {
            f(r.error_code);
            r.results.iter().for_each(|d| f(d.error_code));
        }
        ResponseKind::ElectLeaders(r) => {
            f(r.error_code);
            r.replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .for_each(|p| f(p.error_code));
        }
        ResponseKind::DescribeProducers(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        ResponseKind::CreateAcls(r) => r.results.iter().for_each(|c| f(c.error_code)),
        ResponseKind::DescribeAcls(r) => f(r.error_code),
        ResponseKind::DeleteAcls(r) => r.filter_results.iter().for_each(|d| f(d.error_code)),
        // Nothing else is served (`protocol::SUPPORTED_APIS`).
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{HeartbeatResponse, ProduceResponse};

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(error_slot(6)), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(error_slot(-1)), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(error_slot(3)), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(
            error_name(error_slot(ERROR_CODE_MAX)),
            "SHARE_SESSION_LIMIT_REACHED"
        );
        assert_eq!(error_slot(ERROR_CODE_MAX + 1), OTHER_SLOT);
        assert_eq!(error_slot(-2), OTHER_SLOT);
        assert_eq!(error_name(OTHER_SLOT), "OTHER");
    }

    #[test]
    fn every_supported_api_has_a_series_set() {
        let m = RequestMetrics::new();
        let names: Vec<String> = m.snapshot().into_iter().map(|s| s.api).collect();
        assert_eq!(names.len(), protocol::SUPPORTED_APIS.len());
        assert!(names.contains(&"Produce".to_string()));
        assert!(names.contains(&"OffsetForLeaderEpoch".to_string()));
    }

    /// Goal: partition-level error codes count once per partition, "no error" not at all,
    /// and the duration histogram gets one observation per response.
    #[test]
    fn response_error_codes_are_counted_per_occurrence() {
        let m = RequestMetrics::new();
        let partition = |code| PartitionProduceResponse::default().with_error_code(code);
        let produce = ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default().with_partition_responses(vec![
                partition(0),
                partition(3),
                partition(3),
            ]),
        ]);
        let mut seen = Vec::new();
        m.response(
            ApiKey::Produce,
            Some(&ResponseKind::Produce(produce)),
            Duration::from_millis(2),
            |code| seen.push(code),
        );
        m.response(
            ApiKey::Heartbeat,
            Some(&ResponseKind::Heartbeat(
                HeartbeatResponse::default().with_error_code(27),
            )),
            Duration::from_micros(50),
            |code| seen.push(code),
        );
        assert_eq!(seen, vec![3, 3, 27]);
        let snap = m.snapshot();
        let produce = snap.iter().find(|s| s.api == "Produce").unwrap();
        assert_eq!(
            produce.errors,
            vec![("UNKNOWN_TOPIC_OR_PARTITION".to_string(), 2)]
        );
        assert_eq!(produce.duration.count, 1);
        let heartbeat = snap.iter().find(|s| s.api == "Heartbeat").unwrap();
        assert_eq!(
            heartbeat.errors,
            vec![("REBALANCE_IN_PROGRESS".to_string(), 1)]
        );
    }
}
