//! Demand as a rate series: CSV files (`time,rps[,app]`) and the generated
//! traffic shapes (diurnal, step spike, sawtooth), turned into the same
//! window rows the pipeline produces from access logs.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::model::{LatencyMs, WindowStats};
use crate::time::{NANOS_PER_SEC, Timestamp, check_range, format_rfc3339, parse_iso8601};

/// Rate samples of one app: (time ns, requests/s), in time order.
pub type Series = Vec<(i64, f64)>;

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct SeriesError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Parses `time,rps[,app]` lines: time as RFC 3339, Unix seconds or Unix
/// milliseconds (a number past 10^11, which as seconds would be the year
/// 5138); an optional header line (`time,rps[,app]`, any names whose rate
/// column is not a number) and blank or `#` lines are skipped. Rows of an
/// app need not be sorted. A file without a data row is an error.
pub fn parse_csv(
    text: &str,
    file: &str,
    default_app: &str,
) -> Result<BTreeMap<String, Series>, SeriesError> {
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    // Each app's earliest and latest time so far.
    let mut spans: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut first = true;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| SeriesError {
            file: file.to_string(),
            line: i + 1,
            message,
        };
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let header = std::mem::take(&mut first) && is_header(&cols);
        if header {
            continue;
        }
        let (t, v, app) = match cols.as_slice() {
            [t, v] => (*t, *v, default_app),
            [t, v, a] => (*t, *v, app_column(a).map_err(err)?.unwrap_or(default_app)),
            _ => {
                return Err(err(format!(
                    "expected `time,rps` or `time,rps,app`, found {} columns",
                    cols.len()
                )));
            }
        };
        let time_ns = parse_time(t).map_err(|e| err(format!("time `{t}`: {e}")))?;
        let rps: f64 = v
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r >= 0.0)
            .ok_or_else(|| err(format!("rps `{v}` is not a non-negative number")))?;
        let rows = out.entry(app.to_string()).or_default();
        rows.push((time_ns, rps));
        let span = spans.entry(app.to_string()).or_insert((time_ns, time_ns));
        *span = (span.0.min(time_ns), span.1.max(time_ns));
        if span.1 - span.0 > MAX_SPAN_NS {
            return Err(err(format!(
                "this row makes `{app}` span more than {} days, the most a backtest covers (split the file)",
                MAX_SPAN_NS / (86_400 * NANOS_PER_SEC)
            )));
        }
    }
    if out.is_empty() {
        return Err(SeriesError {
            file: file.to_string(),
            line: text.lines().count(),
            message: "no data rows: expected lines of `time,rps[,app]`".into(),
        });
    }
    for s in out.values_mut() {
        s.sort_by_key(|(t, _)| *t);
    }
    Ok(out)
}

/// A first line is a header when its rate column is not a number (`rps`);
/// a first line with a number there is data, and a bad time in it an error.
fn is_header(cols: &[&str]) -> bool {
    cols.get(1).is_some_and(|v| v.parse::<f64>().is_err())
        && cols.first().is_some_and(|t| parse_time(t).is_err())
}

/// The optional third column: an app name, not a number (a CSV with a
/// latency or count there is not the format asked for).
fn app_column(a: &str) -> Result<Option<&str>, String> {
    if a.is_empty() {
        return Ok(None);
    }
    if a.parse::<f64>().is_ok() {
        return Err(format!(
            "third column `{a}` is a number; it names the app (`time,rps,app`)"
        ));
    }
    Ok(Some(a))
}

/// Unix seconds past this are taken for milliseconds.
const MILLIS_FROM: f64 = 1e11;

/// RFC 3339, Unix seconds, or Unix milliseconds, to ns in the supported range.
fn parse_time(t: &str) -> Result<i64, String> {
    let ns = match t.parse::<f64>() {
        Ok(n) if n.is_finite() => {
            let secs = if n.abs() >= MILLIS_FROM { n / 1e3 } else { n };
            // `as` saturates; the range check below refuses what saturated.
            (secs * NANOS_PER_SEC as f64) as i64
        }
        Ok(_) => return Err("not a finite number".into()),
        Err(_) => parse_iso8601(t.as_bytes()).map_err(|e| e.to_string())?,
    };
    check_range(ns).map_err(|e| e.to_string())
}

