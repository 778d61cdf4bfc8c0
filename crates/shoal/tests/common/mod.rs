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
