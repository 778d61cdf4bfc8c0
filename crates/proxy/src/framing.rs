//! A strict second look at HTTP/1 request framing, on the raw bytes.
//!
//! hyper settles a request carrying both `Content-Length` and `Transfer-Encoding` by
//! the RFC's rule (chunked wins) and drops the length before the handler sees it. A
//! proxy must not: the replica behind it may read the same bytes the other way, which
//! is request smuggling. So client connections are read through [`Inspect`], which
//! follows the framing of every request on the connection and marks the connection
//! when one is ambiguous; the handler answers 400 and closes it. Differing duplicate
//! lengths, transfer codings other than `chunked` and bad chunk sizes hyper rejects
//! itself (400 before any forwarding, or an error while the body is buffered).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where the tracker is in the byte stream.
#[derive(Debug)]
enum State {
    /// Reading a request head; the bytes so far.
    Head(Vec<u8>),
    /// Skipping a body of this many more bytes.
    Body(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// An upgrade or CONNECT took the connection over, or the head was too long for
    /// us (hyper refuses those itself): stop looking.
    Done,
}

#[derive(Debug)]
enum Chunk {
    /// Reading a chunk-size line.
    Size(Vec<u8>),
    /// Skipping chunk data, then its CRLF (`+ 2`).
    Data(u64),
    /// Reading trailer lines up to the empty one.
    Trailers(Vec<u8>),
}

const MAX_HEAD: usize = 128 * 1024;
/// Most bytes of a chunk-size or trailer line, its line end included.
const MAX_LINE: usize = 4096;

/// Follows request framing; `poisoned` turns true at the first ambiguous request.
pub struct Tracker {
    state: State,
    poisoned: Arc<AtomicBool>,
}

impl Tracker {
    /// A tracker for a new connection.
    pub fn new(poisoned: Arc<AtomicBool>) -> Tracker {
        Tracker {
            state: State::Head(Vec::new()),
            poisoned,
        }
    }

    fn poison(&mut self) {
        self.poisoned.store(true, Ordering::Relaxed);
        self.state = State::Done;
    }

    /// Feeds bytes read from the client.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done => return,
                State::Body(n) => {
                    let take = (*n).min(bytes.len() as u64) as usize;
                    *n -= take as u64;
                    bytes = &bytes[take..];
                    if *n == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::Head(buf) => {
                    // Blank lines between requests are allowed.
                    if buf.is_empty() {
                        let skip = bytes
                            .iter()
                            .take_while(|b| **b == b'\r' || **b == b'\n')
                            .count();
                        bytes = &bytes[skip..];
                        if bytes.is_empty() {
                            return;
                        }
                    }
                    // The usual case: the whole head in this read. Look at it in place.
                    if buf.is_empty() {
                        if let Some(at) = find(bytes, b"\r\n\r\n").filter(|at| *at + 4 <= MAX_HEAD)
                        {
                            let head = &bytes[..at + 4];
                            bytes = &bytes[at + 4..];
                            self.state = framing(head);
                            if matches!(self.state, State::Done) && ambiguous(head) {
                                self.poison();
                                return;
                            }
                            continue;
                        }
                    }
                    let before = buf.len();
                    buf.extend_from_slice(bytes);
                    let search_from = before.saturating_sub(3);
                    match find(&buf[search_from..], b"\r\n\r\n") {
                        Some(at) if search_from + at + 4 > MAX_HEAD => self.state = State::Done,
                        Some(at) => {
                            let end = search_from + at + 4;
                            let head = std::mem::take(buf);
                            bytes = &bytes[end - before..];
                            self.state = framing(&head[..end]);
                            if matches!(self.state, State::Done) && ambiguous(&head[..end]) {
                                self.poison();
                                return;
                            }
                        }
                        None if buf.len() > MAX_HEAD => self.state = State::Done,
                        None => return,
                    }
                }
                State::Chunked(chunk) => match chunk {
                    Chunk::Data(n) => {
                        let take = (*n).min(bytes.len() as u64) as usize;
                        *n -= take as u64;
                        bytes = &bytes[take..];
                        if *n == 0 {
                            *chunk = Chunk::Size(Vec::new());
                        }
                    }
                    Chunk::Size(line) | Chunk::Trailers(line) => {
                        let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
                            line.extend_from_slice(bytes);
                            if line.len() > MAX_LINE {
                                self.poison();
                            }
                            return;
                        };
                        line.extend_from_slice(&bytes[..=nl]);
                        bytes = &bytes[nl + 1..];
                        // Too long whether it arrived whole or in pieces.
                        if line.len() > MAX_LINE {
                            self.poison();
                            return;
                        }
                        let text = std::mem::take(line);
                        let is_trailer = matches!(chunk, Chunk::Trailers(_));
                        if is_trailer {
                            if text == b"\r\n" || text == b"\n" {
                                self.state = State::Head(Vec::new());
                            }
                            continue;
                        }
                        // The CRLF that ends the previous chunk's data.
                        if text == b"\r\n" {
                            continue;
                        }
                        match chunk_size(&text) {
                            Some(0) => *chunk = Chunk::Trailers(Vec::new()),
                            Some(n) => *chunk = Chunk::Data(n),
                            None => self.poison(),
                        }
                    }
                },
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The header lines of a head (after the request line), as (name, value) bytes.
fn header_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|b| *b == b'\n').skip(1).filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        Some((line[..colon].trim_ascii(), line[colon + 1..].trim_ascii()))
    })
}

