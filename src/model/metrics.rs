//! The metrics of a window row, by name: the one vocabulary of alert
//! expressions (`p99_ms > 250`), rule tests (`series: {rps: 5x10}`) and
//! scaling policies (whose metrics are these, some per instance). A new
//! scaling metric is a row here (and a `Metric` variant naming it).

use super::WindowStats;

/// One metric of a window row.
pub struct WindowMetric {
    pub name: &'static str,
    read: fn(&WindowStats) -> Option<f64>,
    /// How a rule test sets it on a synthetic row; `None` for metrics
    /// derived from others.
    write: Option<fn(&mut WindowStats, f64)>,
}

impl WindowMetric {
    /// Its value in `w`; `None` when the row has no value for it (no
    /// container metrics, no request with a response time).
    pub fn read(&self, w: &WindowStats) -> Option<f64> {
        (self.read)(w)
    }

    /// Sets it in `w`; false for derived metrics.
    pub fn write(&self, w: &mut WindowStats, value: f64) -> bool {
        self.write.map(|f| f(w, value)).is_some()
    }

    pub fn writable(&self) -> bool {
        self.write.is_some()
    }
}

/// A count from a rule test's number: rounded, negative as zero.
fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// Every window metric, in the order documentation lists them.
pub static WINDOW_METRICS: [WindowMetric; 17] = [
    WindowMetric {
        name: "requests",
        read: |w| Some(w.requests as f64),
        write: Some(|w, v| w.requests = count(v)),
    },
    WindowMetric {
        name: "rps",
        read: |w| Some(w.rps),
        write: Some(|w, v| w.rps = v),
    },
    WindowMetric {
        name: "concurrency",
        read: |w| Some(w.concurrency),
        write: Some(|w, v| w.concurrency = v),
    },
    WindowMetric {
        // Little's law: requests in flight ÷ arrival rate.
        name: "response_time_ms",
        read: |w| (w.rps > 0.0).then(|| w.concurrency / w.rps * 1000.0),
        write: None,
    },
    WindowMetric {
        name: "p50_ms",
        read: |w| w.latency_ms.p50,
        write: Some(|w, v| w.latency_ms.p50 = Some(v)),
    },
    WindowMetric {
        name: "p90_ms",
        read: |w| w.latency_ms.p90,
        write: Some(|w, v| w.latency_ms.p90 = Some(v)),
    },
    WindowMetric {
        name: "p95_ms",
        read: |w| w.latency_ms.p95,
        write: Some(|w, v| w.latency_ms.p95 = Some(v)),
    },
    WindowMetric {
        name: "p99_ms",
        read: |w| w.latency_ms.p99,
        write: Some(|w, v| w.latency_ms.p99 = Some(v)),
    },
    WindowMetric {
        name: "max_ms",
        read: |w| w.latency_ms.max,
        write: Some(|w, v| w.latency_ms.max = Some(v)),
    },
    WindowMetric {
        name: "error_ratio",
        read: |w| Some(w.error_ratio),
        write: Some(|w, v| w.error_ratio = v),
    },
    WindowMetric {
        name: "status_4xx",
        read: |w| Some(w.status.c4xx as f64),
        write: Some(|w, v| w.status.c4xx = count(v)),
    },
    WindowMetric {
        name: "status_5xx",
        read: |w| Some(w.status.c5xx as f64),
        write: Some(|w, v| w.status.c5xx = count(v)),
    },
    WindowMetric {
        name: "cpu_pct",
        read: |w| w.cpu_pct,
        write: Some(|w, v| w.cpu_pct = Some(v)),
    },
    WindowMetric {
        name: "memory_pct",
        read: |w| w.memory_pct,
        write: Some(|w, v| w.memory_pct = Some(v)),
    },
    WindowMetric {
        name: "memory_bytes",
        read: |w| w.memory_bytes,
        write: Some(|w, v| w.memory_bytes = Some(v)),
    },
    WindowMetric {
        name: "memory_mb",
        read: |w| w.memory_bytes.map(|b| b / 1e6),
        write: None,
    },
    WindowMetric {
        name: "late",
        read: |w| Some(w.late as f64),
        write: Some(|w, v| w.late = count(v)),
    },
];

/// The metric called `name`.
pub fn window_metric(name: &str) -> Option<&'static WindowMetric> {
    WINDOW_METRICS.iter().find(|m| m.name == name)
}

/// The names, for error messages: `requests, rps, …`.
pub fn window_metric_names(only_writable: bool) -> String {
    let names: Vec<&str> = WINDOW_METRICS
        .iter()
        .filter(|m| !only_writable || m.writable())
        .map(|m| m.name)
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_rule_test_writes_reads_back() {
        for m in WINDOW_METRICS.iter().filter(|m| m.writable()) {
            let mut w = WindowStats::empty("a");
            assert!(m.write(&mut w, 7.0));
            assert_eq!(m.read(&w), Some(7.0), "{}", m.name);
        }
    }

    #[test]
    fn names_are_unique_and_found() {
        for m in &WINDOW_METRICS {
            assert!(
                std::ptr::eq(window_metric(m.name).unwrap(), m),
                "{}",
                m.name
            );
        }
        assert!(window_metric("p42_ms").is_none());
    }

    #[test]
    fn derived_metrics_follow_their_fields() {
        let mut w = WindowStats::empty("a");
        w.rps = 20.0;
        w.concurrency = 2.0;
        w.memory_bytes = Some(3e6);
        let read = |name: &str| window_metric(name).unwrap().read(&w);
        assert_eq!(read("response_time_ms"), Some(100.0));
        assert_eq!(read("memory_mb"), Some(3.0));
        assert!(!window_metric("memory_mb").unwrap().write(&mut w, 1.0));
    }
}
