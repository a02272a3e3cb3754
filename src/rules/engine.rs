//! The decision engine: pure, deterministic, time passed in. The same code
//! decides in `vane run`, in `vane test` and in backtests.

use crate::model::metrics::window_metric;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::hpa;
use super::kpa::Kpa;
use super::model::{Algorithm, Metric};
use super::policy::{Limits, Policy};
use crate::forecast::Outlook;
use crate::model::ForecastUse;
use crate::model::WindowStats;
use crate::model::{Constraint, Decision, Direction, Recommendation};
use crate::time::{NANOS_PER_SEC, Timestamp};

/// What the engine remembers per (policy, app) between decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppState {
    /// Recent recommendations (time, count), for stabilization.
    recommendations: VecDeque<(i64, u32)>,
    /// Recent changes (time, from, to), for rate limits.
    changes: VecDeque<(i64, u32, u32)>,
    last_change_ns: Option<i64>,
    /// Per step rule: since when its condition has held.
    breach_since: Vec<Option<i64>>,
    /// Consecutive windows without data.
    missing_windows: u32,
    /// `algorithm: kpa`: the decider's state and the recent load (time, value)
    /// for its stable window.
    #[serde(default)]
    kpa: Option<Kpa>,
    #[serde(default)]
    load: VecDeque<(i64, f64)>,
    /// `scaleUp.lookahead`: recent total load (time, rps or concurrency) for the trend.
    #[serde(default)]
    trend: VecDeque<(i64, f64)>,
    /// Recommendations a forecast raised: (time, what the load as seen asked
    /// for). Once the lookahead has passed, scale-down stabilization counts
    /// the load that came, not the one forecast, so a wrong guess is
    /// returned without waiting out the stabilization.
    #[serde(default)]
    forecasts: VecDeque<(i64, u32)>,
}

/// One evaluation's input.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub app: &'a str,
    /// The app's readable name, when its id is opaque (used in the sentence).
    pub name: Option<&'a str>,
    /// End of the window just closed (event time, ns).
    pub now_ns: i64,
    pub window_ns: i64,
    /// The app-level window, or `None` when the app had no window (no data).
    pub window: Option<&'a WindowStats>,
    /// The app's instance rows of the same window (for `algorithm: hpa`).
    pub instances: &'a [WindowStats],
    /// Instances running now, as the orchestrator reports them.
    pub current: u32,
    /// `spec.predictive`: what the app's forecaster says about `now_ns` +
    /// the policy's lead time (`None`: no forecaster for it yet).
    pub forecast: Option<&'a Outlook>,
}

