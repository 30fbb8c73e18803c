//! The last hour of the broker's traffic for the console's charts: every
//! [`SAMPLE_INTERVAL`] the produce and fetch byte counters and the request count are read,
//! into a ring of [`SAMPLES_KEPT`] samples (memory is fixed); and the total lag of the
//! groups with members that this broker coordinates (at most [`GROUPS_SAMPLED_MAX`], each a
//! ring of the same length; a group not sampled for an hour is forgotten).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerCtx;

pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
/// One hour of samples.
pub const SAMPLES_KEPT: usize = 360;
/// Groups whose lag is sampled (each sample reads the group's offsets and its partitions'
/// end offsets).
pub const GROUPS_SAMPLED_MAX: usize = 32;

/// Counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at_ms: i64,
    pub produce_bytes: u64,
    pub fetch_bytes: u64,
    pub requests: u64,
}

/// Rates between two samples, per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub at_ms: i64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub requests: f64,
}

#[derive(Debug, Default)]
pub struct Samples {
    ring: Mutex<VecDeque<Sample>>,
    /// Group → (ms, total lag), oldest first.
    lags: Mutex<std::collections::BTreeMap<String, VecDeque<(i64, i64)>>>,
}

impl Samples {
    pub fn push(&self, sample: Sample) {
        let mut ring = self.ring.lock().expect("samples lock");
        if ring.len() >= SAMPLES_KEPT {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// Rates between consecutive samples, oldest first.
    pub fn rates(&self) -> Vec<Rate> {
        let ring = self.ring.lock().expect("samples lock");
        ring.iter()
            .zip(ring.iter().skip(1))
            .filter(|(a, b)| b.at_ms > a.at_ms)
            .map(|(a, b)| {
                let seconds = (b.at_ms - a.at_ms) as f64 / 1000.0;
                let per_s = |x: u64, y: u64| y.saturating_sub(x) as f64 / seconds;
                Rate {
                    at_ms: b.at_ms,
                    bytes_in: per_s(a.produce_bytes, b.produce_bytes),
                    bytes_out: per_s(a.fetch_bytes, b.fetch_bytes),
                    requests: per_s(a.requests, b.requests),
                }
            })
            .collect()
    }

    /// `/api/v1/traffic`.
    pub fn json(&self) -> Value {
        let rates: Vec<Value> = self
            .rates()
            .iter()
            .map(|r| {
                json!({
                    "at_ms": r.at_ms,
                    "bytes_in_per_s": r.bytes_in,
                    "bytes_out_per_s": r.bytes_out,
                    "requests_per_s": r.requests,
                })
            })
            .collect();
        json!({ "interval_ms": SAMPLE_INTERVAL.as_millis() as u64, "rates": rates })
    }

    /// The lag history of `group` (ms, total lag), oldest first.
    pub fn lag_history(&self, group: &str) -> Vec<(i64, i64)> {
        self.lags
            .lock()
            .expect("lags lock")
            .get(group)
            .map(|ring| ring.iter().copied().collect())
            .unwrap_or_default()
    }

    fn push_lag(&self, group: &str, at_ms: i64, lag: i64) {
        let mut lags = self.lags.lock().expect("lags lock");
        let ring = lags.entry(group.to_string()).or_default();
        if ring.len() >= SAMPLES_KEPT {
            ring.pop_front();
        }
        ring.push_back((at_ms, lag));
        // Groups not sampled for an hour go (and the map never outgrows its bound).
        let horizon = at_ms - (SAMPLES_KEPT as i64) * SAMPLE_INTERVAL.as_millis() as i64;
        lags.retain(|_, ring| ring.back().is_some_and(|(t, _)| *t >= horizon));
        while lags.len() > GROUPS_SAMPLED_MAX * 2 {
            let oldest = lags
                .iter()
                .min_by_key(|(_, ring)| ring.back().map_or(0, |(t, _)| *t))
                .map(|(g, _)| g.clone());
            match oldest {
                Some(g) => lags.remove(&g),
                None => break,
            };
        }
    }

    /// Samples the lag of the groups with members that this broker coordinates.
    pub async fn sample_lags(&self, ctx: &BrokerCtx) {
        let at_ms = crate::log::flush::now_ms();
        for group in ctx
            .groups
            .active_groups()
            .into_keys()
            .take(GROUPS_SAMPLED_MAX)
        {
            match super::api::group_lag(ctx, &group).await {
                Ok(lag) => self.push_lag(&group, at_ms, lag),
                Err(err) => tracing::debug!(%group, "lag sample failed: {}", err.message),
            }
        }
    }

    /// Samples `ctx`'s counters now.
    pub fn sample(&self, ctx: &BrokerCtx) {
        let requests = &ctx.metrics.requests;
        self.push(Sample {
            at_ms: crate::log::flush::now_ms(),
            produce_bytes: requests.produce_bytes(),
            fetch_bytes: requests.fetch_bytes(),
            requests: requests.snapshot().iter().map(|a| a.requests).sum(),
        });
    }

    /// Samples every [`SAMPLE_INTERVAL`] until `shutdown`.
    pub async fn run(&self, ctx: std::sync::Arc<BrokerCtx>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    self.sample(&ctx);
                    self.sample_lags(&ctx).await;
                }
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_histories_are_bounded() {
        let samples = Samples::default();
        let step = SAMPLE_INTERVAL.as_millis() as i64;
        for i in 0..(SAMPLES_KEPT as i64 + 5) {
            samples.push_lag("g", i * step, i);
        }
        let history = samples.lag_history("g");
        assert_eq!(history.len(), SAMPLES_KEPT);
        assert_eq!(
            history.last(),
            Some(&((SAMPLES_KEPT as i64 + 4) * step, SAMPLES_KEPT as i64 + 4))
        );
        // Many groups: the least recently sampled go.
        let now = 10_000 * step;
        for g in 0..(GROUPS_SAMPLED_MAX * 3) {
            samples.push_lag(&format!("g{g}"), now + g as i64, 1);
        }
        assert!(samples.lags.lock().unwrap().len() <= GROUPS_SAMPLED_MAX * 2);
        assert!(
            samples.lag_history("g").is_empty(),
            "an hour without a sample"
        );
    }

    #[test]
    fn the_ring_keeps_an_hour_and_rates_are_per_second() {
        let samples = Samples::default();
        for i in 0..(SAMPLES_KEPT as u64 + 10) {
            samples.push(Sample {
                at_ms: i as i64 * 10_000,
                produce_bytes: i * 1_000,
                fetch_bytes: i * 2_000,
                requests: i * 10,
            });
        }
        let rates = samples.rates();
        assert_eq!(rates.len(), SAMPLES_KEPT - 1);
        assert_eq!(rates[0].bytes_in, 100.0);
        assert_eq!(rates[0].bytes_out, 200.0);
        assert_eq!(rates[0].requests, 1.0);
    }
}
