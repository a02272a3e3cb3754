//! The core with its outputs: what [`Core`] produces is written to the
//! JSON-lines files and, for `vane run`, kept for the external sinks, the
//! API, the notifiers and the actuator. Used by `vane replay` (as fast as
//! possible, then flush), `vane backtest` and `vane run` alike.

use std::fs::File;
use std::io::{self, Read};
use std::time::Instant;

use serde::Serialize;

use crate::core::{Core, Produced};
pub use crate::core::{Counts, Handoff, KafkaState, SourceCounts};
use crate::decode::{Format, Mapping};
use crate::logs::Assembler;
use crate::model::Decision;
use crate::model::{DeadKind, DeadLetter};
use crate::rules::alert::{AlertEvent, Alerter};
use crate::rules::decider::Decider;
use crate::rules::health::HealthWatcher;
use crate::sinks::JsonlFile;
use crate::sources::{Chunk, MAX_CHUNK};
use crate::window::WindowConfig;

pub struct Pipeline {
    pub core: Core,
    files: Files,
    /// Filled by each core call, drained right after it.
    produced: Produced,
    /// Alert transitions kept for notifiers (when there are any).
    to_notify: Option<Vec<AlertEvent>>,
    /// Decisions kept for the actuator (when there is one).
    to_act: Option<Vec<Decision>>,
    /// What closed, kept for external sinks and the API (when there are any).
    exports: Option<Exports>,
}

/// The JSON-lines outputs.
struct Files {
    windows: JsonlFile,
    dead_letters: JsonlFile,
    decisions: Option<JsonlFile>,
    alerts: Option<JsonlFile>,
    /// App log events as ECS documents.
    logs: Option<JsonlFile>,
}

/// What closed since the last [`Pipeline::take_exports`]: what the core
/// produced, less the dead letters (those stay in their file).
pub type Exports = Produced;

impl Pipeline {
    pub fn new(window: WindowConfig, windows_out: JsonlFile, dead_out: JsonlFile) -> Self {
        Pipeline {
            core: Core::new(window),
            files: Files {
                windows: windows_out,
                dead_letters: dead_out,
                decisions: None,
                alerts: None,
                logs: None,
            },
            produced: Produced::default(),
            to_notify: None,
            to_act: None,
            exports: None,
        }
    }

    /// Every decoded access log record is also kept as an ECS document for
    /// the external sinks (needs [`Pipeline::with_exports`]).
    pub fn with_access_docs(mut self) -> Self {
        self.core.access_docs = true;
        self
    }

    /// Joins the lines of app-log sources into events, written to `out` as
    /// ECS documents (and kept for external sinks with exports).
    pub fn with_logs(mut self, out: JsonlFile) -> Self {
        self.core.assembler = Some(Assembler::new());
        self.files.logs = Some(out);
        self
    }

    /// Evaluates `decider`'s rules on every closed window, writing decisions to `out`.
    pub fn with_decisions(mut self, decider: Decider, out: JsonlFile) -> Self {
        self.core.evaluate.decider = Some(decider);
        self.core.rules_changed();
        self.files.decisions = Some(out);
        self
    }

    /// Evaluates `alerter`'s alert rules on every closed window, writing alert
    /// transitions to `out`.
    pub fn with_alerts(mut self, alerter: Alerter, out: JsonlFile) -> Self {
        self.core.evaluate.alerter = Some(alerter);
        self.files.alerts = Some(out);
        self
    }

    /// Evaluates health rules on every closed window: restart decisions go
    /// with the decisions, restart-budget alerts with the alerts.
    pub fn with_health(mut self, watcher: HealthWatcher) -> Self {
        self.core.evaluate.health = Some(watcher);
        self
    }

    /// Keeps alert transitions for [`Pipeline::take_notifications`].
    pub fn with_notifications(mut self) -> Self {
        self.to_notify = Some(Vec::new());
        self
    }

    /// Keeps decisions for [`Pipeline::take_decisions`].
    pub fn with_actions(mut self) -> Self {
        self.to_act = Some(Vec::new());
        self
    }

    /// Keeps window rows and decisions for [`Pipeline::take_exports`].
    pub fn with_exports(mut self) -> Self {
        self.exports = Some(Exports::default());
        self
    }

    pub fn health_mut(&mut self) -> Option<&mut HealthWatcher> {
        self.core.evaluate.health.as_mut()
    }

    pub fn alerter_mut(&mut self) -> Option<&mut Alerter> {
        self.core.evaluate.alerter.as_mut()
    }

