//! The rollout state machine, step by step on plain slots and a hand-moved clock.

use super::*;
use shoal_spec::MountKind;

const S: Duration = Duration::from_secs(1);

fn settings() -> Settings {
    Settings {
        parallelism: 1,
        delay: Duration::ZERO,
        monitor: 5 * S,
        failure_action: FailureAction::Rollback,
        max_failure_ratio: 0.0,
        order: Order::StartFirst,
        ready_timeout: 30 * S,
        error_ratio: ERROR_RATIO,
    }
}

/// A world of `n` replicas the test moves by hand, as the reconciler would after each
/// action: `Surge` adds a starting successor, `Retire` removes the old container.
struct World {
    slots: Vec<Slot>,
}

/// `m` has answered `requests` so far, `bad` of them failed, each in `ms`.
fn traffic(m: &mut Member, requests: u64, bad: u64, ms: u64) {
    let s = shoal_proxy::Stats::default();
    for i in 0..requests {
        s.record(Duration::from_millis(ms), i < bad);
    }
    m.stats = s.snapshot();
}

fn ready() -> Member {
    Member::new(Condition::Ready)
}

impl World {
    fn old(n: u32) -> World {
        World {
            slots: (1..=n)
                .map(|replica| Slot {
                    replica,
                    new: None,
                    old: Some(ready()),
                })
                .collect(),
        }
    }

    fn slot(&mut self, r: u32) -> &mut Slot {
        &mut self.slots[r as usize - 1]
    }

    fn apply(&mut self, actions: &[Action]) {
        for a in actions {
            match *a {
                Action::Surge(r) => self.slot(r).new = Some(Member::new(Condition::Starting)),
                Action::Replace(r) => {
                    let s = self.slot(r);
                    s.old = None;
                    s.new = Some(Member::new(Condition::Starting));
                }
                Action::Retire(r) => self.slot(r).old = None,
            }
        }
    }

    fn set_new(&mut self, r: u32, c: Condition) {
        self.slot(r).new.as_mut().unwrap().condition = c;
    }
}

#[test]
fn start_first_one_at_a_time_until_complete() {
    let mut w = World::old(3);
    let mut r = Rollout::new("web", Some(1), 2, settings(), false);
    let mut t = Duration::ZERO;
    for replica in 1..=3 {
        let step = r.step(t, &w.slots);
        assert_eq!(step.actions, [Action::Surge(replica)], "at {t:?}");
        w.apply(&step.actions);
        // Starting: nothing else happens, the old replica keeps serving.
        t += S;
        assert_eq!(r.step(t, &w.slots).actions, []);
        w.set_new(replica, Condition::Ready);
        let step = r.step(t, &w.slots);
        assert_eq!(step.actions, [Action::Retire(replica)]);
        w.apply(&step.actions);
    }
    // All on the new revision; complete once the last one's monitor window passed.
    assert_eq!(r.step(t, &w.slots).actions, []);
    assert_eq!(r.state, RolloutState::Progressing);
    t += 5 * S;
    let step = r.step(t, &w.slots);
    assert_eq!(r.state, RolloutState::Complete);
    assert_eq!(step.events, ["web rollout 1→2 complete"]);
    assert_eq!(r.record().done, 3);
}

#[test]
fn parallelism_replaces_a_batch_at_once_and_delay_waits_between() {
    let mut w = World::old(4);
    let mut s = settings();
    s.parallelism = 2;
    s.delay = 10 * S;
    let mut r = Rollout::new("web", Some(1), 2, s, false);
    let step = r.step(Duration::ZERO, &w.slots);
    assert_eq!(step.actions, [Action::Surge(1), Action::Surge(2)]);
    w.apply(&step.actions);
    w.set_new(1, Condition::Ready);
    // One of the batch ready: it retires its old one, the next batch waits.
    let step = r.step(S, &w.slots);
    assert_eq!(step.actions, [Action::Retire(1)]);
    w.apply(&step.actions);
    w.set_new(2, Condition::Ready);
    let step = r.step(2 * S, &w.slots);
    assert_eq!(step.actions, [Action::Retire(2)]);
    w.apply(&step.actions);
    // The batch finished at 3 s; the next starts 10 s later.
    assert_eq!(r.step(3 * S, &w.slots).actions, []);
    assert_eq!(r.step(12 * S, &w.slots).actions, []);
    assert_eq!(
        r.step(13 * S, &w.slots).actions,
        [Action::Surge(3), Action::Surge(4)]
    );
}

#[test]
fn parallelism_zero_replaces_everything_at_once() {
    let w = World::old(3);
    let mut s = settings();
    s.parallelism = 0;
    let mut r = Rollout::new("web", Some(1), 2, s, false);
    assert_eq!(r.step(Duration::ZERO, &w.slots).actions.len(), 3);
}

