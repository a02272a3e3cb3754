//! Cloud Foundry Loggregator v2 envelopes in JSON, as the RLP gateway streams
//! them (server-sent events, `data: {"batch":[...]}`) and as they travel on
//! Kafka (one envelope per message): app container metrics become
//! [`ContainerMetric`]s.
//!
//! - `source_id`/`sourceId` is the app GUID, `instance_id`/`instanceId` the
//!   instance index (a gauge `instance_index` overrides it).
//! - Gauges read: `cpu` (percent), `memory`, `memory_quota`, `disk`,
//!   `disk_quota` (bytes). Values may be numbers or strings (protojson writes
//!   int64 as strings); `null` or missing values stay absent.
//! - Envelopes that are not app container metrics (counters, timers, platform
//!   gauges such as doppler's) are skipped, not errors: a firehose carries them.

use serde_json::Value;

use super::DecodeError;
pub use super::loggregator_log::{LogLine, log_line};
use crate::model::ContainerMetric;

pub(super) fn text<'a>(v: &'a Value, keys: [&str; 2]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| v.get(*k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A number written as a JSON number or string.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn gauge(metrics: &Value, name: &str) -> Option<f64> {
    metrics
        .get(name)
        .and_then(|m| m.get("value"))
        .and_then(number)
        .filter(|v| v.is_finite())
}

/// One envelope → a container metric, `Ok(None)` when it is not one.
pub fn container_metric(env: &Value) -> Result<Option<ContainerMetric>, DecodeError> {
    let Some(metrics) = env.get("gauge").and_then(|g| g.get("metrics")) else {
        return Ok(None);
    };
    let m = ContainerMetric {
        time_ns: 0,
        app: text(env, ["source_id", "sourceId"])
            .unwrap_or_default()
            .to_string(),
        instance: text(env, ["instance_id", "instanceId"]).map(str::to_string),
        cpu_pct: gauge(metrics, "cpu"),
        memory_bytes: gauge(metrics, "memory"),
        memory_quota_bytes: gauge(metrics, "memory_quota"),
        disk_bytes: gauge(metrics, "disk"),
        disk_quota_bytes: gauge(metrics, "disk_quota"),
        node: env
            .get("tags")
            .and_then(|t| t.get("ip"))
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    if m.cpu_pct.is_none() && m.memory_bytes.is_none() && m.disk_bytes.is_none() {
        return Ok(None);
    }
    let instance = match gauge(metrics, "instance_index") {
        Some(i) if i >= 0.0 && i.fract() == 0.0 => Some(format!("{i:.0}")),
        _ => m.instance.clone(),
    };
    if m.app.is_empty() {
        return Err(DecodeError::new(
            "source_id",
            0,
            "container metric names no app (`source_id`)",
        ));
    }
    let time_ns = timestamp(env)?;
    Ok(Some(ContainerMetric {
        time_ns,
        instance,
        ..m
    }))
}

/// An envelope's `timestamp`: nanoseconds since the epoch, within range.
pub(super) fn timestamp(env: &Value) -> Result<i64, DecodeError> {
    match env.get("timestamp") {
        Some(t) => number(t)
            .filter(|t| *t >= 0.0 && *t < 9.2e18)
            .map(|t| t as i64),
        None => None,
    }
    .ok_or_else(|| {
        DecodeError::new(
            "timestamp",
            0,
            "is missing or not nanoseconds since the epoch",
        )
    })
    .and_then(|t| crate::time::check_range(t).map_err(|why| DecodeError::new("timestamp", 0, why)))
}

/// The envelopes of one line (`Ok(None)` for SSE framing and blanks).
fn envelopes(line: &str) -> Result<Option<Value>, DecodeError> {
    let body = line.trim();
    if body.is_empty()
        || body.starts_with("event:")
        || body.starts_with("id:")
        || body.starts_with("retry:")
        || body.starts_with(':')
    {
        return Ok(None);
    }
    let body = body.strip_prefix("data:").map_or(body, str::trim_start);
    let v: Value = serde_json::from_str(body).map_err(|e| {
        DecodeError::new(
            "json",
            e.column().saturating_sub(1),
            format!("is not a JSON envelope: {e}"),
        )
    })?;
    match v.get("batch") {
        Some(Value::Array(_)) => Ok(Some(v)),
        _ if v.is_object() => Ok(Some(Value::Array(vec![v]))),
        _ => Err(DecodeError::new(
            "json",
            0,
            "is neither an envelope nor a batch",
        )),
    }
}

fn each(v: &Value) -> &[Value] {
    match v {
        Value::Array(one) => one,
        _ => v
            .get("batch")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice),
    }
}

/// What one event of the RLP gateway stream carried: container metrics,
/// log lines (router and app), and the envelopes that could not be read —
/// one bad envelope does not cost the rest of its batch.
#[derive(Debug, Default)]
pub struct StreamEvent {
    pub metrics: Vec<ContainerMetric>,
    pub logs: Vec<LogLine>,
    pub errors: Vec<DecodeError>,
}

/// An SSE line of the RLP gateway stream (`data: {"batch": [...]}`).
pub fn decode_stream_event(line: &str) -> Result<StreamEvent, DecodeError> {
    let mut out = StreamEvent::default();
    let Some(v) = envelopes(line)? else {
        return Ok(out);
    };
    for env in each(&v) {
        let read = container_metric(env).and_then(|m| match m {
            Some(m) => {
                out.metrics.push(m);
                Ok(())
            }
            None => log_line(env).map(|l| out.logs.extend(l)),
        });
        if let Err(e) = read {
            out.errors.push(e);
        }
    }
    Ok(out)
}

/// One line: an envelope, a `{"batch": [...]}`, or an SSE `data:` line of either.
/// SSE `event:`/`id:` lines and comments yield nothing.
pub fn decode_loggregator(line: &str) -> Result<Vec<ContainerMetric>, DecodeError> {
    let Some(v) = envelopes(line)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in each(&v) {
        if let Some(m) = container_metric(e)? {
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(rel: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../shared/data/container-metrics/{rel}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn transcribed_go_loggregator_cases() {
        let doc: Value =
            serde_json::from_str(&shared("loggregator_v2_container_metric_cases.json")).unwrap();
        let mut checked = 0;
        for case in doc["cases"].as_array().unwrap() {
            let Some(env) = case.get("v2_envelope") else {
                continue;
            };
            let got = container_metric(env);
            if let Some(want) = case.get("expected_v1_container_metric") {
                // Go uses time.Now() where the table has null: any time will do here.
                let mut env = env.clone();
                env["timestamp"] = Value::String("1532030745755909241".into());
                let m = container_metric(&env);
                let want_app = want["applicationId"].as_str().unwrap();
                if want_app.is_empty() {
                    // go-loggregator accepts an envelope without a source id; Vane cannot window it.
                    assert!(m.is_err() || m.as_ref().unwrap().is_none(), "{m:?}");
                    checked += 1;
                    continue;
                }
                let m = m.unwrap().unwrap();
                assert_eq!(m.app, want_app);
                assert_eq!(
                    m.instance.as_deref(),
                    Some(want["instanceIndex"].to_string().as_str())
                );
                assert_eq!(m.cpu_pct, want["cpuPercentage"].as_f64());
                assert_eq!(m.memory_bytes, want["memoryBytes"].as_f64());
                assert_eq!(m.memory_quota_bytes, want["memoryBytesQuota"].as_f64());
                assert_eq!(m.disk_bytes, want["diskBytes"].as_f64());
                assert_eq!(m.disk_quota_bytes, want["diskBytesQuota"].as_f64());
                checked += 1;
            } else if case.get("expected_v1_envelopes").is_some() {
                assert!(matches!(got, Ok(None)), "{}: {got:?}", case["name"]);
                checked += 1;
            } else {
                // The HTTP timer envelope is not a container metric.
                assert!(matches!(got, Ok(None)), "{}: {got:?}", case["name"]);
                checked += 1;
            }
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn rlp_gateway_stream_has_no_app_metrics_and_decodes_cleanly() {
        for line in shared("loggregator_rlp_gateway_sse_sample.txt").lines() {
            assert_eq!(decode_loggregator(line).unwrap(), Vec::new(), "{line}");
        }
    }

    #[test]
    fn sse_batch_with_string_values() {
        let line = r#"data: {"batch":[{"timestamp":"1700000000000000000","source_id":"app-guid","instance_id":"2","gauge":{"metrics":{"cpu":{"unit":"percentage","value":"42.5"},"memory":{"unit":"bytes","value":"268435456"},"memory_quota":{"unit":"bytes","value":"536870912"}}}}]}"#;
        let m = decode_loggregator(line).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].app.as_str(), m[0].instance.as_deref(), m[0].cpu_pct),
            ("app-guid", Some("2"), Some(42.5))
        );
        assert_eq!(m[0].memory_pct(), Some(50.0));
        assert_eq!(m[0].time_ns, 1_700_000_000_000_000_000);
        assert!(decode_loggregator("data: {not json").is_err());
        assert!(
            decode_loggregator(r#"{"source_id":"a","gauge":{"metrics":{"cpu":{"value":1}}}}"#)
                .unwrap_err()
                .field
                == "timestamp"
        );
    }
}
