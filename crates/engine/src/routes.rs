//! The published ports of a project and the replicas behind each: bound before any
//! container starts, pointed at the ready replicas after every pass, and drained of a
//! replica before it is stopped.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proxy::Snapshot;
use shoal_proxy::{Backends, DataPath, HashOn, LbConfig, Protocol, Route, Strategy};
use shoal_runtime::ContainerInfo;
use shoal_spec::{self as spec, Lb, Project, Service};
use tokio::sync::watch;

use crate::health::ready;
use crate::Error;

/// One published port.
struct Entry {
    service: String,
    target: u16,
    /// Engine-side name of the network the replicas are reached on.
    network: Option<String>,
    route: Arc<Route>,
    drain_timeout: Duration,
}

/// Every published port of a project.
///
/// The replicas behind a port are computed in one place, [`Routes::update`], from the
/// containers the last reconcile pass observed less those on their way out: a
/// replica leaving is marked ([`Routes::drain`]) and the set recomputed, never edited
/// by hand.
pub struct Routes {
    entries: Vec<Entry>,
    /// What the last pass observed.
    observed: Mutex<Vec<ContainerInfo>>,
    /// Containers draining or stopped by the control plane, by id.
    leaving: Mutex<HashSet<String>>,
    /// The threads serving the ports, stopped when the project stops.
    _data_path: DataPath,
}

/// The balancer settings of a service, from its `x-shoal.lb`.
pub fn lb_config(svc: &Service) -> LbConfig {
    let lb: Lb = svc.x_shoal.lb();
    let mut c = LbConfig::new(&svc.name);
    c.protocol = match lb.protocol {
        spec::Protocol::Auto => Protocol::Auto,
        spec::Protocol::Http => Protocol::Http,
        spec::Protocol::Tcp => Protocol::Tcp,
    };
    c.strategy = match lb.strategy {
        spec::Strategy::LeastRequest => Strategy::LeastRequest,
        spec::Strategy::RoundRobin => Strategy::RoundRobin,
        // The loader refuses `hash` without `hash_on`.
        spec::Strategy::Hash => Strategy::Hash(match lb.hash_on {
            None | Some(spec::HashOn::ClientIp) => HashOn::ClientIp,
            Some(spec::HashOn::Header(h)) => HashOn::Header(h),
            Some(spec::HashOn::Cookie(c)) => HashOn::Cookie(c),
        }),
    };
    c.retries = lb.retries;
    c.timeout = lb.timeout;
    c.connect_timeout = lb.connect_timeout;
    c.eject.failures = lb.eject_after;
    c
}

