//! `shoal ps [--format json]`: the project's replicas.

use std::process::ExitCode;

use serde_json::json;
use shoal_runtime::{Health, State};

use crate::api::Client;
use crate::cli::{Format, Global, PsArgs};

pub async fn run(global: &Global, args: &PsArgs) -> anyhow::Result<ExitCode> {
    // Like `docker compose -p NAME ps`, this works without the Compose file: the
    // containers are found by label (their published ports then come from the file
    // alone, so they are left out).
    let (name, project, _) = super::project_or_name(global)?;
    let rt = super::engine().await?;
    super::known(&name, project.as_ref(), rt.as_ref()).await?;
    let containers = rt.list(&name).await?;
    let control = match Client::connect(&crate::state::socket(&name)).await {
        Some(c) => c.status().await.ok(),
        None => None,
    };
    let record = |c: &shoal_runtime::ContainerInfo| {
        control.as_ref().and_then(|s| {
            s.replicas
                .iter()
                .find(|r| r.service == c.service && r.replica == c.replica)
                .map(|r| r.record.clone())
        })
    };
    let rows: Vec<serde_json::Value> = containers
        .iter()
        .map(|c| {
            let rec = record(c);
            let ports: Vec<String> = project
                .as_ref()
                .and_then(|p| p.services.get(&c.service))
                .map(|s| {
                    s.ports
                        .iter()
                        .map(|port| {
                            let ip = if port.host_ip.is_empty() {
                                "0.0.0.0"
                            } else {
                                &port.host_ip
                            };
                            match &port.published {
                                Some(h) => format!("{ip}:{h}->{}/{}", port.target, port.protocol),
                                None => format!("{}/{}", port.target, port.protocol),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "service": c.service,
                "replica": c.replica,
                "container": c.name,
                "id": c.id.chars().take(12).collect::<String>(),
                "state": if c.paused { json!("paused") } else { json!(c.state) },
                "health": c.health,
                "exit_code": c.exit_code,
                "ports": ports,
                "phase": rec.as_ref().map(|r| r.phase),
                "restarts": rec.as_ref().map(|r| r.restarts),
                "last_exit": rec.as_ref().and_then(|r| r.last_exit),
                "backoff_secs": rec.as_ref().and_then(|r| r.backoff_secs),
                "reason": rec.as_ref().map(|r| r.reason.clone()),
            })
        })
        .collect();
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &control {
        Some(s) => println!(
            "project {}: control plane running (pid {}){}",
            name,
            s.pid,
            s.metrics
                .as_ref()
                .map(|m| format!(", metrics on http://{m}/metrics"))
                .unwrap_or_default()
        ),
        None => println!("project {}: no control plane running", name),
    }
    println!(
        "{:<12} {:>7}  {:<28} {:<12} {:<10} {:>8}  PORTS",
        "SERVICE", "REPLICA", "CONTAINER", "STATE", "HEALTH", "RESTARTS"
    );
    for c in &containers {
        let state = match c.state {
            State::Running if c.paused => "paused".to_string(),
            State::Exited => format!("exited ({})", c.exit_code.unwrap_or(0)),
            s => serde_json::to_value(s)?
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let health = c.health.map_or("-", Health::name);
        let row = rows
            .iter()
            .find(|r| r["container"] == c.name.as_str())
            .expect("one row per container");
        let ports: Vec<&str> = row["ports"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let restarts = row["restarts"]
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<12} {:>7}  {:<28} {:<12} {:<10} {:>8}  {}",
            c.service,
            c.replica,
            c.name,
            state,
            health,
            restarts,
            ports.join(", ")
        );
        // Why a replica is not serving, and when it comes back.
        if let Some(phase) = row["phase"].as_str().filter(|p| *p != "ready") {
            let mut why = format!(
                "  {}.{} {phase}: {}",
                c.service,
                c.replica,
                row["reason"].as_str().unwrap_or("")
            );
            if let Some(secs) = row["backoff_secs"].as_f64() {
                why.push_str(&format!("; restarting in {secs:.1}s"));
            }
            println!("{why}");
        }
    }
    if let Some(s) = control {
        for (name, svc) in s
            .services
            .iter()
            .filter(|(_, v)| v.traffic.requests > 0 || v.in_flight > 0)
        {
            println!(
                "{name}: {} requests, {} failed, {} retried, {} in flight; {}/{} replicas ready",
                svc.traffic.requests,
                svc.traffic.failures,
                svc.traffic.retries,
                svc.in_flight,
                svc.ready,
                svc.desired
            );
        }
        if !s.events.is_empty() {
            println!("recent events:");
            for e in s.events.iter().rev().take(8).rev() {
                println!("  {}", super::events::line(e, false));
            }
        }
        for (name, _) in s.services.iter().filter(|(_, v)| v.stopped) {
            println!("stopped: {name} (`shoal start {name}` starts it again)");
        }
        for (name, _) in s.services.iter().filter(|(_, v)| v.paused) {
            println!("paused: {name} (`shoal unpause {name}` thaws it)");
        }
        for w in &s.waiting {
            println!("waiting: {w}");
        }
        for f in &s.failures {
            println!("failing: {f}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
