//! A [`LogEvent`] as an Elastic Common Schema document, its deterministic
//! `_id` and its daily index.
//!
//! | field | from |
//! |---|---|
//! | `@timestamp` | the head line's time (UTC, ms) |
//! | `message` | the whole event, stack trace included |
//! | `log.level`, `log.logger` | parsed from the head |
//! | `log.file.path`, `log.offset` | the stream (file or `topic/partition`) and the first line's position |
//! | `process.thread.name` | `[thread]` of log4j-style heads |
//! | `error.type`, `error.stack_trace` | the first exception class, the continuation lines |
//! | `service.name`, `service.node.name` | app and instance |
//! | `cloudfoundry.app.id`, `cloudfoundry.app.instance_id` | when the app id is a GUID (Cloud Foundry) |
//! | `kubernetes.pod.name` | when the instance is a pod name (not a number) |
//! | `event.id` | the `_id`: a hash of stream and position |
//! | `event.dataset` | `vane.applog` |

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::LogEvent;
use crate::time::{NANOS_PER_SEC, civil_from_days};

/// The document id: the same source position always gives the same id, so
/// a replay after a crash is recognised (`create` answers 409).
pub fn doc_id(ev: &LogEvent) -> String {
    let mut h = Sha256::new();
    h.update(ev.source.as_bytes());
    h.update([0]);
    h.update(ev.offset.to_be_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// An access log record as an ECS document (`event.dataset` `vane.access`),
/// to be indexed beside the app logs.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessDoc {
    /// Deterministic: a hash of stream and position (like app log events).
    pub id: String,
    pub time_ns: i64,
    /// The document, as JSON.
    pub source: String,
}

/// The ECS document of one decoded access log line at `offset` of `stream`:
/// `@timestamp`, `message` (the line), `http.request.method`,
/// `http.request.bytes`, `http.response.status_code`,
/// `http.response.body.bytes`, `http.version`, `url.path`, `url.domain`,
/// `event.duration` (ns), `source.address`, `service.name` (the app),
/// `service.node.name` (the instance), `cloudfoundry.app.id` for GUIDs,
/// `http.request.id`.
pub fn access_doc(
    rec: &crate::model::AccessRecord<'_>,
    line: &str,
    stream: &str,
    offset: u64,
) -> AccessDoc {
    let mut h = Sha256::new();
    h.update(b"access\0");
    h.update(stream.as_bytes());
    h.update([0]);
    h.update(offset.to_be_bytes());
    let id: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut request = Map::new();
    if !rec.method.is_empty() {
        request.insert("method".into(), json!(rec.method));
    }
    request.insert("bytes".into(), json!(rec.bytes_received));
    if !rec.request_id.is_empty() && rec.request_id != "-" {
        request.insert("id".into(), json!(rec.request_id));
    }
    let mut http = json!({
        "request": Value::Object(request),
        "response": { "status_code": rec.status, "body": { "bytes": rec.bytes_sent } },
    });
    if let Some(v) = rec.protocol.strip_prefix("HTTP/") {
        http["version"] = json!(v);
    }
    let mut service = json!({ "name": rec.app });
    if let Some(i) = &rec.instance {
        service["node"] = json!({ "name": i });
    }
    let mut doc = json!({
        "@timestamp": timestamp(rec.time_ns),
        "message": line,
        "http": http,
        "url": { "path": rec.path, "domain": rec.host },
        "service": service,
        "log": { "file": { "path": stream }, "offset": offset },
        "event": { "id": id, "dataset": "vane.access", "kind": "event" },
    });
    if let Some(us) = rec.response_time_us {
        doc["event"]["duration"] = json!(us.saturating_mul(1_000));
    }
    let remote = host_of(rec.remote_addr);
    if !remote.is_empty() {
        doc["source"] = json!({ "address": remote });
    }
    if is_guid(&rec.app) {
        let mut app = json!({ "id": rec.app });
        if let Some(i) = &rec.instance {
            app["instance_id"] = json!(i);
        }
        doc["cloudfoundry"] = json!({ "app": app });
    }
    AccessDoc {
        id,
        time_ns: rec.time_ns,
        source: doc.to_string(),
    }
}

/// The address without its port: `10.0.0.1:5000` → `10.0.0.1`,
/// `[2001:db8::1]:443` → `2001:db8::1`; a bare IPv6 address stays whole.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.matches(':').count() {
        1 => addr.split(':').next().unwrap_or(addr),
        _ => addr,
    }
}

