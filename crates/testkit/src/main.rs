//! testkit: the workload of shoal's tests and benchmarks. One small static binary,
//! so it fits a `FROM scratch` image.
//!
//! It serves HTTP/1.1 and HTTP/2 (prior knowledge) on `PORT` (8080) and echoes raw TCP
//! on `TCP_PORT` (9000). Every response names the replica (`NAME`, else `HOSTNAME`) in
//! its body and an `X-Replica` header. Knobs, set over HTTP, turn it into the replica a
//! test needs:
//!
//! | request | effect |
//! |---|---|
//! | `GET /` | `200 <name>` (after the latency knob) |
//! | `GET /delay?ms=N` | answers after N ms |
//! | `GET /burn?ms=N` | spins until it has used N ms of CPU time, then answers |
//! | `GET /status?code=N` | answers with status N |
//! | `GET /healthz` | 200 when healthy, 503 when not |
//! | `GET /headers` | the request's headers, one `name: value` a line |
//! | `POST /echo` | the request body |
//! | `GET /requests` | how many requests this replica served (probes, knobs and this one not counted) |
//! | `GET /ws` (`Upgrade: websocket`) | a WebSocket that echoes every message |
//! | `/admin/latency?ms=N` | adds N ms to every `GET /` |
//! | `/admin/healthy?v=false` | `/healthz` answers 503 |
//! | `/admin/exit-after?n=N` | exits (code 1) after N more requests |
//! | `/admin/hang?v=true` | accepts connections and never answers them |
//!
//! Set at start, from the environment: `VERSION` (sent back as `X-Version` on every
//! response), `STATUS` (the status of `GET /`, 200 by default), `HEALTHY=false` (starts
//! unhealthy), `EXIT_AT_START=N` (exits with code N at once), `LATENCY_MS`, `PORT`,
//! `TCP_PORT`, `WORKERS`, `NAME`.
//!
//! Printing, for the log tests and benchmarks: `PRINT_EVERY_MS=N` prints a numbered
//! line every N ms (`0`: as fast as it can), `run=<start time> seq=<n>`, every
//! `PRINT_STDERR_EVERY`-th one (default 5) to stderr; `PRINT_LINES=N` stops after N
//! lines; `PRINT_PAD=N` adds N characters of text to each; `PRINT_TRACE=true` follows every tenth line with a three-line stack trace
//! (`  at frame k`) on stdout.
//!
//! `testkit --check` asks `/healthz` on this host and exits 0 when it is healthy: the
//! healthcheck of an image with no shell.

mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The knobs, shared by every connection.
struct Knobs {
    name: String,
    /// `X-Version` on every response, when set.
    version: Option<String>,
    /// Status of `GET /`.
    status: StatusCode,
    latency_ms: AtomicU64,
    healthy: AtomicBool,
    hang: AtomicBool,
    /// Requests left before exiting; negative: never.
    exit_after: AtomicI64,
    served: AtomicU64,
}

type Body = Full<Bytes>;

