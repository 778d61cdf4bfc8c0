//! Errors of the data path, saying who caused them (the client's are answered with
//! the connection closed) and which status the client gets. Whether another replica
//! may be tried is decided where the attempt failed (`forward`), never from text.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::StatusCode;

use crate::upstream::ConnectError;

/// Who caused a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The client sent something shoal will not forward.
    Client,
    /// A replica failed (or none was there).
    Replica,
    /// shoal's own limits (timeouts).
    Shoal,
}

/// A request that could not be served.
#[derive(Debug)]
pub struct ProxyError {
    /// Who caused it.
    pub origin: Origin,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    BadRequest(String),
    NoReplica,
    Connect(SocketAddr, String),
    Replica(String),
    Timeout(Duration),
}

impl ProxyError {
    /// The client's request is refused.
    pub fn client(why: impl Into<String>) -> ProxyError {
        ProxyError {
            origin: Origin::Client,
            kind: Kind::BadRequest(why.into()),
        }
    }

    /// No replica is ready.
    pub fn no_replica() -> ProxyError {
        ProxyError {
            origin: Origin::Replica,
            kind: Kind::NoReplica,
        }
    }

    /// Connecting to a replica failed.
    pub fn connect(addr: SocketAddr, e: ConnectError) -> ProxyError {
        let why = match e {
            ConnectError::Io(e) => e.to_string(),
            ConnectError::Timeout => "connect timed out".into(),
        };
        ProxyError {
            origin: Origin::Replica,
            kind: Kind::Connect(addr, why),
        }
    }

    /// A replica failed during the exchange.
    pub fn replica(why: impl Into<String>) -> ProxyError {
        ProxyError {
            origin: Origin::Replica,
            kind: Kind::Replica(why.into()),
        }
    }

    /// The request took longer than the port allows.
    pub fn timeout(limit: Duration) -> ProxyError {
        ProxyError {
            origin: Origin::Shoal,
            kind: Kind::Timeout(limit),
        }
    }

    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::BadRequest(_) => StatusCode::BAD_REQUEST,
            Kind::NoReplica => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Connect(..) | Kind::Replica(_) => StatusCode::BAD_GATEWAY,
            Kind::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::BadRequest(why) => write!(f, "bad request: {why}"),
            Kind::NoReplica => write!(f, "no replica is ready"),
            Kind::Connect(addr, why) => write!(f, "cannot connect to replica {addr}: {why}"),
            Kind::Replica(why) => write!(f, "replica failed: {why}"),
            Kind::Timeout(d) => write!(f, "no response within {}s", d.as_secs_f64()),
        }
    }
}

impl std::error::Error for ProxyError {}
