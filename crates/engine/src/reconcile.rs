//! One reconcile pass: compare what the project wants with what the engine has, and
//! act on the difference. Level-triggered: a pass reads everything back from the
//! engine, so it can run any number of times, after any crash, and converge.
//!
//! Each replica number is a slot: its container on the service's target revision
//! and, while a rollout replaces it, its container on another. A slot with a single
//! container on the target revision follows the replica's lifecycle here (start,
//! restart under the policy, replacement when unhealthy); a slot with another
//! revision in it belongs to the service's rollout (`rolling.rs`). Starting,
//! draining and stopping run beside the passes ([`crate::tasks`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use shoal_runtime::{
    container::replica_name, project_labels, ContainerInfo, ContainerSpec, Error, Health,
    NetworkSpec, Runtime, State, VolumeSpec, LABEL_CONFIG_HASH, LABEL_KEY, LABEL_REVISION,
};
use shoal_spec::{Condition, Order, Project, Service};

use crate::clock::{Clock, SystemClock};
use crate::desired::desired_count;
use crate::event::{Event, Events};
use crate::health::{Book, Phase};
use crate::order::start_order;
use crate::probe::Probes;
use crate::restart::{should_restart, Backoff};
use crate::revision::Revisions;
use crate::rollout::Rollout;
use crate::routes::Routes;
use crate::tasks::Tasks;

mod lifecycle;
mod rolling;

/// How soon to pass again while a rollout is in progress: its steps judge new
/// replicas, and a replica failing requests should be caught within a fraction of a
/// second.
const ROLLING_PASS: Duration = Duration::from_millis(250);

/// What a pass saw and did.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// The project's containers after the pass's actions (those on their way out
    /// left out).
    pub observed: Vec<ContainerInfo>,
    /// Services not started because a dependency is not ready, with why.
    pub waiting: Vec<String>,
    /// Actions that failed, with why; the next pass tries again.
    pub failures: Vec<String>,
    /// True when every service runs its desired replicas with the current config.
    pub converged: bool,
    /// Pass again within this time at the latest (a backoff ends, a rollout steps).
    pub next_in: Option<Duration>,
}

impl Pass {
    fn again_within(&mut self, d: Duration) {
        self.next_in = Some(self.next_in.map_or(d, |n| n.min(d)));
    }
}

/// A replica number's containers: on the target revision, and on another.
#[derive(Clone, Debug, Default)]
struct Pair {
    new: Option<ContainerInfo>,
    old: Option<ContainerInfo>,
}

/// A service's target: the hash its containers should carry and its revision number.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    hash: String,
    number: u32,
}

/// Drives a project's containers towards its definition.
pub struct Reconciler {
    rt: Arc<dyn Runtime>,
    project: Arc<Project>,
    /// Phases, restarts and backoff of every replica, and the recent transitions.
    book: Book,
    /// Time, for backoff and rollouts.
    clock: Arc<dyn Clock>,
    /// True until the first pass: `up` starts stopped containers whatever their policy.
    first: bool,
    /// The published ports, drained of a replica before it stops.
    routes: Option<Arc<Routes>>,
    /// The control plane's own health probes.
    probes: Option<Arc<Probes>>,
    /// Services whose replicas were restarted or recreated in this pass, for
    /// `depends_on.<svc>.restart: true`.
    replaced: HashSet<String>,
    /// Starts, drains and stops in progress.
    tasks: Tasks,
    /// After the first pass, work goes to the background and wakes this when done.
    wake: Option<Arc<tokio::sync::Notify>>,
    /// Every service's revisions and last rollout.
    revisions: Revisions,
    /// What each service should run; a service without one runs its config hash.
    targets: BTreeMap<String, Target>,
    /// Rollouts, by service: in progress, or the last one.
    rollouts: BTreeMap<String, Rollout>,
    /// Rollouts that turned back on their own (failed), by service.
    rollbacks: BTreeMap<String, u64>,
    /// Services `shoal stop` stopped: their containers are stopped and kept, and
    /// nothing is started or restarted for them.
    stopped: BTreeSet<String>,
    /// Services `shoal pause` paused: left as they are. (A replica frozen otherwise
    /// is a hung one, and replaced.)
    paused: BTreeSet<String>,
    /// When replicas were thawed (`shoal unpause`), by container id: the engine's
    /// health check failed while they were frozen, and is given time to pass again.
    thawed: HashMap<String, Duration>,
}

impl Reconciler {
    /// A reconciler for `project` on `rt`.
    pub fn new(rt: Arc<dyn Runtime>, project: Arc<Project>) -> Reconciler {
        Reconciler {
            tasks: Tasks::new(rt.clone(), None),
            rt,
            project,
            book: Book::default(),
            clock: Arc::new(SystemClock::default()),
            first: true,
            routes: None,
            probes: None,
            replaced: HashSet::new(),
            wake: None,
            revisions: Revisions::default(),
            targets: BTreeMap::new(),
            rollouts: BTreeMap::new(),
            rollbacks: BTreeMap::new(),
            stopped: BTreeSet::new(),
            paused: BTreeSet::new(),
            thawed: HashMap::new(),
        }
    }

