//! The fixtures of the data-path tests: in-process replicas that answer, fail, stall
//! or frame their answers by hand, a balancer in front of them, and clients.

// Shared by several test crates, each using a part.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use shoal_proxy::{Backends, LbConfig, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What an in-process replica does with a request.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Answers 200 with its name.
    Name,
    /// Answers after a delay.
    Slow(u64),
    /// Answers 503.
    Unavailable,
    /// Reads the request and closes the connection without answering.
    Reset,
    /// Reads the request, sends a head and half the body it announces, and closes.
    Truncated,
    /// Answers with the request's body.
    Echo,
    /// Answers with what reached it: the request line's method, target and version,
    /// a line per header, a blank line, then the body.
    Mirror,
}

pub struct Replica {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

/// A replica on a free loopback port: each connection it accepts is served by
/// `serve`, which is handed the replica's hit counter.
pub async fn listen<F, Fut>(serve: F) -> Replica
where
    F: Fn(TcpStream, Arc<AtomicUsize>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(stream, counter.clone()));
        }
    });
    Replica { addr, hits }
}

pub async fn replica(name: &'static str, behaviour: Behaviour) -> Replica {
    listen(move |stream, counter| async move {
        if let Behaviour::Reset | Behaviour::Truncated = behaviour {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            counter.fetch_add(1, Ordering::SeqCst);
            if let Behaviour::Truncated = behaviour {
                let half = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf.";
                let _ = stream.write_all(half).await;
            }
            return;
        }
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if req.headers().contains_key("upgrade") {
                    return Ok::<_, Infallible>(upgrade_echo(req));
                }
                if let Behaviour::Echo = behaviour {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    return Ok(Response::new(Full::new(body)));
                }
                if let Behaviour::Mirror = behaviour {
                    let mut out = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
                    for (k, v) in req.headers() {
                        out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
                    }
                    out.push('\n');
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    out.push_str(&String::from_utf8_lossy(&body));
                    return Ok(Response::new(Full::new(Bytes::from(out))));
                }
                let (status, body) = match behaviour {
                    Behaviour::Name => (200, name.to_string()),
                    Behaviour::Slow(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        (200, name.to_string())
                    }
                    Behaviour::Unavailable => (503, "busy".to_string()),
                    Behaviour::Reset
                    | Behaviour::Truncated
                    | Behaviour::Echo
                    | Behaviour::Mirror => unreachable!(),
                };
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = StatusCode::from_u16(status).unwrap();
                Ok(r)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades()
            .await;
    })
    .await
}

/// A replica address nothing listens on: every connection is refused.
pub async fn dead_replica() -> Replica {
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    Replica {
        addr,
        hits: Arc::new(AtomicUsize::new(0)),
    }
}

/// Answers an upgrade with 101 and echoes raw bytes.
pub fn upgrade_echo(mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut io = TokioIo::new(up);
        let mut buf = [0u8; 1024];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("upgrade", "echo")
        .header("connection", "upgrade")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub struct Front {
    pub addr: SocketAddr,
    pub route: Arc<Route>,
    _stop: watch::Sender<bool>,
}

pub async fn front(replicas: &[&Replica], config: LbConfig) -> Front {
    let backends = Backends::new();
    backends.replace(replicas.iter().map(|r| r.addr).collect());
    let route = Arc::new(Route::new(backends, config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = watch::channel(false);
    tokio::spawn(shoal_proxy::serve(listener, route.clone(), rx));
    Front {
        addr,
        route,
        _stop: stop,
    }
}

pub fn config() -> LbConfig {
    let mut c = LbConfig::new("web");
    c.wait_for_ready = Duration::from_millis(200);
    c
}

/// One HTTP/1.1 keep-alive client.
pub struct Client(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client(send)
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, HashMap<String, String>, String) {
        self.0.ready().await.unwrap();
        let req = Request::get(path)
            .header("host", "example.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.0.send_request(req).await.unwrap();
        let status = resp.status();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }
}

pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A replica written byte by byte, for framings a well-behaved server library never
/// sends: for each request head (requests carry no body), `answer(path, n)` (`n`: the
/// request's place on its connection, from 0) gives the bytes to send and whether to
/// close the connection after them.
pub async fn scripted(answer: fn(&str, usize) -> (Vec<u8>, bool)) -> Replica {
    listen(move |mut stream, counter| async move {
        let mut buf = Vec::new();
        let mut n = 0;
        loop {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                let mut more = [0u8; 4096];
                match stream.read(&mut more).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&more[..n]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            counter.fetch_add(1, Ordering::SeqCst);
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let (bytes, close) = answer(&path, n);
            n += 1;
            if stream.write_all(&bytes).await.is_err() || close {
                return;
            }
        }
    })
    .await
}

/// Sends each case on a connection of its own and checks that it is answered 400.
pub async fn all_get_400(addr: SocketAddr, cases: &[&[u8]]) {
    for case in cases {
        let out = raw(addr, case).await;
        assert!(
            out.starts_with("HTTP/1.1 400"),
            "{:?} -> {out:?}",
            String::from_utf8_lossy(case)
        );
    }
}
