//! `shoal down [-v]`: stop the control plane, remove containers and networks; named
//! volumes only with `-v`.

use std::process::ExitCode;

use crate::api::Client;
use crate::cli::{DownArgs, Global};

pub async fn run(global: &Global, args: &DownArgs) -> anyhow::Result<ExitCode> {
    // Like `docker compose -p NAME down`, this works without the Compose file: all it
    // needs is the project name, and everything is found by label.
    let (name, why) = super::project_name(global)?;
    if let Some(e) = why {
        eprintln!("warning: {e:#}; removing project {name} by its labels");
    }
    let name = &name;
    let rt = super::engine().await?;
    if let Some(client) = Client::connect(&crate::state::socket(name)).await {
        eprintln!("stopping the control plane of {name}");
        client.shutdown(true, args.volumes).await?;
    }
    // Whatever the control plane did or did not get to: remove by label.
    shoal_engine::down::teardown(rt.as_ref(), name, args.volumes).await?;
    // External volumes and networks carry no project label: they are never touched.
    let dir = crate::state::dir(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    eprintln!(
        "project {name} is down{}",
        if args.volumes {
            " (volumes removed)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
