//! One reconcile pass: compare what the project wants with what the engine has, and
//! act on the difference. Level-triggered: a pass reads everything back from the
//! engine, so it can run any number of times, after any crash, and converge.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use shoal_runtime::{
    project_labels, ContainerInfo, ContainerSpec, Error, Health, NetworkSpec, Runtime, State,
    VolumeSpec, LABEL_KEY,
};
use shoal_spec::{Condition, Project, Restart, Service};

use crate::order::start_order;
use crate::routes::Routes;

/// The replica count a service should run: a `shoal scale` override, else the file's.
pub fn desired_count(svc: &Service, overrides: &BTreeMap<String, u32>) -> u32 {
    overrides
        .get(&svc.name)
        .copied()
        .unwrap_or(svc.deploy.replicas)
}

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
    /// Restarts made under the restart policy, by (service, replica).
    restarts: HashMap<(String, u32), u32>,
    /// True until the first pass: `up` starts stopped containers whatever their policy.
    first: bool,
    /// The published ports, drained of a replica before it stops.
    routes: Option<Arc<Routes>>,
}

impl Reconciler {
    /// A reconciler for `project` on `rt`.
    pub fn new(rt: Arc<dyn Runtime>, project: Arc<Project>) -> Reconciler {
        Reconciler {
            rt,
            project,
            restarts: HashMap::new(),
            first: true,
            routes: None,
        }
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
        let mut observed = self.rt.list(&self.project.name).await?;

        // Containers of services the project no longer has.
        for c in observed
            .iter()
            .filter(|c| !self.project.services.contains_key(&c.service))
        {
            tracing::info!(container = %c.name, "removing: its service is no longer in the project");
            if let Err(e) = self
                .remove(c, shoal_runtime::container::DEFAULT_GRACE)
                .await
            {
                pass.failures.push(format!("remove {}: {e}", c.name));
            }
        }

        let project = self.project.clone();
        for name in start_order(&project) {
            let svc = &project.services[&name];
            if let Some(why) = self.blocked(svc, overrides, &observed) {
                pass.waiting.push(format!("{name}: {why}"));
                pass.converged = false;
                continue;
            }
            let mine: Vec<ContainerInfo> = observed
                .iter()
                .filter(|c| c.service == name)
                .cloned()
                .collect();
            let acted = match self.service(svc, desired_count(svc, overrides), mine).await {
                Ok(acted) => acted,
                Err(e) => {
                    pass.failures.push(format!("{name}: {e}"));
                    pass.converged = false;
                    true
                }
            };
            if acted {
                // Later services may wait on this one: read it back.
                observed = self.rt.list(&self.project.name).await?;
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
                    crate::control::ready(c) || (c.state == State::Exited && c.exit_code == Some(0))
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

        // Scale in: the highest replicas go first.
        for (replica, c) in by_replica.iter().rev() {
            if *replica > want {
                tracing::info!(service = %svc.name, replica, "scaling in: stopping {}", c.name);
                self.remove(c, grace).await?;
                self.restarts.remove(&(svc.name.clone(), *replica));
                acted = true;
            }
        }

        for replica in 1..=want {
            let spec = ContainerSpec::for_replica(&self.project, svc, replica);
            match by_replica.get(&replica) {
                None => {
                    tracing::info!(service = %svc.name, replica, "starting {}", spec.name);
                    self.create_and_start(&spec).await?;
                }
                Some(c) if c.config_hash != hash => {
                    tracing::info!(service = %svc.name, replica, "recreating {}: its configuration changed", c.name);
                    self.remove(c, grace).await?;
                    self.create_and_start(&spec).await?;
                }
                Some(c) if c.state == State::Created => {
                    self.rt.start(&c.id).await?;
                }
                Some(c) if matches!(c.state, State::Exited | State::Dead) => {
                    let key = (svc.name.clone(), replica);
                    let attempts = self.restarts.get(&key).copied().unwrap_or(0);
                    if !self.first && !should_restart(svc, c.exit_code.unwrap_or(0), attempts) {
                        continue;
                    }
                    if !self.first {
                        self.restarts.insert(key, attempts + 1);
                        tracing::info!(
                            service = %svc.name, replica,
                            "restarting {} (exit code {}, restart {})", c.name, c.exit_code.unwrap_or(0), attempts + 1
                        );
                    }
                    self.rt.start(&c.id).await?;
                }
                Some(_) => continue,
            }
            acted = true;
        }
        Ok(acted)
    }

    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<(), Error> {
        let id = self.rt.create(spec).await?;
        self.rt.start(&id).await
    }

    async fn remove(&self, c: &ContainerInfo, grace: std::time::Duration) -> Result<(), Error> {
        if let Some(routes) = &self.routes {
            routes.drain(c).await;
        }
        if matches!(c.state, State::Running | State::Restarting) {
            self.rt.stop(&c.id, grace).await?;
        }
        self.rt.remove(&c.id).await
    }
}

/// Whether an exited replica is started again, under `deploy.restart_policy` when the
/// service sets it, else under `restart:`.
pub fn should_restart(svc: &Service, exit_code: i64, attempts: u32) -> bool {
    if let Some(p) = &svc.deploy.restart_policy {
        let wanted = match p.condition.as_str() {
            "none" => false,
            "on-failure" => exit_code != 0,
            _ => true,
        };
        return wanted && p.max_attempts.is_none_or(|max| attempts < max);
    }
    match svc.restart.as_ref().unwrap_or(&Restart::No) {
        Restart::No => false,
        Restart::Always | Restart::UnlessStopped => true,
        Restart::OnFailure(max) => exit_code != 0 && max.is_none_or(|m| attempts < m),
    }
}
