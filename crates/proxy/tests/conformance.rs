//! The client-facing HTTP/1.1 side against RFC 9110/9112, byte by byte on a raw
//! socket: pipelining, `Expect: 100-continue`, chunked request bodies, persistence
//! (HTTP/1.0, `Connection: close`), `Host`, malformed heads and what reaches the
//! replica. The suite a client side of shoal's own must pass before it replaces
//! hyper's; the smuggling, timeout, upgrade and response-framing cases are in
//! `proxy.rs`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::*;

/// Reads from `s` until `done` holds for what was read, the peer closes, or 3 s pass.
async fn read_until(s: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !done(&String::from_utf8_lossy(&out)) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the peer has closed `s` (within 3 s).
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn mirrored() -> (Replica, Front) {
    let r = replica("r", Behaviour::Mirror).await;
    let f = front(&[&r], config()).await;
    (r, f)
}

fn statuses(text: &str) -> Vec<&str> {
    text.match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (r, f) = mirrored().await;
    let mut s = connect(f.addr).await;
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
          GET /three HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await
    .unwrap();
    let out = read_until(&mut s, |t| t.contains("GET /three")).await;
    assert_eq!(statuses(&out), ["200", "200", "200"], "{out}");
    let one = out.find("GET /one").unwrap();
    let two = out.find("POST /two").unwrap();
    let three = out.find("GET /three").unwrap();
    assert!(one < two && two < three, "answers out of order: {out}");
    assert!(
        out.contains("\r\n\r\nhello") || out.contains("\n\nhello"),
        "{out}"
    );
    assert_eq!(r.hits.load(Ordering::SeqCst), 3);
    // Still open for a fourth.
    s.write_all(b"GET /four HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let out = read_until(&mut s, |t| t.contains("GET /four")).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (r, f) = mirrored().await;
    let mut s = connect(f.addr).await;
    s.write_all(
        b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = read_until(&mut s, |t| t.contains("\r\n\r\n")).await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "the client is told to go on: {interim:?}"
    );
    s.write_all(b"hello").await.unwrap();
    let out = read_until(&mut s, |t| t.ends_with("hello")).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.ends_with("\n\nhello"),
        "the body reached the replica: {out}"
    );
    // The expectation is hop-by-hop here: the proxy met it, the replica is not asked.
    assert!(!out.to_ascii_lowercase().contains("expect: 100"), "{out}");
    assert_eq!(r.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn chunked_request_bodies_reach_the_replica_decoded() {
    let (_r, f) = mirrored().await;
    let out = raw(
        f.addr,
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5;name=value\r\nhello\r\n1;x\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("\n\nhello world"), "{out}");
    // Framed again for the replica, by length: no chunk extensions pass on.
    assert!(!out.contains("name=value"), "{out}");
}

#[tokio::test]
async fn http10_closes_unless_kept_alive_and_close_is_honoured() {
    let (r, f) = mirrored().await;

    // HTTP/1.0 without keep-alive: one answer, then the proxy closes.
    let mut s = connect(f.addr).await;
    s.write_all(b"GET /old HTTP/1.0\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let out = read_until(&mut s, |t| t.contains("GET /old")).await;
    assert!(out.starts_with("HTTP/1."), "{out}");
    assert_eq!(statuses(&out.replace("HTTP/1.0 ", "HTTP/1.1 ")), ["200"]);
    assert!(closed(&mut s).await, "an HTTP/1.0 connection ends: {out}");

    // HTTP/1.0 asking to be kept alive: kept.
    let mut s = connect(f.addr).await;
    s.write_all(b"GET /kept HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let out = read_until(&mut s, |t| t.contains("GET /kept")).await;
    assert!(
        out.to_ascii_lowercase().contains("connection: keep-alive"),
        "{out}"
    );
    s.write_all(b"GET /again HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let out = read_until(&mut s, |t| t.contains("GET /again")).await;
    assert!(out.contains("200"), "{out}");

    // HTTP/1.1 with Connection: close: answered with close, then closed.
    let mut s = connect(f.addr).await;
    s.write_all(b"GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let out = read_until(&mut s, |t| t.contains("GET /bye")).await;
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert!(closed(&mut s).await);
    assert_eq!(r.hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn the_replica_sees_origin_form_and_the_clients_host() {
    let (_r, f) = mirrored().await;
    let out = raw(
        f.addr,
        b"GET /path?q=1 HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.contains("GET /path?q=1 HTTP/1.1\n"), "{out}");
    assert!(out.contains("host: shop.test\n"), "{out}");

    // Absolute form (RFC 9112 §3.2.2): the replica gets origin form and the URI's
    // authority as Host, which replaces the Host line the client sent.
    let out = raw(
        f.addr,
        b"GET http://shop.test/abs?x=2 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("GET /abs?x=2 HTTP/1.1\n"), "{out}");
    assert!(out.contains("host: shop.test\n"), "{out}");
}

#[tokio::test]
async fn heads_a_server_must_refuse_get_400_and_never_reach_a_replica() {
    let (r, f) = mirrored().await;
    let cases: [&[u8]; 8] = [
        // RFC 9112 §3.2: an HTTP/1.1 request without Host, or with two.
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        // §5.1: whitespace between a field name and its colon.
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 0\r\nConnection: close\r\n\r\n",
        // §5.2: obsolete line folding.
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\nConnection: close\r\n\r\n",
        // §3: a request line that is not method SP target SP version.
        b"GET  / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"G\x01T / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        // §6.3: a Content-Length that is not a number.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\nConnection: close\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\nConnection: close\r\n\r\nhello",
    ];
    all_get_400(f.addr, &cases).await;
    assert_eq!(r.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_refused_request_ends_its_connection_and_what_was_pipelined_after_it() {
    let (r, f) = mirrored().await;
    let mut s = connect(f.addr).await;
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
          GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await
    .unwrap();
    let out = read_until(&mut s, |_| false).await;
    assert_eq!(statuses(&out), ["400"], "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert!(!out.contains("/smuggled"), "{out}");
    assert_eq!(r.hits.load(Ordering::SeqCst), 0);
}
