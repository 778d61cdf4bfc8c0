//! Collection: every replica's stdout and stderr, from its container's first line,
//! into the project's log store (`shoal-logs`).
//!
//! One follower task per container streams the engine's log of it with timestamps.
//! The store keeps, per container, the time of its last stored line and how many
//! lines had that time; a follower starts after it (the engine is asked from that
//! second, the lines up to it are skipped), so a control plane that restarts, even
//! after SIGKILL, stores the lines printed while it was away, and none twice.
//!
//! A service's multi-line start pattern joins the lines that do not match it to the
//! record before them (a stack trace is one record). A record is held back until the
//! next start line, a line of the other stream, or a short quiet time ends it; the
//! store's position moves only when it is stored, so a crash while one is held
//! collects it again.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use regex::Regex;
use shoal_logs::{Limits, Position, Store, Stream, StreamKey};
use shoal_runtime::{ContainerInfo, LogOptions, Runtime, State};
use shoal_spec::Project;

/// How often appended lines are written out (what a reader can see lags by this).
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often the limits are applied besides when a segment is sealed.
const RETAIN_EVERY: Duration = Duration::from_secs(60);
/// A held multi-line record is stored after this much quiet.
const JOIN_QUIET: Duration = Duration::from_millis(300);
/// A joined record is stored once it has this many lines.
const JOIN_MAX_LINES: u32 = 1000;

/// The store's directory inside the project's state directory.
pub fn store_dir(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("logs")
}

/// The store's limits from `x-shoal.logs`.
pub fn limits(project: &Project) -> Limits {
    let l = project.x_shoal.logs();
    Limits {
        segment_bytes: l.segment_size,
        max_bytes: l.max_size,
        max_age: l.max_age,
    }
}

/// shoal's events, into the store as the `event` stream of the replica (replica 0
/// for a service's own, such as scaling).
#[derive(Clone)]
pub struct EventLog(Arc<Mutex<Store>>);

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventLog")
    }
}

impl EventLog {
    /// Stores an occurrence of `event`.
    pub fn record(&self, event: &crate::event::Event, reason: &str, message: &str) {
        let key = StreamKey {
            service: event.service().unwrap_or("-").to_string(),
            replica: event.replica().unwrap_or(0),
            container: String::new(),
            stream: Stream::Event,
        };
        let text = format!("{reason}: {message}");
        let mut store = self.0.lock().expect("not poisoned");
        if let Err(e) = store.append(&key, shoal_logs::now_nanos(), None, &text) {
            tracing::warn!(error = %e, "cannot store an event");
        }
    }
}

/// The followers and the store they write.
pub struct Collector {
    rt: Arc<dyn Runtime>,
    store: Arc<Mutex<Store>>,
    /// Start patterns by service.
    multiline: Arc<Mutex<HashMap<String, Regex>>>,
    /// Containers being followed now.
    following: Arc<Mutex<HashSet<String>>>,
    /// Stopped containers already read to their end.
    drained: Arc<Mutex<HashSet<String>>>,
    tasks: tokio::task::JoinSet<()>,
}

impl Collector {
    /// Opens the store in `dir` (cutting a torn tail) with the project's limits.
    pub fn open(rt: Arc<dyn Runtime>, project: &Project, dir: &Path) -> std::io::Result<Collector> {
        let store = Arc::new(Mutex::new(Store::open(dir, limits(project))?));
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(writer(store.clone()));
        let collector = Collector {
            rt,
            store,
            multiline: Arc::default(),
            following: Arc::default(),
            drained: Arc::default(),
            tasks,
        };
        collector.set_project(project);
        Ok(collector)
    }

    /// Where shoal's events go into the store.
    pub fn event_log(&self) -> EventLog {
        EventLog(self.store.clone())
    }

    /// Takes the start patterns of a new version of the project (for the containers
    /// followed from now on).
    pub fn set_project(&self, project: &Project) {
        let patterns = project
            .services
            .iter()
            .filter_map(|(name, s)| {
                let re = s.x_shoal.logs.as_ref()?.multiline.as_deref()?;
                // The loader checked it.
                Some((name.clone(), Regex::new(re).ok()?))
            })
            .collect();
        *self.multiline.lock().expect("not poisoned") = patterns;
    }

    /// Starts following the containers not followed yet: running ones, and stopped
    /// ones whose output was not read to its end by this control plane.
    pub fn discover(&mut self, containers: &[ContainerInfo]) {
        for c in containers {
            let running = c.state == State::Running;
            if !running && self.drained.lock().expect("not poisoned").contains(&c.id) {
                continue;
            }
            if !self
                .following
                .lock()
                .expect("not poisoned")
                .insert(c.id.clone())
            {
                continue;
            }
            let join = self
                .multiline
                .lock()
                .expect("not poisoned")
                .get(&c.service)
                .cloned();
            let follower = Follower {
                rt: self.rt.clone(),
                store: self.store.clone(),
                id: c.id.clone(),
                keys: [Stream::Stdout, Stream::Stderr].map(|stream| StreamKey {
                    service: c.service.clone(),
                    replica: c.replica,
                    container: c.id.clone(),
                    stream,
                }),
                join,
            };
            let following = self.following.clone();
            let drained = self.drained.clone();
            let id = c.id.clone();
            self.tasks.spawn(async move {
                follower.run().await;
                following.lock().expect("not poisoned").remove(&id);
                if !running {
                    drained.lock().expect("not poisoned").insert(id);
                }
            });
        }
        // Finished followers are reaped as they go.
        while self.tasks.try_join_next().is_some() {}
    }

