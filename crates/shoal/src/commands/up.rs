//! `shoal up [-d]`: build what is missing, then run the control plane: in the
//! foreground with every replica's output, or detached with its log in the state
//! directory. Ctrl-C (or SIGTERM) drains and stops the replicas and keeps volumes.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use shoal_engine::{Command, ControlPlane, Metrics};
use shoal_spec::MetricsAt;
use shoal_spec::Project;
use tokio::sync::watch;

use crate::api::Client;
use crate::cli::{parse_count, Global, UpArgs};
use crate::state;

pub async fn run(global: &Global, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load(global)?;
    let project = loaded.project;
    let mut scale = BTreeMap::new();
    for s in &args.scale {
        let (svc, n) = parse_count(s)?;
        scale.insert(svc, n);
    }
    super::check_services(&project, scale.keys())?;
    let metrics = match args.metrics.as_deref().map(MetricsAt::parse) {
        Some(Err(e)) => {
            anyhow::bail!("--metrics: {e}\n  hint: use IP:PORT, such as 127.0.0.1:9464, or off")
        }
        Some(Ok(m)) => Some(m),
        None => project.x_shoal.metrics.clone(),
    };
    let metrics = match metrics {
        Some(MetricsAt::Off) => Metrics::Off,
        Some(MetricsAt::At(a)) => Metrics::At(a),
        None => Metrics::Default,
    };
    if !args.detached_child {
        for svc in project.services.values() {
            for key in svc.other.keys() {
                if !shoal_spec::ENGINE_KEYS.contains(&key.as_str()) {
                    eprintln!(
                        "warning: service {}: `{key}` is not applied by shoal",
                        svc.name
                    );
                }
            }
        }
    }
    let rt = super::engine().await?;
    let socket = state::socket(&project.name);
    if !args.detached_child {
        crate::images::ensure(rt.as_ref(), &project, args.build, &[]).await?;
        if let Some(c) = Client::connect(&socket).await {
            // A control plane runs: it takes this version of the project and rolls
            // what changed.
            return roll(&c, &project, &scale, args).await;
        }
    }
    let state_dir = state::create(&project.name).with_context(|| {
        format!(
            "cannot create the state directory {}",
            state::dir(&project.name).display()
        )
    })?;
    if args.detach && !args.detached_child {
        return detach(global, args, &project).await;
    }

    init_tracing();
    let (control, handle) =
        ControlPlane::start(rt.clone(), project.clone(), state_dir, &scale, metrics).await?;
    let (stop_api, stop_rx) = watch::channel(false);
    let api = tokio::spawn(crate::api::serve(socket, handle.clone(), stop_rx));
    let logs = (!args.detached_child).then(|| {
        let width = project
            .services
            .values()
            .map(|s| s.name.len() + 3)
            .max()
            .unwrap_or(0);
        tokio::spawn(crate::logs::follow_project(
            rt.clone(),
            project.name.clone(),
            width,
        ))
    });
    // A control plane whose state directory is gone (removed by `down` run with
    // another state directory, or by hand) can no longer be reached: it stops.
    let watch_socket = state::socket(&project.name);
    let commands = handle.commands.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            if !watch_socket.exists() {
                tracing::warn!(
                    "{} was removed: stopping the control plane",
                    watch_socket.display()
                );
                let _ = commands
                    .send(Command::Shutdown {
                        remove: false,
                        volumes: false,
                    })
                    .await;
                return;
            }
        }
    });
    let commands = handle.commands.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("stopping: draining and stopping the replicas (volumes are kept)");
        let _ = commands
            .send(Command::Shutdown {
                remove: false,
                volumes: false,
            })
            .await;
    });
    let result = control.run().await;
    let _ = stop_api.send(true);
    let _ = api.await;
    if let Some(l) = logs {
        l.abort();
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Hands `project` to the running control plane and, unless `--no-wait`, waits for
/// its rollouts: the exit code says whether they succeeded.
async fn roll(
    client: &Client,
    project: &Project,
    scale: &BTreeMap<String, u32>,
    args: &UpArgs,
) -> anyhow::Result<ExitCode> {
    let rolling = client.apply(project).await?;
    if !scale.is_empty() {
        client.scale(scale).await?;
    }
    if rolling.is_empty() {
        eprintln!("project {}: no service changed", project.name);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("project {}: rolling {}", project.name, rolling.join(", "));
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    super::rollout::wait_for(client, &rolling, Duration::from_secs(args.wait_timeout)).await
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Starts this same program as the detached control plane and waits for it to bring
/// the project up.
async fn detach(global: &Global, args: &UpArgs, project: &Project) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let log_path = state::log_file(&project.name);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let start_of_log = log.metadata().map(|m| m.len()).unwrap_or(0);
    let cwd = std::env::current_dir()?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("-p").arg(&project.name);
    for f in &global.files {
        cmd.arg("-f").arg(cwd.join(f));
    }
    if let Some(d) = &global.project_directory {
        cmd.arg("--project-directory").arg(cwd.join(d));
    }
    for e in &global.env_files {
        cmd.arg("--env-file").arg(cwd.join(e));
    }
    for p in &global.profiles {
        cmd.arg("--profile").arg(p);
    }
    cmd.arg("up").arg("--detached-child");
    for s in &args.scale {
        cmd.arg("--scale").arg(s);
    }
    if let Some(m) = &args.metrics {
        cmd.arg("--metrics").arg(m);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in this terminal is not for it.
        .process_group(0);
    let mut child = cmd.spawn().context("cannot start the control plane")?;
    let pid = child.id();

    let socket = state::socket(&project.name);
    let deadline = Instant::now() + Duration::from_secs(args.wait_timeout);
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!("{}: starting the control plane", project.name));
    let outcome = loop {
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!(
                "the control plane exited ({status}); its log says:\n{}",
                log_since(&log_path, start_of_log)
            ));
        }
        if let Some(client) = Client::connect(&socket).await {
            if args.no_wait {
                break Ok(());
            }
            if let Ok(s) = client.status().await {
                if s.converged {
                    break Ok(());
                }
                let failed: Vec<String> = s
                    .replicas
                    .iter()
                    .filter(|r| r.record.given_up)
                    .map(|r| {
                        format!(
                            "{}.{} {} and will not be restarted",
                            r.service, r.replica, r.record.reason
                        )
                    })
                    .collect();
                if !failed.is_empty() {
                    break Err(anyhow::anyhow!(
                        "{}\n  hint: the control plane (pid {pid}) keeps the rest running; `shoal logs` shows what the replica said",
                        failed.join("\n")
                    ));
                }
                let mut msg = s
                    .services
                    .iter()
                    .map(|(n, c)| format!("{n} {}/{}", c.ready, c.desired))
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Some(w) = s.waiting.first() {
                    msg.push_str(&format!(" ({w})"));
                }
                bar.set_message(format!("{}: {msg}", project.name));
            }
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "the services are not all running after {}s; the control plane (pid {pid}) keeps trying\n  hint: `shoal ps` shows where they are, `shoal logs` what they say",
                args.wait_timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish_and_clear();
    outcome?;
    eprintln!(
        "project {} is up; control plane pid {pid}, log {}",
        project.name,
        log_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn log_since(path: &std::path::Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let _ = f.read_to_string(&mut text);
    }
    text
}
