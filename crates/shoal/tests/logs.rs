//! The log store against the real engine: every line a replica prints is stored once,
//! in order, through a replica's restart, a scale-out and a SIGKILLed control plane;
//! `shoal logs` reads it back filtered, follows it, and keeps it after `down`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{control_plane_pid, eventually, project_from, sigkill, testkit_service, Project};

/// Lines each run of a replica prints, 20 ms apart.
const LINES: u64 = 600;

/// A project of one testkit service `app` printing numbered lines (`env`: more of
/// the environment, `extra`: more service lines). Not started.
fn printing(p_tag: &str, replicas: u32, env: &str, extra: &str) -> (Project, u16) {
    let port = common::free_port();
    let yaml = format!(
        "services:\n{}",
        testkit_service(
            "app",
            replicas,
            &format!("\"{port}:8080\""),
            &format!(
                "    restart: always\n    environment: {{PRINT_EVERY_MS: \"20\", PRINT_LINES: \"{LINES}\"{env}}}\n{extra}"
            ),
        )
    );
    (project_from(p_tag, &yaml), port)
}

/// `shoal logs --json <args>`, parsed.
fn stored(p: &Project, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["logs", "--json"];
    all.extend_from_slice(args);
    p.ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The project's containers, stopped ones too.
fn containers(p: &Project) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "-q", "--no-trunc", "--filter"])
        .arg(format!("label=io.shoal.project={}", p.name))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What the engine holds of a container: (stdout lines, stderr lines).
fn engine_logs(id: &str) -> (Vec<String>, Vec<String>) {
    let out = Command::new("docker").args(["logs", id]).output().unwrap();
    let lines = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::to_string)
            .collect()
    };
    (lines(&out.stdout), lines(&out.stderr))
}

/// Per (container, stream), the stored lines in order.
fn by_stream(entries: &[serde_json::Value]) -> BTreeMap<(String, String), Vec<String>> {
    let mut m: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for e in entries {
        m.entry((
            e["container"].as_str().unwrap().to_string(),
            e["stream"].as_str().unwrap().to_string(),
        ))
        .or_default()
        .push(e["line"].as_str().unwrap().to_string());
    }
    m
}

/// Whether every run of every container printed all its lines, and the store holds
/// exactly what the engine does for each of them; else what differs.
fn store_matches_engine(p: &Project) -> Result<usize, String> {
    let stored = by_stream(&stored(p, &[]));
    let mut total = 0;
    for id in containers(p) {
        let (out, err) = engine_logs(&id);
        let runs: HashMap<&str, usize> = out
            .iter()
            .chain(&err)
            .filter_map(|l| l.split(' ').next().filter(|w| w.starts_with("run=")))
            .fold(HashMap::new(), |mut m, run| {
                *m.entry(run).or_default() += 1;
                m
            });
        // The newest run prints all its lines; one killed earlier printed fewer.
        let newest = runs.keys().max().copied();
        if newest.is_none_or(|r| runs[r] as u64 != LINES) {
            return Err(format!("{id} still printing: {runs:?}"));
        }
        for (stream, lines) in [("stdout", out), ("stderr", err)] {
            let have = stored
                .get(&(id.clone(), stream.to_string()))
                .cloned()
                .unwrap_or_default();
            if have != lines {
                return Err(format!(
                    "{id} {stream}: stored {} lines, the engine holds {}",
                    have.len(),
                    lines.len()
                ));
            }
            total += lines.len();
        }
    }
    Ok(total)
}

