//! Wiring of the pure core: lines → decode → windows → sinks. Shared by
//! `vane replay` (as fast as possible, then flush) and `vane run` (driven by
//! the live loop in [`crate::run`]).

use std::fs::File;
use std::io::{self, Read};
use std::time::Instant;

use serde::Serialize;

use crate::decode::{Format, Mapping, SourceDecoder};
use crate::logs::{Assembler, LineMeta, LogEvent};
use crate::model::WindowStats;
use crate::rules::Decision;
use crate::rules::alert::{AlertEvent, Alerter};
use crate::rules::decider::Decider;
use crate::rules::health::HealthWatcher;
use crate::sinks::{DeadLetter, JsonlFile};
use crate::sources::{Chunk, MAX_CHUNK};
use crate::window::{Pushed, WindowAggregator, WindowConfig};

/// Counts that must add up: every non-blank line read is decoded (then either
/// in a window or late) or a dead letter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    pub lines: u64,
    pub blank: u64,
    pub decoded: u64,
    pub late: u64,
    pub dead_letters: u64,
    pub windows_written: u64,
    #[serde(default)]
    pub decisions: u64,
    /// Container metric samples read (Loggregator sources).
    #[serde(default)]
    pub metric_samples: u64,
    #[serde(default)]
    pub alert_events: u64,
    /// App log events completed (each of one or more lines).
    #[serde(default)]
    pub log_events: u64,
    /// Kafka records read again after a rebalance that the partition's
    /// previous owner had already counted in windows it emitted.
    #[serde(default)]
    pub handed_over: u64,
    pub bytes: u64,
}

pub struct Pipeline {
    pub windows: WindowAggregator,
    decoders: Vec<SourceDecoder>,
    out: Outputs,
    dead_out: JsonlFile,
    closed: Vec<WindowStats>,
    pub counts: Counts,
    /// Per source (by index): what its lines became.
    pub source_counts: Vec<SourceCounts>,
    /// Event time of the next burst probe (with policies that have a burst
    /// factor): once per second of event time, on the open window.
    next_probe_ns: Option<i64>,
    /// Extra event clocks of sources with several streams, by (source, stream).
    clocks: std::collections::HashMap<(usize, String), usize>,
    /// Lines are numbered by record, not by byte (see `process_on_clock`).
    record_numbered: bool,
    /// The key and timestamp of the Kafka record being processed.
    record_key: Option<String>,
    record_time_ns: Option<i64>,
    /// App log events (with an app-log source).
    logs: Option<LogOutputs>,
    /// The event clock of the chunk being processed.
    current_clock: usize,
    /// The handoff of the current clock's partition: records of windows
    /// ending by then were counted by its previous owner (looked up once
    /// per chunk, not per record).
    current_handoff_ns: Option<i64>,
    /// Kafka partitions (by clock): per open window, the offset of its first
    /// record — what the group may restart from without losing an open
    /// window's records (the low-water mark).
    low_water: Vec<Vec<(i64, u64)>>,
    /// Kafka partitions taken over from another owner (by clock).
    handoffs: std::collections::HashMap<usize, Handoff>,
    /// Access log records also become ECS documents (for Elasticsearch).
    access_docs: bool,
}

/// Per Kafka partition clock: (clock, window start, first offset) of open
/// windows, and (clock, handoff) of partitions taken over.
pub type KafkaState = (Vec<(usize, i64, u64)>, Vec<(usize, Handoff)>);

/// What one source's lines became (for `/metrics`; not checkpointed, so
/// these count from the start of the process, as Prometheus counters do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceCounts {
    pub lines: u64,
    pub decoded: u64,
    pub late: u64,
    pub dead_letters: u64,
}

/// Where a Kafka partition's previous owner left it: every window ending
/// by `closed_ns` was emitted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Handoff {
    pub closed_ns: i64,
}

/// App log lines joined into events, and where the events go.
struct LogOutputs {
    assembler: Assembler,
    out: JsonlFile,
    done: Vec<LogEvent>,
}

