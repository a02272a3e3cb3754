//! The sources of a live run and the input loop: each tick reads every
//! source for a bounded time, feeds the pipeline, and tells it which
//! sources (and Kafka partitions) have gone quiet, so that the watermark
//! moves on without them.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::partitions;
use super::sinks::Sinks;
use crate::config::{Config, SourceConfig};
use crate::pipeline::Pipeline;
use crate::sources::{
    Checkpoint, Chunk, FileTail, GlobTail, KafkaSource, PushedLines, RlpSource, ScrapeSource,
    StdinSource,
};

/// How many chunks one source may hand over per tick, so one busy source cannot
/// starve the others or the checkpoint.
const CHUNKS_PER_TICK: usize = 64;
/// How long one source is read per tick (Kafka hands over one record per
/// chunk, so its chunk count is no bound): what closes in a tick reaches
/// the output files at most about this long after its watermark passed.
/// A source stopped by either bound is read again at once, without
/// waiting for the next tick.
const INPUT_BUDGET_PER_TICK: Duration = Duration::from_millis(50);

pub enum Source {
    File(FileTail),
    Glob(GlobTail),
    Stdin(StdinSource),
    Scrape(ScrapeSource),
    Rlp(RlpSource),
    /// Lines a task receives (an RLP stream's log envelopes).
    Pushed(PushedLines),
    Kafka(Box<KafkaSource>),
}

impl Source {
    /// The sources one `[[sources]]` table opens, each with the format of
    /// its pipeline source (an RLP stream is three: gauges, router lines,
    /// app lines).
    fn open(sc: &SourceConfig) -> anyhow::Result<Vec<(crate::decode::Format, Source)>> {
        if let SourceConfig::RlpGateway {
            url,
            token_env,
            token_file,
            tls,
        } = sc
        {
            use crate::decode::Format;
            let token = crate::secret::read(token_env.as_deref(), token_file.as_deref(), "token")
                .map_err(|e| anyhow::anyhow!("rlp-gateway source {url}: {e}"))?;
            let (rlp, lines) = RlpSource::spawn(url.clone(), token, tls)
                .map_err(|e| anyhow::anyhow!("rlp-gateway source {url}: tls: {e}"))?;
            // Read in this order every tick: the router lines an event
            // carried before the gauges of a later one that arrived in
            // the same tick (their clocks are separate).
            return Ok(vec![
                (Format::Gorouter, Source::Pushed(lines.router)),
                (Format::AppLog, Source::Pushed(lines.app)),
                (Format::Loggregator, Source::Rlp(rlp)),
            ]);
        }
        if let SourceConfig::Syslog {
            listen,
            tls,
            max_connections,
        } = sc
        {
            use crate::decode::Format;
            let syslog =
                crate::sources::syslog::SyslogSource::bind(listen, tls.as_ref(), *max_connections)
                    .map_err(|e| anyhow::anyhow!("syslog source {listen}: {e}"))?;
            return Ok(vec![
                (Format::Gorouter, Source::Pushed(syslog.router)),
                (Format::AppLog, Source::Pushed(syslog.app)),
            ]);
        }
        Ok(vec![(sc.format(), Source::open_one(sc)?)])
    }

