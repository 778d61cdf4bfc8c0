//! The upstream side of the HTTP path: HTTP/1.1 connections to one replica, kept alive
//! and reused, each used by one exchange at a time in the request's own task.
//!
//! hyper's client runs every connection in a task of its own and hands each request
//! to it over a channel; on one core that hop, and a second dispatcher, cost as much
//! as the rest of the proxy (see bench/README.md). So the exchange is written here,
//! on httparse: the request's task takes an idle connection, writes the head (and a
//! body in memory) in one write, reads the response head, and either reads a small
//! body whole and puts the connection back at once, or streams the body to the
//! client and puts the connection back after its last byte.
//!
//! Response framing follows RFC 9112 §6.3: no body after `HEAD`, 1xx, 204 and 304;
//! `Transfer-Encoding` ending in `chunked` is decoded; any other transfer coding, or
//! no length at all, is read to the end of the connection; a `Content-Length` must be
//! one number. A response carrying both is refused, as are bad chunk sizes: the
//! replica's bytes are never passed on with framing shoal had to guess.

use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::{request, response};
use hyper::{Method, Response, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::body::{BoxError, InFlight, ProxyBody};
use crate::endpoint::Endpoint;
use crate::metrics::Held;

/// Most connections kept per replica.
const MAX_KEPT: usize = 1024;
/// Most bytes of a response head.
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines in a response head (hyper's limit is 100).
const MAX_HEADERS: usize = 128;
/// Most bytes of a chunk-size line or of the trailer section.
const MAX_LINE: usize = 4096;
/// Reads ask for at least this much room.
const READ_SIZE: usize = 8192;

/// The idle connections to one replica, kept per data-path worker: a connection is
/// registered with the reactor of the worker that opened it, and used only there.
pub struct Pool {
    idle: Box<[Mutex<Vec<Conn>>]>,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            idle: (0..crate::workers::slots())
                .map(|_| Mutex::default())
                .collect(),
        }
    }
}

impl Pool {
    /// This worker's idle connections.
    fn mine(&self) -> &Mutex<Vec<Conn>> {
        &self.idle[crate::workers::index() % self.idle.len()]
    }

    /// An idle connection that is still open, the most recently used first.
    pub fn take(&self) -> Option<Conn> {
        loop {
            let conn = self.mine().lock().expect("not poisoned").pop()?;
            if conn.still_open() {
                return Some(conn);
            }
        }
    }

    /// Keeps a connection whose exchange is over for later requests.
    pub fn put(&self, conn: Conn) {
        let mut idle = self.mine().lock().expect("not poisoned");
        if idle.len() < MAX_KEPT {
            idle.push(conn);
        }
    }

