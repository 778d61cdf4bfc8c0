//! The reconciler on the in-memory runtime: what it creates, adopts, recreates,
//! restarts and removes.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Duration;

use shoal_engine::clock::FakeClock;
use shoal_engine::down::teardown;
use shoal_engine::reconcile::Reconciler;
use shoal_runtime::{Fake, Health, Runtime, State};
use shoal_spec::Project;

fn project(yaml: &str) -> Project {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
    let opts = shoal_spec::Options {
        working_dir: dir.path().to_path_buf(),
        project_name: Some("t".into()),
        ..Default::default()
    };
    shoal_spec::load(&opts).unwrap().project
}

fn fake_with_images(p: &Project) -> Arc<Fake> {
    let fake = Arc::new(Fake::new());
    for s in p.services.values() {
        fake.add_image(&s.image);
    }
    fake
}

async fn pass(r: &mut Reconciler) -> shoal_engine::reconcile::Pass {
    r.pass(&BTreeMap::new()).await.unwrap()
}

const WEB: &str =
    "services:\n  web:\n    image: web\n    deploy: {replicas: 3}\nvolumes:\n  data: {}\n";

#[tokio::test]
async fn creates_replicas_then_adopts_them() {
    let p = Arc::new(project(WEB));
    let fake = fake_with_images(&p);
    let mut r = Reconciler::new(fake.clone(), p.clone());
    r.infrastructure().await.unwrap();
    let first = pass(&mut r).await;
    assert!(
        !first.converged,
        "what a pass started counts only once a later pass sees it up"
    );
    let running: Vec<_> = first
        .observed
        .iter()
        .filter(|c| c.state == State::Running)
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(running, ["t-web-1", "t-web-2", "t-web-3"]);
    let calls = fake.calls().len();

    // A new control plane (as after SIGKILL) adopts them: nothing is created or stopped.
    let mut again = Reconciler::new(fake.clone(), p.clone());
    again.infrastructure().await.unwrap();
    assert!(pass(&mut again).await.converged);
    assert_eq!(fake.calls().len(), calls, "{:?}", &fake.calls()[calls..]);
}

#[tokio::test]
async fn scales_out_and_in_highest_first() {
    let p = Arc::new(project(WEB));
    let fake = fake_with_images(&p);
    let mut r = Reconciler::new(fake.clone(), p.clone());
    pass(&mut r).await;
    let five = r.pass(&BTreeMap::from([("web".into(), 5)])).await.unwrap();
    assert_eq!(five.observed.len(), 5);
    let two = r.pass(&BTreeMap::from([("web".into(), 2)])).await.unwrap();
    let names: Vec<_> = two.observed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["t-web-1", "t-web-2"]);
    let calls = fake.calls();
    let stop5 = calls.iter().position(|c| c == "stop t-web-5").unwrap();
    let rm5 = calls.iter().position(|c| c == "remove t-web-5").unwrap();
    assert!(stop5 < rm5, "stopped before removed");
}