/// Where closed windows go: the window rows, and (with rules) the decisions
/// taken on them.
struct Outputs {
    windows: JsonlFile,
    decisions: Option<(Decider, JsonlFile)>,
    decided: Vec<Decision>,
    alerts: Option<(Alerter, JsonlFile)>,
    alerted: Vec<AlertEvent>,
    /// Health rules: restart decisions (with the decisions) and budget alerts.
    health: Option<HealthWatcher>,
    /// Alert transitions kept for notifiers (when there are any).
    to_notify: Option<Vec<AlertEvent>>,
    /// Decisions kept for the actuator (when there is one).
    to_act: Option<Vec<Decision>>,
    /// Window rows and decisions kept for external sinks (when there are any).
    exports: Option<Exports>,
}

/// What closed since the last [`Pipeline::take_exports`].
#[derive(Debug, Default)]
pub struct Exports {
    pub windows: Vec<WindowStats>,
    pub decisions: Vec<Decision>,
    pub logs: Vec<LogEvent>,
    pub alerts: Vec<AlertEvent>,
    /// Access log records as ECS documents (with [`Pipeline::with_access_docs`]).
    pub access: Vec<crate::logs::ecs::AccessDoc>,
}

impl Outputs {
    /// Writes closed windows, then decides and evaluates alerts on them, one
    /// window at a time. `by_clock`: they were closed by the processing-time
    /// heartbeat, so rows without requests are no evidence (left out).
    fn emit(
        &mut self,
        closed: &mut Vec<WindowStats>,
        counts: &mut Counts,
        by_clock: bool,
    ) -> io::Result<()> {
        for w in closed.iter() {
            self.windows.write(w)?;
            counts.windows_written += 1;
        }
        if let Some(x) = &mut self.exports {
            x.windows.extend(closed.iter().cloned());
        }
        if self.decisions.is_some() || self.alerts.is_some() || self.health.is_some() {
            let mut i = 0;
            while i < closed.len() {
                let end = closed[i].end.clone();
                let j = closed[i..]
                    .iter()
                    .position(|r| r.end != end)
                    .map_or(closed.len(), |k| i + k);
                let group = &closed[i..j];
                let evidence: Vec<WindowStats>;
                let rows = if by_clock {
                    evidence = group
                        .iter()
                        .filter(|r| {
                            group
                                .iter()
                                .any(|a| a.instance.is_none() && a.app == r.app && a.requests > 0)
                        })
                        .cloned()
                        .collect();
                    &evidence[..]
                } else {
                    group
                };
                if let Ok(end_ns) = crate::time::parse_iso8601(end.as_bytes()) {
                    if let Some((decider, _)) = &mut self.decisions {
                        decider.on_window(end_ns, rows, &mut self.decided);
                    }
                    if let Some((alerter, _)) = &mut self.alerts {
                        alerter.on_window(end_ns, rows, &mut self.alerted);
                    }
                    // Health sees every row (an idle source's silence is told
                    // apart inside: it needs other instances reporting).
                    if let Some(h) = &mut self.health {
                        h.on_window(end_ns, group, &mut self.decided, &mut self.alerted);
                    }
                }
                i = j;
            }
        }
        if let Some((_, out)) = &mut self.decisions {
            for d in self.decided.drain(..) {
                out.write(&d)?;
                counts.decisions += 1;
                if let Some(x) = &mut self.exports {
                    x.decisions.push(d.clone());
                }
                if let Some(a) = &mut self.to_act {
                    a.push(d);
                }
            }
        }
        if let Some((_, out)) = &mut self.alerts {
            for e in self.alerted.drain(..) {
                out.write(&e)?;
                counts.alert_events += 1;
                if let Some(x) = &mut self.exports {
                    x.alerts.push(e.clone());
                }
                if let Some(n) = &mut self.to_notify {
                    n.push(e);
                }
            }
        }
        closed.clear();
        Ok(())
    }
}

