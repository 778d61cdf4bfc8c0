//! What the control plane remembers of each replica between passes: its phase, its
//! restarts and the crash-loop backoff, and the transitions, each with a reason.
//!
//! Phases: `Starting → Ready ⇄ Unhealthy → Draining → Stopped → (started again)`, and
//! `Exited` when its process ended, while a restart waits out its backoff (or for good
//! when the policy says no more). Only `Ready` replicas are in the balancer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_runtime::{ContainerInfo, Health, State};

use crate::event::{Event, Events};

/// Where a replica is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Running, not yet healthy (or in its start period).
    Starting,
    /// Running and healthy: in the balancer.
    Ready,
    /// Running and failing its health checks: out of the balancer, to be restarted.
    Unhealthy,
    /// Out of the balancer, finishing what it has in flight before it is stopped.
    Draining,
    /// Stopped by the control plane (to be removed or started again).
    Stopped,
    /// Not running: its process ended.
    Exited,
}

/// The record of one replica.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Replica {
    /// The phase.
    pub phase: Phase,
    /// Restarts made by the control plane (after exits and for unhealthiness).
    pub restarts: u32,
    /// Exit code of the last exit.
    pub last_exit: Option<i64>,
    /// When the next restart may happen (clock time), while backing off.
    #[serde(skip)]
    pub backoff_until: Option<Duration>,
    /// Seconds left of the backoff, as last reported.
    pub backoff_secs: Option<f64>,
    /// When it became Ready (clock time), to reset the backoff after a stable run.
    #[serde(skip)]
    pub ready_since: Option<Duration>,
    /// Why it is in its phase.
    pub reason: String,
    /// The policy decided not to restart it after its last failure.
    #[serde(default)]
    pub given_up: bool,
}

impl Default for Replica {
    fn default() -> Replica {
        Replica {
            phase: Phase::Starting,
            restarts: 0,
            last_exit: None,
            backoff_until: None,
            backoff_secs: None,
            ready_since: None,
            reason: String::new(),
            given_up: false,
        }
    }
}

/// The records of every replica, and the recent events.
#[derive(Default)]
pub struct Book {
    /// By (service, replica number).
    pub replicas: BTreeMap<(String, u32), Replica>,
    /// The events, the newest kept.
    pub events: Events,
}

impl Book {
    /// The record of a replica, created on first use.
    pub fn get(&mut self, service: &str, replica: u32) -> &mut Replica {
        self.replicas
            .entry((service.to_string(), replica))
            .or_default()
    }

    /// Moves a replica to `phase` with a reason; logs and records the transition when
    /// the phase changes.
    pub fn transition(
        &mut self,
        now: Duration,
        service: &str,
        replica: u32,
        phase: Phase,
        reason: impl Into<String>,
    ) {
        let reason = reason.into();
        let r = self.get(service, replica);
        if r.phase == phase && r.reason == reason {
            return;
        }
        r.phase = phase;
        r.reason = reason.clone();
        r.ready_since = (phase == Phase::Ready).then_some(now);
        self.emit(
            now,
            Event::Phase {
                service: service.to_string(),
                replica,
                phase,
                reason,
            },
        );
    }

    /// Records an event.
    pub fn emit(&mut self, now: Duration, event: Event) {
        self.events.emit(now, event);
    }

    /// Forgets replicas that no longer exist.
    pub fn retain(&mut self, keep: impl Fn(&str, u32) -> bool) {
        self.replicas.retain(|(s, r), _| keep(s, *r));
    }
}

/// A replica that may take traffic: running (not paused), and healthy if it has a
/// healthcheck.
pub fn ready(c: &ContainerInfo) -> bool {
    c.state == State::Running && !c.paused && matches!(c.health, None | Some(Health::Healthy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_are_events_once() {
        let mut book = Book::default();
        book.transition(Duration::ZERO, "web", 1, Phase::Ready, "running");
        book.transition(Duration::ZERO, "web", 1, Phase::Ready, "running");
        book.transition(
            Duration::from_secs(1),
            "web",
            1,
            Phase::Unhealthy,
            "GET /healthz timed out 3 times",
        );
        let records = &book.events.records;
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[1].message,
            "unhealthy: GET /healthz timed out 3 times"
        );
        assert_eq!(records[1].subject, "web.1");
    }
}