fn metric_value(m: Metric, w: &WindowStats, current: u32) -> Option<f64> {
    let (name, per_instance) = m.source();
    let v = window_metric(name)?.read(w)?;
    Some(if per_instance {
        v / f64::from(current.max(1))
    } else {
        v
    })
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn secs(ns: i64) -> String {
    format!("{} s", ns / NANOS_PER_SEC)
}

struct Chain {
    value: u32,
    constraints: Vec<Constraint>,
}

impl Chain {
    fn apply(&mut self, name: &str, to: u32, note: impl FnOnce() -> String) {
        if to != self.value {
            self.constraints.push(Constraint {
                name: name.to_string(),
                from: self.value,
                to,
                note: note(),
            });
            self.value = to;
        }
    }
}

/// Decides the desired instance count for one app under one policy.
pub fn decide(policy: &Policy, state: &mut AppState, obs: &Observation<'_>) -> Decision {
    let now = obs.now_ns;
    let current = obs.current;
    state.breach_since.resize(policy.steps.len(), None);
    let window = obs.window;
    state.missing_windows = if window.is_some() {
        0
    } else {
        state.missing_windows.saturating_add(1)
    };

    // 1. What each metric asks for.
    let mut observed = Vec::new();
    let asked = match window {
        Some(w) => {
            for m in policy
                .targets
                .iter()
                .map(|t| t.0)
                .chain(policy.steps.iter().map(|s| s.metric))
            {
                if let Some(v) = metric_value(m, w, current)
                    && !observed.iter().any(|(n, _)| n == m.name())
                {
                    observed.push((m.name().to_string(), v));
                }
            }
            match policy.algorithm {
                Algorithm::TargetTracking => ask_target_tracking(policy, state, w, obs),
                Algorithm::Hpa => ask_hpa(policy, w, obs),
                Algorithm::Kpa => ask_kpa(policy, state, w, obs),
                Algorithm::Step => ask_step(policy, state, w, obs),
            }
        }
        None => Asked {
            raw: current,
            untolerated: current,
            ..Asked::default()
        },
    };
    let Asked {
        raw,
        untolerated,
        burst,
        have_data,
        recs,
        reactive,
    } = asked;
    let missing = !have_data;
    let recommended = raw;
    let mut chain = Chain {
        value: untolerated,
        constraints: Vec::new(),
    };
    chain.apply("tolerance", raw, || {
        format!(
            "within the tolerance of {}%",
            fmt_num(policy.tolerance * 100.0)
        )
    });

    // 1b. The forecast's floor (`spec.predictive`): a recommendation like
    // the metrics' ones, so stabilization holds it and a forecast that
    // wobbles by an instance from minute to minute does not flap the count.
    let (raw, forecast) = match &policy.predictive {
        Some(p) if window.is_some() => {
            let (raw, used) = predictive_floor(policy, p, obs, raw, &mut chain);
            (raw, Some(used))
        }
        _ => (raw, None),
    };

    // 2. Stabilization (burst skips it upwards).
    let (up_rec, down_rec) = stabilization_bounds(policy, state, now, raw, reactive);
    let stabilized = if current < up_rec {
        up_rec
    } else if current > down_rec && big_enough_to_go_down(&policy.down, current, down_rec) {
        down_rec
    } else {
        current
    };
    if burst && raw > current {
        // Record what the burst overrode: stabilization would have held it back.
        if stabilized != raw {
            chain.constraints.push(Constraint {
                name: "burst".into(),
                from: stabilized,
                to: raw,
                note: "load above the burst factor × target: scale-up stabilization, rate limit and cooldown skipped".into(),
            });
        }
    } else {
        chain.apply("stabilization", stabilized, || {
            if raw > current {
                format!(
                    "scale-up stabilization {}: lowest recommendation {}",
                    secs(policy.up.stabilization_ns),
                    up_rec
                )
            } else {
                format!(
                    "scale-down stabilization {}: highest recommendation {}",
                    secs(policy.down.stabilization_ns),
                    down_rec
                )
            }
        });
    }

    // 3. Rate limits (burst skips them upwards).
    if !(burst && chain.value > current) {
        let limited = rate_limit(policy, state, now, current, chain.value);
        let (dir, limits) = if chain.value > current {
            ("max_scale_up", &policy.up)
        } else {
            ("max_scale_down", &policy.down)
        };
        chain.apply("rate_limit", limited, || limit_note(dir, limits));
    }

    // 4. Cooldown.
    if let Some(last) = state.last_change_ns
        && now - last < policy.cooldown_ns
        && !(burst && chain.value > current)
    {
        chain.apply("cooldown", current, || {
            format!(
                "cooldown {}: last change {} ago",
                secs(policy.cooldown_ns),
                secs(now - last)
            )
        });
    }

    // 5. Bounds, or 6. the schedules in force, which replace them.
    let active: Vec<_> = policy
        .schedules
        .iter()
        .filter(|s| s.active_at(now))
        .collect();
    if active.is_empty() {
        chain.apply("bounds", chain.value.clamp(policy.min, policy.max), || {
            format!("min {} max {}", policy.min, policy.max)
        });
    } else {
        let smin = active
            .iter()
            .filter_map(|s| s.min)
            .max()
            .unwrap_or(policy.min);
        let smax = active
            .iter()
            .filter_map(|s| s.max)
            .min()
            .unwrap_or(policy.max)
            .max(smin);
        let names: Vec<&str> = active.iter().map(|s| s.name.as_str()).collect();
        chain.apply("schedule", chain.value.clamp(smin, smax), || {
            format!("schedule {} sets min {smin} max {smax}", names.join(", "))
        });
    }

    // 7. Missing data: never scale down without data; optional fallback.
    if missing {
        let mut to = chain.value.max(current);
        let mut note = format!(
            "no data for {} window(s): never scale down",
            state.missing_windows.max(1)
        );
        if let Some(f) = policy.fallback
            && state.missing_windows >= f.after_windows
        {
            to = to.max(f.instances);
            note = format!(
                "no data for {} windows: fallback {}",
                state.missing_windows, f.instances
            );
        }
        chain.apply("missing_data", to, || note);
    }

    let desired = chain.value;
    if desired != current {
        state.changes.push_back((now, current, desired));
        state.last_change_ns = Some(now);
    }
    let keep = policy.up.period_ns.max(policy.down.period_ns);
    while state
        .changes
        .front()
        .is_some_and(|(t, _, _)| now - t >= keep)
    {
        state.changes.pop_front();
    }
    let direction = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => Direction::Up,
        std::cmp::Ordering::Less => Direction::Down,
        std::cmp::Ordering::Equal => Direction::None,
    };
    let app = obs.app.to_string();
    let reason = sentence(
        obs.name.unwrap_or(obs.app),
        current,
        desired,
        &recs,
        &chain.constraints,
        missing,
    );
    Decision {
        time: Timestamp::from_secs(now.div_euclid(NANOS_PER_SEC)),
        app,
        name: obs.name.map(str::to_string),
        policy: policy.name.clone(),
        algorithm: policy.algorithm.name().into(),
        current,
        recommended,
        desired,
        direction,
        observed,
        recommendations: recs,
        constraints: chain.constraints,
        reason,
        source: super::DecisionSource::Policy,
        error: None,
        action: None,
        instance: None,
        forecast,
    }
}

