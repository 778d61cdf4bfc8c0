//! Per-connection forwarding: each accepted connection is joined to one backend and
//! bytes are copied both ways until either side closes.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::backends::Backends;

/// How long a connection waits for a replica when none is ready (one may be starting).
const WAIT_FOR_BACKEND: Duration = Duration::from_secs(5);
/// How long one connect attempt to a replica may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Accepts connections on `listener` until `shutdown` turns true, forwarding each to a
/// backend. A backend that refuses the connection is skipped for the next one: the
/// client never sees a connect failure while another replica is up.
pub async fn serve(
    listener: TcpListener,
    backends: Arc<Backends>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (client, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let backends = backends.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let Some(mut upstream) = connect(&backends).await else {
                tracing::debug!(%peer, "no replica ready: closing");
                return;
            };
            let mut client = client;
            let _ = client.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                _ = stop.wait_for(|stop| *stop) => {}
            }
        });
    }
}

async fn connect(backends: &Backends) -> Option<TcpStream> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_BACKEND;
    loop {
        for addr in backends.rotation() {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Some(s);
                }
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "connect failed, trying the next replica")
                }
                Err(_) => tracing::debug!(%addr, "connect timed out, trying the next replica"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server(tag: u8) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1];
                    while s.read_exact(&mut buf).await.is_ok() {
                        if s.write_all(&[tag]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn spreads_connections_and_skips_dead_backends() {
        let a = echo_server(b'a').await;
        let b = echo_server(b'b').await;
        // A port nothing listens on: connects are refused.
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let backends = Backends::new();
        backends.replace(vec![a, b, dead]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, backends, stop_rx));

        let mut seen = Vec::new();
        for _ in 0..9 {
            let mut c = TcpStream::connect(front).await.unwrap();
            c.write_all(b"x").await.unwrap();
            let mut r = [0u8; 1];
            c.read_exact(&mut r).await.unwrap();
            seen.push(r[0]);
        }
        let a_count = seen.iter().filter(|t| **t == b'a').count();
        let b_count = seen.iter().filter(|t| **t == b'b').count();
        assert_eq!(a_count + b_count, 9, "every connection was served");
        assert!(a_count >= 3 && b_count >= 3, "{seen:?}");

        stop_tx.send(true).unwrap();
        server.await.unwrap();
    }
}
