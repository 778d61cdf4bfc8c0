//! Fixtures shared by the end-to-end tests: a project under a name of its own, driven
//! through the real `shoal` binary against the real Docker Engine, and removed with
//! everything it made when the test ends, passed or failed.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod prometheus;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A port no one listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A project for one test.
pub struct Project {
    /// Its name (`-p`).
    pub name: String,
    /// The compose file.
    pub file: PathBuf,
    /// Its own state directory.
    pub state: tempfile::TempDir,
    /// Extra environment for every command.
    pub env: HashMap<String, String>,
    /// Images to remove at the end.
    pub images: Vec<String>,
    /// The directory holding a generated compose file, removed after `down`.
    pub dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Project {
    /// A project named `e2e-<tag>-<pid>-<n>` over `file`.
    pub fn new(tag: &str, file: PathBuf) -> Project {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Project {
            name: format!("e2e-{tag}-{}-{n}", std::process::id()),
            file,
            state: tempfile::tempdir().unwrap(),
            env: HashMap::new(),
            images: Vec::new(),
            dir: None,
        }
    }

    /// Runs `shoal -p NAME -f FILE <args>`.
    pub fn shoal(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(&self.file)
            .args(args)
            .env("SHOAL_STATE_DIR", self.state.path())
            .envs(&self.env)
            .output()
            .expect("run shoal");
        out
    }

    /// Runs `shoal -p NAME <args>` in a directory without a Compose file, as a user
    /// naming the project alone would.
    pub fn by_name(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_shoal"))
            .arg("-p")
            .arg(&self.name)
            .args(args)
            .env("SHOAL_STATE_DIR", self.state.path())
            .envs(&self.env)
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run shoal")
    }

    /// Runs shoal and insists it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.shoal(args);
        assert!(
            out.status.success(),
            "shoal {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `shoal ps --format json`.
    pub fn ps(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["ps", "--format", "json"])).unwrap()
    }

    /// Replica `n` of `service`, as `shoal ps --format json` shows it.
    pub fn replica(&self, service: &str, n: u64) -> Option<serde_json::Value> {
        self.ps()
            .into_iter()
            .find(|c| c["service"] == service && c["replica"].as_u64() == Some(n))
    }

    /// Containers, networks and volumes the engine has with this project's label.
    pub fn leftovers(&self) -> Vec<String> {
        let label = format!("label=io.shoal.project={}", self.name);
        let mut found = Vec::new();
        for kind in [
            &["ps", "-a", "-q"][..],
            &["network", "ls", "-q"],
            &["volume", "ls", "-q"],
        ] {
            let out = Command::new("docker")
                .args(kind)
                .arg("--filter")
                .arg(&label)
                .output()
                .expect("docker CLI for the test's own checks");
            found.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|l| format!("{} {l}", kind[0])),
            );
        }
        found
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.shoal(&["down", "-v"]);
        for image in &self.images {
            // Keep the untagged parents: they are the build cache the next run uses.
            let _ = Command::new("docker")
                .args(["image", "rm", "--no-prune", image])
                .output();
        }
        let left = self.leftovers();
        if !left.is_empty() && !std::thread::panicking() {
            panic!("project {} left {left:?}", self.name);
        }
    }
}

/// One HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// `GET http://127.0.0.1:port/path` on a new connection.
pub fn get(port: u16, path: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP response: {raw:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `docker inspect -f '{{.State.StartedAt}}' id`, for checking nothing restarted.
pub fn started_at(id: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.StartedAt}}", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A build context for the testkit image: the static testkit binary and a
/// `FROM scratch` Dockerfile. The binary is built once (static, in its own target
/// directory so the regular build keeps its cache); `scripts/test.sh` builds it first.
pub fn testkit_context() -> PathBuf {
    static CONTEXT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let target = root().join("target/static");
            let bin = target.join("x86_64-unknown-linux-gnu/release/testkit");
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "shoal-testkit", "--release", "--target", "x86_64-unknown-linux-gnu", "--target-dir"])
                .arg(&target)
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .current_dir(root())
                .status()
                .expect("cargo build testkit");
            assert!(status.success(), "building the static testkit failed");
            let dir = std::env::temp_dir().join(format!("shoal-testkit-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(&bin, dir.join("testkit")).unwrap();
            std::fs::write(
                dir.join("Dockerfile"),
                "FROM scratch\nCOPY testkit /testkit\nEXPOSE 8080 9000\nENTRYPOINT [\"/testkit\"]\n",
            )
            .unwrap();
            dir
        })
        .clone()
}

