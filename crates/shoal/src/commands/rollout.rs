//! `shoal rollout status|history|undo|pause|resume`: a service's revisions and its
//! rolling update, as `kubectl rollout` has them.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use shoal_engine::revision::{History, Revisions, RolloutRecord, RolloutState};
use shoal_engine::{RolloutCommand, Status};

use crate::api::Client;
use crate::cli::{Global, RolloutArgs, RolloutVerb};

pub async fn run(global: &Global, args: &RolloutArgs) -> anyhow::Result<ExitCode> {
    let (name, _) = super::project_name(global)?;
    let client = Client::connect(&crate::state::socket(&name)).await;
    let command = || {
        client
            .as_ref()
            .ok_or_else(|| super::no_control_plane(&name))
    };
    match &args.verb {
        RolloutVerb::Status {
            service,
            wait,
            timeout,
        } => {
            let Some(c) = &client else {
                // No control plane: what the last one recorded.
                let revisions = Revisions::load(&crate::state::dir(&name))?;
                return print_status(&records_of(&revisions), service.as_deref());
            };
            let status = c.status().await?;
            if let Some(s) = service {
                known(&status, s, &name)?;
            }
            if *wait {
                let services: Vec<String> = match service {
                    Some(s) => vec![s.clone()],
                    None => status.rollouts.keys().cloned().collect(),
                };
                return wait_for(c, &services, Duration::from_secs(*timeout)).await;
            }
            print_status(&records(&status), service.as_deref())
        }
        RolloutVerb::History { service } => {
            let revisions = Revisions::load(&crate::state::dir(&name))?;
            let Some(h) = revisions.of(service).filter(|h| !h.revisions.is_empty()) else {
                anyhow::bail!(
                    "`{service}` has no revisions in project {name}\n  hint: revisions are kept from the first `shoal up`; `shoal ps` lists the services"
                );
            };
            print_history(h);
            Ok(ExitCode::SUCCESS)
        }
        RolloutVerb::Undo {
            service,
            to_revision,
        } => {
            act(
                command()?,
                RolloutCommand::Undo {
                    service: service.clone(),
                    to: *to_revision,
                },
            )
            .await
        }
        RolloutVerb::Pause { service } => {
            let service = service.clone();
            act(command()?, RolloutCommand::Pause { service }).await
        }
        RolloutVerb::Resume { service } => {
            let service = service.clone();
            act(command()?, RolloutCommand::Resume { service }).await
        }
    }
}

/// Sends a rollout command and says what the control plane did.
async fn act(client: &Client, cmd: RolloutCommand) -> anyhow::Result<ExitCode> {
    eprintln!("{}", client.rollout(&cmd).await?);
    Ok(ExitCode::SUCCESS)
}

fn known(status: &Status, service: &str, project: &str) -> anyhow::Result<()> {
    if !status.rollouts.contains_key(service) {
        anyhow::bail!("no service `{service}` in project {project}");
    }
    Ok(())
}

/// (revision, last rollout) by service, from a running control plane.
fn records(status: &Status) -> BTreeMap<String, (u32, Option<RolloutRecord>)> {
    status
        .rollouts
        .iter()
        .map(|(n, r)| (n.clone(), (r.revision, r.rollout.clone())))
        .collect()
}

/// The same from the state directory.
fn records_of(revisions: &Revisions) -> BTreeMap<String, (u32, Option<RolloutRecord>)> {
    revisions
        .services
        .iter()
        .map(|(n, h)| (n.clone(), (h.current, h.rollout.clone())))
        .collect()
}

/// How a rollout ended, if it did.
pub enum Outcome {
    /// Complete.
    Done(String),
    /// Rolled back or paused, with why.
    Failed(String),
    /// Still going, with where it is.
    Going(String),
}

