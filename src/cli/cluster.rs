//! The cluster as the CLI sees it: a bootstrap [`Connection`] plus one connection per
//! broker node id. Metadata gives the brokers and partition leaders, FindCoordinator the
//! coordinator of a group; requests are routed to them, with bounded retries while a
//! coordinator moves.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, FindCoordinatorRequest, ListOffsetsRequest,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::kafka_client::transport::host_port;
use super::kafka_client::{ClientError, ClientOptions, ClientRequest, Connection, ErrorCode};

/// FindCoordinator key types (Kafka `CoordinatorType`).
pub const KEY_TYPE_GROUP: i8 = 0;
pub const KEY_TYPE_TRANSACTION: i8 = 1;

/// Attempts of a coordinator-routed request while the coordinator moves or loads.
const COORDINATOR_ATTEMPTS_MAX: u32 = 5;
const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// ListOffsets `replica_id` of an ordinary consumer.
const CONSUMER_REPLICA_ID: i32 = -1;

/// A partition by topic name, as the group APIs address it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose record timestamp is at least this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    /// The ListOffsets `timestamp` field (Kafka: -2 earliest, -1 latest).
    fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// A topic's partitions as Metadata reports them: partition -> leader node id (or the
/// partition's error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicLayout {
    pub leaders: BTreeMap<i32, Result<i32, ErrorCode>>,
}

/// A bootstrap connection plus one connection per broker node.
#[derive(Debug)]
pub struct Client {
    options: ClientOptions,
    bootstrap: Connection,
    /// Node id -> host:port, from Metadata and FindCoordinator.
    brokers: BTreeMap<i32, String>,
    nodes: BTreeMap<i32, Connection>,
    /// Group -> coordinator node id.
    /// Coordinators by (FindCoordinator key type, key).
    coordinators: BTreeMap<(i8, String), i32>,
}

impl Client {
    /// Connects to `bootstrap` and learns the brokers of the cluster.
    pub async fn connect(bootstrap: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let bootstrap = Connection::connect(bootstrap, options.clone()).await?;
        let mut client = Self {
            options,
            bootstrap,
            brokers: BTreeMap::new(),
            nodes: BTreeMap::new(),
            coordinators: BTreeMap::new(),
        };
        client.metadata(Some(&[])).await?;
        Ok(client)
    }

    /// Node ids of the brokers in the last Metadata response.
    pub fn node_ids(&self) -> Vec<i32> {
        self.brokers.keys().copied().collect()
    }

    /// Node ids of the live brokers, for requests every broker must answer (ListGroups,
    /// ListTransactions). DescribeCluster lists only live brokers, where Metadata may still
    /// list one that just left (Strato does for a while, for librdkafka's sake); a broker
    /// without DescribeCluster (Kafka before 2.8) gets the Metadata list.
    pub async fn live_node_ids(&mut self) -> Result<Vec<i32>, ClientError> {
        self.metadata(Some(&[])).await?;
        if self.bootstrap.version::<DescribeClusterRequest>().is_err() {
            return Ok(self.node_ids());
        }
        let response = self
            .bootstrap
            .send(|_| DescribeClusterRequest::default())
            .await?;
        if response.error_code != 0 {
            return Err(ClientError::Kafka {
                addr: self.bootstrap.addr().to_string(),
                api: ApiKey::DescribeCluster,
                code: ErrorCode(response.error_code),
            });
        }
        Ok(response
            .brokers
            .iter()
            .map(|broker| broker.broker_id.0)
            .filter(|id| self.brokers.contains_key(id))
            .collect())
    }

    /// host:port of broker `node_id`, as the last Metadata response gave it.
    pub fn broker_addr(&self, node_id: i32) -> Option<&str> {
        self.brokers.get(&node_id).map(String::as_str)
    }

    /// The connection to the bootstrap broker, for requests any broker answers (topic
    /// administration).
    pub fn bootstrap(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// The request timeout of this client's connections.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    pub fn request_timeout(&self) -> Duration {
        self.options.request_timeout
    }