impl Pipeline {
    pub fn new(window: WindowConfig, windows_out: JsonlFile, dead_out: JsonlFile) -> Self {
        Pipeline {
            windows: WindowAggregator::new(window),
            decoders: Vec::new(),
            out: Outputs {
                windows: windows_out,
                decisions: None,
                decided: Vec::new(),
                alerts: None,
                alerted: Vec::new(),
                health: None,
                to_notify: None,
                to_act: None,
                exports: None,
            },
            dead_out,
            closed: Vec::new(),
            counts: Counts::default(),
            source_counts: Vec::new(),
            next_probe_ns: None,
            clocks: std::collections::HashMap::new(),
            record_numbered: false,
            record_key: None,
            record_time_ns: None,
            logs: None,
            current_clock: 0,
            current_handoff_ns: None,
            low_water: Vec::new(),
            handoffs: std::collections::HashMap::new(),
            access_docs: false,
        }
    }

    /// Every decoded access log record is also kept as an ECS document for
    /// the external sinks (needs [`Pipeline::with_exports`]).
    pub fn with_access_docs(mut self) -> Self {
        self.access_docs = true;
        self
    }

    /// A partition taken over from another consumer: its records in windows
    /// ending by `h.closed_ns` were counted there (or were late there).
    pub fn set_handoff(&mut self, clock: usize, h: Handoff) {
        self.handoffs.insert(clock, h);
    }

    /// Drops a stream's state (a revoked Kafka partition): its apps' series
    /// and open windows (another consumer now counts them), its low-water
    /// marks and handoff. Returns the series dropped.
    pub fn drop_stream(&mut self, source: usize, stream: &str) -> io::Result<usize> {
        let Some(&clock) = self.clocks.get(&(source, stream.to_string())) else {
            return Ok(0);
        };
        let n = self.windows.drop_input(clock, &mut self.closed);
        if let Some(lw) = self.low_water.get_mut(clock) {
            lw.clear();
        }
        if let Some(l) = &mut self.logs {
            l.assembler.drop_stream(stream);
        }
        self.handoffs.remove(&clock);
        self.out.emit(&mut self.closed, &mut self.counts, false)?;
        Ok(n)
    }

    /// Per stream of `source`: the offset of the first record of a window
    /// still open, or of the first line of an app log event still open
    /// (streams without one are absent: their next offset is it).
    pub fn low_water_marks(&mut self, source: usize) -> std::collections::BTreeMap<String, i64> {
        let len = self.windows.config().length_ns;
        let closed = self.windows.closed_through();
        let mut out = std::collections::BTreeMap::new();
        for ((s, stream), clock) in &self.clocks {
            if *s != source {
                continue;
            }
            let mut min = None;
            if let Some(lw) = self.low_water.get_mut(*clock) {
                lw.retain(|(start, _)| closed.is_none_or(|c| start + len > c));
                min = lw.iter().map(|(_, o)| *o).min();
            }
            let open_log = self
                .logs
                .as_ref()
                .and_then(|l| l.assembler.first_open_offset(stream));
            if let Some(m) = min.into_iter().chain(open_log).min() {
                out.insert(stream.clone(), i64::try_from(m).unwrap_or(i64::MAX));
            }
        }
        out
    }

    /// Low-water marks and handoffs, for the checkpoint: (clock, window start, offset)
    /// and (clock, handoff).
    pub fn kafka_state(&self) -> KafkaState {
        let lw = self
            .low_water
            .iter()
            .enumerate()
            .flat_map(|(c, v)| v.iter().map(move |(s, o)| (c, *s, *o)))
            .collect();
        let mut h: Vec<_> = self.handoffs.iter().map(|(c, h)| (*c, *h)).collect();
        h.sort_by_key(|(c, _)| *c);
        (lw, h)
    }

    pub fn restore_kafka_state(&mut self, lw: &[(usize, i64, u64)], handoffs: &[(usize, Handoff)]) {
        for (c, start, off) in lw {
            if self.low_water.len() <= *c {
                self.low_water.resize(*c + 1, Vec::new());
            }
            self.low_water[*c].push((*start, *off));
        }
        self.handoffs = handoffs.iter().copied().collect();
    }

