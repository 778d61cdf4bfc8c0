//! Typed events: one variant per kind of thing that happens in the control plane.
//! An event is built where it happens from plain values, and [`Events::emit`] alone
//! turns it into the log line, the record `shoal ps` and `shoal events` show, and the
//! line appended to the events file: no call site assembles the text.
//!
//! Repeats merge as Kubernetes' events do: the same subject, reason and message as
//! the event before it for that subject counts up (`count`, with the first and last
//! time) instead of adding a record. The file (`events.jsonl` in the state directory)
//! is append-only, one record a line; a merged record is appended again under its
//! id, and readers keep the last line of each id. It is compacted to the newest
//! [`KEPT`] records when it holds twice as many lines.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::health::Phase;

/// Records kept (in memory and, after compaction, in the file).
pub const KEPT: usize = 1000;

/// Something that happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A replica moved to another phase.
    Phase {
        /// Its service.
        service: String,
        /// Its number.
        replica: u32,
        /// The new phase.
        phase: Phase,
        /// Why.
        reason: String,
    },
    /// A failed replica is started again (or replaced, when unhealthy).
    Restarting {
        /// Its service.
        service: String,
        /// Its number.
        replica: u32,
        /// The exit code it ended with; `None` when it was unhealthy.
        exit_code: Option<i64>,
        /// Restarts so far, this one included.
        attempt: u32,
    },
    /// The restart policy does not start a failed replica again.
    NotRestarted {
        /// Its service.
        service: String,
        /// Its number.
        replica: u32,
        /// True when `max_attempts` (or `on-failure:N`) was reached.
        limit_reached: bool,
    },
    /// A replica is restarted because a dependency with `restart: true` was.
    DependencyRestarted {
        /// Its service.
        service: String,
        /// Its number.
        replica: u32,
        /// The dependency.
        dependency: String,
    },
    /// The autoscaler changed a service's replica count.
    Scaled {
        /// The service.
        service: String,
        /// The policy's reason (`1→4: concurrency 8.0 > 1 × 2 (panic window)`).
        reason: String,
    },
    /// A step of a rollout (`rollout 3→4: web.2 exited with code 3, rolling back`).
    Rollout {
        /// The service.
        service: String,
        /// What the rollout said.
        step: String,
    },
    /// A rollout command (`rollout undo`, `pause`, `resume`) was carried out.
    RolloutCommand {
        /// The service.
        service: String,
        /// What was done.
        done: String,
    },
    /// A new version of the project was applied.
    Applied {
        /// The services that roll to a new revision.
        rolling: Vec<String>,
    },
    /// The control plane started, and found these containers of the project.
    Started {
        /// Containers it adopted.
        adopted: usize,
    },
}

impl Event {
    /// What it is about: a replica (`web.2`), a service (`web`) or the project (`-`).
    pub fn subject(&self) -> String {
        match self {
            Event::Phase {
                service, replica, ..
            }
            | Event::Restarting {
                service, replica, ..
            }
            | Event::NotRestarted {
                service, replica, ..
            }
            | Event::DependencyRestarted {
                service, replica, ..
            } => format!("{service}.{replica}"),
            Event::Scaled { service, .. }
            | Event::Rollout { service, .. }
            | Event::RolloutCommand { service, .. } => service.clone(),
            Event::Applied { .. } | Event::Started { .. } => "-".into(),
        }
    }

    /// The replica it is about, if one.
    pub fn replica(&self) -> Option<u32> {
        match self {
            Event::Phase { replica, .. }
            | Event::Restarting { replica, .. }
            | Event::NotRestarted { replica, .. }
            | Event::DependencyRestarted { replica, .. } => Some(*replica),
            _ => None,
        }
    }

    /// The service it is about, if one.
    pub fn service(&self) -> Option<&str> {
        match self {
            Event::Phase { service, .. }
            | Event::Restarting { service, .. }
            | Event::NotRestarted { service, .. }
            | Event::DependencyRestarted { service, .. }
            | Event::Scaled { service, .. }
            | Event::Rollout { service, .. }
            | Event::RolloutCommand { service, .. } => Some(service),
            Event::Applied { .. } | Event::Started { .. } => None,
        }
    }

