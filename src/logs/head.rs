//! The first line of an app log event: its timestamp, level, logger and
//! thread, for the layouts apps actually write (log4j/logback patterns,
//! Python logging, Spark, HDFS, Apache error logs, JSON lines).
//!
//! A line is a *head* when it starts with a timestamp (possibly after a `[`
//! or a short prefix such as a file name); everything else is either the
//! continuation of the event before it (stack frames, `Caused by:`) or a
//! plain line (see [`is_continuation`]). Timestamps without a zone are UTC.

use crate::time::{NANOS_PER_SEC, days_from_civil};

/// Severity, normalised to ECS `log.level` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Notice,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub fn parse(word: &str) -> Option<Level> {
        let w = word.trim_matches(|c: char| matches!(c, '[' | ']' | ':' | '<' | '>'));
        if w.is_empty() || w.len() > 8 {
            return None;
        }
        Some(match w.to_ascii_lowercase().as_str() {
            "trace" | "finest" | "finer" => Level::Trace,
            "debug" | "fine" => Level::Debug,
            "info" | "information" => Level::Info,
            "notice" => Level::Notice,
            "warn" | "warning" => Level::Warn,
            "error" | "err" => Level::Error,
            "fatal" | "critical" | "crit" | "severe" | "alert" | "emerg" => Level::Fatal,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

/// What the head line of an event says about it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Head {
    pub time_ns: Option<i64>,
    pub level: Option<Level>,
    pub logger: Option<String>,
    pub thread: Option<String>,
    /// The event's text when the line is a JSON document (its `message`),
    /// else `None` (the line itself is the message).
    pub message: Option<String>,
    /// A stack trace carried inside a JSON line.
    pub stack_trace: Option<String>,
    /// Identity a JSON line names itself.
    pub app: Option<String>,
    pub instance: Option<String>,
    /// A JSON line's other fields (kept under `json.*` in the document).
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parses `line` as the head of an event; `None` when it does not start one.
pub fn parse_head(line: &str) -> Option<Head> {
    let trimmed = line.trim_end();
    if trimmed.starts_with('{') && trimmed.ends_with('}') {
        return parse_json(trimmed);
    }
    let (time_ns, rest) = leading_time(trimmed)?;
    let mut head = Head {
        time_ns: Some(time_ns),
        ..Head::default()
    };
    fill_level_thread_logger(rest, &mut head);
    Some(head)
}

/// Whether a line that is not a head belongs to the event before it: stack
/// frames, `Caused by:`, `... 12 more`, an exception line, indented text.
pub fn is_continuation(line: &str) -> bool {
    if line.starts_with([' ', '\t']) {
        return true;
    }
    let t = line.trim_end();
    t.starts_with("Caused by:")
        || t.starts_with("Suppressed:")
        || t.starts_with("at ")
        || (t.starts_with("...") && t.ends_with("more"))
        || exception_type(t).is_some()
}

/// `java.io.IOException: msg` → `java.io.IOException`: a dotted name ending
/// in Exception, Error or Throwable at the start of a line.
pub fn exception_type(line: &str) -> Option<&str> {
    let name = line.split([':', ' ']).next().filter(|n| !n.is_empty())?;
    let dotted = name.contains('.');
    let kind = ["Exception", "Error", "Throwable"]
        .iter()
        .any(|s| name.ends_with(s));
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '$' | '_'));
    (dotted && kind && valid).then_some(name)
}

/// A timestamp at the start of the line (after an optional `[`), or after a
/// short first token (a file name prefix): returns it and the rest.
fn leading_time(line: &str) -> Option<(i64, &str)> {
    if let Some(found) = time_at(line) {
        return Some(found);
    }
    // `nova-api.log.1 2017-05-16 00:00:00.008 ...`: one prefix token.
    let (first, rest) = line.split_once(' ')?;
    if first.len() <= 64 && !first.is_empty() {
        return time_at(rest);
    }
    None
}

fn time_at(s: &str) -> Option<(i64, &str)> {
    let (bracketed, body) = match s.strip_prefix('[') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let b = body.as_bytes();
    let (ns, used) = iso_like(b)
        .or_else(|| slash_date(b))
        .or_else(|| compact_date(b))
        .or_else(|| ctime_date(b))?;
    let mut rest = &body[used..];
    if bracketed {
        rest = rest.strip_prefix(']')?;
    }
    Some((ns, rest))
}