/// The longest an app's rate series may span: every window in between
/// becomes a row (two months of 10 s windows are half a million).
pub const MAX_SPAN_NS: i64 = 62 * 86_400 * NANOS_PER_SEC;

/// Window rows of one app from its rate series: each window's rate is the
/// mean of the samples in it, or the last sample before it when it has none.
/// `latency_ms` sets the concurrency (Little's law) and the percentiles.
pub fn windows(app: &str, series: &Series, window_ns: i64, latency_ms: f64) -> Vec<WindowStats> {
    let (Some(first), Some(last)) = (series.first(), series.last()) else {
        return Vec::new();
    };
    let start = first.0.div_euclid(window_ns) * window_ns;
    let end = last.0.div_euclid(window_ns) * window_ns + window_ns;
    let secs = window_ns as f64 / NANOS_PER_SEC as f64;
    let mut rows = Vec::new();
    let mut i = 0;
    let mut held = first.1;
    let mut t = start;
    while t < end {
        let (mut sum, mut n) = (0.0, 0u32);
        while i < series.len() && series[i].0 < t + window_ns {
            sum += series[i].1;
            n += 1;
            i += 1;
        }
        if n > 0 {
            held = sum / f64::from(n);
        }
        let mut w = WindowStats::empty(app);
        w.start = Timestamp::from_nanos(t);
        w.end = Timestamp::from_nanos(t.saturating_add(window_ns));
        w.requests = (held * secs).round() as u64;
        w.status.c2xx = w.requests;
        w.rps = held;
        w.concurrency = held * latency_ms / 1000.0;
        if held > 0.0 {
            w.latency_ms = LatencyMs {
                p50: Some(latency_ms),
                p90: Some(latency_ms * 1.5),
                p95: Some(latency_ms * 2.0),
                p99: Some(latency_ms * 3.0),
                max: Some(latency_ms * 5.0),
            };
        }
        rows.push(w);
        t += window_ns;
    }
    rows
}

