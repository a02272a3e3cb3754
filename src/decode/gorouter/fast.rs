//! The gorouter decoder's fast path: the same fields, found with a
//! [`Structure`] index instead of a byte-by-byte cursor.
//!
//! It accepts only lines it can read without doubt: no backslash (escapes
//! change quoting), single spaces between fields, no key:value tolerance
//! needed, at most [`MAX_LINE`] bytes. Everything else — and every line it
//! finds malformed — goes to the byte-by-byte decoder, which owns the error
//! messages. So the fast path never decides anything the slow path would
//! decide differently (a differential test checks that on mutated lines).
//!
//! Why one count of quotes proves the quoting right: every field taken as
//! quoted has a `"` at each end, so the line holds at least two per such
//! field; holding exactly that many means no quote sits anywhere else, so
//! the parity index split the line where the cursor would have.
//!
//! [`MAX_LINE`]: crate::decode::structure::MAX_LINE

use std::borrow::Cow;
use std::cell::RefCell;

use super::{Key, split_request, starts_with_key};
use crate::decode::Mapping;
use crate::decode::structure::Structure;
use crate::decode::text::{KEY_START, parse_status, parse_u64, parse_u64_or_dash, seconds_to_us};
use crate::model::AccessRecord;
use crate::time;

/// Fields of a line in order, split at its separators.
struct Fields<'a, 's> {
    line: &'a str,
    /// Borrowed, not moved: it is over half a kilobyte.
    index: &'s Structure,
    pos: usize,
    /// Fields taken as quoted (each holds exactly two quotes if all is well).
    quoted: u32,
}

impl<'a> Fields<'a, '_> {
    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    /// The next field (empty at the end of the line).
    #[inline(always)]
    fn next(&mut self) -> &'a str {
        let start = self.pos.min(self.line.len());
        let end = self.index.next_sep(start);
        self.pos = end + 1;
        sub(self.line, start, end)
    }

    /// The inside of a `"…"` field.
    #[inline]
    fn quoted(&mut self) -> Option<&'a str> {
        let f = self.next();
        self.unquote(f)
    }

    #[inline(always)]
    fn unquote(&mut self, f: &'a str) -> Option<&'a str> {
        let b = f.as_bytes();
        if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
            self.quoted += 1;
            Some(sub(f, 1, f.len() - 1))
        } else {
            None
        }
    }

    /// A quoted or bare address; `-` is empty.
    #[inline(always)]
    fn address(&mut self) -> Option<&'a str> {
        let f = self.next();
        let v = if f.starts_with('"') {
            self.unquote(f)?
        } else if f.is_empty() {
            return None;
        } else {
            f
        };
        Some(if v == "-" { "" } else { v })
    }
}

/// `s[start..end]`, checked inline: the standard slicing was left as a call
/// in this long function (measured 2.6 % of the Kafka bench). Every cut here
/// is at an ASCII byte or an end, so the empty answer never happens.
#[inline(always)]
fn sub(s: &str, start: usize, end: usize) -> &str {
    if start <= end && s.is_char_boundary(start) && s.is_char_boundary(end) {
        // SAFETY: `start <= end <= len` (a boundary is never past the end),
        // and both are char boundaries.
        unsafe { s.get_unchecked(start..end) }
    } else {
        ""
    }
}

thread_local! {
    /// The index of the line being decoded, reused: a fresh one is half a
    /// kilobyte zeroed per line, and filling one never reads what it held.
    static INDEX: RefCell<Structure> = const { RefCell::new(Structure::new()) };
}

/// The record, or `None` when the byte-by-byte decoder must decide.
#[inline]
pub(super) fn decode<'a>(line: &'a str, mapping: &'a Mapping) -> Option<AccessRecord<'a>> {
    INDEX.with(|index| match index.try_borrow_mut() {
        Ok(mut index) => decode_with(line, mapping, &mut index),
        // Only if a decode re-entered this one (never): a fresh index.
        Err(_) => decode_with(line, mapping, &mut Structure::new()),
    })
}

