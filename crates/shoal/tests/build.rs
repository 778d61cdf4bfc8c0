//! Building against the real engine: build args and target reach the Dockerfile, a
//! failed build shows the engine's output, and logs read what a replica printed.

mod common;

use std::time::Duration;

use common::{eventually, Project};

#[test]
fn build_args_target_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("app");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM debian:bookworm-slim AS base\nARG GREETING=unset\nRUN echo \"greeting=$GREETING\" > /greeting\nCOPY . /ctx\nFROM base AS other\nRUN echo other > /greeting\n",
    )
    .unwrap();
    std::fs::write(ctx.join(".dockerignore"), "secret.txt\n").unwrap();
    std::fs::write(ctx.join("secret.txt"), "do not send").unwrap();
    std::fs::write(ctx.join("kept.txt"), "sent").unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  app:\n    build:\n      context: ./app\n      target: base\n      args: {GREETING: hello-from-args}\n    command: [\"sh\", \"-c\", \"cat /greeting; ls /ctx; sleep 600\"]\n    init: true\n",
    )
    .unwrap();
    let mut p = Project::new("build", file);
    p.images = vec![format!("{}-app", p.name)];
    p.ok(&["build"]);
    p.ok(&["up", "-d"]);
    let logs = eventually(Duration::from_secs(30), "the replica's output", || {
        let out = p.ok(&["logs", "app"]);
        out.contains("kept.txt").then_some(out)
    });
    assert!(logs.contains("app-1 | greeting=hello-from-args"), "{logs}");
    assert!(
        !logs.contains("secret.txt"),
        ".dockerignore was not honoured: {logs}"
    );
    assert!(
        !logs.contains("other"),
        "the target stage was not honoured: {logs}"
    );
    let tail = p.ok(&["logs", "--tail", "1", "app"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
}

#[test]
fn failed_build_shows_the_engine_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM debian:bookworm-slim\nRUN echo 'about to fail' && exit 3\n",
    )
    .unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, "services:\n  broken:\n    build: .\n").unwrap();
    let mut p = Project::new("badbuild", file);
    p.images = vec![format!("{}-broken", p.name)];
    let out = p.shoal(&["up", "-d"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("about to fail"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "building {}-broken for service broken failed",
            p.name
        )),
        "{stderr}"
    );
    assert!(stderr.contains("non-zero code: 3"), "{stderr}");
    assert!(p.leftovers().is_empty());
}