/// The framing a request head announces; `Done` for ambiguous heads and for
/// upgrades. Reads bytes in place: this runs for every request.
fn framing(head: &[u8]) -> State {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut te = false;
    let mut upgrade = head.starts_with(b"CONNECT ");
    for (name, value) in header_lines(head) {
        if name.eq_ignore_ascii_case(b"content-length") {
            length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        }
    }
    if upgrade || (te && length.is_some()) {
        return State::Done;
    }
    if chunked {
        return State::Chunked(Chunk::Size(Vec::new()));
    }
    match length {
        Some(n) if n > 0 => State::Body(n),
        _ => State::Head(Vec::new()),
    }
}

/// True for a head with both a length and a transfer coding.
fn ambiguous(head: &[u8]) -> bool {
    let has = |name: &[u8]| header_lines(head).any(|(n, _)| n.eq_ignore_ascii_case(name));
    has(b"content-length") && has(b"transfer-encoding")
}

fn chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let text = text.trim_end_matches(['\r', '\n']);
    let size = text.split(';').next()?.trim();
    if size.is_empty() || size.len() > 16 {
        return None;
    }
    u64::from_str_radix(size, 16).ok()
}

/// A client connection read through a [`Tracker`].
pub struct Inspect<S> {
    inner: S,
    tracker: Tracker,
}

impl<S> Inspect<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, poisoned: Arc<AtomicBool>) -> Inspect<S> {
        Inspect {
            inner,
            tracker: Tracker::new(poisoned),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inspect<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.tracker.feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inspect<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poisoned_by(parts: &[&[u8]]) -> bool {
        let flag = Arc::new(AtomicBool::new(false));
        let mut t = Tracker::new(flag.clone());
        for p in parts {
            t.feed(p);
        }
        flag.load(Ordering::Relaxed)
    }

    #[test]
    fn clean_streams_pass() {
        assert!(!poisoned_by(&[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
        ]));
        assert!(!poisoned_by(&[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"GET / HTTP/1.1\r\n\r\n"
        ]));
        assert!(!poisoned_by(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"lo\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        ]));
    }

    #[test]
    fn length_with_transfer_encoding_is_poisoned_in_either_order() {
        assert!(poisoned_by(&[
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ]));
        assert!(poisoned_by(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n"
        ]));
    }

    #[test]
    fn smuggled_second_head_is_seen() {
        // The body of the first request hides a second, ambiguous one.
        assert!(poisoned_by(&[
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
        ]));
    }

    #[test]
    fn bad_chunk_size_is_poisoned() {
        assert!(poisoned_by(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
        ]));
    }
}