#[tokio::test]
async fn changed_config_rolls_start_first_one_replica_at_a_time() {
    let p = Arc::new(project(WEB));
    let fake = fake_with_images(&p);
    pass(&mut Reconciler::new(fake.clone(), p.clone())).await;
    let changed = Arc::new(project(
        "services:\n  web:\n    image: web\n    environment: {A: '1'}\n    deploy: {replicas: 3}\nvolumes:\n  data: {}\n",
    ));
    let clock = Arc::new(FakeClock::default());
    let mut r = Reconciler::new(fake.clone(), changed.clone()).with_clock(clock.clone());
    let before = fake.calls().len();
    let first = pass(&mut r).await;
    assert!(!first.converged);
    assert_eq!(first.next_in, Some(Duration::from_millis(250)));
    assert_eq!(
        &fake.calls()[before..],
        [
            "rename t-web-1 t-web-1-c0002",
            "create t-web-1",
            "start t-web-1"
        ],
        "the successor starts beside the old replica, under its name"
    );
    for _ in 0..40 {
        clock.advance(Duration::from_millis(250));
        if pass(&mut r).await.converged {
            break;
        }
    }
    let calls = &fake.calls()[before..];
    // Each old replica stops only after its successor is up, one at a time.
    for n in 1..=3 {
        let created = calls
            .iter()
            .position(|c| *c == format!("create t-web-{n}"))
            .unwrap();
        let stopped = calls
            .iter()
            .position(|c| c.starts_with(&format!("stop t-web-{n}-")))
            .unwrap();
        assert!(created < stopped, "{calls:?}");
        if n < 3 {
            let next = calls
                .iter()
                .position(|c| *c == format!("create t-web-{}", n + 1))
                .unwrap();
            assert!(stopped < next, "{calls:?}");
        }
    }
    let now = fake.list("t").await.unwrap();
    let names: Vec<&str> = now.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["t-web-1", "t-web-2", "t-web-3"]);
    assert!(now
        .iter()
        .all(|c| c.config_hash == changed.services["web"].config_hash()));
    assert!(r
        .book()
        .events
        .records
        .iter()
        .any(|e| e.message == "rollout to 0 complete"));
}

#[tokio::test]
async fn waits_for_a_healthy_dependency() {
    let p = Arc::new(project(
        "services:\n  db:\n    image: db\n    healthcheck: {test: [CMD, ok]}\n  web:\n    image: web\n    depends_on: {db: {condition: service_healthy}}\n",
    ));
    let fake = fake_with_images(&p);
    let mut r = Reconciler::new(fake.clone(), p.clone());
    let first = pass(&mut r).await;
    assert!(!first.converged);
    assert_eq!(first.waiting, ["web: waiting for db to be healthy"]);
    assert!(fake.by_name("t-web-1").is_none());

    let db = fake.by_name("t-db-1").unwrap();
    fake.set_health(&db.id, Health::Healthy);
    let second = pass(&mut r).await;
    assert!(!second.converged, "web was just started");
    assert!(pass(&mut r).await.converged);
    assert_eq!(fake.by_name("t-web-1").unwrap().state, State::Running);
}

/// Exits the replica if it runs; returns whether it was running.
fn crash(fake: &Fake, name: &str, code: i64) -> bool {
    let c = fake.by_name(name).unwrap();
    let running = c.state == State::Running;
    if running {
        fake.exit(&c.id, code);
    }
    running
}

#[tokio::test]
async fn restart_policy_decides_what_comes_back() {
    let p = Arc::new(project(
        "services:\n  always:\n    image: x\n    restart: always\n  never:\n    image: x\n  twice:\n    image: x\n    restart: on-failure:2\n",
    ));
    let fake = fake_with_images(&p);
    let clock = Arc::new(FakeClock::default());
    let mut r = Reconciler::new(fake.clone(), p.clone()).with_clock(clock.clone());
    pass(&mut r).await;
    for round in 0..3 {
        for name in ["t-always-1", "t-never-1", "t-twice-1"] {
            crash(&fake, name, 1);
        }
        pass(&mut r).await; // notices, starts the backoff
        clock.advance(Duration::from_secs(60));
        pass(&mut r).await;
        assert_eq!(fake.by_name("t-always-1").unwrap().state, State::Running);
        assert_eq!(fake.by_name("t-never-1").unwrap().state, State::Exited);
        let twice = fake.by_name("t-twice-1").unwrap().state;
        assert_eq!(twice == State::Running, round < 2, "round {round}");
    }
    let book = r.book();
    assert_eq!(book.replicas[&("always".to_string(), 1)].restarts, 3);
    assert!(
        book.events
            .records
            .iter()
            .any(|e| e.subject == "twice.1" && e.message == "not restarted: restart limit reached"),
        "{:?}",
        book.events
    );
}

