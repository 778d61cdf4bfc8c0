//! The example app against the real engine: it comes up, spreads requests over its
//! replicas, keeps its data across `down`/`up` (not across `down -v`), survives the
//! control plane being SIGKILLed, and scales.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{eventually, get, Project};

fn visits(port: u16) -> u64 {
    let r = get(port, "/visits").expect("GET /visits");
    assert_eq!(r.status, 200, "{r:?}");
    r.body
        .trim()
        .strip_prefix("visits: ")
        .unwrap()
        .parse()
        .unwrap()
}

/// Every container's id and start time.
fn started(p: &Project) -> Vec<(String, String)> {
    p.ps()
        .iter()
        .map(|c| {
            let id = c["id"].as_str().unwrap().to_string();
            let at = common::started_at(&id);
            (id, at)
        })
        .collect()
}

fn replicas_of_web(p: &Project) -> Vec<serde_json::Value> {
    p.ps()
        .into_iter()
        .filter(|c| c["service"] == "web")
        .collect()
}

#[test]
fn hello_example_end_to_end() {
    let (p, port) = common::example("hello", "hello", "HELLO_PORT");

    let up = p.shoal(&["up", "-d"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let pid = common::control_plane_pid(&up);

    // `/` answers from three different replicas.
    let mut seen = HashSet::new();
    for _ in 0..12 {
        let r = get(port, "/").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "Hello, world!\n");
        seen.insert(r.headers["x-replica"].clone());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // The count goes up.
    let first = visits(port);
    assert_eq!(visits(port), first + 1);

    // SIGKILL the control plane; `up -d` again adopts the same containers.
    let before = started(&p);
    common::sigkill(pid);
    p.ok(&["up", "-d"]);
    let after = started(&p);
    assert_eq!(before, after, "containers were replaced or restarted");
    assert_eq!(visits(port), first + 2);

    // Scale out and in; ps follows.
    p.ok(&["scale", "web=5"]);
    eventually(Duration::from_secs(60), "5 running web replicas", || {
        let web = replicas_of_web(&p);
        (web.len() == 5 && web.iter().all(|c| c["state"] == "running")).then_some(())
    });
    p.ok(&["scale", "web=2"]);
    eventually(Duration::from_secs(60), "2 web replicas", || {
        let web = replicas_of_web(&p);
        let nums: Vec<u64> = web.iter().map(|c| c["replica"].as_u64().unwrap()).collect();
        (nums == [1, 2]).then_some(())
    });

    // down keeps the volume: the count continues.
    p.ok(&["down"]);
    assert!(p.ps().is_empty());
    p.ok(&["up", "-d"]);
    assert_eq!(visits(port), first + 3);

    // The database updated (an override adds a setting): one replica on a named
    // volume rolls stop-first, never two servers on one data directory; the count
    // survives, and web (no `depends_on.restart: true`) is not touched.
    let web_before: Vec<(String, String)> = started(&p)
        .into_iter()
        .filter(|(id, _)| replicas_of_web(&p).iter().any(|c| c["id"] == id.as_str()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let override_file = dir.path().join("db-tuning.yaml");
    std::fs::write(
        &override_file,
        "services:\n  db:\n    environment: {POSTGRES_INITDB_ARGS: \"--data-checksums\"}\n",
    )
    .unwrap();
    let override_arg = override_file.display().to_string();
    let rolled = p.shoal(&["-f", &override_arg, "up", "-d"]);
    let said = String::from_utf8_lossy(&rolled.stderr).into_owned();
    assert!(rolled.status.success(), "{said}");
    assert!(said.contains("rolling db"), "{said}");
    assert!(said.contains("db rollout 1→2: complete, 1/1"), "{said}");
    assert_eq!(visits(port), first + 4);
    let web_after: Vec<(String, String)> = started(&p)
        .into_iter()
        .filter(|(id, _)| web_before.iter().any(|(w, _)| w == id))
        .collect();
    assert_eq!(web_before, web_after, "web was restarted");

    // down -v removes it: the count starts again.
    p.ok(&["down", "-v"]);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    p.ok(&["up", "-d"]);
    assert_eq!(visits(port), 1);
}