    fn open_one(sc: &SourceConfig) -> anyhow::Result<Source> {
        Ok(match sc {
            SourceConfig::File {
                path,
                start_at,
                wait_for_file,
                ..
            } => {
                if !*wait_for_file && !path.exists() {
                    anyhow::bail!(
                        "file source {}: no such file (fix the path, or set `wait_for_file = true` on the source to wait for it)",
                        path.display()
                    );
                }
                Source::File(FileTail::new(path, *start_at))
            }
            SourceConfig::Glob {
                pattern, start_at, ..
            } => Source::Glob(GlobTail::new(pattern, *start_at)),
            SourceConfig::Scrape {
                targets,
                interval,
                token_file,
                tls,
            } => {
                if let Some(path) = token_file {
                    // Read for every scrape; missing at start is a mistake.
                    crate::secret::read(None, Some(path), "token")
                        .map_err(|e| anyhow::anyhow!("scrape source: {e}"))?;
                }
                let auth = crate::sources::ScrapeAuth {
                    tls: tls.clone(),
                    token_file: token_file.clone(),
                };
                let scrape = ScrapeSource::spawn(targets, *interval, auth)
                    .map_err(|e| anyhow::anyhow!("scrape source: tls: {e}"))?;
                Source::Scrape(scrape)
            }
            SourceConfig::RlpGateway { .. } | SourceConfig::Syslog { .. } => {
                anyhow::bail!("a stream source opens as several sources (Source::open)")
            }
            SourceConfig::Stdin { .. } => Source::Stdin(StdinSource::spawn()),
            SourceConfig::Kafka {
                brokers,
                group,
                topics,
                json_field,
                options,
                instance_id,
                security,
                ..
            } => {
                let mut options = options.clone();
                let secured = security
                    .settings()
                    .map_err(|e| anyhow::anyhow!("kafka source {brokers}: {e}"))?;
                for (k, v) in secured {
                    options.insert(k.to_string(), v);
                }
                if let Some(id) = instance_id {
                    options.insert("group.instance.id".into(), expand_env(id)?);
                }
                Source::Kafka(Box::new(
                    KafkaSource::new(
                        brokers,
                        group,
                        topics,
                        json_field.clone(),
                        &options,
                        sc.format() != crate::decode::Format::AppLog,
                    )
                    .map_err(anyhow::Error::msg)?,
                ))
            }
        })
    }

    fn poll(&mut self) -> io::Result<Option<Chunk>> {
        match self {
            Source::File(t) => t.poll(),
            Source::Glob(g) => g.poll(),
            Source::Stdin(s) => Ok(s.poll()),
            Source::Kafka(k) => k.poll().map_err(io::Error::other),
            // These hand over container metrics, not lines (see `read_metrics`).
            Source::Scrape(_) | Source::Rlp(_) => Ok(None),
            Source::Pushed(p) => Ok(p.poll()),
        }
    }

    /// How `/metrics` names the source.
    pub fn label(&self) -> String {
        match self {
            Source::File(t) => format!("file:{}", t.name()),
            Source::Glob(g) => format!("glob:{}", g.pattern()),
            Source::Stdin(_) => "stdin".into(),
            Source::Scrape(_) => "scrape".into(),
            Source::Rlp(_) => "rlp".into(),
            Source::Pushed(p) => p.name().to_string(),
            Source::Kafka(k) => format!("kafka:{}", k.name()),
        }
    }

    fn finished(&self) -> bool {
        matches!(self, Source::Stdin(s) if s.is_closed())
    }
}

/// What one tick of reading found.
#[derive(Debug, Clone, Copy, Default)]
pub struct TickInput {
    /// Some source handed over input.
    pub got: bool,
    /// Some source stopped at its bound with input left: read again at once.
    pub more: bool,
    /// A Kafka assignment changed (a prepared checkpoint's marks are stale).
    pub reassigned: bool,
}

/// Every source of the run, by its index in the pipeline, and when each
/// (and each Kafka partition's clock) last handed over input.
pub struct Inputs {
    pub sources: Vec<(usize, Source)>,
    last_input: HashMap<usize, Instant>,
    idle_timeout: Duration,
}

impl Inputs {
    pub fn open(cfg: &Config, pipeline: &mut Pipeline) -> anyhow::Result<Inputs> {
        let mut sources = Vec::new();
        for sc in &cfg.sources {
            for (format, source) in Source::open(sc)? {
                let idx = pipeline.add_source(format, sc.mapping());
                sources.push((idx, source));
            }
        }
        Ok(Inputs {
            sources,
            last_input: HashMap::new(),
            idle_timeout: cfg.run.idle_timeout,
        })
    }

