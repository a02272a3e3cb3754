//! A cursor over one log line and the quoting rules the router formats share.

use std::borrow::Cow;

use super::DecodeError;

/// Reads a line left to right. Every method either advances past what it read or
/// returns a [`DecodeError`] naming the field and the byte column.
pub struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(line: &'a str) -> Self {
        Cursor { line, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn rest(&self) -> &'a str {
        &self.line[self.pos..]
    }

    /// Steps back `n` bytes (after a literal that included the next field's opener).
    pub fn back(&mut self, n: usize) {
        self.pos = self.pos.saturating_sub(n);
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.pos).copied()
    }

    pub fn error(&self, field: &'static str, reason: impl Into<Cow<'static, str>>) -> DecodeError {
        DecodeError::new(field, self.pos, reason)
    }

    /// Skips one or more spaces; `field` names what was expected after them.
    pub fn spaces(&mut self, field: &'static str) -> Result<(), DecodeError> {
        let start = self.pos;
        let b = self.line.as_bytes();
        while self.pos < b.len() && b[self.pos] == b' ' {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error(field, "expected a space before it"));
        }
        Ok(())
    }

    pub fn skip_spaces(&mut self) {
        let b = self.line.as_bytes();
        while self.pos < b.len() && b[self.pos] == b' ' {
            self.pos += 1;
        }
    }

    pub fn literal(&mut self, field: &'static str, lit: &str) -> Result<(), DecodeError> {
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.error(field, format!("expected `{lit}`")))
        }
    }

    /// A run of non-space bytes (may be empty at end of line). A plain loop:
    /// tokens are short, where `memchr`'s setup costs more than it saves.
    #[inline]
    pub fn token(&mut self) -> &'a str {
        let b = self.line.as_bytes();
        let start = self.pos;
        let i = super::scan::find1(&b[start..], b' ').map_or(b.len(), |p| start + p);
        self.pos = i;
        // Spaces are ASCII, so both ends are char boundaries.
        &self.line[start..i]
    }

    /// An identifier followed by `:` (the key of a gorouter `key:value` pair);
    /// advances past the colon.
    #[inline]
    pub fn key(&mut self) -> Option<&'a str> {
        let b = self.line.as_bytes();
        let start = self.pos;
        let i = super::scan::find3(&b[start..], b':', b' ', b'"').map_or(b.len(), |p| start + p);
        // Only the first byte is checked (a letter or `_`, which tells a key from
        // an address); unknown keys are skipped anyway, so the rest need not be.
        if i == start || b.get(i) != Some(&b':') || !KEY_START[b[start] as usize] {
            return None;
        }
        self.pos = i + 1;
        Some(&self.line[start..i])
    }

    /// A non-empty token.
    pub fn field(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let t = self.token();
        if t.is_empty() {
            return Err(DecodeError::new(field, at, "is missing"));
        }
        Ok(t)
    }

    /// `[ ... ]` without nesting; returns the inside.
    pub fn bracketed(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        if self.peek() != Some(b'[') {
            return Err(self.error(field, "expected `[`"));
        }
        let rest = &self.line[self.pos + 1..];
        let Some(end) = memchr::memchr(b']', rest.as_bytes()) else {
            return Err(self.error(field, "`[` is never closed by `]`"));
        };
        self.pos += end + 2;
        Ok(&rest[..end])
    }

    /// A double-quoted string, raw: returns the text between the quotes with its
    /// escapes untouched, and whether it holds any. Used for fields that are
    /// skipped or only searched, so they cost one `memchr` pass.
    pub fn quoted_raw(&mut self, field: &'static str) -> Result<(&'a str, bool), DecodeError> {
        if self.peek() != Some(b'"') {
            return Err(self.error(field, "expected a `\"`-quoted string"));
        }
        let start = self.pos + 1;
        let bytes = self.line.as_bytes();
        let mut i = start;
        let mut escaped = false;
        loop {
            let Some(off) = super::scan::find2(&bytes[i..], b'"', b'\\') else {
                return Err(DecodeError::new(
                    field,
                    self.pos,
                    "quoted string is never closed",
                ));
            };
            i += off;
            if bytes[i] == b'"' {
                break;
            }
            escaped = true;
            i += 2; // skip the escaped byte; `\u` digits are plain characters
            if i >= bytes.len() {
                return Err(DecodeError::new(
                    field,
                    self.pos,
                    "quoted string is never closed",
                ));
            }
        }
        self.pos = i + 1;
        Ok((&self.line[start..i], escaped))
    }

    /// A double-quoted string with backslash escapes (Go `strconv.Quote` style as
    /// written by gorouter, and Apache's `\"`/`\\`/`\xhh`). Borrows unless it
    /// holds an escape.
    pub fn quoted(&mut self, field: &'static str) -> Result<Cow<'a, str>, DecodeError> {
        let start = self.pos + 1;
        let (raw, escaped) = self.quoted_raw(field)?;
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        unescape(raw)
            .map(Cow::Owned)
            .map_err(|(at, why)| DecodeError::new(field, start + at, why))
    }

    /// A `"`-quoted string, or a bare token.
    pub fn quoted_or_token(&mut self, field: &'static str) -> Result<Cow<'a, str>, DecodeError> {
        if self.peek() == Some(b'"') {
            self.quoted(field)
        } else {
            Ok(Cow::Borrowed(self.token()))
        }
    }
}

/// Bytes a `key:value` key may start with: ASCII letters and `_`.
pub(crate) static KEY_START: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphabetic() || b == b'_';
        c += 1;
    }
    t
};

