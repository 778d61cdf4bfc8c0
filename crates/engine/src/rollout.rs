//! Rolling updates: one service moved from one revision to another, a few replicas at
//! a time, each judged before the next batch starts, and rolled back by itself when
//! the new revision fails.
//!
//! Level-triggered, as a Kubernetes Deployment's rollout is: every step looks at each
//! replica number's *slot* (its container on the target revision, `new`, and its
//! container on any other, `old`) and returns what to do next. It does no I/O and
//! reads no clock: the reconciler hands it the time and the slots and carries out the
//! [`Action`]s, so it is tested step by step on plain values.
//!
//! - `start-first`: the successor is started beside the old replica ([`Action::Surge`]);
//!   once it is ready the old one drains and stops ([`Action::Retire`]). Capacity never
//!   drops.
//! - `stop-first`: the old replica drains and stops, then its successor starts
//!   ([`Action::Replace`]): for services whose two copies cannot coexist.
//! - A new replica fails when it exits or turns unhealthy, when it is not ready within
//!   the ready timeout, or when during `monitor` after it became ready the balancer
//!   saw more than 5 % of its requests fail (5xx or no answer, 10 requests at least;
//!   `x-shoal.update.ready_timeout` and `error_ratio` change the two limits), or a p99
//!   more than twice the old revision's and 100 ms above it.
//!   More failures than `max_failure_ratio` of the replicas trigger `failure_action`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal_spec::{FailureAction, Order, Service};

use shoal_proxy::Snapshot;

use crate::revision::{RolloutRecord, RolloutState};

/// The engine's default `monitor`.
pub const DEFAULT_MONITOR: Duration = Duration::from_secs(5);
/// Added to a service's start period to make its ready timeout.
pub const READY_MARGIN: Duration = Duration::from_secs(30);
/// Share of a new replica's requests that may fail during its monitor window, unless
/// `x-shoal.update.error_ratio` says otherwise.
pub const ERROR_RATIO: f64 = 0.05;
/// Requests a new replica must have answered before its error ratio is judged.
pub const MIN_REQUESTS: u64 = 10;
/// A new replica is too slow when its p99 is this many times the old revision's...
pub const SLOWER: u32 = 2;
/// ...and at least this much above it (the latency buckets are coarse).
pub const SLOWER_BY: Duration = Duration::from_millis(100);

/// How a service rolls, with shoal's defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Replicas replaced at once (0: all).
    pub parallelism: u32,
    /// Wait after a batch before the next.
    pub delay: Duration,
    /// How long a ready new replica is watched.
    pub monitor: Duration,
    /// What too many failures do.
    pub failure_action: FailureAction,
    /// Share of the replicas that may fail.
    pub max_failure_ratio: f64,
    /// Start-first or stop-first.
    pub order: Order,
    /// How long a new replica may take to be ready.
    pub ready_timeout: Duration,
    /// Share of a new replica's requests that may fail while it is watched.
    pub error_ratio: f64,
}

impl Settings {
    /// The settings of `svc` for an update, or (with `rollback`) for going back.
    ///
    /// Unset fields take shoal's defaults: parallelism 1, no delay, a 5 s monitor,
    /// `failure_action: rollback` (pause for a rollback), and `start-first` unless two
    /// copies of a replica cannot coexist (a `container_name`, host networking, or a
    /// named volume under a single replica), then `stop-first`.
    pub fn of(svc: &Service, rollback: bool) -> Settings {
        let given = if rollback {
            svc.deploy
                .rollback_config
                .as_ref()
                .or(svc.deploy.update_config.as_ref())
        } else {
            svc.deploy.update_config.as_ref()
        };
        let given = given.cloned().unwrap_or_default();
        let start_period = svc
            .x_shoal
            .health
            .as_ref()
            .map(|p| p.start_period)
            .into_iter()
            .chain(svc.healthcheck.as_ref().and_then(|h| h.start_period))
            .max()
            .unwrap_or_default();
        Settings {
            parallelism: given.parallelism.unwrap_or(1),
            delay: given.delay.unwrap_or_default(),
            monitor: given.monitor.unwrap_or(DEFAULT_MONITOR),
            failure_action: given.failure_action.unwrap_or(if rollback {
                FailureAction::Pause
            } else {
                FailureAction::Rollback
            }),
            max_failure_ratio: given.max_failure_ratio.unwrap_or(0.0),
            order: given.order.unwrap_or_else(|| svc.default_order()),
            ready_timeout: svc
                .x_shoal
                .update
                .as_ref()
                .and_then(|u| u.ready_timeout)
                .unwrap_or(start_period + READY_MARGIN),
            error_ratio: svc
                .x_shoal
                .update
                .as_ref()
                .and_then(|u| u.error_ratio)
                .unwrap_or(ERROR_RATIO),
        }
    }
}

