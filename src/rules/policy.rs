//! A validated policy: every value checked, durations in nanoseconds, globs and
//! cron expressions parsed. Built only by [`compile`], which collects every
//! problem of a document rather than stopping at the first.

use std::str::FromStr;

use serde_saphyr::Spanned;

use super::error::{RuleError, did_you_mean};
use super::model::{Algorithm, DirectionBehavior, Metric, RuleDocument};
use super::schedule::Schedule;
pub use super::selector::Selector;
use crate::time::parse_duration;

pub const API_VERSION: &str = "vane/v1";
pub const KINDS: [&str; 3] = ["ScalingPolicy", "AlertRule", "HealthRule"];

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub file: String,
    pub selector: Selector,
    pub min: u32,
    pub max: u32,
    pub algorithm: Algorithm,
    pub targets: Vec<(Metric, f64)>,
    pub tolerance: f64,
    pub steps: Vec<Step>,
    pub up: Limits,
    pub down: Limits,
    pub cooldown_ns: i64,
    pub burst_factor: Option<f64>,
    pub schedules: Vec<Schedule>,
    pub fallback: Option<Fallback>,
    /// The Knative decider's spec, for `algorithm: kpa`.
    pub kpa: Option<super::kpa::DeciderSpec>,
    /// Decide and record, carry nothing out.
    pub paused: bool,
    /// `spec.predictive`: forecast-driven floors.
    pub predictive: Option<Predictive>,
}

/// How a policy uses the forecast of its app's demand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predictive {
    /// The floor is raised (`true`) or only recorded (`forecast-only`).
    pub enabled: bool,
    pub settings: crate::forecast::ForecastSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Adjust {
    By(i64),
    Percent(f64),
}

impl Adjust {
    pub fn apply(self, current: u32) -> u32 {
        let next = match self {
            Adjust::By(n) => i64::from(current) + n,
            Adjust::Percent(p) => {
                let delta = f64::from(current) * p / 100.0;
                // Round away from zero so +10% of 3 still adds one.
                i64::from(current)
                    + if delta >= 0.0 {
                        delta.ceil() as i64
                    } else {
                        delta.floor() as i64
                    }
            }
        };
        next.clamp(0, i64::from(u32::MAX)) as u32
    }

