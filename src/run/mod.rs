//! `vane run`: the live loop. A thin async shell (a tick, a shutdown signal)
//! around the synchronous [`Pipeline`]: poll sources, feed the pipeline, move
//! the watermark when input is idle, checkpoint after flushing the sinks.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use anyhow::Context;
use tracing::{info, warn};

use crate::act::actuator::Actuator;
use crate::act::orchestrator::{Orchestrator, RetryPolicy};
use crate::config::{Config, SourceConfig};
use crate::pipeline::{Counts, Pipeline};
use crate::sources::{
    Checkpoint, Chunk, FileTail, GlobTail, KafkaSource, RlpSource, ScrapeSource, StdinSource,
};

pub mod build;
mod checkpointing;
mod notify;
mod operate;
mod sinks;

use checkpointing::{CheckpointSchedule, write_checkpoint};
use notify::{Notifier, NotifierTask};
use sinks::Sinks;

/// How many chunks one source may hand over per tick, so one busy source cannot
/// starve the others or the checkpoint.
const CHUNKS_PER_TICK: usize = 64;
/// How long one source is read per tick (Kafka hands over one record per
/// chunk, so its chunk count is no bound): what closes in a tick reaches
/// the output files at most about this long after its watermark passed.
/// A source stopped by either bound is read again at once, without
/// waiting for the next tick.
const INPUT_BUDGET_PER_TICK: Duration = Duration::from_millis(50);

enum Source {
    File(FileTail),
    Glob(GlobTail),
    Stdin(StdinSource),
    Scrape(ScrapeSource),
    Rlp(RlpSource),
    Kafka(Box<KafkaSource>),
}

impl Source {
    fn poll(&mut self) -> io::Result<Option<Chunk>> {
        match self {
            Source::File(t) => t.poll(),
            Source::Glob(g) => g.poll(),
            Source::Stdin(s) => Ok(s.poll()),
            Source::Kafka(k) => k.poll().map_err(io::Error::other),
            // Scrapes hand over container metrics, not lines (see the run loop).
            Source::Scrape(_) | Source::Rlp(_) => Ok(None),
        }
    }

    /// How `/metrics` names the source.
    fn label(&self) -> String {
        match self {
            Source::File(t) => format!("file:{}", t.name()),
            Source::Glob(g) => format!("glob:{}", g.pattern()),
            Source::Stdin(_) => "stdin".into(),
            Source::Scrape(_) => "scrape".into(),
            Source::Rlp(_) => "rlp".into(),
            Source::Kafka(k) => format!("kafka:{}", k.name()),
        }
    }

