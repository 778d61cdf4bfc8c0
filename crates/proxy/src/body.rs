//! The one body type of the data path, so nothing is boxed per request: empty, bytes
//! held in memory (replayable on retry), a stream from the client, bytes already read
//! followed by the rest of the stream, or a replica's response streaming to the client
//! (boxed: only bodies too large to read whole take that way).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::endpoint::Endpoint;
use crate::upstream::Streaming;

/// The error of a body: the client's, or the replica's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Counts a request against its replica's in-flight number while it lives.
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    /// Starts counting.
    pub fn start(endpoint: Arc<Endpoint>) -> InFlight {
        endpoint.begin();
        InFlight(endpoint)
    }

    /// The replica it counts against.
    pub fn endpoint(&self) -> &Endpoint {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

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