/// `{prefix}-yyyy.mm.dd` of the event's UTC day.
pub fn index_name(prefix: &str, time_ns: i64) -> String {
    let (y, m, d) = civil_from_days(time_ns.div_euclid(NANOS_PER_SEC).div_euclid(86_400));
    format!("{prefix}-{y:04}.{m:02}.{d:02}")
}

/// `2016-12-19T20:39:48.918Z`.
pub fn timestamp(time_ns: i64) -> String {
    let secs = time_ns.div_euclid(NANOS_PER_SEC);
    let ms = time_ns.rem_euclid(NANOS_PER_SEC) / 1_000_000;
    let base = crate::time::format_rfc3339(secs);
    format!("{}.{ms:03}Z", base.trim_end_matches('Z'))
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The ECS document.
pub fn to_ecs(ev: &LogEvent) -> Value {
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(timestamp(ev.time_ns)));
    doc.insert("message".into(), json!(ev.message));
    let mut log = Map::new();
    if let Some(l) = ev.level {
        log.insert("level".into(), json!(l.name()));
    }
    if let Some(l) = &ev.logger {
        log.insert("logger".into(), json!(l));
    }
    log.insert("file".into(), json!({ "path": ev.source }));
    log.insert("offset".into(), json!(ev.offset));
    doc.insert("log".into(), Value::Object(log));
    let mut service = Map::new();
    service.insert("name".into(), json!(ev.app));
    if let Some(i) = &ev.instance {
        service.insert("node".into(), json!({ "name": i }));
    }
    doc.insert("service".into(), Value::Object(service));
    if is_guid(&ev.app) {
        let mut app = Map::new();
        app.insert("id".into(), json!(ev.app));
        if let Some(i) = &ev.instance {
            app.insert("instance_id".into(), json!(i));
        }
        doc.insert("cloudfoundry".into(), json!({ "app": app }));
    } else if let Some(i) = ev.instance.as_deref().filter(|i| i.parse::<u64>().is_err()) {
        doc.insert("kubernetes".into(), json!({ "pod": { "name": i } }));
    }
    if let Some(t) = &ev.thread {
        doc.insert("process".into(), json!({ "thread": { "name": t } }));
    }
    if ev.error_type.is_some() || ev.stack_trace.is_some() {
        let mut e = Map::new();
        if let Some(t) = &ev.error_type {
            e.insert("type".into(), json!(t));
        }
        if let Some(s) = &ev.stack_trace {
            e.insert("stack_trace".into(), json!(s));
        }
        doc.insert("error".into(), Value::Object(e));
    }
    if let Some(f) = &ev.fields {
        doc.insert("json".into(), Value::Object(f.clone()));
    }
    doc.insert(
        "event".into(),
        json!({ "id": doc_id(ev), "dataset": "vane.applog", "kind": "event" }),
    );
    Value::Object(doc)
}