    pub fn decider_mut(&mut self) -> Option<&mut Decider> {
        self.core.evaluate.decider.as_mut()
    }

    /// The open app log events (for the checkpoint).
    pub fn log_assembler(&self) -> Option<&Assembler> {
        self.core.assembler.as_ref()
    }

    pub fn restore_log_assembler(&mut self, saved: Assembler) {
        if let Some(a) = &mut self.core.assembler {
            *a = saved;
        }
    }

    /// Alert transitions since the last call (for notifiers).
    pub fn take_notifications(&mut self) -> Vec<AlertEvent> {
        self.to_notify
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Decisions since the last call (for the actuator).
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        self.to_act.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Window rows and decisions since the last call (for external sinks).
    pub fn take_exports(&mut self) -> Exports {
        self.exports
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Writes what the last core call produced and keeps it for whoever
    /// else wants it.
    fn drain(&mut self) -> io::Result<()> {
        let p = &mut self.produced;
        if p.is_empty() {
            return Ok(());
        }
        let counts = &mut self.core.counts;
        for w in &p.windows {
            self.files.windows.write_with(|out| w.write_json(out))?;
        }
        counts.windows_written += p.windows.len() as u64;
        for d in &p.dead_letters {
            self.files.dead_letters.write(d)?;
        }
        p.dead_letters.clear();
        match &mut self.files.decisions {
            Some(out) => {
                for d in &p.decisions {
                    out.write(d)?;
                }
                counts.decisions += p.decisions.len() as u64;
            }
            None => p.decisions.clear(),
        }
        match &mut self.files.alerts {
            Some(out) => {
                for e in &p.alerts {
                    out.write(e)?;
                }
                counts.alert_events += p.alerts.len() as u64;
            }
            None => p.alerts.clear(),
        }
        if let Some(out) = &mut self.files.logs {
            for ev in &p.logs {
                out.write(&crate::logs::ecs::to_ecs(ev))?;
            }
            counts.log_events += p.logs.len() as u64;
        }
        if let Some(x) = &mut self.exports {
            x.windows.extend(p.windows.iter().cloned());
            x.decisions.extend(p.decisions.iter().cloned());
            x.alerts.extend(p.alerts.iter().cloned());
            x.logs.append(&mut p.logs);
            x.access.append(&mut p.access);
            x.forgotten.append(&mut p.forgotten);
        }
        p.windows.clear();
        p.forgotten.clear();
        p.logs.clear();
        p.access.clear();
        match &mut self.to_act {
            Some(a) => a.append(&mut p.decisions),
            None => p.decisions.clear(),
        }
        match &mut self.to_notify {
            Some(n) => n.append(&mut p.alerts),
            None => p.alerts.clear(),
        }
        Ok(())
    }

    /// A partition taken over from another consumer: its records in windows
    /// ending by `h.closed_ns` were counted there (or were late there).
    pub fn set_handoff(&mut self, clock: usize, h: Handoff) {
        self.core.streams.set_handoff(clock, h);
    }

    /// Drops a stream's state (a revoked Kafka partition). Returns the series dropped.
    pub fn drop_stream(&mut self, source: usize, stream: &str) -> io::Result<usize> {
        let n = self.core.drop_stream(source, stream, &mut self.produced);
        self.drain()?;
        Ok(n)
    }

    /// See [`Core::low_water_marks`].
    pub fn low_water_marks(&mut self, source: usize) -> std::collections::BTreeMap<String, i64> {
        self.core.low_water_marks(source)
    }

    /// Low-water marks and handoffs, for the checkpoint.
    pub fn kafka_state(&self) -> KafkaState {
        self.core.streams.kafka_state()
    }

    pub fn restore_kafka_state(&mut self, lw: &[(usize, i64, u64)], handoffs: &[(usize, Handoff)]) {
        self.core.streams.restore_kafka_state(lw, handoffs);
    }

    /// Completes app log events whose stream has been quiet for `quiet`.
    pub fn flush_quiet_logs(
        &mut self,
        now: std::time::Instant,
        quiet: std::time::Duration,
    ) -> io::Result<()> {
        self.core.flush_quiet_logs(now, quiet, &mut self.produced);
        self.drain()
    }

    /// Keeps what a receiving task could not make a line of (a syslog
    /// frame that is no syslog message), with the reason.
    pub fn reject(&mut self, source: &str, reason: String, text: &str) -> io::Result<()> {
        self.core.counts.dead_letters += 1;
        let kind = DeadKind::Malformed;
        self.core.counts.dead_letter_kinds.add(kind);
        self.files.dead_letters.write(&DeadLetter {
            source: source.to_string(),
            offset: 0,
            format: "syslog".to_string(),
            kind,
            reason,
            line: text.to_string(),
        })
    }

    /// Keeps a batch an external sink refused for good, with the reason.
    pub fn dead_letter_batch(
        &mut self,
        sink: &str,
        format: &str,
        reason: String,
        body: &str,
    ) -> io::Result<()> {
        self.core.counts.dead_letters += 1;
        let kind = DeadKind::RefusedBySink;
        self.core.counts.dead_letter_kinds.add(kind);
        self.files.dead_letters.write(&DeadLetter {
            source: sink.to_string(),
            offset: 0,
            format: format.to_string(),
            kind,
            reason,
            line: body.to_string(),
        })
    }

    /// Writes a decision taken outside the engine (a failed action, a manual
    /// scale) to the decisions output.
    pub fn record_decision(&mut self, d: &Decision) -> io::Result<()> {
        if let Some(out) = &mut self.files.decisions {
            out.write(d)?;
            self.core.counts.decisions += 1;
            if let Some(x) = &mut self.exports {
                x.decisions.push(d.clone());
            }
        }
        Ok(())
    }

    /// Puts a new, validated rule set in force for every rule consumer at
    /// once (policies, alerts, health), keeping what they track per app.
    pub fn replace_rules(&mut self, rules: &crate::rules::RuleSet) {
        let e = &mut self.core.evaluate;
        if let Some(decider) = &mut e.decider {
            decider.set_rules(rules.clone());
        }
        if let Some(alerter) = &mut e.alerter {
            alerter.set_rules(rules.alerts.clone());
        }
        if let Some(h) = &mut e.health {
            h.set_rules(rules.health.clone());
        }
        self.core.rules_changed();
    }

    /// The format a source is decoded with (the detected one for `auto`).
    pub fn source_format(&self, source: usize) -> Format {
        self.core.source_format(source)
    }

    /// Adds a source's decoder; returns the index to pass to [`Pipeline::process`].
    pub fn add_source(&mut self, format: Format, mapping: Mapping) -> usize {
        self.core.add_source(format, mapping)
    }

    /// Container metrics from a source that yields them directly (a scrape).
    pub fn process_metrics(
        &mut self,
        source: usize,
        metrics: &[crate::model::ContainerMetric],
    ) -> io::Result<()> {
        self.core
            .process_metrics(source, metrics, &mut self.produced);
        self.drain()
    }

    /// A source without input for a while stops holding the watermark back
    /// (`idle`), or counts again once it has input.
    pub fn set_source_idle(&mut self, source: usize, idle: bool) -> io::Result<()> {
        self.core.set_source_idle(source, idle, &mut self.produced);
        self.drain()
    }

    /// Decodes and windows every line of a chunk of whole lines.
    pub fn process(&mut self, source: usize, chunk: &Chunk) -> io::Result<()> {
        self.core.process(source, chunk, &mut self.produced);
        self.drain()
    }

    /// See [`Core::clock_for`].
    pub fn clock_for(&mut self, source: usize, stream: &str) -> usize {
        self.core.clock_for(source, stream)
    }

    /// Which stream has which clock, for the checkpoint.
    pub fn stream_clocks(&self) -> Vec<(usize, String, usize)> {
        self.core.streams.stream_clocks()
    }

    pub fn restore_stream_clocks(&mut self, saved: &[(usize, String, usize)]) {
        self.core.streams.restore_stream_clocks(saved);
    }

    /// The clocks of `source`'s streams.
    pub fn clocks_of(&self, source: usize) -> Vec<usize> {
        self.core.streams.clocks_of(source)
    }

    /// See [`Core::process_on_clock`].
    pub fn process_on_clock(
        &mut self,
        source: usize,
        clock: usize,
        chunk: &Chunk,
    ) -> io::Result<()> {
        self.core
            .process_on_clock(source, clock, chunk, &mut self.produced);
        self.drain()
    }

    pub fn process_bytes(
        &mut self,
        source: usize,
        name: &str,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        self.core
            .process_bytes(source, name, offset, data, &mut self.produced);
        self.drain()
    }

    /// Processing-time heartbeat (see [`Core::heartbeat`]).
    pub fn heartbeat(&mut self, idle_ns: i64) -> io::Result<()> {
        self.core.heartbeat(idle_ns, &mut self.produced);
        self.drain()
    }

    /// End of input: closes every open window and flushes the outputs.
    pub fn finish(&mut self) -> io::Result<()> {
        self.core.finish(&mut self.produced);
        self.drain()?;
        self.flush()
    }

    /// Hands what is buffered for the output files to the kernel (no fsync).
    pub fn flush(&mut self) -> io::Result<()> {
        let f = &mut self.files;
        f.windows.flush()?;
        for out in [&mut f.decisions, &mut f.alerts, &mut f.logs]
            .into_iter()
            .flatten()
        {
            out.flush()?;
        }
        f.dead_letters.flush()
    }

    /// Flushes and fsyncs every output; returns their lengths (for a checkpoint).
    pub fn sync(&mut self) -> io::Result<OutputLengths> {
        let f = &mut self.files;
        let synced = |out: &mut Option<JsonlFile>| -> io::Result<Option<u64>> {
            out.as_mut().map(|o| o.sync().map(|()| o.len())).transpose()
        };
        let decisions = synced(&mut f.decisions)?;
        let alerts = synced(&mut f.alerts)?;
        let logs = synced(&mut f.logs)?;
        f.windows.sync()?;
        f.dead_letters.sync()?;
        Ok(OutputLengths {
            windows: f.windows.len(),
            dead_letters: f.dead_letters.len(),
            decisions,
            alerts,
            logs,
        })
    }
}

/// Output file lengths at a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLengths {
    pub windows: u64,
    pub dead_letters: u64,
    pub decisions: Option<u64>,
    pub alerts: Option<u64>,
    pub logs: Option<u64>,
}

/// What a replay did, printed at its end.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReplaySummary {
    pub counts: Counts,
    pub seconds: f64,
}

