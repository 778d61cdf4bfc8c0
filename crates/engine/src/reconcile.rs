//! One reconcile pass: compare what the project wants with what the engine has, and
//! act on the difference. Level-triggered: a pass reads everything back from the
//! engine, so it can run any number of times, after any crash, and converge.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;

use shoal_runtime::{
    project_labels, ContainerInfo, ContainerSpec, Error, Health, NetworkSpec, Runtime, State,
    VolumeSpec, LABEL_KEY,
};
use shoal_spec::{Condition, Project, Service};

use crate::clock::{Clock, SystemClock};
use crate::desired::desired_count;
use crate::health::{Book, Phase};
use crate::order::start_order;
use crate::probe::Probes;
use crate::restart::{should_restart, Backoff};
use crate::routes::Routes;

/// Containers a scale-out starts (or a scale-in stops) at once.
const PARALLEL_STARTS: usize = 8;

/// What a pass saw and did.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// The project's containers after the pass's actions.
    pub observed: Vec<ContainerInfo>,
    /// Services not started because a dependency is not ready, with why.
    pub waiting: Vec<String>,
    /// Actions that failed, with why; the next pass tries again.
    pub failures: Vec<String>,
    /// True when every service runs its desired replicas with the current config.
    pub converged: bool,
}

/// Drives a project's containers towards its definition.
pub struct Reconciler {
    rt: Arc<dyn Runtime>,
    project: Arc<Project>,
    /// Phases, restarts and backoff of every replica, and the recent transitions.
    book: Book,
    /// Time, for backoff.
    clock: Arc<dyn Clock>,
    /// True until the first pass: `up` starts stopped containers whatever their policy.
    first: bool,
    /// The published ports, drained of a replica before it stops.
    routes: Option<Arc<Routes>>,
    /// The control plane's own health probes.
    probes: Option<Arc<Probes>>,
    /// Services whose replicas were restarted or recreated in this pass, for
    /// `depends_on.<svc>.restart: true`.
    replaced: std::collections::HashSet<String>,
    /// With a wake-up to send when done, a scale-out after the first pass starts its
    /// replicas in the background: a pass does not wait the second or two the engine
    /// takes, so replicas that became ready meanwhile join the balancer at once.
    background: Option<Background>,
}

/// Scale-outs in progress in the background.
struct Background {
    /// Woken when one ends.
    wake: Arc<tokio::sync::Notify>,
    /// Names of the containers being created and started.
    starting: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// What failed, for the next pass to report.
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Reconciler {
    /// A reconciler for `project` on `rt`.
    pub fn new(rt: Arc<dyn Runtime>, project: Arc<Project>) -> Reconciler {
        Reconciler {
            rt,
            project,
            book: Book::default(),
            clock: Arc::new(SystemClock::default()),
            first: true,
            routes: None,
            probes: None,
            replaced: std::collections::HashSet::new(),
            background: None,
        }
    }

    /// Starts scale-outs after the first pass in the background, waking `wake` when
    /// each is done.
    pub fn with_background_starts(mut self, wake: Arc<tokio::sync::Notify>) -> Reconciler {
        self.background = Some(Background {
            wake,
            starting: Default::default(),
            failed: Default::default(),
            tasks: Vec::new(),
        });
        self
    }

    /// Waits for the scale-outs in progress (before a teardown, so that none creates a
    /// container after it).
    pub async fn settle(&mut self) {
        if let Some(b) = &mut self.background {
            for t in b.tasks.drain(..) {
                let _ = t.await;
            }
        }
    }

    /// Folds the results of `probes` into what it sees of containers.
    pub fn with_probes(mut self, probes: Arc<Probes>) -> Reconciler {
        self.probes = Some(probes);
        self
    }

    /// The project's containers, with probe results folded in.
    async fn list(&self) -> Result<Vec<ContainerInfo>, Error> {
        let mut observed = self.rt.list(&self.project.name).await?;
        if let Some(p) = &self.probes {
            p.set_targets(&observed);
            p.overlay(&mut observed);
        }
        Ok(observed)
    }

    /// Reads time from `clock` (tests move a fake one by hand).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Reconciler {
        self.clock = clock;
        self
    }

