//! Accepting on a published port: each connection is looked at (its first bytes) and
//! served per request as HTTP/1 or HTTP/2, or per connection as TCP.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::client::Counted;
use crate::config::Protocol;
use crate::http::{serve_http1, serve_http2};
use crate::route::Route;

/// How long to wait for a client's first bytes before treating the connection as
/// plain TCP (a protocol where the server speaks first).
const SNIFF_TIMEOUT: Duration = Duration::from_millis(300);

/// The HTTP/2 connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection speaks.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Http1,
    Http2,
    Other,
}

/// Accepts until `shutdown` turns true.
pub async fn serve(listener: TcpListener, route: Arc<Route>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let route = route.clone();
        tokio::spawn(async move {
            let seen = match route.config.protocol {
                Protocol::Tcp => Seen::Other,
                Protocol::Http => match sniff(&stream).await {
                    Seen::Http2 => Seen::Http2,
                    _ => Seen::Http1,
                },
                Protocol::Auto => sniff(&stream).await,
            };
            let stream = Counted::new(stream, route.clone());
            match seen {
                Seen::Http1 => serve_http1(stream, peer, route).await,
                Seen::Http2 => serve_http2(stream, peer, route).await,
                Seen::Other => crate::tcp::serve_connection(stream, &route).await,
            }
        });
    }
}

/// Peeks at the first bytes without consuming them.
async fn sniff(stream: &TcpStream) -> Seen {
    let mut buf = [0u8; 24];
    let deadline = tokio::time::Instant::now() + SNIFF_TIMEOUT;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return Seen::Other,
        };
        if n == 0 {
            return Seen::Other;
        }
        match classify(&buf[..n]) {
            Some(seen) => return seen,
            None => {
                // Not enough bytes yet to tell.
                if tokio::time::Instant::now() >= deadline {
                    return Seen::Other;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// `None` while the bytes are a prefix of something HTTP.
fn classify(bytes: &[u8]) -> Option<Seen> {
    let n = bytes.len().min(H2_PREFACE.len());
    if bytes[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Seen::Http2);
    }
    // An HTTP/1 request line starts with a method token and a space.
    let token_len = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if token_len == bytes.len() {
        return (token_len > 16).then_some(Seen::Other);
    }
    Some(if token_len > 0 && bytes[token_len] == b' ' {
        Seen::Http1
    } else {
        Seen::Other
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_first_bytes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Seen::Http1));
        assert_eq!(classify(b"OPTIONS * HTTP/1.1"), Some(Seen::Http1));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some(Seen::Http2)
        );
        assert_eq!(classify(b"PRI * HT"), None);
        assert_eq!(classify(&[0, 0, 0, 8, 4, 210, 22, 47]), Some(Seen::Other));
        assert_eq!(classify(b"\x16\x03\x01"), Some(Seen::Other));
    }
}
