//! `strato-tiering`: the log tier of Strato. It owns the segment object format, object keys,
//! the choice of object store from a URL, the chunk cache and [`Tier`], the only code
//! that talks to `object_store`.
//!
//! It knows nothing of the Kafka protocol beyond the record batch v2 format (`batch`, `records`), and
//! exposes no `object_store` error types: callers get [`TieringError`].

mod aws_profile;
pub mod batch;
pub mod cache;
pub mod decompress;
pub mod direct_file;
mod error;
pub mod faulty;
pub mod keys;
pub mod records;
pub mod segment;
pub mod store;
mod tier;
mod varint;

// `error` and `tier` are private files of one public facade: each item has this one path.
pub use error::{StoreError, TieringError, error_chain};
pub use tier::{
    OBJECT_READ_BYTES_MAX, Span, StoreOperation, Tier, TierConfig, TierStats,
    WHOLE_OBJECT_BYTES_MAX_DEFAULT,
};
