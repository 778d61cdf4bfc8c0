//! shoal's data path: it owns every published port and forwards what arrives there to
//! the ready replicas of the service.
//!
//! # Layout
//! - [`backends`]: the set of replica addresses behind a port, replaced whole and
//!   atomically, read without locks on the connection path.
//! - [`tcp`]: per-connection forwarding.
//!
//! This crate knows nothing of containers or Compose: it is handed addresses.

pub mod backends;
pub mod tcp;

pub use backends::Backends;
pub use tcp::serve;
