//! The replicas behind one published port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// A set of backend addresses. Writers replace the whole set; readers take a snapshot
/// without locking.
#[derive(Default)]
pub struct Backends {
    set: ArcSwap<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Backends {
    /// An empty set.
    pub fn new() -> Arc<Backends> {
        Arc::new(Backends::default())
    }

    /// Replaces the set.
    pub fn replace(&self, mut addrs: Vec<SocketAddr>) {
        addrs.sort();
        if **self.set.load() != addrs {
            self.set.store(Arc::new(addrs));
        }
    }

    /// The current set.
    pub fn snapshot(&self) -> Arc<Vec<SocketAddr>> {
        self.set.load_full()
    }

    /// The current set, rotated so that successive calls start at successive
    /// backends (round robin); the caller tries them in this order.
    pub fn rotation(&self) -> Vec<SocketAddr> {
        let set = self.set.load();
        if set.is_empty() {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % set.len();
        set[start..].iter().chain(&set[..start]).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_round_robin() {
        let b = Backends::new();
        let a: Vec<SocketAddr> = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        b.replace(a.clone());
        let firsts: Vec<SocketAddr> = (0..6).map(|_| b.rotation()[0]).collect();
        assert_eq!(firsts, [a[0], a[1], a[2], a[0], a[1], a[2]]);
        assert_eq!(b.rotation().len(), 3);
        b.replace(Vec::new());
        assert!(b.rotation().is_empty());
    }
}
