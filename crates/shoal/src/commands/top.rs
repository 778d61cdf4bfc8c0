//! `shoal top [SVC...]`: the processes running in each replica, as `docker compose
//! top` prints them: the container's name, then its `ps -ef` table. Works with `-p`
//! alone.

use std::process::ExitCode;

use shoal_runtime::State;

use crate::cli::{Global, TopArgs};

pub async fn run(global: &Global, args: &TopArgs) -> anyhow::Result<ExitCode> {
    let (name, project, _) = super::project_or_name(global)?;
    if let Some(p) = &project {
        super::check_services(p, &args.services)?;
    }
    let rt = super::engine().await?;
    super::known(&name, project.as_ref(), rt.as_ref()).await?;
    let mut containers: Vec<_> = rt
        .list(&name)
        .await?
        .into_iter()
        .filter(|c| c.state == State::Running)
        .filter(|c| args.services.is_empty() || args.services.contains(&c.service))
        .collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    for (i, c) in containers.iter().enumerate() {
        let (titles, rows) = rt.top(&c.id).await?;
        if i > 0 {
            println!();
        }
        println!("{}", c.name);
        let mut widths: Vec<usize> = titles.iter().map(String::len).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |cells: &[String]| {
            let n = cells.len();
            cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(j, (c, w))| {
                    if j + 1 == n {
                        c.clone()
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        println!("{}", line(&titles));
        for row in &rows {
            println!("{}", line(row));
        }
    }
    Ok(ExitCode::SUCCESS)
}
