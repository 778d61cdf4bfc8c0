//! The HTTP path: each request is checked, its head rewritten for the replica
//! (forwarding headers in, hop-by-hop headers out), sent to a replica chosen by the
//! port's strategy over a pooled connection, and retried on another replica when that
//! is safe and the budget allows.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::backends::Backends;
use crate::balance::{hash_key, pick};
use crate::body::{InFlight, ProxyBody};
use crate::budget::Budget;
use crate::config::{HashOn, LbConfig, Strategy};
use crate::endpoint::Endpoint;
use crate::error::{Origin, ProxyError};
use crate::framing::Inspect;
use crate::metrics::{Counted, Stats};
use crate::upstream::{self, ConnectError, Failure, Outgoing};

/// A client connection, its bytes counted.
pub type Client = Counted<TcpStream>;

/// Request bodies up to this size are read before forwarding, so that they can be
/// replayed on another replica and so that a malformed one never reaches a replica;
/// response bodies of a known length up to it are read before the head is passed on.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// Everything one published port needs on the request path.
pub struct Route {
    /// The replicas.
    pub backends: Arc<Backends>,
    /// The settings.
    pub config: LbConfig,
    /// The retry budget.
    pub budget: Budget,
    /// Every request through the port, including those no replica took.
    pub stats: Stats,
}

impl Route {
    /// A route over `backends` with `config`.
    pub fn new(backends: Arc<Backends>, config: LbConfig) -> Route {
        let budget = Budget::new(config.retry_ratio, 10.0);
        Route {
            backends,
            config,
            budget,
            stats: Stats::default(),
        }
    }
}

/// The client of a connection, with what its requests' forwarding headers need,
/// computed once per connection.
pub struct Peer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its IP address, as an `X-Forwarded-For` value.
    ip: HeaderValue,
    /// Its IP address as a `Forwarded` node (IPv6 quoted and bracketed).
    node: String,
}

impl Peer {
    /// The client at `addr`.
    pub fn new(addr: SocketAddr) -> Peer {
        let ip = addr.ip().to_string();
        let node = if addr.is_ipv6() {
            format!("\"[{ip}]\"")
        } else {
            ip.clone()
        };
        Peer {
            addr,
            ip: HeaderValue::from_str(&ip).expect("an IP address is a valid header value"),
            node,
        }
    }
}

