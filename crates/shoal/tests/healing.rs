//! Self-healing against the real engine: replicas that exit, turn unhealthy or crash
//! at start.

mod common;

use std::time::Duration;

use common::{eventually, free_port, project_from, testkit_service, KeepAlive};

fn replica(p: &common::Project, service: &str, n: u64) -> Option<serde_json::Value> {
    p.replica(service, n)
}

#[test]
fn a_replica_that_exits_is_replaced_and_clients_see_no_failure() {
    let (p, port) = common::testkit_up("exits", 2, "    restart: always\n");
    common::knob(&p, "app", 1, "/admin/exit-after?n=40");

    let load = common::Load::start(port, 4, "/");
    eventually(Duration::from_secs(30), "app.1 restarted", || {
        let r = replica(&p, "app", 1)?;
        (r["restarts"].as_u64()? >= 1 && r["phase"] == "ready").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = load.stop();
    assert!(ok > 100);
    assert_eq!(failed, 0, "clients saw failures while a replica exited");
    let ps = p.ok(&["ps"]);
    assert!(
        ps.contains("app.1 restarting (exit code 1, restart 1)"),
        "{ps}"
    );
}

#[test]
fn an_unhealthy_replica_leaves_the_balancer_and_is_restarted() {
    let (p, port) = common::testkit_up(
        "sick",
        2,
        "    restart: always\n    x-shoal: {lb: {strategy: round_robin}}\n",
    );
    let sick_name = format!("{}-app-1", p.name);
    common::knob(&p, "app", 1, "/admin/healthy?v=false");

    // interval 1s × retries 2, plus a pass: it stops getting requests within seconds.
    eventually(Duration::from_secs(10), "app.1 out of the balancer", || {
        let mut c = KeepAlive::connect(port).ok()?;
        let names: Vec<String> = (0..10)
            .map(|_| {
                c.get("/")
                    .map(|r| r.headers["x-replica"].clone())
                    .unwrap_or_default()
            })
            .collect();
        names.iter().all(|n| *n != sick_name).then_some(())
    });
    // Then restarted (a fresh process is healthy again) and back in the balancer.
    eventually(Duration::from_secs(30), "app.1 restarted and ready", || {
        let r = replica(&p, "app", 1)?;
        (r["restarts"].as_u64()? >= 1 && r["phase"] == "ready").then_some(())
    });
    eventually(
        Duration::from_secs(10),
        "traffic on both replicas again",
        || {
            let mut c = KeepAlive::connect(port).ok()?;
            let names: std::collections::HashSet<String> = (0..10)
                .filter_map(|_| c.get("/").ok().map(|r| r.headers["x-replica"].clone()))
                .collect();
            (names.len() == 2).then_some(())
        },
    );
}

#[test]
fn a_crash_at_start_backs_off_stops_at_max_attempts_and_the_rest_serves() {
    let port = free_port();
    let yaml = format!(
        "services:\n{}  crashy:\n    image: debian:bookworm-slim\n    command: [\"sh\", \"-c\", \"echo boom; exit 3\"]\n    deploy:\n      restart_policy: {{condition: on-failure, delay: 1s, max_attempts: 3}}\n",
        testkit_service("app", 1, &format!("\"{port}:8080\""), "")
    );
    let p = project_from("crashy", &yaml);
    p.ok(&["up", "-d", "--no-wait"]);
    // The app comes up whatever crashy does.
    eventually(Duration::from_secs(30), "app serving", || {
        common::get(port, "/").ok().filter(|r| r.status == 200)
    });
    let load = common::Load::start(port, 2, "/");
    let gave_up = eventually(Duration::from_secs(60), "crashy given up", || {
        let ps = p.ok(&["ps"]);
        ps.contains("crashy.1 not restarted: restart limit reached")
            .then_some(ps)
    });
    let (ok, failed) = load.stop();
    assert_eq!(failed, 0);
    assert!(ok > 0);
    let c = replica(&p, "crashy", 1).unwrap();
    assert_eq!(c["restarts"], 3, "{gave_up}");
    assert_eq!(c["state"], "exited");
    assert_eq!(c["last_exit"], 3);
    // The delays grew: the restarts' times are 1 s, 2 s and 4 s after each exit, at
    // least; `shoal events --json` has them to the millisecond.
    let events = p.ok(&["events", "crashy", "--json"]);
    let restarts: Vec<f64> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["reason"] == "Restarting")
        .map(|e| e["last"].as_f64().unwrap())
        .collect();
    assert_eq!(restarts.len(), 3, "{events}");
    let gaps: Vec<f64> = restarts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[1] > gaps[0],
        "backoff did not grow: {gaps:?}\n{events}"
    );
}

