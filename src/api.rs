//! The HTTP server of `vane run` (axum): `/metrics` in the Prometheus text
//! format, `/healthz` and `/readyz`. The run loop publishes a snapshot of
//! its counters once per tick; requests only read that snapshot, so a slow
//! scraper never holds the pipeline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use tracing::{info, warn};

use crate::pipeline::Counts;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where to listen; loopback unless said otherwise.
    #[serde(default = "listen")]
    pub listen: String,
}

fn listen() -> String {
    "127.0.0.1:9464".into()
}

/// Per external sink: what it delivered and how often it had to retry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkStats {
    pub delivered: u64,
    pub retries: u64,
    pub rejected: u64,
    pub pending: bool,
}

/// What the run loop publishes every tick.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub counts: Counts,
    /// Consumer lag by Kafka `topic/partition`.
    pub kafka_lag: BTreeMap<String, i64>,
    pub sinks: BTreeMap<&'static str, SinkStats>,
    /// Sources started and the checkpoint restored.
    pub ready: bool,
}

pub type Shared = Arc<RwLock<Snapshot>>;

/// Starts the server on `cfg.listen`; returns the address bound (port 0
/// picks a free one) and the snapshot to publish into.
pub async fn serve(cfg: &ApiConfig) -> std::io::Result<(SocketAddr, Shared)> {
    let shared: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Arc::clone(&shared));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "http server stopped");
        }
    });
    info!(%addr, "http api listening");
    Ok((addr, shared))
}

async fn ready(State(s): State<Shared>) -> impl IntoResponse {
    let ok = s.read().map(|s| s.ready).unwrap_or(false);
    if ok {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let body = match s.read() {
        Ok(snap) => render(&snap),
        Err(_) => String::new(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// The Prometheus text exposition of a snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let c = &s.counts;
    for (name, help, v) in [
        ("vane_lines_total", "Non-blank lines read.", c.lines),
        ("vane_decoded_total", "Lines decoded.", c.decoded),
        (
            "vane_late_total",
            "Records that arrived after their window closed.",
            c.late,
        ),
        (
            "vane_dead_letters_total",
            "Lines and documents kept as dead letters.",
            c.dead_letters,
        ),
        (
            "vane_windows_written_total",
            "Window rows written.",
            c.windows_written,
        ),
        (
            "vane_decisions_total",
            "Decision records written.",
            c.decisions,
        ),
        (
            "vane_alert_transitions_total",
            "Alert transitions written.",
            c.alert_events,
        ),
        (
            "vane_metric_samples_total",
            "Container metric samples read.",
            c.metric_samples,
        ),
        (
            "vane_log_events_total",
            "App log events completed.",
            c.log_events,
        ),
        (
            "vane_handed_over_total",
            "Kafka records skipped after a rebalance: counted by the partition's previous owner.",
            c.handed_over,
        ),
        ("vane_read_bytes_total", "Bytes read.", c.bytes),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    if !s.kafka_lag.is_empty() {
        let _ = writeln!(
            out,
            "# HELP vane_kafka_lag Records between the next offset and the fetched high watermark.\n# TYPE vane_kafka_lag gauge"
        );
        for (p, l) in &s.kafka_lag {
            let _ = writeln!(out, "vane_kafka_lag{{partition=\"{}\"}} {l}", escape(p));
        }
    }
    if !s.sinks.is_empty() {
        for (name, help, kind) in [
            (
                "vane_sink_delivered_total",
                "Points or documents acknowledged.",
                "counter",
            ),
            ("vane_sink_retries_total", "Requests retried.", "counter"),
            (
                "vane_sink_rejected_total",
                "Batches or documents refused for good.",
                "counter",
            ),
            (
                "vane_sink_pending",
                "1 while something waits to be acknowledged.",
                "gauge",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (sink, st) in &s.sinks {
                let v = match name {
                    "vane_sink_delivered_total" => st.delivered,
                    "vane_sink_retries_total" => st.retries,
                    "vane_sink_rejected_total" => st.rejected,
                    _ => u64::from(st.pending),
                };
                let _ = writeln!(out, "{name}{{sink=\"{sink}\"}} {v}");
            }
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_parses_back() {
        let mut s = Snapshot::default();
        s.counts.lines = 42;
        s.kafka_lag.insert("router/0".into(), 7);
        s.sinks.insert(
            "influxdb",
            SinkStats {
                delivered: 10,
                retries: 2,
                rejected: 0,
                pending: true,
            },
        );
        let text = render(&s);
        let samples = crate::decode::prometheus::parse(&text).unwrap();
        let get = |n: &str| samples.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("vane_lines_total"), Some(42.0));
        assert_eq!(get("vane_kafka_lag"), Some(7.0));
        assert_eq!(get("vane_sink_pending"), Some(1.0));
    }
}
