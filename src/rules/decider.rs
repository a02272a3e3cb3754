//! Feeds closed windows to the engine, app by app, and keeps what the engine
//! needs between windows. Dry-run: the desired count is taken as applied, so
//! the next decision starts from it (an orchestrator adapter will report the
//! real count instead).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::engine::{AppState, Observation, decide};
use super::load::Labels;
use super::{Decision, RuleSet};
use crate::model::WindowStats;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeciderState {
    /// Per app: engine state, instances (dry-run) and the policy deciding it.
    apps: BTreeMap<String, Tracked>,
    /// Apps paused through the API (by id or readable name): their
    /// decisions are recorded, held at the current count, and nothing is
    /// carried out.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    paused: std::collections::BTreeSet<String>,
}

impl DeciderState {
    /// Apps tracked.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tracked {
    policy: String,
    name: Option<String>,
    instances: u32,
    engine: AppState,
    /// Start of the last window a burst probe scaled in (one per window).
    #[serde(default)]
    probed: Option<i64>,
}

pub struct Decider {
    rules: RuleSet,
    /// Counts the platform reported for apps not yet tracked (by app id or name).
    observed: BTreeMap<String, u32>,
    /// Labels by app id or name, for label selectors.
    labels: BTreeMap<String, Labels>,
    window_ns: i64,
    pub state: DeciderState,
}

impl Decider {
    pub fn new(rules: RuleSet, window_ns: i64) -> Self {
        Decider {
            rules,
            observed: BTreeMap::new(),
            labels: BTreeMap::new(),
            window_ns,
            state: DeciderState::default(),
        }
    }

    /// Labels of apps (keyed by app id or readable name), for `selector.labels`.
    pub fn with_labels(mut self, labels: BTreeMap<String, Labels>) -> Self {
        self.labels = labels;
        self
    }

