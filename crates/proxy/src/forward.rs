//! A request forwarded: a replica chosen by the port's strategy, the exchange over a
//! pooled connection, and another replica tried when that is safe (the request never
//! reached the first, or it may be repeated and its body is in memory) and the attempt
//! limit and the retry budget allow. Every outcome is charged to the replica (its
//! latency, its failures and ejection) and counted.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, Response, StatusCode, Version};

use crate::balance::{hash_key, pick};
use crate::body::ProxyBody;
use crate::clock::now_ms;
use crate::config::{HashOn, Strategy};
use crate::endpoint::{Endpoint, InFlight};
use crate::error::ProxyError;
use crate::exchange::{self, Failure};
use crate::http::REPLAY_LIMIT;
use crate::rewrite::{rewrite_request, strip_hop_by_hop, Peer};
use crate::route::Route;
use crate::upstream::{self, ConnectError, Outgoing};

pub async fn forward(
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
        return crate::tunnel::tunnel(parts, body, client, key, route).await;
    }

    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    // The head is encoded once; a copy of the body is kept for resending after a
    // replica failed mid-exchange. Only an idempotent request with a body in memory
    // may be resent then.
    let outgoing = Outgoing::new(&parts, body.length());
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
                .unwrap_or_else(|| ProxyError::replica("the request could not be resent")));
        };
        let Some(ep) = choose(route, key, &mut tried).await else {
            return Err(last_error.unwrap_or_else(ProxyError::no_replica));
        };
        let conn = match ep.pool.take() {
            Some(c) => Ok(c),
            None => upstream::connect(ep.addr, &ep.stats, route.config.connect_timeout).await,
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
                let outcome = match exchange::send(&mut conn, &outgoing, body).await {
                    Ok(()) => match conn.read_head(&parts.method).await {
                        Ok(head) if head.parts.status == StatusCode::SWITCHING_PROTOCOLS => {
                            Err(Broken::Failed(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "101 without an upgrade",
                            )))
                        }
                        Ok(head) => {
                            let rtt = sent.elapsed();
                            exchange::respond(conn, head, guard, REPLAY_LIMIT as u64)
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
                    _ => return Err(ProxyError::replica(format!("{}: {e}", ep.addr))),
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
                last_error = Some(ProxyError::replica(format!("{}: {e}", ep.addr)));
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
pub async fn choose(
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