    /// A CamelCase word for the kind, as Kubernetes events have (`BackOff`,
    /// `Unhealthy`, `ScalingReplicaSet`).
    pub fn reason(&self) -> &'static str {
        match self {
            Event::Phase { phase, .. } => match phase {
                Phase::Starting => "Starting",
                Phase::Ready => "Ready",
                Phase::Unhealthy => "Unhealthy",
                Phase::Draining => "Draining",
                Phase::Stopped => "Stopped",
                Phase::Exited => "Exited",
            },
            Event::Restarting { .. } => "Restarting",
            Event::NotRestarted { .. } => "BackOffLimit",
            Event::DependencyRestarted { .. } => "DependencyRestarted",
            Event::Scaled { .. } => "Scaled",
            Event::Rollout { .. } => "Rollout",
            Event::RolloutCommand { .. } => "RolloutCommand",
            Event::Applied { .. } => "Applied",
            Event::Started { .. } => "Started",
        }
    }

    /// The sentence.
    pub fn message(&self) -> String {
        match self {
            Event::Phase { phase, reason, .. } => format!("{}: {reason}", phase_name(*phase)),
            Event::Restarting {
                exit_code, attempt, ..
            } => match exit_code {
                Some(code) => format!("restarting (exit code {code}, restart {attempt})"),
                None => format!("restarting (unhealthy, restart {attempt})"),
            },
            Event::NotRestarted { limit_reached, .. } => format!(
                "not restarted: {}",
                if *limit_reached {
                    "restart limit reached"
                } else {
                    "its restart policy does not restart it"
                }
            ),
            Event::DependencyRestarted { dependency, .. } => {
                format!("restarting: its dependency {dependency} was restarted")
            }
            Event::Scaled { reason, .. } => format!("scaled {reason}"),
            Event::Rollout { step, .. } => step.clone(),
            Event::RolloutCommand { done, .. } => done.clone(),
            Event::Applied { rolling } if rolling.is_empty() => {
                "configuration applied: no service changed".into()
            }
            Event::Applied { rolling } => {
                format!("configuration applied: rolling {}", rolling.join(", "))
            }
            Event::Started { adopted } => {
                format!("control plane started; adopted {adopted} containers")
            }
        }
    }
}

/// The name of a phase, as events say it.
pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Starting => "starting",
        Phase::Ready => "ready",
        Phase::Unhealthy => "unhealthy",
        Phase::Draining => "draining",
        Phase::Stopped => "stopped",
        Phase::Exited => "exited",
    }
}

/// An event as kept and shown: with its times and how often it happened in a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its number, in order of first appearance.
    pub id: u64,
    /// Control-plane clock time of the last occurrence, seconds (orders `shoal ps`).
    pub at: f64,
    /// Unix time of the first occurrence, seconds.
    pub first: f64,
    /// Unix time of the last occurrence, seconds.
    pub last: f64,
    /// Occurrences in a row.
    pub count: u32,
    /// What it is about (`web.2`, `web`, `-`).
    pub subject: String,
    /// The kind, CamelCase.
    pub reason: String,
    /// The sentence.
    pub message: String,
    /// The event itself.
    pub event: Event,
}

/// Events so far by (service, reason), `-` for the project's own: the metrics read
/// them on each scrape.
pub type Counts = BTreeMap<(String, String), u64>;

/// The events of a project: the newest in memory, all appended to the file.
#[derive(Debug, Default)]
pub struct Events {
    /// Counted by (service, reason) since the control plane started.
    pub counts: std::sync::Arc<std::sync::Mutex<Counts>>,
    /// Where they are appended; `None` keeps them in memory only (tests).
    path: Option<PathBuf>,
    /// The newest, oldest first.
    pub records: VecDeque<Record>,
    next_id: u64,
    /// Lines in the file, for compaction.
    lines: usize,
    /// The log store, where each occurrence is also kept beside the replicas' lines.
    store: Option<crate::collect::EventLog>,
}

impl Events {
    /// The events kept in `state_dir`, read back (a control plane's restart keeps
    /// them).
    pub fn open(state_dir: &Path) -> std::io::Result<Events> {
        let path = state_dir.join("events.jsonl");
        let text = text_of(&path)?;
        let (records, lines) = parse(&text);
        // A line cut short by a crash: what comes next starts on a line of its own.
        if !text.is_empty() && !text.ends_with('\n') {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)?
                .write_all(b"\n")?;
        }
        let next_id = records.last().map_or(0, |r| r.id + 1);
        Ok(Events {
            counts: Default::default(),
            path: Some(path),
            records: records.into(),
            next_id,
            lines,
            store: None,
        })
    }

    /// Also keeps every occurrence in the log store.
    pub fn with_store(mut self, store: crate::collect::EventLog) -> Events {
        self.store = Some(store);
        self
    }

    /// Records `event` at clock time `at`: logs it, merges a repeat, keeps it.
    pub fn emit(&mut self, at: std::time::Duration, event: Event) {
        let now = unix_now();
        let (subject, reason, message) = (event.subject(), event.reason(), event.message());
        tracing::info!("{subject} {message}");
        if let Some(store) = &self.store {
            store.record(&event, reason, &message);
        }
        let service = event.service().unwrap_or("-").to_string();
        *self
            .counts
            .lock()
            .expect("not poisoned")
            .entry((service, reason.to_string()))
            .or_default() += 1;
        let repeat = self
            .records
            .iter_mut()
            .rev()
            .find(|r| r.subject == subject)
            .filter(|r| r.reason == reason && r.message == message);
        let record = match repeat {
            Some(r) => {
                r.count += 1;
                r.last = now;
                r.at = at.as_secs_f64();
                r.clone()
            }
            None => {
                let r = Record {
                    id: self.next_id,
                    at: at.as_secs_f64(),
                    first: now,
                    last: now,
                    count: 1,
                    subject,
                    reason: reason.to_string(),
                    message,
                    event,
                };
                self.next_id += 1;
                self.records.push_back(r.clone());
                while self.records.len() > KEPT {
                    self.records.pop_front();
                }
                r
            }
        };
        if let Err(e) = self.append(&record) {
            tracing::warn!(error = %e, "cannot write the events file");
        }
    }

    fn append(&mut self, record: &Record) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.lines >= 2 * KEPT {
            // Compact: the newest records, one line each, written whole.
            let tmp = path.with_extension("jsonl.tmp");
            let mut out = Vec::new();
            for r in &self.records {
                serde_json::to_writer(&mut out, r)?;
                out.push(b'\n');
            }
            std::fs::write(&tmp, out)?;
            std::fs::rename(&tmp, path)?;
            self.lines = self.records.len();
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        f.write_all(&line)?;
        self.lines += 1;
        Ok(())
    }
}

