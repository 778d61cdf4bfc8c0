//! `shoal dashboard`: a live terminal view of a running project, in the manner of
//! k9s and lazydocker. Every second it reads the control plane's snapshot (the one
//! `shoal ps` and `/metrics` read) and the engine's container list, and redraws
//! (ratatui draws only the cells that changed, so nothing flickers).
//!
//! The terminal is put in raw mode on the alternate screen and restored on `q`, on
//! an error and on a panic (ratatui's hook).

mod model;
mod view;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;
use shoal_runtime::{Health, LogOptions, Runtime};

use crate::api::Client;
use crate::cli::Global;
use model::{History, ServiceRow};

/// `812K`, `12.3M`, `1.1G`: a size as the listings show it.
pub fn bytes_short(b: u64) -> String {
    view::bytes(Some(b))
}

/// Which table the arrows move in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// The services.
    Services,
    /// The selected service's replicas.
    Replicas,
}

/// A replica's logs, shown over the dashboard.
#[derive(Debug)]
pub struct Logs {
    /// `web.2 logs`.
    pub title: String,
    /// The lines, oldest first.
    pub lines: Vec<String>,
    /// Lines scrolled up from the end.
    pub scroll: usize,
}

/// What the dashboard holds between frames.
#[derive(Debug)]
pub struct App {
    /// The project.
    pub project: String,
    /// The snapshots so far.
    pub history: History,
    /// Where the arrows move.
    pub focus: Focus,
    /// The selected service, by name (it keeps its place when others come and go).
    pub service: Option<String>,
    /// The selected replica's row.
    pub replica: usize,
    /// The services filter, `/` typed.
    pub filter: Option<String>,
    /// True while the filter is being typed.
    pub filtering: bool,
    /// Showing the keys.
    pub help: bool,
    /// Showing a replica's logs.
    pub logs: Option<Logs>,
    /// The engine's health of each container, by (service, replica).
    pub health: BTreeMap<(String, u32), String>,
    /// Why the last refresh failed.
    pub error: Option<String>,
}

/// What a key asks of the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing.
    None,
    /// Leave.
    Quit,
    /// Show the logs of this replica.
    Logs(String, u32),
}

impl App {
    /// An empty dashboard of `project`.
    pub fn new(project: &str) -> App {
        App {
            project: project.to_string(),
            history: History::default(),
            focus: Focus::Services,
            service: None,
            replica: 0,
            filter: None,
            filtering: false,
            help: false,
            logs: None,
            health: BTreeMap::new(),
            error: None,
        }
    }

    /// The services' rows, filtered.
    pub fn services(&self) -> Vec<ServiceRow> {
        let mut rows = self.history.services();
        if let Some(f) = &self.filter {
            rows.retain(|r| r.name.contains(f.as_str()));
        }
        rows
    }

    /// The selected service's place among `rows`.
    pub fn service_index(&self, rows: &[ServiceRow]) -> usize {
        self.service
            .as_ref()
            .and_then(|s| rows.iter().position(|r| &r.name == s))
            .unwrap_or(0)
    }

