//! The partition log as this broker leads it: in-memory partition state (offsets, index,
//! idempotent producers), the shared open segment and the flusher that makes it durable.
//!
//! Invariants: offsets are assigned here and only here, under the partition's lock; the
//! high watermark moves only after the segment holding the records is in the object store
//! and the partition commit (fenced by leader and state versions) is in the metadata store.

pub mod compaction;
pub mod flush;
pub mod gc;
pub mod partition;
pub mod producer;
pub mod replica;
pub mod retention;
pub mod topics;