/// The index template installed at start-up: every daily index of `prefix`
/// gets these mappings and joins the alias `prefix`.
pub fn index_template(prefix: &str) -> Value {
    let kw = json!({ "type": "keyword", "ignore_above": 1024 });
    json!({
        "index_patterns": [format!("{prefix}-*")],
        "priority": 100,
        "template": {
            "settings": { "number_of_shards": 1 },
            "aliases": { prefix: {} },
            "mappings": {
                "dynamic": true,
                "properties": {
                    "@timestamp": { "type": "date" },
                    "message": { "type": "text" },
                    "log": { "properties": {
                        "level": kw, "logger": kw,
                        "file": { "properties": { "path": kw } },
                        "offset": { "type": "long" }
                    } },
                    "service": { "properties": {
                        "name": kw, "node": { "properties": { "name": kw } }
                    } },
                    "cloudfoundry": { "properties": { "app": { "properties": {
                        "id": kw, "instance_id": kw
                    } } } },
                    "kubernetes": { "properties": { "pod": { "properties": { "name": kw } } } },
                    "process": { "properties": { "thread": { "properties": { "name": kw } } } },
                    "error": { "properties": {
                        "type": kw, "stack_trace": { "type": "text" }
                    } },
                    "event": { "properties": {
                        "id": kw, "dataset": kw, "kind": kw, "duration": { "type": "long" }
                    } },
                    "http": { "properties": {
                        "request": { "properties": {
                            "method": kw, "id": kw, "bytes": { "type": "long" }
                        } },
                        "response": { "properties": {
                            "status_code": { "type": "long" },
                            "body": { "properties": { "bytes": { "type": "long" } } }
                        } },
                        "version": kw
                    } },
                    "url": { "properties": { "path": kw, "domain": kw } },
                    "source": { "properties": { "address": kw } }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Level;

    #[test]
    fn an_access_record_becomes_an_ecs_document() {
        let line = r#"shop.example.com - [2026-01-01T00:00:01.250Z] "GET /cart?x=1 HTTP/1.1" 503 12 512 "-" "curl" "[2001:db8::1]:5000" "10.0.1.1:61000" x_forwarded_for:"-" x_forwarded_proto:"https" vcap_request_id:"r-1" response_time:0.020 gorouter_time:0.0001 app_id:"5b7c2a1e-0000-4000-8000-000000000001" app_index:"3""#;
        let mapping = crate::decode::Mapping::new();
        let rec = crate::decode::decode_gorouter(line, &mapping).unwrap();
        let d = access_doc(&rec, line, "router/0", 41);
        let v: Value = serde_json::from_str(&d.source).unwrap();
        assert_eq!(v["@timestamp"], "2026-01-01T00:00:01.250Z");
        assert_eq!(v["http"]["request"]["method"], "GET");
        assert_eq!(v["http"]["response"]["status_code"], 503);
        assert_eq!(v["http"]["response"]["body"]["bytes"], 512);
        assert_eq!(v["http"]["version"], "1.1");
        assert_eq!(v["event"]["duration"], 20_000_000);
        assert_eq!(v["source"]["address"], "2001:db8::1");
        assert_eq!(v["service"]["node"]["name"], "3");
        assert_eq!(
            v["cloudfoundry"]["app"]["id"],
            "5b7c2a1e-0000-4000-8000-000000000001"
        );
        assert_eq!(v["event"]["id"], d.id.as_str());
        // Same position, same id; another position, another id.
        assert_eq!(access_doc(&rec, line, "router/0", 41).id, d.id);
        assert_ne!(access_doc(&rec, line, "router/0", 42).id, d.id);
        assert_eq!(host_of("10.0.0.1:5000"), "10.0.0.1");
        assert_eq!(host_of("::1"), "::1");
    }

    fn event() -> LogEvent {
        LogEvent {
            time_ns: 1_482_179_988_918_000_000,
            app: "0f6b3c5e-8f35-4c9e-9d34-2b1a6e1c9a11".into(),
            instance: Some("2".into()),
            level: Some(Level::Warn),
            logger: Some("kafka.server.ReplicaFetcherThread".into()),
            thread: None,
            message: "head\njava.io.IOException: x\n\tat a.b(C.java:1)".into(),
            error_type: Some("java.io.IOException".into()),
            stack_trace: Some("java.io.IOException: x\n\tat a.b(C.java:1)".into()),
            source: "logs/server.log".into(),
            offset: 1234,
            lines: 3,
            fields: None,
        }
    }

    #[test]
    fn ecs_fields_index_and_id() {
        let ev = event();
        let doc = to_ecs(&ev);
        assert_eq!(doc["@timestamp"], "2016-12-19T20:39:48.918Z");
        assert_eq!(doc["log"]["level"], "warn");
        assert_eq!(doc["cloudfoundry"]["app"]["id"], ev.app.as_str());
        assert_eq!(doc["error"]["type"], "java.io.IOException");
        assert_eq!(doc["event"]["id"], doc_id(&ev).as_str());
        assert_eq!(index_name("vane-logs", ev.time_ns), "vane-logs-2016.12.19");
        let mut other = ev.clone();
        other.offset += 1;
        assert_ne!(doc_id(&ev), doc_id(&other), "the position is the identity");
        other.offset -= 1;
        other.message.push('x');
        assert_eq!(doc_id(&ev), doc_id(&other));
    }

    #[test]
    fn pods_are_kubernetes() {
        let mut ev = event();
        ev.app = "checkout".into();
        ev.instance = Some("checkout-7d9f-abcde".into());
        let doc = to_ecs(&ev);
        assert_eq!(doc["kubernetes"]["pod"]["name"], "checkout-7d9f-abcde");
        assert!(doc.get("cloudfoundry").is_none());
    }
}
