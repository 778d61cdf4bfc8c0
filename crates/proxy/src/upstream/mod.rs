//! The upstream side of the HTTP path: HTTP/1.1 connections to one replica, kept alive
//! and reused, each used by one exchange at a time in the request's own task.
//!
//! hyper's client runs every connection in a task of its own and hands each request
//! to it over a channel; on one core that hop, and a second dispatcher, cost as much
//! as the rest of the proxy (see bench/README.md). So the exchange is written here,
//! on httparse: the request's task takes an idle connection, writes the head (and a
//! body in memory) in one write, reads the response head, and either reads a small
//! body whole and puts the connection back at once, or streams the body to the
//! client and puts the connection back after its last byte.
//!
//! - [`pool`]: a replica's idle connections, a slot per data-path worker.
//! - [`conn`]: one connection: connect, write, watch an upload, read.
//! - [`request`]: the request head as the replicas get it, encoded once.
//! - [`response`]: the response head and how its body is framed.
//! - [`decoder`]: the body's framing undone over a buffer (length, chunked, close).
//!
//! Nothing here knows of the balancer: a connection is handed its replica's address,
//! counters and pool. The parsers ([`response::parse`], [`decoder::Decoder`]) are
//! pure functions of a buffer, bounded in what they hold, and fuzzed
//! (tests/fuzz.rs).

mod conn;
mod decoder;
mod pool;
mod request;
mod response;

pub use conn::{connect, open, Conn, ConnectError, Sending};
pub use decoder::{Decoded, Decoder};
pub use pool::Pool;
pub use request::{BodyLength, Outgoing};
pub use response::{parse, Framing, Head};

use std::io;

/// Most bytes of a response head.
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines in a response head (hyper's limit is 100).
const MAX_HEADERS: usize = 128;
/// Most bytes of a chunk-size line or of a trailer line.
const MAX_LINE: usize = 4096;
/// Reads ask for at least this much room.
const READ_SIZE: usize = 8192;

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the replica closed the connection before the end of the body",
    )
}
