//! NCSA combined (Apache and nginx default) and Kubernetes ingress-nginx
//! `upstreaminfo`, which is combined plus upstream fields:
//!
//! ```text
//! remote - user [time] "request" status bytes "referer" "user_agent" [request_time]
//! remote - user [time] "request" status bytes "referer" "user_agent" request_length
//!     request_time [upstream_name] [alt_upstream_name] upstream_addr
//!     upstream_response_length upstream_response_time upstream_status req_id
//! ```
//!
//! Upstream fields are comma-separated lists on retries (`a:80, b:80`): the last
//! element is the upstream that answered. Combined has no host: the app is the
//! mapping's `default_app`. ingress-nginx names the app by `proxy_upstream_name`
//! (`namespace-service-port`), unless the mapping's `hosts` table maps that name.

use std::borrow::Cow;

use super::gorouter::split_request;
use super::text::{Cursor, parse_status, parse_u64, parse_u64_or_dash, seconds_to_us};
use super::{DecodeError, Mapping};
use crate::model::AccessRecord;
use crate::time;

/// The part both formats share, up to and including the user agent.
fn decode_prefix<'a>(c: &mut Cursor<'a>) -> Result<AccessRecord<'a>, DecodeError> {
    let remote_addr = c.field("remote_addr")?;
    c.spaces("ident")?;
    c.field("ident")?;
    c.spaces("user")?;
    c.field("user")?;
    c.spaces("timestamp")?;
    let at = c.pos() + 1;
    let ts = c.bracketed("timestamp")?;
    let time_ns =
        time::parse_clf(ts.as_bytes()).map_err(|why| DecodeError::new("timestamp", at, why))?;
    c.spaces("request")?;
    let request_at = c.pos() + 1;
    let (request, _) = c.quoted_raw("request")?;
    let (method, path, protocol) = split_request(request, request_at)?;
    c.spaces("status")?;
    let status = parse_status(c.field("status")?)
        .ok_or_else(|| c.error("status", "is not a number of at most 3 digits"))?;
    c.spaces("bytes_sent")?;
    let bytes_sent = parse_u64_or_dash(c.field("bytes_sent")?).ok_or_else(|| {
        c.error(
            "bytes_sent",
            "is not `-` or a whole number of at most 19 digits",
        )
    })?;
    c.spaces("referer")?;
    c.quoted_raw("referer")?;
    c.spaces("user_agent")?;
    c.quoted_raw("user_agent")?;
    Ok(AccessRecord {
        time_ns,
        remote_addr: if remote_addr == "-" { "" } else { remote_addr },
        method,
        path,
        protocol,
        status,
        bytes_sent,
        ..AccessRecord::default()
    })
}

pub fn decode_combined<'a>(
    line: &'a str,
    mapping: &'a Mapping,
) -> Result<AccessRecord<'a>, DecodeError> {
    let mut c = Cursor::new(line);
    let mut rec = decode_prefix(&mut c)?;
    rec.app = Cow::Borrowed(&mapping.default_app);
    c.skip_spaces();
    if !c.at_end() {
        let t = c.field("request_time")?;
        rec.response_time_us = Some(seconds_to_us(t).ok_or_else(|| {
            c.error("request_time", "trailing field is not seconds like `0.005`")
        })?);
        c.skip_spaces();
        if !c.at_end() {
            return Err(c.error("line", "unexpected text after the request time"));
        }
    }
    Ok(rec)
}

pub fn decode_ingress_nginx<'a>(
    line: &'a str,
    mapping: &'a Mapping,
) -> Result<AccessRecord<'a>, DecodeError> {
    let mut c = Cursor::new(line);
    let mut rec = decode_prefix(&mut c)?;
    c.spaces("request_length")?;
    rec.bytes_received = parse_u64(c.field("request_length")?).ok_or_else(|| {
        c.error(
            "request_length",
            "is not a whole number of at most 19 digits",
        )
    })?;
    c.spaces("request_time")?;
    let t = c.field("request_time")?;
    rec.response_time_us = Some(
        seconds_to_us(t).ok_or_else(|| c.error("request_time", "is not seconds like `0.005`"))?,
    );
    c.spaces("proxy_upstream_name")?;
    let upstream_name = c.bracketed("proxy_upstream_name")?;
    c.spaces("proxy_alternative_upstream_name")?;
    c.bracketed("proxy_alternative_upstream_name")?;
    c.spaces("upstream_addr")?;
    let addr_at = c.pos();
    let addrs = list(&mut c, "upstream_addr")?;
    c.spaces("upstream_response_length")?;
    list(&mut c, "upstream_response_length")?;
    c.spaces("upstream_response_time")?;
    list(&mut c, "upstream_response_time")?;
    c.spaces("upstream_status")?;
    list(&mut c, "upstream_status")?;
    c.spaces("req_id")?;
    rec.request_id = c.field("req_id")?;
    c.skip_spaces();
    if !c.at_end() {
        return Err(c.error("line", "unexpected text after req_id"));
    }
    let last = addrs.rsplit(", ").next().unwrap_or(addrs);
    let last = last.rsplit(" : ").next().unwrap_or(last);
    for a in addrs.split(", ").flat_map(|a| a.split(" : ")) {
        check_upstream_addr(a).map_err(|why| DecodeError::new("upstream_addr", addr_at, why))?;
    }
    rec.backend_addr = if last == "-" { "" } else { last };
    rec.instance = mapping.instance_for_backend(rec.backend_addr);
    rec.app = if upstream_name.is_empty() {
        Cow::Borrowed(&mapping.default_app)
    } else {
        mapping.app_for_host(upstream_name)
    };
    Ok(rec)
}

