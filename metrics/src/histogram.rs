//! A fixed-bucket histogram updated with atomics only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds (inclusive, in microseconds) of duration histograms: 100 µs to 30 s, which
/// spans a cached fetch, an etcd transaction (~1 ms), an S3 PUT (20–100 ms) and a long poll.
pub const DURATION_BUCKETS_MICROS: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Upper bounds (inclusive, in bytes) of size histograms: 1 KiB to 256 MiB, which spans one
/// small flush and compaction's largest merged chunk.
pub const BYTE_BUCKETS: &[u64] = &[
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    8 << 20,
    16 << 20,
    64 << 20,
    256 << 20,
];

/// What a histogram's integer observations measure, and how they are exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Observations in microseconds, exposed in seconds (Prometheus' base unit).
    Micros,
    /// Observations in bytes, exposed as they are.
    Bytes,
}

impl Unit {
    /// `value` in the exposed unit.
    pub fn expose(self, value: u64) -> f64 {
        match self {
            Unit::Micros => value as f64 / 1_000_000.0,
            Unit::Bytes => value as f64,
        }
    }
}

/// A Prometheus histogram with fixed bucket bounds. `observe` is two relaxed atomic adds;
/// a snapshot reads the buckets one by one, so under concurrent observations it may lag
/// a little behind, but its counts are always cumulative and its total is their sum.
#[derive(Debug)]
pub struct Histogram {
    unit: Unit,
    bounds: &'static [u64],
    /// Observations per bucket (not cumulative); the last slot counts values above every
    /// bound (`le="+Inf"` only).
    counts: Box<[AtomicU64]>,
    /// Sum of observed values, in `unit`; wraps after 2^64 (584,000 years of microseconds).
    sum: AtomicU64,
}

/// A histogram's values at one moment, ready to expose.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub unit: Unit,
    /// `(upper bound, observations at or below it)` for every finite bound, ascending.
    pub cumulative: Vec<(u64, u64)>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Sum of observations, in `unit`.
    pub sum: u64,
}

impl Histogram {
    /// A histogram with `bounds` (strictly increasing, in `unit`).
    pub fn new(unit: Unit, bounds: &'static [u64]) -> Self {
        assert!(!bounds.is_empty(), "a histogram needs at least one bound");
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram bounds must increase strictly"
        );
        Self {
            unit,
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// A duration histogram over [`DURATION_BUCKETS_MICROS`].
    pub fn durations() -> Self {
        Self::new(Unit::Micros, DURATION_BUCKETS_MICROS)
    }

    /// A size histogram over [`BYTE_BUCKETS`].
    pub fn bytes() -> Self {
        Self::new(Unit::Bytes, BYTE_BUCKETS)
    }

    /// Records one value, in the histogram's unit.
    pub fn observe(&self, value: u64) {
        // The first bound at or above `value`; past the last bound: the +Inf slot.
        let slot = self.bounds.partition_point(|bound| *bound < value);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration (for [`Unit::Micros`] histograms).
    pub fn observe_duration(&self, elapsed: Duration) {
        debug_assert_eq!(self.unit, Unit::Micros, "a duration into a size histogram");
        self.observe(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0u64;
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            running += count.load(Ordering::Relaxed);
            cumulative.push((*bound, running));
        }
        let above = self.counts[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            unit: self.unit,
            cumulative,
            count: running + above,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// Times one remote call: on drop it records the elapsed time in a duration histogram and,
/// unless [`CallTimer::succeeded`] was called, counts a failure. A call whose future is
/// dropped half-way (a caller's timeout, a client that hung up) is thus still measured,
/// as a failure.
#[derive(Debug)]
pub struct CallTimer<'a> {
    latency: &'a Histogram,
    failures: &'a AtomicU64,
    started: Instant,
    succeeded: bool,
}

impl<'a> CallTimer<'a> {
    pub fn start(latency: &'a Histogram, failures: &'a AtomicU64) -> Self {
        Self {
            latency,
            failures,
            started: Instant::now(),
            succeeded: false,
        }
    }

    /// The call did not fail.
    pub fn succeeded(&mut self) {
        self.succeeded = true;
    }
}

impl Drop for CallTimer<'_> {
    fn drop(&mut self) {
        self.latency.observe_duration(self.started.elapsed());
        if !self.succeeded {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_at_or_above_them() {
        let h = Histogram::new(Unit::Bytes, &[10, 20, 30]);
        for v in [0, 10, 11, 20, 30, 31, 1_000] {
            h.observe(v);
        }
        let s = h.snapshot();
        // <=10: 0 and 10; <=20: +11, 20; <=30: +30; above: 31 and 1000.
        assert_eq!(s.cumulative, vec![(10, 2), (20, 4), (30, 5)]);
        assert_eq!(s.count, 7);
        assert_eq!(s.sum, 10 + 11 + 20 + 30 + 31 + 1_000);
    }

    #[test]
    fn durations_are_recorded_in_micros_and_exposed_in_seconds() {
        let h = Histogram::durations();
        h.observe_duration(Duration::from_millis(3));
        let s = h.snapshot();
        assert_eq!(s.sum, 3_000);
        assert_eq!(Unit::Micros.expose(s.sum), 0.003);
        let at_or_below_5ms = s.cumulative.iter().find(|(b, _)| *b == 5_000).unwrap().1;
        let at_or_below_2_5ms = s.cumulative.iter().find(|(b, _)| *b == 2_500).unwrap().1;
        assert_eq!((at_or_below_2_5ms, at_or_below_5ms), (0, 1));
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = std::sync::Arc::new(Histogram::durations());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.observe(i * (t + 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = h.snapshot();
        assert_eq!(s.count, 40_000);
        assert!(s.cumulative.windows(2).all(|w| w[0].1 <= w[1].1));
        let expected_sum: u64 = (1..=4u64).map(|t| t * (0..10_000u64).sum::<u64>()).sum();
        assert_eq!(s.sum, expected_sum);
    }

    #[test]
    fn a_call_timer_counts_a_failure_unless_told_of_success() {
        let (latency, failures) = (Histogram::durations(), AtomicU64::new(0));
        CallTimer::start(&latency, &failures).succeeded();
        drop(CallTimer::start(&latency, &failures));
        assert_eq!(latency.snapshot().count, 2);
        assert_eq!(failures.load(Ordering::Relaxed), 1);
    }

    #[test]
    #[should_panic(expected = "increase strictly")]
    fn unordered_bounds_are_rejected() {
        let _ = Histogram::new(Unit::Bytes, &[2, 1]);
    }

    #[test]
    fn bucket_presets_are_valid() {
        let _ = Histogram::durations();
        let _ = Histogram::bytes();
    }
}
