//! What the data path counts, per published port and per replica: requests,
//! answers by status class, failures, retries and budget refusals, connect failures,
//! ejections and returns, bytes, connections, and a latency histogram. Plain atomics,
//! written on the request path without locks; the autoscaler and the metrics endpoint
//! read snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (the last is +Inf).
pub const BUCKETS_US: [u64; 14] = [
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    10_000_000,
    u64::MAX,
];

/// Counters of one replica (or of a whole port).
#[derive(Default)]
pub struct Stats {
    /// Requests (or connections) that arrived: the offered load, counted before any
    /// answer so that an overloaded service is not under-counted.
    pub arrivals: AtomicU64,
    /// Requests answered (any status) or connections closed.
    pub requests: AtomicU64,
    /// Failures: no answer, or a 5xx the proxy counted against the replica.
    pub failures: AtomicU64,
    /// Attempts retried on another replica.
    pub retries: AtomicU64,
    /// Other 5xx answers (500, 501, 505...): passed on, not the replica's failure to
    /// answer, but what a rollout's analysis counts against a new revision.
    pub server_errors: AtomicU64,
    /// Answers to clients by status class, 1xx to 5xx (a port's, not a replica's).
    pub classes: [AtomicU64; 5],
    /// Retries the retry budget refused.
    pub budget_refusals: AtomicU64,
    /// Connections to a replica that failed (refused, reset, timed out).
    pub connect_failures: AtomicU64,
    /// Times the replica was ejected for failing, and returned by a probe.
    pub ejections: AtomicU64,
    /// Returns after an ejection.
    pub returns: AtomicU64,
    /// Bytes read from clients (a port's).
    pub bytes_in: AtomicU64,
    /// Bytes written to clients (a port's).
    pub bytes_out: AtomicU64,
    /// Connections opened: from clients to a port, or from the balancer to a replica.
    pub connections: AtomicU64,
    /// Of those, the ones open now.
    pub open: Open,
    latency: [AtomicU64; BUCKETS_US.len()],
    latency_sum_us: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// Arrivals.
    pub arrivals: u64,
    /// Requests.
    pub requests: u64,
    /// Failures.
    pub failures: u64,
    /// Retries.
    pub retries: u64,
    /// Other 5xx answers.
    pub server_errors: u64,
    /// Answers by status class, 1xx to 5xx.
    pub classes: [u64; 5],
    /// Retries refused by the budget.
    pub budget_refusals: u64,
    /// Failed connections.
    pub connect_failures: u64,
    /// Ejections.
    pub ejections: u64,
    /// Returns.
    pub returns: u64,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
    /// Connections opened.
    pub connections: u64,
    /// Connections open at the moment of the snapshot (a gauge: `since` keeps it).
    pub open: u64,
    /// Count per latency bucket (not cumulative).
    pub latency: [u64; BUCKETS_US.len()],
    /// Sum of latencies, µs.
    pub latency_sum_us: u64,
}

impl Stats {
    /// Counts one arrival.
    pub fn arrive(&self) {
        self.arrivals.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one finished request.
    pub fn record(&self, latency: Duration, failed: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let us = latency.as_micros().min(u128::from(u64::MAX - 1)) as u64;
        let i = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len() - 1);
        self.latency[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Counts one answer to a client by its status code's class.
    pub fn answer(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection opened; it stays counted as open while the guard lives.
    pub fn connect(&self) -> Held {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.open.hold()
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Snapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            arrivals: load(&self.arrivals),
            requests: load(&self.requests),
            failures: load(&self.failures),
            retries: load(&self.retries),
            server_errors: load(&self.server_errors),
            classes: self.classes.each_ref().map(load),
            budget_refusals: load(&self.budget_refusals),
            connect_failures: load(&self.connect_failures),
            ejections: load(&self.ejections),
            returns: load(&self.returns),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            connections: load(&self.connections),
            open: load(&self.open.0),
            latency: self.latency.each_ref().map(load),
            latency_sum_us: load(&self.latency_sum_us),
        }
    }
}

/// A count of open connections, shared with a guard per connection.
#[derive(Clone, Debug, Default)]
pub struct Open(Arc<AtomicU64>);

impl Open {
    /// One more open, until the guard is dropped.
    pub fn hold(&self) -> Held {
        self.0.fetch_add(1, Ordering::Relaxed);
        Held(self.0.clone())
    }
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct Held(Arc<AtomicU64>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Snapshot {
    /// The `q` quantile (0..1) of latency, as the upper bound of its bucket.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(Duration::from_micros(BUCKETS_US[i].min(60_000_000)));
            }
        }
        None
    }

    /// Adds `other`'s counts to these (a replica's ports, or a service's replicas).
    pub fn add(&mut self, other: &Snapshot) {
        self.arrivals += other.arrivals;
        self.requests += other.requests;
        self.failures += other.failures;
        self.retries += other.retries;
        self.server_errors += other.server_errors;
        for (a, b) in self.classes.iter_mut().zip(other.classes) {
            *a += b;
        }
        self.budget_refusals += other.budget_refusals;
        self.connect_failures += other.connect_failures;
        self.ejections += other.ejections;
        self.returns += other.returns;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.connections += other.connections;
        self.open += other.open;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
        self.latency_sum_us += other.latency_sum_us;
    }

    /// What happened between `earlier` and `self` (the open connections are now's).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let diff = |a: u64, b: u64| a.saturating_sub(b);
        let mut classes = self.classes;
        for (a, b) in classes.iter_mut().zip(earlier.classes) {
            *a = diff(*a, b);
        }
        let mut latency = self.latency;
        for (a, b) in latency.iter_mut().zip(earlier.latency) {
            *a = diff(*a, b);
        }
        Snapshot {
            arrivals: diff(self.arrivals, earlier.arrivals),
            requests: diff(self.requests, earlier.requests),
            failures: diff(self.failures, earlier.failures),
            retries: diff(self.retries, earlier.retries),
            server_errors: diff(self.server_errors, earlier.server_errors),
            classes,
            budget_refusals: diff(self.budget_refusals, earlier.budget_refusals),
            connect_failures: diff(self.connect_failures, earlier.connect_failures),
            ejections: diff(self.ejections, earlier.ejections),
            returns: diff(self.returns, earlier.returns),
            bytes_in: diff(self.bytes_in, earlier.bytes_in),
            bytes_out: diff(self.bytes_out, earlier.bytes_out),
            connections: diff(self.connections, earlier.connections),
            open: self.open,
            latency,
            latency_sum_us: diff(self.latency_sum_us, earlier.latency_sum_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_buckets() {
        let s = Stats::default();
        for _ in 0..90 {
            s.record(Duration::from_millis(3), false);
        }
        for _ in 0..10 {
            s.record(Duration::from_millis(200), true);
        }
        let snap = s.snapshot();
        assert_eq!(snap.requests, 100);
        assert_eq!(snap.failures, 10);
        assert_eq!(snap.quantile(0.5), Some(Duration::from_millis(5)));
        assert_eq!(snap.quantile(0.95), Some(Duration::from_millis(250)));
        assert_eq!(snap.since(&snap).requests, 0);
    }
}
