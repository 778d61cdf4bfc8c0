//! The running example, observed: a real Prometheus scrapes it while known traffic,
//! a killed replica, scaling 1 → 8 → 1 and an autoscale step happen, and every query
//! of the Grafana dashboard in `dashboards/` answers; `shoal dashboard` runs in a
//! real terminal (tmux) against it, shows what `/metrics` says, answers its keys and
//! gives the terminal back after `q`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::prometheus::Prometheus;
use common::{eventually, free_port, KeepAlive, Load};

/// A tmux server of its own with one 80x24 window running bash; killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(env: &[(&str, String)]) -> Tmux {
        let t = Tmux {
            socket: format!("shoal-test-{}", std::process::id()),
        };
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &t.socket, "-f", "/dev/null", "new-session", "-d"]);
        cmd.args(["-x", "80", "-y", "24"]);
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.args(["bash", "--norc", "--noprofile"]);
        assert!(cmd.status().expect("tmux (apt-get install tmux)").success());
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys` (tmux key names: `Enter`, `Escape`, `j`...).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Escape, alone.
    fn escape(&self) {
        self.keys(&["Escape"]);
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Types a line of text and Enter.
    fn line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "0"])
    }

    /// Waits until the screen shows every one of `want`; the screen.
    fn shows(&self, want: &[&str]) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            last = self.screen();
            if want.iter().all(|w| last.contains(w)) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the screen does not show {want:?}:\n{last}");
    }

    fn alternate_screen(&self) -> bool {
        self.tmux(&["display", "-p", "-t", "0", "#{alternate_on}"])
            .trim()
            == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// GET /metrics, classic text.
fn scrape(port: u16) -> String {
    common::get(port, "/metrics").expect("metrics answer").body
}

/// The sum of every series of `family` with `labels` among its labels.
fn sum(text: &str, family: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_example_observed_by_prometheus_and_the_dashboard() {
    let (p, port) = common::example("observe", "hello", "HELLO_PORT");
    let metrics = free_port();
    p.ok(&["up", "-d", "--metrics", &format!("127.0.0.1:{metrics}")]);
    let prom = Prometheus::start(metrics);

    // A known number of requests: Prometheus' sum over the replicas is the client's.
    let mut c = KeepAlive::connect(port).unwrap();
    for _ in 0..60 {
        assert_eq!(c.get("/").unwrap().status, 200);
    }
    drop(c);
    eventually(
        Duration::from_secs(20),
        "Prometheus sees 60 requests",
        || {
            let n = prom.scalar("sum(shoal_requests_total{service=\"web\"})")?;
            (n == 60.0).then_some(())
        },
    );
    assert_eq!(
        prom.scalar("sum(shoal_service_requests_total{service=\"web\",code=\"2xx\"})"),
        Some(60.0)
    );
    assert_eq!(
        prom.scalar("shoal_service_replicas_ready{service=\"web\"}"),
        Some(3.0)
    );

    // The dashboard in a real terminal shows the same numbers as /metrics.
    let tmux = Tmux::start(&[("SHOAL_STATE_DIR", p.state.path().display().to_string())]);
    tmux.line(&format!(
        "{} -p {} -f {} dashboard",
        env!("CARGO_BIN_EXE_shoal"),
        p.name,
        p.file.display()
    ));
    tmux.shows(&["shoal · ", "SERVICE", "db", "web", "3/3", "Events"]);
    assert!(tmux.alternate_screen());
    // Down to web: its replicas, and its total as /metrics has it.
    tmux.keys(&["j"]);
    let text = scrape(metrics);
    let total = sum(&text, "shoal_service_requests_total", "service=\"web\"");
    assert_eq!(total, 60.0, "{text}");
    let screen = tmux.shows(&["Replicas of web · 60 requests, 0 failed"]);
    for r in 1..=3 {
        assert!(
            screen
                .lines()
                .any(|l| l.starts_with(&format!("│{r}   ready"))),
            "replica {r}:\n{screen}"
        );
    }
    // The keys: help, filter, the replicas, a replica's logs, back, quit.
    tmux.keys(&["?"]);
    tmux.shows(&["Keys", "filter services by name"]);
    tmux.keys(&["x"]);
    tmux.keys(&["/", "d", "b", "Enter"]);
    let filtered = tmux.shows(&["Services /db", "Replicas of db"]);
    assert!(!filtered.contains("│web "), "{filtered}");
    // (An Escape followed at once by another key reads as Alt and that key.)
    tmux.keys(&["/"]);
    tmux.escape();
    tmux.keys(&["Enter", "j", "l"]);
    tmux.shows(&["web.2 logs", "listening on :8080"]);
    tmux.escape();
    tmux.shows(&["Replicas of web"]);
    tmux.keys(&["q"]);
    eventually(Duration::from_secs(5), "the normal screen back", || {
        (!tmux.alternate_screen()).then_some(())
    });
    // The terminal is out of raw mode: the shell reads lines again (` -icanon`
    // would be raw mode's).
    tmux.line("echo cooked=$(stty -a | grep -c -- ' -icanon')");
    tmux.shows(&["cooked=0"]);
    drop(tmux);

    // A killed replica shows in the restarts.
    common::kill_replica(&p, "web", 1);
    eventually(Duration::from_secs(30), "the restart in Prometheus", || {
        let n = prom.scalar("sum(shoal_replica_restarts_total{service=\"web\"})")?;
        (n >= 1.0).then_some(())
    });

    // Scaled 1 → 8 → 1: Prometheus holds no stale replica series.
    for n in [1, 8, 1] {
        p.ok(&["scale", &format!("web={n}")]);
        eventually(
            Duration::from_secs(90),
            &format!("{n} web replicas in Prometheus"),
            || {
                let q = "count(shoal_requests_in_flight{service=\"web\"})";
                (prom.scalar(q) == Some(f64::from(n))).then_some(())
            },
        );
    }
    // Those draining show as draining; once removed, nothing of them is left.
    eventually(Duration::from_secs(30), "one web replica's series", || {
        let text = scrape(metrics);
        let replicas: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.split("service=\"web\",replica=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        (replicas.len() == 1).then_some(())
    });

    // An autoscaler (added by an override, no rollout): load makes a step, and
    // desired shows it.
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("autoscale.yaml");
    std::fs::write(
        &extra,
        "services:\n  web:\n    x-shoal:\n      autoscale: {min: 1, max: 2, metric: rps, target: 20}\n",
    )
    .unwrap();
    p.ok(&["-f", &extra.display().to_string(), "up", "-d"]);
    let load = Load::start(port, 2, "/");
    for _ in 0..60 {
        let q = "shoal_service_replicas_desired{service=\"web\"}";
        if prom.scalar(q) == Some(2.0) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let q = "shoal_service_replicas_desired{service=\"web\"}";
    assert_eq!(prom.scalar(q), Some(2.0), "{}", p.ok(&["events"]));
    let (_, failed) = load.stop();
    assert_eq!(failed, 0);
    eventually(Duration::from_secs(10), "the Scaled event counted", || {
        let q = "sum(shoal_events_total{service=\"web\",reason=\"Scaled\"})";
        (prom.scalar(q)? >= 1.0).then_some(())
    });

    // Every query of the Grafana dashboard in the repository answers, with data.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("dashboards/shoal.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().replace("$service", ".*"))
        .collect();
    assert!(exprs.len() >= 8);
    for q in &exprs {
        eventually(Duration::from_secs(20), &format!("data for {q}"), || {
            let v = prom.query(q);
            assert_eq!(v["status"], "success", "{q}: {v}");
            let n = v["data"]["result"].as_array().map_or(0, Vec::len);
            (n > 0).then_some(())
        });
    }
}
