//! `shoal exec SVC [--index N] [-T] [-e K=V] [-w DIR] [-u USER] CMD...`: a command in
//! a running replica, through the Engine API, as `docker compose exec` runs it: a
//! terminal when stdin is one (raw mode here, the size passed on), stdin passed
//! through, and the command's exit code as shoal's.

use std::io::IsTerminal;
use std::process::ExitCode;

use futures_util::StreamExt;
use shoal_runtime::{Attached, ContainerInfo, ExecSpec, State};
use tokio::io::AsyncWriteExt;

use crate::cli::{ExecArgs, Global};

pub async fn run(global: &Global, args: &ExecArgs) -> anyhow::Result<ExitCode> {
    let (name, project, _) = super::project_or_name(global)?;
    if let Some(p) = &project {
        super::check_services(p, std::iter::once(&args.service))?;
    }
    let rt = super::engine().await?;
    super::known(&name, project.as_ref(), rt.as_ref()).await?;
    let running: Vec<ContainerInfo> = rt
        .list(&name)
        .await?
        .into_iter()
        .filter(|c| c.service == args.service && c.state == State::Running)
        .collect();
    let Some(first) = running.first() else {
        anyhow::bail!(
            "service `{}` has no running replica in project {name}\n  hint: `shoal ps` shows its replicas",
            args.service
        );
    };
    let target = match args.index {
        None => first,
        Some(n) => running.iter().find(|c| c.replica == n).ok_or_else(|| {
            let numbers: Vec<String> = running.iter().map(|c| c.replica.to_string()).collect();
            anyhow::anyhow!(
                "--index {n}: service `{}` has no running replica {n} (running: {})",
                args.service,
                numbers.join(", ")
            )
        })?,
    };
    let tty = !args.no_tty && std::io::stdin().is_terminal();
    let spec = ExecSpec {
        cmd: args.command.clone(),
        env: args.env.clone(),
        user: args.user.clone(),
        working_dir: args.workdir.clone(),
        tty,
        stdin: true,
    };
    let exec = rt.exec(&target.id, &spec).await?;
    let id = exec.id.clone();
    let raw = tty.then(Raw::enable).transpose()?;
    if tty {
        if let Ok((cols, rows)) = crossterm::terminal::size() {
            let _ = rt.exec_resize(&id, cols, rows).await;
        }
    }
    pass_through(exec).await?;
    drop(raw);
    let code = rt.exec_code(&id).await?.unwrap_or(0);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Passes this process' stdin to `attached` (to its end, then closes it) and its
/// output to stdout and stderr, until the output ends.
pub(super) async fn pass_through(attached: Attached) -> anyhow::Result<()> {
    let mut input = attached.input;
    let pump = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut input).await;
        // End of input: the command reads EOF.
        let _ = input.shutdown().await;
    });
    let (mut out, mut err) = (tokio::io::stdout(), tokio::io::stderr());
    let mut output = attached.output;
    while let Some(item) = output.next().await {
        let (stderr, bytes) = item?;
        let to: &mut (dyn tokio::io::AsyncWrite + Unpin + Send) =
            if stderr { &mut err } else { &mut out };
        to.write_all(&bytes).await?;
        to.flush().await?;
    }
    pump.abort();
    Ok(())
}

/// The local terminal in raw mode while a remote one is in use; restored on drop.
pub(super) struct Raw;

impl Raw {
    pub(super) fn enable() -> anyhow::Result<Raw> {
        crossterm::terminal::enable_raw_mode()?;
        Ok(Raw)
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}
