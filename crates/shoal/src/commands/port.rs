//! `shoal port SVC PRIVATE_PORT [--protocol tcp] [--index N]`: the host address a
//! service's container port is published on. Every replica is behind the same port
//! (shoal's balancer owns it), so the answer is the same for each; `--index` only
//! checks that the replica exists. With `-p NAME` alone, the running control plane
//! says where it listens.

use std::process::ExitCode;

use crate::api::Client;
use crate::cli::{Global, PortArgs};

pub async fn run(global: &Global, args: &PortArgs) -> anyhow::Result<ExitCode> {
    let (name, project, _) = super::project_or_name(global)?;
    let rt = super::engine().await?;
    super::known(&name, project.as_ref(), rt.as_ref()).await?;
    if let Some(p) = &project {
        super::check_services(p, std::iter::once(&args.service))?;
    }
    if let Some(n) = args.index {
        let present = rt
            .list(&name)
            .await?
            .iter()
            .any(|c| c.service == args.service && c.replica == n);
        if !present {
            anyhow::bail!(
                "service `{}` has no replica {n}\n  hint: `shoal ps` lists the replicas",
                args.service
            );
        }
    }
    // The file's ports; with the name alone, the running control plane's listeners.
    let address = match &project {
        Some(p) => p.services[&args.service]
            .ports
            .iter()
            .find(|port| port.target == args.private_port && port.protocol == args.protocol)
            .map(|port| {
                let ip = if port.host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    &port.host_ip
                };
                format!("{ip}:{}", port.published.clone().unwrap_or_default())
            }),
        None => {
            let Some(c) = Client::connect(&crate::state::socket(&name)).await else {
                anyhow::bail!(
                    "no control plane runs project {name}, and without its Compose file its ports are not known\n  hint: run this where the Compose file is, or `shoal up -d`"
                );
            };
            c.status()
                .await?
                .ports
                .into_iter()
                .find(|(s, _, target)| {
                    s == &args.service && *target == args.private_port && args.protocol == "tcp"
                })
                .map(|(_, a, _)| match a.strip_prefix(':') {
                    Some(port) => format!("0.0.0.0:{port}"),
                    None => a,
                })
        }
    };
    let Some(address) = address else {
        anyhow::bail!(
            "{}/{} of `{}` is not published\n  hint: publish it with `ports:` in the Compose file",
            args.private_port,
            args.protocol,
            args.service
        );
    };
    println!("{address}");
    Ok(ExitCode::SUCCESS)
}
