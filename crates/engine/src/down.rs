//! Removing a project: everything found by its label, so it works with or without a
//! control plane and after any crash. Named volumes go only when asked (`down -v`).

use shoal_runtime::{Runtime, State};

use crate::Error;

/// Stops and removes the project's containers and networks; its volumes too when
/// `volumes` is set.
pub async fn teardown(rt: &dyn Runtime, project: &str, volumes: bool) -> Result<(), Error> {
    // A container another hand is removing at the same moment (a retirement the
    // control plane had started) answers "removal in progress": look again, a few
    // times, before calling it a failure; networks go once nothing is attached.
    let mut last = None;
    for attempt in 0..5 {
        let containers = rt.list(project).await?;
        if containers.is_empty() {
            last = None;
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
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
        last = futures_util::future::join_all(stops)
            .await
            .into_iter()
            .find_map(Result::err);
    }
    if let Some(e) = last {
        return Err(e.into());
    }
    for net in rt.project_networks(project).await? {
        let mut tries = 0;
        while let Err(e) = rt.remove_network(&net).await {
            tries += 1;
            if tries == 5 {
                return Err(e.into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }
    if volumes {
        for vol in rt.project_volumes(project).await? {
            rt.remove_volume(&vol).await?;
        }
    }
    Ok(())
}
