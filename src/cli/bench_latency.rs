//! Latency percentiles of the load benchmarks: a log-linear histogram of microseconds
//! (exact below 128 µs, then 64 buckets per power of two, so a percentile is within 1.6% of
//! the true value), bounded in memory whatever the number of records.

use std::time::Duration;

/// Buckets per power of two (2^6): the relative error of a bucket's upper bound.
const SUB_BUCKET_BITS: u32 = 6;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
const MICROS_PER_MS: f64 = 1000.0;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LatencyHistogram {
    /// Samples per bucket; grown to the largest bucket seen (at most 3776 for u64).
    counts: Vec<u64>,
    count: u64,
    max_micros: u64,
}

/// p50, p99, p999 and the maximum, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct LatencySummary {
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) p999_ms: f64,
    pub(super) max_ms: f64,
}

fn bucket(micros: u64) -> usize {
    if micros < 2 * SUB_BUCKETS {
        return micros as usize;
    }
    // `micros >> shift` is in [64, 128): the top 7 bits of the value.
    let shift = 63 - micros.leading_zeros() - SUB_BUCKET_BITS;
    let top = micros >> shift;
    ((u64::from(shift) + 1) * SUB_BUCKETS + (top - SUB_BUCKETS)) as usize
}

/// The largest value of bucket `idx`.
fn bucket_upper(idx: usize) -> u64 {
    let idx = idx as u64;
    if idx < 2 * SUB_BUCKETS {
        return idx;
    }
    let shift = idx / SUB_BUCKETS - 1;
    let top = idx % SUB_BUCKETS + SUB_BUCKETS;
    let upper = (u128::from(top + 1) << shift) - 1;
    u64::try_from(upper).unwrap_or(u64::MAX)
}

impl LatencyHistogram {
    pub(super) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let idx = bucket(micros);
        if idx >= self.counts.len() {
            self.counts.resize(idx + 1, 0);
        }
        self.counts[idx] += 1;
        self.count += 1;
        self.max_micros = self.max_micros.max(micros);
    }

    pub(super) fn merge(&mut self, other: &LatencyHistogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    /// The smallest recorded value that `quantile` of the samples do not exceed (a bucket's
    /// upper bound, never above the maximum); 0 without samples.
    fn quantile_micros(&self, quantile: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((quantile * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (idx, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_upper(idx).min(self.max_micros);
            }
        }
        self.max_micros
    }

    /// `None` without samples.
    pub(super) fn summary(&self) -> Option<LatencySummary> {
        if self.count == 0 {
            return None;
        }
        let ms = |micros: u64| micros as f64 / MICROS_PER_MS;
        Some(LatencySummary {
            p50_ms: ms(self.quantile_micros(0.50)),
            p99_ms: ms(self.quantile_micros(0.99)),
            p999_ms: ms(self.quantile_micros(0.999)),
            max_ms: ms(self.max_micros),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_within_two_percent() {
        let mut last = 0;
        for micros in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let idx = bucket(micros);
            assert!(
                idx == last || idx == last + 1 || micros > 100_000,
                "{micros}"
            );
            last = idx;
            let upper = bucket_upper(idx);
            assert!(upper >= micros, "{micros}: bucket {idx} ends at {upper}");
            assert!(
                (upper - micros) as f64 <= micros as f64 / SUB_BUCKETS as f64,
                "{micros}: {upper}"
            );
        }
        assert_eq!(bucket(127), 127);
        assert_eq!(bucket(128), 128);
        assert_eq!(bucket_upper(128), 129);
        assert_eq!(bucket(u64::MAX), 3775);
    }

    #[test]
    fn percentiles_are_ordered_and_capped_by_the_maximum() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.summary(), None);
        for micros in 1..=1000u64 {
            histogram.record(Duration::from_micros(micros * 10));
        }
        let summary = histogram.summary().unwrap();
        assert!((summary.p50_ms - 5.0).abs() <= 5.0 / 64.0, "{summary:?}");
        assert!((summary.p99_ms - 9.9).abs() <= 9.9 / 64.0, "{summary:?}");
        assert_eq!(summary.max_ms, 10.0);
        assert!(summary.p50_ms <= summary.p99_ms);
        assert!(summary.p99_ms <= summary.p999_ms);
        assert!(summary.p999_ms <= summary.max_ms);

        let mut other = LatencyHistogram::default();
        other.record(Duration::from_secs(2));
        histogram.merge(&other);
        assert_eq!(histogram.count, 1001);
        assert_eq!(histogram.summary().unwrap().max_ms, 2000.0);
        let p999 = histogram.summary().unwrap().p999_ms;
        assert!((10.0..=10.0 * (1.0 + 1.0 / 64.0)).contains(&p999), "{p999}");
    }
}
