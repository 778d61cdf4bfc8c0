//! How one published port behaves: protocol, balancing, retries, timeouts.

use std::time::Duration;

use crate::endpoint::EjectPolicy;

/// How connections are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Look at the first bytes: HTTP/1.x and HTTP/2 per request, anything else per
    /// connection.
    Auto,
    /// HTTP only (no sniffing delay for server-speaks-first protocols is needed).
    Http,
    /// Per connection, never parsed.
    Tcp,
}

/// What requests are affine to, with the hash strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOn {
    /// A request header's value.
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// The client's address.
    ClientIp,
}

/// How a replica is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Power of two choices over latency × (in-flight + 1).
    LeastRequest,
    /// Each in turn.
    RoundRobin,
    /// The same key to the same replica while it is there (rendezvous hashing).
    Hash(HashOn),
}

/// The settings of one published port.
#[derive(Clone, Debug)]
pub struct LbConfig {
    /// The service, named in errors.
    pub service: String,
    /// How connections are read.
    pub protocol: Protocol,
    /// How a replica is chosen.
    pub strategy: Strategy,
    /// Extra attempts for a request that failed safely.
    pub retries: u32,
    /// Share of requests that may be retried (plus 10 retries a second).
    pub retry_ratio: f64,
    /// Whole-request limit, to the response head.
    pub timeout: Duration,
    /// Connect limit per attempt.
    pub connect_timeout: Duration,
    /// Limit for a client to send a request head (slowloris) or to start the next one.
    pub header_timeout: Duration,
    /// Longest request head, bytes.
    pub max_header_bytes: usize,
    /// How long a request waits for a replica when none is ready.
    pub wait_for_ready: Duration,
    /// Passive ejection.
    pub eject: EjectPolicy,
}

impl LbConfig {
    /// The defaults, for `service`.
    pub fn new(service: impl Into<String>) -> LbConfig {
        LbConfig {
            service: service.into(),
            protocol: Protocol::Auto,
            strategy: Strategy::LeastRequest,
            retries: 2,
            retry_ratio: 0.2,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            wait_for_ready: Duration::from_secs(3),
            eject: EjectPolicy::default(),
        }
    }
}
