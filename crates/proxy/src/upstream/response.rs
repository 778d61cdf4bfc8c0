//! A replica's response head, and how its body is framed (RFC 9112 §6.3): no body
//! after `HEAD`, 1xx, 204 and 304; `Transfer-Encoding` ending in `chunked` is
//! decoded; any other transfer coding, or no length at all, is read to the end of the
//! connection; a `Content-Length` must be one number. A response carrying both is
//! refused: the replica's bytes are never passed on with framing shoal had to guess.

use std::io;
use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::response;
use hyper::{Method, Response, StatusCode, Version};

use super::{invalid, MAX_HEAD, MAX_HEADERS};

/// A response head, and how its body is framed.
pub struct Head {
    /// Status, version and headers.
    pub parts: response::Parts,
    /// How the body is framed.
    pub framing: Framing,
    /// Whether the replica keeps the connection after this response.
    pub keep_alive: bool,
}

/// How a response body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Up to the end of the connection.
    Close,
}

/// Takes the response head to a request with `method` off the front of `buf`,
/// dropping interim (1xx) responses other than `101 Switching Protocols` before it;
/// `Ok(None)` while it is incomplete. A head that does not parse, or that is still
/// incomplete past 64 KiB, is an error.
pub fn parse(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, io::Error> {
    loop {
        // Uninitialised: zeroing room for every header a head may have would cost
        // more than parsing the few a response has.
        let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut r = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut r,
            buf,
            &mut headers,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
            // Too large whether it arrived whole or in pieces.
            Ok(httparse::Status::Complete(_)) => return Err(too_large()),
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(too_large()),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(invalid(format!("bad response head: {e}"))),
        };
        let code = r.code.unwrap_or(0);
        if (100..200).contains(&code) && code != 101 {
            buf.advance(len);
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
        buf.advance(len);
        let framing = framing(method, status, &map)?;
        let keep_alive = framing != Framing::Close && status != 101 && keeps_alive(version, &map);
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

fn too_large() -> io::Error {
    invalid("the response head is too large")
}

/// Whether what the replica sent before the request's body was all there stops the
/// body: a final status from 300 up, or bytes that are not a response, do; a 2xx
/// does not; `None` while the status line is still incomplete. Complete interim
/// (1xx, not 101) heads are dropped first.
pub fn stops_body(buf: &mut BytesMut) -> Option<bool> {
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
    fn interim_heads_are_dropped_and_a_partial_head_waits() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-"[..]);
        assert!(parse(&mut buf, &Method::GET).unwrap().is_none());
        buf.extend_from_slice(b"length: 2\r\n\r\nhi");
        let head = parse(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.parts.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"hi", "the body stays in the buffer");
        let mut endless = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        endless.extend_from_slice(b"x-a: ");
        endless.extend_from_slice(&vec![b'b'; MAX_HEAD]);
        assert!(parse(&mut endless, &Method::GET).is_err(), "bounded");
        endless.extend_from_slice(b"\r\n\r\n");
        assert!(
            parse(&mut endless, &Method::GET).is_err(),
            "whole or in pieces"
        );
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
}
