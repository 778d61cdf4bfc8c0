//! The reconciler's side of `shoal stop | start | restart | pause | unpause`: held
//! services (stopped or paused) are left out of the passes, kept containers started
//! again, replicas frozen and thawed, and a rolling restart made a rollout.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal_runtime::{ContainerInfo, Error, State};
use shoal_spec::Service;

use super::Reconciler;

impl Reconciler {
    /// Which services are stopped (`shoal stop`), from now on.
    pub fn set_stopped(&mut self, stopped: BTreeSet<String>) {
        self.stopped = stopped;
    }

    /// Which services are paused (`shoal pause`), from now on.
    pub fn set_paused(&mut self, paused: BTreeSet<String>) {
        self.paused = paused;
    }

    /// Stops (drained first) the running containers of a stopped service, and keeps
    /// them.
    pub(super) async fn hold(
        &mut self,
        svc: &Service,
        observed: &[ContainerInfo],
    ) -> Result<(), Error> {
        let grace = svc
            .stop_grace_period
            .unwrap_or(shoal_runtime::container::DEFAULT_GRACE);
        let now = self.clock.now();
        let mut running = Vec::new();
        for c in observed.iter().filter(|c| {
            c.service == svc.name && c.state == State::Running && !self.tasks.restarting(&c.id)
        }) {
            self.book.transition(
                now,
                &svc.name,
                c.replica,
                crate::health::Phase::Stopped,
                "stopped by `shoal stop`",
            );
            running.push((c.clone(), grace));
        }
        self.tasks.halt(running).await
    }

    /// Starts again the kept containers of `services` (`shoal start`), which must no
    /// longer be stopped.
    pub async fn start_kept(&mut self, services: &[String]) -> Result<(), Error> {
        let kept: Vec<ContainerInfo> = self
            .list()
            .await?
            .into_iter()
            .filter(|c| {
                services.contains(&c.service)
                    && matches!(c.state, State::Exited | State::Created)
                    && !self.tasks.restarting(&c.id)
            })
            .collect();
        self.tasks.wake(kept).await
    }

    /// Drains the running replicas of `services` from the balancer, then freezes
    /// them (`shoal pause`); or thaws them (`unpause`), and they take requests again
    /// once ready.
    pub async fn freeze(&mut self, services: &[String], pause: bool) -> Result<(), Error> {
        let theirs: Vec<ContainerInfo> = self
            .list()
            .await?
            .into_iter()
            .filter(|c| {
                services.contains(&c.service) && c.state == State::Running && c.paused != pause
            })
            .collect();
        if !pause {
            let now = self.clock.now();
            self.thawed
                .extend(theirs.iter().map(|c| (c.id.clone(), now)));
        }
        self.tasks.pause(theirs, pause).await
    }

    /// True while `c`, just thawed, has had no fair chance to pass its health check
    /// again (two intervals and a timeout).
    pub(super) fn thawing(&mut self, svc: &Service, c: &ContainerInfo) -> bool {
        let Some(at) = self.thawed.get(&c.id).copied() else {
            return false;
        };
        let hc = svc.healthcheck.as_ref();
        let interval = hc
            .and_then(|h| h.interval)
            .unwrap_or(Duration::from_secs(30));
        let timeout = hc
            .and_then(|h| h.timeout)
            .unwrap_or(Duration::from_secs(30));
        if self.clock.now().saturating_sub(at) < interval * 2 + timeout {
            return true;
        }
        self.thawed.remove(&c.id);
        false
    }

    /// A rolling restart of `services`: each rolls to a new revision of the same
    /// configuration, as `kubectl rollout restart` does. Returns the services that
    /// roll.
    pub fn restart(
        &mut self,
        services: &[String],
        images: &BTreeMap<String, Option<String>>,
    ) -> Vec<String> {
        for s in services {
            self.revisions.restart(s);
        }
        let project = (*self.project).clone();
        self.apply(project, images, "restart", false)
    }
}