/// `spec.predictive`: reads the forecast, and in `enabled` mode raises the
/// recommendation `raw` to what the forecast rate needs at the policy's
/// per-instance rps target — beyond the tolerance of the current count, or
/// at least keeping the current count (a forecast never lowers anything:
/// Vane does not scale in on a forecast). Returns the new recommendation.
fn predictive_floor(
    policy: &Policy,
    p: &super::policy::Predictive,
    obs: &Observation<'_>,
    raw: u32,
    chain: &mut Chain,
) -> (u32, ForecastUse) {
    let lead_s = p.settings.lead_ns / NANOS_PER_SEC;
    let mut used = ForecastUse {
        mode: if p.enabled {
            "enabled"
        } else {
            "forecast-only"
        }
        .into(),
        lead_s,
        rps: None,
        instances: None,
        error: None,
        applied: false,
        note: String::new(),
    };
    let target = policy
        .targets
        .iter()
        .find(|(m, _)| *m == Metric::RpsPerInstance)
        .map(|t| t.1);
    let (rps, error, target) = match (obs.forecast, target) {
        (Some(Outlook::Rate { rps, error }), Some(t)) if t > 0.0 => (*rps, *error, t),
        (Some(Outlook::Refused(why)), _) => {
            used.note = format!("no forecast ({why}): reactive");
            return (raw, used);
        }
        _ => {
            used.note = "no forecast yet: reactive".into();
            return (raw, used);
        }
    };
    let floor = (rps / target).ceil().clamp(0.0, f64::from(policy.max)) as u32;
    used.rps = Some(rps);
    used.instances = Some(floor);
    used.error = Some(error);
    used.note = format!(
        "forecast {} req/s in {lead_s} s needs {floor} (wMAPE {}%)",
        fmt_num(rps),
        fmt_num((error * 1000.0).round() / 10.0)
    );
    let current = obs.current;
    let wanted = if f64::from(floor) > f64::from(current) * (1.0 + policy.tolerance) {
        floor
    } else {
        floor.min(current)
    };
    if p.enabled && wanted > raw {
        let note = used.note.clone();
        chain.apply("predictive", wanted, || note);
        used.applied = true;
        return (wanted, used);
    }
    (raw, used)
}

/// Whether a scale-down from `current` to `to` moves enough instances for
/// `scaleDown.minPercent` (a share of the current count, rounded down; one
/// instance always may go).
fn big_enough_to_go_down(down: &Limits, current: u32, to: u32) -> bool {
    let step = f64::from(current.saturating_sub(to));
    let least = down
        .min_percent
        .map_or(0.0, |p| (f64::from(current) * p / 100.0).floor());
    step >= least.max(1.0)
}

/// The lowest recommendation within the scale-up stabilization and the
/// highest within the scale-down one, after recording `raw` (and, when a
/// forecast raised it, what the load asked for: `reactive`).
fn stabilization_bounds(
    policy: &Policy,
    state: &mut AppState,
    now: i64,
    raw: u32,
    reactive: Option<u32>,
) -> (u32, u32) {
    let horizon = policy.up.stabilization_ns.max(policy.down.stabilization_ns);
    let expired = |t: i64| now - t >= horizon.max(1);
    state.recommendations.push_back((now, raw));
    while state
        .recommendations
        .front()
        .is_some_and(|(t, _)| expired(*t))
    {
        state.recommendations.pop_front();
    }
    if let Some(r) = reactive {
        state.forecasts.push_back((now, r));
    }
    while state.forecasts.front().is_some_and(|(t, _)| expired(*t)) {
        state.forecasts.pop_front();
    }
    let lookahead = policy.up.lookahead_ns;
    let forecasts = &state.forecasts;
    // A forecast recommendation whose time has come counts as what the load asked.
    let settled = |t: i64, r: u32| {
        if now - t < lookahead {
            return r;
        }
        forecasts
            .iter()
            .find(|(ft, _)| *ft == t)
            .map_or(r, |(_, seen)| *seen)
    };
    let within = |w: i64| {
        state
            .recommendations
            .iter()
            .filter(move |(t, _)| now - t < w.max(1))
    };
    let up_rec = within(policy.up.stabilization_ns)
        .map(|(_, r)| *r)
        .min()
        .unwrap_or(raw);
    let down_rec = within(policy.down.stabilization_ns)
        .map(|&(t, r)| settled(t, r))
        .max()
        .unwrap_or(raw);
    (up_rec, down_rec)
}

