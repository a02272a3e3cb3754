use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Latency percentiles of one window in milliseconds; `None` when no request
/// in the window carried a response time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct LatencyMs {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// Requests counted by status class. `other` holds statuses outside 100..=599
/// (gorouter logs 0 for requests it could not route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatusCounts {
    #[serde(rename = "1xx")]
    pub c1xx: u64,
    #[serde(rename = "2xx")]
    pub c2xx: u64,
    #[serde(rename = "3xx")]
    pub c3xx: u64,
    #[serde(rename = "4xx")]
    pub c4xx: u64,
    #[serde(rename = "5xx")]
    pub c5xx: u64,
    pub other: u64,
}

impl StatusCounts {
    pub fn record(&mut self, status: u16) {
        match status {
            100..=199 => self.c1xx += 1,
            200..=299 => self.c2xx += 1,
            300..=399 => self.c3xx += 1,
            400..=499 => self.c4xx += 1,
            500..=599 => self.c5xx += 1,
            _ => self.other += 1,
        }
    }

    pub fn add(&mut self, other: &StatusCounts) {
        self.c1xx += other.c1xx;
        self.c2xx += other.c2xx;
        self.c3xx += other.c3xx;
        self.c4xx += other.c4xx;
        self.c5xx += other.c5xx;
        self.other += other.other;
    }

    pub fn total(&self) -> u64 {
        self.c1xx + self.c2xx + self.c3xx + self.c4xx + self.c5xx + self.other
    }
}

/// The aggregate of one closed window for one app (`instance: None`) or one
/// instance of an app. This is the JSON-lines output schema documented in the README.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub app: String,
    /// A readable name where `app` is an opaque id: for gorouter, the route
    /// host of the app's first request. Absent when the app id is the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub instance: Option<String>,
    /// Instance rows: where it runs (from container metrics), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Window start (RFC 3339 UTC when serialized).
    pub start: Timestamp,
    /// Window end, exclusive (RFC 3339 UTC when serialized).
    pub end: Timestamp,
    pub requests: u64,
    /// `requests` ÷ window length in seconds.
    pub rps: f64,
    /// Sum of response times in the window ÷ window length: the average number of
    /// requests in flight (Little's law).
    pub concurrency: f64,
    pub latency_ms: LatencyMs,
    pub status: StatusCounts,
    /// 5xx ÷ requests; 0 when there were no requests.
    pub error_ratio: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Mean CPU use in percent of a core (app row: mean over its instances'
    /// samples); `null` without container metrics.
    #[serde(default)]
    pub cpu_pct: Option<f64>,
    /// Mean memory in bytes (app row: the sum over its instances).
    #[serde(default)]
    pub memory_bytes: Option<f64>,
    /// Mean memory in percent of the quota (app row: mean over its instances' samples).
    #[serde(default)]
    pub memory_pct: Option<f64>,
    /// Records for this series that arrived after the window had closed (counted
    /// against the window they belonged to, never folded in). Late records
    /// for a window appear on the first window of the series closed after they arrived.
    pub late: u64,
}

impl WindowStats {
    /// A row for `app` with no traffic and no resource samples; bounds empty.
    pub fn empty(app: &str) -> WindowStats {
        WindowStats {
            app: app.to_string(),
            name: None,
            instance: None,
            node: None,
            start: Timestamp::default(),
            end: Timestamp::default(),
            requests: 0,
            rps: 0.0,
            concurrency: 0.0,
            latency_ms: LatencyMs::default(),
            status: StatusCounts::default(),
            error_ratio: 0.0,
            bytes_in: 0,
            bytes_out: 0,
            cpu_pct: None,
            memory_bytes: None,
            memory_pct: None,
            late: 0,
        }
    }
}
