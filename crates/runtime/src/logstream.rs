//! A container's log stream read straight off the engine's unix socket, a batch of
//! lines per read.
//!
//! bollard hands the stream over frame by frame, through hyper's connection task
//! and body channel: two task wake-ups and a few allocations per line, which made
//! collection cost 7-9 µs of CPU per line (bench/logs.sh). Here one task reads up to
//! 256 KiB at a time, takes the HTTP chunked framing and the engine's stream framing
//! (an 8-byte header per frame: stream, size) off in place, and yields every whole
//! line the read brought. Only `GET /containers/{id}/logs` is done this way; the
//! rest of the API stays on bollard.

use std::path::PathBuf;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::{Error, LogLine, LogOptions, Result};

const READ: usize = 256 << 10;

/// How the body is delimited.
enum Body {
    /// `Transfer-Encoding: chunked`: bytes left in the current chunk, or `None`
    /// while a size line is due.
    Chunked(Option<usize>),
    /// Until the connection closes.
    Close,
}

struct Reader {
    sock: UnixStream,
    /// Bytes read and not yet taken off the HTTP framing.
    raw: Vec<u8>,
    /// The body, not yet taken off the engine's framing.
    data: Vec<u8>,
    body: Body,
    /// A TTY container's stream has no frames: all of it is stdout.
    framed: bool,
    /// Per stream, what follows its last newline.
    pending: [Vec<u8>; 2],
    timestamps: bool,
    done: bool,
}

/// Follows (or reads) container `id`'s log through the socket at `socket`, speaking
/// API `version` (`1.41`).
pub fn batches(
    socket: PathBuf,
    version: String,
    id: &str,
    opts: &LogOptions,
) -> BoxStream<'static, Result<Vec<LogLine>>> {
    let request = format!(
        "GET /v{version}/containers/{id}/logs?stdout=1&stderr=1&follow={}&timestamps={}&since={}&tail={} HTTP/1.1\r\nHost: docker\r\nUser-Agent: shoal\r\n\r\n",
        u8::from(opts.follow),
        u8::from(opts.timestamps),
        opts.since.unwrap_or(0),
        opts.tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
    );
    let endpoint = socket.display().to_string();
    let timestamps = opts.timestamps;
    let start = async move {
        let unreachable = |e: std::io::Error| Error::Unreachable {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        };
        let mut sock = UnixStream::connect(&socket).await.map_err(unreachable)?;
        sock.write_all(request.as_bytes())
            .await
            .map_err(unreachable)?;
        let mut raw = Vec::with_capacity(READ);
        // The response head.
        let (status, head_len, chunked, framed) = loop {
            if sock.read_buf(&mut raw).await.map_err(unreachable)? == 0 {
                return Err(unreachable(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&raw) {
                Ok(httparse::Status::Complete(n)) => {
                    let header = |name: &str| {
                        resp.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
                    };
                    let chunked =
                        header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
                    let framed = !header("content-type").is_some_and(|v| v.contains("raw-stream"));
                    break (resp.code.unwrap_or(0), n, chunked, framed);
                }
                Ok(httparse::Status::Partial) => continue,
                Err(e) => {
                    return Err(Error::Engine {
                        action: "read logs".into(),
                        message: format!("a malformed answer: {e}"),
                    })
                }
            }
        };
        raw.drain(..head_len);
        let mut reader = Reader {
            sock,
            raw,
            data: Vec::with_capacity(READ),
            body: if chunked {
                Body::Chunked(None)
            } else {
                Body::Close
            },
            framed,
            pending: Default::default(),
            timestamps,
            done: false,
        };
        if status != 200 {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                reader.sock.read_to_end(&mut reader.raw),
            )
            .await;
            let message = String::from_utf8_lossy(&reader.raw).into_owned();
            return Err(if status == 404 {
                Error::NotFound(message)
            } else {
                Error::Engine {
                    action: "read logs".into(),
                    message,
                }
            });
        }
        Ok(reader)
    };
    futures_util::stream::once(start)
        .flat_map(|started| match started {
            Err(e) => futures_util::stream::iter(vec![Err(e)]).boxed(),
            Ok(reader) => futures_util::stream::unfold(reader, |mut r| async move {
                r.next().await.map(|batch| (batch, r))
            })
            .boxed(),
        })
        .boxed()
}