    /// Closes every idle connection (the replica left, or closed one of them).
    pub fn clear(&self) {
        for slot in &self.idle {
            let idle = std::mem::take(&mut *slot.lock().expect("not poisoned"));
            drop(idle);
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The replica refused, reset, or was unreachable.
    Io(io::Error),
    /// It did not answer within the connect timeout.
    Timeout,
}

/// Opens a connection to the replica `ep`, counted in its stats (opened, open, or
/// failed).
pub async fn connect(ep: &Endpoint, timeout: Duration) -> Result<Conn, ConnectError> {
    let io = open(ep, timeout).await?;
    Ok(Conn {
        open: ep.stats.connect(),
        io,
        buf: BytesMut::with_capacity(READ_SIZE),
        out: Vec::with_capacity(1024),
        reused: false,
        heard: false,
        unfinished: false,
    })
}

/// A TCP connection to the replica `ep` (no delay), its failure counted.
pub async fn open(ep: &Endpoint, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let failed = |e| {
        ep.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
        e
    };
    match tokio::time::timeout(timeout, TcpStream::connect(ep.addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(failed(ConnectError::Io(e))),
        Err(_) => Err(failed(ConnectError::Timeout)),
    }
}

/// One connection to a replica.
pub struct Conn {
    /// Counts it among the replica's open connections.
    open: Held,
    io: TcpStream,
    /// Bytes read and not yet used.
    buf: BytesMut,
    /// The request head being written (kept for its allocation).
    out: Vec<u8>,
    /// Whether it served an exchange before this one.
    reused: bool,
    /// Whether any byte of a response to the current request arrived.
    heard: bool,
    /// Whether the replica answered before the request's body was all sent (the
    /// connection is then not kept).
    unfinished: bool,
}

/// How an exchange failed.
pub enum Failure {
    /// Nothing of the request reached the replica's application: it may go to
    /// another replica whatever its method. The body comes back for that.
    Unsent(io::Error, ProxyBody),
    /// The replica failed after the request head was written.
    Replica(io::Error),
    /// The client's body failed while it was streamed.
    Client(BoxError),
}

/// A response head, and how its body is framed.
pub struct Head {
    /// Status, version and headers.
    pub parts: response::Parts,
    framing: Framing,
    keep_alive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Up to the end of the connection.
    Close,
}

impl Conn {
    /// Whether the connection served an exchange before and the replica closed it
    /// before a byte of the response to this one: the race every kept connection has
    /// with the replica's idle timeout. Whether the replica saw the request is not
    /// known, so only a request that may be repeated is sent again.
    pub fn closed_while_kept(&self) -> bool {
        self.reused && !self.heard
    }

    /// Whether the connection served an exchange before.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Checks an idle connection without a syscall while nothing happened on it:
    /// readable while idle means the replica closed it (or sent what it should not).
    fn still_open(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => matches!(
                self.io.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Writes a request: its head and a body in memory in one write, or the head and
    /// then the streamed body.
    pub async fn send(&mut self, request: &Outgoing, body: ProxyBody) -> Result<(), Failure> {
        self.heard = false;
        self.unfinished = false;
        let written = match &body {
            ProxyBody::Full(Some(bytes)) => {
                self.out.clear();
                self.out.extend_from_slice(&request.head);
                self.out.extend_from_slice(bytes);
                self.io.write_all(&self.out).await
            }
            _ => self.io.write_all(&request.head).await,
        };
        if let Err(e) = written {
            return Err(Failure::Unsent(e, body));
        }
        if matches!(body, ProxyBody::Empty | ProxyBody::Full(_)) {
            return Ok(());
        }
        self.stream_body(body, request.framing == Sent::Chunked)
            .await
    }

    /// Streams a body while watching the replica: one may refuse an upload before the
    /// body is all there (413, 401: any final status from 300 up) and stop reading.
    /// Then the sending stops, the answer is read as usual, and the connection is not
    /// kept. An early 2xx does not stop the body: the replica may be streaming while
    /// it reads, so the body goes on to its end.
    async fn stream_body(&mut self, mut body: ProxyBody, chunked: bool) -> Result<(), Failure> {
        let Conn {
            io,
            buf,
            out,
            heard,
            unfinished,
            ..
        } = self;
        let (mut rd, mut wr) = io.split();
        let send = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(Failure::Client)?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers: not forwarded
                };
                if data.is_empty() {
                    continue;
                }
                if chunked {
                    out.clear();
                    let _ = write!(out, "{:x}\r\n", data.len());
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                    wr.write_all(out).await
                } else {
                    wr.write_all(&data).await
                }
                .map_err(Failure::Replica)?;
            }
            if chunked {
                wr.write_all(b"0\r\n\r\n").await.map_err(Failure::Replica)?;
            }
            Ok(())
        };
        tokio::pin!(send);
        let mut watching = true;
        loop {
            tokio::select! {
                biased;
                ready = rd.readable(), if watching => {
                    ready.map_err(Failure::Replica)?;
                    buf.reserve(READ_SIZE);
                    let closed = match rd.try_read_buf(buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(Failure::Replica(e)),
                        Ok(n) => {
                            *heard |= n > 0;
                            n == 0
                        }
                    };
                    match stops_body(buf) {
                        Some(true) => {}
                        Some(false) => {
                            watching = false;
                            continue;
                        }
                        None if !closed => continue,
                        None => {}
                    }
                    *unfinished = true;
                    return Ok(());
                }
                sent = &mut send => {
                    if let Err(Failure::Replica(e)) = sent {
                        // The replica may have answered and closed: read its answer
                        // (the connection is closed, so this does not wait).
                        buf.reserve(READ_SIZE);
                        if matches!(rd.read_buf(buf).await, Ok(n) if n > 0) {
                            *heard = true;
                            *unfinished = true;
                            return Ok(());
                        }
                        return Err(Failure::Replica(e));
                    }
                    return sent;
                }
            }
        }
    }

    /// Reads the response head to a request with `method`, skipping interim (1xx)
    /// responses other than `101 Switching Protocols`.
    pub async fn read_head(&mut self, method: &Method) -> Result<Head, io::Error> {
        loop {
            if let Some(head) = self.parse_head(method)? {
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("the response head is too large"));
            }
            self.buf.reserve(READ_SIZE);
            if self.io.read_buf(&mut self.buf).await? > 0 {
                self.heard = true;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the replica closed the connection before a response",
                ));
            }
        }
    }

    fn parse_head(&mut self, method: &Method) -> Result<Option<Head>, io::Error> {
        loop {
            // Uninitialised: zeroing room for every header a head may have would cost
            // more than parsing the few a response has.
            let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
            let mut r = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut r,
                &self.buf,
                &mut headers,
            );
            let len = match parsed {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(invalid(format!("bad response head: {e}"))),
            };
            let code = r.code.unwrap_or(0);
            if (100..200).contains(&code) && code != 101 {
                self.buf.advance(len);
                continue;
            }
            let status = StatusCode::from_u16(code).map_err(|_| invalid("bad status code"))?;
            let version = if r.version == Some(0) {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            };
            let mut map = HeaderMap::with_capacity(r.headers.len());
            for h in r.headers.iter() {
                let name = HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| invalid("bad header name"))?;
                let value =
                    HeaderValue::from_bytes(h.value).map_err(|_| invalid("bad header value"))?;
                map.append(name, value);
            }
            self.buf.advance(len);
            let framing = framing(method, status, &map)?;
            let keep_alive =
                framing != Framing::Close && status != 101 && keeps_alive(version, &map);
            let mut parts = Response::new(()).into_parts().0;
            parts.status = status;
            // The version is the client connection's business: an HTTP/1.0 replica's
            // answer must not close a kept client connection.
            parts.version = Version::HTTP_11;
            parts.headers = map;
            return Ok(Some(Head {
                parts,
                framing,
                keep_alive,
            }));
        }
    }

    /// Reads exactly `n` more body bytes.
    async fn read_exact(&mut self, n: usize) -> Result<Bytes, io::Error> {
        while self.buf.len() < n {
            self.buf.reserve(n - self.buf.len());
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(cut_short());
            }
        }
        Ok(self.buf.split_to(n).freeze())
    }

    /// The connection after a `101`, and the bytes the replica sent after the head.
    pub fn into_upgraded(self) -> (TcpStream, Bytes, Held) {
        (self.io, self.buf.freeze(), self.open)
    }

    fn done(mut self, keep_alive: bool, home: &Endpoint) {
        if keep_alive && self.buf.is_empty() && !self.unfinished {
            self.reused = true;
            home.pool.put(self);
        }
    }
}

