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

/// Latencies kept in the aggregate itself. A window with at most this many
/// (most instances: 10 requests/s over 10 s is 100) never gets a histogram:
/// its percentiles are read from the sorted values, mapped to the bucket
/// the histogram would have answered with, so the numbers are the same —
/// without 10 KiB to clear, fill and walk per series and window. Beyond it,
/// the values go to a histogram in bursts: recording one value touches a
/// random slot of ~10 KiB, a cache and TLB miss, and misses in a burst overlap.
pub const BUFFERED: usize = 128;

/// The histogram all histograms are shaped like, for its bucket arithmetic.
fn shape() -> &'static Histogram<u32> {
    static SHAPE: std::sync::OnceLock<Histogram<u32>> = std::sync::OnceLock::new();
    SHAPE.get_or_init(new_histogram)
}

const QUANTILES: [f64; 4] = [0.50, 0.90, 0.95, 0.99];

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

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// Buffers kept at most by an [`AggPool`]: 8 MiB of full ones, enough for
/// the aggregates of one window at 16k series with traffic.
const MAX_POOLED_BUFFERS: usize = 16 * 1024;

/// The parts of closed aggregates, reused by new ones: a fresh aggregate's
/// latency buffer grew by reallocation on its first values, and a histogram
/// is ~10 KiB to allocate and clear.
#[derive(Debug, Default)]
pub struct AggPool {
    /// Emptied histograms, kept boxed as the aggregates hold them (moving
    /// one in or out of the pool moves a pointer, not the struct).
    #[allow(clippy::vec_box)]
    hists: Vec<Box<Histogram<u32>>>,
    buffers: Vec<Vec<u32>>,
}

impl AggPool {
    /// An empty aggregate, with a used buffer if there is one.
    #[inline]
    pub fn fresh(&mut self) -> Agg {
        Agg {
            buffered: self.buffers.pop().unwrap_or_default(),
            ..Agg::new()
        }
    }

    /// An empty histogram.
    pub fn histogram(&mut self) -> Box<Histogram<u32>> {
        self.hists
            .pop()
            .unwrap_or_else(|| Box::new(new_histogram()))
    }