    /// Metadata for `topics` (`None`: every topic), without creating missing topics.
    /// Remembers the broker list.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, ClientError> {
        let response = self
            .bootstrap
            .send(|version| {
                let mut request = MetadataRequest::default();
                request.topics = topics.map(|names| {
                    names
                        .iter()
                        .map(|name| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from(name.clone()))))
                        })
                        .collect()
                });
                // Describing a group must not create the topics it mentions (v4+).
                if version >= 4 {
                    request.allow_auto_topic_creation = false;
                }
                request
            })
            .await?;
        if response.error_code != 0 {
            return Err(ClientError::Kafka {
                addr: self.bootstrap.addr().to_string(),
                api: ApiKey::Metadata,
                code: ErrorCode(response.error_code),
            });
        }
        self.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, host_port(b.host.as_str(), b.port)))
            .collect();
        Ok(response)
    }

    /// Partition leaders of `topics`; a topic Metadata does not know maps to its error.
    pub async fn topic_layouts(
        &mut self,
        topics: &[String],
    ) -> Result<BTreeMap<String, Result<TopicLayout, ErrorCode>>, ClientError> {
        let response = self.metadata(Some(topics)).await?;
        let mut layouts = BTreeMap::new();
        for topic in response.topics {
            let Some(name) = topic.name else { continue };
            let layout = if topic.error_code != 0 {
                Err(ErrorCode(topic.error_code))
            } else {
                let leaders = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let leader = if p.error_code != 0 && p.leader_id.0 < 0 {
                            Err(ErrorCode(p.error_code))
                        } else if p.leader_id.0 < 0 {
                            Err(ErrorCode(ResponseError::LeaderNotAvailable.code()))
                        } else {
                            Ok(p.leader_id.0)
                        };
                        (p.partition_index, leader)
                    })
                    .collect();
                Ok(TopicLayout { leaders })
            };
            layouts.insert(name.0.to_string(), layout);
        }
        for topic in topics {
            layouts.entry(topic.clone()).or_insert(Err(ErrorCode(
                ResponseError::UnknownTopicOrPartition.code(),
            )));
        }
        Ok(layouts)
    }

    /// The connection to broker `node_id`, opened on first use (or again after a failure).
    pub async fn node(&mut self, node_id: i32) -> Result<&mut Connection, ClientError> {
        if self.nodes.get(&node_id).is_some_and(Connection::is_broken) {
            self.nodes.remove(&node_id);
        }
        if !self.nodes.contains_key(&node_id) {
            let addr = self
                .brokers
                .get(&node_id)
                .ok_or(ClientError::UnknownNode { node_id })?;
            let connection = Connection::connect(addr, self.options.clone()).await?;
            self.nodes.insert(node_id, connection);
        }
        Ok(self.nodes.get_mut(&node_id).expect("inserted above"))
    }

    /// The node id of `group`'s coordinator (FindCoordinator, key type 0 = group), retried
    /// while the coordinator is not available yet.
    pub async fn coordinator(&mut self, group: &str) -> Result<i32, ClientError> {
        self.coordinator_of(KEY_TYPE_GROUP, group).await
    }

    /// The node id of the coordinator of `key` (key type 0: a group, 1: a transactional id).
    pub async fn coordinator_of(&mut self, key_type: i8, key: &str) -> Result<i32, ClientError> {
        let cache_key = (key_type, key.to_string());
        if let Some(node_id) = self.coordinators.get(&cache_key) {
            return Ok(*node_id);
        }
        let mut attempt = 1;
        loop {
            let response = self
                .bootstrap
                .send(|version| {
                    let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
                    if version >= 4 {
                        request.coordinator_keys = vec![StrBytes::from(key.to_string())];
                    } else {
                        request.key = StrBytes::from(key.to_string());
                    }
                    request
                })
                .await?;
            // v4+ answers per key; earlier versions at the top level.
            let (code, node_id, host, port) = match response.coordinators.first() {
                Some(c) => (c.error_code, c.node_id.0, c.host.to_string(), c.port),
                None => (
                    response.error_code,
                    response.node_id.0,
                    response.host.to_string(),
                    response.port,
                ),
            };
            let code = ErrorCode(code);
            if code.is_ok() {
                self.brokers.insert(node_id, host_port(&host, port));
                self.coordinators.insert(cache_key, node_id);
                return Ok(node_id);
            }
            if !code.is_coordinator_moved() || attempt >= COORDINATOR_ATTEMPTS_MAX {
                return Err(ClientError::Kafka {
                    addr: self.bootstrap.addr().to_string(),
                    api: ApiKey::FindCoordinator,
                    code,
                });
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// Sends a request about `group` to its coordinator. When `error_of` finds that the
    /// coordinator moved or is loading, looks it up again and retries (a bounded number
    /// of times); the last response is returned whatever its error.
    pub async fn send_to_coordinator<R: ClientRequest>(
        &mut self,
        group: &str,
        build: impl Fn(i16) -> R,
        error_of: impl Fn(&R::Response) -> ErrorCode,
    ) -> Result<R::Response, ClientError> {
        self.send_to_coordinator_of(KEY_TYPE_GROUP, group, build, error_of)
            .await
    }

    /// [`Client::send_to_coordinator`] for any coordinator key type.
    pub async fn send_to_coordinator_of<R: ClientRequest>(
        &mut self,
        key_type: i8,
        key: &str,
        build: impl Fn(i16) -> R,
        error_of: impl Fn(&R::Response) -> ErrorCode,
    ) -> Result<R::Response, ClientError> {
        let mut attempt = 1;
        loop {
            let node_id = self.coordinator_of(key_type, key).await?;
            let response = self.node(node_id).await?.send(&build).await?;
            if attempt >= COORDINATOR_ATTEMPTS_MAX || !error_of(&response).is_coordinator_moved() {
                return Ok(response);
            }
            self.coordinators.remove(&(key_type, key.to_string()));
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// Looks up `spec` for each partition at its leader. A partition without a leader, or
    /// whose leader answers with an error, maps to that error.
    pub async fn list_offsets(
        &mut self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, Result<i64, ErrorCode>>, ClientError> {
        let mut topics: Vec<String> = partitions.iter().map(|tp| tp.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        let layouts = self.topic_layouts(&topics).await?;
        let mut results = BTreeMap::new();
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        for tp in partitions {
            let unknown = ErrorCode(ResponseError::UnknownTopicOrPartition.code());
            let leader = match layouts.get(&tp.topic) {
                Some(Ok(layout)) => layout
                    .leaders
                    .get(&tp.partition)
                    .cloned()
                    .unwrap_or(Err(unknown)),
                Some(Err(code)) => Err(*code),
                None => Err(unknown),
            };
            match leader {
                Ok(node_id) => by_leader.entry(node_id).or_default().push(tp.clone()),
                Err(code) => {
                    results.insert(tp.clone(), Err(code));
                }
            }
        }
        for (node_id, tps) in by_leader {
            results.extend(self.list_offsets_at(node_id, &tps, spec).await?);
        }
        Ok(results)
    }

    /// ListOffsets to one broker, for partitions it leads.
    async fn list_offsets_at(
        &mut self,
        node_id: i32,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, Result<i64, ErrorCode>>, ClientError> {
        let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(tp.topic.as_str()).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_timestamp(spec.wire_timestamp()),
            );
        }
        let topics: Vec<ListOffsetsTopic> = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from(topic.to_string())))
                    .with_partitions(partitions)
            })
            .collect();
        let timeout_ms =
            i32::try_from(self.options.request_timeout.as_millis()).unwrap_or(i32::MAX);
        let connection = self.node(node_id).await?;
        let response = connection
            .send(|version| {
                let mut request = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(CONSUMER_REPLICA_ID))
                    .with_topics(topics);
                // v10 added a timeout for offsets the broker must fetch from remote storage.
                if version >= 10 {
                    request.timeout_ms = timeout_ms;
                }
                request
            })
            .await?;
        let mut results = BTreeMap::new();
        for topic in response.topics {
            for p in topic.partitions {
                let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
                let result = if p.error_code != 0 {
                    Err(ErrorCode(p.error_code))
                } else {
                    Ok(p.offset)
                };
                results.insert(tp, result);
            }
        }
        if let Some(missing) = partitions.iter().find(|tp| !results.contains_key(*tp)) {
            return Err(ClientError::BadResponse {
                addr: connection.addr().to_string(),
                api: ApiKey::ListOffsets,
                reason: format!("no answer for partition {missing}"),
            });
        }
        Ok(results)
    }
}

/// Capped exponential backoff before retry `attempt` (1-based).
fn backoff(attempt: u32) -> Duration {
    RETRY_BACKOFF_INITIAL
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(RETRY_BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(30), RETRY_BACKOFF_MAX);
    }
}