/// Borrows `raw` when it has no backslash, else unescapes it.
pub fn unescape_cow(raw: &str) -> Result<Cow<'_, str>, (usize, &'static str)> {
    if memchr::memchr(b'\\', raw.as_bytes()).is_none() {
        Ok(Cow::Borrowed(raw))
    } else {
        unescape(raw).map(Cow::Owned)
    }
}

/// Resolves backslash escapes; the error carries the byte offset inside `raw`.
pub fn unescape(raw: &str) -> Result<String, (usize, &'static str)> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut run_start = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&raw[run_start..i]);
        let esc = *b.get(i + 1).ok_or((i, "string ends in a `\\`"))?;
        i += 2;
        match esc {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'\'' => out.push('\''),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'a' => out.push('\u{7}'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'v' => out.push('\u{b}'),
            b'x' => {
                let v = hex(b, i, 2).ok_or((i, "`\\x` needs two hex digits"))?;
                // Apache and Go use `\xhh` for a raw byte; keep it visible and valid UTF-8.
                out.push(char::from(v as u8));
                i += 2;
            }
            b'u' | b'U' => {
                let n = if esc == b'u' { 4 } else { 8 };
                let v = hex(b, i, n).ok_or((i, "`\\u` needs hex digits"))?;
                i += n;
                let c = if (0xD800..0xDC00).contains(&v) {
                    // JSON-style surrogate pair: `\ud83d\ude00`.
                    let lo = (b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u'))
                        .then(|| hex(b, i + 2, 4))
                        .flatten()
                        .filter(|lo| (0xDC00..0xE000).contains(lo))
                        .ok_or((i, "`\\u` high surrogate without a low surrogate"))?;
                    i += 6;
                    char::from_u32(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00))
                } else {
                    char::from_u32(v)
                };
                out.push(c.ok_or((i, "`\\u` escape is not a Unicode scalar value"))?);
            }
            _ => return Err((i - 1, "unknown escape after `\\`")),
        }
        run_start = i;
    }
    out.push_str(&raw[run_start..]);
    Ok(out)
}

fn hex(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// A decimal unsigned integer; `-` counts as 0 (Apache and nginx log `-` for "no body").
pub fn parse_u64_or_dash(s: &str) -> Option<u64> {
    if s == "-" {
        return Some(0);
    }
    parse_u64(s)
}

pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &c in s.as_bytes() {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

/// An HTTP status: three digits (gorouter may log `0` for unroutable requests).
pub fn parse_status(s: &str) -> Option<u16> {
    let v = parse_u64(s)?;
    (v <= 999).then_some(v as u16)
}

/// Seconds with a fraction (`0.005328859`) → microseconds, rounded to nearest.
pub fn seconds_to_us(s: &str) -> Option<u64> {
    let ns = crate::time::parse_decimal_seconds(s.as_bytes()).ok()?;
    // Rounded to the nearest microsecond; near i64::MAX the sum would overflow.
    u64::try_from(ns.checked_add(500)? / 1000).ok()
}

/// The last element of an nginx upstream list: `a, b : c` (`,` separates retries,
/// ` : ` internal redirects); the one that answered is the last.
pub fn last_of_list(s: &str) -> &str {
    let tail = match s.rfind([',', ':']) {
        // Only split on the list separators, not on `host:port` colons.
        Some(_) => s.rsplit(", ").next().unwrap_or(s),
        None => s,
    };
    tail.rsplit(" : ").next().unwrap_or(tail).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_times_at_the_ends_of_i64_give_none_or_a_number() {
        assert_eq!(seconds_to_us("9223372036.854775807"), None);
        assert_eq!(
            seconds_to_us("9223372036.854775"),
            Some(9_223_372_036_854_775)
        );
        assert_eq!(seconds_to_us("99999999999999999999"), None);
        assert_eq!(seconds_to_us("0.0000005"), Some(1));
    }

    #[test]
    fn quoted_borrows_without_escapes() {
        let mut c = Cursor::new(r#""GET / HTTP/1.1" rest"#);
        assert!(matches!(
            c.quoted("request").unwrap(),
            Cow::Borrowed("GET / HTTP/1.1")
        ));
        assert_eq!(c.rest(), " rest");
    }

    #[test]
    fn quoted_unescapes_go_style() {
        let mut c = Cursor::new(r#""a \"b\" \\ \u00e9 \x41 \ud83d\ude00""#);
        assert_eq!(c.quoted("ua").unwrap(), "a \"b\" \\ é A 😀");
        assert!(c.at_end());
    }

    #[test]
    fn quoted_errors_name_the_column() {
        let mut c = Cursor::new(r#"x "never closed"#);
        c.token();
        c.skip_spaces();
        let e = c.quoted("referer").unwrap_err();
        assert_eq!((e.field, e.column), ("referer", 2));
        let mut c = Cursor::new(r#""bad \q escape""#);
        assert!(
            c.quoted("ua")
                .unwrap_err()
                .reason
                .contains("unknown escape")
        );
    }

    #[test]
    fn upstream_lists() {
        assert_eq!(last_of_list("10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(last_of_list("10.0.0.1:80, 10.0.0.2:80"), "10.0.0.2:80");
        assert_eq!(last_of_list("10.0.0.1:80 : 10.0.0.3:80"), "10.0.0.3:80");
        assert_eq!(last_of_list("[::1]:80, [::2]:80"), "[::2]:80");
    }
}
