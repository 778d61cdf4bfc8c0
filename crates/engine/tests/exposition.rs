//! Golden tests of the exposition: the names, help, types and units of every series
//! shoal exports, from a status written out by hand. A change to a series shows
//! here as a diff; `SHOAL_BLESS=1 cargo test -p shoal-engine --test exposition`
//! writes the new files after a deliberate change.

use std::path::PathBuf;

use shoal_engine::metrics::exposition;
use shoal_engine::Status;

/// Two services (one HTTP, one TCP), a replica leaving, an autoscaler, a rollout,
/// limits, events: every family has a row.
fn status() -> Status {
    let mut latency = [0u64; 14];
    latency[0] = 90;
    latency[3] = 9;
    latency[8] = 1;
    let web = serde_json::json!({
        "requests": 100, "arrivals": 100, "failures": 2, "retries": 3, "server_errors": 1,
        "classes": [0, 95, 0, 3, 2], "budget_refusals": 1, "bytes_in": 12000,
        "bytes_out": 48000, "connections": 10, "open": 4,
        "latency": latency, "latency_sum_us": 400000
    });
    let replica_web = serde_json::json!({
        "requests": 50, "failures": 1, "server_errors": 1, "connect_failures": 2,
        "ejections": 1, "returns": 1, "connections": 3, "open": 2,
        "latency": latency, "latency_sum_us": 200000
    });
    let db = serde_json::json!({ "requests": 7, "connections": 7, "open": 1 });
    serde_json::from_value(serde_json::json!({
        "project": "golden",
        "pid": 1,
        "converged": true,
        "services": {
            "web": {
                "desired": 3, "running": 3, "ready": 2, "traffic": web, "in_flight": 1,
                "cpu_limit": 0.5, "memory_limit": 134217728,
                "autoscale": {"metric": "rps", "value": 42.5, "target": 50.0}
            },
            "db": {"desired": 1, "running": 1, "ready": 1, "traffic": db, "in_flight": 1}
        },
        "waiting": [],
        "failures": [],
        "replicas": [
            {"service": "web", "replica": 1, "phase": "ready", "restarts": 0,
             "reason": "", "traffic": replica_web, "in_flight": 1,
             "usage": {"cpu_seconds": 1.25, "memory_bytes": 5242880}},
            {"service": "web", "replica": 2, "phase": "unhealthy", "restarts": 2,
             "reason": "healthcheck failed", "traffic": replica_web, "in_flight": 0,
             "usage": {"cpu_seconds": 0.5, "memory_bytes": null}},
            {"service": "web", "replica": 3, "phase": "draining", "restarts": 0,
             "reason": "scaled in"},
            {"service": "db", "replica": 1, "phase": "ready", "restarts": 1,
             "reason": "", "traffic": db, "in_flight": 1,
             "usage": {"cpu_seconds": 3.0, "memory_bytes": 1048576}}
        ],
        "events": [],
        "event_counts": {"web": {"Ready": 3, "Restarting": 2}, "-": {"Started": 1}},
        "rollouts": {
            "web": {"revision": 2, "rollbacks": 1, "rollout": {
                "from": 1, "to": 2, "state": "complete", "done": 3, "of": 3}},
            "db": {"revision": 1, "rollbacks": 0}
        }
    }))
    .expect("a valid status")
}

fn golden(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    // The version is the only thing that moves on its own.
    let text = text.replace(env!("CARGO_PKG_VERSION"), "VERSION");
    if std::env::var_os("SHOAL_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == text,
        "{} differs from the exposition (SHOAL_BLESS=1 rewrites it):\n{text}",
        path.display()
    );
}

#[test]
fn classic_text_format() {
    golden("metrics.txt", &exposition(status(), false));
}

#[test]
fn openmetrics_text_format() {
    golden("metrics.openmetrics", &exposition(status(), true));
}

#[test]
fn names_follow_the_prometheus_rules() {
    let text = exposition(status(), false);
    for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, kind) = (f[2], f[3]);
        assert!(
            name.starts_with("shoal_") || name.starts_with("container_"),
            "{name}: shoal's own series carry its prefix, the containers' cAdvisor's names"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name}: counters, and only counters, end in _total"
        );
        assert_ne!(kind, "summary", "{name}: histograms, never summaries");
        assert!(
            !name.contains("milliseconds") && !name.ends_with("_kb"),
            "{name}: base units"
        );
    }
    // A replica leaving has no balancer or container series.
    for family in ["shoal_requests_total", "container_cpu_usage_seconds_total"] {
        let row = format!("{family}{{service=\"web\",replica=\"3\"}}");
        assert!(!text.contains(&row), "{row}");
    }
    assert!(
        text.contains("shoal_replica_state{service=\"web\",replica=\"3\",phase=\"draining\"} 1")
    );
}