    /// Takes back what a closed or dropped aggregate held.
    pub fn recycle(&mut self, agg: Agg) {
        if let Some(mut h) = agg.hist {
            h.reset();
            self.hists.push(h);
        }
        let mut buffer = agg.buffered;
        if buffer.capacity() > 0 && self.buffers.len() < MAX_POOLED_BUFFERS {
            buffer.clear();
            self.buffers.push(buffer);
        }
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
    /// Absent while every latency of the window fits in `buffered`. Boxed,
    /// and the values in a `Vec` rather than inline: an aggregate exists per
    /// series and open window (100k series × 2–3 windows), so it stays small
    /// (~170 bytes) and only series with traffic pay for their latencies.
    hist: Option<Box<Histogram<u32>>>,
    /// At most [`BUFFERED`] latencies not yet in the histogram.
    buffered: Vec<u32>,
    /// Container metrics: CPU %, memory bytes and memory % of quota.
    pub cpu_pct: Mean,
    pub memory_bytes: Mean,
    pub memory_pct: Mean,
}

impl Default for Agg {
    fn default() -> Self {
        Self::new()
    }
}

impl Agg {
    pub fn new() -> Self {
        Agg {
            requests: 0,
            sum_rt_us: 0,
            max_rt_us: 0,
            status: StatusCounts::default(),
            bytes_in: 0,
            bytes_out: 0,
            hist: None,
            buffered: Vec::new(),
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

    /// The next latency would not fit without a histogram (give it one
    /// from a pool with [`Agg::attach`]; else it makes its own).
    #[inline]
    pub fn wants_histogram(&self) -> bool {
        self.hist.is_none() && self.buffered.len() == BUFFERED
    }

    /// Gives the aggregate an empty histogram and moves its values there.
    pub fn attach(&mut self, hist: Box<Histogram<u32>>) {
        self.hist = Some(hist);
        self.drain();
    }

    /// Moves buffered latencies into the histogram (if there is one).
    #[inline(never)]
    fn drain(&mut self) {
        if let Some(h) = &mut self.hist {
            for &v in &self.buffered {
                h.saturating_record(u64::from(v));
            }
            self.buffered.clear();
        }
    }

    /// Folds one request in.
    #[inline]
    pub fn record(&mut self, status: u16, bytes_in: u64, bytes_out: u64, rt_us: Option<u64>) {
        self.requests += 1;
        self.status.record(status);
        // Sizes and times are the input's numbers: sums saturate, never wrap.
        self.bytes_in = self.bytes_in.saturating_add(bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(bytes_out);
        if let Some(rt) = rt_us {
            self.sum_rt_us = self.sum_rt_us.saturating_add(rt);
            self.max_rt_us = self.max_rt_us.max(rt);
            if self.buffered.len() == BUFFERED {
                if self.hist.is_none() {
                    self.hist = Some(Box::new(new_histogram()));
                }
                self.drain();
            }
            // Above u32::MAX µs (71 min) is above the histogram's range anyway.
            self.buffered.push(rt.min(u64::from(u32::MAX)) as u32);
        }
    }

    pub fn latency_ms(&mut self) -> LatencyMs {
        // Beyond the histogram's range only the histogram knows where a
        // value lands (it clamps): let it answer.
        if self.hist.is_none() && self.buffered.iter().any(|&v| u64::from(v) > shape().high()) {
            self.attach(Box::new(new_histogram()));
        }
        self.drain();
        let at = match &self.hist {
            Some(h) if h.is_empty() => return LatencyMs::default(),
            Some(h) => QUANTILES.map(|q| h.value_at_quantile(q)),
            None => {
                let n = self.buffered.len();
                if n == 0 {
                    return LatencyMs::default();
                }
                let sorted = &mut self.buffered[..];
                sorted.sort_unstable();
                // As hdrhistogram: the value of rank ⌈q·n⌉ (at least 1),
                // reported as the highest value of its bucket.
                QUANTILES.map(|q| {
                    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
                    shape().highest_equivalent(u64::from(sorted[rank - 1]))
                })
            }
        };
        // The highest value of a bucket may exceed what was seen: never
        // report a percentile above the exact maximum.
        let max = self.max_rt_us;
        let ms = |v: u64| Some(us_to_ms(v.min(max)));
        LatencyMs {
            p50: ms(at[0]),
            p90: ms(at[1]),
            p95: ms(at[2]),
            p99: ms(at[3]),
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
                .iter()
                .flat_map(|h| h.iter_recorded())
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
            values: self.buffered.clone(),
            cpu_pct: self.cpu_pct,
            memory_bytes: self.memory_bytes,
            memory_pct: self.memory_pct,
        }
    }

    pub fn from_snapshot(s: &AggSnapshot) -> Self {
        // Few values go back to the buffer, as they were before the
        // checkpoint (restored state costs what live state costs).
        let total: u64 =
            s.latencies.iter().map(|&(_, c)| u64::from(c)).sum::<u64>() + s.values.len() as u64;
        let small =
            total <= BUFFERED as u64 && s.latencies.iter().all(|&(v, _)| v <= u64::from(u32::MAX));
        let (hist, buffered) = if small {
            let values = s
                .latencies
                .iter()
                .flat_map(|&(v, c)| std::iter::repeat_n(v as u32, c as usize))
                .chain(s.values.iter().copied())
                .collect();
            (None, values)
        } else {
            let mut hist = new_histogram();
            for &(value, count) in &s.latencies {
                hist.saturating_record_n(value, count);
            }
            for &v in &s.values {
                hist.saturating_record(u64::from(v));
            }
            (Some(Box::new(hist)), Vec::new())
        };
        Agg {
            requests: s.requests,
            sum_rt_us: s.sum_rt_us,
            max_rt_us: s.max_rt_us,
            status: s.status,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            hist,
            buffered,
            cpu_pct: s.cpu_pct,
            memory_bytes: s.memory_bytes,
            memory_pct: s.memory_pct,
        }
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// An [`Agg`] as plain data, for checkpoints: histogram buckets as (value,
/// count), latencies not in a histogram as they are. Empty parts are left
/// out: a checkpoint holds one of these per series with traffic in an open window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggSnapshot {
    pub requests: u64,
    pub sum_rt_us: u64,
    pub max_rt_us: u64,
    pub status: StatusCounts,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latencies: Vec<(u64, u32)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<u32>,
    #[serde(default, skip_serializing_if = "Mean::is_empty")]
    pub cpu_pct: Mean,
    #[serde(default, skip_serializing_if = "Mean::is_empty")]
    pub memory_bytes: Mean,
    #[serde(default, skip_serializing_if = "Mean::is_empty")]
    pub memory_pct: Mean,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn latencies(values: &[u64], with_histogram: bool) -> LatencyMs {
        let mut a = Agg::new();
        if with_histogram {
            a.attach(Box::new(new_histogram()));
        }
        for &v in values {
            a.record(200, 0, 0, Some(v));
        }
        a.latency_ms()
    }

    #[test]
    fn huge_sizes_and_times_saturate() {
        let mut a = Agg::new();
        for _ in 0..3 {
            a.record(200, u64::MAX, u64::MAX / 2, Some(u64::MAX));
        }
        assert_eq!(
            (a.bytes_in, a.bytes_out, a.sum_rt_us),
            (u64::MAX, u64::MAX, u64::MAX)
        );
        assert_eq!(a.requests, 3);
    }

    proptest! {
        /// Percentiles read from the buffered values are the histogram's.
        #[test]
        fn buffered_percentiles_equal_the_histogram_ones(
            values in proptest::collection::vec(
                prop_oneof![0u64..2_000, 0u64..200_000, 0u64..5_000_000_000], 1..=BUFFERED)
        ) {
            prop_assert_eq!(latencies(&values, false), latencies(&values, true));
        }

        /// Past the buffer, values move to a histogram and nothing is lost.
        #[test]
        fn a_full_buffer_moves_to_a_histogram(values in proptest::collection::vec(0u64..100_000, BUFFERED + 1..3 * BUFFERED)) {
            let mut a = Agg::new();
            for &v in &values {
                a.record(200, 0, 0, Some(v));
            }
            prop_assert!(a.hist.is_some());
            prop_assert_eq!(a.latency_ms(), latencies(&values, true));
            let snap = a.to_snapshot();
            prop_assert_eq!(snap.latencies.iter().map(|&(_, c)| u64::from(c)).sum::<u64>() + snap.values.len() as u64, values.len() as u64);
        }
    }

    /// One per series and open window: at 100k series and 2–3 open
    /// windows, every byte here is ~300 KB of memory.
    #[test]
    fn an_aggregate_stays_small() {
        assert!(
            std::mem::size_of::<Option<Agg>>() <= 176,
            "{} bytes",
            std::mem::size_of::<Option<Agg>>()
        );
    }

    #[test]
    fn a_small_window_needs_no_histogram() {
        let mut a = Agg::new();
        for v in 1..=100 {
            a.record(200, 0, 0, Some(v * 1000));
        }
        assert!(a.hist.is_none());
        let l = a.latency_ms();
        // The top of the value's bucket, as the histogram answers (1 %).
        let near = |got: Option<f64>, want: f64| got.is_some_and(|g| g >= want && g <= want * 1.01);
        assert!(near(l.p50, 50.0) && near(l.p99, 99.0), "{l:?}");
        assert_eq!(l.max, Some(100.0));
        let mut pool = AggPool::default();
        pool.recycle(a);
        assert!(pool.hists.is_empty());
        assert_eq!(pool.buffers.len(), 1);
    }

    #[test]
    fn a_recycled_aggregate_starts_empty_with_its_parts() {
        let mut pool = AggPool::default();
        let mut a = pool.fresh();
        for v in 1..=(BUFFERED as u64 + 1) {
            a.record(500, 1, 2, Some(v));
        }
        assert!(a.hist.is_some());
        pool.recycle(a);
        let mut b = pool.fresh();
        assert!(b.buffered.is_empty() && b.buffered.capacity() >= BUFFERED);
        assert_eq!((b.requests, b.status.c5xx, b.bytes_in), (0, 0, 0));
        assert!(b.hist.is_none());
        b.attach(pool.histogram());
        let h = b.hist.as_ref().map(|h| h.len());
        assert_eq!(h, Some(0), "the pooled histogram was reset");
    }
}
