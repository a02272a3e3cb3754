//! The pure core: lines → decode → windows → evaluate (policies, alerts,
//! health). Synchronous `&mut self` state that takes records and time and
//! returns what it produced in a [`Produced`] — window rows, decisions,
//! alert transitions, app log events, dead letters, access documents. No
//! file or network I/O: the shell decides where each of those goes.

mod streams;
mod time_guard;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use streams::{Handoff, KafkaState, Streams};
pub use time_guard::{HeldLine, TimeGuard};
use time_guard::{Release, Verdict};

use crate::decode::{Format, Mapping, SourceDecoder};
use crate::logs::ecs::AccessDoc;
use crate::logs::{Assembler, LineMeta, LogEvent};
use crate::model::Decision;
use crate::model::{ContainerMetric, DeadKind, DeadKindCounts, DeadLetter, WindowStats};
use crate::rules::alert::{AlertEvent, Alerter};
use crate::rules::decider::Decider;
use crate::rules::health::HealthWatcher;
use crate::sources::Chunk;
use crate::time::NANOS_PER_SEC;
use crate::window::{Forgotten, OVERFLOW, Pushed, WindowAggregator, WindowConfig};

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
    /// `dead_letters` by kind.
    #[serde(default)]
    pub dead_letter_kinds: DeadKindCounts,
}

/// Why a line is a dead letter.
#[derive(Debug)]
pub struct Rejection {
    kind: DeadKind,
    reason: String,
}

impl Rejection {
    fn new(kind: DeadKind, reason: String) -> Self {
        Rejection { kind, reason }
    }

    fn malformed(e: impl std::fmt::Display) -> Self {
        Rejection::new(DeadKind::Malformed, e.to_string())
    }
}

/// What one source's lines became (for `/metrics`; not checkpointed, so
/// these count from the start of the process, as Prometheus counters do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceCounts {
    pub lines: u64,
    pub decoded: u64,
    pub late: u64,
    pub dead_letters: u64,
}

/// What the core produced since the shell last took it, in order.
#[derive(Debug, Default)]
pub struct Produced {
    /// Closed windows' rows, window by window, each sorted by app then instance.
    pub windows: Vec<WindowStats>,
    pub decisions: Vec<Decision>,
    pub alerts: Vec<AlertEvent>,
    pub logs: Vec<LogEvent>,
    pub dead_letters: Vec<DeadLetter>,
    /// Access log records as ECS documents (with [`Core::access_docs`]).
    pub access: Vec<AccessDoc>,
    /// Series the windows forgot (expired, or their partition moved away):
    /// the evaluators forgot them too, and so should every view of them.
    pub forgotten: Vec<Forgotten>,
}

impl Produced {
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
            && self.decisions.is_empty()
            && self.alerts.is_empty()
            && self.logs.is_empty()
            && self.dead_letters.is_empty()
            && self.access.is_empty()
            && self.forgotten.is_empty()
    }
}

/// What evaluates closed windows: each present when configured.
#[derive(Default)]
pub struct Evaluators {
    pub decider: Option<Decider>,
    pub alerter: Option<Alerter>,
    /// Restart decisions go with the decisions, budget alerts with the alerts.
    pub health: Option<HealthWatcher>,
}

impl Evaluators {
    /// Drops what is kept about a series the windows forgot, so state
    /// follows the fleet as it is, not every app ever seen. Alert state
    /// stays: an alert of a gone app resolves on its own.
    fn forget(&mut self, f: &Forgotten) {
        if f.instance.is_none()
            && let Some(d) = &mut self.decider
        {
            d.forget(&f.app);
        }
        if let Some(h) = &mut self.health {
            h.forget(&f.app, f.instance.as_deref());
        }
    }

    fn any(&self) -> bool {
        self.decider.is_some() || self.alerter.is_some() || self.health.is_some()
    }

