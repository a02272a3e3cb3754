//! What the API shows beyond counters: the latest windows per app, recent
//! decisions and alert transitions, the rule set in force, and app log
//! events for the live tail. The run loop feeds it from what closed each
//! tick ([`LiveView::observe`]); handlers only read it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::logs::LogEvent;
use crate::model::AlertEvent;
use crate::model::WindowStats;
use crate::model::{Decision, Direction};
use crate::pipeline::Exports;
use crate::time::Timestamp;

/// Decisions kept for `/api/v1/decisions`.
pub const DECISIONS_KEPT: usize = 2000;
/// Alert transitions kept for `/api/v1/alerts`.
pub const ALERT_EVENTS_KEPT: usize = 500;
/// Log events kept per app, replayed to a tail before it follows.
pub const LOG_EVENTS_KEPT_PER_APP: usize = 200;

/// One app as `/api/v1/apps` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppView {
    pub app: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The app row of the newest closed window.
    pub window: Option<WindowStats>,
    /// Its instance rows of that same window.
    pub instances: Vec<WindowStats>,
    /// The policy deciding for the app, if any.
    pub policy: Option<String>,
    /// Instances as the engine holds them (read back from the platform,
    /// or, in dry-run, the last desired count).
    pub desired_instances: Option<u32>,
    /// The newest decision for the app.
    pub last_decision: Option<Decision>,
    /// Who paused it (`api`, or `policy NAME`): its decisions are
    /// recorded and nothing is carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
}

/// An alert that is pending or firing now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    pub alertname: String,
    pub app: String,
    pub state: String,
    /// Since when its condition holds (RFC 3339 when written).
    pub active_at: Timestamp,
}

/// The rule set in force and how the last reload went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RulesStatus {
    pub policies: usize,
    pub alerts: usize,
    pub health: usize,
    /// When the set in force was loaded (wall clock; RFC 3339 when written).
    pub loaded_at: Option<Timestamp>,
    pub reloads: u64,
    pub reload_failures: u64,
    /// The errors of the last rejected reload (file:line:column: what to
    /// fix), empty once a reload succeeds.
    pub last_error: Vec<String>,
}

#[derive(Debug, Default)]
pub struct LiveView {
    apps: BTreeMap<String, AppView>,
    decisions: VecDeque<Decision>,
    alert_events: VecDeque<AlertEvent>,
    pub active_alerts: Vec<ActiveAlert>,
    pub rules: RulesStatus,
    logs: BTreeMap<String, VecDeque<LogEvent>>,
    /// Decisions by (app, direction, source), for `/metrics`.
    pub decisions_by: BTreeMap<(String, &'static str, &'static str), u64>,
    /// Seconds between the end of the newest closed window and when it was
    /// emitted (wall clock): how far behind real time the windows are.
    pub close_delay_s: Option<f64>,
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Up => "up",
        Direction::Down => "down",
        Direction::None => "none",
    }
}

fn source_name(d: &Decision) -> &'static str {
    match d.source {
        crate::model::DecisionSource::Policy => "policy",
        crate::model::DecisionSource::Actuator => "actuator",
        crate::model::DecisionSource::Manual => "manual",
        crate::model::DecisionSource::Health => "health",
    }
}

impl LiveView {
    /// Takes in what closed since the last tick; `now_ns` is the wall clock.
    pub fn observe(&mut self, x: &Exports, now_ns: i64) {
        let mut newest_end: Option<Timestamp> = None;
        let mut i = 0;
        while i < x.windows.len() {
            let row = &x.windows[i];
            let n = x.windows[i + 1..]
                .iter()
                .take_while(|r| r.app == row.app && r.end == row.end && r.instance.is_some())
                .count();
            if row.instance.is_none() {
                let view = self.apps.entry(row.app.clone()).or_insert_with(|| AppView {
                    app: row.app.clone(),
                    ..AppView::default()
                });
                if row.name.is_some() {
                    view.name.clone_from(&row.name);
                }
                view.window = Some(row.clone());
                view.instances = x.windows[i + 1..i + 1 + n].to_vec();
                if newest_end.is_none_or(|e| row.end > e) {
                    newest_end = Some(row.end);
                }
            }
            i += 1 + n;
        }
        if let Some(end) = newest_end {
            self.close_delay_s = Some((now_ns - end.nanos()) as f64 / 1e9);
        }
        for d in &x.decisions {
            self.record(d);
        }
        // Apps the windows forgot leave the view (and its per-app counters):
        // at fleet scale, churn must not pile up here.
        let gone: std::collections::HashSet<&str> = x
            .forgotten
            .iter()
            .filter(|f| f.instance.is_none())
            .map(|f| &*f.app)
            .collect();
        if !gone.is_empty() {
            for app in &gone {
                self.apps.remove(*app);
            }
            self.decisions_by
                .retain(|(app, _, _), _| !gone.contains(app.as_str()));
        }
        for e in &x.alerts {
            if self.alert_events.len() == ALERT_EVENTS_KEPT {
                self.alert_events.pop_front();
            }
            self.alert_events.push_back(e.clone());
        }
        for ev in &x.logs {
            let kept = self.logs.entry(ev.app.clone()).or_default();
            if kept.len() == LOG_EVENTS_KEPT_PER_APP {
                kept.pop_front();
            }
            kept.push_back(ev.clone());
        }
    }

