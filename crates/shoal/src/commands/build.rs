//! `shoal build`: build the services' images.

use std::process::ExitCode;

use crate::cli::{BuildArgs, Global};

pub async fn run(global: &Global, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load(global)?;
    let p = &loaded.project;
    super::check_services(p, &args.services)?;
    let rt = super::engine().await?;
    let buildable: Vec<String> = p
        .services
        .values()
        .filter(|s| {
            s.build.is_some() && (args.services.is_empty() || args.services.contains(&s.name))
        })
        .map(|s| s.name.clone())
        .collect();
    if buildable.is_empty() {
        eprintln!("nothing to build: no service has a `build` section");
        return Ok(ExitCode::SUCCESS);
    }
    crate::images::ensure(rt.as_ref(), p, true, &buildable).await?;
    Ok(ExitCode::SUCCESS)
}
