//! The InfluxDB sink: window aggregates and decision records as points on the
//! InfluxDB v2 write API (`POST /api/v2/write`; or the v1 `/write` of
//! InfluxDB 1.x with `api = "v1"`), batched and gzipped.
//!
//! Points are built and encoded as line protocol with the `influxdb2` crate's
//! `DataPoint`; the transport is Vane's own so that it can honour
//! `Retry-After` and keep a batch until it is acknowledged:
//! - 429 and 5xx (and connection errors) are retried with backoff (0.5 s
//!   doubling to 30 s, or the server's `Retry-After`), forever: a sink that is
//!   down slows the pipeline (the run loop stops reading while too much is
//!   pending and checkpoints only what was delivered), it never drops data;
//! - any other 4xx is permanent: the batch goes to the dead letters with the
//!   server's reason.
//!
//! A point is keyed by measurement, tags and window start, so replaying a
//! stretch of input (after a crash) overwrites the same points.
//!
//! | measurement | tags | fields |
//! |---|---|---|
//! | `vane_window` | `app`, `name` (readable name, when the id is opaque), `instance` (instance rows only) | `requests`, `rps`, `concurrency`, `p50_ms` … `max_ms`, `status_1xx` … `status_5xx`, `status_other`, `error_ratio`, `bytes_in`, `bytes_out`, `cpu_pct`, `memory_bytes`, `memory_pct`, `late` |
//! | `vane_decision` | `app`, `name`, `policy`, `direction`, `source` | `current`, `recommended`, `desired`, `reason` |
//! | `vane_alert` | `alertname`, `app`, `state` (`pending`, `firing`, `resolved`), `severity` (when set) | `firing` (1/0), `value`, `summary` |
//! | `vane_kafka` | `source`, `partition` | `lag` (records, at processing time, every `run.stats_interval`) |
//!
//! Every point also carries the `[influxdb] tags`.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::time::{Duration, Instant};

use influxdb2::models::{DataPoint, WriteDataPoint};
use tracing::{info, warn};

use crate::model::Decision;
use crate::model::WindowStats;
use crate::model::{AlertEvent, AlertState};
use crate::time::NANOS_PER_SEC;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Base URL, like `http://127.0.0.1:8086`.
    pub url: String,
    #[serde(default)]
    pub org: String,
    pub bucket: String,
    /// Environment variable holding the API token (`Authorization: Token …`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The same from a file (a mounted secret).
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    /// Points per request.
    #[serde(default = "batch_points")]
    pub batch_points: usize,
    /// Send what is buffered at least this often.
    #[serde(default = "flush_interval", deserialize_with = "crate::time::duration")]
    pub flush_interval: Duration,
    /// Above this many buffered bytes the pipeline stops reading input.
    #[serde(default = "max_pending_bytes")]
    pub max_pending_bytes: usize,
    /// Tags added to every point (`{ cluster = "eu-1" }`): one Vane per
    /// cluster can share a bucket.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Which write API: `v2` (`/api/v2/write`, InfluxDB 2.x/3.x, 1.8+ compat)
    /// or `v1` (`/write?db=BUCKET`, InfluxDB 1.x; `bucket` is the database).
    #[serde(default)]
    pub api: WriteApi,
    /// TLS for an https `url` (system roots unless told otherwise).
    #[serde(default)]
    pub tls: crate::tls::TlsConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteApi {
    #[default]
    V2,
    V1,
}

fn batch_points() -> usize {
    5_000
}
fn flush_interval() -> Duration {
    Duration::from_secs(1)
}
fn max_pending_bytes() -> usize {
    64 << 20
}

/// One request's worth of line protocol.
struct Batch {
    lines: Vec<u8>,
    points: usize,
}

/// A batch the server refused for good, for the dead letters.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub reason: String,
    pub lines: String,
}