    /// The selected service's row.
    pub fn selected_service<'a>(&self, rows: &'a [ServiceRow]) -> Option<&'a ServiceRow> {
        rows.get(self.service_index(rows))
    }

    /// The engine's word for a replica's health (`-` without a healthcheck).
    pub fn health_of(&self, service: &str, replica: u32) -> String {
        self.health
            .get(&(service.to_string(), replica))
            .cloned()
            .unwrap_or_else(|| "-".into())
    }

    /// Handles one key.
    pub fn key(&mut self, k: KeyEvent) -> Action {
        if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
            return Action::Quit;
        }
        if let Some(logs) = &mut self.logs {
            match k.code {
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('l') => self.logs = None,
                KeyCode::Up | KeyCode::Char('k') => {
                    logs.scroll = (logs.scroll + 1).min(logs.lines.len())
                }
                KeyCode::Down | KeyCode::Char('j') => logs.scroll = logs.scroll.saturating_sub(1),
                KeyCode::PageUp => logs.scroll = (logs.scroll + 20).min(logs.lines.len()),
                KeyCode::PageDown => logs.scroll = logs.scroll.saturating_sub(20),
                _ => {}
            }
            return Action::None;
        }
        if self.filtering {
            let f = self.filter.get_or_insert_with(String::new);
            match k.code {
                KeyCode::Enter => self.filtering = false,
                KeyCode::Esc => {
                    self.filtering = false;
                    self.filter = None;
                }
                KeyCode::Backspace => {
                    f.pop();
                }
                KeyCode::Char(c) => f.push(c),
                _ => {}
            }
            return Action::None;
        }
        if self.help {
            self.help = false;
            return match k.code {
                KeyCode::Char('q') => Action::Quit,
                _ => Action::None,
            };
        }
        match k.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => {
                self.filtering = true;
                self.filter = Some(String::new());
            }
            KeyCode::Up | KeyCode::Char('k') => self.step(-1),
            KeyCode::Down | KeyCode::Char('j') => self.step(1),
            KeyCode::Enter | KeyCode::Right => {
                self.focus = Focus::Replicas;
                self.replica = 0;
            }
            KeyCode::Esc | KeyCode::Left => self.focus = Focus::Services,
            KeyCode::Char('l') => {
                let rows = self.services();
                let Some(s) = self.selected_service(&rows) else {
                    return Action::None;
                };
                let replicas = self.history.replicas(&s.name);
                let i = if self.focus == Focus::Replicas {
                    self.replica
                } else {
                    0
                };
                if let Some(r) = replicas.get(i.min(replicas.len().saturating_sub(1))) {
                    return Action::Logs(s.name.clone(), r.replica);
                }
            }
            _ => {}
        }
        Action::None
    }

    /// Moves the selection by `by` rows.
    fn step(&mut self, by: isize) {
        let move_in = |i: usize, len: usize| (i as isize + by).clamp(0, len as isize - 1) as usize;
        let rows = self.services();
        if rows.is_empty() {
            return;
        }
        match self.focus {
            Focus::Services => {
                let i = move_in(self.service_index(&rows), rows.len());
                self.service = Some(rows[i].name.clone());
            }
            Focus::Replicas => {
                let Some(s) = self.selected_service(&rows) else {
                    return;
                };
                let n = self.history.replicas(&s.name).len();
                if n > 0 {
                    self.replica = move_in(self.replica.min(n - 1), n);
                }
            }
        }
    }
}

/// Runs the dashboard until `q`.
pub async fn run(global: &Global) -> anyhow::Result<ExitCode> {
    let (name, _, _) = crate::commands::project_or_name(global)?;
    let client = Client::connect(&crate::state::socket(&name))
        .await
        .ok_or_else(|| crate::commands::no_control_plane(&name))?;
    let rt = crate::commands::engine().await?;
    let mut terminal = ratatui::try_init()
        .map_err(|e| anyhow::anyhow!("shoal dashboard needs a terminal: {e}"))?;
    let outcome = run_in(&mut terminal, &name, &client, rt.as_ref()).await;
    ratatui::restore();
    outcome.map(|()| ExitCode::SUCCESS)
}