#[tokio::test]
async fn crash_loop_backs_off_and_max_attempts_stops_it() {
    let p = Arc::new(project(
        "services:\n  crashy:\n    image: x\n    deploy:\n      restart_policy: {condition: on-failure, delay: 1s, max_attempts: 5}\n  web:\n    image: x\n",
    ));
    let fake = fake_with_images(&p);
    let clock = Arc::new(FakeClock::default());
    let mut r = Reconciler::new(fake.clone(), p.clone()).with_clock(clock.clone());
    pass(&mut r).await;
    let mut delays = Vec::new();
    for i in 0..6 {
        crash(&fake, "t-crashy-1", 3);
        // Step 100 ms at a time until it runs again (or 2 minutes pass).
        let mut waited = Duration::ZERO;
        pass(&mut r).await;
        while fake.by_name("t-crashy-1").unwrap().state != State::Running
            && waited < Duration::from_secs(120)
        {
            clock.advance(Duration::from_millis(100));
            waited += Duration::from_millis(100);
            let p = pass(&mut r).await;
            if i < 5 && waited == Duration::from_millis(100) {
                assert!(
                    p.waiting
                        .iter()
                        .any(|w| w.starts_with("crashy.1: restarting in")),
                    "{:?}",
                    p.waiting
                );
            }
        }
        delays.push(waited.as_secs_f64().round() as u64);
    }
    // The policy's delay (1 s) for the first two, then doubling; max_attempts (5)
    // stops it: it stays down.
    assert_eq!(delays, [1, 1, 2, 4, 8, 120]);
    assert_eq!(fake.by_name("t-crashy-1").unwrap().state, State::Exited);
    // The rest of the project kept running.
    assert_eq!(fake.by_name("t-web-1").unwrap().state, State::Running);
}

#[tokio::test]
async fn a_stable_run_resets_the_backoff() {
    let p = Arc::new(project(
        "services:\n  web:\n    image: x\n    restart: always\n",
    ));
    let fake = fake_with_images(&p);
    let clock = Arc::new(FakeClock::default());
    let mut r = Reconciler::new(fake.clone(), p.clone()).with_clock(clock.clone());
    pass(&mut r).await;
    for _ in 0..3 {
        crash(&fake, "t-web-1", 1);
        pass(&mut r).await;
        clock.advance(Duration::from_secs(30));
        pass(&mut r).await;
    }
    assert_eq!(r.book().replicas[&("web".to_string(), 1)].restarts, 3);
    // Ready for the reset window (60 s): the count starts afresh.
    pass(&mut r).await;
    clock.advance(Duration::from_secs(61));
    pass(&mut r).await;
    assert_eq!(r.book().replicas[&("web".to_string(), 1)].restarts, 0);
}

#[tokio::test]
async fn unhealthy_replicas_are_restarted_with_their_policy() {
    let p = Arc::new(project(
        "services:\n  web:\n    image: x\n    restart: always\n    healthcheck: {test: [CMD, ok]}\n  keep:\n    image: x\n    healthcheck: {test: [CMD, ok]}\n",
    ));
    let fake = fake_with_images(&p);
    let clock = Arc::new(FakeClock::default());
    let mut r = Reconciler::new(fake.clone(), p.clone()).with_clock(clock.clone());
    pass(&mut r).await;
    let web = fake.by_name("t-web-1").unwrap();
    let keep = fake.by_name("t-keep-1").unwrap();
    fake.set_health(&web.id, Health::Unhealthy);
    fake.set_health(&keep.id, Health::Unhealthy);
    let before = fake.calls().len();
    pass(&mut r).await;
    let calls = fake.calls()[before..].to_vec();
    assert_eq!(
        calls,
        [
            format!("rename t-web-1 t-web-1-{}", web.id),
            "create t-web-1".into(),
            "start t-web-1".into(),
            format!("stop t-web-1-{}", web.id),
            format!("remove t-web-1-{}", web.id),
        ],
        "its successor starts first, then it stops"
    );
    pass(&mut r).await;
    // restart: no (the default) leaves it out of the balancer, running.
    assert_eq!(fake.by_name("t-keep-1").unwrap().state, State::Running);
    let web_events: Vec<&str> = r
        .book()
        .events
        .records
        .iter()
        .filter(|e| e.subject == "web.1")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        web_events,
        [
            "unhealthy: the container's health check failed",
            "restarting (unhealthy, restart 1)",
            "draining: replaced: unhealthy",
            "starting: health check pending",
        ]
    );
    assert!(r
        .book()
        .events
        .records
        .iter()
        .any(|e| e.subject == "keep.1" && e.message.starts_with("unhealthy:")));
}

