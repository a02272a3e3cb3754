//! Loggregator v2 `log` envelopes: one line an app or the router wrote,
//! base64 in `log.payload`. `tags.source_type` says who: `RTR` (sometimes
//! `RTR/N`) is the gorouter's access log line for the app in `source_id`;
//! `APP/PROC/WEB/N` and the others (`STG`, `API`, `CELL`, …) are the app's
//! own output and the platform's messages about it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::DecodeError;

/// What one `log` envelope carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The app GUID (`source_id`).
    pub app: String,
    pub instance: Option<String>,
    pub time_ns: i64,
    /// The line, without its trailing newline.
    pub text: String,
    /// The router's access log line (`RTR`), not the app's output.
    pub router: bool,
}

/// One envelope → its log line, `Ok(None)` when it is not a log envelope.
pub fn log_line(env: &Value) -> Result<Option<LogLine>, DecodeError> {
    let Some(log) = env.get("log") else {
        return Ok(None);
    };
    let payload = log
        .get("payload")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bytes = STANDARD
        .decode(payload)
        .map_err(|e| DecodeError::new("log.payload", 0, format!("is not base64: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        DecodeError::new("log.payload", e.utf8_error().valid_up_to(), "is not UTF-8")
    })?;
    let app = super::loggregator::text(env, ["source_id", "sourceId"])
        .ok_or_else(|| DecodeError::new("source_id", 0, "log envelope names no app (`source_id`)"))?
        .to_string();
    let source_type = env
        .get("tags")
        .and_then(|t| t.get("source_type"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(Some(LogLine {
        app,
        instance: super::loggregator::text(env, ["instance_id", "instanceId"]).map(str::to_string),
        time_ns: super::loggregator::timestamp(env)?,
        text: text.trim_end_matches(['\n', '\r']).to_string(),
        router: source_type == "RTR" || source_type.starts_with("RTR/"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(source_type: &str, payload: &str) -> Value {
        serde_json::json!({
            "timestamp": "1764547200675619840",
            "source_id": "2c0fc8dd-fa4e-9e14-0e2c-1a002aae913d",
            "instance_id": "1",
            "tags": {"source_type": source_type},
            "log": {"payload": STANDARD.encode(payload), "type": "OUT"}
        })
    }

    #[test]
    fn router_and_app_lines_are_told_apart_by_source_type() {
        for (kind, router) in [
            ("RTR", true),
            ("RTR/3", true),
            ("APP/PROC/WEB/0", false),
            ("STG", false),
        ] {
            let line = log_line(&envelope(kind, "a line\n")).unwrap().unwrap();
            assert_eq!(line.router, router, "{kind}");
            assert_eq!(line.text, "a line");
            assert_eq!(line.app, "2c0fc8dd-fa4e-9e14-0e2c-1a002aae913d");
            assert_eq!(line.instance.as_deref(), Some("1"));
            assert_eq!(line.time_ns, 1_764_547_200_675_619_840);
        }
    }

    #[test]
    fn a_bad_payload_is_an_error_and_a_gauge_is_not_a_log() {
        let mut bad = envelope("RTR", "");
        bad["log"]["payload"] = Value::String("not base64!".into());
        assert!(log_line(&bad).unwrap_err().to_string().contains("base64"));
        let mut binary = envelope("RTR", "");
        binary["log"]["payload"] = Value::String(STANDARD.encode([0xff, 0xfe]));
        assert!(log_line(&binary).unwrap_err().to_string().contains("UTF-8"));
        let gauge = serde_json::json!({"source_id": "x", "gauge": {"metrics": {}}});
        assert_eq!(log_line(&gauge).unwrap(), None);
    }
}
