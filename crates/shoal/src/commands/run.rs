//! `shoal run [--rm] [-e K=V] [--entrypoint CMD] [--no-deps] [-T] SVC [CMD...]`: a
//! one-off container of a service, as `docker compose run` makes one: the service's
//! image, environment, volumes and networks, a command of its own, a terminal when
//! stdin is one, and its exit code as shoal's. It carries the one-off label, so the
//! control plane never counts it as a replica nor puts it behind the balancer; its
//! ports are not published. `down` removes it with the rest.

use std::io::IsTerminal;
use std::process::ExitCode;

use shoal_engine::reconcile::Reconciler;
use shoal_runtime::container::ContainerSpec;
use shoal_runtime::{State, LABEL_ONEOFF, LABEL_REPLICA};

use super::exec::{pass_through, Raw};
use crate::cli::{Global, RunArgs};

pub async fn run(global: &Global, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load(global)?;
    let project = loaded.project;
    super::check_services(&project, std::iter::once(&args.service))?;
    let svc = &project.services[&args.service];
    let rt = super::engine().await?;
    if !args.no_deps {
        let containers = rt.list(&project.name).await?;
        for dep in svc.depends_on.keys() {
            let up = containers
                .iter()
                .any(|c| &c.service == dep && c.state == State::Running);
            if !up {
                anyhow::bail!(
                    "`{}` depends on `{dep}`, which is not running\n  hint: `shoal up -d` first, or `shoal run --no-deps`",
                    args.service
                );
            }
        }
    }
    // Its networks and volumes, as `up` makes them.
    let reconciler = Reconciler::new(rt.clone(), std::sync::Arc::new(project.clone()));
    reconciler.infrastructure().await?;

    let tty = !args.no_tty && std::io::stdin().is_terminal();
    let mut spec = ContainerSpec::for_replica(&project, svc, 0);
    spec.name = format!("{}-{}-run-{:08x}", project.name, svc.name, rand_suffix());
    spec.hostname = None;
    spec.labels.insert(LABEL_ONEOFF.into(), "true".into());
    spec.labels.insert(LABEL_REPLICA.into(), "0".into());
    spec.env.extend(args.env.iter().cloned());
    if !args.command.is_empty() {
        spec.command = Some(args.command.clone());
    }
    if let Some(e) = &args.entrypoint {
        spec.entrypoint =
            Some(shell_words::split(e).map_err(|err| anyhow::anyhow!("--entrypoint {e}: {err}"))?);
        if args.command.is_empty() {
            spec.command = None;
        }
    }
    for (key, on) in [("tty", tty), ("stdin_open", true), ("stdin_once", true)] {
        spec.engine.insert(key.into(), serde_json::Value::Bool(on));
    }
    let id = rt.create(&spec).await?;
    let attached = rt.attach(&id).await?;
    let raw = tty.then(Raw::enable).transpose()?;
    let started = rt.start(&id).await;
    if started.is_ok() && tty {
        if let Ok((cols, rows)) = crossterm::terminal::size() {
            let _ = rt.resize(&id, cols, rows).await;
        }
    }
    let outcome = match started {
        Ok(()) => pass_through(attached).await,
        Err(e) => Err(e.into()),
    };
    drop(raw);
    let code = match outcome {
        Ok(()) => rt.wait(&id).await,
        Err(e) => {
            let _ = rt.stop(&id, std::time::Duration::from_secs(1)).await;
            if args.rm {
                let _ = rt.remove(&id).await;
            }
            return Err(e);
        }
    };
    if args.rm {
        rt.remove(&id).await?;
    }
    Ok(ExitCode::from(code?.clamp(0, 255) as u8))
}

/// Eight hex digits that differ from one run to the next.
fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}