#[inline(always)]
fn decode_with<'a>(
    line: &'a str,
    mapping: &'a Mapping,
    index: &mut Structure,
) -> Option<AccessRecord<'a>> {
    if !index.index(line.as_bytes()) {
        return None;
    }
    if index.backslash || index.doubled {
        return None;
    }
    let total_quotes = index.quotes;
    let mut f = Fields {
        line,
        index,
        pos: 0,
        quoted: 0,
    };
    let b = line.as_bytes();
    let host = f.next();
    if host.is_empty() || f.next() != "-" {
        return None;
    }
    // `[time]`: up to the first `]`, which a space must follow (a CLF time
    // holds a space of its own, so this is not one field). An ISO time
    // holds none: its `]` ends the field (a `]` inside fails the parse).
    let open = f.pos;
    if b.get(open) != Some(&b'[') {
        return None;
    }
    let field_end = f.index.next_sep(open);
    let close = if field_end > open + 1 && b[field_end - 1] == b']' {
        field_end - 1
    } else {
        open + 1 + memchr::memchr(b']', &b[open + 1..])?
    };
    if b.get(close + 1) != Some(&b' ') {
        return None;
    }
    let inside = &b[open + 1..close];
    let time_ns = if inside.get(4) == Some(&b'-') {
        time::parse_iso8601(inside)
    } else {
        time::parse_clf(inside)
    }
    .ok()?;
    f.pos = close + 2;
    let request_at = f.pos + 1;
    let request = f.quoted()?;
    let (method, path, protocol) = split_request(request, request_at).ok()?;
    let status = parse_status(f.next())?;
    let bytes_received = parse_u64_or_dash(f.next())?;
    let bytes_sent = parse_u64_or_dash(f.next())?;
    f.quoted()?; // referer
    f.quoted()?; // user agent
    let remote_addr = f.address()?;
    let mut backend_addr = "";
    if !f.at_end() && (b[f.pos] == b'"' || !starts_with_key(&line[f.pos..])) {
        backend_addr = f.address()?;
    }
    // Collected in locals and built at the end, straight into the caller's
    // slot (a record built first and filled in was copied on return).
    let (mut response_time_us, mut instance) = (None, None);
    let (mut request_id, mut instance_id) = ("", "");
    let mut app_id: Option<&'a str> = None;
    while !f.at_end() {
        let start = f.pos;
        let pair = f.next();
        let p = pair.as_bytes();
        // The key ends at the first `:`; a `"` before it is not a key.
        let colon = f.index.next_key_end(start) - start;
        if colon == 0 || p.get(colon) != Some(&b':') || !KEY_START[usize::from(p[0])] {
            return None;
        }
        let raw = &pair[colon + 1..];
        let value = if raw.starts_with('"') {
            f.unquote(raw)?
        } else {
            raw
        };
        match Key::of(&pair[..colon]) {
            Key::Other => {}
            Key::ResponseTime => {
                response_time_us = match value {
                    "-" | "" => None,
                    v => Some(seconds_to_us(v)?),
                }
            }
            Key::AppId => app_id = Some(value).filter(|v| !v.is_empty() && *v != "-"),
            Key::AppIndex => {
                if value != "-" && !value.is_empty() {
                    parse_u64(value)?;
                    instance = Some(Cow::Borrowed(value));
                }
            }
            Key::RequestId => request_id = value,
            Key::InstanceId => instance_id = value,
        }
    }
    if total_quotes != 2 * f.quoted {
        return None;
    }
    Some(AccessRecord {
        time_ns,
        app: match app_id {
            Some(id) => Cow::Borrowed(id),
            None => mapping.app_for_host(host),
        },
        host,
        instance,
        method,
        path,
        protocol,
        status,
        bytes_received,
        bytes_sent,
        response_time_us,
        remote_addr,
        backend_addr,
        request_id,
        instance_id,
    })
}

#[cfg(test)]
mod tests {
    use super::super::decode_slow;
    use super::*;
    use crate::generate::{TrafficSpec, generate};
    use proptest::prelude::*;

    fn generated(lines: u64) -> Vec<String> {
        let spec = TrafficSpec {
            lines,
            apps: 20,
            instances: 60,
            seed: 7,
            ..TrafficSpec::default()
        };
        let mut buf = Vec::new();
        generate(&spec, &mut buf).unwrap();
        String::from_utf8(buf)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn samples() -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/access-logs/gorouter_access_log_samples.log"
        );
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn takes_every_generated_line_and_agrees() {
        let m = Mapping::new();
        for line in generated(2_000) {
            let fast = decode(&line, &m);
            assert!(fast.is_some(), "the fast path should take: {line}");
            assert_eq!(fast, decode_slow(&line, &m).ok(), "{line}");
        }
    }

    #[test]
    fn agrees_on_every_upstream_sample() {
        let m = Mapping::new();
        let mut taken = 0;
        for line in samples() {
            if let Some(fast) = decode(&line, &m) {
                taken += 1;
                assert_eq!(Some(fast), decode_slow(&line, &m).ok(), "{line}");
            }
        }
        // Line 6 needs the glued-quote tolerance; the rest are plain.
        assert_eq!(taken, 5);
    }

    #[test]
    fn leaves_escapes_doubled_spaces_and_stray_quotes_to_the_cursor() {
        let m = Mapping::new();
        let base = r#"h - [2019-03-22T14:46:52Z] "GET / HTTP/1.1" 200 1 2 "-" "ua" "1.2.3.4:5" "-" app_id:"a" response_time:0.25"#;
        assert!(decode(base, &m).is_some());
        for line in [
            base.replace("ua", r#"u\"a"#),
            base.replace("200 1", "200  1"),
            base.replace("app_id:\"a\"", "app_id:\"a\"'"),
            base.replace("h -", " h -"),
            base.replace("/ HTTP", "/\" HTTP"),
        ] {
            assert_eq!(decode(&line, &m), None, "{line}");
        }
    }

    /// Bytes that matter to the grammar, for mutations.
    fn grammar_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            Just(b' '),
            Just(b'"'),
            Just(b'\\'),
            Just(b':'),
            Just(b'['),
            Just(b']'),
            Just(b'-'),
            Just(b'.'),
            Just(b'0'),
            Just(b'9'),
            Just(b'a'),
            Just(b'_'),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        /// Whatever the fast path accepts, the cursor decodes to the same record.
        #[test]
        fn never_decides_differently(
            pick in 0usize..40,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, grammar_byte()), 1..4),
        ) {
            let mut lines = samples();
            lines.extend(generated(30));
            let mut bytes = lines[pick % lines.len()].clone().into_bytes();
            for (at, op, c) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, c),
                    1 if i < bytes.len() => { bytes.remove(i); }
                    _ if i < bytes.len() => bytes[i] = c,
                    _ => {}
                }
            }
            let line = String::from_utf8_lossy(&bytes).into_owned();
            let m = Mapping::new();
            if let Some(fast) = decode(&line, &m) {
                prop_assert_eq!(Some(fast), decode_slow(&line, &m).ok(), "{}", line);
            }
        }
    }
}
