//! Joins the lines of one event (a head and its stack trace) into a
//! [`LogEvent`], per stream and app instance, so interleaved streams never
//! mix. An event is complete when the next head (or plain line) of its
//! stream arrives, when its stream has been quiet for a while (live runs),
//! or at the end of input. Open events are part of the checkpoint: a restart
//! resumes after their lines, so it must also remember them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::head::{Level, exception_type, is_continuation, parse_head};

/// One app log event, with the position of its first line (its identity:
/// the same input always gives the same event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    pub time_ns: i64,
    pub app: String,
    pub instance: Option<String>,
    pub level: Option<Level>,
    pub logger: Option<String>,
    pub thread: Option<String>,
    /// The whole event: the head line and every continuation line.
    pub message: String,
    /// The first exception class named in the continuation lines.
    pub error_type: Option<String>,
    /// The continuation lines (or a JSON line's stack trace).
    pub stack_trace: Option<String>,
    /// The stream: file path or Kafka `topic/partition`.
    pub source: String,
    /// Byte offset (files) or record offset (Kafka) of the first line.
    pub offset: u64,
    pub lines: u32,
    /// A JSON line's own fields beyond the ones above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Where one line comes from and who wrote it.
#[derive(Debug, Clone, Copy)]
pub struct LineMeta<'a> {
    pub stream: &'a str,
    pub offset: u64,
    pub app: &'a str,
    pub instance: Option<&'a str>,
    /// The transport's timestamp (Kafka record time), used by lines that
    /// carry none.
    pub record_time_ns: Option<i64>,
}

/// Bounds on one event, so a runaway trace cannot hold memory.
pub const MAX_EVENT_LINES: u32 = 1_000;
pub const MAX_EVENT_BYTES: usize = 256 << 10;
/// Streams (stream × app × instance) remembered at once. Past it, every open
/// event is completed and the remembered times forgotten: keys that are
/// made up (a Kafka key or an app field per line) must not grow memory.
pub const MAX_STREAMS: usize = 100_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Assembler {
    /// Open events by stream key.
    open: BTreeMap<String, LogEvent>,
    /// The last event time per stream key (for lines without a timestamp).
    last_time: BTreeMap<String, i64>,
    /// When each open event last grew (processing time; not persisted: a
    /// restored event counts as just touched).
    #[serde(skip)]
    touched: HashMap<String, Instant>,
}

impl Assembler {
    pub fn new() -> Self {
        Assembler::default()
    }

    /// Events still waiting for more lines.
    pub fn open_events(&self) -> usize {
        self.open.len()
    }

    /// Adds one line; completed events go to `out`. `Err` is the reason the
    /// line cannot be an event (for the dead letters).
    pub fn push(
        &mut self,
        meta: LineMeta<'_>,
        line: &str,
        out: &mut Vec<LogEvent>,
    ) -> Result<(), String> {
        let key = stream_key(meta.stream, meta.app, meta.instance);
        self.make_room(&key, out);
        if let Some(head) = parse_head(line) {
            if let Some(prev) = self.open.remove(&key) {
                out.push(prev);
            }
            let time_ns = head
                .time_ns
                .or(meta.record_time_ns)
                .or_else(|| self.last_time.get(&key).copied())
                .ok_or("a JSON log line without a timestamp, and none before it in its stream")?;
            self.last_time.insert(key.clone(), time_ns);
            let json = head.message.is_some();
            let event = LogEvent {
                time_ns,
                app: head.app.unwrap_or_else(|| meta.app.to_string()),
                instance: head.instance.or_else(|| meta.instance.map(str::to_string)),
                level: head.level,
                logger: head.logger,
                thread: head.thread,
                error_type: head
                    .stack_trace
                    .as_deref()
                    .and_then(|t| exception_type(t.trim_start()))
                    .map(str::to_string),
                stack_trace: head.stack_trace,
                message: head.message.unwrap_or_else(|| line.trim_end().to_string()),
                source: meta.stream.to_string(),
                offset: meta.offset,
                lines: 1,
                fields: head.fields,
            };
            if json {
                // A JSON line is a whole event (its trace is inside it).
                out.push(event);
            } else {
                self.touched.insert(key.clone(), Instant::now());
                self.open.insert(key, event);
            }
            return Ok(());
        }
        if is_continuation(line)
            && let Some(ev) = self.open.get_mut(&key)
            && ev.lines < MAX_EVENT_LINES
            && ev.message.len() + line.len() < MAX_EVENT_BYTES
        {
            let l = line.trim_end();
            ev.message.push('\n');
            ev.message.push_str(l);
            ev.lines += 1;
            if ev.error_type.is_none() {
                let t = l.trim_start();
                let t = t.strip_prefix("Caused by: ").unwrap_or(t);
                ev.error_type = exception_type(t).map(str::to_string);
            }
            match &mut ev.stack_trace {
                Some(s) => {
                    s.push('\n');
                    s.push_str(l);
                }
                None => ev.stack_trace = Some(l.to_string()),
            }
            self.touched.insert(key, Instant::now());
            return Ok(());
        }
        // A plain line (no timestamp): an event of its own, at the time of the
        // event before it (its continuation lines may follow).
        if is_continuation(line) && self.open.contains_key(&key) {
            // The open event is at its bound: cut there.
            crate::losses::count(crate::losses::Loss::LogEventSplit, 1);
        }
        if let Some(prev) = self.open.remove(&key) {
            out.push(prev);
        }
        let time_ns = meta
            .record_time_ns
            .or_else(|| self.last_time.get(&key).copied())
            .ok_or("no timestamp in the line, and none before it in its stream")?;
        self.touched.insert(key.clone(), Instant::now());
        self.open.insert(
            key,
            LogEvent {
                time_ns,
                app: meta.app.to_string(),
                instance: meta.instance.map(str::to_string),
                level: None,
                logger: None,
                thread: None,
                message: line.trim_end().to_string(),
                error_type: None,
                stack_trace: None,
                source: meta.stream.to_string(),
                offset: meta.offset,
                lines: 1,
                fields: None,
            },
        );
        Ok(())
    }

