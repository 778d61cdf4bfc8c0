//! The Prometheus endpoint against the real engine: what it counts matches what a
//! client sent, replicas that go leave no series behind, the classic text is clean
//! under `promtool check metrics`, and a metrics port already taken stops `up`
//! before anything starts. (A real Prometheus scraping the example is in
//! `observe.rs`.)

mod common;

use std::io::Write;
use std::time::Duration;

use common::{eventually, free_port, project_from, testkit_service, KeepAlive};

/// GET /metrics on `port`, with an `Accept` header when given.
fn scrape(port: u16, accept: Option<&str>) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The value of the series `name{labels}` exactly, if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_what_clients_sent_and_pass_promtool() {
    let port = free_port();
    let metrics = free_port();
    let yaml = format!(
        "services:\n{}{}x-shoal:\n  metrics: 127.0.0.1:{metrics}\n",
        testkit_service("app", 2, &format!("\"{port}:8080\""), ""),
        testkit_service(
            "auto",
            1,
            &format!("\"{}:8080\"", free_port()),
            "    x-shoal: {autoscale: {min: 1, max: 2, metric: rps, target: 1000}}\n"
        )
    );
    let p = project_from("metrics", &yaml);
    p.ok(&["up", "-d"]);
    let ps = p.ok(&["ps"]);
    assert!(
        ps.contains(&format!("metrics on http://127.0.0.1:{metrics}/metrics")),
        "{ps}"
    );

    let mut c = KeepAlive::connect(port).unwrap();
    for _ in 0..45 {
        assert_eq!(c.get("/").unwrap().status, 200);
    }
    for _ in 0..5 {
        assert_eq!(c.get("/status?code=404").unwrap().status, 404);
    }
    let text = eventually(Duration::from_secs(5), "50 requests counted", || {
        let t = scrape(metrics, None);
        let ok = value(
            &t,
            "shoal_service_requests_total{service=\"app\",code=\"2xx\"}",
        );
        (ok == Some(45.0)).then_some(t)
    });
    assert_eq!(
        value(
            &text,
            "shoal_service_requests_total{service=\"app\",code=\"4xx\"}"
        ),
        Some(5.0)
    );
    // One client connection, open; bytes both ways; the balancer's kept
    // connections to the replicas.
    assert_eq!(
        value(&text, "shoal_service_connections_total{service=\"app\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "shoal_service_connections_open{service=\"app\"}"),
        Some(1.0)
    );
    assert!(value(&text, "shoal_service_received_bytes_total{service=\"app\"}").unwrap() > 1000.0);
    assert!(value(&text, "shoal_service_sent_bytes_total{service=\"app\"}").unwrap() > 1000.0);
    let upstream: f64 = (1..=2)
        .filter_map(|r| {
            value(
                &text,
                &format!("shoal_upstream_connections_open{{service=\"app\",replica=\"{r}\"}}"),
            )
        })
        .sum();
    assert!(upstream >= 1.0, "{text}");
    drop(c);
    assert_eq!(
        value(&text, "shoal_service_replicas_ready{service=\"app\"}"),
        Some(2.0)
    );
    let per_replica: f64 = (1..=2)
        .filter_map(|r| {
            value(
                &text,
                &format!("shoal_requests_total{{service=\"app\",replica=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(per_replica, 50.0, "{text}");
    assert_eq!(
        value(
            &text,
            "shoal_request_duration_seconds_count{service=\"app\",replica=\"1\"}"
        )
        .unwrap()
            + value(
                &text,
                "shoal_request_duration_seconds_count{service=\"app\",replica=\"2\"}"
            )
            .unwrap(),
        50.0
    );
    assert!(
        value(
            &text,
            "shoal_events_total{service=\"app\",reason=\"Ready\"}"
        )
        .unwrap()
            >= 2.0
    );

    // The containers' use, from the engine's stats (read every 5 s), and the
    // autoscaler's reading against its target.
    let text = eventually(Duration::from_secs(15), "container stats", || {
        let t = scrape(metrics, None);
        let mem = value(
            &t,
            "container_memory_working_set_bytes{service=\"app\",replica=\"1\"}",
        )?;
        let auto = value(&t, "shoal_autoscale_value{service=\"auto\",metric=\"rps\"}");
        (mem > 0.0 && auto.is_some()).then_some(t)
    });
    assert!(
        value(
            &text,
            "container_cpu_usage_seconds_total{service=\"app\",replica=\"1\"}"
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        value(
            &text,
            "shoal_autoscale_target{service=\"auto\",metric=\"rps\"}"
        ),
        Some(1000.0)
    );

    // promtool (Debian's prometheus package, which .ci/run installs) finds nothing
    // to say about the classic text.
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // OpenMetrics to a scraper that asks for it.
    let open = scrape(
        metrics,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert!(open.trim_end().ends_with("# EOF"), "{open}");

    // Scaled out and in: the replicas that went leave no series behind.
    p.ok(&["scale", "app=3"]);
    eventually(Duration::from_secs(30), "three ready replicas", || {
        let t = scrape(metrics, None);
        (value(&t, "shoal_service_replicas_ready{service=\"app\"}") == Some(3.0)).then_some(())
    });
    p.ok(&["scale", "app=1"]);
    // Draining, they still show (as draining); removed, they leave nothing.
    let text = eventually(Duration::from_secs(30), "no series of the removed", || {
        let t = scrape(metrics, None);
        let gone = !t.contains("service=\"app\",replica=\"2\"")
            && !t.contains("service=\"app\",replica=\"3\"");
        gone.then_some(t)
    });
    let replicas = text
        .lines()
        .filter(|l| l.starts_with("shoal_requests_in_flight{service=\"app\""))
        .count();
    assert_eq!(replicas, 1, "{text}");
}

#[test]
fn a_metrics_port_already_taken_stops_up_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = taken.local_addr().unwrap().port();
    let yaml = format!(
        "services:\n{}x-shoal:\n  metrics: 127.0.0.1:{metrics}\n",
        testkit_service("app", 1, &format!("\"{}:8080\"", free_port()), "")
    );
    let p = project_from("metricstaken", &yaml);
    let out = p.shoal(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{metrics}")),
        "{err}"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    // A malformed flag is refused at once.
    let out = p.shoal(&["up", "-d", "--metrics", "nowhere"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--metrics: `nowhere` is not an address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(taken);
}
