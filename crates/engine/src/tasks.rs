//! Work the reconciler runs beside its passes: creating and starting containers,
//! draining, stopping and removing them, restarting them in place. A pass hands the work over and goes on; the
//! containers in hand are remembered (names being started, ids leaving) so that no
//! pass asks for the same work twice, and what failed is reported by the next pass.
//!
//! Until [`Tasks::detach`] (the control plane's first pass, and tests on the fake
//! runtime) the work is done in the pass itself, in order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use shoal_runtime::{ContainerInfo, ContainerSpec, Error, Runtime, State};
use tokio::sync::Notify;

use crate::routes::Routes;

/// Containers started (or stopped) at once.
const PARALLEL: usize = 8;

/// What is in hand.
#[derive(Default)]
struct InHand {
    /// Names of containers being created and started.
    starting: HashSet<String>,
    /// Ids of containers being drained, stopped and removed.
    leaving: HashSet<String>,
    /// Ids of containers being drained and stopped, started again, or both.
    restarting: HashSet<String>,
    /// What failed, for the next pass to report.
    failed: Vec<String>,
}

/// The reconciler's work in progress.
pub struct Tasks {
    rt: Arc<dyn Runtime>,
    routes: Option<Arc<Routes>>,
    /// Woken when a piece of work ends; `None` while work is done inline.
    wake: Option<Arc<Notify>>,
    hand: Arc<Mutex<InHand>>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

/// What is done to a container that stays (not removed).
#[derive(Clone, Copy, Debug)]
enum InPlace {
    Restart,
    Stop,
    Start,
    Pause,
    Unpause,
}

impl InPlace {
    fn word(self) -> &'static str {
        match self {
            InPlace::Restart => "restart",
            InPlace::Stop => "stop",
            InPlace::Start => "start",
            InPlace::Pause => "pause",
            InPlace::Unpause => "unpause",
        }
    }
}

/// A container to drain, stop and remove, with its grace period.
pub type Leaving = (ContainerInfo, Duration);

impl Tasks {
    /// Work on `rt`, draining replicas from `routes` before they stop.
    pub fn new(rt: Arc<dyn Runtime>, routes: Option<Arc<Routes>>) -> Tasks {
        Tasks {
            rt,
            routes,
            wake: None,
            hand: Arc::default(),
            handles: Vec::new(),
        }
    }

    /// From now on work runs in the background; `wake` is woken as each piece ends.
    pub fn detach(&mut self, wake: Arc<Notify>) {
        self.wake = Some(wake);
    }