#[test]
fn x_shoal_health_probes_take_a_failing_replica_out_fast() {
    let port = free_port();
    let yaml = format!(
        "services:\n  app:\n    build: {}\n    deploy: {{replicas: 2}}\n    ports: [\"{port}:8080\"]\n    restart: always\n    stop_grace_period: 2s\n    x-shoal:\n      lb: {{strategy: round_robin}}\n      health: {{http: /healthz, interval: 200ms, timeout: 200ms, unhealthy_after: 2}}\n",
        common::testkit_context().display()
    );
    let p = project_from("probes", &yaml);
    p.ok(&["up", "-d"]);
    let sick_name = format!("{}-app-1", p.name);
    common::knob(&p, "app", 1, "/admin/healthy?v=false");
    let t = std::time::Instant::now();
    eventually(Duration::from_secs(5), "app.1 out of the balancer", || {
        let mut c = KeepAlive::connect(port).ok()?;
        let names: Vec<String> = (0..6)
            .map(|_| {
                c.get("/")
                    .map(|r| r.headers["x-replica"].clone())
                    .unwrap_or_default()
            })
            .collect();
        names.iter().all(|n| *n != sick_name).then_some(())
    });
    // Two failed probes 200 ms apart, and a pass: well under the engine's 1 s minimum.
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    let events = eventually(
        Duration::from_secs(20),
        "the probe's verdict and the restart",
        || {
            let ps = p.ok(&["ps"]);
            (ps.contains("app.1 unhealthy: GET /healthz answered 503 2 times")
                && ps.contains("app.1 restarting (unhealthy, restart 1)"))
            .then_some(ps)
        },
    );
    eventually(Duration::from_secs(20), "app.1 ready again", || {
        let r = replica(&p, "app", 1)?;
        (r["phase"] == "ready").then_some(())
    });
    drop(events);
}

#[test]
fn a_replica_that_accepts_but_never_answers_is_timed_out_and_replaced() {
    let port = free_port();
    let yaml = format!(
        "services:\n  app:\n    build: {}\n    deploy: {{replicas: 2}}\n    ports: [\"{port}:8080\"]\n    restart: always\n    stop_grace_period: 1s\n    x-shoal:\n      lb: {{timeout: 1s}}\n      health: {{http: /healthz, interval: 300ms, timeout: 300ms, unhealthy_after: 2}}\n",
        common::testkit_context().display()
    );
    let p = project_from("hang", &yaml);
    p.ok(&["up", "-d"]);
    // From now on it accepts connections and says nothing on them.
    common::knob(&p, "app", 1, "/admin/hang?v=true");
    eventually(
        Duration::from_secs(20),
        "the hung replica timed out and restarted",
        || {
            let ps = p.ok(&["ps"]);
            (ps.contains("app.1 unhealthy: GET /healthz timed out 2 times")
                && ps.contains("app.1 restarting (unhealthy, restart 1)"))
            .then_some(())
        },
    );
    eventually(
        Duration::from_secs(20),
        "both replicas ready and serving",
        || {
            let ready = p.ps().iter().filter(|c| c["phase"] == "ready").count();
            let served = (0..6).all(|_| common::get(port, "/").is_ok_and(|r| r.status == 200));
            (ready == 2 && served).then_some(())
        },
    );
}

#[test]
fn up_reports_a_replica_that_will_not_be_restarted() {
    let yaml = "services:\n  crashy:\n    image: debian:bookworm-slim\n    command: [\"sh\", \"-c\", \"exit 4\"]\n    deploy:\n      restart_policy: {condition: on-failure, delay: 100ms, max_attempts: 1}\n";
    let p = project_from("giveup", yaml);
    let t = std::time::Instant::now();
    let out = p.shoal(&["up", "-d"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("crashy.1 exited with code 4 and will not be restarted"),
        "{stderr}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "up waited {:?}",
        t.elapsed()
    );
}
