//! What the dashboard shows, computed from the control plane's snapshots: rates and
//! latency quantiles over a short window, CPU from the sampled use, and the history
//! the sparklines draw. Pure: snapshots in, rows out.

use std::collections::VecDeque;

use shoal_engine::{ReplicaStatus, Status};
use shoal_proxy::Snapshot;

/// Snapshots kept: one a second, three minutes.
pub const HISTORY: usize = 180;
/// The window rates and quantiles are taken over, seconds.
pub const WINDOW: f64 = 10.0;

/// A snapshot and when it was taken (seconds, monotonic).
#[derive(Clone, Debug)]
pub struct Sample {
    /// When.
    pub at: f64,
    /// What the control plane said.
    pub status: Status,
}

/// The snapshots of the last minutes, oldest first.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

/// One service's row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceRow {
    /// Its name.
    pub name: String,
    /// Replicas wanted.
    pub desired: u32,
    /// Replicas ready.
    pub ready: u32,
    /// Requests a second over the window.
    pub rps: f64,
    /// Median latency over the window, seconds.
    pub p50: Option<f64>,
    /// 99th percentile, seconds.
    pub p99: Option<f64>,
    /// Failed share of the window's requests.
    pub errors: Option<f64>,
    /// Requests in flight now.
    pub in_flight: u64,
    /// CPU of its replicas, % of a core.
    pub cpu: Option<f64>,
    /// Working set of its replicas, bytes.
    pub memory: Option<u64>,
    /// Requests (or TCP connections) since the control plane started.
    pub requests: u64,
    /// Of those, failed.
    pub failures: u64,
}

/// One replica's row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaRow {
    /// Its number.
    pub replica: u32,
    /// Its phase.
    pub phase: String,
    /// Why it is in it.
    pub reason: String,
    /// Restarts made by the control plane.
    pub restarts: u32,
    /// Requests a second.
    pub rps: f64,
    /// In flight now.
    pub in_flight: u64,
    /// Median latency, seconds.
    pub p50: Option<f64>,
    /// 99th percentile, seconds.
    pub p99: Option<f64>,
    /// CPU, % of a core.
    pub cpu: Option<f64>,
    /// Working set, bytes.
    pub memory: Option<u64>,
    /// Requests since it joined.
    pub requests: u64,
}

impl History {
    /// Adds a snapshot taken at `at`.
    pub fn push(&mut self, at: f64, status: Status) {
        self.samples.push_back(Sample { at, status });
        while self.samples.len() > HISTORY {
            self.samples.pop_front();
        }
    }

    /// The newest snapshot.
    pub fn latest(&self) -> Option<&Status> {
        self.samples.back().map(|s| &s.status)
    }

    /// The newest sample and the one about [`WINDOW`] seconds before it (the oldest
    /// there is, at first).
    fn window(&self) -> Option<(&Sample, &Sample)> {
        let now = self.samples.back()?;
        let then = self
            .samples
            .iter()
            .rev()
            .find(|s| now.at - s.at >= WINDOW)
            .or_else(|| self.samples.front())?;
        Some((now, then))
    }

    /// Every service's row, by name.
    pub fn services(&self) -> Vec<ServiceRow> {
        let Some((now, then)) = self.window() else {
            return Vec::new();
        };
        let secs = now.at - then.at;
        now.status
            .services
            .iter()
            .map(|(name, s)| {
                let before = then
                    .status
                    .services
                    .get(name)
                    .map(|b| b.traffic.clone())
                    .unwrap_or_default();
                let d = s.traffic.since(&before);
                // Latency is the replicas' (the port counts no histogram).
                let mut latency = Snapshot::default();
                let (mut cpu, mut memory) = (None::<f64>, None::<u64>);
                for r in now.status.replicas.iter().filter(|r| &r.service == name) {
                    if let Some(t) = &r.traffic {
                        latency.add(&t.since(&replica_traffic(then, r)));
                    }
                    if let Some(c) = replica_cpu(now, then, r) {
                        *cpu.get_or_insert(0.0) += c;
                    }
                    if let Some(m) = r.usage.and_then(|u| u.memory_bytes) {
                        *memory.get_or_insert(0) += m;
                    }
                }
                ServiceRow {
                    name: name.clone(),
                    desired: s.desired,
                    ready: s.ready,
                    rps: rate(d.requests, secs),
                    p50: quantile(&latency, 0.5),
                    p99: quantile(&latency, 0.99),
                    errors: (d.requests > 0).then(|| d.failures as f64 / d.requests as f64),
                    in_flight: s.in_flight,
                    cpu,
                    memory,
                    requests: s.traffic.requests,
                    failures: s.traffic.failures,
                }
            })
            .collect()
    }

