//! `shoal exec` against the real engine: the command's exit code is shoal's, stdin
//! is passed through, `--index`, `-e`, `-w` and `-u` reach the process, a terminal
//! is given when stdin is one, and bad input is a clear error.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, project_from};

fn debian_project() -> common::Project {
    let mut p = project_from(
        "exec",
        "services:\n  box:\n    image: debian:bookworm-slim\n    command: [sleep, infinity]\n    init: true\n    deploy: {replicas: 2}\n    stop_grace_period: 1s\n",
    );
    // The image is Debian's base, not the project's to remove.
    p.images.clear();
    p.ok(&["up", "-d"]);
    p
}

#[test]
fn exec_passes_exit_codes_stdin_and_options() {
    let p = debian_project();
    // The exit code.
    let out = p.by_name(&[
        "exec",
        "-T",
        "box",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    // stdin through, to its end.
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["-p", &p.name, "exec", "-T", "box", "wc", "-c"])
        .env("SHOAL_STATE_DIR", p.state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[b'x'; 100_000])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100000");

    // --index, -e, -w, -u.
    let out = p.by_name(&[
        "exec",
        "-T",
        "--index",
        "2",
        "-e",
        "GREETING=hi",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "box",
        "sh",
        "-c",
        "echo $GREETING $(pwd) $(id -un) $(hostname)",
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.starts_with("hi /tmp nobody "), "{said}");
    assert!(said.trim_end().ends_with("-box-2"), "{said}");

    // Bad input: clear errors.
    let out = p.by_name(&["exec", "--index", "9", "box", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--index 9: service `box` has no running replica 9 (running: 1, 2)"),
        "{err}"
    );
    let out = p.shoal(&["exec", "nope", "true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));

    // A terminal when stdin is one: in tmux.
    let socket = format!("shoal-exec-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .expect("tmux")
    };
    tmux(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "24",
        "bash",
        "--norc",
    ]);
    let line = format!(
        "SHOAL_STATE_DIR={} {} -p {} exec box sh -c 'tty; exit 7'; echo code=$?",
        p.state.path().display(),
        env!("CARGO_BIN_EXE_shoal"),
        p.name
    );
    tmux(&["send-keys", "-t", "0", "-l", &line]);
    tmux(&["send-keys", "-t", "0", "Enter"]);
    let screen = eventually(Duration::from_secs(20), "exec in a terminal", || {
        let s =
            String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "0"]).stdout).into_owned();
        s.contains("code=7").then_some(s)
    });
    tmux(&["kill-server"]);
    assert!(screen.contains("/dev/pts/"), "{screen}");
}

#[test]
fn run_makes_one_off_containers_that_are_nobodys_replica() {
    let p = debian_project();
    // The exit code, and --rm leaves nothing.
    let out = p.shoal(&["run", "--rm", "-T", "box", "sh", "-c", "exit 4"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(p.ps().len(), 2, "{:?}", p.ps());

    // Environment, stdin to its end, another entrypoint.
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["-p", &p.name, "-f"])
        .arg(&p.file)
        .args([
            "run",
            "--rm",
            "-T",
            "-e",
            "X=1",
            "box",
            "sh",
            "-c",
            "echo $X; cat",
        ])
        .env("SHOAL_STATE_DIR", p.state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"abc").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\nabc");
    let out = p.shoal(&[
        "run",
        "--rm",
        "-T",
        "--entrypoint",
        "sh -c",
        "box",
        "exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5));

    // Kept without --rm; the control plane neither removes it nor counts it.
    let out = p.shoal(&["run", "-T", "box", "true"]);
    assert!(out.status.success());
    std::thread::sleep(Duration::from_secs(3));
    let all = p.ps();
    assert_eq!(all.len(), 3, "{all:?}");
    let running = all.iter().filter(|c| c["state"] == "running").count();
    assert_eq!(running, 2, "{all:?}");
    let oneoff = all.iter().find(|c| c["replica"] == 0).expect("the one-off");
    assert!(oneoff["container"].as_str().unwrap().contains("-box-run-"));
    // An unknown service is refused.
    let out = p.shoal(&["run", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));

    // wait: until the replicas exit, with their codes (143: SIGTERM).
    let waiting = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["-p", &p.name, "wait", "box"])
        .env("SHOAL_STATE_DIR", p.state.path())
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    p.ok(&["kill", "-s", "TERM", "box"]);
    let out = waiting.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(143), "{said}");
    assert_eq!(said.matches("exited with code 143").count(), 2, "{said}");
}