/// The response for the client: a body of known length up to `whole_limit` is read
/// first and the connection goes back to its replica's pool at once; any other body
/// streams and the connection goes back after its last byte.
pub async fn respond(
    mut conn: Conn,
    head: Head,
    guard: InFlight,
    whole_limit: u64,
) -> Result<Response<ProxyBody>, io::Error> {
    let Head {
        parts,
        framing,
        keep_alive,
    } = head;
    match framing {
        Framing::Length(0) => {
            conn.done(keep_alive, guard.endpoint());
            drop(guard);
            Ok(Response::from_parts(parts, ProxyBody::Empty))
        }
        Framing::Length(n) if n <= whole_limit => {
            let bytes = conn.read_exact(n as usize).await?;
            conn.done(keep_alive, guard.endpoint());
            drop(guard);
            Ok(Response::from_parts(parts, ProxyBody::Full(Some(bytes))))
        }
        _ => {
            let decoder = match framing {
                Framing::Length(n) => Decoder::Length(n),
                Framing::Chunked => Decoder::ChunkSize,
                Framing::Close => Decoder::Close,
            };
            let stream = Streaming {
                conn: Some(conn),
                decoder,
                keep_alive,
                guard: Some(guard),
            };
            Ok(Response::from_parts(
                parts,
                ProxyBody::Upstream(Box::new(stream)),
            ))
        }
    }
}

