//! `vane top`: a terminal view of a running Vane, read from its API — the
//! apps with their newest window and instances, and the recent decisions
//! with their reasons. Drawing is separate from the terminal so that it can
//! be rendered into ratatui's test backend.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Row, Table};

use crate::api::AppView;
use crate::model::{Decision, Direction};

/// What one refresh fetched.
#[derive(Debug, Clone, Default)]
pub struct TopState {
    pub source: String,
    pub apps: Vec<AppView>,
    pub decisions: Vec<Decision>,
    /// The last fetch failed: why (the previous data stays on screen).
    pub error: Option<String>,
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

fn app_row(a: &AppView) -> Row<'static> {
    let label = a.name.clone().unwrap_or_else(|| a.app.clone());
    let w = a.window.as_ref();
    Row::new(vec![
        Cell::from(label),
        Cell::from(num(w.map(|w| w.rps), 1)),
        Cell::from(num(w.map(|w| w.concurrency), 2)),
        Cell::from(num(w.and_then(|w| w.latency_ms.p99), 0)),
        Cell::from(num(w.map(|w| w.error_ratio * 100.0), 1)),
        Cell::from(num(w.and_then(|w| w.cpu_pct), 0)),
        Cell::from(a.instances.len().to_string()),
        Cell::from(
            a.desired_instances
                .map_or_else(|| "-".to_string(), |n| n.to_string()),
        ),
        Cell::from(a.policy.clone().unwrap_or_else(|| "-".into())),
        Cell::from(w.map(|w| w.end.to_string()).unwrap_or_default()),
    ])
}

fn decision_row(d: &Decision) -> Row<'static> {
    let arrow = match d.direction {
        Direction::Up => "↑",
        Direction::Down => "↓",
        Direction::None => "=",
    };
    Row::new(vec![
        Cell::from(d.time.to_string()),
        Cell::from(d.name.clone().unwrap_or_else(|| d.app.clone())),
        Cell::from(format!("{arrow} {}→{}", d.current, d.desired)),
        Cell::from(d.reason.clone()),
    ])
}

/// Draws the whole view.
pub fn draw(frame: &mut Frame, s: &TopState) {
    let [title, apps, decisions] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(60),
        Constraint::Fill(1),
    ])
    .areas(frame.area());
    let status = match &s.error {
        Some(e) => format!("vane top — {} — {e}", s.source),
        None => format!("vane top — {} — {} apps — q quits", s.source, s.apps.len()),
    };
    frame.render_widget(Line::from(status), title);

    let bold = Style::default().add_modifier(Modifier::BOLD);
    let header = Row::new(vec![
        "APP",
        "RPS",
        "CONC",
        "P99 MS",
        "5XX %",
        "CPU %",
        "SEEN",
        "WANT",
        "POLICY",
        "WINDOW END",
    ])
    .style(bold);
    let mut sorted: Vec<&AppView> = s.apps.iter().collect();
    sorted.sort_by(|a, b| {
        let rps = |x: &AppView| x.window.as_ref().map_or(0.0, |w| w.rps);
        rps(b).total_cmp(&rps(a))
    });
    let table = Table::new(
        sorted.into_iter().map(app_row),
        [
            Constraint::Min(18),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(12),
            Constraint::Length(21),
        ],
    )
    .header(header)
    .block(Block::bordered().title("apps (newest closed window)"));
    frame.render_widget(table, apps);

    let recent: Vec<Row> = s.decisions.iter().rev().map(decision_row).collect();
    let table = Table::new(
        recent,
        [
            Constraint::Length(21),
            Constraint::Length(24),
            Constraint::Length(9),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(vec!["TIME", "APP", "SCALE", "WHY"]).style(bold))
    .block(Block::bordered().title("recent decisions"));
    frame.render_widget(table, decisions);
}

/// The text of a rendered buffer, row by row (for tests and snapshots).
pub fn buffer_text(buf: &ratatui::buffer::Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}
