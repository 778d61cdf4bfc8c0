//! A real Prometheus (Debian's package, which `.ci/run` installs) for the tests.

use std::time::Duration;

/// A real Prometheus scraping 127.0.0.1:`target` every second, with its data in a
/// folder of its own; stopped when dropped.
pub struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(target: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: shoal\n    static_configs: [{{targets: [\"127.0.0.1:{target}\"]}}]\n"
            ),
        )
        .unwrap();
        let port = super::free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus (apt-get install prometheus)");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        super::eventually(Duration::from_secs(30), "prometheus ready", || {
            super::get(p.port, "/-/ready")
                .ok()
                .filter(|r| r.status == 200)
        });
        p
    }

    /// The query API's answer to `q`.
    pub fn query(&self, q: &str) -> serde_json::Value {
        let enc: String = q
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let r = super::get(self.port, &format!("/api/v1/query?query={enc}")).unwrap();
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
    }

    /// The single value `q` has now, if it has one.
    pub fn scalar(&self, q: &str) -> Option<f64> {
        let v = self.query(q);
        let result = v["data"]["result"].as_array()?;
        (result.len() == 1)
            .then(|| result[0]["value"][1].as_str()?.parse().ok())
            .flatten()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
