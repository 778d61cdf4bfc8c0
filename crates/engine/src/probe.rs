//! Health probes the control plane runs itself (`x-shoal.health`): an HTTP `GET` (2xx
//! or 3xx is healthy) or a TCP connect, straight to each replica's address, faster
//! than the engine's healthcheck and without a shell in the image.
//!
//! Results are folded into what the reconciler sees of a container (its health), so
//! phases, the balancer and restarts follow probes exactly as they follow the
//! engine's checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_runtime::{ContainerInfo, Health, State};
use shoal_spec::{Probe, Project};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// What the probes know of one container.
#[derive(Clone, Debug, Default)]
struct Record {
    ok_in_row: u32,
    failed_in_row: u32,
    /// `Some(true)` once healthy, `Some(false)` once unhealthy.
    healthy: Option<bool>,
    last_error: String,
    next_due: Option<Instant>,
    started: Option<Instant>,
    running: bool,
}

/// A probe target.
#[derive(Clone)]
struct Target {
    id: String,
    addr: String,
    probe: Probe,
}

/// The probes of a project.
pub struct Probes {
    project: Mutex<Arc<Project>>,
    records: Mutex<HashMap<String, Record>>,
    targets: Mutex<Vec<Target>>,
    /// Woken when a probe changes a replica's health.
    pub changed: Arc<Notify>,
}

impl Probes {
    /// Probes for the services of `project` that have `x-shoal.health`.
    pub fn new(project: Arc<Project>) -> Arc<Probes> {
        Arc::new(Probes {
            project: Mutex::new(project),
            records: Mutex::new(HashMap::new()),
            targets: Mutex::new(Vec::new()),
            changed: Arc::new(Notify::new()),
        })
    }

    /// Takes a new version of the project (its services' probes may have changed).
    pub fn set_project(&self, project: Arc<Project>) {
        *self.project.lock().expect("not poisoned") = project;
    }

    fn project(&self) -> Arc<Project> {
        self.project.lock().expect("not poisoned").clone()
    }

    /// True when some service is probed.
    pub fn any(&self) -> bool {
        self.project()
            .services
            .values()
            .any(|s| s.x_shoal.health.is_some())
    }

    /// The replicas to probe: the running containers of probed services.
    pub fn set_targets(&self, observed: &[ContainerInfo]) {
        let mut targets = Vec::new();
        let project = self.project();
        let mut records = self.records.lock().expect("not poisoned");
        for c in observed {
            let Some(svc) = project.services.get(&c.service) else {
                continue;
            };
            let (Some(probe), Some(port)) = (&svc.x_shoal.health, svc.probe_port()) else {
                continue;
            };
            let network = svc
                .networks
                .keys()
                .next()
                .and_then(|k| project.networks.get(k))
                .map(|n| n.name.clone());
            let ip = match &network {
                Some(n) => c.addresses.get(n),
                None => c.addresses.values().next(),
            };
            let r = records.entry(c.id.clone()).or_default();
            let running = c.state == State::Running;
            if running && !r.running {
                // (Re)started: probe from scratch.
                *r = Record {
                    started: Some(Instant::now()),
                    running: true,
                    ..Record::default()
                };
            }
            r.running = running;
            if let (true, Some(ip)) = (running, ip) {
                targets.push(Target {
                    id: c.id.clone(),
                    addr: format!("{ip}:{port}"),
                    probe: probe.clone(),
                });
            }
        }
        let live: std::collections::HashSet<&str> =
            observed.iter().map(|c| c.id.as_str()).collect();
        records.retain(|id, _| live.contains(id.as_str()));
        *self.targets.lock().expect("not poisoned") = targets;
    }

    /// Folds probe results into `observed`: a probed container's health becomes the
    /// probe's, the faster signal (the engine's own unhealthy verdict still counts).
    pub fn overlay(&self, observed: &mut [ContainerInfo]) {
        let records = self.records.lock().expect("not poisoned");
        for c in observed.iter_mut() {
            let Some(r) = records.get(&c.id) else {
                continue;
            };
            if c.state != State::Running || c.health == Some(Health::Unhealthy) {
                continue;
            }
            c.health = Some(match r.healthy {
                Some(true) => Health::Healthy,
                Some(false) => Health::Unhealthy,
                None => Health::Starting,
            });
        }
    }

    /// Why a container is unhealthy, by the probes.
    pub fn reason(&self, id: &str) -> Option<String> {
        let records = self.records.lock().expect("not poisoned");
        let r = records.get(id)?;
        (r.healthy == Some(false)).then(|| r.last_error.clone())
    }

    /// Runs the probes until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let now = Instant::now();
            let due: Vec<Target> = {
                let mut records = self.records.lock().expect("not poisoned");
                self.targets
                    .lock()
                    .expect("not poisoned")
                    .iter()
                    .filter(|t| {
                        let r = records.entry(t.id.clone()).or_default();
                        if r.next_due.is_some_and(|d| d > now) {
                            return false;
                        }
                        r.next_due = Some(now + t.probe.interval);
                        true
                    })
                    .cloned()
                    .collect()
            };
            for t in due {
                let me = self.clone();
                tokio::spawn(async move {
                    let result = check(&t.addr, &t.probe).await;
                    me.record(&t, result);
                });
            }
        }
    }

    fn record(&self, t: &Target, result: Result<(), String>) {
        let mut records = self.records.lock().expect("not poisoned");
        let Some(r) = records.get_mut(&t.id) else {
            return;
        };
        let before = r.healthy;
        match result {
            Ok(()) => {
                r.ok_in_row += 1;
                r.failed_in_row = 0;
                if r.ok_in_row >= t.probe.healthy_after {
                    r.healthy = Some(true);
                }
            }
            Err(e) => {
                let in_start = r
                    .started
                    .is_some_and(|s| s.elapsed() < t.probe.start_period);
                r.ok_in_row = 0;
                if !in_start {
                    r.failed_in_row += 1;
                }
                r.last_error = format!("{e} {} times", r.failed_in_row.max(1));
                if r.failed_in_row >= t.probe.unhealthy_after {
                    r.healthy = Some(false);
                }
            }
        }
        if r.healthy != before {
            self.changed.notify_one();
        }
    }
}

/// One probe.
async fn check(addr: &str, probe: &Probe) -> Result<(), String> {
    let what = match &probe.http {
        Some(path) => format!("GET {path}"),
        None => "TCP connect".to_string(),
    };
    let attempt = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{what} failed ({e})"))?;
        let Some(path) = &probe.http else {
            return Ok(());
        };
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: shoal-probe\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .map_err(|e| format!("{what} failed ({e})"))?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)
            .await
            .map_err(|e| format!("{what} failed ({e})"))?;
        let code = std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|c| c.parse::<u16>().ok());
        match code {
            Some(c) if (200..400).contains(&c) => Ok(()),
            Some(c) => Err(format!("{what} answered {c}")),
            None => Err(format!("{what} got no HTTP answer")),
        }
    };
    match tokio::time::timeout(probe.timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("{what} timed out")),
    }
}
