//! Container output, each line prefixed with its replica (`web-1  | ...`), as
//! `docker compose logs` and `up` show it.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use shoal_runtime::{ContainerInfo, LogLine, LogOptions, Runtime};

/// `web-1`: service and replica, the name the prefix shows.
pub fn label(c: &ContainerInfo) -> String {
    format!("{}-{}", c.service, c.replica)
}

fn print(prefix: &str, width: usize, line: &LogLine) {
    let mut out = std::io::stdout().lock();
    let ts = line
        .timestamp
        .as_deref()
        .map(|t| format!("{t} "))
        .unwrap_or_default();
    let _ = writeln!(out, "{prefix:<width$} | {ts}{}", line.text);
}

/// Prints the logs of `containers`, interleaved by time when not following.
pub async fn show(
    rt: &dyn Runtime,
    containers: &[ContainerInfo],
    opts: &LogOptions,
) -> anyhow::Result<()> {
    let width = containers.iter().map(|c| label(c).len()).max().unwrap_or(0);
    if opts.follow {
        let streams = containers.iter().map(|c| {
            let prefix = label(c);
            rt.logs(&c.id, opts).map(move |l| (prefix.clone(), l))
        });
        let mut all = futures_util::stream::select_all(streams);
        while let Some((prefix, line)) = all.next().await {
            print(&prefix, width, &line?);
        }
        return Ok(());
    }
    // Read everything with timestamps, then print in time order.
    let mut lines = Vec::new();
    let with_ts = LogOptions {
        timestamps: true,
        ..opts.clone()
    };
    for c in containers {
        let prefix = label(c);
        let mut s = rt.logs(&c.id, &with_ts);
        while let Some(l) = s.next().await {
            lines.push((prefix.clone(), l?));
        }
    }
    lines.sort_by(|a, b| a.1.timestamp.cmp(&b.1.timestamp));
    for (prefix, mut line) in lines {
        if !opts.timestamps {
            line.timestamp = None;
        }
        print(&prefix, width, &line);
    }
    Ok(())
}

/// Follows the output of every replica of `project` as replicas come and go, until
/// the task is dropped. Used by `shoal up` in the foreground.
pub async fn follow_project(rt: Arc<dyn Runtime>, project: String, width: usize) {
    // Containers followed now, and every container ever followed (a restarted one is
    // followed again from the restart on, not from its first line).
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        if let Ok(list) = rt.list(&project).await {
            for c in list
                .into_iter()
                .filter(|c| c.state == shoal_runtime::State::Running)
            {
                if !active.lock().expect("not poisoned").insert(c.id.clone()) {
                    continue;
                }
                let since = (!seen.insert(c.id.clone())).then(unix_now);
                let rt = rt.clone();
                let active = active.clone();
                tokio::spawn(async move {
                    let prefix = label(&c);
                    let opts = LogOptions {
                        follow: true,
                        since,
                        ..LogOptions::default()
                    };
                    let mut s = rt.logs(&c.id, &opts);
                    while let Some(Ok(line)) = s.next().await {
                        print(&prefix, width, &line);
                    }
                    active.lock().expect("not poisoned").remove(&c.id);
                });
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2026-12-01T21:32:37Z`: a Unix time, in UTC, to the second.
pub fn rfc3339(unix: f64) -> String {
    let nanos = (unix.max(0.0) as i64).saturating_mul(1_000_000_000);
    let full = shoal_logs::format_rfc3339(nanos);
    format!("{}Z", &full[..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_161_957.4), "2026-12-01T21:52:37Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00Z");
    }
}
