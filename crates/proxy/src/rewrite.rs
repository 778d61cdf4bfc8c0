//! The request head rewritten for the replica: origin-form target, one `Host` (the
//! absolute target's authority when there is one), the forwarding headers
//! (`X-Forwarded-*`, `Forwarded`), no hop-by-hop headers nor a 100-continue
//! expectation the proxy has met, HTTP/1.1; and the hop-by-hop headers taken off the
//! response.

use std::net::SocketAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Version};

use crate::error::ProxyError;

/// The client of a connection, with what its requests' forwarding headers need,
/// computed once per connection.
pub struct Peer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its IP address, as an `X-Forwarded-For` value.
    ip: HeaderValue,
    /// Its IP address as a `Forwarded` node (IPv6 quoted and bracketed).
    node: String,
}

impl Peer {
    /// The client at `addr`.
    pub fn new(addr: SocketAddr) -> Peer {
        let ip = addr.ip().to_string();
        let node = if addr.is_ipv6() {
            format!("\"[{ip}]\"")
        } else {
            ip.clone()
        };
        Peer {
            addr,
            ip: HeaderValue::from_str(&ip).expect("an IP address is a valid header value"),
            node,
        }
    }
}

/// Hop-by-hop headers: they describe one connection, not the message. A static, not a
/// const: a const array of header names is built and dropped at every use.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup each.
    let any = headers
        .keys()
        .any(|k| HOP_BY_HOP.contains(k) || k == header::UPGRADE);
    if !any {
        if keep_upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        if keep_upgrade && n == header::CONNECTION {
            continue;
        }
        headers.remove(n);
    }
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    } else {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Rewrites the head for the replica: origin-form URI, Host, forwarding headers, no
/// hop-by-hop headers, HTTP/1.1.
pub fn rewrite_request(parts: &mut Parts, peer: &Peer, upgrade: bool) -> Result<(), ProxyError> {
    if parts.method == Method::CONNECT {
        return Err(ProxyError::client("CONNECT is not proxied to replicas"));
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let (line, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        // RFC 9112 §3.2: which one a replica would take is anyone's guess.
        return Err(ProxyError::client("two Host header lines"));
    }
    // A target in absolute form names the host itself, and wins over the Host line
    // (RFC 9112 §3.2.2); its user information is no part of it.
    let host = match parts.uri.authority() {
        Some(a) => {
            let authority = a.as_str().rsplit('@').next().unwrap_or_default();
            HeaderValue::from_str(authority).ok()
        }
        None => line.cloned(),
    };
    let Some(host) = host else {
        return Err(ProxyError::client("the request has no Host"));
    };
    // The proxy meets a 100-continue expectation itself (hyper answers 100 when the
    // body is first read): the replica gets the body at once, with nothing to expect.
    if parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        parts.headers.remove(header::EXPECT);
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = pq
            .parse()
            .map_err(|_| ProxyError::client("bad request target"))?;
    }
    strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.headers.insert(header::HOST, host.clone());
    let value = |s: String| {
        HeaderValue::from_str(&s).map_err(|_| ProxyError::client("bad forwarding header"))
    };
    let xff = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => value(format!(
            "{prev}, {}",
            peer.node.trim_matches(['"', '[', ']'])
        ))?,
        None => peer.ip.clone(),
    };
    let host_text = host.to_str().unwrap_or_default();
    let forwarded = match parts
        .headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => format!("{prev}, for={};proto=http;host=\"{host_text}\"", peer.node),
        None => format!("for={};proto=http;host=\"{host_text}\"", peer.node),
    };
    parts.headers.insert("x-forwarded-for", xff);
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    parts.headers.insert("x-forwarded-host", host);
    parts.headers.insert(header::FORWARDED, value(forwarded)?);
    parts.version = Version::HTTP_11;
    Ok(())
}
