//! A window row written as one JSON object, byte for byte what `serde_json`
//! writes for it, without going through the serializer: at a row per few
//! input lines, writing rows was as costly as decoding (every key escaped
//! and checked, every field dispatched). Numbers are formatted by the same
//! crates `serde_json` uses (`itoa`, `zmij`).

use std::cell::Cell;
use std::thread::LocalKey;

use super::WindowStats;
use crate::time::Timestamp;

impl WindowStats {
    /// Appends the row as JSON (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"app\":");
        string(out, &self.app);
        if let Some(name) = &self.name {
            out.extend_from_slice(b",\"name\":");
            string(out, name);
        }
        out.extend_from_slice(b",\"instance\":");
        opt_string(out, self.instance.as_deref());
        if let Some(node) = &self.node {
            out.extend_from_slice(b",\"node\":");
            string(out, node);
        }
        out.extend_from_slice(b",\"start\":\"");
        out.extend_from_slice(&time_text(&LAST_START, self.start));
        out.extend_from_slice(b"\",\"end\":\"");
        out.extend_from_slice(&time_text(&LAST_END, self.end));
        out.extend_from_slice(b"\",\"requests\":");
        int(out, self.requests);
        out.extend_from_slice(b",\"rps\":");
        float(out, self.rps);
        out.extend_from_slice(b",\"concurrency\":");
        float(out, self.concurrency);
        let l = &self.latency_ms;
        out.extend_from_slice(b",\"latency_ms\":{\"p50\":");
        opt_float(out, l.p50);
        out.extend_from_slice(b",\"p90\":");
        opt_float(out, l.p90);
        out.extend_from_slice(b",\"p95\":");
        opt_float(out, l.p95);
        out.extend_from_slice(b",\"p99\":");
        opt_float(out, l.p99);
        out.extend_from_slice(b",\"max\":");
        opt_float(out, l.max);
        let s = &self.status;
        out.extend_from_slice(b"},\"status\":{\"1xx\":");
        int(out, s.c1xx);
        out.extend_from_slice(b",\"2xx\":");
        int(out, s.c2xx);
        out.extend_from_slice(b",\"3xx\":");
        int(out, s.c3xx);
        out.extend_from_slice(b",\"4xx\":");
        int(out, s.c4xx);
        out.extend_from_slice(b",\"5xx\":");
        int(out, s.c5xx);
        out.extend_from_slice(b",\"other\":");
        int(out, s.other);
        out.extend_from_slice(b"},\"error_ratio\":");
        float(out, self.error_ratio);
        out.extend_from_slice(b",\"bytes_in\":");
        int(out, self.bytes_in);
        out.extend_from_slice(b",\"bytes_out\":");
        int(out, self.bytes_out);
        out.extend_from_slice(b",\"cpu_pct\":");
        opt_float(out, self.cpu_pct);
        out.extend_from_slice(b",\"memory_bytes\":");
        opt_float(out, self.memory_bytes);
        out.extend_from_slice(b",\"memory_pct\":");
        opt_float(out, self.memory_pct);
        out.extend_from_slice(b",\"late\":");
        int(out, self.late);
        out.push(b'}');
    }
}

thread_local! {
    /// The last start and end written, as text: every row of a window
    /// shares them, and formatting a date is most of writing one.
    static LAST_START: Cell<(Timestamp, [u8; 20])> = const { Cell::new(EPOCH_TEXT) };
    static LAST_END: Cell<(Timestamp, [u8; 20])> = const { Cell::new(EPOCH_TEXT) };
}

const EPOCH_TEXT: (Timestamp, [u8; 20]) = (Timestamp::from_nanos(0), *b"1970-01-01T00:00:00Z");

fn time_text(last: &'static LocalKey<Cell<(Timestamp, [u8; 20])>>, t: Timestamp) -> [u8; 20] {
    let (at, text) = last.get();
    if at == t {
        return text;
    }
    let text = t.rfc3339_bytes();
    last.set((t, text));
    text
}

fn int(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// As `serde_json`: finite numbers in their shortest form, `null` otherwise.
fn float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn opt_float(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(v) => float(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_string(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string. Ids and names rarely hold a character JSON escapes; those
/// that do are written by `serde_json` itself.
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{LatencyMs, StatusCounts};
    use crate::time::Timestamp;

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (0.0..1e6f64),
            Just(0.0),
            Just(f64::NAN),
            Just(f64::INFINITY)
        ]
    }

    fn opt_float() -> impl Strategy<Value = Option<f64>> {
        proptest::option::of(float())
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.-]{0,40}",
            any::<String>(),
            Just("quote \" and \\ and \u{1}".to_string())
        ]
    }

    prop_compose! {
        fn row()(
            app in text(), name in proptest::option::of(text()),
            instance in proptest::option::of(text()), node in proptest::option::of(text()),
            start in -2_208_988_800i64..7_258_118_399, len in 1i64..86_400,
            counts in proptest::array::uniform9(any::<u64>()),
            floats in proptest::array::uniform3(float()),
            opts in proptest::array::uniform8(opt_float()),
        ) -> WindowStats {
            WindowStats {
                app, name, instance, node,
                start: Timestamp::from_secs(start),
                end: Timestamp::from_secs(start + len),
                requests: counts[0],
                rps: floats[0],
                concurrency: floats[1],
                latency_ms: LatencyMs { p50: opts[0], p90: opts[1], p95: opts[2], p99: opts[3], max: opts[4] },
                status: StatusCounts {
                    c1xx: counts[1], c2xx: counts[2], c3xx: counts[3],
                    c4xx: counts[4], c5xx: counts[5], other: counts[6],
                },
                error_ratio: floats[2],
                bytes_in: counts[7],
                bytes_out: counts[8],
                cpu_pct: opts[5],
                memory_bytes: opts[6],
                memory_pct: opts[7],
                late: counts[0] / 3,
            }
        }
    }

    proptest! {
        #[test]
        fn rows_are_written_as_serde_json_writes_them(w in row()) {
            let mut ours = Vec::new();
            w.write_json(&mut ours);
            let theirs = serde_json::to_vec(&w).unwrap();
            prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }

        /// Rows of one window, then of another, then of the first again:
        /// the remembered time text never leaks into a row it is not.
        #[test]
        fn remembered_times_are_the_rows_own(a in row(), b in row()) {
            let mut same = b.clone();
            (same.start, same.end) = (a.start, a.end);
            for w in [&a, &same, &b, &a, &b] {
                let mut ours = Vec::new();
                w.write_json(&mut ours);
                prop_assert_eq!(ours, serde_json::to_vec(w).unwrap());
            }
        }
    }
}
