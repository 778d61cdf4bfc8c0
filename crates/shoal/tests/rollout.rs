//! Rolling updates against the real engine: `shoal up` on a running project rolls
//! what changed under load without failing a request, rolls bad revisions back by
//! itself, and finishes a rollout after its control plane is SIGKILLed.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{control_plane_pid, eventually, free_port, sigkill, KeepAlive, Load, Project};

/// A build context of its own: the static testkit with `ENV VERSION=<version>`, so
/// that changing the Dockerfile changes the image and nothing else.
fn context(dir: &Path, version: &str) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(
        common::testkit_context().join("testkit"),
        ctx.join("testkit"),
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nCOPY testkit /testkit\nENV VERSION={version}\nENTRYPOINT [\"/testkit\"]\n"),
    )
    .unwrap();
    ctx
}

/// The compose file of `app`: three testkit replicas behind `port`, probed every
/// 200 ms, with `extra` lines for the service.
fn app(ctx: &Path, port: u16, extra: &str) -> String {
    format!(
        "services:\n  app:\n    build: {}\n    deploy: {{replicas: 3, update_config: {{monitor: 2s}}}}\n    ports: [\"{port}:8080\"]\n    stop_grace_period: 2s\n    x-shoal: {{health: {{http: /healthz, interval: 200ms, timeout: 500ms}}, lb: {{drain_timeout: 5s}}}}\n{extra}",
        ctx.display()
    )
}

/// A project of its own over a build context whose image says `version`, with
/// its folder, the context and a free port; nothing started yet.
fn fresh(tag: &str, version: &str) -> (Project, PathBuf, PathBuf, u16) {
    let mut p = common::project_from(tag, "services: {}\n");
    let dir = p.dir.as_ref().unwrap().path().to_path_buf();
    let ctx = context(&dir, version);
    p.images = vec![format!("{}-app", p.name)];
    (p, dir, ctx, free_port())
}

fn write(p: &Project, yaml: &str) {
    std::fs::write(&p.file, yaml).unwrap();
}

/// The `X-Version` of 12 answers in a row.
fn versions(port: u16) -> Vec<String> {
    let mut c = KeepAlive::connect(port).unwrap();
    (0..12)
        .map(|_| {
            let r = c.get("/").unwrap();
            r.headers.get("x-version").cloned().unwrap_or_default()
        })
        .collect()
}

/// Every container of the project: (name, revision label).
fn revisions(p: &Project) -> Vec<(String, String)> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.Label \"io.shoal.revision\"}}",
        ])
        .arg("--filter")
        .arg(format!("label=io.shoal.project={}", p.name))
        .output()
        .unwrap();
    let mut v: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect();
    v.sort();
    v
}

fn all_on(p: &Project, revision: &str) -> Vec<(String, String)> {
    (1..=3)
        .map(|n| (format!("{}-app-{n}", p.name), revision.to_string()))
        .collect()
}

fn fails(p: &Project, args: &[&str]) -> String {
    let out = p.shoal(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "shoal {args:?} succeeded:\n{stderr}");
    stderr
}

