//! Upstream HTTP/1 connections to one replica, kept alive and reused: a request takes
//! a connection that is ready, or opens one; the connection goes back at once and is
//! ready again when its exchange is over.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::ProxyBody;

/// A handle to send requests on one upstream connection.
pub type Sender = http1::SendRequest<ProxyBody>;

/// Most connections kept per replica.
const MAX_KEPT: usize = 1024;

/// The connections to one replica.
#[derive(Default)]
pub struct Pool {
    conns: Mutex<Vec<Sender>>,
}

impl Pool {
    /// A connection ready for a request, if one is.
    pub fn take(&self) -> Option<Sender> {
        let mut conns = self.conns.lock().expect("not poisoned");
        let mut i = conns.len();
        while i > 0 {
            i -= 1;
            if conns[i].is_closed() {
                conns.swap_remove(i);
            } else if conns[i].is_ready() {
                return Some(conns.swap_remove(i));
            }
        }
        None
    }

    /// Keeps a connection for later requests.
    pub fn put(&self, sender: Sender) {
        let mut conns = self.conns.lock().expect("not poisoned");
        if conns.len() < MAX_KEPT && !sender.is_closed() {
            conns.push(sender);
        }
    }

    /// Drops every kept connection (the replica left).
    pub fn clear(&self) {
        self.conns.lock().expect("not poisoned").clear();
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The replica refused, reset, or was unreachable.
    Io(std::io::Error),
    /// It did not answer within the connect timeout.
    Timeout,
    /// The HTTP/1 handshake failed.
    Handshake(hyper::Error),
}

/// Opens a connection to `addr`. With `upgrades` the connection can be taken over
/// after a `101 Switching Protocols` (it is then not pooled).
pub async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    upgrades: bool,
) -> Result<Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Err(_) => return Err(ConnectError::Timeout),
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Handshake)?;
    if upgrades {
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
    } else {
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    Ok(sender)
}
