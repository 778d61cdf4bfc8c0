//! A response body's framing undone over a buffer: a length counted down, chunked
//! transfer coding decoded (sizes with extensions, the CRLF after each chunk, trailer
//! lines dropped), or everything up to the end of the connection. Pure: it is handed
//! what was read and says what of it is body, so it is tested and fuzzed without a
//! socket. Bad chunk framing, and framing lines longer than 4 KiB, are errors.

use std::io;

use bytes::{Buf, Bytes, BytesMut};

use super::response::Framing;
use super::{invalid, MAX_LINE};

/// Where in a body the decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// This many bytes to go.
    Length(u64),
    /// A chunk-size line next.
    ChunkSize,
    /// This many bytes of chunk data to go, then CRLF.
    ChunkData(u64),
    /// The CRLF after chunk data.
    ChunkEnd,
    /// Trailer lines up to the empty one.
    Trailers,
    /// To the end of the connection.
    Close,
    /// The body is over.
    Done,
}

/// What the buffer held.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The next piece of the body.
    Data(Bytes),
    /// The body is over; what is left in the buffer is not part of it.
    End,
    /// More must be read first.
    More,
}

impl Decoder {
    /// The decoder of a body framed as `framing`.
    pub fn new(framing: Framing) -> Decoder {
        match framing {
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::ChunkSize,
            Framing::Close => Decoder::Close,
        }
    }

    /// Takes the next piece of the body off the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, io::Error> {
        loop {
            match *self {
                Decoder::Done => return Ok(Decoded::End),
                Decoder::Length(0) => *self = Decoder::Done,
                Decoder::Length(n) | Decoder::ChunkData(n) if !buf.is_empty() => {
                    let take = n.min(buf.len() as u64);
                    let data = buf.split_to(take as usize).freeze();
                    *self = match *self {
                        Decoder::Length(_) => Decoder::Length(n - take),
                        _ if n == take => Decoder::ChunkEnd,
                        _ => Decoder::ChunkData(n - take),
                    };
                    return Ok(Decoded::Data(data));
                }
                Decoder::Close if !buf.is_empty() => {
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                Decoder::ChunkSize => {
                    let (used, size) = match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, _))) if used > MAX_LINE => {
                            return Err(too_long());
                        }
                        Ok(httparse::Status::Complete(line)) => line,
                        Ok(httparse::Status::Partial) => return more(buf),
                        Err(_) => return Err(invalid("bad chunk size")),
                    };
                    buf.advance(used);
                    *self = match size {
                        0 => Decoder::Trailers,
                        n => Decoder::ChunkData(n),
                    };
                }
                Decoder::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    *self = Decoder::ChunkSize;
                }
                Decoder::Trailers => {
                    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                        return more(buf);
                    };
                    if end + 2 > MAX_LINE {
                        return Err(too_long());
                    }
                    buf.advance(end + 2);
                    if end == 0 {
                        *self = Decoder::Done;
                    }
                }
                Decoder::Length(_) | Decoder::ChunkData(_) | Decoder::Close => {
                    return Ok(Decoded::More)
                }
            }
        }
    }

    /// The connection ended: the end of a body read to it, else a body cut short.
    pub fn end_of_input(&mut self) -> Result<(), io::Error> {
        match self {
            Decoder::Close => {
                *self = Decoder::Done;
                Ok(())
            }
            _ => Err(super::cut_short()),
        }
    }

    /// Whether no more body is to come.
    pub fn is_done(&self) -> bool {
        matches!(self, Decoder::Done | Decoder::Length(0))
    }

    /// The body bytes still to come, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            _ => None,
        }
    }
}

/// A framing line is not all there yet: wait for it, up to its limit.
fn more(buf: &[u8]) -> Result<Decoded, io::Error> {
    if buf.len() > MAX_LINE {
        return Err(too_long());
    }
    Ok(Decoded::More)
}

/// A framing line (CRLF included) longer than the limit: refused whether it arrives
/// whole or in pieces, so the outcome does not depend on the reads.
fn too_long() -> io::Error {
    invalid("chunk framing line too long")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body `input` decodes to, fed in one piece.
    fn body(framing: Framing, input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), io::Error> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::End => return Ok((out, buf.to_vec())),
                Decoded::More => {
                    d.end_of_input()?;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_and_stop_at_their_end() {
        let (b, rest) = body(
            Framing::Chunked,
            b"3;ext=1\r\nabc\r\n1\r\nd\r\n0\r\nx-trailer: t\r\n\r\nHTTP/1.1",
        )
        .unwrap();
        assert_eq!(b, b"abcd");
        assert_eq!(rest, b"HTTP/1.1", "the next response is not body");
        assert!(body(Framing::Chunked, b"3\r\nabcX\r\n").is_err(), "no CRLF");
        assert!(body(Framing::Chunked, b"z\r\n").is_err(), "bad size");
        assert!(body(Framing::Chunked, b"3\r\nab").is_err(), "cut short");
        let long = [b"1;".as_slice(), &[b'e'; MAX_LINE + 1]].concat();
        let mut d = Decoder::new(Framing::Chunked);
        assert!(d.decode(&mut BytesMut::from(&long[..])).is_err(), "bounded");
        let whole = [long.as_slice(), b"\r\nx\r\n0\r\n\r\n"].concat();
        assert!(
            body(Framing::Chunked, &whole).is_err(),
            "whole or in pieces"
        );
    }

    #[test]
    fn lengths_count_down_and_close_reads_to_the_end() {
        assert_eq!(
            body(Framing::Length(3), b"abcdef").unwrap(),
            (b"abc".to_vec(), b"def".to_vec())
        );
        assert!(body(Framing::Length(3), b"ab").is_err());
        assert_eq!(body(Framing::Close, b"abc").unwrap().0, b"abc");
        assert_eq!(Decoder::new(Framing::Length(0)).remaining(), Some(0));
        assert!(Decoder::new(Framing::Length(0)).is_done());
    }
}