    fn finished(&self) -> bool {
        matches!(self, Source::Stdin(s) if s.is_closed())
    }
}

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
    let started = Instant::now();
    let mut report = RunReport::default();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data_dir {}", cfg.data_dir.display()))?;
    let checkpoint_path = cfg.checkpoint_path();
    let checkpoint = Checkpoint::load(&checkpoint_path)?;
    let rules = build::load_rules(cfg)
        .map_err(|errors| anyhow::anyhow!("invalid rules:\n{}", errors.join("\n")))?;
    let mut rule_watch = rules
        .as_ref()
        .map(|r| operate::RuleWatch::new(&cfg.rules, r));
    let files = build::OutputFiles::open(cfg, checkpoint.as_ref())?;
    if checkpoint.is_some() {
        info!(path = %checkpoint_path.display(), "resuming from checkpoint");
    }
    let mut pipeline = build::pipeline(cfg, rules.as_ref(), files, checkpoint.as_ref());
    let mut sources = Vec::new();
    for sc in &cfg.sources {
        let idx = pipeline.add_source(sc.format(), sc.mapping());
        let source = match sc {
            SourceConfig::File { path, start_at, .. } => {
                Source::File(FileTail::new(path, *start_at))
            }
            SourceConfig::Glob {
                pattern, start_at, ..
            } => Source::Glob(GlobTail::new(pattern, *start_at)),
            SourceConfig::Scrape { targets, interval } => {
                Source::Scrape(ScrapeSource::spawn(targets, *interval))
            }
            SourceConfig::RlpGateway { url, token_env } => {
                let token = token_env.as_ref().and_then(|v| std::env::var(v).ok());
                Source::Rlp(RlpSource::spawn(url.clone(), token))
            }
            SourceConfig::Stdin { .. } => Source::Stdin(StdinSource::spawn()),
            SourceConfig::Kafka {
                brokers,
                group,
                topics,
                json_field,
                options,
                ..
            } => Source::Kafka(Box::new(
                KafkaSource::new(
                    brokers,
                    group,
                    topics,
                    json_field.clone(),
                    options,
                    sc.format() != crate::decode::Format::AppLog,
                )
                .map_err(anyhow::Error::msg)?,
            )),
        };
        sources.push((idx, source));
    }
    if let Some(cp) = &checkpoint {
        for (idx, s) in sources.iter_mut() {
            if let Source::Kafka(k) = s {
                k.resume(&cp.kafka_offsets);
                // What was committed after this checkpoint.
                let committed = k.restart_offsets(&pipeline.low_water_marks(*idx));
                k.set_last_committed(committed);
            }
        }
        for (name, pos) in &cp.positions {
            for (_, s) in sources.iter_mut() {
                match s {
                    Source::File(t) if t.name() == name => t.resume(*pos)?,
                    Source::Glob(g) if g.matches(name) => g.resume(name, *pos)?,
                    _ => {}
                }
            }
        }
    }
    let mut notifiers = Vec::new();
    for n in &cfg.notifiers {
        notifiers.push(NotifierTask::spawn(Notifier::from_config(n)?));
    }
    if !notifiers.is_empty() {
        pipeline = pipeline.with_notifications();
    }
    let mut actuator = if cfg.rules.is_empty() {
        None
    } else {
        let orchestrator = Orchestrator::from_config(&cfg.orchestrator, &cfg.data_dir)
            .await
            .map_err(|e| anyhow::anyhow!("orchestrator {}: {e}", cfg.orchestrator.kind.name()))?;
        info!(orchestrator = orchestrator.name(), "acting through");
        pipeline = pipeline.with_actions();
        let mut actuator = Actuator::new(
            orchestrator,
            RetryPolicy::from_config(&cfg.orchestrator),
            cfg.orchestrator.refresh_interval,
        );
        for app in cfg.orchestrator.apps.keys() {
            actuator.watch(&crate::act::orchestrator::Target::new(app, None));
        }
        for o in actuator.settle(Duration::from_secs(10)).await {
            record_outcome(&actuator, &mut pipeline, &o)?;
        }
        Some(actuator)
    };
    let mut sinks = Sinks::default();
    // A checkpoint waiting for the sinks to deliver what came before it.
    let mut pending: Option<checkpointing::Prepared> = None;
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
    if sinks.any() || cfg.api.is_some() {
        pipeline = pipeline.with_exports();
    }
    if cfg.elasticsearch.as_ref().is_some_and(|c| c.access_logs) {
        pipeline = pipeline.with_access_docs();
    }

    let mut server = match &cfg.api {
        Some(c) => Some(
            crate::api::serve(c)
                .await
                .with_context(|| format!("api.listen {}", c.listen))?,
        ),
        None => None,
    };
    let api = server.as_ref().map(|s| std::sync::Arc::clone(&s.api));
    let api = api.as_deref();
    let mut hangup = hangup_signal();
    let mut rollups = match &cfg.sql {
        Some(c) => Some(
            crate::rollup::schedule_runs(c, crate::rollup::Records::from_config(cfg))
                .await
                .map_err(|e| anyhow::anyhow!("sql.schedule: {e}"))?,
        ),
        None => None,
    };

    let mut tick = tokio::time::interval(cfg.run.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut last_input = Instant::now();
    let mut source_input: std::collections::HashMap<usize, Instant> =
        std::collections::HashMap::new();
    let mut schedule = CheckpointSchedule::new(
        cfg.run.checkpoint_interval,
        Instant::now(),
        pipeline.core.windows.counters().windows_closed,
    );
    let mut last_stats = Instant::now();
    let mut more_input = false;
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => {
                info!("shutting down");
                break;
            }
            Some(()) = next_hangup(&mut hangup) => {
                match &mut rule_watch {
                    Some(w) => {
                        let _ = w.reload(&mut pipeline, "SIGHUP");
                    }
                    None => warn!("SIGHUP: no rules configured to reload"),
                }
            }
            _ = tick.tick(), if !more_input => {}
            // Input left over from the last tick: go on at once.
            () = std::future::ready(()), if more_input => {}
        }
        if let Some(s) = &mut server {
            while let Ok(cmd) = s.commands.try_recv() {
                operate::handle(cmd, &mut pipeline, actuator.as_mut(), rule_watch.as_mut())?;
            }
        }
        if let Some(w) = &mut rule_watch
            && w.changed(Instant::now())
        {
            let _ = w.reload(&mut pipeline, "rule files changed");
        }
        let mut got_input = false;
        more_input = false;
        let now = Instant::now();
        let closed_before = pipeline.core.windows.counters().windows_closed;
        // A sink that cannot keep up holds the input back (nothing is dropped).
        let held_back = sinks.is_full();
        for (_, s) in sources.iter_mut() {
            if let Source::Kafka(k) = s {
                // Paused partitions keep the consumer in its group while held back.
                k.set_paused(held_back);
            }
        }
        for (idx, source) in sources.iter_mut().filter(|_| !held_back) {
            let mut this_input = false;
            if let Source::Kafka(k) = source {
                if rebalance(*idx, k, &mut pipeline)? {
                    // Its Kafka marks are of partitions that may be another's now.
                    pending = None;
                }
                // Every assigned partition has a clock before its first record,
                // so a partition not read yet holds the watermark back.
                for stream in k.assigned() {
                    pipeline.clock_for(*idx, &stream);
                }
            }
            let metrics = match source {
                Source::Scrape(scrape) => Some(scrape.poll()),
                Source::Rlp(rlp) => Some(rlp.poll()),
                _ => None,
            };
            if let Some(metrics) = metrics.filter(|m| !m.is_empty()) {
                this_input = true;
                got_input = true;
                pipeline.process_metrics(*idx, &metrics)?;
            }
            // A Kafka record is one chunk: drained for the time budget only.
            let per_tick = if matches!(source, Source::Kafka(_)) {
                usize::MAX
            } else {
                CHUNKS_PER_TICK
            };
            let started = Instant::now();
            let mut drained = false;
            for _ in 0..per_tick {
                if started.elapsed() >= INPUT_BUDGET_PER_TICK {
                    break;
                }
                match source.poll() {
                    Ok(Some(chunk)) if matches!(source, Source::Kafka(_)) => {
                        // One event clock per partition.
                        let clock = pipeline.clock_for(*idx, &chunk.source);
                        pipeline.process_on_clock(*idx, clock, &chunk)?;
                        source_input.insert(clock, now);
                        if clock != *idx {
                            pipeline.set_source_idle(clock, false)?;
                        }
                        if let Source::Kafka(k) = source {
                            k.recycle(chunk);
                        }
                        got_input = true;
                        this_input = true;
                    }
                    Ok(Some(chunk)) => {
                        pipeline.process(*idx, &chunk)?;
                        got_input = true;
                        this_input = true;
                    }
                    Ok(None) => {
                        drained = true;
                        break;
                    }
                    Err(e) => {
                        warn!(error = %e, "source read failed; retrying on the next tick");
                        drained = true;
                        break;
                    }
                }
            }
            more_input |= !drained;
            // A source quiet for `idle_timeout` (or finished) stops holding the
            // watermark back for the others.
            let last = source_input.entry(*idx).or_insert(now);
            if let Source::Kafka(k) = source {
                // Partitions: each clock idles on its own, and only once it is
                // read to its end (a partition with records waiting holds the
                // watermark however quiet it looks).
                for (s, stream, clock) in pipeline.stream_clocks() {
                    if s != *idx {
                        continue;
                    }
                    let last = *source_input.entry(clock).or_insert(now);
                    let quiet = now - last >= cfg.run.idle_timeout && k.caught_up(&stream);
                    pipeline.set_source_idle(clock, quiet)?;
                }
            } else if this_input {
                *last = now;
                pipeline.set_source_idle(*idx, false)?;
            } else if source.finished() || now - *last >= cfg.run.idle_timeout {
                pipeline.set_source_idle(*idx, true)?;
            }
        }
        if got_input {
            report.input_seconds = started.elapsed().as_secs_f64();
        }
        // Input held back by a sink is not idle input (nor a reason to exit).
        if got_input || held_back {
            last_input = now;
        } else {
            let idle = now - last_input;
            // Quiet Kafka partitions with records still to fetch (or none
            // assigned yet, during a group join) are no sign that time passed.
            let kafka_behind = sources.iter().any(|(_, s)| match s {
                Source::Kafka(k) => !k.caught_up_all(),
                _ => false,
            });
            if idle >= cfg.run.idle_timeout && !kafka_behind {
                pipeline.heartbeat(idle.as_nanos() as i64)?;
            }
        }
        if pipeline.core.windows.counters().windows_closed != closed_before {
            // What closed reaches the files now, not when a buffer fills.
            pipeline.flush()?;
            report.slowest_closing_tick_seconds = report
                .slowest_closing_tick_seconds
                .max(now.elapsed().as_secs_f64());
        }
        let events = pipeline.take_notifications();
        for n in &notifiers {
            n.send(&events).await;
        }
        if let Some(a) = &mut actuator {
            act(a, &mut pipeline, now)?;
        }
        pipeline.flush_quiet_logs(now, cfg.run.multiline_timeout)?;
        export(&mut sinks, &mut pipeline, api)?;
        // A checkpoint promises that everything before it was delivered: it
        // is prepared here and stored once the sinks acknowledged every
        // hand-over up to it (at once without sinks).
        let windows_closed = pipeline.core.windows.counters().windows_closed;
        let due = schedule.due(now, windows_closed, pipeline.core.windows.open_aggregates());
        if due && pending.is_none() {
            let t = Instant::now();
            let cpu = checkpointing::thread_cpu_seconds();
            pending = Some(checkpointing::prepare(
                &mut pipeline,
                &sources,
                sinks.handed(),
            )?);
            sinks.flush();
            report.checkpoint_seconds += t.elapsed().as_secs_f64();
            if let (Some(a), Some(b)) = (cpu, checkpointing::thread_cpu_seconds()) {
                report.checkpoint_cpu_seconds += b - a;
            }
            schedule.done(now, windows_closed, t.elapsed());
        }
        if let Some(p) = pending.take_if(|p| sinks.delivered(p.seq)) {
            let t = Instant::now();
            let cpu = checkpointing::thread_cpu_seconds();
            p.store(&checkpoint_path, &mut sources)?;
            schedule.add_cost(t.elapsed());
            report.checkpoints += 1;
            report.checkpoint_seconds += t.elapsed().as_secs_f64();
            if let (Some(a), Some(b)) = (cpu, checkpointing::thread_cpu_seconds()) {
                report.checkpoint_cpu_seconds += b - a;
            }
        }

        if now - last_stats >= cfg.run.stats_interval {
            log_counts(&pipeline.core.counts);
            for (_, s) in &sources {
                if let Source::Kafka(k) = s {
                    let lag = k.lag();
                    sinks.hand_lag(k.name(), &lag);
                    info!(source = k.name(), lag = lag.values().sum::<i64>(), partitions = ?lag, skipped = k.skipped, "kafka consumer lag");
                }
            }
            last_stats = now;
        }
        if let Some(api) = api {
            publish(
                api,
                &mut pipeline,
                &sources,
                &sinks,
                actuator.as_ref(),
                rule_watch.as_ref(),
            );
        }
        let all_finished = !sources.is_empty() && sources.iter().all(|(_, s)| s.finished());
        // Idle exit waits for notifications still being retried (each gives up
        // in time), and for Kafka partitions with records still to fetch or
        // a group join (for at most a minute more: a broker may be gone).
        let kafka_behind = sources.iter().any(|(_, s)| match s {
            Source::Kafka(k) => !k.caught_up_all(),
            _ => false,
        });
        let quiet = opts.exit_when_idle.is_some_and(|d| {
            let idle = now - last_input;
            idle >= d && (!kafka_behind || idle >= d + Duration::from_secs(60))
        }) && notifiers.iter().all(|n| n.queued() == 0)
            && actuator.as_ref().is_none_or(|a| a.in_flight() == 0);
        if quiet && !sinks.is_idle() {
            // Send what waits (self-metrics arrive all the time).
            sinks.flush_once();
        }
        let idle_done = quiet && sinks.is_idle();
        if all_finished || idle_done {
            pipeline.finish()?;
            break;
        }
    }
    if let Some(a) = &mut actuator {
        // Decisions of the last windows, then wait a little for their actions.
        act(a, &mut pipeline, Instant::now())?;
        for o in a.settle(Duration::from_secs(30)).await {
            record_outcome(a, &mut pipeline, &o)?;
        }
        if let Orchestrator::Local(local) = a.orchestrator().as_ref() {
            local.shutdown().await;
        }
    }
    // The last windows out, for a while; what cannot be delivered is not
    // checkpointed, so the next start sends it again.
    export(&mut sinks, &mut pipeline, api)?;
    sinks.flush();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sinks.is_idle() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sinks.send_backlog();
        export(&mut sinks, &mut pipeline, api)?;
    }
    let delivered = sinks.is_idle();
    if delivered {
        write_checkpoint(&mut pipeline, &mut sources, &checkpoint_path)?;
        report.checkpoints += 1;
    } else {
        warn!(
            "stopping with data a sink has not acknowledged: the checkpoint stays where it starts"
        );
    }
    sinks.stop();
    // Last transitions out before stopping; undelivered ones are logged.
    let events = pipeline.take_notifications();
    for n in notifiers {
        n.send(&events).await;
        n.finish(Duration::from_secs(5)).await;
    }
    if let Some(s) = &mut rollups {
        let _ = s.shutdown().await;
    }
    // A last roll-up over everything checkpointed, so that a stopped run
    // leaves its results behind (the schedule may not have come round).
    if let (Some(c), true) = (&cfg.sql, delivered) {
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
    log_counts(&pipeline.core.counts);
    report.counts = pipeline.core.counts;
    Ok(report)
}