#[tokio::test]
async fn first_pass_starts_stopped_containers() {
    let p = Arc::new(project("services:\n  web:\n    image: web\n"));
    let fake = fake_with_images(&p);
    pass(&mut Reconciler::new(fake.clone(), p.clone())).await;
    let c = fake.by_name("t-web-1").unwrap();
    fake.stop(&c.id, std::time::Duration::ZERO).await.unwrap();
    // `up` again: the stopped replica runs again, the same container.
    pass(&mut Reconciler::new(fake.clone(), p.clone())).await;
    let again = fake.by_name("t-web-1").unwrap();
    assert_eq!(again.id, c.id);
    assert_eq!(again.state, State::Running);
}

#[tokio::test]
async fn removed_services_go_and_teardown_keeps_volumes() {
    let p = Arc::new(project(
        "services:\n  web:\n    image: web\n    volumes: [data:/data]\n  old:\n    image: web\nvolumes:\n  data: {}\n",
    ));
    let fake = fake_with_images(&p);
    let mut r = Reconciler::new(fake.clone(), p.clone());
    r.infrastructure().await.unwrap();
    pass(&mut r).await;
    let fewer = Arc::new(project(
        "services:\n  web:\n    image: web\n    volumes: [data:/data]\nvolumes:\n  data: {}\n",
    ));
    pass(&mut Reconciler::new(fake.clone(), fewer)).await;
    assert!(fake.by_name("t-old-1").is_none());

    teardown(fake.as_ref(), "t", false).await.unwrap();
    assert!(fake.list("t").await.unwrap().is_empty());
    assert!(fake.project_networks("t").await.unwrap().is_empty());
    assert_eq!(fake.project_volumes("t").await.unwrap(), ["t_data"]);
    teardown(fake.as_ref(), "t", true).await.unwrap();
    assert!(fake.project_volumes("t").await.unwrap().is_empty());
}

#[tokio::test]
async fn waits_for_a_one_off_to_complete() {
    let p = Arc::new(project(
        "services:\n  migrate:\n    image: x\n  web:\n    image: web\n    depends_on: {migrate: {condition: service_completed_successfully}}\n",
    ));
    let fake = fake_with_images(&p);
    let mut r = Reconciler::new(fake.clone(), p.clone());
    let first = pass(&mut r).await;
    assert_eq!(
        first.waiting,
        ["web: waiting for migrate to complete successfully"]
    );
    let migrate = fake.by_name("t-migrate-1").unwrap();
    fake.exit(&migrate.id, 0);
    pass(&mut r).await;
    let third = pass(&mut r).await;
    assert!(third.converged, "{third:?}");
    assert_eq!(fake.by_name("t-web-1").unwrap().state, State::Running);
    assert_eq!(
        fake.by_name("t-migrate-1").unwrap().state,
        State::Exited,
        "a finished one-off stays finished"
    );
}

#[tokio::test]
async fn dependants_with_restart_true_follow_their_dependency() {
    let p = Arc::new(project(
        "services:\n  db:\n    image: x\n    restart: always\n  web:\n    image: x\n    depends_on: {db: {condition: service_started, restart: true}}\n  other:\n    image: x\n    depends_on: [db]\n",
    ));
    let fake = fake_with_images(&p);
    let clock = Arc::new(FakeClock::default());
    let mut r = Reconciler::new(fake.clone(), p.clone()).with_clock(clock.clone());
    pass(&mut r).await;
    crash(&fake, "t-db-1", 1);
    let before = fake.calls().len();
    // A first crash is restarted at once.
    pass(&mut r).await;
    let calls = fake.calls()[before..].to_vec();
    assert_eq!(
        calls,
        ["start t-db-1", "stop t-web-1", "start t-web-1"],
        "other (no restart: true) is left alone"
    );
    assert!(r.book().events.records.iter().any(
        |e| e.subject == "web.1" && e.message == "restarting: its dependency db was restarted"
    ));
}

