//! The Kubernetes HPA replica calculator, as a pure function: the reference
//! `algorithm: hpa` answers to, replayed against the upstream unit-test table
//! in `../shared/data/autoscaler-cases/k8s_hpa_replica_calculator_cases.json`
//! (tests/hpa_cases.rs).
//!
//! It follows `pkg/controller/podautoscaler/replica_calculator.go`: pods are
//! grouped into ready, unready (pending, not ready, or CPU still warming up),
//! missing (no metric) and ignored (failed or being deleted); usage is compared
//! with the target within a tolerance; missing pods count as 100 % (or the
//! target) on a scale-down and 0 on a scale-up, unready pods as 0 on a
//! scale-up; and a recount that would flip the direction keeps the count.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Pending,
    Failed,
}

/// When the pod started, relative to the CPU initialization period (120 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Long ago.
    LongAgo,
    /// Just now: inside the initialization period, its CPU samples are not trusted.
    Hot,
    /// Minutes ago: past the initialization period.
    Cool,
}

#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub phase: Phase,
    pub ready: bool,
    pub started: Started,
    pub deleting: bool,
    /// Sum of the containers' requests (milli-units); `None` if any container has none.
    pub request_milli: Option<i64>,
}

/// The metric the HPA scales on, with its target.
#[derive(Debug, Clone)]
pub enum Source {
    /// Resource utilization: per-pod usage (milli), target utilization in %.
    Resource {
        usage: BTreeMap<String, i64>,
        target_percent: i32,
        cpu: bool,
    },
    /// A per-pod metric with an average-value target.
    Pods {
        values: BTreeMap<String, i64>,
        target: i64,
    },
    /// One object's metric with a value target.
    Object { value: i64, target: i64 },
    /// One object's metric with a per-pod average-value target.
    ObjectPerPod { value: i64, target_per_pod: i64 },
    /// External metric values (summed) with a value target.
    External { values: Vec<i64>, target: i64 },
    /// External metric values (summed) with a per-pod average-value target.
    ExternalPerPod {
        values: Vec<i64>,
        target_per_pod: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub replicas: i32,
    /// Resource sources: current utilization, integer percent.
    pub utilization: Option<i32>,
    /// Resource: average usage per pod; other sources: the usage the HPA reports.
    pub usage: i64,
}

pub const TOLERANCE: f64 = 0.1;

struct Groups {
    ready: i64,
    unready: Vec<String>,
    missing: Vec<String>,
    ignored: Vec<String>,
}

fn group(pods: &[Pod], has_metric: impl Fn(&str) -> bool, check_cpu_readiness: bool) -> Groups {
    let mut g = Groups {
        ready: 0,
        unready: Vec::new(),
        missing: Vec::new(),
        ignored: Vec::new(),
    };
    for p in pods {
        if p.deleting || p.phase == Phase::Failed {
            g.ignored.push(p.name.clone());
            continue;
        }
        if p.phase == Phase::Pending {
            g.unready.push(p.name.clone());
            continue;
        }
        if !has_metric(&p.name) {
            g.missing.push(p.name.clone());
            continue;
        }
        // For CPU: a pod warming up, or one that is not ready, gives no trusted sample.
        if check_cpu_readiness && (p.started == Started::Hot || !p.ready) {
            g.unready.push(p.name.clone());
            continue;
        }
        g.ready += 1;
    }
    g
}

fn within_tolerance(ratio: f64, tolerance: f64) -> bool {
    (1.0 - ratio).abs() <= tolerance
}

/// Utilization over the pods that have both a metric and a request.
fn utilization_ratio(
    usage: &BTreeMap<String, i64>,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut total, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (pod, u) in usage {
        // Metrics for pods we do not know are extraneous.
        let Some(r) = requests.get(pod) else { continue };
        total += u;
        requested += r;
        n += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = ((total * 100) / requested) as i32;
    Ok((
        f64::from(utilization) / f64::from(target),
        utilization,
        total / n,
    ))
}

/// What the HPA would set the replica count to.
pub fn replicas(
    current: i32,
    pods: &[Pod],
    source: &Source,
    tolerance: f64,
) -> Result<Outcome, String> {
    match source {
        Source::Resource {
            usage,
            target_percent,
            cpu,
        } => resource(current, pods, usage, *target_percent, *cpu, tolerance),
        Source::Pods { values, target } => plain(current, pods, values, *target, tolerance),
        Source::Object { value, target } => {
            let n = usage_ratio_count(current, *value as f64 / *target as f64, pods, tolerance)?;
            Ok(Outcome {
                replicas: n,
                utilization: None,
                usage: *value,
            })
        }
        Source::External { values, target } => {
            let sum: i64 = values.iter().sum();
            let n = usage_ratio_count(current, sum as f64 / *target as f64, pods, tolerance)?;
            Ok(Outcome {
                replicas: n,
                utilization: None,
                usage: sum,
            })
        }
        Source::ObjectPerPod {
            value,
            target_per_pod,
        } => Ok(per_pod(current, *value, *target_per_pod, tolerance)),
        Source::ExternalPerPod {
            values,
            target_per_pod,
        } => Ok(per_pod(
            current,
            values.iter().sum(),
            *target_per_pod,
            tolerance,
        )),
    }
}

fn per_pod(current: i32, usage: i64, target_per_pod: i64, tolerance: f64) -> Outcome {
    let ratio = usage as f64 / (target_per_pod as f64 * f64::from(current));
    let replicas = if within_tolerance(ratio, tolerance) {
        current
    } else {
        (usage as f64 / target_per_pod as f64).ceil() as i32
    };
    Outcome {
        replicas,
        utilization: None,
        usage: (usage as f64 / f64::from(current)).ceil() as i64,
    }
}

fn usage_ratio_count(
    current: i32,
    ratio: f64,
    pods: &[Pod],
    tolerance: f64,
) -> Result<i32, String> {
    if current == 0 {
        return Ok(ratio.ceil() as i32);
    }
    if within_tolerance(ratio, tolerance) {
        return Ok(current);
    }
    if pods.is_empty() {
        return Err("unable to calculate ready pods: no pods returned by selector while calculating replica count".into());
    }
    let ready = pods
        .iter()
        .filter(|p| p.phase == Phase::Running && p.ready)
        .count();
    Ok((ratio * ready as f64).ceil() as i32)
}

fn resource(
    current: i32,
    pods: &[Pod],
    usage: &BTreeMap<String, i64>,
    target: i32,
    cpu: bool,
    tolerance: f64,
) -> Result<Outcome, String> {
    if usage.is_empty() {
        return Err(
            "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
                .into(),
        );
    }
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let mut metrics = usage.clone();
    let g = group(pods, |p| metrics.contains_key(p), cpu);
    for p in g.ignored.iter().chain(&g.unready) {
        metrics.remove(p);
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let mut requests = BTreeMap::new();
    for p in pods {
        let r = p
            .request_milli
            .ok_or_else(|| format!("missing request for cpu in container of Pod {}", p.name))?;
        requests.insert(p.name.clone(), r);
    }
    let (ratio, utilization, raw) = utilization_ratio(&metrics, &requests, target)?;
    let out = |replicas| {
        Ok(Outcome {
            replicas,
            utilization: Some(utilization),
            usage: raw,
        })
    };
    let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if within_tolerance(ratio, tolerance) {
            return out(current);
        }
        return out((ratio * g.ready as f64).ceil() as i32);
    }
    if !g.missing.is_empty() {
        for p in &g.missing {
            let v = if ratio < 1.0 {
                // Scale-down: a pod without metrics counts as using its whole request
                // (or the target, above 100 %).
                requests[p] * i64::from(target.max(100)) / 100
            } else {
                0
            };
            if ratio != 1.0 {
                metrics.insert(p.clone(), v);
            }
        }
    }
    if scale_up_with_unready {
        for p in &g.unready {
            metrics.insert(p.clone(), 0);
        }
    }
    let (new_ratio, _, _) = utilization_ratio(&metrics, &requests, target)?;
    recount(current, ratio, new_ratio, metrics.len(), tolerance).map_or_else(|| out(current), out)
}

/// The second pass shared by resource and per-pod metrics: `None` keeps the count.
fn recount(current: i32, ratio: f64, new_ratio: f64, n: usize, tolerance: f64) -> Option<i32> {
    if within_tolerance(new_ratio, tolerance)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return None;
    }
    let new = (new_ratio * n as f64).ceil() as i32;
    if (new_ratio < 1.0 && new > current) || (new_ratio > 1.0 && new < current) {
        return None;
    }
    Some(new)
}

fn plain(
    current: i32,
    pods: &[Pod],
    values: &BTreeMap<String, i64>,
    target: i64,
    tolerance: f64,
) -> Result<Outcome, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let mut metrics = values.clone();
    let g = group(pods, |p| metrics.contains_key(p), false);
    for p in g.ignored.iter().chain(&g.unready) {
        metrics.remove(p);
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ratio_of = |m: &BTreeMap<String, i64>| {
        let usage = m.values().sum::<i64>() / m.len() as i64;
        (usage as f64 / target as f64, usage)
    };
    let (ratio, usage) = ratio_of(&metrics);
    let out = |replicas| {
        Ok(Outcome {
            replicas,
            utilization: None,
            usage,
        })
    };
    let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if within_tolerance(ratio, tolerance) {
            return out(current);
        }
        return out((ratio * g.ready as f64).ceil() as i32);
    }
    for p in &g.missing {
        // Scale-down: a pod without metrics counts as at the target; scale-up: as 0.
        metrics.insert(p.clone(), if ratio < 1.0 { target } else { 0 });
    }
    if scale_up_with_unready {
        for p in &g.unready {
            metrics.insert(p.clone(), 0);
        }
    }
    let (new_ratio, _) = ratio_of(&metrics);
    recount(current, ratio, new_ratio, metrics.len(), tolerance).map_or_else(|| out(current), out)
}

