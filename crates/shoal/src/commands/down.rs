//! `shoal down [-v]`: stop the control plane, remove containers and networks; named
//! volumes and the log store only with `-v`.

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
    // The log store stays for `shoal logs` after the project is gone, as the volumes
    // do; `-v` removes it with them.
    let dir = crate::state::dir(name);
    let logs = shoal_engine::collect::store_dir(&dir);
    if dir.exists() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path == logs && !args.volumes {
                continue;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        if !logs.exists() {
            std::fs::remove_dir(&dir)?;
        }
    }
    eprintln!(
        "project {name} is down{}",
        if args.volumes {
            " (volumes and logs removed)"
        } else if logs.exists() {
            "; its logs are kept (`shoal logs`; `down -v` removes them)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
