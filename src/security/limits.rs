//! Kafka's `max.connections.per.ip`: connections from one address beyond the limit are
//! closed as soon as they are accepted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per client address. The map holds only addresses with connections, so
/// it is bounded by the broker's connection limit.
#[derive(Debug)]
pub struct ConnectionsPerIp {
    max: Option<usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`ConnectionsPerIp`], given back on drop.
#[derive(Debug)]
pub struct IpPermit {
    limits: Arc<ConnectionsPerIp>,
    ip: IpAddr,
}

impl ConnectionsPerIp {
    pub fn new(max: Option<usize>) -> Arc<Self> {
        Arc::new(ConnectionsPerIp {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A permit for one more connection from `ip`, `None` when it has `max` already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpPermit> {
        let mut open = self.open.lock().expect("the limit lock is never poisoned");
        let count = open.entry(ip).or_insert(0);
        if self.max.is_some_and(|max| *count >= max) {
            return None;
        }
        *count += 1;
        Some(IpPermit {
            limits: self.clone(),
            ip,
        })
    }

    pub fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().expect("the limit lock is never poisoned");
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .expect("the limit lock is never poisoned");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_per_address_are_limited_and_given_back() {
        let limits = ConnectionsPerIp::new(Some(2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limits.try_acquire(a).unwrap();
        let _second = limits.try_acquire(a).unwrap();
        assert!(limits.try_acquire(a).is_none());
        let _other = limits.try_acquire(b).unwrap();
        drop(first);
        assert_eq!(limits.open_from(a), 1);
        let _third = limits.try_acquire(a).unwrap();
        let unlimited = ConnectionsPerIp::new(None);
        let permits: Vec<_> = (0..100)
            .map(|_| unlimited.try_acquire(a).unwrap())
            .collect();
        assert_eq!(unlimited.open_from(a), 100);
        drop(permits);
        assert_eq!(unlimited.open_from(a), 0);
        assert!(
            unlimited.open.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }
}
