//! `vane backtest`: replays recorded demand (access logs through the same
//! decoders and windows as `vane run`, or a rate series) through the decision
//! engine against a simulated orchestrator, and scores each policy:
//! instance-seconds, under- and over-provisioning, requests over capacity,
//! scale actions, time from each load step to enough capacity.
//!
//! `--compare` puts several policies on the same input in one run: the
//! user's rules, Vane's default policy, and the reference algorithms `hpa`
//! (Kubernetes' replica calculator with the HPA's default behavior) and `kpa`
//! (Knative's decider with its defaults), all on the same metric and target.

pub mod plot;
pub mod series;
pub mod sim;

use serde::Serialize;

use crate::model::WindowStats;
use crate::rules::{AppState, Observation, Policy, RuleSet, decide, load_str};

pub use sim::{Cluster, Point, SimSettings, Tally};

/// The policies a comparison can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Contender {
    /// The policy of the rule files that selects the app.
    Rules,
    /// Vane's default policy on the same metric and target.
    Vane,
    /// Vane's default with predictive scaling enabled (`spec.predictive`).
    VanePredictive,
    /// Kubernetes HPA as deployed: replica calculator, default behavior,
    /// 15 s sync on a 60 s rate (see `--hpa-sync`, `--hpa-metric-window`).
    Hpa,
    /// The same HPA with Vane's view: every window, on the window's rate.
    HpaIdeal,
    /// Knative KPA: stable/panic windows, default settings.
    Kpa,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Rules => "rules",
            Contender::Vane => "vane",
            Contender::VanePredictive => "vane-predictive",
            Contender::Hpa => "hpa",
            Contender::HpaIdeal => "hpa-ideal",
            Contender::Kpa => "kpa",
        }
    }
}

/// What the generated policies aim at: one metric and its target, bounds.
#[derive(Debug, Clone)]
pub struct Aim {
    pub metric: String,
    pub target: f64,
    pub min: u32,
    pub max: u32,
    /// The app's start-up time, seconds (Vane's policy looks this far ahead).
    pub startup_s: u64,
}

impl Aim {
    /// The aim of a user policy: its first target and its bounds.
    pub fn of(policy: &Policy) -> Option<Aim> {
        let (m, v) = policy.targets.first()?;
        Some(Aim {
            // The rule-file spelling (`rps_per_instance`).
            metric: serde_json::to_value(m)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            target: *v,
            min: policy.min,
            max: policy.max,
            startup_s: policy.up.lookahead_ns as u64 / 1_000_000_000,
        })
    }
}

