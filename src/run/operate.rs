//! What `vane run` does for the people operating it: reload rules when the
//! files change (or on SIGHUP, or through the API), carry out the API's
//! commands, and publish what the API shows.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::act::actuator::Actuator;
use crate::api::{Api, Command, RulesStatus, ScaleRefused};
use crate::model::{Constraint, Decision, DecisionSource, Direction};
use crate::pipeline::Pipeline;
use crate::rules::RuleSet;

/// How often the rule files are looked at for changes.
pub const RULES_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Watches the rule files by content, so that an edit, a `git pull` or a
/// ConfigMap update (a symlink swap) is noticed alike.
pub struct RuleWatch {
    paths: Vec<PathBuf>,
    fingerprint: u64,
    last_check: Instant,
    pub status: RulesStatus,
}

fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for root in paths {
        match crate::rules::load::rule_files(root) {
            Ok(files) => {
                for f in files {
                    f.hash(&mut h);
                    std::fs::read(&f).ok().hash(&mut h);
                }
            }
            Err(e) => e.kind().hash(&mut h),
        }
    }
    h.finish()
}

/// Now, in whole seconds: the time of a decision taken by hand.
fn wall_clock() -> crate::time::Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    crate::time::Timestamp::from_secs(secs)
}

fn counts_of(rules: &RuleSet) -> (usize, usize, usize) {
    (rules.policies.len(), rules.alerts.len(), rules.health.len())
}

impl RuleWatch {
    /// Starts watching `paths`, whose rules (`loaded`) are in force now.
    pub fn new(paths: &[PathBuf], loaded: &RuleSet) -> Self {
        let (policies, alerts, health) = counts_of(loaded);
        RuleWatch {
            paths: paths.to_vec(),
            fingerprint: fingerprint(paths),
            last_check: Instant::now(),
            status: RulesStatus {
                policies,
                alerts,
                health,
                loaded_at: Some(wall_clock()),
                ..RulesStatus::default()
            },
        }
    }

    /// Whether the files changed since they were last loaded (looked at
    /// once per [`RULES_CHECK_INTERVAL`]).
    pub fn changed(&mut self, now: Instant) -> bool {
        if now - self.last_check < RULES_CHECK_INTERVAL {
            return false;
        }
        self.last_check = now;
        fingerprint(&self.paths) != self.fingerprint
    }

    /// Loads the files as a whole; a valid set replaces the rules in force
    /// at once, an invalid one is rejected (logged, counted, kept for the
    /// API) and the rules in force stay.
    pub fn reload(&mut self, pipeline: &mut Pipeline, why: &str) -> Result<(), Vec<String>> {
        // What is loaded now is what this attempt saw: an invalid edit is
        // reported once, not every second until it is fixed.
        self.fingerprint = fingerprint(&self.paths);
        match crate::rules::load_paths(&self.paths) {
            Ok(rules) => {
                pipeline.replace_rules(&rules);
                let (policies, alerts, health) = counts_of(&rules);
                self.status.policies = policies;
                self.status.alerts = alerts;
                self.status.health = health;
                self.status.loaded_at = Some(wall_clock());
                self.status.reloads += 1;
                self.status.last_error.clear();
                info!(why, policies, alerts, health, "rules reloaded");
                Ok(())
            }
            Err(errors) => {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                self.status.reload_failures += 1;
                self.status.last_error.clone_from(&list);
                error!(
                    why,
                    errors = %list.join("\n"),
                    "rules rejected; the previous rules stay in force"
                );
                Err(list)
            }
        }
    }
}

/// Carries out one command from the API.
pub fn handle(
    cmd: Command,
    pipeline: &mut Pipeline,
    actuator: Option<&mut Actuator>,
    watch: Option<&mut RuleWatch>,
) -> anyhow::Result<()> {
    match cmd {
        Command::Reload(reply) => {
            let answer = match watch {
                Some(w) => w.reload(pipeline, "api").map(|()| w.status.clone()),
                None => Err(vec![
                    "no rules configured (set `rules` in the configuration)".to_string(),
                ]),
            };
            let _ = reply.send(answer);
        }
        Command::Pause { app, paused, reply } => {
            let _ = reply.send(pause(&app, paused, pipeline, actuator.as_deref()));
        }
        Command::Scale {
            app,
            instances,
            force,
            reply,
        } => {
            let answer = match actuator {
                None => Err(ScaleRefused::NoActuator),
                Some(a) => manual_scale(&app, instances, force, pipeline, a),
            };
            let _ = reply.send(answer);
        }
    }
    Ok(())
}

/// Pauses or resumes `app` (id or readable name, seen in traffic or known
/// to the orchestrator). Returns whether that changed anything.
fn pause(
    app: &str,
    paused: bool,
    pipeline: &mut Pipeline,
    actuator: Option<&Actuator>,
) -> Result<bool, ScaleRefused> {
    let Some(decider) = pipeline.decider_mut() else {
        return Err(ScaleRefused::NoActuator);
    };
    let known = decider
        .tracked()
        .any(|(id, name, _, _)| id == app || name == Some(app))
        || actuator.is_some_and(|a| a.knows(app));
    if !known && paused {
        return Err(ScaleRefused::UnknownApp(app.to_string()));
    }
    let changed = decider.set_paused(app, paused);
    if changed {
        info!(
            app,
            paused, "decisions paused by the API (recorded, not carried out)"
        );
    }
    Ok(changed)
}