/// The generated traffic shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// 24 h: 40 req/s at 04:00 rising to 600 req/s at 16:00 and back.
    Diurnal,
    /// 2 h at 100 req/s with a step to 800 req/s (20–50 min) and one to
    /// 400 req/s (80–95 min).
    Step,
    /// 2 h of 10-minute ramps from 100 to 700 req/s, each ending in a sudden
    /// drop: bait for flapping autoscalers.
    Sawtooth,
    /// 2 h of bursts: 3 minutes at 500 req/s, then 7 minutes at 50 req/s.
    /// Each on-edge looks like a steep rise to a trend estimator.
    OnOff,
    /// 2 h of flat 300 req/s under heavy noise (30 % per second, a level
    /// that wanders 10 % per minute): nothing to scale for.
    Noisy,
    /// 2 h: from 100 req/s up by 40 every 6 minutes to 700, then down by 140
    /// every 6 minutes.
    Staircase,
    /// 2 h at 100 req/s; at 30 minutes a flash crowd of 1,200 req/s within
    /// 20 s that fades back with a 10-minute time constant.
    Flash,
    /// 14 days from a Monday: weekdays rise from 60 to 500 req/s within two
    /// minutes at 08:00, dip to 300 over lunch and come back at 13:00 at
    /// once, fade from 17:00 to 80 by 22:00; weekends rise slowly to 220
    /// from 09:00 to 11:00. Two one-off spikes (day 3 at 15:00, day 10 at
    /// 11:00: ×1.8 for 20 minutes) that a forecast must not learn; 5 %
    /// noise per second and a level wandering 3 % per minute.
    Weekly,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Diurnal => "diurnal",
            Shape::Step => "step",
            Shape::Sawtooth => "sawtooth",
            Shape::OnOff => "on-off",
            Shape::Noisy => "noisy",
            Shape::Staircase => "staircase",
            Shape::Flash => "flash",
            Shape::Weekly => "weekly",
        }
    }

    pub const ALL: [Shape; 8] = [
        Shape::Diurnal,
        Shape::Step,
        Shape::Sawtooth,
        Shape::OnOff,
        Shape::Noisy,
        Shape::Staircase,
        Shape::Flash,
        Shape::Weekly,
    ];

    fn duration_s(self) -> u32 {
        match self {
            Shape::Diurnal => 86_400,
            Shape::Weekly => 14 * 86_400,
            _ => 7_200,
        }
    }

    /// The shape's level at `t` seconds, before noise.
    fn level(self, t: u32) -> f64 {
        let s = f64::from(t);
        match self {
            Shape::Diurnal => {
                let phase = (s / 3600.0 - 4.0) / 24.0 * std::f64::consts::TAU;
                40.0 + 560.0 * (1.0 - phase.cos()) / 2.0
            }
            Shape::Step => match t {
                1_200..3_000 => 800.0,
                4_800..5_700 => 400.0,
                _ => 100.0,
            },
            Shape::Sawtooth => 100.0 + 600.0 * (s % 600.0) / 600.0,
            Shape::OnOff => {
                if t % 600 < 180 {
                    500.0
                } else {
                    50.0
                }
            }
            Shape::Noisy => 300.0,
            Shape::Staircase => {
                let k = f64::from(t / 360);
                if k <= 15.0 {
                    100.0 + 40.0 * k
                } else {
                    700.0 - 140.0 * (k - 15.0)
                }
            }
            Shape::Weekly => weekly(t),
            Shape::Flash => {
                let since = s - 1_800.0;
                if since < 0.0 {
                    100.0
                } else {
                    let peak = 1_100.0 * (since / 20.0).min(1.0);
                    100.0 + peak * (-(since - 20.0).max(0.0) / 600.0).exp()
                }
            }
        }
    }

    /// One sample per `every_s` seconds from `start_ns`, with ±5 % noise
    /// (normal, seeded) on top of the shape (`noisy`: its own noise).
    pub fn series(self, seed: u64, start_ns: i64, every_s: u32) -> Series {
        let mut rng = SmallRng::seed_from_u64(seed ^ (self as u64).wrapping_mul(0x9e37_79b9));
        let duration_s = self.duration_s();
        let (noise, wander) = match self {
            Shape::Noisy => (0.3, 0.1),
            Shape::Weekly => (0.05, 0.03),
            _ => (0.05, 0.0),
        };
        let mut out = Vec::with_capacity((duration_s / every_s.max(1)) as usize);
        let mut t = 0u32;
        let mut level_shift = 0.0;
        while t < duration_s {
            if wander > 0.0 && t.is_multiple_of(60) {
                level_shift = wander * normal(&mut rng);
            }
            let base = self.level(t) * (1.0 + level_shift);
            out.push((
                start_ns + i64::from(t) * NANOS_PER_SEC,
                (base * (1.0 + noise * normal(&mut rng))).max(0.0),
            ));
            t += every_s.max(1);
        }
        out
    }
}