    /// Records an event that is not a replica's transition (an autoscaling decision).
    pub fn record_event(&mut self, subject: String, message: String) {
        let now = self.clock.now();
        self.book.event(now, subject, message);
    }

    /// The replicas' records and the recent transitions.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// Drains replicas from `routes` before stopping them.
    pub fn with_routes(mut self, routes: Arc<Routes>) -> Reconciler {
        self.routes = Some(routes);
        self
    }

    /// Creates the project's networks and volumes; checks external ones exist.
    pub async fn infrastructure(&self) -> Result<(), Error> {
        let p = &self.project;
        for (key, net) in &p.networks {
            if net.external {
                if !self.rt.has_network(&net.name).await? {
                    return Err(Error::NotFound(format!(
                        "external network {} (create it first)",
                        net.name
                    )));
                }
                continue;
            }
            let mut labels = project_labels(&p.name);
            labels.insert(LABEL_KEY.into(), key.clone());
            labels.extend(net.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            self.rt
                .ensure_network(&NetworkSpec {
                    name: net.name.clone(),
                    driver: net.driver.clone(),
                    internal: net.internal,
                    labels,
                })
                .await?;
        }
        for (key, vol) in &p.volumes {
            if vol.external {
                if !self.rt.has_volume(&vol.name).await? {
                    return Err(Error::NotFound(format!(
                        "external volume {} (create it first)",
                        vol.name
                    )));
                }
                continue;
            }
            let mut labels = project_labels(&p.name);
            labels.insert(LABEL_KEY.into(), key.clone());
            labels.extend(vol.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            self.rt
                .ensure_volume(&VolumeSpec {
                    name: vol.name.clone(),
                    driver: vol.driver.clone(),
                    driver_opts: vol
                        .driver_opts
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    labels,
                })
                .await?;
        }
        Ok(())
    }

    /// One pass over every service, dependencies first.
    pub async fn pass(&mut self, overrides: &BTreeMap<String, u32>) -> Result<Pass, Error> {
        let mut pass = Pass {
            converged: true,
            ..Pass::default()
        };
        let mut observed = self.list().await?;
        if let Some(b) = &mut self.background {
            pass.failures
                .extend(b.failed.lock().expect("not poisoned").drain(..));
            b.tasks.retain(|t| !t.is_finished());
        }

        // Containers of services the project no longer has.
        let orphans: Vec<ContainerInfo> = observed
            .iter()
            .filter(|c| !self.project.services.contains_key(&c.service))
            .cloned()
            .collect();
        for c in &orphans {
            tracing::info!(container = %c.name, "removing: its service is no longer in the project");
            if let Err(e) = self
                .remove(c, shoal_runtime::container::DEFAULT_GRACE)
                .await
            {
                pass.failures.push(format!("remove {}: {e}", c.name));
            }
        }

        self.observe(&observed);
        self.replaced.clear();
        let project = self.project.clone();
        for name in start_order(&project) {
            let svc = &project.services[&name];
            if let Some(why) = self.blocked(svc, overrides, &observed) {
                pass.waiting.push(format!("{name}: {why}"));
                pass.converged = false;
                continue;
            }
            if let Some(dep) = svc
                .depends_on
                .iter()
                .find(|(d, dep)| dep.restart && self.replaced.contains(*d))
                .map(|(d, _)| d.clone())
            {
                self.restart_dependant(svc, &dep, &observed).await;
                observed = self.list().await?;
            }
            let mine: Vec<ContainerInfo> = observed
                .iter()
                .filter(|c| c.service == name)
                .cloned()
                .collect();
            let acted = match self
                .service(svc, desired_count(svc, overrides), mine, &mut pass)
                .await
            {
                Ok(acted) => acted,
                Err(e) => {
                    pass.failures.push(format!("{name}: {e}"));
                    pass.converged = false;
                    true
                }
            };
            if acted {
                // Later services may wait on this one: read it back.
                observed = self.list().await?;
                // What was just started has not shown it stays up: a later pass says.
                pass.converged = false;
            }
        }
        self.first = false;
        // Converged: every service has its replicas ready (a one-off service that ran
        // to completion counts as done).
        for svc in project.services.values() {
            let want = desired_count(svc, overrides) as usize;
            let mine = observed.iter().filter(|c| c.service == svc.name);
            let done = mine
                .filter(|c| {
                    crate::health::ready(c) || (c.state == State::Exited && c.exit_code == Some(0))
                })
                .count();
            if done < want {
                pass.converged = false;
            }
        }
        pass.observed = observed;
        Ok(pass)
    }

    /// Why `svc` cannot start yet, if it cannot.
    fn blocked(
        &self,
        svc: &Service,
        overrides: &BTreeMap<String, u32>,
        observed: &[ContainerInfo],
    ) -> Option<String> {
        for (dep, d) in &svc.depends_on {
            let Some(dep_svc) = self.project.services.get(dep) else {
                continue;
            };
            let want = desired_count(dep_svc, overrides) as usize;
            let theirs: Vec<&ContainerInfo> =
                observed.iter().filter(|c| &c.service == dep).collect();
            let running = theirs.iter().filter(|c| c.state == State::Running).count();
            let ok = match d.condition {
                Condition::ServiceStarted => running >= want,
                Condition::ServiceHealthy => {
                    theirs
                        .iter()
                        .filter(|c| {
                            c.state == State::Running
                                && matches!(c.health, None | Some(Health::Healthy))
                        })
                        .count()
                        >= want
                }
                Condition::ServiceCompletedSuccessfully => {
                    theirs.len() >= want
                        && theirs
                            .iter()
                            .all(|c| c.state == State::Exited && c.exit_code == Some(0))
                }
            };
            if !ok {
                let what = match d.condition {
                    Condition::ServiceStarted => "to start",
                    Condition::ServiceHealthy => "to be healthy",
                    Condition::ServiceCompletedSuccessfully => "to complete successfully",
                };
                return Some(format!("waiting for {dep} {what}"));
            }
        }
        None
    }

    async fn service(
        &mut self,
        svc: &Service,
        want: u32,
        mut mine: Vec<ContainerInfo>,
        pass: &mut Pass,
    ) -> Result<bool, Error> {
        let mut acted = false;
        let hash = svc.config_hash();
        let grace = svc
            .stop_grace_period
            .unwrap_or(shoal_runtime::container::DEFAULT_GRACE);

        // One container per replica number: the best one stays, extras go.
        mine.sort_by_key(|c| (c.replica, c.config_hash != hash, c.state != State::Running));
        let mut by_replica: BTreeMap<u32, ContainerInfo> = BTreeMap::new();
        for c in mine {
            if by_replica.contains_key(&c.replica) || c.replica == 0 {
                tracing::info!(container = %c.name, "removing duplicate replica");
                self.remove(&c, grace).await?;
                acted = true;
            } else {
                by_replica.insert(c.replica, c);
            }
        }

        // Scale in: the replicas above the count go, together.
        let leaving: Vec<ContainerInfo> = by_replica
            .range(want + 1..)
            .map(|(_, c)| c.clone())
            .collect();
        if !leaving.is_empty() {
            for c in &leaving {
                tracing::info!(service = %svc.name, replica = c.replica, "scaling in: stopping {}", c.name);
            }
            self.remove_together(&leaving, grace).await?;
            for c in &leaving {
                self.book.replicas.remove(&(svc.name.clone(), c.replica));
            }
            acted = true;
        }

        // New replicas start together: a scale-out of ten takes about as long as
        // one (the engine sets their namespaces up in parallel).
        let starting = self.background.as_ref().map(|b| b.starting.clone());
        let new: Vec<ContainerSpec> = (1..=want)
            .filter(|r| !by_replica.contains_key(r))
            .map(|r| ContainerSpec::for_replica(&self.project, svc, r))
            .filter(|spec| {
                starting
                    .as_ref()
                    .is_none_or(|s| !s.lock().expect("not poisoned").contains(&spec.name))
            })
            .collect();
        if !new.is_empty() {
            for spec in &new {
                tracing::info!(service = %svc.name, "starting {}", spec.name);
            }
            acted = true;
            match &mut self.background {
                Some(b) if !self.first => {
                    let mut names = b.starting.lock().expect("not poisoned");
                    names.extend(new.iter().map(|spec| spec.name.clone()));
                    drop(names);
                    let (rt, wake) = (self.rt.clone(), b.wake.clone());
                    let (starting, failed) = (b.starting.clone(), b.failed.clone());
                    b.tasks.push(tokio::spawn(async move {
                        let errors = start_all(rt.as_ref(), &new).await;
                        failed.lock().expect("not poisoned").extend(
                            errors
                                .into_iter()
                                .map(|(name, e)| format!("start {name}: {e}")),
                        );
                        let mut names = starting.lock().expect("not poisoned");
                        for spec in &new {
                            names.remove(&spec.name);
                        }
                        drop(names);
                        wake.notify_one();
                    }));
                }
                _ => {
                    if let Some((_, e)) = start_all(self.rt.as_ref(), &new).await.into_iter().next()
                    {
                        return Err(e);
                    }
                }
            }
        }

        for replica in 1..=want {
            let spec = ContainerSpec::for_replica(&self.project, svc, replica);
            match by_replica.get(&replica) {
                None => continue,
                Some(c) if c.config_hash != hash => {
                    tracing::info!(service = %svc.name, replica, "recreating {}: its configuration changed", c.name);
                    self.remove(c, grace).await?;
                    create_and_start(self.rt.as_ref(), &spec).await?;
                    self.replaced.insert(svc.name.clone());
                }
                Some(c) if c.state == State::Created => {
                    self.rt.start(&c.id).await?;
                }
                Some(c) if matches!(c.state, State::Exited | State::Dead) => {
                    if !self.first && !self.restart_due(svc, c, false, pass) {
                        continue;
                    }
                    self.rt.start(&c.id).await?;
                    if !self.first {
                        self.replaced.insert(svc.name.clone());
                    }
                }
                Some(c) if c.state == State::Running && c.health == Some(Health::Unhealthy) => {
                    if !self.restart_due(svc, c, true, pass) {
                        continue;
                    }
                    // Replaced in place: drained, stopped, started again.
                    self.drain_and_stop(c, grace, "restarting: unhealthy")
                        .await?;
                    self.rt.start(&c.id).await?;
                    self.replaced.insert(svc.name.clone());
                }
                Some(_) => continue,
            }
            acted = true;
        }
        Ok(acted)
    }

    /// Restarts the running replicas of `svc` because its dependency `dep` (with
    /// `restart: true`) was restarted: drained, stopped, started again.
    async fn restart_dependant(&mut self, svc: &Service, dep: &str, observed: &[ContainerInfo]) {
        let grace = svc
            .stop_grace_period
            .unwrap_or(shoal_runtime::container::DEFAULT_GRACE);
        let now = self.clock.now();
        for c in observed
            .iter()
            .filter(|c| c.service == svc.name && c.state == State::Running)
        {
            self.book.event(
                now,
                format!("{}.{}", svc.name, c.replica),
                format!("restarting: its dependency {dep} was restarted"),
            );
            if let Err(e) = self
                .drain_and_stop(c, grace, "restarting: a dependency restarted")
                .await
            {
                tracing::warn!(container = %c.name, error = %e, "stop failed");
                continue;
            }
            if let Err(e) = self.rt.start(&c.id).await {
                tracing::warn!(container = %c.name, error = %e, "start failed");
            }
        }
        self.replaced.insert(svc.name.clone());
    }

    /// Updates every replica's phase from what the engine reports.
    fn observe(&mut self, observed: &[ContainerInfo]) {
        let now = self.clock.now();
        for c in observed {
            let Some(svc) = self.project.services.get(&c.service) else {
                continue;
            };
            let (phase, reason) = match (c.state, c.health) {
                (State::Running, None) => (Phase::Ready, "running".to_string()),
                (State::Running, Some(Health::Healthy)) => (Phase::Ready, "healthy".to_string()),
                (State::Running, Some(Health::Starting)) => {
                    (Phase::Starting, "health check pending".to_string())
                }
                (State::Running, Some(Health::Unhealthy)) => (
                    Phase::Unhealthy,
                    self.probes
                        .as_ref()
                        .and_then(|p| p.reason(&c.id))
                        .unwrap_or_else(|| "the container's health check failed".to_string()),
                ),
                (State::Created | State::Restarting, _) => {
                    (Phase::Starting, "starting".to_string())
                }
                _ => (
                    Phase::Exited,
                    format!("exited with code {}", c.exit_code.unwrap_or(0)),
                ),
            };
            // A replica failing requests is not ready, whatever its checks say; the
            // balancer's own probe request readmits it.
            let ejected =
                phase == Phase::Ready && self.routes.as_ref().is_some_and(|r| r.ejected(c));
            let (phase, reason) = if ejected {
                (
                    Phase::Unhealthy,
                    "failing requests: ejected by the balancer".to_string(),
                )
            } else {
                (phase, reason)
            };
            if phase == Phase::Exited {
                self.book.get(&c.service, c.replica).last_exit = c.exit_code;
            }
            self.book
                .transition(now, &c.service, c.replica, phase, reason);
            // A replica Ready long enough starts its crash-loop count afresh.
            let backoff = Backoff::of(svc);
            let r = self.book.get(&c.service, c.replica);
            if r.restarts > 0
                && r.ready_since
                    .is_some_and(|t| now.saturating_sub(t) >= backoff.reset_after)
            {
                r.restarts = 0;
            }
        }
        let present: std::collections::HashSet<(String, u32)> = observed
            .iter()
            .map(|c| (c.service.clone(), c.replica))
            .collect();
        self.book
            .retain(|s, r| present.contains(&(s.to_string(), r)));
    }

    /// Whether a failed replica (exited, or running unhealthy) may be restarted now.
    /// Restarts wait out the crash-loop backoff; the policy's limits stop them.
    fn restart_due(
        &mut self,
        svc: &Service,
        c: &ContainerInfo,
        unhealthy: bool,
        pass: &mut Pass,
    ) -> bool {
        let now = self.clock.now();
        let failed_code = if unhealthy {
            1
        } else {
            c.exit_code.unwrap_or(0)
        };
        let backoff = Backoff::of(svc);
        let label = format!("{}.{}", svc.name, c.replica);
        let restarts = self.book.get(&svc.name, c.replica).restarts;
        if !should_restart(svc, failed_code, restarts) {
            let r = self.book.get(&svc.name, c.replica);
            r.backoff_until = None;
            r.backoff_secs = None;
            if !r.given_up {
                r.given_up = true;
                let limited = svc
                    .deploy
                    .restart_policy
                    .as_ref()
                    .is_some_and(|p| p.max_attempts.is_some())
                    || matches!(svc.restart, Some(shoal_spec::Restart::OnFailure(Some(_))));
                let why = if restarts > 0 && limited {
                    "restart limit reached"
                } else {
                    "its restart policy does not restart it"
                };
                self.book.event(now, label, format!("not restarted: {why}"));
            }
            if !unhealthy && failed_code != 0 {
                pass.converged = false;
            }
            return false;
        }
        pass.converged = false;
        let r = self.book.get(&svc.name, c.replica);
        let until = *r
            .backoff_until
            .get_or_insert(now + backoff.delay(restarts + 1));
        if now < until {
            let left = until - now;
            r.backoff_secs = Some(left.as_secs_f64());
            pass.waiting.push(format!(
                "{label}: restarting in {:.1}s (restart {}, backing off)",
                left.as_secs_f64(),
                restarts + 1
            ));
            return false;
        }
        r.backoff_until = None;
        r.backoff_secs = None;
        r.given_up = false;
        r.restarts += 1;
        let n = r.restarts;
        let why = if unhealthy {
            "unhealthy".to_string()
        } else {
            format!("exit code {failed_code}")
        };
        self.book
            .event(now, label, format!("restarting ({why}, restart {n})"));
        true
    }

    /// Takes a replica out of the balancer, lets its requests finish, then sends it
    /// its stop signal; each step is a phase with `why`.
    async fn drain_and_stop(
        &mut self,
        c: &ContainerInfo,
        grace: std::time::Duration,
        why: &str,
    ) -> Result<(), Error> {
        if !matches!(c.state, State::Running | State::Restarting) {
            return Ok(());
        }
        let now = self.clock.now();
        self.book
            .transition(now, &c.service, c.replica, Phase::Draining, why);
        if let Some(routes) = &self.routes {
            routes.drain(c).await;
        }
        self.rt.stop(&c.id, grace).await?;
        let now = self.clock.now();
        self.book
            .transition(now, &c.service, c.replica, Phase::Stopped, why);
        Ok(())
    }

    /// Drains, stops and removes `leaving` side by side: each drains and stops in its
    /// own time, not after the one before it.
    async fn remove_together(
        &mut self,
        leaving: &[ContainerInfo],
        grace: std::time::Duration,
    ) -> Result<(), Error> {
        let running = |c: &&ContainerInfo| matches!(c.state, State::Running | State::Restarting);
        let why = "being removed";
        let now = self.clock.now();
        for c in leaving.iter().filter(running) {
            self.book
                .transition(now, &c.service, c.replica, Phase::Draining, why);
        }
        let (rt, routes) = (&self.rt, &self.routes);
        let done: Vec<Result<(), Error>> = futures_util::stream::iter(leaving)
            .map(|c| async move {
                if matches!(c.state, State::Running | State::Restarting) {
                    if let Some(routes) = routes {
                        routes.drain(c).await;
                    }
                    rt.stop(&c.id, grace).await?;
                }
                rt.remove(&c.id).await
            })
            .buffer_unordered(PARALLEL_STARTS)
            .collect()
            .await;
        let now = self.clock.now();
        for c in leaving.iter().filter(running) {
            self.book
                .transition(now, &c.service, c.replica, Phase::Stopped, why);
        }
        done.into_iter().collect()
    }

    async fn remove(&mut self, c: &ContainerInfo, grace: std::time::Duration) -> Result<(), Error> {
        self.remove_together(std::slice::from_ref(c), grace).await
    }
}

async fn create_and_start(rt: &dyn Runtime, spec: &ContainerSpec) -> Result<(), Error> {
    let id = rt.create(spec).await?;
    rt.start(&id).await
}

/// Creates and starts `specs` side by side; what failed, with the container's name.
async fn start_all(rt: &dyn Runtime, specs: &[ContainerSpec]) -> Vec<(String, Error)> {
    let starts: Vec<_> = specs
        .iter()
        .map(|spec| async move {
            create_and_start(rt, spec)
                .await
                .map_err(|e| (spec.name.clone(), e))
        })
        .collect();
    futures_util::stream::iter(starts)
        .buffer_unordered(PARALLEL_STARTS)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await
}
