//! The client-facing HTTP side: HTTP/1 connections served by hyper behind the
//! framing check, HTTP/2 (prior knowledge) ones by hyper's HTTP/2 server; each request
//! forwarded, counted, and its failure turned into shoal's own short answer.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::body::ProxyBody;
use crate::client::Client;
use crate::error::{Origin, ProxyError};
use crate::forward::forward;
use crate::framing::Inspect;
use crate::rewrite::Peer;
use crate::route::Route;

/// Request bodies up to this size are read before forwarding, so that they can be
/// replayed on another replica and so that a malformed one never reaches a replica;
/// response bodies of a known length up to it are read before the head is passed on.
pub const REPLAY_LIMIT: usize = 64 * 1024;

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
        // Boxed: hyper keeps room for the service's future for the connection's whole
        // life, so an idle keep-alive connection would hold the ~4 KiB a request's
        // future takes; boxed, it holds a pointer, and the request pays one allocation.
        Box::pin(async move {
            Ok::<_, Infallible>(handle(req, &peer, &route, poisoned.load(Ordering::Relaxed)).await)
        }) as Pin<Box<dyn Future<Output = Result<_, Infallible>> + Send>>
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