    /// A decision, whoever took it.
    pub fn record(&mut self, d: &Decision) {
        *self
            .decisions_by
            .entry((d.app.clone(), direction(d.direction), source_name(d)))
            .or_default() += 1;
        let view = self.apps.entry(d.app.clone()).or_insert_with(|| AppView {
            app: d.app.clone(),
            name: d.name.clone(),
            ..AppView::default()
        });
        view.last_decision = Some(d.clone());
        if self.decisions.len() == DECISIONS_KEPT {
            self.decisions.pop_front();
        }
        self.decisions.push_back(d.clone());
    }

    /// What the decider tracks per app: (app, name, policy, instances).
    pub fn set_tracked<'a>(
        &mut self,
        tracked: impl Iterator<Item = (&'a str, Option<&'a str>, &'a str, u32)>,
    ) {
        for (app, name, policy, instances) in tracked {
            let view = self.apps.entry(app.to_string()).or_insert_with(|| AppView {
                app: app.to_string(),
                ..AppView::default()
            });
            if view.name.is_none() {
                view.name = name.map(str::to_string);
            }
            view.policy = Some(policy.to_string());
            view.desired_instances = Some(instances);
        }
    }

    /// Who paused each app (`None`: not paused).
    pub fn set_paused(&mut self, paused: impl Iterator<Item = (String, Option<String>)>) {
        for (app, by) in paused {
            if let Some(view) = self.apps.get_mut(&app) {
                view.paused = by;
            }
        }
    }

    pub fn apps(&self) -> Vec<&AppView> {
        self.apps.values().collect()
    }

    /// Finds an app by id or readable name.
    pub fn app(&self, key: &str) -> Option<&AppView> {
        self.apps
            .get(key)
            .or_else(|| self.apps.values().find(|a| a.name.as_deref() == Some(key)))
    }

    /// The newest `limit` decisions (oldest first), for one app (id or name) or all.
    pub fn decisions(&self, app: Option<&str>, limit: usize) -> Vec<&Decision> {
        let mut out: Vec<&Decision> = self
            .decisions
            .iter()
            .rev()
            .filter(|d| app.is_none_or(|a| d.app == a || d.name.as_deref() == Some(a)))
            .take(limit)
            .collect();
        out.reverse();
        out
    }

    pub fn alert_events(&self) -> impl Iterator<Item = &AlertEvent> {
        self.alert_events.iter()
    }

    /// The newest log events of an app (by the identity its lines carry).
    pub fn recent_logs(&self, app: &str) -> Vec<LogEvent> {
        self.logs
            .get(app)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(app: &str, instance: Option<&str>, end: &str, requests: u64) -> WindowStats {
        let mut w: WindowStats = serde_json::from_value(serde_json::json!({
            "app": app, "instance": instance, "start": "2025-12-01T00:00:00Z", "end": end,
            "requests": requests, "rps": requests as f64 / 10.0, "concurrency": 0.0,
            "latency_ms": {"p50": null, "p90": null, "p95": null, "p99": null, "max": null},
            "status": {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "other": 0},
            "error_ratio": 0.0, "bytes_in": 0, "bytes_out": 0, "late": 0
        }))
        .unwrap();
        w.requests = requests;
        w
    }

    #[test]
    fn the_newest_window_of_each_app_with_its_instances() {
        let mut v = LiveView::default();
        let x = Exports {
            windows: vec![
                row("a", None, "2025-12-01T00:00:10Z", 5),
                row("a", Some("0"), "2025-12-01T00:00:10Z", 3),
                row("a", Some("1"), "2025-12-01T00:00:10Z", 2),
                row("b", None, "2025-12-01T00:00:10Z", 1),
                row("a", None, "2025-12-01T00:00:20Z", 7),
                row("a", Some("1"), "2025-12-01T00:00:20Z", 7),
            ],
            ..Exports::default()
        };
        v.observe(&x, 1_764_547_230_000_000_000);
        let a = v.app("a").unwrap();
        assert_eq!(a.window.as_ref().unwrap().requests, 7);
        assert_eq!(a.instances.len(), 1);
        assert_eq!(v.app("b").unwrap().instances.len(), 0);
        assert_eq!(v.close_delay_s, Some(10.0));
    }
}
