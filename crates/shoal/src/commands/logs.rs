//! `shoal logs [SERVICE...] [-f] [--tail N] [--since D]`.

use std::process::ExitCode;

use shoal_runtime::LogOptions;

use crate::cli::{Global, LogsArgs};

pub async fn run(global: &Global, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    // With `-p NAME` alone (no Compose file) the replicas are found by label.
    let (name, project, _) = super::project_or_name(global)?;
    if let Some(p) = &project {
        super::check_services(p, &args.services)?;
    }
    let since = super::since(args.since.as_deref())?;
    let rt = super::engine().await?;
    super::known(&name, project.as_ref(), rt.as_ref()).await?;
    let containers: Vec<_> = rt
        .list(&name)
        .await?
        .into_iter()
        .filter(|c| args.services.is_empty() || args.services.contains(&c.service))
        .collect();
    let opts = LogOptions {
        follow: args.follow,
        tail: args.tail,
        since,
        timestamps: args.timestamps,
    };
    crate::logs::show(rt.as_ref(), &containers, &opts).await?;
    Ok(ExitCode::SUCCESS)
}
