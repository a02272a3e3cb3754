//! Health rules (`kind: HealthRule`): watch instances in the closed windows and
//! restart the unhealthy ones through the orchestrator.
//!
//! ```yaml
//! apiVersion: vane/v1
//! kind: HealthRule
//! metadata: {name: web-health}
//! spec:
//!   selector: {names: ["web.*"]}
//!   silent: {windows: 3}                          # no container metrics for 3 windows
//!   errorRatio: {above: 0.5, windows: 3, minRequests: 10}
//!   crashLoop: {returns: 3, within: 10m}           # went silent and came back 3 times
//!   nodeSilent: {windows: 2}                       # a whole node/cell stopped reporting: migrate
//!   restarts: {max: 3, per: 10m}                   # then an alert instead
//! ```
//!
//! Silence counts only in windows in which some instance did report
//! container metrics: when the metrics source itself is quiet, nothing is
//! restarted. An instance restarted is left alone for as many windows as its
//! silence check needs (at least 3) to come back.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::alert::{AlertEvent, AlertState};
use super::error::RuleError;
use super::load::Labels;
use super::model::{Metadata, Selector as SelectorSpec};
use super::selector::Selector;
use crate::model::WindowStats;
use crate::model::{Decision, DecisionSource, Direction};
use crate::time::parse_duration;
use crate::time::{NANOS_PER_SEC, Timestamp};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthDocument {
    pub api_version: Spanned<String>,
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    pub spec: HealthSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthSpec {
    #[serde(default)]
    pub selector: SelectorSpec,
    #[serde(default)]
    pub silent: Option<WindowsSpec>,
    #[serde(default)]
    pub error_ratio: Option<ErrorRatioSpec>,
    #[serde(default)]
    pub crash_loop: Option<CrashLoopSpec>,
    #[serde(default)]
    pub node_silent: Option<WindowsSpec>,
    #[serde(default)]
    pub restarts: Option<BudgetSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsSpec {
    pub windows: Spanned<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ErrorRatioSpec {
    pub above: Spanned<f64>,
    #[serde(default)]
    pub windows: Option<Spanned<u32>>,
    #[serde(default)]
    pub min_requests: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashLoopSpec {
    pub returns: Spanned<u32>,
    pub within: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    pub max: Spanned<u32>,
    pub per: Spanned<String>,
}

/// A validated health rule.
#[derive(Debug, Clone)]
pub struct HealthRule {
    pub name: String,
    pub selector: Selector,
    pub silent_windows: Option<u32>,
    /// (ratio above which, for how many windows, with at least how many requests)
    pub error_ratio: Option<(f64, u32, u64)>,
    /// (returns, within ns)
    pub crash_loop: Option<(u32, i64)>,
    pub node_silent_windows: Option<u32>,
    pub max_restarts: u32,
    pub per_ns: i64,
}

pub fn compile(doc: &HealthDocument, file: &str) -> Result<HealthRule, Vec<RuleError>> {
    let name = doc.metadata.name.value.trim().to_string();
    let mut errors = Vec::new();
    let mut err = |at: serde_saphyr::Location, m: String| {
        errors.push(RuleError::at(file, at, Some(&name), m));
    };
    if doc.api_version.value != super::policy::API_VERSION {
        err(
            doc.api_version.referenced,
            format!(
                "apiVersion `{}` is not supported (use `vane/v1`)",
                doc.api_version.value
            ),
        );
    }
    let s = &doc.spec;
    let windows =
        |w: &Spanned<u32>, what: &str, err: &mut dyn FnMut(serde_saphyr::Location, String)| {
            if w.value == 0 || w.value > 1000 {
                err(
                    w.referenced,
                    format!("{what} must be between 1 and 1000 windows"),
                );
            }
            w.value
        };
    let silent_windows = s
        .silent
        .as_ref()
        .map(|w| windows(&w.windows, "silent.windows", &mut err));
    let node_silent_windows = s
        .node_silent
        .as_ref()
        .map(|w| windows(&w.windows, "nodeSilent.windows", &mut err));
    let error_ratio = s.error_ratio.as_ref().map(|e| {
        if !(e.above.value > 0.0 && e.above.value < 1.0) {
            err(
                e.above.referenced,
                "errorRatio.above must be a ratio between 0 and 1, like 0.5".into(),
            );
        }
        let w = e
            .windows
            .as_ref()
            .map_or(3, |w| windows(w, "errorRatio.windows", &mut err));
        (e.above.value, w, e.min_requests.unwrap_or(10))
    });
    let mut duration = |d: &Spanned<String>, what: &str| match parse_duration(&d.value) {
        Ok(v) if !v.is_zero() => v.as_nanos().min(i64::MAX as u128) as i64,
        Ok(_) => {
            err(d.referenced, format!("{what} must be more than 0"));
            0
        }
        Err(m) => {
            err(d.referenced, format!("{what}: {m}"));
            0
        }
    };
    let crash_loop = s.crash_loop.as_ref().map(|c| {
        (
            c.returns.value.max(1),
            duration(&c.within, "crashLoop.within"),
        )
    });
    let (max_restarts, per_ns) = match &s.restarts {
        Some(b) => (b.max.value, duration(&b.per, "restarts.per")),
        None => (3, 600 * NANOS_PER_SEC),
    };
    if silent_windows.is_none()
        && error_ratio.is_none()
        && crash_loop.is_none()
        && node_silent_windows.is_none()
    {
        err(
            doc.metadata.name.referenced,
            "a health rule needs at least one check: silent, errorRatio, crashLoop or nodeSilent"
                .into(),
        );
    }
    let (selector, bad) = Selector::compile(&s.selector);
    for (n, message) in bad {
        err(n.referenced, message);
    }
    if errors.is_empty() {
        Ok(HealthRule {
            name,
            selector,
            silent_windows,
            error_ratio,
            crash_loop,
            node_silent_windows,
            max_restarts,
            per_ns,
        })
    } else {
        Err(errors)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct InstanceState {
    node: Option<String>,
    /// It has reported container metrics at least once.
    metrics_seen: bool,
    /// Consecutive windows without metrics (counted only while others report).
    silent: u32,
    /// Consecutive windows above the error ratio.
    error_windows: u32,
    /// When it came back after silence, recent first out.
    returns: VecDeque<i64>,
    /// Windows left in which its checks rest after a restart.
    grace: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct AppHealth {
    name: Option<String>,
    instances: BTreeMap<String, InstanceState>,
    /// Times of recent restarts, for the budget.
    restarts: VecDeque<i64>,
    budget_alert: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct NodeState {
    silent: u32,
    /// The window whose silence was counted last: with windows closed per
    /// Kafka partition, several groups of rows speak for one window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counted: Option<i64>,
}

/// Evaluates health rules on closed windows. Serializable for checkpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealthWatcher {
    #[serde(skip)]
    rules: Vec<HealthRule>,
    #[serde(skip)]
    labels: BTreeMap<String, Labels>,
    apps: BTreeMap<String, AppHealth>,
    nodes: BTreeMap<String, NodeState>,
}

/// A check that fired: (instance, check, why, the metric and threshold).
type HealthAction = (String, &'static str, String, Option<(String, f64)>);

/// Alert name when an app's restart budget is spent.
pub const BUDGET_ALERT: &str = "VaneRestartBudgetExhausted";

impl HealthWatcher {
    pub fn new(rules: Vec<HealthRule>) -> Self {
        HealthWatcher {
            rules,
            ..HealthWatcher::default()
        }
    }

    pub fn with_labels(mut self, labels: BTreeMap<String, Labels>) -> Self {
        self.labels = labels;
        self
    }

    /// A new rule set (hot reload); per-app state (restart budgets) is kept.
    pub fn set_rules(&mut self, rules: Vec<HealthRule>) {
        self.rules = rules;
    }

    /// Keeps the state of `saved` (a checkpoint) under this watcher's rules.
    pub fn restore(&mut self, saved: HealthWatcher) {
        self.apps = saved.apps;
        self.nodes = saved.nodes;
    }

    /// Instances tracked, over all apps.
    pub fn instances_tracked(&self) -> usize {
        self.apps.values().map(|a| a.instances.len()).sum()
    }

    /// Forgets an instance (or, with `None`, the app) whose windows expired:
    /// an instance gone for good is not "silent" for ever after.
    pub fn forget(&mut self, app: &str, instance: Option<&str>) {
        match instance {
            Some(i) => {
                if let Some(a) = self.apps.get_mut(app) {
                    a.instances.remove(i);
                }
            }
            None => {
                self.apps.remove(app);
            }
        }
    }

    fn rule_index(&self, app: &str, name: Option<&str>) -> Option<usize> {
        let mut labels = self.labels.get(app).cloned().unwrap_or_default();
        if let Some(n) = name.and_then(|n| self.labels.get(n)) {
            labels.extend(n.clone());
        }
        self.rules
            .iter()
            .position(|r| r.selector.matches(app, name, &labels))
    }

    fn rule_for(&self, app: &str, name: Option<&str>) -> Option<&HealthRule> {
        let mut labels = self.labels.get(app).cloned().unwrap_or_default();
        if let Some(n) = name.and_then(|n| self.labels.get(n)) {
            labels.extend(n.clone());
        }
        self.rules
            .iter()
            .find(|r| r.selector.matches(app, name, &labels))
    }

    /// One closed window's rows (every app and instance of the window ending
    /// at `now_ns`): health decisions to `decisions`, budget alerts to `alerts`.
    pub fn on_window(
        &mut self,
        now_ns: i64,
        rows: &[WindowStats],
        decisions: &mut Vec<Decision>,
        alerts: &mut Vec<AlertEvent>,
    ) {
        self.on_window_of(now_ns, rows, &|_| true, decisions, alerts);
    }

    /// Like [`HealthWatcher::on_window`], for the rows of the apps
    /// `in_scope` says these rows speak for (one partition's, when windows
    /// close per partition): instances of other apps are left as they are.
    pub fn on_window_of(
        &mut self,
        now_ns: i64,
        rows: &[WindowStats],
        in_scope: &dyn Fn(&str) -> bool,
        decisions: &mut Vec<Decision>,
        alerts: &mut Vec<AlertEvent>,
    ) {
        if self.rules.is_empty() {
            return;
        }
        let has_metrics = |r: &WindowStats| r.cpu_pct.is_some() || r.memory_bytes.is_some();
        let anyone_reports = rows.iter().any(|r| r.instance.is_some() && has_metrics(r));
        // 1. Fold the window into the instances' state. Keys borrow from the
        // rows and each app's rule is looked up once: at 100k instance rows
        // a window, clones and repeated selector matches were most of the cost.
        type Fast<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;
        let mut rule_of: Fast<&str, Option<usize>> = Fast::default();
        let mut reported: Fast<(&str, &str), &WindowStats> = Fast::default();
        for r in rows {
            let Some(inst) = r.instance.as_deref() else {
                continue;
            };
            let rule = *rule_of
                .entry(r.app.as_str())
                .or_insert_with(|| self.rule_index(&r.app, r.name.as_deref()));
            let Some(rule) = rule.and_then(|i| self.rules.get(i)) else {
                continue;
            };
            // A row without metrics whose errors cannot count does to an
            // instance what no row does (silence counts only for instances
            // that had metrics, errors reset): left out, most rows of a
            // fleet without container metrics cost nothing here.
            let errors = rule
                .error_ratio
                .is_some_and(|(above, _, min)| r.requests >= min && r.error_ratio > above);
            if has_metrics(r) || errors {
                reported.insert((r.app.as_str(), inst), r);
            }
        }
        for (&(app, inst), r) in &reported {
            let rule = rule_of
                .get(app)
                .copied()
                .flatten()
                .and_then(|i| self.rules.get(i));
            let error_ratio = rule.and_then(|r| r.error_ratio);
            let a = match self.apps.get_mut(app) {
                Some(a) => a,
                None => self.apps.entry(app.to_string()).or_default(),
            };
            if r.name.is_some() && a.name != r.name {
                a.name.clone_from(&r.name);
            }
            let st = match a.instances.get_mut(inst) {
                Some(st) => st,
                None => a.instances.entry(inst.to_string()).or_default(),
            };
            if r.node.is_some() && st.node != r.node {
                st.node.clone_from(&r.node);
            }
            if has_metrics(r) {
                if st.metrics_seen && st.silent > 0 {
                    st.returns.push_back(now_ns);
                }
                st.silent = 0;
                st.metrics_seen = true;
            } else if st.metrics_seen && anyone_reports {
                st.silent += 1;
            }
            match error_ratio {
                Some((above, _, min)) if r.requests >= min && r.error_ratio > above => {
                    st.error_windows += 1
                }
                _ => st.error_windows = 0,
            }
        }
        for (app, a) in self.apps.iter_mut().filter(|(app, _)| in_scope(app)) {
            for (inst, st) in &mut a.instances {
                if !reported.contains_key(&(app.as_str(), inst.as_str())) {
                    if st.metrics_seen && anyone_reports {
                        st.silent += 1;
                    }
                    st.error_windows = 0;
                }
            }
        }
        // 2. Nodes: silent while instances elsewhere report.
        let mut node_reports: BTreeMap<String, bool> = BTreeMap::new();
        for (_, a) in self.apps.iter().filter(|(app, _)| in_scope(app)) {
            for st in a.instances.values() {
                if let Some(n) = &st.node {
                    node_reports.entry(n.clone()).or_insert(false);
                }
            }
        }
        for r in rows
            .iter()
            .filter(|r| r.instance.is_some() && has_metrics(r))
        {
            if let Some(n) = &r.node {
                node_reports.insert(n.clone(), true);
            }
        }
        let mut migrating: Vec<String> = Vec::new();
        for (node, reports) in &node_reports {
            let ns = self.nodes.entry(node.clone()).or_default();
            if *reports || !anyone_reports {
                ns.silent = 0;
                ns.counted = Some(now_ns);
            } else {
                if ns.counted != Some(now_ns) {
                    ns.silent += 1;
                    ns.counted = Some(now_ns);
                }
                migrating.push(node.clone());
            }
        }
        // 3. Checks, app by app.
        let time = Timestamp::from_secs(now_ns.div_euclid(NANOS_PER_SEC));
        let apps: Vec<String> = self.apps.keys().filter(|a| in_scope(a)).cloned().collect();
        for app in apps {
            let name = self.apps.get(&app).and_then(|a| a.name.clone());
            let Some(rule) = self.rule_for(&app, name.as_deref()).cloned() else {
                continue;
            };
            let Some(a) = self.apps.get_mut(&app) else {
                continue;
            };
            while a
                .restarts
                .front()
                .is_some_and(|t| now_ns - t >= rule.per_ns)
            {
                a.restarts.pop_front();
            }
            let count = a.instances.len() as u32;
            let mut actions: Vec<HealthAction> = Vec::new();
            for (inst, st) in &mut a.instances {
                if let Some((_, within)) = rule.crash_loop {
                    while st.returns.front().is_some_and(|t| now_ns - t >= within) {
                        st.returns.pop_front();
                    }
                }
                // A whole node gone quiet: move its instances (once, when it crosses the line).
                if let (Some(n), Some(w)) = (&st.node, rule.node_silent_windows)
                    && migrating.contains(n)
                    && self.nodes.get(n).is_some_and(|ns| ns.silent == w)
                {
                    actions.push((
                        inst.clone(),
                        "migrate",
                        format!("node {n} has sent no container metrics for {w} windows while other nodes did"),
                        None,
                    ));
                    st.grace = w.max(3);
                    st.silent = 0;
                    continue;
                }
                if st.grace > 0 {
                    // Resting after a restart: its checks start afresh after.
                    st.grace -= 1;
                    st.silent = 0;
                    st.error_windows = 0;
                    continue;
                }
                // With a node check, an instance on a quiet node is the node's matter.
                let on_quiet_node = rule.node_silent_windows.is_some()
                    && st.node.as_ref().is_some_and(|n| migrating.contains(n));
                let trigger = if let Some(w) = rule
                    .silent_windows
                    .filter(|w| st.silent >= *w && !on_quiet_node)
                {
                    Some((
                        "silent",
                        format!("no container metrics for {} windows", st.silent.max(w)),
                        None,
                    ))
                } else if let Some((above, w, _)) =
                    rule.error_ratio.filter(|(_, w, _)| st.error_windows >= *w)
                {
                    Some((
                        "error_ratio",
                        format!(
                            "5xx ratio above {above} for {} windows",
                            st.error_windows.max(w)
                        ),
                        Some(("error ratio".to_string(), above)),
                    ))
                } else if let Some((n, within)) = rule
                    .crash_loop
                    .filter(|(n, _)| st.returns.len() as u32 >= *n)
                {
                    Some((
                        "crash_loop",
                        format!(
                            "crash-looping: stopped reporting and came back {} times within {} s",
                            st.returns.len().max(n as usize),
                            within / NANOS_PER_SEC
                        ),
                        None,
                    ))
                } else {
                    None
                };
                if let Some((check, why, metric)) = trigger {
                    actions.push((inst.clone(), check, why, metric));
                    st.silent = 0;
                    st.error_windows = 0;
                    st.returns.clear();
                    st.grace = rule.silent_windows.unwrap_or(3).max(3);
                }
            }
            for (inst, check, why, metric) in actions {
                let label = name.clone().unwrap_or_else(|| app.clone());
                let migrate = check == "migrate";
                if !migrate && a.restarts.len() as u32 >= rule.max_restarts {
                    if !a.budget_alert {
                        a.budget_alert = true;
                        alerts.push(budget_event(
                            &app,
                            &label,
                            &inst,
                            &why,
                            &rule,
                            time,
                            AlertState::Firing,
                        ));
                    }
                    continue;
                }
                if !migrate {
                    a.restarts.push_back(now_ns);
                }
                let budget = if migrate {
                    String::new()
                } else {
                    format!(
                        " (restart {} of at most {} per {} s)",
                        a.restarts.len(),
                        rule.max_restarts,
                        rule.per_ns / NANOS_PER_SEC
                    )
                };
                let verb = if migrate { "migrate" } else { "restart" };
                decisions.push(Decision {
                    time,
                    app: app.clone(),
                    name: name.clone(),
                    policy: rule.name.clone(),
                    algorithm: format!("health:{check}"),
                    current: count,
                    recommended: count,
                    desired: count,
                    direction: Direction::None,
                    observed: metric.map(|(m, v)| vec![(m, v)]).unwrap_or_default(),
                    recommendations: Vec::new(),
                    constraints: Vec::new(),
                    reason: format!("{verb} instance {inst} of {label}: {why}{budget}."),
                    source: DecisionSource::Health,
                    error: None,
                    action: Some(verb.to_string()),
                    instance: Some(inst),
                    forecast: None,
                });
            }
            if a.budget_alert && (a.restarts.len() as u32) < rule.max_restarts {
                a.budget_alert = false;
                let label = name.clone().unwrap_or_else(|| app.clone());
                alerts.push(budget_event(
                    &app,
                    &label,
                    "",
                    "the restart budget has room again",
                    &rule,
                    time,
                    AlertState::Resolved,
                ));
            }
        }
        self.prune();
    }

    /// Instances with nothing to remember (no metrics seen yet, no errors,
    /// no node) are not kept: one that reports again starts the same way.
    /// Without container metrics that is every instance — 100k entries a
    /// checkpoint would write for nothing.
    fn prune(&mut self) {
        let blank = InstanceState::default();
        for a in self.apps.values_mut() {
            a.instances.retain(|_, st| *st != blank);
        }
        self.apps
            .retain(|_, a| !a.instances.is_empty() || !a.restarts.is_empty() || a.budget_alert);
    }
}

fn budget_event(
    app: &str,
    label: &str,
    instance: &str,
    why: &str,
    rule: &HealthRule,
    time: Timestamp,
    state: AlertState,
) -> AlertEvent {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), BUDGET_ALERT.to_string());
    labels.insert("app".to_string(), label.to_string());
    labels.insert("rule".to_string(), rule.name.clone());
    labels.insert("severity".to_string(), "warning".to_string());
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".to_string(),
        format!(
            "{label}: {} restarts within {} s already; instance {instance} needs attention: {why}",
            rule.max_restarts,
            rule.per_ns / NANOS_PER_SEC
        ),
    );
    AlertEvent {
        time,
        alertname: BUDGET_ALERT.to_string(),
        app: app.to_string(),
        state,
        labels,
        annotations,
        value: None,
        active_at: time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::load::load_str_set;

    const S: i64 = NANOS_PER_SEC;

    fn watcher(spec: &str) -> HealthWatcher {
        let yaml = format!(
            "apiVersion: vane/v1\nkind: HealthRule\nmetadata: {{name: h}}\nspec:\n  selector: {{names: [\"web\"]}}\n{spec}"
        );
        let set = load_str_set(&yaml, "h.yaml").unwrap_or_else(|e| panic!("{e:?}"));
        HealthWatcher::new(set.health)
    }

    /// An instance row: `metrics` = has CPU/memory; `errors` of `requests` are 5xx.
    fn inst(i: &str, node: &str, metrics: bool, requests: u64, errors: u64) -> WindowStats {
        let mut w = WindowStats::empty("web");
        w.instance = Some(i.into());
        w.node = Some(node.into());
        w.requests = requests;
        w.status.c5xx = errors;
        w.error_ratio = if requests > 0 {
            errors as f64 / requests as f64
        } else {
            0.0
        };
        if metrics {
            w.cpu_pct = Some(10.0);
            w.memory_bytes = Some(1e8);
        }
        w
    }

    fn step(
        w: &mut HealthWatcher,
        t: i64,
        rows: &[WindowStats],
    ) -> (Vec<Decision>, Vec<AlertEvent>) {
        let (mut d, mut a) = (Vec::new(), Vec::new());
        w.on_window(t * 10 * S, rows, &mut d, &mut a);
        (d, a)
    }

    #[test]
    fn a_failing_instance_is_restarted_then_the_budget_alerts() {
        let mut w = watcher(
            "  errorRatio: {above: 0.5, windows: 2, minRequests: 10}\n  restarts: {max: 1, per: 10m}\n",
        );
        let bad = || {
            vec![
                inst("0", "n1", true, 100, 1),
                inst("1", "n1", true, 100, 90),
            ]
        };
        assert!(
            step(&mut w, 1, &bad()).0.is_empty(),
            "one window is not enough"
        );
        let (d, _) = step(&mut w, 2, &bad());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].instance.as_deref(), Some("1"));
        assert_eq!(d[0].action.as_deref(), Some("restart"));
        assert_eq!(d[0].source, DecisionSource::Health);
        assert_eq!(
            d[0].reason,
            "restart instance 1 of web: 5xx ratio above 0.5 for 2 windows (restart 1 of at most 1 per 600 s)."
        );
        // It rests for 3 windows after the restart, then fails again: the budget is spent.
        for t in 3..=5 {
            assert!(step(&mut w, t, &bad()).0.is_empty());
        }
        assert!(step(&mut w, 6, &bad()).0.is_empty());
        let (d, a) = step(&mut w, 7, &bad());
        assert!(d.is_empty(), "no second restart within the period: {d:?}");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alertname, BUDGET_ALERT);
        assert_eq!(a[0].state, AlertState::Firing);
        // Ten minutes after the restart the budget has room again.
        let (_, a) = step(
            &mut w,
            62,
            &[inst("0", "n1", true, 100, 0), inst("1", "n1", true, 100, 0)],
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].state, AlertState::Resolved);
    }

    #[test]
    fn silence_counts_only_while_others_report() {
        let mut w = watcher("  silent: {windows: 3}\n");
        let both = [inst("0", "n1", true, 5, 0), inst("1", "n2", true, 5, 0)];
        step(&mut w, 1, &both);
        // The whole metrics source is quiet: nobody is restarted.
        for t in 2..=6 {
            assert!(step(&mut w, t, &[]).0.is_empty());
        }
        step(&mut w, 7, &both);
        // Only instance 1 goes quiet.
        let only0 = [inst("0", "n1", true, 5, 0), inst("1", "n2", false, 5, 0)];
        assert!(step(&mut w, 8, &only0).0.is_empty());
        assert!(step(&mut w, 9, &only0).0.is_empty());
        let (d, _) = step(&mut w, 10, &only0);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].algorithm, "health:silent");
        assert!(
            d[0].reason.contains("no container metrics for 3 windows"),
            "{}",
            d[0].reason
        );
    }

    #[test]
    fn a_silent_node_migrates_its_instances() {
        let mut w = watcher("  silent: {windows: 2}\n  nodeSilent: {windows: 2}\n");
        let all = [
            inst("0", "cell-a", true, 5, 0),
            inst("1", "cell-a", true, 5, 0),
            inst("2", "cell-b", true, 5, 0),
        ];
        step(&mut w, 1, &all);
        let b_only = [inst("2", "cell-b", true, 5, 0)];
        assert!(step(&mut w, 2, &b_only).0.is_empty());
        let (d, _) = step(&mut w, 3, &b_only);
        let moved: Vec<_> = d
            .iter()
            .map(|d| (d.action.clone().unwrap(), d.instance.clone().unwrap()))
            .collect();
        assert_eq!(
            moved,
            [
                ("migrate".to_string(), "0".to_string()),
                ("migrate".into(), "1".into())
            ],
            "{d:?}"
        );
        assert!(
            d[0].reason
                .contains("node cell-a has sent no container metrics for 2 windows"),
            "{}",
            d[0].reason
        );
        // Once, not every window.
        assert!(step(&mut w, 4, &b_only).0.is_empty());
    }

    #[test]
    fn a_crash_loop_is_restarted() {
        let mut w = watcher("  crashLoop: {returns: 2, within: 5m}\n");
        let up = [inst("0", "n1", true, 5, 0), inst("1", "n1", true, 5, 0)];
        let down = [inst("0", "n1", true, 5, 0)];
        let mut restarts = Vec::new();
        for (t, rows) in [
            (1, &up[..]),
            (2, &down[..]),
            (3, &up[..]),
            (4, &down[..]),
            (5, &up[..]),
        ] {
            restarts.extend(step(&mut w, t, rows).0);
        }
        assert_eq!(restarts.len(), 1, "{restarts:?}");
        assert_eq!(restarts[0].algorithm, "health:crash_loop");
        assert!(
            restarts[0].reason.contains("came back 2 times"),
            "{}",
            restarts[0].reason
        );
    }

    #[test]
    fn invalid_health_rules_are_explained() {
        let e = load_str_set(
            "apiVersion: vane/v1\nkind: HealthRule\nmetadata: {name: h}\nspec:\n  selector: {names: [web]}\n",
            "h.yaml",
        )
        .unwrap_err();
        assert!(e[0].to_string().contains("at least one check"), "{}", e[0]);
        let e = load_str_set(
            "apiVersion: vane/v1\nkind: HealthRule\nmetadata: {name: h}\nspec:\n  errorRatio: {above: 5}\n",
            "h.yaml",
        )
        .unwrap_err();
        assert!(
            e[0].to_string().contains("h.yaml:5") && e[0].to_string().contains("between 0 and 1"),
            "{}",
            e[0]
        );
    }
}