/// Runs an autoscaled `app` (policy `policy`) whose one replica uses 0.45 of its
/// 0.5-core limit, a tick a second, until the first decision: (seconds, decision).
async fn first_cpu_decision(policy: &str) -> (u64, (String, u32, String)) {
    let p = Arc::new(project(&format!(
        "services:\n  app:\n    image: x\n    deploy: {{resources: {{limits: {{cpus: '0.5'}}}}}}\n    x-shoal:\n      autoscale: {{min: 1, max: 4, metric: cpu, target: 50, stable_window: 6s, panic_window: 2s, policy: {policy}}}\n",
    )));
    let fake = fake_with_images(&p);
    let clock = Arc::new(FakeClock::default());
    let mut r = Reconciler::new(fake.clone(), p.clone()).with_clock(clock.clone());
    let observed = pass(&mut r).await.observed;
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let routes = Arc::new(shoal_engine::routes::Routes::bind(&p, stop_rx).unwrap());
    let mut scaler =
        shoal_engine::autoscale::Scaler::new(fake.clone(), p.clone(), routes, clock.clone());
    let id = observed[0].id.clone();
    let mut used = Duration::ZERO;
    for second in 0..60 {
        fake.set_cpu_time(&id, used);
        let mut changes = scaler.tick(&BTreeMap::new(), &observed).await;
        if !changes.is_empty() {
            assert_eq!(changes.len(), 1, "{changes:?}");
            return (second, changes.remove(0));
        }
        used += Duration::from_millis(450);
        clock.advance(Duration::from_secs(1));
    }
    panic!("no decision in a minute");
}

#[tokio::test]
async fn cpu_is_measured_against_the_replicas_limit() {
    // 0.45 cores of a 0.5-core limit: 90 % against a target of 50 %.
    let (second, (service, n, why)) = first_cpu_decision("shoal").await;
    assert!(second <= 2, "decided after {second} s");
    assert_eq!((service.as_str(), n), ("app", 2));
    assert!(why.contains("cpu 90.0 > 1 × 50"), "{why}");
}

#[tokio::test]
async fn peer_policies_decide_on_their_own_schedule() {
    // The HPA syncs every 15 s (its first sync has no data yet); the KPA every 2 s
    // once its windows hold a sample.
    let (second, (_, n, why)) = first_cpu_decision("hpa").await;
    assert_eq!((second, n), (15, 2), "{why}");
    assert!(why.contains("(hpa): cpu 90.0"), "{why}");
    let (second, (_, n, why)) = first_cpu_decision("kpa").await;
    assert!((1..=3).contains(&second), "kpa decided after {second} s");
    assert_eq!(n, 2, "{why}");
    assert!(why.contains("(kpa)"), "{why}");
}

#[tokio::test]
async fn scale_outs_after_the_first_pass_start_in_the_background() {
    let p = Arc::new(project(WEB));
    let fake = fake_with_images(&p);
    let wake = Arc::new(tokio::sync::Notify::new());
    let mut r = Reconciler::new(fake.clone(), p.clone()).with_background_starts(wake.clone());
    // The first pass (`up`) waits for its replicas, so that `up` can report a failure.
    assert_eq!(pass(&mut r).await.observed.len(), 3);
    let six = BTreeMap::from([("web".into(), 6)]);
    let started = r.pass(&six).await.unwrap();
    assert!(!started.converged);
    // A pass while they start does not ask for them again.
    r.pass(&six).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("woken once they are started");
    r.settle().await;
    let after = r.pass(&six).await.unwrap();
    let running = after
        .observed
        .iter()
        .filter(|c| c.state == State::Running)
        .count();
    assert_eq!(running, 6);
    let creates = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("create"))
        .count();
    assert_eq!(creates, 6, "{:?}", fake.calls());
}