/// Each run's numbered lines, from the store: 0.., each once, none missing (all
/// `LINES` for the newest run of a container; a killed one stops short).
fn assert_numbered_once_in_order(entries: &[serde_json::Value]) {
    let mut runs: HashMap<(String, String), Vec<u64>> = HashMap::new();
    // testkit's own first line aside.
    for e in entries
        .iter()
        .filter(|e| e["line"].as_str().unwrap().starts_with("run="))
    {
        let line = e["line"].as_str().unwrap();
        let mut words = line.split(' ');
        let run = words.next().unwrap().to_string();
        let seq: u64 = words
            .next()
            .and_then(|w| w.strip_prefix("seq="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a numbered line: {line}"));
        runs.entry((e["container"].as_str().unwrap().to_string(), run))
            .or_default()
            .push(seq);
    }
    let mut newest: HashMap<String, String> = HashMap::new();
    for (container, run) in runs.keys() {
        let n = newest.entry(container.clone()).or_default();
        if run > n {
            *n = run.clone();
        }
    }
    for ((container, run), seqs) in runs {
        // stderr lines interleave with stdout ones by time, so order by stream: the
        // store keeps each stream's order; time order across both is checked loosely.
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), seqs.len(), "{container} {run}: a line twice");
        let printed = if newest[&container] == run {
            LINES
        } else {
            seqs.len() as u64
        };
        assert_eq!(
            sorted,
            (0..printed).collect::<Vec<_>>(),
            "{container} {run}: lines missing"
        );
    }
}