#[test]
fn stop_first_replaces() {
    let mut w = World::old(2);
    let mut s = settings();
    s.order = Order::StopFirst;
    let mut r = Rollout::new("db", Some(1), 2, s, false);
    let step = r.step(Duration::ZERO, &w.slots);
    assert_eq!(step.actions, [Action::Replace(1)]);
    w.apply(&step.actions);
    assert_eq!(r.step(S, &w.slots).actions, [], "waits for its successor");
    w.set_new(1, Condition::Ready);
    assert_eq!(r.step(2 * S, &w.slots).actions, [Action::Replace(2)]);
}

#[test]
fn a_successor_that_exits_rolls_back_at_once() {
    let mut w = World::old(3);
    let mut r = Rollout::new("web", Some(3), 4, settings(), false);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    w.set_new(1, Condition::Failed("exited with code 3".into()));
    let step = r.step(S, &w.slots);
    assert_eq!(step.actions, []);
    assert_eq!(step.roll_back.as_deref(), Some("web.1 exited with code 3"));
    assert_eq!(
        step.events,
        ["web rollout 3→4: web.1 exited with code 3, rolling back"]
    );
    assert_eq!(r.state, RolloutState::RolledBack);
    // Nothing more from it.
    assert_eq!(r.step(2 * S, &w.slots), Step::default());
}

#[test]
fn a_successor_not_ready_in_time_fails() {
    let mut w = World::old(2);
    let mut r = Rollout::new("web", Some(1), 2, settings(), false);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    assert_eq!(r.step(30 * S, &w.slots).roll_back, None);
    let step = r.step(31 * S, &w.slots);
    assert_eq!(step.roll_back.as_deref(), Some("web.1 not ready after 30s"));
}

#[test]
fn failing_requests_during_monitor_fail_the_successor() {
    let mut w = World::old(2);
    let mut r = Rollout::new("web", Some(1), 2, settings(), false);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    w.set_new(1, Condition::Ready);
    w.apply(&r.step(S, &w.slots).actions);
    // 9 failures of 9 requests: too few to judge.
    traffic(w.slot(1).new.as_mut().unwrap(), 9, 9, 1);
    assert_eq!(r.step(2 * S, &w.slots).roll_back, None);
    traffic(w.slot(1).new.as_mut().unwrap(), 20, 2, 1);
    assert_eq!(
        r.step(3 * S, &w.slots).roll_back.as_deref(),
        Some("web.1 failed 2 of 20 requests")
    );
}

#[test]
fn a_successor_much_slower_than_the_old_revision_fails() {
    let mut w = World::old(2);
    for r in 1..=2 {
        traffic(w.slot(r).old.as_mut().unwrap(), 100, 0, 3);
    }
    let mut r = Rollout::new("web", Some(1), 2, settings(), false);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    w.set_new(1, Condition::Ready);
    w.apply(&r.step(S, &w.slots).actions);
    // Twice as slow is noise at these bucket sizes (5 ms against 10 ms): fine.
    traffic(w.slot(1).new.as_mut().unwrap(), 50, 0, 8);
    assert_eq!(r.step(2 * S, &w.slots).roll_back, None);
    traffic(w.slot(1).new.as_mut().unwrap(), 100, 0, 300);
    assert_eq!(
        r.step(3 * S, &w.slots).roll_back.as_deref(),
        Some("web.1 answered with a p99 of 500 ms, the old revision's 5 ms")
    );
}

#[test]
fn a_step_that_comes_after_the_window_still_judges_it() {
    // Ready at 1 s with a 5 s window; the next step (a slow pass) comes at 9 s, and by
    // then the replica has failed every request it got: that is the window's verdict.
    let mut w = World::old(2);
    let mut r = Rollout::new("web", Some(1), 2, settings(), false);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    w.set_new(1, Condition::Ready);
    w.apply(&r.step(S, &w.slots).actions);
    traffic(w.slot(1).new.as_mut().unwrap(), 50, 50, 1);
    assert_eq!(
        r.step(9 * S, &w.slots).roll_back.as_deref(),
        Some("web.1 failed 50 of 50 requests")
    );
}

#[test]
fn errors_after_the_monitor_window_are_not_the_rollouts() {
    let mut w = World::old(1);
    let mut r = Rollout::new("web", Some(1), 2, settings(), false);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    w.set_new(1, Condition::Ready);
    w.apply(&r.step(S, &w.slots).actions);
    traffic(w.slot(1).new.as_mut().unwrap(), 100, 0, 1);
    r.step(7 * S, &w.slots);
    assert_eq!(r.state, RolloutState::Complete);
    traffic(w.slot(1).new.as_mut().unwrap(), 200, 100, 1);
    assert_eq!(r.step(8 * S, &w.slots), Step::default());
}