    /// Evaluates the rows of closed windows, window by window. `by_clock`:
    /// they were closed by the processing-time heartbeat, so rows without
    /// requests are no evidence (left out of policies and alerts).
    fn on_closed(
        &mut self,
        closed: &[WindowStats],
        by_clock: bool,
        in_scope: &dyn Fn(&str) -> bool,
        out: &mut Produced,
    ) {
        let mut i = 0;
        while i < closed.len() {
            let end = closed[i].end;
            let j = closed[i..]
                .iter()
                .position(|r| r.end != end)
                .map_or(closed.len(), |k| i + k);
            let mut group = &closed[i..j];
            // Overflow rows speak for no app or instance of their own: no
            // policy, alert or health rule acts on them.
            let counted: Vec<WindowStats>;
            if group.iter().any(is_overflow) {
                counted = group.iter().filter(|r| !is_overflow(r)).cloned().collect();
                group = &counted[..];
            }
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
            let end_ns = end.nanos();
            if let Some(d) = &mut self.decider {
                d.on_window_of(end_ns, rows, in_scope, &mut out.decisions);
            }
            if let Some(a) = &mut self.alerter {
                a.on_window_of(end_ns, rows, in_scope, &mut out.alerts);
            }
            // Health sees every row (an idle source's silence is told
            // apart inside: it needs other instances reporting).
            if let Some(h) = &mut self.health {
                let first = out.decisions.len();
                h.on_window_of(end_ns, group, in_scope, &mut out.decisions, &mut out.alerts);
                if let (Some(d), Some(restarts)) = (&self.decider, out.decisions.get_mut(first..)) {
                    d.hold_paused(restarts);
                }
            }
            i = j;
        }
    }
}

fn is_overflow(row: &WindowStats) -> bool {
    row.app == OVERFLOW || row.instance.as_deref() == Some(OVERFLOW)
}

/// What became of a line that was not a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// Done, and a burst probe is due.
    Probe,
    /// Held by the time guard: counted once it is settled.
    Held,
}

/// The record being processed: how its lines are numbered and what a
/// Kafka record carries besides its value.
#[derive(Default)]
struct Current {
    clock: usize,
    /// Lines are numbered by record (Kafka), not by byte.
    record_numbered: bool,
    key: Option<String>,
    time_ns: Option<i64>,
    /// Records of windows ending by then were counted by the stream's
    /// previous owner (looked up once per chunk, not per record).
    handoff_ns: Option<i64>,
}

pub struct Core {
    pub windows: WindowAggregator,
    decoders: Vec<SourceDecoder>,
    pub evaluate: Evaluators,
    /// App log lines joined into events (with an app-log source).
    pub assembler: Option<Assembler>,
    /// Access log records also become ECS documents (for Elasticsearch).
    pub access_docs: bool,
    pub streams: Streams,
    pub counts: Counts,
    /// Per source (by index): what its lines became.
    pub source_counts: Vec<SourceCounts>,
    /// Event time of the next burst probe (with policies that have a burst
    /// factor): once per second of event time, on the open window.
    next_probe_ns: Option<i64>,
    current: Current,
    closed: Vec<WindowStats>,
    /// Holds records whose time is too far ahead to trust yet.
    pub guard: TimeGuard,
}

impl Core {
    pub fn new(window: WindowConfig) -> Self {
        Core {
            windows: WindowAggregator::new(window),
            decoders: Vec::new(),
            evaluate: Evaluators::default(),
            assembler: None,
            access_docs: false,
            streams: Streams::default(),
            counts: Counts::default(),
            source_counts: Vec::new(),
            next_probe_ns: None,
            current: Current::default(),
            closed: Vec::new(),
            guard: TimeGuard::new(time_guard::DEFAULT_MAX_FUTURE_NS),
        }
    }

    /// Probes (once per second of event time) only when a policy has a burst factor.
    pub fn rules_changed(&mut self) {
        let probes = self.evaluate.decider.as_ref().is_some_and(Decider::probes);
        self.next_probe_ns = probes.then_some(i64::MIN);
    }

    /// Adds a source's decoder; returns the index to pass with its input.
    pub fn add_source(&mut self, format: Format, mapping: Mapping) -> usize {
        self.decoders.push(SourceDecoder::new(format, mapping));
        self.source_counts.push(SourceCounts::default());
        let idx = self.decoders.len() - 1;
        self.windows.set_input(idx);
        idx
    }

    /// The format a source is decoded with (the detected one for `auto`).
    pub fn source_format(&self, source: usize) -> Format {
        self.decoders
            .get(source)
            .map_or(Format::Auto, SourceDecoder::format)
    }