#[test]
fn image_env_and_command_changes_roll_under_load_without_a_failed_request() {
    let (p, dir, ctx, port) = fresh("roll", "img-a");
    write(&p, &app(&ctx, port, ""));
    p.ok(&["up", "-d"]);
    assert!(versions(port).iter().all(|v| v == "img-a"));

    let load = Load::start(port, 4, "/");
    // The image: rebuilt from a changed Dockerfile, the file itself unchanged.
    context(&dir, "img-b");
    let rolled = p.ok(&["up", "-d", "--build"]);
    let _ = rolled;
    assert!(
        versions(port).iter().all(|v| v == "img-b"),
        "{:?}",
        versions(port)
    );
    assert_eq!(revisions(&p), all_on(&p, "2"));

    // The environment.
    write(&p, &app(&ctx, port, "    environment: {VERSION: env-c}\n"));
    p.ok(&["up", "-d"]);
    assert!(versions(port).iter().all(|v| v == "env-c"));
    assert_eq!(revisions(&p), all_on(&p, "3"));

    // The command.
    write(
        &p,
        &app(
            &ctx,
            port,
            "    environment: {VERSION: env-c}\n    command: [serve]\n",
        ),
    );
    p.ok(&["up", "-d"]);
    assert_eq!(revisions(&p), all_on(&p, "4"));

    let (ok, failed) = load.stop();
    assert!(ok > 300, "only {ok} requests");
    assert_eq!(failed, 0, "clients saw failures during three rollouts");

    // A file whose changes touch no container rolls nothing.
    write(
        &p,
        &app(
            &ctx,
            port,
            "    environment: {VERSION: env-c}\n    command: [serve]\n    restart: always\n",
        ),
    );
    let out = p.shoal(&["up", "-d"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no service changed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history = p.ok(&["rollout", "history", "app"]);
    assert!(history.contains("4*"), "{history}");
    assert!(history.contains("image rebuilt"), "{history}");
    assert!(history.contains("environment"), "{history}");
    assert!(history.contains("command"), "{history}");
}

#[test]
fn bad_revisions_are_rolled_back_by_themselves() {
    let (p, _, ctx, port) = fresh("badrev", "good");
    write(&p, &app(&ctx, port, ""));
    p.ok(&["up", "-d"]);

    // One that exits at start.
    write(
        &p,
        &app(&ctx, port, "    environment: {EXIT_AT_START: \"3\"}\n"),
    );
    let err = fails(&p, &["up", "-d"]);
    assert!(
        err.contains(
            "app rollout 1→2 failed (app.1 exited with code 3): rolled back to revision 1"
        ),
        "{err}"
    );
    let status = p.shoal(&["rollout", "status", "app"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stdout).contains("exited with code 3"));
    assert_eq!(revisions(&p), all_on(&p, "1"));
    assert!(versions(port).iter().all(|v| v == "good"));

    // One that never becomes healthy.
    write(
        &p,
        &app(&ctx, port, "    environment: {HEALTHY: \"false\"}\n"),
    );
    let err = fails(&p, &["up", "-d"]);
    assert!(
        err.contains("unhealthy: GET /healthz answered 503"),
        "{err}"
    );
    eventually(Duration::from_secs(10), "revision 1 alone", || {
        (revisions(&p) == all_on(&p, "1")).then_some(())
    });

    // One that is healthy but answers 500 to every request, under load. The monitor
    // judges it once it answered 10 requests; it is caught by the next step (250 ms)
    // and drains at once. Bound: 10 requests, plus what the load sends it in a second.
    let load = Load::start(port, 4, "/");
    std::thread::sleep(Duration::from_secs(1));
    write(&p, &app(&ctx, port, "    environment: {STATUS: \"500\"}\n"));
    let started = Instant::now();
    let err = fails(&p, &["up", "-d"]);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = load.stop();
    assert!(err.contains("failed") && err.contains("requests"), "{err}");
    let rate = ok as f64 / (took.as_secs_f64() + 1.5);
    let bound = 10.0 + rate;
    eprintln!("500s: {failed} failed of {ok} ok at {rate:.0}/s; bound {bound:.0}");
    assert!(
        (failed as f64) <= bound,
        "{failed} failed requests; bound {bound:.0} (10 + {rate:.0}/s for a second)"
    );
    assert!(failed > 0, "the bad revision never took a request");
    assert_eq!(revisions(&p), all_on(&p, "1"));
    assert!(versions(port).iter().all(|v| v == "good"));
}

#[test]
fn a_control_plane_killed_mid_rollout_finishes_it_when_started_again() {
    let (p, _, ctx, port) = fresh("killroll", "one");
    let slow = "    environment: {VERSION: two}\n";
    write(&p, &app(&ctx, port, ""));
    let pid = control_plane_pid(&p.shoal(&["up", "-d"]));

    // A delay between replicas leaves time to kill it in the middle.
    write(
        &p,
        &app(&ctx, port, slow).replace("monitor: 2s", "monitor: 2s, delay: 3s"),
    );
    p.ok(&["up", "-d", "--no-wait"]);
    eventually(Duration::from_secs(20), "app.1 on revision 2", || {
        let r = revisions(&p);
        (r.iter().filter(|(_, v)| v == "2").count() == 1 && r.len() == 3).then_some(())
    });
    sigkill(pid);
    // Started again on the same file, it adopts the mixed set and finishes.
    p.ok(&["up", "-d"]);
    eventually(
        Duration::from_secs(40),
        "every replica on revision 2",
        || (revisions(&p) == all_on(&p, "2")).then_some(()),
    );
    let status = p.ok(&["rollout", "status", "--wait", "--timeout", "30"]);
    let _ = status;
    let status = p.ok(&["rollout", "status"]);
    assert!(status.contains("complete, 3/3"), "{status}");
    assert!(versions(port).iter().all(|v| v == "two"));
}

#[test]
fn rollout_commands_refuse_what_they_cannot_do_and_undo_goes_back() {
    let (p, _, ctx, port) = fresh("undo", "v1");
    write(&p, &app(&ctx, port, ""));
    p.ok(&["up", "-d"]);
    let err = fails(&p, &["rollout", "undo", "app"]);
    assert!(err.contains("`app` has no revision before 1"), "{err}");
    let err = fails(&p, &["rollout", "undo", "nope"]);
    assert!(err.contains("no service `nope`"), "{err}");
    let err = fails(&p, &["rollout", "history", "nope"]);
    assert!(err.contains("`nope` has no revisions"), "{err}");
    assert_eq!(revisions(&p), all_on(&p, "1"), "nothing changed");

    write(&p, &app(&ctx, port, "    environment: {VERSION: v2}\n"));
    p.ok(&["up", "-d"]);
    let said = p.shoal(&["rollout", "undo", "app"]);
    assert!(said.status.success());
    p.ok(&["rollout", "status", "app", "--wait"]);
    assert_eq!(revisions(&p), all_on(&p, "1"));
    assert!(versions(port).iter().all(|v| v == "v1"));
    let err = fails(&p, &["rollout", "undo", "app", "--to-revision", "9"]);
    assert!(err.contains("no revision 9 (kept: 1, 2)"), "{err}");
}

#[test]
fn a_crashed_replica_is_running_again_at_once() {
    let (p, _port) = common::testkit_up("fastrestart", 1, "    restart: always\n");
    let id = common::kill_replica(&p, "app", 1);
    let killed = Instant::now();
    eventually(Duration::from_secs(10), "app.1 ready again", || {
        let r = p.replica("app", 1)?;
        (r["restarts"].as_u64()? >= 1 && r["phase"] == "ready").then_some(())
    });
    let ready = killed.elapsed();
    // From the engine's own clock: the exit and the next start.
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.State.FinishedAt}} {{.State.StartedAt}}",
            &id,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("exit to ready {ready:?}; engine: {text}");
    assert!(
        ready < Duration::from_secs(4),
        "ready {ready:?} after the kill"
    );
}