    fn labels_of(&self, app: &str, name: Option<&str>) -> Labels {
        let mut out = self.labels.get(app).cloned().unwrap_or_default();
        if let Some(n) = name.and_then(|n| self.labels.get(n)) {
            out.extend(n.clone());
        }
        out
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// A new rule set (hot reload). An app whose policy changes starts the
    /// new policy with fresh engine state on its next window (see
    /// `on_window`); its instance count carries over.
    pub fn set_rules(&mut self, rules: RuleSet) {
        self.rules = rules;
    }

    /// Per tracked app: (app, readable name, policy, instances as the
    /// engine holds them).
    pub fn tracked(&self) -> impl Iterator<Item = (&str, Option<&str>, &str, u32)> {
        self.state.apps.iter().map(|(a, t)| {
            (
                a.as_str(),
                t.name.as_deref(),
                t.policy.as_str(),
                t.instances,
            )
        })
    }

    /// The state of `apps` (those tracked), to hand to another decider.
    pub fn export(&self, apps: &[String]) -> DeciderState {
        let tracked: BTreeMap<String, Tracked> = apps
            .iter()
            .filter_map(|a| self.state.apps.get(a).map(|t| (a.clone(), t.clone())))
            .collect();
        let paused = self
            .state
            .paused
            .iter()
            .filter(|p| {
                tracked.contains_key(*p) || tracked.values().any(|t| t.name.as_deref() == Some(p))
            })
            .cloned()
            .collect();
        DeciderState {
            apps: tracked,
            paused,
        }
    }

    /// Takes over the state another decider handed over (its apps' own
    /// state wins over what is tracked here).
    pub fn adopt(&mut self, handed: DeciderState) {
        self.state.apps.extend(handed.apps);
        self.state.paused.extend(handed.paused);
    }

    /// Pauses (or resumes) `app`, by id or readable name: while paused its
    /// decisions are recorded with the reason `paused` and held at the
    /// current count. Returns whether that changed anything.
    pub fn set_paused(&mut self, app: &str, paused: bool) -> bool {
        if paused {
            self.state.paused.insert(app.to_string())
        } else {
            self.state.paused.remove(app)
        }
    }

    /// Who paused a tracked app (as [`Decider::tracked`] lists it), cheaply:
    /// the policy deciding it is known by name.
    pub fn paused_tracked(&self, app: &str, name: Option<&str>, policy: &str) -> Option<String> {
        if self.state.paused.contains(app) || name.is_some_and(|n| self.state.paused.contains(n)) {
            return Some("api".to_string());
        }
        self.rules
            .policies
            .iter()
            .find(|p| p.name == policy && p.paused)
            .map(|p| format!("policy {}", p.name))
    }

    /// Holds the health restarts among `decisions` whose app is paused: a
    /// pause stops every action on the app, not only scaling.
    pub fn hold_paused(&self, decisions: &mut [Decision]) {
        for d in decisions {
            if d.is_paused() {
                continue;
            }
            if let Some(by) = self.paused_by(&d.app, d.name.as_deref()) {
                hold(d, &by);
            }
        }
    }

    /// Who paused `app` (`api`, or `policy NAME` when its policy says
    /// `paused: true`), if anyone.
    pub fn paused_by(&self, app: &str, name: Option<&str>) -> Option<String> {
        if self.state.paused.contains(app) || name.is_some_and(|n| self.state.paused.contains(n)) {
            return Some("api".to_string());
        }
        let labels = self.labels_of(app, name);
        self.rules
            .policy_for(app, name, &labels)
            .filter(|p| p.paused)
            .map(|p| format!("policy {}", p.name))
    }

    /// The labels the configuration gives `app` (for policy selection).
    pub fn labels_for(&self, app: &str, name: Option<&str>) -> Labels {
        self.labels_of(app, name)
    }

    /// Decides for every app in the closed windows `rows` (any number of
    /// windows, in order), and for tracked apps that had no row (no data).
    pub fn on_windows(&mut self, rows: &[WindowStats], out: &mut Vec<Decision>) {
        let mut i = 0;
        while i < rows.len() {
            let end = &rows[i].end;
            let j = rows[i..]
                .iter()
                .position(|r| &r.end != end)
                .map_or(rows.len(), |k| i + k);
            self.on_window(end.nanos(), &rows[i..j], out);
            i = j;
        }
    }

    /// Decides for the window ending at `now_ns`, whose rows are `rows` (none:
    /// a window passed with no data at all).
    pub fn on_window(&mut self, now_ns: i64, rows: &[WindowStats], out: &mut Vec<Decision>) {
        self.on_window_of(now_ns, rows, &|_| true, out);
    }

    /// Like [`Decider::on_window`], for the rows of the apps `in_scope`
    /// says these rows speak for (one partition's, when windows close per
    /// partition): a tracked app outside it is not missing from them.
    pub fn on_window_of(
        &mut self,
        now_ns: i64,
        rows: &[WindowStats],
        in_scope: &dyn Fn(&str) -> bool,
        out: &mut Vec<Decision>,
    ) {
        let mut instances_seen: BTreeMap<&str, u32> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.instance.is_some()) {
            *instances_seen.entry(&r.app).or_default() += 1;
        }
        // A set: `contains` on a list was O(apps²) per window.
        let mut decided: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (i, row) in rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.instance.is_none())
        {
            // Rows are sorted by app with the app row first: its instances follow.
            let n = rows[i + 1..]
                .iter()
                .take_while(|r| r.app == row.app && r.instance.is_some())
                .count();
            let instance_rows = &rows[i + 1..i + 1 + n];
            let labels = self.labels_of(&row.app, row.name.as_deref());
            let Some(policy) = self
                .rules
                .policy_for(&row.app, row.name.as_deref(), &labels)
            else {
                continue;
            };
            let paused_by = self.paused_by(&row.app, row.name.as_deref());
            let reported = self.observed.get(&row.app).or_else(|| {
                row.name
                    .as_ref()
                    .and_then(|n| self.observed.get(n.as_str()))
            });
            let tracked = self
                .state
                .apps
                .entry(row.app.clone())
                .or_insert_with(|| Tracked {
                    policy: policy.name.clone(),
                    name: row.name.clone(),
                    // First sight: what the platform reports, else as many
                    // instances as served traffic, within bounds.
                    instances: match reported {
                        Some(n) => *n,
                        None => instances_seen
                            .get(row.app.as_str())
                            .copied()
                            .unwrap_or(policy.min)
                            .clamp(policy.min.max(1), policy.max),
                    },
                    engine: AppState::default(),
                    probed: None,
                });
            if tracked.policy != policy.name {
                tracked.policy = policy.name.clone();
                tracked.engine = AppState::default();
            }
            let obs = Observation {
                app: &row.app,
                name: row.name.as_deref(),
                now_ns,
                window_ns: self.window_ns,
                window: Some(row),
                instances: instance_rows,
                current: tracked.instances,
                forecast: None,
            };
            let mut d = decide(policy, &mut tracked.engine, &obs);
            if let Some(by) = &paused_by {
                hold(&mut d, by);
            }
            tracked.instances = d.desired;
            out.push(d);
            decided.insert(&row.app);
        }
        // Tracked apps without a row in this window: their data is missing.
        let missing: Vec<String> = self
            .state
            .apps
            .keys()
            .filter(|a| !decided.contains(a.as_str()) && in_scope(a))
            .cloned()
            .collect();
        for app in missing {
            let name = self.state.apps.get(&app).and_then(|t| t.name.clone());
            let labels = self.labels_of(&app, name.as_deref());
            let paused_by = self.paused_by(&app, name.as_deref());
            let Some(tracked) = self.state.apps.get_mut(&app) else {
                continue;
            };
            let Some(policy) = self
                .rules
                .policy_for(&app, tracked.name.as_deref(), &labels)
            else {
                continue;
            };
            let obs = Observation {
                app: &app,
                name: tracked.name.as_deref(),
                now_ns,
                window_ns: self.window_ns,
                window: None,
                instances: &[],
                current: tracked.instances,
                forecast: None,
            };
            let mut d = decide(policy, &mut tracked.engine, &obs);
            if let Some(by) = &paused_by {
                hold(&mut d, by);
            }
            tracked.instances = d.desired;
            out.push(d);
        }
    }
}