async fn run_in(
    terminal: &mut ratatui::DefaultTerminal,
    name: &str,
    client: &Client,
    rt: &dyn Runtime,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut app = App::new(name);
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => refresh(&mut app, started, client, rt, name).await,
            event = keys.next() => match event {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => match app.key(k) {
                    Action::Quit => return Ok(()),
                    Action::Logs(service, replica) => {
                        app.logs = Some(logs(rt, name, &service, replica).await);
                    }
                    Action::None => {}
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
        terminal.draw(|f| view::draw(f, &app))?;
    }
}

/// Reads a new snapshot and the containers' health.
async fn refresh(app: &mut App, started: Instant, client: &Client, rt: &dyn Runtime, name: &str) {
    match client.status().await {
        Ok(status) => {
            app.history.push(started.elapsed().as_secs_f64(), status);
            app.error = None;
        }
        Err(_) => app.error = Some("the control plane does not answer".into()),
    }
    if let Ok(list) = rt.list(name).await {
        app.health = list
            .into_iter()
            .map(|c| {
                let health = c.health.map_or("-", Health::name).to_string();
                ((c.service, c.replica), health)
            })
            .collect();
    }
}

/// The last lines of a replica's output.
async fn logs(rt: &dyn Runtime, project: &str, service: &str, replica: u32) -> Logs {
    let title = format!("{service}.{replica} logs");
    let container = match rt.list(project).await {
        Ok(list) => list
            .into_iter()
            .find(|c| c.service == service && c.replica == replica),
        Err(_) => None,
    };
    let Some(c) = container else {
        return Logs {
            title,
            lines: vec!["the replica is gone".into()],
            scroll: 0,
        };
    };
    let opts = LogOptions {
        tail: Some(500),
        ..LogOptions::default()
    };
    let mut stream = rt.logs(&c.id, &opts);
    let mut lines = Vec::new();
    while let Some(line) = stream.next().await {
        match line {
            Ok(l) => lines.push(l.text),
            Err(e) => {
                lines.push(format!("(logs cut short: {e})"));
                break;
            }
        }
    }
    Logs {
        title,
        lines,
        scroll: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn app() -> App {
        let status = |requests: u64| -> shoal_engine::Status {
            serde_json::from_value(serde_json::json!({
                "project": "demo", "pid": 42, "converged": true,
                "metrics": "127.0.0.1:9500",
                "services": {
                    "web": {"desired": 3, "running": 3, "ready": 3, "in_flight": 2,
                        "traffic": {"requests": requests}},
                    "db": {"desired": 1, "running": 1, "ready": 1, "in_flight": 0}
                },
                "waiting": [], "failures": [], "events": [],
                "replicas": ([1, 2, 3].iter().map(|&n| serde_json::json!({
                    "service": "web", "replica": n, "phase": "ready", "restarts": n - 1,
                    "reason": "", "in_flight": 0, "traffic": {"requests": requests / 3},
                    "usage": {"cpu_seconds": 1.0, "memory_bytes": 5_000_000}
                })).collect::<Vec<_>>())
            }))
            .unwrap()
        };
        let mut app = App::new("demo");
        app.history.push(0.0, status(0));
        app.history.push(10.0, status(1200));
        app
    }

    fn screen(app: &App, width: u16, height: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(width, height)).unwrap();
        t.draw(|f| view::draw(f, app)).unwrap();
        let buf = t.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn press(app: &mut App, code: KeyCode) -> Action {
        app.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn everything_fits_80_by_24() {
        let s = screen(&app(), 80, 24);
        for want in [
            "shoal · demo",
            "SERVICE",
            "db",
            "web",
            "3/3",
            "120.0",
            "Replicas of db",
            "ready replicas",
            "Events",
            "q quit",
        ] {
            assert!(s.contains(want), "{want} not on screen:\n{s}");
        }
    }

    #[test]
    fn keys_move_filter_help_and_quit() {
        let mut a = app();
        assert_eq!(press(&mut a, KeyCode::Char('j')), Action::None);
        let s = screen(&a, 80, 24);
        assert!(s.contains("Replicas of web · 1200 requests"), "{s}");
        assert!(s.contains("4.8M"), "{s}");
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Down);
        assert_eq!(a.replica, 1);
        assert_eq!(
            press(&mut a, KeyCode::Char('l')),
            Action::Logs("web".into(), 2)
        );
        press(&mut a, KeyCode::Esc);
        press(&mut a, KeyCode::Char('/'));
        for c in "we".chars() {
            press(&mut a, KeyCode::Char(c));
        }
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.services().len(), 1);
        press(&mut a, KeyCode::Char('?'));
        assert!(screen(&a, 80, 24).contains("Keys"));
        press(&mut a, KeyCode::Char('x'));
        assert!(!a.help);
        assert_eq!(press(&mut a, KeyCode::Char('q')), Action::Quit);
    }

    #[test]
    fn a_bigger_terminal_shows_more_and_a_tiny_one_does_not_panic() {
        let s = screen(&app(), 120, 40);
        assert!(s.contains("Replicas of db"));
        let _ = screen(&app(), 20, 5);
    }
}