impl ReplaySummary {
    pub fn lines_per_sec(&self) -> f64 {
        self.counts.lines as f64 / self.seconds.max(1e-9)
    }
}

/// Reads `inputs` in order (`-` is stdin) as fast as possible through one
/// pipeline, then closes every window.
pub fn replay(pipeline: &mut Pipeline, inputs: &[(usize, String)]) -> io::Result<ReplaySummary> {
    let started = Instant::now();
    let mut buf = Vec::new();
    for (source, input) in inputs {
        if input == "-" {
            replay_reader(pipeline, *source, input, &mut io::stdin().lock(), &mut buf)?;
            continue;
        }
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{input}: {e}"));
        let mut file = File::open(input).map_err(named)?;
        match map_regular_file(&file).map_err(named)? {
            Some(map) => replay_mapped(pipeline, *source, input, &map)?,
            None => replay_reader(pipeline, *source, input, &mut file, &mut buf)?,
        }
    }
    pipeline.finish()?;
    Ok(ReplaySummary {
        counts: pipeline.core.counts,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A non-empty regular file mapped into memory; `None` for anything else
/// (a pipe, a device, an empty file), which is read instead. Mapping saves
/// the copy out of the page cache, a tenth of replay's time.
fn map_regular_file(file: &File) -> io::Result<Option<memmap2::Mmap>> {
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the map is only read, and only while `file` is open. A file
    // truncated by another process while it is replayed ends the process
    // with SIGBUS: the trade every mapping reader (ripgrep, for one) makes
    // for a file it was given to read; `vane run` reads with `read(2)`.
    let map = unsafe { memmap2::Mmap::map(file)? };
    // Advice only: on failure the kernel reads ahead its default way.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Some(map))
}

/// A mapped file in chunks of at most [`MAX_CHUNK`] that end at a line end;
/// a longer line is cut into parts that fail to decode, loudly (the rule of
/// the file source and of the reader below).
fn replay_mapped(
    pipeline: &mut Pipeline,
    source: usize,
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let mut offset = 0usize;
    while offset < data.len() {
        let rest = &data[offset..];
        let window = &rest[..rest.len().min(MAX_CHUNK)];
        let end = match memchr::memrchr(b'\n', window) {
            _ if window.len() == rest.len() => rest.len(),
            Some(nl) => nl + 1,
            None => window.len(),
        };
        pipeline.process_bytes(source, name, offset as u64, &rest[..end])?;
        offset += end;
    }
    Ok(())
}

/// A stream read through a buffer, whole lines at a time.
fn replay_reader(
    pipeline: &mut Pipeline,
    source: usize,
    name: &str,
    reader: &mut dyn Read,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    buf.resize(MAX_CHUNK, 0);
    let mut filled = 0usize;
    let mut offset = 0u64;
    loop {
        if filled == buf.len() {
            // One line fills the buffer: its parts go on as lines of their
            // own and fail to decode, rather than the buffer growing
            // without bound.
            pipeline.process_bytes(source, name, offset, &buf[..filled])?;
            offset += filled as u64;
            filled = 0;
        }
        let n = reader.read(&mut buf[filled..])?;
        if n == 0 {
            if filled > 0 {
                pipeline.process_bytes(source, name, offset, &buf[..filled])?;
            }
            return Ok(());
        }
        filled += n;
        let Some(last_nl) = memchr::memrchr(b'\n', &buf[..filled]) else {
            continue;
        };
        let whole = last_nl + 1;
        pipeline.process_bytes(source, name, offset, &buf[..whole])?;
        offset += whole as u64;
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mapped file and the same bytes read as a stream give the same
    /// rows and dead letters: chunks end at line ends either way, a line
    /// longer than a chunk is cut in two, a last line without `\n` counts.
    #[test]
    fn a_mapped_file_replays_as_the_same_bytes_read() {
        let line = |t: u32, app: &str| {
            format!(
                "{app}.example.com - [2026-01-01T00:00:{:02}.000Z] \"GET / HTTP/1.1\" 200 0 5 \"-\" \"c\" \"1.2.3.4:5\" \"10.0.0.1:6\" response_time:0.010 app_id:\"{app}\" app_index:\"0\"\n",
                t % 60
            )
        };
        let mut data = String::new();
        for i in 0..(MAX_CHUNK / 100) as u32 {
            data.push_str(&line(i / 800, if i % 3 == 0 { "a" } else { "b" }));
        }
        data.push_str(&"x".repeat(MAX_CHUNK + 10));
        data.push('\n');
        data.push_str(line(59, "a").trim_end());
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, mapped: bool| {
            let out =
                |n: &str| JsonlFile::open(&dir.path().join(format!("{name}-{n}")), None).unwrap();
            let mut p = Pipeline::new(WindowConfig::default(), out("w"), out("d"));
            let source = p.add_source(Format::Gorouter, Mapping::new());
            if mapped {
                replay_mapped(&mut p, source, "f", data.as_bytes()).unwrap();
            } else {
                let mut reader = data.as_bytes();
                replay_reader(&mut p, source, "f", &mut reader, &mut Vec::new()).unwrap();
            }
            p.finish().unwrap();
            let read =
                |n: &str| std::fs::read_to_string(dir.path().join(format!("{name}-{n}"))).unwrap();
            (p.core.counts, read("w"), read("d"))
        };
        let (mapped, read) = (run("mapped", true), run("read", false));
        assert_eq!(mapped.0.lines, (MAX_CHUNK / 100) as u64 + 3);
        assert_eq!(mapped.0.dead_letters, 2, "the long line, cut in two");
        assert!(mapped.0.windows_written > 0);
        assert_eq!(mapped, read);
    }

    fn record(offset: u64, line: &str) -> Chunk {
        Chunk {
            source: "logs/0".into(),
            file: None,
            offset,
            data: format!("{line}\n").into_bytes(),
            key: Some("shop/0".into()),
            time_ns: None,
        }
    }

    /// A Kafka partition of app logs is committed no further than the first
    /// line of an event still open: whoever reads it next rebuilds the event.
    #[test]
    fn open_app_log_events_hold_the_low_water_mark() {
        let dir = tempfile::tempdir().unwrap();
        let out = |n: &str| JsonlFile::open(&dir.path().join(n), None).unwrap();
        let mut p = Pipeline::new(WindowConfig::default(), out("w.jsonl"), out("d.jsonl"))
            .with_logs(out("logs.jsonl"));
        let idx = p.add_source(Format::AppLog, Mapping::new());
        let clock = p.clock_for(idx, "logs/0");
        let head = "2026-01-01 10:00:00,000 ERROR [main] Shop - failed";
        p.process_on_clock(idx, clock, &record(5, head)).unwrap();
        p.process_on_clock(idx, clock, &record(6, "\tat shop.Cart(Cart.java:1)"))
            .unwrap();
        assert_eq!(p.low_water_marks(idx).get("logs/0"), Some(&5));
        p.process_on_clock(idx, clock, &record(7, head)).unwrap();
        assert_eq!(p.core.counts.log_events, 1);
        assert_eq!(p.low_water_marks(idx).get("logs/0"), Some(&7));
        // The partition moves to another consumer: the open event goes too.
        p.drop_stream(idx, "logs/0").unwrap();
        assert_eq!(p.low_water_marks(idx).get("logs/0"), None);
    }
}
