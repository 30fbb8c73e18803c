//! How often the broker's bounds were reached (`strato_limit_reached_total{limit}`): each
//! time a connection, a frame, a request or a produce had to wait for, or was refused by,
//! one of the configured limits. A limit reached is the broker protecting itself (the
//! client waits, or its connection closes), not a failure; a steady rate of them is a
//! sign of overload or of limits set too low.

use std::sync::atomic::{AtomicU64, Ordering};

/// A bound the broker enforces, by its flag's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `--max-connections`: an accepted connection waited for a free slot.
    Connections,
    /// `--max-connections-per-ip`: a connection was refused.
    ConnectionsPerIp,
    /// `--max-request-bytes` (or the pre-authentication bound): a frame's length was over
    /// it and its connection closed.
    RequestBytes,
    /// `--max-queued-request-bytes`: a connection waited for request memory before reading
    /// a frame.
    QueuedRequestBytes,
    /// `--max-inflight-requests`: a connection stopped reading because that many of its
    /// requests were waiting (for admission, or behind responses the client is not taking).
    InflightRequests,
    /// `--max-fetch-bytes`: a Fetch asked for more; its response was held to the limit.
    FetchBytes,
    /// One Fetch at a time per connection (`connection::FETCHES_PENDING_MAX`): a second
    /// Fetch waited for the first one's answer.
    FetchesPerConnection,
    /// `--max-unflushed-bytes`: a produce waited for the flusher (counted by the log
    /// writer, rendered with these).
    UnflushedBytes,
}

impl Limit {
    /// Every limit, in the order `/metrics` lists them.
    pub const ALL: [Limit; 8] = [
        Limit::Connections,
        Limit::ConnectionsPerIp,
        Limit::RequestBytes,
        Limit::QueuedRequestBytes,
        Limit::InflightRequests,
        Limit::FetchBytes,
        Limit::FetchesPerConnection,
        Limit::UnflushedBytes,
    ];

    /// The `limit` label: the flag without its dashes' prefix.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Connections => "max_connections",
            Limit::ConnectionsPerIp => "max_connections_per_ip",
            Limit::RequestBytes => "max_request_bytes",
            Limit::QueuedRequestBytes => "max_queued_request_bytes",
            Limit::InflightRequests => "max_inflight_requests",
            Limit::FetchBytes => "max_fetch_bytes",
            Limit::FetchesPerConnection => "fetches_per_connection",
            Limit::UnflushedBytes => "max_unflushed_bytes",
        }
    }
}

/// Times each limit was reached, except `UnflushedBytes`: the log writer counts that one
/// (the log is below the metrics) and [`LimitMetrics::snapshot`] is handed its count.
#[derive(Debug, Default)]
pub struct LimitMetrics {
    reached: [AtomicU64; Limit::ALL.len()],
}

impl LimitMetrics {
    /// Counts one time `limit` was reached.
    pub fn reached(&self, limit: Limit) {
        self.reached[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// (limit, times reached) of every limit, `UnflushedBytes` being `unflushed_waits`
    /// (`LogStats::unflushed_waits`).
    pub fn snapshot(&self, unflushed_waits: u64) -> impl Iterator<Item = (Limit, u64)> + '_ {
        Limit::ALL.into_iter().map(move |limit| {
            let count = match limit {
                Limit::UnflushedBytes => unflushed_waits,
                _ => self.reached[limit as usize].load(Ordering::Relaxed),
            };
            (limit, count)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_counts_on_its_own() {
        let metrics = LimitMetrics::default();
        metrics.reached(Limit::Connections);
        metrics.reached(Limit::InflightRequests);
        metrics.reached(Limit::InflightRequests);
        let counts: Vec<(&str, u64)> = metrics.snapshot(3).map(|(l, n)| (l.name(), n)).collect();
        assert_eq!(
            counts,
            [
                ("max_connections", 1),
                ("max_connections_per_ip", 0),
                ("max_request_bytes", 0),
                ("max_queued_request_bytes", 0),
                ("max_inflight_requests", 2),
                ("max_fetch_bytes", 0),
                ("fetches_per_connection", 0),
                ("max_unflushed_bytes", 3),
            ]
        );
    }
}
