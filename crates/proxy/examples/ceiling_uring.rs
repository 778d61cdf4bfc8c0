//! Not a proxy to use: `ceiling.rs` again on io_uring (monoio) instead of epoll
//! (tokio), to measure whether submitting the reads and writes of many connections in
//! one kernel entry lifts the floor a data path reaches on this machine. The same
//! work per request: parse the head, add one header, forward it on a pooled upstream
//! connection (round robin), relay the response framed by Content-Length.
//!
//! `ceiling_uring --listen 127.0.0.1:8004 --backend 127.0.0.1:9101 --backend ...`

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Upstreams {
    addrs: Vec<SocketAddr>,
    idle: Vec<RefCell<Vec<TcpStream>>>,
    next: Cell<usize>,
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:8004".parse().unwrap();
    let mut addrs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().expect("a value");
        match a.as_str() {
            "--listen" => listen = v.parse().expect("an address"),
            "--backend" => addrs.push(v.parse().expect("an address")),
            other => panic!("unknown argument {other}"),
        }
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .build()
        .expect("an io_uring runtime");
    rt.block_on(async move {
        let up = Rc::new(Upstreams {
            idle: addrs.iter().map(|_| RefCell::new(Vec::new())).collect(),
            addrs,
            next: Cell::new(0),
        });
        let listener = TcpListener::bind(listen).expect("bind");
        eprintln!("io_uring ceiling proxy on {listen}");
        loop {
            let Ok((s, peer)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            monoio::spawn(connection(s, peer, up.clone()));
        }
    });
}

async fn connection(mut client: TcpStream, peer: SocketAddr, up: Rc<Upstreams>) {
    let mut buf = Vec::with_capacity(8192);
    let mut out = Vec::with_capacity(8192);
    let mut resp = Vec::with_capacity(8192);
    let xff = format!("x-forwarded-for: {}\r\n\r\n", peer.ip());
    loop {
        // The request head.
        let head_len = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => break n,
                Ok(httparse::Status::Partial) => {}
                Err(_) => return,
            }
            let (n, b) = read_more(&mut client, buf).await;
            buf = b;
            if n == 0 {
                return;
            }
        };
        out.clear();
        out.extend_from_slice(&buf[..head_len - 2]);
        out.extend_from_slice(xff.as_bytes());
        buf.drain(..head_len);

        let i = up.next.get() % up.addrs.len();
        up.next.set(i + 1);
        let pooled = up.idle[i].borrow_mut().pop();
        let mut upstream = match pooled {
            Some(s) => s,
            None => match TcpStream::connect_addr(up.addrs[i]).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s
                }
                Err(_) => return,
            },
        };
        let (res, o) = upstream.write_all(out).await;
        out = o;
        if res.is_err() {
            return;
        }
        // The response: head, then Content-Length bytes.
        resp.clear();
        let total = loop {
            let (n, r) = read_more(&mut upstream, resp).await;
            resp = r;
            if n == 0 {
                return;
            }
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(&resp) {
                Ok(httparse::Status::Complete(n)) => {
                    let len = r
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                        .unwrap_or(0usize);
                    break n + len;
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return,
            }
        };
        while resp.len() < total {
            let (n, r) = read_more(&mut upstream, resp).await;
            resp = r;
            if n == 0 {
                return;
            }
        }
        up.idle[i].borrow_mut().push(upstream);
        let (res, r) = client.write_all(resp.slice(..total)).await;
        resp = r.into_inner();
        if res.is_err() {
            return;
        }
    }
}

/// Reads what arrives after what `buf` holds; 0 at the end or on an error.
async fn read_more(s: &mut TcpStream, mut buf: Vec<u8>) -> (usize, Vec<u8>) {
    buf.reserve(4096);
    let len = buf.len();
    let (res, slice) = s.read(buf.slice_mut(len..)).await;
    (res.unwrap_or(0), slice.into_inner())
}