/// A replica's response body on its way to the client; counted in flight until its
/// last byte, when the connection goes back to the pool.
pub struct Streaming {
    conn: Option<Conn>,
    decoder: Decoder,
    keep_alive: bool,
    /// Counts the request in flight; its replica's pool takes the connection back.
    guard: Option<InFlight>,
}

#[derive(Debug)]
enum Decoder {
    /// This many bytes to go.
    Length(u64),
    /// A chunk-size line next.
    ChunkSize,
    /// This many bytes of chunk data to go, then CRLF.
    ChunkData(u64),
    /// The CRLF after chunk data.
    ChunkEnd,
    /// Trailer lines up to the empty one.
    Trailers,
    /// To the end of the connection.
    Close,
    /// The body is over.
    Done,
}

impl Streaming {
    /// The next piece of the body from what is buffered: `Ok(None)` when more must be
    /// read first.
    fn decode(&mut self) -> Result<Option<Option<Bytes>>, io::Error> {
        let conn = self.conn.as_mut().expect("present until the end");
        let buf = &mut conn.buf;
        loop {
            match self.decoder {
                Decoder::Done => return Ok(Some(None)),
                Decoder::Length(0) => self.decoder = Decoder::Done,
                Decoder::Length(n) | Decoder::ChunkData(n) if !buf.is_empty() => {
                    let take = n.min(buf.len() as u64);
                    let data = buf.split_to(take as usize).freeze();
                    self.decoder = match self.decoder {
                        Decoder::Length(_) => Decoder::Length(n - take),
                        _ if n == take => Decoder::ChunkEnd,
                        _ => Decoder::ChunkData(n - take),
                    };
                    return Ok(Some(Some(data)));
                }
                Decoder::Close if !buf.is_empty() => {
                    return Ok(Some(Some(buf.split().freeze())));
                }
                Decoder::ChunkSize => {
                    let (used, size) = match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete(line)) => line,
                        Ok(httparse::Status::Partial) => return Ok(None),
                        Err(_) => return Err(invalid("bad chunk size")),
                    };
                    buf.advance(used);
                    self.decoder = match size {
                        0 => Decoder::Trailers,
                        n => Decoder::ChunkData(n),
                    };
                }
                Decoder::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.decoder = Decoder::ChunkSize;
                }
                Decoder::Trailers => {
                    let Some(end) = line_end(buf)? else {
                        return Ok(None);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        self.decoder = Decoder::Done;
                    }
                }
                Decoder::Length(_) | Decoder::ChunkData(_) | Decoder::Close => return Ok(None),
            }
        }
    }

    /// Ends the body: the connection goes back to the pool if `clean` and the
    /// replica keeps it, and the request stops counting in flight.
    fn end(&mut self, clean: bool) {
        let (conn, guard) = (self.conn.take(), self.guard.take());
        if let (true, Some(conn), Some(guard)) = (clean, conn, &guard) {
            conn.done(self.keep_alive, guard.endpoint());
        }
    }

    /// Ends the body with an error: the connection is closed.
    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.end(false);
        Poll::Ready(Some(Err(e.into())))
    }
}

