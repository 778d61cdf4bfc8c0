//! The example's web service: `GET /` says hello, `GET /healthz` says it is alive,
//! `GET /visits` counts visits in PostgreSQL. Every response names the replica in an
//! `X-Replica` header.
//!
//! It uses the standard library only, so that its Dockerfile can build it with the
//! Rust compiler Debian packages, from nothing but Debian's mirror (no crates registry,
//! no Rust image). That also means it speaks the few messages of the PostgreSQL wire
//! protocol it needs itself: startup with trust authentication, and one simple query.
//! Keep it to what rustc 1.63 (Debian bookworm) compiles.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_string());
    if args.iter().any(|a| a == "--check") {
        std::process::exit(if check(&port) { 0 } else { 1 });
    }
    let replica = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".to_string());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind the port");
    println!("hello: {replica} listening on :{port}");
    for stream in listener.incoming().flatten() {
        let replica = replica.clone();
        std::thread::spawn(move || serve(stream, &replica));
    }
}

/// The container healthcheck: `GET /healthz` on this replica answers 200.
fn check(port: &str) -> bool {
    let mut s = match TcpStream::connect(format!("127.0.0.1:{port}")) {
        Ok(s) => s,
        Err(_) => return false,
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut status = String::new();
    let _ = BufReader::new(s).read_line(&mut status);
    status.starts_with("HTTP/1.1 200")
}

/// Serves one connection, request after request, until the client closes it.
fn serve(stream: TcpStream, replica: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut content_length = 0usize;
        let mut close = false;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim();
                if name == "content-length" {
                    content_length = value.parse().unwrap_or(0);
                } else if name == "connection" && value.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0u8; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let (status, text) = match (method, path) {
            ("GET", "/") => ("200 OK", "Hello, world!\n".to_string()),
            ("GET", "/healthz") => ("200 OK", "ok\n".to_string()),
            ("GET", "/visits") => match count_visit() {
                Ok(n) => ("200 OK", format!("visits: {n}\n")),
                Err(e) => ("503 Service Unavailable", format!("database: {e}\n")),
            },
            _ => ("404 Not Found", "not found\n".to_string()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Replica: {replica}\r\n{}\r\n{text}",
            text.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        if writer.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// Adds one visit and returns the count.
fn count_visit() -> Result<i64, String> {
    let host = std::env::var("DATABASE_HOST").unwrap_or_else(|_| "db".to_string());
    let mut pg = Postgres::connect(&host, 5432, "postgres", "postgres")?;
    let rows = pg.query(
        "CREATE TABLE IF NOT EXISTS visits (id int PRIMARY KEY, n bigint NOT NULL); \
         INSERT INTO visits VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = visits.n + 1 RETURNING n",
    )?;
    rows.first()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| "no count returned".to_string())
}

/// Just enough of the PostgreSQL frontend/backend protocol (version 3.0).
struct Postgres {
    stream: TcpStream,
}

impl Postgres {
    fn connect(host: &str, port: u16, user: &str, database: &str) -> Result<Postgres, String> {
        let stream =
            TcpStream::connect((host, port)).map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut pg = Postgres { stream };
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes()); // protocol 3.0
        for (k, v) in [("user", user), ("database", database)] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        pg.stream.write_all(&msg).map_err(|e| e.to_string())?;
        loop {
            let (tag, payload) = pg.read()?;
            match tag {
                b'R' if payload.get(..4) == Some(&[0, 0, 0, 0]) => {}
                b'R' => {
                    return Err(
                        "the server asks for a password; the example expects trust authentication"
                            .into(),
                    )
                }
                b'E' => return Err(error_text(&payload)),
                b'Z' => return Ok(pg),
                _ => {} // ParameterStatus, BackendKeyData, notices
            }
        }
    }

    /// Runs a simple query; returns the first column of every row.
    fn query(&mut self, sql: &str) -> Result<Vec<String>, String> {
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        msg.extend_from_slice(sql.as_bytes());
        msg.push(0);
        self.stream.write_all(&msg).map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, payload) = self.read()?;
            match tag {
                b'D' if payload.len() >= 6 => {
                    let len = i32::from_be_bytes([payload[2], payload[3], payload[4], payload[5]]);
                    if len >= 0 {
                        let end = 6 + len as usize;
                        rows.push(
                            String::from_utf8_lossy(&payload[6..end.min(payload.len())])
                                .into_owned(),
                        );
                    }
                }
                b'E' => error = Some(error_text(&payload)),
                b'Z' => return error.map_or(Ok(rows), Err),
                _ => {}
            }
        }
    }

    fn read(&mut self) -> Result<(u8, Vec<u8>), String> {
        let mut head = [0u8; 5];
        self.stream
            .read_exact(&mut head)
            .map_err(|e| e.to_string())?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut payload = vec![0u8; len.saturating_sub(4)];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| e.to_string())?;
        Ok((head[0], payload))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stream.write_all(&[b'X', 0, 0, 0, 4]);
    }
}

/// The `M` (message) field of an ErrorResponse.
fn error_text(payload: &[u8]) -> String {
    payload
        .split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'M'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_else(|| "database error".to_string())
}