#[test]
fn a_frozen_replica_under_load_is_replaced_capacity_first() {
    let port = free_port();
    let yaml = format!(
        "services:\n{}",
        common::testkit_service(
            "app",
            3,
            &format!("\"{port}:8080\""),
            "    restart: always\n    x-shoal: {health: {http: /healthz, interval: 200ms, timeout: 300ms, unhealthy_after: 2}, lb: {drain_timeout: 2s}}\n"
        )
    );
    let p = common::project_from("frozen", &yaml);
    p.ok(&["up", "-d"]);
    let load = Load::start(port, 4, "/");
    std::thread::sleep(Duration::from_millis(500));
    let frozen = p.replica("app", 2).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::process::Command::new("docker")
        .args(["pause", &frozen])
        .output()
        .unwrap();
    let paused = Instant::now();
    eventually(
        Duration::from_secs(15),
        "three ready replicas again",
        || {
            let ps = p.ps();
            let ready = ps
                .iter()
                .filter(|c| c["phase"] == "ready" && c["id"] != frozen.as_str())
                .count();
            (ready == 3).then_some(())
        },
    );
    let back = paused.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (ok, failed) = load.stop();
    eprintln!("three ready {back:?} after the freeze; {ok} ok, {failed} failed");
    assert!(back < Duration::from_secs(8), "{back:?}");
    assert_eq!(failed, 0);
    // Unpaused for the teardown if it is still there.
    let _ = std::process::Command::new("docker")
        .args(["unpause", &frozen])
        .output();
}

