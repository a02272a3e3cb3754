//! Where what the pipeline produced goes in a live run, besides its files:
//! the sinks (InfluxDB, Elasticsearch), the notifiers and the actuator. Each
//! runs on tasks behind bounded queues; a tick only hands work over.

use std::time::{Duration, Instant};

use tracing::info;

use super::notify::{Notifier, NotifierTask};
use super::operate;
use super::sinks::Sinks;
use crate::act::actuator::{Actuator, Outcome};
use crate::act::orchestrator::{Orchestrator, RetryPolicy, Target};
use crate::config::Config;
use crate::pipeline::Pipeline;

/// How long stopping waits for the last actions to take effect.
const ACTIONS_SETTLE: Duration = Duration::from_secs(30);
/// How long stopping waits for the sinks: one retry at the longest
/// `Retry-After` a sink obeys, so a server busy at that moment still gets
/// the data.
const SINKS_DRAIN: Duration = crate::sinks::MAX_RETRY_AFTER.saturating_add(Duration::from_secs(10));
/// How long stopping waits for each notifier's last deliveries.
const NOTIFIERS_FINISH: Duration = Duration::from_secs(5);

/// The longest a stop can take with one notifier: a supervisor (systemd's
/// `TimeoutStopSec`, a pod's grace period) must allow more.
pub const LONGEST_STOP: Duration = ACTIONS_SETTLE
    .saturating_add(SINKS_DRAIN)
    .saturating_add(NOTIFIERS_FINISH);

pub struct Outputs {
    pub sinks: Sinks,
    notifiers: Vec<NotifierTask>,
    pub actuator: Option<Actuator>,
}

impl Outputs {
    /// Connects the configured outputs and switches on in the pipeline what
    /// they need kept for them.
    pub async fn open(cfg: &Config, mut pipeline: Pipeline) -> anyhow::Result<(Outputs, Pipeline)> {
        let mut notifiers = Vec::new();
        for n in &cfg.notifiers {
            notifiers.push(NotifierTask::spawn(Notifier::from_config(n)?));
        }
        if !notifiers.is_empty() {
            pipeline = pipeline.with_notifications();
        }
        let actuator = if cfg.rules.is_empty() {
            None
        } else {
            pipeline = pipeline.with_actions();
            Some(open_actuator(cfg, &mut pipeline).await?)
        };
        let sinks = open_sinks(cfg)?;
        if sinks.any() || cfg.api.is_some() {
            pipeline = pipeline.with_exports();
        }
        if cfg.elasticsearch.as_ref().is_some_and(|c| c.access_logs) {
            pipeline = pipeline.with_access_docs();
        }
        let outputs = Outputs {
            sinks,
            notifiers,
            actuator,
        };
        Ok((outputs, pipeline))
    }

    /// Hands this tick's alert transitions, decisions and closed windows on.
    pub async fn deliver(
        &mut self,
        pipeline: &mut Pipeline,
        now: Instant,
        api: Option<&crate::api::Api>,
    ) -> anyhow::Result<()> {
        let events = pipeline.take_notifications();
        for n in &self.notifiers {
            n.send(&events).await;
        }
        if let Some(a) = &mut self.actuator {
            act(a, pipeline, now)?;
        }
        self.export(pipeline, api)
    }

    /// Hands what closed since the last call to the API's view and to the
    /// sinks, and keeps what a server refused for good as dead letters.
    pub fn export(
        &mut self,
        pipeline: &mut Pipeline,
        api: Option<&crate::api::Api>,
    ) -> anyhow::Result<()> {
        let x = pipeline.take_exports();
        if let Some(api) = api {
            operate::observe(api, &x);
        }
        self.sinks.send_backlog();
        self.sinks.hand(x);
        for d in self.sinks.take_refused() {
            pipeline.dead_letter_batch(&d.source, &d.format, d.reason, &d.line)?;
        }
        Ok(())
    }

    /// No notification is being retried and no action is in flight.
    pub fn settled(&self) -> bool {
        self.notifiers.iter().all(|n| n.queued() == 0)
            && self.actuator.as_ref().is_none_or(|a| a.in_flight() == 0)
    }

