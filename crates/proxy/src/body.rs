//! The one body type of the data path, so nothing is boxed per request: empty, bytes
//! held in memory (replayable on retry), a stream from the client, bytes already read
//! followed by the rest of the stream, or a replica's response streaming to the client
//! (boxed: only bodies too large to read whole take that way).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::endpoint::InFlight;
use crate::upstream::{BodyLength, Conn, Decoder};

/// The error of a body: the client's, or the replica's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body.
pub enum ProxyBody {
    /// No body.
    Empty,
    /// A body held in memory.
    Full(Option<Bytes>),
    /// A client's body, streamed.
    Stream(Incoming),
    /// The start of a client's body, read already, then the rest of it.
    Buffered(Option<Bytes>, Incoming),
    /// A replica's response body, streamed.
    Upstream(Box<Streaming>),
}

impl ProxyBody {
    /// A body of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
        let b = bytes.into();
        if b.is_empty() {
            ProxyBody::Empty
        } else {
            ProxyBody::Full(Some(b))
        }
    }

    /// A copy for another attempt, when the body is in memory.
    pub fn replay(&self) -> Option<ProxyBody> {
        match self {
            ProxyBody::Empty => Some(ProxyBody::Empty),
            ProxyBody::Full(b) => Some(ProxyBody::Full(b.clone())),
            _ => None,
        }
    }

    /// What is known of its length before it is sent.
    pub fn length(&self) -> BodyLength {
        match self {
            ProxyBody::Empty => BodyLength::Empty,
            _ => self
                .size_hint()
                .exact()
                .map_or(BodyLength::Unknown, BodyLength::Exact),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let client = |p: Poll<Option<Result<Frame<Bytes>, hyper::Error>>>| {
            p.map(|f| f.map(|r| r.map_err(BoxError::from)))
        };
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Stream(s) => client(Pin::new(s).poll_frame(cx)),
            ProxyBody::Buffered(head, rest) => match head.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => client(Pin::new(rest).poll_frame(cx)),
            },
            ProxyBody::Upstream(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Stream(s) => s.is_end_stream(),
            ProxyBody::Upstream(s) => s.is_end_stream(),
            ProxyBody::Buffered(head, rest) => head.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Stream(s) => s.size_hint(),
            ProxyBody::Upstream(s) => s.size_hint(),
            ProxyBody::Buffered(head, rest) => {
                let n = head.as_ref().map_or(0, |b| b.len() as u64);
                let r = rest.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(r.lower() + n);
                if let Some(u) = r.upper() {
                    h.set_upper(u + n);
                }
                h
            }
        }
    }
}

/// A replica's response body on its way to the client; counted in flight until its
/// last byte, when the connection goes back to the replica's pool.
pub struct Streaming {
    conn: Option<Conn>,
    decoder: Decoder,
    keep_alive: bool,
    /// Counts the request in flight; its replica's pool takes the connection back.
    guard: Option<InFlight>,
}

impl Streaming {
    /// The body the `decoder` finds on `conn`.
    pub fn new(conn: Conn, decoder: Decoder, keep_alive: bool, guard: InFlight) -> Streaming {
        Streaming {
            conn: Some(conn),
            decoder,
            keep_alive,
            guard: Some(guard),
        }
    }

    /// Ends the body: the connection goes back to the pool if `clean` and the
    /// replica keeps it, and the request stops counting in flight.
    fn end(&mut self, clean: bool) {
        let (conn, guard) = (self.conn.take(), self.guard.take());
        if let (true, Some(conn), Some(guard)) = (clean, conn, &guard) {
            conn.done(self.keep_alive, &guard.endpoint().pool);
        }
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
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        let polled: Result<Option<Bytes>, io::Error> =
            ready!(conn.poll_body(&mut this.decoder, cx));
        match polled {
            Ok(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Ok(None) => {
                this.end(true);
                Poll::Ready(None)
            }
            Err(e) => {
                this.end(false);
                Poll::Ready(Some(Err(e.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