    /// With [`MAX_STREAMS`] streams remembered and `key` a new one: completes
    /// every open event and forgets the last times (a line without a time
    /// in an old stream is then a dead letter, counted).
    fn make_room(&mut self, key: &str, out: &mut Vec<LogEvent>) {
        if !crowded(&self.last_time, key) && !crowded(&self.open, key) {
            return;
        }
        tracing::warn!(
            streams = MAX_STREAMS,
            open = self.open.len(),
            "app logs: too many streams at once; completing every open event"
        );
        self.flush_all(out);
        self.last_time.clear();
    }

    /// Completes events whose stream has been quiet for `quiet` (live runs:
    /// a trace's last frame has surely arrived by then).
    pub fn flush_quiet(&mut self, now: Instant, quiet: Duration, out: &mut Vec<LogEvent>) {
        let done: Vec<String> = self
            .open
            .keys()
            .filter(|k| {
                let t = *self.touched.entry((*k).clone()).or_insert(now);
                now.saturating_duration_since(t) >= quiet
            })
            .cloned()
            .collect();
        for k in done {
            self.touched.remove(&k);
            if let Some(ev) = self.open.remove(&k) {
                out.push(ev);
            }
        }
        out.sort_by_key(|e| (e.time_ns, e.offset));
    }

    /// The offset of the first line of the oldest event still open in
    /// `stream` (a Kafka partition must not be committed past it).
    pub fn first_open_offset(&self, stream: &str) -> Option<u64> {
        self.open
            .values()
            .filter(|e| e.source == stream)
            .map(|e| e.offset)
            .min()
    }

    /// Forgets the open events of `stream` (a Kafka partition that moved to
    /// another consumer, which reads their lines again from the committed
    /// low-water mark). Returns how many.
    pub fn drop_stream(&mut self, stream: &str) -> usize {
        let keys: Vec<String> = self
            .open
            .iter()
            .filter(|(_, e)| e.source == stream)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            self.open.remove(k);
            self.touched.remove(k);
        }
        keys.len()
    }

    /// Completes every open event (end of input).
    pub fn flush_all(&mut self, out: &mut Vec<LogEvent>) {
        self.touched.clear();
        out.extend(std::mem::take(&mut self.open).into_values());
    }
}

/// `key` would be one stream too many in `m`.
fn crowded<V>(m: &BTreeMap<String, V>, key: &str) -> bool {
    m.len() >= MAX_STREAMS && !m.contains_key(key)
}

