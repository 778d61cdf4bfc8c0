//! The reconciler's side of rolling updates: a new version of the project applied
//! (revisions recorded, rollouts begun), each rollout's step carried out on the
//! engine, rollbacks, and the `rollout undo | pause | resume` commands.

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_runtime::{ContainerInfo, Error, Health, State, LABEL_REVISION};
use shoal_spec::{Project, Service};

use super::{Pair, Pass, Reconciler, Target};
use crate::event::Event;
use crate::revision::{Revision, RolloutRecord, RolloutState};
use crate::rollout::{Action, Condition, Member, Rollout, Settings, Slot};

impl Reconciler {
    /// Makes `project` the one to run, each service's image at the id in `images`.
    /// A service whose containers would change gets a new revision and a rollout to
    /// it; the others take the new settings as they are. Returns the services that
    /// roll.
    ///
    /// With `adopting` (a control plane starting), what the last one left under way
    /// goes on: a rollout to the file's revision resumes, and a service rolled back
    /// from exactly the file's revision stays on the revision it went back to (the
    /// file must change, or `shoal rollout undo` be asked, to try again).
    pub fn apply(
        &mut self,
        project: Project,
        images: &BTreeMap<String, Option<String>>,
        cause: &str,
        adopting: bool,
    ) -> Vec<String> {
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut effective = project.clone();
        let mut rolling = Vec::new();
        for svc in project.services.values() {
            let name = svc.name.clone();
            let image = images.get(&name).cloned().flatten();
            let hash = self.revisions.hash_of(svc, image.as_deref());
            let history = self.revisions.of(&name).cloned().unwrap_or_default();
            let record = history.rollout.clone();
            if adopting {
                if let Some(rec) = record.as_ref().filter(|r| r.rollback) {
                    let failed = rec.from.and_then(|f| history.get(f));
                    if let (Some(good), true) =
                        (history.get(rec.to), failed.is_some_and(|f| f.hash == hash))
                    {
                        let why = rec.reason.clone().unwrap_or_default();
                        tracing::warn!(
                            "{name}: revision {} was rolled back ({why}); keeping revision {}. Change the file, or run `shoal rollout undo {name} --to-revision {}`, to try it again",
                            rec.from.unwrap_or_default(),
                            good.number,
                            rec.from.unwrap_or_default()
                        );
                        self.targets.insert(
                            name.clone(),
                            Target {
                                hash: good.hash.clone(),
                                number: good.number,
                            },
                        );
                        effective
                            .services
                            .insert(name.clone(), good.service.clone());
                        if rec.state == RolloutState::RollingBack {
                            let mut back = Rollout::new(
                                &name,
                                rec.from,
                                rec.to,
                                Settings::of(&good.service, true),
                                true,
                            );
                            back.reason = rec.reason.clone();
                            self.rollouts.insert(name.clone(), back);
                            rolling.push(name);
                        }
                        continue;
                    }
                }
            }
            let (number, before) = self.revisions.apply(svc, image.as_deref(), cause, now_unix);
            self.targets.insert(name.clone(), Target { hash, number });
            if before.is_some_and(|b| b != number) {
                let ro = Rollout::new(&name, before, number, Settings::of(svc, false), false);
                self.revisions.set_rollout(&name, Some(ro.record()));
                self.rollouts.insert(name.clone(), ro);
                rolling.push(name);
            } else if let Some(rec) =
                record.filter(|r| adopting && r.to == number && !r.rollback && !r.state.finished())
            {
                // A rollout to this revision was under way when the last control
                // plane stopped: it goes on from the replicas as they are.
                let mut ro = Rollout::new(&name, rec.from, number, Settings::of(svc, false), false);
                if rec.state == RolloutState::Paused {
                    ro.pause(rec.reason.as_deref().unwrap_or("paused"));
                }
                self.rollouts.insert(name.clone(), ro);
                rolling.push(name);
            }
        }
        self.revisions
            .retain(|name| project.services.contains_key(name));
        self.rollouts
            .retain(|name, _| project.services.contains_key(name));
        self.save();
        self.project = std::sync::Arc::new(effective);
        rolling
    }

    /// The id of each service's image as the engine has it now (`None` for one it
    /// does not have yet).
    pub async fn image_ids(&self, project: &Project) -> BTreeMap<String, Option<String>> {
        let mut out = BTreeMap::new();
        for svc in project.services.values() {
            let id = self.rt.image_id(&svc.image).await.ok().flatten();
            out.insert(svc.name.clone(), id);
        }
        out
    }

