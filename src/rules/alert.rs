//! Alert rules: a condition over an app's window metrics that must hold `for`
//! a while before the alert fires, and that can be kept firing
//! (`keepFiringFor`) after it stops holding. The Prometheus state machine —
//! inactive → pending → firing → resolved — with time passed in.
//!
//! ```yaml
//! apiVersion: vane/v1
//! kind: AlertRule
//! metadata: {name: HighErrorRatio}
//! spec:
//!   selector: {names: ["*"]}
//!   expr: error_ratio > 0.05 and rps > 1
//!   for: 30s
//!   labels: {severity: page}
//!   annotations: {summary: "{{ $labels.app }}: {{ $value }} of requests fail"}
//! ```

use crate::model::metrics::{WINDOW_METRICS, window_metric, window_metric_names};
pub use crate::model::{AlertEvent, AlertState};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::error::RuleError;
use super::model::{Metadata, Selector as SelectorSpec};
use super::selector::Selector;
use crate::model::WindowStats;
use crate::time::parse_duration;
use crate::time::{NANOS_PER_SEC, Timestamp};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertDocument {
    pub api_version: Spanned<String>,
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    pub spec: AlertSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertSpec {
    #[serde(default)]
    pub selector: SelectorSpec,
    pub expr: Spanned<String>,
    #[serde(rename = "for", default)]
    pub for_: Option<Spanned<String>>,
    #[serde(default)]
    pub keep_firing_for: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// An expression's metric, from the one table of window metrics.
fn metric(w: &WindowStats, name: &str) -> Option<f64> {
    window_metric(name)?.read(w)
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Cmp {
        metric: String,
        op: String,
        value: f64,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Whether it holds; a metric without a value in the window does not.
    pub fn holds(&self, w: &WindowStats) -> bool {
        match self {
            Expr::Cmp {
                metric: m,
                op,
                value,
            } => metric(w, m).is_some_and(|v| match op.as_str() {
                ">" => v > *value,
                ">=" => v >= *value,
                "<" => v < *value,
                "<=" => v <= *value,
                "==" => v == *value,
                _ => v != *value,
            }),
            Expr::And(a, b) => a.holds(w) && b.holds(w),
            Expr::Or(a, b) => a.holds(w) || b.holds(w),
        }
    }

    /// `$value`: the first metric the condition compares.
    pub fn value(&self, w: &WindowStats) -> Option<f64> {
        match self {
            Expr::Cmp { metric: m, .. } => metric(w, m),
            Expr::And(a, _) | Expr::Or(a, _) => a.value(w),
        }
    }
}

/// Parses `metric op number` terms joined by `and` / `or` (and binds
/// tighter), with parentheses. Errors give the byte offset in the expression.
pub fn parse_expr(text: &str) -> Result<Expr, (usize, String)> {
    let tokens = tokenize(text)?;
    check_size(&tokens)?;
    let mut pos = 0;
    let e = parse_or(&tokens, &mut pos)?;
    match tokens.get(pos) {
        None => Ok(e),
        Some((at, t)) => Err((*at, format!("unexpected `{t}`"))),
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, String)>, (usize, String)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'(' || c == b')' {
            out.push((i, (c as char).to_string()));
            i += 1;
        } else if b"<>=!".contains(&c) {
            let len = if b.get(i + 1) == Some(&b'=') { 2 } else { 1 };
            out.push((i, text[i..i + len].to_string()));
            i += len;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-' {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.' || b[i] == b'-')
            {
                i += 1;
            }
            out.push((start, text[start..i].to_string()));
        } else {
            return Err((i, format!("unexpected character `{}`", c as char)));
        }
    }
    Ok(out)
}

type Tokens = [(usize, String)];

/// Expressions are parsed, evaluated and dropped by recursion: their size
/// is bounded so that no rule file can exhaust the stack (`vane check`, a
/// hot reload).
const MAX_TERMS: usize = 256;
const MAX_NESTING: usize = 32;

fn check_size(t: &Tokens) -> Result<(), (usize, String)> {
    let mut depth = 0usize;
    let mut terms = 0usize;
    for (at, tok) in t {
        match tok.as_str() {
            "(" => depth += 1,
            ")" => depth = depth.saturating_sub(1),
            "and" | "or" => terms += 1,
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err((
                *at,
                format!("parentheses nest deeper than {MAX_NESTING}: split the rule"),
            ));
        }
        if terms >= MAX_TERMS {
            return Err((
                *at,
                format!("more than {MAX_TERMS} comparisons in one expression: split the rule"),
            ));
        }
    }
    Ok(())
}

fn parse_or(t: &Tokens, pos: &mut usize) -> Result<Expr, (usize, String)> {
    let mut left = parse_and(t, pos)?;
    while t.get(*pos).is_some_and(|(_, s)| s == "or") {
        *pos += 1;
        left = Expr::Or(Box::new(left), Box::new(parse_and(t, pos)?));
    }
    Ok(left)
}

fn parse_and(t: &Tokens, pos: &mut usize) -> Result<Expr, (usize, String)> {
    let mut left = parse_term(t, pos)?;
    while t.get(*pos).is_some_and(|(_, s)| s == "and") {
        *pos += 1;
        left = Expr::And(Box::new(left), Box::new(parse_term(t, pos)?));
    }
    Ok(left)
}

fn parse_term(t: &Tokens, pos: &mut usize) -> Result<Expr, (usize, String)> {
    let end = t.last().map_or(0, |(a, s)| a + s.len());
    let Some((at, tok)) = t.get(*pos) else {
        return Err((
            end,
            "expected a comparison like `error_ratio > 0.05`".into(),
        ));
    };
    if tok == "(" {
        *pos += 1;
        let e = parse_or(t, pos)?;
        return match t.get(*pos) {
            Some((_, s)) if s == ")" => {
                *pos += 1;
                Ok(e)
            }
            _ => Err((*at, "`(` is never closed".into())),
        };
    }
    if window_metric(tok).is_none() {
        let names = WINDOW_METRICS.iter().map(|m| m.name);
        let hint = super::error::did_you_mean(tok, names).map_or_else(
            || format!("one of {}", window_metric_names(false)),
            |m| format!("did you mean `{m}`?"),
        );
        return Err((*at, format!("`{tok}` is not a window metric ({hint})")));
    }
    let op = match t.get(*pos + 1) {
        Some((_, o)) if [">", ">=", "<", "<=", "==", "!="].contains(&o.as_str()) => o.clone(),
        Some((a, o)) => {
            return Err((
                *a,
                format!("expected a comparison (> >= < <= == !=), found `{o}`"),
            ));
        }
        None => return Err((end, "expected a comparison after the metric".into())),
    };
    let value = match t.get(*pos + 2) {
        Some((a, v)) => v
            .parse::<f64>()
            .map_err(|_| (*a, format!("`{v}` is not a number")))?,
        None => return Err((end, "expected a number after the comparison".into())),
    };
    *pos += 3;
    Ok(Expr::Cmp {
        metric: tok.clone(),
        op,
        value,
    })
}

/// A validated alert rule.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub name: String,
    pub selector: Selector,
    pub expr: Expr,
    pub expr_text: String,
    pub for_ns: i64,
    pub keep_firing_for_ns: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

pub fn compile(doc: &AlertDocument, file: &str) -> Result<AlertRule, Vec<RuleError>> {
    let name = doc.metadata.name.value.trim().to_string();
    let mut errors = Vec::new();
    let err = |errors: &mut Vec<RuleError>, at: serde_saphyr::Location, m: String| {
        errors.push(RuleError::at(file, at, Some(&name), m))
    };
    if doc.api_version.value != super::policy::API_VERSION {
        err(
            &mut errors,
            doc.api_version.referenced,
            format!(
                "apiVersion `{}` is not supported (use `vane/v1`)",
                doc.api_version.value
            ),
        );
    }
    let expr = match parse_expr(&doc.spec.expr.value) {
        Ok(e) => Some(e),
        Err((at, m)) => {
            err(
                &mut errors,
                doc.spec.expr.referenced,
                format!("expr, at offset {at}: {m}"),
            );
            None
        }
    };
    let mut dur = |d: &Option<Spanned<String>>, what: &str| match d {
        None => 0,
        Some(s) => match parse_duration(&s.value) {
            Ok(v) => v.as_nanos().min(i64::MAX as u128) as i64,
            Err(m) => {
                errors.push(RuleError::at(
                    file,
                    s.referenced,
                    Some(&name),
                    format!("{what}: {m}"),
                ));
                0
            }
        },
    };
    let for_ns = dur(&doc.spec.for_, "for");
    let keep_firing_for_ns = dur(&doc.spec.keep_firing_for, "keepFiringFor");
    let (selector, bad) = Selector::compile(&doc.spec.selector);
    for (n, message) in bad {
        err(&mut errors, n.referenced, message);
    }
    match expr {
        Some(expr) if errors.is_empty() => Ok(AlertRule {
            name,
            selector,
            expr,
            expr_text: doc.spec.expr.value.clone(),
            for_ns,
            keep_firing_for_ns,
            labels: doc.spec.labels.clone(),
            annotations: doc.spec.annotations.clone(),
        }),
        _ => Err(errors),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Tracked {
    active_at: Option<i64>,
    firing: bool,
    /// While firing: since when the condition has not held (keepFiringFor).
    false_since: Option<i64>,
}

/// Evaluates alert rules on closed windows; state per (rule, app).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Alerter {
    #[serde(skip)]
    rules: Vec<AlertRule>,
    state: BTreeMap<String, BTreeMap<String, Tracked>>,
}

/// `{{ $value }}` to four significant digits (a ratio is `0.381`, not
/// `0.38095238095238093`); `| humanizePercentage` as a percentage (`38.1%`)
/// and `| humanize` with SI prefixes (`12.3k`), as in Prometheus templates.
/// `None` for a filter it does not know (the template is left as written).
fn value_text(value: Option<f64>, filter: Option<&str>) -> Option<String> {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return Some("NaN".to_string());
    };
    match filter {
        None => Some(significant(v)),
        Some("humanizePercentage") => Some(format!("{}%", significant(v * 100.0))),
        Some("humanize") => {
            let (scaled, prefix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
                .into_iter()
                .find(|(f, _)| v.abs() >= *f)
                .map_or((v, ""), |(f, p)| (v / f, p));
            Some(format!("{}{prefix}", significant(scaled)))
        }
        Some(_) => None,
    }
}

/// Four significant digits, trailing zeros dropped.
fn significant(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 9) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn render(template: &str, labels: &BTreeMap<String, String>, value: Option<f64>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = rest[i + 2..i + j].trim();
        let (head, filter) = match inner.split_once('|') {
            Some((h, f)) => (h.trim(), Some(f.trim())),
            None => (inner, None),
        };
        if head == "$value"
            && let Some(text) = value_text(value, filter)
        {
            out.push_str(&text);
        } else if let Some(k) = inner.strip_prefix("$labels.") {
            out.push_str(labels.get(k).map_or("", String::as_str));
        } else {
            out.push_str(&rest[i..i + j + 2]);
        }
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    out
}

impl Alerter {
    pub fn new(rules: Vec<AlertRule>) -> Self {
        Alerter {
            rules,
            state: BTreeMap::new(),
        }
    }

    /// The state of `rule` for `app` now: "pending", "firing", or `None` (inactive).
    pub fn current(&self, rule: &str, app: &str) -> Option<&'static str> {
        let s = self.state.get(rule)?.get(app)?;
        s.active_at?;
        Some(if s.firing { "firing" } else { "pending" })
    }

    pub fn rule_names(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.name.clone()).collect()
    }

    /// A new rule set (hot reload): state of rules that remain is kept, that
    /// of rules removed is forgotten (their alerts stop with them).
    pub fn set_rules(&mut self, rules: Vec<AlertRule>) {
        self.state
            .retain(|name, _| rules.iter().any(|r| &r.name == name));
        self.rules = rules;
    }

    /// Active alerts now: (rule, app, state, since) — state "pending" or
    /// "firing", since as Unix nanoseconds.
    pub fn active(&self) -> Vec<(&str, &str, &'static str, i64)> {
        let mut out = Vec::new();
        for (rule, apps) in &self.state {
            for (app, t) in apps {
                if let Some(at) = t.active_at {
                    let state = if t.firing { "firing" } else { "pending" };
                    out.push((rule.as_str(), app.as_str(), state, at));
                }
            }
        }
        out
    }

    /// Restores state saved in a checkpoint, keeping the current rules.
    pub fn restore(&mut self, saved: Alerter) {
        self.state = saved.state;
    }

    /// Evaluates every rule on the app rows of the window ending at `now_ns`.
    /// Apps without a row count as not matching (their alerts resolve).
    pub fn on_window(&mut self, now_ns: i64, rows: &[WindowStats], out: &mut Vec<AlertEvent>) {
        self.on_window_of(now_ns, rows, &|_| true, out);
    }

    /// Like [`Alerter::on_window`], for the rows of the apps `in_scope`
    /// says these rows speak for (one partition's, when windows close per
    /// partition): tracked apps outside it are left as they are.
    pub fn on_window_of(
        &mut self,
        now_ns: i64,
        rows: &[WindowStats],
        in_scope: &dyn Fn(&str) -> bool,
        out: &mut Vec<AlertEvent>,
    ) {
        for rule in &self.rules {
            let states = self.state.entry(rule.name.clone()).or_default();
            let apps: Vec<&WindowStats> = rows
                .iter()
                .filter(|r| {
                    r.instance.is_none()
                        && rule
                            .selector
                            .matches(&r.app, r.name.as_deref(), &Default::default())
                })
                .collect();
            // A set: `contains` on a list was O(apps × alerts) per window.
            let mut seen = std::collections::HashSet::with_capacity(apps.len());
            for w in &apps {
                seen.insert(w.app.as_str());
                let holds = rule.expr.holds(w);
                // Only apps whose condition holds or that are tracked get
                // state (and an allocation): most apps are quiet.
                if !holds && !states.contains_key(&w.app) {
                    continue;
                }
                let value = rule.expr.value(w);
                let s = states.entry(w.app.clone()).or_default();
                step(
                    rule,
                    s,
                    holds,
                    now_ns,
                    &w.app,
                    w.name.as_deref(),
                    value,
                    out,
                );
            }
            // Tracked apps without a row: the condition does not hold.
            for (app, s) in states
                .iter_mut()
                .filter(|(a, _)| !seen.contains(a.as_str()) && in_scope(a))
            {
                step(rule, s, false, now_ns, app, None, None, out);
            }
            states.retain(|_, s| s.active_at.is_some());
        }
    }
}