    /// The event clock of one stream of a source (see [`Streams::clock_for`]).
    /// Each stream's windows close by its own clock: apps are keyed to
    /// partitions, so a partition read behind the others (taken over from
    /// a crashed consumer) rebuilds its windows without its records
    /// counting late against the others' watermark.
    pub fn clock_for(&mut self, source: usize, stream: &str) -> usize {
        let clock = self.streams.clock_for(source, stream, self.decoders.len());
        self.windows.own_shard(clock);
        clock
    }

    /// The apps whose windows the clock of `stream` closes.
    pub fn apps_of_stream(&self, source: usize, stream: &str) -> Vec<String> {
        self.streams
            .clock_of(source, stream)
            .map(|c| self.windows.apps_of_clock(c))
            .unwrap_or_default()
    }

    /// Per stream of `source`: the end of the newest window its clock
    /// closed (every window ending by then was emitted).
    pub fn closed_by_stream(&self, source: usize) -> std::collections::BTreeMap<String, i64> {
        self.streams
            .streams_of(source)
            .filter_map(|(stream, clock)| {
                let closed = self.windows.closed_through_of(clock)?;
                Some((stream.to_string(), closed))
            })
            .collect()
    }

    /// Drops a stream's state (a revoked Kafka partition): its apps' series
    /// and open windows (another consumer now counts them), its low-water
    /// marks and handoff. Returns the series dropped.
    pub fn drop_stream(&mut self, source: usize, stream: &str, out: &mut Produced) -> usize {
        let Some(clock) = self.streams.clock_of(source, stream) else {
            return 0;
        };
        let n = self.windows.drop_input(clock, &mut self.closed);
        // Its next owner reads them again (they hold its low-water mark back).
        let held = self.guard.take(clock).len();
        self.counts.decoded += held as u64;
        self.streams.forget_clock(clock);
        if let Some(a) = &mut self.assembler {
            a.drop_stream(stream);
        }
        self.emit(false, out);
        n
    }

    /// Per stream of `source`: the offset of the first record of a window
    /// still open, or of the first line of an app log event still open
    /// (streams without one are absent: their next offset is it).
    pub fn low_water_marks(&mut self, source: usize) -> std::collections::BTreeMap<String, i64> {
        let len = self.windows.config().length_ns;
        let windows = &self.windows;
        let closed = |clock| windows.closed_through_of(clock);
        let assembler = self.assembler.as_ref();
        self.streams.low_water_marks(source, closed, len, |stream| {
            assembler.and_then(|a| a.first_open_offset(stream))
        })
    }

    /// Decodes and windows every line of a chunk of whole lines.
    pub fn process(&mut self, source: usize, chunk: &Chunk, out: &mut Produced) {
        self.process_bytes(source, &chunk.source, chunk.offset, &chunk.data, out);
    }

    pub fn process_bytes(
        &mut self,
        source: usize,
        name: &str,
        offset: u64,
        data: &[u8],
        out: &mut Produced,
    ) {
        self.lines(source, source, name, offset, data, out);
    }

    /// Like [`Core::process`], on the event clock `clock` ([`Core::clock_for`]).
    /// A chunk of records (Kafka) numbers its lines by record: dead letters
    /// name the record offset, `chunk.offset` + the line's index.
    pub fn process_on_clock(
        &mut self,
        source: usize,
        clock: usize,
        chunk: &Chunk,
        out: &mut Produced,
    ) {
        self.current.record_numbered = true;
        self.current.key.clone_from(&chunk.key);
        self.current.time_ns = chunk.time_ns;
        self.lines(source, clock, &chunk.source, chunk.offset, &chunk.data, out);
        self.current.record_numbered = false;
        self.current.key = None;
        self.current.time_ns = None;
    }

