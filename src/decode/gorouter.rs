//! Cloud Foundry gorouter (RTR) access log.
//!
//! ```text
//! host - [time] "METHOD path PROTO" status bytes_received bytes_sent "referer" "user_agent"
//!     remote_addr [backend_addr] key:value key:"value" ...
//! ```
//!
//! Generations handled: 2016 (`[dd/mm/yyyy:hh:mm:ss +0000]`, unquoted remote
//! address, no backend), 2016 with a quoted backend, 2017+ (ISO time with ms or
//! ns and `Z` or `+0000`, quoted `app_id` / `app_index`), `gorouter_time` /
//! `app_time`, and 2018+ tracing keys. The key:value section is read in any order;
//! unknown keys are skipped.
//!
//! One tolerance, decided on purpose: bytes glued to the closing quote of a
//! value (`x_b3_parentspanid:"-"'`, line 6 of the upstream samples) are ignored
//! up to the next space. They cannot change any field, and dropping the line
//! would lose a real request from the counts.

use std::borrow::Cow;

use super::text::{
    Cursor, parse_status, parse_u64, parse_u64_or_dash, seconds_to_us, unescape_cow,
};
use super::{DecodeError, Mapping};
use crate::model::AccessRecord;
use crate::time;

mod fast;

/// Decodes one gorouter line: through the structural fast path when it can
/// read the line without doubt, else byte by byte (which also explains
/// every malformed line).
pub fn decode_gorouter<'a>(
    line: &'a str,
    mapping: &'a Mapping,
) -> Result<AccessRecord<'a>, DecodeError> {
    match fast::decode(line, mapping) {
        Some(rec) => Ok(rec),
        None => decode_slow(line, mapping),
    }
}

/// The byte-by-byte decoder: every generation and tolerance, and the errors.
fn decode_slow<'a>(line: &'a str, mapping: &'a Mapping) -> Result<AccessRecord<'a>, DecodeError> {
    let mut c = Cursor::new(line);
    let host = c.field("host")?;
    c.spaces("host")?;
    c.literal("host", "- [")
        .map_err(|e| DecodeError::new("host", e.column, "expected ` - [` after the host"))?;
    c.back(1);
    let time_ns = parse_time(&mut c)?;
    c.spaces("request")?;
    let request_at = c.pos() + 1;
    let (request, _) = c.quoted_raw("request")?;
    let (method, path, protocol) = split_request(request, request_at)?;
    c.spaces("status")?;
    let status = parse_status(c.field("status")?)
        .ok_or_else(|| c.error("status", "is not a number of at most 3 digits"))?;
    c.spaces("bytes_received")?;
    let bytes_received = parse_u64_or_dash(c.field("bytes_received")?).ok_or_else(|| {
        c.error(
            "bytes_received",
            "is not a whole number of at most 19 digits",
        )
    })?;
    c.spaces("bytes_sent")?;
    let bytes_sent = parse_u64_or_dash(c.field("bytes_sent")?)
        .ok_or_else(|| c.error("bytes_sent", "is not a whole number of at most 19 digits"))?;
    c.spaces("referer")?;
    c.quoted_raw("referer")?;
    c.spaces("user_agent")?;
    c.quoted_raw("user_agent")?;
    c.spaces("remote_addr")?;
    let remote_addr = address(&mut c, "remote_addr")?;
    c.skip_spaces();
    let mut backend_addr = "";
    if c.peek() == Some(b'"') || (!c.at_end() && !starts_with_key(c.rest())) {
        backend_addr = address(&mut c, "backend_addr")?;
    }

    let mut rec = AccessRecord {
        time_ns,
        app: Cow::Borrowed(""),
        host,
        instance: None,
        method,
        path,
        protocol,
        status,
        bytes_received,
        bytes_sent,
        response_time_us: None,
        remote_addr,
        backend_addr,
        request_id: "",
        instance_id: "",
    };
    let mut app_id: Option<&'a str> = None;
    loop {
        c.skip_spaces();
        if c.at_end() {
            break;
        }
        let key_at = c.pos();
        let Some(key) = c.key() else {
            return Err(DecodeError::new(
                "key:value",
                key_at,
                "expected `key:value`",
            ));
        };
        let wanted = Key::of(key);
        let value = if c.peek() == Some(b'"') {
            let (raw, _) = c.quoted_raw(wanted.field_name())?;
            if !matches!(c.peek(), None | Some(b' ')) {
                // The tolerance described in the module docs.
                c.token();
            }
            raw
        } else {
            c.token()
        };
        match wanted {
            Key::Other => {}
            Key::ResponseTime => {
                rec.response_time_us = match value {
                    "-" | "" => None,
                    v => Some(seconds_to_us(v).ok_or_else(|| {
                        DecodeError::new(
                            "response_time",
                            key_at,
                            "is neither `-` nor seconds like `0.005`",
                        )
                    })?),
                }
            }
            Key::AppId => app_id = Some(value).filter(|v| !v.is_empty() && *v != "-"),
            Key::AppIndex => {
                if value != "-" && !value.is_empty() {
                    parse_u64(value).ok_or_else(|| {
                        DecodeError::new("app_index", key_at, "is not a whole number")
                    })?;
                    rec.instance = Some(Cow::Borrowed(value));
                }
            }
            Key::RequestId => rec.request_id = value,
            Key::InstanceId => rec.instance_id = value,
        }
    }
    rec.app = match app_id {
        Some(id) => Cow::Borrowed(id),
        None => mapping.app_for_host(host),
    };
    Ok(rec)
}