/// A compose service running testkit, as YAML lines indented for `services:`.
pub fn testkit_service(name: &str, replicas: u32, ports: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    build: {ctx}\n    deploy: {{replicas: {replicas}}}\n    ports: [{ports}]\n    healthcheck: {{test: [\"CMD\", \"/testkit\", \"--check\"], interval: 1s, timeout: 1s, retries: 2}}\n    stop_grace_period: 2s\n{extra}",
        ctx = testkit_context().display()
    )
}

/// A project of one testkit service `app` with `replicas`, published on a free port
/// (and `extra` service lines), brought up with `up -d`; with its port.
pub fn testkit_up(tag: &str, replicas: u32, extra: &str) -> (Project, u16) {
    let port = free_port();
    let yaml = format!(
        "services:\n{}",
        testkit_service("app", replicas, &format!("\"{port}:8080\""), extra)
    );
    let p = project_from(tag, &yaml);
    p.ok(&["up", "-d"]);
    (p, port)
}

/// One of `examples/` (its web and db images removed at the end), its published
/// port set through `port_var` to a free one; with that port. Not started.
pub fn example(tag: &str, dir: &str, port_var: &str) -> (Project, u16) {
    let mut p = Project::new(tag, root().join("examples").join(dir).join("compose.yaml"));
    let port = free_port();
    p.env.insert(port_var.into(), port.to_string());
    p.images = vec![format!("{}-web", p.name), format!("{}-db", p.name)];
    (p, port)
}

/// A project over a compose file written from `yaml` in a fresh directory.
pub fn project_from(tag: &str, yaml: &str) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut p = Project::new(tag, file);
    for line in yaml.lines() {
        if let Some(svc) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !svc.starts_with(' ') {
                p.images.push(format!("{}-{svc}", p.name));
            }
        }
    }
    p.dir = Some(dir);
    p
}

/// An HTTP/1.1 client on one kept-alive connection.
pub struct KeepAlive {
    reader: std::io::BufReader<TcpStream>,
    writer: TcpStream,
}

impl KeepAlive {
    /// Connects to `127.0.0.1:port`.
    pub fn connect(port: u16) -> std::io::Result<KeepAlive> {
        KeepAlive::connect_to("127.0.0.1", port)
    }

    /// Connects to `host:port`.
    pub fn connect_to(host: &str, port: u16) -> std::io::Result<KeepAlive> {
        let s = TcpStream::connect((host, port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(KeepAlive {
            writer: s.try_clone()?,
            reader: std::io::BufReader::new(s),
        })
    }

    /// `GET path`; the status, the headers (lower-case names) and the body.
    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        use std::io::BufRead;
        write!(
            self.writer,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body)?;
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// The address of a container on its first network, from the engine.
pub fn container_ip(id: &str) -> String {
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            id,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Steady load: client threads each sending `GET path` on a kept-alive connection
/// until stopped, counting answers that were 200 and those that were not.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` threads against `127.0.0.1:port`.
    pub fn start(port: u16, clients: usize, path: &'static str) -> Load {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    let mut c = KeepAlive::connect(port).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        match c.get(path) {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => {
                                eprintln!("failed request: {other:?}");
                                failed.fetch_add(1, Ordering::Relaxed);
                                c = KeepAlive::connect(port).unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    /// Stops the clients; returns (ok, failed).
    pub fn stop(self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Sends `GET path` straight to replica `n` of a testkit `service` on its project
/// network address (not through shoal): how tests turn one replica's knobs.
pub fn knob(p: &Project, service: &str, n: u64, path: &str) {
    let r = p.replica(service, n).expect("the replica exists");
    let ip = container_ip(r["id"].as_str().expect("an id"));
    let answer = KeepAlive::connect_to(&ip, 8080)
        .and_then(|mut c| c.get(path))
        .expect("the replica answers");
    assert_eq!(answer.status, 200, "{path}: {answer:?}");
}

/// The pid of the control plane `up -d` started, from what it printed.
pub fn control_plane_pid(up: &Output) -> u32 {
    let stderr = String::from_utf8_lossy(&up.stderr).into_owned();
    stderr
        .split("control plane pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {stderr}"))
}

/// SIGKILLs `pid` and waits until it is gone.
pub fn sigkill(pid: u32) {
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    eventually(Duration::from_secs(5), "the control plane to die", || {
        Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .ok()
            .filter(|s| !s.success())
    });
}

/// SIGKILLs replica `n` of `service` through the engine; its container id.
pub fn kill_replica(p: &Project, service: &str, n: u64) -> String {
    let id = p.replica(service, n).expect("the replica exists")["id"]
        .as_str()
        .expect("an id")
        .to_string();
    Command::new("docker")
        .args(["kill", "-s", "KILL", &id])
        .output()
        .expect("docker CLI for the test's own actions");
    id
}
