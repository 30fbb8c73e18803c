//! The partition log as this broker leads it: in-memory partition state (offsets, index,
//! idempotent producers), the shared open segment and the flusher that makes it durable.
//!
//! Invariants: offsets are assigned here and only here, under the partition's lock; the
//! high watermark moves only after the segment holding the records is in the object store
//! and the partition commit (fenced by leader and state versions) is in the metadata store.

pub mod cleaner;
pub mod compaction;
pub mod flush;
pub mod gc;
pub mod markers;
pub mod partition;
pub mod producer;
pub mod replica;
pub mod retention;
pub mod topics;

/// The schedule of a periodic background pass (retention, compaction, garbage collection):
/// the first pass one interval after start (a restarting cluster takes its partitions back
/// before it deletes or rewrites anything, as Kafka's retention check), missed ticks
/// delayed rather than bunched, and no more passes once `shutdown` is cancelled.
pub(crate) struct Periodic {
    tick: tokio::time::Interval,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Periodic {
    pub(crate) fn new(
        interval: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { tick, shutdown }
    }

    /// Waits for the next pass: `false` once the broker shuts down.
    pub(crate) async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = self.tick.tick() => true,
        }
    }
}
