//! Key layout of the metadata store (see DESIGN.md "Metadata").

use uuid::Uuid;

pub const BROKERS_PREFIX: &str = "brokers/";
pub const TOPICS_PREFIX: &str = "topics/";
pub const PRODUCERS_NEXT_ID: &str = "producers/next_id";
pub const CLUSTER_ID: &str = "cluster/id";

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

pub fn partition_index_prefix(topic_id: Uuid, partition: i32) -> String {
    format!("partitions/{topic_id}/{partition}/index/")
}

/// Base offsets are zero-padded to 20 digits so that key order is offset order.
pub fn partition_index(topic_id: Uuid, partition: i32, base_offset: i64) -> String {
    format!("partitions/{topic_id}/{partition}/index/{base_offset:020}")
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
}
