//! `shoal stop | start | restart | pause | unpause [SVC...]`,
//! `shoal kill [-s SIGNAL] [SVC...]` and `shoal wait [SVC...]`.
//!
//! Stop, start and restart go through the control plane, which owns the balancer:
//! a stopped replica is drained first, a stopped service stays stopped across
//! control-plane restarts (until `start`, `restart` or `up`), and a restart is rolling
//! (a batch of replicas at a time, each successor ready before its predecessor goes),
//! never every replica down at once; a paused replica is drained before it is
//! frozen, and its service is left as it is until unpaused. Without a control plane,
//! `stop`, `pause` and `unpause` act on the containers through the engine, as
//! `docker compose` does. `kill` signals the
//! containers through the engine; the control plane then heals them by their restart
//! policy.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use shoal_engine::Lifecycle;
use shoal_runtime::{ContainerInfo, Runtime, State};

use crate::api::Client;
use crate::cli::{Global, KillArgs, ServicesArgs};

/// The services' replicas (all services when none are named; one-offs of
/// `shoal run` left out).
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
        .filter(|c| !c.labels.contains_key(shoal_runtime::LABEL_ONEOFF))
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
    super::known(&name, project.as_ref(), rt.as_ref()).await?;
    let Some(client) = Client::connect(&crate::state::socket(&name)).await else {
        if matches!(action, Lifecycle::Start | Lifecycle::Restart) {
            return Err(super::no_control_plane(&name));
        }
        // No balancer to drain: the containers are acted on as Compose would.
        let all = containers(rt.as_ref(), &name, &args.services).await?;
        for c in all.iter().filter(|c| c.state == State::Running) {
            match action {
                Lifecycle::Stop => {
                    rt.stop(&c.id, shoal_runtime::container::DEFAULT_GRACE)
                        .await?
                }
                Lifecycle::Pause if !c.paused => rt.pause(&c.id).await?,
                Lifecycle::Unpause if c.paused => rt.unpause(&c.id).await?,
                _ => continue,
            }
            eprintln!("{}: {}", c.name, done_word(action));
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
        Lifecycle::Stop | Lifecycle::Start | Lifecycle::Pause | Lifecycle::Unpause => {
            // Like Compose, return once the containers are where they were asked to be.
            let there = |c: &ContainerInfo| match action {
                Lifecycle::Stop => c.state != State::Running,
                Lifecycle::Start => c.state == State::Running,
                Lifecycle::Pause => c.state != State::Running || c.paused,
                _ => !c.paused,
            };
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let now = containers(rt.as_ref(), &name, &args.services).await?;
                if now.iter().all(there) {
                    return Ok(ExitCode::SUCCESS);
                }
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "the containers are not {} after 120s\n  hint: `shoal ps` shows where they are",
                        done_word(action)
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// What an action leaves a container as.
fn done_word(action: Lifecycle) -> &'static str {
    match action {
        Lifecycle::Stop => "stopped",
        Lifecycle::Start | Lifecycle::Restart => "started",
        Lifecycle::Pause => "paused",
        Lifecycle::Unpause => "unpaused",
    }
}

pub async fn kill(global: &Global, args: &KillArgs) -> anyhow::Result<ExitCode> {
    let signal = signal(&args.signal)?;
    let (rt, running) = running(global, &args.services, "signal").await?;
    for c in &running {
        rt.kill(&c.id, &signal).await?;
        eprintln!("{}: sent {signal}", c.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `shoal wait`: until every running replica of the services has exited (once: a
/// replica the control plane restarts counts by its first exit), printing each exit
/// code, as `docker compose wait` does. The exit code is the first non-zero one.
pub async fn wait(global: &Global, args: &ServicesArgs) -> anyhow::Result<ExitCode> {
    let (rt, running) = running(global, &args.services, "wait for").await?;
    let waits = running.iter().map(|c| {
        let rt = rt.clone();
        async move { (c, rt.wait(&c.id).await) }
    });
    let mut ends = futures_util::stream::iter(waits).buffer_unordered(64);
    let mut first_failure = None;
    while let Some((c, code)) = ends.next().await {
        let code = code?;
        println!("{}: exited with code {code}", c.name);
        if code != 0 && first_failure.is_none() {
            first_failure = Some(code);
        }
    }
    Ok(ExitCode::from(
        first_failure.unwrap_or(0).clamp(0, 255) as u8
    ))
}

/// The engine, and the running replicas of `services` of the project named; an
/// error when there is none to `what`.
async fn running(
    global: &Global,
    services: &[String],
    what: &str,
) -> anyhow::Result<(std::sync::Arc<dyn Runtime>, Vec<ContainerInfo>)> {
    let (name, project, _) = super::project_or_name(global)?;
    if let Some(p) = &project {
        super::check_services(p, services)?;
    }
    let rt = super::engine().await?;
    super::known(&name, project.as_ref(), rt.as_ref()).await?;
    let running: Vec<ContainerInfo> = containers(rt.as_ref(), &name, services)
        .await?
        .into_iter()
        .filter(|c| c.state == State::Running)
        .collect();
    if running.is_empty() {
        anyhow::bail!("no running replica to {what} in project {name}");
    }
    Ok((rt, running))
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
