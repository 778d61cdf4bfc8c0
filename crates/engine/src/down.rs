//! Removing a project: everything found by its label, so it works with or without a
//! control plane and after any crash. Named volumes go only when asked (`down -v`).

use shoal_runtime::{Runtime, State};

use crate::Error;

/// Stops and removes the project's containers and networks; its volumes too when
/// `volumes` is set.
pub async fn teardown(rt: &dyn Runtime, project: &str, volumes: bool) -> Result<(), Error> {
    let containers = rt.list(project).await?;
    let stops = containers.iter().map(|c| async move {
        if matches!(c.state, State::Running | State::Restarting) {
            let grace = c
                .labels
                .get(shoal_runtime::LABEL_STOP_GRACE)
                .and_then(|g| g.parse().ok())
                .map(std::time::Duration::from_secs)
                .unwrap_or(shoal_runtime::container::DEFAULT_GRACE);
            rt.stop(&c.id, grace).await?;
        }
        rt.remove(&c.id).await
    });
    for r in futures_util::future::join_all(stops).await {
        r?;
    }
    for net in rt.project_networks(project).await? {
        rt.remove_network(&net).await?;
    }
    if volumes {
        for vol in rt.project_volumes(project).await? {
            rt.remove_volume(&vol).await?;
        }
    }
    Ok(())
}