/// How a container of a slot is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// Not ready yet.
    Starting,
    /// In the balancer.
    Ready,
    /// Exited, or unhealthy; with why.
    Failed(String),
}

/// One container of a slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// How it is doing.
    pub condition: Condition,
    /// What the balancer has counted of it so far (requests, failures, 5xx answers,
    /// latency).
    pub stats: Snapshot,
}

impl Member {
    /// A member with no traffic yet.
    pub fn new(condition: Condition) -> Member {
        Member {
            condition,
            stats: Snapshot::default(),
        }
    }
}

/// Requests that failed in `s`: no answer, or any 5xx.
fn bad(s: &Snapshot) -> u64 {
    s.failures + s.server_errors
}

/// One replica number.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// The replica number.
    pub replica: u32,
    /// Its container on the target revision (or one being started).
    pub new: Option<Member>,
    /// Its container on another revision.
    pub old: Option<Member>,
}

/// What the reconciler is to do for a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Move the old container aside and start the successor under the replica's name.
    Surge(u32),
    /// Drain and stop the old container, then start the successor.
    Replace(u32),
    /// The successor is ready: drain, stop and remove the old container.
    Retire(u32),
}

/// What one step decided.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// To carry out now.
    pub actions: Vec<Action>,
    /// What happened, for the events.
    pub events: Vec<String>,
    /// The rollout failed and its failure action is to go back: why.
    pub roll_back: Option<String>,
}

/// A service's rollout in progress.
#[derive(Clone, Debug)]
pub struct Rollout {
    /// The service.
    pub service: String,
    /// The revision it started from.
    pub from: Option<u32>,
    /// The revision it rolls to.
    pub to: u32,
    /// True for the way back after a failure.
    pub rollback: bool,
    /// Where it is.
    pub state: RolloutState,
    /// Why it paused, rolled back or failed.
    pub reason: Option<String>,
    settings: Settings,
    /// When each replica's successor was started (or first seen starting).
    started: BTreeMap<u32, Duration>,
    /// When each successor was first seen ready, with its counters then.
    ready: BTreeMap<u32, (Duration, Snapshot)>,
    /// Successors judged on a step after their monitor window: passed, not judged again.
    passed: BTreeSet<u32>,
    /// The p99 latency of the revision being replaced, from its replicas' counters.
    baseline_p99: Option<Duration>,
    failed: BTreeSet<u32>,
    /// When the last batch finished; `None` while one is in progress.
    batch_done_at: Option<Duration>,
    done: u32,
    of: u32,
}

impl Rollout {
    /// A rollout of `service` from revision `from` to `to`.
    pub fn new(
        service: &str,
        from: Option<u32>,
        to: u32,
        settings: Settings,
        rollback: bool,
    ) -> Rollout {
        Rollout {
            service: service.to_string(),
            from,
            to,
            rollback,
            state: if rollback {
                RolloutState::RollingBack
            } else {
                RolloutState::Progressing
            },
            reason: None,
            settings,
            started: BTreeMap::new(),
            ready: BTreeMap::new(),
            passed: BTreeSet::new(),
            baseline_p99: None,
            failed: BTreeSet::new(),
            batch_done_at: None,
            done: 0,
            of: 0,
        }
    }

    /// `web rollout 3→4`, `web rollback 4→3`.
    pub fn label(&self) -> String {
        let kind = if self.rollback { "rollback" } else { "rollout" };
        match self.from {
            Some(f) => format!("{} {kind} {f}→{}", self.service, self.to),
            None => format!("{} {kind} to {}", self.service, self.to),
        }
    }

    /// Its record, for the state directory and `shoal rollout status`.
    pub fn record(&self) -> RolloutRecord {
        RolloutRecord {
            from: self.from,
            to: self.to,
            state: self.state,
            rollback: self.rollback,
            reason: self.reason.clone(),
            done: self.done,
            of: self.of,
        }
    }