    fn lines(
        &mut self,
        source: usize,
        clock: usize,
        name: &str,
        offset: u64,
        data: &[u8],
        out: &mut Produced,
    ) {
        // Each source (or stream) has its own event clock; the watermark
        // follows the slowest active one.
        self.windows.set_input(clock);
        self.current.clock = clock;
        self.current.handoff_ns = self.streams.handoff(clock).map(|h| h.closed_ns);
        self.counts.bytes += data.len() as u64;
        // Validate the whole chunk at once (fast, vectorised); only a chunk
        // with invalid UTF-8 somewhere is checked line by line to find it.
        let text = simdutf8::basic::from_utf8(data).ok();
        let mut pos = 0;
        let mut index = 0u64;
        while pos < data.len() {
            let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
            let line_offset = if self.current.record_numbered {
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
            self.line(source, name, line_offset, bytes, line, out);
        }
    }

    #[inline]
    fn line(
        &mut self,
        source: usize,
        name: &str,
        offset: u64,
        bytes: &[u8],
        line: Result<&str, std::str::Utf8Error>,
        out: &mut Produced,
    ) {
        if let Some(c) = self.source_counts.get_mut(source) {
            c.lines += 1;
        }
        let decoded = self.decode_line(source, name, offset, line, out);
        self.settle(source, name, offset, bytes, decoded, out);
    }

    /// What one line became: records folded in (or late), an app log line,
    /// metric samples — or held by the time guard, or why it is a dead letter.
    #[inline]
    fn decode_line(
        &mut self,
        source: usize,
        name: &str,
        offset: u64,
        line: Result<&str, std::str::Utf8Error>,
        out: &mut Produced,
    ) -> Result<Outcome, Rejection> {
        let decoder = &self.decoders[source];
        // Access logs give one record per line; container-metric envelopes any number.
        match line {
            Err(e) => Err(Rejection::new(
                DeadKind::InvalidUtf8,
                format!("line: invalid UTF-8 at byte {}", e.valid_up_to()),
            )),
            Ok(text) if decoder.is_app_log() => match &mut self.assembler {
                Some(assembler) => {
                    let (app, instance) =
                        log_identity(self.current.key.as_deref(), decoder.mapping());
                    let meta = LineMeta {
                        stream: name,
                        offset,
                        app,
                        instance,
                        record_time_ns: self.current.time_ns,
                    };
                    assembler
                        .push(meta, text, &mut out.logs)
                        .map(|()| Outcome::Done)
                        .map_err(Rejection::malformed)
                }
                None => Err(Rejection::new(
                    DeadKind::NoOutput,
                    "app logs have no output here".to_string(),
                )),
            },
            Ok(text) if decoder.is_metrics(text) => crate::decode::decode_loggregator(text)
                .map(|metrics| {
                    for m in &metrics {
                        self.windows.push_metric(m, &mut self.closed);
                    }
                    self.counts.metric_samples += metrics.len() as u64;
                    Outcome::Done
                })
                .map_err(Rejection::malformed),
            Ok(text) => self.access_line(source, name, offset, text, false, out),
        }
    }

    /// An access log line: decoded, its time checked (unless `released`
    /// from the time guard), folded into its window.
    #[inline]
    fn access_line(
        &mut self,
        source: usize,
        name: &str,
        offset: u64,
        text: &str,
        released: bool,
        out: &mut Produced,
    ) -> Result<Outcome, Rejection> {
        let rec = self.decoders[source]
            .decode(text)
            .map_err(Rejection::malformed)?;
        let clock = self.current.clock;
        if !released {
            let verdict = self
                .guard
                .judge(clock, rec.time_ns, self.windows.clock_max(clock));
            if verdict != Verdict::Accept(Release::Nothing) {
                let t = rec.time_ns;
                return self.guarded(source, name, offset, text, t, verdict, out);
            }
        }
        if self.current.record_numbered {
            let len = self.windows.config().length_ns;
            let start = rec.time_ns.div_euclid(len) * len;
            if self
                .current
                .handoff_ns
                .is_some_and(|closed| start + len <= closed)
            {
                // Its window was emitted by the previous owner.
                self.counts.handed_over += 1;
                return Ok(Outcome::Done);
            }
            self.streams.saw(clock, start, offset);
        }
        if self.access_docs {
            out.access
                .push(crate::logs::ecs::access_doc(&rec, text, name, offset));
        }
        if self.windows.push(&rec, &mut self.closed) == Pushed::Late {
            self.counts.late += 1;
            if let Some(c) = self.source_counts.get_mut(source) {
                c.late += 1;
            }
        }
        if self.next_probe_ns.is_some_and(|n| rec.time_ns >= n) {
            return Ok(Outcome::Probe);
        }
        Ok(Outcome::Done)
    }

    /// A record the time guard did not simply accept: the lines held on its
    /// clock go first (processed or dead-lettered), then it is held,
    /// accepted or rejected itself.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn guarded(
        &mut self,
        source: usize,
        name: &str,
        offset: u64,
        text: &str,
        time_ns: i64,
        verdict: Verdict,
        out: &mut Produced,
    ) -> Result<Outcome, Rejection> {
        let clock = self.current.clock;
        match verdict {
            Verdict::Reject(reason) => Err(Rejection::new(DeadKind::SkewedClock, reason)),
            Verdict::Accept(release) => {
                self.release_held(clock, release, out);
                self.access_line(source, name, offset, text, true, out)
            }
            Verdict::Hold(release) => {
                self.release_held(clock, release, out);
                if self.current.record_numbered
                    && let Some(newest) = self.windows.clock_max(clock)
                {
                    // Until it is settled the partition restarts before it.
                    let len = self.windows.config().length_ns;
                    self.streams
                        .saw(clock, newest.div_euclid(len) * len, offset);
                }
                let line = HeldLine {
                    source,
                    stream: name.to_string(),
                    offset,
                    time_ns,
                    record_numbered: self.current.record_numbered,
                    line: text.to_string(),
                };
                if self.guard.hold(clock, line) {
                    self.release_held(clock, Release::Accept, out);
                }
                Ok(Outcome::Held)
            }
        }
    }

