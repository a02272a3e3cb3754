//! The actuator: turns decisions into orchestrator calls, safely.
//!
//! - One action in flight per app. A decision that arrives meanwhile replaces
//!   the app's pending action (scaling is *to* N, so only the latest matters).
//! - Every call is retried with backoff on transient failures
//!   ([`RetryPolicy`]); after each action the real instance count is read back,
//!   and it is read periodically too, so the engine decides from what the
//!   platform holds rather than from what it asked for.
//! - A failed action becomes a decision record (source `actuator`) with the
//!   error, beside the decision that asked for it.
//!
//! Calls run as tasks on the runtime; the run loop hands decisions in with
//! [`Actuator::submit`] and collects results with [`Actuator::drain`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::orchestrator::{ActError, Orchestrator, RetryPolicy, Target};
use crate::model::{Constraint, Decision, DecisionSource, Direction};
use crate::time::Timestamp;

/// What one app is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Scale to `to`, asked by a decision taken at `time` under `policy`.
    Scale {
        to: u32,
        time: Timestamp,
        policy: String,
    },
    /// Restart one instance (a health rule or the API).
    Restart {
        instance: String,
        time: Timestamp,
        policy: String,
    },
    /// Only read the current count.
    Read,
}

/// What came of an action.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub target: Target,
    pub action: Action,
    pub result: Result<(), ActError>,
    pub attempts: u32,
    /// The count read back after the action (None: could not be read, or
    /// the adapter does not know the app).
    pub instances: Option<u32>,
}

struct Slot {
    target: Target,
    busy: bool,
    pending: Option<Action>,
    known: Option<u32>,
}

pub struct Actuator {
    orchestrator: Arc<Orchestrator>,
    retry: RetryPolicy,
    refresh_interval: Duration,
    last_refresh: Option<Instant>,
    slots: BTreeMap<String, Slot>,
    tx: mpsc::UnboundedSender<Outcome>,
    rx: mpsc::UnboundedReceiver<Outcome>,
    pub succeeded: u64,
    pub failed: u64,
    /// Finished actions by (app, action, result): `scale`/`restart`, `ok`/`failed`.
    pub by_app: BTreeMap<(String, &'static str, &'static str), u64>,
}

impl Actuator {
    pub fn new(orchestrator: Orchestrator, retry: RetryPolicy, refresh_interval: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Actuator {
            orchestrator: Arc::new(orchestrator),
            retry,
            refresh_interval,
            last_refresh: None,
            slots: BTreeMap::new(),
            tx,
            rx,
            succeeded: 0,
            failed: 0,
            by_app: BTreeMap::new(),
        }
    }

    pub fn orchestrator(&self) -> &Arc<Orchestrator> {
        &self.orchestrator
    }

    /// Whether counts read back should steer the engine (not in dry-run,
    /// where the engine's own assumption is the truth).
    pub fn reports_real_counts(&self) -> bool {
        !self.orchestrator.is_dry_run()
    }

    /// Actions started and not finished.
    pub fn in_flight(&self) -> usize {
        self.slots
            .values()
            .filter(|s| s.busy || s.pending.is_some())
            .count()
    }

    /// The last count read for `app` (id or name).
    /// Whether `app` (id or configured name) has been acted on or watched.
    pub fn knows(&self, app: &str) -> bool {
        self.slots.contains_key(app)
    }

    pub fn known_instances(&self, app: &str, name: Option<&str>) -> Option<u32> {
        self.slots
            .get(&self.key_for(app, name))
            .and_then(|s| s.known)
    }

    /// Hands a decision in: scales when it wants a count other than the one
    /// the platform has (as far as known). Failed-action records are ignored.
    pub fn submit(&mut self, d: &Decision) {
        if !matches!(d.source, DecisionSource::Policy | DecisionSource::Manual) {
            return;
        }
        // A paused app's decision is a record only: not even the count it
        // holds at is enforced (an operator may be scaling it by hand).
        if d.is_paused() {
            return;
        }
        let key = self.key_for(&d.app, d.name.as_deref());
        let slot = self.slot(&key, &d.app, d.name.as_deref());
        let have = slot.known.unwrap_or(d.current);
        if d.desired == have && slot.pending.is_none() && !slot.busy {
            return;
        }
        slot.pending = Some(Action::Scale {
            to: d.desired,
            time: d.time,
            policy: d.policy.clone(),
        });
        self.launch(&key);
    }

    /// Reads `target`'s count now (apps the configuration maps, at start-up,
    /// so that the first decision starts from the real count).
    pub fn watch(&mut self, target: &Target) {
        let key = self.key_for(&target.app, target.name.as_deref());
        let slot = self.slot(&key, &target.app, target.name.as_deref());
        if slot.pending.is_none() {
            slot.pending = Some(Action::Read);
        }
        self.launch(&key);
    }

    /// Asks for one instance of `app` to be restarted.
    pub fn restart(&mut self, target: &Target, instance: &str, time: Timestamp, policy: &str) {
        let key = self.key_for(&target.app, target.name.as_deref());
        let slot = self.slot(&key, &target.app, target.name.as_deref());
        slot.pending = Some(Action::Restart {
            instance: instance.to_string(),
            time,
            policy: policy.to_string(),
        });
        self.launch(&key);
    }

    /// Reads the counts of idle apps when the refresh interval has passed.
    pub fn tick(&mut self, now: Instant) {
        if self
            .last_refresh
            .is_some_and(|t| now - t < self.refresh_interval)
        {
            return;
        }
        self.last_refresh = Some(now);
        let idle: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.busy && s.pending.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for app in idle {
            if let Some(s) = self.slots.get_mut(&app) {
                s.pending = Some(Action::Read);
            }
            self.launch(&app);
        }
    }

