//! shoal's data path: it owns every published port and spreads what arrives there over
//! the ready replicas of the service.
//!
//! # The public face
//! The control plane hands a [`DataPath`] a [`Route`] per published port (a
//! [`Backends`] set it replaces whole as replicas come and go, and an [`LbConfig`]);
//! it reads back [`Stats`] snapshots ([`Snapshot`]) per port and per replica
//! ([`Endpoint`]), and drains a leaving replica through [`Backends::drain`].
//!
//! # Layout (private modules, lowest first)
//! - `clock`, `config`, `budget` (the retry budget), `metrics` (counters and latency
//!   histograms), `framing` (a strict look at request framing against smuggling),
//!   `error`.
//! - `upstream`: HTTP/1.1 connections to a replica, their pool, and the pure parsers
//!   of what replicas send.
//! - `endpoint`: one replica: load, latency estimate, failure accrual, connections;
//!   `backends`: the replica set, swapped whole and atomically; draining; `balance`:
//!   least-request P2C, round robin, rendezvous hashing.
//! - `route`: a port's replicas, settings, budget and counters; `client`: a client
//!   connection, its bytes counted.
//! - `body`: the one body type of the path (no boxing per request); `exchange`: one
//!   request and response over an upstream connection.
//! - `rewrite` (forwarding and hop-by-hop headers), `forward` (choice, exchange,
//!   retries), `tunnel` (upgrades), `http` (the client-facing HTTP/1 and HTTP/2
//!   servers), `tcp` (the per-connection path), `listener` (accepting and sniffing).
//! - `workers`: the worker threads, one runtime and one socket per port each.
//!
//! This crate knows nothing of containers or Compose: it is handed addresses. It never
//! takes a lock on the request path that a writer can hold for long: the replica set
//! is read through `arc-swap`; per-replica state is atomics and short mutexes.

mod backends;
mod balance;
mod body;
mod budget;
mod client;
mod clock;
mod config;
mod endpoint;
mod error;
mod exchange;
mod forward;
mod framing;
mod http;
mod listener;
mod metrics;
mod rewrite;
mod route;
mod tcp;
mod tunnel;
mod upstream;
mod workers;

pub use backends::Backends;
pub use clock::now_ms;
pub use config::{HashOn, LbConfig, Protocol, Strategy};
pub use endpoint::{EjectPolicy, Endpoint};
pub use listener::serve;
pub use metrics::{Snapshot, Stats, BUCKETS_US};
pub use route::Route;
pub use workers::DataPath;

/// The parsers of what clients and replicas send, for the fuzz targets
/// (tests/fuzz.rs); not part of the interface.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::framing::Tracker;
    pub use crate::upstream::{parse as parse_response_head, Decoded, Decoder, Framing};
}
