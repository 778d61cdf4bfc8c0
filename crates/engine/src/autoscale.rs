//! The autoscaler loop's step: every second, sample each autoscaled service's metric
//! from its published ports (what the balancer measured) and ask the policy
//! (`shoal-scale`) for a replica count.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use shoal_proxy::Snapshot;
use shoal_runtime::{ContainerInfo, Runtime};
use shoal_scale::{Config, Policy, Sample};
use shoal_spec::{Metric, Project, Service, Words};

use crate::clock::Clock;
use crate::desired::desired_count;
use crate::health::ready;
use crate::routes::Routes;

/// A service's autoscaler, and what it last read from the counters.
struct Entry {
    policy: Box<dyn Policy>,
    last: Option<(Duration, Snapshot)>,
}

/// The autoscalers of a project.
pub struct Scaler {
    rt: Arc<dyn Runtime>,
    project: Arc<Project>,
    routes: Arc<Routes>,
    clock: Arc<dyn Clock>,
    entries: HashMap<String, Entry>,
    /// The last CPU time reading of each container: (clock time, CPU time).
    cpu: HashMap<String, (Duration, Duration)>,
    /// What each autoscaled service's policy last read: its metric per ready replica
    /// against its target.
    pub last: BTreeMap<String, Reading>,
}

/// An autoscaler's last reading of its metric.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    /// `concurrency`, `rps`, `cpu` or `latency_p95`.
    pub metric: String,
    /// The metric per ready replica.
    pub value: f64,
    /// The target per ready replica.
    pub target: f64,
}

/// The policy settings of a service's `x-shoal.autoscale`.
pub fn policy_config(svc: &Service) -> Option<Config> {
    let a = svc.x_shoal.autoscale.as_ref()?;
    let mut c = Config::new(a.min, a.max, a.metric.as_str(), a.target);
    c.stable_window = a.stable_window;
    c.panic_window = a.panic_window;
    c.scale_down_delay = a.scale_down_delay;
    c.tolerance = a.tolerance;
    Some(c)
}

/// A fresh autoscaler for `svc`, if it is autoscaled.
fn entry(svc: &Service, now: Duration) -> Option<Entry> {
    let config = policy_config(svc)?;
    let policy: Box<dyn Policy> = match svc.x_shoal.autoscale.as_ref()?.policy {
        shoal_spec::Policy::Shoal => Box::new(shoal_scale::Autoscaler::new(config, now)),
        shoal_spec::Policy::Hpa => Box::new(shoal_scale::Hpa::new(config)),
        shoal_spec::Policy::Kpa => Box::new(shoal_scale::Kpa::new(config)),
    };
    Some(Entry { policy, last: None })
}