/// A comma-separated list whose items are separated by `", "` or `" : "`,
/// so it spans several space-separated tokens.
fn list<'a>(c: &mut Cursor<'a>, field: &'static str) -> Result<&'a str, DecodeError> {
    let rest = c.rest();
    let start = c.pos();
    c.field(field)?;
    loop {
        let consumed = &rest[..c.pos() - start];
        if consumed.ends_with(',') {
            c.spaces(field)?;
            c.field(field)?;
        } else if c.rest().starts_with(" : ") {
            c.literal(field, " : ")?;
            c.field(field)?;
        } else {
            return Ok(consumed);
        }
    }
}

/// An upstream as nginx logs it: `host:port`, `[v6]:port`, `unix:/path`, or `-`.
fn check_upstream_addr(a: &str) -> Result<(), &'static str> {
    if a == "-" || a.starts_with("unix:") {
        return Ok(());
    }
    let (host, port) = a.rsplit_once(':').ok_or("address has no `:port`")?;
    let port: u32 = port.parse().map_err(|_| "port is not a number")?;
    if port > 65_535 {
        return Err("port is larger than 65535");
    }
    if let Some(v6) = host.strip_prefix('[') {
        let v6 = v6
            .strip_suffix(']')
            .ok_or("IPv6 address has no closing `]`")?;
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "IPv6 address is malformed")?;
    } else if host.is_empty() {
        return Err("address has an empty host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(name: &str) -> String {
        let path = format!(
            "{}/../shared/data/access-logs/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn every_apache_line_decodes_but_the_truncated_one() {
        let m = Mapping::new();
        let text = shared("elastic_apache_logs.log");
        let mut ok = 0;
        let mut failed = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match decode_combined(line, &m) {
                Ok(r) => {
                    assert_eq!(r.app, "unknown");
                    ok += 1;
                }
                Err(e) => failed.push((i + 1, e)),
            }
        }
        // Line 8899 is cut off inside the user agent (no closing quote).
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, 8899);
        assert_eq!(
            failed[0].1.to_string(),
            "user_agent: quoted string is never closed (column 110)"
        );
        assert_eq!(ok, 9_999);
    }

    #[test]
    fn combined_with_request_time() {
        let m = Mapping {
            default_app: "site".into(),
            ..Mapping::new()
        };
        let line =
            r#"1.2.3.4 - bob [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.0" 503 - "-" "x" 0.250"#;
        let r = decode_combined(line, &m).unwrap();
        assert_eq!(
            (r.status, r.bytes_sent, r.response_time_us),
            (503, 0, Some(250_000))
        );
        assert_eq!(r.app, "site");
        let bad =
            r#"1.2.3.4 - bob [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.0" 503 - "-" "x" soon"#;
        assert_eq!(decode_combined(bad, &m).unwrap_err().field, "request_time");
    }

    #[test]
    fn ingress_lines_decode_except_the_malformed_upstream() {
        let m = Mapping::new();
        let text = shared("beats_nginx_ingress_controller_test.log");
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match decode_ingress_nginx(line, &m) {
                Ok(r) => ok.push((i + 1, r)),
                Err(e) => failed.push((i + 1, e)),
            }
        }
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, 27);
        assert_eq!(failed[0].1.field, "upstream_addr");
        assert!(failed[0].1.reason.contains("65535"), "{}", failed[0].1);
        assert_eq!(ok.len(), 28);
        let (_, first) = &ok[0];
        assert_eq!(first.app, "default-web-8080");
        assert_eq!(first.instance.as_deref(), Some("172.17.0.5:8080"));
        assert_eq!(
            (first.bytes_received, first.response_time_us),
            (89, Some(1000))
        );
        // A request nginx rejected before routing: no upstream, default app.
        let (_, bad_method) = &ok[4];
        assert_eq!((bad_method.method, bad_method.status), ("PATCHp", 400));
        assert_eq!(
            (bad_method.app.as_ref(), bad_method.instance.as_ref()),
            ("unknown", None)
        );
        // Retries: the last upstream answered.
        let (_, retried) = &ok[22];
        assert_eq!(retried.backend_addr, "172.17.0.7:8080");
        // IPv6 upstream.
        assert_eq!(ok[24].1.backend_addr, "[2a02:cf40::]:9200");
        assert_eq!(ok[26].1.backend_addr, "unix:/var/run/php-fpm.sock");
    }
}
