//! Forwarding: the log store's records sent on to Loki or Elasticsearch/OpenSearch,
//! as `x-shoal.logs.forward` names them.
//!
//! The store is the buffer. Each receiver has a cursor in the store, kept on disk
//! (`forward-<type>-<hash of url>.json` in the store's directory) and moved only
//! when the receiver took a batch, so one that is down for a while, or a control
//! plane that restarts, loses nothing: sending resumes where the cursor stands.
//! A batch is about [`BATCH_BYTES`] of records (memory stays bounded however far
//! behind a receiver is), gzip-compressed, and retried with exponential backoff
//! (0.5 s doubling to 30 s) on a refused connection, 429 and 5xx. A batch refused
//! as malformed (another 4xx) can never succeed: it is dropped with a warning, as a
//! Loki out-of-order or too-old refusal is.
//!
//! - Loki: `POST /loki/api/v1/push`, JSON (`{"streams": [{"stream": {labels},
//!   "values": [["<ns>", "line"]]}]}`), labels `project`, `service`, `replica`,
//!   `stream`; the values of a stream in time order, timestamps as strings of
//!   nanoseconds. Success is 204 (any 2xx).
//! - Elasticsearch / OpenSearch: `POST /_bulk`, NDJSON, each record a `create`
//!   action (so data streams take it) and a document with `@timestamp` (RFC 3339 to
//!   the nanosecond), `message`, `project`, `service`, `replica`, `container`,
//!   `stream`; the body ends with a newline. The `_id` is derived from the record,
//!   so a batch sent twice stores once (the second `create` is a 409, counted as
//!   done). Items a 200 response refuses with 429 or 5xx are sent again alone; those
//!   refused otherwise are dropped with the first reason logged.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use shoal_logs::{Cursor, Entry, Tail};
use shoal_spec::{Forward, Sink, Words};
use tokio::sync::watch;

/// Records read and sent at a time, in bytes of text (about).
pub const BATCH_BYTES: usize = 512 << 10;
/// How often a caught-up forwarder looks for new records.
const IDLE: Duration = Duration::from_millis(500);
/// The first wait after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A request that takes longer failed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One receiver being fed from the store.
pub struct Forwarder {
    sink: Forward,
    project: String,
    dir: PathBuf,
}

/// Why a send did not go through.
#[derive(Debug)]
enum Failure {
    /// Try again later: no connection, a timeout, 429, 5xx.
    Retry(String),
    /// Never going through: dropped.
    Refused(String),
}

impl Forwarder {
    /// A forwarder of the store in `dir` to `sink`, for `project`.
    pub fn new(sink: Forward, project: &str, dir: &Path) -> Forwarder {
        Forwarder {
            sink,
            project: project.to_string(),
            dir: dir.to_path_buf(),
        }
    }

    /// Where its cursor is kept.
    pub fn cursor_path(&self) -> PathBuf {
        let mut h = std::hash::DefaultHasher::new();
        self.sink.url.hash(&mut h);
        self.sink.index.hash(&mut h);
        self.dir.join(format!(
            "forward-{}-{:016x}.json",
            self.sink.sink.as_str(),
            h.finish()
        ))
    }

    /// Sends what the store holds past the cursor, and what it gets from then on,
    /// until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let path = self.cursor_path();
        let cursor = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Cursor>(&b).ok())
            .unwrap_or_default();
        let mut tail = Tail::new(&self.dir, cursor);
        let mut conn = Conn::new(&self.sink.url);
        loop {
            if *stop.borrow() {
                return;
            }
            let batch = match tail.next(BATCH_BYTES) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the log store to forward it");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let mut pending = batch;
            let mut backoff = FIRST_BACKOFF;
            while !pending.is_empty() {
                match self.send(&mut conn, &pending).await {
                    Ok(left) => {
                        pending = left;
                        backoff = FIRST_BACKOFF;
                    }
                    Err(Failure::Refused(why)) => {
                        tracing::warn!(
                            receiver = %self.sink.url,
                            lines = pending.len(),
                            "receiver refused a batch, dropped: {why}"
                        );
                        pending.clear();
                    }
                    Err(Failure::Retry(why)) => {
                        tracing::debug!(receiver = %self.sink.url, "retrying in {backoff:?}: {why}");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => if *stop.borrow() { return },
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            if let Err(e) = save(&path, tail.cursor()) {
                tracing::warn!(error = %e, "cannot keep the forwarding position");
            }
        }
    }

    /// Sends `entries`; what is left to send again (items a bulk response refused
    /// for now).
    async fn send(&self, conn: &mut Conn, entries: &[Entry]) -> Result<Vec<Entry>, Failure> {
        match self.sink.sink {
            Sink::Loki => {
                let body = loki_body(&self.project, entries);
                let (status, text) = conn
                    .post("/loki/api/v1/push", "application/json", &body)
                    .await?;
                judge(status, &text)?;
                Ok(Vec::new())
            }
            Sink::Elasticsearch => {
                let index = self
                    .sink
                    .index
                    .clone()
                    .unwrap_or_else(|| format!("logs-shoal-{}", self.project));
                let body = bulk_body(&self.project, &index, entries);
                let (status, text) = conn.post("/_bulk", "application/x-ndjson", &body).await?;
                judge(status, &text)?;
                bulk_left(entries, &text)
            }
        }
    }
}

/// A response's status as a [`Failure`].
fn judge(status: StatusCode, text: &str) -> Result<(), Failure> {
    let said = || format!("{status}: {}", text.chars().take(200).collect::<String>());
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(Failure::Retry(said()))
    } else {
        Err(Failure::Refused(said()))
    }
}

