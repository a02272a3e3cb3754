//! `vane run`: the live loop. A thin async shell (a tick, a shutdown signal)
//! around the synchronous [`Pipeline`], in small parts: [`build`] makes the
//! pipeline, [`inputs`] reads the sources, [`outputs`] hands what was
//! produced to the sinks, notifiers and actuator (tasks behind bounded
//! queues), [`checkpointing`] decides when state is stored, [`partitions`]
//! keeps Kafka's assignments, and [`operate`] serves the operators.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use tracing::{info, warn};

use crate::config::Config;
use crate::lockfile::DataDirLock;
use crate::pipeline::{Counts, Pipeline};
use crate::sources::Checkpoint;

pub mod build;
mod checkpointing;
mod control;
mod handover;
mod inputs;
mod notify;
mod operate;
mod outputs;
mod partitions;
mod sinks;

use checkpointing::Checkpoints;
use inputs::Inputs;
pub use outputs::LONGEST_STOP;
use outputs::Outputs;

/// Options of one live run beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop (after closing every window) once no input has arrived for this long.
    pub exit_when_idle: Option<Duration>,
}

/// What a run did, printed when it stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunReport {
    pub counts: Counts,
    /// From the start to the end of the last tick that read input.
    pub input_seconds: f64,
    pub checkpoints: u64,
    /// Spent writing checkpoints (outputs fsynced, state serialized and stored).
    pub checkpoint_seconds: f64,
    /// Of that, CPU time (the rest is waiting for the disk).
    pub checkpoint_cpu_seconds: f64,
    /// The longest tick in which windows closed: a bound on how long after
    /// the watermark passed a window its rows and decisions reached the
    /// output files (they are flushed at the end of such a tick).
    pub slowest_closing_tick_seconds: f64,
}

/// Runs until `shutdown` resolves, all sources are finished, or the idle limit.
pub async fn run(
    cfg: &Config,
    opts: &RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunReport> {
    let mut shell = Shell::start(cfg, opts).await?;
    let mut tick = tokio::time::interval(cfg.run.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hangup = hangup_signal();
    tokio::pin!(shutdown);
    let mut more_input = false;
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => {
                info!("shutting down");
                break;
            }
            Some(()) = next_hangup(&mut hangup) => {
                shell.control.reload_rules(&mut shell.pipeline, "SIGHUP");
            }
            _ = tick.tick(), if !more_input => {}
            // Input left over from the last tick: go on at once.
            () = std::future::ready(()), if more_input => {}
        }
        more_input = shell.tick().await?;
        if shell.done() {
            shell.pipeline.finish()?;
            break;
        }
    }
    shell.stop().await
}

/// Everything a live run holds, in its parts.
struct Shell<'a> {
    cfg: &'a Config,
    opts: &'a RunOptions,
    pipeline: Pipeline,
    inputs: Inputs,
    outputs: Outputs,
    checkpoints: Checkpoints,
    control: control::Control,
    pace: Pace,
    /// Held while the run lives: one run per data dir.
    _lock: DataDirLock,
}

/// The run's timing: when it started, last had input, last logged counts.
struct Pace {
    started: Instant,
    last_input: Instant,
    /// When the last tick began: idleness is measured from there, so a
    /// long tick (a big checkpoint) is not taken for quiet input.
    last_tick: Instant,
    last_stats: Instant,
    input_seconds: f64,
    slowest_closing_tick: f64,
    /// Overflow records already warned about.
    overflow_reported: u64,
}

