//! The framing of a record in a segment.
//!
//! ```text
//! u32 LE  length of the body
//! u32 LE  CRC-32 (IEEE) of the body
//! body:   u8 kind, then
//!   kind 0, a stream:  u32 id, u8 stream, u32 replica, u16 len + service, u16 len + container
//!   kind 1, a line:    u32 stream id, i64 nanoseconds, text (the rest)
//!   kind 2, joined:    u32 stream id, i64 nanoseconds of the first line,
//!                      i64 of the last, u32 lines at that last time, text
//! ```
//!
//! Stream ids are local to a segment: a segment names each stream once, before its
//! first line, so that every segment reads on its own.

use crate::{Stream, StreamKey};

/// Bytes of framing before a body.
pub const HEADER: usize = 8;

/// A decoded body.
#[derive(Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// Names stream `id` of this segment.
    Stream { id: u32, key: StreamKey },
    /// A line (or lines joined into one record).
    Line {
        id: u32,
        ts: i64,
        /// For lines joined into one record: the last one's time, and how many of
        /// the joined lines have that time.
        last: Option<(i64, u32)>,
        text: &'a [u8],
    },
}

/// What reading a record at some offset found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read<'a> {
    /// A whole record, and the bytes it spans.
    Record(Body<'a>, usize),
    /// The bytes end inside the record: more may come (or it was torn).
    Partial,
    /// The record is damaged: a bad checksum or an impossible body.
    Corrupt,
}

pub fn encode_stream(out: &mut Vec<u8>, id: u32, key: &StreamKey) {
    let mut body = Vec::with_capacity(16 + key.service.len() + key.container.len());
    body.push(0);
    body.extend_from_slice(&id.to_le_bytes());
    body.push(key.stream.code());
    body.extend_from_slice(&key.replica.to_le_bytes());
    for s in [&key.service, &key.container] {
        let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        body.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        body.extend_from_slice(bytes);
    }
    frame(out, &body);
}

pub fn encode_line(out: &mut Vec<u8>, id: u32, ts: i64, last: Option<(i64, u32)>, text: &str) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    match last {
        None => {
            out.push(1);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&ts.to_le_bytes());
        }
        Some((last_ts, lines)) => {
            out.push(2);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&ts.to_le_bytes());
            out.extend_from_slice(&last_ts.to_le_bytes());
            out.extend_from_slice(&lines.to_le_bytes());
        }
    }
    out.extend_from_slice(text.as_bytes());
    let body_len = out.len() - start - HEADER;
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn frame(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// The record at the start of `buf`.
pub fn read(buf: &[u8]) -> Read<'_> {
    if buf.len() < HEADER {
        return Read::Partial;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > (64 << 20) {
        return Read::Corrupt;
    }
    let Some(body) = buf.get(HEADER..HEADER + len) else {
        return Read::Partial;
    };
    if crc32fast::hash(body) != crc {
        return Read::Corrupt;
    }
    match decode(body) {
        Some(b) => Read::Record(b, HEADER + len),
        None => Read::Corrupt,
    }
}

fn decode(body: &[u8]) -> Option<Body<'_>> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?));
    let i64_at = |at: usize| Some(i64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?));
    match *body.first()? {
        0 => {
            let id = u32_at(1)?;
            let stream = Stream::from_code(*body.get(5)?)?;
            let replica = u32_at(6)?;
            let mut at = 10;
            let mut text = || -> Option<String> {
                let len = u16::from_le_bytes(body.get(at..at + 2)?.try_into().ok()?) as usize;
                let s = std::str::from_utf8(body.get(at + 2..at + 2 + len)?).ok()?;
                at += 2 + len;
                Some(s.to_string())
            };
            let service = text()?;
            let container = text()?;
            Some(Body::Stream {
                id,
                key: StreamKey {
                    service,
                    replica,
                    container,
                    stream,
                },
            })
        }
        1 => Some(Body::Line {
            id: u32_at(1)?,
            ts: i64_at(5)?,
            last: None,
            text: body.get(13..)?,
        }),
        2 => Some(Body::Line {
            id: u32_at(1)?,
            ts: i64_at(5)?,
            last: Some((i64_at(13)?, u32_at(21)?)),
            text: body.get(25..)?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StreamKey {
        StreamKey {
            service: "web".into(),
            replica: 2,
            container: "abc123".into(),
            stream: Stream::Stderr,
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_seen() {
        let mut buf = Vec::new();
        encode_stream(&mut buf, 7, &key());
        let first = buf.len();
        encode_line(&mut buf, 7, 42, None, "hello");
        encode_line(&mut buf, 7, 43, Some((45, 3)), "a\nb\nc");
        let Read::Record(Body::Stream { id, key: k }, n) = read(&buf) else {
            panic!()
        };
        assert_eq!((id, &k, n), (7, &key(), first));
        let Read::Record(line, n2) = read(&buf[n..]) else {
            panic!()
        };
        assert_eq!(
            line,
            Body::Line {
                id: 7,
                ts: 42,
                last: None,
                text: b"hello"
            }
        );
        let Read::Record(Body::Line { last, text, .. }, _) = read(&buf[n + n2..]) else {
            panic!()
        };
        assert_eq!((last, text), (Some((45, 3)), &b"a\nb\nc"[..]));
        // Cut anywhere inside a record: partial; a flipped bit: corrupt.
        for cut in 1..n2 {
            assert_eq!(read(&buf[n..n + cut]), Read::Partial, "cut at {cut}");
        }
        let mut bad = buf.clone();
        bad[n + HEADER + 3] ^= 1;
        assert_eq!(read(&bad[n..]), Read::Corrupt);
    }
}