#[test]
fn every_line_is_stored_once_through_a_restart_a_scale_out_and_a_sigkilled_control_plane() {
    let (p, port) = printing("logs-once", 2, "", "");
    let pid = control_plane_pid(&p.shoal(&["up", "-d"]));
    // Under load through the balancer.
    let load = common::Load::start(port, 2, "/");
    std::thread::sleep(Duration::from_secs(2));

    // A replica killed: restarted by shoal, a second run in the same replica.
    common::kill_replica(&p, "app", 1);
    // A replica added.
    p.ok(&["scale", "app=3"]);
    std::thread::sleep(Duration::from_secs(2));
    let (ok, failed) = load.stop();
    assert!(ok > 100 && failed == 0, "{ok} answered, {failed} failed");
    // The control plane SIGKILLed while the replicas go on printing, then back.
    sigkill(pid);
    std::thread::sleep(Duration::from_secs(3));
    p.ok(&["up", "-d"]);

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let total = loop {
        match store_matches_engine(&p) {
            Ok(total) => break total,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("the store does not hold what the engine does: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    let all = stored(&p, &[]);
    assert_eq!(all.len(), total);
    assert_numbered_once_in_order(&all);
    let replicas: std::collections::BTreeSet<u64> =
        all.iter().map(|e| e["replica"].as_u64().unwrap()).collect();
    assert_eq!(replicas, [1, 2, 3].into(), "one stream per replica number");
    // Replica 1 has two runs, in time order.
    let runs_of_1: Vec<String> = all
        .iter()
        .filter(|e| e["replica"] == 1)
        .filter_map(|e| e["line"].as_str().unwrap().split(' ').next())
        .filter(|w| w.starts_with("run="))
        .map(str::to_string)
        .fold(Vec::new(), |mut v, r| {
            if v.last() != Some(&r) {
                v.push(r);
            }
            v
        });
    assert_eq!(runs_of_1.len(), 2, "{runs_of_1:?}");
    assert!(runs_of_1[0] < runs_of_1[1]);

    // The filters.
    let second = stored(&p, &["--index", "2"]);
    assert!(!second.is_empty() && second.iter().all(|e| e["replica"] == 2));
    let err = stored(&p, &["--stream", "stderr"]);
    let fifth = all
        .iter()
        .filter(|e| e["line"].as_str().unwrap().ends_with(" err"))
        .count();
    assert_eq!(err.len(), fifth);
    assert!(fifth as u64 >= 3 * LINES / 5);
    assert!(err.iter().all(|e| e["stream"] == "stderr"));
    let grep = stored(&p, &["--grep", "SEQ=3[0-9]{2} ERR$", "-i"]);
    assert_eq!(
        grep.len(),
        3 * 20,
        "seq 304, 309 .. 399 of the 3 runs that ran on"
    );
    let times: Vec<&str> = all.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let (from, to) = (times[times.len() / 4], times[times.len() / 2]);
    let window = stored(&p, &["--since", from, "--until", to]);
    assert!(window
        .iter()
        .all(|e| e["time"].as_str().unwrap() >= from && e["time"].as_str().unwrap() <= to));
    let expected = times.iter().filter(|t| **t >= from && **t <= to).count();
    assert_eq!(window.len(), expected);
    let tail = p.ok(&["logs", "-n", "3", "--no-log-prefix", "app"]);
    assert_eq!(
        tail.lines().count(),
        9,
        "3 lines of each of 3 replicas:\n{tail}"
    );
    // shoal's own events are beside the lines, on request.
    let with_events = stored(&p, &["--events", "--index", "1"]);
    assert!(
        with_events.iter().any(|e| e["stream"] == "event"),
        "no event about app.1"
    );
    // Prefixed and timestamped as compose prints them.
    let shown = p.ok(&["logs", "-t", "--index", "3", "-n", "1"]);
    assert!(shown.starts_with("app-3 | 20"), "{shown}");

    // `down` keeps the logs; `down -v` removes them.
    p.ok(&["down"]);
    assert_eq!(stored(&p, &[]).len(), total);
    p.ok(&["down", "-v"]);
    let gone = p.shoal(&["logs"]);
    assert!(!String::from_utf8_lossy(&gone.stdout).contains("seq="));
}

/// `shoal logs -f`, its lines gathered by a thread; killed when dropped.
struct Following {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Following {
    fn start(p: &Project, args: &[&str]) -> Following {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .arg("-p")
            .arg(&p.name)
            .arg("-f")
            .arg(&p.file)
            .args(["logs", "-f"])
            .args(args)
            .env("SHOAL_STATE_DIR", p.state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let out = child.stdout.take().unwrap();
        let gathered = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                gathered.lock().unwrap().push(line);
            }
        });
        Following { child, lines }
    }

    fn has(&self, f: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| f(l))
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn follow_goes_on_across_a_restart_a_scale_out_and_a_control_plane_restart() {
    let (p, _) = printing("logs-follow", 1, "", "");
    let pid = control_plane_pid(&p.shoal(&["up", "-d"]));
    let f = Following::start(&p, &["app"]);
    eventually(Duration::from_secs(20), "app-1's lines", || {
        f.has(|l| l.starts_with("app-1 | run=")).then_some(())
    });

    p.ok(&["scale", "app=2"]);
    eventually(Duration::from_secs(30), "the new replica's lines", || {
        f.has(|l| l.starts_with("app-2 | run=")).then_some(())
    });

    let runs = |f: &Following| {
        let lines = f.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("app-1 | run="))
            .filter_map(|l| l.split(' ').next().map(str::to_string))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    common::kill_replica(&p, "app", 1);
    eventually(Duration::from_secs(30), "app-1's second run", || {
        (runs(&f) == 2).then_some(())
    });

    // A new control plane: the reader goes on with what it stores.
    sigkill(pid);
    let before = f.lines.lock().unwrap().len();
    p.ok(&["up", "-d"]);
    eventually(Duration::from_secs(30), "lines after the restart", || {
        (f.lines.lock().unwrap().len() > before + 20).then_some(())
    });
    drop(f);
    p.ok(&["down", "-v"]);
}

#[test]
fn a_stack_trace_is_one_record_with_a_start_pattern() {
    // Traces after every tenth line.
    let (p, _) = printing(
        "logs-trace",
        1,
        ", PRINT_TRACE: \"true\"",
        "    x-shoal:\n      logs: {multiline: '^run='}\n    logging: {driver: json-file, options: {max-size: 5m, max-file: 2}}\n",
    );
    p.ok(&["up", "-d"]);
    // `logging` reaches the engine.
    let id = &containers(&p)[0];
    let conf = Command::new("docker")
        .args(["inspect", "-f", "{{json .HostConfig.LogConfig}}", id])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&conf.stdout).trim(),
        r#"{"Type":"json-file","Config":{"max-file":"2","max-size":"5m"}}"#
    );
    let traces = eventually(Duration::from_secs(60), "every stack trace stored", || {
        let t: Vec<_> = stored(&p, &["--grep", "Traceback"]);
        (t.len() as u64 == LINES / 10).then_some(t)
    });
    for t in &traces {
        let text = t["line"].as_str().unwrap();
        assert_eq!(text.lines().count(), 5, "{text:?}");
        assert!(
            text.starts_with("run=") && text.ends_with("  at frame 2"),
            "{text:?}"
        );
    }
    // The numbered lines and testkit's first.
    let lines = eventually(Duration::from_secs(60), "all the lines", || {
        let all = stored(&p, &[]);
        (all.len() as u64 == LINES + 1).then_some(all)
    });
    assert_numbered_once_in_order(&lines);
    p.ok(&["down", "-v"]);
}

#[test]
fn bad_input_is_a_clear_error() {
    let (p, _) = printing("logs-bad", 1, "", "");
    let err = |args: &[&str]| {
        let out = p.shoal(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = err(&["logs", "--grep", "(unclosed"]);
    assert!(
        e.contains("--grep (unclosed: not a regular expression"),
        "{e}"
    );
    let e = err(&["logs", "--since", "yesterday"]);
    assert!(
        e.contains("--since yesterday: not a time") && e.contains("RFC 3339"),
        "{e}"
    );
    let e = err(&["logs", "--until", "2026-13-01T00:00:00Z"]);
    assert!(e.contains("--until"), "{e}");
    let e = err(&["logs", "nosuch"]);
    assert!(e.contains("no service `nosuch`"), "{e}");
    let e = err(&["logs", "--stream", "both"]);
    assert!(e.contains("both"), "{e}");

    // A malformed x-shoal.logs block is refused where it is.
    let bad = project_from(
        "logs-bad-spec",
        "services:\n  app:\n    image: x\n    x-shoal:\n      logs: {multiline: '(['}\nx-shoal:\n  logs: {max_size: lots}\n",
    );
    let out = bad.shoal(&["config"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("compose.yaml:"), "{e}");
}

/// Loki pushes as a running project sends them: each body, gunzipped.
fn loki_receiver() -> (u16, Arc<Mutex<Vec<serde_json::Value>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let got = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let got = got.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stream.try_clone().unwrap());
                let mut w = stream;
                loop {
                    let mut len = 0;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    assert!(line.starts_with("POST /loki/api/v1/push "), "{line}");
                    loop {
                        line.clear();
                        r.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    let mut json = String::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_string(&mut json)
                        .unwrap();
                    got.lock()
                        .unwrap()
                        .push(serde_json::from_str(&json).unwrap());
                    w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
                }
            });
        }
    });
    (port, bodies)
}