/// A burst probe: the same decision on a window still open (`obs.window`
/// holds its rates so far, `obs.window_ns` the time they cover), kept only
/// when the load is past the policy's burst factor and the decision is to
/// scale up — so a flash crowd is met seconds into a window instead of at
/// its end. Otherwise nothing is recorded and `state` is untouched.
pub fn probe(policy: &Policy, state: &mut AppState, obs: &Observation<'_>) -> Option<Decision> {
    let factor = policy.burst_factor?;
    if policy.algorithm != Algorithm::TargetTracking {
        return None;
    }
    let w = obs.window?;
    let bursting = policy.targets.iter().any(|&(m, target)| {
        m.is_per_instance() && metric_value(m, w, obs.current).is_some_and(|v| v > factor * target)
    });
    if !bursting {
        return None;
    }
    let mut trial = state.clone();
    let mut d = decide(policy, &mut trial, obs);
    if d.desired <= obs.current {
        return None;
    }
    *state = trial;
    d.reason = format!(
        "burst seen {} into the window: {}",
        secs(obs.window_ns),
        d.reason
    );
    Some(d)
}

/// `algorithm: hpa`: the Kubernetes replica calculator over the instances'
/// values (a Pods metric); instances the count includes but the window does not
/// are the calculator's "missing" pods.
fn hpa_recommendation(
    m: Metric,
    target: f64,
    w: &WindowStats,
    obs: &Observation<'_>,
    tolerance: f64,
) -> (Recommendation, bool) {
    let current = obs.current;
    // An instance row's own value of the metric; rps for the rest.
    let source = match m {
        Metric::ConcurrencyPerInstance | Metric::CpuPct | Metric::MemoryPct | Metric::MemoryMb => {
            m.source().0
        }
        _ => "rps",
    };
    let source = window_metric(source);
    let per = |r: &WindowStats| source.and_then(|s| s.read(r));
    let milli = |v: f64| (v * 1000.0).round() as i64;
    let mut pods = Vec::new();
    let mut values = std::collections::BTreeMap::new();
    let rows: Vec<&WindowStats> = obs
        .instances
        .iter()
        .filter(|r| r.requests > 0 || r.concurrency > 0.0)
        .collect();
    if rows.is_empty() {
        // No per-instance rows (a format without instances): share the app's load evenly.
        for i in 0..current.max(1) {
            let name = format!("instance-{i}");
            let v = if m.is_per_instance() {
                per(w).unwrap_or(0.0) / f64::from(current.max(1))
            } else {
                per(w).unwrap_or(0.0)
            };
            values.insert(name.clone(), milli(v));
            pods.push(name);
        }
    } else {
        for r in &rows {
            let name = r.instance.clone().unwrap_or_default();
            values.insert(name.clone(), milli(per(r).unwrap_or(0.0)));
            pods.push(name);
        }
        for i in rows.len()..current as usize {
            pods.push(format!("missing-{i}"));
        }
    }
    let pods: Vec<hpa::Pod> = pods
        .into_iter()
        .map(|name| hpa::Pod {
            name,
            phase: hpa::Phase::Running,
            ready: true,
            started: hpa::Started::LongAgo,
            deleting: false,
            request_milli: None,
        })
        .collect();
    let source = hpa::Source::Pods {
        values,
        target: milli(target).max(1),
    };
    let value = if m.is_per_instance() {
        per(w).unwrap_or(0.0) / f64::from(current.max(1))
    } else {
        per(w).unwrap_or(0.0)
    };
    match hpa::replicas(current as i32, &pods, &source, tolerance) {
        Ok(o) => {
            let desired = o.replicas.max(0) as u32;
            let reporting = match rows.len() {
                0 => format!("no instance rows: the app's load shared by {current}"),
                r if r as u32 <= current => format!("{r} of {current} instances reporting"),
                r => format!("{r} instances reporting, {current} counted running"),
            };
            let note = format!(
                "{} {} ({reporting}) vs target {} (HPA replica calculator, tolerance {}%)",
                m.name(),
                fmt_num(o.usage as f64 / 1000.0),
                fmt_num(target),
                fmt_num(tolerance * 100.0)
            );
            (
                Recommendation {
                    metric: m.name().into(),
                    value: Some(value),
                    target,
                    desired,
                    note,
                },
                true,
            )
        }
        Err(e) => (
            Recommendation {
                metric: m.name().into(),
                value: None,
                target,
                desired: current,
                note: format!("HPA calculator: {e}"),
            },
            false,
        ),
    }
}

