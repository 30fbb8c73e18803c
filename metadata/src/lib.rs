//! `strato-metadata`: the metadata store of a Strato cluster.
//!
//! Owns the [`MetadataStore`] trait (a small etcd-shaped key-value API: versioned get, prefix
//! list, compare-and-set transactions, leases, watches), the persisted record formats in
//! [`model`], the key layout in [`keys`], consistent reads of a partition's chunk index in
//! [`index`], the embedded single-node implementation in
//! [`embedded`] and the conformance suite every implementation must pass in [`testing`].
//!
//! Promise: nothing here knows about Kafka wire types or object storage. Single-writer rules
//! (partition leadership, offset commits) rely only on the compare-and-set semantics of
//! [`MetadataStore::txn`]: a transaction whose compares do not all hold changes nothing and
//! returns [`MetadataError::Conflict`].

pub mod embedded;
pub mod etcd;
pub mod index;
pub mod keys;
pub mod model;
pub mod store;
pub mod testing;

pub use store::{
    Compare, LIST_PAGE, LeaseId, MetadataError, MetadataStore, Op, Txn, Version, Versioned,
    WatchEvent,
};