    /// At the end of a run: the last decisions acted on, the last windows
    /// delivered (for a while). Returns whether the sinks took everything;
    /// what they did not is not checkpointed, so the next start sends it again.
    pub async fn drain(
        &mut self,
        pipeline: &mut Pipeline,
        api: Option<&crate::api::Api>,
    ) -> anyhow::Result<bool> {
        if let Some(a) = &mut self.actuator {
            // Decisions of the last windows, then wait a little for their actions.
            act(a, pipeline, Instant::now())?;
            for o in a.settle(ACTIONS_SETTLE).await {
                record_outcome(a, pipeline, &o)?;
            }
            if let Orchestrator::Local(local) = a.orchestrator().as_ref() {
                local.shutdown().await;
            }
        }
        self.export(pipeline, api)?;
        self.sinks.flush();
        let deadline = Instant::now() + SINKS_DRAIN;
        while !self.sinks.is_idle() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.sinks.send_backlog();
            self.export(pipeline, api)?;
        }
        Ok(self.sinks.is_idle())
    }

    /// Stops the sinks, and sends the last alert transitions (undelivered
    /// ones are logged).
    pub async fn close(self, pipeline: &mut Pipeline) {
        self.sinks.stop();
        let events = pipeline.take_notifications();
        for n in self.notifiers {
            n.send(&events).await;
            n.finish(NOTIFIERS_FINISH).await;
        }
    }
}

fn open_sinks(cfg: &Config) -> anyhow::Result<Sinks> {
    let mut sinks = Sinks::default();
    if let Some(c) = &cfg.influxdb {
        let sink = crate::sinks::influx::InfluxSink::new(c)
            .map_err(|e| anyhow::anyhow!("influxdb: {e}"))?;
        info!(url = %c.url, bucket = %c.bucket, "writing to InfluxDB");
        sinks.add(sink);
    }
    if let Some(c) = &cfg.elasticsearch {
        let sink = crate::sinks::elasticsearch::ElasticSink::new(c)
            .map_err(|e| anyhow::anyhow!("elasticsearch: {e}"))?;
        info!(url = %c.url, index = %c.index_prefix, "indexing app logs into Elasticsearch");
        sinks.add(sink);
    }
    Ok(sinks)
}

/// Connects the orchestrator and reads the instance counts of the apps it
/// is told to watch (for at most 10 s).
async fn open_actuator(cfg: &Config, pipeline: &mut Pipeline) -> anyhow::Result<Actuator> {
    let orchestrator = Orchestrator::from_config(&cfg.orchestrator, &cfg.data_dir)
        .await
        .map_err(|e| anyhow::anyhow!("orchestrator {}: {e}", cfg.orchestrator.kind().name()))?;
    info!(orchestrator = orchestrator.name(), "acting through");
    let mut actuator = Actuator::new(
        orchestrator,
        RetryPolicy::from_config(&cfg.orchestrator),
        cfg.orchestrator.refresh_interval,
    );
    for app in cfg.orchestrator.apps.keys() {
        actuator.watch(&Target::new(app, None));
    }
    for o in actuator.settle(Duration::from_secs(10)).await {
        record_outcome(&actuator, pipeline, &o)?;
    }
    Ok(actuator)
}

/// Hands new decisions to the actuator and records what came of earlier ones.
fn act(actuator: &mut Actuator, pipeline: &mut Pipeline, now: Instant) -> anyhow::Result<()> {
    for d in pipeline.take_decisions() {
        if d.is_paused() {
            continue;
        }
        match (&d.source, &d.instance) {
            (crate::model::DecisionSource::Health, Some(instance)) => actuator.restart(
                &Target::new(&d.app, d.name.as_deref()),
                instance,
                d.time,
                &d.policy,
            ),
            _ => actuator.submit(&d),
        }
    }
    actuator.tick(now);
    for o in actuator.drain() {
        record_outcome(actuator, pipeline, &o)?;
    }
    Ok(())
}

/// A failed action becomes a decision record; a count read back steers the
/// next decision (real orchestrators only).
fn record_outcome(actuator: &Actuator, pipeline: &mut Pipeline, o: &Outcome) -> anyhow::Result<()> {
    if let Some(record) = o.failure_record(actuator.orchestrator().name()) {
        pipeline.record_decision(&record)?;
    }
    if actuator.reports_real_counts()
        && let (Some(n), Some(decider)) = (o.instances, pipeline.decider_mut())
    {
        decider.observe_instances(&o.target.app, n);
    }
    Ok(())
}