/// A burst probe needs this much of the window, and this many requests, so
/// that a handful of requests in a fraction of a second is not a "burst".
pub const PROBE_MIN_ELAPSED_NS: i64 = 2_000_000_000;
pub const PROBE_MIN_REQUESTS: u64 = 20;

impl Decider {
    /// Burst probes on the open window (`loads` from
    /// [`crate::window::WindowAggregator::open_loads`]) at event time `now_ns`:
    /// tracked apps whose policy has a burst factor and whose load so far is
    /// past it scale up now, at most once per window.
    pub fn probe(
        &mut self,
        loads: &[crate::window::OpenLoad],
        now_ns: i64,
        out: &mut Vec<Decision>,
    ) {
        for load in loads {
            if load.elapsed_ns < PROBE_MIN_ELAPSED_NS || load.requests < PROBE_MIN_REQUESTS {
                continue;
            }
            let paused_by = self.paused_by(&load.app, load.name.as_deref());
            let Some(tracked) = self.state.apps.get_mut(&load.app) else {
                continue;
            };
            if tracked.probed == Some(load.start_ns) {
                continue;
            }
            let Some(policy) = self
                .rules
                .policies
                .iter()
                .find(|p| p.name == tracked.policy)
            else {
                continue;
            };
            if policy.burst_factor.is_none() {
                continue;
            }
            let row = load.to_row();
            let obs = Observation {
                app: &load.app,
                name: load.name.as_deref(),
                now_ns,
                window_ns: load.elapsed_ns,
                window: Some(&row),
                instances: &[],
                current: tracked.instances,
                forecast: None,
            };
            if let Some(mut d) = super::engine::probe(policy, &mut tracked.engine, &obs) {
                if let Some(by) = &paused_by {
                    hold(&mut d, by);
                }
                tracked.instances = d.desired;
                tracked.probed = Some(load.start_ns);
                out.push(d);
            }
        }
    }

    /// Whether any policy can react to a burst before its window closes.
    pub fn probes(&self) -> bool {
        self.rules.policies.iter().any(|p| p.burst_factor.is_some())
    }
}

impl Decider {
    /// The platform reports `instances` for `app` (read back by the actuator):
    /// the next decision starts from it instead of from the last desired count.
    /// `app` may be an app id or a readable name.
    pub fn observe_instances(&mut self, app: &str, instances: u32) {
        if let Some(t) = self.state.apps.get_mut(app) {
            t.instances = instances;
        } else if let Some(t) = self
            .state
            .apps
            .values_mut()
            .find(|t| t.name.as_deref() == Some(app))
        {
            t.instances = instances;
        } else {
            self.observed.insert(app.to_string(), instances);
        }
    }

    /// Stops tracking `app` (its windows expired, or another consumer owns
    /// it now): a fleet's churn does not pile up here.
    pub fn forget(&mut self, app: &str) {
        self.state.apps.remove(app);
        self.observed.remove(app);
    }

    /// Starts tracking `app` at `instances` (for rule tests and backtests,
    /// where the starting count is given rather than observed).
    pub fn set_instances(&mut self, app: &str, name: Option<&str>, instances: u32) {
        let labels = self.labels_of(app, name);
        if let Some(policy) = self.rules.policy_for(app, name, &labels) {
            self.state.apps.insert(
                app.to_string(),
                Tracked {
                    policy: policy.name.clone(),
                    name: name.map(str::to_string),
                    instances,
                    engine: AppState::default(),
                    probed: None,
                },
            );
        }
    }
}

/// Holds a paused app's decision at its current count: recorded, with the
/// reason `paused` and what it would have done; nothing to carry out.
fn hold(d: &mut Decision, by: &str) {
    let wanted = d.desired;
    d.constraints.push(crate::model::Constraint {
        name: crate::model::PAUSED.into(),
        from: wanted,
        to: d.current,
        note: format!("paused by {by}: nothing is carried out"),
    });
    d.reason = format!(
        "paused (by {by}): would have gone to {wanted}; {}",
        d.reason
    );
    d.desired = d.current;
    d.direction = crate::model::Direction::None;
}
