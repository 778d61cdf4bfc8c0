//! One connection to a replica: opened (and counted), written, watched while an
//! upload streams, read, and given back to the replica's pool when the replica keeps
//! it and nothing of the exchange is left on it.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::decoder::{Decoded, Decoder};
use super::pool::Pool;
use super::request::Outgoing;
use super::response::{self, stops_body, Head};
use super::{cut_short, READ_SIZE};
use crate::metrics::{Held, Stats};

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The replica refused, reset, or was unreachable.
    Io(io::Error),
    /// It did not answer within the connect timeout.
    Timeout,
}

/// How streaming a body to the replica failed.
pub enum Sending<E> {
    /// The client's body failed.
    Client(E),
    /// The replica's side failed.
    Replica(io::Error),
}

/// Opens a connection to the replica at `addr`, counted in its `stats` (opened,
/// open, or failed).
pub async fn connect(
    addr: SocketAddr,
    stats: &Stats,
    timeout: Duration,
) -> Result<Conn, ConnectError> {
    let io = open(addr, stats, timeout).await?;
    Ok(Conn {
        open: stats.connect(),
        io,
        buf: BytesMut::with_capacity(READ_SIZE),
        out: Vec::with_capacity(1024),
        reused: false,
        heard: false,
        unfinished: false,
    })
}

/// A TCP connection to the replica at `addr` (no delay), its failure counted.
pub async fn open(
    addr: SocketAddr,
    stats: &Stats,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let failed = |e| {
        stats.connect_failures.fetch_add(1, Ordering::Relaxed);
        e
    };
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
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
    pub(super) fn still_open(&self) -> bool {
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

    /// Starts an exchange: writes the request head, and `body` with it in the same
    /// write when it is in memory.
    pub async fn write(&mut self, request: &Outgoing, body: Option<&[u8]>) -> io::Result<()> {
        self.heard = false;
        self.unfinished = false;
        match body {
            Some(bytes) => {
                self.out.clear();
                self.out.extend_from_slice(&request.head);
                self.out.extend_from_slice(bytes);
                self.io.write_all(&self.out).await
            }
            None => self.io.write_all(&request.head).await,
        }
    }

    /// Streams a body after the head while watching the replica: one may refuse an
    /// upload before the body is all there (413, 401: any final status from 300 up)
    /// and stop reading. Then the sending stops, the answer is read as usual, and the
    /// connection is not kept. An early 2xx does not stop the body: the replica may be
    /// streaming while it reads, so the body goes on to its end.
    pub async fn stream<B>(&mut self, mut body: B, chunked: bool) -> Result<(), Sending<B::Error>>
    where
        B: Body<Data = Bytes> + Unpin,
    {
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
                let frame = frame.map_err(Sending::Client)?;
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
                .map_err(Sending::Replica)?;
            }
            if chunked {
                wr.write_all(b"0\r\n\r\n").await.map_err(Sending::Replica)?;
            }
            Ok(())
        };
        tokio::pin!(send);
        let mut watching = true;
        loop {
            tokio::select! {
                biased;
                ready = rd.readable(), if watching => {
                    ready.map_err(Sending::Replica)?;
                    buf.reserve(READ_SIZE);
                    let closed = match rd.try_read_buf(buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(Sending::Replica(e)),
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
                    if let Err(Sending::Replica(e)) = sent {
                        // The replica may have answered and closed: read its answer
                        // (the connection is closed, so this does not wait).
                        buf.reserve(READ_SIZE);
                        if matches!(rd.read_buf(buf).await, Ok(n) if n > 0) {
                            *heard = true;
                            *unfinished = true;
                            return Ok(());
                        }
                        return Err(Sending::Replica(e));
                    }
                    return sent;
                }
            }
        }
    }

    /// Reads the response head to a request with `method`.
    pub async fn read_head(&mut self, method: &Method) -> Result<Head, io::Error> {
        loop {
            if let Some(head) = response::parse(&mut self.buf, method)? {
                return Ok(head);
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

    /// Reads exactly `n` more body bytes.
    pub async fn read_exact(&mut self, n: usize) -> Result<Bytes, io::Error> {
        while self.buf.len() < n {
            self.buf.reserve(n - self.buf.len());
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(cut_short());
            }
        }
        Ok(self.buf.split_to(n).freeze())
    }

    /// The next piece of a streamed body (`None` after its end), reading as needed.
    pub fn poll_body(
        &mut self,
        decoder: &mut Decoder,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, io::Error>> {
        loop {
            match decoder.decode(&mut self.buf)? {
                Decoded::Data(data) => return Poll::Ready(Ok(Some(data))),
                Decoded::End => return Poll::Ready(Ok(None)),
                Decoded::More => {}
            }
            self.buf.reserve(READ_SIZE);
            let read = loop {
                ready!(self.io.poll_read_ready(cx))?;
                match self.io.try_read_buf(&mut self.buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => break other?,
                }
            };
            if read == 0 {
                decoder.end_of_input()?;
            }
        }
    }

    /// The connection after a `101`, and the bytes the replica sent after the head.
    pub fn into_upgraded(self) -> (TcpStream, Bytes, Held) {
        (self.io, self.buf.freeze(), self.open)
    }

    /// The exchange is over: the connection goes back to `pool` when the replica
    /// keeps it (`keep_alive`) and nothing of the exchange is left on it.
    pub fn done(mut self, keep_alive: bool, pool: &Pool) {
        if keep_alive && self.buf.is_empty() && !self.unfinished {
            self.reused = true;
            pool.put(self);
        }
    }
}