    pub fn text(self) -> String {
        match self {
            Adjust::By(n) => format!("{n:+}"),
            Adjust::Percent(p) => format!("{p:+}%"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub metric: Metric,
    pub op: Op,
    pub threshold: f64,
    pub breach_ns: i64,
    pub adjust: Adjust,
}

/// Stabilization and rate limit for one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub stabilization_ns: i64,
    pub max_instances: Option<u32>,
    pub max_percent: Option<f64>,
    pub period_ns: i64,
    /// Scale-up: size for the trend-extrapolated load this far ahead (0: off).
    pub lookahead_ns: i64,
    /// Scale-down: a step smaller than this percentage of the current count
    /// (and at least one instance) waits; a slowly fading load then comes
    /// down in a few steps instead of one instance per window.
    pub min_percent: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    pub after_windows: u32,
    pub instances: u32,
}

const NS: i64 = 1_000_000_000;

/// Collects errors for one document.
struct Check<'a> {
    file: &'a str,
    policy: Option<String>,
    errors: Vec<RuleError>,
}

impl Check<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.errors.push(RuleError::at(
            self.file,
            at.referenced,
            self.policy.as_deref(),
            message,
        ));
    }

    fn err_hint<T>(
        &mut self,
        at: &Spanned<T>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let e = RuleError::at(self.file, at.referenced, self.policy.as_deref(), message).hint(hint);
        self.errors.push(e);
    }

    fn duration(&mut self, s: &Spanned<String>, what: &str) -> i64 {
        match parse_duration(&s.value) {
            Ok(d) if d.as_secs() <= 7 * 86_400 => d.as_nanos() as i64,
            Ok(_) => {
                self.err(s, format!("{what} must be at most 7d"));
                0
            }
            Err(e) => {
                self.err_hint(
                    s,
                    format!("{what}: {e}"),
                    "durations look like `30s`, `5m`, `1h`",
                );
                0
            }
        }
    }

    fn positive(&mut self, v: &Spanned<f64>, what: &str) -> f64 {
        if !(v.value.is_finite() && v.value > 0.0) {
            self.err(
                v,
                format!("{what} must be a positive number, not {}", v.value),
            );
        }
        v.value
    }

    fn predictive(
        &mut self,
        p: &super::model::PredictiveSettings,
        lookahead_ns: i64,
    ) -> Predictive {
        let mut settings = crate::forecast::ForecastSettings {
            lead_ns: lookahead_ns.saturating_add(60 * NS),
            ..Default::default()
        };
        let enabled = match p.mode.as_ref().map(|m| m.value.as_str()) {
            None | Some("forecast-only") => false,
            Some("enabled") => true,
            Some(other) => {
                if let Some(m) = &p.mode {
                    self.err(
                        m,
                        format!("predictive.mode `{other}`: use `forecast-only` or `enabled`"),
                    );
                }
                false
            }
        };
        if let Some(l) = &p.lead_time {
            settings.lead_ns = self.duration(l, "predictive.leadTime");
            if settings.lead_ns > 3_600 * NS {
                self.err(
                    l,
                    "predictive.leadTime must be at most 1h (the forecast is refitted hourly)",
                );
            }
        }
        if let Some(r) = &p.refresh {
            settings.refresh_ns = self.duration(r, "predictive.refresh");
            if !(60 * NS..=86_400 * NS).contains(&settings.refresh_ns) {
                self.err(r, "predictive.refresh must be from 1m to 24h");
            }
        }
        if let Some(e) = &p.max_error {
            if !(e.value > 0.0 && e.value <= 1.0) {
                self.err(
                    e,
                    "predictive.maxError is a wMAPE from 0 to 1 (0.25 = 25 %)",
                );
            }
            settings.max_error = e.value;
        }
        Predictive { enabled, settings }
    }

    fn limits(
        &mut self,
        d: Option<&DirectionBehavior>,
        default_stabilization_s: i64,
        dir: &str,
    ) -> Limits {
        let mut l = Limits {
            stabilization_ns: default_stabilization_s * NS,
            max_instances: None,
            max_percent: None,
            period_ns: 60 * NS,
            lookahead_ns: 0,
            min_percent: None,
        };
        let Some(d) = d else { return l };
        if let Some(la) = &d.lookahead {
            if dir == "scaleDown" {
                self.err(
                    la,
                    "lookahead applies to scaleUp only (Vane never scales down on a forecast)",
                );
            } else {
                l.lookahead_ns = self.duration(la, &format!("{dir}.lookahead"));
                if l.lookahead_ns > 900 * NS {
                    self.err(
                        la,
                        format!(
                            "{dir}.lookahead must be at most 15m (a trend says little further out)"
                        ),
                    );
                }
            }
        }
        if let Some(s) = &d.stabilization {
            l.stabilization_ns = self.duration(s, &format!("{dir}.stabilization"));
        }
        if let Some(p) = &d.period {
            l.period_ns = self.duration(p, &format!("{dir}.period"));
            if l.period_ns == 0 {
                self.err(p, format!("{dir}.period must be more than 0"));
            }
        }
        if let Some(m) = &d.max_instances {
            if m.value == 0 {
                self.err(
                    m,
                    format!("{dir}.maxInstances must be at least 1 (omit it for no limit)"),
                );
            }
            l.max_instances = Some(m.value);
        }
        if let Some(p) = &d.min_percent {
            if dir == "scaleUp" {
                self.err(
                    p,
                    "minPercent applies to scaleDown only (a scale-up is never held back for being small)",
                );
            } else if !(0.0..100.0).contains(&p.value) {
                self.err(p, format!("{dir}.minPercent must be from 0 to under 100"));
            } else {
                l.min_percent = Some(p.value);
            }
        }
        if let Some(p) = &d.max_percent {
            l.max_percent = Some(self.positive(p, &format!("{dir}.maxPercent")));
        }
        l
    }
}

fn parse_adjust(s: &str) -> Option<Adjust> {
    let s = s.trim();
    let sign = match s.as_bytes().first()? {
        b'+' => 1.0,
        b'-' => -1.0,
        _ => return None,
    };
    let body = &s[1..];
    if let Some(p) = body.strip_suffix('%') {
        let v: f64 = p.parse().ok().filter(|v: &f64| v.is_finite() && *v > 0.0)?;
        Some(Adjust::Percent(sign * v))
    } else {
        let v: u32 = body.parse().ok().filter(|v| *v > 0)?;
        Some(Adjust::By(sign as i64 * i64::from(v)))
    }
}

