//! Consumer-group APIs: coordinator discovery, membership (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup), offsets (OffsetCommit, OffsetFetch, OffsetDelete) and group administration
//! (DescribeGroups, ListGroups, DeleteGroups). The state machine is `crate::group`; these
//! handlers translate wire types and error codes.

pub(super) mod admin;
pub(super) mod find_coordinator;
pub(super) mod membership;
pub(super) mod offsets;
pub(super) mod txn_offsets;

use kafka_protocol::protocol::StrBytes;

fn text(value: String) -> StrBytes {
    StrBytes::from_string(value)
}

fn opt_text(value: Option<String>) -> Option<StrBytes> {
    value.map(StrBytes::from_string)
}
