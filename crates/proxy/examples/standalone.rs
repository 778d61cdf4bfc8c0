//! shoal's data path on its own, in front of fixed backends: what the benchmarks in
//! `bench/` measure against nginx and HAProxy.
//!
//! `standalone --listen 127.0.0.1:8000 --backend 127.0.0.1:9101 --backend ... \
//!     [--threads 1] [--strategy least_request|round_robin] [--retries 2]`
//!
//! With `--threads 1` it runs on a current-thread runtime: one core, as the peers get.

use std::net::SocketAddr;
use std::sync::Arc;

use shoal_proxy::{Backends, LbConfig, Route, Strategy};

// The allocator the shoal binary uses, so the benchmark measures the same path.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:8000".parse().unwrap();
    let mut backends: Vec<SocketAddr> = Vec::new();
    let mut threads = 1usize;
    let mut strategy = Strategy::LeastRequest;
    let mut retries = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = value().parse().expect("an address"),
            "--backend" => backends.push(value().parse().expect("an address")),
            "--threads" => threads = value().parse().expect("a number"),
            "--retries" => retries = Some(value().parse().expect("a number")),
            "--strategy" => {
                strategy = match value().as_str() {
                    "round_robin" => Strategy::RoundRobin,
                    _ => Strategy::LeastRequest,
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("a runtime");
    rt.block_on(async move {
        let set = Backends::new();
        set.replace(backends);
        let mut config = LbConfig::new("bench");
        config.strategy = strategy;
        if let Some(r) = retries {
            config.retries = r;
        }
        let route = Arc::new(Route::new(set, config));
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        let (_stop, rx) = tokio::sync::watch::channel(false);
        eprintln!("shoal proxy on {listen}, {threads} thread(s)");
        shoal_proxy::serve(listener, route, rx).await;
    });
}