fn num(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let d = b.get(at..at + n)?;
    d.iter()
        .all(u8::is_ascii_digit)
        .then(|| d.iter().fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0')))
}

fn is(b: &[u8], at: usize, c: u8) -> bool {
    b.get(at) == Some(&c)
}

fn nanos(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    // A year far out (2500, 9999) must not wrap round into the accepted range.
    let secs = days
        .checked_mul(86_400)?
        .checked_add(i64::from(h * 3600 + mi * 60 + s))?;
    crate::time::check_range(secs.checked_mul(NANOS_PER_SEC)?).ok()
}

/// Fraction after `.` or `,` at `at`: (nanoseconds, bytes used).
fn fraction(b: &[u8], at: usize) -> (i64, usize) {
    if !matches!(b.get(at), Some(b'.' | b',')) {
        return (0, 0);
    }
    let mut i = at + 1;
    let mut ns = 0i64;
    let mut scale = 100_000_000i64;
    while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        ns += i64::from(c - b'0') * scale;
        scale /= 10;
        i += 1;
    }
    if i == at + 1 { (0, 0) } else { (ns, i - at) }
}

/// `2016-12-19 20:39:48,918`, `2026-01-01T10:00:00.5Z`, `…+02:00`.
fn iso_like(b: &[u8]) -> Option<(i64, usize)> {
    let y = num(b, 0, 4)?;
    if !(is(b, 4, b'-') && is(b, 7, b'-') && is(b, 13, b':') && is(b, 16, b':')) {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b' ')) {
        return None;
    }
    let base = nanos(
        i64::from(y),
        num(b, 5, 2)?,
        num(b, 8, 2)?,
        num(b, 11, 2)?,
        num(b, 14, 2)?,
        num(b, 17, 2)?,
    )?;
    let (frac, used) = fraction(b, 19);
    let mut at = 19 + used;
    let mut offset = 0i64;
    match b.get(at) {
        Some(b'Z') => at += 1,
        Some(&sign @ (b'+' | b'-')) => {
            let hh = num(b, at + 1, 2)?;
            let (mm, len) = if is(b, at + 3, b':') {
                (num(b, at + 4, 2)?, 6)
            } else {
                (
                    num(b, at + 3, 2).unwrap_or(0),
                    if num(b, at + 3, 2).is_some() { 5 } else { 3 },
                )
            };
            let secs = i64::from(hh * 3600 + mm * 60);
            offset = if sign == b'-' { -secs } else { secs };
            at += len;
        }
        _ => {}
    }
    Some((base + frac - offset * NANOS_PER_SEC, at))
}

/// Spark: `17/06/09 20:10:40` (two-digit year, 20xx).
fn slash_date(b: &[u8]) -> Option<(i64, usize)> {
    if !(is(b, 2, b'/') && is(b, 5, b'/') && is(b, 8, b' ') && is(b, 11, b':') && is(b, 14, b':')) {
        return None;
    }
    let ns = nanos(
        2000 + i64::from(num(b, 0, 2)?),
        num(b, 3, 2)?,
        num(b, 6, 2)?,
        num(b, 9, 2)?,
        num(b, 12, 2)?,
        num(b, 15, 2)?,
    )?;
    let (frac, used) = fraction(b, 17);
    Some((ns + frac, 17 + used))
}

/// HDFS: `081109 203615` (yyMMdd HHmmss, 20xx).
fn compact_date(b: &[u8]) -> Option<(i64, usize)> {
    if !is(b, 6, b' ') || b.get(13).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let ns = nanos(
        2000 + i64::from(num(b, 0, 2)?),
        num(b, 2, 2)?,
        num(b, 4, 2)?,
        num(b, 7, 2)?,
        num(b, 9, 2)?,
        num(b, 11, 2)?,
    )?;
    Some((ns, 13))
}

/// Apache error log: `Sun Dec 04 04:47:44 2005` (also with fraction).
fn ctime_date(b: &[u8]) -> Option<(i64, usize)> {
    if !(is(b, 3, b' ') && is(b, 7, b' ') && is(b, 10, b' ') && is(b, 13, b':')) {
        return None;
    }
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|m| b.get(4..7) == Some(m))? as u32 + 1;
    let (frac, used) = fraction(b, 19);
    let y_at = 19 + used + 1;
    if !is(b, 19 + used, b' ') {
        return None;
    }
    let ns = nanos(
        i64::from(num(b, y_at, 4)?),
        month,
        num(b, 8, 2)?,
        num(b, 11, 2)?,
        num(b, 14, 2)?,
        num(b, 17, 2)?,
    )?;
    Some((ns + frac, y_at + 4))
}

