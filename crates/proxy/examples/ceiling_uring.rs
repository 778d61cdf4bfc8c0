//! Not a proxy to use: `ceiling.rs` again on io_uring (monoio) instead of epoll
//! (tokio), to measure whether submitting the reads and writes of many connections in
//! one kernel entry lifts the floor a data path reaches on this machine. The same
//! work per request: parse the head, add one header, forward it on a pooled upstream
//! connection (round robin), relay the response framed by Content-Length.
//!
//! `ceiling_uring --listen 127.0.0.1:8004 --backend 127.0.0.1:9101 --backend ...`

mod ceiling_shared;

use std::net::SocketAddr;
use std::rc::Rc;

use ceiling_shared::{forwarded, request_head, response_len, xff, Upstreams};
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let (listen, backends) = ceiling_shared::args("127.0.0.1:8004");
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .build()
        .expect("an io_uring runtime");
    rt.block_on(async move {
        let up = Rc::new(Upstreams::new(backends));
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

async fn connection(mut client: TcpStream, peer: SocketAddr, up: Rc<Upstreams<TcpStream>>) {
    let mut buf = Vec::with_capacity(8192);
    let mut out = Vec::with_capacity(8192);
    let mut resp = Vec::with_capacity(8192);
    let xff = xff(peer);
    loop {
        let head_len = loop {
            match request_head(&buf) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
                Err(_) => return,
            }
            let (n, b) = read_more(&mut client, buf).await;
            buf = b;
            if n == 0 {
                return;
            }
        };
        forwarded(&buf, head_len, xff.as_bytes(), &mut out);
        buf.drain(..head_len);

        let (i, pooled) = up.take();
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
        resp.clear();
        let total = loop {
            let (n, r) = read_more(&mut upstream, resp).await;
            resp = r;
            if n == 0 {
                return;
            }
            match response_len(&resp) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
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
        up.put(i, upstream);
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
