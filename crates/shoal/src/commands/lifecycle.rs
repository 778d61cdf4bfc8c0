//! `shoal stop | start | restart [SVC...]` and `shoal kill [-s SIGNAL] [SVC...]`.
//!
//! Stop, start and restart go through the control plane, which owns the balancer:
//! a stopped replica is drained first, a stopped service stays stopped across
//! control-plane restarts (until `start`, `restart` or `up`), and a restart is rolling
//! (a batch of replicas at a time, each successor ready before its predecessor goes),
//! never every replica down at once. Without a control plane, `stop` stops the
//! containers through the engine, as `docker compose stop` does. `kill` signals the
//! containers through the engine; the control plane then heals them by their restart
//! policy.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shoal_engine::Lifecycle;
use shoal_runtime::{ContainerInfo, Runtime, State};

use crate::api::Client;
use crate::cli::{Global, KillArgs, ServicesArgs};

/// The services' containers (all services when none are named).
async fn containers(
    rt: &dyn Runtime,
    project: &str,
    services: &[String],
) -> anyhow::Result<Vec<ContainerInfo>> {
    Ok(rt
        .list(project)
        .await?
        .into_iter()
        .filter(|c| services.is_empty() || services.contains(&c.service))
        .collect())
}

pub async fn run(
    global: &Global,
    action: Lifecycle,
    args: &ServicesArgs,
) -> anyhow::Result<ExitCode> {
    let (name, project, _) = super::project_or_name(global)?;
    if let Some(p) = &project {
        super::check_services(p, &args.services)?;
    }
    let rt = super::engine().await?;
    let Some(client) = Client::connect(&crate::state::socket(&name)).await else {
        if action != Lifecycle::Stop {
            return Err(super::no_control_plane(&name));
        }
        // No balancer to drain: the containers are stopped as Compose would.
        for c in containers(rt.as_ref(), &name, &args.services).await? {
            if c.state == State::Running {
                rt.stop(&c.id, shoal_runtime::container::DEFAULT_GRACE)
                    .await?;
                eprintln!("{}: stopped", c.name);
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    eprintln!("{}", client.lifecycle(action, &args.services).await?);
    match action {
        Lifecycle::Restart => {
            let services = if args.services.is_empty() {
                client.status().await?.services.keys().cloned().collect()
            } else {
                args.services.clone()
            };
            super::rollout::wait_for(&client, &services, Duration::from_secs(600)).await
        }
        Lifecycle::Stop | Lifecycle::Start => {
            // Like Compose, return once the containers are stopped (or running).
            let want = if action == Lifecycle::Stop {
                |c: &ContainerInfo| c.state != State::Running
            } else {
                |c: &ContainerInfo| c.state == State::Running
            };
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let now = containers(rt.as_ref(), &name, &args.services).await?;
                if now.iter().all(want) {
                    return Ok(ExitCode::SUCCESS);
                }
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "the containers did not {} within 120s\n  hint: `shoal ps` shows where they are",
                        if action == Lifecycle::Stop { "stop" } else { "start" }
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

pub async fn kill(global: &Global, args: &KillArgs) -> anyhow::Result<ExitCode> {
    let (name, project, _) = super::project_or_name(global)?;
    if let Some(p) = &project {
        super::check_services(p, &args.services)?;
    }
    let signal = signal(&args.signal)?;
    let rt = super::engine().await?;
    let running: Vec<ContainerInfo> = containers(rt.as_ref(), &name, &args.services)
        .await?
        .into_iter()
        .filter(|c| c.state == State::Running)
        .collect();
    if running.is_empty() {
        anyhow::bail!("no running replica to signal in project {name}");
    }
    for c in &running {
        rt.kill(&c.id, &signal).await?;
        eprintln!("{}: sent {signal}", c.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// A signal's name as the engine takes it (`SIGHUP`), from `HUP`, `sighup`, `SIGHUP` or
/// a number; an error for anything else.
fn signal(given: &str) -> anyhow::Result<String> {
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    if let Ok(n) = given.parse::<usize>() {
        if (1..=NAMES.len()).contains(&n) {
            return Ok(format!("SIG{}", NAMES[n - 1]));
        }
    }
    let upper = given.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if NAMES.contains(&bare) {
        return Ok(format!("SIG{bare}"));
    }
    anyhow::bail!(
        "-s {given}: not a signal\n  hint: a name such as SIGTERM, HUP or KILL, or a number from 1 to 31"
    )
}

#[cfg(test)]
mod tests {
    use super::signal;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal("HUP").unwrap(), "SIGHUP");
        assert_eq!(signal("sigterm").unwrap(), "SIGTERM");
        assert_eq!(signal("9").unwrap(), "SIGKILL");
        assert!(signal("SIGNOPE").is_err());
        assert!(signal("0").is_err());
    }
}