#[test]
fn a_running_project_forwards_its_lines_to_loki() {
    let (port, bodies) = loki_receiver();
    let (p, _) = printing(
        "logs-loki",
        1,
        "",
        &format!(
            "x-shoal:\n  logs:\n    forward: [{{type: loki, url: \"http://127.0.0.1:{port}\"}}]\n"
        ),
    );
    p.ok(&["up", "-d"]);
    let values = |bodies: &[serde_json::Value]| -> Vec<String> {
        bodies
            .iter()
            .flat_map(|b| b["streams"].as_array().unwrap().clone())
            .filter(|s| s["stream"]["stream"] == "stdout")
            .flat_map(|s| s["values"].as_array().unwrap().clone())
            .map(|v| v[1].as_str().unwrap().to_string())
            .filter(|l| l.starts_with("run="))
            .collect()
    };
    let lines = eventually(Duration::from_secs(60), "every stdout line at Loki", || {
        let v = values(&bodies.lock().unwrap());
        (v.len() as u64 == LINES * 4 / 5).then_some(v)
    });
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap()[4..].parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    let bodies = bodies.lock().unwrap();
    let labels: Vec<&serde_json::Value> = bodies
        .iter()
        .flat_map(|b| b["streams"].as_array().unwrap())
        .map(|s| &s["stream"])
        .collect();
    assert!(labels.iter().all(|l| l["project"] == p.name.as_str()));
    assert!(labels
        .iter()
        .any(|l| l["service"] == "app" && l["replica"] == "1" && l["stream"] == "stderr"));
    // shoal's events go too, as their own stream.
    assert!(labels.iter().any(|l| l["stream"] == "event"));
    drop(bodies);
    p.ok(&["down", "-v"]);
}