impl Routes {
    /// Binds every published TCP port of `project` and starts serving it (with no
    /// replica yet) until `stop` turns true.
    pub fn bind(project: &Project, stop: watch::Receiver<bool>) -> Result<Routes, Error> {
        let data_path = DataPath::from_env().map_err(Error::DataPath)?;
        let mut entries = Vec::new();
        for svc in project.services.values() {
            let network = svc
                .networks
                .keys()
                .next()
                .and_then(|k| project.networks.get(k))
                .map(|n| n.name.clone());
            for port in &svc.ports {
                if port.protocol != "tcp" {
                    tracing::warn!(service = %svc.name, "{}/{} is not published: shoal balances TCP only", port.target, port.protocol);
                    continue;
                }
                let Some((host_port, _)) = port.published_range() else {
                    continue;
                };
                let ip = if port.host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    &port.host_ip
                };
                let addr: SocketAddr = format!("{ip}:{host_port}")
                    .parse()
                    .or_else(|_| format!("[{ip}]:{host_port}").parse())
                    .map_err(|_| {
                        Error::Bind(
                            format!("{ip}:{host_port}"),
                            std::io::Error::other("not an address"),
                        )
                    })?;
                let route = Arc::new(Route::new(Backends::new(), lb_config(svc)));
                data_path
                    .serve(addr, route.clone(), stop.clone())
                    .map_err(|e| Error::Bind(addr.to_string(), e))?;
                tracing::info!(service = %svc.name, "listening on {addr} for {}:{}", svc.name, port.target);
                entries.push(Entry {
                    service: svc.name.clone(),
                    target: port.target,
                    network: network.clone(),
                    route,
                    drain_timeout: svc.x_shoal.lb().drain_timeout,
                });
            }
        }
        Ok(Routes {
            entries,
            observed: Mutex::default(),
            leaving: Mutex::default(),
            _data_path: data_path,
        })
    }

    fn addr_of(e: &Entry, c: &ContainerInfo) -> Option<SocketAddr> {
        let ip = match &e.network {
            Some(n) => c.addresses.get(n),
            None => c.addresses.values().next(),
        }?;
        format!("{ip}:{}", e.target).parse().ok()
    }

    /// Points every port at the ready replicas of its service that are not leaving:
    /// the only writer of the balancer's replica sets.
    pub fn update(&self, observed: &[ContainerInfo]) {
        *self.observed.lock().expect("not poisoned") = observed.to_vec();
        self.recompute();
    }

    fn recompute(&self) {
        let observed = self.observed.lock().expect("not poisoned");
        let leaving = self.leaving.lock().expect("not poisoned");
        for e in &self.entries {
            let addrs = observed
                .iter()
                .filter(|c| c.service == e.service && ready(c) && !leaving.contains(&c.id))
                .filter_map(|c| Routes::addr_of(e, c))
                .collect();
            e.route.backends.replace(addrs);
        }
    }

    /// Takes `c` out of its service's ports and waits until what it has in flight is
    /// done (or the service's drain timeout passes). It stays out until
    /// [`Routes::forget`].
    pub async fn drain(&self, c: &ContainerInfo) {
        self.leaving
            .lock()
            .expect("not poisoned")
            .insert(c.id.clone());
        self.recompute();
        for e in self.entries.iter().filter(|e| e.service == c.service) {
            let Some(addr) = Routes::addr_of(e, c) else {
                continue;
            };
            let left = e.route.backends.drain(addr, e.drain_timeout).await;
            if left > 0 {
                tracing::warn!(container = %c.name, "drain timed out with {left} requests in flight");
            }
        }
    }

    /// Takes `c` out of its service's ports at once, without waiting for what it has
    /// in flight (a failed successor that is about to be retired).
    pub fn exclude(&self, c: &ContainerInfo) {
        self.leaving
            .lock()
            .expect("not poisoned")
            .insert(c.id.clone());
        self.recompute();
    }

    /// `c` is gone (removed) or back (started again): its mark goes.
    pub fn forget(&self, c: &ContainerInfo) {
        self.leaving.lock().expect("not poisoned").remove(&c.id);
    }

    /// True when the balancer has ejected `c` for failing requests.
    pub fn ejected(&self, c: &ContainerInfo) -> bool {
        let now = shoal_proxy::now_ms();
        self.endpoints_of(c).iter().any(|ep| ep.ejected(now))
    }

    /// The balancer's endpoints of `c`, over its service's ports.
    fn endpoints_of(&self, c: &ContainerInfo) -> Vec<Arc<shoal_proxy::Endpoint>> {
        self.entries
            .iter()
            .filter(|e| e.service == c.service)
            .filter_map(|e| Some((e, Routes::addr_of(e, c)?)))
            .flat_map(|(e, addr)| {
                e.route
                    .backends
                    .endpoints()
                    .iter()
                    .filter(|ep| ep.addr == addr)
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// What the balancer has counted of `c` so far, over its service's ports.
    pub fn stats(&self, c: &ContainerInfo) -> Snapshot {
        let mut total = Snapshot::default();
        for ep in self.endpoints_of(c) {
            total.add(&ep.stats.snapshot());
        }
        total
    }

    /// What the balancer counted over `service`'s published ports, and its requests
    /// in flight now.
    pub fn service(&self, service: &str) -> (Snapshot, u64) {
        let mut total = Snapshot::default();
        let mut in_flight = 0u64;
        for route in self.of(service) {
            total.add(&route.stats.snapshot());
            in_flight += route
                .backends
                .endpoints()
                .iter()
                .map(|e| u64::from(e.in_flight()))
                .sum::<u64>();
        }
        (total, in_flight)
    }

    /// Each replica of `service` the last pass saw (those leaving left out), with
    /// what the balancer counted of it over the service's ports and its requests in
    /// flight: for the metrics.
    pub fn replicas(&self, service: &str) -> Vec<(u32, Snapshot, u64)> {
        let observed = self.observed.lock().expect("not poisoned").clone();
        let leaving = self.leaving.lock().expect("not poisoned").clone();
        let mut out: BTreeMap<u32, (Snapshot, u64)> = BTreeMap::new();
        for c in observed
            .iter()
            .filter(|c| c.service == service && !leaving.contains(&c.id))
        {
            for ep in self.endpoints_of(c) {
                let slot = out.entry(c.replica).or_default();
                slot.0.add(&ep.stats.snapshot());
                slot.1 += u64::from(ep.in_flight());
            }
        }
        out.into_iter().map(|(r, (s, f))| (r, s, f)).collect()
    }

    /// The published ports, as (service, host address, container port), to tell
    /// whether a new version of the project needs other listeners.
    pub fn ports(project: &Project) -> Vec<(String, String, u16)> {
        let mut out: Vec<(String, String, u16)> = project
            .services
            .values()
            .flat_map(|svc| {
                svc.ports
                    .iter()
                    .filter(|p| p.protocol == "tcp" && p.published_range().is_some())
                    .map(|p| {
                        (
                            svc.name.clone(),
                            format!("{}:{}", p.host_ip, p.published.clone().unwrap_or_default()),
                            p.target,
                        )
                    })
            })
            .collect();
        out.sort();
        out
    }

    /// The routes of a service, for the metrics and the autoscaler.
    pub fn of(&self, service: &str) -> Vec<Arc<Route>> {
        self.entries
            .iter()
            .filter(|e| e.service == service)
            .map(|e| e.route.clone())
            .collect()
    }
}
