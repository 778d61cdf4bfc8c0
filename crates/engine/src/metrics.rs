//! Prometheus metrics, served on the project's metrics address: every series shoal
//! exports, named in [`names`], read on each scrape from what the control plane keeps
//! anyway (the balancer's per-replica counters, the last pass's status, the event
//! counts). Nothing is added to the request path: a scrape reads the same atomics
//! the autoscaler reads.
//!
//! OpenMetrics text to a scraper that asks for it (Prometheus does), the classic text
//! format (0.0.4) to anything else; both from `prometheus-client`. Labels take fixed
//! values only (service names, replica numbers, phases, event reasons), and a replica
//! that is gone leaves no series behind: each scrape lists the replicas there are.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use shoal_proxy::metrics::{Snapshot, BUCKETS_US};
use shoal_runtime::{Runtime, State, Usage};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::control::Status;
use crate::event::Counts;
use crate::routes::Routes;

/// Every series, in one place: its name as registered (the encoder adds `_total` to
/// counters, `_info` to infos), its help.
pub mod names {
    /// (name, help)
    pub type Name = (&'static str, &'static str);
    /// shoal's version.
    pub const BUILD: Name = ("shoal_build", "shoal's version.");
    /// Replicas wanted.
    pub const DESIRED: Name = (
        "shoal_service_replicas_desired",
        "Replicas the service should run.",
    );
    /// Replicas running.
    pub const RUNNING: Name = (
        "shoal_service_replicas_running",
        "Replicas whose container runs.",
    );
    /// Replicas in the balancer.
    pub const READY: Name = (
        "shoal_service_replicas_ready",
        "Replicas ready: running, healthy, in the balancer.",
    );
    /// Replicas by phase.
    pub const PHASES: Name = (
        "shoal_replicas",
        "Replicas by phase (starting, ready, unhealthy, draining, stopped, exited).",
    );
    /// Requests through the service's published ports.
    pub const SERVICE_REQUESTS: Name = (
        "shoal_service_requests",
        "Requests (or TCP connections) answered through the service's published ports.",
    );
    /// Of those, failed.
    pub const SERVICE_FAILURES: Name = (
        "shoal_service_request_failures",
        "Requests that failed: no replica, no answer, a 502/503/504, a timeout.",
    );
    /// Retries.
    pub const SERVICE_RETRIES: Name = (
        "shoal_service_retries",
        "Attempts retried on another replica.",
    );
    /// Per replica: requests.
    pub const REQUESTS: Name = (
        "shoal_requests",
        "Requests the balancer sent the replica and it answered.",
    );
    /// Per replica: failed requests.
    pub const ERRORS: Name = (
        "shoal_request_errors",
        "Requests of the replica that failed (no answer, or any 5xx).",
    );
    /// Per replica: in flight.
    pub const IN_FLIGHT: Name = (
        "shoal_requests_in_flight",
        "Requests in flight on the replica.",
    );
    /// Per replica: latency to the response head.
    pub const DURATION: Name = (
        "shoal_request_duration_seconds",
        "Time from sending a request to the replica to its response head.",
    );
    /// Events by reason.
    pub const EVENTS: Name = (
        "shoal_events",
        "Events by service and reason (see `shoal events`).",
    );
    /// Revision of a service.
    pub const REVISION: Name = (
        "shoal_rollout_revision",
        "The revision the service runs (or rolls to).",
    );
    /// Replicas on the revision.
    pub const UPDATED: Name = (
        "shoal_rollout_replicas_updated",
        "Replicas on the target revision and ready, in the last rollout.",
    );
    /// Rollout state.
    pub const ROLLOUT_STATE: Name = (
        "shoal_rollout_state",
        "1 for the state of the service's last rollout.",
    );
    /// Resident memory of the control plane.
    pub const RSS: Name = (
        "process_resident_memory_bytes",
        "Resident memory of the control plane.",
    );
    /// CPU of the control plane.
    pub const CPU: Name = (
        "process_cpu_seconds",
        "CPU time of the control plane (user and system).",
    );
    /// Open files of the control plane.
    pub const FDS: Name = (
        "process_open_fds",
        "File descriptors the control plane holds.",
    );
    /// A replica's CPU time (cAdvisor's name).
    pub const CONTAINER_CPU: Name = (
        "container_cpu_usage_seconds",
        "CPU time the replica's container has used.",
    );
    /// A replica's working set (cAdvisor's name).
    pub const CONTAINER_MEMORY: Name = (
        "container_memory_working_set_bytes",
        "Memory the replica's container uses, less the page cache the kernel can take back.",
    );
    /// The autoscaler's metric.
    pub const AUTOSCALE_VALUE: Name = (
        "shoal_autoscale_value",
        "The autoscaled metric per ready replica, as the autoscaler last read it.",
    );
    /// The autoscaler's target.
    pub const AUTOSCALE_TARGET: Name = (
        "shoal_autoscale_target",
        "The autoscaler's target per ready replica.",
    );
}