    /// Joins the lines of app-log sources into events, written to `out` as
    /// ECS documents (and kept for external sinks with exports).
    pub fn with_logs(mut self, out: JsonlFile) -> Self {
        self.logs = Some(LogOutputs {
            assembler: Assembler::new(),
            out,
            done: Vec::new(),
        });
        self
    }

    /// The open app log events (for the checkpoint).
    pub fn log_assembler(&self) -> Option<&Assembler> {
        self.logs.as_ref().map(|l| &l.assembler)
    }

    pub fn restore_log_assembler(&mut self, saved: Assembler) {
        if let Some(l) = &mut self.logs {
            l.assembler = saved;
        }
    }

    /// Completes app log events whose stream has been quiet for `quiet`.
    pub fn flush_quiet_logs(
        &mut self,
        now: std::time::Instant,
        quiet: std::time::Duration,
    ) -> io::Result<()> {
        if let Some(l) = &mut self.logs {
            l.assembler.flush_quiet(now, quiet, &mut l.done);
        }
        self.emit_logs()
    }

    fn emit_logs(&mut self) -> io::Result<()> {
        let Some(l) = &mut self.logs else {
            return Ok(());
        };
        for ev in l.done.drain(..) {
            l.out.write(&crate::logs::ecs::to_ecs(&ev))?;
            self.counts.log_events += 1;
            if let Some(x) = &mut self.out.exports {
                x.logs.push(ev);
            }
        }
        Ok(())
    }

    /// Evaluates `decider`'s rules on every closed window, writing decisions to `out`.
    pub fn with_decisions(mut self, decider: Decider, out: JsonlFile) -> Self {
        if decider.probes() {
            self.next_probe_ns = Some(i64::MIN);
        }
        self.out.decisions = Some((decider, out));
        self
    }

    /// Evaluates `alerter`'s alert rules on every closed window, writing alert
    /// transitions to `out`.
    pub fn with_alerts(mut self, alerter: Alerter, out: JsonlFile) -> Self {
        self.out.alerts = Some((alerter, out));
        self
    }

    /// Evaluates health rules on every closed window: restart decisions go
    /// with the decisions, restart-budget alerts with the alerts.
    pub fn with_health(mut self, watcher: HealthWatcher) -> Self {
        self.out.health = Some(watcher);
        self
    }

    pub fn health_mut(&mut self) -> Option<&mut HealthWatcher> {
        self.out.health.as_mut()
    }

    /// Keeps alert transitions for [`Pipeline::take_notifications`].
    pub fn with_notifications(mut self) -> Self {
        self.out.to_notify = Some(Vec::new());
        self
    }