    /// Results since the last call; starts each app's next pending action.
    pub fn drain(&mut self) -> Vec<Outcome> {
        let mut out = Vec::new();
        while let Ok(o) = self.rx.try_recv() {
            let kind = match &o.action {
                Action::Read => None,
                Action::Scale { .. } => Some("scale"),
                Action::Restart { .. } => Some("restart"),
            };
            if let Some(kind) = kind {
                let result = if o.result.is_ok() {
                    self.succeeded += 1;
                    "ok"
                } else {
                    self.failed += 1;
                    "failed"
                };
                *self
                    .by_app
                    .entry((o.target.app.clone(), kind, result))
                    .or_default() += 1;
            }
            let app = o.target.app.clone();
            if let Some(s) = self.slots.get_mut(&app) {
                s.busy = false;
                if o.instances.is_some() {
                    s.known = o.instances;
                }
            }
            self.launch(&app);
            out.push(o);
        }
        out
    }

    /// Waits until every action has finished or `limit` passes; returns the outcomes.
    pub async fn settle(&mut self, limit: Duration) -> Vec<Outcome> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        while self.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            out.extend(self.drain());
        }
        out
    }

    /// The slot key of an app: its id, unless the configuration mapped it by
    /// readable name (then the name, so both reach the same slot).
    fn key_for(&self, app: &str, name: Option<&str>) -> String {
        match name {
            Some(n) if !self.slots.contains_key(app) && self.slots.contains_key(n) => n.to_string(),
            _ => app.to_string(),
        }
    }

    fn slot(&mut self, key: &str, app: &str, name: Option<&str>) -> &mut Slot {
        self.slots.entry(key.to_string()).or_insert_with(|| Slot {
            target: Target::new(app, name),
            busy: false,
            pending: None,
            known: None,
        })
    }

    fn launch(&mut self, app: &str) {
        let Some(slot) = self.slots.get_mut(app) else {
            return;
        };
        if slot.busy {
            return;
        }
        let Some(action) = slot.pending.take() else {
            return;
        };
        slot.busy = true;
        let target = slot.target.clone();
        let orch = Arc::clone(&self.orchestrator);
        let retry = self.retry;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let outcome = perform(&orch, retry, target, action).await;
            // The receiver is gone only when Vane is stopping.
            let _ = tx.send(outcome);
        });
    }
}

async fn perform(
    orch: &Orchestrator,
    retry: RetryPolicy,
    target: Target,
    action: Action,
) -> Outcome {
    let (result, attempts) = match &action {
        Action::Scale { to, .. } => retry.run(|| orch.scale(&target, *to)).await,
        Action::Restart { instance, .. } => retry.run(|| orch.restart(&target, instance)).await,
        Action::Read => (Ok(()), 0),
    };
    let (read, _) = retry.run(|| orch.instances(&target)).await;
    let instances = match read {
        Ok(n) => n,
        Err(e) => {
            warn!(app = target.display(), error = %e, "cannot read the instance count");
            None
        }
    };
    match (&action, &result) {
        (Action::Read, _) => {}
        (_, Ok(())) if orch.is_dry_run() => {
            tracing::debug!(app = target.display(), ?action, "dry-run: would act")
        }
        (_, Ok(())) => info!(
            app = target.display(),
            orchestrator = orch.name(),
            ?action,
            instances,
            "action done"
        ),
        (_, Err(e)) => {
            warn!(app = target.display(), orchestrator = orch.name(), ?action, attempts, error = %e, "action failed")
        }
    }
    // A read that read nothing failed too.
    let result = match (&action, instances) {
        (Action::Read, None) => Err(ActError::Transient("instance count unavailable".into())),
        _ => result,
    };
    Outcome {
        target,
        action,
        result,
        attempts,
        instances,
    }
}

impl Outcome {
    /// The decision record of a failed scale or restart (None otherwise).
    pub fn failure_record(&self, orchestrator: &str) -> Option<Decision> {
        let Err(e) = &self.result else {
            return None;
        };
        let (what, requested, time, policy) = match &self.action {
            Action::Scale { to, time, policy } => (format!("scale to {to}"), *to, time, policy),
            Action::Restart {
                instance,
                time,
                policy,
            } => (
                format!("restart instance {instance}"),
                self.instances.unwrap_or(0),
                time,
                policy,
            ),
            Action::Read => return None,
        };
        let app = self.target.display();
        let stays = match self.instances {
            Some(n) => format!("it has {n} instance{}", if n == 1 { "" } else { "s" }),
            None => "its instance count could not be read".to_string(),
        };
        let current = self.instances.unwrap_or(requested);
        Some(Decision {
            time: *time,
            app: self.target.app.clone(),
            name: self.target.name.clone(),
            policy: policy.clone(),
            algorithm: format!("orchestrator:{orchestrator}"),
            current,
            recommended: requested,
            desired: current,
            direction: Direction::None,
            observed: Vec::new(),
            recommendations: Vec::new(),
            constraints: vec![Constraint {
                name: "action_failed".into(),
                from: requested,
                to: current,
                note: e.to_string(),
            }],
            reason: format!(
                "{app}: could not {what} through {orchestrator} after {} attempt{} ({e}); {stays}.",
                self.attempts,
                if self.attempts == 1 { "" } else { "s" }
            ),
            source: DecisionSource::Actuator,
            error: Some(e.to_string()),
            action: match &self.action {
                Action::Restart { .. } => Some("restart".into()),
                _ => None,
            },
            instance: match &self.action {
                Action::Restart { instance, .. } => Some(instance.clone()),
                _ => None,
            },
            forecast: None,
        })
    }
}