/// Validates one document into a policy, or returns every problem found.
pub fn compile(doc: &RuleDocument, file: &str) -> Result<Policy, Vec<RuleError>> {
    let mut c = Check {
        file,
        policy: None,
        errors: Vec::new(),
    };
    let name = doc.metadata.name.value.trim().to_string();
    if name.is_empty() {
        c.err(&doc.metadata.name, "metadata.name must not be empty");
    }
    c.policy = Some(name.clone());
    if doc.api_version.value != API_VERSION {
        c.err_hint(
            &doc.api_version,
            format!("apiVersion `{}` is not supported", doc.api_version.value),
            format!("use `{API_VERSION}`"),
        );
    }
    if !KINDS.contains(&doc.kind.value.as_str()) {
        let hint = match did_you_mean(&doc.kind.value, KINDS) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("one of {}", KINDS.join(", ")),
        };
        c.err_hint(
            &doc.kind,
            format!("kind `{}` is not known", doc.kind.value),
            hint,
        );
    }
    let s = &doc.spec;
    let (selector, bad) = Selector::compile(&s.selector);
    for (n, message) in bad {
        c.err(n, message);
    }
    if s.max.value == 0 {
        c.err(&s.max, "max must be at least 1");
    }
    if s.min.value > s.max.value {
        c.err_hint(
            &s.min,
            format!("min ({}) is larger than max ({})", s.min.value, s.max.value),
            "min ≤ max",
        );
    }
    let tolerance = s.tolerance.value;
    if !(0.0..1.0).contains(&tolerance) {
        c.err(
            &s.tolerance,
            format!("tolerance must be at least 0 and below 1, not {tolerance}"),
        );
    }
    let mut targets = Vec::new();
    for t in &s.targets {
        targets.push((t.metric, c.positive(&t.value, "target value")));
    }
    let mut steps = Vec::new();
    for st in &s.steps {
        let op = match st.operator.value.trim() {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            other => {
                c.err_hint(
                    &st.operator,
                    format!("operator `{other}` is not known"),
                    "one of >, >=, <, <=",
                );
                Op::Gt
            }
        };
        let adjust = parse_adjust(&st.adjust.value).unwrap_or_else(|| {
            c.err_hint(
                &st.adjust,
                format!("adjust `{}` is not an adjustment", st.adjust.value),
                "like `+2`, `-1`, `+50%`, `-10%`",
            );
            Adjust::By(0)
        });
        if !st.threshold.value.is_finite() {
            c.err(&st.threshold, "threshold must be a number");
        }
        let breach_ns = c.duration(&st.breach, "for");
        steps.push(Step {
            metric: st.metric,
            op,
            threshold: st.threshold.value,
            breach_ns,
            adjust,
        });
    }
    match s.algorithm {
        Algorithm::TargetTracking | Algorithm::Hpa | Algorithm::Kpa if targets.is_empty() => {
            c.errors.push(RuleError::at(
                file,
                s.min.referenced,
                Some(&name),
                "target tracking needs at least one entry in `targets`",
            ));
        }
        Algorithm::Step if steps.is_empty() => {
            c.errors.push(RuleError::at(
                file,
                s.min.referenced,
                Some(&name),
                "algorithm `step` needs at least one entry in `steps`",
            ));
        }
        _ => {}
    }
    let mut up = c.limits(s.behavior.scale_up.as_ref(), 0, "scaleUp");
    let mut down = c.limits(s.behavior.scale_down.as_ref(), 300, "scaleDown");
    let mut kpa = None;
    match s.algorithm {
        Algorithm::Hpa => {
            // Kubernetes' default behavior, where the policy does not set its own.
            if s.behavior.scale_up.is_none() {
                up = Limits {
                    stabilization_ns: 0,
                    max_instances: Some(4),
                    max_percent: Some(100.0),
                    period_ns: 15 * NS,
                    lookahead_ns: 0,
                    min_percent: None,
                };
            }
            if s.behavior.scale_down.is_none() {
                down = Limits {
                    stabilization_ns: 300 * NS,
                    max_instances: None,
                    max_percent: Some(100.0),
                    period_ns: 15 * NS,
                    lookahead_ns: 0,
                    min_percent: None,
                };
            }
            if let Some(t) = s.targets.iter().find(|t| !t.metric.is_per_instance()) {
                c.err_hint(
                    &t.value,
                    format!(
                        "algorithm `hpa` averages a per-instance metric; `{}` is not one",
                        t.metric.name()
                    ),
                    "use rps_per_instance or concurrency_per_instance",
                );
            }
        }
        Algorithm::Kpa => {
            // The KPA limits and delays itself; Vane's own stabilization and rate limits step aside.
            up = Limits {
                stabilization_ns: 0,
                max_instances: None,
                max_percent: None,
                period_ns: 60 * NS,
                lookahead_ns: 0,
                min_percent: None,
            };
            down = up;
            if s.targets.len() != 1 || !s.targets[0].metric.is_per_instance() {
                c.errors.push(RuleError::at(file, s.min.referenced, Some(&name), "algorithm `kpa` needs exactly one target: rps_per_instance or concurrency_per_instance"));
            }
            let k = s.kpa.clone().unwrap_or_default();
            let mut spec = super::kpa::DeciderSpec {
                reachable: true,
                ..super::kpa::DeciderSpec::default()
            };
            if let Some(t) = targets.first() {
                spec.target_value = t.1;
                spec.total_value = t.1 / 0.75;
            }
            if let Some(v) = &k.panic_threshold {
                spec.panic_threshold = c.positive(v, "kpa.panicThreshold");
            }
            if let Some(v) = &k.max_scale_up_rate {
                spec.max_scale_up_rate = c.positive(v, "kpa.maxScaleUpRate");
            }
            if let Some(v) = &k.max_scale_down_rate {
                spec.max_scale_down_rate = c.positive(v, "kpa.maxScaleDownRate");
            }
            if let Some(v) = &k.target_burst_capacity {
                spec.target_burst_capacity = v.value;
            }
            if let Some(v) = &k.activation_scale {
                spec.activation_scale = v.value as i32;
            }
            if let Some(v) = &k.stable_window {
                spec.stable_window_s = c.duration(v, "kpa.stableWindow") as f64 / NS as f64;
            }
            if let Some(v) = &k.scale_down_delay {
                spec.scale_down_delay_s = c.duration(v, "kpa.scaleDownDelay") as f64 / NS as f64;
            }
            kpa = Some(spec);
        }
        _ => {}
    }
    if s.kpa.is_some() && s.algorithm != Algorithm::Kpa {
        c.errors.push(RuleError::at(
            file,
            s.min.referenced,
            Some(&name),
            "`kpa` settings need `algorithm: kpa`",
        ));
    }
    let cooldown_ns = s
        .behavior
        .cooldown
        .as_ref()
        .map_or(0, |d| c.duration(d, "cooldown"));
    let burst_factor = s.behavior.burst.as_ref().map(|b| {
        if b.factor.value.is_nan() || b.factor.value <= 1.0 {
            c.err(&b.factor, "burst.factor must be more than 1");
        }
        b.factor.value
    });
    let mut schedules = Vec::new();
    for sc in &s.schedules {
        match Schedule::compile(sc, s.min.value, s.max.value) {
            Ok(x) => schedules.push(x),
            Err((at, message, hint)) => {
                let mut e = RuleError::at(file, at, Some(&name), message);
                e.hint = hint;
                c.errors.push(e);
            }
        }
    }
    let fallback = match (&s.missing_data.fallback, &s.missing_data.fallback_after) {
        (Some(n), after) => {
            if n.value > s.max.value || n.value < s.min.value {
                c.err(
                    n,
                    format!(
                        "missingData.fallback ({}) must be within min and max",
                        n.value
                    ),
                );
            }
            Some(Fallback {
                after_windows: after.as_ref().map_or(6, |a| a.value.max(1)),
                instances: n.value,
            })
        }
        (None, Some(a)) => {
            c.err(a, "missingData.fallbackAfter needs missingData.fallback");
            None
        }
        (None, None) => None,
    };
    let predictive = s
        .predictive
        .as_ref()
        .map(|p| c.predictive(p, up.lookahead_ns));
    if predictive.is_some() && !targets.iter().any(|(m, _)| *m == Metric::RpsPerInstance) {
        c.errors.push(RuleError::at(
            file,
            s.min.referenced,
            Some(&name),
            "`predictive` forecasts the request rate: it needs a target on rps_per_instance",
        ));
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(Policy {
        name,
        file: file.to_string(),
        selector,
        min: s.min.value,
        max: s.max.value,
        algorithm: s.algorithm,
        targets,
        tolerance,
        steps,
        up,
        down,
        cooldown_ns,
        burst_factor,
        schedules,
        fallback,
        kpa,
        paused: s.paused,
        predictive,
    })
}

impl FromStr for Adjust {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_adjust(s).ok_or_else(|| format!("`{s}` is not an adjustment like `+2` or `-10%`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustments() {
        assert_eq!("+2".parse::<Adjust>().unwrap().apply(3), 5);
        assert_eq!("-1".parse::<Adjust>().unwrap().apply(3), 2);
        assert_eq!(
            "+10%".parse::<Adjust>().unwrap().apply(3),
            4,
            "rounds away from zero"
        );
        assert_eq!("-50%".parse::<Adjust>().unwrap().apply(3), 1);
        assert_eq!("-5".parse::<Adjust>().unwrap().apply(3), 0);
        assert!("2".parse::<Adjust>().is_err());
        assert!("+0".parse::<Adjust>().is_err());
    }
}