/// What the metrics ask for, before any constraint.
#[derive(Default)]
struct Asked {
    /// The recommendation (tolerance applied).
    raw: u32,
    /// The recommendation without the tolerance, to record what it changed.
    untolerated: u32,
    burst: bool,
    have_data: bool,
    recs: Vec<Recommendation>,
    /// What the load as seen asked for, when a forecast raised `raw` above it.
    reactive: Option<u32>,
}

/// How many windows of load the trend is fitted over, at least: a longer
/// lookahead keeps as many as it spans, up to `TREND_MAX_WINDOWS`.
const TREND_WINDOWS: usize = 6;
const TREND_MAX_WINDOWS: usize = 30;
/// The most of a rise one window-to-window step may make: a rise made in one
/// jump is a level shift (a stair, a partly seen edge), not a trend.
const TREND_MAX_STEP_SHARE: f64 = 0.5;
/// The fewest windows a trend is read from (three rises in a row).
const TREND_MIN_WINDOWS: usize = 4;
/// How much the windows must agree on the direction (Kendall's tau: the
/// share of rising pairs minus the share of falling ones). Noise agrees
/// about 0, a clean ramp 1.
const TREND_AGREEMENT: f64 = 0.6;
/// How many standard errors the slope must stand clear of zero: the noise
/// of flat load makes slopes too, and extrapolated over a long lookahead
/// they would ask for instances nothing needs.
const TREND_SIGNIFICANCE: f64 = 3.0;
/// A window whose load differs from the one before by more than this share
/// is a level shift (an on-edge, a step, a drop): the trend restarts after
/// it rather than extrapolating it.
const LEVEL_SHIFT: f64 = 0.25;

/// `scaleUp.lookahead`: the factor by which the load is expected to grow
/// within the lookahead, from the trend of the last windows' total load: the
/// median of the pairwise slopes (Theil–Sen, so one noisy window does not
/// tilt it), used only when the windows agree that the load rises
/// (`TREND_AGREEMENT`) and the last ones each rose. Only growth beyond the
/// tolerance counts (smaller is noise; a forecast never scales down); the
/// caller caps it at doubling. A level shift or a burst is not a trend, so
/// it restarts the history.
fn trend_growth(
    policy: &Policy,
    state: &mut AppState,
    w: &WindowStats,
    obs: &Observation<'_>,
) -> Option<f64> {
    let (now, current, window_ns) = (obs.now_ns, obs.current, obs.window_ns);
    let lookahead = policy.up.lookahead_ns;
    if lookahead <= 0 {
        state.trend.clear();
        return None;
    }
    let load = w.rps;
    let burst = policy.burst_factor.is_some_and(|f| {
        policy.targets.iter().any(|&(m, target)| {
            m.is_per_instance() && metric_value(m, w, current).is_some_and(|v| v > f * target)
        })
    });
    let shifted = state
        .trend
        .back()
        .is_some_and(|&(_, prev)| (load - prev).abs() > LEVEL_SHIFT * load.max(prev));
    if burst || shifted {
        state.trend.clear();
    }
    state.trend.push_back((now, load));
    let keep = usize::try_from(lookahead / window_ns.max(1))
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .clamp(TREND_WINDOWS, TREND_MAX_WINDOWS);
    while state.trend.len() > keep {
        state.trend.pop_front();
    }
    if state.trend.len() < TREND_MIN_WINDOWS || load <= 0.0 {
        return None;
    }
    let points: Vec<(i64, f64)> = state.trend.iter().copied().collect();
    let rising_lately = points
        .windows(2)
        .rev()
        .take(TREND_MIN_WINDOWS - 1)
        .all(|p| p[1].1 > p[0].1);
    let (slope, agreement) = theil_sen(&points)?;
    if !rising_lately
        || agreement < TREND_AGREEMENT
        || slope <= TREND_SIGNIFICANCE * slope_error(&points, slope)
        || one_step_rise(&points)
    {
        return None;
    }
    // Never extrapolated further ahead than the history it was read from.
    let span = points.last().map_or(0, |l| l.0) - points.first().map_or(0, |f| f.0);
    let ahead = slope * lookahead.min(span) as f64 / NANOS_PER_SEC as f64;
    // A rise within the tolerance band is noise as far as sizing goes.
    let growth = (load + ahead) / load;
    (growth > 1.0 + policy.tolerance).then_some(growth)
}