fn main() {
    let port: u16 = env("PORT", 8080);
    if std::env::args().any(|a| a == "--check") {
        std::process::exit(if check(port) { 0 } else { 1 });
    }
    if let Some(code) = std::env::var("EXIT_AT_START")
        .ok()
        .and_then(|c| c.parse().ok())
    {
        eprintln!("testkit: EXIT_AT_START={code}: exiting");
        std::process::exit(code);
    }
    let tcp_port: u16 = env("TCP_PORT", 9000);
    let workers: usize = env("WORKERS", 0);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        rt.worker_threads(workers);
    }
    let rt = rt.enable_all().build().expect("a tokio runtime");
    let name = std::env::var("NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "testkit".into());
    let knobs = Arc::new(Knobs {
        name,
        version: std::env::var("VERSION").ok(),
        status: StatusCode::from_u16(env("STATUS", 200)).unwrap_or(StatusCode::OK),
        latency_ms: AtomicU64::new(env("LATENCY_MS", 0)),
        healthy: AtomicBool::new(env("HEALTHY", true)),
        hang: AtomicBool::new(false),
        exit_after: AtomicI64::new(-1),
        served: AtomicU64::new(0),
    });
    rt.block_on(async move {
        tokio::spawn(tcp_echo(tcp_port));
        // As PID 1 in a container nothing ends the process on SIGTERM unless it does.
        tokio::spawn(async {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
                std::process::exit(0);
            }
        });
        let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
            .await
            .expect("bind PORT");
        println!(
            "testkit {} listening on :{port} (http) and :{tcp_port} (tcp echo)",
            knobs.name
        );
        // The numbered lines start after that one.
        if let Ok(every) = std::env::var("PRINT_EVERY_MS") {
            let every: u64 = every.parse().unwrap_or(100);
            std::thread::spawn(move || print_lines(every));
        }
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let knobs = knobs.clone();
            tokio::spawn(async move {
                if knobs.hang.load(Ordering::Relaxed) {
                    // Hold the connection open and say nothing.
                    let _keep = stream;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let service = hyper::service::service_fn(move |req| handle(req, knobs.clone()));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// Numbered lines, so a test can tell a lost or doubled one: `run=` tells the
/// process runs of one container apart.
fn print_lines(every_ms: u64) {
    use std::io::Write;
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let to_stderr: u64 = env("PRINT_STDERR_EVERY", 5);
    let lines: u64 = env("PRINT_LINES", u64::MAX);
    let trace: bool = env("PRINT_TRACE", false);
    let pad: String = " lorem ipsum dolor sit amet consectetur adipiscing elit"
        .chars()
        .cycle()
        .take(env("PRINT_PAD", 0))
        .collect();
    // Buffered here, not under stdout's lock: the server's own lines still get out.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout());
    for seq in 0..lines {
        if to_stderr > 0 && seq % to_stderr == to_stderr - 1 {
            let _ = out.flush();
            eprintln!("run={run} seq={seq} err{pad}");
        } else {
            let _ = writeln!(out, "run={run} seq={seq} out{pad}");
        }
        if trace && seq % 10 == 0 {
            let _ = writeln!(out, "Traceback for seq={seq}");
            for k in 0..3 {
                let _ = writeln!(out, "  at frame {k}");
            }
        }
        if every_ms > 0 {
            let _ = out.flush();
            std::thread::sleep(Duration::from_millis(every_ms));
        }
    }
    let _ = out.flush();
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn text(knobs: &Knobs, status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .header("x-replica", &knobs.name);
    if let Some(v) = &knobs.version {
        r = r.header("x-version", v);
    }
    r.body(Full::new(body.into())).expect("a valid response")
}

async fn handle(req: Request<Incoming>, knobs: Arc<Knobs>) -> Result<Response<Body>, Infallible> {
    // The count leaves out the probes and the knobs, so tests can tell what reached
    // the replica from what they asked.
    let counted = !matches!(req.uri().path(), "/healthz" | "/requests")
        && !req.uri().path().starts_with("/admin/");
    if counted {
        knobs.served.fetch_add(1, Ordering::Relaxed);
    }
    let ms = |req: &Request<Incoming>, key| {
        param(req, key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let flag = |req: &Request<Incoming>| param(req, "v").map(|v| v != "false").unwrap_or(true);
    let path = req.uri().path().to_string();
    let resp = match path.as_str() {
        "/" => {
            let lat = knobs.latency_ms.load(Ordering::Relaxed);
            if lat > 0 {
                tokio::time::sleep(Duration::from_millis(lat)).await;
            }
            text(&knobs, knobs.status, format!("{}\n", knobs.name))
        }
        "/delay" => {
            tokio::time::sleep(Duration::from_millis(ms(&req, "ms"))).await;
            text(&knobs, StatusCode::OK, format!("{}\n", knobs.name))
        }
        "/burn" => {
            // CPU time, not wall time: a replica held back by its CPU limit answers
            // later, as a real CPU-bound service does.
            let want = Duration::from_millis(ms(&req, "ms"));
            let start = cpu_time::ThreadTime::now();
            let mut x = 0u64;
            while start.elapsed() < want {
                for _ in 0..1000 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            }
            text(&knobs, StatusCode::OK, format!("{}\n", knobs.name))
        }
        "/status" => {
            let code = param(&req, "code")
                .and_then(|c| c.parse().ok())
                .unwrap_or(200);
            text(
                &knobs,
                StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
                format!("{}\n", knobs.name),
            )
        }
        "/healthz" if knobs.healthy.load(Ordering::Relaxed) => text(&knobs, StatusCode::OK, "ok\n"),
        "/healthz" => text(&knobs, StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n"),
        "/headers" => {
            let mut out = String::new();
            for (k, v) in req.headers() {
                out.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
            }
            text(&knobs, StatusCode::OK, out)
        }
        "/echo" => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            text(&knobs, StatusCode::OK, body)
        }
        "/requests" => text(
            &knobs,
            StatusCode::OK,
            format!("{}\n", knobs.served.load(Ordering::Relaxed)),
        ),
        "/ws" => return Ok(ws::accept(req, knobs.name.clone())),
        "/admin/latency" => {
            knobs.latency_ms.store(ms(&req, "ms"), Ordering::Relaxed);
            text(&knobs, StatusCode::OK, "ok\n")
        }
        "/admin/healthy" => {
            knobs.healthy.store(flag(&req), Ordering::Relaxed);
            text(&knobs, StatusCode::OK, "ok\n")
        }
        "/admin/hang" => {
            knobs.hang.store(flag(&req), Ordering::Relaxed);
            text(&knobs, StatusCode::OK, "ok\n")
        }
        "/admin/exit-after" => {
            let n = param(&req, "n").and_then(|v| v.parse().ok()).unwrap_or(0);
            knobs.exit_after.store(n, Ordering::Relaxed);
            text(&knobs, StatusCode::OK, "ok\n")
        }
        _ => text(&knobs, StatusCode::NOT_FOUND, "not found\n"),
    };
    if counted && knobs.exit_after.fetch_sub(1, Ordering::Relaxed) == 1 {
        // This was the last one: exit once the response is on its way.
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            std::process::exit(1);
        });
    }
    Ok(resp)
}

/// Echoes every byte on `port` back to its sender.
async fn tcp_echo(port: u16) {
    let Ok(listener) = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await else {
        eprintln!("testkit: cannot bind the tcp echo port {port}");
        return;
    };
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// The healthcheck: `GET /healthz` on localhost answers 200.
fn check(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}