/// Vane's default scaling policy (the one `vane backtest` compares as
/// `vane`), for a metric and target: target tracking that meets a burst
/// (1.5× the target) in one step, seconds into a window (burst probes),
/// instead of doubling per 15 s; sizes a steadily rising load for the app's
/// start-up time ahead (`lookahead`: only a trend the windows agree on, never
/// an edge or noise, and what it asked for beyond the load that came is
/// returned once the lookahead has passed); ignores changes within 15 %
/// (noise would otherwise cost actions); comes down after 4 minutes of lower
/// recommendations (the HPA waits 5), by at least 15 % of the count a step.
pub fn default_policy_yaml(aim: &Aim) -> String {
    format!(
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {{name: vane-default}}\nspec:\n  selector: {{names: [\"*\"]}}\n  min: {min}\n  max: {max}\n  targets:\n    - {{metric: {metric}, value: {target}}}\n  tolerance: 0.15\n  behavior:\n    scaleUp: {{stabilization: 0s, lookahead: {startup}s}}\n    scaleDown: {{stabilization: 240s, maxPercent: 100, minPercent: 15, period: 15s}}\n    burst: {{factor: 1.5}}\n",
        startup = aim.startup_s,
        min = aim.min,
        max = aim.max,
        metric = aim.metric,
        target = aim.target,
    )
}

/// Vane's default policy with predictive scaling enabled: the forecast of
/// the app's own history raises the floor `lookahead` + 60 s ahead.
pub fn predictive_policy_yaml(aim: &Aim) -> String {
    format!(
        "{}  predictive: {{mode: enabled}}\n",
        default_policy_yaml(aim).replace("name: vane-default", "name: vane-predictive")
    )
}

/// Kubernetes HPA defaults: tolerance 10 %; up: no stabilization, at most
/// 4 pods or 100 % per 15 s (whichever allows more); down: 300 s
/// stabilization, 100 % per 15 s.
pub fn hpa_policy_yaml(aim: &Aim) -> String {
    format!(
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {{name: hpa}}\nspec:\n  selector: {{names: [\"*\"]}}\n  min: {min}\n  max: {max}\n  algorithm: hpa\n  targets:\n    - {{metric: {metric}, value: {target}}}\n  tolerance: 0.1\n  behavior:\n    scaleUp: {{stabilization: 0s, maxInstances: 4, maxPercent: 100, period: 15s}}\n    scaleDown: {{stabilization: 300s, maxPercent: 100, period: 15s}}\n",
        min = aim.min,
        max = aim.max,
        metric = aim.metric,
        target = aim.target,
    )
}

/// Knative KPA defaults (60 s stable window, panic at 200 %, scale-up rate
/// 1000×, scale-down rate 2×, no scale-down delay).
pub fn kpa_policy_yaml(aim: &Aim) -> String {
    format!(
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {{name: kpa}}\nspec:\n  selector: {{names: [\"*\"]}}\n  min: {min}\n  max: {max}\n  algorithm: kpa\n  targets:\n    - {{metric: {metric}, value: {target}}}\n  kpa: {{}}\n",
        min = aim.min,
        max = aim.max,
        metric = aim.metric,
        target = aim.target,
    )
}

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("{0}")]
    Rules(String),
    #[error("no policy to compare for app {0}: give rule files that select it, or --target")]
    NoAim(String),
}

/// The policy a contender stands for, for one app.
pub fn policy_for(
    contender: Contender,
    rules: Option<&RuleSet>,
    app: &str,
    name: Option<&str>,
    fallback: Option<&Aim>,
) -> Result<Option<Policy>, BacktestError> {
    let user = rules.and_then(|r| r.policy_for(app, name, &Default::default()));
    if contender == Contender::Rules {
        return Ok(user.cloned());
    }
    let Some(mut aim) = user.and_then(Aim::of).or_else(|| fallback.cloned()) else {
        return Err(BacktestError::NoAim(name.unwrap_or(app).to_string()));
    };
    if let Some(f) = fallback {
        aim.startup_s = f.startup_s;
    }
    let yaml = match contender {
        Contender::Vane => default_policy_yaml(&aim),
        Contender::VanePredictive => predictive_policy_yaml(&aim),
        Contender::Hpa | Contender::HpaIdeal => hpa_policy_yaml(&aim),
        Contender::Kpa => kpa_policy_yaml(&aim),
        Contender::Rules => unreachable!("handled above"),
    };
    let mut policies = load_str(&yaml, contender.name()).map_err(|errors| {
        BacktestError::Rules(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(policies.pop())
}

/// One policy's run over one app's demand.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub contender: String,
    pub policy: String,
    pub algorithm: String,
    #[serde(flatten)]
    pub tally: Tally,
}

/// When a contender decides and what it sees. Vane and KPA decide on every
/// closed window. A deployed HPA decides every `sync` (the controller's
/// `--horizontal-pod-autoscaler-sync-period`, 15 s by default) on a metric
/// averaged over `metric_window` (the rate window of the metrics pipeline:
/// prometheus-adapter's request-rate rules use `rate(...[1m])` or longer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// 0: every window.
    pub sync_ns: i64,
    /// 0: the window itself.
    pub metric_window_ns: i64,
}

impl Cadence {
    pub const EVERY_WINDOW: Cadence = Cadence {
        sync_ns: 0,
        metric_window_ns: 0,
    };
}

/// Replays `rows` (one app's window rows, in time order) through `policy`
/// against the simulated orchestrator, starting at `initial` ready instances.
/// `per_second` is the demand of each second from the first window's start
/// (seconds it lacks take their window's rate): the accounting uses it, and
/// so do burst probes, which look into a window before it closes, as
/// `vane run` does.
pub fn simulate(
    policy: &Policy,
    rows: &[WindowStats],
    per_second: &[f64],
    sim: &SimSettings,
    window_ns: i64,
    cadence: Cadence,
    initial: u32,
) -> Tally {
    const S: i64 = crate::time::NANOS_PER_SEC;
    let mut tally = Tally::default();
    let Some(origin) = rows.first().map(|r| r.start.nanos()) else {
        return tally;
    };
    let mut cluster = Cluster::with_ready(initial.clamp(policy.min, policy.max));
    let mut state = AppState::default();
    let averaged = (cadence.metric_window_ns / window_ns.max(1)).max(1) as usize;
    let mut recent: std::collections::VecDeque<f64> = Default::default();
    let mut last_tick = i64::MIN;
    let probes = policy.burst_factor.is_some() && cadence == Cadence::EVERY_WINDOW;
    let act = |cluster: &mut Cluster, tally: &mut Tally, desired: u32, at: i64| {
        if desired != cluster.len() {
            if at >= sim.score_from_ns {
                tally.scale_actions += 1;
            }
            cluster.scale_to(desired, at, sim.startup_ns);
        }
    };
    let mut forecaster = policy
        .predictive
        .map(|p| crate::forecast::Forecaster::new(p.settings));
    // What the forecaster said at the last window's end (probes read it too).
    let mut outlook: Option<crate::forecast::Outlook> = None;
    for row in rows {
        let (start, end) = (row.start.nanos(), row.end.nanos());
        let t0 = (start - origin) / S;
        let scored = start >= sim.score_from_ns;
        if scored {
            tally.begin_window(sim, t0 as f64, row.rps);
        }
        let secs = ((end - start) / S).max(1);
        let mut requests = 0.0;
        let mut probed = false;
        for s in 0..secs {
            let demand = usize::try_from(t0 + s)
                .ok()
                .and_then(|i| per_second.get(i).copied())
                .unwrap_or(row.rps);
            let at = start + s * S;
            if scored {
                tally.second(&cluster, sim, at, (t0 + s) as f64, demand);
            }
            requests += demand;
            // After this second: a burst probe on the window so far.
            let elapsed = (s + 1) * S;
            if probes
                && !probed
                && s + 1 < secs
                && elapsed >= crate::rules::decider::PROBE_MIN_ELAPSED_NS
                && requests >= crate::rules::decider::PROBE_MIN_REQUESTS as f64
            {
                let load = crate::window::OpenLoad {
                    app: row.app.clone(),
                    name: row.name.clone(),
                    start_ns: start,
                    elapsed_ns: elapsed,
                    requests: requests.round() as u64,
                    sum_rt_us: (row.concurrency / row.rps.max(1e-9) * requests * 1e6) as u64,
                };
                let partial = load.to_row();
                let obs = Observation {
                    app: &row.app,
                    name: row.name.as_deref(),
                    now_ns: start + elapsed,
                    window_ns: elapsed,
                    window: Some(&partial),
                    instances: &[],
                    current: cluster.len(),
                    forecast: outlook.as_ref(),
                };
                if let Some(d) = crate::rules::probe(policy, &mut state, &obs) {
                    probed = true;
                    act(&mut cluster, &mut tally, d.desired, start + elapsed);
                    if scored {
                        tally.record(d);
                    }
                }
            }
        }
        recent.push_back(row.rps);
        while recent.len() > averaged {
            recent.pop_front();
        }
        if cadence.sync_ns > 0 {
            // The first window end at or after each sync tick.
            let tick = (end - origin).div_euclid(cadence.sync_ns);
            if tick == last_tick {
                continue;
            }
            last_tick = tick;
        }
        let mut seen = row.clone();
        if averaged > 1 {
            let rps = recent.iter().sum::<f64>() / recent.len() as f64;
            if row.rps > 0.0 {
                seen.concurrency *= rps / row.rps;
            }
            seen.rps = rps;
        }
        // What the instances' CPU would show: the ready ones' utilization.
        let capacity = f64::from(cluster.ready(end - 1)) * sim.capacity_rps;
        seen.cpu_pct = Some(if capacity > 0.0 {
            (seen.rps / capacity * 100.0).min(100.0)
        } else {
            100.0
        });
        if let Some(f) = forecaster.as_mut() {
            f.observe(start, end, row.rps);
            f.refresh(end);
            let at = end.saturating_add(f.settings().lead_ns);
            let o = f.outlook(at);
            if let (true, crate::forecast::Outlook::Rate { rps, .. }) = (scored, &o) {
                tally
                    .forecasts
                    .push(((at - origin) as f64 / S as f64, *rps));
            }
            outlook = Some(o);
        }
        let obs = Observation {
            app: &row.app,
            name: row.name.as_deref(),
            now_ns: end,
            window_ns,
            window: Some(&seen),
            instances: &[],
            current: cluster.len(),
            forecast: outlook.as_ref(),
        };
        let d = decide(policy, &mut state, &obs);
        act(&mut cluster, &mut tally, d.desired, end);
        if scored {
            tally.record(d);
        }
    }
    if let Some(f) = &forecaster {
        tally.forecast_wmape = f.error();
        if let Some(crate::forecast::Outlook::Refused(why)) = outlook {
            tally.forecast_refused = Some(why);
        }
    }
    tally
}

/// The demand of each second from `origin_ns` for `seconds` seconds: the
/// mean of the samples in it, else the last sample before it.
pub fn per_second(series: &series::Series, origin_ns: i64, seconds: usize) -> Vec<f64> {
    const S: i64 = crate::time::NANOS_PER_SEC;
    let mut out = Vec::with_capacity(seconds);
    let mut i = 0;
    let mut held = series.first().map_or(0.0, |p| p.1);
    for k in 0..seconds as i64 {
        let end = origin_ns + (k + 1) * S;
        let (mut sum, mut n) = (0.0, 0u32);
        while i < series.len() && series[i].0 < end {
            if series[i].0 >= end - S {
                sum += series[i].1;
                n += 1;
            }
            i += 1;
        }
        if n > 0 {
            held = sum / f64::from(n);
        }
        out.push(held);
    }
    out
}

/// Instances needed for a demand at a policy's aim (the common starting
/// point of every contender).
pub fn initial_instances(first_rps: f64, sim: &SimSettings) -> u32 {
    (first_rps / sim.capacity_rps).ceil().max(1.0) as u32
}

/// The app-level rows of every app in `rows` (pipeline output), in time order.
pub fn by_app(rows: Vec<WindowStats>) -> std::collections::BTreeMap<String, Vec<WindowStats>> {
    let mut out: std::collections::BTreeMap<String, Vec<WindowStats>> = Default::default();
    for r in rows.into_iter().filter(|r| r.instance.is_none()) {
        out.entry(r.app.clone()).or_default().push(r);
    }
    for v in out.values_mut() {
        v.sort_by_key(|w| w.start);
    }
    out
}