impl Body for Streaming {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.conn.is_none() {
                return Poll::Ready(None);
            }
            match this.decode() {
                Ok(Some(Some(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Some(None)) => {
                    this.end(true);
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(e) => return this.fail(e),
            }
            let conn = this.conn.as_mut().expect("checked above");
            if conn.buf.len() > MAX_LINE && !matches!(this.decoder, Decoder::Close) {
                return this.fail(invalid("chunk framing line too long"));
            }
            conn.buf.reserve(READ_SIZE);
            let read = loop {
                if let Err(e) = ready!(conn.io.poll_read_ready(cx)) {
                    break Err(e);
                }
                match conn.io.try_read_buf(&mut conn.buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => break other,
                }
            };
            match read {
                Ok(0) if matches!(this.decoder, Decoder::Close) => {
                    this.keep_alive = false;
                    this.decoder = Decoder::Done;
                }
                Ok(0) => return this.fail(cut_short()),
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.decoder, Decoder::Done | Decoder::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// A request as the replicas get it: the head encoded once, for every attempt.
pub struct Outgoing {
    head: Vec<u8>,
    framing: Sent,
}

impl Outgoing {
    /// The request with head `head` (already rewritten for the replicas) and `body`.
    pub fn new(head: &request::Parts, body: &ProxyBody) -> Outgoing {
        let framing = match body {
            ProxyBody::Empty
                if head.headers.contains_key(header::CONTENT_LENGTH)
                    || matches!(head.method, Method::POST | Method::PUT | Method::PATCH) =>
            {
                Sent::Length(0)
            }
            ProxyBody::Empty => Sent::Nothing,
            _ => body.size_hint().exact().map_or(Sent::Chunked, Sent::Length),
        };
        let mut out = Vec::with_capacity(512);
        encode_head(head, framing, &mut out);
        Outgoing { head: out, framing }
    }
}

/// How the body of a request is framed on its way to the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// No body and no framing header (a `GET` without one).
    Nothing,
    /// `Content-Length`.
    Length(u64),
    /// Chunked: a streamed body of unknown length.
    Chunked,
}

/// The request head for the replica: origin-form target, HTTP/1.1, the headers but
/// the framing ones, and the framing of the body shoal sends.
fn encode_head(head: &request::Parts, framing: Sent, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    let target = head.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &head.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Sent::Nothing => {}
        Sent::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Sent::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether what the replica sent before the request's body was all there stops the
/// body: a final status from 300 up, or bytes that are not a response, do; a 2xx
/// does not; `None` while the status line is still incomplete. Complete interim
/// (1xx, not 101) heads are dropped first.
fn stops_body(buf: &mut BytesMut) -> Option<bool> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        let parsed = r.parse(buf);
        let Some(code) = r.code else {
            return parsed.is_err().then_some(true);
        };
        let interim = (100..200).contains(&code) && code != 101;
        match parsed {
            Ok(httparse::Status::Complete(n)) if interim => buf.advance(n),
            Ok(httparse::Status::Partial) if interim => return None,
            _ => return Some(code >= 300 || code == 101),
        }
    }
}

/// How a response's body is framed (RFC 9112 §6.3).
fn framing(method: &Method, status: StatusCode, headers: &HeaderMap) -> Result<Framing, io::Error> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Length(0));
    }
    let length = content_length(headers)?;
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if length.is_some() {
            return Err(invalid(
                "the response has both Content-Length and Transfer-Encoding",
            ));
        }
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .rfind(|c| !c.trim_ascii().is_empty());
        return Ok(match last {
            Some(c) if c.trim_ascii().eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
            _ => Framing::Close,
        });
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

/// The one length the `Content-Length` fields give, if any; differing or malformed
/// values are an error.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, io::Error> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 19 {
                return Err(invalid("bad Content-Length"));
            }
            let n: u64 = std::str::from_utf8(part)
                .expect("ASCII digits")
                .parse()
                .map_err(|_| invalid("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("differing Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Whether the replica keeps the connection open after this response.
fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &[u8]| {
        headers.get_all(header::CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    if version == Version::HTTP_10 {
        has(b"keep-alive")
    } else {
        !has(b"close")
    }
}

/// Where the line at the start of `buf` ends (its CR), if it is all there.
fn line_end(buf: &[u8]) -> Result<Option<usize>, io::Error> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(i)),
        None if buf.len() > MAX_LINE => Err(invalid("chunk framing line too long")),
        None => Ok(None),
    }
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the replica closed the connection before the end of the body",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn response_framing_follows_the_rfc() {
        let ok = StatusCode::OK;
        let get = Method::GET;
        let f = |pairs: &[(&str, &str)]| framing(&get, ok, &headers(pairs));
        assert_eq!(f(&[("content-length", "12")]).unwrap(), Framing::Length(12));
        assert_eq!(
            f(&[("content-length", "12, 12")]).unwrap(),
            Framing::Length(12)
        );
        assert!(f(&[("content-length", "12"), ("content-length", "13")]).is_err());
        assert!(f(&[("content-length", "-1")]).is_err());
        assert!(f(&[("content-length", "+1")]).is_err());
        assert_eq!(
            f(&[("transfer-encoding", "gzip, chunked")]).unwrap(),
            Framing::Chunked
        );
        assert_eq!(
            f(&[("transfer-encoding", "chunked, gzip")]).unwrap(),
            Framing::Close
        );
        assert!(f(&[("transfer-encoding", "chunked"), ("content-length", "3")]).is_err());
        assert_eq!(f(&[]).unwrap(), Framing::Close);
        let cl = headers(&[("content-length", "12")]);
        assert_eq!(framing(&Method::HEAD, ok, &cl).unwrap(), Framing::Length(0));
        assert_eq!(
            framing(&get, StatusCode::NOT_MODIFIED, &cl).unwrap(),
            Framing::Length(0)
        );
        assert_eq!(
            framing(&get, StatusCode::NO_CONTENT, &cl).unwrap(),
            Framing::Length(0)
        );
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        assert!(keeps_alive(Version::HTTP_11, &headers(&[])));
        assert!(!keeps_alive(
            Version::HTTP_11,
            &headers(&[("connection", "Close")])
        ));
        assert!(!keeps_alive(Version::HTTP_10, &headers(&[])));
        assert!(keeps_alive(
            Version::HTTP_10,
            &headers(&[("connection", "keep-alive")])
        ));
    }

    #[test]
    fn only_a_refusal_stops_a_body_being_sent() {
        let stops = |bytes: &[u8]| stops_body(&mut BytesMut::from(bytes));
        assert_eq!(stops(b"HTTP/1.1 413 Payload Too Large\r\n"), Some(true));
        assert_eq!(stops(b"HTTP/1.1 200 OK\r\ncontent-le"), Some(false));
        assert_eq!(stops(b"HTTP/1.1 100 Continue\r\n\r\n"), None);
        assert_eq!(
            stops(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 No\r\n"),
            Some(true)
        );
        assert_eq!(stops(b"HTTP/1.1 4"), None);
        assert_eq!(stops(b"\x00\x01garbage"), Some(true));
    }

    #[test]
    fn request_head_carries_the_framing_of_what_is_sent() {
        let (mut parts, ()) = hyper::Request::post("http://h/a?b")
            .header("host", "h")
            .header("content-length", "99")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap()
            .into_parts();
        let mut out = Vec::new();
        encode_head(&parts, Sent::Length(3), &mut out);
        assert_eq!(
            out,
            b"POST /a?b HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\n"
        );
        out.clear();
        encode_head(&parts, Sent::Chunked, &mut out);
        assert_eq!(
            out,
            b"POST /a?b HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        parts.method = Method::GET;
        out.clear();
        encode_head(&parts, Sent::Nothing, &mut out);
        assert_eq!(out, b"GET /a?b HTTP/1.1\r\nhost: h\r\n\r\n");
    }
}