/// Each running replica's resource use, by (service, replica), as last sampled.
pub type Usages = Arc<Mutex<BTreeMap<(String, u32), Usage>>>;

/// How often the engine's stats are read for the metrics.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads every running container's stats from the engine every few seconds into
/// `usages`, until the task is dropped. (A scrape cannot wait for the engine.)
pub async fn sample(rt: Arc<dyn Runtime>, project: String, usages: Usages) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let Ok(list) = rt.list(&project).await else {
            continue;
        };
        let mut next = BTreeMap::new();
        for c in list.iter().filter(|c| c.state == State::Running) {
            if let Ok(u) = rt.usage(&c.id).await {
                next.insert((c.service.clone(), c.replica), u);
            }
        }
        *usages.lock().expect("not poisoned") = next;
    }
}

/// What a scrape reads.
pub struct Exporter {
    routes: Arc<Routes>,
    status: watch::Receiver<Status>,
    events: Arc<Mutex<Counts>>,
    usages: Usages,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exporter")
    }
}

impl Exporter {
    /// An exporter over the control plane's routes, status and event counts.
    pub fn new(
        routes: Arc<Routes>,
        status: watch::Receiver<Status>,
        events: Arc<Mutex<Counts>>,
        usages: Usages,
    ) -> Exporter {
        Exporter {
            routes,
            status,
            events,
            usages,
        }
    }

    /// A registry holding only this exporter.
    pub fn registry(self) -> Registry {
        let mut r = Registry::default();
        r.register_collector(Box::new(self));
        r
    }
}

type Labels<'a> = Vec<(&'static str, String)>;

/// One gauge or counter family: (labels, value) pairs.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    (name, help): names::Name,
    kind: MetricType,
    rows: Vec<(Labels<'_>, f64)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        let mut f = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => {
                f.encode_counter::<NoLabelSet, _, f64>(&v, None)?;
            }
            _ => f.encode_gauge(&v)?,
        }
    }
    Ok(())
}

fn service(s: &str) -> Labels<'static> {
    vec![("service", s.to_string())]
}