fn save(path: &Path, cursor: Cursor) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&cursor)?)?;
    std::fs::rename(&tmp, path)
}

/// The Loki push body: a stream per label set, its values in time order.
pub fn loki_body(project: &str, entries: &[Entry]) -> Vec<u8> {
    let mut streams: Vec<(&shoal_logs::StreamKey, Vec<&Entry>)> = Vec::new();
    for e in entries {
        let same = |k: &shoal_logs::StreamKey| {
            k.service == e.key.service && k.replica == e.key.replica && k.stream == e.key.stream
        };
        match streams.iter_mut().find(|(k, _)| same(k)) {
            Some((_, v)) => v.push(e),
            None => streams.push((&e.key, vec![e])),
        }
    }
    let streams: Vec<Value> = streams
        .into_iter()
        .map(|(k, mut v)| {
            // Generations of a replica collected side by side come in arrival order.
            v.sort_by_key(|e| e.ts);
            json!({
                "stream": {
                    "project": project,
                    "service": k.service,
                    "replica": k.replica.to_string(),
                    "stream": k.stream.as_str(),
                },
                "values": v.iter().map(|e| json!([e.ts.to_string(), e.text])).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "streams": streams })).expect("JSON of strings")
}

/// A record's `_id`: the same record always gets the same one.
fn doc_id(e: &Entry) -> String {
    let mut h = std::hash::DefaultHasher::new();
    (&e.key.container, e.key.stream.as_str(), &e.text).hash(&mut h);
    format!("{:x}-{:016x}", e.ts, h.finish())
}

/// The `_bulk` body: a `create` and a document per record, newline-terminated.
pub fn bulk_body(project: &str, index: &str, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 256);
    for e in entries {
        let action = json!({ "create": { "_index": index, "_id": doc_id(e) } });
        let doc = json!({
            "@timestamp": shoal_logs::format_rfc3339(e.ts),
            "message": e.text,
            "project": project,
            "service": e.key.service,
            "replica": e.key.replica,
            "container": e.key.container,
            "stream": e.key.stream.as_str(),
        });
        serde_json::to_writer(&mut out, &action).expect("JSON");
        out.push(b'\n');
        serde_json::to_writer(&mut out, &doc).expect("JSON");
        out.push(b'\n');
    }
    out
}

/// The entries a `_bulk` response asks to send again (429, 5xx); the others are
/// stored, already there (409), or refused for good (logged).
fn bulk_left(entries: &[Entry], text: &str) -> Result<Vec<Entry>, Failure> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Failure::Retry(format!("a _bulk answer that is not JSON: {e}")))?;
    if v["errors"] != Value::Bool(true) {
        return Ok(Vec::new());
    }
    let items = v["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    if items.len() != entries.len() {
        return Err(Failure::Retry(format!(
            "a _bulk answer with {} items for {} records",
            items.len(),
            entries.len()
        )));
    }
    let mut left = Vec::new();
    let mut refused = 0;
    let mut first_reason = None;
    for (e, item) in entries.iter().zip(items) {
        let result = item
            .as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap_or(Value::Null);
        let status = result["status"].as_u64().unwrap_or(0);
        match status {
            200..=299 | 409 => {}
            429 | 500..=599 => left.push(e.clone()),
            _ => {
                refused += 1;
                first_reason.get_or_insert_with(|| result["error"].to_string());
            }
        }
    }
    if refused > 0 {
        tracing::warn!(
            refused,
            "Elasticsearch refused records, dropped: {}",
            first_reason.unwrap_or_default()
        );
    }
    Ok(left)
}

/// One kept-alive HTTP/1.1 connection to a receiver, made again when it breaks.
struct Conn {
    /// `host:port`.
    authority: String,
    /// The URL's path, before the API's.
    prefix: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(url: &str) -> Conn {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Conn {
            authority,
            prefix: prefix.to_string(),
            sender: None,
        }
    }

    async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(StatusCode, String), Failure> {
        let gz = gzip(body);
        let result = tokio::time::timeout(TIMEOUT, self.exchange(path, content_type, gz)).await;
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(Failure::Retry(e))
            }
            Err(_) => {
                self.sender = None;
                Err(Failure::Retry(format!("no answer in {TIMEOUT:?}")))
            }
        }
    }

    async fn exchange(
        &mut self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, String), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await.map_err(|e| e.to_string())?;
        let req = Request::post(format!("{}{path}", self.prefix))
            .header("host", &self.authority)
            .header("content-type", content_type)
            .header("content-encoding", "gzip")
            .header("user-agent", concat!("shoal/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body).expect("writing to memory");
    enc.finish().expect("writing to memory")
}