impl<'a> Shell<'a> {
    async fn start(cfg: &'a Config, opts: &'a RunOptions) -> anyhow::Result<Shell<'a>> {
        let started = Instant::now();
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data_dir {}", cfg.data_dir.display()))?;
        let lock = DataDirLock::acquire(&cfg.data_dir)?;
        let checkpoint_path = cfg.checkpoint_path();
        let checkpoint = Checkpoint::load(&checkpoint_path)?;
        let rules = build::load_rules(cfg)
            .map_err(|errors| anyhow::anyhow!("invalid rules:\n{}", errors.join("\n")))?;
        let files = build::OutputFiles::open(cfg, checkpoint.as_ref())?;
        if checkpoint.is_some() {
            info!(path = %checkpoint_path.display(), "resuming from checkpoint");
        }
        let mut pipeline = build::pipeline(cfg, rules.as_ref(), files, checkpoint.as_ref());
        let mut inputs = Inputs::open(cfg, &mut pipeline)?;
        if let Some(cp) = &checkpoint {
            inputs.resume(cp, &mut pipeline)?;
        }
        let (outputs, pipeline) = Outputs::open(cfg, pipeline).await?;
        let control = control::Control::open(cfg, rules.as_ref()).await?;
        let checkpoints = Checkpoints::new(checkpoint_path, cfg.run.checkpoint_interval, &pipeline);
        let now = Instant::now();
        Ok(Shell {
            cfg,
            opts,
            pipeline,
            inputs,
            outputs,
            checkpoints,
            control,
            _lock: lock,
            pace: Pace {
                started,
                last_input: now,
                last_tick: now,
                last_stats: now,
                input_seconds: 0.0,
                slowest_closing_tick: 0.0,
                overflow_reported: 0,
            },
        })
    }

    /// One round: commands, input, the clock, outputs, a checkpoint when
    /// due, and what the API shows. Returns whether input is left over.
    async fn tick(&mut self) -> anyhow::Result<bool> {
        let api = self.control.api();
        self.control
            .handle_commands(&mut self.pipeline, self.outputs.actuator.as_mut())?;
        let now = Instant::now();
        self.pace.last_tick = now;
        let closed_before = self.closed();
        // A sink that cannot keep up holds the input back (nothing is dropped).
        let held_back = self.outputs.sinks.is_full();
        // Live: a record further ahead of now than `max_future` is a skewed clock.
        self.pipeline.core.set_wall_clock(wall_clock_ns());
        let input = self.inputs.read(&mut self.pipeline, now, held_back)?;
        if input.reassigned {
            self.checkpoints.drop_pending();
        }
        if input.got {
            self.pace.input_seconds = self.pace.started.elapsed().as_secs_f64();
        }
        self.advance_clock(now, input.got || held_back)?;
        if self.closed() != closed_before {
            // What closed reaches the files now, not when a buffer fills.
            self.pipeline.flush()?;
            let took = now.elapsed().as_secs_f64();
            self.pace.slowest_closing_tick = self.pace.slowest_closing_tick.max(took);
        }
        self.pipeline
            .flush_quiet_logs(now, self.cfg.run.multiline_timeout)?;
        self.outputs
            .deliver(&mut self.pipeline, now, api.as_deref())
            .await?;
        self.checkpoints.step(
            now,
            &mut self.pipeline,
            &mut self.inputs,
            &mut self.outputs.sinks,
        )?;
        if now - self.pace.last_stats >= self.cfg.run.stats_interval {
            log_counts(&self.pipeline.core.counts);
            let overflow = self.pipeline.core.windows.counters().overflow;
            if overflow > self.pace.overflow_reported {
                warn!(
                    records = overflow - self.pace.overflow_reported,
                    series = self.pipeline.core.windows.series_count(),
                    "windows: records of new apps or instances beyond window.max_series / window.max_instances_per_app counted under __overflow__"
                );
                self.pace.overflow_reported = overflow;
            }
            let cross = self.pipeline.core.windows.counters().cross_partition;
            if cross > 0 {
                warn!(
                    records = cross,
                    "kafka: records of apps that also arrive on other partitions; key the topic by app id (docs/scale-out.md) or a takeover is not exact for them"
                );
            }
            self.inputs.report_lag(&mut self.outputs.sinks);
            self.pace.last_stats = now;
        }
        let (sinks, actuator) = (&self.outputs.sinks, self.outputs.actuator.as_ref());
        self.control
            .publish(&mut self.pipeline, &self.inputs, sinks, actuator);
        Ok(input.more)
    }

    fn closed(&self) -> u64 {
        self.pipeline.core.windows.counters().windows_closed
    }

    /// With input (or input held back by a sink: not idle), notes the time;
    /// after `idle_timeout` without any, moves event time on by the clock.
    fn advance_clock(&mut self, now: Instant, had_input: bool) -> anyhow::Result<()> {
        if had_input {
            self.pace.last_input = now;
            return Ok(());
        }
        let idle = now - self.pace.last_input;
        if idle >= self.cfg.run.idle_timeout && !self.inputs.kafka_behind() {
            self.pipeline.heartbeat(idle.as_nanos() as i64)?;
        }
        Ok(())
    }

    /// Every source finished, or `--exit-when-idle` reached with nothing
    /// left to deliver.
    fn done(&mut self) -> bool {
        if self.inputs.all_finished() {
            return true;
        }
        // Idle exit waits for notifications still being retried (each gives
        // up in time), and for Kafka partitions with records still to fetch
        // or a group join (for at most a minute more: a broker may be gone).
        let kafka_behind = self.inputs.kafka_behind();
        let quiet = self.opts.exit_when_idle.is_some_and(|d| {
            let idle = self.pace.last_tick - self.pace.last_input;
            idle >= d && (!kafka_behind || idle >= d + Duration::from_secs(60))
        }) && self.outputs.settled();
        if quiet && !self.outputs.sinks.is_idle() {
            // Send what waits (self-metrics arrive all the time).
            self.outputs.sinks.flush_once();
        }
        quiet && self.outputs.sinks.is_idle()
    }

    /// The last actions, deliveries and checkpoint, then a last roll-up.
    async fn stop(mut self) -> anyhow::Result<RunReport> {
        let api = self.control.api();
        let delivered = self
            .outputs
            .drain(&mut self.pipeline, api.as_deref())
            .await?;
        if delivered {
            self.checkpoints
                .write_now(&mut self.pipeline, &mut self.inputs)?;
        } else {
            warn!(
                "stopping with data a sink has not acknowledged: the checkpoint stays where it starts"
            );
        }
        self.outputs.close(&mut self.pipeline).await;
        self.control.close(self.cfg, delivered).await;
        log_counts(&self.pipeline.core.counts);
        let cost = self.checkpoints.cost;
        Ok(RunReport {
            counts: self.pipeline.core.counts,
            input_seconds: self.pace.input_seconds,
            checkpoints: cost.stored,
            checkpoint_seconds: cost.seconds,
            checkpoint_cpu_seconds: cost.cpu_seconds,
            slowest_closing_tick_seconds: self.pace.slowest_closing_tick,
        })
    }
}

/// SIGHUP, where there are signals.
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGHUP; rule files are still watched");
            None
        }
    }
}

async fn next_hangup(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

fn log_counts(c: &Counts) {
    info!(
        lines = c.lines,
        decoded = c.decoded,
        late = c.late,
        dead_letters = c.dead_letters,
        windows_written = c.windows_written,
        decisions = c.decisions,
        "counts"
    );
}

/// Now as nanoseconds since the Unix epoch (`None` before 1970 or past 2262).
fn wall_clock_ns() -> Option<i64> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    i64::try_from(since.as_nanos()).ok()
}
