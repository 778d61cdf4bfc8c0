//! `shoal scale web=5`: set replica counts on the running control plane.

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::api::Client;
use crate::cli::{parse_count, Global, ScaleArgs};

pub async fn run(global: &Global, args: &ScaleArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load(global)?;
    let p = &loaded.project;
    let mut counts = BTreeMap::new();
    for c in &args.counts {
        let (svc, n) = parse_count(c)?;
        counts.insert(svc, n);
    }
    super::check_services(p, counts.keys())?;
    let Some(client) = Client::connect(&crate::state::socket(&p.name)).await else {
        return Err(super::no_control_plane(&p.name));
    };
    client.scale(&counts).await?;
    for (svc, n) in &counts {
        eprintln!("{svc}: scaled to {n}");
    }
    Ok(ExitCode::SUCCESS)
}
