//! Drawing the dashboard: a header, the services, the selected service's replicas,
//! sparklines of its requests and ready replicas, the recent events, and a key line;
//! a help box and a log pane over it when asked. Laid out to fit 80x24 and to grow
//! with the terminal.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Sparkline, Table, TableState};
use ratatui::Frame;

use super::model::{ReplicaRow, ServiceRow};
use super::{App, Focus};

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    if let Some(logs) = &app.logs {
        draw_logs(frame, area, logs);
        return;
    }
    let services = app.services();
    let shown = services.len().clamp(1, 8) as u16;
    let [header, top, middle, sparks, events, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(shown + 3),
        Constraint::Min(5),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, app);
    draw_services(frame, top, app, &services);
    let selected = app.selected_service(&services);
    draw_replicas(frame, middle, app, selected);
    draw_sparklines(frame, sparks, app, selected);
    draw_events(frame, events, app, selected);
    draw_footer(frame, footer, app);
    if app.help {
        draw_help(frame, area);
    }
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut spans = vec![Span::styled(format!("shoal · {}", app.project), bold())];
    match (&app.error, app.history.latest()) {
        (Some(e), _) => spans.push(Span::styled(
            format!("  {e}"),
            Style::default().fg(Color::Red),
        )),
        (None, Some(s)) => {
            spans.push(Span::raw(format!("  control plane pid {}", s.pid)));
            if let Some(m) = &s.metrics {
                spans.push(Span::raw(format!(" · metrics {m}")));
            }
            if !s.converged {
                spans.push(Span::styled(
                    " · converging",
                    Style::default().fg(Color::Yellow),
                ));
            }
        }
        (None, None) => spans.push(Span::raw("  waiting for the control plane")),
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_services(frame: &mut Frame<'_>, area: Rect, app: &App, services: &[ServiceRow]) {
    let header = Row::new([
        "SERVICE", "READY", "RPS", "P50", "P99", "ERR%", "INFL", "CPU%", "MEM",
    ])
    .style(bold());
    let rows = services.iter().map(|s| {
        let ready = format!("{}/{}", s.ready, s.desired);
        let style = if s.ready < s.desired {
            Style::default().fg(Color::Yellow)
        } else {
            Style::default()
        };
        Row::new([
            s.name.clone(),
            ready,
            format!("{:.1}", s.rps),
            duration(s.p50),
            duration(s.p99),
            s.errors.map_or("-".into(), |e| format!("{:.1}", e * 100.0)),
            s.in_flight.to_string(),
            percent(s.cpu),
            bytes(s.memory),
        ])
        .style(style)
    });
    let title = match &app.filter {
        Some(f) if app.filtering => format!("Services /{f}_"),
        Some(f) => format!("Services /{f}"),
        None => "Services".to_string(),
    };
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(6),
            Constraint::Length(7),
        ],
    )
    .header(header)
    .block(focused(
        Block::default().title(title),
        app.focus == Focus::Services,
    ))
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(app.service_index(services)));
    frame.render_stateful_widget(table, area, &mut state);
}