    /// The replica numbers whose successors failed.
    pub fn failed_replicas(&self) -> Vec<u32> {
        self.failed.iter().copied().collect()
    }

    /// True while it still has work: not finished, not paused.
    pub fn active(&self) -> bool {
        matches!(
            self.state,
            RolloutState::Progressing | RolloutState::RollingBack
        )
    }

    /// Stops starting new batches (`shoal rollout pause`).
    pub fn pause(&mut self, reason: &str) {
        if self.active() {
            self.state = RolloutState::Paused;
            self.reason = Some(reason.to_string());
        }
    }

    /// Goes on after a pause, judging the failed replicas afresh.
    pub fn resume(&mut self) {
        if self.state == RolloutState::Paused {
            self.state = if self.rollback {
                RolloutState::RollingBack
            } else {
                RolloutState::Progressing
            };
            self.reason = None;
            for r in std::mem::take(&mut self.failed) {
                self.started.remove(&r);
                self.ready.remove(&r);
                self.passed.remove(&r);
            }
        }
    }

    /// The old revision's p99 over its replicas, while they are there to read.
    fn observe_baseline(&mut self, slots: &[Slot]) {
        let mut all = Snapshot::default();
        for m in slots.iter().filter_map(|sl| sl.old.as_ref()) {
            all.add(&m.stats);
        }
        if all.requests >= MIN_REQUESTS {
            self.baseline_p99 = all.quantile(0.99);
        }
    }

    /// Why what the balancer saw of a new replica since it became ready fails it:
    /// too many failed requests, or a p99 well above the old revision's.
    fn judge(&self, seen: &Snapshot) -> Option<String> {
        if seen.requests < MIN_REQUESTS {
            return None;
        }
        let failed = bad(seen);
        if failed as f64 > self.settings.error_ratio * seen.requests as f64 {
            return Some(format!("failed {failed} of {} requests", seen.requests));
        }
        let (Some(p99), Some(base)) = (seen.quantile(0.99), self.baseline_p99) else {
            return None;
        };
        (p99 > base * SLOWER && p99 >= base + SLOWER_BY).then(|| {
            format!(
                "answered with a p99 of {} ms, the old revision's {} ms",
                p99.as_millis(),
                base.as_millis()
            )
        })
    }