pub struct InfluxSink {
    write_url: String,
    token: Option<String>,
    client: reqwest::Client,
    cfg: InfluxConfig,
    /// Lines not yet in a batch.
    open: Batch,
    /// Closed batches, oldest first; the front one is being delivered.
    queue: VecDeque<Batch>,
    pending_bytes: usize,
    last_flush: Instant,
    next_try: Option<Instant>,
    attempts: u32,
    pub points_written: u64,
    pub retries: u64,
    pub rejected_batches: u64,
    /// Requests acknowledged.
    pub batches: u64,
}

impl InfluxSink {
    pub fn new(cfg: &InfluxConfig) -> Result<Self, String> {
        let token = crate::secret::read(
            cfg.token_env.as_deref(),
            cfg.token_file.as_deref(),
            "influxdb.token",
        )?;
        let base = cfg.url.trim_end_matches('/');
        let path = match cfg.api {
            WriteApi::V2 => "/api/v2/write",
            WriteApi::V1 => "/write",
        };
        let mut url = reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| format!("influxdb.url: {e}"))?;
        match cfg.api {
            WriteApi::V2 => {
                url.query_pairs_mut()
                    .append_pair("org", &cfg.org)
                    .append_pair("bucket", &cfg.bucket)
                    .append_pair("precision", "ns");
            }
            WriteApi::V1 => {
                url.query_pairs_mut()
                    .append_pair("db", &cfg.bucket)
                    .append_pair("precision", "ns");
            }
        }
        let client = crate::tls::http::client(
            &cfg.tls,
            crate::tls::http::Timeouts::request(Duration::from_secs(30)),
        )
        .map_err(|e| format!("influxdb.tls: {e}"))?;
        Ok(InfluxSink {
            write_url: url.to_string(),
            token,
            client,
            cfg: cfg.clone(),
            open: Batch {
                lines: Vec::new(),
                points: 0,
            },
            queue: VecDeque::new(),
            pending_bytes: 0,
            last_flush: Instant::now(),
            next_try: None,
            attempts: 0,
            points_written: 0,
            retries: 0,
            rejected_batches: 0,
            batches: 0,
        })
    }

    /// Whether everything handed in so far has been acknowledged.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.open.points == 0
    }

    /// Too much is buffered: the pipeline should stop reading input.
    pub fn is_full(&self) -> bool {
        self.pending_bytes >= self.cfg.max_pending_bytes
    }

    pub fn push_window(&mut self, w: &WindowStats) {
        if let Some(p) = window_point(w, &self.cfg.tags) {
            self.push(&p);
        }
    }

    pub fn push_decision(&mut self, d: &Decision) {
        if let Some(p) = decision_point(d, &self.cfg.tags) {
            self.push(&p);
        }
    }

    pub fn push_alert(&mut self, e: &AlertEvent) {
        if let Some(p) = alert_point(e, &self.cfg.tags) {
            self.push(&p);
        }
    }

    /// Consumer lag of each Kafka partition (`vane_kafka` `lag`, tags
    /// `source` and `partition`), at processing time: Vane's own health.
    pub fn push_kafka_lag(&mut self, source: &str, lag: &BTreeMap<String, i64>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        for (partition, l) in lag {
            let mut b = DataPoint::builder("vane_kafka")
                .tag("source", source)
                .tag("partition", partition.as_str());
            for (k, v) in &self.cfg.tags {
                b = b.tag(k.as_str(), v.as_str());
            }
            if let Ok(p) = b.field("lag", *l).timestamp(now).build() {
                self.push(&p);
            }
        }
    }

    fn push(&mut self, p: &DataPoint) {
        let before = self.open.lines.len();
        if p.write_data_point_to(&mut self.open.lines).is_err() {
            self.open.lines.truncate(before);
            return;
        }
        self.pending_bytes += self.open.lines.len() - before;
        self.open.points += 1;
        if self.open.points >= self.cfg.batch_points {
            self.seal();
        }
    }

    fn seal(&mut self) {
        if self.open.points > 0 {
            let batch = std::mem::replace(
                &mut self.open,
                Batch {
                    lines: Vec::new(),
                    points: 0,
                },
            );
            self.queue.push_back(batch);
        }
    }

    /// Seals the open batch (at the flush interval, or when `force`) and sends
    /// what is due, in order, until a failure. Returns refused batches.
    pub async fn pump(&mut self, now: Instant, force: bool) -> Vec<Rejected> {
        if force || now - self.last_flush >= self.cfg.flush_interval {
            self.seal();
            self.last_flush = now;
        }
        let mut rejected = Vec::new();
        while let Some(batch) = self.queue.front() {
            if self.next_try.is_some_and(|t| Instant::now() < t) {
                break;
            }
            match self.send(&batch.lines).await {
                Ok(()) => {
                    self.points_written += batch.points as u64;
                    self.batches += 1;
                    self.pending_bytes -= batch.lines.len();
                    self.queue.pop_front();
                    if self.attempts > 0 {
                        info!(
                            attempts = self.attempts,
                            "influxdb: delivered after retries"
                        );
                    }
                    self.attempts = 0;
                    self.next_try = None;
                }
                Err(Failure::Permanent(reason)) => {
                    warn!(%reason, points = batch.points, "influxdb refused a batch: dead-lettered");
                    self.rejected_batches += 1;
                    self.pending_bytes -= batch.lines.len();
                    if let Some(b) = self.queue.pop_front() {
                        rejected.push(Rejected {
                            reason,
                            lines: String::from_utf8_lossy(&b.lines).into_owned(),
                        });
                    }
                }
                Err(Failure::Retry(reason, after)) => {
                    self.attempts += 1;
                    self.retries += 1;
                    let (wait, at) = super::next_try(self.attempts, after);
                    if self.attempts == 1 || self.attempts.is_power_of_two() {
                        warn!(%reason, attempt = self.attempts, wait_ms = wait.as_millis() as u64, queued = self.queue.len(), "influxdb write failed; will retry");
                    }
                    self.next_try = Some(at);
                    break;
                }
            }
        }
        rejected
    }

    async fn send(&self, lines: &[u8]) -> Result<(), Failure> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let body = gz
            .write_all(lines)
            .and_then(|()| gz.finish())
            .map_err(|e| Failure::Permanent(format!("gzip: {e}")))?;
        let mut req = self
            .client
            .post(&self.write_url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Encoding", "gzip")
            .body(body);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Token {t}"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Retry(crate::tls::http::describe(&e), None))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let after = super::retry_after(resp.headers());
        let text: String = crate::http_body::message(resp)
            .await
            .chars()
            .take(500)
            .collect();
        let reason = format!("HTTP {status}: {text}");
        if status.as_u16() == 429 || status.is_server_error() {
            Err(Failure::Retry(reason, after))
        } else {
            Err(Failure::Permanent(reason))
        }
    }
}

