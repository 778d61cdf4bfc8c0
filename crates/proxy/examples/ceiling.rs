//! Not a proxy to use: the least user-space work an HTTP/1.1 keep-alive proxy can do
//! on one core, to bound what any data path could reach on this machine. It forwards
//! bodiless requests over pooled upstream connections, round robin, adding one
//! forwarding header, and relays responses framed by Content-Length. No timeouts,
//! retries, chunked bodies, validation or metrics: what it measures is the floor of
//! user-space work, with the same syscalls per request as a real proxy.
//!
//! `ceiling --listen 127.0.0.1:8003 --backend 127.0.0.1:9101 --backend ...`

mod ceiling_shared;

use std::net::SocketAddr;
use std::rc::Rc;

use ceiling_shared::{forwarded, request_head, response_len, xff, Upstreams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let (listen, backends) = ceiling_shared::args("127.0.0.1:8003");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let up = Rc::new(Upstreams::new(backends));
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
            if read_more(&mut client, &mut buf).await == 0 {
                return;
            }
        };
        forwarded(&buf, head_len, xff.as_bytes(), &mut out);
        buf.drain(..head_len);

        let (i, pooled) = up.take();
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
        resp.clear();
        let total = loop {
            if read_more(&mut upstream, &mut resp).await == 0 {
                return;
            }
            match response_len(&resp) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
                Err(_) => return,
            }
        };
        while resp.len() < total {
            if read_more(&mut upstream, &mut resp).await == 0 {
                return;
            }
        }
        up.put(i, upstream);
        if client.write_all(&resp[..total]).await.is_err() {
            return;
        }
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    buf.reserve(4096);
    s.read_buf(buf).await.unwrap_or(0)
}