    /// Alert transitions since the last call (for notifiers).
    pub fn take_notifications(&mut self) -> Vec<AlertEvent> {
        self.out
            .to_notify
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Keeps decisions for [`Pipeline::take_decisions`].
    pub fn with_actions(mut self) -> Self {
        self.out.to_act = Some(Vec::new());
        self
    }

    /// Keeps window rows and decisions for [`Pipeline::take_exports`].
    pub fn with_exports(mut self) -> Self {
        self.out.exports = Some(Exports::default());
        self
    }

    /// Window rows and decisions since the last call (for external sinks).
    pub fn take_exports(&mut self) -> Exports {
        self.out
            .exports
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Keeps a batch an external sink refused for good, with the reason.
    pub fn dead_letter_batch(
        &mut self,
        sink: &str,
        format: &str,
        reason: String,
        body: &str,
    ) -> io::Result<()> {
        self.counts.dead_letters += 1;
        self.dead_out.write(&DeadLetter {
            source: sink.to_string(),
            offset: 0,
            format: format.to_string(),
            reason,
            line: body.to_string(),
        })
    }

    /// Decisions since the last call (for the actuator).
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        self.out
            .to_act
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Writes a decision taken outside the engine (a failed action, a manual
    /// scale) to the decisions output.
    pub fn record_decision(&mut self, d: &Decision) -> io::Result<()> {
        if let Some((_, out)) = &mut self.out.decisions {
            out.write(d)?;
            self.counts.decisions += 1;
            if let Some(x) = &mut self.out.exports {
                x.decisions.push(d.clone());
            }
        }
        Ok(())
    }

    /// Puts a new, validated rule set in force for every rule consumer at
    /// once (policies, alerts, health), keeping what they track per app.
    pub fn replace_rules(&mut self, rules: &crate::rules::RuleSet) {
        if let Some((decider, _)) = &mut self.out.decisions {
            decider.set_rules(rules.clone());
            self.next_probe_ns = decider.probes().then_some(i64::MIN);
        }
        if let Some((alerter, _)) = &mut self.out.alerts {
            alerter.set_rules(rules.alerts.clone());
        }
        if let Some(h) = &mut self.out.health {
            h.set_rules(rules.health.clone());
        }
    }

    pub fn alerter_mut(&mut self) -> Option<&mut Alerter> {
        self.out.alerts.as_mut().map(|(a, _)| a)
    }

    pub fn decider_mut(&mut self) -> Option<&mut Decider> {
        self.out.decisions.as_mut().map(|(d, _)| d)
    }

    /// The format a source is decoded with (the detected one for `auto`).
    pub fn source_format(&self, source: usize) -> Format {
        self.decoders
            .get(source)
            .map_or(Format::Auto, SourceDecoder::format)
    }

    /// Adds a source's decoder; returns the index to pass to [`Pipeline::process`].
    pub fn add_source(&mut self, format: Format, mapping: Mapping) -> usize {
        self.decoders.push(SourceDecoder::new(format, mapping));
        self.source_counts.push(SourceCounts::default());
        let idx = self.decoders.len() - 1;
        self.windows.set_input(idx);
        idx
    }

    /// Container metrics from a source that yields them directly (a scrape).
    pub fn process_metrics(
        &mut self,
        source: usize,
        metrics: &[crate::model::ContainerMetric],
    ) -> io::Result<()> {
        self.windows.set_input(source);
        for m in metrics {
            self.windows.push_metric(m, &mut self.closed);
        }
        self.counts.metric_samples += metrics.len() as u64;
        self.out.emit(&mut self.closed, &mut self.counts, false)
    }

    /// A source without input for a while stops holding the watermark back
    /// (`idle`), or counts again once it has input.
    pub fn set_source_idle(&mut self, source: usize, idle: bool) -> io::Result<()> {
        self.windows.set_input_idle(source, idle, &mut self.closed);
        self.out.emit(&mut self.closed, &mut self.counts, false)
    }

    /// Decodes and windows every line of a chunk of whole lines.
    pub fn process(&mut self, source: usize, chunk: &Chunk) -> io::Result<()> {
        self.process_bytes(source, &chunk.source, chunk.offset, &chunk.data)
    }

    /// The event clock of one stream of a source (a Kafka partition): the
    /// first stream uses the source's own clock, later ones get their own, so
    /// that a partition read behind the others holds the watermark back
    /// instead of having its records counted late.
    pub fn clock_for(&mut self, source: usize, stream: &str) -> usize {
        if let Some(c) = self.clocks.get(&(source, stream.to_string())) {
            return *c;
        }
        let taken = self.clocks.keys().any(|(s, _)| *s == source);
        let clock = if taken {
            // Dense after the sources' own clocks: an unused clock would hold
            // the watermark back.
            let extra = self
                .clocks
                .values()
                .filter(|c| **c >= self.decoders.len())
                .count();
            self.decoders.len() + extra
        } else {
            source
        };
        self.clocks.insert((source, stream.to_string()), clock);
        clock
    }

    /// Which stream has which clock, for the checkpoint (the window snapshot
    /// holds the clocks by number).
    pub fn stream_clocks(&self) -> Vec<(usize, String, usize)> {
        let mut v: Vec<_> = self
            .clocks
            .iter()
            .map(|((s, k), c)| (*s, k.clone(), *c))
            .collect();
        v.sort();
        v
    }

    pub fn restore_stream_clocks(&mut self, saved: &[(usize, String, usize)]) {
        self.clocks = saved
            .iter()
            .map(|(s, k, c)| ((*s, k.clone()), *c))
            .collect();
    }

    /// The clocks of `source`'s streams.
    pub fn clocks_of(&self, source: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .clocks
            .iter()
            .filter(|((s, _), _)| *s == source)
            .map(|(_, c)| *c)
            .collect();
        v.sort_unstable();
        v
    }

    /// Like [`Pipeline::process`], on the event clock `clock` ([`Pipeline::clock_for`]).
    /// A chunk of records (Kafka) numbers its lines by record: dead letters
    /// name the record offset, `chunk.offset` + the line's index.
    pub fn process_on_clock(
        &mut self,
        source: usize,
        clock: usize,
        chunk: &Chunk,
    ) -> io::Result<()> {
        self.record_numbered = true;
        self.record_key.clone_from(&chunk.key);
        self.record_time_ns = chunk.time_ns;
        let r = self.process_lines(source, clock, &chunk.source, chunk.offset, &chunk.data);
        self.record_numbered = false;
        self.record_key = None;
        self.record_time_ns = None;
        r
    }

    pub fn process_bytes(
        &mut self,
        source: usize,
        name: &str,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        self.process_lines(source, source, name, offset, data)
    }

    fn process_lines(
        &mut self,
        source: usize,
        clock: usize,
        name: &str,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        // Each source (or stream) has its own event clock; the watermark
        // follows the slowest active one.
        self.windows.set_input(clock);
        self.current_clock = clock;
        self.current_handoff_ns = self.handoffs.get(&clock).map(|h| h.closed_ns);
        self.counts.bytes += data.len() as u64;
        // Validate the whole chunk at once (fast, vectorised); only a chunk
        // with invalid UTF-8 somewhere is checked line by line to find it.
        let text = simdutf8::basic::from_utf8(data).ok();
        let mut pos = 0;
        let mut index = 0u64;
        while pos < data.len() {
            let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
            let line_offset = if self.record_numbered {
                offset + index
            } else {
                offset + pos as u64
            };
            index += 1;
            let start = pos;
            pos = end + 1;
            let mut stop = end;
            if stop > start && data[stop - 1] == b'\r' {
                stop -= 1;
            }
            let bytes = &data[start..stop];
            if bytes.iter().all(u8::is_ascii_whitespace) {
                self.counts.blank += 1;
                continue;
            }
            self.counts.lines += 1;
            // `\n` and `\r` are ASCII, so these are char boundaries of `text`.
            let line = match text {
                Some(t) => Ok(&t[start..stop]),
                None => std::str::from_utf8(bytes),
            };
            self.line(source, name, line_offset, bytes, line)?;
        }
        Ok(())
    }

    #[inline]
    fn line(
        &mut self,
        source: usize,
        name: &str,
        offset: u64,
        bytes: &[u8],
        line: Result<&str, std::str::Utf8Error>,
    ) -> io::Result<()> {
        let decoder = &self.decoders[source];
        let mut probe_due = false;
        // Access logs give one record per line; container-metric envelopes any number.
        let decoded = match line {
            Err(e) => Err(format!("line: invalid UTF-8 at byte {}", e.valid_up_to())),
            Ok(text) if decoder.is_app_log() => match &mut self.logs {
                Some(logs) => {
                    let (app, instance) =
                        log_identity(self.record_key.as_deref(), decoder.mapping());
                    let meta = LineMeta {
                        stream: name,
                        offset,
                        app,
                        instance,
                        record_time_ns: self.record_time_ns,
                    };
                    logs.assembler.push(meta, text, &mut logs.done)
                }
                None => Err("app logs have no output here".to_string()),
            },
            Ok(text) if decoder.is_metrics(text) => crate::decode::decode_loggregator(text)
                .map(|metrics| {
                    for m in &metrics {
                        self.windows.push_metric(m, &mut self.closed);
                    }
                    self.counts.metric_samples += metrics.len() as u64;
                })
                .map_err(|e| e.to_string()),
            Ok(text) => decoder
                .decode(text)
                .map(|rec| {
                    if self.record_numbered {
                        let len = self.windows.config().length_ns;
                        let start = rec.time_ns.div_euclid(len) * len;
                        let clock = self.current_clock;
                        if self
                            .current_handoff_ns
                            .is_some_and(|closed| start + len <= closed)
                        {
                            // Its window was emitted by the previous owner.
                            self.counts.handed_over += 1;
                            return;
                        }
                        if self.low_water.len() <= clock {
                            self.low_water.resize(clock + 1, Vec::new());
                        }
                        let lw = &mut self.low_water[clock];
                        if !lw.iter().any(|(s, _)| *s == start) {
                            lw.push((start, offset));
                        }
                    }
                    if self.access_docs
                        && let Some(x) = &mut self.out.exports
                    {
                        x.access
                            .push(crate::logs::ecs::access_doc(&rec, text, name, offset));
                    }
                    if self.windows.push(&rec, &mut self.closed) == Pushed::Late {
                        self.counts.late += 1;
                        if let Some(c) = self.source_counts.get_mut(source) {
                            c.late += 1;
                        }
                    }
                    probe_due = self.next_probe_ns.is_some_and(|n| rec.time_ns >= n);
                })
                .map_err(|e| e.to_string()),
        };
        if let Some(c) = self.source_counts.get_mut(source) {
            c.lines += 1;
            match decoded {
                Ok(()) => c.decoded += 1,
                Err(_) => c.dead_letters += 1,
            }
        }
        match decoded {
            Ok(()) => self.counts.decoded += 1,
            Err(reason) => dead_letter(
                &mut self.dead_out,
                &mut self.counts,
                name,
                offset,
                decoder.format(),
                reason,
                bytes,
            )?,
        }
        if !self.closed.is_empty() {
            self.out.emit(&mut self.closed, &mut self.counts, false)?;
        }
        if self.logs.as_ref().is_some_and(|l| !l.done.is_empty()) {
            self.emit_logs()?;
        }
        if probe_due {
            self.probe()?;
        }
        Ok(())
    }

    /// Burst probes on the open window, at the newest event time's second.
    fn probe(&mut self) -> io::Result<()> {
        let Some(now) = self.windows.max_event_ns() else {
            return Ok(());
        };
        let second = now.div_euclid(crate::time::NANOS_PER_SEC) * crate::time::NANOS_PER_SEC;
        self.next_probe_ns = Some(second + crate::time::NANOS_PER_SEC);
        let Some((decider, out)) = &mut self.out.decisions else {
            return Ok(());
        };
        let loads = self.windows.open_loads();
        decider.probe(&loads, second, &mut self.out.decided);
        for d in self.out.decided.drain(..) {
            out.write(&d)?;
            self.counts.decisions += 1;
            if let Some(x) = &mut self.out.exports {
                x.decisions.push(d.clone());
            }
            if let Some(a) = &mut self.out.to_act {
                a.push(d);
            }
        }
        Ok(())
    }

    fn write_closed(&mut self) -> io::Result<()> {
        self.out.emit(&mut self.closed, &mut self.counts, false)
    }

    /// Processing-time heartbeat: the source has been idle for `idle_ns`, so the
    /// watermark moves on as if time had passed in the stream too.
    pub fn heartbeat(&mut self, idle_ns: i64) -> io::Result<()> {
        let Some(wm) = self.windows.event_watermark() else {
            return Ok(());
        };
        self.windows
            .advance_watermark(wm.saturating_add(idle_ns), &mut self.closed);
        // Windows closed by the clock, not by records: an app without requests
        // in them may just be an app whose logs stopped arriving, so for
        // decisions its data is missing (never a reason to scale down).
        self.out.emit(&mut self.closed, &mut self.counts, true)
    }

    /// End of input: closes every open window and flushes the outputs.
    pub fn finish(&mut self) -> io::Result<()> {
        self.windows.flush(&mut self.closed);
        self.write_closed()?;
        if let Some(l) = &mut self.logs {
            l.assembler.flush_all(&mut l.done);
        }
        self.emit_logs()?;
        if let Some(l) = &mut self.logs {
            l.out.flush()?;
        }
        self.out.windows.flush()?;
        if let Some((_, d)) = &mut self.out.decisions {
            d.flush()?;
        }
        if let Some((_, a)) = &mut self.out.alerts {
            a.flush()?;
        }
        self.dead_out.flush()
    }

    /// Hands what is buffered for the output files to the kernel (no fsync).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.windows.flush()?;
        if let Some((_, d)) = &mut self.out.decisions {
            d.flush()?;
        }
        if let Some((_, a)) = &mut self.out.alerts {
            a.flush()?;
        }
        if let Some(l) = &mut self.logs {
            l.out.flush()?;
        }
        self.dead_out.flush()
    }

    /// Flushes and fsyncs every output; returns their lengths (for a checkpoint).
    pub fn sync(&mut self) -> io::Result<OutputLengths> {
        self.out.windows.sync()?;
        self.dead_out.sync()?;
        let decisions = match &mut self.out.decisions {
            Some((_, d)) => {
                d.sync()?;
                Some(d.len())
            }
            None => None,
        };
        let alerts = match &mut self.out.alerts {
            Some((_, a)) => {
                a.sync()?;
                Some(a.len())
            }
            None => None,
        };
        let logs = match &mut self.logs {
            Some(l) => {
                l.out.sync()?;
                Some(l.out.len())
            }
            None => None,
        };
        Ok(OutputLengths {
            windows: self.out.windows.len(),
            dead_letters: self.dead_out.len(),
            decisions,
            alerts,
            logs,
        })
    }
}

/// Who wrote an app log line: the Kafka key (`app` or `app/instance`), else
/// the source's `app` and `instance`.
fn log_identity<'a>(key: Option<&'a str>, mapping: &'a Mapping) -> (&'a str, Option<&'a str>) {
    match key {
        Some(k) => match k.split_once('/') {
            Some((app, instance)) => (app, Some(instance)),
            None => (k, mapping.default_instance.as_deref()),
        },
        None => (&mapping.default_app, mapping.default_instance.as_deref()),
    }
}

fn dead_letter(
    out: &mut JsonlFile,
    counts: &mut Counts,
    source: &str,
    offset: u64,
    format: Format,
    reason: String,
    line: &[u8],
) -> io::Result<()> {
    counts.dead_letters += 1;
    out.write(&DeadLetter {
        source: source.to_string(),
        offset,
        format: format.name().to_string(),
        reason,
        line: String::from_utf8_lossy(line).into_owned(),
    })
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
    let mut buf = vec![0u8; MAX_CHUNK];
    for (source, input) in inputs {
        let source = *source;
        let mut reader: Box<dyn Read> = if input == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(
                File::open(input).map_err(|e| io::Error::new(e.kind(), format!("{input}: {e}")))?,
            )
        };
        let mut filled = 0usize;
        let mut offset = 0u64;
        loop {
            if filled == buf.len() {
                // A line longer than the buffer: grow rather than split it.
                buf.resize(buf.len() * 2, 0);
            }
            let n = reader.read(&mut buf[filled..])?;
            if n == 0 {
                if filled > 0 {
                    pipeline.process_bytes(source, input, offset, &buf[..filled])?;
                }
                break;
            }
            filled += n;
            let Some(last_nl) = memchr::memrchr(b'\n', &buf[..filled]) else {
                continue;
            };
            let whole = last_nl + 1;
            pipeline.process_bytes(source, input, offset, &buf[..whole])?;
            offset += whole as u64;
            buf.copy_within(whole..filled, 0);
            filled -= whole;
        }
    }
    pipeline.finish()?;
    Ok(ReplaySummary {
        counts: pipeline.counts,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(p.counts.log_events, 1);
        assert_eq!(p.low_water_marks(idx).get("logs/0"), Some(&7));
        // The partition moves to another consumer: the open event goes too.
        p.drop_stream(idx, "logs/0").unwrap();
        assert_eq!(p.low_water_marks(idx).get("logs/0"), None);
    }
}