/// Milliseconds on the proxy's own clock (for ejection deadlines).
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Serves an HTTP/1 client connection.
pub async fn serve_http1(stream: Client, peer: SocketAddr, route: Arc<Route>) {
    let peer = Arc::new(Peer::new(peer));
    let poisoned = Arc::new(AtomicBool::new(false));
    let io = Inspect::new(stream, poisoned.clone());
    let (header_timeout, max_header) = (route.config.header_timeout, route.config.max_header_bytes);
    let svc = hyper::service::service_fn(move |req| {
        let route = route.clone();
        let peer = peer.clone();
        let poisoned = poisoned.clone();
        async move {
            Ok::<_, Infallible>(handle(req, &peer, &route, poisoned.load(Ordering::Relaxed)).await)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(header_timeout))
        .max_header_size(max_header)
        .max_buf_size(max_header.max(REPLAY_LIMIT).max(8192) * 2)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

/// Serves an HTTP/2 (prior knowledge) client connection.
pub async fn serve_http2(stream: Client, peer: SocketAddr, route: Arc<Route>) {
    let peer = Arc::new(Peer::new(peer));
    let svc = hyper::service::service_fn(move |req| {
        let route = route.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handle(req, &peer, &route, false).await) }
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

/// A short plain-text answer from shoal itself.
fn reply(status: StatusCode, text: String, close: bool) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(text + "\n"));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if close {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

fn error_response(e: &ProxyError, service: &str) -> Response<ProxyBody> {
    let status = e.status();
    let close = e.origin == Origin::Client;
    reply(status, format!("shoal: {service}: {e}"), close)
}

/// Handles one request; never fails (errors become responses).
pub async fn handle(
    req: Request<Incoming>,
    peer: &Peer,
    route: &Route,
    poisoned: bool,
) -> Response<ProxyBody> {
    let start = Instant::now();
    route.stats.arrive();
    let result = if poisoned {
        Err(ProxyError::client(
            "ambiguous request framing (Content-Length with Transfer-Encoding)",
        ))
    } else {
        match tokio::time::timeout(route.config.timeout, forward(req, peer, route)).await {
            Ok(r) => r,
            Err(_) => Err(ProxyError::timeout(route.config.timeout)),
        }
    };
    let resp = match result {
        Ok(resp) => {
            route
                .stats
                .record(start.elapsed(), resp.status().is_server_error());
            resp
        }
        Err(e) => {
            route
                .stats
                .record(start.elapsed(), e.origin != Origin::Client);
            error_response(&e, &route.config.service)
        }
    };
    route.stats.answer(resp.status().as_u16());
    resp
}

async fn forward(
    mut req: Request<Incoming>,
    peer: &Peer,
    route: &Route,
) -> Result<Response<ProxyBody>, ProxyError> {
    let deadline = Instant::now() + route.config.timeout;
    route.budget.deposit();
    let upgrade = req.version() == Version::HTTP_11 && req.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    rewrite_request(&mut parts, peer, upgrade)?;
    let key = affinity_key(&route.config.strategy, &parts.headers, peer.addr);
    let body = read_body(body, &parts.headers).await?;

    if let Some(client) = client_upgrade {
        return tunnel(parts, body, client, key, route).await;
    }

    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    // The head is encoded once; a copy of the body is kept for resending after a
    // replica failed mid-exchange. Only an idempotent request with a body in memory
    // may be resent then.
    let outgoing = Outgoing::new(&parts, &body);
    let spare = (idempotent && route.config.retries > 0)
        .then(|| body.replay())
        .flatten();
    let mut request = Some(body);
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut attempts = 0u32;
    // Resends after a closed idle connection: never reached a replica, so not counted
    // as attempts, but bounded.
    let mut stale = 0u32;
    let mut last_error: Option<ProxyError> = None;

    loop {
        let Some(body) = request.take() else {
            return Err(last_error
                .unwrap_or_else(|| ProxyError::replica("the request could not be resent", false)));
        };
        let Some(ep) = choose(route, key, &mut tried).await else {
            return Err(last_error.unwrap_or_else(ProxyError::no_replica));
        };
        let conn = match ep.pool.take() {
            Some(c) => Ok(c),
            None => upstream::connect(&ep, route.config.connect_timeout).await,
        };
        let sent = Instant::now();
        let outcome = match conn {
            Err(e) => Err(Broken::Unreached(ProxyError::connect(ep.addr, e), body)),
            Ok(mut conn) => {
                let guard = InFlight::start(ep.clone());
                // If the request's deadline passes during the exchange, this future is
                // dropped here: the replica that never answered is charged with the
                // failure (and so ejected), without a timer of its own per request.
                let mut charge = Charge {
                    ep: &ep,
                    route,
                    sent,
                    deadline,
                    armed: true,
                };
                let outcome = match conn.send(&outgoing, body).await {
                    Ok(()) => match conn.read_head(&parts.method).await {
                        Ok(head) if head.parts.status == StatusCode::SWITCHING_PROTOCOLS => {
                            Err(Broken::Failed(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "101 without an upgrade",
                            )))
                        }
                        Ok(head) => {
                            let rtt = sent.elapsed();
                            upstream::respond(conn, head, guard, REPLAY_LIMIT as u64)
                                .await
                                .map(|resp| (resp, rtt))
                                .map_err(Broken::Failed)
                        }
                        Err(e) if conn.closed_while_kept() => Err(Broken::Stale(e, None)),
                        Err(e) => Err(Broken::Failed(e)),
                    },
                    Err(Failure::Replica(e)) => Err(Broken::Failed(e)),
                    Err(Failure::Client(e)) => Err(Broken::Client(e)),
                    Err(Failure::Unsent(e, body)) if conn.reused() => {
                        Err(Broken::Stale(e, Some(body)))
                    }
                    // A fresh connection that failed at once: as a refused connect.
                    Err(Failure::Unsent(e, body)) => {
                        ep.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                        Err(Broken::Unreached(
                            ProxyError::connect(ep.addr, ConnectError::Io(e)),
                            body,
                        ))
                    }
                };
                charge.armed = false;
                outcome
            }
        };
        match outcome {
            Ok((mut resp, rtt)) => {
                ep.observe_rtt(rtt, Instant::now());
                let status = resp.status();
                let unavailable = matches!(
                    status,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                );
                ep.record(!unavailable, &route.config.eject, now_ms());
                ep.stats.record(rtt, unavailable);
                if status.is_server_error() && !unavailable {
                    ep.stats
                        .server_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if unavailable {
                    if let Some(next) = resend(&spare, route, &mut attempts) {
                        tried.push(ep.clone());
                        request = Some(next);
                        continue;
                    }
                }
                strip_hop_by_hop(resp.headers_mut(), false);
                return Ok(resp);
            }
            Err(Broken::Unreached(error, body)) => {
                // Never reached the replica: safe to try another, whatever the method.
                ep.record(false, &route.config.eject, now_ms());
                ep.stats.record(Duration::ZERO, true);
                tried.push(ep.clone());
                last_error = Some(error);
                if retry_allowed(route, &mut attempts) {
                    request = Some(body);
                    continue;
                }
                return Err(last_error.expect("set above"));
            }
            Err(Broken::Stale(e, unsent)) => {
                // A kept connection the replica had closed: not its fault, and no
                // outcome for a probe. Its other idle connections are as old: drop
                // them, so the resend opens a fresh one (refused, if the replica is
                // gone, and then another is tried).
                ep.release_probe();
                ep.pool.clear();
                stale += 1;
                match unsent.or_else(|| spare.as_ref().and_then(ProxyBody::replay)) {
                    Some(again) if stale <= 3 => request = Some(again),
                    _ => return Err(ProxyError::replica(format!("{}: {e}", ep.addr), false)),
                }
            }
            Err(Broken::Client(e)) => {
                ep.release_probe();
                return Err(ProxyError::client(format!("malformed request body: {e}")));
            }
            Err(Broken::Failed(e)) => {
                // The replica failed after the request was written: a reset before
                // the response, or a body cut short.
                ep.record(false, &route.config.eject, now_ms());
                ep.stats.record(sent.elapsed(), true);
                tried.push(ep.clone());
                last_error = Some(ProxyError::replica(format!("{}: {e}", ep.addr), idempotent));
                match resend(&spare, route, &mut attempts) {
                    Some(next) => request = Some(next),
                    None => return Err(last_error.expect("set above")),
                }
            }
        }
    }
}

/// How an attempt on one replica went wrong; each kind is retried its own way.
enum Broken {
    /// The request never reached the replica (refused, or a fresh connection that
    /// failed before the head was written): another may take it whatever its method.
    Unreached(ProxyError, ProxyBody),
    /// A kept connection the replica had closed, before the head was written (the
    /// body comes back) or before a byte of the answer.
    Stale(std::io::Error, Option<ProxyBody>),
    /// The client's body failed while it was sent.
    Client(crate::body::BoxError),
    /// The replica failed after the request was written.
    Failed(std::io::Error),
}

/// Charges a replica with a failure when dropped armed: the exchange it guards was
/// cancelled by the request's deadline.
struct Charge<'a> {
    ep: &'a Endpoint,
    route: &'a Route,
    sent: Instant,
    /// The request's deadline: dropped before it, the exchange was abandoned by the
    /// client, which is no fault of the replica's.
    deadline: Instant,
    armed: bool,
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if Instant::now() >= self.deadline {
            self.ep.record(false, &self.route.config.eject, now_ms());
            self.ep.stats.record(self.sent.elapsed(), true);
        } else {
            // Neither success nor failure: if this was the probe of an ejected
            // replica, let another request be the probe.
            self.ep.release_probe();
        }
    }
}

/// Takes a retry from the attempt allowance and the budget.
fn retry_allowed(route: &Route, attempts: &mut u32) -> bool {
    if *attempts >= route.config.retries {
        return false;
    }
    if !route.budget.withdraw() {
        route.stats.budget_refusals.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    *attempts += 1;
    true
}

/// A new copy of the body for another attempt, when one is allowed.
fn resend(spare: &Option<ProxyBody>, route: &Route, attempts: &mut u32) -> Option<ProxyBody> {
    let body = spare.as_ref()?;
    if !retry_allowed(route, attempts) {
        return None;
    }
    route.stats.retries.fetch_add(1, Ordering::Relaxed);
    body.replay()
}

/// A replica for this request; waits briefly when none is ready (one may be starting).
async fn choose(
    route: &Route,
    key: Option<u64>,
    tried: &mut Vec<Arc<Endpoint>>,
) -> Option<Arc<Endpoint>> {
    // Waits for a replica this request has not tried: one that is starting, or one
    // coming back. Replicas it tried become eligible again after a short pause, in
    // case one only failed for a moment; the attempt limit and the budget bound it.
    let start = Instant::now();
    let deadline = start + route.config.wait_for_ready;
    let mut pause = Duration::from_millis(25);
    loop {
        let set = route.backends.endpoints();
        if let Some(ep) = pick(
            &set,
            &route.config.strategy,
            key,
            &route.backends.rr,
            tried,
            now_ms(),
        ) {
            return Some(ep);
        }
        if Instant::now() >= deadline {
            return None;
        }
        if !tried.is_empty() && start.elapsed() >= Duration::from_millis(250) {
            tried.clear();
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The affinity key of a request, for the hash strategy.
fn affinity_key(strategy: &Strategy, headers: &HeaderMap, peer: SocketAddr) -> Option<u64> {
    let Strategy::Hash(on) = strategy else {
        return None;
    };
    match on {
        HashOn::ClientIp => Some(hash_key(peer.ip().to_string().as_bytes())),
        HashOn::Header(name) => headers.get(name.as_str()).map(|v| hash_key(v.as_bytes())),
        HashOn::Cookie(name) => headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| hash_key(v.as_bytes())),
    }
}

/// Reads a small body into memory (replayable, and checked before any replica sees
/// it); a large one is streamed.
async fn read_body(body: Incoming, headers: &HeaderMap) -> Result<ProxyBody, ProxyError> {
    if body.is_end_stream() {
        return Ok(ProxyBody::Empty);
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > REPLAY_LIMIT as u64) {
        return Ok(ProxyBody::Stream(body));
    }
    let mut body = body;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ProxyError::client(format!("malformed request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
        if buf.len() > REPLAY_LIMIT {
            return Ok(ProxyBody::Buffered(Some(buf.freeze()), body));
        }
    }
    Ok(ProxyBody::full(buf.freeze()))
}

/// Hop-by-hop headers: they describe one connection, not the message. A static, not a
/// const: a const array of header names is built and dropped at every use.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup each.
    let any = headers
        .keys()
        .any(|k| HOP_BY_HOP.contains(k) || k == header::UPGRADE);
    if !any {
        if keep_upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        if keep_upgrade && n == header::CONNECTION {
            continue;
        }
        headers.remove(n);
    }
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    } else {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Rewrites the head for the replica: origin-form URI, Host, forwarding headers, no
/// hop-by-hop headers, HTTP/1.1.
fn rewrite_request(parts: &mut Parts, peer: &Peer, upgrade: bool) -> Result<(), ProxyError> {
    if parts.method == Method::CONNECT {
        return Err(ProxyError::client("CONNECT is not proxied to replicas"));
    }
    let host = match parts.headers.get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    let Some(host) = host else {
        return Err(ProxyError::client("the request has no Host"));
    };
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = pq
            .parse()
            .map_err(|_| ProxyError::client("bad request target"))?;
    }
    strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.headers.insert(header::HOST, host.clone());
    let value = |s: String| {
        HeaderValue::from_str(&s).map_err(|_| ProxyError::client("bad forwarding header"))
    };
    let xff = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => value(format!(
            "{prev}, {}",
            peer.node.trim_matches(['"', '[', ']'])
        ))?,
        None => peer.ip.clone(),
    };
    let host_text = host.to_str().unwrap_or_default();
    let forwarded = match parts
        .headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => format!("{prev}, for={};proto=http;host=\"{host_text}\"", peer.node),
        None => format!("for={};proto=http;host=\"{host_text}\"", peer.node),
    };
    parts.headers.insert("x-forwarded-for", xff);
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    parts.headers.insert("x-forwarded-host", host);
    parts.headers.insert(header::FORWARDED, value(forwarded)?);
    parts.version = Version::HTTP_11;
    Ok(())
}

/// An `Upgrade` request (WebSocket): a fresh connection to one replica; on `101` the
/// two connections are joined and bytes flow both ways until either side closes.
async fn tunnel(
    parts: Parts,
    body: ProxyBody,
    client: hyper::upgrade::OnUpgrade,
    key: Option<u64>,
    route: &Route,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Some(ep) = choose(route, key, &mut Vec::new()).await else {
        return Err(ProxyError::no_replica());
    };
    let mut conn = match upstream::connect(&ep, route.config.connect_timeout).await {
        Ok(c) => c,
        Err(e) => {
            ep.record(false, &route.config.eject, now_ms());
            return Err(ProxyError::connect(ep.addr, e));
        }
    };
    let guard = InFlight::start(ep.clone());
    let head = match conn.send(&Outgoing::new(&parts, &body), body).await {
        Ok(()) => conn.read_head(&parts.method).await,
        Err(Failure::Client(e)) => {
            return Err(ProxyError::client(format!("malformed request body: {e}")));
        }
        Err(Failure::Replica(e) | Failure::Unsent(e, _)) => Err(e),
    };
    let head = match head {
        Ok(h) => h,
        Err(e) => {
            ep.record(false, &route.config.eject, now_ms());
            return Err(ProxyError::replica(format!("{}: {e}", ep.addr), false));
        }
    };
    ep.record(true, &route.config.eject, now_ms());
    ep.stats.record(Duration::ZERO, false);
    if head.parts.status != StatusCode::SWITCHING_PROTOCOLS {
        let mut resp = upstream::respond(conn, head, guard, REPLAY_LIMIT as u64)
            .await
            .map_err(|e| ProxyError::replica(format!("{}: {e}", ep.addr), false))?;
        strip_hop_by_hop(resp.headers_mut(), false);
        return Ok(resp);
    }
    let (mut upstream, early, open) = conn.into_upgraded();
    tokio::spawn(async move {
        let _guard = (guard, open);
        let Ok(client) = client.await else { return };
        let mut client = TokioIo::new(client);
        // What the replica sent right after its 101 goes first.
        if !early.is_empty() && client.write_all(&early).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    Ok(Response::from_parts(head.parts, ProxyBody::Empty))
}