    /// One step at time `now` over the service's slots (one per replica number the
    /// service runs; a scale-in or out between steps changes them).
    pub fn step(&mut self, now: Duration, slots: &[Slot]) -> Step {
        let mut step = Step::default();
        if self.state.finished() {
            return step;
        }
        let label = self.label();
        let s = self.settings.clone();
        self.observe_baseline(slots);

        // Judge every successor.
        let mut newly_failed = Vec::new();
        for slot in slots {
            let r = slot.replica;
            let Some(new) = &slot.new else { continue };
            if self.failed.contains(&r) {
                continue;
            }
            let why = match &new.condition {
                Condition::Failed(why) => Some(why.clone()),
                Condition::Starting => {
                    let since = *self.started.entry(r).or_insert(now);
                    (now.saturating_sub(since) > s.ready_timeout)
                        .then(|| format!("not ready after {}s", s.ready_timeout.as_secs()))
                }
                Condition::Ready => {
                    let (at, base) = self
                        .ready
                        .entry(r)
                        .or_insert((now, new.stats.clone()))
                        .clone();
                    let seen = new.stats.since(&base);
                    // Judged on every step of its window and on the first after it:
                    // a late step (a slow pass, a busy engine) still judges what the
                    // replica answered in its window, rather than passing it unseen.
                    let verdict = if self.passed.contains(&r) {
                        None
                    } else {
                        self.judge(&seen)
                    };
                    if now.saturating_sub(at) > s.monitor {
                        self.passed.insert(r);
                    }
                    match verdict {
                        Some(why) => Some(why),
                        None => {
                            if slot.old.is_some() {
                                step.actions.push(Action::Retire(r));
                            }
                            None
                        }
                    }
                }
            };
            if let Some(why) = why {
                self.failed.insert(r);
                newly_failed.push(format!("{}.{r} {why}", self.service));
            }
        }

        let of = slots.len() as u32;
        if !newly_failed.is_empty() {
            let too_many = self.failed.len() as f64 > s.max_failure_ratio * f64::from(of);
            let what = newly_failed.join(", ");
            match (too_many, s.failure_action) {
                (false, _) | (true, FailureAction::Continue) => {
                    step.events.push(format!("{label}: {what}"));
                }
                (true, FailureAction::Rollback) if !self.rollback => {
                    step.events.push(format!("{label}: {what}, rolling back"));
                    self.state = RolloutState::RolledBack;
                    self.reason = Some(what.clone());
                    step.roll_back = Some(what);
                    step.actions.retain(|_| false);
                    return step;
                }
                (true, _) => {
                    step.events.push(format!("{label}: {what}, pausing"));
                    self.state = RolloutState::Paused;
                    self.reason = Some(what);
                }
            }
        }

        // A failure the rollout tolerates moves its slot on: the old container goes,
        // and the restart policy looks after the successor.
        if self.active() {
            for sl in slots {
                if self.failed.contains(&sl.replica) && sl.old.is_some() {
                    step.actions.push(Action::Retire(sl.replica));
                }
            }
        }

        // A slot is in flight while its successor is not ready yet, or its old
        // container is still there beside a ready successor.
        let in_flight = slots
            .iter()
            .filter(|sl| !self.failed.contains(&sl.replica))
            .filter(|sl| {
                sl.new
                    .as_ref()
                    .is_some_and(|n| n.condition != Condition::Ready || sl.old.is_some())
            })
            .count();
        if in_flight == 0 && self.batch_done_at.is_none() && !self.started.is_empty() {
            self.batch_done_at = Some(now);
        }

        if self.active() && in_flight == 0 {
            let rested = self.batch_done_at.is_none_or(|t| now >= t + s.delay);
            if rested {
                // Failing old replicas first: replacing them costs no capacity.
                let mut pending: Vec<&Slot> = slots
                    .iter()
                    .filter(|sl| sl.new.is_none() && sl.old.is_some())
                    .collect();
                pending.sort_by_key(|sl| {
                    (
                        !matches!(
                            sl.old.as_ref().map(|o| &o.condition),
                            Some(Condition::Failed(_))
                        ),
                        sl.replica,
                    )
                });
                let n = if s.parallelism == 0 {
                    pending.len()
                } else {
                    s.parallelism as usize
                };
                let batch: Vec<u32> = pending.into_iter().take(n).map(|sl| sl.replica).collect();
                for &r in &batch {
                    self.started.insert(r, now);
                    self.batch_done_at = None;
                    step.actions.push(match s.order {
                        Order::StartFirst => Action::Surge(r),
                        Order::StopFirst => Action::Replace(r),
                    });
                }
                if !batch.is_empty() {
                    let names: Vec<String> = batch
                        .iter()
                        .map(|r| format!("{}.{r}", self.service))
                        .collect();
                    let how = match s.order {
                        Order::StartFirst => "start-first",
                        Order::StopFirst => "stop-first",
                    };
                    step.events
                        .push(format!("{label}: replacing {} ({how})", names.join(", ")));
                }
            }
        }

        // Done when every slot runs the target revision alone and each successor that
        // did not fail has been watched for its monitor window.
        let updated = slots
            .iter()
            .filter(|sl| sl.new.is_some() && sl.old.is_none())
            .count() as u32;
        self.done = slots
            .iter()
            .filter(|sl| {
                sl.old.is_none()
                    && sl
                        .new
                        .as_ref()
                        .is_some_and(|n| n.condition == Condition::Ready)
                    && !self.failed.contains(&sl.replica)
            })
            .count() as u32;
        self.of = of;
        // (A slot this rollout did not replace, such as one the failed revision never
        // reached on the way back, needs no watching.)
        let watched = slots.iter().all(|sl| {
            self.failed.contains(&sl.replica)
                || !self.started.contains_key(&sl.replica)
                || self
                    .ready
                    .get(&sl.replica)
                    .is_some_and(|(at, _)| now.saturating_sub(*at) >= s.monitor)
        });
        let retiring = step.actions.iter().any(|a| matches!(a, Action::Retire(_)));
        if self.active() && updated == of && watched && !retiring {
            self.state = if self.rollback {
                RolloutState::RolledBack
            } else {
                RolloutState::Complete
            };
            if !self.failed.is_empty() {
                self.reason = Some(format!("{} replicas failed", self.failed.len()));
            }
            step.events.push(format!("{label} complete"));
        }
        step
    }
}

#[cfg(test)]
mod tests;
