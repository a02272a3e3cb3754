//! The per-series, per-window accumulator.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::model::{LatencyMs, StatusCounts};

/// Latencies are recorded in microseconds, up to one hour, at 2 significant
/// digits (1 % relative error): ~10 KiB per histogram with `u32` counts.
const HIST_MAX_US: u64 = 3_600_000_000;
const HIST_SIGFIG: u8 = 2;

pub fn new_histogram() -> Histogram<u32> {
    // Bounds are constants that hdrhistogram accepts; a failure here is a bug in this file.
    Histogram::new_with_bounds(1, HIST_MAX_US, HIST_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Latencies waiting to go into the histogram, per series. Recording one value
/// touches a random slot of a ~10 KiB histogram; with thousands of instances
/// that is a cache and TLB miss per request. Buffering a few dozen values in the
/// (small, contiguous) aggregate and recording them in a burst lets those
/// misses overlap instead of stalling each line.
const PENDING: usize = 24;

/// A running mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mean {
    pub sum: f64,
    pub n: u32,
}

impl Mean {
    pub fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v {
            self.sum += v;
            self.n += 1;
        }
    }

    pub fn get(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }
}

#[derive(Debug, Clone)]
pub struct Agg {
    pub requests: u64,
    /// Sum of response times, for concurrency.
    pub sum_rt_us: u64,
    /// Exact maximum (the histogram only knows its bucket).
    pub max_rt_us: u64,
    pub status: StatusCounts,
    pub bytes_in: u64,
    pub bytes_out: u64,
    hist: Histogram<u32>,
    pending: [u32; PENDING],
    pending_len: usize,
    /// Container metrics: CPU %, memory bytes and memory % of quota.
    pub cpu_pct: Mean,
    pub memory_bytes: Mean,
    pub memory_pct: Mean,
}

impl Agg {
    pub fn new(hist: Histogram<u32>) -> Self {
        Agg {
            requests: 0,
            sum_rt_us: 0,
            max_rt_us: 0,
            status: StatusCounts::default(),
            bytes_in: 0,
            bytes_out: 0,
            hist,
            pending: [0; PENDING],
            pending_len: 0,
            cpu_pct: Mean::default(),
            memory_bytes: Mean::default(),
            memory_pct: Mean::default(),
        }
    }

    /// Folds one container metric sample in.
    pub fn record_metric(&mut self, m: &crate::model::ContainerMetric) {
        self.cpu_pct.add(m.cpu_pct);
        self.memory_bytes.add(m.memory_bytes);
        self.memory_pct.add(m.memory_pct());
    }

    /// Moves buffered latencies into the histogram.
    #[inline(never)]
    fn drain(&mut self) {
        for &v in &self.pending[..self.pending_len] {
            self.hist.saturating_record(u64::from(v));
        }
        self.pending_len = 0;
    }

    /// Gives the histogram back (emptied) for reuse.
    pub fn into_histogram(mut self) -> Histogram<u32> {
        self.hist.reset();
        self.hist
    }

    /// Folds one request in.
    #[inline]
    pub fn record(&mut self, status: u16, bytes_in: u64, bytes_out: u64, rt_us: Option<u64>) {
        self.requests += 1;
        self.status.record(status);
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
        if let Some(rt) = rt_us {
            self.sum_rt_us += rt;
            self.max_rt_us = self.max_rt_us.max(rt);
            // Above u32::MAX µs (71 min) is above the histogram's range anyway.
            self.pending[self.pending_len] = rt.min(u64::from(u32::MAX)) as u32;
            self.pending_len += 1;
            if self.pending_len == PENDING {
                self.drain();
            }
        }
    }

    pub fn latency_ms(&mut self) -> LatencyMs {
        self.drain();
        if self.hist.is_empty() {
            return LatencyMs::default();
        }
        let max = self.max_rt_us;
        // hdrhistogram answers with the highest value equivalent to the bucket;
        // never report a percentile above the exact maximum.
        let q = |p: f64| Some(us_to_ms(self.hist.value_at_quantile(p).min(max)));
        LatencyMs {
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            max: Some(us_to_ms(max)),
        }
    }

    pub fn to_snapshot(&self) -> AggSnapshot {
        AggSnapshot {
            requests: self.requests,
            sum_rt_us: self.sum_rt_us,
            max_rt_us: self.max_rt_us,
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            latencies: self
                .hist
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .chain(
                    self.pending[..self.pending_len]
                        .iter()
                        .map(|&v| (u64::from(v), 1)),
                )
                .collect(),
            cpu_pct: self.cpu_pct,
            memory_bytes: self.memory_bytes,
            memory_pct: self.memory_pct,
        }
    }

    pub fn from_snapshot(s: &AggSnapshot, mut hist: Histogram<u32>) -> Self {
        for &(value, count) in &s.latencies {
            hist.saturating_record_n(value, count);
        }
        Agg {
            requests: s.requests,
            sum_rt_us: s.sum_rt_us,
            max_rt_us: s.max_rt_us,
            status: s.status,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            hist,
            pending: [0; PENDING],
            pending_len: 0,
            cpu_pct: s.cpu_pct,
            memory_bytes: s.memory_bytes,
            memory_pct: s.memory_pct,
        }
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// An [`Agg`] as plain data, for checkpoints: histogram buckets as (value, count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggSnapshot {
    pub requests: u64,
    pub sum_rt_us: u64,
    pub max_rt_us: u64,
    pub status: StatusCounts,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latencies: Vec<(u64, u32)>,
    #[serde(default)]
    pub cpu_pct: Mean,
    #[serde(default)]
    pub memory_bytes: Mean,
    #[serde(default)]
    pub memory_pct: Mean,
}
