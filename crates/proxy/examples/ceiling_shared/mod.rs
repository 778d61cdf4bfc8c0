//! What `ceiling.rs` (tokio) and `ceiling_uring.rs` (monoio) share: their arguments,
//! the round-robin pool of upstream connections and the HTTP/1.1 work per request,
//! so that the two floors differ only in how they reach the kernel.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;

/// `--listen ADDR --backend ADDR ...`, with `default` when no `--listen` is given.
pub fn args(default: &str) -> (SocketAddr, Vec<SocketAddr>) {
    let mut listen: SocketAddr = default.parse().expect("an address");
    let mut backends = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().expect("a value");
        match a.as_str() {
            "--listen" => listen = v.parse().expect("an address"),
            "--backend" => backends.push(v.parse().expect("an address")),
            other => panic!("unknown argument {other}"),
        }
    }
    (listen, backends)
}

/// Idle connections to each backend, taken round robin.
pub struct Upstreams<S> {
    pub addrs: Vec<SocketAddr>,
    idle: Vec<RefCell<Vec<S>>>,
    next: Cell<usize>,
}

impl<S> Upstreams<S> {
    pub fn new(addrs: Vec<SocketAddr>) -> Upstreams<S> {
        Upstreams {
            idle: addrs.iter().map(|_| RefCell::new(Vec::new())).collect(),
            addrs,
            next: Cell::new(0),
        }
    }

    /// The next backend, and an idle connection to it if there is one.
    pub fn take(&self) -> (usize, Option<S>) {
        let i = self.next.get() % self.addrs.len();
        self.next.set(i + 1);
        (i, self.idle[i].borrow_mut().pop())
    }

    /// Keeps a connection to backend `i` for later requests.
    pub fn put(&self, i: usize, conn: S) {
        self.idle[i].borrow_mut().push(conn);
    }
}

/// The length of the request head at the start of `buf`: `Ok(None)` while it is
/// incomplete.
pub fn request_head(buf: &[u8]) -> Result<Option<usize>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    match httparse::Request::new(&mut headers).parse(buf)? {
        httparse::Status::Complete(n) => Ok(Some(n)),
        httparse::Status::Partial => Ok(None),
    }
}

/// The head of `buf` (`head_len` bytes) with `x-forwarded-for: <ip>` added, into `out`.
pub fn forwarded(buf: &[u8], head_len: usize, xff: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&buf[..head_len - 2]);
    out.extend_from_slice(xff);
}

/// The `x-forwarded-for` line and the blank line ending a head, for a client.
pub fn xff(peer: SocketAddr) -> String {
    format!("x-forwarded-for: {}\r\n\r\n", peer.ip())
}

/// The length of the whole response (head plus Content-Length) at the start of `buf`:
/// `Ok(None)` while the head is incomplete.
pub fn response_len(buf: &[u8]) -> Result<Option<usize>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(buf)? {
        httparse::Status::Complete(n) => {
            let len = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0usize);
            Ok(Some(n + len))
        }
        httparse::Status::Partial => Ok(None),
    }
}
