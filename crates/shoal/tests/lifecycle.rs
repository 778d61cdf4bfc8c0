//! `stop`, `start`, `restart` and `kill` against the real engine: a restart under
//! load fails no request, a stopped service stays stopped across a control-plane
//! restart until `start`, and bad input changes nothing.

mod common;

use std::time::Duration;

use common::{eventually, get, testkit_up, Load};

fn ids(p: &common::Project) -> Vec<String> {
    let mut v: Vec<String> = p
        .ps()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn states(p: &common::Project) -> Vec<String> {
    p.ps()
        .iter()
        .map(|c| c["state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn restart_is_rolling_and_stop_holds_until_start() {
    let (p, port) = testkit_up("lifecycle", 2, "    restart: always\n");
    let before = ids(&p);

    // A restart under load: every replica replaced, no request failed.
    let load = Load::start(port, 4, "/");
    std::thread::sleep(Duration::from_millis(500));
    let out = p.shoal(&["restart", "app"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("restarting app (rolling)"), "{said}");
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = load.stop();
    assert!(ok > 100, "{ok}");
    assert_eq!(failed, 0, "requests failed during the rolling restart");
    let after = ids(&p);
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "{before:?} {after:?}"
    );
    // The file applied again changes nothing: the restart is not undone.
    p.ok(&["up", "-d"]);
    assert_eq!(ids(&p), after);

    // Stopped: drained, kept, not healed, and said so.
    p.ok(&["stop", "app"]);
    assert!(states(&p).iter().all(|s| s == "exited"), "{:?}", states(&p));
    assert_eq!(get(port, "/").unwrap().status, 503);
    assert!(p.ok(&["ps"]).contains("stopped: app"));
    // Across a control-plane restart.
    let ps = p.ok(&["ps"]);
    let pid: u32 = ps
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {ps}"));
    common::sigkill(pid);
    p.ok(&["up", "-d"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(states(&p).iter().all(|s| s == "exited"), "{:?}", states(&p));
    // Started again: the same containers.
    let kept = ids(&p);
    p.ok(&["start", "app"]);
    assert_eq!(ids(&p), kept);
    eventually(Duration::from_secs(30), "app answering again", || {
        get(port, "/").ok().filter(|r| r.status == 200)
    });

    // Paused: drained first, frozen, not healed nor replaced; thawed, back.
    p.ok(&["pause", "app"]);
    assert!(states(&p).iter().all(|s| s == "paused"), "{:?}", states(&p));
    let frozen = ids(&p);
    let r = get(port, "/").unwrap();
    assert_eq!(
        r.status, 503,
        "no replica takes requests while paused: {r:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ids(&p), frozen, "paused replicas were replaced");
    p.ok(&["unpause", "app"]);
    eventually(
        Duration::from_secs(30),
        "app answering after unpause",
        || get(port, "/").ok().filter(|r| r.status == 200),
    );
    assert_eq!(ids(&p), frozen, "{}", p.ok(&["events"]));

    // kill: a signal through the engine; the control plane heals the replica.
    let out = p.shoal(&["kill", "-s", "NOPE", "app"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-s NOPE: not a signal"));
    p.ok(&["kill", "-s", "KILL", "app"]);
    eventually(Duration::from_secs(30), "app healed after kill", || {
        let all = p.ps();
        (all.len() == 2 && all.iter().all(|c| c["state"] == "running")).then_some(())
    });

    // ls and images, with the project's name alone; a closed stdout is no panic.
    let out = p.by_name(&["ls", "--format", "json"]);
    let projects: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mine = projects
        .iter()
        .find(|r| r["name"] == p.name.as_str())
        .unwrap_or_else(|| panic!("{projects:?}"));
    assert_eq!(
        (mine["running"].as_u64(), mine["services"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(mine["control_plane"].as_u64().is_some(), "{mine}");
    assert!(String::from_utf8_lossy(&p.by_name(&["ls"]).stdout).contains(&p.name));
    let out = p.by_name(&["images", "--format", "json"]);
    let images: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(images.len(), 2, "{images:?}");
    let repo = format!("{}-app", p.name);
    assert!(images.iter().all(|i| i["repository"] == repo.as_str()
        && i["id"].as_str().is_some_and(|id| id.starts_with("sha256:"))
        && i["size"].as_u64().is_some_and(|s| s > 0)));
    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} -p {} ls -a | true",
            env!("CARGO_BIN_EXE_shoal"),
            p.name
        ))
        .env("SHOAL_STATE_DIR", p.state.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains("panicked"), "{err}");

    // An unknown project, named alone, is a clear error for every verb.
    let ghost = common::Project::new("ghost", p.file.clone());
    for verb in [
        &["ps"][..],
        &["logs"],
        &["stop"],
        &["images"],
        &["events"],
        &["port", "app", "8080"],
        &["exec", "app", "true"],
    ] {
        let out = ghost.by_name(verb);
        assert!(!out.status.success(), "{verb:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no project `e2e-ghost-") && err.contains("shoal ls -a"),
            "{verb:?}: {err}"
        );
    }

    // Unknown services change nothing.
    for verb in ["stop", "start", "restart", "kill", "pause", "unpause"] {
        let out = p.shoal(&[verb, "nope"]);
        assert!(!out.status.success(), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("nope"), "{verb}: {err}");
    }
    assert!(states(&p).iter().all(|s| s == "running"));
}
