//! The reconciler on the in-memory runtime: what it creates, adopts, recreates,
//! restarts and removes.

use std::collections::BTreeMap;
use std::sync::Arc;

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
    assert!(first.converged);
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
    pass(&mut again).await;
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
async fn changed_config_recreates() {
    let p = Arc::new(project(WEB));
    let fake = fake_with_images(&p);
    pass(&mut Reconciler::new(fake.clone(), p.clone())).await;
    let changed = Arc::new(project(
        "services:\n  web:\n    image: web\n    environment: {A: '1'}\n    deploy: {replicas: 3}\nvolumes:\n  data: {}\n",
    ));
    let before = fake.calls().len();
    pass(&mut Reconciler::new(fake.clone(), changed.clone())).await;
    let calls = &fake.calls()[before..];
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("create t-web-"))
            .count(),
        3,
        "{calls:?}"
    );
    let web1 = fake.by_name("t-web-1").unwrap();
    assert_eq!(web1.config_hash, changed.services["web"].config_hash());
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
    assert!(second.converged);
    assert_eq!(fake.by_name("t-web-1").unwrap().state, State::Running);
}

#[tokio::test]
async fn restart_policy_decides_what_comes_back() {
    let p = Arc::new(project(
        "services:\n  always:\n    image: x\n    restart: always\n  never:\n    image: x\n  twice:\n    image: x\n    restart: on-failure:2\n",
    ));
    let fake = fake_with_images(&p);
    let mut r = Reconciler::new(fake.clone(), p.clone());
    pass(&mut r).await;
    for round in 0..3 {
        for name in ["t-always-1", "t-never-1", "t-twice-1"] {
            let c = fake.by_name(name).unwrap();
            if c.state == State::Running {
                fake.exit(&c.id, 1);
            }
        }
        pass(&mut r).await;
        assert_eq!(fake.by_name("t-always-1").unwrap().state, State::Running);
        assert_eq!(fake.by_name("t-never-1").unwrap().state, State::Exited);
        let twice = fake.by_name("t-twice-1").unwrap().state;
        assert_eq!(twice == State::Running, round < 2, "round {round}");
    }
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
    let second = pass(&mut r).await;
    assert!(second.converged, "{second:?}");
    assert_eq!(fake.by_name("t-web-1").unwrap().state, State::Running);
    assert_eq!(
        fake.by_name("t-migrate-1").unwrap().state,
        State::Exited,
        "a finished one-off stays finished"
    );
}
