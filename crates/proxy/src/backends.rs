//! The replicas behind one published port: a set replaced whole and atomically by the
//! control plane, read without locks on the request path. A replica leaving the set is
//! marked draining: it gets nothing new, and what it has in flight finishes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::endpoint::Endpoint;

/// A set of replicas.
#[derive(Default)]
pub struct Backends {
    set: ArcSwap<Vec<Arc<Endpoint>>>,
    /// Round-robin position.
    pub rr: AtomicUsize,
    /// Replicas that left and may still have requests in flight.
    leaving: Mutex<Vec<Arc<Endpoint>>>,
}

impl Backends {
    /// An empty set.
    pub fn new() -> Arc<Backends> {
        Arc::new(Backends::default())
    }

    /// Makes `addrs` the set. Replicas already in it keep their statistics and
    /// connections; replicas not in `addrs` start draining.
    pub fn replace(&self, mut addrs: Vec<SocketAddr>) {
        addrs.sort();
        addrs.dedup();
        let current = self.set.load();
        if current.iter().map(|e| e.addr).eq(addrs.iter().copied()) {
            return;
        }
        let next: Vec<Arc<Endpoint>> = addrs
            .iter()
            .map(|a| {
                current
                    .iter()
                    .find(|e| e.addr == *a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Endpoint::new(*a)))
            })
            .collect();
        let mut leaving = self.leaving.lock().expect("not poisoned");
        leaving.retain(|e| e.in_flight.load(Ordering::Relaxed) > 0 && !addrs.contains(&e.addr));
        for e in current.iter().filter(|e| !addrs.contains(&e.addr)) {
            e.draining.store(true, Ordering::Relaxed);
            e.pool.clear();
            leaving.push(e.clone());
        }
        for e in &next {
            e.draining.store(false, Ordering::Relaxed);
        }
        self.set.store(Arc::new(next));
    }

    /// The current set.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.set.load_full()
    }

    /// Waits until the replica at `addr`, taken out of the set, has nothing in flight,
    /// or `deadline` passes. Returns what is still in flight (0 when drained).
    pub async fn drain(&self, addr: SocketAddr, deadline: Duration) -> u32 {
        let leaving = self
            .leaving
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|e| e.addr == addr)
            .cloned();
        let Some(e) = leaving else { return 0 };
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let n = e.in_flight.load(Ordering::Relaxed);
            if n == 0 || tokio::time::Instant::now() >= until {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn replace_keeps_endpoints_and_drains_leavers() {
        let b = Backends::new();
        b.replace(addrs(&["10.0.0.1:80", "10.0.0.2:80"]));
        let first = b.endpoints();
        first[0].stats.record(Duration::from_millis(1), false);
        b.replace(addrs(&["10.0.0.2:80", "10.0.0.1:80", "10.0.0.3:80"]));
        let second = b.endpoints();
        assert_eq!(second.len(), 3);
        assert!(Arc::ptr_eq(&first[0], &second[0]), "kept, with its stats");
        b.replace(addrs(&["10.0.0.3:80"]));
        assert!(first[0].draining.load(Ordering::Relaxed));
        assert!(!second[2].draining.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn drain_waits_for_in_flight() {
        let b = Backends::new();
        b.replace(addrs(&["10.0.0.1:80"]));
        let e = b.endpoints()[0].clone();
        let guard = crate::endpoint::InFlight::start(e.clone());
        b.replace(Vec::new());
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                b.drain("10.0.0.1:80".parse().unwrap(), Duration::from_secs(5))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(guard);
        assert_eq!(waiter.await.unwrap(), 0);
        assert_eq!(
            b.drain("10.0.0.1:80".parse().unwrap(), Duration::ZERO)
                .await,
            0
        );
    }
}