fn stream_key(stream: &str, app: &str, instance: Option<&str>) -> String {
    format!("{stream}\u{1f}{app}\u{1f}{}", instance.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(offset: u64) -> LineMeta<'static> {
        LineMeta {
            stream: "s",
            offset,
            app: "broker",
            instance: Some("0"),
            record_time_ns: None,
        }
    }

    #[test]
    fn made_up_streams_do_not_grow_memory() {
        let mut a = Assembler::new();
        let mut out = Vec::new();
        let n = MAX_STREAMS + 10;
        for i in 0..n {
            let app = format!("spoofed-{i}");
            let m = LineMeta {
                app: &app,
                ..meta(i as u64)
            };
            a.push(m, "2026-03-01 10:00:00,000 ERROR boom", &mut out)
                .unwrap();
            assert!(a.open_events() <= MAX_STREAMS);
            assert!(a.last_time.len() <= MAX_STREAMS);
        }
        assert_eq!(out.len(), MAX_STREAMS, "completed when the next one came");
        a.flush_all(&mut out);
        assert_eq!(out.len(), n, "every event out once");
    }

    #[test]
    fn the_oldest_open_event_bounds_what_a_partition_may_commit() {
        let mut a = Assembler::new();
        let mut out = Vec::new();
        let on = |stream: &'static str, offset: u64, instance: &'static str| LineMeta {
            stream,
            offset,
            app: "shop",
            instance: Some(instance),
            record_time_ns: None,
        };
        let head = "2026-01-01 10:00:00,000 ERROR [main] Shop - failed";
        a.push(on("t/0", 7, "0"), head, &mut out).unwrap();
        a.push(on("t/0", 8, "0"), "\tat shop.Cart(Cart.java:1)", &mut out)
            .unwrap();
        a.push(on("t/0", 9, "1"), head, &mut out).unwrap();
        a.push(on("t/1", 3, "2"), head, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(a.first_open_offset("t/0"), Some(7));
        assert_eq!(a.first_open_offset("t/1"), Some(3));
        assert_eq!(a.first_open_offset("t/2"), None);
        // The partition moves away: its open events go with it.
        assert_eq!(a.drop_stream("t/0"), 2);
        assert_eq!(a.first_open_offset("t/0"), None);
        assert_eq!(a.open_events(), 1);
    }

    fn feed(a: &mut Assembler, text: &str) -> (Vec<LogEvent>, Vec<String>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let mut offset = 0u64;
        for line in text.split_inclusive('\n') {
            if let Err(e) = a.push(meta(offset), line, &mut out) {
                errors.push(e);
            }
            offset += line.len() as u64;
        }
        (out, errors)
    }

    #[test]
    fn a_stack_trace_joins_its_head() {
        let mut a = Assembler::new();
        let text = "[2016-12-19 20:39:48,918] WARN [T-0], Error in fetch (kafka.server.ReplicaFetcherThread)\n\
java.io.IOException: Connection to 2 was disconnected\n\
\tat scala.Option.foreach(Option.scala:257)\n\
\tat kafka.utils.ShutdownableThread.run(ShutdownableThread.scala:63)\n\
[2016-12-19 20:39:49,000] INFO next (kafka.log.Log)\n";
        let (out, errors) = feed(&mut a, text);
        assert!(errors.is_empty());
        assert_eq!(out.len(), 1, "the second event is still open");
        let ev = &out[0];
        assert_eq!(ev.lines, 4);
        assert_eq!(ev.offset, 0);
        assert_eq!(ev.level, Some(Level::Warn));
        assert_eq!(ev.error_type.as_deref(), Some("java.io.IOException"));
        assert!(
            ev.stack_trace
                .as_deref()
                .unwrap()
                .ends_with("(ShutdownableThread.scala:63)")
        );
        assert_eq!(ev.message.lines().count(), 4);
        let mut rest = Vec::new();
        a.flush_all(&mut rest);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].offset, text.rfind("[2016").unwrap() as u64);
    }

    #[test]
    fn plain_lines_take_the_time_before_them_or_are_refused() {
        let mut a = Assembler::new();
        let (_, errors) = feed(&mut a, "Listening on 8080\n");
        assert_eq!(errors.len(), 1, "no time known yet");
        let (out, errors) = feed(
            &mut a,
            "2026-01-01 00:00:00,000 INFO up\nListening on 8080\n",
        );
        assert!(errors.is_empty());
        assert_eq!(out.len(), 1);
        let mut rest = Vec::new();
        a.flush_all(&mut rest);
        assert_eq!(rest[0].message, "Listening on 8080");
        assert_eq!(rest[0].time_ns, out[0].time_ns);
    }

    #[test]
    fn quiet_streams_complete_their_event() {
        let mut a = Assembler::new();
        let (out, _) = feed(
            &mut a,
            "2026-01-01 00:00:00,000 ERROR x\n\tat a.b.C(C.java:1)\n",
        );
        assert!(out.is_empty());
        let mut out = Vec::new();
        a.flush_quiet(Instant::now(), Duration::from_secs(60), &mut out);
        assert!(out.is_empty(), "not quiet long enough");
        a.flush_quiet(
            Instant::now() + Duration::from_secs(61),
            Duration::from_secs(60),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].lines, 2);
    }
}
