//! Bad input against the real engine: a clear error, and nothing created.

mod common;

use common::Project;

fn write(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let f = dir.join("compose.yaml");
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn invalid_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let file = write(
        dir.path(),
        &format!(
            "services:\n  web:\n    image: hello\n    ports: [\"{port}:80\"]\n    volumes: [data:/data]\n    depends_on: [db]\n  db:\n    image: x\n    restart: sometimes\nvolumes:\n  data: {{}}\n"
        ),
    );
    let p = Project::new("invalid", file);
    let out = p.shoal(&["up", "-d"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("compose.yaml:9:14: services.db.restart: unknown restart policy `sometimes`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: use no, always, on-failure[:N] or unless-stopped"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    // Nothing listens on the published port either.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn port_claimed_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "services:\n  a:\n    image: x\n    ports: [\"18080:80\"]\n  b:\n    image: x\n    ports: [\"18080:81\"]\n",
    );
    let p = Project::new("ports", file);
    let out = p.shoal(&["up", "-d"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("compose.yaml:7:13: services.b.ports: host port 18080/tcp is claimed twice"),
        "{stderr}"
    );
    assert!(p.leftovers().is_empty());
}

#[test]
fn commands_that_need_the_control_plane_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "services:\n  web:\n    image: x\n");
    let p = Project::new("noplane", file);
    let out = p.shoal(&["scale", "web=2"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "no control plane is running for project {}",
            p.name
        )),
        "{stderr}"
    );
    assert!(stderr.contains("shoal up -d"), "{stderr}");
}

#[test]
fn unreachable_engine_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "services:\n  web:\n    image: x\n");
    let mut p = Project::new("noengine", file);
    p.env.insert(
        "DOCKER_HOST".into(),
        "unix:///nonexistent/docker.sock".into(),
    );
    let out = p.shoal(&["ps"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "cannot reach the Docker Engine at unix:///nonexistent/docker.sock (DOCKER_HOST)"
        ),
        "{stderr}"
    );
    // The Drop's `down` must reach the engine to clean up.
    p.env.clear();
}
