//! shoal's data path: it owns every published port and spreads what arrives there over
//! the ready replicas of the service.
//!
//! # Layout
//! - [`listener`]: accepting, and telling HTTP/1, HTTP/2 and other TCP apart.
//! - [`http`]: the per-request path: checks, head rewriting, retries.
//! - [`tcp`]: the per-connection path.
//! - [`backends`]: the replica set, swapped whole and atomically; draining.
//! - [`endpoint`]: one replica: load, latency estimate, failure accrual, connections.
//! - [`balance`]: least-request P2C, round robin, rendezvous hashing.
//! - [`upstream`]: the HTTP/1.1 exchange with a replica, and its kept connections.
//! - [`body`]: the one body type of the path (no boxing per request).
//! - [`framing`]: a strict look at request framing against smuggling.
//! - [`budget`]: the retry budget.
//! - [`metrics`]: counters and latency histograms.
//! - [`DataPath`]: the worker threads, one runtime and one socket per port each.
//! - [`config`], [`error`].
//!
//! This crate knows nothing of containers or Compose: it is handed addresses. It never
//! takes a lock on the request path that a writer can hold for long: the replica set
//! is read through `arc-swap`; per-replica state is atomics and short mutexes.

pub mod backends;
pub mod balance;
pub mod body;
pub mod budget;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod framing;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod tcp;
pub mod upstream;
mod workers;

pub use backends::Backends;
pub use config::{HashOn, LbConfig, Protocol, Strategy};
pub use http::Route;
pub use listener::serve;
pub use workers::DataPath;
