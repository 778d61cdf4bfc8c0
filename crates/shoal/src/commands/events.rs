//! `shoal events [SVC...] [-f] [--since 10m] [--json]`: what happened, from the
//! events file in the state directory (so it works with or without a control
//! plane, and after one restarted), in the spirit of `docker events`; repeats are
//! merged with a count, as Kubernetes does.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use shoal_engine::event::{read, Record};

use crate::cli::{EventsArgs, Global};

pub async fn run(global: &Global, args: &EventsArgs) -> anyhow::Result<ExitCode> {
    let (name, project, _) = super::project_or_name(global)?;
    if project.is_none() && !crate::state::dir(&name).exists() {
        let rt = super::engine().await?;
        super::known(&name, None, rt.as_ref()).await?;
    }
    let since = super::since(args.since.as_deref())?.map(|s| s as f64);
    let path = crate::state::dir(&name).join("events.jsonl");
    let wanted = |r: &Record| {
        since.is_none_or(|s| r.last >= s)
            && (args.services.is_empty()
                || args
                    .services
                    .iter()
                    .any(|s| r.event.service() == Some(s.as_str())))
    };
    // What was printed, by id: a merged repeat prints again with its new count.
    let mut shown: HashMap<u64, u32> = HashMap::new();
    loop {
        let (records, _) = read(&path)?;
        for r in records.iter().filter(|r| wanted(r)) {
            if shown.get(&r.id) == Some(&r.count) {
                continue;
            }
            shown.insert(r.id, r.count);
            if args.json {
                println!("{}", serde_json::to_string(r)?);
            } else {
                println!("{}", line(r, true));
            }
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One event as a line: its time, what it is about, its kind, the sentence, and how
/// often it happened in a row. With `absolute` false (`shoal ps`), how long ago, and
/// no kind.
pub fn line(r: &Record, absolute: bool) -> String {
    let times = if r.count > 1 {
        format!(" (×{} since {})", r.count, crate::logs::rfc3339(r.first))
    } else {
        String::new()
    };
    if absolute {
        let when = crate::logs::rfc3339(r.last);
        return format!(
            "{when}  {:<10} {:<12} {}{times}",
            r.subject, r.reason, r.message
        );
    }
    let ago = (crate::logs::unix_now() as f64 - r.last).max(0.0);
    let ago = format!("{}s ago", ago.round() as u64);
    format!("{ago:>8}  {} {}{times}", r.subject, r.message)
}