    /// The rows of `service`'s replicas, by number.
    pub fn replicas(&self, service: &str) -> Vec<ReplicaRow> {
        let Some((now, then)) = self.window() else {
            return Vec::new();
        };
        let secs = now.at - then.at;
        let mut rows: Vec<ReplicaRow> = now
            .status
            .replicas
            .iter()
            .filter(|r| r.service == service)
            .map(|r| {
                let t = r.traffic.clone().unwrap_or_default();
                let d = t.since(&replica_traffic(then, r));
                ReplicaRow {
                    replica: r.replica,
                    phase: shoal_engine::event::phase_name(r.record.phase).to_string(),
                    reason: r.record.reason.clone(),
                    restarts: r.record.restarts,
                    rps: rate(d.requests, secs),
                    in_flight: r.in_flight,
                    p50: quantile(&d, 0.5),
                    p99: quantile(&d, 0.99),
                    cpu: replica_cpu(now, then, r),
                    memory: r.usage.and_then(|u| u.memory_bytes),
                    requests: t.requests,
                }
            })
            .collect();
        rows.sort_by_key(|r| r.replica);
        rows
    }

    /// Requests a second of `service`, one point per second of history.
    pub fn rps_series(&self, service: &str) -> Vec<u64> {
        let requests = |s: &Sample| {
            s.status
                .services
                .get(service)
                .map_or(0, |x| x.traffic.requests)
        };
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(a, b)| rate(requests(b).saturating_sub(requests(a)), b.at - a.at).round() as u64)
            .collect()
    }

    /// Ready replicas of `service`, one point per sample.
    pub fn ready_series(&self, service: &str) -> Vec<u64> {
        self.samples
            .iter()
            .map(|s| {
                s.status
                    .services
                    .get(service)
                    .map_or(0, |x| u64::from(x.ready))
            })
            .collect()
    }
}

fn replica_traffic(sample: &Sample, r: &ReplicaStatus) -> Snapshot {
    sample
        .status
        .replicas
        .iter()
        .find(|x| x.service == r.service && x.replica == r.replica)
        .and_then(|x| x.traffic.clone())
        .unwrap_or_default()
}

/// CPU % of a core between two samples of a replica's use (sampled every few
/// seconds: over the window, not the last second).
fn replica_cpu(now: &Sample, then: &Sample, r: &ReplicaStatus) -> Option<f64> {
    let used = r.usage?.cpu_seconds;
    let before = then
        .status
        .replicas
        .iter()
        .find(|x| x.service == r.service && x.replica == r.replica)
        .and_then(|x| x.usage)?
        .cpu_seconds;
    let secs = now.at - then.at;
    (secs > 0.0 && used >= before).then(|| (used - before) / secs * 100.0)
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        n as f64 / secs
    }
}

fn quantile(s: &Snapshot, q: f64) -> Option<f64> {
    s.quantile(q).map(|d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(requests: u64, replica_requests: [u64; 2], cpu: f64) -> Status {
        let mut latency = [0u64; 14];
        latency[1] = replica_requests[0] + replica_requests[1];
        serde_json::from_value(serde_json::json!({
            "project": "p", "pid": 1, "converged": true,
            "services": {"web": {"desired": 2, "running": 2, "ready": 2, "in_flight": 0,
                "traffic": {"requests": requests, "failures": requests / 10}}},
            "waiting": [], "failures": [], "events": [],
            "replicas": ([1, 2].iter().map(|&n| serde_json::json!({
                "service": "web", "replica": n, "phase": "ready", "restarts": 0,
                "reason": "", "in_flight": 0,
                "traffic": {"requests": replica_requests[n as usize - 1],
                    "latency": if n == 1 { latency } else { [0u64; 14] }},
                "usage": {"cpu_seconds": cpu, "memory_bytes": 1024}
            })).collect::<Vec<_>>())
        }))
        .unwrap()
    }

    #[test]
    fn rates_quantiles_and_cpu_over_the_window() {
        let mut h = History::default();
        h.push(0.0, status(0, [0, 0], 1.0));
        h.push(10.0, status(1000, [600, 400], 3.0));
        let web = &h.services()[0];
        assert_eq!(web.rps, 100.0);
        assert_eq!(web.errors, Some(0.1));
        assert_eq!(web.p50, Some(0.001));
        assert_eq!(web.cpu, Some(40.0), "two replicas at 20% each");
        assert_eq!(web.memory, Some(2048));
        assert_eq!(web.requests, 1000);
        let reps = h.replicas("web");
        assert_eq!(reps.len(), 2);
        assert_eq!((reps[0].rps, reps[1].rps), (60.0, 40.0));
        assert_eq!(reps[0].cpu, Some(20.0));
        assert_eq!(h.rps_series("web"), vec![100]);
        assert_eq!(h.ready_series("web"), vec![2, 2]);
    }

    #[test]
    fn the_window_is_the_last_ten_seconds() {
        let mut h = History::default();
        h.push(0.0, status(0, [0, 0], 0.0));
        h.push(20.0, status(100, [50, 50], 0.0));
        h.push(30.0, status(1100, [550, 550], 0.0));
        assert_eq!(h.services()[0].rps, 100.0);
        for i in 0..HISTORY + 5 {
            h.push(40.0 + i as f64, status(1100, [550, 550], 0.0));
        }
        assert_eq!(h.ready_series("web").len(), HISTORY);
    }
}