/// A reconciler over `yaml` with revisions kept in `state`, applied as a control plane
/// starting would.
async fn applied(
    fake: &Arc<Fake>,
    yaml: &str,
    state: &std::path::Path,
    clock: &Arc<FakeClock>,
) -> Reconciler {
    let p = project(yaml);
    let revisions = shoal_engine::revision::Revisions::load(state).unwrap();
    let mut r = Reconciler::new(fake.clone(), Arc::new(p.clone()))
        .with_clock(clock.clone())
        .with_revisions(revisions);
    let images = r.image_ids(&p).await;
    r.apply(p, &images, "up", true);
    r
}

/// Passes 250 ms apart until one converges (at most `max` of them), each new
/// replica turning healthy when its pass is over, as its health check would.
async fn until_converged(r: &mut Reconciler, fake: &Fake, clock: &FakeClock, max: u32) -> bool {
    for _ in 0..max {
        clock.advance(Duration::from_millis(250));
        let converged = pass(r).await.converged;
        healthy_all(fake).await;
        if converged {
            return true;
        }
    }
    false
}

const ROLL: &str = "services:\n  web:\n    image: web\n    deploy: {replicas: 3}\n    healthcheck: {test: [CMD, ok]}\n";

async fn hashes(fake: &Fake) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fake
        .list("t")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.labels["io.shoal.revision"].clone()))
        .collect();
    v.sort();
    v
}

/// `yaml` (with an image `web`) up and ready at revision 1, its revisions kept in a
/// state directory of its own.
async fn running(yaml: &str) -> (Arc<Fake>, tempfile::TempDir, Arc<FakeClock>, Reconciler) {
    let fake = Arc::new(Fake::new());
    fake.add_image("web");
    let state = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::default());
    let mut r = applied(&fake, yaml, state.path(), &clock).await;
    assert!(until_converged(&mut r, &fake, &clock, 4).await);
    (fake, state, clock, r)
}

/// Applies `yaml` as `shoal up` on a running control plane would; what rolls.
async fn apply(r: &mut Reconciler, yaml: &str) -> Vec<String> {
    let p = project(yaml);
    let images = r.image_ids(&p).await;
    r.apply(p, &images, "up", false)
}

/// Every replica of `t-web-1..3` on revision `n`.
fn web_on(n: &str) -> Vec<(String, String)> {
    (1..=3)
        .map(|i| (format!("t-web-{i}"), n.to_string()))
        .collect()
}

async fn healthy_all(fake: &Fake) {
    for c in fake.list("t").await.unwrap() {
        if c.state == State::Running && c.health == Some(Health::Starting) {
            fake.set_health(&c.id, Health::Healthy);
        }
    }
}

#[tokio::test]
async fn a_new_revision_that_exits_is_rolled_back_at_full_count() {
    let (fake, state, clock, mut r) = running(ROLL).await;
    assert_eq!(
        hashes(&fake).await.iter().filter(|(_, n)| n == "1").count(),
        3
    );

    // Revision 2: its first replica exits as soon as it starts.
    let v2 = ROLL.replace(
        "image: web\n",
        "image: web\n    environment: {BROKEN: '1'}\n",
    );
    assert_eq!(apply(&mut r, &v2).await, ["web"]);
    pass(&mut r).await;
    let new = fake.by_name("t-web-1").unwrap();
    assert_eq!(new.labels["io.shoal.revision"], "2");
    fake.exit(&new.id, 3);
    assert!(
        until_converged(&mut r, &fake, &clock, 20).await,
        "converged back on revision 1"
    );
    let now = hashes(&fake).await;
    assert_eq!(
        now,
        web_on("1"),
        "the old replica went back to its name; nothing of revision 2 left"
    );
    let (current, record) = r.rollout_records()["web"].clone();
    let record = record.unwrap();
    assert_eq!(current, 1);
    assert_eq!(
        record.state,
        shoal_engine::revision::RolloutState::RolledBack
    );
    assert!(record.rollback);
    assert_eq!(record.reason.as_deref(), Some("web.1 exited with code 3"));
    assert!(r.book().events.records.iter().any(|e| e.subject == "web"
        && e.message == "rollout 1→2: web.1 exited with code 3, rolling back"));

    // A control plane started again on the same (bad) file keeps revision 1.
    let mut again = applied(&fake, &v2, state.path(), &clock).await;
    let calls = fake.calls().len();
    assert!(pass(&mut again).await.converged);
    assert_eq!(fake.calls().len(), calls, "{:?}", &fake.calls()[calls..]);
}

