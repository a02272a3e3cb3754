//! nginx JSON access log, as written by the `log_format` in
//! `deploy/nginx/vane-json.conf` (every value a JSON string, `escape=json`).
//!
//! Fields read: `msec` (or `time_iso8601`) for event time, `host`,
//! `remote_addr`, `request_method`, `request_uri` (or `uri`), `server_protocol`,
//! `status`, `request_length`, `body_bytes_sent` (or `bytes_sent`),
//! `request_time`, `upstream_addr`, `request_id`. Numbers may also be JSON
//! numbers. Upstream lists (`a:80, b:80` on retries) resolve to the last
//! element, the upstream that answered. Unknown fields are ignored.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::text::{last_of_list, parse_status, parse_u64_or_dash, seconds_to_us};
use super::{DecodeError, Mapping};
use crate::model::AccessRecord;
use crate::time;

/// A JSON value nginx may write as a string or as a bare number.
#[derive(Debug)]
struct Scalar<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar(Cow::Owned(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar(Cow::Borrowed("")))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    msec: Option<Scalar<'a>>,
    #[serde(borrow)]
    time_iso8601: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    host: Option<Scalar<'a>>,
    #[serde(borrow)]
    remote_addr: Option<Scalar<'a>>,
    #[serde(borrow)]
    request_method: Option<Scalar<'a>>,
    #[serde(borrow, alias = "uri")]
    request_uri: Option<Scalar<'a>>,
    #[serde(borrow)]
    server_protocol: Option<Scalar<'a>>,
    #[serde(borrow)]
    status: Option<Scalar<'a>>,
    #[serde(borrow)]
    request_length: Option<Scalar<'a>>,
    #[serde(borrow, alias = "bytes_sent")]
    body_bytes_sent: Option<Scalar<'a>>,
    #[serde(borrow)]
    request_time: Option<Scalar<'a>>,
    #[serde(borrow)]
    upstream_addr: Option<Scalar<'a>>,
    #[serde(borrow)]
    request_id: Option<Scalar<'a>>,
}

fn text<'s>(s: &'s Option<Scalar<'_>>) -> &'s str {
    s.as_ref().map_or("", |s| s.0.as_ref())
}

/// Borrowed text when the JSON held no escapes; an owned copy forces an
/// allocation we only accept for path and app, which are `Cow` in the record.
fn borrowed<'a>(s: Option<Scalar<'a>>) -> &'a str {
    match s {
        Some(Scalar(Cow::Borrowed(v))) => v,
        _ => "",
    }
}

pub fn decode_nginx_json<'a>(
    line: &'a str,
    mapping: &'a Mapping,
) -> Result<AccessRecord<'a>, DecodeError> {
    let l: Line<'a> = serde_json::from_str(line).map_err(|e| {
        DecodeError::new(
            "json",
            e.column().saturating_sub(1),
            format!("is not a JSON object: {e}"),
        )
    })?;
    let time_ns = match (&l.msec, &l.time_iso8601) {
        (Some(m), _) => time::parse_decimal_seconds(m.0.as_bytes()).and_then(time::check_range),
        (None, Some(t)) => time::parse_iso8601(t.0.as_bytes()),
        (None, None) => Err("has neither `msec` nor `time_iso8601`"),
    }
    .map_err(|why| DecodeError::new("msec", 0, why))?;
    let status = parse_status(text(&l.status))
        .ok_or_else(|| DecodeError::new("status", 0, "is missing or not a number"))?;
    let bytes_sent = match &l.body_bytes_sent {
        None => 0,
        Some(s) => parse_u64_or_dash(&s.0).ok_or_else(|| {
            DecodeError::new(
                "body_bytes_sent",
                0,
                "is not a whole number of at most 19 digits",
            )
        })?,
    };
    let bytes_received = match &l.request_length {
        None => 0,
        Some(s) => parse_u64_or_dash(&s.0).ok_or_else(|| {
            DecodeError::new(
                "request_length",
                0,
                "is not a whole number of at most 19 digits",
            )
        })?,
    };
    let response_time_us =
        match text(&l.request_time) {
            "" | "-" => None,
            t => Some(seconds_to_us(t).ok_or_else(|| {
                DecodeError::new("request_time", 0, "is not seconds like `0.005`")
            })?),
        };
    let upstream = borrowed(l.upstream_addr);
    let backend_addr = match last_of_list(upstream) {
        "-" => "",
        a => a,
    };
    let host = borrowed(l.host);
    let path = match l.request_uri {
        Some(Scalar(p)) => p,
        None => Cow::Borrowed(""),
    };
    Ok(AccessRecord {
        time_ns,
        app: mapping.app_for_host(host),
        host,
        instance: mapping.instance_for_backend(backend_addr),
        method: borrowed(l.request_method),
        path,
        protocol: borrowed(l.server_protocol),
        status,
        bytes_received,
        bytes_sent,
        response_time_us,
        remote_addr: borrowed(l.remote_addr),
        backend_addr,
        request_id: borrowed(l.request_id),
        instance_id: "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_format_decodes() {
        let m = Mapping {
            hosts: [("shop.example.com".to_string(), "shop".to_string())].into(),
            ..Mapping::new()
        };
        let line = r#"{"msec":"1700000000.123","host":"shop.example.com","remote_addr":"10.0.0.9","request_method":"POST","request_uri":"/cart?x=\"1\"","server_protocol":"HTTP/1.1","status":"502","request_length":"321","body_bytes_sent":"0","request_time":"0.031","upstream_addr":"10.1.0.1:8080, 10.1.0.2:8080","upstream_status":"502, 502","upstream_response_time":"0.010, 0.020","request_id":"abc","http_user_agent":"curl"}"#;
        let r = decode_nginx_json(line, &m).unwrap();
        assert_eq!(r.time_ns, 1_700_000_000_123_000_000);
        assert_eq!(r.app, "shop");
        assert_eq!(r.instance.as_deref(), Some("10.1.0.2:8080"));
        assert_eq!(r.path, "/cart?x=\"1\"");
        assert_eq!((r.status, r.bytes_received, r.bytes_sent), (502, 321, 0));
        assert_eq!(r.response_time_us, Some(31_000));
    }

    #[test]
    fn numbers_iso_time_and_no_upstream() {
        let m = Mapping::new();
        let line = r#"{"time_iso8601":"2023-11-14T22:13:20+00:00","host":"a.test","status":200,"body_bytes_sent":12,"request_time":0.5,"upstream_addr":"-"}"#;
        let r = decode_nginx_json(line, &m).unwrap();
        assert_eq!(r.time_ns, 1_700_000_000 * time::NANOS_PER_SEC);
        assert_eq!((r.app.as_ref(), r.instance.as_ref()), ("a.test", None));
        assert_eq!(r.response_time_us, Some(500_000));
    }

    #[test]
    fn errors() {
        let m = Mapping::new();
        assert_eq!(
            decode_nginx_json("{\"msec\":", &m).unwrap_err().field,
            "json"
        );
        assert_eq!(
            decode_nginx_json(r#"{"status":"200"}"#, &m)
                .unwrap_err()
                .field,
            "msec"
        );
        assert_eq!(
            decode_nginx_json(r#"{"msec":"1.0","status":"ok"}"#, &m)
                .unwrap_err()
                .field,
            "status"
        );
    }
}