    /// Moves every source to where the checkpoint left it.
    pub fn resume(&mut self, cp: &Checkpoint, pipeline: &mut Pipeline) -> anyhow::Result<()> {
        for (idx, s) in self.sources.iter_mut() {
            if let Source::Kafka(k) = s {
                k.resume(&cp.kafka_offsets);
                // What was committed after this checkpoint.
                let committed = k.restart_offsets(&pipeline.low_water_marks(*idx));
                k.set_last_committed(committed);
            }
        }
        for (name, pos) in &cp.positions {
            for (_, s) in self.sources.iter_mut() {
                match s {
                    Source::File(t) if t.name() == name => t.resume(*pos)?,
                    Source::Glob(g) if g.matches(name) => g.resume(name, *pos)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Reads every source once, for its budget; `held_back` (a sink cannot
    /// keep up) reads nothing and pauses Kafka partitions instead.
    pub fn read(
        &mut self,
        pipeline: &mut Pipeline,
        now: Instant,
        held_back: bool,
    ) -> anyhow::Result<TickInput> {
        let mut tick = TickInput::default();
        for (_, s) in self.sources.iter_mut() {
            if let Source::Kafka(k) = s {
                // Paused partitions keep the consumer in its group while held back.
                k.set_paused(held_back);
            }
        }
        if held_back {
            return Ok(tick);
        }
        for i in 0..self.sources.len() {
            let (idx, source) = &mut self.sources[i];
            let idx = *idx;
            if let Source::Kafka(k) = source {
                let reassigned = partitions::rebalance(idx, k, pipeline)?;
                if reassigned {
                    // Fetching paused while the group rebalanced: quiet
                    // then was no sign of time passing, so every partition
                    // is quiet again only from now.
                    for (_, _, clock) in pipeline
                        .stream_clocks()
                        .into_iter()
                        .filter(|(s, _, _)| *s == idx)
                    {
                        self.last_input.insert(clock, now);
                    }
                }
                tick.reassigned |= reassigned;
                // Every assigned partition has a clock before its first record,
                // so a partition not read yet holds the watermark back.
                for stream in k.assigned() {
                    pipeline.clock_for(idx, &stream);
                }
            }
            let metrics = read_metrics(source, idx, pipeline)?;
            let (lines, drained) = read_lines(source, idx, pipeline, now, &mut self.last_input)?;
            if let Source::Pushed(p) = source {
                for r in p.take_rejected() {
                    pipeline.reject(p.name(), r.reason, &r.text)?;
                }
            }
            tick.got |= metrics || lines;
            tick.more |= !drained;
            self.mark_idle(i, metrics || lines, pipeline, now)?;
        }
        Ok(tick)
    }

    /// A source quiet for `idle_timeout` (or finished) stops holding the
    /// watermark back for the others.
    fn mark_idle(
        &mut self,
        i: usize,
        had_input: bool,
        pipeline: &mut Pipeline,
        now: Instant,
    ) -> anyhow::Result<()> {
        let (idx, source) = &self.sources[i];
        let idx = *idx;
        if let Source::Kafka(k) = source {
            // Partitions: each clock idles on its own, and only once it is
            // read to its end (a partition with records waiting holds the
            // watermark however quiet it looks).
            for (s, stream, clock) in pipeline.stream_clocks() {
                if s != idx {
                    continue;
                }
                let last = *self.last_input.entry(clock).or_insert(now);
                let quiet = now - last >= self.idle_timeout && k.caught_up(&stream);
                pipeline.set_source_idle(clock, quiet)?;
            }
            return Ok(());
        }
        if !had_input
            && matches!(source, Source::Rlp(_) | Source::Pushed(_))
            && !self.last_input.contains_key(&idx)
        {
            // A part of a stream that has carried nothing yet (no router
            // lines, say) does not hold the others' windows open.
            pipeline.set_source_idle(idx, true)?;
            return Ok(());
        }
        let last = self.last_input.entry(idx).or_insert(now);
        if had_input {
            *last = now;
            pipeline.set_source_idle(idx, false)?;
        } else if source.finished() || now - *last >= self.idle_timeout {
            pipeline.set_source_idle(idx, true)?;
        }
        Ok(())
    }

    /// Kafka partitions with records still to fetch (or none assigned yet,
    /// during a group join): quiet input is then no sign that time passed.
    pub fn kafka_behind(&self) -> bool {
        self.sources.iter().any(|(_, s)| match s {
            Source::Kafka(k) => !k.caught_up_all(),
            _ => false,
        })
    }

    /// Every source has ended (stdin closed); never for tails and streams.
    pub fn all_finished(&self) -> bool {
        !self.sources.is_empty() && self.sources.iter().all(|(_, s)| s.finished())
    }

    /// Logs each Kafka source's lag and hands it to the sinks as self-metrics.
    pub fn report_lag(&self, sinks: &mut Sinks) {
        for (_, s) in &self.sources {
            if let Source::Kafka(k) = s {
                let lag = k.lag();
                sinks.hand_lag(k.name(), &lag);
                info!(source = k.name(), lag = lag.values().sum::<i64>(), partitions = ?lag, skipped = k.skipped, "kafka consumer lag");
            }
        }
    }
}

/// Container metrics a scrape or the RLP stream gathered since the last tick.
fn read_metrics(source: &mut Source, idx: usize, pipeline: &mut Pipeline) -> anyhow::Result<bool> {
    let metrics = match source {
        Source::Scrape(scrape) => scrape.poll(),
        Source::Rlp(rlp) => rlp.poll(),
        _ => return Ok(false),
    };
    if metrics.is_empty() {
        return Ok(false);
    }
    pipeline.process_metrics(idx, &metrics)?;
    Ok(true)
}

/// Reads chunks of lines until the source is drained or its bound is
/// reached. Returns whether it had input and whether it was drained.
fn read_lines(
    source: &mut Source,
    idx: usize,
    pipeline: &mut Pipeline,
    now: Instant,
    last_input: &mut HashMap<usize, Instant>,
) -> anyhow::Result<(bool, bool)> {
    // A Kafka record is one chunk: drained for the time budget only.
    let per_tick = if matches!(source, Source::Kafka(_)) {
        usize::MAX
    } else {
        CHUNKS_PER_TICK
    };
    let started = Instant::now();
    let mut had_input = false;
    for _ in 0..per_tick {
        if started.elapsed() >= INPUT_BUDGET_PER_TICK {
            return Ok((had_input, false));
        }
        match source.poll() {
            Ok(Some(chunk)) => {
                had_input = true;
                if let Source::Kafka(k) = source {
                    // One event clock per partition.
                    let clock = pipeline.clock_for(idx, &chunk.source);
                    pipeline.process_on_clock(idx, clock, &chunk)?;
                    last_input.insert(clock, now);
                    if clock != idx {
                        pipeline.set_source_idle(clock, false)?;
                    }
                    k.recycle(chunk);
                } else if chunk.key.is_some() || chunk.time_ns.is_some() {
                    // A pushed app log line: its app and time travel beside it.
                    pipeline.process_on_clock(idx, idx, &chunk)?;
                } else {
                    pipeline.process(idx, &chunk)?;
                }
            }
            Ok(None) => return Ok((had_input, true)),
            Err(e) => {
                warn!(error = %e, "source read failed; retrying on the next tick");
                return Ok((had_input, true));
            }
        }
    }
    Ok((had_input, false))
}

/// A setting that may name an environment variable as `${VAR}` (a pod's
/// name): its value, or an error naming the variable.
fn expand_env(value: &str) -> anyhow::Result<String> {
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(var) => std::env::var(var).map_err(|_| {
            anyhow::anyhow!(
                "`instance_id = \"{value}\"`: the environment variable {var} is not set"
            )
        }),
        None => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::expand_env;

    #[test]
    fn an_instance_id_may_come_from_the_environment() {
        assert_eq!(expand_env("vane-0").ok().as_deref(), Some("vane-0"));
        let err = expand_env("${VANE_TEST_SURELY_UNSET_VAR}")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("VANE_TEST_SURELY_UNSET_VAR is not set"),
            "{err}"
        );
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(expand_env("${PATH}").ok(), Some(path));
    }
}