/// The records in an events file, the last line of each id winning, oldest first;
/// with the number of lines. A line cut short (a crash mid-write) is skipped.
pub fn read(path: &Path) -> std::io::Result<(Vec<Record>, usize)> {
    Ok(parse(&text_of(path)?))
}

/// The file's text; a file not there yet is empty.
fn text_of(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// The records in an events file's text (see [`read`]).
fn parse(text: &str) -> (Vec<Record>, usize) {
    let mut by_id: BTreeMap<u64, Record> = BTreeMap::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        if let Ok(r) = serde_json::from_str::<Record>(line) {
            by_id.insert(r.id, r);
        }
    }
    let mut records: Vec<Record> = by_id.into_values().collect();
    let cut = records.len().saturating_sub(KEPT);
    records.drain(..cut);
    (records, lines)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn unhealthy(replica: u32) -> Event {
        Event::Phase {
            service: "web".into(),
            replica,
            phase: Phase::Unhealthy,
            reason: "GET /healthz timed out 3 times".into(),
        }
    }

    #[test]
    fn repeats_merge_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut ev = Events::open(dir.path()).unwrap();
        ev.emit(Duration::ZERO, unhealthy(1));
        ev.emit(Duration::from_secs(1), unhealthy(1));
        ev.emit(Duration::from_secs(2), unhealthy(2));
        ev.emit(Duration::from_secs(3), unhealthy(1));
        assert_eq!(ev.records.len(), 2);
        let first = &ev.records[0];
        assert_eq!(
            (first.subject.as_str(), first.reason.as_str(), first.count),
            ("web.1", "Unhealthy", 3)
        );
        assert_eq!(first.message, "unhealthy: GET /healthz timed out 3 times");
        assert!(first.last >= first.first);

        let again = Events::open(dir.path()).unwrap();
        let key = |r: &Record| {
            (
                r.id,
                r.count,
                r.subject.clone(),
                r.message.clone(),
                r.event.clone(),
            )
        };
        assert!(again.records.iter().map(key).eq(ev.records.iter().map(key)));
        // Times read back to well under a millisecond (JSON floats).
        for (a, b) in again.records.iter().zip(&ev.records) {
            assert!((a.last - b.last).abs() < 1e-3 && (a.first - b.first).abs() < 1e-3);
        }
        assert_eq!(again.next_id, 2);
    }

    #[test]
    fn another_event_between_repeats_starts_a_new_record() {
        let mut ev = Events::default();
        ev.emit(Duration::ZERO, unhealthy(1));
        ev.emit(
            Duration::ZERO,
            Event::Phase {
                service: "web".into(),
                replica: 1,
                phase: Phase::Ready,
                reason: "healthy".into(),
            },
        );
        ev.emit(Duration::ZERO, unhealthy(1));
        assert_eq!(ev.records.len(), 3);
    }

    #[test]
    fn the_file_is_compacted_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut ev = Events::open(dir.path()).unwrap();
        for i in 0..(2 * KEPT + 10) {
            ev.emit(
                Duration::ZERO,
                Event::Scaled {
                    service: "web".into(),
                    reason: format!("step {i}"),
                },
            );
        }
        let path = dir.path().join("events.jsonl");
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 2 * KEPT, "{lines} lines");
        // A crash in the middle of a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"id\": 99999, \"at\": 1.0, \"fir").unwrap();
        let (records, _) = read(&path).unwrap();
        assert_eq!(records.len(), KEPT);
        assert_eq!(
            records.last().unwrap().message,
            format!("scaled step {}", 2 * KEPT + 9)
        );
        // Opened again, the next record is whole.
        let mut ev = Events::open(dir.path()).unwrap();
        ev.emit(Duration::ZERO, unhealthy(1));
        let (records, _) = read(&path).unwrap();
        assert_eq!(records.last().unwrap().subject, "web.1");
    }
}
