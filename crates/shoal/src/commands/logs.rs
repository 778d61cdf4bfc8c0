//! `shoal logs [SERVICE...] [-f] [--tail N] [--since D]`.

use std::process::ExitCode;

use shoal_runtime::LogOptions;

use crate::cli::{Global, LogsArgs};

pub async fn run(global: &Global, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load(global)?;
    let p = &loaded.project;
    super::check_services(p, &args.services)?;
    let since = match &args.since {
        None => None,
        Some(s) => Some(match s.parse::<i64>() {
            Ok(unix) => unix,
            Err(_) => {
                let d = shoal_spec::syntax::duration(s).map_err(|e| {
                    anyhow::anyhow!(
                        "--since {s}: {e} (give a duration such as 10m, or a Unix time)"
                    )
                })?;
                crate::logs::unix_now() - d.as_secs() as i64
            }
        }),
    };
    let rt = super::engine().await?;
    let containers: Vec<_> = rt
        .list(&p.name)
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
