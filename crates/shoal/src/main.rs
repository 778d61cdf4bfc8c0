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
    quiet_on_closed_stdout();
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = runtime.block_on(commands::run(cli));
    // Not waiting for a read of stdin still blocked in a thread (`shoal exec`).
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `shoal ps | head`: when the reader of stdout goes away, leave quietly with the
/// status a shell gives a process killed by SIGPIPE (141), as other CLI tools do,
/// instead of a panic message (Rust ignores SIGPIPE, so `println!` panics).
fn quiet_on_closed_stdout() {
    let before = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        before(info);
    }));
}