#[test]
fn a_control_plane_killed_during_a_rollback_finishes_it() {
    let (p, _, ctx, port) = fresh("killback", "good");
    // All three replaced at once; the way back one at a time, 4 s apart.
    let policy = |extra: &str| {
        app(&ctx, port, extra).replace(
            "update_config: {monitor: 2s}",
            "update_config: {monitor: 3s, parallelism: 3}, rollback_config: {delay: 4s}",
        )
    };
    write(&p, &policy(""));
    let pid = control_plane_pid(&p.shoal(&["up", "-d"]));

    // Healthy, but every answer a 500: caught by the monitor once all three run it.
    let load = Load::start(port, 2, "/");
    write(&p, &policy("    environment: {STATUS: \"500\"}\n"));
    p.ok(&["up", "-d", "--no-wait"]);
    eventually(Duration::from_secs(30), "the rollback under way", || {
        let status = p.shoal(&["rollout", "status", "app"]);
        let going = String::from_utf8_lossy(&status.stdout).contains("rolling back");
        let left = revisions(&p).iter().any(|(_, v)| v == "2");
        (going && left).then_some(())
    });
    load.stop();
    sigkill(pid);

    // Started again on the same (bad) file: it goes on rolling back, and stays back.
    let again = p.shoal(&["up", "-d"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    eventually(
        Duration::from_secs(40),
        "every replica back on revision 1",
        || (revisions(&p) == all_on(&p, "1")).then_some(()),
    );
    let status = p.shoal(&["rollout", "status", "app", "--wait", "--timeout", "30"]);
    let said = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(1), "{said}");
    assert!(said.contains("rolled back to revision 1"), "{said}");
    assert!(versions(port).iter().all(|v| v == "good"));

    // Both control planes' events are in `shoal events`, which needs no Compose file.
    let out = p.by_name(&["events"]);
    let events = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(events.contains("rolling back"), "{events}");
    assert!(
        events.contains("control plane started; adopted"),
        "{events}"
    );
    assert!(events.contains(" Rollout "), "{events}");
}

#[test]
fn a_control_plane_killed_while_a_replica_drains_finishes_the_rollout() {
    let (p, _, ctx, port) = fresh("killdrain", "one");
    let file =
        |extra: &str| app(&ctx, port, extra).replace("drain_timeout: 5s", "drain_timeout: 20s");
    write(&p, &file(""));
    let pid = control_plane_pid(&p.shoal(&["up", "-d"]));

    // Long requests on every replica: the first one retired drains for seconds.
    let slow: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = KeepAlive::connect(port).unwrap();
                c.get("/delay?ms=6000").map(|r| r.status)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    write(&p, &file("    environment: {VERSION: two}\n"));
    p.ok(&["up", "-d", "--no-wait"]);
    eventually(
        Duration::from_secs(20),
        "an old replica draining beside its successor",
        || {
            let r = revisions(&p);
            let aside = r
                .iter()
                .any(|(n, v)| v == "1" && n.len() > format!("{}-app-1", p.name).len());
            (aside && r.iter().any(|(_, v)| v == "2")).then_some(())
        },
    );
    sigkill(pid);
    p.ok(&["up", "-d"]);
    eventually(
        Duration::from_secs(40),
        "every replica on revision 2, none aside",
        || (revisions(&p) == all_on(&p, "2")).then_some(()),
    );
    for t in slow {
        // A request in flight on a replica that drained finishes (or, cut by the
        // kill of its control plane mid-drain, is the only kind that may not).
        let _ = t.join().unwrap();
    }
    assert!(versions(port).iter().all(|v| v == "two"));
}

#[test]
fn up_scale_sets_counts_through_the_control_plane() {
    let port = free_port();
    let yaml = format!(
        "services:\n{}",
        common::testkit_service("app", 1, &format!("\"{port}:8080\""), "")
    );
    let p = common::project_from("upscale", &yaml);
    p.ok(&["up", "-d", "--scale", "app=2"]);
    assert_eq!(p.ps().len(), 2);
    // On a running control plane: nothing rolls, the count changes.
    p.ok(&["up", "-d", "--scale", "app=3"]);
    eventually(Duration::from_secs(30), "three running replicas", || {
        let running = p.ps().iter().filter(|c| c["state"] == "running").count();
        (running == 3).then_some(())
    });
}

#[test]
fn ps_logs_events_and_top_work_with_the_project_name_alone() {
    let (p, port) = common::testkit_up("nameonly", 2, "");
    let alone = |args: &[&str]| {
        let out = p.by_name(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&alone(&["ps", "--format", "json"])).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["phase"] == "ready"), "{rows:?}");
    let logs = alone(&["logs", "app"]);
    assert!(logs.contains("listening on :8080"), "{logs}");
    assert!(alone(&["events"]).contains("Ready"));
    assert!(alone(&["version"]).starts_with("shoal version "));
    // The processes of each replica, as Compose prints them.
    let top = alone(&["top"]);
    assert!(
        top.contains(&format!("{}-app-1\nUID", p.name)) && top.contains("/testkit"),
        "{top}"
    );
    // The published address of a container port, from the file or, with the name
    // alone, from the running control plane.
    assert_eq!(
        p.ok(&["port", "app", "8080"]).trim(),
        format!("0.0.0.0:{port}")
    );
    assert_eq!(
        alone(&["port", "app", "8080"]).trim(),
        format!("0.0.0.0:{port}")
    );
    let out = p.shoal(&["port", "app", "9000"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("9000/tcp of `app` is not published"));
}
