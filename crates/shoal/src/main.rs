//! shoal: runs a compose.yaml on the Docker Engine as a self-healing, load-balanced
//! system.
//!
//! # Layout
//! - `cli`: the command line (compose's verbs and flags where they overlap).
//! - `commands/*`: one file per verb.
//! - `api`: the control plane's HTTP/JSON API on a unix socket, server and client.
//! - `state`: the project's state directory.
//! - `images`: building and pulling what the services need.
//! - `logs`: container output, prefixed and interleaved.

mod api;
mod cli;
mod commands;
mod dashboard;
mod images;
mod logs;
mod state;

use clap::Parser;

// The data path allocates per request; mimalloc measurably beats the system allocator
// there (bench/README.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