/// One HPA reconcile as the controller (`horizontal.go`) does it: every metric
/// through the calculator (the largest proposal wins; invalid metric types are
/// skipped unless nothing valid is left), then the recommendation history
/// (downscale stabilization) and the bounds and scale-up limit.
#[derive(Debug, Clone)]
pub struct ControllerInput {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub spec_replicas: i32,
    pub status_replicas: i32,
    /// `None`: a metric of a type the controller does not know.
    pub metrics: Vec<Option<Source>>,
    pub pods: Vec<Pod>,
    /// Recent recommendations; `None` when the controller has none yet (it
    /// then seeds the history with the current count).
    pub history: Option<Vec<i32>>,
    pub behavior: Option<ControllerBehavior>,
}

/// The subset of `spec.behavior` the cases use: stabilization windows and
/// the scale-up/-down rate policies with no prior scale events.
#[derive(Debug, Clone, Default)]
pub struct ControllerBehavior {
    pub scale_up_stabilization_s: i64,
    pub scale_down_stabilization_s: i64,
    /// (pods, percent) per period; `None` = that policy is absent.
    pub scale_up_pods: Option<i32>,
    pub scale_up_percent: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerOutcome {
    pub desired: i32,
    pub able_to_scale: &'static str,
    pub scaling_active: &'static str,
    pub scaling_limited: Option<&'static str>,
}

/// Kubernetes' `scaleUpLimitFactor` is 2; its unit tests set it to 8.
pub const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

pub fn reconcile(
    input: &ControllerInput,
    scale_up_limit_factor: f64,
    tolerance: f64,
) -> ControllerOutcome {
    let current = input.spec_replicas;
    let mut best: Option<i32> = None;
    let mut invalid = 0;
    for m in &input.metrics {
        let proposal = match m {
            None => {
                invalid += 1;
                continue;
            }
            // Per-pod targets count against the replicas the status reports.
            Some(s @ (Source::ObjectPerPod { .. } | Source::ExternalPerPod { .. })) => {
                replicas(input.status_replicas, &input.pods, s, tolerance)
            }
            Some(s) => replicas(current, &input.pods, s, tolerance),
        };
        match proposal {
            Ok(o) => best = Some(best.map_or(o.replicas, |b| b.max(o.replicas))),
            Err(_) => invalid += 1,
        }
    }
    let Some(metric_desired) = best.filter(|b| !(invalid > 0 && *b < current)) else {
        return ControllerOutcome {
            desired: current,
            able_to_scale: "SucceededGetScale",
            scaling_active: "InvalidMetricSourceType",
            scaling_limited: None,
        };
    };
    // Stabilization over the recommendation history (all of it recent here).
    let history = input.history.clone().unwrap_or_else(|| vec![current]);
    let (stabilized, able) = match &input.behavior {
        None => {
            let max = history
                .iter()
                .copied()
                .chain([metric_desired])
                .max()
                .unwrap_or(metric_desired);
            (
                max,
                if max != metric_desired {
                    "ScaleDownStabilized"
                } else {
                    "ReadyForNewScale"
                },
            )
        }
        Some(b) => {
            let up = if b.scale_up_stabilization_s > 0 {
                history
                    .iter()
                    .copied()
                    .chain([metric_desired])
                    .min()
                    .unwrap_or(metric_desired)
            } else {
                metric_desired
            };
            let down = if b.scale_down_stabilization_s > 0 {
                history
                    .iter()
                    .copied()
                    .chain([metric_desired])
                    .max()
                    .unwrap_or(metric_desired)
            } else {
                metric_desired
            };
            let r = current.max(up).min(down);
            let reason = if r == metric_desired {
                "ReadyForNewScale"
            } else if r < metric_desired {
                "ScaleUpStabilized"
            } else {
                "ScaleDownStabilized"
            };
            (r, reason)
        }
    };
    let (max_allowed, max_reason) = match &input.behavior {
        None => {
            let limit =
                (scale_up_limit_factor * f64::from(current)).max(SCALE_UP_LIMIT_MINIMUM) as i32;
            if input.max_replicas > limit {
                (limit, "ScaleUpLimit")
            } else {
                (input.max_replicas, "TooManyReplicas")
            }
        }
        Some(b) => {
            let by_pods = b.scale_up_pods.filter(|p| *p > 0).map(|p| current + p);
            let by_pct = b
                .scale_up_percent
                .map(|p| (f64::from(current) * (1.0 + f64::from(p) / 100.0)).ceil() as i32);
            let limit = by_pods.into_iter().chain(by_pct).max().unwrap_or(i32::MAX);
            if input.max_replicas > limit {
                (limit, "ScaleUpLimit")
            } else {
                (input.max_replicas, "TooManyReplicas")
            }
        }
    };
    let (desired, limited) = if stabilized < input.min_replicas {
        (input.min_replicas, "TooFewReplicas")
    } else if stabilized > max_allowed {
        (max_allowed, max_reason)
    } else {
        (stabilized, "DesiredWithinRange")
    };
    ControllerOutcome {
        desired,
        able_to_scale: if desired != current {
            "SucceededRescale"
        } else {
            able
        },
        scaling_active: "ValidMetricFound",
        scaling_limited: Some(limited),
    }
}
