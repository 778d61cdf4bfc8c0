//! Forwarding against receivers that hold shoal to Loki's and Elasticsearch's
//! documented push contracts (no Loki or Elasticsearch server can run here):
//!
//! - Loki `POST /loki/api/v1/push`: `Content-Type: application/json`, optionally
//!   gzip; `{"streams": [{"stream": {label: value}, "values": [[ts, line]]}]}` with
//!   label names `[a-zA-Z_][a-zA-Z0-9_]*`, timestamps as strings of nanoseconds, the
//!   entries of a stream in time order (an older one is refused as out of order,
//!   400); success is 204.
//! - Elasticsearch `POST /_bulk`: `Content-Type: application/x-ndjson`, optionally
//!   gzip; action and document lines, the body ending with a newline; `create`
//!   (what a data stream takes) with `_index`; documents with `@timestamp`; a 200
//!   answer with `errors` and one item per action, each with its own status (201,
//!   409 when the `_id` exists, 429 when rejected for now, 400 when unparsable).
//!
//! The receivers inject 429s, 500s, partial bulk failures and an outage of 30 s; the
//! store is the buffer, so every line arrives once, in order.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use shoal_engine::forward::Forwarder;
use shoal_logs::{Limits, Store, Stream, StreamKey};
use shoal_spec::{Forward, Sink};
use tokio::sync::watch;

/// What a receiver does with the n-th request (0-based), before looking at it.
type Plan = Box<dyn Fn(usize) -> Fault + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    None,
    Status(u16),
    /// Refuse connections for this long, from this request on.
    Outage(Duration),
}

#[derive(Default)]
struct Received {
    requests: usize,
    /// Loki: lines by label set, in arrival order. Elasticsearch: documents by `_id`.
    lines: HashMap<String, Vec<(i64, String)>>,
    ids: HashSet<String>,
    /// Contract breaches seen (the test fails on any).
    breaches: Vec<String>,
    outage_until: Option<Instant>,
}

struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<Received>>,
}