    fn hand(&self) -> std::sync::MutexGuard<'_, InHand> {
        self.hand.lock().expect("not poisoned")
    }

    /// True while a container of that name is being created and started.
    pub fn starting(&self, name: &str) -> bool {
        self.hand().starting.contains(name)
    }

    /// True while the container with that id is on its way out.
    pub fn leaving(&self, id: &str) -> bool {
        self.hand().leaving.contains(id)
    }

    /// True while the container with that id is being restarted.
    pub fn restarting(&self, id: &str) -> bool {
        self.hand().restarting.contains(id)
    }

    /// What failed since the last call; forgets finished tasks.
    pub fn failures(&mut self) -> Vec<String> {
        self.handles.retain(|t| !t.is_finished());
        std::mem::take(&mut self.hand().failed)
    }

    /// Waits for the work in progress (before a teardown, so that nothing is created
    /// after it).
    pub async fn settle(&mut self) {
        for t in self.handles.drain(..) {
            let _ = t.await;
        }
    }

    /// Creates and starts `specs` side by side.
    pub async fn start(&mut self, specs: Vec<ContainerSpec>) -> Result<(), Error> {
        self.run(Vec::new(), specs).await
    }

    /// Drains, stops and removes `leaving` side by side.
    pub async fn retire(&mut self, leaving: Vec<Leaving>) -> Result<(), Error> {
        self.run(leaving, Vec::new()).await
    }

    /// Drains, stops and removes `leaving`, then creates and starts `specs`: a
    /// replacement for a container that cannot run beside its successor.
    pub async fn replace(
        &mut self,
        leaving: Vec<Leaving>,
        specs: Vec<ContainerSpec>,
    ) -> Result<(), Error> {
        self.run(leaving, specs).await
    }

    /// Drains and stops `containers`, then starts each again (the same container).
    pub async fn restart(&mut self, containers: Vec<Leaving>) -> Result<(), Error> {
        self.in_place(containers, InPlace::Restart).await
    }

    /// Drains and stops `containers`, and keeps them (`shoal stop`).
    pub async fn halt(&mut self, containers: Vec<Leaving>) -> Result<(), Error> {
        self.in_place(containers, InPlace::Stop).await
    }

    /// Starts `containers` again, the same containers (`shoal start`).
    pub async fn wake(&mut self, containers: Vec<ContainerInfo>) -> Result<(), Error> {
        let containers = containers
            .into_iter()
            .map(|c| (c, Duration::ZERO))
            .collect();
        self.in_place(containers, InPlace::Start).await
    }

    /// Freezes `containers` (drained first), or thaws them.
    pub async fn pause(
        &mut self,
        containers: Vec<ContainerInfo>,
        pause: bool,
    ) -> Result<(), Error> {
        let op = if pause {
            InPlace::Pause
        } else {
            InPlace::Unpause
        };
        let containers = containers
            .into_iter()
            .map(|c| (c, Duration::ZERO))
            .collect();
        self.in_place(containers, op).await
    }

    /// Does `op` to each of `containers` in turn, draining it first when `op` takes
    /// it out of service.
    async fn in_place(&mut self, containers: Vec<Leaving>, op: InPlace) -> Result<(), Error> {
        if containers.is_empty() {
            return Ok(());
        }
        self.hand()
            .restarting
            .extend(containers.iter().map(|(c, _)| c.id.clone()));
        let (rt, routes, hand) = (self.rt.clone(), self.routes.clone(), self.hand.clone());
        let work = async move {
            let mut errors = Vec::new();
            for (c, grace) in &containers {
                let drains = matches!(op, InPlace::Restart | InPlace::Stop | InPlace::Pause);
                if let (true, Some(routes)) = (drains, &routes) {
                    routes.drain(c).await;
                }
                let done = match op {
                    InPlace::Restart => match rt.stop(&c.id, *grace).await {
                        Ok(()) => rt.start(&c.id).await,
                        Err(e) => Err(e),
                    },
                    InPlace::Stop => rt.stop(&c.id, *grace).await,
                    InPlace::Start => rt.start(&c.id).await,
                    InPlace::Pause => rt.pause(&c.id).await,
                    InPlace::Unpause => rt.unpause(&c.id).await,
                };
                if let Some(routes) = &routes {
                    routes.forget(c);
                }
                if let Err(e) = done {
                    errors.push((format!("{} {}", op.word(), c.name), e));
                }
            }
            let mut h = hand.lock().expect("not poisoned");
            for (c, _) in &containers {
                h.restarting.remove(&c.id);
            }
            errors
        };
        self.finish(work).await
    }

    async fn run(&mut self, leaving: Vec<Leaving>, specs: Vec<ContainerSpec>) -> Result<(), Error> {
        if leaving.is_empty() && specs.is_empty() {
            return Ok(());
        }
        {
            let mut hand = self.hand();
            hand.leaving
                .extend(leaving.iter().map(|(c, _)| c.id.clone()));
            hand.starting.extend(specs.iter().map(|s| s.name.clone()));
        }
        let (rt, routes, hand) = (self.rt.clone(), self.routes.clone(), self.hand.clone());
        let work = async move {
            let mut errors = stop_all(rt.as_ref(), routes.as_deref(), &leaving).await;
            if errors.is_empty() {
                errors.extend(start_all(rt.as_ref(), &specs).await);
            }
            let mut h = hand.lock().expect("not poisoned");
            for (c, _) in &leaving {
                h.leaving.remove(&c.id);
            }
            for s in &specs {
                h.starting.remove(&s.name);
            }
            errors
        };
        self.finish(work).await
    }

    /// Does `work` here (inline) or in the background, reporting what failed.
    async fn finish(
        &mut self,
        work: impl std::future::Future<Output = Vec<(String, Error)>> + Send + 'static,
    ) -> Result<(), Error> {
        match &self.wake {
            None => match work.await.into_iter().next() {
                Some((_, e)) => Err(e),
                None => Ok(()),
            },
            Some(wake) => {
                let (wake, hand) = (wake.clone(), self.hand.clone());
                self.handles.push(tokio::spawn(async move {
                    let errors = work.await;
                    hand.lock()
                        .expect("not poisoned")
                        .failed
                        .extend(errors.into_iter().map(|(what, e)| format!("{what}: {e}")));
                    wake.notify_one();
                }));
                Ok(())
            }
        }
    }
}

/// Drains, stops and removes each container in its own time; what failed.
async fn stop_all(
    rt: &dyn Runtime,
    routes: Option<&Routes>,
    leaving: &[Leaving],
) -> Vec<(String, Error)> {
    let stops: Vec<_> = leaving
        .iter()
        .map(|(c, grace)| async move {
            if matches!(c.state, State::Running | State::Restarting) {
                if let Some(routes) = routes {
                    routes.drain(c).await;
                }
                rt.stop(&c.id, *grace)
                    .await
                    .map_err(|e| (format!("stop {}", c.name), e))?;
            }
            let removed = rt
                .remove(&c.id)
                .await
                .map_err(|e| (format!("remove {}", c.name), e));
            if let Some(routes) = routes {
                routes.forget(c);
            }
            removed
        })
        .collect();
    futures_util::stream::iter(stops)
        .buffer_unordered(PARALLEL)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await
}

/// Creates and starts `specs` side by side; what failed.
async fn start_all(rt: &dyn Runtime, specs: &[ContainerSpec]) -> Vec<(String, Error)> {
    let starts: Vec<_> = specs
        .iter()
        .map(|spec| async move {
            let id = rt
                .create(spec)
                .await
                .map_err(|e| (format!("start {}", spec.name), e))?;
            rt.start(&id)
                .await
                .map_err(|e| (format!("start {}", spec.name), e))
        })
        .collect();
    futures_util::stream::iter(starts)
        .buffer_unordered(PARALLEL)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await
}
