//! The operator's side of a live run: the HTTP API and its commands, the
//! rule files watched for changes, and the scheduled SQL roll-ups.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tracing::warn;

use super::inputs::Inputs;
use super::operate::{self, RuleWatch};
use super::sinks::Sinks;
use crate::act::actuator::Actuator;
use crate::api::{Api, Server};
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::rules::RuleSet;

pub struct Control {
    server: Option<Server>,
    rules: Option<RuleWatch>,
    rollups: Option<tokio_cron_scheduler::JobScheduler>,
}

impl Control {
    /// Starts the API and the roll-up schedule; watches the rules in force.
    pub async fn open(cfg: &Config, rules: Option<&RuleSet>) -> anyhow::Result<Control> {
        let server = match &cfg.api {
            Some(c) => Some(
                crate::api::serve(c)
                    .await
                    .with_context(|| format!("api.listen {}", c.listen))?,
            ),
            None => None,
        };
        let rollups = match &cfg.sql {
            Some(c) => Some(
                crate::rollup::schedule_runs(c, crate::rollup::Records::from_config(cfg))
                    .await
                    .map_err(|e| anyhow::anyhow!("sql.schedule: {e}"))?,
            ),
            None => None,
        };
        Ok(Control {
            server,
            rules: rules.map(|r| RuleWatch::new(&cfg.rules, r)),
            rollups,
        })
    }

    pub fn api(&self) -> Option<Arc<Api>> {
        self.server.as_ref().map(|s| Arc::clone(&s.api))
    }

    /// Reloads the rule files (on SIGHUP); a rejected set is logged and
    /// shown by the API, and the rules in force stay.
    pub fn reload_rules(&mut self, pipeline: &mut Pipeline, why: &str) {
        match &mut self.rules {
            Some(w) => {
                let _ = w.reload(pipeline, why);
            }
            None => warn!("{why}: no rules configured to reload"),
        }
    }

    /// Carries out the API's commands, and reloads rule files that changed.
    pub fn handle_commands(
        &mut self,
        pipeline: &mut Pipeline,
        mut actuator: Option<&mut Actuator>,
    ) -> anyhow::Result<()> {
        if let Some(s) = &mut self.server {
            while let Ok(cmd) = s.commands.try_recv() {
                operate::handle(cmd, pipeline, actuator.as_deref_mut(), self.rules.as_mut())?;
            }
        }
        if let Some(w) = &mut self.rules
            && w.changed(Instant::now())
        {
            let _ = w.reload(pipeline, "rule files changed");
        }
        Ok(())
    }

    /// Publishes this tick's counters and state to the HTTP API.
    pub fn publish(
        &self,
        pipeline: &mut Pipeline,
        inputs: &Inputs,
        sinks: &Sinks,
        actuator: Option<&Actuator>,
    ) {
        let Some(server) = &self.server else {
            return;
        };
        let api = &server.api;
        let mut snap = crate::api::Snapshot {
            counts: pipeline.core.counts,
            cross_partition: pipeline.core.windows.counters().cross_partition,
            series: pipeline.core.windows.series_count(),
            overflow: pipeline.core.windows.counters().overflow,
            late_metrics: pipeline.core.windows.counters().late_metrics,
            ready: true,
            actions: actuator.map(|a| a.by_app.clone()).unwrap_or_default(),
            ..Default::default()
        };
        for (idx, s) in &inputs.sources {
            if let super::inputs::Source::Kafka(k) = s {
                let lag = k.lag();
                snap.partitions
                    .extend(partition_status(*idx, k, &lag, pipeline));
                snap.kafka_lag.extend(lag);
            }
            snap.sources.push(crate::api::SourceStats {
                waiting: matches!(s, super::inputs::Source::File(t) if t.is_waiting()),
                name: s.label(),
                format: pipeline.source_format(*idx).name(),
                counts: pipeline
                    .core
                    .source_counts
                    .get(*idx)
                    .copied()
                    .unwrap_or_default(),
            });
        }
        operate::refresh_view(api, pipeline, self.rules.as_ref());
        snap.sinks.extend(sinks.stats());
        if let Ok(mut s) = api.snapshot.write() {
            *s = snap;
        }
    }

    /// Stops the roll-up schedule, then runs the roll-ups once more over
    /// everything checkpointed (`delivered`), so that a stopped run leaves
    /// its results behind (the schedule may not have come round).
    pub async fn close(mut self, cfg: &Config, delivered: bool) {
        if let Some(s) = &mut self.rollups {
            let _ = s.shutdown().await;
        }
        let (Some(c), true) = (&cfg.sql, delivered) else {
            return;
        };
        let records = crate::rollup::Records::from_config(cfg);
        let c = c.clone();
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        match tokio::task::spawn_blocking(move || crate::rollup::run_once(&c, &records, now_s))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "last roll-ups failed"),
            Err(e) => warn!(error = %e, "last roll-up task failed"),
        }
    }
}

/// The partitions `k` owns now, with their lag and their clocks.
fn partition_status(
    idx: usize,
    k: &crate::sources::KafkaSource,
    lag: &std::collections::BTreeMap<String, i64>,
    pipeline: &Pipeline,
) -> Vec<crate::api::PartitionStatus> {
    let at = |ns: Option<i64>| ns.map(crate::time::Timestamp::from_nanos);
    k.assigned()
        .into_iter()
        .map(|partition| {
            let shard = pipeline
                .core
                .streams
                .clock_of(idx, &partition)
                .map(|c| pipeline.core.windows.shard_status(c))
                .unwrap_or_default();
            crate::api::PartitionStatus {
                source: k.name().to_string(),
                lag: lag.get(&partition).copied(),
                next_offset: k.offsets().get(&partition).copied(),
                series: shard.series,
                watermark: at(shard.watermark_ns),
                closed_through: at(shard.closed_through_ns),
                partition,
            }
        })
        .collect()
}
