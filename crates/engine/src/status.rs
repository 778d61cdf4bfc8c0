//! What the control plane reports: [`Status`], and the live snapshot of it that
//! `GET /status` (so `shoal ps` and `shoal dashboard`) and `/metrics` all read, so
//! that their numbers agree.
//!
//! A reconcile pass publishes the slow-moving part (replicas, phases, rollouts,
//! events); [`Observer::snapshot`] adds, at the moment it is asked, what the balancer
//! has counted, the containers' last sampled use and the event counts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use shoal_proxy::Snapshot;
use shoal_runtime::Usage;
use tokio::sync::watch;

use crate::event::Counts;
use crate::routes::Routes;

/// A service's revision and its last rollout.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The revision it should run.
    pub revision: u32,
    /// Its last rollout.
    pub rollout: Option<crate::revision::RolloutRecord>,
    /// Rollouts that failed and rolled back since the control plane started.
    #[serde(default)]
    pub rollbacks: u64,
}

/// What the control plane reports of itself (`GET /status`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// Project name.
    pub project: String,
    /// Process id of the control plane.
    pub pid: u32,
    /// True once a pass has found every service at its desired state.
    pub converged: bool,
    /// Per service.
    pub services: BTreeMap<String, ServiceStatus>,
    /// Services waiting for a dependency.
    pub waiting: Vec<String>,
    /// Actions of the last pass that failed.
    pub failures: Vec<String>,
    /// Every replica's phase, restarts and backoff.
    pub replicas: Vec<ReplicaStatus>,
    /// The latest events, oldest first.
    pub events: Vec<crate::event::Record>,
    /// Events so far, by service (`-` for the project's own) and reason.
    #[serde(default)]
    pub event_counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Where `/metrics` is served, if it is.
    #[serde(default)]
    pub metrics: Option<String>,
    /// The published ports the balancer listens on: (service, host address, port in
    /// the container), for `shoal port` with the project's name alone.
    #[serde(default)]
    pub ports: Vec<(String, String, u16)>,
    /// Per service: its revision and last rollout.
    #[serde(default)]
    pub rollouts: BTreeMap<String, RolloutStatus>,
}

/// One replica, as the control plane sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Its service.
    pub service: String,
    /// Its number.
    pub replica: u32,
    /// What the control plane knows of it.
    #[serde(flatten)]
    pub record: crate::health::Replica,
    /// What the balancer counted of it over the service's ports; `None` while it
    /// leaves (a replica on its way out leaves no series behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Snapshot>,
    /// Its requests in flight.
    #[serde(default)]
    pub in_flight: u64,
    /// Its container's use, as last sampled (every few seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageStatus>,
}

/// A container's resource use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageStatus {
    /// CPU time used, seconds.
    pub cpu_seconds: f64,
    /// Working set, bytes.
    pub memory_bytes: Option<u64>,
}

impl From<Usage> for UsageStatus {
    fn from(u: Usage) -> UsageStatus {
        UsageStatus {
            cpu_seconds: u.cpu.as_secs_f64(),
            memory_bytes: u.memory_working_set,
        }
    }
}

/// One service's counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Replicas wanted.
    pub desired: u32,
    /// Replicas running.
    pub running: u32,
    /// Replicas in the balancer.
    pub ready: u32,
    /// Stopped by `shoal stop`, until `shoal start`.
    #[serde(default)]
    pub stopped: bool,
    /// Paused by `shoal pause`, until `shoal unpause`.
    #[serde(default)]
    pub paused: bool,
    /// What the balancer counted on its published ports: requests (or TCP
    /// connections), answers by class, failures, retries, bytes, connections.
    #[serde(default)]
    pub traffic: Snapshot,
    /// Requests in flight now.
    pub in_flight: u64,
    /// CPUs a replica may use (`deploy.resources.limits.cpus`).
    #[serde(default)]
    pub cpu_limit: Option<f64>,
    /// Memory a replica may use, bytes.
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// The autoscaler's last reading, for an autoscaled service.
    #[serde(default)]
    pub autoscale: Option<crate::autoscale::Reading>,
}

/// Each running replica's resource use, by (service, replica), as last sampled.
pub type Usages = Arc<Mutex<BTreeMap<(String, u32), Usage>>>;

/// Reads the live snapshot.
pub struct Observer {
    routes: Arc<Routes>,
    status: watch::Receiver<Status>,
    events: Arc<Mutex<Counts>>,
    usages: Usages,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Observer {
    /// An observer of the control plane's routes, published status, event counts
    /// and sampled usage.
    pub fn new(
        routes: Arc<Routes>,
        status: watch::Receiver<Status>,
        events: Arc<Mutex<Counts>>,
        usages: Usages,
    ) -> Observer {
        Observer {
            routes,
            status,
            events,
            usages,
        }
    }

    /// The status as of now.
    pub fn snapshot(&self) -> Status {
        let mut status = self.status.borrow().clone();
        for (name, svc) in status.services.iter_mut() {
            (svc.traffic, svc.in_flight) = self.routes.service(name);
        }
        let mut balanced: BTreeMap<(String, u32), (Snapshot, u64)> = BTreeMap::new();
        for name in status.services.keys() {
            for (replica, snap, in_flight) in self.routes.replicas(name) {
                balanced.insert((name.clone(), replica), (snap, in_flight));
            }
        }
        let usages = self.usages.lock().expect("not poisoned").clone();
        for r in status.replicas.iter_mut() {
            let key = (r.service.clone(), r.replica);
            if let Some((snap, in_flight)) = balanced.remove(&key) {
                r.traffic = Some(snap);
                r.in_flight = in_flight;
                r.usage = usages.get(&key).copied().map(UsageStatus::from);
            }
        }
        let counts = self.events.lock().expect("not poisoned").clone();
        for ((service, reason), n) in counts {
            status
                .event_counts
                .entry(service)
                .or_default()
                .insert(reason, n);
        }
        status
    }
}
