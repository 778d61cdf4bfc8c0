//! Prometheus metrics, served on the project's metrics address: every series shoal
//! exports, named in [`names`], written on each scrape from the live [`Status`]
//! snapshot (the same one `shoal ps` and `shoal dashboard` read), which holds what
//! the control plane keeps anyway: the balancer's counters, the last pass's
//! replicas, the event counts, the sampled container use. A scrape reads the same
//! atomics the autoscaler reads.
//!
//! OpenMetrics text to a scraper that asks for it (Prometheus does), the classic text
//! format (0.0.4) to anything else; both from `prometheus-client`. Labels take fixed
//! values only (service names, replica numbers, phases, event reasons), and a replica
//! that is gone leaves no series behind: each scrape lists the replicas there are.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use shoal_proxy::{Snapshot, BUCKETS_US};
use shoal_runtime::{Runtime, State};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::status::{Observer, ReplicaStatus, ServiceStatus, Status, UsageStatus, Usages};

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
    /// Requests through the service's published ports, by status class.
    pub const SERVICE_REQUESTS: Name = (
        "shoal_service_requests",
        "Requests answered on the service's published ports, by status class (code 2xx...); TCP connections as code tcp.",
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
    /// Retries the budget refused.
    pub const SERVICE_BUDGET_REFUSALS: Name = (
        "shoal_service_retry_budget_refusals",
        "Retries refused because the service's retry budget was spent.",
    );
    /// Bytes from clients.
    pub const SERVICE_RECEIVED: Name = (
        "shoal_service_received_bytes",
        "Bytes read from clients on the service's published ports.",
    );
    /// Bytes to clients.
    pub const SERVICE_SENT: Name = (
        "shoal_service_sent_bytes",
        "Bytes written to clients on the service's published ports.",
    );
    /// Client connections accepted.
    pub const SERVICE_CONNECTIONS: Name = (
        "shoal_service_connections",
        "Client connections accepted on the service's published ports (HTTP or TCP).",
    );
    /// Client connections open.
    pub const SERVICE_OPEN: Name = (
        "shoal_service_connections_open",
        "Client connections open on the service's published ports.",
    );
    /// Requests in flight on a service.
    pub const SERVICE_IN_FLIGHT: Name = (
        "shoal_service_requests_in_flight",
        "Requests (or TCP connections) the service's replicas hold now.",
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
    /// Per replica: failed connections.
    pub const CONNECT_FAILURES: Name = (
        "shoal_connect_failures",
        "Connections from the balancer to the replica that failed (refused, timed out).",
    );
    /// Per replica: ejections.
    pub const EJECTIONS: Name = (
        "shoal_ejections",
        "Times the balancer ejected the replica for failing requests.",
    );
    /// Per replica: returns.
    pub const RETURNS: Name = (
        "shoal_ejection_returns",
        "Times an ejected replica answered its probe and took requests again.",
    );
    /// Per replica: upstream connections opened.
    pub const UPSTREAM: Name = (
        "shoal_upstream_connections",
        "Connections the balancer opened to the replica.",
    );
    /// Per replica: upstream connections open.
    pub const UPSTREAM_OPEN: Name = (
        "shoal_upstream_connections_open",
        "Connections from the balancer to the replica open now (in use or kept idle).",
    );
    /// Per replica: restarts.
    pub const RESTARTS: Name = (
        "shoal_replica_restarts",
        "Restarts the control plane made of the replica (after an exit or unhealthiness).",
    );
    /// Per replica: its phase, info-style.
    pub const REPLICA_STATE: Name = (
        "shoal_replica_state",
        "1 for the replica's phase (starting, ready, unhealthy, draining, stopped, exited).",
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
    /// Rollbacks.
    pub const ROLLBACKS: Name = (
        "shoal_rollout_rollbacks",
        "Rollouts of the service that failed and rolled back.",
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
    /// A replica's memory limit (cAdvisor's name).
    pub const MEMORY_LIMIT: Name = (
        "container_spec_memory_limit_bytes",
        "Memory limit of the replica's container (deploy.resources.limits.memory).",
    );
    /// A replica's CPU quota (cAdvisor's name).
    pub const CPU_QUOTA: Name = (
        "container_spec_cpu_quota",
        "CPU quota of the replica's container, microseconds per period (limits.cpus).",
    );
    /// A replica's CPU period (cAdvisor's name).
    pub const CPU_PERIOD: Name = (
        "container_spec_cpu_period",
        "CPU period of the replica's container, microseconds.",
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

/// How often the engine's stats are read.
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

/// The registry `/metrics` serves: the series of the live snapshot, and the control
/// plane's own process.
pub fn registry(observer: Arc<Observer>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Series(move || observer.snapshot())));
    r.register_collector(Box::new(Process));
    r
}

/// The exposition of `status` alone (OpenMetrics, or the classic text format): what
/// a scrape would read of it, without the process' own series.
pub fn exposition(status: Status, openmetrics: bool) -> String {
    let mut r = Registry::default();
    r.register_collector(Box::new(Series(move || status.clone())));
    encode(&r, openmetrics)
}

fn encode(registry: &Registry, openmetrics: bool) -> String {
    let mut body = String::new();
    let _ = if openmetrics {
        prometheus_client::encoding::text::encode(&mut body, registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut body, registry)
    };
    body
}

/// The series of the status `source` gives on each scrape.
struct Series<F>(F);

impl<F> std::fmt::Debug for Series<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Series")
    }
}

/// The control plane's process: CPU, memory, open files.
#[derive(Debug)]
struct Process;

type Labels = Vec<(&'static str, String)>;

/// One gauge or counter family: (labels, value) pairs.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    (name, help): names::Name,
    kind: MetricType,
    rows: Vec<(Labels, f64)>,
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

fn service(s: &str) -> Labels {
    vec![("service", s.to_string())]
}

fn replica(s: &str, r: u32) -> Labels {
    vec![("service", s.to_string()), ("replica", r.to_string())]
}

impl<F: Fn() -> Status + Send + Sync + 'static> Collector for Series<F> {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let status = (self.0)();
        let (name, help) = names::BUILD;
        enc.encode_descriptor(name, help, None, MetricType::Info)?
            .encode_info(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])?;
        let (gauge, counter) = (MetricType::Gauge, MetricType::Counter);

        // Per service.
        let per = |f: &dyn Fn(&ServiceStatus) -> f64| {
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
        let mut answers = Vec::new();
        for (name, s) in &status.services {
            let t = &s.traffic;
            for (i, n) in t.classes.iter().enumerate() {
                let code = format!("{}xx", i + 1);
                answers.push((vec![("service", name.clone()), ("code", code)], *n as f64));
            }
            let tcp = t.requests.saturating_sub(t.classes.iter().sum());
            if tcp > 0 {
                let labels = vec![("service", name.clone()), ("code", "tcp".to_string())];
                answers.push((labels, tcp as f64));
            }
        }
        family(&mut enc, names::SERVICE_REQUESTS, counter, answers)?;
        let traffic = |f: &dyn Fn(&Snapshot) -> u64| per(&|s| f(&s.traffic) as f64);
        family(
            &mut enc,
            names::SERVICE_FAILURES,
            counter,
            traffic(&|t| t.failures),
        )?;
        family(
            &mut enc,
            names::SERVICE_RETRIES,
            counter,
            traffic(&|t| t.retries),
        )?;
        family(
            &mut enc,
            names::SERVICE_BUDGET_REFUSALS,
            counter,
            traffic(&|t| t.budget_refusals),
        )?;
        family(
            &mut enc,
            names::SERVICE_RECEIVED,
            counter,
            traffic(&|t| t.bytes_in),
        )?;
        family(
            &mut enc,
            names::SERVICE_SENT,
            counter,
            traffic(&|t| t.bytes_out),
        )?;
        family(
            &mut enc,
            names::SERVICE_CONNECTIONS,
            counter,
            traffic(&|t| t.connections),
        )?;
        family(&mut enc, names::SERVICE_OPEN, gauge, traffic(&|t| t.open))?;
        family(
            &mut enc,
            names::SERVICE_IN_FLIGHT,
            gauge,
            per(&|s| s.in_flight as f64),
        )?;

        // Per replica: the ones in the balancer's sets (those leaving are left out).
        let balanced: Vec<_> = status
            .replicas
            .iter()
            .filter_map(|r| Some((r, r.traffic.as_ref()?)))
            .collect();
        let each = |f: &dyn Fn(&ReplicaStatus, &Snapshot) -> f64| {
            balanced
                .iter()
                .map(|(r, t)| (replica(&r.service, r.replica), f(r, t)))
                .collect::<Vec<_>>()
        };
        family(
            &mut enc,
            names::REQUESTS,
            counter,
            each(&|_, t| t.requests as f64),
        )?;
        family(
            &mut enc,
            names::ERRORS,
            counter,
            each(&|_, t| (t.failures + t.server_errors) as f64),
        )?;
        family(
            &mut enc,
            names::IN_FLIGHT,
            gauge,
            each(&|r, _| r.in_flight as f64),
        )?;
        family(
            &mut enc,
            names::CONNECT_FAILURES,
            counter,
            each(&|_, t| t.connect_failures as f64),
        )?;
        family(
            &mut enc,
            names::EJECTIONS,
            counter,
            each(&|_, t| t.ejections as f64),
        )?;
        family(
            &mut enc,
            names::RETURNS,
            counter,
            each(&|_, t| t.returns as f64),
        )?;
        family(
            &mut enc,
            names::UPSTREAM,
            counter,
            each(&|_, t| t.connections as f64),
        )?;
        family(
            &mut enc,
            names::UPSTREAM_OPEN,
            gauge,
            each(&|_, t| t.open as f64),
        )?;
        let (name, help) = names::DURATION;
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (r, t) in &balanced {
            // Per bucket, not cumulative: the encoder adds them up.
            let buckets: Vec<(f64, u64)> = BUCKETS_US
                .iter()
                .zip(t.latency)
                .map(|(b, n)| {
                    let le = if *b == u64::MAX {
                        f64::INFINITY
                    } else {
                        *b as f64 / 1e6
                    };
                    (le, n)
                })
                .collect();
            m.encode_family(&replica(&r.service, r.replica))?
                .encode_histogram::<NoLabelSet>(
                    t.latency_sum_us as f64 / 1e6,
                    t.latency.iter().sum(),
                    &buckets,
                    None,
                )?;
        }
        let all = |f: &dyn Fn(&ReplicaStatus) -> Option<f64>| {
            status
                .replicas
                .iter()
                .filter_map(|r| Some((replica(&r.service, r.replica), f(r)?)))
                .collect::<Vec<_>>()
        };
        family(
            &mut enc,
            names::RESTARTS,
            counter,
            all(&|r| Some(f64::from(r.record.restarts))),
        )?;
        family(
            &mut enc,
            names::REPLICA_STATE,
            gauge,
            status
                .replicas
                .iter()
                .map(|r| {
                    let mut labels = replica(&r.service, r.replica);
                    let phase = crate::event::phase_name(r.record.phase).to_string();
                    labels.push(("phase", phase));
                    (labels, 1.0)
                })
                .collect(),
        )?;

        // The replicas' containers, from the engine's stats and the service's limits.
        let usage =
            |f: &dyn Fn(&UsageStatus) -> Option<f64>| all(&|r| r.usage.as_ref().and_then(f));
        family(
            &mut enc,
            names::CONTAINER_CPU,
            counter,
            usage(&|u| Some(u.cpu_seconds)),
        )?;
        family(
            &mut enc,
            names::CONTAINER_MEMORY,
            gauge,
            usage(&|u| u.memory_bytes.map(|m| m as f64)),
        )?;
        let limit = |f: &dyn Fn(&ServiceStatus) -> Option<f64>| {
            all(&|r| {
                r.usage?;
                f(status.services.get(&r.service)?)
            })
        };
        family(
            &mut enc,
            names::MEMORY_LIMIT,
            gauge,
            limit(&|s| s.memory_limit.map(|m| m as f64)),
        )?;
        family(
            &mut enc,
            names::CPU_QUOTA,
            gauge,
            limit(&|s| s.cpu_limit.map(|c| (c * CPU_PERIOD_US).round())),
        )?;
        family(
            &mut enc,
            names::CPU_PERIOD,
            gauge,
            limit(&|s| s.cpu_limit.map(|_| CPU_PERIOD_US)),
        )?;

        // Events and rollouts.
        let mut counts = Vec::new();
        for (s, reasons) in &status.event_counts {
            for (reason, n) in reasons {
                counts.push((
                    vec![("service", s.clone()), ("reason", reason.clone())],
                    *n as f64,
                ));
            }
        }
        family(&mut enc, names::EVENTS, counter, counts)?;
        let mut revisions = Vec::new();
        let mut updated = Vec::new();
        let mut states = Vec::new();
        let mut rollbacks = Vec::new();
        for (name, r) in &status.rollouts {
            revisions.push((service(name), f64::from(r.revision)));
            rollbacks.push((service(name), r.rollbacks as f64));
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
        family(&mut enc, names::ROLLBACKS, counter, rollbacks)?;

        // The autoscalers.
        let (mut value, mut target) = (Vec::new(), Vec::new());
        for (name, s) in &status.services {
            if let Some(a) = &s.autoscale {
                let labels = vec![("service", name.clone()), ("metric", a.metric.to_string())];
                value.push((labels.clone(), a.value));
                target.push((labels, a.target));
            }
        }
        family(&mut enc, names::AUTOSCALE_VALUE, gauge, value)?;
        family(&mut enc, names::AUTOSCALE_TARGET, gauge, target)?;
        Ok(())
    }
}

/// The CFS period the engine uses for `--cpus` (Docker's), µs.
const CPU_PERIOD_US: f64 = 100_000.0;

impl Collector for Process {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        if let Some((rss, cpu, fds)) = process() {
            family(
                &mut enc,
                names::RSS,
                MetricType::Gauge,
                vec![(Vec::new(), rss)],
            )?;
            family(
                &mut enc,
                names::CPU,
                MetricType::Counter,
                vec![(Vec::new(), cpu)],
            )?;
            family(
                &mut enc,
                names::FDS,
                MetricType::Gauge,
                vec![(Vec::new(), fds)],
            )?;
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
                        let (status, kind, body) = if req.uri().path() != "/metrics" {
                            (404, "text/plain", "not found: try /metrics\n".to_string())
                        } else if open {
                            (
                                200,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                encode(&registry, true),
                            )
                        } else {
                            (
                                200,
                                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                                encode(&registry, false),
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