impl Collector for Exporter {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let status = self.status.borrow().clone();
        let (name, help) = names::BUILD;
        enc.encode_descriptor(name, help, None, MetricType::Info)?
            .encode_info(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])?;

        let gauge = MetricType::Gauge;
        let counter = MetricType::Counter;
        let per = |f: &dyn Fn(&crate::control::ServiceStatus) -> f64| {
            status
                .services
                .iter()
                .map(|(n, s)| (service(n), f(s)))
                .collect::<Vec<_>>()
        };
        family(
            &mut enc,
            names::DESIRED,
            gauge,
            per(&|s| f64::from(s.desired)),
        )?;
        family(
            &mut enc,
            names::RUNNING,
            gauge,
            per(&|s| f64::from(s.running)),
        )?;
        family(&mut enc, names::READY, gauge, per(&|s| f64::from(s.ready)))?;
        let mut phases: BTreeMap<(String, String), f64> = Default::default();
        for r in &status.replicas {
            let phase = crate::event::phase_name(r.record.phase).to_string();
            *phases.entry((r.service.clone(), phase)).or_default() += 1.0;
        }
        family(
            &mut enc,
            names::PHASES,
            gauge,
            phases
                .into_iter()
                .map(|((s, p), n)| (vec![("service", s), ("phase", p)], n))
                .collect(),
        )?;

        // The balancer: per service, then per replica.
        let mut svc_rows = (Vec::new(), Vec::new(), Vec::new());
        let mut rep_rows = (Vec::new(), Vec::new(), Vec::new());
        let mut histograms = Vec::new();
        for name in status.services.keys() {
            let mut total = Snapshot::default();
            for route in self.routes.of(name) {
                total.add(&route.stats.snapshot());
            }
            svc_rows.0.push((service(name), total.requests as f64));
            svc_rows.1.push((service(name), total.failures as f64));
            svc_rows.2.push((service(name), total.retries as f64));
            for (replica, snap, in_flight) in self.routes.replicas(name) {
                let labels = vec![("service", name.clone()), ("replica", replica.to_string())];
                rep_rows.0.push((labels.clone(), snap.requests as f64));
                rep_rows
                    .1
                    .push((labels.clone(), (snap.failures + snap.server_errors) as f64));
                rep_rows.2.push((labels.clone(), in_flight as f64));
                histograms.push((labels, snap));
            }
        }
        family(&mut enc, names::SERVICE_REQUESTS, counter, svc_rows.0)?;
        family(&mut enc, names::SERVICE_FAILURES, counter, svc_rows.1)?;
        family(&mut enc, names::SERVICE_RETRIES, counter, svc_rows.2)?;
        family(&mut enc, names::REQUESTS, counter, rep_rows.0)?;
        family(&mut enc, names::ERRORS, counter, rep_rows.1)?;
        family(&mut enc, names::IN_FLIGHT, gauge, rep_rows.2)?;
        let (name, help) = names::DURATION;
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, snap) in &histograms {
            // Per bucket, not cumulative: the encoder adds them up.
            let buckets: Vec<(f64, u64)> = BUCKETS_US
                .iter()
                .zip(snap.latency)
                .map(|(b, n)| {
                    let le = if *b == u64::MAX {
                        f64::INFINITY
                    } else {
                        *b as f64 / 1e6
                    };
                    (le, n)
                })
                .collect();
            m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
                snap.latency_sum_us as f64 / 1e6,
                snap.latency.iter().sum(),
                &buckets,
                None,
            )?;
        }

        // Events and rollouts.
        let counts = self.events.lock().expect("not poisoned").clone();
        family(
            &mut enc,
            names::EVENTS,
            counter,
            counts
                .into_iter()
                .map(|((s, r), n)| (vec![("service", s), ("reason", r)], n as f64))
                .collect(),
        )?;
        let mut revisions = Vec::new();
        let mut updated = Vec::new();
        let mut states = Vec::new();
        for (name, r) in &status.rollouts {
            revisions.push((service(name), f64::from(r.revision)));
            if let Some(rec) = &r.rollout {
                updated.push((service(name), f64::from(rec.done)));
                let state = serde_json::to_value(rec.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                states.push((vec![("service", name.clone()), ("state", state)], 1.0));
            }
        }
        family(&mut enc, names::REVISION, gauge, revisions)?;
        family(&mut enc, names::UPDATED, gauge, updated)?;
        family(&mut enc, names::ROLLOUT_STATE, gauge, states)?;

        // The replicas' containers, from the engine's stats.
        // Only the replicas there are now (the samples are up to 5 s old).
        let present = self.routes.present();
        let usages = self.usages.lock().expect("not poisoned").clone();
        let (mut cpu, mut mem) = (Vec::new(), Vec::new());
        for ((s, r), u) in usages {
            if !present.contains(&(s.clone(), r)) {
                continue;
            }
            let labels = vec![("service", s), ("replica", r.to_string())];
            cpu.push((labels.clone(), u.cpu.as_secs_f64()));
            if let Some(m) = u.memory_working_set {
                mem.push((labels, m as f64));
            }
        }
        family(&mut enc, names::CONTAINER_CPU, counter, cpu)?;
        family(&mut enc, names::CONTAINER_MEMORY, gauge, mem)?;

        // The autoscalers.
        let (mut value, mut target) = (Vec::new(), Vec::new());
        for (name, s) in &status.services {
            if let Some(a) = &s.autoscale {
                let labels = vec![("service", name.clone()), ("metric", a.metric.clone())];
                value.push((labels.clone(), a.value));
                target.push((labels, a.target));
            }
        }
        family(&mut enc, names::AUTOSCALE_VALUE, gauge, value)?;
        family(&mut enc, names::AUTOSCALE_TARGET, gauge, target)?;

        // The control plane's own process.
        if let Some((rss, cpu, fds)) = process() {
            family(&mut enc, names::RSS, gauge, vec![(Vec::new(), rss)])?;
            family(&mut enc, names::CPU, counter, vec![(Vec::new(), cpu)])?;
            family(&mut enc, names::FDS, gauge, vec![(Vec::new(), fds)])?;
        }
        Ok(())
    }
}

/// (resident bytes, CPU seconds, open fds) of this process, from /proc.
fn process() -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks;
    let pages: f64 = f.get(21)?.parse().ok()?;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    Some((pages * 4096.0, cpu, fds))
}

/// The metrics address of a project when none is set: 127.0.0.1, on a port from
/// 9464 (Prometheus' default exporter port range) up, chosen from the project's
/// name so that several projects on one host do not collide.
pub fn default_addr(project: &str) -> SocketAddr {
    let h = project.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    SocketAddr::from(([127, 0, 0, 1], 9464 + (h % 500) as u16))
}

/// Serves `registry` on `listener` until `stop` turns true: `GET /metrics`.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let registry = registry.clone();
                    async move {
                        let open = req
                            .headers()
                            .get(hyper::header::ACCEPT)
                            .and_then(|a| a.to_str().ok())
                            .is_some_and(|a| a.contains("application/openmetrics-text"));
                        let mut body = String::new();
                        let (status, kind) = if req.uri().path() != "/metrics" {
                            body.push_str("not found: try /metrics\n");
                            (404, "text/plain")
                        } else if open {
                            let _ = prometheus_client::encoding::text::encode(&mut body, &registry);
                            (
                                200,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                        } else {
                            let _ = prometheus_client::encoding::prometheus_text::encode(
                                &mut body, &registry,
                            );
                            (
                                200,
                                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                            )
                        };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", kind)
                                .body(Full::new(Bytes::from(body)))
                                .expect("a valid response"),
                        )
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