    /// Carries out one step of `svc`'s rollout over its slots (the replica numbers
    /// it runs, `numbers`). True when it acted.
    pub(super) async fn roll(
        &mut self,
        svc: &Service,
        numbers: &std::collections::BTreeSet<u32>,
        slots: &BTreeMap<u32, Pair>,
        grace: Duration,
        pass: &mut Pass,
    ) -> Result<bool, Error> {
        let target = self.target(svc);
        let name = svc.name.clone();
        let has_old = slots.values().any(|p| p.old.is_some());
        if self
            .rollouts
            .get(&name)
            .is_none_or(|r| r.to != target.number || (r.state.finished() && has_old))
        {
            // Replicas of another revision with no rollout for them (a control plane
            // that stopped before it wrote one, or an older shoal's): roll them.
            let from = slots
                .values()
                .filter_map(|p| p.old.as_ref())
                .find_map(|c| c.labels.get(LABEL_REVISION)?.parse().ok())
                .filter(|n| *n != 0);
            let ro = Rollout::new(&name, from, target.number, Settings::of(svc, false), false);
            self.rollouts.insert(name.clone(), ro);
        }
        let rslots: Vec<Slot> = numbers
            .iter()
            .map(|&replica| {
                let pair = slots.get(&replica).cloned().unwrap_or_default();
                let starting = self.tasks.starting(&self.canonical(svc, replica));
                Slot {
                    replica,
                    new: pair
                        .new
                        .as_ref()
                        .map(|c| self.member(c))
                        .or_else(|| starting.then(|| Member::new(Condition::Starting))),
                    old: pair.old.as_ref().map(|c| self.member(c)),
                }
            })
            .collect();
        let now = self.clock.now();
        let ro = self.rollouts.get_mut(&name).expect("made above");
        let before = ro.state;
        let step = ro.step(now, &rslots);
        if ro.state == RolloutState::RollingBack && before != RolloutState::RollingBack {
            *self.rollbacks.entry(name.clone()).or_default() += 1;
        }
        for e in step.events {
            // The subject says the service already.
            let step = e
                .strip_prefix(&format!("{name} "))
                .unwrap_or(&e)
                .to_string();
            self.book.emit(
                now,
                Event::Rollout {
                    service: name.clone(),
                    step,
                },
            );
        }
        let acted = !step.actions.is_empty();
        for action in step.actions {
            let (Action::Surge(r) | Action::Replace(r) | Action::Retire(r)) = action;
            let Some(old) = slots.get(&r).and_then(|p| p.old.clone()) else {
                continue;
            };
            match action {
                Action::Surge(_) => {
                    if old.name == self.canonical(svc, r) {
                        self.put_aside(&old).await?;
                    }
                    self.replaced.insert(name.clone());
                    self.tasks.start(vec![self.spec(svc, r)]).await?;
                }
                Action::Replace(_) => {
                    self.leave(std::slice::from_ref(&old), "replaced by a new revision");
                    self.replaced.insert(name.clone());
                    let spec = self.spec(svc, r);
                    self.tasks.replace(vec![(old, grace)], vec![spec]).await?;
                }
                Action::Retire(_) => {
                    self.tasks.retire(vec![(old, grace)]).await?;
                }
            }
        }
        if let Some(why) = step.roll_back {
            // The failed successors take no more requests from now: the rollback
            // retires them, and until it does the old replicas serve.
            let failed = self.rollouts[&name].failed_replicas();
            if let Some(routes) = &self.routes {
                for r in failed {
                    if let Some(c) = slots.get(&r).and_then(|p| p.new.as_ref()) {
                        routes.exclude(c);
                    }
                }
            }
            self.roll_back(&name, why);
        }
        if self.rollouts.get(&name).is_some_and(Rollout::active) {
            pass.converged = false;
        }
        self.persist(&name);
        Ok(acted)
    }

    /// How a container does, for its rollout.
    fn member(&self, c: &ContainerInfo) -> Member {
        let condition = match (c.state, c.health) {
            (State::Exited | State::Dead, _) => {
                Condition::Failed(format!("exited with code {}", c.exit_code.unwrap_or(0)))
            }
            (State::Running, Some(Health::Unhealthy)) => Condition::Failed(format!(
                "unhealthy: {}",
                self.probes
                    .as_ref()
                    .and_then(|p| p.reason(&c.id))
                    .unwrap_or_else(|| "its health check failed".into())
            )),
            _ if crate::health::ready(c) && !self.routes.as_ref().is_some_and(|r| r.ejected(c)) => {
                Condition::Ready
            }
            _ => Condition::Starting,
        };
        let stats = self.routes.as_ref().map(|r| r.stats(c)).unwrap_or_default();
        Member { condition, stats }
    }