#[test]
fn max_failure_ratio_tolerates_some_failures() {
    let mut w = World::old(4);
    let mut s = settings();
    s.max_failure_ratio = 0.25;
    s.parallelism = 0;
    let mut r = Rollout::new("web", Some(1), 2, s, false);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    w.set_new(1, Condition::Failed("exited with code 1".into()));
    let step = r.step(S, &w.slots);
    assert_eq!(step.roll_back, None, "1 of 4 is within 25 %");
    assert_eq!(step.events, ["web rollout 1→2: web.1 exited with code 1"]);
    assert_eq!(step.actions, [Action::Retire(1)]);
    w.set_new(2, Condition::Failed("exited with code 1".into()));
    assert!(r.step(2 * S, &w.slots).roll_back.is_some(), "2 of 4 is not");
}

#[test]
fn pause_stops_new_batches_until_resumed() {
    let mut w = World::old(3);
    let mut s = settings();
    s.failure_action = FailureAction::Pause;
    let mut r = Rollout::new("web", Some(1), 2, s, false);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    w.set_new(
        1,
        Condition::Failed("unhealthy: GET /healthz answered 503".into()),
    );
    let step = r.step(S, &w.slots);
    assert_eq!(r.state, RolloutState::Paused);
    assert_eq!(
        step.events,
        ["web rollout 1→2: web.1 unhealthy: GET /healthz answered 503, pausing"]
    );
    assert_eq!(r.step(100 * S, &w.slots).actions, []);
    // Fixed by hand, resumed: judged afresh, and the rollout goes on.
    w.set_new(1, Condition::Ready);
    r.resume();
    assert_eq!(r.step(101 * S, &w.slots).actions, [Action::Retire(1)]);
}

#[test]
fn continue_goes_on_and_completes_with_the_failures_said() {
    let mut w = World::old(2);
    let mut s = settings();
    s.failure_action = FailureAction::Continue;
    let mut r = Rollout::new("web", Some(1), 2, s, false);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    w.set_new(1, Condition::Failed("exited with code 1".into()));
    // The failed successor's slot moves on (its old container goes, the restart
    // policy looks after the successor), and so does the rollout.
    let step = r.step(S, &w.slots);
    assert_eq!(step.actions, [Action::Retire(1), Action::Surge(2)]);
    w.apply(&step.actions);
    w.set_new(2, Condition::Ready);
    w.apply(&r.step(2 * S, &w.slots).actions);
    r.step(8 * S, &w.slots);
    assert_eq!(r.state, RolloutState::Complete);
    assert_eq!(r.reason.as_deref(), Some("1 replicas failed"));
}

#[test]
fn failing_old_replicas_are_replaced_first() {
    let mut w = World::old(3);
    w.slot(3).old = Some(Member::new(Condition::Failed("exited with code 1".into())));
    let mut r = Rollout::new("web", Some(1), 2, settings(), false);
    assert_eq!(r.step(Duration::ZERO, &w.slots).actions, [Action::Surge(3)]);
}

#[test]
fn a_rollback_that_fails_pauses() {
    let mut w = World::old(1);
    let mut r = Rollout::new("web", Some(4), 3, settings(), true);
    assert_eq!(r.state, RolloutState::RollingBack);
    w.apply(&r.step(Duration::ZERO, &w.slots).actions);
    w.set_new(1, Condition::Failed("exited with code 1".into()));
    let step = r.step(S, &w.slots);
    assert_eq!(step.roll_back, None);
    assert_eq!(r.state, RolloutState::Paused);
}

#[test]
fn defaults_follow_what_the_service_allows() {
    let mut svc = Service {
        name: "web".into(),
        ..Service::default()
    };
    svc.deploy.replicas = 3;
    let s = Settings::of(&svc, false);
    assert_eq!(s.order, Order::StartFirst);
    assert_eq!(s.failure_action, FailureAction::Rollback);
    assert_eq!(s.monitor, DEFAULT_MONITOR);
    assert_eq!(s.parallelism, 1);
    assert_eq!(
        Settings::of(&svc, true).failure_action,
        FailureAction::Pause
    );

    // One replica on a named volume: two servers on one data directory corrupt it.
    let mut db = svc.clone();
    db.deploy.replicas = 1;
    db.volumes.push(shoal_spec::Mount {
        kind: MountKind::Volume,
        source: Some("data".into()),
        target: "/var/lib/postgresql/data".into(),
        read_only: false,
    });
    assert_eq!(Settings::of(&db, false).order, Order::StopFirst);
    let mut named = svc.clone();
    named.container_name = Some("fixed".into());
    assert_eq!(Settings::of(&named, false).order, Order::StopFirst);
    // What the file says wins.
    db.deploy.update_config = Some(shoal_spec::UpdateConfig {
        order: Some(Order::StartFirst),
        ..Default::default()
    });
    assert_eq!(Settings::of(&db, false).order, Order::StartFirst);
}