impl Receiver {
    async fn start(kind: Sink, plan: Plan) -> Receiver {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let listener = socket.listen(64).unwrap();
        let state: Arc<Mutex<Received>> = Arc::default();
        let plan = Arc::new(plan);
        let st = state.clone();
        tokio::spawn(async move {
            let mut listener = Some(listener);
            let mut conns: Vec<tokio::task::JoinHandle<()>> = Vec::new();
            loop {
                let until = st.lock().unwrap().outage_until;
                if let Some(until) = until {
                    // Down: every connection gone, none taken.
                    for c in conns.drain(..) {
                        c.abort();
                    }
                    listener = None;
                    tokio::time::sleep_until(until.into()).await;
                    st.lock().unwrap().outage_until = None;
                }
                let l = match &listener {
                    Some(l) => l,
                    None => {
                        let s = tokio::net::TcpSocket::new_v4().unwrap();
                        s.set_reuseaddr(true).unwrap();
                        s.bind(addr).unwrap();
                        listener.insert(s.listen(64).unwrap())
                    }
                };
                let accepted = tokio::time::timeout(Duration::from_millis(100), l.accept()).await;
                let Ok(Ok((stream, _))) = accepted else {
                    continue;
                };
                let (st, plan) = (st.clone(), plan.clone());
                conns.push(tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (st, plan) = (st.clone(), plan.clone());
                        async move { Ok::<_, hyper::Error>(answer(kind, req, &st, &plan).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                }));
            }
        });
        Receiver { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn answer(
    kind: Sink,
    req: Request<Incoming>,
    st: &Mutex<Received>,
    plan: &Plan,
) -> Response<Full<Bytes>> {
    let n = {
        let mut s = st.lock().unwrap();
        s.requests += 1;
        s.requests - 1
    };
    match plan(n) {
        Fault::None => {}
        Fault::Status(code) => return reply(code, json!({"error": "injected"})),
        Fault::Outage(d) => {
            st.lock().unwrap().outage_until = Some(Instant::now() + d);
            return reply(503, json!({"error": "going down"}));
        }
    }
    let (parts, body) = req.into_parts();
    let raw = body.collect().await.unwrap().to_bytes();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let body = if header("content-encoding") == "gzip" {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return breach(st, "content-encoding gzip but the body is not gzip");
        }
        out
    } else {
        raw.to_vec()
    };
    if parts.method != hyper::Method::POST {
        return breach(st, "not a POST");
    }
    match kind {
        Sink::Loki => loki(&parts.uri, &header("content-type"), &body, st),
        Sink::Elasticsearch => bulk(&parts.uri, &header("content-type"), &body, st),
    }
}

fn breach(st: &Mutex<Received>, what: &str) -> Response<Full<Bytes>> {
    st.lock().unwrap().breaches.push(what.to_string());
    reply(400, json!({"error": what}))
}

fn loki(
    uri: &hyper::Uri,
    content_type: &str,
    body: &[u8],
    st: &Mutex<Received>,
) -> Response<Full<Bytes>> {
    if uri.path() != "/loki/api/v1/push" {
        return breach(st, "not /loki/api/v1/push");
    }
    if !content_type.starts_with("application/json") {
        return breach(st, "content type is not application/json");
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return breach(st, "body is not JSON");
    };
    let Some(streams) = v["streams"].as_array().filter(|s| !s.is_empty()) else {
        return breach(st, "no streams");
    };
    let label_name = |k: &str| {
        let mut c = k.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    };
    let mut batch: Vec<(String, i64, String)> = Vec::new();
    for s in streams {
        let Some(labels) = s["stream"].as_object().filter(|l| !l.is_empty()) else {
            return breach(st, "a stream without labels");
        };
        if !labels.iter().all(|(k, v)| label_name(k) && v.is_string()) {
            return breach(st, "a label that is not name: string");
        }
        let mut sorted: Vec<_> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        sorted.sort();
        let key = sorted.join(",");
        let Some(values) = s["values"].as_array().filter(|v| !v.is_empty()) else {
            return breach(st, "a stream without values");
        };
        for v in values {
            let (Some(ts), Some(line)) = (v[0].as_str(), v[1].as_str()) else {
                return breach(st, "a value that is not [\"<ns>\", \"line\"]");
            };
            if !(2..=3).contains(&v.as_array().map_or(0, Vec::len))
                || ts.is_empty()
                || !ts.bytes().all(|b| b.is_ascii_digit())
                || ts.len() < 19
            {
                return breach(st, "a timestamp that is not a string of nanoseconds");
            }
            batch.push((key.clone(), ts.parse().unwrap(), line.to_string()));
        }
    }
    let mut s = st.lock().unwrap();
    // Ordered writes: an entry older than its stream's newest is refused.
    let mut newest: HashMap<String, i64> = s
        .lines
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.last()?.0)))
        .collect();
    for (key, ts, _) in &batch {
        let n = newest.entry(key.clone()).or_insert(i64::MIN);
        if ts < n {
            drop(s);
            return breach(st, "entry out of order");
        }
        *n = *ts;
    }
    for (key, ts, line) in batch {
        s.lines.entry(key).or_default().push((ts, line));
    }
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn bulk(
    uri: &hyper::Uri,
    content_type: &str,
    body: &[u8],
    st: &Mutex<Received>,
) -> Response<Full<Bytes>> {
    if uri.path() != "/_bulk" {
        return breach(st, "not /_bulk");
    }
    if !(content_type.starts_with("application/x-ndjson")
        || content_type.starts_with("application/json"))
    {
        return breach(st, "content type is not application/x-ndjson");
    }
    if body.last() != Some(&b'\n') {
        return breach(st, "the body does not end with a newline");
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return breach(st, "not UTF-8");
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() % 2 != 0 {
        return breach(st, "an action without its document");
    }
    let mut s = st.lock().unwrap();
    let request = s.requests;
    let mut items = Vec::new();
    let mut errors = false;
    for (i, pair) in lines.chunks(2).enumerate() {
        let (Ok(action), Ok(doc)) = (
            serde_json::from_str::<Value>(pair[0]),
            serde_json::from_str::<Value>(pair[1]),
        ) else {
            drop(s);
            return breach(st, "a line that is not JSON");
        };
        let Some(create) = action["create"].as_object() else {
            drop(s);
            return breach(
                st,
                "an action other than create (a data stream takes only create)",
            );
        };
        let (Some(index), Some(id)) = (create["_index"].as_str(), create["_id"].as_str()) else {
            drop(s);
            return breach(st, "create without _index and _id");
        };
        let ts = doc["@timestamp"].as_str().unwrap_or("");
        if !(ts.len() >= 20 && ts.as_bytes()[10] == b'T' && ts.ends_with('Z')) {
            drop(s);
            return breach(st, "a document without an RFC 3339 @timestamp");
        }
        let message = doc["message"].as_str().unwrap_or("").to_string();
        let (status, error) = if s.ids.contains(id) {
            (409, json!({"type": "version_conflict_engine_exception"}))
        } else if message.contains("POISON") {
            (
                400,
                json!({"type": "mapper_parsing_exception", "reason": "failed to parse"}),
            )
        } else if request <= 6 && i % 7 == 3 {
            (429, json!({"type": "es_rejected_execution_exception"}))
        } else {
            s.ids.insert(id.to_string());
            let key = format!(
                "{}.{}.{}",
                doc["service"].as_str().unwrap_or(""),
                doc["replica"],
                doc["stream"].as_str().unwrap_or("")
            );
            s.lines.entry(key).or_default().push((0, message));
            (201, Value::Null)
        };
        errors |= status >= 300;
        let mut item = json!({"_index": index, "_id": id, "status": status});
        if !error.is_null() {
            item["error"] = error;
        }
        items.push(json!({ "create": item }));
    }
    reply(200, json!({"took": 1, "errors": errors, "items": items}))
}

fn key(service: &str, replica: u32, stream: Stream) -> StreamKey {
    StreamKey {
        service: service.into(),
        replica,
        container: format!("c-{service}-{replica}"),
        stream,
    }
}

/// Appends `n` numbered lines to each of three streams, from `from` on.
fn fill(store: &mut Store, from: usize, n: usize, extra: impl Fn(usize) -> Option<String>) {
    let keys = [
        key("web", 1, Stream::Stdout),
        key("web", 1, Stream::Stderr),
        key("db", 1, Stream::Stdout),
    ];
    let t0 = shoal_logs::now_nanos();
    for i in from..from + n {
        for (k, key) in keys.iter().enumerate() {
            let text = extra(i).unwrap_or_else(|| format!("{}-{k} line {i}", key.service));
            store
                .append(key, t0 + (i * 3 + k) as i64, None, &text)
                .unwrap();
        }
    }
    store.flush().unwrap();
}

fn small_segments() -> Limits {
    Limits {
        segment_bytes: 64 << 10,
        ..Limits::default()
    }
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_gets_every_line_once_in_order_through_429s_500s_and_a_30s_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), small_segments()).unwrap();
    fill(&mut store, 0, 4000, |_| None);
    let plan: Plan = Box::new(|n| match n {
        0 | 1 => Fault::Status(429),
        2 => Fault::Status(500),
        4 => Fault::Status(502),
        6 => Fault::Outage(Duration::from_secs(30)),
        _ => Fault::None,
    });
    let rx = Receiver::start(Sink::Loki, plan).await;
    let sink = Forward {
        sink: Sink::Loki,
        url: rx.url(),
        index: None,
    };
    let (stop, stopped) = watch::channel(false);
    let f = Forwarder::new(sink.clone(), "proj", dir.path());
    let cursor_file = f.cursor_path();
    let task = tokio::spawn(f.run(stopped.clone()));

    // Lines stored while the receiver is down are sent when it is back.
    wait_for("the outage", Duration::from_secs(30), || {
        rx.state.lock().unwrap().outage_until.is_some()
    })
    .await;
    fill(&mut store, 4000, 1000, |_| None);
    let total = |s: &Received| s.lines.values().map(Vec::len).sum::<usize>();
    wait_for("all 15000 lines", Duration::from_secs(120), || {
        total(&rx.state.lock().unwrap()) >= 15000
    })
    .await;
    {
        let s = rx.state.lock().unwrap();
        assert_eq!(s.breaches, Vec::<String>::new());
        assert_eq!(total(&s), 15000);
        assert_eq!(s.lines.len(), 3, "one Loki stream per label set");
        for (labels, lines) in &s.lines {
            assert!(labels.contains("project=\"proj\""), "{labels}");
            let k = if labels.contains("db") {
                2
            } else if labels.contains("stderr") {
                1
            } else {
                0
            };
            let want: Vec<String> = (0..5000)
                .map(|i| format!("{}-{k} line {i}", if k == 2 { "db" } else { "web" }))
                .collect();
            let got: Vec<String> = lines.iter().map(|(_, l)| l.clone()).collect();
            assert_eq!(got, want, "{labels}: once each, in order");
        }
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    assert!(cursor_file.exists(), "the position is kept");

    // A forwarder started again (a control plane restart) sends nothing twice.
    let requests = rx.state.lock().unwrap().requests;
    let (_stop2, stopped2) = watch::channel(false);
    let again = tokio::spawn(Forwarder::new(sink, "proj", dir.path()).run(stopped2));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.state.lock().unwrap().requests, requests);
    fill(&mut store, 5000, 10, |_| None);
    wait_for("the new lines", Duration::from_secs(10), || {
        total(&rx.state.lock().unwrap()) == 15030
    })
    .await;
    again.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_gets_every_document_once_through_partial_bulk_failures() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), small_segments()).unwrap();
    // One record Elasticsearch can never take: it is dropped, the rest go on.
    fill(&mut store, 0, 3000, |i| {
        (i == 1234).then(|| "POISON".to_string())
    });
    let plan: Plan = Box::new(|n| match n {
        1 => Fault::Status(503),
        3 => Fault::Status(429),
        8 => Fault::Outage(Duration::from_secs(3)),
        _ => Fault::None,
    });
    let rx = Receiver::start(Sink::Elasticsearch, plan).await;
    let sink = Forward {
        sink: Sink::Elasticsearch,
        url: rx.url(),
        index: Some("logs-shoal-test".into()),
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(Forwarder::new(sink, "proj", dir.path()).run(stopped));
    let total = |s: &Received| s.lines.values().map(Vec::len).sum::<usize>();
    wait_for("all documents", Duration::from_secs(60), || {
        total(&rx.state.lock().unwrap()) >= 9000 - 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let s = rx.state.lock().unwrap();
    assert_eq!(s.breaches, Vec::<String>::new());
    assert_eq!(
        total(&s),
        9000 - 3,
        "every document once, the three poisoned ones dropped"
    );
    assert_eq!(s.ids.len(), 9000 - 3);
    for lines in s.lines.values() {
        let mut nums: Vec<usize> = lines
            .iter()
            .map(|(_, l)| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        let len = nums.len();
        nums.sort_unstable();
        nums.dedup();
        assert_eq!(nums.len(), len, "a document twice");
        assert_eq!(len, 2999);
    }
}

#[test]
fn the_bodies_follow_the_apis() {
    let entry = |stream, ts, text: &str| shoal_logs::Entry {
        key: Arc::new(key("web", 2, stream)),
        ts,
        text: text.into(),
    };
    let entries = [
        entry(Stream::Stdout, 1_796_000_000_000_000_002, "b"),
        entry(Stream::Stdout, 1_796_000_000_000_000_001, "a \"quoted\""),
        entry(Stream::Stderr, 1_796_000_000_000_000_003, "c"),
    ];
    let loki: Value =
        serde_json::from_slice(&shoal_engine::forward::loki_body("p", &entries)).unwrap();
    assert_eq!(
        loki,
        json!({"streams": [
            {"stream": {"project": "p", "service": "web", "replica": "2", "stream": "stdout"},
             "values": [["1796000000000000001", "a \"quoted\""], ["1796000000000000002", "b"]]},
            {"stream": {"project": "p", "service": "web", "replica": "2", "stream": "stderr"},
             "values": [["1796000000000000003", "c"]]},
        ]})
    );
    let bulk =
        String::from_utf8(shoal_engine::forward::bulk_body("p", "logs-x", &entries)).unwrap();
    assert!(bulk.ends_with('\n'));
    let lines: Vec<Value> = bulk
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["create"]["_index"], "logs-x");
    assert_eq!(lines[1]["@timestamp"], "2026-11-30T00:53:20.000000002Z");
    assert_eq!(lines[1]["message"], "b");
    assert_eq!(lines[1]["replica"], 2);
    // The same record gets the same `_id` (a retry is a 409, not a second copy).
    let again =
        String::from_utf8(shoal_engine::forward::bulk_body("p", "logs-x", &entries)).unwrap();
    assert_eq!(bulk, again);
    assert_ne!(lines[0]["create"]["_id"], lines[2]["create"]["_id"]);
}
