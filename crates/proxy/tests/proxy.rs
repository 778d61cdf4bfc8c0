//! The data path on loopback, against small in-process replicas: spreading, retries,
//! ejection, timeouts, forwarding headers, smuggling, HTTP/2, upgrades and TCP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use shoal_proxy::{Backends, Protocol, Route, Strategy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

mod support;
use support::*;

#[tokio::test]
async fn round_robin_shares_evenly() {
    let (a, b, c) = (
        replica("a", Behaviour::Name).await,
        replica("b", Behaviour::Name).await,
        replica("c", Behaviour::Name).await,
    );
    let mut cfg = config();
    cfg.strategy = Strategy::RoundRobin;
    let f = front(&[&a, &b, &c], cfg).await;
    let mut client = Client::connect(f.addr).await;
    for _ in 0..3000 {
        assert_eq!(client.get("/").await.0, 200);
    }
    for r in [&a, &b, &c] {
        let n = r.hits.load(Ordering::SeqCst);
        assert!((900..=1100).contains(&n), "{n}");
    }
}

#[tokio::test]
async fn least_request_avoids_a_slow_replica() {
    let (fast1, fast2, slow) = (
        replica("f1", Behaviour::Name).await,
        replica("f2", Behaviour::Name).await,
        replica("s", Behaviour::Slow(50)).await,
    );
    let f = front(&[&fast1, &fast2, &slow], config()).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let addr = f.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for _ in 0..100 {
                assert_eq!(c.get("/").await.0, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let slow_hits = slow.hits.load(Ordering::SeqCst);
    let fast_hits = fast1.hits.load(Ordering::SeqCst) + fast2.hits.load(Ordering::SeqCst);
    assert!(
        slow_hits * 10 < fast_hits,
        "slow {slow_hits}, fast {fast_hits}"
    );
}

#[tokio::test]
async fn arrivals_are_counted_before_the_answer() {
    // The autoscaler's rps is the offered load: a request a slow replica still holds
    // has arrived, though it is not answered yet.
    let slow = replica("s", Behaviour::Slow(300)).await;
    let f = front(&[&slow], config()).await;
    let addr = f.addr;
    let pending = tokio::spawn(async move { Client::connect(addr).await.get("/").await.0 });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let during = f.route.stats.snapshot();
    assert_eq!((during.arrivals, during.requests), (1, 0));
    assert_eq!(pending.await.unwrap(), 200);
    let after = f.route.stats.snapshot();
    assert_eq!((after.arrivals, after.requests), (1, 1));
}

#[tokio::test]
async fn answers_bytes_connections_and_failures_are_counted() {
    let good = replica("good", Behaviour::Name).await;
    let busy = replica("busy", Behaviour::Unavailable).await;
    let dead = dead_replica().await;
    let mut cfg = config();
    cfg.strategy = Strategy::RoundRobin;
    cfg.retries = 0;
    let f = front(&[&good, &busy, &dead], cfg).await;
    let mut client = Client::connect(f.addr).await;
    let mut seen = [0u64; 5];
    for _ in 0..30 {
        let (status, _, _) = client.get("/").await;
        seen[usize::from(status.as_u16() / 100) - 1] += 1;
    }
    let during = f.route.stats.snapshot();
    assert_eq!(
        during.classes, seen,
        "answers by class as the client saw them"
    );
    assert!(seen[1] > 0 && seen[4] > 0, "{seen:?}");
    assert_eq!((during.connections, during.open), (1, 1));
    assert!(
        during.bytes_in > 30 * 20 && during.bytes_out > 30 * 20,
        "{during:?}"
    );
    let eps = f.route.backends.endpoints();
    let of = |addr| {
        eps.iter()
            .find(|e| e.addr == addr)
            .unwrap()
            .stats
            .snapshot()
    };
    let (good_s, busy_s, dead_s) = (of(good.addr), of(busy.addr), of(dead.addr));
    assert!(dead_s.connect_failures >= 1, "{dead_s:?}");
    assert!(busy_s.ejections >= 1 && dead_s.ejections >= 1);
    assert_eq!(good_s.connect_failures, 0);
    assert_eq!(
        (good_s.connections, good_s.open),
        (1, 1),
        "one kept connection"
    );
    drop(client);
    for _ in 0..100 {
        if f.route.stats.snapshot().open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        f.route.stats.snapshot().open,
        0,
        "the client's connection closed"
    );
}

#[tokio::test]
async fn forwarding_headers_in_hop_by_hop_out() {
    let r = replica("h", Behaviour::Mirror).await;
    let f = front(&[&r], config()).await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: keep-alive, x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        text.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{text}"
    );
    assert!(text.contains("x-forwarded-proto: http\n"), "{text}");
    assert!(text.contains("x-forwarded-host: shop.test\n"), "{text}");
    assert!(
        text.contains("forwarded: for=127.0.0.1;proto=http;host=\"shop.test\"\n"),
        "{text}"
    );
    assert!(
        !text.contains("x-secret"),
        "named in Connection: hop-by-hop: {text}"
    );
    assert!(!text.contains("keep-alive: timeout"), "{text}");
}

#[tokio::test]
async fn smuggling_attempts_get_400_and_never_reach_a_replica() {
    let r = replica("r", Behaviour::Name).await;
    let f = front(&[&r], config()).await;
    let cases: [&[u8]; 6] = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ];
    all_get_400(f.addr, &cases).await;
    assert_eq!(r.hits.load(Ordering::SeqCst), 0);
    // A clean request still goes through.
    let out = raw(f.addr, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(r.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn dead_and_resetting_replicas_are_retried() {
    let good = replica("good", Behaviour::Name).await;
    let reset = replica("reset", Behaviour::Reset).await;
    let dead = dead_replica().await;
    let mut cfg = config();
    cfg.strategy = Strategy::RoundRobin;
    let f = front(&[&good, &reset, &dead], cfg).await;
    let mut client = Client::connect(f.addr).await;
    for _ in 0..60 {
        let (status, _, body) = client.get("/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "good"));
    }
    // Both bad replicas were ejected after their first failures.
    assert!(
        reset.hits.load(Ordering::SeqCst) <= 10,
        "{}",
        reset.hits.load(Ordering::SeqCst)
    );
    assert!(f.route.stats.snapshot().retries > 0);
}

#[tokio::test]
async fn a_body_cut_short_is_retried_before_anything_reaches_the_client() {
    // A small body is read whole before the head is passed on, so a replica that dies
    // mid-body has sent the client nothing: a GET goes to another replica.
    let good = replica("good", Behaviour::Name).await;
    let cut = replica("cut", Behaviour::Truncated).await;
    let mut cfg = config();
    cfg.strategy = Strategy::RoundRobin;
    let f = front(&[&cut, &good], cfg).await;
    let mut client = Client::connect(f.addr).await;
    for _ in 0..4 {
        let (status, _, body) = client.get("/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "good"));
    }
    assert!(cut.hits.load(Ordering::SeqCst) >= 1);
    assert!(f.route.stats.snapshot().retries >= 1);
    // A POST is not resent: with only that replica it fails whole, as a 502, never
    // as a head followed by a cut body.
    let alone = front(&[&cut], config()).await;
    let reply = raw(
        alone.addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
    assert!(!reply.contains("half."), "{reply}");
}

#[tokio::test]
async fn head_keeps_the_length_and_sends_no_body() {
    let good = replica("good", Behaviour::Name).await;
    let f = front(&[&good], config()).await;
    let reply = raw(
        f.addr,
        b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("content-length: 4\r\n"), "{reply}");
    assert!(
        reply.ends_with("\r\n\r\n"),
        "a body after the head: {reply:?}"
    );
}

#[tokio::test]
async fn unavailable_replica_is_ejected() {
    let good = replica("good", Behaviour::Name).await;
    let bad = replica("bad", Behaviour::Unavailable).await;
    let mut cfg = config();
    cfg.strategy = Strategy::RoundRobin;
    let f = front(&[&good, &bad], cfg).await;
    let mut client = Client::connect(f.addr).await;
    for _ in 0..200 {
        assert_eq!(client.get("/").await.0, 200);
    }
    // Five failures eject it; after the first second one probe may go.
    assert!(
        bad.hits.load(Ordering::SeqCst) <= 6,
        "{}",
        bad.hits.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn no_replica_is_503_and_slow_replica_is_504() {
    let f = front(&[], config()).await;
    let out = raw(
        f.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(out.contains("shoal: web: no replica is ready"), "{out}");

    let slow = replica("slow", Behaviour::Slow(2000)).await;
    let mut cfg = config();
    cfg.timeout = Duration::from_millis(200);
    let f = front(&[&slow], cfg).await;
    let out = raw(
        f.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 504"), "{out}");
}

#[tokio::test]
async fn http2_prior_knowledge() {
    let r = replica("r", Behaviour::Name).await;
    let f = front(&[&r], config()).await;
    let s = TcpStream::connect(f.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..10 {
        let req = Request::get("http://example.test/")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"r");
    }
}

#[tokio::test]
async fn upgrade_is_tunnelled() {
    let r = replica("r", Behaviour::Name).await;
    let f = front(&[&r], config()).await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    s.write_all(b"ping over the tunnel").await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"ping over the tunnel");
}

#[tokio::test]
async fn tcp_mode_and_non_http_bytes() {
    // A raw echo server as the replica.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 256];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let echo = Replica {
        addr,
        hits: Arc::new(AtomicUsize::new(0)),
    };
    for protocol in [Protocol::Tcp, Protocol::Auto] {
        let mut cfg = config();
        cfg.protocol = protocol;
        let f = front(&[&echo], cfg).await;
        let mut s = TcpStream::connect(f.addr).await.unwrap();
        s.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await.unwrap();
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, [0, 0, 0, 8, 4, 210, 22, 47]);
    }
}

#[tokio::test]
async fn slow_headers_idle_connections_and_huge_heads_are_cut() {
    let r = replica("r", Behaviour::Name).await;
    let mut cfg = config();
    cfg.header_timeout = Duration::from_millis(300);
    cfg.max_header_bytes = 8 * 1024;
    let f = front(&[&r], cfg).await;

    // Slowloris: half a head, then nothing.
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    assert!(
        closed.is_ok(),
        "a client that never finishes its head is cut off"
    );

    // Idle after a request: closed too.
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "an idle keep-alive connection is closed");

    // A head over the limit: 431, and the replica never sees it.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "x".repeat(16 * 1024)
    );
    let out = raw(f.addr, big.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    assert_eq!(r.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_replica_that_never_answers_is_ejected_by_timeouts() {
    let good = replica("good", Behaviour::Name).await;
    // Accepts, reads, and says nothing.
    let mute = listen(|mut s, seen| async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            seen.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    let mut cfg = config();
    cfg.strategy = Strategy::RoundRobin;
    cfg.timeout = Duration::from_millis(100);
    let f = front(&[&good, &mute], cfg).await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let out = raw(
            f.addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        statuses.push(out.get(9..12).unwrap_or("---").to_string());
    }
    let timeouts = statuses.iter().filter(|s| *s == "504").count();
    assert!((1..=5).contains(&timeouts), "{statuses:?}");
    // Once ejected (5 failures in a row), everything goes to the good replica.
    assert!(statuses[20..].iter().all(|s| s == "200"), "{statuses:?}");
    assert!(mute.hits.load(Ordering::SeqCst) <= 5);
}

#[tokio::test]
async fn clients_that_leave_mid_request_do_not_get_replicas_ejected() {
    let (a, b) = (
        replica("a", Behaviour::Slow(200)).await,
        replica("b", Behaviour::Slow(200)).await,
    );
    let f = front(&[&a, &b], config()).await;
    // Twenty clients send a request and leave before the answer.
    for _ in 0..20 {
        let mut s = TcpStream::connect(f.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = shoal_proxy::now_ms();
    assert!(
        f.route.backends.endpoints().iter().all(|e| !e.ejected(now)),
        "a client leaving is not the replica's failure"
    );
    let mut c = Client::connect(f.addr).await;
    let t = std::time::Instant::now();
    assert_eq!(c.get("/").await.0, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

fn framings(path: &str, _: usize) -> (Vec<u8>, bool) {
    let big_chunks: String = (0..100)
        .map(|i| {
            format!(
                "3e8\r\n{}\r\n",
                char::from(b'a' + (i % 26) as u8).to_string().repeat(1000)
            )
        })
        .collect();
    let text = match path {
        "/chunked" => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n".to_string(),
        "/chunked-big" => format!("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n{big_chunks}0\r\n\r\n"),
        "/close" => return (b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec(), true),
        "/http10" => return (b"HTTP/1.0 200 OK\r\ncontent-length: 6\r\n\r\nold ok".to_vec(), true),
        "/continue" => "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string(),
        "/big" => format!("HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n{}", "x".repeat(200_000)),
        "/both" => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".to_string(),
        "/lengths" => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc".to_string(),
        "/bad-chunk" => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n".to_string(),
        "/switch" => "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n".to_string(),
        "/garbage" => return (b"HTTP/1.1 2OO OK\r\n\r\n".to_vec(), true),
        _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_string(),
    };
    (text.into_bytes(), false)
}

#[tokio::test]
async fn every_response_framing_reaches_the_client_as_sent() {
    let r = scripted(framings).await;
    let f = front(&[&r], config()).await;
    let mut client = Client::connect(f.addr).await;
    let (status, _, body) = client.get("/chunked").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello world"));
    let (status, _, body) = client.get("/continue").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (_, _, body) = client.get("/big").await;
    assert_eq!(body, "x".repeat(200_000));
    let (_, _, body) = client.get("/chunked-big").await;
    let expected: String = (0..100)
        .map(|i| char::from(b'a' + (i % 26) as u8).to_string().repeat(1000))
        .collect();
    assert_eq!(body, expected);
    let (_, _, body) = client.get("/close").await;
    assert_eq!(body, "until the end");
    let (_, _, body) = client.get("/http10").await;
    assert_eq!(body, "old ok");
    // The kept connection served several exchanges; the ones the replica closed were
    // not reused: the same client connection went on working.
    let (status, _, body) = client.get("/chunked").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello world"));
    // Framing shoal would have to guess is refused whole, before any of it is passed.
    for path in ["/both", "/lengths", "/garbage", "/switch"] {
        let (status, _, body) = client.get(path).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {body}");
    }
    // A bad chunk size comes after the head: the client connection is cut before the
    // body's last chunk (here before anything left shoal's buffer), so the client
    // sees the response failed; the bad bytes are not passed.
    let out = raw(f.addr, b"GET /bad-chunk HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(
        !out.contains("zz") && !out.ends_with("0\r\n\r\n"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_replica_closing_kept_connections_loses_no_request() {
    // The replica closes every connection right after its response, without saying
    // so: shoal's kept connection is dead by the next request.
    fn once(_: &str, _: usize) -> (Vec<u8>, bool) {
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            true,
        )
    }
    let r = scripted(once).await;
    let f = front(&[&r], config()).await;
    let mut client = Client::connect(f.addr).await;
    // Back to back, a GET may meet the close in flight: it is sent again.
    for _ in 0..100 {
        let (status, _, body) = client.get("/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
    // A POST is never sent twice: the closed connection is seen before it is used.
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("ok"),
            "{text}"
        );
    }
    assert!(r.hits.load(Ordering::SeqCst) >= 120);

    // A replica that closes a kept connection as the next request arrives (its idle
    // timeout and the request crossed): the GET is sent again on a fresh connection,
    // which is neither a retry from the budget nor a failure of the replica's.
    fn crossed(_: &str, n: usize) -> (Vec<u8>, bool) {
        match n {
            0 => (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                false,
            ),
            _ => (Vec::new(), true),
        }
    }
    let r = scripted(crossed).await;
    let f = front(&[&r], config()).await;
    let mut client = Client::connect(f.addr).await;
    for _ in 0..50 {
        let (status, _, body) = client.get("/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
    assert_eq!(f.route.stats.snapshot().retries, 0);
    assert!(r.hits.load(Ordering::SeqCst) >= 99);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let r = replica("echo", Behaviour::Echo).await;
    let f = front(&[&r], config()).await;
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    // With a length, and chunked (no length known to the replica either).
    let mut by_length = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    by_length.extend_from_slice(&body);
    let mut chunked =
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(70_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for request in [by_length, chunked] {
        let mut s = TcpStream::connect(f.addr).await.unwrap();
        let (mut rd, mut wr) = s.split();
        let (_, reply) = tokio::join!(wr.write_all(&request), async {
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let n = rd.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                out.extend_from_slice(&buf[..n]);
                if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                    if out.len() >= end + 4 + body.len() {
                        return (end, out);
                    }
                }
            }
        });
        let (end, out) = reply;
        let head = String::from_utf8_lossy(&out[..end]);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("content-length: 1000000"), "{head}");
        assert!(out[end + 4..] == body[..], "the body came back changed");
    }
}

#[tokio::test]
async fn a_replica_refusing_an_upload_early_is_heard() {
    // Answers 413 as soon as it has the head of an upload, and closes with the body
    // unread (so the kernel resets the connection under the sender).
    let r = listen(|mut s, hits| async move {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let refusal = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big.";
        let _ = s.write_all(refusal).await;
    })
    .await;
    let f = front(&[&r], config()).await;
    let body = vec![b'x'; 4_000_000];
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let limit = Duration::from_secs(5);
    let (_, reply) = tokio::join!(
        tokio::time::timeout(limit, wr.write_all(&request)),
        tokio::time::timeout(limit, async {
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while !out.ends_with(b"too big.") {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    );
    let reply = reply.expect("an answer within 5 s");
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.ends_with("too big."), "{reply}");
    assert_eq!(r.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_data_path_workers_share_a_port_that_no_one_else_can_take() {
    let (a, b) = (
        replica("a", Behaviour::Name).await,
        replica("b", Behaviour::Name).await,
    );
    let backends = Backends::new();
    backends.replace(vec![a.addr, b.addr]);
    let route = Arc::new(Route::new(backends, config()));
    let (_stop, rx) = watch::channel(false);
    let path = shoal_proxy::DataPath::start(2).unwrap();
    let addr = path
        .serve("127.0.0.1:0".parse().unwrap(), route.clone(), rx.clone())
        .unwrap();
    // Fresh connections: the kernel picks one of the two workers' sockets for each.
    for _ in 0..200 {
        let mut client = Client::connect(addr).await;
        assert_eq!(client.get("/").await.0, 200);
        assert_eq!(client.get("/").await.0, 200);
    }
    assert_eq!(
        a.hits.load(Ordering::SeqCst) + b.hits.load(Ordering::SeqCst),
        400
    );
    // Another balancer (or anything else) is told the port is taken.
    let other = shoal_proxy::DataPath::start(1).unwrap();
    let taken = other.serve(addr, route.clone(), rx.clone()).unwrap_err();
    assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
    assert!(std::net::TcpListener::bind(addr).is_err());
    // Stopped, it lets the port go.
    drop(path);
    std::net::TcpListener::bind(addr).expect("the port is free again");
}
