//! `vane test`: rule unit tests in YAML, in the spirit of `promtool test rules`.
//!
//! ```yaml
//! rules: [web.yaml]            # relative to the test file
//! window: 10s
//! tests:
//!   - name: a spike is met within one window
//!     app: web.apps.example.com
//!     instances: 3
//!     series:
//!       rps: "6x6 30x6 6x30"     # per window; `VxN` repeats, `a+bxN` counts, `_` no data
//!     expect:
//!       - {at: 70s, desired: 15, direction: up, reason: [burst]}
//! ```

use crate::model::metrics::{window_metric, window_metric_names};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::alert::{AlertEvent, AlertState, Alerter};
use super::decider::Decider;
use super::error::{RuleError, hint_for_serde_message};
use super::{Decision, Direction, load_paths};
use crate::model::WindowStats;
use crate::time::parse_duration;
use crate::time::{NANOS_PER_SEC, Timestamp};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default = "ten_seconds")]
    window: String,
    /// Event time of the first window's start (RFC 3339); schedules see this
    /// calendar. Default 1970-01-01T00:00:00Z.
    #[serde(default)]
    start: Option<Spanned<String>>,
    tests: Vec<TestCase>,
}

fn ten_seconds() -> String {
    "10s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    app: String,
    #[serde(default)]
    instances: Option<u32>,
    /// The app's labels, for policies that select by label.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    series: BTreeMap<String, Spanned<String>>,
    expect: Vec<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    at: Spanned<String>,
    /// Expect an alert transition of this alert rule (instead of a decision).
    #[serde(default)]
    alert: Option<String>,
    /// The alert at `at`: `pending`, `firing` or `inactive` (its state then, as
    /// promtool's `exp_alerts`), or `resolved` / `none` (a transition, or none).
    #[serde(default)]
    state: Option<ExpectState>,
    #[serde(default)]
    desired: Option<u32>,
    #[serde(default)]
    direction: Option<Direction>,
    /// Fragments the decision's sentence must contain.
    #[serde(default)]
    reason: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ExpectState {
    Pending,
    Firing,
    Resolved,
    /// No transition at that time.
    None,
    /// Neither pending nor firing at that time.
    Inactive,
}

impl ExpectState {
    /// `transition`: what happened at that time; `current`: the state after it.
    fn matches(self, transition: Option<AlertState>, current: Option<&str>) -> bool {
        match self {
            ExpectState::Pending => current == Some("pending"),
            ExpectState::Firing => current == Some("firing"),
            ExpectState::Inactive => current.is_none(),
            ExpectState::Resolved => transition == Some(AlertState::Resolved),
            ExpectState::None => transition.is_none(),
        }
    }
}

/// The outcome of one test case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub file: String,
    pub name: String,
    pub failures: Vec<String>,
}

/// Expands the series notation into one value per window (`None`: no data).
pub fn expand_series(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        let (head, times) =
            match tok.rsplit_once('x') {
                Some((h, n)) => (
                    h,
                    Some(n.parse::<usize>().map_err(|_| {
                        format!("`{tok}`: the count after `x` must be a whole number")
                    })?),
                ),
                None => (tok, None),
            };
        if times.is_some_and(|n| n > 100_000) {
            return Err(format!("`{tok}`: at most 100000 windows"));
        }
        if head == "_" {
            out.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
            continue;
        }
        // `a+b` / `a-b` with a count: a, a+b, ..., a+n·b (n+1 values, as promtool).
        let split = head
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map(|(i, _)| i);
        match (split, times) {
            (Some(i), Some(n)) => {
                let a: f64 = head[..i]
                    .parse()
                    .map_err(|_| format!("`{tok}`: `{}` is not a number", &head[..i]))?;
                let b: f64 = head[i..]
                    .parse()
                    .map_err(|_| format!("`{tok}`: `{}` is not a number", &head[i..]))?;
                out.extend((0..=n).map(|k| Some(a + b * k as f64)));
            }
            _ => {
                let v: f64 = head
                    .parse()
                    .map_err(|_| format!("`{tok}` is not a number, `VxN`, `a+bxN` or `_`"))?;
                out.extend(std::iter::repeat_n(Some(v), times.unwrap_or(1)));
            }
        }
    }
    Ok(out)
}