    /// Settles the lines held on `clock`: processed in order (time really
    /// jumped) or dead letters (their clocks were skewed).
    fn release_held(&mut self, clock: usize, release: Release, out: &mut Produced) {
        if release == Release::Nothing {
            return;
        }
        let held = self.guard.take(clock);
        if held.is_empty() {
            return;
        }
        let newest = self.windows.clock_max(clock);
        let saved = (self.current.clock, self.current.record_numbered);
        self.windows.set_input(clock);
        self.current.clock = clock;
        for h in held {
            let decoded = match release {
                Release::Reject => Err(Rejection::new(
                    DeadKind::SkewedClock,
                    self.guard.rejected_reason(&h, newest),
                )),
                _ => {
                    self.current.record_numbered = h.record_numbered;
                    self.access_line(h.source, &h.stream, h.offset, &h.line, true, out)
                }
            };
            self.settle(
                h.source,
                &h.stream,
                h.offset,
                h.line.as_bytes(),
                decoded,
                out,
            );
        }
        self.windows.set_input(saved.0);
        (self.current.clock, self.current.record_numbered) = saved;
    }

    /// Counts what a line became, keeps it as a dead letter if it is one,
    /// and hands out what it closed.
    fn settle(
        &mut self,
        source: usize,
        name: &str,
        offset: u64,
        bytes: &[u8],
        decoded: Result<Outcome, Rejection>,
        out: &mut Produced,
    ) {
        match decoded {
            // Counted when the time guard lets it go.
            Ok(Outcome::Held) => {}
            Ok(outcome) => {
                self.counts.decoded += 1;
                if let Some(c) = self.source_counts.get_mut(source) {
                    c.decoded += 1;
                }
                if !self.closed.is_empty() {
                    self.emit(false, out);
                }
                if outcome == Outcome::Probe {
                    self.probe(out);
                }
            }
            Err(Rejection { kind, reason }) => {
                self.counts.dead_letters += 1;
                self.counts.dead_letter_kinds.add(kind);
                if let Some(c) = self.source_counts.get_mut(source) {
                    c.dead_letters += 1;
                }
                let format = self.decoders.get(source).map(SourceDecoder::format);
                out.dead_letters.push(DeadLetter {
                    source: name.to_string(),
                    offset,
                    format: format.unwrap_or(Format::Auto).name().to_string(),
                    kind,
                    reason,
                    line: String::from_utf8_lossy(bytes).into_owned(),
                });
                if !self.closed.is_empty() {
                    self.emit(false, out);
                }
            }
        }
    }

