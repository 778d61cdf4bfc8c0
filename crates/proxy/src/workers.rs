//! The threads the data path runs on: one current-thread runtime per worker, each
//! accepting on its own socket of every published port (`SO_REUSEPORT`, the kernel
//! spreading connections over them), each with its own idle upstream connections.
//! Nothing on a worker waits for another thread: a connection accepted on a worker is
//! served there to its end, and the control plane runs on threads of its own.

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpSocket;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use crate::route::Route;

/// Pending connections per socket (as `tokio::net::TcpListener::bind`).
const BACKLOG: u32 = 1024;

thread_local! {
    /// Which worker this thread is (0 outside a [`DataPath`]).
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The most workers any data path of the process has: how many slots an upstream
/// pool keeps.
static MOST: AtomicUsize = AtomicUsize::new(1);

/// This thread's worker, for picking its slot of a pool.
pub(crate) fn index() -> usize {
    INDEX.with(Cell::get)
}

/// How many slots a pool made now keeps.
pub(crate) fn slots() -> usize {
    MOST.load(Ordering::Relaxed)
}

struct Worker {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The data path's worker threads. Dropping it stops them (and every connection they
/// serve).
pub struct DataPath {
    workers: Vec<Worker>,
}

impl DataPath {
    /// Starts `threads` workers (at least one).
    pub fn start(threads: usize) -> io::Result<DataPath> {
        let threads = threads.max(1);
        MOST.fetch_max(threads, Ordering::Relaxed);
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("shoal-proxy-{i}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(i));
                    runtime.block_on(async move {
                        let _ = stopped.await;
                    });
                })?;
            workers.push(Worker {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(DataPath { workers })
    }

    /// As many workers as the machine has cores, or `SHOAL_PROXY_THREADS`.
    pub fn from_env() -> io::Result<DataPath> {
        let threads = match std::env::var("SHOAL_PROXY_THREADS") {
            Ok(v) => v.parse().map_err(|_| {
                io::Error::other(format!(
                    "SHOAL_PROXY_THREADS={v}: expected a number of threads"
                ))
            })?,
            Err(_) => std::thread::available_parallelism().map_or(1, usize::from),
        };
        DataPath::start(threads)
    }

    /// Binds `addr` once per worker and serves `route` there until `stop` turns true.
    /// Returns the address bound (the port the OS chose, for port 0).
    ///
    /// Fails, binding nothing, when another socket holds the address: a plain bind is
    /// tried first, since with `SO_REUSEPORT` alone a second shoal would share the
    /// port with the first instead of being told it is taken.
    pub fn serve(
        &self,
        addr: SocketAddr,
        route: Arc<Route>,
        stop: watch::Receiver<bool>,
    ) -> io::Result<SocketAddr> {
        if addr.port() != 0 {
            drop(StdListener::bind(addr)?);
        }
        let mut bound = addr;
        let mut sockets = Vec::with_capacity(self.workers.len());
        for _ in &self.workers {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(bound)?;
            bound = socket.local_addr()?;
            sockets.push(socket);
        }
        for (socket, worker) in sockets.into_iter().zip(&self.workers) {
            // Registered with the worker's own reactor.
            let listener = {
                let _in = worker.handle.enter();
                socket.listen(BACKLOG)?
            };
            worker.handle.spawn(crate::listener::serve(
                listener,
                route.clone(),
                stop.clone(),
            ));
        }
        Ok(bound)
    }
}

impl Drop for DataPath {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
        }
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