fn window_row(app: &str, start_ns: i64, len_ns: i64, values: &BTreeMap<&str, f64>) -> WindowStats {
    let mut w = WindowStats {
        start: Timestamp::from_nanos(start_ns),
        end: Timestamp::from_nanos(start_ns.saturating_add(len_ns)),
        ..WindowStats::empty(app)
    };
    for (name, v) in values {
        if let Some(m) = window_metric(name) {
            m.write(&mut w, *v);
        }
    }
    if !values.contains_key("requests") {
        let secs = len_ns as f64 / NANOS_PER_SEC as f64;
        w.requests = (w.rps * secs).round().max(0.0) as u64;
    }
    w
}

/// Runs one test file; errors in the file itself are `RuleError`s.
pub fn run_file(path: &Path) -> Result<Vec<CaseResult>, Vec<RuleError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![RuleError::at(
            &file,
            Location::UNKNOWN,
            None,
            format!("cannot read: {e}"),
        )]
    })?;
    let tf: TestFile = serde_saphyr::from_str(&text).map_err(|e| {
        let message = e.without_snippet().to_string();
        let message = message.lines().next().unwrap_or_default().to_string();
        let mut err = RuleError::at(
            &file,
            e.location().unwrap_or(Location::UNKNOWN),
            None,
            message.clone(),
        );
        err.hint = hint_for_serde_message(&message);
        vec![err]
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let rule_paths: Vec<PathBuf> = if tf.rules.is_empty() {
        vec![dir.to_path_buf()]
    } else {
        tf.rules.iter().map(|r| dir.join(r)).collect()
    };
    let rules = load_paths(&rule_paths)?;
    let window_ns = parse_duration(&tf.window)
        .map_err(|e| {
            vec![RuleError::at(
                &file,
                Location::UNKNOWN,
                None,
                format!("window: {e}"),
            )]
        })?
        .as_nanos() as i64;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let origin_ns = match &tf.start {
        None => 0,
        Some(s) => match chrono::DateTime::parse_from_rfc3339(&s.value)
            .ok()
            .and_then(|d| d.timestamp_nanos_opt())
        {
            Some(ns) => ns.div_euclid(window_ns.max(1)) * window_ns.max(1),
            None => {
                errors.push(RuleError::at(
                    &file,
                    s.referenced,
                    None,
                    format!("start: `{}` is not an RFC 3339 time", s.value),
                ));
                0
            }
        },
    };
    for case in &tf.tests {
        let mut series = BTreeMap::new();
        for (k, v) in &case.series {
            if !window_metric(k).is_some_and(|m| m.writable()) {
                errors.push(
                    RuleError::at(
                        &file,
                        v.referenced,
                        None,
                        format!("series `{k}` is not a window metric"),
                    )
                    .hint(format!("one of {}", window_metric_names(true))),
                );
                continue;
            }
            match expand_series(&v.value) {
                Ok(vals) => {
                    series.insert(k.as_str(), vals);
                }
                Err(e) => errors.push(RuleError::at(&file, v.referenced, None, e)),
            }
        }
        let mut at_ns = Vec::new();
        for e in &case.expect {
            match parse_duration(&e.at.value) {
                Ok(d) => at_ns.push(d.as_nanos() as i64),
                Err(m) => errors.push(RuleError::at(
                    &file,
                    e.at.referenced,
                    None,
                    format!("at: {m}"),
                )),
            }
        }
        if !errors.is_empty() {
            continue;
        }
        let mut decider = Decider::new(rules.clone(), window_ns)
            .with_labels([(case.app.clone(), case.labels.clone())].into());
        let mut alerter = Alerter::new(rules.alerts.clone());
        let mut alerts: Vec<(i64, AlertEvent)> = Vec::new();
        let mut states: Vec<(i64, String, Option<&'static str>)> = Vec::new();
        let mut failures = Vec::new();
        let wants_decisions = case.expect.iter().any(|e| e.alert.is_none());
        if wants_decisions && rules.policy_for(&case.app, None, &case.labels).is_none() {
            failures.push(format!("no policy selects app `{}`", case.app));
        }
        if let Some(n) = case.instances {
            decider.set_instances(&case.app, None, n);
        }
        let windows = series.values().map(Vec::len).max().unwrap_or(0);
        let mut decisions: Vec<(i64, Decision)> = Vec::new();
        for i in 0..windows {
            let start = origin_ns + i as i64 * window_ns;
            let values: BTreeMap<&str, f64> = series
                .iter()
                .filter_map(|(k, v)| v.get(i).copied().flatten().map(|x| (*k, x)))
                .collect();
            let rows = if values.is_empty() {
                Vec::new()
            } else {
                vec![window_row(&case.app, start, window_ns, &values)]
            };
            let mut out = Vec::new();
            decider.on_window(start + window_ns, &rows, &mut out);
            let mut fired = Vec::new();
            alerter.on_window(start + window_ns, &rows, &mut fired);
            alerts.extend(
                fired
                    .into_iter()
                    .filter(|e| e.app == case.app)
                    .map(|e| (start + window_ns - origin_ns, e)),
            );
            for name in alerter.rule_names() {
                let now = alerter.current(&name, &case.app);
                states.push((start + window_ns - origin_ns, name, now));
            }
            decisions.extend(
                out.into_iter()
                    .filter(|d| d.app == case.app)
                    .map(|d| (start + window_ns - origin_ns, d)),
            );
        }
        for (e, at) in case.expect.iter().zip(at_ns) {
            if let Some(name) = &e.alert {
                let got: Vec<AlertState> = alerts
                    .iter()
                    .filter(|(t, a)| *t == at && &a.alertname == name)
                    .map(|(_, a)| a.state)
                    .collect();
                let want = e.state.unwrap_or(ExpectState::None);
                let current = states
                    .iter()
                    .find(|(t, n, _)| *t == at && n == name)
                    .and_then(|(_, _, s)| *s);
                if !want.matches(got.first().copied(), current) {
                    failures.push(format!(
                        "at {}: alert {name} is {} (transition {:?}), want {want:?}",
                        e.at.value,
                        current.unwrap_or("inactive"),
                        got.first()
                    ));
                }
                continue;
            }
            let Some((_, d)) = decisions.iter().find(|(t, _)| *t == at) else {
                failures.push(format!(
                    "at {}: no decision (windows end every {}; the series has {windows})",
                    e.at.value, tf.window
                ));
                continue;
            };
            if let Some(want) = e.desired
                && d.desired != want
            {
                failures.push(format!(
                    "at {}: desired {} (want {want}): {}",
                    e.at.value, d.desired, d.reason
                ));
            }
            if let Some(want) = e.direction
                && d.direction != want
            {
                failures.push(format!(
                    "at {}: direction {:?} (want {want:?}): {}",
                    e.at.value, d.direction, d.reason
                ));
            }
            for frag in &e.reason {
                if !d.reason.contains(frag.as_str()) {
                    failures.push(format!(
                        "at {}: reason lacks `{frag}`: {}",
                        e.at.value, d.reason
                    ));
                }
            }
        }
        results.push(CaseResult {
            file: file.clone(),
            name: case.name.clone(),
            failures,
        });
    }
    if errors.is_empty() {
        Ok(results)
    } else {
        Err(errors)
    }
}

/// Test files under `paths`: `*.test.yaml` files, or folders searched for them.
pub fn test_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else {
            for e in std::fs::read_dir(p)? {
                let f = e?.path();
                if f.is_file() && super::load::is_test_file(&f) {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_notation() {
        assert_eq!(
            expand_series("1x2 5").unwrap(),
            vec![Some(1.0), Some(1.0), Some(5.0)]
        );
        assert_eq!(
            expand_series("10+5x2 _x2").unwrap(),
            vec![Some(10.0), Some(15.0), Some(20.0), None, None]
        );
        assert_eq!(
            expand_series("3-1x2").unwrap(),
            vec![Some(3.0), Some(2.0), Some(1.0)]
        );
        assert!(expand_series("abc").is_err());
        assert!(expand_series("1xq").is_err());
    }
}
