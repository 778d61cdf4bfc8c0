//! What the data path counts, per replica: requests, failures, retries, in-flight
//! (on the endpoint) and a latency histogram. Plain atomics, written on the request
//! path without locks; the autoscaler and the metrics endpoint read snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
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
    latency: [AtomicU64; BUCKETS_US.len()],
    latency_sum_us: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

    /// A copy of the counters.
    pub fn snapshot(&self) -> Snapshot {
        let mut latency = [0u64; BUCKETS_US.len()];
        for (d, s) in latency.iter_mut().zip(&self.latency) {
            *d = s.load(Ordering::Relaxed);
        }
        Snapshot {
            arrivals: self.arrivals.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            latency,
            latency_sum_us: self.latency_sum_us.load(Ordering::Relaxed),
        }
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
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
        self.latency_sum_us += other.latency_sum_us;
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let mut latency = [0u64; BUCKETS_US.len()];
        for (i, d) in latency.iter_mut().enumerate() {
            *d = self.latency[i].saturating_sub(earlier.latency[i]);
        }
        Snapshot {
            arrivals: self.arrivals.saturating_sub(earlier.arrivals),
            requests: self.requests.saturating_sub(earlier.requests),
            failures: self.failures.saturating_sub(earlier.failures),
            retries: self.retries.saturating_sub(earlier.retries),
            server_errors: self.server_errors.saturating_sub(earlier.server_errors),
            latency,
            latency_sum_us: self.latency_sum_us.saturating_sub(earlier.latency_sum_us),
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
