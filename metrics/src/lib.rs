//! `strato-metrics`: the metric primitives every Strato crate may record into, and the
//! Prometheus text exposition the broker's `/metrics` endpoint renders them with.
//!
//! - [`Histogram`]: fixed buckets, lock-free (one atomic add per bucket hit plus one for the
//!   sum), so recording on a hot path (every request, every object store call) costs no lock
//!   and no allocation.
//! - [`Encoder`]: writes metric families in the Prometheus text format 0.0.4, escaping label
//!   values.
//!
//! Promise: no IO, no global registry, no dependency; a metric is a plain field of the
//! component that records it, and the HTTP endpoint asks each component for its numbers.

mod histogram;
mod text;

pub use histogram::{
    BYTE_BUCKETS, CallTimer, DURATION_BUCKETS_MICROS, Histogram, HistogramSnapshot, Unit,
};
pub use text::Encoder;