/// A record's time: whole seconds, as written.
fn whole_seconds(ns: i64) -> Timestamp {
    Timestamp::from_secs(ns.div_euclid(NANOS_PER_SEC))
}

#[allow(clippy::too_many_arguments)]
fn step(
    rule: &AlertRule,
    s: &mut Tracked,
    holds: bool,
    now: i64,
    app: &str,
    name: Option<&str>,
    value: Option<f64>,
    out: &mut Vec<AlertEvent>,
) {
    let event = |state: AlertState, active_at: i64| {
        let mut labels = rule.labels.clone();
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("app".into(), app.to_string());
        if let Some(n) = name {
            labels.insert("app_name".into(), n.to_string());
        }
        let annotations = rule
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), render(v, &labels, value)))
            .collect();
        AlertEvent {
            time: whole_seconds(now),
            alertname: rule.name.clone(),
            app: app.to_string(),
            state,
            labels,
            annotations,
            value,
            active_at: whole_seconds(active_at),
        }
    };
    if holds {
        s.false_since = None;
        let active_at = *s.active_at.get_or_insert(now);
        if !s.firing && now - active_at >= rule.for_ns {
            s.firing = true;
            out.push(event(AlertState::Firing, active_at));
        } else if !s.firing && active_at == now {
            out.push(event(AlertState::Pending, active_at));
        }
        return;
    }
    let Some(active_at) = s.active_at else { return };
    if !s.firing {
        // Pending that stopped holding: back to inactive, nothing was sent.
        *s = Tracked::default();
        return;
    }
    let since = *s.false_since.get_or_insert(now);
    if now - since >= rule.keep_firing_for_ns {
        out.push(event(AlertState::Resolved, active_at));
        *s = Tracked::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expression_too_deep_or_too_long_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}rps > 1{}", "(".repeat(10_000), ")".repeat(10_000));
        let (at, e) = parse_expr(&deep).unwrap_err();
        assert!(e.contains("nest deeper than 32"), "{e}");
        assert_eq!(at, 32);
        let long = vec!["rps > 1"; 100_000].join(" and ");
        let (_, e) = parse_expr(&long).unwrap_err();
        assert!(e.contains("more than 256 comparisons"), "{e}");
        let fine = format!("{}rps > 1{}", "(".repeat(32), ")".repeat(32));
        assert!(parse_expr(&fine).is_ok());
    }

    #[test]
    fn expressions() {
        let e = parse_expr("error_ratio > 0.05 and rps > 1 or (p99_ms >= 500)").unwrap();
        let w = WindowStats {
            error_ratio: 0.1,
            rps: 2.0,
            ..WindowStats::empty("a")
        };
        assert!(e.holds(&w));
        assert_eq!(e.value(&w), Some(0.1));
        assert!(!e.holds(&WindowStats {
            error_ratio: 0.1,
            rps: 0.5,
            ..WindowStats::empty("a")
        }));
        assert_eq!(
            parse_expr("eror_ratio > 1").unwrap_err().1,
            "`eror_ratio` is not a window metric (did you mean `error_ratio`?)"
        );
        assert_eq!(
            parse_expr("rps >").unwrap_err().1,
            "expected a number after the comparison"
        );
        assert_eq!(parse_expr("(rps > 1").unwrap_err().0, 0);
        assert!(parse_expr("rps > 1 rps").is_err());
    }

    #[test]
    fn templates() {
        let labels = [("app".to_string(), "web".to_string())].into();
        assert_eq!(
            render("{{ $labels.app }} at {{ $value }}", &labels, Some(0.25)),
            "web at 0.25"
        );
        let ratio = Some(0.380_952_380_952_380_93);
        assert_eq!(render("{{ $value }}", &labels, ratio), "0.381");
        assert_eq!(
            render("{{ $value | humanizePercentage }} fail", &labels, ratio),
            "38.1% fail"
        );
        assert_eq!(
            render("{{$value|humanize}}", &labels, Some(12_345.0)),
            "12.35k"
        );
        assert_eq!(
            render("{{ $value }}", &labels, Some(1_234_567.0)),
            "1234567"
        );
        assert_eq!(render("{{ $value }}", &labels, None), "NaN");
        // An unknown filter stays as written.
        assert_eq!(
            render("{{ $value | title }}", &labels, Some(1.0)),
            "{{ $value | title }}"
        );
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use crate::rules::load::load_str_all;

    const S: i64 = NANOS_PER_SEC;

    fn alerter(spec: &str) -> Alerter {
        let yaml = format!(
            "apiVersion: vane/v1\nkind: AlertRule\nmetadata: {{name: HighErrors}}\nspec:\n{spec}"
        );
        let (_, alerts) = load_str_all(&yaml, "a.yaml").unwrap_or_else(|e| panic!("{e:?}"));
        Alerter::new(alerts)
    }

    fn run(a: &mut Alerter, ratios: &[Option<f64>]) -> Vec<(i64, AlertState)> {
        let mut out = Vec::new();
        let mut events = Vec::new();
        for (i, r) in ratios.iter().enumerate() {
            let now = (i as i64 + 1) * 10 * S;
            let rows: Vec<WindowStats> = r
                .iter()
                .map(|r| WindowStats {
                    error_ratio: *r,
                    rps: 5.0,
                    ..WindowStats::empty("web")
                })
                .collect();
            a.on_window(now, &rows, &mut out);
            events.extend(out.drain(..).map(|e| (now / S, e.state)));
        }
        events
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let mut a = alerter(
            "  expr: error_ratio > 0.05\n  for: 20s\n  labels: {severity: page}\n  annotations: {summary: \"{{ $labels.app }} fails {{ $value }}\"}\n",
        );
        let events = run(
            &mut a,
            &[Some(0.0), Some(0.1), Some(0.1), Some(0.1), Some(0.0)],
        );
        assert_eq!(
            events,
            vec![
                (20, AlertState::Pending),
                (40, AlertState::Firing),
                (50, AlertState::Resolved)
            ]
        );
    }

    #[test]
    fn pending_that_stops_holding_sends_nothing_more() {
        let mut a = alerter("  expr: error_ratio > 0.05\n  for: 30s\n");
        let events = run(&mut a, &[Some(0.1), Some(0.1), Some(0.0), Some(0.0)]);
        assert_eq!(events, vec![(10, AlertState::Pending)]);
    }

    #[test]
    fn keep_firing_for_bridges_short_gaps_and_missing_rows_resolve() {
        let mut a = alerter("  expr: error_ratio > 0.05\n  keepFiringFor: 20s\n");
        let events = run(
            &mut a,
            &[Some(0.1), Some(0.0), Some(0.1), Some(0.0), Some(0.0), None],
        );
        // Fires at once (no `for`); the gap at 20 s is bridged; resolved 20 s after it stopped at 40 s.
        assert_eq!(
            events,
            vec![(10, AlertState::Firing), (60, AlertState::Resolved)]
        );
        let mut a = alerter("  expr: error_ratio > 0.05\n");
        assert_eq!(
            run(&mut a, &[Some(0.1), None]),
            vec![(10, AlertState::Firing), (20, AlertState::Resolved)]
        );
    }

    #[test]
    fn labels_and_annotations() {
        let mut a = alerter(
            "  expr: error_ratio > 0.05 and rps > 1\n  labels: {severity: page}\n  annotations: {summary: \"{{ $labels.app }} fails {{ $value }}\"}\n",
        );
        let mut out = Vec::new();
        a.on_window(
            10 * S,
            &[WindowStats {
                error_ratio: 0.25,
                rps: 5.0,
                ..WindowStats::empty("web")
            }],
            &mut out,
        );
        let e = &out[0];
        assert_eq!(e.labels.get("severity").map(String::as_str), Some("page"));
        assert_eq!(
            e.labels.get("alertname").map(String::as_str),
            Some("HighErrors")
        );
        assert_eq!(
            e.annotations.get("summary").map(String::as_str),
            Some("web fails 0.25")
        );
    }

    #[test]
    fn bad_expressions_are_located() {
        let yaml = "apiVersion: vane/v1\nkind: AlertRule\nmetadata: {name: X}\nspec:\n  expr: eror_ratio > 0.05\n";
        let e = load_str_all(yaml, "a.yaml").unwrap_err();
        assert!(e[0].to_string().starts_with("a.yaml:5:9: policy \"X\": expr, at offset 0: `eror_ratio` is not a window metric (did you mean `error_ratio`?)"), "{}", e[0]);
    }
}