/// Level, thread and logger from what follows the timestamp: the level is
/// one of the first three words; `[thread]` and `logger:` or a trailing
/// `(logger)` are taken when present.
fn fill_level_thread_logger(rest: &str, head: &mut Head) {
    let mut s = rest.trim_start_matches([' ', '-', ']']);
    for _ in 0..3 {
        let (word, after) = s.split_once(' ').unwrap_or((s, ""));
        if let Some(l) = Level::parse(word) {
            head.level = Some(l);
            s = after.trim_start_matches([' ', '-']);
            break;
        }
        if word.starts_with('[') && !word.ends_with(']') {
            // A bracketed thread name with spaces: never a level.
            break;
        }
        s = after.trim_start();
    }
    if head.level.is_none() {
        return;
    }
    if let Some(inner) = s.strip_prefix('[')
        && let Some((thread, after)) = inner.split_once(']')
    {
        head.thread = Some(thread.to_string());
        s = after.trim_start_matches([' ', '-', ',']);
    }
    if let Some((first, _)) = s.split_once(": ")
        && is_logger_name(first)
    {
        head.logger = Some(first.to_string());
    } else if let Some(inner) = s.trim_end().strip_suffix(')')
        && let Some((_, name)) = inner.rsplit_once(" (")
        && is_logger_name(name)
    {
        head.logger = Some(name.to_string());
    }
}

