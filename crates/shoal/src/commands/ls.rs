//! `shoal ls [-a] [--format json]`: the projects on this engine, found by their
//! containers' labels as `docker compose ls` finds them, with whether a control plane
//! runs each and how many of its replicas run.

use std::collections::BTreeSet;
use std::process::ExitCode;

use serde_json::json;
use shoal_runtime::State;

use crate::api::Client;
use crate::cli::{Format, LsArgs};

pub async fn run(args: &LsArgs) -> anyhow::Result<ExitCode> {
    let rt = super::engine().await?;
    let mut rows = Vec::new();
    for name in rt.projects().await? {
        let containers = rt.list(&name).await?;
        let running = containers
            .iter()
            .filter(|c| c.state == State::Running)
            .count();
        if running == 0 && !args.all {
            continue;
        }
        let services: BTreeSet<&str> = containers.iter().map(|c| c.service.as_str()).collect();
        let control = match Client::connect(&crate::state::socket(&name)).await {
            Some(c) => c.status().await.ok().map(|s| s.pid),
            None => None,
        };
        let status = if running == containers.len() {
            format!("running({running})")
        } else {
            format!("running({running}), exited({})", containers.len() - running)
        };
        rows.push(json!({
            "name": name,
            "status": status,
            "services": services.len(),
            "replicas": containers.len(),
            "running": running,
            "control_plane": control,
        }));
    }
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<28} {:>8}  CONTROL PLANE",
        "NAME", "STATUS", "SERVICES"
    );
    for r in &rows {
        let control = match r["control_plane"].as_u64() {
            Some(pid) => format!("running (pid {pid})"),
            None => "-".to_string(),
        };
        println!(
            "{:<28} {:<28} {:>8}  {control}",
            r["name"].as_str().unwrap_or_default(),
            r["status"].as_str().unwrap_or_default(),
            r["services"]
        );
    }
    Ok(ExitCode::SUCCESS)
}
