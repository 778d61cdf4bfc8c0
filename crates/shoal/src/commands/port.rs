//! `shoal port SVC PRIVATE_PORT [--protocol tcp] [--index N]`: the host address a
//! service's container port is published on. Every replica is behind the same port
//! (shoal's balancer owns it), so the answer is the same for each; `--index` only
//! checks that the replica exists.

use std::process::ExitCode;

use crate::cli::{Global, PortArgs};

pub async fn run(global: &Global, args: &PortArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load(global)?;
    let p = &loaded.project;
    super::check_services(p, std::iter::once(&args.service))?;
    let svc = &p.services[&args.service];
    if let Some(n) = args.index {
        let rt = super::engine().await?;
        let present = rt
            .list(&p.name)
            .await?
            .iter()
            .any(|c| c.service == svc.name && c.replica == n);
        if !present {
            anyhow::bail!(
                "service `{}` has no replica {n}\n  hint: `shoal ps` lists the replicas",
                svc.name
            );
        }
    }
    let Some(port) = svc
        .ports
        .iter()
        .find(|port| port.target == args.private_port && port.protocol == args.protocol)
    else {
        anyhow::bail!(
            "{}/{} of `{}` is not published\n  hint: publish it with `ports:` in the Compose file",
            args.private_port,
            args.protocol,
            svc.name
        );
    };
    let ip = if port.host_ip.is_empty() {
        "0.0.0.0"
    } else {
        &port.host_ip
    };
    println!("{ip}:{}", port.published.clone().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}