    /// Stops following, after giving the followers of stopped containers `grace` to
    /// read their last lines; then writes out what is buffered.
    pub async fn close(mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        // The writer task never ends by itself: wait until it is the only one left.
        while self.tasks.len() > 1 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = self.tasks.join_next() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        self.tasks.shutdown().await;
        if let Err(e) = self.store.lock().expect("not poisoned").flush() {
            tracing::warn!(error = %e, "cannot write the log store");
        }
    }
}

/// Writes out appended lines every [`FLUSH_EVERY`] and applies the limits.
async fn writer(store: Arc<Mutex<Store>>) {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let mut last_retain = tokio::time::Instant::now();
    loop {
        flush.tick().await;
        let mut store = store.lock().expect("not poisoned");
        if let Err(e) = store.flush() {
            tracing::warn!(error = %e, "cannot write the log store");
        }
        if last_retain.elapsed() >= RETAIN_EVERY {
            last_retain = tokio::time::Instant::now();
            if let Err(e) = store.retain(shoal_logs::now_nanos()) {
                tracing::warn!(error = %e, "cannot apply the log store's limits");
            }
        }
    }
}

/// One container's output being collected.
struct Follower {
    rt: Arc<dyn Runtime>,
    store: Arc<Mutex<Store>>,
    id: String,
    /// Its stdout and stderr streams.
    keys: [StreamKey; 2],
    /// The service's start pattern.
    join: Option<Regex>,
}

/// A joined record not stored yet.
struct Held {
    stderr: bool,
    ts: i64,
    text: String,
    /// The last line's time, and how many of the record's lines have that time.
    last: (i64, u32),
    lines: u32,
}

impl Follower {
    async fn run(self) {
        let resume = self.store.lock().expect("not poisoned").position(&self.id);
        let opts = LogOptions {
            follow: true,
            tail: None,
            since: resume.map(|p| p.ts.div_euclid(1_000_000_000)),
            timestamps: true,
        };
        let mut batches = self.rt.log_batches(&self.id, &opts);
        let mut skip = Skip::new(resume);
        let mut held: Option<Held> = None;
        loop {
            let next = if held.is_some() {
                match tokio::time::timeout(JOIN_QUIET, batches.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        self.store_held(&mut self.store.lock().expect("not poisoned"), held.take());
                        continue;
                    }
                }
            } else {
                batches.next().await
            };
            let batch = match next {
                Some(Ok(batch)) => batch,
                Some(Err(e)) => {
                    tracing::debug!(container = %self.id, error = %e, "log stream ended");
                    break;
                }
                None => break,
            };
            // One lock for what one read brought.
            let mut store = self.store.lock().expect("not poisoned");
            for line in batch {
                let ts = line
                    .timestamp
                    .as_deref()
                    .and_then(shoal_logs::parse_rfc3339)
                    .unwrap_or_else(shoal_logs::now_nanos);
                if skip.stored(ts) {
                    continue;
                }
                let Some(join) = &self.join else {
                    self.append(&mut store, line.stderr, ts, None, &line.text);
                    continue;
                };
                match &mut held {
                    Some(h)
                        if h.stderr == line.stderr
                            && h.lines < JOIN_MAX_LINES
                            && !join.is_match(&line.text) =>
                    {
                        h.text.push('\n');
                        h.text.push_str(&line.text);
                        h.lines += 1;
                        h.last = if ts == h.last.0 {
                            (ts, h.last.1 + 1)
                        } else {
                            (ts, 1)
                        };
                    }
                    _ => {
                        self.store_held(&mut store, held.take());
                        held = Some(Held {
                            stderr: line.stderr,
                            ts,
                            text: line.text,
                            last: (ts, 1),
                            lines: 1,
                        });
                    }
                }
            }
        }
        self.store_held(&mut self.store.lock().expect("not poisoned"), held);
    }

    fn store_held(&self, store: &mut Store, held: Option<Held>) {
        if let Some(h) = held {
            let last = (h.lines > 1).then_some(h.last);
            self.append(store, h.stderr, h.ts, last, &h.text);
        }
    }

    fn append(
        &self,
        store: &mut Store,
        stderr: bool,
        ts: i64,
        last: Option<(i64, u32)>,
        text: &str,
    ) {
        let key = &self.keys[usize::from(stderr)];
        if let Err(e) = store.append(key, ts, last, text) {
            tracing::warn!(container = %self.id, error = %e, "cannot store a log line");
        }
    }
}

/// Tells the lines already stored apart when a follower resumes: the engine sends
/// from the second of the last stored line.
struct Skip {
    resume: Option<Position>,
    /// Lines met at exactly the resume time so far.
    at_ts: u32,
}

impl Skip {
    fn new(resume: Option<Position>) -> Skip {
        Skip { resume, at_ts: 0 }
    }

    /// Whether the line at `ts` is stored already.
    fn stored(&mut self, ts: i64) -> bool {
        let Some(p) = self.resume else {
            return false;
        };
        if ts > p.ts {
            // Past it: nothing after is stored.
            self.resume = None;
            return false;
        }
        let nth = if ts == p.ts {
            self.at_ts += 1;
            self.at_ts - 1
        } else {
            0
        };
        p.covers(ts, nth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_passes_only_what_follows_the_position() {
        let mut s = Skip::new(Some(Position { ts: 100, at_ts: 2 }));
        assert!(s.stored(90));
        assert!(s.stored(100));
        assert!(s.stored(100));
        assert!(!s.stored(100), "the third line at 100 was not stored");
        let mut s = Skip::new(Some(Position { ts: 100, at_ts: 1 }));
        assert!(s.stored(100));
        assert!(!s.stored(101));
        assert!(!s.stored(100), "once past, nothing is skipped");
        let mut none = Skip::new(None);
        assert!(!none.stored(0));
    }
}