#[tokio::test]
async fn a_rebuilt_image_rolls_and_settings_alone_do_not() {
    let (fake, _state, clock, mut r) = running(ROLL).await;

    // Only what the control plane reads changed: nothing rolls.
    let tuned = ROLL.replace(
        "deploy: {replicas: 3}",
        "deploy: {replicas: 3, update_config: {parallelism: 3}}\n    x-shoal: {lb: {retries: 3}}",
    );
    assert!(apply(&mut r, &tuned).await.is_empty());

    // The same file over a rebuilt image rolls, all at once (parallelism 3).
    fake.add_image("web");
    assert_eq!(apply(&mut r, &tuned).await, ["web"]);
    let before = fake.calls().len();
    pass(&mut r).await;
    let created = fake.calls()[before..]
        .iter()
        .filter(|c| c.starts_with("create "))
        .count();
    assert_eq!(created, 3);
    healthy_all(&fake).await;
    assert!(until_converged(&mut r, &fake, &clock, 40).await);
    assert!(
        hashes(&fake).await.iter().all(|(_, n)| n == "2"),
        "{:?}",
        hashes(&fake).await
    );
}

#[tokio::test]
async fn one_replica_on_a_named_volume_is_replaced_stop_first() {
    let yaml = "services:\n  db:\n    image: db\n    volumes: [data:/data]\nvolumes:\n  data: {}\n";
    let fake = Arc::new(Fake::new());
    fake.add_image("db");
    let state = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::default());
    let mut r = applied(&fake, yaml, state.path(), &clock).await;
    r.infrastructure().await.unwrap();
    assert!(until_converged(&mut r, &fake, &clock, 4).await);
    apply(
        &mut r,
        &yaml.replace("image: db\n", "image: db\n    environment: {V: '2'}\n"),
    )
    .await;
    let before = fake.calls().len();
    pass(&mut r).await;
    assert_eq!(
        &fake.calls()[before..],
        [
            "stop t-db-1",
            "remove t-db-1",
            "create t-db-1",
            "start t-db-1"
        ],
        "never two servers on one data directory"
    );
}

#[tokio::test]
async fn a_control_plane_killed_mid_rollout_finishes_it() {
    let (fake, state, clock, mut r) = running(ROLL).await;
    let v2 = ROLL.replace("image: web\n", "image: web\n    environment: {V: '2'}\n");
    apply(&mut r, &v2).await;
    // The first successor started beside its old replica, then the control plane dies.
    pass(&mut r).await;
    assert_eq!(fake.list("t").await.unwrap().len(), 4);
    drop(r);

    let mut again = applied(&fake, &v2, state.path(), &clock).await;
    assert!(until_converged(&mut again, &fake, &clock, 40).await);
    assert_eq!(
        hashes(&fake).await,
        web_on("2"),
        "no replica duplicated or orphaned"
    );
    let record = again.rollout_records()["web"].1.clone().unwrap();
    assert_eq!(record.state, shoal_engine::revision::RolloutState::Complete);
}

