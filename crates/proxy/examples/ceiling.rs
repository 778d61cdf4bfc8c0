//! Not a proxy to use: the least user-space work an HTTP/1.1 keep-alive proxy can do
//! on one core, to bound what any data path could reach on this machine. It forwards
//! bodiless requests over pooled upstream connections, round robin, adding one
//! forwarding header, and relays responses framed by Content-Length. No timeouts,
//! retries, chunked bodies, validation or metrics: what it measures is the floor of
//! user-space work, with the same syscalls per request as a real proxy.
//!
//! `ceiling --listen 127.0.0.1:8003 --backend 127.0.0.1:9101 --backend ...`

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Upstreams {
    addrs: Vec<SocketAddr>,
    idle: Vec<RefCell<Vec<TcpStream>>>,
    next: Cell<usize>,
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:8003".parse().unwrap();
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let up = Rc::new(Upstreams {
            idle: addrs.iter().map(|_| RefCell::new(Vec::new())).collect(),
            addrs,
            next: Cell::new(0),
        });
        let listener = TcpListener::bind(listen).await.expect("bind");
        eprintln!("ceiling proxy on {listen}");
        loop {
            let Ok((s, peer)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::task::spawn_local(connection(s, peer, up.clone()));
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
            if read_more(&mut client, &mut buf).await == 0 {
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
            None => match TcpStream::connect(up.addrs[i]).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s
                }
                Err(_) => return,
            },
        };
        if upstream.write_all(&out).await.is_err() {
            return;
        }
        // The response: head, then Content-Length bytes.
        resp.clear();
        let total = loop {
            if read_more(&mut upstream, &mut resp).await == 0 {
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
            if read_more(&mut upstream, &mut resp).await == 0 {
                return;
            }
        }
        up.idle[i].borrow_mut().push(upstream);
        if client.write_all(&resp[..total]).await.is_err() {
            return;
        }
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    buf.reserve(4096);
    s.read_buf(buf).await.unwrap_or(0)
}
