//! The control plane's main loop: reconcile, keep the published ports pointed at the
//! ready replicas, answer commands, and on shutdown drain and stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use shoal_runtime::{Runtime, State};
use shoal_spec::Project;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::autoscale::Scaler;
use crate::clock::{Clock, SystemClock};
use crate::collect::Collector;
use crate::desired::desired_count;
use crate::desired::Desired;
use crate::event::{Event, Events};
use crate::health::ready;
use crate::order::start_order;
use crate::probe::Probes;
use crate::reconcile::Reconciler;
use crate::revision::Revisions;
use crate::routes::Routes;
use crate::status::{Observer, ReplicaStatus, RolloutStatus, ServiceStatus, Status, Usages};
use crate::Error;

/// How often the loop reconciles when nothing wakes it earlier.
const RESYNC: Duration = Duration::from_secs(2);
/// Shortest time between two passes, so a burst of events makes one pass.
const MIN_GAP: Duration = Duration::from_millis(200);

/// A request to the running control plane.
#[derive(Debug)]
pub enum Command {
    /// Set replica counts by hand.
    Scale(BTreeMap<String, u32>, oneshot::Sender<Result<(), String>>),
    /// Run a new version of the project (`shoal up` while a control plane runs): the
    /// services whose containers change roll; the reply names them.
    Apply(Box<Project>, oneshot::Sender<Result<Vec<String>, String>>),
    /// `shoal rollout undo|pause|resume`.
    Rollout(RolloutCommand, oneshot::Sender<Result<String, String>>),
    /// `shoal stop|start|restart|pause|unpause [SVC...]` (none: every service).
    Lifecycle(
        Lifecycle,
        Vec<String>,
        oneshot::Sender<Result<String, String>>,
    ),
    /// Stop: drain and stop every replica; with `remove`, also remove containers and
    /// networks (and named volumes with `volumes`), as `down` does.
    Shutdown {
        /// Remove containers and networks too.
        remove: bool,
        /// Remove named volumes too.
        volumes: bool,
    },
}

/// What `shoal stop`, `start`, `restart`, `pause` and `unpause` ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Drain and stop the replicas and keep them stopped (across control-plane
    /// restarts) until `start`, `restart` or `up`.
    Stop,
    /// Start the kept replicas again.
    Start,
    /// A rolling restart: each replica replaced by a fresh one, a batch at a time, as
    /// a rollout does (a stopped service is started first).
    Restart,
    /// Drain the running replicas, then freeze them; the service is left as it is
    /// (not healed) until unpaused, across control-plane restarts.
    Pause,
    /// Thaw them; they take requests again once ready.
    Unpause,
}

/// Where the control plane serves `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metrics {
    /// Nowhere.
    Off,
    /// On this address (an error when it is taken).
    At(SocketAddr),
    /// On the project's default port, or the next free one
    /// ([`crate::metrics::default_addr`]).
    Default,
}

/// A command for a service's rollout.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "action")]
pub enum RolloutCommand {
    /// Roll back to `to`, or to the revision before the current one.
    Undo {
        /// The service.
        service: String,
        /// The revision to go to.
        to: Option<u32>,
    },
    /// Start no new batch.
    Pause {
        /// The service.
        service: String,
    },
    /// Go on after a pause.
    Resume {
        /// The service.
        service: String,
    },
}

impl RolloutCommand {
    /// The service it is for.
    pub fn service(&self) -> &str {
        match self {
            RolloutCommand::Undo { service, .. }
            | RolloutCommand::Pause { service }
            | RolloutCommand::Resume { service } => service,
        }
    }
}

/// A way to talk to a running control plane.
#[derive(Clone)]
pub struct Handle {
    /// Commands in.
    pub commands: mpsc::Sender<Command>,
    /// Status out, updated after every pass.
    pub status: watch::Receiver<Status>,
    /// The live snapshot of it.
    pub observer: Arc<Observer>,
}

impl Handle {
    /// The status with the balancer's counts as of now: what `/status` and
    /// `/metrics` serve.
    pub fn snapshot(&self) -> Status {
        self.observer.snapshot()
    }
}

/// The control plane of one project.
pub struct ControlPlane {
    rt: Arc<dyn Runtime>,
    project: Arc<Project>,
    desired: Desired,
    reconciler: Reconciler,
    routes: Arc<Routes>,
    probes: Arc<Probes>,
    scaler: Scaler,
    stop_proxies: watch::Sender<bool>,
    status: watch::Sender<Status>,
    commands: mpsc::Receiver<Command>,
    /// Where the sampler of the engine's stats writes.
    usages: Usages,
    /// The replicas' output, into the log store.
    collector: Collector,
    /// The store's directory.
    logs: PathBuf,
    /// The receivers the store is forwarded to, and what stops their forwarders.
    forwarding: (Vec<shoal_spec::Forward>, watch::Sender<bool>),
}