fn is_logger_name(s: &str) -> bool {
    !s.is_empty()
        && s.contains('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '$' | '_'))
}

/// One JSON document per line (logback/log4j JSON layouts, ECS loggers,
/// cf-java-logging-support, Python json loggers).
fn parse_json(line: &str) -> Option<Head> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let obj = v.as_object()?;
    let used = std::cell::RefCell::new(Vec::<String>::new());
    let text = |keys: &[&str]| -> Option<String> {
        keys.iter().find_map(|k| {
            let cur = obj.get(*k).or_else(|| dotted(obj, k))?;
            used.borrow_mut().push((*k).to_string());
            if let Some(s) = cur.as_str() {
                return Some(s.to_string());
            }
            if let Some(arr) = cur.as_array() {
                let lines: Vec<&str> = arr.iter().filter_map(|l| l.as_str()).collect();
                return (!lines.is_empty()).then(|| lines.join("\n"));
            }
            if cur.is_number() {
                return Some(cur.to_string());
            }
            None
        })
    };
    let message = text(&["message", "msg", "log"])?;
    let time_ns = text(&["@timestamp", "timestamp", "time", "written_at", "ts"])
        .and_then(|t| json_time(&t))
        .or_else(|| {
            ["written_ts", "timestamp", "ts", "time"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(serde_json::Value::as_f64))
                .and_then(epoch_guess)
        });
    let mut head = Head {
        time_ns,
        level: text(&["log.level", "level", "severity", "lvl", "levelname"])
            .and_then(|l| Level::parse(&l)),
        logger: text(&["log.logger", "logger", "logger_name", "name"]),
        thread: text(&["process.thread.name", "thread", "thread_name"]),
        message: Some(message),
        stack_trace: text(&[
            "error.stack_trace",
            "stack_trace",
            "stacktrace",
            "exception",
        ]),
        app: text(&["service.name", "app", "app_name", "component_name"]),
        instance: text(&[
            "instance",
            "instance_id",
            "component_instance",
            "kubernetes.pod.name",
        ]),
        fields: None,
    };
    // What the line says beyond the fields above (a used dotted key removes
    // its whole top-level object).
    let used: Vec<String> = used
        .into_inner()
        .into_iter()
        .map(|k| k.split('.').next().unwrap_or_default().to_string())
        .collect();
    let rest: serde_json::Map<String, serde_json::Value> = obj
        .iter()
        .filter(|(k, _)| {
            !used.contains(k)
                && !["written_ts", "timestamp", "ts", "time", "@timestamp"].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !rest.is_empty() {
        head.fields = Some(rest);
    }
    Some(head)
}

/// `a.b` looked up as nested objects.
fn dotted<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'a serde_json::Value> {
    let (first, rest) = key.split_once('.')?;
    let mut cur = obj.get(first)?;
    for part in rest.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

fn json_time(t: &str) -> Option<i64> {
    if let Some((ns, used)) = iso_like(t.as_bytes())
        && used == t.len()
    {
        return Some(ns);
    }
    t.parse::<f64>().ok().and_then(epoch_guess)
}

/// A number of seconds, milliseconds, microseconds or nanoseconds since the
/// epoch, told apart by magnitude.
fn epoch_guess(v: f64) -> Option<i64> {
    let ns = if v < 1e11 {
        v * 1e9
    } else if v < 1e14 {
        v * 1e6
    } else if v < 1e17 {
        v * 1e3
    } else {
        v
    };
    crate::time::check_range(ns as i64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_out_of_range_is_no_time_not_another_year() {
        for year in ["2500", "9999", "1800"] {
            let line = format!("{year}-03-01 10:00:00,000 INFO far away");
            assert_eq!(parse_head(&line).and_then(|h| h.time_ns), None, "{line}");
        }
        let ok = parse_head("2199-12-31 23:59:59,000 INFO still fine").unwrap();
        assert!(ok.time_ns.is_some());
    }

    fn utc(s: &str) -> i64 {
        crate::time::parse_iso8601(s.as_bytes()).unwrap()
    }

    #[test]
    fn log4j_kafka_layout() {
        let h = parse_head("[2016-12-19 20:39:48,918] WARN [ReplicaFetcherThread-0-2], Error in fetch kafka.server.ReplicaFetcherThread$FetchRequest@26408511 (kafka.server.ReplicaFetcherThread)").unwrap();
        assert_eq!(h.time_ns, Some(utc("2016-12-19T20:39:48.918Z")));
        assert_eq!(h.level, Some(Level::Warn));
        assert_eq!(h.thread.as_deref(), Some("ReplicaFetcherThread-0-2"));
        assert_eq!(
            h.logger.as_deref(),
            Some("kafka.server.ReplicaFetcherThread")
        );
    }

    #[test]
    fn hadoop_zookeeper_spark_hdfs_apache_openstack() {
        let h = parse_head("2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster").unwrap();
        assert_eq!(h.time_ns, Some(utc("2015-10-18T18:01:47.978Z")));
        assert_eq!(h.level, Some(Level::Info));
        assert_eq!(h.thread.as_deref(), Some("main"));
        assert_eq!(
            h.logger.as_deref(),
            Some("org.apache.hadoop.mapreduce.v2.app.MRAppMaster")
        );

        let h = parse_head("2015-07-29 19:04:29,071 - WARN  [SendWorker:188978561024:QuorumCnxManager$SendWorker@688] - Send worker leaving thread").unwrap();
        assert_eq!(h.level, Some(Level::Warn));
        assert_eq!(
            h.thread.as_deref(),
            Some("SendWorker:188978561024:QuorumCnxManager$SendWorker@688")
        );

        let h = parse_head("17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal handlers").unwrap();
        assert_eq!(h.time_ns, Some(utc("2017-06-09T20:10:40Z")));
        assert_eq!(
            h.logger.as_deref(),
            Some("executor.CoarseGrainedExecutorBackend")
        );

        let h =
            parse_head("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1")
                .unwrap();
        assert_eq!(h.time_ns, Some(utc("2008-11-09T20:36:15Z")));
        assert_eq!(h.level, Some(Level::Info));
        assert_eq!(h.logger.as_deref(), Some("dfs.DataNode$PacketResponder"));

        let h = parse_head(
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
        )
        .unwrap();
        assert_eq!(h.time_ns, Some(utc("2005-12-04T04:47:44Z")));
        assert_eq!(h.level, Some(Level::Error));

        let h = parse_head("nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38101a0b] x").unwrap();
        assert_eq!(h.time_ns, Some(utc("2017-05-16T00:00:00.008Z")));
        assert_eq!(h.level, Some(Level::Info));
    }

    #[test]
    fn iso_with_zone_and_json_lines() {
        let h = parse_head("2026-01-01T10:00:00.250+02:00 ERROR boom").unwrap();
        assert_eq!(h.time_ns, Some(utc("2026-01-01T08:00:00.250Z")));
        assert_eq!(h.level, Some(Level::Error));
        let h = parse_head(r#"{"written_at":"2026-01-01T10:00:00.000Z","level":"ERROR","msg":"failed","logger":"com.acme.Api","stacktrace":["java.lang.IllegalStateException: x","\tat com.acme.Api.run(Api.java:10)"],"component_name":"orders","component_instance":"2"}"#).unwrap();
        assert_eq!(h.level, Some(Level::Error));
        assert_eq!(h.message.as_deref(), Some("failed"));
        assert_eq!(h.app.as_deref(), Some("orders"));
        assert_eq!(h.instance.as_deref(), Some("2"));
        assert!(h.stack_trace.unwrap().contains("\tat com.acme"));
        let h = parse_head(r#"{"ts":1767225600.5,"level":"info","message":"hi"}"#).unwrap();
        assert_eq!(h.time_ns, Some(utc("2026-01-01T00:00:00.5Z")));
    }

    #[test]
    fn continuations_and_plain_lines() {
        assert!(parse_head("java.io.IOException: Connection to 2 was disconnected").is_none());
        assert!(is_continuation(
            "java.io.IOException: Connection to 2 was disconnected"
        ));
        assert!(is_continuation(
            "\tat scala.Option.foreach(Option.scala:257)"
        ));
        assert!(is_continuation("Caused by: java.lang.NullPointerException"));
        assert!(is_continuation("\t... 12 more"));
        assert!(!is_continuation("Listening on port 8080"));
        assert_eq!(
            exception_type("java.io.IOException: x"),
            Some("java.io.IOException")
        );
        assert_eq!(exception_type("Error: not a class"), None);
    }
}