/// The `weekly` shape's level `t` seconds after Monday 00:00.
fn weekly(t: u32) -> f64 {
    let day = t / 86_400;
    let h = f64::from(t % 86_400) / 3_600.0;
    let ramp = |from: f64, to: f64, h0: f64, h1: f64| {
        from + (to - from) * ((h - h0) / (h1 - h0)).clamp(0.0, 1.0)
    };
    let base = if day % 7 >= 5 {
        if h < 9.0 {
            50.0
        } else if h < 11.0 {
            ramp(50.0, 220.0, 9.0, 11.0)
        } else if h < 18.0 {
            220.0
        } else {
            ramp(220.0, 50.0, 18.0, 22.0)
        }
    } else if h < 8.0 - 2.0 / 60.0 {
        60.0
    } else if h < 8.0 {
        ramp(60.0, 500.0, 8.0 - 2.0 / 60.0, 8.0)
    } else if h < 12.0 {
        500.0
    } else if h < 13.0 {
        300.0
    } else if h < 17.0 {
        500.0
    } else if h < 22.0 {
        ramp(500.0, 80.0, 17.0, 22.0)
    } else {
        ramp(80.0, 60.0, 22.0, 24.0)
    };
    let spike = (day == 2 && (15.0..15.0 + 1.0 / 3.0).contains(&h))
        || (day == 9 && (11.0..11.0 + 1.0 / 3.0).contains(&h));
    if spike { base * 1.8 } else { base }
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Writes a series as CSV (`time,rps`).
pub fn write_csv(series: &Series, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "time,rps")?;
    for (t, v) in series {
        writeln!(
            out,
            "{},{v:.3}",
            format_rfc3339(t.div_euclid(NANOS_PER_SEC))
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: a time of 1.7e17 s overflowed the window loop.
    #[test]
    fn times_past_2199_are_an_error_with_the_line() {
        let text = "1700000000,3\n170000001000000010,4\n";
        let e = parse_csv(text, "demand.csv", "web")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("demand.csv:2: time `170000001000000010`"),
            "{e}"
        );
        assert!(e.contains("1900 to 2199"), "{e}");
    }

    /// Every window between an app's first and last row becomes a row: a
    /// span of years would be hundreds of millions of them.
    #[test]
    fn a_series_spanning_more_than_two_months_is_refused() {
        let text = "1700000000,3,web\n1700000000,3,api\n1705356800,4,web\n1710000000,4,web\n";
        let e = parse_csv(text, "demand.csv", "web")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("demand.csv:4: this row makes `web` span more than 62 days"),
            "{e}"
        );
        let ok = "1700000000,3\n1705356800,4\n";
        let series = parse_csv(ok, "demand.csv", "web").unwrap();
        assert_eq!(
            windows("web", &series["web"], 10 * NANOS_PER_SEC, 50.0).len(),
            535_681
        );
    }

    #[test]
    fn empty_and_header_only_files_are_errors() {
        for text in ["", "time,rps\n", "# comment\n\n"] {
            let e = parse_csv(text, "d.csv", "web").unwrap_err().to_string();
            assert!(e.contains("no data rows"), "{text:?}: {e}");
        }
    }

    #[test]
    fn millisecond_times_are_read_as_milliseconds() {
        let s = parse_csv("1767225600000,5\n1767225610000,6\n", "d.csv", "web").unwrap();
        assert_eq!(
            s["web"],
            vec![
                (1_767_225_600 * NANOS_PER_SEC, 5.0),
                (1_767_225_610 * NANOS_PER_SEC, 6.0)
            ]
        );
        assert_eq!(windows("web", &s["web"], 10 * NANOS_PER_SEC, 50.0).len(), 2);
    }

    #[test]
    fn a_numeric_third_column_is_an_error() {
        let e = parse_csv("time,rps,p99\n1767225600,5,120\n", "d.csv", "web")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.csv:2: third column `120`"), "{e}");
        let e = parse_csv("1767225600,5,web,extra\n", "d.csv", "web")
            .unwrap_err()
            .to_string();
        assert!(e.contains("found 4 columns"), "{e}");
    }

    #[test]
    fn a_bad_first_data_row_is_not_a_header() {
        let e = parse_csv("yesterday,5\n1767225600,6\n", "d.csv", "web")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.csv:1: time `yesterday`"), "{e}");
        // A real header is skipped, with or without the app column.
        for text in ["time,rps\n1767225600,6\n", "t,rate,app\n1767225600,6,web\n"] {
            assert_eq!(parse_csv(text, "d.csv", "web").unwrap()["web"].len(), 1);
        }
    }
}