/// Scales `app` (id or readable name) to `instances` through the same path
/// as the policies' decisions, recorded as a decision of source `manual`.
/// Within the policy's bounds unless `force`.
fn manual_scale(
    app: &str,
    instances: u32,
    force: bool,
    pipeline: &mut Pipeline,
    actuator: &mut Actuator,
) -> Result<Decision, ScaleRefused> {
    if app.is_empty() {
        return Err(ScaleRefused::Invalid("an app id or name is needed".into()));
    }
    let Some(decider) = pipeline.decider_mut() else {
        return Err(ScaleRefused::NoActuator);
    };
    // The app as the engine tracks it, by id or by readable name.
    let tracked = decider
        .tracked()
        .find(|(id, name, _, _)| *id == app || *name == Some(app))
        .map(|(id, name, _, n)| (id.to_string(), name.map(str::to_string), n));
    let (id, name, engine_count) = match tracked {
        Some((id, name, n)) => (id, name, Some(n)),
        // Configured for the orchestrator (watched from the start) but
        // without traffic yet; anything else would be a guess.
        None if actuator.knows(app) => (app.to_string(), None, None),
        None => return Err(ScaleRefused::UnknownApp(app.to_string())),
    };
    let labels = decider.labels_for(&id, name.as_deref());
    let policy = decider
        .rules()
        .policy_for(&id, name.as_deref(), &labels)
        .map(|p| (p.name.clone(), p.min, p.max));
    let mut constraints = Vec::new();
    let desired = match &policy {
        Some((pname, min, max)) if !force => {
            let bounded = instances.clamp(*min, *max);
            if bounded != instances {
                constraints.push(Constraint {
                    name: "bounds".into(),
                    from: instances,
                    to: bounded,
                    note: format!(
                        "policy {pname} allows {min} to {max} instances (set force to go beyond)"
                    ),
                });
            }
            bounded
        }
        _ => instances,
    };
    let current = actuator
        .known_instances(&id, name.as_deref())
        .or(engine_count)
        .unwrap_or(desired);
    let direction = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => Direction::Up,
        std::cmp::Ordering::Less => Direction::Down,
        std::cmp::Ordering::Equal => Direction::None,
    };
    let mut reason = format!("scaled by hand through the API to {desired}");
    if desired != instances {
        reason.push_str(&format!(" ({instances} asked, bounded by the policy)"));
    } else if force {
        reason.push_str(" (forced: policy bounds not applied)");
    }
    let d = Decision {
        time: wall_clock(),
        app: id.clone(),
        name: name.clone(),
        policy: policy.map_or_else(|| "manual".to_string(), |(p, _, _)| p),
        algorithm: "manual".into(),
        current,
        recommended: instances,
        desired,
        direction,
        observed: Vec::new(),
        recommendations: Vec::new(),
        constraints,
        reason,
        source: DecisionSource::Manual,
        error: None,
        action: None,
        instance: None,
        forecast: None,
    };
    pipeline
        .record_decision(&d)
        .map_err(|e| ScaleRefused::Invalid(format!("cannot record the decision: {e}")))?;
    actuator.submit(&d);
    // The engine goes on from the count asked for (read back later where
    // the orchestrator reports real counts).
    if let Some(decider) = pipeline.decider_mut() {
        decider.observe_instances(&id, desired);
    }
    info!(app = %id, desired, force, "manual scale");
    Ok(d)
}

/// Takes what closed since the last call into the API's view and hands the
/// app log events to live tails.
pub fn observe(api: &Api, x: &crate::pipeline::Exports) {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    if let Ok(mut v) = api.view.write() {
        v.observe(x, now_ns);
    }
    for ev in &x.logs {
        // No receiver is no error: nobody is tailing.
        let _ = api.logs.send(std::sync::Arc::new(ev.clone()));
    }
}

/// Refreshes what the view shows beyond closed windows: engine state,
/// active alerts and the rules in force.
pub fn refresh_view(api: &Api, pipeline: &mut Pipeline, rules: Option<&RuleWatch>) {
    let Ok(mut v) = api.view.write() else {
        warn!("api view lock poisoned");
        return;
    };
    if let Some(d) = pipeline.decider_mut() {
        v.set_tracked(d.tracked());
        let d = &*d;
        v.set_paused(
            d.tracked().map(|(app, name, policy, _)| {
                (app.to_string(), d.paused_tracked(app, name, policy))
            }),
        );
    }
    if let Some(a) = pipeline.alerter_mut() {
        v.active_alerts = a
            .active()
            .into_iter()
            .map(|(rule, app, state, at)| crate::api::view::ActiveAlert {
                alertname: rule.to_string(),
                app: app.to_string(),
                state: state.to_string(),
                active_at: crate::time::Timestamp::from_secs(
                    at.div_euclid(crate::time::NANOS_PER_SEC),
                ),
            })
            .collect();
    }
    if let Some(w) = rules {
        v.rules = w.status.clone();
    }
}