    /// `name`'s rollout failed: back to the revision it came from, with the rollback
    /// settings. With nowhere to go back to, it pauses.
    fn roll_back(&mut self, name: &str, why: String) {
        let Some(ro) = self.rollouts.get_mut(name) else {
            return;
        };
        let to = ro.to;
        let back_to = ro
            .from
            .and_then(|f| self.revisions.of(name)?.get(f).cloned());
        let Some(rev) = back_to else {
            ro.state = RolloutState::Paused;
            ro.reason = Some(format!("{why}; no earlier revision to roll back to"));
            return;
        };
        self.switch(name, &rev);
        let mut back = Rollout::new(
            name,
            Some(to),
            rev.number,
            Settings::of(&rev.service, true),
            true,
        );
        back.reason = Some(why);
        self.rollouts.insert(name.to_string(), back);
    }

    /// Makes `rev` what `name` should run.
    fn switch(&mut self, name: &str, rev: &Revision) {
        self.targets.insert(
            name.to_string(),
            Target {
                hash: rev.hash.clone(),
                number: rev.number,
            },
        );
        self.revisions.set_current(name, rev.number);
        std::sync::Arc::make_mut(&mut self.project)
            .services
            .insert(name.to_string(), rev.service.clone());
    }

    /// `shoal rollout undo`: rolls `name` to revision `to`, or to the one before its
    /// current. Returns (from, to); an error changes nothing.
    pub fn undo(&mut self, name: &str, to: Option<u32>) -> Result<(u32, u32), String> {
        if !self.project.services.contains_key(name) {
            return Err(format!(
                "no service `{name}` in project {}",
                self.project.name
            ));
        }
        let history = self
            .revisions
            .of(name)
            .filter(|h| !h.revisions.is_empty())
            .ok_or_else(|| format!("`{name}` has no revisions yet"))?;
        let kept: Vec<String> = history
            .revisions
            .iter()
            .map(|r| r.number.to_string())
            .collect();
        let rev = match to {
            Some(n) => history.get(n).ok_or_else(|| {
                format!("`{name}` has no revision {n} (kept: {})", kept.join(", "))
            })?,
            None => history
                .revisions
                .iter()
                .filter(|r| r.number < history.current)
                .max_by_key(|r| r.number)
                .ok_or_else(|| {
                    format!(
                        "`{name}` has no revision before {} to go back to",
                        history.current
                    )
                })?,
        }
        .clone();
        let from = history.current;
        if rev.number == from {
            return Err(format!("`{name}` already runs revision {from}"));
        }
        self.switch(name, &rev);
        let ro = Rollout::new(
            name,
            Some(from),
            rev.number,
            Settings::of(&rev.service, false),
            false,
        );
        self.rollouts.insert(name.to_string(), ro);
        self.persist(name);
        Ok((from, rev.number))
    }

    /// `shoal rollout pause`: no new batch starts until resumed.
    pub fn pause(&mut self, name: &str) -> Result<(), String> {
        match self.rollouts.get_mut(name) {
            Some(ro) if ro.active() => {
                ro.pause("paused by `shoal rollout pause`");
                self.persist(name);
                Ok(())
            }
            _ => Err(format!("`{name}` has no rollout in progress")),
        }
    }

    /// `shoal rollout resume`.
    pub fn resume(&mut self, name: &str) -> Result<(), String> {
        match self.rollouts.get_mut(name) {
            Some(ro) if ro.state == RolloutState::Paused => {
                ro.resume();
                self.persist(name);
                Ok(())
            }
            _ => Err(format!("`{name}` has no paused rollout")),
        }
    }

    /// Each service's current revision and its last rollout.
    pub fn rollout_records(&self) -> BTreeMap<String, (u32, Option<RolloutRecord>)> {
        self.project
            .services
            .keys()
            .map(|name| {
                let current = self.revisions.of(name).map(|h| h.current).unwrap_or(0);
                let record = self
                    .rollouts
                    .get(name)
                    .map(Rollout::record)
                    .or_else(|| self.revisions.of(name).and_then(|h| h.rollout.clone()));
                (name.clone(), (current, record))
            })
            .collect()
    }

    /// Rollouts that failed and turned back, by service, since the control plane
    /// started.
    pub fn rollbacks(&self) -> &BTreeMap<String, u64> {
        &self.rollbacks
    }

    /// Writes `name`'s rollout record when it changed.
    fn persist(&mut self, name: &str) {
        let record = self.rollouts.get(name).map(Rollout::record);
        let stored = self.revisions.of(name).and_then(|h| h.rollout.clone());
        if record.is_some() && record != stored {
            self.revisions.set_rollout(name, record);
            self.save();
        }
    }

    fn save(&self) {
        if let Err(e) = self.revisions.save() {
            tracing::warn!(error = %e, "cannot write revisions.json");
        }
    }
}