/// Publishes this tick's counters and state to the HTTP API.
fn publish(
    api: &crate::api::Api,
    pipeline: &mut Pipeline,
    sources: &[(usize, Source)],
    sinks: &Sinks,
    actuator: Option<&Actuator>,
    rules: Option<&operate::RuleWatch>,
) {
    let mut snap = crate::api::Snapshot {
        counts: pipeline.core.counts,
        ready: true,
        actions: actuator.map(|a| a.by_app.clone()).unwrap_or_default(),
        ..Default::default()
    };
    for (idx, s) in sources {
        if let Source::Kafka(k) = s {
            snap.kafka_lag.extend(k.lag());
        }
        snap.sources.push(crate::api::SourceStats {
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
    operate::refresh_view(api, pipeline, rules);
    snap.sinks.extend(sinks.stats());
    if let Ok(mut s) = api.snapshot.write() {
        *s = snap;
    }
}

/// Hands what closed since the last call to the API's view and to the
/// sinks, and keeps what a server refused for good as dead letters.
fn export(
    sinks: &mut Sinks,
    pipeline: &mut Pipeline,
    api: Option<&crate::api::Api>,
) -> anyhow::Result<()> {
    let x = pipeline.take_exports();
    if let Some(api) = api {
        operate::observe(api, &x);
    }
    sinks.send_backlog();
    sinks.hand(x);
    for d in sinks.take_refused() {
        pipeline.dead_letter_batch(&d.source, &d.format, d.reason, &d.line)?;
    }
    Ok(())
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

/// Hands new decisions to the actuator and records what came of earlier ones.
fn act(actuator: &mut Actuator, pipeline: &mut Pipeline, now: Instant) -> anyhow::Result<()> {
    for d in pipeline.take_decisions() {
        match (&d.source, &d.instance) {
            (crate::rules::DecisionSource::Health, Some(instance)) => actuator.restart(
                &crate::act::orchestrator::Target::new(&d.app, d.name.as_deref()),
                instance,
                &d.time,
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
fn record_outcome(
    actuator: &Actuator,
    pipeline: &mut Pipeline,
    o: &crate::act::actuator::Outcome,
) -> anyhow::Result<()> {
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

/// Applies the consumer group's changes of assignment: a partition this
/// consumer lost takes its apps' state with it (the new owner rebuilds their
/// open windows from the committed low-water mark); a partition taken over
/// skips what its previous owner already emitted; a partition kept keeps its
/// state when nobody else moved it on meanwhile.
/// Returns whether the assignment changed.
fn rebalance(idx: usize, k: &mut KafkaSource, pipeline: &mut Pipeline) -> anyhow::Result<bool> {
    let events = k.take_rebalances();
    let changed = !events.is_empty();
    for event in events {
        let crate::sources::kafka::Rebalanced::Assigned(parts) = event else {
            // Eager rebalancing revokes everything, then assigns the new set:
            // decide on the assignment.
            continue;
        };
        let assigned: std::collections::BTreeSet<&str> =
            parts.iter().map(|(s, _)| s.as_str()).collect();
        let known: Vec<String> = k.offsets().keys().cloned().collect();
        let mut with_clock: Vec<String> = pipeline
            .stream_clocks()
            .into_iter()
            .filter(|(s, _, _)| *s == idx)
            .map(|(_, stream, _)| stream)
            .collect();
        with_clock.extend(known.iter().cloned());
        with_clock.sort();
        with_clock.dedup();
        for stream in with_clock.iter().filter(|s| !assigned.contains(s.as_str())) {
            let n = pipeline.drop_stream(idx, stream)?;
            k.forget(stream);
            info!(partition = %stream, series = n, "kafka: partition moved to another consumer, its apps' state dropped");
        }
        for (stream, handoff) in &parts {
            let ours = k.offsets().get(stream).copied();
            let committed = handoff.and_then(|h| h.committed);
            match ours {
                // Unchanged since this consumer committed it (or never committed).
                Some(next) if committed.is_none() || committed == k.last_committed(stream) => {
                    k.keep_from(stream, next)
                }
                Some(_) => {
                    // Someone else moved it on since this state was saved.
                    pipeline.drop_stream(idx, stream)?;
                    k.forget(stream);
                    take_over(idx, stream, *handoff, pipeline);
                }
                None => take_over(idx, stream, *handoff, pipeline),
            }
        }
    }
    Ok(changed)
}

fn take_over(
    idx: usize,
    stream: &str,
    h: Option<crate::sources::kafka::Handoff>,
    pipeline: &mut Pipeline,
) {
    let Some(closed_ns) = h.and_then(|h| h.closed_ns) else {
        return;
    };
    let clock = pipeline.clock_for(idx, stream);
    info!(partition = %stream, from = ?h.and_then(|h| h.committed), closed_ns, "kafka: partition taken over; windows its previous owner emitted are skipped");
    pipeline.set_handoff(clock, crate::pipeline::Handoff { closed_ns });
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