impl Scaler {
    /// Autoscalers for the services of `project` that have `x-shoal.autoscale`.
    pub fn new(
        rt: Arc<dyn Runtime>,
        project: Arc<Project>,
        routes: Arc<Routes>,
        clock: Arc<dyn Clock>,
    ) -> Scaler {
        let now = clock.now();
        let entries = project
            .services
            .values()
            .filter_map(|s| Some((s.name.clone(), entry(s, now)?)))
            .collect();
        Scaler {
            rt,
            project,
            routes,
            clock,
            entries,
            cpu: HashMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// Takes a new version of the project: a service whose `x-shoal.autoscale`
    /// changed starts its policy afresh, the others keep their history.
    pub fn set_project(&mut self, project: Arc<Project>) {
        let now = self.clock.now();
        for svc in project.services.values() {
            let before = self
                .project
                .services
                .get(&svc.name)
                .and_then(|s| s.x_shoal.autoscale.as_ref());
            if before != svc.x_shoal.autoscale.as_ref() || !self.entries.contains_key(&svc.name) {
                match entry(svc, now) {
                    Some(e) => self.entries.insert(svc.name.clone(), e),
                    None => self.entries.remove(&svc.name),
                };
            }
        }
        self.entries
            .retain(|name, _| project.services.contains_key(name));
        self.project = project;
    }

    /// True when some service is autoscaled.
    pub fn any(&self) -> bool {
        !self.entries.is_empty()
    }

    /// One step: the counts to change, with their reasons.
    pub async fn tick(
        &mut self,
        overrides: &BTreeMap<String, u32>,
        observed: &[ContainerInfo],
    ) -> Vec<(String, u32, String)> {
        let now = self.clock.now();
        let cpu = self.cpu_percent(now, observed).await;
        let mut changes = Vec::new();
        for (name, entry) in self.entries.iter_mut() {
            let svc = &self.project.services[name];
            let ready_n = observed
                .iter()
                .filter(|c| &c.service == name && ready(c))
                .count() as u32;
            let (snap, in_flight) = self.routes.service(name);
            let Some(metric) = svc.x_shoal.autoscale.as_ref().map(|a| a.metric) else {
                continue;
            };
            let since_last = entry
                .last
                .as_ref()
                .map(|(at, before)| (now.saturating_sub(*at).as_secs_f64(), snap.since(before)));
            let total = match metric {
                Metric::Concurrency => Some(in_flight as f64),
                Metric::Cpu => cpu.get(name.as_str()).copied(),
                Metric::Rps => since_last
                    .and_then(|(secs, delta)| (secs > 0.0).then(|| delta.arrivals as f64 / secs)),
                // Not additive: the p95 times the ready replicas, so that the need is
                // ceil(ready × p95 / target), as the HPA computes it.
                Metric::LatencyP95 => since_last.and_then(|(_, delta)| {
                    delta
                        .quantile(0.95)
                        .map(|p| p.as_secs_f64() * 1000.0 * f64::from(ready_n.max(1)))
                }),
            };
            entry.last = Some((now, snap));
            if let Some(total) = total {
                self.last.insert(
                    name.clone(),
                    Reading {
                        metric: metric.to_string(),
                        value: total / f64::from(ready_n.max(1)),
                        target: entry.policy.config().target,
                    },
                );
                entry.policy.record(Sample {
                    at: now,
                    total,
                    ready: ready_n,
                });
            }
            let current = desired_count(svc, overrides);
            let decision = entry.policy.decide(now, current, ready_n);
            if decision.desired != current {
                let why = decision.reason.unwrap_or_default();
                changes.push((name.clone(), decision.desired, why));
            }
        }
        changes
    }

    /// Σ CPU use of each cpu-scaled service's ready replicas, in percent of each
    /// replica's CPU limit (one core when it has none), from two readings a tick apart.
    async fn cpu_percent(
        &mut self,
        now: Duration,
        observed: &[ContainerInfo],
    ) -> HashMap<String, f64> {
        let mut out = HashMap::new();
        for name in self.entries.keys() {
            let svc = &self.project.services[name];
            if svc.x_shoal.autoscale.as_ref().map(|a| a.metric) != Some(Metric::Cpu) {
                continue;
            }
            let limit = svc.deploy.resources.limits.cpus.unwrap_or(1.0).max(0.01);
            let mut total = None;
            for c in observed.iter().filter(|c| &c.service == name && ready(c)) {
                let Ok(used) = self.rt.cpu_time(&c.id).await else {
                    continue;
                };
                if let Some((then, before)) = self.cpu.insert(c.id.clone(), (now, used)) {
                    let wall = now.saturating_sub(then).as_secs_f64();
                    if wall > 0.0 {
                        let cores = used.saturating_sub(before).as_secs_f64() / wall;
                        *total.get_or_insert(0.0) += cores / limit * 100.0;
                    }
                }
            }
            if let Some(t) = total {
                out.insert(name.clone(), t);
            }
        }
        let live: std::collections::HashSet<&str> =
            observed.iter().map(|c| c.id.as_str()).collect();
        self.cpu.retain(|id, _| live.contains(id.as_str()));
        out
    }
}