    /// Burst probes on the open window, at the newest event time's second.
    fn probe(&mut self, out: &mut Produced) {
        let Some(now) = self.windows.max_event_ns() else {
            return;
        };
        let second = now.div_euclid(NANOS_PER_SEC) * NANOS_PER_SEC;
        self.next_probe_ns = Some(second + NANOS_PER_SEC);
        let Some(decider) = &mut self.evaluate.decider else {
            return;
        };
        let loads = self.windows.open_loads();
        decider.probe(&loads, second, &mut out.decisions);
    }

    /// Hands closed windows' rows out, after the evaluators saw them, and
    /// what the windows forgot meanwhile.
    /// With windows closed per Kafka partition, each window of each
    /// partition is evaluated on its own, for the apps of that partition.
    fn emit(&mut self, by_clock: bool, out: &mut Produced) {
        let groups = self.windows.take_closed_groups();
        if !self.closed.is_empty() {
            if self.evaluate.any() {
                let windows = &self.windows;
                let sharded = windows.is_sharded();
                let mut at = 0;
                for g in &groups {
                    let Some(rows) = self.closed.get(at..at + g.rows) else {
                        break;
                    };
                    at += g.rows;
                    let in_scope = |app: &str| !sharded || windows.shard_of(app) == Some(g.shard);
                    self.evaluate.on_closed(rows, by_clock, &in_scope, out);
                }
            }
            out.windows.append(&mut self.closed);
        }
        let forgotten = self.windows.take_forgotten();
        for f in &forgotten {
            self.evaluate.forget(f);
        }
        out.forgotten.extend(forgotten);
    }

    /// Container metrics from a source that yields them directly (a scrape).
    pub fn process_metrics(
        &mut self,
        source: usize,
        metrics: &[ContainerMetric],
        out: &mut Produced,
    ) {
        self.windows.set_input(source);
        for m in metrics {
            self.windows.push_metric(m, &mut self.closed);
        }
        self.counts.metric_samples += metrics.len() as u64;
        self.emit(false, out);
    }

    /// A source without input for a while stops holding the watermark back
    /// (`idle`), or counts again once it has input.
    pub fn set_source_idle(&mut self, source: usize, idle: bool, out: &mut Produced) {
        self.windows.set_input_idle(source, idle, &mut self.closed);
        self.emit(false, out);
    }

    /// Processing-time heartbeat: the sources have been idle for `idle_ns`,
    /// so the watermark moves on as if time had passed in the stream too.
    pub fn heartbeat(&mut self, idle_ns: i64, out: &mut Produced) {
        // Quiet: nothing went on at the older time, so the held lines'
        // streams really moved on.
        self.release_all(out);
        self.windows.heartbeat(idle_ns, &mut self.closed);
        // Windows closed by the clock, not by records: an app without requests
        // in them may just be an app whose logs stopped arriving, so for
        // decisions its data is missing (never a reason to scale down).
        self.emit(true, out);
    }

    /// Processes every line the time guard holds: nothing after them
    /// contradicted their time.
    fn release_all(&mut self, out: &mut Produced) {
        for clock in self.guard.clocks_holding() {
            self.release_held(clock, Release::Accept, out);
        }
    }

    /// How far ahead of its stream (and of `now`) a record may be before
    /// the time guard questions it.
    pub fn set_max_future(&mut self, ns: i64) {
        self.guard = TimeGuard::new(ns);
    }

    /// Now, in a live run: records further than `max_future` ahead of it
    /// are dead letters. `None` when replaying recorded input.
    pub fn set_wall_clock(&mut self, now_ns: Option<i64>) {
        self.guard.set_wall_clock(now_ns);
    }

    /// Completes app log events whose stream has been quiet for `quiet`.
    pub fn flush_quiet_logs(&mut self, now: Instant, quiet: Duration, out: &mut Produced) {
        if let Some(a) = &mut self.assembler {
            a.flush_quiet(now, quiet, &mut out.logs);
        }
    }

    /// End of input: closes every open window and completes every open event.
    pub fn finish(&mut self, out: &mut Produced) {
        self.release_all(out);
        self.windows.flush(&mut self.closed);
        self.emit(false, out);
        if let Some(a) = &mut self.assembler {
            a.flush_all(&mut out.logs);
        }
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

#[cfg(test)]
mod tests;