/// Whether one window-to-window step makes most of the rise of `points`.
fn one_step_rise(points: &[(i64, f64)]) -> bool {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return true;
    };
    let rise = last.1 - first.1;
    let largest = points
        .windows(2)
        .map(|p| p[1].1 - p[0].1)
        .fold(0.0, f64::max);
    rise <= 0.0 || largest > TREND_MAX_STEP_SHARE * rise
}

/// The standard error of a slope (per second) fitted to `points`: the
/// residuals' spread around the line over the spread of the times.
fn slope_error(points: &[(i64, f64)], slope: f64) -> f64 {
    let n = points.len() as f64;
    let secs = |t: i64| t as f64 / NANOS_PER_SEC as f64;
    let mean_t = points.iter().map(|p| secs(p.0)).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let residual = |p: &(i64, f64)| p.1 - mean_y - slope * (secs(p.0) - mean_t);
    let sse: f64 = points.iter().map(|p| residual(p).powi(2)).sum();
    let stt: f64 = points.iter().map(|p| (secs(p.0) - mean_t).powi(2)).sum();
    if n <= 2.0 || stt <= 0.0 {
        return f64::INFINITY;
    }
    (sse / (n - 2.0) / stt).sqrt()
}

/// The median pairwise slope of `points` (per second) and how much the pairs
/// agree on its sign (Kendall's tau, −1 to 1).
fn theil_sen(points: &[(i64, f64)]) -> Option<(f64, f64)> {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, &(t0, y0)) in points.iter().enumerate() {
        for &(t1, y1) in &points[i + 1..] {
            if t1 > t0 {
                slopes.push((y1 - y0) / ((t1 - t0) as f64 / NANOS_PER_SEC as f64));
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    let rising = slopes.iter().filter(|s| **s > 0.0).count() as f64;
    let falling = slopes.iter().filter(|s| **s < 0.0).count() as f64;
    let agreement = (rising - falling) / slopes.len() as f64;
    slopes.sort_by(f64::total_cmp);
    Some((slopes[slopes.len() / 2], agreement))
}

/// Proportional target tracking: `ceil(current × value ÷ target)`, largest wins.
fn ask_target_tracking(
    policy: &Policy,
    state: &mut AppState,
    w: &WindowStats,
    obs: &Observation<'_>,
) -> Asked {
    let current = obs.current;
    let mut a = Asked {
        raw: current,
        untolerated: current,
        ..Asked::default()
    };
    let growth = trend_growth(policy, state, w, obs);
    let mut best: Option<(u32, u32, u32)> = None;
    for &(m, target) in &policy.targets {
        let Some(seen) = metric_value(m, w, current) else {
            a.recs.push(Recommendation {
                metric: m.name().into(),
                value: None,
                target,
                desired: current,
                note: "no value in this window".into(),
            });
            continue;
        };
        a.have_data = true;
        // Load metrics are sized for the load expected at the lookahead.
        let forecast = growth.filter(|_| m.is_per_instance() || m == Metric::Rps);
        // Sized for the lookahead itself: sizing further ahead (to save
        // actions on a ramp) kept surplus at every ramp's end.
        let v = match forecast {
            Some(g) => seen * g.min(2.0),
            None => seen,
        };
        let (desired, proportional) = size_for(current, v, target, policy.tolerance);
        let reactive = if forecast.is_some() {
            size_for(current, seen, target, policy.tolerance).0
        } else {
            desired
        };
        if let Some(f) = policy.burst_factor
            && m.is_per_instance()
            && v > f * target
        {
            a.burst = true;
        }
        let cmp = if v > target {
            ">"
        } else if v < target {
            "<"
        } else {
            "="
        };
        a.recs.push(Recommendation {
            metric: m.name().into(),
            value: Some(v),
            target,
            desired,
            note: match forecast {
                Some(_) => format!(
                    "{} {} rising, {} expected in {} {cmp} target {} ({} window)",
                    m.name(),
                    fmt_num(seen),
                    fmt_num(v),
                    secs(policy.up.lookahead_ns),
                    fmt_num(target),
                    secs(obs.window_ns)
                ),
                None => format!(
                    "{} {} {cmp} target {} ({} window)",
                    m.name(),
                    fmt_num(v),
                    fmt_num(target),
                    secs(obs.window_ns)
                ),
            },
        });
        let (b_tol, b_raw, b_reactive) = best.unwrap_or((0, 0, 0));
        best = Some((
            b_tol.max(desired),
            b_raw.max(proportional),
            b_reactive.max(reactive),
        ));
    }
    if let Some((tol, unt, reactive)) = best {
        a.raw = tol;
        a.untolerated = unt;
        a.reactive = Some(reactive).filter(|r| *r < tol);
    }
    a
}

/// Proportional sizing of `current` instances for a value `v` of a metric
/// against its target: (the count with the tolerance applied, without it).
fn size_for(current: u32, v: f64, target: f64, tolerance: f64) -> (u32, u32) {
    let ratio = v / target;
    let proportional = if current == 0 {
        // From zero: total load over the per-instance target.
        ratio.ceil()
    } else {
        (f64::from(current) * ratio).ceil()
    }
    .clamp(0.0, f64::from(u32::MAX)) as u32;
    let within = (ratio - 1.0).abs() <= tolerance && current > 0;
    (if within { current } else { proportional }, proportional)
}

/// The Kubernetes replica calculator over the instances' values.
fn ask_hpa(policy: &Policy, w: &WindowStats, obs: &Observation<'_>) -> Asked {
    let current = obs.current;
    let mut a = Asked {
        raw: current,
        untolerated: current,
        ..Asked::default()
    };
    let mut best: Option<u32> = None;
    for &(m, target) in &policy.targets {
        let (rec, ok) = hpa_recommendation(m, target, w, obs, policy.tolerance);
        a.have_data |= ok;
        best = Some(best.map_or(rec.desired, |b| b.max(rec.desired)));
        a.recs.push(rec);
    }
    a.raw = best.unwrap_or(current);
    a.untolerated = a.raw;
    a
}

/// Knative's decider on the app's load over its stable window and the last window.
fn ask_kpa(policy: &Policy, state: &mut AppState, w: &WindowStats, obs: &Observation<'_>) -> Asked {
    let (now, current) = (obs.now_ns, obs.current);
    let mut a = Asked {
        raw: current,
        untolerated: current,
        ..Asked::default()
    };
    if let (Some(spec), Some(&(m, target))) = (&policy.kpa, policy.targets.first()) {
        let total = match m {
            Metric::ConcurrencyPerInstance => w.concurrency,
            _ => w.rps,
        };
        a.have_data = true;
        state.load.push_back((now, total));
        while state
            .load
            .front()
            .is_some_and(|(t, _)| (now - t) as f64 >= spec.stable_window_s * NANOS_PER_SEC as f64)
        {
            state.load.pop_front();
        }
        let stable =
            state.load.iter().map(|(_, v)| v).sum::<f64>() / state.load.len().max(1) as f64;
        let kpa = state.kpa.get_or_insert_with(|| Kpa::new(spec.clone()));
        kpa.spec = spec.clone();
        let r = kpa.scale(
            now as f64 / NANOS_PER_SEC as f64,
            Some(current),
            Some((stable, total)),
        );
        a.raw = r.desired.max(0) as u32;
        a.untolerated = a.raw;
        let mode = if kpa.panic_since.is_some() {
            "panic mode"
        } else {
            "stable mode"
        };
        a.recs.push(Recommendation {
                metric: m.name().into(),
                value: Some(total / f64::from(current.max(1))),
                target,
                desired: a.raw,
                note: format!(
                    "{} {} over {} s, {} in the last window, target {} per instance ({mode}; excess burst capacity {})",
                    if m == Metric::ConcurrencyPerInstance { "concurrency" } else { "rps" },
                    fmt_num(stable),
                    spec.stable_window_s,
                    fmt_num(total),
                    fmt_num(target),
                    r.excess_burst_capacity
                ),
            });
    }
    a
}

/// Step rules: the largest triggered scale-up, else the smallest scale-down.
fn ask_step(
    policy: &Policy,
    state: &mut AppState,
    w: &WindowStats,
    obs: &Observation<'_>,
) -> Asked {
    let (now, current) = (obs.now_ns, obs.current);
    let mut a = Asked {
        raw: current,
        untolerated: current,
        ..Asked::default()
    };
    let mut up: Option<u32> = None;
    let mut down: Option<u32> = None;
    for (i, st) in policy.steps.iter().enumerate() {
        let Some(v) = metric_value(st.metric, w, current) else {
            state.breach_since[i] = None;
            continue;
        };
        a.have_data = true;
        let holds = st.op.holds(v, st.threshold);
        let since = if holds {
            *state.breach_since[i].get_or_insert(now - obs.window_ns)
        } else {
            now
        };
        if !holds {
            state.breach_since[i] = None;
        }
        let fired = holds && now - since >= st.breach_ns.max(obs.window_ns);
        let desired = if fired {
            st.adjust.apply(current)
        } else {
            current
        };
        if fired {
            if desired > current {
                up = Some(up.map_or(desired, |u| u.max(desired)));
            } else if desired < current {
                down = Some(down.map_or(desired, |d| d.min(desired)));
            }
        }
        a.recs.push(Recommendation {
            metric: st.metric.name().into(),
            value: Some(v),
            target: st.threshold,
            desired,
            note: if holds {
                format!(
                    "{} {} {} {} for {}{}",
                    st.metric.name(),
                    fmt_num(v),
                    st.op.symbol(),
                    fmt_num(st.threshold),
                    secs(now - since),
                    if fired {
                        format!(": {}", st.adjust.text())
                    } else {
                        String::new()
                    }
                )
            } else {
                format!(
                    "{} {}, not {} {}",
                    st.metric.name(),
                    fmt_num(v),
                    st.op.symbol(),
                    fmt_num(st.threshold)
                )
            },
        });
    }
    a.raw = up.or(down).unwrap_or(current);
    a.untolerated = a.raw;
    a
}

/// The most the count may move now, given the changes already made within the period.
fn rate_limit(policy: &Policy, state: &AppState, now: i64, current: u32, want: u32) -> u32 {
    let up = want > current;
    let limits = if up { &policy.up } else { &policy.down };
    if limits.max_instances.is_none() && limits.max_percent.is_none() {
        return want;
    }
    let moved: i64 = state
        .changes
        .iter()
        .filter(|(t, _, _)| now - t < limits.period_ns)
        .map(|(_, from, to)| i64::from(*to) - i64::from(*from))
        .filter(|d| (*d > 0) == up)
        .map(i64::abs)
        .sum();
    let start = if up {
        i64::from(current) - moved
    } else {
        i64::from(current) + moved
    }
    .max(0);
    let by_count = limits.max_instances.map(i64::from);
    let by_pct = limits
        .max_percent
        .map(|p| ((start as f64) * p / 100.0).ceil().max(1.0) as i64);
    // With both, the more permissive wins (as in Kubernetes' default `selectPolicy: Max`).
    let allowed = by_count.into_iter().chain(by_pct).max().unwrap_or(i64::MAX);
    let room = (allowed - moved).max(0);
    if up {
        (i64::from(current) + room).min(i64::from(want)) as u32
    } else {
        (i64::from(current) - room).max(i64::from(want)) as u32
    }
}

fn limit_note(dir: &str, l: &Limits) -> String {
    let mut parts = Vec::new();
    if let Some(n) = l.max_instances {
        parts.push(format!("{n} instances"));
    }
    if let Some(p) = l.max_percent {
        parts.push(format!("{}%", fmt_num(p)));
    }
    format!("{dir} {} per {}", parts.join(" or "), secs(l.period_ns))
}

fn sentence(
    app: &str,
    current: u32,
    desired: u32,
    recs: &[Recommendation],
    constraints: &[Constraint],
    missing: bool,
) -> String {
    let head = if desired == current {
        format!("keep {app} at {current}")
    } else {
        format!("scale {app} from {current} to {desired}")
    };
    let why = if missing {
        "no metrics".to_string()
    } else {
        // The metric that asked for the most, among those with a value.
        recs.iter()
            .filter(|r| r.value.is_some())
            .max_by_key(|r| r.desired)
            .map_or_else(|| "no rule applies".to_string(), |r| r.note.clone())
    };
    let mut s = format!("{head}: {why}");
    for c in constraints
        .iter()
        .filter(|c| c.name != "tolerance" || desired == current)
    {
        s.push_str(&format!(
            "; {} ({} → {}): {}",
            c.name.replace('_', " "),
            c.from,
            c.to,
            c.note
        ));
    }
    s
}
