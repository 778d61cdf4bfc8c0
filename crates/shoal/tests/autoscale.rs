//! Autoscaling against the real engine: testkit replicas under concurrent slow
//! requests scale out, and back in when the load stops, without a failed request.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, free_port, project_from, KeepAlive};

fn app_replicas(p: &common::Project) -> usize {
    p.ps()
        .iter()
        .filter(|c| c["service"] == "app" && c["state"] == "running")
        .count()
}

#[test]
fn scales_out_under_load_and_back_in_after() {
    let port = free_port();
    let yaml = format!(
        "services:\n  app:\n    build: {}\n    ports: [\"{port}:8080\"]\n    stop_grace_period: 2s\n    x-shoal:\n      health: {{http: /healthz, interval: 200ms}}\n      autoscale: {{min: 1, max: 4, metric: concurrency, target: 2, stable_window: 6s, panic_window: 2s, scale_down_delay: 4s}}\n",
        common::testkit_context().display()
    );
    let p = project_from("scale", &yaml);
    p.ok(&["up", "-d"]);
    assert_eq!(app_replicas(&p), 1);
    // `shoal scale` does not fight the autoscaler.
    let refused = p.shoal(&["scale", "app=3"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("`app` is autoscaled (1 to 4 replicas)")
    );

    // Eight clients, each with one 300 ms request in flight: about 8 in flight, 4 replicas' worth.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let heavy: Vec<_> = (0..8)
        .map(|_| {
            let (stop, failed) = (stop.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut c = KeepAlive::connect(port).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    if !c.get("/delay?ms=300").is_ok_and(|r| r.status == 200) {
                        failed.fetch_add(1, Ordering::Relaxed);
                        c = KeepAlive::connect(port).unwrap();
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(30), "4 replicas", || {
        (app_replicas(&p) == 4).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for h in heavy {
        h.join().unwrap();
    }

    // A light load while it scales back in: the leaving replicas drain.
    let stop = Arc::new(AtomicBool::new(false));
    let light = {
        let (stop, failed) = (stop.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut c = KeepAlive::connect(port).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if !c.get("/").is_ok_and(|r| r.status == 200) {
                    failed.fetch_add(1, Ordering::Relaxed);
                    c = KeepAlive::connect(port).unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    eventually(Duration::from_secs(60), "back to 1 replica", || {
        (app_replicas(&p) == 1).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    light.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed while scaling"
    );
    let ps = p.ok(&["ps"]);
    assert!(ps.contains("app scaled ") && ps.contains(" < "), "{ps}");
    // The same decisions in `shoal events`, kept in the state directory.
    let events = p.ok(&["events", "app"]);
    assert!(
        events.contains("app        Scaled       scaled 1→"),
        "{events}"
    );
}

#[test]
fn cpu_bound_replicas_scale_out() {
    let port = free_port();
    let yaml = format!(
        "services:\n  app:\n    build: {}\n    ports: [\"{port}:8080\"]\n    stop_grace_period: 2s\n    deploy: {{resources: {{limits: {{cpus: '0.5'}}}}}}\n    x-shoal:\n      health: {{http: /healthz, interval: 200ms}}\n      autoscale: {{min: 1, max: 3, metric: cpu, target: 50, stable_window: 6s, panic_window: 2s, scale_down_delay: 4s}}\n",
        common::testkit_context().display()
    );
    let p = project_from("cpu", &yaml);
    p.ok(&["up", "-d"]);
    // Two clients burning 100 ms of CPU per request keep the replica at its 0.5-core
    // limit: 100 % of the limit against a 50 % target asks for two or more.
    let load = common::Load::start(port, 2, "/burn?ms=100");
    eventually(Duration::from_secs(40), "a second replica", || {
        (app_replicas(&p) >= 2).then_some(())
    });
    let (ok, failed) = load.stop();
    assert!(ok > 0);
    assert_eq!(failed, 0);
    eventually(Duration::from_secs(10), "the decision in ps", || {
        let ps = p.ok(&["ps"]);
        (ps.contains("scaled 1→") && ps.contains(": cpu ")).then_some(())
    });
}