enum Failure {
    Retry(String, Option<Duration>),
    Permanent(String),
}

/// The point of one window row (keyed by its start).
pub fn window_point(w: &WindowStats, tags: &BTreeMap<String, String>) -> Option<DataPoint> {
    let mut b = DataPoint::builder("vane_window").tag("app", w.app.as_str());
    for (k, v) in tags {
        b = b.tag(k.as_str(), v.as_str());
    }
    if let Some(n) = &w.name {
        b = b.tag("name", n.as_str());
    }
    if let Some(i) = &w.instance {
        b = b.tag("instance", i.as_str());
    }
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    b = b
        .field("requests", int(w.requests))
        .field("rps", w.rps)
        .field("concurrency", w.concurrency)
        .field("status_1xx", int(w.status.c1xx))
        .field("status_2xx", int(w.status.c2xx))
        .field("status_3xx", int(w.status.c3xx))
        .field("status_4xx", int(w.status.c4xx))
        .field("status_5xx", int(w.status.c5xx))
        .field("status_other", int(w.status.other))
        .field("error_ratio", w.error_ratio)
        .field("bytes_in", int(w.bytes_in))
        .field("bytes_out", int(w.bytes_out))
        .field("late", int(w.late));
    let l = &w.latency_ms;
    for (name, v) in [
        ("p50_ms", l.p50),
        ("p90_ms", l.p90),
        ("p95_ms", l.p95),
        ("p99_ms", l.p99),
        ("max_ms", l.max),
        ("cpu_pct", w.cpu_pct),
        ("memory_bytes", w.memory_bytes),
        ("memory_pct", w.memory_pct),
    ] {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            b = b.field(name, v);
        }
    }
    b.timestamp(w.start.nanos()).build().ok()
}

