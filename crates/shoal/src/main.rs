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
    raise_open_files_limit();
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

/// Every client connection the balancer holds is a descriptor, and most systems give a
/// process 1024 by default (soft) of a much higher hard limit: like nginx's
/// `worker_rlimit_nofile` and Go's runtime, take the hard limit, so that the control
/// plane serves as many connections as the machine allows.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        // Where it cannot be raised, it stays as it was.
        let _ = setrlimit(Resource::Nofile, raised);
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

#[cfg(test)]
mod tests {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_one() {
        let hard = getrlimit(Resource::Nofile).maximum;
        let low = Rlimit {
            current: Some(256),
            maximum: hard,
        };
        setrlimit(Resource::Nofile, low).unwrap();
        super::raise_open_files_limit();
        assert_eq!(getrlimit(Resource::Nofile).current, hard);
    }
}
