//! `shoal logs [SVC...]`: the replicas' output from the project's log store, which
//! the control plane fills (so it reads the same with or without a control plane,
//! after restarts and after `shoal down`), interleaved by time and filtered by
//! replica, stream, time and pattern. A project with no store (its replicas were
//! started by something else) is read from the engine, as `docker compose logs` does.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use shoal_logs::{Entry, Filter, Reader, Stream, Tail};
use shoal_runtime::LogOptions;

use crate::cli::{Global, LogStream, LogsArgs};

/// How often `-f` looks for new lines.
const POLL: Duration = Duration::from_millis(200);
/// A batch `-f` reads at a time.
const BATCH: usize = 1 << 20;

pub async fn run(global: &Global, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    // With `-p NAME` alone (no Compose file) the replicas are found by label.
    let (name, project, _) = super::project_or_name(global)?;
    if let Some(p) = &project {
        super::check_services(p, &args.services)?;
    }
    let filter = filter(args)?;
    let dir = shoal_engine::collect::store_dir(&crate::state::dir(&name));
    if !dir.exists() {
        return from_engine(&name, project.as_ref(), args).await;
    }
    let reader = Reader::open(&dir);
    let (mut entries, cursor) = reader.read(&filter)?;
    if let Some(n) = args.tail {
        entries = last_per_replica(entries, n);
    }
    let mut out = Printer::new(args, project.as_ref());
    for e in &entries {
        out.print(e)?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Everything stored from here on, whichever container it comes from: replicas
    // that restart, are recreated or are added appear by themselves.
    let mut tail = Tail::new(&dir, cursor);
    loop {
        let batch = tail.next(BATCH)?;
        if batch.is_empty() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        for e in batch.iter().filter(|e| filter.matches(e)) {
            out.print(e)?;
        }
        out.flush()?;
    }
}

/// The store's filter from the flags; a bad pattern or time is an error naming it.
fn filter(args: &LogsArgs) -> anyhow::Result<Filter> {
    let grep = args
        .grep
        .as_deref()
        .map(|re| {
            regex::bytes::RegexBuilder::new(re)
                .case_insensitive(args.ignore_case)
                .build()
                .map_err(|e| {
                    anyhow::anyhow!("--grep {re}: not a regular expression: {e}\n  hint: the syntax is Rust's regex crate's (as RE2's); escape a literal `(` as `\\(`")
                })
        })
        .transpose()?;
    let since = args
        .since
        .as_deref()
        .map(|s| super::time_arg("--since", s))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| super::time_arg("--until", s))
        .transpose()?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            anyhow::bail!("--since is after --until: no line can be in between");
        }
    }
    let mut streams = match args.stream {
        None => vec![Stream::Stdout, Stream::Stderr],
        Some(LogStream::Stdout) => vec![Stream::Stdout],
        Some(LogStream::Stderr) => vec![Stream::Stderr],
    };
    if args.events {
        streams.push(Stream::Event);
    }
    Ok(Filter {
        services: args.services.clone(),
        replica: args.index,
        streams,
        since,
        until,
        grep,
    })
}

/// The last `n` entries of each replica, in time order.
fn last_per_replica(entries: Vec<Entry>, n: usize) -> Vec<Entry> {
    let mut left: HashMap<(String, u32), usize> = HashMap::new();
    let mut kept: Vec<Entry> = entries
        .into_iter()
        .rev()
        .filter(|e| {
            let left = left
                .entry((e.key.service.clone(), e.key.replica))
                .or_insert(n);
            let keep = *left > 0;
            *left = left.saturating_sub(1);
            keep
        })
        .collect();
    kept.reverse();
    kept
}

/// Prints entries as `web-1  | text`, with `-t`, `--no-log-prefix` and `--json`.
struct Printer {
    out: std::io::BufWriter<std::io::Stdout>,
    json: bool,
    timestamps: bool,
    prefix: bool,
    width: usize,
}

impl Printer {
    fn new(args: &LogsArgs, project: Option<&shoal_spec::Project>) -> Printer {
        // `name-N`: wide enough for the services' names; grows if a wider one comes.
        let width = project
            .map(|p| p.services.keys().map(|s| s.len() + 2).max().unwrap_or(0))
            .unwrap_or(0);
        Printer {
            out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
            json: args.json,
            timestamps: args.timestamps,
            prefix: !args.no_log_prefix,
            width,
        }
    }

    fn print(&mut self, e: &Entry) -> std::io::Result<()> {
        if self.json {
            let line = serde_json::json!({
                "time": shoal_logs::format_rfc3339(e.ts),
                "service": e.key.service,
                "replica": e.key.replica,
                "container": e.key.container,
                "stream": e.key.stream.as_str(),
                "line": e.text,
            });
            return writeln!(self.out, "{line}");
        }
        if self.prefix {
            let label = format!("{}-{}", e.key.service, e.key.replica);
            self.width = self.width.max(label.len());
            write!(self.out, "{label:<w$} | ", w = self.width)?;
        }
        if self.timestamps {
            write!(self.out, "{} ", shoal_logs::format_rfc3339(e.ts))?;
        }
        if e.key.stream == Stream::Event {
            write!(self.out, "[shoal] ")?;
        }
        writeln!(self.out, "{}", e.text)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Without a store: what the engine holds for the containers there are now.
async fn from_engine(
    name: &str,
    project: Option<&shoal_spec::Project>,
    args: &LogsArgs,
) -> anyhow::Result<ExitCode> {
    let rt = super::engine().await?;
    super::known(name, project, rt.as_ref()).await?;
    let containers: Vec<_> = rt
        .list(name)
        .await?
        .into_iter()
        .filter(|c| args.services.is_empty() || args.services.contains(&c.service))
        .filter(|c| args.index.is_none_or(|i| i == c.replica))
        .collect();
    let opts = LogOptions {
        follow: args.follow,
        tail: args.tail.map(|n| n as u64),
        since: super::since(args.since.as_deref())?,
        timestamps: args.timestamps,
    };
    crate::logs::show(rt.as_ref(), &containers, &opts).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn entry(service: &str, replica: u32, text: &str) -> Entry {
        Entry {
            key: Arc::new(shoal_logs::StreamKey {
                service: service.into(),
                replica,
                container: "c".into(),
                stream: Stream::Stdout,
            }),
            ts: 0,
            text: text.into(),
        }
    }

    #[test]
    fn tail_keeps_the_last_lines_of_each_replica() {
        let all = vec![
            entry("web", 1, "a"),
            entry("web", 2, "b"),
            entry("web", 1, "c"),
            entry("web", 1, "d"),
            entry("db", 1, "e"),
        ];
        let texts: Vec<_> = last_per_replica(all, 1)
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(texts, ["b", "d", "e"]);
    }
}