/// The keys Vane reads; every other key is skipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    ResponseTime,
    AppId,
    AppIndex,
    RequestId,
    InstanceId,
    Other,
}

impl Key {
    /// Compares fixed-size arrays, which compile to a few word compares: this
    /// runs for every pair of every line.
    #[inline(always)]
    fn of(key: &str) -> Key {
        let b = key.as_bytes();
        match b.len() {
            13 if <[u8; 13]>::try_from(b).is_ok_and(|a| &a == b"response_time") => {
                Key::ResponseTime
            }
            6 if <[u8; 6]>::try_from(b).is_ok_and(|a| &a == b"app_id") => Key::AppId,
            9 if <[u8; 9]>::try_from(b).is_ok_and(|a| &a == b"app_index") => Key::AppIndex,
            15 if <[u8; 15]>::try_from(b).is_ok_and(|a| &a == b"vcap_request_id") => Key::RequestId,
            11 if <[u8; 11]>::try_from(b).is_ok_and(|a| &a == b"instance_id") => Key::InstanceId,
            _ => Key::Other,
        }
    }

    fn field_name(self) -> &'static str {
        match self {
            Key::ResponseTime => "response_time",
            Key::AppId => "app_id",
            Key::AppIndex => "app_index",
            Key::RequestId => "vcap_request_id",
            Key::InstanceId => "instance_id",
            Key::Other => "key:value",
        }
    }
}

fn parse_time(c: &mut Cursor<'_>) -> Result<i64, DecodeError> {
    let at = c.pos() + 1;
    let inside = c.bracketed("timestamp")?;
    let b = inside.as_bytes();
    let parsed = if b.get(4) == Some(&b'-') {
        time::parse_iso8601(b)
    } else {
        time::parse_clf(b)
    };
    parsed.map_err(|why| DecodeError::new("timestamp", at, why))
}

/// `"10.0.0.1:61010"`, bare `10.0.0.1:61010`, or `"-"` (empty).
fn address<'a>(c: &mut Cursor<'a>, field: &'static str) -> Result<&'a str, DecodeError> {
    let v = if c.peek() == Some(b'"') {
        c.quoted_raw(field)?.0
    } else {
        c.field(field)?
    };
    Ok(if v == "-" { "" } else { v })
}

fn starts_with_key(rest: &str) -> bool {
    Cursor::new(rest).key().is_some()
}

