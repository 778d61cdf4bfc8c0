//! The request head as the replicas get it: origin-form target, HTTP/1.1, the
//! client's headers but the framing ones, and the framing of the body shoal sends.
//! Encoded once per request, for every attempt.

use std::io::Write as _;

use hyper::header;
use hyper::http::request;
use hyper::Method;

/// What is known of a request's body before it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// There is none.
    Empty,
    /// Exactly this many bytes.
    Exact(u64),
    /// A stream of unknown length.
    Unknown,
}

/// A request ready for any replica.
pub struct Outgoing {
    pub(super) head: Vec<u8>,
    pub(super) framing: Sent,
}

impl Outgoing {
    /// The request with head `head` (already rewritten for the replicas) and a body
    /// of `length`.
    pub fn new(head: &request::Parts, length: BodyLength) -> Outgoing {
        let framing = match length {
            BodyLength::Empty
                if head.headers.contains_key(header::CONTENT_LENGTH)
                    || matches!(head.method, Method::POST | Method::PUT | Method::PATCH) =>
            {
                Sent::Length(0)
            }
            BodyLength::Empty => Sent::Nothing,
            BodyLength::Exact(n) => Sent::Length(n),
            BodyLength::Unknown => Sent::Chunked,
        };
        let mut out = Vec::with_capacity(512);
        encode_head(head, framing, &mut out);
        Outgoing { head: out, framing }
    }

    /// Whether the body goes chunked.
    pub fn chunked(&self) -> bool {
        self.framing == Sent::Chunked
    }
}

/// How the body of a request is framed on its way to the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sent {
    /// No body and no framing header (a `GET` without one).
    Nothing,
    /// `Content-Length`.
    Length(u64),
    /// Chunked: a streamed body of unknown length.
    Chunked,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_carries_the_framing_of_what_is_sent() {
        let (mut parts, ()) = hyper::Request::post("http://h/a?b")
            .header("host", "h")
            .header("content-length", "99")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap()
            .into_parts();
        let head = |parts: &request::Parts, length| Outgoing::new(parts, length).head;
        assert_eq!(
            head(&parts, BodyLength::Exact(3)),
            b"POST /a?b HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\n"
        );
        assert_eq!(
            head(&parts, BodyLength::Unknown),
            b"POST /a?b HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            head(&parts, BodyLength::Empty),
            b"POST /a?b HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n",
            "an empty POST still says its length"
        );
        parts.method = Method::GET;
        parts.headers.remove(header::CONTENT_LENGTH);
        assert_eq!(
            head(&parts, BodyLength::Empty),
            b"GET /a?b HTTP/1.1\r\nhost: h\r\n\r\n"
        );
    }
}
