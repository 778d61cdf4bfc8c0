//! One file per verb; this one dispatches and holds what they share.

mod build;
mod config;
mod down;
pub(crate) mod events;
mod exec;
mod export;
mod images;
mod lifecycle;
mod logs;
mod ls;
mod port;
mod ps;
pub(crate) mod rollout;
mod run;
mod scale;
mod top;
mod up;

use std::process::ExitCode;
use std::sync::Arc;

use shoal_engine::Lifecycle;
use shoal_runtime::{Docker, Runtime};
use shoal_spec::{LoadError, Loaded, Options};

use crate::cli::{Cli, Command, Global};

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Config(args) => config::run(&cli.global, args),
        Command::Up(args) => up::run(&cli.global, args).await,
        Command::Down(args) => down::run(&cli.global, args).await,
        Command::Ps(args) => ps::run(&cli.global, args).await,
        Command::Logs(args) => logs::run(&cli.global, args).await,
        Command::Scale(args) => scale::run(&cli.global, args).await,
        Command::Build(args) => build::run(&cli.global, args).await,
        Command::Rollout(args) => rollout::run(&cli.global, args).await,
        Command::Events(args) => events::run(&cli.global, args).await,
        Command::Top(args) => top::run(&cli.global, args).await,
        Command::Dashboard => crate::dashboard::run(&cli.global).await,
        Command::Stop(args) => lifecycle::run(&cli.global, Lifecycle::Stop, args).await,
        Command::Start(args) => lifecycle::run(&cli.global, Lifecycle::Start, args).await,
        Command::Restart(args) => lifecycle::run(&cli.global, Lifecycle::Restart, args).await,
        Command::Kill(args) => lifecycle::kill(&cli.global, args).await,
        Command::Pause(args) => lifecycle::run(&cli.global, Lifecycle::Pause, args).await,
        Command::Unpause(args) => lifecycle::run(&cli.global, Lifecycle::Unpause, args).await,
        Command::Ls(args) => ls::run(args).await,
        Command::Images(args) => images::run(&cli.global, args).await,
        Command::Exec(args) => exec::run(&cli.global, args).await,
        Command::Run(args) => run::run(&cli.global, args).await,
        Command::Wait(args) => lifecycle::wait(&cli.global, args).await,
        Command::Port(args) => port::run(&cli.global, args).await,
        Command::Export(target) => export::run(&cli.global, target),
        Command::Version(args) => {
            let v = env!("CARGO_PKG_VERSION");
            if args.format == crate::cli::Format::Json {
                println!("{}", serde_json::json!({ "version": v }));
            } else {
                println!("shoal version {v}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads the project the global options name. Warnings go to stderr; a project with
/// errors is an error that lists them all.
pub fn load(global: &Global) -> anyhow::Result<Loaded> {
    let mut opts = Options::from_process();
    opts.files = global.files.clone();
    opts.project_name = global.project_name.clone();
    opts.project_dir = global.project_directory.clone();
    opts.env_files = global.env_files.clone();
    opts.profiles = global.profiles.clone();
    match shoal_spec::load(&opts) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            Ok(loaded)
        }
        Err(LoadError::Invalid(errors)) => {
            let n = errors.len();
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::bail!(
                "the project is not valid ({n} error{}); nothing was changed\n{}",
                if n == 1 { "" } else { "s" },
                list.join("\n")
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// The project: the Compose file's, else (like `docker compose -p NAME`, which finds
/// a project by its labels) only the name `-p` gives, when there is no usable file.
/// An invalid file is an error all the same. The last value is why the file was not
/// used, when it was not.
pub fn project_or_name(
    global: &Global,
) -> anyhow::Result<(String, Option<shoal_spec::Project>, Option<anyhow::Error>)> {
    match (&global.project_name, load(global)) {
        (_, Ok(loaded)) => Ok((loaded.project.name.clone(), Some(loaded.project), None)),
        (Some(name), Err(e)) if !e.to_string().contains("not valid") => {
            Ok((name.clone(), None, Some(e)))
        }
        (_, Err(e)) => Err(e),
    }
}

/// The project's name (see [`project_or_name`]) and why the file was not used.
pub fn project_name(global: &Global) -> anyhow::Result<(String, Option<anyhow::Error>)> {
    project_or_name(global).map(|(name, _, why)| (name, why))
}

/// Fails unless every name is a service of the project.
pub fn check_services<'a>(
    project: &shoal_spec::Project,
    names: impl IntoIterator<Item = &'a String>,
) -> anyhow::Result<()> {
    for name in names {
        if !project.services.contains_key(name) {
            anyhow::bail!("no service `{name}` in project {}", project.name);
        }
    }
    Ok(())
}

/// The Docker Engine, or a plain error saying where it was looked for.
pub async fn engine() -> anyhow::Result<Arc<dyn Runtime>> {
    let docker = Docker::connect().await?;
    docker.ping().await?;
    Ok(Arc::new(docker))
}

/// `--since`: a Unix time, an RFC 3339 time, or a duration back from now (`10m`), as
/// Unix seconds.
pub fn since(arg: Option<&str>) -> anyhow::Result<Option<i64>> {
    arg.map(|s| time_arg("--since", s).map(|n| n.div_euclid(1_000_000_000)))
        .transpose()
}

/// A time given on the command line (`--since`, `--until`): RFC 3339
/// (`2026-12-02T10:00:00Z`), a Unix time in seconds, or a duration back from now
/// (`10m`); in nanoseconds since the epoch.
pub fn time_arg(flag: &str, s: &str) -> anyhow::Result<i64> {
    if let Some(n) = shoal_logs::parse_rfc3339(s) {
        return Ok(n);
    }
    if let Ok(unix) = s.parse::<f64>() {
        return Ok((unix * 1e9) as i64);
    }
    let d = shoal_spec::syntax::duration(s).map_err(|_| {
        anyhow::anyhow!(
            "{flag} {s}: not a time\n  hint: give an RFC 3339 time (2026-12-02T10:00:00Z), a duration back from now (10m, 1h30m) or a Unix time"
        )
    })?;
    Ok(shoal_logs::now_nanos() - d.as_nanos() as i64)
}

/// With `-p NAME` alone (no Compose file), the project must be there: containers
/// with its label, or a control plane; else a clear error, as for a mistyped name.
pub async fn known(
    name: &str,
    project: Option<&shoal_spec::Project>,
    rt: &dyn Runtime,
) -> anyhow::Result<()> {
    if project.is_some() || crate::state::socket(name).exists() || !rt.list(name).await?.is_empty()
    {
        return Ok(());
    }
    anyhow::bail!(
        "no project `{name}` on this engine (no container carries its label)\n  hint: `shoal ls -a` lists the projects there are"
    )
}

/// Says there is no control plane, and how to start one.
pub fn no_control_plane(project: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no control plane is running for project {project}\n  hint: start one with `shoal up -d`"
    )
}