    /// After the first pass, starts, drains and stops run in the background, waking
    /// `wake` when each is done: a pass does not wait the second or two the engine
    /// takes, so replicas that became ready meanwhile join the balancer at once.
    pub fn with_background_starts(mut self, wake: Arc<tokio::sync::Notify>) -> Reconciler {
        self.wake = Some(wake);
        self
    }

    /// Waits for the work in progress (before a teardown, so that none creates a
    /// container after it).
    pub async fn settle(&mut self) {
        self.tasks.settle().await;
    }

    /// Folds the results of `probes` into what it sees of containers.
    pub fn with_probes(mut self, probes: Arc<Probes>) -> Reconciler {
        self.probes = Some(probes);
        self
    }

    /// Reads time from `clock` (tests move a fake one by hand).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Reconciler {
        self.clock = clock;
        self
    }

    /// Drains replicas from `routes` before stopping them.
    pub fn with_routes(mut self, routes: Arc<Routes>) -> Reconciler {
        self.tasks = Tasks::new(self.rt.clone(), Some(routes.clone()));
        self.routes = Some(routes);
        self
    }

    /// Keeps revisions and rollouts in `revisions` (read from the state directory).
    pub fn with_revisions(mut self, revisions: Revisions) -> Reconciler {
        self.revisions = revisions;
        self
    }

    /// The project as it runs now: each service at its target revision.
    pub fn project(&self) -> Arc<Project> {
        self.project.clone()
    }

    /// Records an event that is not a replica's transition (an autoscaling decision).
    pub fn emit(&mut self, event: Event) {
        let now = self.clock.now();
        self.book.emit(now, event);
    }

    /// Keeps events in `events` (opened in the state directory).
    pub fn with_events(mut self, events: Events) -> Reconciler {
        self.book.events = events;
        self
    }

    /// The replicas' records and the recent transitions.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// The project's containers, with probe results folded in; those on their way
    /// out left out (they are no longer anyone's replica).
    async fn list(&self) -> Result<Vec<ContainerInfo>, Error> {
        let mut observed = self.rt.list(&self.project.name).await?;
        // One-off containers of `shoal run` are nobody's replica.
        observed.retain(|c| {
            !self.tasks.leaving(&c.id) && !c.labels.contains_key(shoal_runtime::LABEL_ONEOFF)
        });
        if let Some(p) = &self.probes {
            p.set_targets(&observed);
            p.overlay(&mut observed);
        }
        Ok(observed)
    }

    /// The hash `svc`'s containers should carry, and its revision number (0 for a
    /// service no revision was applied for).
    fn target(&self, svc: &Service) -> Target {
        self.targets
            .get(&svc.name)
            .cloned()
            .unwrap_or_else(|| Target {
                hash: svc.config_hash(),
                number: 0,
            })
    }

    /// The container of replica `replica` of `svc` at its target revision.
    fn spec(&self, svc: &Service, replica: u32) -> ContainerSpec {
        let t = self.target(svc);
        let mut spec = ContainerSpec::for_replica(&self.project, svc, replica);
        spec.labels.insert(LABEL_CONFIG_HASH.into(), t.hash);
        spec.labels
            .insert(LABEL_REVISION.into(), t.number.to_string());
        spec
    }

    /// The name replica `replica` of `svc` goes by.
    fn canonical(&self, svc: &Service, replica: u32) -> String {
        replica_name(&self.project.name, svc, replica)
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
        pass.failures.extend(self.tasks.failures());
        let mut observed = self.list().await?;

        // Containers of services the project no longer has.
        let orphans: Vec<(ContainerInfo, Duration)> = observed
            .iter()
            .filter(|c| !self.project.services.contains_key(&c.service))
            .map(|c| (c.clone(), shoal_runtime::container::DEFAULT_GRACE))
            .collect();
        for (c, _) in &orphans {
            tracing::info!(container = %c.name, "removing: its service is no longer in the project");
        }
        if !orphans.is_empty() {
            if let Err(e) = self.tasks.retire(orphans).await {
                pass.failures.push(format!("remove: {e}"));
            }
            observed = self.list().await?;
        }

        self.observe(&observed);
        self.replaced.clear();
        let project = self.project.clone();
        for name in start_order(&project) {
            let svc = &project.services[&name];
            if self.stopped.contains(&name) {
                if let Err(e) = self.hold(svc, &observed).await {
                    pass.failures.push(format!("{name}: {e}"));
                }
                continue;
            }
            // Paused (`shoal pause`): left as it is, frozen, until unpaused.
            if self.paused.contains(&name) {
                continue;
            }
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
        if self.first {
            self.first = false;
            if let Some(wake) = &self.wake {
                self.tasks.detach(wake.clone());
            }
        }
        // Converged: every service has its replicas ready (a one-off service that ran
        // to completion counts as done) and no rollout is under way.
        for svc in project
            .services
            .values()
            .filter(|s| !self.stopped.contains(&s.name) && !self.paused.contains(&s.name))
        {
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
        if self.rollouts.values().any(Rollout::active) {
            pass.converged = false;
            pass.again_within(ROLLING_PASS);
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

    /// One service: its slots put in order, then each slot's lifecycle, then its
    /// rollout when a slot holds another revision. True when it acted.
    async fn service(
        &mut self,
        svc: &Service,
        want: u32,
        mut mine: Vec<ContainerInfo>,
        pass: &mut Pass,
    ) -> Result<bool, Error> {
        let mut acted = false;
        let target = self.target(svc);
        let grace = svc
            .stop_grace_period
            .unwrap_or(shoal_runtime::container::DEFAULT_GRACE);

        // Slots: per replica number the best container on the target revision and
        // the best on another (running first, then the one under the replica's
        // name); any other is a duplicate and goes.
        mine.sort_by_key(|c| {
            (
                c.replica,
                c.state != State::Running,
                c.name != self.canonical(svc, c.replica),
            )
        });
        let mut slots: BTreeMap<u32, Pair> = BTreeMap::new();
        let mut leaving = Vec::new();
        for c in mine {
            if c.replica == 0 {
                leaving.push(c);
                continue;
            }
            let slot = slots.entry(c.replica).or_default();
            let place = if c.config_hash == target.hash {
                &mut slot.new
            } else {
                &mut slot.old
            };
            match place {
                None => *place = Some(c),
                Some(_) => {
                    tracing::info!(container = %c.name, "removing duplicate replica");
                    leaving.push(c);
                }
            }
        }

        // A replica number being started counts as taken.
        let starting: Vec<u32> = (1..=want + slots.len() as u32)
            .filter(|r| !slots.contains_key(r) && self.tasks.starting(&self.canonical(svc, *r)))
            .collect();

        // Scale in: the replicas beyond the count go, together: those still on
        // another revision first (a rollout would only replace them), then the
        // highest-numbered.
        let excess = (slots.len() + starting.len()).saturating_sub(want as usize);
        let mut order: Vec<u32> = slots.keys().copied().collect();
        order.sort_by_key(|r| (slots[r].new.is_some(), std::cmp::Reverse(*r)));
        for r in order.into_iter().take(excess) {
            let slot = slots.remove(&r).expect("listed");
            for c in slot.new.into_iter().chain(slot.old) {
                tracing::info!(service = %svc.name, replica = r, "scaling in: stopping {}", c.name);
                self.book.replicas.remove(&(svc.name.clone(), r));
                leaving.push(c);
            }
        }
        if !leaving.is_empty() {
            self.leave(&leaving, "being removed");
            self.tasks
                .retire(leaving.into_iter().map(|c| (c, grace)).collect())
                .await?;
            acted = true;
        }

        // Scale out into the lowest free numbers. New replicas start together: ten
        // take about as long as one (the engine sets their namespaces up in parallel).
        let mut numbers: std::collections::BTreeSet<u32> =
            slots.keys().chain(&starting).copied().collect();
        let mut new = Vec::new();
        let mut r = 1;
        while numbers.len() < want as usize {
            if numbers.insert(r) {
                new.push(self.spec(svc, r));
            }
            r += 1;
        }
        if !new.is_empty() {
            for spec in &new {
                tracing::info!(service = %svc.name, "starting {}", spec.name);
            }
            self.tasks.start(new).await?;
            acted = true;
        }

        let rolling = self.rollouts.get(&svc.name).is_some_and(Rollout::active);
        for (&replica, slot) in &slots {
            // A slot with two revisions is the rollout's; so is an old one while it
            // is active (it replaces the old rather than restarting it).
            let c = match (&slot.new, &slot.old) {
                (Some(c), None) => c,
                (None, Some(c)) if !rolling => c,
                (Some(c), Some(_))
                    if c.state == State::Created && !self.tasks.starting(&c.name) =>
                {
                    // A successor created but never started: its control plane
                    // stopped in between. The rollout waits for it to be ready.
                    self.rt.start(&c.id).await?;
                    acted = true;
                    continue;
                }
                _ => continue,
            };
            if self.lifecycle(svc, replica, c, grace, pass).await? {
                acted = true;
            }
        }

        if (slots.values().any(|s| s.old.is_some()) || rolling)
            && self.roll(svc, &numbers, &slots, grace, pass).await?
        {
            acted = true;
        }
        Ok(acted)
    }

    /// A replica alone in its slot: started when created, restarted under its policy
    /// when it exited, replaced when unhealthy, and given back its name when a
    /// rollout left it under another. True when it acted.
    async fn lifecycle(
        &mut self,
        svc: &Service,
        replica: u32,
        c: &ContainerInfo,
        grace: Duration,
        pass: &mut Pass,
    ) -> Result<bool, Error> {
        if self.tasks.restarting(&c.id) {
            return Ok(false);
        }
        let canonical = self.canonical(svc, replica);
        if c.name != canonical && !self.tasks.starting(&canonical) {
            // Put aside for a successor that did not stay: it is the replica again.
            self.rt.rename(&c.id, &canonical).await?;
            return Ok(true);
        }
        match c.state {
            State::Created => {
                self.rt.start(&c.id).await?;
            }
            State::Exited | State::Dead => {
                if !self.first && !self.restart_due(svc, c, false, pass) {
                    return Ok(false);
                }
                self.rt.start(&c.id).await?;
                if !self.first {
                    self.replaced.insert(svc.name.clone());
                }
            }
            State::Running if c.health == Some(Health::Unhealthy) => {
                if self.thawing(svc, c) || !self.restart_due(svc, c, true, pass) {
                    return Ok(false);
                }
                self.replaced.insert(svc.name.clone());
                let spec = self.spec(svc, replica);
                if svc.default_order() == Order::StopFirst {
                    // Two copies cannot coexist: drained and stopped, then its
                    // successor starts.
                    self.leave(std::slice::from_ref(c), "replaced: unhealthy");
                    self.tasks
                        .replace(vec![(c.clone(), grace)], vec![spec])
                        .await?;
                } else {
                    // Capacity first: the successor starts while the unhealthy one
                    // drains and stops beside it.
                    self.put_aside(c).await?;
                    self.leave(std::slice::from_ref(c), "replaced: unhealthy");
                    self.tasks.start(vec![spec]).await?;
                    self.tasks.retire(vec![(c.clone(), grace)]).await?;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Moves a container out of its replica's name, so that its successor can take it
    /// while it still runs (Compose renames the container it replaces the same way).
    async fn put_aside(&self, c: &ContainerInfo) -> Result<(), Error> {
        let short: String = c.id.chars().take(12).collect();
        let aside = format!("{}-{short}", c.name);
        self.rt.rename(&c.id, &aside).await
    }

    /// Marks `leaving` as draining in the book: they are out of the balancer from now.
    fn leave(&mut self, leaving: &[ContainerInfo], why: &str) {
        let now = self.clock.now();
        for c in leaving
            .iter()
            .filter(|c| matches!(c.state, State::Running | State::Restarting))
        {
            self.book
                .transition(now, &c.service, c.replica, Phase::Draining, why);
        }
    }

    /// Restarts the running replicas of `svc` because its dependency `dep` (with
    /// `restart: true`) was restarted: drained, stopped, started again.
    async fn restart_dependant(&mut self, svc: &Service, dep: &str, observed: &[ContainerInfo]) {
        let grace = svc
            .stop_grace_period
            .unwrap_or(shoal_runtime::container::DEFAULT_GRACE);
        let now = self.clock.now();
        let running: Vec<ContainerInfo> = observed
            .iter()
            .filter(|c| c.service == svc.name && c.state == State::Running)
            .filter(|c| !self.tasks.restarting(&c.id))
            .cloned()
            .collect();
        for c in &running {
            self.book.emit(
                now,
                Event::DependencyRestarted {
                    service: svc.name.clone(),
                    replica: c.replica,
                    dependency: dep.to_string(),
                },
            );
        }
        self.leave(&running, "restarting: a dependency restarted");
        let restarts = running.into_iter().map(|c| (c, grace)).collect();
        if let Err(e) = self.tasks.restart(restarts).await {
            tracing::warn!(service = %svc.name, error = %e, "restart failed");
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
            // A container put aside for its successor is no longer the replica.
            if c.name != self.canonical(svc, c.replica) {
                continue;
            }
            let (phase, reason) = match (c.state, c.health) {
                (State::Running, _) if c.paused && self.paused.contains(&c.service) => {
                    (Phase::Stopped, "paused by `shoal pause`".to_string())
                }
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
                self.book.emit(
                    now,
                    Event::NotRestarted {
                        service: svc.name.clone(),
                        replica: c.replica,
                        limit_reached: restarts > 0 && limited,
                    },
                );
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
            pass.again_within(left);
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
        let attempt = r.restarts;
        self.book.emit(
            now,
            Event::Restarting {
                service: svc.name.clone(),
                replica: c.replica,
                exit_code: (!unhealthy).then_some(failed_code),
                attempt,
            },
        );
        true
    }
}
