//! Authentication and connection-hygiene counters (`/metrics`): SASL logins per mechanism
//! and outcome, TLS handshakes that failed, connections refused by the per-IP limit and
//! closed for idleness.

use std::sync::atomic::{AtomicU64, Ordering};

use strato_metrics::Encoder;

use crate::security::sasl::SaslMechanism;

#[derive(Debug, Default)]
pub struct SecurityMetrics {
    /// Per mechanism (in `SaslMechanism::ALL` order): [succeeded, failed].
    authentications: [[AtomicU64; 2]; 3],
    tls_handshake_failures: AtomicU64,
    refused_per_ip: AtomicU64,
    idle_closed: AtomicU64,
    unauthenticated_closed: AtomicU64,
}

fn mechanism_index(mechanism: SaslMechanism) -> usize {
    SaslMechanism::ALL
        .iter()
        .position(|m| *m == mechanism)
        .expect("every mechanism is in ALL")
}

impl SecurityMetrics {
    pub fn authentication(&self, mechanism: SaslMechanism, succeeded: bool) {
        let outcome = usize::from(!succeeded);
        self.authentications[mechanism_index(mechanism)][outcome].fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused_per_ip(&self) {
        self.refused_per_ip.fetch_add(1, Ordering::Relaxed);
    }

    pub fn idle_closed(&self) {
        self.idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unauthenticated_closed(&self) {
        self.unauthenticated_closed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut Encoder) {
        out.family(
            "strato_sasl_authentications_total",
            "counter",
            "SASL authentications (re-authentications included), per mechanism and result.",
        );
        for mechanism in SaslMechanism::ALL {
            let counts = &self.authentications[mechanism_index(mechanism)];
            for (result, count) in ["success", "failure"].iter().zip(counts) {
                out.sample(
                    "strato_sasl_authentications_total",
                    &[("mechanism", mechanism.name()), ("result", result)],
                    count.load(Ordering::Relaxed) as f64,
                );
            }
        }
        out.simple(
            "strato_connections_closed_total",
            "counter",
            "Client connections the broker closed or refused, per reason.",
            &[
                (
                    &[("reason", "tls_handshake")],
                    self.tls_handshake_failures.load(Ordering::Relaxed),
                ),
                (
                    &[("reason", "max_connections_per_ip")],
                    self.refused_per_ip.load(Ordering::Relaxed),
                ),
                (
                    &[("reason", "idle")],
                    self.idle_closed.load(Ordering::Relaxed),
                ),
                (
                    &[("reason", "unauthenticated_request")],
                    self.unauthenticated_closed.load(Ordering::Relaxed),
                ),
            ],
        );
    }
}