#[tokio::test]
async fn undo_goes_back_and_refuses_what_it_cannot_do() {
    let fake = Arc::new(Fake::new());
    fake.add_image("web");
    let state = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::default());
    let mut r = applied(&fake, ROLL, state.path(), &clock).await;
    assert_eq!(
        r.undo("web", None),
        Err("`web` has no revision before 1 to go back to".into())
    );
    assert_eq!(
        r.undo("nope", None),
        Err("no service `nope` in project t".into())
    );
    assert_eq!(
        r.undo("web", Some(7)),
        Err("`web` has no revision 7 (kept: 1)".into())
    );
    pass(&mut r).await;
    healthy_all(&fake).await;
    apply(
        &mut r,
        &ROLL.replace("image: web\n", "image: web\n    environment: {V: '2'}\n"),
    )
    .await;
    healthy_all(&fake).await;
    assert!(until_converged(&mut r, &fake, &clock, 40).await);
    assert_eq!(r.undo("web", None), Ok((2, 1)));
    assert!(until_converged(&mut r, &fake, &clock, 40).await);
    assert!(
        hashes(&fake).await.iter().all(|(_, n)| n == "1"),
        "{:?}",
        hashes(&fake).await
    );
    assert_eq!(r.rollout_records()["web"].0, 1);
}

#[tokio::test]
async fn scaling_in_during_a_rollout_removes_old_revision_replicas_first() {
    let (fake, _state, clock, mut r) = running(ROLL).await;
    // web.3 is failing: the rollout replaces it first.
    let three = fake.by_name("t-web-3").unwrap();
    fake.set_health(&three.id, Health::Unhealthy);
    apply(
        &mut r,
        &ROLL.replace("image: web\n", "image: web\n    environment: {V: '2'}\n"),
    )
    .await;
    pass(&mut r).await;
    healthy_all(&fake).await;
    clock.advance(Duration::from_millis(250));
    pass(&mut r).await;
    assert_eq!(
        hashes(&fake).await,
        [
            ("t-web-1".to_string(), "1".to_string()),
            ("t-web-2".to_string(), "1".to_string()),
            ("t-web-3".to_string(), "2".to_string())
        ]
    );
    // Down to two: web.2, on the old revision, goes; web.3, on the new, stays.
    let two = BTreeMap::from([("web".to_string(), 2)]);
    r.pass(&two).await.unwrap();
    let now = hashes(&fake).await;
    assert!(!now.iter().any(|(n, _)| n == "t-web-2"), "{now:?}");
    assert!(
        now.contains(&("t-web-3".to_string(), "2".to_string())),
        "{now:?}"
    );
    for _ in 0..40 {
        clock.advance(Duration::from_millis(250));
        healthy_all(&fake).await;
        if r.pass(&two).await.unwrap().converged {
            break;
        }
    }
    assert_eq!(
        hashes(&fake).await,
        [
            ("t-web-1".to_string(), "2".to_string()),
            ("t-web-3".to_string(), "2".to_string())
        ]
    );
    // And back to three: the free number is taken again.
    let three = BTreeMap::from([("web".to_string(), 3)]);
    r.pass(&three).await.unwrap();
    let names: Vec<String> = hashes(&fake).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["t-web-1", "t-web-2", "t-web-3"]);
}

#[tokio::test]
async fn a_successor_created_but_never_started_is_started_after_a_crash() {
    let (fake, state, clock, mut r) = running(ROLL).await;
    let v2 = ROLL.replace("image: web\n", "image: web\n    environment: {V: '2'}\n");
    apply(&mut r, &v2).await;
    drop(r);
    // What a control plane killed between the create and the start leaves: the old
    // replica put aside, its successor created under its name, never started.
    let old = fake.by_name("t-web-1").unwrap();
    fake.rename(&old.id, "t-web-1-aside").await.unwrap();
    let p2 = project(&v2);
    let mut spec = shoal_runtime::ContainerSpec::for_replica(&p2, &p2.services["web"], 1);
    let images = BTreeMap::from([("web".to_string(), fake.image_id("web").await.unwrap())]);
    spec.labels.insert(
        "io.shoal.config-hash".into(),
        p2.services["web"].revision_hash(images["web"].as_deref()),
    );
    spec.labels.insert("io.shoal.revision".into(), "2".into());
    fake.create(&spec).await.unwrap();

    let mut again = applied(&fake, &v2, state.path(), &clock).await;
    assert!(until_converged(&mut again, &fake, &clock, 60).await);
    assert_eq!(hashes(&fake).await, web_on("2"));
}