impl Reader {
    /// The lines of the next read that brought any; `None` at the end.
    async fn next(&mut self) -> Option<Result<Vec<LogLine>>> {
        loop {
            let mut lines = Vec::new();
            self.unchunk();
            self.unframe(&mut lines);
            if !lines.is_empty() {
                return Some(Ok(lines));
            }
            if self.done {
                return None;
            }
            self.raw.reserve(READ);
            match self.sock.read_buf(&mut self.raw).await {
                Ok(0) => self.done = true,
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::Engine {
                        action: "read logs".into(),
                        message: e.to_string(),
                    }));
                }
            }
        }
    }

    /// Moves what `raw` holds of the body to `data`.
    fn unchunk(&mut self) {
        match &mut self.body {
            Body::Close => self.data.append(&mut self.raw),
            Body::Chunked(left) => {
                let mut at = 0;
                loop {
                    match left {
                        Some(0) => {
                            // The CRLF after a chunk.
                            if self.raw.len() - at < 2 {
                                break;
                            }
                            at += 2;
                            *left = None;
                        }
                        Some(n) => {
                            let take = (*n).min(self.raw.len() - at);
                            if take == 0 {
                                break;
                            }
                            self.data.extend_from_slice(&self.raw[at..at + take]);
                            at += take;
                            *n -= take;
                        }
                        None => {
                            let Some(eol) = self.raw[at..].windows(2).position(|w| w == b"\r\n")
                            else {
                                break;
                            };
                            let line = &self.raw[at..at + eol];
                            let size = line.split(|b| *b == b';').next().unwrap_or_default();
                            let size = std::str::from_utf8(size)
                                .ok()
                                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
                            at += eol + 2;
                            match size {
                                Some(0) | None => {
                                    // The last chunk (or a framing error): the end.
                                    self.done = true;
                                    at = self.raw.len();
                                    break;
                                }
                                Some(n) => *left = Some(n),
                            }
                        }
                    }
                }
                self.raw.drain(..at);
            }
        }
    }

    /// Takes the engine's frames off `data` and the whole lines out of them.
    fn unframe(&mut self, lines: &mut Vec<LogLine>) {
        if !self.framed {
            take_lines(
                &mut self.pending[0],
                false,
                self.timestamps,
                &self.data,
                lines,
            );
            self.data.clear();
            return;
        }
        let mut at = 0;
        while self.data.len() - at >= 8 {
            let head = &self.data[at..at + 8];
            let size = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
            if self.data.len() - at - 8 < size {
                break;
            }
            let stderr = head[0] == 2;
            let payload = &self.data[at + 8..at + 8 + size];
            let pending = &mut self.pending[usize::from(stderr)];
            take_lines(pending, stderr, self.timestamps, payload, lines);
            at += 8 + size;
        }
        self.data.drain(..at);
    }
}

/// The whole lines of `bytes` (the first completing `pending`); the rest is kept in
/// `pending`.
fn take_lines(
    pending: &mut Vec<u8>,
    stderr: bool,
    timestamps: bool,
    bytes: &[u8],
    lines: &mut Vec<LogLine>,
) {
    {
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let line = if pending.is_empty() {
                &rest[..i]
            } else {
                pending.extend_from_slice(&rest[..i]);
                &pending[..]
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            lines.push(crate::docker::log_line(line, stderr, timestamps));
            pending.clear();
            rest = &rest[i + 1..];
        }
        pending.extend_from_slice(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine frame: stream, three zero bytes, the size big-endian, the payload.
    fn frame(stream: u8, payload: &str) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload.as_bytes());
        f
    }

    /// Serves one answer on a socket, written in pieces of `piece` bytes; the lines
    /// `batches` reads from it.
    async fn read_all(head: &str, body: Vec<u8>, piece: usize) -> Vec<LogLine> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let head = head.to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0; 1024];
            let n = s.read(&mut req).await.unwrap();
            let req = String::from_utf8_lossy(&req[..n]).into_owned();
            assert!(
                req.starts_with("GET /v1.41/containers/abc/logs?stdout=1&stderr=1&follow=1&timestamps=1&since=7&tail=all HTTP/1.1\r\n"),
                "{req}"
            );
            let mut all = head.into_bytes();
            all.extend_from_slice(&body);
            for part in all.chunks(piece) {
                // The reader hangs up after the last chunk's size line.
                if s.write_all(part).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        });
        let opts = LogOptions {
            follow: true,
            tail: None,
            since: Some(7),
            timestamps: true,
        };
        let mut out = Vec::new();
        let mut s = batches(path, "1.41".into(), "abc", &opts);
        while let Some(batch) = s.next().await {
            out.extend(batch.unwrap());
        }
        server.await.unwrap();
        out
    }

    fn chunked(body: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for c in body.chunks(size) {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[tokio::test]
    async fn frames_and_chunks_split_anywhere_give_the_same_lines() {
        let mut body = Vec::new();
        body.extend(frame(1, "2026-12-02T10:00:00.000000001Z one\n"));
        body.extend(frame(
            2,
            "2026-12-02T10:00:00.000000002Z two, on stderr\r\n",
        ));
        // A line over two frames.
        body.extend(frame(1, "2026-12-02T10:00:00.000000003Z thr"));
        body.extend(frame(1, "ee\n2026-12-02T10:00:00.000000004Z four\n"));
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        for (chunk, piece) in [(1000, 1000), (7, 3), (1, 1), (13, 5)] {
            let lines = read_all(head, chunked(&body, chunk), piece).await;
            let got: Vec<(bool, &str, &str)> = lines
                .iter()
                .map(|l| (l.stderr, l.timestamp.as_deref().unwrap(), l.text.as_str()))
                .collect();
            assert_eq!(
                got,
                [
                    (false, "2026-12-02T10:00:00.000000001Z", "one"),
                    (true, "2026-12-02T10:00:00.000000002Z", "two, on stderr"),
                    (false, "2026-12-02T10:00:00.000000003Z", "three"),
                    (false, "2026-12-02T10:00:00.000000004Z", "four"),
                ],
                "chunks of {chunk}, written {piece} bytes at a time"
            );
        }
    }

    #[tokio::test]
    async fn a_tty_stream_has_no_frames_and_a_missing_container_is_not_found() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n";
        let lines = read_all(head, b"2026-12-02T10:00:00Z tty line\n".to_vec(), 4).await;
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0].stderr, lines[0].text.as_str()),
            (false, "tty line")
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0; 1024];
            let _ = s.read(&mut req).await.unwrap();
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 33\r\n\r\n{\"message\":\"No such container\"}\n").await.unwrap();
        });
        let mut s = batches(path, "1.41".into(), "gone", &LogOptions::default());
        match s.next().await {
            Some(Err(Error::NotFound(m))) => assert!(m.contains("No such container"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