fn focused(block: Block<'_>, on: bool) -> Block<'_> {
    let block = block.borders(Borders::ALL);
    if on {
        block.border_style(Style::default().fg(Color::Cyan))
    } else {
        block
    }
}

fn draw_replicas(frame: &mut Frame<'_>, area: Rect, app: &App, service: Option<&ServiceRow>) {
    let Some(service) = service else {
        frame.render_widget(
            Block::default().borders(Borders::ALL).title("Replicas"),
            area,
        );
        return;
    };
    let replicas = app.history.replicas(&service.name);
    let header = Row::new([
        "#", "STATE", "HEALTH", "RST", "RPS", "INFL", "P50", "P99", "CPU%", "MEM",
    ])
    .style(bold());
    let rows = replicas.iter().map(|r: &ReplicaRow| {
        let style = match r.phase.as_str() {
            "ready" => Style::default(),
            "starting" | "draining" => Style::default().fg(Color::Yellow),
            _ => Style::default().fg(Color::Red),
        };
        Row::new([
            r.replica.to_string(),
            r.phase.clone(),
            app.health_of(&service.name, r.replica),
            r.restarts.to_string(),
            format!("{:.1}", r.rps),
            r.in_flight.to_string(),
            duration(r.p50),
            duration(r.p99),
            percent(r.cpu),
            bytes(r.memory),
        ])
        .style(style)
    });
    let title = format!(
        "Replicas of {} · {} requests, {} failed",
        service.name, service.requests, service.failures
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(3),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(3),
            Constraint::Length(7),
            Constraint::Length(4),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(7),
        ],
    )
    .header(header)
    .block(focused(
        Block::default().title(title),
        app.focus == Focus::Replicas,
    ))
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let selected = (app.focus == Focus::Replicas && !replicas.is_empty())
        .then(|| app.replica.min(replicas.len() - 1));
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_sparklines(frame: &mut Frame<'_>, area: Rect, app: &App, service: Option<&ServiceRow>) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let Some(service) = service else {
        return;
    };
    // The newest points that fit, right-aligned as time goes.
    let fit = |mut v: Vec<u64>, width: u16| {
        let keep = usize::from(width.saturating_sub(2));
        if v.len() > keep {
            v.drain(..v.len() - keep);
        }
        v
    };
    let rps = fit(app.history.rps_series(&service.name), left.width);
    let peak = rps.iter().copied().max().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!("rps, 3 min (peak {peak})")),
            )
            .data(&rps)
            .style(Style::default().fg(Color::Green)),
        left,
    );
    let ready = fit(app.history.ready_series(&service.name), right.width);
    let most = ready.iter().copied().max().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!("ready replicas (max {most})")),
            )
            .data(&ready)
            .max(most.max(1))
            .style(Style::default().fg(Color::Cyan)),
        right,
    );
}

fn draw_events(frame: &mut Frame<'_>, area: Rect, app: &App, service: Option<&ServiceRow>) {
    let Some(status) = app.history.latest() else {
        frame.render_widget(Block::default().borders(Borders::ALL).title("Events"), area);
        return;
    };
    let name = service.map(|s| s.name.as_str());
    let room = usize::from(area.height.saturating_sub(2));
    let lines: Vec<Line<'_>> = status
        .events
        .iter()
        .rev()
        .filter(|e| name.is_none() || e.event.service().is_none() || e.event.service() == name)
        .take(room)
        .map(|e| Line::raw(crate::commands::events::line(e, false)))
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title("Events")),
        area,
    );
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let keys = if app.filtering {
        "type to filter · Enter keep · Esc clear"
    } else {
        "↑↓/jk move · Enter replicas · / filter · l logs · ? help · q quit"
    };
    frame.render_widget(
        Paragraph::new(keys).style(Style::default().fg(Color::DarkGray)),
        area,
    );
}

/// The keys, in a box over the middle of the screen.
fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let text = [
        "↑ ↓  j k    move the selection",
        "Enter       the selected service's replicas",
        "Esc         back to the services",
        "/           filter services by name",
        "l           logs of the selected replica",
        "?           this help",
        "q  Ctrl-C   quit",
    ];
    let width = 50.min(area.width);
    let height = (text.len() as u16 + 2).min(area.height);
    let r = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(text.iter().map(|t| Line::raw(*t)).collect::<Vec<_>>())
            .block(Block::default().borders(Borders::ALL).title("Keys")),
        r,
    );
}

fn draw_logs(frame: &mut Frame<'_>, area: Rect, logs: &super::Logs) {
    let room = usize::from(area.height.saturating_sub(2));
    let end = logs.lines.len().saturating_sub(logs.scroll);
    let start = end.saturating_sub(room);
    let lines: Vec<Line<'_>> = logs.lines[start..end]
        .iter()
        .map(|l| Line::raw(l.as_str()))
        .collect();
    let title = format!("{} · j k scroll · Esc back", logs.title);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

/// `0.4ms`, `12ms`, `1.2s`, or `-`.
pub fn duration(secs: Option<f64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 0.01 => format!("{:.1}ms", s * 1000.0),
        Some(s) if s < 1.0 => format!("{:.0}ms", s * 1000.0),
        Some(s) => format!("{s:.1}s"),
    }
}

fn percent(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{p:.1}"))
}

/// `812K`, `12.3M`, `1.1G`, or `-`.
pub fn bytes(b: Option<u64>) -> String {
    let Some(b) = b else { return "-".into() };
    let b = b as f64;
    if b < 1024.0 * 1024.0 {
        format!("{:.0}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.1}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}