impl ControlPlane {
    /// Binds every published port and creates networks and volumes. Nothing is
    /// started yet; a port that cannot be bound is an error before any container runs.
    /// `scale` (`up --scale`) sets replica counts, kept like `shoal scale`'s: the
    /// control plane is the only writer of `desired.json`.
    pub async fn start(
        rt: Arc<dyn Runtime>,
        project: Project,
        state_dir: PathBuf,
        scale: &BTreeMap<String, u32>,
        metrics: Metrics,
    ) -> Result<(ControlPlane, Handle), Error> {
        let mut desired =
            Desired::load(&state_dir).map_err(|e| Error::State(state_dir.clone(), e))?;
        if !scale.is_empty() {
            desired
                .set(scale)
                .map_err(|e| Error::State(state_dir.clone(), e))?;
        }
        let revisions =
            Revisions::load(&state_dir).map_err(|e| Error::State(state_dir.clone(), e))?;
        let logs = crate::collect::store_dir(&state_dir);
        let collector = Collector::open(rt.clone(), &project, &logs)
            .map_err(|e| Error::State(logs.clone(), e))?;
        let events = Events::open(&state_dir)
            .map_err(|e| Error::State(state_dir.clone(), e))?
            .with_store(collector.event_log());
        let (stop_proxies, stop_rx) = watch::channel(false);
        let routes = Arc::new(Routes::bind(&project, stop_rx)?);
        // Every listener is bound before anything is created.
        let metrics_listener = match metrics {
            Metrics::Off => None,
            Metrics::At(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| Error::Bind(addr.to_string(), e))?,
            ),
            Metrics::Default => {
                // The project's own port, or the next free one.
                let base = crate::metrics::default_addr(&project.name);
                let mut found = None;
                for i in 0..20 {
                    let addr = SocketAddr::new(base.ip(), base.port() + i);
                    if let Ok(l) = TcpListener::bind(addr).await {
                        found = Some(l);
                        break;
                    }
                }
                if found.is_none() {
                    tracing::warn!("no free metrics port from {base}: metrics are off");
                }
                found
            }
        };
        let probes = Probes::new(Arc::new(project.clone()));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
        let mut reconciler = Reconciler::new(rt.clone(), Arc::new(project.clone()))
            .with_routes(routes.clone())
            .with_probes(probes.clone())
            .with_clock(clock.clone())
            .with_revisions(revisions)
            .with_events(events);
        reconciler.set_stopped(desired.stopped.clone());
        reconciler.set_paused(desired.paused.clone());
        // What the last control plane left under way goes on.
        let images = reconciler.image_ids(&project).await;
        reconciler.apply(project, &images, "up", true);
        let adopted = rt.list(&reconciler.project().name).await?.len();
        reconciler.emit(Event::Started { adopted });
        let project = reconciler.project();
        probes.set_project(project.clone());
        let scaler = Scaler::new(rt.clone(), project.clone(), routes.clone(), clock);
        reconciler.infrastructure().await?;
        let (status_tx, status_rx) = watch::channel(Status {
            project: project.name.clone(),
            pid: std::process::id(),
            ports: Routes::ports(&project),
            metrics: metrics_listener
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.to_string()),
            ..Status::default()
        });
        let usages = Usages::default();
        let observer = Arc::new(Observer::new(
            routes.clone(),
            status_rx.clone(),
            reconciler.book().events.counts.clone(),
            usages.clone(),
        ));
        if let Some(listener) = metrics_listener {
            tokio::spawn(crate::metrics::serve(
                listener,
                Arc::new(crate::metrics::registry(observer.clone())),
                stop_proxies.subscribe(),
            ));
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        Ok((
            ControlPlane {
                rt,
                project,
                desired,
                reconciler,
                routes,
                probes,
                scaler,
                stop_proxies,
                status: status_tx,
                commands: cmd_rx,
                usages,
                collector,
                logs,
                forwarding: (Vec::new(), watch::channel(true).0),
            },
            Handle {
                commands: cmd_tx,
                status: status_rx,
                observer,
            },
        ))
    }

    /// Runs until a shutdown command; then drains and stops (or tears down).
    pub async fn run(mut self) -> Result<(), Error> {
        let wake = Arc::new(Notify::new());
        let events = {
            let wake = wake.clone();
            let mut stream = self.rt.events(&self.project.name);
            tokio::spawn(async move {
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(_) => wake.notify_one(),
                        Err(e) => {
                            tracing::warn!(error = %e, "engine event stream ended");
                            break;
                        }
                    }
                }
            })
        };

        self.forward();
        let sampler = Some(tokio::spawn(crate::metrics::sample(
            self.rt.clone(),
            self.project.name.clone(),
            self.usages.clone(),
        )));
        // Probes run whether or not a service has one now: a new version of the
        // project may bring some.
        let prober = Some(tokio::spawn(self.probes.clone().run()));
        let probed = self.probes.changed.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // A tick missed during a long pass is not made up by a burst of ticks a few
        // milliseconds apart (their rates would be noise).
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut observed = Vec::new();
        self.reconciler = self.reconciler.with_background_starts(wake.clone());
        let outcome = 'run: loop {
            let mut next = RESYNC;
            match self.reconciler.pass(&self.desired.counts).await {
                Ok(pass) => {
                    self.routes.update(&pass.observed);
                    self.collector.discover(&pass.observed);
                    self.report(&pass);
                    next = pass.next_in.map_or(RESYNC, |n| n.clamp(MIN_GAP, RESYNC));
                    observed = pass.observed;
                }
                Err(e) => tracing::warn!(error = %e, "reconcile pass failed; retrying"),
            }
            // A rollback switches a service to another revision: its probes and
            // autoscaler follow.
            self.follow_project();
            tokio::time::sleep(MIN_GAP).await;
            let resync = tokio::time::sleep(next.saturating_sub(MIN_GAP));
            tokio::pin!(resync);
            // Wait for a reason to pass again; autoscaler ticks that change nothing
            // are not one.
            loop {
                tokio::select! {
                    _ = wake.notified() => break,
                    _ = probed.notified() => break,
                    _ = &mut resync => break,
                    _ = tick.tick(), if self.scaler.any() => {
                        let changes = self.scaler.tick(&self.desired.counts, &observed).await;
                        if changes.is_empty() {
                            continue;
                        }
                        self.autoscaled(changes);
                        break;
                    }
                    cmd = self.commands.recv() => match cmd {
                        Some(Command::Scale(counts, reply)) => {
                            let _ = reply.send(self.scale(counts));
                            break;
                        }
                        Some(Command::Apply(project, reply)) => {
                            let _ = reply.send(self.apply(*project).await);
                            break;
                        }
                        Some(Command::Rollout(cmd, reply)) => {
                            let _ = reply.send(self.rollout(cmd));
                            break;
                        }
                        Some(Command::Lifecycle(what, services, reply)) => {
                            let _ = reply.send(self.lifecycle(what, services).await);
                            break;
                        }
                        Some(Command::Shutdown { remove, volumes }) => break 'run (remove, volumes),
                        None => break 'run (false, false),
                    },
                }
            }
        };
        events.abort();
        for t in [prober, sampler].into_iter().flatten() {
            t.abort();
        }
        let (remove, volumes) = outcome;
        self.reconciler.settle().await;
        self.shutdown(remove, volumes).await
    }

    /// Takes a new version of the project. A change of published ports needs new
    /// listeners and is refused (nothing is changed).
    async fn apply(&mut self, project: Project) -> Result<Vec<String>, String> {
        let (before, after) = (Routes::ports(&self.project), Routes::ports(&project));
        if before != after {
            let show = |p: &[(String, String, u16)]| {
                p.iter()
                    .map(|(s, a, t)| format!("{s} {a}->{t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(format!(
                "the published ports changed ({} became {}): a running control plane cannot move its listeners yet\n  hint: `shoal down`, then `shoal up`",
                show(&before),
                show(&after)
            ));
        }
        // `up` starts what `shoal stop` stopped.
        let stopped: Vec<String> = self.desired.stopped.iter().cloned().collect();
        self.desired
            .set_stopped(&stopped, false)
            .map_err(|e| format!("cannot save the stopped services: {e}"))?;
        self.reconciler.set_stopped(Default::default());
        self.reconciler
            .start_kept(&stopped)
            .await
            .map_err(|e| e.to_string())?;
        let images = self.reconciler.image_ids(&project).await;
        let rolling = self.reconciler.apply(project, &images, "up", false);
        self.follow_project();
        // New networks and volumes, before the pass that needs them.
        self.reconciler
            .infrastructure()
            .await
            .map_err(|e| e.to_string())?;
        self.publish_rollouts();
        self.reconciler.emit(Event::Applied {
            rolling: rolling.clone(),
        });
        Ok(rolling)
    }

    /// `shoal stop|start|restart`.
    async fn lifecycle(
        &mut self,
        what: Lifecycle,
        mut services: Vec<String>,
    ) -> Result<String, String> {
        if let Some(s) = services
            .iter()
            .find(|s| !self.project.services.contains_key(*s))
        {
            return Err(format!("no service `{s}` in project {}", self.project.name));
        }
        if services.is_empty() {
            services = self.project.services.keys().cloned().collect();
        }
        let list = services.join(", ");
        if matches!(what, Lifecycle::Pause | Lifecycle::Unpause) {
            let pause = what == Lifecycle::Pause;
            self.desired
                .set_paused(&services, pause)
                .map_err(|e| format!("cannot save the paused services: {e}"))?;
            self.reconciler.set_paused(self.desired.paused.clone());
            self.reconciler
                .freeze(&services, pause)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(format!(
                "{} {list}",
                if pause { "pausing" } else { "unpausing" }
            ));
        }
        let save = |e: std::io::Error| format!("cannot save the stopped services: {e}");
        let stop = what == Lifecycle::Stop;
        let was: Vec<String> = services
            .iter()
            .filter(|s| self.desired.stopped.contains(*s))
            .cloned()
            .collect();
        self.desired.set_stopped(&services, stop).map_err(save)?;
        self.reconciler.set_stopped(self.desired.stopped.clone());
        if !stop {
            self.reconciler
                .start_kept(&was)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(match what {
            Lifecycle::Stop => format!("stopping {list}"),
            Lifecycle::Start => format!("starting {list}"),
            Lifecycle::Restart => {
                let images = self.reconciler.image_ids(&self.project).await;
                let rolling = self.reconciler.restart(&services, &images);
                self.follow_project();
                self.publish_rollouts();
                format!("restarting {} (rolling)", rolling.join(", "))
            }
            Lifecycle::Pause | Lifecycle::Unpause => unreachable!("answered above"),
        })
    }

    /// `shoal rollout undo|pause|resume`.
    fn rollout(&mut self, cmd: RolloutCommand) -> Result<String, String> {
        let r = &mut self.reconciler;
        let service = cmd.service();
        let said = match &cmd {
            RolloutCommand::Undo { to, .. } => {
                let (from, to) = r.undo(service, *to)?;
                format!("{service} rolling back from revision {from} to {to}")
            }
            RolloutCommand::Pause { .. } => {
                r.pause(service)?;
                format!("{service} rollout paused")
            }
            RolloutCommand::Resume { .. } => {
                r.resume(service)?;
                format!("{service} rollout resumed")
            }
        };
        self.reconciler.emit(Event::RolloutCommand {
            service: cmd.service().to_string(),
            done: said.clone(),
        });
        self.follow_project();
        self.publish_rollouts();
        Ok(said)
    }

    /// Hands the project as the reconciler runs it to the probes and the autoscaler
    /// when it changed (a new version applied, a rollback).
    fn follow_project(&mut self) {
        let now = self.reconciler.project();
        if !Arc::ptr_eq(&now, &self.project) {
            self.probes.set_project(now.clone());
            self.scaler.set_project(now.clone());
            self.collector.set_project(&now);
            self.project = now;
            self.forward();
        }
    }

    /// Starts a forwarder for each receiver of `x-shoal.logs.forward`, when they
    /// changed (the ones before stop; a receiver kept keeps its position on disk).
    fn forward(&mut self) {
        let wanted = self.project.x_shoal.logs().forward;
        if wanted == self.forwarding.0 && !*self.forwarding.1.borrow() {
            return;
        }
        let _ = self.forwarding.1.send(true);
        let (stop, stopped) = watch::channel(false);
        for sink in &wanted {
            let f = crate::forward::Forwarder::new(sink.clone(), &self.project.name, &self.logs);
            tokio::spawn(f.run(stopped.clone()));
        }
        self.forwarding = (wanted, stop);
    }

    /// Applies the autoscaler's counts: saved like `shoal scale`'s, and told.
    fn autoscaled(&mut self, changes: Vec<(String, u32, String)>) {
        let counts: BTreeMap<String, u32> =
            changes.iter().map(|(s, n, _)| (s.clone(), *n)).collect();
        if let Err(e) = self.desired.set(&counts) {
            tracing::warn!(error = %e, "cannot save the autoscaled counts");
        }
        for (service, _, reason) in changes {
            self.reconciler.emit(Event::Scaled { service, reason });
        }
    }

    fn scale(&mut self, counts: BTreeMap<String, u32>) -> Result<(), String> {
        for name in counts.keys() {
            let Some(svc) = self.project.services.get(name) else {
                return Err(format!(
                    "no service `{name}` in project {}",
                    self.project.name
                ));
            };
            if let Some(a) = &svc.x_shoal.autoscale {
                return Err(format!(
                    "`{name}` is autoscaled ({} to {} replicas): change x-shoal.autoscale.min and max instead",
                    a.min, a.max
                ));
            }
            if svc.container_name.is_some() && counts[name] > 1 {
                return Err(format!(
                    "`{name}` has a fixed container_name: it runs one replica at most"
                ));
            }
        }
        self.desired
            .set(&counts)
            .map_err(|e| format!("cannot save the desired counts: {e}"))?;
        for (name, n) in &counts {
            tracing::info!(service = %name, "scale set to {n}");
        }
        Ok(())
    }

    fn report(&self, pass: &crate::reconcile::Pass) {
        let services = self
            .project
            .services
            .values()
            .map(|svc| {
                let mine = pass.observed.iter().filter(|c| c.service == svc.name);
                let running = mine.clone().filter(|c| c.state == State::Running).count() as u32;
                let ready = mine.filter(|c| ready(c)).count() as u32;
                let limits = &svc.deploy.resources.limits;
                let status = ServiceStatus {
                    desired: desired_count(svc, &self.desired.counts),
                    running,
                    ready,
                    stopped: self.desired.stopped.contains(&svc.name),
                    paused: self.desired.paused.contains(&svc.name),
                    cpu_limit: limits.cpus,
                    memory_limit: limits.memory,
                    autoscale: self.scaler.last.get(&svc.name).cloned(),
                    ..ServiceStatus::default()
                };
                (svc.name.clone(), status)
            })
            .collect();
        for f in &pass.failures {
            tracing::warn!("{f}");
        }
        let book = self.reconciler.book();
        let replicas = book
            .replicas
            .iter()
            .map(|((service, replica), record)| ReplicaStatus {
                service: service.clone(),
                replica: *replica,
                record: record.clone(),
                traffic: None,
                in_flight: 0,
                usage: None,
            })
            .collect();
        let events = book
            .events
            .records
            .iter()
            .rev()
            .take(20)
            .rev()
            .cloned()
            .collect();
        self.publish_rollouts();
        self.status.send_modify(|s| {
            s.replicas = replicas;
            s.events = events;
            s.converged |= pass.converged && pass.failures.is_empty();
            s.services = services;
            s.waiting = pass.waiting.clone();
            s.failures = pass.failures.clone();
        });
    }

    /// Puts every service's revision and rollout into the status (at once after an
    /// apply, so that whoever waits for the rollout sees it).
    fn publish_rollouts(&self) {
        let rollouts = self
            .reconciler
            .rollout_records()
            .into_iter()
            .map(|(name, (revision, rollout))| {
                let rollbacks = self.reconciler.rollbacks().get(&name).copied().unwrap_or(0);
                (
                    name,
                    RolloutStatus {
                        revision,
                        rollout,
                        rollbacks,
                    },
                )
            })
            .collect();
        self.status.send_modify(|s| s.rollouts = rollouts);
    }

    /// Stops taking connections, then stops replicas dependants first.
    async fn shutdown(self, remove: bool, volumes: bool) -> Result<(), Error> {
        let _ = self.stop_proxies.send(true);
        let _ = self.forwarding.1.send(true);
        let containers = self.rt.list(&self.project.name).await?;
        let mut order = start_order(&self.project);
        order.reverse();
        for name in order {
            let grace = self.project.services[&name]
                .stop_grace_period
                .unwrap_or(shoal_runtime::container::DEFAULT_GRACE);
            let stops = containers
                .iter()
                .filter(|c| c.service == name && c.state == State::Running)
                .map(|c| {
                    let rt = self.rt.clone();
                    let id = c.id.clone();
                    tracing::info!(container = %c.name, "stopping");
                    async move { rt.stop(&id, grace).await }
                });
            for r in futures_util::future::join_all(stops).await {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "stop failed");
                }
            }
        }
        // The stopped replicas' last lines are stored before their containers go.
        self.collector.close(Duration::from_secs(2)).await;
        if remove {
            crate::down::teardown(self.rt.as_ref(), &self.project.name, volumes).await?;
        }
        Ok(())
    }
}