/// What a service's last rollout says.
pub fn outcome(service: &str, revision: u32, rec: Option<&RolloutRecord>) -> Outcome {
    let Some(r) = rec else {
        return Outcome::Done(format!("{service}: revision {revision}"));
    };
    let step = |kind: &str| match r.from {
        Some(f) => format!("{service} {kind} {f}→{}", r.to),
        None => format!("{service} {kind} to {}", r.to),
    };
    let why = r.reason.clone().unwrap_or_default();
    match (r.rollback, r.state) {
        (false, RolloutState::Complete) => Outcome::Done(format!(
            "{}: complete, {}/{} replicas on revision {}",
            step("rollout"),
            r.done,
            r.of,
            r.to
        )),
        (true, RolloutState::RolledBack) => Outcome::Failed(format!(
            "{service} rollout {}→{} failed ({why}): rolled back to revision {}",
            r.to,
            r.from.unwrap_or_default(),
            r.to
        )),
        (_, RolloutState::Paused) => {
            Outcome::Failed(format!("{}: paused ({why})", step("rollout")))
        }
        (true, _) => Outcome::Going(format!(
            "{}: rolling back, {}/{} replicas ({why})",
            step("rollback"),
            r.done,
            r.of
        )),
        _ => Outcome::Going(format!("{}: {}/{} replicas", step("rollout"), r.done, r.of)),
    }
}

/// Prints each service's rollout; fails when one (or `only`) failed.
fn print_status(
    records: &BTreeMap<String, (u32, Option<RolloutRecord>)>,
    only: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for (name, (revision, rec)) in records {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        match outcome(name, *revision, rec.as_ref()) {
            Outcome::Done(s) | Outcome::Going(s) => println!("{s}"),
            Outcome::Failed(s) => {
                println!("{s}");
                failed = true;
            }
        }
    }
    if let Some(o) = only.filter(|o| !records.contains_key(*o)) {
        anyhow::bail!("no service `{o}` with revisions");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Waits until the rollouts of `services` end; fails with the reason when one was
/// rolled back or paused, or when `timeout` passes.
pub async fn wait_for(
    client: &Client,
    services: &[String],
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + timeout;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let status = client.status().await?;
        let mut going = Vec::new();
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for s in services {
            let Some(r) = status.rollouts.get(s) else {
                continue;
            };
            match outcome(s, r.revision, r.rollout.as_ref()) {
                Outcome::Done(m) => done.push(m),
                Outcome::Failed(m) => failed.push(m),
                Outcome::Going(m) => going.push(m),
            }
        }
        if going.is_empty() {
            bar.finish_and_clear();
            for m in &done {
                eprintln!("{m}");
            }
            if failed.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            for m in &failed {
                eprintln!("error: {m}");
            }
            eprintln!("  hint: `shoal ps` shows the replicas, `shoal logs SERVICE` what they said");
            return Ok(ExitCode::FAILURE);
        }
        if Instant::now() > deadline {
            bar.finish_and_clear();
            anyhow::bail!(
                "still rolling after {}s: {}\n  hint: the control plane keeps going; `shoal rollout status --wait` waits again",
                timeout.as_secs(),
                going.join("; ")
            );
        }
        bar.set_message(going.join("; "));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// REVISION, when applied, what changed from the one before, the image; `*` marks the
/// current one.
fn print_history(h: &History) {
    println!(
        "{:<10} {:<21} {:<12} {:<14} CHANGE",
        "REVISION", "APPLIED", "CAUSE", "IMAGE"
    );
    let mut before: Option<(serde_json::Value, Option<String>)> = None;
    for r in &h.revisions {
        let now = serde_json::to_value(&r.service).unwrap_or_default();
        let change = match &before {
            None => "first".to_string(),
            Some((b, image)) => changes(b, &now, image != &r.image_id),
        };
        let mark = if r.number == h.current { "*" } else { " " };
        let image = r
            .image_id
            .as_deref()
            .map(|i| i.trim_start_matches("sha256:").chars().take(12).collect())
            .unwrap_or_else(|| "-".to_string());
        println!(
            "{:<10} {:<21} {:<12} {:<14} {change}",
            format!("{}{mark}", r.number),
            crate::logs::rfc3339(r.applied_at as f64),
            r.cause,
            image
        );
        before = Some((now, r.image_id.clone()));
    }
}

/// What differs from the revision before: the top-level keys whose values differ,
/// and the image when it was rebuilt.
fn changes(before: &serde_json::Value, now: &serde_json::Value, rebuilt: bool) -> String {
    let empty = serde_json::Map::new();
    let (b, n) = (
        before.as_object().unwrap_or(&empty),
        now.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&str> = n
        .keys()
        .chain(b.keys())
        .filter(|k| b.get(*k) != n.get(*k))
        .map(String::as_str)
        .collect();
    keys.sort();
    keys.dedup();
    if rebuilt {
        keys.insert(0, "image rebuilt");
    }
    keys.join(", ")
}