/// `METHOD path PROTO`. Method and protocol are kept as written; the path is
/// unescaped. A request line that is not three parts (garbage sent to the
/// router) keeps whatever parts it has: the request still happened.
pub(super) fn split_request(
    raw: &str,
    at: usize,
) -> Result<(&str, Cow<'_, str>, &str), DecodeError> {
    // Byte scans rather than `split_once`: this runs for every line.
    let (method, rest) = match super::scan::find1(raw.as_bytes(), b' ') {
        Some(i) => (&raw[..i], &raw[i + 1..]),
        None => ("", raw),
    };
    let (path, protocol) = match rest.as_bytes().iter().rposition(|&b| b == b' ') {
        Some(i) if rest.as_bytes()[i + 1..].starts_with(b"HTTP/") => (&rest[..i], &rest[i + 1..]),
        _ => (rest, ""),
    };
    let path = unescape_cow(path).map_err(|(i, why)| DecodeError::new("request", at + i, why))?;
    Ok((method, path, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<String> {
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
    fn every_generation_decodes() {
        let m = Mapping::new();
        let l = lines();
        assert_eq!(l.len(), 6);
        let recs: Vec<_> = l.iter().map(|x| decode_gorouter(x, &m).unwrap()).collect();

        // 2016, unquoted remote address only, unquoted app_id, numeric-month time.
        assert_eq!(recs[0].app, "7ae227a6-6ad1-46d4-bfb9-6e60d7796bb5");
        assert_eq!(recs[0].instance, None);
        assert_eq!(recs[0].remote_addr, "192.168.111.21:35826");
        assert_eq!(recs[0].backend_addr, "");
        assert_eq!(recs[0].time_ns, 1_468_574_785 * time::NANOS_PER_SEC);
        assert_eq!(recs[0].response_time_us, Some(5329));
        assert_eq!(
            (recs[0].status, recs[0].bytes_received, recs[0].bytes_sent),
            (200, 0, 1413)
        );
        assert_eq!(
            (recs[0].method, &*recs[0].path, recs[0].protocol),
            ("GET", "/some/http", "HTTP/1.1")
        );
        assert_eq!(recs[0].request_id, "831e54f1-f09f-4971-6856-9fdd502d4ae3");

        // 2016 with a quoted backend address.
        assert_eq!(recs[1].backend_addr, "192.861.111.12:33456");
        // 2017: ISO time with ms and +0000, quoted app_id and app_index.
        assert_eq!(recs[2].app, "27c02dec-80ce-4af6-94c5-2b51848edae9");
        assert_eq!(recs[2].instance.as_deref(), Some("1"));
        assert_eq!(recs[2].time_ns, 1_489_670_905_166_000_000);
        // `"-" "-"` addresses are empty.
        assert_eq!((recs[3].remote_addr, recs[3].backend_addr), ("", ""));
        // gorouter_time / app_time are extra keys.
        assert_eq!(recs[4].response_time_us, Some(1603));
        // 2018: 502, 5.04 s, tracing keys, stray `'` tolerated, host with a port-like prefix.
        assert_eq!(recs[5].host, "1234:example.com");
        assert_eq!(recs[5].status, 502);
        assert_eq!(recs[5].response_time_us, Some(5_042_571));
        assert_eq!(recs[5].app, "65e29887-73a2-4ecc-9795-70f2ec27b2d2");
        assert_eq!(recs[5].bytes_received, 2272);
    }

    #[test]
    fn nanosecond_z_times_and_dash_response_time() {
        let m = Mapping::new();
        let line = r#"app.example.com - [2019-03-22T14:46:52.175625546Z] "GET /x?q=%22 HTTP/1.1" 404 0 18 "-" "curl" "1.2.3.4:5" "-" x_forwarded_for:"-" x_forwarded_proto:"https" vcap_request_id:"r" response_time:"-" gorouter_time:"-" app_id:"-" app_index:"-" x_cf_routererror:"unknown_route""#;
        let r = decode_gorouter(line, &m).unwrap();
        assert_eq!(r.time_ns, 1_553_266_012_175_625_546);
        assert_eq!(r.response_time_us, None);
        assert_eq!(r.app, "app.example.com", "no app_id: the host is the app");
        assert_eq!(r.instance, None);
    }

    #[test]
    fn go_quoted_path_and_keys_in_any_order() {
        let m = Mapping::new();
        let line = r#"h - [2019-03-22T14:46:52Z] "GET /a\"b\\c\u00e9 HTTP/2.0" 200 1 2 "-" "ua \"x\"" "1.2.3.4:5" "6.7.8.9:10" app_index:"3" tls_time:0.001 app_id:"g" instance_id:"c0ffee" response_time:0.25"#;
        let r = decode_gorouter(line, &m).unwrap();
        assert_eq!(r.path, "/a\"b\\cé");
        assert_eq!(r.protocol, "HTTP/2.0");
        assert_eq!((r.app.as_ref(), r.instance.as_deref()), ("g", Some("3")));
        assert_eq!(r.instance_id, "c0ffee");
        assert_eq!(r.response_time_us, Some(250_000));
    }

    #[test]
    fn malformed_lines_say_where_and_why() {
        let m = Mapping::new();
        let cases = [
            (
                r#"h - [2019-03-22T14:46:52Z] "GET / HTTP/1.1" 2x0 1 2 "-" "-" "a" "b""#,
                "status",
            ),
            (
                r#"h - [2019-13-22T14:46:52Z] "GET / HTTP/1.1" 200 1 2 "-" "-" "a" "b""#,
                "timestamp",
            ),
            (
                r#"h - [2019-03-22T14:46:52Z] "GET / HTTP/1.1 200 1 2"#,
                "request",
            ),
            (
                r#"h - [2019-03-22T14:46:52Z] "GET / HTTP/1.1" 200 1 2 "-" "-" "a" "b" response_time:abc"#,
                "response_time",
            ),
            (
                r#"h - [2019-03-22T14:46:52Z] "GET / HTTP/1.1" 200 1 2 "-" "-" "a" "b" app_index:"x""#,
                "app_index",
            ),
            (
                r#"h - [2019-03-22T14:46:52Z] "GET / HTTP/1.1" 200 1 2 "-" "-" "a" "b" stray"#,
                "key:value",
            ),
            ("", "host"),
        ];
        for (line, field) in cases {
            let e = decode_gorouter(line, &m).unwrap_err();
            assert_eq!(e.field, field, "{line}: {e}");
        }
    }
}
