//! The log store: what every replica printed, kept in the project's state directory
//! after its container is gone, and read back by time, replica, stream and pattern.
//!
//! The shape is Loki's, scaled to one host: lines are appended in arrival order to
//! segment files (`00000001.seg`, ...), each record framed with its length and a
//! CRC-32 of its content; a segment holds at most [`Limits::segment_bytes`] and, once
//! full, is sealed with a small index beside it (`00000001.idx`: its time range and,
//! per stream, the count and the last position). A query opens only the segments
//! whose index says they can hold a match, and scans those sequentially, which is
//! what a disk and a regex engine do fastest. Old segments go whole, by the total
//! size and the age the [`Limits`] allow.
//!
//! A stream is one container's stdout or stderr (or shoal's own events about a
//! replica), named by service, replica number and container; the generations of a
//! replica (restarts, recreations, rollouts) are its streams in time order.
//!
//! One process writes ([`Store`], the control plane); any number read ([`Reader`],
//! `shoal logs`), also while it writes. A record torn by a crash can only be the last
//! of the newest segment: [`Store::open`] cuts it, and nothing before it is lost.

mod read;
mod record;
mod segment;
mod store;
mod time;

use std::sync::Arc;

pub use read::{Cursor, Filter, Reader, Tail};
pub use store::{now_nanos, Position, Store};
pub use time::{format_rfc3339, parse_rfc3339};

/// Which output of a container a line is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// An event shoal recorded about the replica.
    Event,
}

impl Stream {
    /// `stdout`, `stderr` or `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Event => "event",
        }
    }

    fn code(self) -> u8 {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
            Stream::Event => 2,
        }
    }

    fn from_code(code: u8) -> Option<Stream> {
        match code {
            0 => Some(Stream::Stdout),
            1 => Some(Stream::Stderr),
            2 => Some(Stream::Event),
            _ => None,
        }
    }
}

/// The stream a line belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// The compose service.
    pub service: String,
    /// The replica number.
    pub replica: u32,
    /// The container (its id), one generation of the replica.
    pub container: String,
    /// stdout, stderr or shoal's events.
    pub stream: Stream,
}

/// One stored record: a line, or several joined (a stack trace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its stream.
    pub key: Arc<StreamKey>,
    /// When the engine saw its first line, in nanoseconds since the Unix epoch.
    pub ts: i64,
    /// The text, without the trailing newline; joined lines are separated by `\n`.
    pub text: String,
}

/// How much the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A segment is sealed when it reaches this size.
    pub segment_bytes: u64,
    /// Sealed segments are removed, oldest first, while all of them together are
    /// larger (so the store exceeds it by at most the segment being written).
    pub max_bytes: u64,
    /// Sealed segments whose newest line is older are removed.
    pub max_age: std::time::Duration,
}

impl Default for Limits {
    /// 16 MiB segments, 512 MiB in all, seven days.
    fn default() -> Limits {
        Limits {
            segment_bytes: 16 << 20,
            max_bytes: 512 << 20,
            max_age: std::time::Duration::from_secs(7 * 24 * 3600),
        }
    }
}