/// The point of one decision record (keyed by its time; one per app and
/// policy per window, as the engine decides).
pub fn decision_point(d: &Decision, tags: &BTreeMap<String, String>) -> Option<DataPoint> {
    let mut b = DataPoint::builder("vane_decision").tag("app", d.app.as_str());
    for (k, v) in tags {
        b = b.tag(k.as_str(), v.as_str());
    }
    if let Some(n) = &d.name {
        b = b.tag("name", n.as_str());
    }
    let source = serde_json::to_value(d.source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let direction = serde_json::to_value(d.direction)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    b = b
        .tag("policy", d.policy.as_str())
        .tag("direction", direction)
        .tag("source", source)
        .field("current", i64::from(d.current))
        .field("recommended", i64::from(d.recommended))
        .field("desired", i64::from(d.desired))
        .field("reason", d.reason.as_str());
    let t = d.time.nanos();
    // Several records may share a second (a probe and the window's decision):
    // health and actuator records are kept apart by their `source` tag.
    b.timestamp(t - t.rem_euclid(NANOS_PER_SEC)).build().ok()
}

/// One alert transition: `vane_alert`, tags `alertname`, `app`, `state`
/// (and `severity` when the rule sets it), fields `firing` (1 while firing,
/// else 0), `value` (when known) and `summary`.
pub fn alert_point(e: &AlertEvent, tags: &BTreeMap<String, String>) -> Option<DataPoint> {
    let mut b = DataPoint::builder("vane_alert")
        .tag("alertname", e.alertname.as_str())
        .tag("app", e.app.as_str());
    for (k, v) in tags {
        b = b.tag(k.as_str(), v.as_str());
    }
    let state = match e.state {
        AlertState::Pending => "pending",
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
    };
    b = b.tag("state", state);
    if let Some(sev) = e.labels.get("severity") {
        b = b.tag("severity", sev.as_str());
    }
    b = b.field("firing", i64::from(e.state == AlertState::Firing));
    if let Some(v) = e.value.filter(|v| v.is_finite()) {
        b = b.field("value", v);
    }
    if let Some(s) = e.annotations.get("summary") {
        b = b.field("summary", s.as_str());
    }
    b.timestamp(e.time.nanos()).build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_row_is_one_line_of_line_protocol() {
        let mut w = WindowStats::empty("web app");
        w.name = Some("web.apps.example.com".into());
        w.instance = Some("3".into());
        w.start = "2026-01-01T00:00:10Z".parse().unwrap();
        w.requests = 42;
        w.rps = 4.2;
        w.latency_ms.p99 = Some(120.5);
        let mut out = Vec::new();
        window_point(&w, &BTreeMap::new())
            .unwrap()
            .write_data_point_to(&mut out)
            .unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.starts_with("vane_window,app=web\\ app,instance=3,name=web.apps.example.com "),
            "{line}"
        );
        assert!(
            line.contains("requests=42i") && line.contains("p99_ms=120.5"),
            "{line}"
        );
        assert!(
            !line.contains("p50_ms"),
            "absent percentiles are left out: {line}"
        );
        assert!(line.trim_end().ends_with(" 1767225610000000000"), "{line}");
    }
}
